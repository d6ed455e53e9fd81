//! Catalog, versions and lineage with the real binaries: a control plane and an edge as
//! separate processes over HTTP, the CLI against the same registry. A definition changes
//! compatibly, then breakingly (refused while services read it, allowed once one pins the old
//! version); the edge serves the pinned version beside the new one; a service is rolled back
//! and forward; lineage and impact are read both ways; deletes in use are refused; every wrong
//! input gets a 4xx with a JSON error.

use std::path::Path;
use std::time::{Duration, Instant};

use fstore_tests::{Proc, expect_api_error, fstore, get_json, spawn_server, wait_ok};
use serde_json::{Value, json};

const ENTITIES_AND_SOURCE: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
    description: A retail customer
    owner: crm-team
sources:
  - name: stats_csv
    path: data/stats.csv
    format: csv
    timestamp_field: ts
    description: Daily customer statistics export
    owner: data-eng
"#;

/// Version 1 of the definitions; `spend_description` and `spend_column` vary per step.
fn yaml(spend_description: &str, spend_column: &str, model_a_view: &str, with_c: bool) -> String {
    let mut y = format!(
        r#"{ENTITIES_AND_SOURCE}
feature_views:
  - name: stats
    entities: [customer]
    source: stats_csv
    ttl: 36500d
    owner: growth-team
    tags: [rfm]
    description: Customer spend statistics
    features:
      - {{name: spend_30d, type: float64, column: {spend_column}, description: "{spend_description}", tags: [monetary]}}
      - {{name: orders_30d, type: int64, column: orders, description: Orders placed in the last 30 days}}
      - {{name: tier, type: string, description: Loyalty tier of the customer, tags: [pii], owner: loyalty-team}}
on_demand_views:
  - name: doubled
    sources: [stats]
    features:
      - {{name: double_spend, type: float64, sql: "spend_30d * 2", description: Twice the monthly spend}}
feature_services:
  - name: model_a
    description: Churn model inputs
    features: [{model_a_view}:spend_30d, {model_a_view}:tier]
  - name: model_b
    features: [stats:spend_30d, stats:orders_30d]
"#
    );
    if with_c {
        y.push_str("  - name: model_c\n    features: [doubled:double_spend]\n");
    }
    y
}

/// Data generation `n`: customer 1 spends `n * 100` (gross) and `n * 100 - 1` (net).
fn write_data(dir: &Path, n: u32) {
    let gross = n * 100;
    let csv = format!(
        "customer_id,ts,spend,spend_net,orders,tier\n1,2026-01-01T00:00:00Z,{gross}.0,{}.0,{n},gold\n2,2026-01-01T00:00:00Z,5.0,4.0,1,bronze\n",
        gross - 1
    );
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(dir.join("data/stats.csv"), csv).expect("write csv");
}

