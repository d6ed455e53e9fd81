//! The quality gate end to end, with real processes: a control plane whose runs are checked
//! by the rules in `features.yaml`, a webhook receiver (a real HTTP server started here) for
//! JSON and Slack alerts, and the CLI. A run breaking an `error` rule is rejected with every
//! failing rule, its observed value and sample keys, the live snapshot and the source stay;
//! a `warn` rule and drift publish and alert; fixing the data resolves the alerts.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fstore_tests::{expect_api_error, fstore, get_json, spawn_server, wait_ok};
use serde_json::{Value, json};

const YAML: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: customers_csv
    path: data/customers.csv
    format: csv
    timestamp_field: ts
feature_views:
  - name: spending
    entities: [customer]
    source: customers_csv
    ttl: 36500d
    checks:
      - min_rows: 50
      - unique_keys: true
    drift:
      baseline: previous
      psi: 0.5
      features: [spend]
    features:
      - name: spend
        type: float64
        checks:
          - not_null: true
          - range: {min: 0}
      - name: segment
        type: string
        checks:
          - allowed: [gold, silver, bronze]
            severity: warn
  - name: spending_vs_training
    entities: [customer]
    source: customers_csv
    ttl: 36500d
    drift:
      training_set: data/train.csv
      psi: 0.5
    features:
      - {name: spend, type: float64}
"#;

