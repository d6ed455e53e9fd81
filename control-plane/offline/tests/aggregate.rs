//! Windowed aggregations and historical retrieval on real files, against values worked out by
//! hand: every function, window edges (start exclusive, end inclusive), nulls, the ttl, events
//! after the evaluation time, and a training set that keeps every entity row in order.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use fstore_snapshot::{FeatureRef, KeyBuf, KeyPart, KeyType, Snapshot, Value};
use fstore_spec::parse_features_yaml;

const YAML: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: orders
    path: lake/
    format: csv
    timestamp_field: ts
  - name: crm
    path: crm.csv
    timestamp_field: ts
    created_timestamp_field: created
feature_views:
  - name: rfm
    entities: [customer]
    source: orders
    ttl: 30d
    features:
      - {name: n_all, type: int64, aggregation: count}
      - {name: n_7d, type: int64, aggregation: count, window: 7d}
      - {name: n_amount_7d, type: int64, aggregation: count, column: amount, window: 7d}
      - {name: spend_7d, type: float64, aggregation: sum, column: amount, window: 7d}
      - {name: qty_7d, type: int64, aggregation: sum, column: qty, window: 7d}
      - {name: avg_7d, type: float64, aggregation: avg, column: amount, window: 7d}
      - {name: min_7d, type: float64, aggregation: min, column: amount, window: 7d}
      - {name: max_7d, type: float64, aggregation: max, column: amount, window: 7d}
      - {name: sd_7d, type: float64, aggregation: stddev, column: amount, window: 7d}
      - {name: channels, type: int64, aggregation: count_distinct, column: channel}
      - {name: last_channel, type: string, aggregation: last, column: channel}
      - {name: recency_days, type: int64, aggregation: recency}
      - {name: recency_hours, type: float64, aggregation: recency, unit: 1h}
      - {name: age_days, type: int64, aggregation: age}
      - {name: busy, type: bool, sql: "n_7d >= 2"}
  - name: profile
    entities: [customer]
    source: crm
    features:
      - {name: country, type: string}
"#;

const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
// 2026-03-01T00:00:00Z
const NOW: i64 = 1_772_323_200_000_000;

fn iso(micros: i64) -> String {
    let mut out = Vec::new();
    fstore_snapshot::format_rfc3339_micros(micros, &mut out);
    String::from_utf8(out).expect("ascii")
}

/// Customer 1: orders at now-10d, now-7d (exactly on the 7d window's exclusive start),
/// now-3d, now-1d (amount missing), now (inclusive end), and now+1d (the future).
/// Customer 2: one order 40 days ago (beyond the 30d ttl). Customer 3: one order today.
fn write_lake(dir: &std::path::Path) {
    let lake = dir.join("lake");
    std::fs::create_dir_all(&lake).expect("mkdir");
    // Out of time order and interleaved across customers, as files often are: the engine
    // must not depend on the order it reads rows in.
    let rows = [
        (3, NOW - 2 * HOUR, "7.0", "1", ""),
        (1, NOW - 3 * DAY, "30.0", "3", "web"),
        (2, NOW - 40 * DAY, "5.0", "1", "web"),
        (1, NOW + DAY, "1000.0", "6", "future"),
        (1, NOW, "60.0", "5", "web"),
        (1, NOW - 10 * DAY, "10.0", "1", "web"),
        (1, NOW - DAY, "", "4", "store"),
        (1, NOW - 7 * DAY, "20.0", "2", "app"),
    ];
    let mut csv = String::from("customer_id,ts,amount,qty,channel\n");
    for (c, t, a, q, ch) in rows {
        csv.push_str(&format!("{c},{},{a},{q},{ch}\n", iso(t)));
    }
    std::fs::write(lake.join("orders.csv"), csv).expect("write");
    // Customer 1 moved from DE to FR 5 days ago; a correction with the same event time but a
    // later created time says NL. Customer 3 has no CRM record.
    std::fs::write(
        dir.join("crm.csv"),
        format!(
            "customer_id,ts,created,country\n1,{},{},DE\n1,{},{},FR\n1,{},{},NL\n2,{},{},ES\n",
            iso(NOW - 100 * DAY),
            iso(NOW - 100 * DAY),
            iso(NOW - 5 * DAY),
            iso(NOW - 5 * DAY),
            iso(NOW - 5 * DAY),
            iso(NOW - 4 * DAY),
            iso(NOW - 50 * DAY),
            iso(NOW - 50 * DAY),
        ),
    )
    .expect("write");
}

