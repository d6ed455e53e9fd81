//! Materialization jobs with real processes: two control-plane replicas sharing one
//! PostgreSQL registry run a schedule without ever running a slot twice or overlapping runs of
//! a view; a run triggered over REST succeeds; a failing run is retried with backoff up to its
//! limit; a queued run is cancelled; and a replica killed with SIGKILL mid-run has its run
//! failed by the other replica when the lease lapses, retried, and nothing half-published.

use std::path::Path;
use std::time::{Duration, Instant};

use fstore_tests::{Proc, TempDb, expect_api_error, fstore, get_json, spawn_server, wait_ok};
use serde_json::{Value, json};

/// A CSV view on a 3-second schedule, a view whose source is missing (always fails), and a
/// slow view: a PostgreSQL query that sleeps, so a run is still going when its replica dies.
fn yaml(dir: &Path, pg: &str) -> String {
    format!(
        r#"
entities:
  - name: customer
    join_keys: [{{name: customer_id, type: int64}}]
sources:
  - name: stats_csv
    path: {dir}/data/stats.csv
    format: csv
    timestamp_field: ts
  - name: missing_csv
    path: {dir}/data/missing.csv
    format: csv
    timestamp_field: ts
  - name: slow_pg
    path: {pg}
    format: postgres
    timestamp_field: ts
    query: "SELECT v.customer_id, v.ts, v.spend FROM (SELECT pg_sleep(4)) s, (VALUES (1::bigint, now(), 1.5::float8)) v(customer_id, ts, spend)"
feature_views:
  - name: stats
    entities: [customer]
    source: stats_csv
    ttl: 36500d
    schedule: 3s
    features:
      - {{name: spend, type: float64}}
  - name: stats_copy
    entities: [customer]
    source: stats_csv
    ttl: 36500d
    schedule: 3s
    features:
      - {{name: spend, type: float64}}
  - name: broken
    entities: [customer]
    source: missing_csv
    ttl: 36500d
    features:
      - {{name: spend, type: float64}}
  - name: slow
    entities: [customer]
    source: slow_pg
    ttl: 36500d
    features:
      - {{name: spend, type: float64}}
"#,
        dir = dir.display()
    )
}

