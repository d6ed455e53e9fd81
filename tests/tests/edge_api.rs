//! The edge's HTTP API: the Feast wire format field by field, every kind of bad input, and
//! snapshots swapped under load without one failed request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fstore_tests::{Stack, expect_api_error, get_json};

async fn post(url: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .body(body)
        .send()
        .await
        .expect("post")
}

#[tokio::test(flavor = "multi_thread")]
async fn feast_wire_format_field_by_field() {
    let s = Stack::start(50, 100, 1 << 16).await;
    // No content type, as Feast clients before 0.61 send it; unknown keys ignored.
    let body = r#"{"features":["customer_rfm:recency_days","customer_rfm:last_order_at","customer_profile:style_vector","customer_rfm:last_channel"],
                   "entities":{"customer_id":[1000,7,1000]},"include_feature_view_version_metadata":false}"#;
    let r = post(&format!("{}/get-online-features", s.edge_url), body).await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    let obj = v.as_object().expect("object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["metadata", "results"]);
    assert_eq!(
        v["metadata"]["feature_names"],
        serde_json::json!([
            "customer_id",
            "recency_days",
            "last_order_at",
            "style_vector",
            "last_channel"
        ])
    );
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 5);
    for col in results {
        let c = col.as_object().expect("column");
        assert_eq!(
            c.keys().collect::<Vec<_>>(),
            vec!["event_timestamps", "statuses", "values"]
        );
        for k in ["values", "statuses", "event_timestamps"] {
            assert_eq!(
                col[k].as_array().map(Vec::len),
                Some(3),
                "{k} has one entry per entity row"
            );
        }
    }
    // Join keys first, echoed, PRESENT, epoch timestamps.
    assert_eq!(results[0]["values"], serde_json::json!([1000, 7, 1000]));
    assert_eq!(
        results[0]["statuses"],
        serde_json::json!(["PRESENT", "PRESENT", "PRESENT"])
    );
    assert_eq!(results[0]["event_timestamps"][1], "1970-01-01T00:00:00Z");
    // A missing entity: null, NOT_FOUND, epoch.
    for col in &results[1..] {
        assert_eq!(col["values"][1], serde_json::Value::Null);
        assert_eq!(col["statuses"][1], "NOT_FOUND");
        assert_eq!(col["event_timestamps"][1], "1970-01-01T00:00:00Z");
    }
    // Found rows: native JSON values, RFC 3339 event times with Z, duplicates kept in order.
    assert_eq!(results[1]["values"][0], results[1]["values"][2]);
    let st = results[1]["statuses"][0].as_str().expect("status");
    assert!(["PRESENT", "NULL_VALUE"].contains(&st), "{st}");
    let ts = results[1]["event_timestamps"][0].as_str().expect("ts");
    // Whole seconds, or with a fraction (aggregates carry the last order's exact time).
    assert!(
        ts.ends_with('Z') && (ts.len() == 20 || ts.as_bytes()[19] == b'.'),
        "{ts}"
    );
    if results[2]["statuses"][0] == "PRESENT" {
        assert!(
            results[2]["values"][0].is_i64(),
            "timestamps are epoch seconds in Feast's format"
        );
    }
    assert!(results[3]["values"][0].is_array() || results[3]["values"][0].is_null());
    assert!(results[4]["values"][0].is_string() || results[4]["values"][0].is_null());

    // full_feature_names and feature_service.
    let body = r#"{"feature_service":"segmentation_v1","entities":{"customer_id":[1001]},"full_feature_names":true}"#;
    let v: serde_json::Value = post(&format!("{}/get-online-features", s.edge_url), body)
        .await
        .json()
        .await
        .expect("json");
    let names = v["metadata"]["feature_names"].as_array().expect("names");
    // The join key and the service's 19 features.
    assert_eq!(names.len(), 20);
    assert_eq!(names[1], "customer_rfm__recency_days");
    assert_eq!(names[19], "customer_profile__signup_channel");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_4xx_with_a_json_error() {
    let s = Stack::start(20, 10, 4096).await;
    let f = format!("{}/v1/features", s.edge_url);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", "{not json".into(), 400, "invalid_json"),
        (
            "unknown view",
            r#"{"features":["nope:x"],"entities":{"customer_id":[1]}}"#.into(),
            404,
            "unknown_feature_view",
        ),
        (
            "unknown feature",
            r#"{"features":["customer_rfm:nope"],"entities":{"customer_id":[1]}}"#.into(),
            404,
            "unknown_feature",
        ),
        (
            "unknown service",
            r#"{"feature_service":"nope","entities":{"customer_id":[1]}}"#.into(),
            404,
            "unknown_feature_service",
        ),
        (
            "bad reference",
            r#"{"features":["recency_days"],"entities":{"customer_id":[1]}}"#.into(),
            400,
            "bad_feature_reference",
        ),
        (
            "no features",
            r#"{"entities":{"customer_id":[1]}}"#.into(),
            400,
            "no_features",
        ),
        (
            "wrong key type",
            r#"{"feature_service":"segmentation_v1","entities":{"customer_id":["abc"]}}"#.into(),
            400,
            "wrong_key_type",
        ),
        (
            "float key",
            r#"{"feature_service":"segmentation_v1","entities":{"customer_id":[1.5]}}"#.into(),
            400,
            "wrong_key_type",
        ),
        (
            "missing join key",
            r#"{"feature_service":"segmentation_v1","entities":{"user_id":[1]}}"#.into(),
            400,
            "missing_join_key",
        ),
        (
            "ragged",
            r#"{"feature_service":"segmentation_v1","entities":{"customer_id":[1,2],"x":[1]}}"#
                .into(),
            400,
            "ragged_entities",
        ),
        (
            "too many entities",
            format!(
                r#"{{"feature_service":"segmentation_v1","entities":{{"customer_id":[{}]}}}}"#,
                (0..11).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            ),
            400,
            "too_many_entities",
        ),
        (
            "entities not a map",
            r#"{"feature_service":"segmentation_v1","entities":[1,2]}"#.into(),
            400,
            "invalid_json",
        ),
        (
            "body over the limit",
            format!(r#"{{"pad":"{}"}}"#, "x".repeat(8192)),
            413,
            "payload_too_large",
        ),
    ];
    for (what, body, status, code) in cases {
        for url in [f.clone(), format!("{}/get-online-features", s.edge_url)] {
            let got = expect_api_error(post(&url, body.clone()).await, status).await;
            assert_eq!(got, code, "{what} at {url}");
        }
    }
    let c = reqwest::Client::new();
    assert_eq!(
        expect_api_error(c.get(&f).send().await.expect("get"), 405).await,
        "method_not_allowed"
    );
    assert_eq!(
        expect_api_error(
            c.get(format!("{}/nope", s.edge_url))
                .send()
                .await
                .expect("get"),
            404
        )
        .await,
        "no_route"
    );
    // The edge is still healthy after all that.
    assert_eq!(
        c.get(format!("{}/healthz", s.edge_url))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    let metrics = c
        .get(format!("{}/metrics", s.edge_url))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("fstore_edge_requests_total{endpoint=\"/v1/features\",status=\"4xx\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("fstore_edge_snapshot_version{view=\"customer_rfm\"} 1"));
    // Every customer has a CRM record; only those who ordered within the ttl have RFM rows.
    assert!(metrics.contains("fstore_edge_entities_loaded{view=\"customer_profile\"} 20"));
    assert!(metrics.contains("fstore_edge_entities_loaded{view=\"customer_rfm\"} "));
    assert!(metrics.contains("fstore_edge_request_duration_seconds_bucket"));
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_swaps_under_load_fail_no_request() {
    let s = Stack::start(200, 100, 1 << 16).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (url, stop, ok, failed) = (
            format!("{}/v1/features", s.edge_url),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        clients.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let body = r#"{"feature_service":"segmentation_v1","entities":{"customer_id":[1000,1050,1199]}}"#;
            while !stop.load(Ordering::Relaxed) {
                match c.post(&url).body(body).send().await {
                    Ok(r) if r.status() == 200 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        if v["results"][0]["statuses"][0] == "PRESENT" || v["results"][0]["statuses"][0] == "NULL_VALUE" {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for i in 0..50u64 {
        let r =
            s.cp.materialize(&[], "test", fstore_control::RunMode::Full)
                .await
                .expect("materialize");
        let seq = r[0].manifest_seq;
        // Wait until the edge serves this manifest, so every publish is a real swap.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let v = get_json(&format!("{}/readyz", s.edge_url)).await;
            if v["manifest"].as_u64() >= Some(seq) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "swap {i} did not happen"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(
        failed, 0,
        "{failed} requests failed during swaps ({ok} succeeded)"
    );
    assert!(
        ok > 50,
        "the client made too few requests ({ok}) to prove anything"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_publish_leaves_the_edge_on_its_last_good_snapshot() {
    let s = Stack::start(20, 100, 1 << 16).await;
    let good = get_json(&format!("{}/readyz", s.edge_url)).await;
    let store = s.cp.store();
    let mut bad = store.live_manifest().await.expect("read").expect("live");
    // A manifest naming a snapshot whose bytes are garbage (a torn upload, a bad disk).
    store
        .put_new("snapshots/customer_rfm/garbage.fss", vec![7u8; 4096].into())
        .await
        .expect("put");
    let view = bad.views.get_mut("customer_rfm").expect("view");
    view.key = "snapshots/customer_rfm/garbage.fss".into();
    view.version = 999;
    bad.seq = 1_000;
    store.publish(&bad).await.expect("publish");

    // Several poll intervals later the edge still serves the good snapshot, and says why not.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", s.edge_url))
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        if !metrics.contains("fstore_edge_poll_errors_total 0\n") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the edge never reported the bad snapshot"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get_json(&format!("{}/readyz", s.edge_url)).await, good);
    let r = post(
        &format!("{}/v1/features", s.edge_url),
        r#"{"feature_service":"segmentation_v1","entities":{"customer_id":[1000]}}"#,
    )
    .await;
    assert_eq!(r.status(), 200);

    // The next good publish is picked up as usual.
    let next =
        s.cp.materialize(&[], "test", fstore_control::RunMode::Full)
            .await
            .expect("materialize");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get_json(&format!("{}/readyz", s.edge_url)).await["manifest"] != next[0].manifest_seq {
        assert!(
            std::time::Instant::now() < deadline,
            "the edge did not recover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
