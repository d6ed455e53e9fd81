//! Time travel with the real `fstore` binary: three publishes of different data, each read back
//! with `get --version` and `get --as-of` from the object store alone, answering exactly what an
//! edge answers; retention deleting the oldest version's objects; `GET /v1/versions`; and every
//! wrong input refused with a clear message.

use std::path::Path;
use std::time::Duration;

use fstore_tests::{expect_api_error, fstore, get_json, spawn_server, wait_ok};
use serde_json::Value;

/// A feature view from a CSV file, an on-demand view compiled from SQL to a WebAssembly
/// component, and a service reading both.
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
      - {name: tier, type: string}
on_demand_views:
  - name: doubled
    sources: [stats]
    features:
      - {name: double_spend, type: float64, sql: "spend * 2"}
feature_services:
  - name: svc
    features: [stats:spend, stats:tier, doubled:double_spend]
"#;

/// Version `n`'s data: customer 1 spends `n * 10 + 0.5`; customer 3 exists from version 3 on.
fn write_data(dir: &Path, n: u32) {
    let tier = ["", "bronze", "silver", "gold"][n as usize];
    let mut csv = format!(
        "customer_id,ts,spend,tier\n1,2026-01-01T00:00:00Z,{}.5,{tier}\n2,2026-01-01T00:00:00Z,1.0,bronze\n",
        n * 10
    );
    if n >= 3 {
        csv.push_str("3,2026-01-02T00:00:00Z,99.0,gold\n");
    }
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(dir.join("data/stats.csv"), csv).expect("write csv");
}

struct Env {
    vars: Vec<(&'static str, String)>,
}

impl Env {
    fn new(dir: &Path) -> Self {
        Self {
            vars: vec![
                ("FSTORE_DATABASE_URL", path(&dir.join("registry.db"))),
                ("FSTORE_STORE_URL", path(&dir.join("objects"))),
                // The default, explicitly: a developer's environment must not change the test.
                ("FSTORE_RETAIN_VERSIONS", "20".into()),
                ("FSTORE_LOG", "warn".into()),
            ],
        }
    }

    fn with(&self, key: &'static str, value: &str) -> Self {
        let mut vars = self.vars.clone();
        vars.push((key, value.into()));
        Self { vars }
    }

