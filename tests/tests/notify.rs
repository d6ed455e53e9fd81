//! Freshness without waiting for the poll: an edge that polls once a minute serves a new
//! publish within seconds, because the publisher (here the CLI's `fstore materialize`)
//! notifies every edge that reported in; an edge that does not answer the notification costs
//! the publish nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use fstore_tests::{control_plane_and_edge, fstore, get_json};
use serde_json::json;

const YAML: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: stats_csv
    path: data/stats.csv
    format: csv
    timestamp_field: ts
feature_views:
  - name: stats
    entities: [customer]
    source: stats_csv
    ttl: 36500d
    features:
      - {name: spend, type: float64}
"#;

fn write_data(dir: &Path, spend: f64) {
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(
        dir.join("data/stats.csv"),
        format!("customer_id,ts,spend\n1,2026-01-01T00:00:00Z,{spend}\n"),
    )
    .expect("csv");
}

async fn spend(edge: &str) -> f64 {
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{edge}/v1/features"))
        .json(&json!({"features": ["stats:spend"], "entities": {"customer_id": [1]}}))
        .send()
        .await
        .expect("lookup")
        .json()
        .await
        .expect("json");
    v["results"][0]["values"][0].as_f64().unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_reaches_a_slow_polling_edge_in_seconds() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let vars = [
        (
            "FSTORE_DATABASE_URL",
            dir.join("registry.db").to_string_lossy().into_owned(),
        ),
        (
            "FSTORE_STORE_URL",
            dir.join("objects").to_string_lossy().into_owned(),
        ),
        ("FSTORE_LOG", "warn".to_string()),
    ];
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    std::fs::write(dir.join("features.yaml"), YAML).expect("yaml");
    write_data(dir, 1.0);
    for args in [&["apply", "-f", "features.yaml"][..], &["materialize"]] {
        let (ok, _, err) = fstore(args, &env, dir);
        assert!(ok, "{args:?}: {err}");
    }
    let (cp, edge) = control_plane_and_edge(&env, dir, &[]).await;
    assert_eq!(spend(&edge.url).await, 1.0);
    // It has reported in (its first heartbeat goes out at start).
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_json(&format!("{}/v1/edges", cp.url)).await["items"][0]["status"] != "up" {
        assert!(Instant::now() < deadline, "the edge never reported in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An edge that reported once and is gone: notifying it must not hold the publish up.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/edges/heartbeat", cp.url))
        .json(
            &json!({"id": "gone", "region": "x", "address": "http://127.0.0.1:9",
            "manifest_seq": 1, "views": {"stats": 1}, "ready": true, "interval_ms": 60000,
            "started_at": "2026-11-28T00:00:00Z"}),
        )
        .send()
        .await
        .expect("heartbeat");
    assert_eq!(r.status().as_u16(), 204);

    write_data(dir, 2.0);
    let (ok, _, err) = fstore(&["materialize"], &env, dir);
    assert!(ok, "{err}");
    // Far inside the 60 s poll interval, so only the notification can have brought it.
    let deadline = Instant::now() + Duration::from_secs(15);
    while spend(&edge.url).await != 2.0 {
        assert!(
            Instant::now() < deadline,
            "the edge still serves the old value: no notification reached it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The edge's own endpoint, called directly, is accepted and harmless.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/notify", edge.url))
        .send()
        .await
        .expect("notify");
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(spend(&edge.url).await, 2.0);
}
