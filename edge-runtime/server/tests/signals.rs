//! Per-view serving signals: what lookups count per view (entities, not found, latency), what a
//! take reports and resets, the cumulative Prometheus counters, and the heartbeat carrying the
//! figures to a (fake) control plane.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fstore_edge::lookup::{Format, Observe, execute_observed};
use fstore_edge::{Catalog, EdgeConfig, Heartbeat, LoadedView, Metrics, ViewSignals};
use fstore_snapshot::{
    FeatureType, Field, KeyBuf, KeyType, Snapshot, SnapshotSchema, SnapshotWriter, Value,
};
use fstore_storage::{MANIFEST_FORMAT, Manifest, ManifestView, Store, snapshot_key};
use serde_json::{Value as Json, json};

const NOW: i64 = 1_800_000_000_000_000;
const HOUR: i64 = 3_600_000_000;

/// View `view` keyed by `customer_id`, with customers 1 and 2 (2 older than the day-long ttl).
fn bytes(view: &str) -> Vec<u8> {
    let schema = SnapshotSchema {
        view: view.into(),
        version: 4,
        keys: vec![Field {
            name: "customer_id".into(),
            ty: KeyType::Int64,
        }],
        features: vec![Field {
            name: "orders".into(),
            ty: FeatureType::Int64,
        }],
        ttl_seconds: 86_400,
        created_at_micros: NOW,
        base_version: None,
        shard: None,
    };
    let mut w = SnapshotWriter::new(schema).expect("schema");
    let mut kb = KeyBuf::new();
    for (id, ev) in [(1, NOW - HOUR), (2, NOW - 48 * HOUR)] {
        kb.clear();
        kb.push_i64(id);
        w.push(kb.as_bytes(), ev, None, &[Value::Int64(id * 10)])
            .expect("row");
    }
    w.finish_to_vec().expect("bytes")
}

fn loaded(slot: &str, view: &str) -> Arc<LoadedView> {
    let snap = Snapshot::from_bytes(bytes(view)).expect("valid");
    Arc::new(LoadedView::named(slot.into(), snap, "x".into(), None))
}

/// `visits`, the pinned slot `visits@v2` of the same view, and `orders`.
fn catalog() -> Catalog {
    Catalog::new(
        1,
        vec![
            loaded("visits", "visits"),
            loaded("visits@v2", "visits"),
            loaded("orders", "orders"),
        ],
        &BTreeMap::new(),
    )
}

fn lookup(c: &Catalog, m: &Metrics, body: &Json) -> Result<Json, fstore_edge::ApiError> {
    let mut out = Vec::new();
    let observe = Observe {
        metrics: m,
        started: Instant::now(),
    };
    execute_observed(
        c,
        body.to_string().as_bytes(),
        Format::Fstore,
        100,
        NOW,
        &mut out,
        observe,
    )?;
    Ok(serde_json::from_slice(&out).expect("valid JSON"))
}

fn figures(s: &BTreeMap<String, ViewSignals>, view: &str) -> (u64, u64, u64) {
    let v = s
        .get(view)
        .unwrap_or_else(|| panic!("`{view}` not in {s:?}"));
    (v.lookups, v.not_found, v.errors)
}