struct Env(Vec<(&'static str, String)>);

impl Env {
    fn get(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

fn run(env: &Env, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let (ok, out, err) = fstore(args, &env.get(), dir);
    assert!(!err.contains("panicked"), "fstore {args:?} panicked: {err}");
    (ok, out, err)
}

fn ok(env: &Env, dir: &Path, args: &[&str]) -> String {
    let (success, out, err) = run(env, dir, args);
    assert!(success, "fstore {args:?} failed: {err}");
    out
}

fn fails(env: &Env, dir: &Path, args: &[&str]) -> String {
    let (success, out, err) = run(env, dir, args);
    assert!(!success, "fstore {args:?} should fail; stdout: {out}");
    err
}

fn apply(env: &Env, dir: &Path, text: &str, extra: &[&str]) -> (bool, String, String) {
    std::fs::write(dir.join("features.yaml"), text).expect("yaml");
    let mut args = vec!["apply", "-f", "features.yaml"];
    args.extend_from_slice(extra);
    run(env, dir, &args)
}

async fn lookup(edge: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{edge}/v1/features"))
        .json(&body)
        .send()
        .await
        .expect("lookup");
    assert!(r.status().is_success(), "lookup failed: {}", r.status());
    r.json().await.expect("json")
}

/// Customer 1's first value from `service`.
async fn first_value(edge: &str, service: &str) -> f64 {
    let v = lookup(
        edge,
        json!({"feature_service": service, "entities": {"customer_id": [1]}}),
    )
    .await;
    v["results"][0]["values"][0]
        .as_f64()
        .unwrap_or_else(|| panic!("{v}"))
}

/// Waits until `service` answers `want` for customer 1 (the edge polls every 100 ms).
async fn until_value(edge: &str, service: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = first_value(edge, service).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{service} still answers {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .iter()
        .map(|h| h["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn post(url: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("post")
}

async fn delete(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .delete(url)
        .send()
        .await
        .expect("delete")
}

fn start_edge(env: &Env, dir: &Path, control: &str) -> Proc {
    spawn_server(
        &[
            "serve",
            "edge",
            "--addr",
            "127.0.0.1:0",
            "--poll-interval",
            "100ms",
            "--region",
            "eu-west",
            "--edge-id",
            "edge-1",
            "--control-plane",
            control,
            "--cache-dir",
            &dir.join("edge-cache").to_string_lossy(),
        ],
        &env.get(),
        dir,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_versions_pins_rollbacks_and_lineage_on_sqlite() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp
        .path()
        .join("registry.db")
        .to_string_lossy()
        .into_owned();
    scenario(tmp.path(), db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_versions_pins_rollbacks_and_lineage_on_postgres() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = fstore_tests::TempDb::create();
    scenario(tmp.path(), db.url.clone()).await;
}

/// The whole story against one registry database (SQLite file or PostgreSQL URL).
async fn scenario(dir: &Path, database_url: String) {
    let env = Env(vec![
        ("FSTORE_DATABASE_URL", database_url),
        (
            "FSTORE_STORE_URL",
            dir.join("objects").to_string_lossy().into_owned(),
        ),
        ("FSTORE_LOG", "warn".into()),
    ]);
    write_data(dir, 1);
    let desc1 = "Total spend in the last 30 days";
    let (applied, _, err) = apply(&env, dir, &yaml(desc1, "spend", "stats", true), &[]);
    assert!(applied, "{err}");
    ok(&env, dir, &["materialize"]);

    let cp = spawn_server(
        &["serve", "control-plane", "--addr", "127.0.0.1:0"],
        &env.get(),
        dir,
    );
    let api = cp.url.clone();
    wait_ok(&format!("{api}/healthz"), Duration::from_secs(30)).await;
    let edge = start_edge(&env, dir, &api);
    wait_ok(&format!("{}/readyz", edge.url), Duration::from_secs(30)).await;

    // --- Catalog search: ranked, filtered, highlighted, the same from CLI and REST.
    let r = get_json(&format!(
        "{api}/v1/catalog/search?q=spend%20in%20the%20last%20month"
    ))
    .await;
    assert_eq!(names(&r, "hits")[0], "stats:spend_30d", "{r}");
    let hl = r["hits"][0]["highlights"].to_string();
    assert!(hl.contains("<mark>"), "{hl}");
    let out = ok(&env, dir, &["catalog", "search", "spend in the last month"]);
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.contains("stats:spend_30d")),
        "{out}"
    );
    let r = get_json(&format!("{api}/v1/catalog/search?tag=pii&kind=feature")).await;
    assert_eq!(names(&r, "hits"), ["stats:tier"], "{r}");
    let r = get_json(&format!("{api}/v1/catalog/search?q=orders&type=int64")).await;
    assert_eq!(names(&r, "hits"), ["stats:orders_30d"], "{r}");
    let r = get_json(&format!("{api}/v1/catalog/search?owner=loyalty-team")).await;
    assert_eq!(names(&r, "hits"), ["stats:tier"], "{r}");
    let r = get_json(&format!("{api}/v1/catalog/search?kind=feature_service")).await;
    assert_eq!(names(&r, "hits"), ["model_a", "model_b", "model_c"], "{r}");
    let r = get_json(&format!("{api}/v1/catalog/search?q=spe")).await;
    assert!(
        names(&r, "hits").contains(&"stats:spend_30d".to_string()),
        "prefix: {r}"
    );
    let page = get_json(&format!(
        "{api}/v1/catalog/search?kind=feature&limit=2&offset=2"
    ))
    .await;
    assert_eq!(page["total"], 4, "{page}");
    assert_eq!(page["hits"].as_array().map(Vec::len), Some(2), "{page}");

    // A feature's page.
    let p = get_json(&format!("{api}/v1/features/stats/tier")).await;
    assert_eq!(p["owner"], "loyalty-team", "{p}");
    assert_eq!(p["feature_type"], "string", "{p}");
    assert_eq!(p["source"], "stats_csv", "{p}");
    assert!(p["tags"].to_string().contains("pii"), "{p}");
    assert!(
        p["tags"].to_string().contains("rfm"),
        "view tags are inherited: {p}"
    );
    assert_eq!(p["services"][0]["service"], "model_a", "{p}");
    assert_eq!(p["freshness"]["live_snapshot"], 1, "{p}");
    assert_eq!(p["versions"][0]["change"], "added", "{p}");

    // --- A compatible change: a new description.
    let desc2 = "Gross spend over the last 30 days, refunds included";
    let (applied, out, err) = apply(
        &env,
        dir,
        &yaml(desc2, "spend", "stats", true),
        &["-m", "clarify spend"],
    );
    assert!(applied, "{err}");
    assert!(!out.contains("(breaking)"), "{out}");
    let log = get_json(&format!("{api}/v1/changelog?kind=feature_view&name=stats")).await;
    let last = &log["items"][0];
    assert_eq!(last["action"], "update", "{log}");
    assert_eq!(last["version"], 2, "{log}");
    assert_eq!(last["message"], "clarify spend", "{log}");
    assert_eq!(last["details"]["compatibility"], "compatible", "{log}");
    // The catalog follows: found by its new words, no longer by the old ones.
    let r = get_json(&format!("{api}/v1/catalog/search?q=refunds")).await;
    assert_eq!(names(&r, "hits")[0], "stats:spend_30d", "{r}");

    // --- A breaking change still read by services is refused, with who reads it.
    let breaking = yaml(desc2, "spend_net", "stats", true);
    let (applied, out, err) = apply(&env, dir, &breaking, &[]);
    assert!(!applied, "a breaking change in use must be refused: {out}");
    assert!(out.contains("(breaking)"), "{out}");
    for who in ["model_a", "model_b", "doubled"] {
        assert!(out.contains(who) || err.contains(who), "{who}: {out} {err}");
    }
    let resp = post(&format!("{api}/v1/apply"), json!({"yaml": breaking.replace("data/stats.csv", &dir.join("data/stats.csv").to_string_lossy())})).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json");
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "breaking_change", "{body}");
    assert!(
        body["error"]["details"]["dependents"]
            .to_string()
            .contains("model_b"),
        "{body}"
    );
    // Nothing changed.
    let stats = get_json(&format!("{api}/v1/feature-views/stats")).await;
    assert_eq!(stats["version"], 2, "{stats}");

    // model_a pins the current version; the others accept the change (forced).
    let pinned = yaml(desc2, "spend_net", "stats@v2", true);
    let (applied, out, err) = apply(&env, dir, &pinned, &["--force", "-m", "net spend"]);
    assert!(applied, "{out} {err}");
    assert!(
        out.contains("feature_service `model_b` (reads")
            && !out.contains("feature_service `model_a` (reads"),
        "a pinned service is not affected: {out}"
    );
    let h = ok(&env, dir, &["history", "view", "stats"]);
    assert!(
        h.contains("v3") && h.contains("breaking") && h.contains("net spend"),
        "{h}"
    );
    let d = json_of(&ok(
        &env,
        dir,
        &["diff", "view", "stats", "v2", "v3", "--json"],
    ));
    assert_eq!(d["compatibility"], "breaking", "{d}");
    assert!(
        d["changes"]
            .to_string()
            .contains("features.spend_30d.column"),
        "{d}"
    );
    let d = get_json(&format!("{api}/v1/feature-views/stats/diff?from=1&to=2")).await;
    assert_eq!(d["compatibility"], "compatible", "{d}");

    // The next materialization computes `stats` with definition 3 and `stats@v2` with the
    // definition model_a pins, side by side.
    ok(&env, dir, &["materialize"]);
    until_value(&edge.url, "model_b", 99.0).await;
    until_value(&edge.url, "model_a", 100.0).await;
    let v: Value = post(
        &format!("{}/get-online-features", edge.url),
        json!({"feature_service": "model_a", "entities": {"customer_id": [1]}, "full_feature_names": true}),
    )
    .await
    .json()
    .await
    .expect("json");
    let feature_names = v["metadata"]["feature_names"].to_string();
    assert!(
        feature_names.contains("\"stats__spend_30d\"") && !feature_names.contains('@'),
        "pinning keeps names: {v}"
    );
    let v = lookup(
        &edge.url,
        json!({"features": ["stats:spend_30d"], "entities": {"customer_id": [1]}}),
    )
    .await;
    assert_eq!(v["results"][0]["values"][0], 99.0, "{v}");

    // --- Rollback: new data is published, then model_b goes back to the version before.
    let before = get_json(&format!("{api}/v1/versions")).await["live"]
        .as_u64()
        .expect("live");
    write_data(dir, 2);
    ok(&env, dir, &["materialize"]);
    until_value(&edge.url, "model_b", 199.0).await;
    until_value(&edge.url, "model_a", 200.0).await;
    let out = ok(
        &env,
        dir,
        &["rollback", "model_b", "--to-version", &before.to_string()],
    );
    assert!(out.contains("model_b now reads `stats`"), "{out}");
    until_value(&edge.url, "model_b", 99.0).await;
    // Only that service: the pinned one and direct reads stay on the newest data.
    assert_eq!(first_value(&edge.url, "model_a").await, 200.0);
    let rb = get_json(&format!("{api}/v1/rollbacks")).await;
    assert_eq!(rb["items"][0]["service"], "model_b", "{rb}");
    let p = get_json(&format!("{api}/v1/features/stats/spend_30d")).await;
    assert!(p["services"].to_string().contains("rolled_back_to"), "{p}");
    // Every served value traces to a snapshot, and the snapshot to its inputs.
    let v = lookup(
        &edge.url,
        json!({"feature_service": "model_b", "entities": {"customer_id": [1]}}),
    )
    .await;
    let (slot, version) = v["views"]
        .as_object()
        .and_then(|m| m.iter().next())
        .map(|(k, v)| (k.clone(), v.as_u64().expect("version")))
        .expect("views");
    assert!(slot.starts_with("stats#"), "{v}");
    let rec = get_json(&format!(
        "{api}/v1/snapshots/{}/{version}",
        slot.replace('#', "%23")
    ))
    .await;
    let input = &rec["lineage"]["inputs"][0];
    assert!(
        input["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("stats.csv")),
        "{rec}"
    );
    assert!(input["size_bytes"].as_u64().is_some_and(|s| s > 0), "{rec}");
    assert!(
        input["e_tag"].as_str().is_some_and(|e| !e.is_empty()),
        "{rec}"
    );
    assert_eq!(input["rows"], 2, "{rec}");
    assert_eq!(rec["definition_version"], 3, "{rec}");
    // Undo: back to the live snapshot.
    let resp = delete(&format!("{api}/v1/rollbacks/model_b")).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    until_value(&edge.url, "model_b", 199.0).await;
    // A pinned service rolls back too: to the snapshot its pinned slot had then.
    ok(
        &env,
        dir,
        &["rollback", "model_a", "--to-version", &before.to_string()],
    );
    until_value(&edge.url, "model_a", 100.0).await;
    let rb = get_json(&format!("{api}/v1/rollbacks")).await;
    assert_eq!(rb["items"][0]["view"], "stats@v2", "{rb}");
    assert_eq!(rb["items"][0]["snapshot_view"], "stats@v2", "{rb}");
    ok(&env, dir, &["rollback", "model_a", "--clear"]);
    until_value(&edge.url, "model_a", 200.0).await;
    let log = get_json(&format!(
        "{api}/v1/changelog?kind=feature_service&name=model_b"
    ))
    .await;
    let actions: Vec<&str> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.starts_with(&["rollback_clear", "rollback"]),
        "{log}"
    );

    // --- Lineage, both directions, and impact.
    let tree = ok(&env, dir, &["lineage", "source", "stats_csv"]);
    for n in [
        "feature_view stats",
        "on_demand_view doubled",
        "feature_service model_c",
    ] {
        assert!(tree.contains(n), "{n} missing from\n{tree}");
    }
    let up = get_json(&format!(
        "{api}/v1/lineage/feature_service/model_a?direction=upstream"
    ))
    .await;
    let ids = up["nodes"].to_string();
    assert!(
        ids.contains("stats_csv") && ids.contains("\"customer\""),
        "{up}"
    );
    assert!(up["links"].to_string().contains("pins v2"), "{up}");
    let down = get_json(&format!(
        "{api}/v1/lineage/feature_view/stats?direction=downstream&depth=1"
    ))
    .await;
    assert!(
        !down["nodes"].to_string().contains("model_c"),
        "depth 1 stops before services of doubled: {down}"
    );
    let dot = reqwest::get(format!(
        "{api}/v1/lineage/source/stats_csv?format=dot&direction=downstream"
    ))
    .await
    .expect("dot")
    .text()
    .await
    .expect("text");
    assert!(
        dot.starts_with("digraph") && dot.contains("model_b"),
        "{dot}"
    );
    let impact = get_json(&format!("{api}/v1/impact/source/stats_csv")).await;
    assert_eq!(impact["feature_views"], json!(["stats"]), "{impact}");
    assert_eq!(impact["on_demand_views"], json!(["doubled"]), "{impact}");
    assert_eq!(
        impact["feature_services"],
        json!(["model_a", "model_b", "model_c"]),
        "{impact}"
    );
    // The edge reported in: the fleet and the lineage reach it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let edges = get_json(&format!("{api}/v1/edges")).await;
        let e = &edges["items"][0];
        if e["id"] == "edge-1" && e["manifest_seq"].as_u64() >= Some(before) {
            assert_eq!(e["status"], "up", "{edges}");
            assert_eq!(e["region"], "eu-west", "{edges}");
            break;
        }
        assert!(Instant::now() < deadline, "edge never reported: {edges}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let impact = get_json(&format!("{api}/v1/impact/feature_view/stats")).await;
    assert_eq!(impact["edges"], json!(["edge-1"]), "{impact}");

    // --- Deletes that would break dependents are refused; forced ones take them along.
    let err = fails(&env, dir, &["delete", "source", "stats_csv"]);
    assert!(err.contains("feature_view `stats`"), "{err}");
    let code = expect_api_error(
        delete(&format!("{api}/v1/on-demand-views/doubled")).await,
        409,
    )
    .await;
    assert_eq!(code, "in_use");
    let r = delete(&format!("{api}/v1/on-demand-views/doubled?force=true")).await;
    assert!(r.status().is_success(), "{}", r.status());
    let r: Value = r.json().await.expect("json");
    assert_eq!(
        r["deleted"],
        json!([
            ["on_demand_view", "doubled"],
            ["feature_service", "model_c"]
        ]),
        "{r}"
    );
    let r = delete(&format!("{api}/v1/feature-services/model_b")).await;
    assert!(r.status().is_success(), "{}", r.status());
    let r = get_json(&format!("{api}/v1/catalog/search?kind=feature_service")).await;
    assert_eq!(names(&r, "hits"), ["model_a"], "{r}");

    // --- A pin of a version no snapshot was computed with: the service keeps being served
    // as before until the next materialization computes it.
    let late = |model_a: &str, extra: bool| {
        let y = yaml(desc2, "spend_net", "stats@v2", false);
        let (head, tail) = y.split_once("on_demand_views:").expect("odv");
        let services = &tail[tail.find("feature_services:").expect("services")..];
        let mut y = format!("{head}{services}")
            .replace(
                "  - name: model_b\n    features: [stats:spend_30d, stats:orders_30d]\n",
                "",
            )
            .replace("[stats@v2:spend_30d, stats@v2:tier]", model_a);
        if extra {
            y = y.replace(
                "      - {name: tier,",
                "      - {name: orders_total, type: int64, column: orders, description: Orders ever}\n      - {name: tier,",
            );
        }
        y
    };
    let (applied, out, err) = apply(
        &env,
        dir,
        &late("[stats@v2:spend_30d, stats@v2:tier]", true),
        &[],
    );
    assert!(applied && !out.contains("(breaking)"), "{out} {err}");
    let v4 = "[stats@v4:spend_30d, stats@v4:tier, stats@v4:orders_total]";
    let (applied, out, err) = apply(&env, dir, &late(v4, true), &[]);
    assert!(applied, "{out} {err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        first_value(&edge.url, "model_a").await,
        200.0,
        "still served as before"
    );
    ok(&env, dir, &["materialize"]);
    until_value(&edge.url, "model_a", 199.0).await;
    // A rollback to a snapshot without a feature the service reads is refused.
    let snaps = get_json(&format!("{api}/v1/snapshots?view=stats")).await;
    let old_snapshot = snaps["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["definition_version"] == 3))
        .and_then(|i| i["version"].as_u64())
        .unwrap_or_else(|| panic!("a snapshot made with definition 3: {snaps}"));
    let resp = post(
        &format!("{api}/v1/rollbacks/model_a"),
        json!({"view": "stats@v4", "snapshot": old_snapshot}),
    )
    .await;
    assert_eq!(expect_api_error(resp, 409).await, "snapshot_incompatible");

    // --- Wrong input: a 4xx with a JSON error, never a 5xx.
    for (url, status) in [
        (format!("{api}/v1/catalog/search?limit=0"), 400),
        (format!("{api}/v1/catalog/search?limit=abc"), 400),
        (format!("{api}/v1/catalog/search?colour=red"), 400),
        (format!("{api}/v1/catalog/search?kind=planet"), 400),
        (format!("{api}/v1/features/stats/nope"), 404),
        (format!("{api}/v1/features/nope/spend_30d"), 404),
        (format!("{api}/v1/feature-views/nope/versions"), 404),
        (format!("{api}/v1/feature-views/stats/diff?from=1"), 400),
        (
            format!("{api}/v1/feature-views/stats/diff?from=1&to=x"),
            400,
        ),
        (
            format!("{api}/v1/feature-views/stats/diff?from=1&to=99"),
            404,
        ),
        (format!("{api}/v1/planets/stats/versions"), 404),
        (format!("{api}/v1/changelog?limit=0"), 400),
        (format!("{api}/v1/changelog?before=x"), 400),
        (format!("{api}/v1/lineage/planet/x"), 404),
        (format!("{api}/v1/lineage/source/nope"), 404),
        (
            format!("{api}/v1/lineage/source/stats_csv?direction=sideways"),
            400,
        ),
        (format!("{api}/v1/lineage/source/stats_csv?format=png"), 400),
        (format!("{api}/v1/lineage/source/stats_csv?depth=-1"), 400),
        (format!("{api}/v1/impact/feature_view/nope"), 404),
        (format!("{api}/v1/snapshots/stats/x"), 400),
        (format!("{api}/v1/snapshots/stats/999"), 404),
    ] {
        let resp = reqwest::get(&url).await.expect("get");
        assert_eq!(resp.status().as_u16(), status, "{url}");
        expect_api_error(resp, status).await;
    }
    for (body, status) in [
        (json!({}), 400),
        (json!({"to_version": 999_999}), 404),
        (json!({"view": "stats"}), 400),
        (json!({"view": "nope", "snapshot": 1}), 400),
        (json!({"view": "stats@v4", "snapshot": 999}), 404),
        (
            json!({"to_version": 1, "view": "stats", "snapshot": 1}),
            400,
        ),
        (json!({"to_version": "one"}), 400),
        (json!({"colour": "red"}), 400),
    ] {
        let resp = post(&format!("{api}/v1/rollbacks/model_a"), body.clone()).await;
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let code = expect_api_error(resp, status).await;
        assert!(!code.is_empty(), "{body}");
    }
    expect_api_error(
        post(
            &format!("{api}/v1/rollbacks/nope"),
            json!({"to_version": 1}),
        )
        .await,
        404,
    )
    .await;
    expect_api_error(delete(&format!("{api}/v1/rollbacks/model_a")).await, 404).await;
    expect_api_error(delete(&format!("{api}/v1/feature-views/nope")).await, 404).await;
    expect_api_error(delete(&format!("{api}/v1/planets/x")).await, 404).await;
    expect_api_error(
        post(&format!("{api}/v1/edges/heartbeat"), json!({"id": "x"})).await,
        400,
    )
    .await;
    // The CLI refuses the same with a message, never a panic.
    for args in [
        &["history", "planet", "x"][..],
        &["history", "view", "nope"],
        &["diff", "view", "stats", "v1", "vx"],
        &["lineage", "planet", "x"],
        &["impact", "view", "nope"],
        &["rollback", "model_a"],
        &["rollback", "model_a", "--to-version", "999999"],
        &["delete", "view", "nope"],
        &["catalog", "search", "x", "--limit", "0"],
        &["catalog", "show", "no-colon"],
    ] {
        let err = fails(&env, dir, args);
        assert!(
            err.contains("Error") || err.contains("error"),
            "{args:?}: {err}"
        );
    }
    drop(edge);
    drop(cp);
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}
