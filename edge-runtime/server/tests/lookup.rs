//! `lookup::execute` without HTTP: statuses (present, null, not found, outside max age),
//! composite keys, and the row-major response shape.

use std::collections::BTreeMap;
use std::sync::Arc;

use fstore_edge::lookup::{Format, execute};
use fstore_edge::{Catalog, LoadedView};
use fstore_snapshot::{
    FeatureRef, FeatureType, Field, KeyBuf, KeyPart, KeyType, Snapshot, SnapshotSchema,
    SnapshotWriter, Value,
};

const NOW: i64 = 1_800_000_000_000_000;
const HOUR: i64 = 3_600_000_000;

fn catalog() -> Catalog {
    let schema = SnapshotSchema {
        view: "visits".into(),
        version: 9,
        keys: vec![
            Field {
                name: "customer_id".into(),
                ty: KeyType::Int64,
            },
            Field {
                name: "site".into(),
                ty: KeyType::String,
            },
        ],
        features: vec![
            Field {
                name: "count".into(),
                ty: FeatureType::Int64,
            },
            Field {
                name: "last".into(),
                ty: FeatureType::Timestamp,
            },
        ],
        ttl_seconds: 86_400,
        created_at_micros: NOW,
        base_version: None,
        shard: None,
    };
    let mut w = SnapshotWriter::new(schema).expect("schema");
    let mut k = KeyBuf::new();
    let types = [KeyType::Int64, KeyType::String];
    let mut put = |id: i64, site: &str, ev: i64, vals: &[Value<'_>]| {
        let key = k
            .encode(&types, &[KeyPart::Int64(id), KeyPart::String(site)])
            .expect("key")
            .to_vec();
        w.push(&key, ev, None, vals).expect("push");
    };
    put(
        1,
        "shop",
        NOW - HOUR,
        &[Value::Int64(3), Value::Timestamp(NOW - HOUR)],
    );
    put(1, "blog", NOW - HOUR, &[Value::Null, Value::Null]);
    put(
        2,
        "shop",
        NOW - 48 * HOUR,
        &[Value::Int64(8), Value::Timestamp(NOW - 48 * HOUR)],
    );
    let snap = Snapshot::from_bytes(w.finish_to_vec().expect("bytes")).expect("valid");
    let view = LoadedView::new(snap, "x".into(), None);
    let services = BTreeMap::from([(
        "svc".to_string(),
        vec![
            FeatureRef::parse("visits:count").expect("ref"),
            FeatureRef::parse("visits:last").expect("ref"),
        ],
    )]);
    Catalog::new(5, vec![Arc::new(view)], &services)
}

fn run(c: &Catalog, body: &str, format: Format) -> serde_json::Value {
    let mut out = Vec::new();
    execute(c, body.as_bytes(), format, 100, NOW, &mut out).expect("lookup");
    serde_json::from_slice(&out).expect("valid JSON")
}

#[test]
fn statuses_and_composite_keys() {
    let c = catalog();
    let body = r#"{"feature_service":"svc","entities":{"site":["shop","blog","shop","shop"],"customer_id":[1,1,2,3]}}"#;
    let v = run(&c, body, Format::Fstore);
    assert_eq!(v["manifest"], 5);
    assert_eq!(v["views"]["visits"], 9);
    assert_eq!(
        v["features"],
        serde_json::json!(["visits:count", "visits:last"])
    );
    let r = &v["results"];
    assert_eq!(
        r[0]["entity"],
        serde_json::json!({"site": "shop", "customer_id": 1})
    );
    assert_eq!(r[0]["values"][0], 3);
    assert_eq!(r[0]["statuses"], serde_json::json!(["PRESENT", "PRESENT"]));
    assert_eq!(r[0]["values"][1], "2027-01-15T07:00:00Z");
    assert_eq!(
        r[1]["statuses"],
        serde_json::json!(["NULL_VALUE", "NULL_VALUE"])
    );
    assert_eq!(r[1]["values"], serde_json::json!([null, null]));
    // Older than the view's ttl when served: withheld, with its event time.
    assert_eq!(
        r[2]["statuses"],
        serde_json::json!(["OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE"])
    );
    assert_eq!(r[2]["values"], serde_json::json!([null, null]));
    assert!(r[2]["event_timestamps"][0].is_string());
    assert_eq!(
        r[3]["statuses"],
        serde_json::json!(["NOT_FOUND", "NOT_FOUND"])
    );
    assert_eq!(r[3]["event_timestamps"], serde_json::json!([null, null]));

    let f = run(&c, body, Format::Feast);
    assert_eq!(
        f["metadata"]["feature_names"],
        serde_json::json!(["site", "customer_id", "count", "last"])
    );
    assert_eq!(
        f["results"][3]["values"][0],
        (NOW - HOUR) / 1_000_000,
        "timestamps as epoch seconds"
    );
    assert_eq!(f["results"][2]["statuses"][2], "OUTSIDE_MAX_AGE");
}

#[test]
fn errors_name_what_is_wrong() {
    let c = catalog();
    let mut out = Vec::new();
    let e = execute(
        &c,
        br#"{"feature_service":"svc","entities":{"customer_id":[1]}}"#,
        Format::Fstore,
        100,
        NOW,
        &mut out,
    )
    .expect_err("site missing");
    assert_eq!(e.code, "missing_join_key");
    assert!(e.message.contains("site"));
    let e = execute(
        &c,
        br#"{"feature_service":"svc","entities":{"customer_id":[1],"site":[7]}}"#,
        Format::Fstore,
        100,
        NOW,
        &mut out,
    )
    .expect_err("site is a string");
    assert_eq!(e.code, "wrong_key_type");
    let e = execute(
        &c,
        br#"{"features":["visits:count"],"entities":{"customer_id":[1,2],"site":["a","b"]}}"#,
        Format::Feast,
        1,
        NOW,
        &mut out,
    )
    .expect_err("limit");
    assert_eq!(e.code, "too_many_entities");
}