    fn get(&self) -> Vec<(&str, &str)> {
        self.vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs `fstore` and asserts it succeeded; returns stdout.
fn ok(env: &Env, dir: &Path, args: &[&str]) -> String {
    let (success, out, err) = fstore(args, &env.get(), dir);
    assert!(success, "fstore {args:?} failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    out
}

/// Runs `fstore`, asserts it failed without panicking; returns stderr.
fn fails(env: &Env, dir: &Path, args: &[&str]) -> String {
    let (success, out, err) = fstore(args, &env.get(), dir);
    assert!(
        !success,
        "fstore {args:?} should have failed; stdout: {out}"
    );
    assert!(!err.contains("panicked"), "fstore {args:?} panicked: {err}");
    err
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

const ENTITIES: [&str; 6] = [
    "--service",
    "svc",
    "--entity",
    "customer_id=1",
    "--entity",
    "customer_id=3",
];

fn get(env: &Env, dir: &Path, how: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(how);
    args.extend_from_slice(&ENTITIES);
    json(&ok(env, dir, &args))
}

/// Customer 1's spend, its double (computed by the on-demand view's component) and customer
/// 3's status, as one version answers them.
fn summary(v: &Value) -> (f64, f64, String, String) {
    let r = &v["results"];
    (
        r[0]["values"][0].as_f64().unwrap_or_else(|| panic!("{v}")),
        r[0]["values"][2].as_f64().unwrap_or_else(|| panic!("{v}")),
        r[0]["values"][1].as_str().unwrap_or_default().to_string(),
        r[1]["statuses"][0].as_str().unwrap_or_default().to_string(),
    )
}

fn expected(n: u32) -> (f64, f64, String, String) {
    let spend = f64::from(n * 10) + 0.5;
    let tier = ["", "bronze", "silver", "gold"][n as usize];
    let c3 = if n >= 3 { "PRESENT" } else { "NOT_FOUND" };
    (spend, spend * 2.0, tier.into(), c3.into())
}

fn exists(dir: &Path, key: &str) -> bool {
    dir.join("objects").join(key).exists()
}

fn snapshot(version: u64) -> String {
    format!("snapshots/stats/{version:020}.fss")
}

fn manifest(seq: u64) -> String {
    format!("manifests/{seq:020}.json")
}

/// The `created_at` of every kept version, by seq.
fn created_at(env: &Env, dir: &Path) -> Vec<(u64, String)> {
    let v = json(&ok(env, dir, &["versions", "--json"]));
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["seq"].as_u64().expect("seq"),
                i["created_at"].as_str().expect("created_at").to_string(),
            )
        })
        .collect()
}

/// One millisecond before an RFC 3339 time.
fn just_before(t: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(t).expect("created_at is RFC 3339");
    (t - chrono::Duration::milliseconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_version_answers_until_retention_prunes_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let env = Env::new(dir);
    std::fs::write(dir.join("features.yaml"), YAML).expect("yaml");
    write_data(dir, 1);

    // Before anything is published, every way of asking says so.
    for how in [&["--version", "1"][..], &["--as-of", "2026-05-01"][..]] {
        let mut args = vec!["get"];
        args.extend_from_slice(how);
        args.extend_from_slice(&ENTITIES);
        let err = fails(&env, dir, &args);
        assert!(err.contains("nothing has been published"), "{err}");
    }
    let err = fails(&env, dir, &["versions"]);
    assert!(err.contains("nothing has been published"), "{err}");

    ok(&env, dir, &["apply", "-f", "features.yaml"]);
    for n in 1..=2 {
        write_data(dir, n);
        let out = ok(&env, dir, &["materialize"]);
        assert!(out.contains(&format!("(manifest {n})")), "{out}");
        // Keeps consecutive publishes at least a millisecond apart (created_at has millisecond
        // precision), so "just before version n" is never also version n - 1's instant.
        std::thread::sleep(Duration::from_millis(5));
    }

    // Both versions answer, with their own data and the on-demand view computed over it.
    for n in 1..=2u32 {
        let v = get(&env, dir, &["--version", &n.to_string()]);
        assert_eq!(v["manifest"], n, "{v}");
        assert_eq!(summary(&v), expected(n), "version {n}: {v}");
    }
    let versions = created_at(&env, dir);
    assert_eq!(versions.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [2, 1]);
    let table = ok(&env, dir, &["versions"]);
    assert!(
        table.contains("*      2") && table.contains("stats@2") && table.contains("stats@1"),
        "{table}"
    );

    // The third publish keeps only two versions: version 1 goes.
    write_data(dir, 3);
    let out = ok(&env, dir, &["--retain-versions", "2", "materialize"]);
    assert!(out.contains("(manifest 3)"), "{out}");
    assert!(!exists(dir, &manifest(1)) && !exists(dir, &snapshot(1)));
    for key in [manifest(2), manifest(3), snapshot(2), snapshot(3)] {
        assert!(exists(dir, &key), "{key} was pruned");
    }
    // Components are never pruned: the on-demand view of every version still runs.
    let transforms = std::fs::read_dir(dir.join("objects/transforms"))
        .expect("transforms/")
        .count();
    assert!(transforms > 0);

    let err = fails(
        &env,
        dir,
        &[&["get", "--version", "1"][..], &ENTITIES].concat(),
    );
    assert!(
        err.contains("version 1")
            && err.contains("pruned")
            && err.contains("oldest version kept is 2"),
        "{err}"
    );
    for n in 2..=3u32 {
        let v = get(&env, dir, &["--version", &n.to_string()]);
        assert_eq!(summary(&v), expected(n), "version {n}: {v}");
    }

    // --as-of: the version live at an instant, bounds inclusive.
    let versions = created_at(&env, dir);
    assert_eq!(versions.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3, 2]);
    let (t3, t2) = (versions[0].1.clone(), versions[1].1.clone());
    for (at, n) in [
        (t2.clone(), 2),
        (just_before(&t3), 2),
        (t3.clone(), 3),
        ("2999-01-01".to_string(), 3),
    ] {
        let v = get(&env, dir, &["--as-of", &at]);
        assert_eq!(v["manifest"], n, "as of {at}: {v}");
        assert_eq!(summary(&v), expected(n), "as of {at}: {v}");
    }
    // Before the oldest kept version: nothing was live (that we still know of).
    let err = fails(
        &env,
        dir,
        &[&["get", "--as-of", &just_before(&t2)][..], &ENTITIES].concat(),
    );
    assert!(
        err.contains("nothing was live")
            && err.contains("oldest version kept, 2")
            && err.contains(&t2),
        "{err}"
    );
    let err = fails(
        &env,
        dir,
        &[&["get", "--as-of", "2000-01-01"][..], &ENTITIES].concat(),
    );
    assert!(
        err.contains("nothing was live") && err.contains("2000-01-01T00:00:00Z"),
        "{err}"
    );

    // The live version read from the store is byte for byte what an edge answers.
    let edge = spawn_server(
        &[
            "serve",
            "edge",
            "--addr",
            "127.0.0.1:0",
            "--poll-interval",
            "100ms",
            "--cache-dir",
            "edge-cache",
        ],
        &env.get(),
        dir,
    );
    wait_ok(&format!("{}/readyz", edge.url), Duration::from_secs(30)).await;
    let mut from_edge = vec!["get", "--edge", &edge.url];
    from_edge.extend_from_slice(&ENTITIES);
    let edge_out = ok(&env, dir, &from_edge);
    let store_out = ok(
        &env,
        dir,
        &[&["get", "--version", "3"][..], &ENTITIES].concat(),
    );
    assert_eq!(store_out, edge_out);
    // With FSTORE_EDGE_URL exported, `--version` still reads the store rather than conflict.
    let with_edge_env = env.with("FSTORE_EDGE_URL", &edge.url);
    let out = ok(
        &with_edge_env,
        dir,
        &[&["get", "--version", "2"][..], &ENTITIES].concat(),
    );
    assert_eq!(summary(&json(&out)), expected(2));
    // And plain `get` still asks the edge named there.
    let out = ok(&with_edge_env, dir, &[&["get"][..], &ENTITIES].concat());
    assert_eq!(out, edge_out);

    // The control plane lists the same versions.
    let control = spawn_server(
        &["serve", "control-plane", "--addr", "127.0.0.1:0"],
        &env.get(),
        dir,
    );
    let v = get_json(&format!("{}/v1/versions", control.url)).await;
    assert_eq!(v["live"], 3, "{v}");
    assert_eq!(v["retain_versions"], 20, "{v}");
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{v}");
    assert_eq!(
        (
            &items[0]["seq"],
            &items[0]["live"],
            &items[0]["views"]["stats"]
        ),
        (&Value::from(3), &Value::from(true), &Value::from(3))
    );
    assert_eq!(items[1]["created_at"], t2.as_str());
    let m = get_json(&format!("{}/v1/versions/2", control.url)).await;
    assert_eq!(m["views"]["stats"]["version"], 2, "{m}");
    let c = reqwest::Client::new();
    let r = c
        .get(format!("{}/v1/versions/1", control.url))
        .send()
        .await
        .expect("get");
    assert_eq!(expect_api_error(r, 404).await, "version_not_found");
    let r = c
        .get(format!("{}/v1/versions/latest", control.url))
        .send()
        .await
        .expect("get");
    assert_eq!(expect_api_error(r, 400).await, "bad_request");
    let r = c
        .get(format!("{}/v1/versions?limit=3", control.url))
        .send()
        .await
        .expect("get");
    assert_eq!(expect_api_error(r, 400).await, "bad_request");
}

#[test]
fn wrong_time_travel_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let env = Env::new(dir);
    std::fs::write(dir.join("features.yaml"), YAML).expect("yaml");
    write_data(dir, 1);
    ok(&env, dir, &["apply", "-f", "features.yaml"]);
    ok(&env, dir, &["materialize"]);

