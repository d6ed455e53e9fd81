//! The whole path on real parts, with every server a separate process talking real HTTP:
//! features.yaml → `fstore apply` → `fstore materialize` → an edge serving lookups.
//! Once with SQLite and a local directory, once with PostgreSQL and an S3 server.

use std::time::Duration;

use fstore_tests::{S3Server, TempDb, fstore, get_json, quickstart_data, spawn_server, wait_ok};

async fn lookup(edge: &str, id: i64) -> serde_json::Value {
    let body = serde_json::json!({"feature_service": "segmentation_v1", "entities": {"customer_id": [id]}});
    let r = reqwest::Client::new()
        .post(format!("{edge}/v1/features"))
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn run_path(env: &[(&str, &str)], dir: &std::path::Path) {
    let (ok, out, err) = fstore(&["apply", "-f", "features.yaml", "--dry-run"], env, dir);
    assert!(ok, "dry run failed: {err}");
    assert!(
        out.contains("11 to create") && out.contains("Dry run"),
        "{out}"
    );
    let (ok, out, err) = fstore(&["apply", "-f", "features.yaml"], env, dir);
    assert!(ok, "apply failed: {err}");
    assert!(out.contains("Applied"), "{out}");
    let (ok, out, _) = fstore(&["apply", "-f", "features.yaml", "--dry-run"], env, dir);
    assert!(
        ok && out.contains("0 to create, 0 to update, 0 to delete, 11 unchanged"),
        "{out}"
    );
    let (ok, out, err) = fstore(&["materialize"], env, dir);
    assert!(ok, "materialize failed: {err}");
    assert!(out.contains("customer_rfm: version 1"), "{out}");

    let edge = spawn_server(
        &[
            "serve",
            "edge",
            "--addr",
            "127.0.0.1:0",
            "--poll-interval",
            "200ms",
            "--cache-dir",
            "edge-cache",
        ],
        env,
        dir,
    );
    let control = spawn_server(
        &["serve", "control-plane", "--addr", "127.0.0.1:0"],
        env,
        dir,
    );
    wait_ok(&format!("{}/readyz", edge.url), Duration::from_secs(30)).await;

    let v = lookup(&edge.url, 1_000).await;
    assert_eq!(v["manifest"], 1);
    assert_eq!(v["views"]["customer_rfm"], 1);
    assert_eq!(v["features"].as_array().map(Vec::len), Some(16));
    let statuses = v["results"][0]["statuses"].as_array().expect("statuses");
    assert!(
        statuses.iter().all(|s| s == "PRESENT" || s == "NULL_VALUE"),
        "{v}"
    );
    // An on-demand view: the edge process runs the next_offer component per request, over
    // the stored features and the request context, fetched from the same store as snapshots.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/features", edge.url))
        .json(&serde_json::json!({
            "feature_service": "personalization_v1",
            "entities": {"customer_id": [1000, 1001]},
            "request_context": {"cart_value": [40.0, 250.0], "channel": "mobile"},
        }))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    for row in v["results"].as_array().expect("results") {
        assert_eq!(row["statuses"][3], "PRESENT", "{v}");
        assert!(row["values"][3].is_string(), "{v}");
        assert!(row["values"][4].is_number(), "{v}");
    }
    let missing = lookup(&edge.url, 42).await;
    assert_eq!(missing["results"][0]["statuses"][0], "NOT_FOUND");

    let snaps: serde_json::Value = get_json(&format!("{}/v1/snapshots", control.url)).await;
    assert_eq!(snaps["items"].as_array().map(Vec::len), Some(1), "{snaps}");
    assert_eq!(snaps["live"]["seq"], 1);
    let view: serde_json::Value =
        get_json(&format!("{}/v1/feature-views/customer_rfm", control.url)).await;
    assert_eq!(view["version"], 1);
    assert_eq!(view["spec"]["ttl_seconds"], 45 * 86_400);

    // A second materialization reaches the running edge within its poll interval.
    let (ok, _, err) = fstore(&["materialize"], env, dir);
    assert!(ok, "{err}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if lookup(&edge.url, 1_000).await["views"]["customer_rfm"] == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "edge did not pick up version 2"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (ok, out, err) = fstore(
        &[
            "get",
            "--edge",
            &edge.url,
            "--service",
            "segmentation_v1",
            "--entity",
            "customer_id=1001",
        ],
        env,
        dir,
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"customer_id\": 1001"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_and_local_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    quickstart_data(dir.path(), 300);
    let db = dir
        .path()
        .join("registry.db")
        .to_string_lossy()
        .into_owned();
    let store = dir.path().join("objects").to_string_lossy().into_owned();
    run_path(
        &[("FSTORE_DATABASE_URL", &db), ("FSTORE_STORE_URL", &store)],
        dir.path(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_and_s3() {
    if std::env::var("FSTORE_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("FSTORE_SKIP_POSTGRES=1: skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    quickstart_data(dir.path(), 300);
    let s3 = S3Server::start("fstore-it");
    // The source lives in the bucket too, read through object_store.
    let data = dir.path().join("data/customer_stats.parquet");
    let lake = fstore_storage::Store::from_url_opts(
        "s3://fstore-it/lake",
        &[
            ("aws_endpoint", &s3.endpoint),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ],
    )
    .expect("store");
    lake.put_new(
        "customer_stats.parquet",
        std::fs::read(&data).expect("read").into(),
    )
    .await
    .expect("upload");
    std::fs::remove_file(&data).expect("rm local copy");
    let yaml = fstore_tests::test_features_yaml().replace(
        "path: data/customer_stats.parquet",
        "path: s3://fstore-it/lake/customer_stats.parquet",
    );
    std::fs::write(dir.path().join("features.yaml"), yaml).expect("yaml");

    let db = TempDb::create();
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("FSTORE_DATABASE_URL", db.url.clone()));
    env.push(("FSTORE_STORE_URL", "s3://fstore-it/published".into()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_path(&env_ref, dir.path()).await;
}