/// 100 customers, spend `scale × id`, a segment by id; `edit` changes single rows.
fn write_data(dir: &Path, scale: f64, edit: &dyn Fn(i64, &mut String, &mut String)) {
    let mut csv = String::from("customer_id,ts,spend,segment\n");
    for id in 1..=100i64 {
        let mut spend = format!("{}", scale * id as f64);
        let mut segment = ["gold", "silver", "bronze"][(id % 3) as usize].to_string();
        edit(id, &mut spend, &mut segment);
        csv.push_str(&format!("{id},2026-11-01T00:00:00Z,{spend},{segment}\n"));
    }
    std::fs::write(dir.join("data/customers.csv"), csv).expect("write data");
}

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on loopback: records each POST's path and JSON body.
async fn receiver() -> (String, Received) {
    use axum::routing::post;
    let got: Received = Arc::default();
    let record = |path: &'static str, got: Received| {
        post(move |axum::Json(body): axum::Json<Value>| async move {
            got.lock().expect("lock").push((path.to_string(), body));
            "ok"
        })
    };
    let app = axum::Router::new()
        .route("/hook", record("hook", got.clone()))
        .route("/slack", record("slack", got.clone()))
        .route(
            "/fail",
            post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// Waits until the receiver holds a message satisfying `want`.
async fn delivered(got: &Received, what: &str, want: impl Fn(&str, &Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if got.lock().expect("lock").iter().any(|(p, v)| want(p, v)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never arrived: {:#?}",
            got.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn json_alert(event: &str, fingerprint: &str) -> impl Fn(&str, &Value) -> bool {
    let (event, fingerprint) = (event.to_string(), fingerprint.to_string());
    move |path, v| path == "hook" && v["event"] == event && v["alert"]["fingerprint"] == fingerprint
}

fn check<'a>(checks: &'a Value, rule: &str, feature: Option<&str>) -> &'a Value {
    checks
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["rule"] == rule && c["feature"].as_str() == feature)
        .unwrap_or_else(|| panic!("no {rule} check in {checks:#}"))
}

async fn materialize(api: &str, views: &[&str]) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{api}/v1/materialize"))
        .json(&json!({ "views": views }))
        .send()
        .await
        .expect("materialize")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_gate_publishing_and_alert_through_webhooks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(dir.join("features.yaml"), YAML).expect("yaml");
    write_data(dir, 1.0, &|_, _, _| {});
    let train: String = (1..=100).map(|i| format!("{i},{i}\n")).collect();
    std::fs::write(
        dir.join("data/train.csv"),
        format!("customer_id,spend\n{train}"),
    )
    .expect("train");
    let (hooks, got) = receiver().await;
    let db = format!("sqlite://{}/registry.db", dir.display());
    let store = format!("file://{}/store", dir.display());
    let env = [
        ("FSTORE_DATABASE_URL", db.as_str()),
        ("FSTORE_STORE_URL", store.as_str()),
        ("FSTORE_LOG", "warn"),
    ];
    let (ok, _, err) = fstore(&["apply", "-f", "features.yaml"], &env, dir);
    assert!(ok, "{err}");
    let cp = spawn_server(
        &[
            "serve",
            "control-plane",
            "--addr",
            "127.0.0.1:0",
            "--no-scheduler",
            "--alert-webhook",
            &format!("{hooks}/hook,{hooks}/fail"),
            "--alert-slack-webhook",
            &format!("{hooks}/slack"),
        ],
        &env,
        dir,
    );
    let api = cp.url.clone();
    wait_ok(&format!("{api}/healthz"), Duration::from_secs(60)).await;

    // 1. Good data: published, every rule passes, statistics as computed by hand.
    let r = materialize(&api, &["spending", "spending_vs_training"]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let q = get_json(&format!("{api}/v1/quality/spending")).await;
    let v1 = q["version"].as_u64().expect("version");
    assert_eq!(q["published"], true, "{q:#}");
    let stats = &q["report"]["stats"];
    assert_eq!(stats["rows"], 100);
    let spend = &stats["features"][0];
    assert_eq!(spend["name"], "spend");
    assert_eq!(spend["mean"], 50.5);
    assert_eq!(spend["min"], 1.0);
    assert_eq!(spend["quantiles"]["p50"], 50.5);
    assert_eq!(spend["null_rate"], 0.0);
    let segment = &stats["features"][1];
    assert_eq!(segment["distinct"], 3);
    assert_eq!(segment["top_values"][0]["count"], 34, "{segment:#}");
    assert!(
        q["report"]["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| c["passed"] == true),
        "{q:#}"
    );
    assert!(
        q["report"]["drift_note"]
            .as_str()
            .is_some_and(|n| n.contains("no previous")),
        "{q:#}"
    );

    // 2. A null and a negative spend break `error` rules: rejected, v1 stays live, the
    //    source file is untouched, and the report names the rules, figures and keys.
    write_data(dir, 1.0, &|id, spend, _| match id {
        7 => *spend = "-5".into(),
        9 | 11 => spend.clear(),
        _ => {}
    });
    let before = std::fs::read(dir.join("data/customers.csv")).expect("read");
    let r = materialize(&api, &["spending"]).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "quality_rejected", "{body:#}");
    let failing = &body["error"]["details"]["failing"];
    assert_eq!(failing.as_array().map(Vec::len), Some(2), "{body:#}");
    let not_null = check(failing, "not_null", Some("spend"));
    assert_eq!(not_null["observed"], 2.0);
    assert_eq!(not_null["sample_keys"], json!(["9", "11"]));
    let range = check(failing, "range", Some("spend"));
    assert_eq!(range["sample_keys"], json!(["7"]));
    assert_eq!(
        std::fs::read(dir.join("data/customers.csv")).expect("read"),
        before
    );
    let rejected = get_json(&format!("{api}/v1/quality/spending")).await;
    let v2 = rejected["version"].as_u64().expect("version");
    assert!(v2 > v1);
    assert_eq!(rejected["published"], false);
    let live = reqwest::get(format!("{api}/v1/snapshots/spending/{v2}"))
        .await
        .expect("get");
    assert_eq!(live.status(), 404, "a rejected run publishes no snapshot");
    let live = get_json(&format!("{api}/v1/snapshots/spending/{v1}")).await;
    assert_eq!(live["version"], v1, "{live:#}");
    assert_eq!(
        get_json(&format!("{api}/v1/quality/spending?version={v1}")).await["published"],
        true
    );
    delivered(
        &got,
        "the not_null alert",
        json_alert("firing", "check:spending:spend:not_null"),
    )
    .await;
    delivered(&got, "the range alert on Slack", |p, v| {
        p == "slack"
            && v["text"]
                .as_str()
                .is_some_and(|t| t.contains("spend") && t.contains("not published"))
    })
    .await;

    // 3. Fixed spend, tripled (drift), and a segment outside the allowed set (a warning):
    //    published, the error alerts resolve, the warning and the drift fire.
    write_data(dir, 3.0, &|id, _, segment| {
        if id == 5 {
            *segment = "platinum".into();
        }
    });
    let r = materialize(&api, &["spending"]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let q = get_json(&format!("{api}/v1/quality/spending")).await;
    assert_eq!(q["published"], true);
    assert_eq!(q["report"]["previous_version"], v1, "{q:#}");
    let allowed = check(&q["report"]["checks"], "allowed", Some("segment"));
    assert_eq!(
        (allowed["passed"].clone(), allowed["sample_keys"].clone()),
        (json!(false), json!(["5"]))
    );
    let drift = check(&q["report"]["checks"], "drift", Some("spend"));
    assert_eq!(drift["passed"], false, "{q:#}");
    assert_eq!(
        q["report"]["change"]["features"][0]["mean_change"], 2.0,
        "{q:#}"
    );
    delivered(
        &got,
        "the not_null resolve",
        json_alert("resolved", "check:spending:spend:not_null"),
    )
    .await;
    delivered(&got, "the range resolve on Slack", |p, v| {
        p == "slack" && v["text"].as_str().is_some_and(|t| t.contains("resolved"))
    })
    .await;
    delivered(
        &got,
        "the allowed warning",
        json_alert("firing", "check:spending:segment:allowed"),
    )
    .await;
    delivered(
        &got,
        "the drift alert",
        json_alert("firing", "drift:spending:spend:drift"),
    )
    .await;

    // Drift against a training set: the same data matched it, tripled spend does not.
    let r = materialize(&api, &["spending_vs_training"]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let t = get_json(&format!("{api}/v1/quality/spending_vs_training")).await;
    assert_eq!(t["history"].as_array().map(Vec::len), Some(2), "{t:#}");
    assert_eq!(
        check(&t["report"]["checks"], "drift", Some("spend"))["passed"],
        false,
        "{t:#}"
    );
    let first = t["history"][1]["version"].as_u64().expect("version");
    let t1 = get_json(&format!(
        "{api}/v1/quality/spending_vs_training?version={first}"
    ))
    .await;
    assert_eq!(t1["report"]["drift"][0]["psi"], 0.0, "{t1:#}");
    assert_eq!(t1["report"]["drift"][0]["ks"], 0.0, "{t1:#}");

    // Serving anomalies: a not-found rate steady at 1 % that jumps to 30 % raises an alert,
    // and a report back at 1 % resolves it.
    let beat = |not_found: u64| {
        json!({"id": "edge-a", "region": "eu", "address": "http://127.0.0.1:1", "manifest_seq": null,
            "views": {}, "ready": true, "interval_ms": 1000, "started_at": "2026-12-04T00:00:00Z",
            "serving": {"spending": {"lookups": 1000, "not_found": not_found, "errors": 0,
                "p50_ms": 0.05, "p99_ms": 0.2}},
            "serving_window_ms": 1000})
    };
    let http = reqwest::Client::new();
    let send = |body: Value| {
        http.post(format!("{api}/v1/edges/heartbeat"))
            .json(&body)
            .send()
    };
    for _ in 0..5 {
        assert_eq!(send(beat(10)).await.expect("beat").status(), 204);
    }
    assert_eq!(send(beat(300)).await.expect("beat").status(), 204);
    delivered(
        &got,
        "the serving anomaly",
        json_alert("firing", "serving:spending:not_found_rate"),
    )
    .await;
    assert_eq!(send(beat(10)).await.expect("beat").status(), 204);
    delivered(
        &got,
        "the serving resolve",
        json_alert("resolved", "serving:spending:not_found_rate"),
    )
    .await;
    let serving = get_json(&format!("{api}/v1/serving?view=spending&minutes=5")).await;
    let item = &serving["items"][0];
    assert_eq!(item["lookups"], 7000, "{serving:#}");
    assert_eq!(item["p99_us"], 200, "{serving:#}");
    let mut impossible = beat(10);
    impossible["serving"]["spending"]["not_found"] = json!(2000);
    expect_api_error(send(impossible).await.expect("beat"), 400).await;
    let mut unknown = beat(10);
    unknown["serving"]["spending"]["hits"] = json!(1);
    expect_api_error(send(unknown).await.expect("beat"), 400).await;

    // The alert history: one alert per problem, with its deliveries.
    let open = get_json(&format!("{api}/v1/alerts?status=open")).await;
    let open: Vec<&str> = open["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["fingerprint"].as_str())
        .collect();
    assert!(open.contains(&"check:spending:segment:allowed"), "{open:?}");
    assert!(!open.contains(&"check:spending:spend:not_null"), "{open:?}");
    let resolved = get_json(&format!("{api}/v1/alerts?status=resolved&view=spending")).await;
    let nn = resolved["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|a| a["fingerprint"] == "check:spending:spend:not_null")
        .expect("the resolved not_null alert");
    assert!(nn["resolved_at"].is_string());
    assert!(
        nn["deliveries"].as_array().is_some_and(|d| d.len() >= 2),
        "{nn:#}"
    );
    // A webhook that answers 500 was retried and recorded, and never held a run up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = get_json(&format!("{api}/v1/alerts?view=spending&limit=1000")).await;
        let failed = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .flat_map(|a| a["deliveries"].as_array().cloned().unwrap_or_default())
            .filter(|d| d["ok"] == false && d["status"] == 500 && d["attempt"] == 4)
            .count();
        if failed > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed delivery recorded: {all:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Wrong input: 4xx with a JSON error, never a 5xx.
    let bad = |path: &str| reqwest::get(format!("{api}{path}"));
    for (path, status) in [
        ("/v1/quality/nope", 404),
        ("/v1/quality/spending?version=abc", 400),
        ("/v1/quality/spending?version=999999", 404),
        ("/v1/quality/spending?vesion=1", 400),
        ("/v1/alerts?status=bogus", 400),
        ("/v1/alerts?limit=0", 400),
        ("/v1/alerts?limit=5000", 400),
        ("/v1/serving?minutes=0", 400),
        ("/v1/serving?minutes=x", 400),
    ] {
        expect_api_error(bad(path).await.expect("get"), status).await;
    }
    let serving = get_json(&format!("{api}/v1/serving")).await;
    assert!(serving["items"].is_array(), "{serving:#}");

    // The CLI reads the same registry.
    drop(cp);
    let (ok, out, err) = fstore(&["quality", "show", "spending"], &env, dir);
    assert!(ok, "{err}");
    assert!(
        out.contains("spend") && !out.contains("FAIL") && out.contains("WARN"),
        "{out}"
    );
    let (ok, out, _) = fstore(
        &[
            "quality",
            "show",
            "spending",
            "--version",
            &v2.to_string(),
            "--json",
        ],
        &env,
        dir,
    );
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(shown["published"], false);
    let (ok, out, _) = fstore(&["alerts", "--status", "open"], &env, dir);
    assert!(ok && out.contains("segment"), "{out}");
    for args in [
        &["quality", "show", "nope"][..],
        &["quality", "show", "spending", "--version", "999999"],
        &["quality", "show", "spending", "--version", "x"],
        &["quality", "show"],
        &["alerts", "--status", "bogus"],
        &["alerts", "--limit", "0"],
    ] {
        let (ok, _, err) = fstore(args, &env, dir);
        assert!(!ok, "{args:?} succeeded");
        assert!(
            !err.is_empty() && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