fn key(id: i64) -> Vec<u8> {
    let mut k = KeyBuf::new();
    k.encode(&[KeyType::Int64], &[KeyPart::Int64(id)])
        .expect("key")
        .to_vec()
}

async fn sql_transforms(
    defs: &fstore_spec::Definitions,
) -> (
    fstore_spec::Definitions,
    Vec<Arc<fstore_wasm_host::Transform>>,
) {
    // The `busy` feature is a SQL expression: compile it the way the control plane does.
    let view = defs.view("rfm").expect("view");
    let available: Vec<(String, fstore_snapshot::FeatureType)> = view
        .features
        .iter()
        .filter(|f| f.is_stored())
        .map(|f| (f.name.clone(), f.ty))
        .collect();
    let compiled = fstore_compiler::compile(
        &available,
        &[fstore_compiler::Expr {
            name: "busy",
            sql: "n_7d >= 2",
            declared: Some(fstore_snapshot::FeatureType::Bool),
        }],
    )
    .expect("compile");
    let host = fstore_wasm_host::Host::new(fstore_wasm_host::HostConfig::default()).expect("host");
    let limits = fstore_wasm_host::Limits {
        deadline: std::time::Duration::from_secs(5),
        ..Default::default()
    };
    let t = host.load(&compiled.component, &[], limits).expect("load");
    let mut defs = defs.clone();
    let v = defs
        .feature_views
        .iter_mut()
        .find(|v| v.name == "rfm")
        .expect("view");
    v.steps = vec![fstore_snapshot::TransformStep {
        transform: fstore_snapshot::SQL_STEP.into(),
        sha256: String::new(),
        inputs: compiled.inputs.iter().map(|(n, _)| n.clone()).collect(),
        outputs: compiled
            .outputs
            .iter()
            .map(|(name, ty)| fstore_snapshot::Field {
                name: name.clone(),
                ty: *ty,
            })
            .collect(),
        config: Vec::new(),
        timeout_ms: 5000,
        fuel: fstore_snapshot::DEFAULT_FUEL,
    }];
    (defs, vec![Arc::new(t)])
}