    let cases: [(&[&str], &[&str]); 9] = [
        (
            &["--version", "7"],
            &["version 7", "not been published", "live version is 1"],
        ),
        (&["--version", "0"], &["version 0", "start at 1"]),
        (&["--version", "two"], &["two", "--version"]),
        (&["--as-of", "yesterday"], &["yesterday", "RFC 3339"]),
        (&["--as-of", "2026-13-01"], &["2026-13-01", "RFC 3339"]),
        (
            &["--as-of", "2026-05-01 12:00"],
            &["2026-05-01 12:00", "RFC 3339"],
        ),
        (
            &["--version", "1", "--as-of", "2026-05-01"],
            &["cannot be used with"],
        ),
        (
            &["--version", "1", "--edge", "http://127.0.0.1:1"],
            &["cannot be used with"],
        ),
        (
            &["--as-of", "2026-05-01", "--edge", "http://127.0.0.1:1"],
            &["cannot be used with"],
        ),
    ];
    for (how, wanted) in cases {
        let err = fails(&env, dir, &[&["get"][..], how, &ENTITIES].concat());
        for w in wanted {
            assert!(err.contains(w), "get {how:?}: `{w}` missing from: {err}");
        }
    }

    // A request the version cannot answer: the edge's JSON error on stdout, the reason on stderr.
    let (success, out, err) = fstore(
        &[
            "get",
            "--version",
            "1",
            "--features",
            "stats:nope",
            "--entity",
            "customer_id=1",
        ],
        &env.get(),
        dir,
    );
    assert!(!success && !err.contains("panicked"), "{err}");
    assert_eq!(json(&out)["error"]["code"], "unknown_feature", "{out}");
    assert!(
        err.contains("published version 1") && err.contains("nope"),
        "{err}"
    );