struct Env(Vec<(&'static str, String)>);

impl Env {
    fn get(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

fn replica(env: &Env, dir: &Path, id: &str) -> Proc {
    spawn_server(
        &[
            "serve",
            "control-plane",
            "--addr",
            "127.0.0.1:0",
            "--replica-id",
            id,
            "--job-tick",
            "200ms",
            "--job-lease",
            "3s",
            "--job-backoff",
            "300ms",
            "--job-attempts",
            "2",
        ],
        &env.get(),
        dir,
    )
}

async fn runs(api: &str, query: &str) -> Vec<Value> {
    get_json(&format!("{api}/v1/jobs?limit=1000&{query}")).await["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls `/v1/jobs` until `done` holds for the runs of `view`.
async fn until(api: &str, view: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = runs(api, &format!("view={view}")).await;
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: {r:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn status(r: &Value) -> &str {
    r["status"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_the_schedule_retry_cancel_and_survive_a_crash() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let db = TempDb::create();
    let env = Env(vec![
        ("FSTORE_DATABASE_URL", db.url.clone()),
        (
            "FSTORE_STORE_URL",
            dir.join("objects").to_string_lossy().into_owned(),
        ),
        ("FSTORE_LOG", "warn".into()),
    ]);
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(
        dir.join("data/stats.csv"),
        "customer_id,ts,spend\n1,2026-01-01T00:00:00Z,10.0\n2,2026-01-01T00:00:00Z,20.0\n",
    )
    .expect("csv");
    std::fs::write(dir.join("features.yaml"), yaml(dir, &db.url)).expect("yaml");
    let (ok, _, err) = fstore(&["apply", "-f", "features.yaml"], &env.get(), dir);
    assert!(ok, "apply: {err}");

    // A run queued while no control plane runs stays queued, and is cancelled at once.
    let (ok, out, err) = fstore(&["jobs", "run", "broken"], &env.get(), dir);
    assert!(ok, "{err}");
    let id: u64 = out
        .split('#')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no run id in {out}"));
    let (ok, out, err) = fstore(&["jobs", "cancel", &id.to_string()], &env.get(), dir);
    assert!(ok && out.contains("cancelled"), "{out} {err}");
    let (ok, _, err) = fstore(&["jobs", "cancel", &id.to_string()], &env.get(), dir);
    assert!(!ok && err.contains("already cancelled"), "{err}");

    let a = replica(&env, dir, "replica-a");
    let b = replica(&env, dir, "replica-b");
    for p in [&a, &b] {
        wait_ok(&format!("{}/healthz", p.url), Duration::from_secs(30)).await;
    }
    let api = b.url.clone();

    // --- The schedule: each 3-second slot runs once, whichever replica saw it first, and
    // runs of the view never overlap.
    let scheduled = until(&api, "stats", "three scheduled runs succeeded", |r| {
        r.iter()
            .filter(|r| r["trigger"] == "schedule" && status(r) == "succeeded")
            .count()
            >= 3
    })
    .await;
    let mut slots: Vec<&str> = scheduled
        .iter()
        .filter_map(|r| r["scheduled_for"].as_str())
        .collect();
    let n = slots.len();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), n, "a slot ran twice: {scheduled:#?}");
    let mut spans: Vec<(String, String)> = scheduled
        .iter()
        .filter(|r| status(r) == "succeeded")
        .map(|r| {
            (
                r["started_at"].as_str().unwrap_or_default().to_string(),
                r["finished_at"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "runs overlapped: {spans:?}");
    }
    // The first run computes the view in full; the next ones are incremental and, with no
    // new source file, publish nothing.
    let ok_run = scheduled
        .iter()
        .find(|r| status(r) == "succeeded" && r["mode"] == "full")
        .expect("a full run");
    assert_eq!(ok_run["rows_written"].as_u64(), Some(2), "{ok_run}");
    assert_eq!(ok_run["entities"].as_u64(), Some(2), "{ok_run}");
    assert!(ok_run["snapshot_version"].as_u64().is_some(), "{ok_run}");
    let idle = scheduled
        .iter()
        .find(|r| status(r) == "succeeded" && r["mode"] == "unchanged")
        .expect("an incremental run with nothing new");
    assert_eq!(idle["rows_read"].as_u64(), Some(0), "{idle}");
    assert!(idle["snapshot_version"].is_null(), "{idle}");

    // --- A failing view: the run fails, is retried once after the backoff, then stops.
    let resp = reqwest::Client::new()
        .post(format!("{api}/v1/jobs"))
        .json(&json!({"view": "broken"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 202);
    let failed = until(&api, "broken", "two failed attempts", |r| {
        r.iter().filter(|r| status(r) == "failed").count() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = runs(&api, "view=broken").await;
    assert_eq!(all.len(), 3, "cancelled + 2 attempts, no more: {all:#?}");
    assert_eq!(failed[0]["trigger"], "retry", "{failed:#?}");
    assert_eq!(failed[0]["attempt"], 2, "{failed:#?}");
    assert!(
        failed[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing.csv")),
        "{failed:#?}"
    );

    // --- A crash mid-run: the slow view runs on one replica, which is killed; the other
    // fails it when the lease lapses, retries it, and publishes it whole.
    let live_before = get_json(&format!("{api}/v1/versions")).await["live"].clone();
    let resp = reqwest::Client::new()
        .post(format!("{api}/v1/jobs"))
        .json(&json!({"view": "slow"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 202);
    // Overlap refused while it is queued or running.
    let again = reqwest::Client::new()
        .post(format!("{api}/v1/jobs"))
        .json(&json!({"view": "slow"}))
        .send()
        .await
        .expect("post");
    assert_eq!(expect_api_error(again, 409).await, "run_active");
    let running = until(&api, "slow", "the slow run started", |r| {
        r.iter().any(|r| status(r) == "running")
    })
    .await;
    let owner = running[0]["run_owner"]
        .as_str()
        .or_else(|| running[0]["owner"].as_str())
        .unwrap_or_default()
        .to_string();
    let (mut victim, survivor) = if owner == "replica-a" { (a, b) } else { (b, a) };
    victim.child.kill().expect("kill -9");
    let _ = victim.child.wait();
    let api = survivor.url.clone();
    let done = until(&api, "slow", "the retry succeeded", |r| {
        r.iter().any(|r| status(r) == "succeeded")
    })
    .await;
    let lost = done
        .iter()
        .find(|r| status(r) == "failed")
        .unwrap_or_else(|| panic!("the killed run is failed: {done:#?}"));
    assert!(
        lost["error"]
            .as_str()
            .is_some_and(|e| e.contains("lease expired")),
        "{lost}"
    );
    let retry = &done[0];
    assert_eq!(retry["trigger"], "retry", "{done:#?}");
    assert_eq!(retry["attempt"], 2, "{done:#?}");
    // The published manifest names the slow view's snapshot from the retry only.
    let live = get_json(&format!("{api}/v1/versions")).await;
    assert_ne!(live["live"], live_before, "{live}");
    let m = get_json(&format!("{api}/v1/versions/{}", live["live"])).await;
    assert_eq!(
        m["views"]["slow"]["version"], retry["snapshot_version"],
        "{m}"
    );

    // Publishes from two replicas never undo each other: across every kept version, each
    // view's snapshot version only moves forward.
    let versions = get_json(&format!("{api}/v1/versions")).await;
    let mut items: Vec<&Value> = versions["items"]
        .as_array()
        .expect("items")
        .iter()
        .collect();
    items.sort_by_key(|i| i["seq"].as_u64());
    for pair in items.windows(2) {
        for (view, v) in pair[0]["views"].as_object().expect("views") {
            let next = &pair[1]["views"][view];
            assert!(
                next.as_u64() >= v.as_u64(),
                "`{view}` went back from {v} to {next}: {versions:#}"
            );
        }
    }

    // --- Metrics, and wrong input.
    let text = reqwest::get(format!("{api}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("fstore_job_runs_total{view=\"slow\",status=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("fstore_view_freshness_seconds{view=\"stats\"}"),
        "{text}"
    );
    for (url, code) in [
        (format!("{api}/v1/jobs?status=sleeping"), 400),
        (format!("{api}/v1/jobs?limit=0"), 400),
        (format!("{api}/v1/jobs/x"), 400),
        (format!("{api}/v1/jobs/999999"), 404),
    ] {
        let r = reqwest::get(&url).await.expect("get");
        assert_eq!(r.status().as_u16(), code, "{url}");
        expect_api_error(r, code).await;
    }
    let c = reqwest::Client::new();
    for (body, code) in [
        (json!({}), 400),
        (json!({"view": "nope"}), 404),
        (json!({"view": 3}), 400),
        (json!({"colour": "red"}), 400),
    ] {
        let r = c
            .post(format!("{api}/v1/jobs"))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), code, "{body}");
        expect_api_error(r, code).await;
    }
    let r = c
        .post(format!("{api}/v1/jobs/{id}/cancel"))
        .send()
        .await
        .expect("post");
    assert_eq!(expect_api_error(r, 409).await, "run_finished");
    let r = c
        .post(format!("{api}/v1/jobs/999999/cancel"))
        .send()
        .await
        .expect("post");
    expect_api_error(r, 404).await;
    for args in [
        &["jobs", "--status", "sleeping"][..],
        &["jobs", "show", "999999"],
        &["jobs", "run", "nope"],
        &["jobs", "cancel", "x"],
    ] {
        let (ok, _, err) = fstore(args, &env.get(), dir);
        assert!(!ok && !err.contains("panicked"), "{args:?}: {err}");
    }
    drop(survivor);
}

/// Two control planes (as two replicas would be) materialize different views at the same
/// moment, again and again: every publish builds on the one before, so no view's snapshot
/// version ever goes back in the published history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_never_undo_each_other() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(
        dir.join("data/stats.csv"),
        "customer_id,ts,spend\n1,2026-01-01T00:00:00Z,10.0\n",
    )
    .expect("csv");
    let yaml = format!(
        r#"
entities:
  - name: customer
    join_keys: [{{name: customer_id, type: int64}}]
sources:
  - name: stats_csv
    path: {d}/data/stats.csv
    format: csv
    timestamp_field: ts
feature_views:
  - name: left
    entities: [customer]
    source: stats_csv
    ttl: 36500d
    features: [{{name: spend, type: float64}}]
  - name: right
    entities: [customer]
    source: stats_csv
    ttl: 36500d
    features: [{{name: spend, type: float64}}]
"#,
        d = dir.display()
    );
    let open = || async {
        fstore_control::ControlPlane::open(fstore_control::ControlConfig {
            database_url: dir.join("registry.db").to_string_lossy().into_owned(),
            store_url: dir.join("objects").to_string_lossy().into_owned(),
            max_body_bytes: 1 << 20,
            retain_versions: 0,
            alerts: fstore_control::AlertSettings::default(),
            auth: false,
            jobs: fstore_control::JobSettings {
                enabled: false,
                ..fstore_control::JobSettings::default()
            },
        })
        .await
        .expect("open")
    };
    let (a, b) = (open().await, open().await);
    let defs = fstore_control::ControlPlane::parse(&yaml, None).expect("defs");
    a.apply(&defs, &fstore_control::ApplyOptions::new("test"))
        .await
        .expect("apply");
    let (left, right) = (["left".to_string()], ["right".to_string()]);
    for _ in 0..15 {
        let (l, r) = tokio::join!(
            a.materialize(&left, "a", fstore_control::RunMode::Full),
            b.materialize(&right, "b", fstore_control::RunMode::Full)
        );
        l.expect("left");
        r.expect("right");
    }
    let versions = a.versions().await.expect("versions");
    let mut items = versions.items.clone();
    items.sort_by_key(|i| i.seq);
    assert_eq!(items.len(), 30, "one publish per materialization");
    for pair in items.windows(2) {
        for (view, v) in &pair[0].views {
            let next = pair[1].views.get(view).copied().unwrap_or(0);
            assert!(
                next >= *v,
                "`{view}` went back from {v} to {next}: {items:#?}"
            );
        }
    }
}