#[test]
fn lookups_count_per_view_and_a_take_resets_the_interval() {
    let c = catalog();
    let m = Metrics::default();
    // 5 entities, 3 without a row. Customer 2's row is older than the ttl: served as
    // OUTSIDE_MAX_AGE, and counted as found, as the edge's entity totals count it.
    let v = lookup(
        &c,
        &m,
        &json!({"features": ["visits:orders"], "entities": {"customer_id": [1, 2, 3, 4, 5]}}),
    )
    .expect("lookup");
    assert_eq!(v["results"][1]["statuses"][0], "OUTSIDE_MAX_AGE");
    // The pinned slot counts under its view, each slot probed once per entity.
    lookup(
        &c,
        &m,
        &json!({"features": ["visits@v2:orders", "visits:orders"],
                "entities": {"customer_id": [1, 9]}}),
    )
    .expect("lookup");
    // A request answered with an error counts nowhere.
    lookup(
        &c,
        &m,
        &json!({"features": ["visits:orders"], "entities": {"customer_id": ["a"]}}),
    )
    .expect_err("a string key");
    // No entity, nothing read.
    lookup(
        &c,
        &m,
        &json!({"features": ["orders:orders"], "entities": {"customer_id": []}}),
    )
    .expect("lookup");

    let (serving, window) = m.take_signals();
    assert_eq!(serving.len(), 1, "only views read: {serving:?}");
    assert_eq!(figures(&serving, "visits"), (5 + 4, 3 + 2, 0));
    let s = &serving["visits"];
    let (p50, p99) = (s.p50_ms.expect("p50"), s.p99_ms.expect("p99"));
    assert!(p50 > 0.0 && p50 <= p99 && p99 < 10_000.0, "{s:?}");
    assert!(window < Duration::from_secs(60));

    // Taken: the next interval starts empty.
    let (again, _) = m.take_signals();
    assert!(again.is_empty(), "{again:?}");
    lookup(
        &c,
        &m,
        &json!({"features": ["orders:orders"], "entities": {"customer_id": [7]}}),
    )
    .expect("lookup");
    let (next, _) = m.take_signals();
    assert_eq!(next.keys().collect::<Vec<_>>(), ["orders"]);
    assert_eq!(figures(&next, "orders"), (1, 1, 0));

    // Prometheus counts from the start, takes or not.
    let text = m.render(Some(&c), "test");
    for line in [
        "# TYPE fstore_edge_view_lookups_total counter",
        "fstore_edge_view_lookups_total{view=\"visits\"} 9",
        "fstore_edge_view_not_found_total{view=\"visits\"} 5",
        "fstore_edge_view_errors_total{view=\"visits\"} 0",
        "fstore_edge_view_lookups_total{view=\"orders\"} 1",
        "fstore_edge_view_not_found_total{view=\"orders\"} 1",
    ] {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
    assert!(
        !text.contains("fstore_edge_view_lookups_total{view=\"visits@v2\"}"),
        "{text}"
    );
}

#[test]
fn heartbeat_json_uses_the_agreed_field_names() {
    let mut hb: Heartbeat = serde_json::from_value(json!({
        "id": "e", "region": "r", "address": "http://e", "manifest_seq": 3,
        "views": {"visits": 4}, "ready": true, "interval_ms": 1000,
        "started_at": "2027-01-15T08:00:00Z"
    }))
    .expect("a heartbeat without serving figures still reads");
    assert!(hb.serving.is_empty());
    assert_eq!(hb.serving_window_ms, 0);
    let v = serde_json::to_value(&hb).expect("json");
    assert!(v.get("serving").is_none(), "{v}");
    assert_eq!(v["serving_window_ms"], 0);

    hb.serving.insert(
        "visits".into(),
        ViewSignals {
            lookups: 100,
            not_found: 30,
            errors: 2,
            p50_ms: Some(1.0),
            p99_ms: None,
        },
    );
    hb.serving_window_ms = 1000;
    let v = serde_json::to_value(&hb).expect("json");
    assert_eq!(
        v["serving"],
        json!({"visits": {"lookups": 100, "not_found": 30, "errors": 2,
                          "p50_ms": 1.0, "p99_ms": null}})
    );
    assert_eq!(v["serving_window_ms"], 1000);
    let back: Heartbeat = serde_json::from_value(v).expect("round trip");
    assert_eq!(back, hb);
}

/// A control plane that records every heartbeat body it is sent.
async fn fake_control_plane() -> (String, Arc<Mutex<Vec<Json>>>) {
    let got: Arc<Mutex<Vec<Json>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/edges/heartbeat",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let v: Json = serde_json::from_slice(&body).expect("heartbeat JSON");
                sink.lock().expect("lock").push(v);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, got)
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_carry_the_serving_figures_of_their_interval() {
    let dir = tempfile::tempdir().expect("tmp");
    let objects = dir.path().join("objects");
    let store = Store::from_url(&objects.to_string_lossy()).expect("store");
    let b = bytes("visits");
    let snap = Snapshot::from_bytes(b.clone()).expect("valid");
    let key = snapshot_key("visits", 4);
    let view = ManifestView {
        version: 4,
        key: key.clone(),
        size_bytes: b.len() as u64,
        rows: snap.len(),
        checksum: format!("{:016x}", snap.checksum()),
        deltas: Vec::new(),
        shards: Vec::new(),
    };
    store.put_new(&key, b.into()).await.expect("put");
    store
        .publish(&Manifest {
            format: MANIFEST_FORMAT,
            seq: 1,
            created_at: "2027-01-15T08:00:00Z".into(),
            views: BTreeMap::from([("visits".to_string(), view)]),
            services: BTreeMap::new(),
            on_demand: BTreeMap::new(),
            transforms: BTreeMap::new(),
        })
        .await
        .expect("publish");

    let (cp, received) = fake_control_plane().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut cfg = EdgeConfig::new(objects.to_string_lossy());
    cfg.cache_dir = dir.path().join("edge-cache");
    // Heartbeats go at most once a second, whatever the poll interval.
    cfg.poll_interval = Duration::from_millis(20);
    cfg.control_plane_url = Some(cp);
    cfg.edge_id = Some("edge-1".into());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(fstore_edge::serve(cfg, listener, async move {
        let mut rx = rx;
        let _ = rx.wait_for(|v| *v).await;
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/readyz"))
        .await
        .map_or(true, |r| r.status() != 200)
    {
        assert!(Instant::now() < deadline, "edge not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 10 requests of 3 entities, one of them unknown: 30 lookups, 10 not found.
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let r = client
            .post(format!("{base}/v1/features"))
            .body(
                json!({"features": ["visits:orders"], "entities": {"customer_id": [1, 2, 3]}})
                    .to_string(),
            )
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }

    // The requests may straddle two reports: add up what arrives until all are counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut lookups, mut not_found, mut reports) = (0, 0, 0);
    let mut seen = 0;
    while lookups < 30 {
        assert!(
            Instant::now() < deadline,
            "{lookups} lookups reported: {:?}",
            received.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got: Vec<Json> = received.lock().expect("lock")[seen..].to_vec();
        seen += got.len();
        for v in got {
            // What the edge sends is what it declares, field for field.
            let hb: Heartbeat = serde_json::from_value(v.clone()).expect("a heartbeat");
            assert_eq!(hb.id, "edge-1");
            if hb.serving.is_empty() {
                assert!(v.get("serving").is_none(), "{v}");
                continue;
            }
            reports += 1;
            assert!(hb.serving_window_ms > 0, "{v}");
            assert_eq!(hb.serving.keys().collect::<Vec<_>>(), ["visits"], "{v}");
            let s = &hb.serving["visits"];
            let (p50, p99) = (s.p50_ms.expect("p50"), s.p99_ms.expect("p99"));
            assert!(p50 <= p99, "{v}");
            assert_eq!(s.errors, 0);
            lookups += s.lookups;
            not_found += s.not_found;
        }
    }
    assert_eq!((lookups, not_found), (30, 10));
    assert!((1..=2).contains(&reports), "{reports} reports");

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    for line in [
        "fstore_edge_view_lookups_total{view=\"visits\"} 30",
        "fstore_edge_view_not_found_total{view=\"visits\"} 10",
        "fstore_edge_view_errors_total{view=\"visits\"} 0",
    ] {
        assert!(metrics.contains(line), "`{line}` missing from:\n{metrics}");
    }
    let _ = stop.send(true);
    server.await.expect("server task").expect("server ran");
}