    // A store that is not one.
    let err = fails(
        &env,
        dir,
        &[
            &["--store", "ftp://x/y", "get", "--version", "1"][..],
            &ENTITIES,
        ]
        .concat(),
    );
    assert!(err.contains("unsupported scheme"), "{err}");
}

/// The same on an S3 server: listing, reading back and deleting versions under a prefix.
#[test]
fn retention_and_time_travel_on_s3() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let s3 = fstore_tests::S3Server::start("fstore-tt");
    let mut env = Env::new(dir);
    env.vars.retain(|(k, _)| *k != "FSTORE_STORE_URL");
    env.vars
        .push(("FSTORE_STORE_URL", "s3://fstore-tt/published".into()));
    env.vars.extend(s3.env());
    std::fs::write(dir.join("features.yaml"), YAML).expect("yaml");
    write_data(dir, 1);
    ok(&env, dir, &["apply", "-f", "features.yaml"]);
    for n in 1..=3 {
        write_data(dir, n);
        let out = ok(&env, dir, &["--retain-versions", "2", "materialize"]);
        assert!(out.contains(&format!("(manifest {n})")), "{out}");
    }
    let kept: Vec<u64> = created_at(&env, dir).iter().map(|(s, _)| *s).collect();
    assert_eq!(kept, [3, 2]);
    for n in 2..=3u32 {
        let v = get(&env, dir, &["--version", &n.to_string()]);
        assert_eq!(summary(&v), expected(n), "version {n}: {v}");
    }
    let err = fails(
        &env,
        dir,
        &[&["get", "--version", "1"][..], &ENTITIES].concat(),
    );
    assert!(err.contains("pruned"), "{err}");
    // Version 1's snapshot is gone from the bucket, the kept ones are not.
    let store = s3.store("s3://fstore-tt/published");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let snapshots = rt.block_on(store.list("snapshots/")).expect("list");
    assert_eq!(snapshots, [snapshot(2), snapshot(3)]);
    let manifests = rt.block_on(store.manifest_seqs()).expect("list");
    assert_eq!(manifests, [2, 3]);
}
