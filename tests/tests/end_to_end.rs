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

/// Runs the path; `lake` is where the data files are (`data` locally, or a bucket URL), which
/// the training-set request reads its entity rows from and writes its output under.
async fn run_path(env: &[(&str, &str)], dir: &std::path::Path, lake: &str) {
    let (ok, out, err) = fstore(&["apply", "-f", "features.yaml", "--dry-run"], env, dir);
    assert!(ok, "dry run failed: {err}");
    assert!(
        out.contains("13 to create") && out.contains("Dry run"),
        "{out}"
    );
    let (ok, out, err) = fstore(&["apply", "-f", "features.yaml"], env, dir);
    assert!(ok, "apply failed: {err}");
    assert!(out.contains("Applied"), "{out}");
    let (ok, out, _) = fstore(&["apply", "-f", "features.yaml", "--dry-run"], env, dir);
    assert!(
        ok && out.contains("0 to create, 0 to update, 0 to delete, 13 unchanged"),
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
    assert_eq!(v["features"].as_array().map(Vec::len), Some(19));
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
    // One snapshot per view: customer_rfm and customer_profile.
    assert_eq!(snaps["items"].as_array().map(Vec::len), Some(2), "{snaps}");
    assert_eq!(snaps["live"]["seq"], 1);
    let view: serde_json::Value =
        get_json(&format!("{}/v1/feature-views/customer_rfm", control.url)).await;
    assert_eq!(view["version"], 1);
    assert_eq!(view["spec"]["ttl_seconds"], 365 * 86_400);

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

    // A training set through the CLI and the same over REST, read from and written to the lake.
    let out_cli = format!("{lake}/out/train_cli.parquet");
    let (ok, out, err) = fstore(
        &[
            "historical",
            "--entities",
            &format!("{lake}/training_entities.parquet"),
            "--service",
            "segmentation_v1",
            "--out",
            &out_cli,
        ],
        env,
        dir,
    );
    assert!(ok, "historical failed: {err}");
    assert!(out.contains("wrote 600 rows"), "{out}");
    let r = reqwest::Client::new()
        .post(format!("{}/v1/historical", control.url))
        .json(&serde_json::json!({
            "entities": format!("{}/training_entities.parquet", abs_lake(dir, lake)),
            "features": ["customer_rfm:monetary_90d", "checkout_offer:offer"],
            "full_feature_names": true,
            "out": format!("{}/out/train_rest.csv", abs_lake(dir, lake)),
        }))
        .send()
        .await
        .expect("post");
    let status = r.status();
    let v: serde_json::Value = r.json().await.expect("json");
    // The on-demand view needs the checkout request fields, which these entity rows lack.
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cart_value")),
        "{v}"
    );
    let r = reqwest::Client::new()
        .post(format!("{}/v1/historical", control.url))
        .json(&serde_json::json!({
            "entities": format!("{}/training_entities.parquet", abs_lake(dir, lake)),
            "features": ["customer_rfm:monetary_90d", "customer_profile:country"],
            "full_feature_names": true,
            "out": format!("{}/out/train_rest.csv", abs_lake(dir, lake)),
        }))
        .send()
        .await
        .expect("post");
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["rows"], 600, "{v}");
    assert_eq!(
        v["columns"],
        serde_json::json!([
            "customer_id",
            "event_timestamp",
            "churned",
            "customer_rfm__monetary_90d",
            "customer_profile__country"
        ])
    );
}

/// The lake as the control plane process sees it: URLs as they are, local paths absolute.
fn abs_lake(dir: &std::path::Path, lake: &str) -> String {
    if lake.contains("://") {
        lake.to_string()
    } else {
        dir.join(lake).display().to_string()
    }
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
        "data",
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
    // The sources live in the bucket too (every file under data/, partitions included), read
    // through object_store; so do the training set's entity rows and output.
    let lake = s3.store("s3://fstore-it/lake");
    let data = dir.path().join("data");
    let mut pending = vec![data.clone()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let key = path
                .strip_prefix(&data)
                .expect("under data")
                .to_string_lossy()
                .into_owned();
            lake.put_new(&key, std::fs::read(&path).expect("read").into())
                .await
                .expect("upload");
        }
    }
    std::fs::remove_dir_all(&data).expect("rm local copy");
    let yaml =
        fstore_tests::test_features_yaml().replace("path: data/", "path: s3://fstore-it/lake/");
    std::fs::write(dir.path().join("features.yaml"), yaml).expect("yaml");

    let db = TempDb::create();
    let mut env: Vec<(&str, String)> = s3.env();
    env.push(("FSTORE_DATABASE_URL", db.url.clone()));
    env.push(("FSTORE_STORE_URL", "s3://fstore-it/published".into()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_path(&env_ref, dir.path(), "s3://fstore-it/lake").await;
}