#[tokio::test]
async fn every_function_as_of_now() {
    let dir = tempfile::tempdir().expect("tmp");
    write_lake(dir.path());
    let defs = parse_features_yaml(YAML, Some(dir.path())).expect("defs");
    let (defs, ts) = sql_transforms(&defs).await;
    let m = fstore_offline::materialize(&defs, "rfm", 1, NOW, &ts)
        .await
        .expect("materialize");
    // Customer 2's last order is older than the ttl: not served.
    assert_eq!((m.rows_read, m.rows_written, m.rows_expired), (8, 2, 1));
    let snap = Snapshot::from_bytes(m.to_vec()).expect("snapshot");
    let row = snap.get(&key(1)).expect("customer 1");
    let i = |name: &str| snap.schema().feature_index(name).expect("feature");
    let v = |name: &str| row.value(i(name));
    // All history up to now: 5 orders (the future one is not seen).
    assert_eq!(v("n_all"), Value::Int64(5));
    // 7d window is (now-7d, now]: now-3d, now-1d, now.
    assert_eq!(v("n_7d"), Value::Int64(3));
    assert_eq!(v("n_amount_7d"), Value::Int64(2));
    assert_eq!(v("spend_7d"), Value::Float64(90.0));
    assert_eq!(v("qty_7d"), Value::Int64(12));
    assert_eq!(v("avg_7d"), Value::Float64(45.0));
    assert_eq!(v("min_7d"), Value::Float64(30.0));
    assert_eq!(v("max_7d"), Value::Float64(60.0));
    // Sample standard deviation of 30 and 60.
    let Value::Float64(sd) = v("sd_7d") else {
        panic!("sd_7d is {:?}", v("sd_7d"))
    };
    assert!((sd - 21.213203435596427).abs() < 1e-9, "{sd}");
    assert_eq!(v("channels"), Value::Int64(3));
    assert_eq!(v("last_channel"), Value::String("web"));
    assert_eq!(v("recency_days"), Value::Int64(0));
    assert_eq!(v("recency_hours"), Value::Float64(0.0));
    assert_eq!(v("age_days"), Value::Int64(10));
    assert_eq!(v("busy"), Value::Bool(true));
    // The snapshot row carries the latest event time as of now.
    assert_eq!(row.event_micros(), NOW);

    let row3 = snap.get(&key(3)).expect("customer 3");
    assert_eq!(row3.value(i("n_7d")), Value::Int64(1));
    // One value: no sample deviation. An empty channel is a null in CSV: nothing to count.
    assert_eq!(row3.value(i("sd_7d")), Value::Null);
    assert_eq!(row3.value(i("channels")), Value::Int64(0));
    assert_eq!(row3.value(i("last_channel")), Value::Null);
    assert_eq!(row3.value(i("recency_hours")), Value::Float64(2.0));
    assert_eq!(row3.value(i("busy")), Value::Bool(false));
}

