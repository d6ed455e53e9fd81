//! The control plane's REST API: bad input of every kind, and a failed materialization that
//! leaves the live snapshot and its input untouched.

use std::time::Duration;

use fstore_tests::{Stack, expect_api_error, get_json};

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_4xx_with_a_json_error() {
    let s = Stack::start(20, 100, 64 * 1024).await;
    let c = reqwest::Client::new();
    let u = |p: &str| format!("{}{p}", s.control_url);

    // features.yaml problems name the line and the key.
    let yaml =
        fstore_tests::test_features_yaml().replace("source: orders", "source: no_such_source");
    let r = c
        .post(u("/v1/apply"))
        .body(yaml)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "invalid_definitions");
    assert_eq!(
        v["error"]["details"][0]["key"],
        "feature_views.customer_rfm.source"
    );
    assert!(
        v["error"]["details"][0]["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("line ")),
        "{v}"
    );

    // Definitions sent as JSON are held to the same rules as features.yaml (here a shard
    // count a snapshot cannot be split into).
    let mut defs = fstore_spec::parse_features_yaml(&fstore_tests::test_features_yaml(), None)
        .expect("valid definitions");
    let view = defs
        .feature_views
        .iter_mut()
        .find(|v| v.name == "customer_rfm")
        .expect("customer_rfm");
    view.shards = Some(0);
    let r = c
        .post(u("/v1/apply"))
        .json(&serde_json::json!({ "definitions": defs }))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "invalid_definitions", "{v}");
    assert_eq!(
        v["error"]["details"][0]["key"], "feature_views.customer_rfm.shards",
        "{v}"
    );

    let r = c
        .post(u("/v1/apply"))
        .body("entities: [{name: x, join_keys: [], colour: red}]")
        .send()
        .await
        .expect("post");
    assert_eq!(expect_api_error(r, 400).await, "invalid_definitions");
    let r = c
        .post(u("/v1/apply"))
        .header("content-type", "application/json")
        .body("{bad")
        .send()
        .await
        .expect("post");
    assert_eq!(expect_api_error(r, 400).await, "bad_request");
    let r = c
        .post(u("/v1/apply?dry_run=maybe"))
        .body("entities: []")
        .send()
        .await
        .expect("post");
    assert_eq!(expect_api_error(r, 400).await, "bad_request");
    let r = c
        .post(u("/v1/apply"))
        .body(vec![b'x'; 70 * 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(expect_api_error(r, 400).await, "bad_request");
    let r = c
        .post(u("/v1/materialize"))
        .body(r#"{"views":["nope"]}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(expect_api_error(r, 404).await, "not_found");
    let r = c
        .post(u("/v1/materialize"))
        .body(r#"{"view":"typo"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(expect_api_error(r, 400).await, "bad_request");
    // Training sets: every wrong request is a 4xx with a JSON error, and writes nothing.
    let rows = s.dir.path().join("data/training_entities.parquet");
    let rows = rows.display().to_string();
    let out = s.dir.path().join("never.parquet");
    let out_s = out.display().to_string();
    for (body, status, code) in [
        ("not json".to_string(), 400, "bad_request"),
        (r#"{"out":"x.parquet"}"#.to_string(), 400, "bad_request"),
        (
            serde_json::json!({"entities": rows, "out": out_s, "colour": "red"}).to_string(),
            400,
            "bad_request",
        ),
        (
            serde_json::json!({"entities": rows, "out": out_s}).to_string(),
            400,
            "bad_request",
        ),
        (
            serde_json::json!({"entities": rows, "out": out_s, "feature_service": "nope"})
                .to_string(),
            404,
            "not_found",
        ),
        (
            serde_json::json!({"entities": rows, "out": out_s, "feature_service": "segmentation_v1", "features": ["customer_rfm:clv"]})
                .to_string(),
            400,
            "bad_request",
        ),
        (
            serde_json::json!({"entities": "/nonexistent/rows.parquet", "out": out_s, "features": ["customer_rfm:clv"]})
                .to_string(),
            400,
            "bad_request",
        ),
        (
            serde_json::json!({"entities": rows, "out": out_s, "features": ["customer_rfm:nope"]})
                .to_string(),
            400,
            "bad_request",
        ),
        (
            serde_json::json!({"entities": rows, "out": out_s, "features": ["customer_rfm:clv"], "timestamp_column": "when"})
                .to_string(),
            400,
            "bad_request",
        ),
    ] {
        let r = c
            .post(u("/v1/historical"))
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(expect_api_error(r, status).await, code, "{body}");
    }
    assert!(!out.exists(), "a failed request wrote its output");
    // Source data that has gone missing is not the caller's mistake: 422, and the data that
    // remains is untouched.
    let orders = s.dir.path().join("data/orders");
    let moved = s.dir.path().join("data/orders-away");
    std::fs::rename(&orders, &moved).expect("move orders away");
    let r = c
        .post(u("/v1/historical"))
        .json(
            &serde_json::json!({"entities": rows, "out": out_s, "features": ["customer_rfm:clv"]}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(expect_api_error(r, 422).await, "training_set_failed");
    std::fs::rename(&moved, &orders).expect("move orders back");
    assert!(!out.exists(), "a failed request wrote its output");

    let r = c.get(u("/v1/widgets")).send().await.expect("get");
    assert_eq!(expect_api_error(r, 404).await, "not_found");
    let r = c
        .get(u("/v1/feature-views/nope"))
        .send()
        .await
        .expect("get");
    assert_eq!(expect_api_error(r, 404).await, "not_found");
    let r = c
        .get(u("/v1/snapshots?colour=red"))
        .send()
        .await
        .expect("get");
    assert_eq!(expect_api_error(r, 400).await, "bad_request");
    let r = c.delete(u("/v1/apply")).send().await.expect("delete");
    assert_eq!(expect_api_error(r, 405).await, "method_not_allowed");

    // Nothing above changed the registry: a dry run of the original file plans nothing.
    let abs = fstore_tests::absolute_features_yaml(s.dir.path());
    let r = c
        .post(u("/v1/apply?dry_run=true"))
        .body(abs)
        .send()
        .await
        .expect("post");
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["applied"], false);
    assert_eq!(
        v["plan"]["changes"].as_array().map(Vec::len),
        Some(0),
        "{v}"
    );

    let doc = get_json(&u("/openapi.json")).await;
    assert!(doc["paths"]["/v1/apply"]["post"].is_object());
    let list: serde_json::Value = get_json(&u("/v1/feature-services")).await;
    assert_eq!(list["items"][0]["name"], "personalization_v1");
    assert_eq!(list["items"][1]["name"], "segmentation_v1");
    let transforms: serde_json::Value = get_json(&u("/v1/transforms/rfm_score")).await;
    assert_eq!(
        transforms["spec"]["resolved"]["sha256"]
            .as_str()
            .map(str::len),
        Some(64),
        "{transforms}"
    );
}

const CSV_YAML: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: scores
    path: scores.csv
    timestamp_field: ts
feature_views:
  - name: score_view
    entities: [customer]
    source: scores
    features:
      - {name: score, type: float64}
      - {name: tier, type: string}
feature_services:
  - name: scoring
    features: [score_view:score, score_view:tier]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_keeps_the_live_snapshot_and_its_input() {
    let s = Stack::start(20, 100, 1 << 16).await;
    let csv = s.dir.path().join("scores.csv");
    std::fs::write(&csv, "customer_id,ts,score,tier\n1,2026-01-01T00:00:00Z,0.5,gold\n1,2026-02-01T00:00:00Z,0.7,silver\n2,2026-01-05T00:00:00Z,0.1,bronze\n")
        .expect("csv");
    let defs = fstore_control::ControlPlane::parse(CSV_YAML, Some(s.dir.path())).expect("defs");
    s.cp.apply(&defs, &fstore_control::ApplyOptions::new("test"))
        .await
        .expect("apply");
    let good =
        s.cp.materialize(&[], "test", fstore_control::RunMode::Full)
            .await
            .expect("good run");
    let live_seq = good[0].manifest_seq;

    let c = reqwest::Client::new();
    let lookup = || async {
        let body = r#"{"feature_service":"scoring","entities":{"customer_id":[1,2]}}"#;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = c
                .post(format!("{}/v1/features", s.edge_url))
                .body(body)
                .send()
                .await
                .expect("post");
            if r.status() == 200 {
                return r.json::<serde_json::Value>().await.expect("json");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "scoring never became servable"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let before = lookup().await;
    assert_eq!(
        before["results"][0]["values"],
        serde_json::json!([0.7, "silver"]),
        "latest row wins"
    );

    // Row 3 of the file (data row 2) has a score that is not a number.
    let bad = "customer_id,ts,score,tier\n1,2026-03-01T00:00:00Z,0.9,gold\n2,2026-03-01T00:00:00Z,lots,gold\n";
    std::fs::write(&csv, bad).expect("csv");
    let r = c
        .post(format!("{}/v1/materialize", s.control_url))
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 422);
    let v: serde_json::Value = r.json().await.expect("json");
    let msg = v["error"]["message"].as_str().expect("message");
    // Set aside rather than fatal, but over the default limit of none: named by file, row
    // and line, and listed in the quarantine file.
    assert!(
        msg.contains("scores.csv")
            && msg.contains("row 2: column `score`")
            && msg.contains("(file line 3)")
            && msg.contains("lots")
            && msg.contains("quarantine/score_view/"),
        "{msg}"
    );

    // A null join key is named by file and row too.
    std::fs::write(&csv, "customer_id,ts,score,tier\n1,2026-03-01T00:00:00Z,0.9,gold\n,2026-03-01T00:00:00Z,0.2,gold\n").expect("csv");
    let err =
        s.cp.materialize(
            &["score_view".to_string()],
            "test",
            fstore_control::RunMode::Full,
        )
        .await
        .expect_err("must fail");
    assert!(
        err.to_string().contains("scores.csv") && err.to_string().contains("row 2"),
        "{err}"
    );

    // The input is untouched and the live snapshot is still the good one.
    assert_eq!(
        std::fs::read_to_string(&csv).expect("csv").lines().count(),
        3
    );
    let live =
        s.cp.store()
            .live_manifest()
            .await
            .expect("manifest")
            .expect("live");
    assert_eq!(live.seq, live_seq);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        lookup().await["results"][0]["values"],
        before["results"][0]["values"]
    );
}
