//! Delta snapshots at the edge: a base with deltas layered over it answers every lookup exactly
//! as the full snapshot compacted from them does, and the loader downloads, verifies and swaps
//! in deltas the way it does full snapshots (a bad one keeps the old catalog serving).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use fstore_edge::lookup::{Format, execute};
use fstore_edge::{Catalog, EdgeConfig, EdgeError, EdgeState, LoadedView, Loader};
use fstore_snapshot::{
    FeatureRef, FeatureType, Field, KeyBuf, KeyType, Snapshot, SnapshotError, SnapshotSchema,
    SnapshotWriter, Value, compact,
};
use fstore_storage::{MANIFEST_FORMAT, Manifest, ManifestDelta, ManifestView, Store, snapshot_key};
use serde_json::{Value as Json, json};

const NOW: i64 = 1_800_000_000_000_000;
const HOUR: i64 = 3_600_000_000;
const VIEW: &str = "customers";

/// One stored row: id, event time, orders (None = null), segment.
type RowSpec = (i64, i64, Option<i64>, &'static str);

fn schema(version: u64, base_version: Option<u64>) -> SnapshotSchema {
    SnapshotSchema {
        view: VIEW.into(),
        version,
        keys: vec![Field {
            name: "customer_id".into(),
            ty: KeyType::Int64,
        }],
        features: vec![
            Field {
                name: "orders".into(),
                ty: FeatureType::Int64,
            },
            Field {
                name: "segment".into(),
                ty: FeatureType::String,
            },
        ],
        // A day: rows older than that are withheld (OUTSIDE_MAX_AGE) when served.
        ttl_seconds: 86_400,
        created_at_micros: NOW - 10 * HOUR + version as i64,
        base_version,
        shard: None,
    }
}

fn bytes(version: u64, base_version: Option<u64>, rows: &[RowSpec]) -> Vec<u8> {
    let mut w = SnapshotWriter::new(schema(version, base_version)).expect("schema");
    let mut kb = KeyBuf::new();
    for &(id, event, orders, segment) in rows {
        kb.clear();
        kb.push_i64(id);
        let values = [
            orders.map_or(Value::Null, Value::Int64),
            Value::String(segment),
        ];
        // Created times on even ids only, so both kinds are copied and compared.
        let created = (id % 2 == 0).then_some(event + 1);
        w.push(kb.as_bytes(), event, created, &values).expect("row");
    }
    w.finish_to_vec().expect("bytes")
}

fn snap(bytes: Vec<u8>) -> Snapshot {
    Snapshot::from_bytes(bytes).expect("valid")
}

/// Base 10: customers 1–6 (5 too old to serve). Delta 11: 2 changes, 3 changes (orders null),
/// 7 is new. Delta 12: 3 changes again, 6 changes to a row too old to serve, 8 is new.
/// Customer 9 is in no layer.
fn base_rows() -> Vec<RowSpec> {
    vec![
        (1, NOW - HOUR, Some(1), "base"),
        (2, NOW - HOUR, Some(2), "base"),
        (3, NOW - HOUR, Some(3), "base"),
        (4, NOW - HOUR, None, "base"),
        (5, NOW - 48 * HOUR, Some(5), "base"),
        (6, NOW - HOUR, Some(6), "base"),
    ]
}

fn delta11_rows() -> Vec<RowSpec> {
    vec![
        (2, NOW - 30 * 60_000_000, Some(20), "delta 11"),
        (3, NOW - 30 * 60_000_000, None, "delta 11"),
        (7, NOW - 30 * 60_000_000, Some(70), "delta 11"),
    ]
}

fn delta12_rows() -> Vec<RowSpec> {
    vec![
        (3, NOW - 10 * 60_000_000, Some(300), "delta 12"),
        (6, NOW - 30 * HOUR, Some(600), "delta 12"),
        (8, NOW - 10 * 60_000_000, Some(800), "delta 12"),
    ]
}

fn catalog(view: LoadedView) -> Catalog {
    let services = BTreeMap::from([(
        "svc".to_string(),
        vec![
            FeatureRef::parse("customers:orders").expect("ref"),
            FeatureRef::parse("customers:segment").expect("ref"),
        ],
    )]);
    let c = Catalog::new(1, vec![Arc::new(view)], &services);
    assert!(c.broken_services.is_empty(), "{:?}", c.broken_services);
    c
}

fn run(c: &Catalog, body: &str, format: Format) -> Json {
    let mut out = Vec::new();
    execute(c, body.as_bytes(), format, 100, NOW, &mut out).expect("lookup");
    serde_json::from_slice(&out).expect("valid JSON")
}

const ALL: &str = r#"{"feature_service":"svc","entities":{"customer_id":[1,2,3,4,5,6,7,8,9]}}"#;

#[test]
fn a_base_with_deltas_answers_like_its_compacted_snapshot() {
    let layered = LoadedView::new(snap(bytes(10, None, &base_rows())), "b".into(), None)
        .with_deltas(
            vec![
                snap(bytes(12, Some(10), &delta12_rows())),
                snap(bytes(11, Some(10), &delta11_rows())),
            ],
            Vec::new(),
        )
        .expect("deltas layer");
    assert_eq!(
        layered.version, 12,
        "the newest delta is the version served"
    );
    assert_eq!(
        layered.entities, 8,
        "six in the base, 7 and 8 only in deltas"
    );

    let base = snap(bytes(10, None, &base_rows()));
    let (d11, d12) = (
        snap(bytes(11, Some(10), &delta11_rows())),
        snap(bytes(12, Some(10), &delta12_rows())),
    );
    let [mut file, rows] = compact(&base, &[&d11, &d12], 13, NOW).expect("compact");
    file.extend_from_slice(&rows);
    let full = snap(file);
    assert_eq!(full.len(), layered.entities);
    let full = LoadedView::new(full, "c".into(), None);

    let (layered, full) = (catalog(layered), catalog(full));
    let (a, b) = (
        run(&layered, ALL, Format::Fstore),
        run(&full, ALL, Format::Fstore),
    );
    assert_eq!(a["views"][VIEW], 12);
    assert_eq!(b["views"][VIEW], 13);
    // Values, statuses and event timestamps, entity by entity.
    assert_eq!(a["results"], b["results"]);
    let r = &a["results"];
    let expect = [
        (1, json!([1, "base"]), json!(["PRESENT", "PRESENT"])),
        (2, json!([20, "delta 11"]), json!(["PRESENT", "PRESENT"])),
        (3, json!([300, "delta 12"]), json!(["PRESENT", "PRESENT"])),
        (4, json!([null, "base"]), json!(["NULL_VALUE", "PRESENT"])),
        (
            5,
            json!([null, null]),
            json!(["OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE"]),
        ),
        (
            6,
            json!([null, null]),
            json!(["OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE"]),
        ),
        (7, json!([70, "delta 11"]), json!(["PRESENT", "PRESENT"])),
        (8, json!([800, "delta 12"]), json!(["PRESENT", "PRESENT"])),
        (9, json!([null, null]), json!(["NOT_FOUND", "NOT_FOUND"])),
    ];
    for (i, (id, values, statuses)) in expect.iter().enumerate() {
        assert_eq!(r[i]["entity"]["customer_id"], *id);
        assert_eq!(r[i]["values"], *values, "customer {id}");
        assert_eq!(r[i]["statuses"], *statuses, "customer {id}");
    }
    // Customer 3's event time is delta 12's, not the base's or delta 11's.
    assert_eq!(
        r[2]["event_timestamps"][0],
        run(&full, ALL, Format::Fstore)["results"][2]["event_timestamps"][0]
    );
    assert_ne!(r[2]["event_timestamps"][0], r[0]["event_timestamps"][0]);

    // Feast's format, where the answer carries no versions: identical as a whole.
    assert_eq!(
        run(&layered, ALL, Format::Feast),
        run(&full, ALL, Format::Feast)
    );

    let m = fstore_edge::Metrics::default().render(Some(&layered), "test");
    for line in [
        "fstore_edge_snapshot_version{view=\"customers\"} 12",
        "fstore_edge_snapshot_deltas{view=\"customers\"} 2",
        "fstore_edge_entities_loaded{view=\"customers\"} 8",
    ] {
        assert!(m.contains(line), "{line} missing from\n{m}");
    }
    let m = fstore_edge::Metrics::default().render(Some(&full), "test");
    assert!(
        m.contains("fstore_edge_snapshot_deltas{view=\"customers\"} 0"),
        "{m}"
    );
}

#[test]
fn deltas_that_do_not_layer_are_refused() {
    let base = || LoadedView::new(snap(bytes(10, None, &base_rows())), "b".into(), None);
    let d11 = || snap(bytes(11, Some(10), &delta11_rows()));
    let d12 = || snap(bytes(12, Some(10), &delta12_rows()));
    // Oldest first (the manifest's order) is not the order a view probes in.
    let e = base()
        .with_deltas(vec![d11(), d12()], Vec::new())
        .expect_err("wrong order");
    assert!(e.to_string().contains("newest first"), "{e}");
    let other_base = snap(bytes(11, Some(9), &delta11_rows()));
    let e = base()
        .with_deltas(vec![other_base], Vec::new())
        .expect_err("wrong base");
    assert!(matches!(e, SnapshotError::Layer(_)), "{e:?}");
    let full = snap(bytes(11, None, &delta11_rows()));
    let e = base()
        .with_deltas(vec![full], Vec::new())
        .expect_err("not a delta");
    assert!(e.to_string().contains("not a delta"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The loader

/// An object store in a temporary directory, an edge loading from it, and what it published.
struct Edge {
    dir: tempfile::TempDir,
    store: Store,
    loader: Loader,
    state: Arc<EdgeState>,
}

impl Edge {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let objects = dir.path().join("objects");
        let store = Store::from_url(&objects.to_string_lossy()).expect("store");
        let cfg = EdgeConfig::new(objects.to_string_lossy());
        let state = Arc::new(EdgeState::new(&cfg));
        let loader = Loader::new(store.clone(), dir.path().join("cache"), state.clone());
        Self {
            dir,
            store,
            loader,
            state,
        }
    }

    /// Stores a snapshot of `VIEW`; returns its key, size, rows and checksum.
    async fn put(&self, version: u64, bytes: Vec<u8>) -> (String, u64, u64, String) {
        let s = snap(bytes.clone());
        let key = snapshot_key(VIEW, version);
        let size = bytes.len() as u64;
        self.store.put_new(&key, bytes.into()).await.expect("put");
        (key, size, s.len(), format!("{:016x}", s.checksum()))
    }

    async fn publish(&self, seq: u64, view: ManifestView) {
        let m = Manifest {
            format: MANIFEST_FORMAT,
            seq,
            created_at: "2027-01-15T08:00:00Z".into(),
            views: BTreeMap::from([(VIEW.to_string(), view)]),
            services: BTreeMap::new(),
            on_demand: BTreeMap::new(),
            transforms: BTreeMap::new(),
        };
        self.store.publish(&m).await.expect("publish");
    }

    /// The served catalog's manifest, version and customers 2, 3 and 7's orders.
    fn serving(&self) -> (u64, Json, Json) {
        let c = self.state.catalog.load_full().expect("a catalog");
        let v = run(
            &c,
            r#"{"features":["customers:orders"],"entities":{"customer_id":[2,3,7]}}"#,
            Format::Fstore,
        );
        let orders = Json::Array(
            (0..3)
                .map(|i| v["results"][i]["values"][0].clone())
                .collect(),
        );
        (c.seq, v["views"][VIEW].clone(), orders)
    }

    fn cache(&self) -> std::collections::BTreeSet<String> {
        cached(&self.dir.path().join("cache"))
    }
}

fn cached(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn cache_name(version: u64) -> String {
    snapshot_key(VIEW, version).replace('/', "_")
}

fn delta(
    (key, size_bytes, rows, checksum): (String, u64, u64, String),
    version: u64,
) -> ManifestDelta {
    ManifestDelta {
        version,
        key,
        size_bytes,
        rows,
        checksum,
        shards: Vec::new(),
    }
}

#[tokio::test]
async fn the_loader_serves_deltas_and_refuses_a_bad_one() {
    let mut edge = Edge::new();
    let (key, size_bytes, rows, checksum) = edge.put(10, bytes(10, None, &base_rows())).await;
    let base = ManifestView {
        version: 10,
        key: key.clone(),
        size_bytes,
        rows,
        checksum,
        deltas: Vec::new(),
        shards: Vec::new(),
    };
    edge.publish(1, base.clone()).await;
    assert!(edge.loader.poll_once().await.expect("poll"));
    assert_eq!(edge.serving(), (1, json!(10), json!([2, 3, null])));

    // A delta on top: only the delta is fetched. The base object is gone from the store, so
    // the catalog can only be built from the cached base file.
    let d11 = edge.put(11, bytes(11, Some(10), &delta11_rows())).await;
    std::fs::remove_file(edge.dir.path().join("objects").join(&key)).expect("delete base");
    let mut with_d11 = base.clone();
    with_d11.deltas.push(delta(d11.clone(), 11));
    assert_eq!(with_d11.served_version(), 11);
    edge.publish(2, with_d11.clone()).await;
    assert!(edge.loader.poll_once().await.expect("poll"));
    assert_eq!(edge.serving(), (2, json!(11), json!([20, null, 70])));
    let c = edge.state.catalog.load_full().expect("catalog");
    assert_eq!(c.view(VIEW).expect("view").deltas.len(), 1);

    // A second delta whose manifest entry has the wrong checksum: refused, the old catalog
    // keeps serving, and the file is not left in the cache.
    let d12 = edge.put(12, bytes(12, Some(10), &delta12_rows())).await;
    let mut bad = with_d11.clone();
    let mut wrong = delta(d12.clone(), 12);
    wrong.checksum = "0123456789abcdef".into();
    bad.deltas.push(wrong);
    edge.publish(3, bad).await;
    let e = edge.loader.poll_once().await.expect_err("bad checksum");
    assert!(matches!(e, EdgeError::ChecksumMismatch { .. }), "{e}");
    assert_eq!(edge.serving(), (2, json!(11), json!([20, null, 70])));
    assert!(
        !edge.cache().contains(&cache_name(12)),
        "{:?}",
        edge.cache()
    );

    // A delta made on top of another base: refused the same way, and not kept either.
    let stray = edge.put(14, bytes(14, Some(9), &delta12_rows())).await;
    let mut other = with_d11.clone();
    other.deltas.push(delta(stray, 14));
    edge.publish(4, other).await;
    let e = edge.loader.poll_once().await.expect_err("wrong base");
    assert!(e.to_string().contains("top of version 9"), "{e}");
    assert_eq!(edge.serving(), (2, json!(11), json!([20, null, 70])));
    assert!(
        !edge.cache().contains(&cache_name(14)),
        "{:?}",
        edge.cache()
    );

    // The same delta, recorded right: served, newest first.
    let mut with_d12 = with_d11.clone();
    with_d12.deltas.push(delta(d12, 12));
    edge.publish(5, with_d12).await;
    assert!(edge.loader.poll_once().await.expect("poll"));
    assert_eq!(edge.serving(), (5, json!(12), json!([20, 300, 70])));
    // The cache holds the base and both deltas (the current and the previous catalog's).
    assert_eq!(
        edge.cache(),
        [cache_name(10), cache_name(11), cache_name(12)]
            .into_iter()
            .collect()
    );

    // Compacted into a full snapshot: the chain's files leave the cache once neither the
    // current nor the previous catalog maps them.
    let full = {
        let (b, d11, d12) = (
            snap(bytes(10, None, &base_rows())),
            snap(bytes(11, Some(10), &delta11_rows())),
            snap(bytes(12, Some(10), &delta12_rows())),
        );
        let [mut file, rows] = compact(&b, &[&d11, &d12], 13, NOW).expect("compact");
        file.extend_from_slice(&rows);
        file
    };
    let (key, size_bytes, rows, checksum) = edge.put(13, full).await;
    let compacted = ManifestView {
        version: 13,
        key,
        size_bytes,
        rows,
        checksum,
        deltas: Vec::new(),
        shards: Vec::new(),
    };
    edge.publish(6, compacted.clone()).await;
    assert!(edge.loader.poll_once().await.expect("poll"));
    assert_eq!(edge.serving(), (6, json!(13), json!([20, 300, 70])));
    // Published again unchanged: the previous catalog no longer maps the chain either.
    edge.publish(7, compacted).await;
    assert!(edge.loader.poll_once().await.expect("poll"));
    assert_eq!(edge.cache(), [cache_name(13)].into_iter().collect());
}