fn entity_rows(rows: &[(Option<i64>, i64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, true),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("label", DataType::Utf8, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(
                (0..rows.len())
                    .map(|i| format!("row{i}"))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

#[tokio::test]
async fn training_set_is_point_in_time_correct_and_keeps_every_row() {
    let dir = tempfile::tempdir().expect("tmp");
    write_lake(dir.path());
    let defs = parse_features_yaml(YAML, Some(dir.path())).expect("defs");
    let (defs, ts) = sql_transforms(&defs).await;
    let rows = [
        (Some(1), NOW),               // 0: as materialized
        (Some(1), NOW - 5 * DAY),     // 1: earlier: orders at -10d, -7d only
        (Some(1), NOW - 5 * DAY - 1), // 2: a microsecond before the move
        (Some(99), NOW),              // 3: unknown customer
        (Some(2), NOW),               // 4: last order beyond the ttl
        (None, NOW),                  // 5: null key
        (Some(1), NOW),               // 6: a duplicate of row 0
        (Some(1), NOW - 11 * DAY),    // 7: before the first order
        (Some(2), NOW - 39 * DAY),    // 8: within the ttl of its order then
    ];
    let entities = entity_rows(&rows);
    let mut transforms = HashMap::new();
    transforms.insert("rfm".to_string(), ts);
    let features = [
        "rfm:n_all",
        "rfm:n_7d",
        "rfm:spend_7d",
        "rfm:last_channel",
        "rfm:busy",
        "profile:country",
    ]
    .iter()
    .map(|f| FeatureRef::parse(f).expect("ref"))
    .collect();
    let set = fstore_offline::historical(
        &defs,
        &entities,
        &fstore_offline::HistoricalRequest {
            features,
            full_feature_names: true,
            timestamp_column: "event_timestamp".into(),
        },
        &transforms,
    )
    .await
    .expect("historical");
    let b = &set.batch;
    assert_eq!(b.num_rows(), rows.len());
    let names: Vec<&str> = b
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        [
            "customer_id",
            "event_timestamp",
            "label",
            "rfm__n_all",
            "rfm__n_7d",
            "rfm__spend_7d",
            "rfm__last_channel",
            "rfm__busy",
            "profile__country"
        ]
    );
    // The input columns come back untouched, in order.
    let labels = b.column(2).as_string::<i32>();
    assert_eq!(labels.value(6), "row6");
    let n_all = b.column(3).as_primitive::<Int64Type>();
    let n_7d = b.column(4).as_primitive::<Int64Type>();
    let spend = b.column(5).as_primitive::<Float64Type>();
    let last = b.column(6).as_string::<i32>();
    let busy = b.column(7).as_boolean();
    let country = b.column(8).as_string::<i32>();
    let opt_i = |a: &arrow::array::Int64Array, i: usize| a.is_valid(i).then(|| a.value(i));
    assert_eq!(
        (0..rows.len()).map(|i| opt_i(n_all, i)).collect::<Vec<_>>(),
        [
            Some(5),
            Some(2),
            Some(2),
            None,
            None,
            None,
            Some(5),
            None,
            Some(1)
        ]
    );
    assert_eq!(opt_i(n_7d, 0), Some(3));
    // As of -5d the 7d window is (-12d, -5d]: orders at -10d and -7d.
    assert_eq!(opt_i(n_7d, 1), Some(2));
    assert_eq!(spend.value(1), 30.0);
    assert_eq!(last.value(1), "app");
    assert!(busy.value(1));
    assert!(!busy.is_valid(3));
    // The correction (same event time, later created) wins; before the move, DE.
    assert_eq!(country.value(0), "NL");
    assert_eq!(country.value(1), "NL");
    assert_eq!(country.value(2), "DE");
    assert!(country.is_null(3));
    // The profile view has no ttl: customer 2's old record still applies.
    assert_eq!(country.value(4), "ES");
    assert!(country.is_null(5));

    // A training set as of now equals the snapshot.
    let m = fstore_offline::materialize(&defs, "rfm", 1, NOW, &transforms["rfm"])
        .await
        .expect("materialize");
    let snap = Snapshot::from_bytes(m.to_vec()).expect("snapshot");
    let row = snap.get(&key(1)).expect("row");
    let i = snap.schema().feature_index("spend_7d").expect("f");
    assert_eq!(row.value(i), Value::Float64(spend.value(0)));
}

#[tokio::test]
async fn wrong_requests_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    write_lake(dir.path());
    let defs = parse_features_yaml(YAML, Some(dir.path())).expect("defs");
    let entities = entity_rows(&[(Some(1), NOW)]);
    let ask = |features: &[&str], ts: &str| fstore_offline::HistoricalRequest {
        features: features
            .iter()
            .map(|f| FeatureRef::parse(f).expect("ref"))
            .collect(),
        full_feature_names: false,
        timestamp_column: ts.into(),
    };
    let none = HashMap::new();
    let cases = [
        (ask(&["profile:country"], "ts"), "no `ts` column"),
        (ask(&["nope:country"], "event_timestamp"), "`nope`"),
        (
            ask(&["profile:nope"], "event_timestamp"),
            "no feature `nope`",
        ),
        // Two output columns named `label`? No: one named `country` is fine; but asking for a
        // feature twice collides.
        (
            ask(&["profile:country", "profile:country"], "event_timestamp"),
            "full feature names",
        ),
        // Definitions that were never applied have no steps for their SQL feature.
        (ask(&["rfm:n_all"], "event_timestamp"), "re-apply"),
    ];
    for (req, want) in cases {
        let e = fstore_offline::historical(&defs, &entities, &req, &none)
            .await
            .expect_err(want);
        assert!(e.to_string().contains(want), "{e} should mention {want}");
    }
    // An entity column of the wrong type.
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("event_timestamp", DataType::Int64, false),
    ]));
    let bad = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["x"])),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .expect("batch");
    let e = fstore_offline::historical(
        &defs,
        &bad,
        &ask(&["profile:country"], "event_timestamp"),
        &none,
    )
    .await
    .expect_err("types");
    assert!(e.to_string().contains("event_timestamp"), "{e}");
}
