//! Access control end to end: a control plane (registry on PostgreSQL) and an edge as real
//! processes with authentication on, tokens made with the CLI. Every role × every action over
//! REST, the CLI and the edge, allowed or refused as declared; PII masked by policy at the
//! edge and in training sets; a revoked token refused by the running edge within its poll
//! interval; PII reads audited by the edge and shipped even across a control-plane outage; a
//! tampered audit record detected.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use fstore_tests::{Proc, TempDb, fstore, quickstart_data, spawn_server, wait_ok};
use serde_json::{Value, json};

const ROLES: [&str; 7] = [
    "admin", "author", "operator", "consumer", "auditor", "edge", "support",
];

/// The quickstart's definitions with two more PII features: one truncated, one redacted.
fn features_yaml() -> String {
    let y = fstore_tests::test_features_yaml();
    let y = y.replace(
        "{name: signup_channel, type: string}",
        "{name: signup_channel, type: string, tags: [pii], mask: {truncate: 2}}",
    );
    let y = y.replace(
        "{name: style_vector, type: \"list<float64>\", description: Taste embedding from the CRM.}",
        "{name: style_vector, type: \"list<float64>\", tags: [pii], description: Taste embedding from the CRM.}",
    );
    // Raw orders are kept 60 days (applied only at the end of the test).
    let y = y.replace(
        "    timestamp_field: order_ts\n",
        "    timestamp_field: order_ts\n    retention: 60d\n",
    );
    assert!(y.contains("mask: {truncate: 2}") && y.contains("tags: [pii], description: Taste"));
    assert!(y.contains("retention: 60d"));
    y
}

struct Fleet {
    dir: tempfile::TempDir,
    db: TempDb,
    cp: Option<Proc>,
    cp_addr: String,
    _edge: Option<Proc>,
    edge_url: String,
    tokens: BTreeMap<String, String>,
    public_key: String,
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

impl Fleet {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("FSTORE_DATABASE_URL", self.db.url.clone()),
            (
                "FSTORE_STORE_URL",
                self.dir
                    .path()
                    .join("objects")
                    .to_string_lossy()
                    .into_owned(),
            ),
            ("FSTORE_AUTH", "on".into()),
        ]
    }

    /// `fstore <args>` as the local admin (no token) or as `role`'s token.
    fn cli(&self, role: Option<&str>, args: &[&str]) -> (bool, String, String) {
        let mut env = self.env();
        if let Some(r) = role {
            env.push(("FSTORE_TOKEN", self.tokens[r].clone()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        fstore(args, &env, self.dir.path())
    }

    fn cp_url(&self) -> String {
        format!("http://{}", self.cp_addr)
    }

    fn start_cp(&mut self) {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.cp = Some(spawn_server(
            &[
                "serve",
                "control-plane",
                "--addr",
                &self.cp_addr,
                "--no-scheduler",
            ],
            &env,
            self.dir.path(),
        ));
    }

    /// A new token made by the local admin with `fstore token create`.
    fn new_token(&self, role: &str, name: &str) -> String {
        let (ok, out, err) = self.cli(
            None,
            &["token", "create", "--role", role, "--name", name, "--json"],
        );
        assert!(ok, "token create {name}: {out}{err}");
        serde_json::from_str::<Value>(&out).expect("json")["token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    fn token(&self, role: &str) -> &str {
        &self.tokens[role]
    }

    /// The PII hashing key, read from the access document in the store (as an edge does).
    fn pii_key(&self) -> Vec<u8> {
        let bytes = std::fs::read(self.dir.path().join("objects/access.json")).expect("doc");
        let doc = fstore_access::verify_doc(&bytes, &self.public_key).expect("verifies");
        hex_decode(&doc.pii_key)
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

async fn start() -> Fleet {
    let dir = tempfile::tempdir().expect("tmp");
    quickstart_data(dir.path(), 200);
    std::fs::write(dir.path().join("features.yaml"), features_yaml()).expect("yaml");
    let mut fleet = Fleet {
        dir,
        db: TempDb::create(),
        cp: None,
        cp_addr: free_addr(),
        _edge: None,
        edge_url: String::new(),
        tokens: BTreeMap::new(),
        public_key: String::new(),
    };
    // The local admin bootstraps: definitions, a snapshot, a custom role and a token per role.
    let (ok, out, err) = fleet.cli(None, &["apply", "-f", "features.yaml"]);
    assert!(ok, "apply: {out}{err}");
    let (ok, out, err) = fleet.cli(None, &["materialize"]);
    assert!(ok, "materialize: {out}{err}");
    let (ok, out, err) = fleet.cli(
        None,
        &[
            "role",
            "create",
            "support",
            "--permission",
            "describe,read_online,read_pii:feature_view,feature_service:customer_*",
            "--description",
            "reads customer features unmasked",
        ],
    );
    assert!(ok, "role create: {out}{err}");
    for role in ROLES {
        let (ok, out, err) = fleet.cli(
            None,
            &["token", "create", "--role", role, "--name", role, "--json"],
        );
        assert!(ok, "token create {role}: {out}{err}");
        let v: Value = serde_json::from_str(&out).expect("json");
        let t = v["token"].as_str().expect("token").to_string();
        assert!(t.starts_with("fst_"));
        assert!(v.get("secret_sha256").is_none(), "the hash is never shown");
        fleet.tokens.insert(role.to_string(), t);
    }
    let (ok, key, err) = fleet.cli(None, &["auth", "public-key"]);
    assert!(ok, "{err}");
    fleet.public_key = key.trim().to_string();

    fleet.start_cp();
    wait_ok(
        &format!("{}/healthz", fleet.cp_url()),
        Duration::from_secs(60),
    )
    .await;
    let cache = fleet.dir.path().join("edge-cache");
    let env = fleet.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let edge = spawn_server(
        &[
            "serve",
            "edge",
            "--addr",
            "127.0.0.1:0",
            "--poll-interval",
            "1s",
            "--control-plane",
            &fleet.cp_url(),
            "--edge-id",
            "edge-a",
            "--cache-dir",
            &cache.to_string_lossy(),
            "--auth-public-key",
            &fleet.public_key,
            "--control-plane-token",
            fleet.token("edge"),
        ],
        &env,
        fleet.dir.path(),
    );
    fleet.edge_url = edge.url.clone();
    fleet._edge = Some(edge);
    wait_ok(
        &format!("{}/readyz", fleet.edge_url),
        Duration::from_secs(60),
    )
    .await;
    fleet
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn send(req: reqwest::RequestBuilder, token: Option<&str>) -> (u16, Value) {
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn allowed(action: &str, role: &str) -> bool {
    let table: &[(&str, &[&str])] = &[
        (
            "describe",
            &[
                "admin", "author", "operator", "consumer", "auditor", "support",
            ],
        ),
        ("create", &["admin", "author"]),
        ("update", &["admin", "author"]),
        ("delete", &["admin", "author"]),
        ("read_online", &["admin", "consumer", "support"]),
        ("read_offline", &["admin", "consumer"]),
        ("write_online", &["admin", "operator"]),
        ("materialize", &["admin", "operator"]),
        ("read_audit", &["admin", "auditor"]),
        ("manage_access", &["admin"]),
        ("report", &["admin", "edge"]),
    ];
    table
        .iter()
        .find(|(a, _)| *a == action)
        .is_some_and(|(_, roles)| roles.contains(&role))
}

/// Checks a refusal's body: 403 names the missing action; 401 says what is wrong.
fn assert_refused(status: u16, body: &Value, action: &str, what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(body["error"]["code"], "forbidden", "{what}: {body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(&format!("`{action}`")), "{what}: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_and_action_over_rest_cli_and_edge() {
    let mut fleet = start().await;
    let c = client();
    let cp = fleet.cp_url();
    let edge = fleet.edge_url.clone();
    let dir = fleet.dir.path().to_path_buf();
    let base_yaml = fstore_tests::absolute_features_yaml(dir.as_path())
        .replace(
            "    timestamp_field: order_ts\n",
            "    timestamp_field: order_ts\n    retention: 60d\n",
        )
        .replace(
            "{name: signup_channel, type: string}",
            "{name: signup_channel, type: string, tags: [pii], mask: {truncate: 2}}",
        )
        .replace(
            "{name: style_vector, type: \"list<float64>\", description: Taste embedding from the CRM.}",
            "{name: style_vector, type: \"list<float64>\", tags: [pii], description: Taste embedding from the CRM.}",
        );
    let restore = |c: reqwest::Client, yaml: String, token: String, cp: String| async move {
        let (s, b) = send(
            c.post(format!("{cp}/v1/apply?force=true")).body(yaml),
            Some(&token),
        )
        .await;
        assert_eq!(s, 200, "restoring the definitions: {b}");
    };

    // No token, a malformed one, an unknown one: 401 with a JSON error everywhere.
    for token in [
        None,
        Some("garbage"),
        Some(
            "fst_0011223344556677_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        ),
    ] {
        let (s, b) = send(c.get(format!("{cp}/v1/feature-views/customer_rfm")), token).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{b}"
        );
        let (s, b) = send(
            c.post(format!("{edge}/v1/features"))
                .json(&json!({"features": ["customer_rfm:recency_days"], "entities": {"customer_id": [1000]}})),
            token,
        )
        .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{b}"
        );
    }
    // Health and the API description stay open.
    let (s, _) = send(c.get(format!("{cp}/healthz")), None).await;
    assert_eq!(s, 200);
    let (s, _) = send(c.get(format!("{cp}/openapi.json")), None).await;
    assert_eq!(s, 200);

    for role in ROLES {
        let t = fleet.token(role).to_string();
        let token = Some(t.as_str());
        let check = |action: &str, status: u16, body: &Value, what: &str| {
            let what = format!("{role} {action} via {what}");
            if allowed(action, role) {
                assert!((200..300).contains(&status), "{what}: {status} {body}");
            } else {
                assert_refused(status, body, action, &what);
            }
        };

        // REST.
        let (s, b) = send(c.get(format!("{cp}/v1/feature-views/customer_rfm")), token).await;
        check("describe", s, &b, "REST");
        let created = base_yaml.clone()
            + "  - name: probe_service\n    features: [customer_rfm:recency_days]\n";
        let (s, b) = send(c.post(format!("{cp}/v1/apply")).body(created), token).await;
        check("create", s, &b, "REST apply");
        if s == 200 {
            restore(
                c.clone(),
                base_yaml.clone(),
                fleet.token("admin").into(),
                cp.clone(),
            )
            .await;
        }
        let updated = base_yaml.replace(
            "What the CRM knows about a customer",
            "What the CRM knows about a shopper",
        );
        let (s, b) = send(c.post(format!("{cp}/v1/apply")).body(updated), token).await;
        check("update", s, &b, "REST apply");
        if s == 200 {
            restore(
                c.clone(),
                base_yaml.clone(),
                fleet.token("admin").into(),
                cp.clone(),
            )
            .await;
        }
        let (s, b) = send(
            c.delete(format!(
                "{cp}/v1/feature-services/personalization_v1?force=true"
            )),
            token,
        )
        .await;
        check("delete", s, &b, "REST");
        if s == 200 {
            restore(
                c.clone(),
                base_yaml.clone(),
                fleet.token("admin").into(),
                cp.clone(),
            )
            .await;
        }
        let out = dir.join(format!("train-{role}.csv"));
        let (s, b) = send(
            c.post(format!("{cp}/v1/historical")).json(&json!({
                "entities": dir.join("data/training_entities.parquet"),
                "feature_service": "segmentation_v1",
                "out": out,
            })),
            token,
        )
        .await;
        check("read_offline", s, &b, "REST");
        let (s, b) = send(
            c.post(format!("{cp}/v1/push")).json(&json!({
                "source": "orders",
                "rows": [{"order_id": 9_000_000, "customer_id": 1000, "order_ts": chrono::Utc::now().to_rfc3339(), "amount": 12.5, "channel": "web"}],
            })),
            token,
        )
        .await;
        check("write_online", s, &b, "REST push");
        let (s, b) = send(
            c.post(format!("{cp}/v1/jobs"))
                .json(&json!({"view": "customer_profile"})),
            token,
        )
        .await;
        check("materialize", s, &b, "REST job");
        cancel_queued(&c, &cp, fleet.token("admin")).await;
        let (s, b) = send(c.get(format!("{cp}/v1/audit")), token).await;
        check("read_audit", s, &b, "REST");
        let (s, b) = send(c.get(format!("{cp}/v1/tokens")), token).await;
        check("manage_access", s, &b, "REST");
        let (s, b) = send(
            c.post(format!("{cp}/v1/audit/batch"))
                .json(&json!({"edge": "probe", "events": []})),
            token,
        )
        .await;
        check("report", s, &b, "REST");

        // The edge.
        let (s, b) = send(
            c.post(format!("{edge}/v1/features")).json(&json!({
                "features": ["customer_rfm:recency_days"],
                "entities": {"customer_id": [1000]},
            })),
            token,
        )
        .await;
        check("read_online", s, &b, "the edge");
        let (s, b) = send(
            c.post(format!("{edge}/get-online-features")).json(&json!({
                "features": ["customer_rfm:recency_days"],
                "entities": {"customer_id": [1000]},
            })),
            token,
        )
        .await;
        check("read_online", s, &b, "the edge (Feast)");

        // The CLI: refused verbs exit non-zero naming the missing permission.
        let cli_check = |action: &str, args: &[&str]| {
            let (ok, out, err) = fleet.cli(Some(role), args);
            let what = format!("{role} {action} via `fstore {}`", args.join(" "));
            if allowed(action, role) {
                assert!(ok, "{what}: {out}{err}");
            } else {
                assert!(!ok, "{what} should be refused: {out}");
                // The edge's refusal is printed (stdout), the CLI's own on stderr.
                assert!(
                    format!("{out}{err}").contains(&format!("`{action}`")),
                    "{what}: {out}{err}"
                );
            }
            ok
        };
        cli_check("describe", &["history", "view", "customer_rfm"]);
        if cli_check(
            "delete",
            &["delete", "service", "personalization_v1", "--force"],
        ) {
            restore(
                c.clone(),
                base_yaml.clone(),
                fleet.token("admin").into(),
                cp.clone(),
            )
            .await;
        }
        cli_check("materialize", &["jobs", "run", "customer_profile"]);
        cancel_queued(&c, &cp, fleet.token("admin")).await;
        cli_check("manage_access", &["token", "list"]);
        cli_check("read_audit", &["audit", "list", "--limit", "5"]);
        let train = dir.join(format!("cli-train-{role}.csv"));
        cli_check(
            "read_offline",
            &[
                "historical",
                "--entities",
                &dir.join("data/training_entities.parquet").to_string_lossy(),
                "--service",
                "segmentation_v1",
                "--out",
                &train.to_string_lossy(),
            ],
        );
        cli_check(
            "read_online",
            &[
                "get",
                "--edge",
                &edge,
                "--features",
                "customer_rfm:recency_days",
                "--entity",
                "customer_id=1000",
            ],
        );
        // A changed definition through the CLI: checked per change, like the REST apply.
        let changed = dir.join(format!("changed-{role}.yaml"));
        std::fs::write(
            &changed,
            features_yaml().replace(
                "What the CRM knows about a customer",
                "What the CRM knows, per customer",
            ),
        )
        .expect("write");
        let (ok, out, err) = fleet.cli(Some(role), &["apply", "-f", &changed.to_string_lossy()]);
        if allowed("update", role) {
            assert!(ok, "{role} apply: {out}{err}");
            restore(
                c.clone(),
                base_yaml.clone(),
                fleet.token("admin").into(),
                cp.clone(),
            )
            .await;
        } else {
            assert!(!ok && err.contains("`update`"), "{role} apply: {out}{err}");
        }
    }

    tagged_permissions(&fleet).await;
    masking(&fleet).await;
    revocation(&fleet).await;
    audit_trail(&mut fleet).await;
    erasure(&fleet).await;
    compliance(&fleet).await;
    retention(&fleet).await;
    wrong_input(&fleet).await;
}

/// Every `customer_id` in the sources' Parquet files under `data` (orders and CRM records;
/// not the training entity rows, which are the user's file, not a source).
fn customer_ids(data: &Path) -> Vec<i64> {
    use arrow::array::AsArray;
    let mut out = Vec::new();
    let mut stack = vec![data.join("orders"), data.join("customers.parquet")];
    while let Some(d) = stack.pop() {
        let entries: Vec<std::path::PathBuf> = if d.is_dir() {
            std::fs::read_dir(&d)
                .expect("read dir")
                .map(|e| e.expect("entry").path())
                .collect()
        } else {
            vec![d.clone()]
        };
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let f = std::fs::File::open(&p).expect("open");
                let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                    .expect("parquet")
                    .build()
                    .expect("reader");
                for b in r {
                    let b = b.expect("batch");
                    let Some(col) = b.column_by_name("customer_id") else {
                        continue;
                    };
                    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Int64)
                        .expect("cast");
                    out.extend(
                        col.as_primitive::<arrow::datatypes::Int64Type>()
                            .iter()
                            .flatten(),
                    );
                }
            }
        }
    }
    out
}

/// `fstore erase` removes a customer from the source files and the next snapshot, and the
/// request is in the audit log; it needs `erase`.
async fn erasure(fleet: &Fleet) {
    let c = client();
    let data = fleet.dir.path().join("data");
    let victim = 1005i64;
    let before = customer_ids(&data);
    let rows = before.iter().filter(|&&id| id == victim).count();
    assert!(rows > 1, "customer {victim} has orders and a CRM record");
    let total = before.len();

    let (s, b) = send(
        c.post(format!("{}/v1/erase", fleet.cp_url()))
            .json(&json!({"entity": {"customer_id": victim}})),
        Some(fleet.token("consumer")),
    )
    .await;
    assert_refused(s, &b, "erase", "consumer erase");
    let (ok, _, err) = fleet.cli(Some("author"), &["erase", "--entity", "customer_id=1005"]);
    assert!(!ok && err.contains("`erase`"), "{err}");
    assert_eq!(
        customer_ids(&data).len(),
        total,
        "a refused erasure removes nothing"
    );

    let (ok, out, err) = fleet.cli(None, &["erase", "--entity", "customer_id=1005", "--json"]);
    assert!(ok, "{out}{err}");
    let r: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r["rows_removed"].as_u64(), Some(rows as u64), "{r}");
    assert!(r["files"].as_array().is_some_and(|f| !f.is_empty()), "{r}");
    let views: Vec<&str> = r["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .filter_map(|s| s["view"].as_str())
        .collect();
    assert!(
        views.contains(&"customer_rfm") && views.contains(&"customer_profile"),
        "{r}"
    );
    let after = customer_ids(&data);
    assert!(!after.contains(&victim), "still in the offline files");
    assert_eq!(after.len(), total - rows, "nobody else was removed");

    // The edge serves the republished snapshots: the customer is gone, the others are not.
    let body = json!({
        "features": ["customer_rfm:recency_days", "customer_profile:signup_at"],
        "entities": {"customer_id": [victim, 1000]},
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = send(
            c.post(format!("{}/v1/features", fleet.edge_url))
                .json(&body),
            Some(fleet.token("admin")),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        if v["results"][0]["statuses"] == json!(["NOT_FOUND", "NOT_FOUND"]) {
            assert_eq!(
                v["results"][1]["statuses"],
                json!(["PRESENT", "PRESENT"]),
                "{v}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edge still serves the erased customer: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ok, out, _) = fleet.cli(None, &["audit", "list", "--action", "erase", "--json"]);
    assert!(ok);
    let a: Value = serde_json::from_str(&out).expect("json");
    let rec = &a["items"][0];
    assert_eq!(rec["resource"], "entity/customer");
    assert!(
        rec["detail"]
            .as_str()
            .is_some_and(|d| d.contains("\"value\":\"1005\"")),
        "{rec}"
    );
}

/// The compliance report lists every PII feature with who can read it and how often it was.
async fn compliance(fleet: &Fleet) {
    let c = client();
    let url = format!("{}/v1/compliance/report", fleet.cp_url());
    let (s, b) = send(c.get(&url), Some(fleet.token("consumer"))).await;
    assert_refused(s, &b, "read_audit", "consumer compliance report");
    let (s, r) = send(c.get(&url), Some(fleet.token("auditor"))).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["erasures"].as_u64() >= Some(1), "{r}");
    let features = r["features"].as_array().expect("features");
    let names: Vec<String> = features
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["view"].as_str().unwrap_or(""),
                f["feature"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "customer_profile:country",
            "customer_profile:signup_channel",
            "customer_profile:style_vector"
        ]
    );
    let country = &features[0];
    assert_eq!(country["mask"], "hash");
    assert_eq!(country["owner"], "crm@example.com");
    assert_eq!(country["source"], "customers");
    assert_eq!(country["services"], json!(["segmentation_v1"]));
    let list = |k: &str| -> Vec<String> {
        country[k]
            .as_array()
            .expect(k)
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    assert_eq!(list("tokens_unmasked"), ["admin", "support"], "{country}");
    assert_eq!(list("tokens_masked"), ["consumer"], "{country}");
    assert!(country["reads"].as_u64() > Some(10), "{country}");
    assert!(country["reads_unmasked"].as_u64() >= Some(10), "{country}");
    assert_eq!(features[2]["mask"], "redact");
    // A period before anything happened has no reads.
    let (s, old) = send(
        c.get(format!("{url}?until=2000-01-01T00:00:00Z")),
        Some(fleet.token("auditor")),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(old["features"][0]["reads"], 0);
    // Training sets with PII are audited reads too, masked for the consumer.
    let (ok, out, _) = fleet.cli(
        None,
        &[
            "audit",
            "list",
            "--action",
            "read_pii",
            "--actor",
            "token:consumer",
            "--limit",
            "10000",
            "--json",
        ],
    );
    assert!(ok);
    let reads: Value = serde_json::from_str(&out).expect("json");
    let training: Vec<&Value> = reads["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| {
            r["detail"]
                .as_str()
                .is_some_and(|d| d.contains("/train-consumer.csv"))
        })
        .collect();
    assert_eq!(training.len(), 1, "{reads}");
    assert!(
        training[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("\"masked\":true"))
    );
    let (ok, out, err) = fleet.cli(Some("auditor"), &["compliance", "report"]);
    assert!(ok && out.contains("customer_profile:country"), "{out}{err}");
}

/// Retention deletes the raw order partitions older than 60 days, and nothing newer.
async fn retention(fleet: &Fleet) {
    let orders = fleet.dir.path().join("data/orders");
    let days = || -> Vec<String> {
        // Days that still have data (a store may leave an emptied directory behind).
        let mut d: Vec<String> = std::fs::read_dir(&orders)
            .expect("orders")
            .filter_map(|e| e.ok())
            .filter(|e| {
                std::fs::read_dir(e.path())
                    .map(|mut f| f.next().is_some())
                    .unwrap_or(false)
            })
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_prefix("date=").map(String::from))
            .collect();
        d.sort();
        d
    };
    let before = days();
    let (ok, _, err) = fleet.cli(Some("operator"), &["retention"]);
    assert!(!ok && err.contains("`erase`"), "{err}");
    let (ok, out, err) = fleet.cli(None, &["retention", "--json"]);
    assert!(ok, "{out}{err}");
    let r: Value = serde_json::from_str(&out).expect("json");
    let orders_r = r["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["source"] == "orders")
        .expect("orders has a retention");
    let cutoff = chrono::Utc::now() - chrono::Duration::days(60);
    let cutoff_day = cutoff.format("%Y-%m-%d").to_string();
    let after = days();
    let expected: Vec<&String> = before
        .iter()
        .filter(|d| d.as_str() < cutoff_day.as_str())
        .collect();
    assert!(
        !expected.is_empty(),
        "the data set spans more than 60 days: {before:?}"
    );
    assert_eq!(
        orders_r["deleted"].as_array().map(Vec::len),
        Some(expected.len()),
        "{orders_r}"
    );
    assert!(
        after.iter().all(|d| d.as_str() >= cutoff_day.as_str()),
        "{after:?}"
    );
    assert_eq!(after.len(), before.len() - expected.len());
}

/// Cancels every queued run, so the next role's trigger is not refused as a duplicate.
async fn cancel_queued(c: &reqwest::Client, cp: &str, admin: &str) {
    let (s, runs) = send(c.get(format!("{cp}/v1/jobs?status=queued")), Some(admin)).await;
    assert_eq!(s, 200, "{runs}");
    for r in runs["items"].as_array().expect("items") {
        let id = r["id"].as_u64().expect("id");
        let (s, b) = send(c.post(format!("{cp}/v1/jobs/{id}/cancel")), Some(admin)).await;
        assert_eq!(s, 200, "{b}");
    }
}

/// A custom role granting by tag reaches the tagged view (customer_rfm is tagged
/// `segmentation`) and nothing else, on the control plane and at the edge.
async fn tagged_permissions(fleet: &Fleet) {
    let c = client();
    let (ok, out, err) = fleet.cli(
        None,
        &[
            "role",
            "create",
            "segmenters",
            "--permission",
            "describe,read_online:feature_view:*:segmentation",
        ],
    );
    assert!(ok, "{out}{err}");
    let token = fleet.new_token("segmenters", "seg");
    let cp = fleet.cp_url();
    let (s, b) = send(
        c.get(format!("{cp}/v1/feature-views/customer_rfm")),
        Some(&token),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = send(
        c.get(format!("{cp}/v1/feature-views/customer_profile")),
        Some(&token),
    )
    .await;
    assert_refused(s, &b, "describe", "an untagged view");
    assert_eq!(
        b["error"]["details"]["missing"]["name"], "customer_profile",
        "{b}"
    );
    let lookup = |view: &str| {
        c.post(format!("{}/v1/features", fleet.edge_url)).json(&json!({
            "features": [format!("{view}:signup_at").replace("customer_rfm:signup_at", "customer_rfm:recency_days")],
            "entities": {"customer_id": [1000]},
        }))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, _) = send(lookup("customer_rfm"), Some(&token)).await;
        if s == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edge never accepted the new token: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, b) = send(lookup("customer_profile"), Some(&token)).await;
    assert_refused(s, &b, "read_online", "an untagged view at the edge");

    // A forced delete needs `delete` on everything it takes with it.
    let (ok, out, err) = fleet.cli(
        None,
        &[
            "role",
            "create",
            "view-deleter",
            "--permission",
            "delete:feature_view:*",
        ],
    );
    assert!(ok, "{out}{err}");
    let vd = fleet.new_token("view-deleter", "vd");
    let (s, b) = send(
        c.delete(format!("{cp}/v1/feature-views/customer_profile?force=true")),
        Some(&vd),
    )
    .await;
    assert_refused(s, &b, "delete", "a forced delete reaching a service");
    assert_eq!(
        b["error"]["details"]["missing"]["kind"], "feature_service",
        "{b}"
    );
    let (s, _) = send(
        c.get(format!("{cp}/v1/feature-views/customer_profile")),
        Some(fleet.token("admin")),
    )
    .await;
    assert_eq!(s, 200, "nothing was deleted");
    // HEAD on a public route is as public as GET.
    let head = c.head(format!("{cp}/healthz")).send().await.expect("head");
    assert_eq!(head.status().as_u16(), 200);
}

/// Consumers see PII through its mask; `read_pii` holders see it raw; training sets agree.
async fn masking(fleet: &Fleet) {
    let c = client();
    let edge = &fleet.edge_url;
    let body = json!({
        "features": ["customer_profile:country", "customer_profile:signup_channel",
                     "customer_profile:style_vector", "customer_profile:signup_at"],
        "entities": {"customer_id": [1000, 1001]},
    });
    let (s, raw) = send(
        c.post(format!("{edge}/v1/features")).json(&body),
        Some(fleet.token("support")),
    )
    .await;
    assert_eq!(s, 200, "{raw}");
    let (s, masked) = send(
        c.post(format!("{edge}/v1/features")).json(&body),
        Some(fleet.token("consumer")),
    )
    .await;
    assert_eq!(s, 200, "{masked}");
    let key = fleet.pii_key();
    for r in 0..2 {
        let rv = &raw["results"][r];
        let mv = &masked["results"][r];
        assert_eq!(
            rv["statuses"],
            json!(["PRESENT", "PRESENT", "PRESENT", "PRESENT"]),
            "{rv}"
        );
        assert_eq!(
            mv["statuses"],
            json!(["MASKED", "MASKED", "MASKED", "PRESENT"]),
            "{mv}"
        );
        let country = rv["values"][0].as_str().expect("country");
        assert_eq!(
            mv["values"][0].as_str(),
            Some(fstore_access::hash_text(&key, country.as_bytes()).as_str()),
            "hash: keyed HMAC of the value"
        );
        let channel = rv["values"][1].as_str().expect("channel");
        assert_eq!(
            mv["values"][1].as_str(),
            Some(fstore_access::truncate_text(channel, 2))
        );
        assert!(rv["values"][2].is_array());
        assert!(mv["values"][2].is_null(), "redacted");
        assert_eq!(mv["values"][3], rv["values"][3], "not PII: as stored");
    }
    // Feast's format has no MASKED: a hashed value is PRESENT, a withheld one NULL_VALUE.
    let (s, feast) = send(
        c.post(format!("{edge}/get-online-features")).json(&body),
        Some(fleet.token("consumer")),
    )
    .await;
    assert_eq!(s, 200, "{feast}");
    assert_eq!(feast["results"][1]["statuses"][0], "PRESENT");
    assert_eq!(feast["results"][3]["statuses"][0], "NULL_VALUE");
    assert_eq!(
        feast["results"][1]["values"][0],
        masked["results"][0]["values"][0]
    );

    // Reading a published version from the store with the CLI: the same masks for a token.
    for (role, want, seen) in [
        ("consumer", "MASKED", &masked),
        ("support", "PRESENT", &raw),
    ] {
        let (ok, out, err) = fleet.cli(
            Some(role),
            &[
                "get",
                "--as-of",
                "2100-01-01",
                "--features",
                "customer_profile:country",
                "--entity",
                "customer_id=1000",
            ],
        );
        assert!(ok, "{role}: {out}{err}");
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["results"][0]["statuses"][0], want, "{role}: {v}");
        assert_eq!(
            v["results"][0]["values"][0], seen["results"][0]["values"][0],
            "{role}: {v}"
        );
    }

    // A training set as a consumer: the same policy, the same hashes. As admin: raw.
    let dir = fleet.dir.path();
    let read = |p: &Path| std::fs::read_to_string(p).expect("training set");
    let consumer = read(&dir.join("train-consumer.csv"));
    let admin = read(&dir.join("train-admin.csv"));
    let header: Vec<&str> = consumer
        .lines()
        .next()
        .expect("header")
        .split(',')
        .collect();
    let col = header
        .iter()
        .position(|h| *h == "country")
        .expect("country column");
    let (mut checked, mut hashed) = (0, 0);
    for (cl, al) in consumer.lines().zip(admin.lines()).skip(1) {
        let cv = cl.split(',').nth(col).unwrap_or_default();
        let av = al.split(',').nth(col).unwrap_or_default();
        if av.is_empty() {
            assert!(cv.is_empty());
            continue;
        }
        assert_eq!(
            cv,
            fstore_access::hash_text(&key, av.as_bytes()),
            "{cl} / {al}"
        );
        checked += 1;
        hashed += usize::from(cv != av);
    }
    assert!(checked > 10 && hashed == checked, "{checked} rows checked");
}

/// A revoked token is refused by the control plane at once and by the running edge within
/// its poll interval (1 s).
async fn revocation(fleet: &Fleet) {
    let c = client();
    let temp = fleet.new_token("consumer", "temp");
    let lookup = || {
        c.post(format!("{}/v1/features", fleet.edge_url))
            .json(&json!({
                "features": ["customer_rfm:recency_days"],
                "entities": {"customer_id": [1000]},
            }))
    };
    // It works once the edge has the document listing it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, _) = send(lookup(), Some(&temp)).await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "new token never accepted: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out, err) = fleet.cli(None, &["token", "revoke", "temp"]);
    assert!(ok, "{out}{err}");
    let revoked_at = Instant::now();
    let (s, b) = send(
        c.get(format!("{}/v1/feature-views", fleet.cp_url())),
        Some(&temp),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    loop {
        let (s, b) = send(lookup(), Some(&temp)).await;
        if s == 401 {
            assert_eq!(b["error"]["code"], "unauthorized");
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(20),
            "the edge still accepts a revoked token"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "revoked token refused by the edge after {:?}",
        revoked_at.elapsed()
    );
    // The others still work.
    let (s, _) = send(lookup(), Some(fleet.token("consumer"))).await;
    assert_eq!(s, 200);
}

/// PII reads are audited at the edge and reach the control plane, even when it was down
/// while they happened; registry changes and token changes are in the same chain; a changed
/// record is detected by `fstore audit verify` and `GET /v1/audit/verify`.
async fn audit_trail(fleet: &mut Fleet) {
    let c = client();
    let edge = fleet.edge_url.clone();
    let read_country = |id: i64| {
        c.post(format!("{edge}/v1/features")).json(&json!({
            "features": ["customer_profile:country"],
            "entities": {"customer_id": [id]},
        }))
    };
    let pii_records = |fleet: &Fleet| {
        let (ok, out, err) = fleet.cli(
            None,
            &[
                "audit", "list", "--action", "read_pii", "--limit", "10000", "--json",
            ],
        );
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out).expect("json")["items"]
            .as_array()
            .expect("items")
            .clone()
    };
    let (s, _) = send(read_country(1002), Some(fleet.token("consumer"))).await;
    assert_eq!(s, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let record = loop {
        let found = pii_records(fleet).into_iter().find(|r| {
            r["detail"]
                .as_str()
                .is_some_and(|d| d.contains("customer_id=1002"))
        });
        if let Some(r) = found {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the edge's PII read never reached the audit log"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(record["actor"], "token:consumer");
    // The origin is the edge's token (an edge cannot write in another's name); its fleet
    // id rides in the detail.
    assert_eq!(record["origin"], "edge:edge/edge-a");
    assert_eq!(record["resource"], "feature_view/customer_profile");
    assert_eq!(record["remote"], "127.0.0.1");
    let detail: Value =
        serde_json::from_str(record["detail"].as_str().expect("detail")).expect("json");
    assert_eq!(detail["masked"], true);
    assert_eq!(detail["features"], json!(["country"]));
    assert_eq!(detail["edge"], "edge-a");

    // The control plane goes down; reads go on and are kept on the edge's disk.
    drop(fleet.cp.take());
    for id in 1010..1020 {
        let (s, _) = send(read_country(id), Some(fleet.token("support"))).await;
        assert_eq!(s, 200, "the edge serves without the control plane");
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    fleet.start_cp();
    wait_ok(
        &format!("{}/healthz", fleet.cp_url()),
        Duration::from_secs(60),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = pii_records(fleet);
        let shipped: Vec<i64> = (1010..1020)
            .filter(|id| {
                records.iter().any(|r| {
                    r["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains(&format!("customer_id={id}\"")))
                })
            })
            .collect();
        if shipped.len() == 10 {
            // Each once: a resent batch is not recorded twice. (An edge folds one caller's
            // reads within a flush interval into one record counting its requests.)
            let support_reads: u64 = records
                .iter()
                .filter(|r| r["actor"] == "token:support")
                .filter_map(|r| serde_json::from_str::<Value>(r["detail"].as_str()?).ok())
                .filter(|d| d.to_string().contains("customer_id=101"))
                .map(|d| d["requests"].as_u64().unwrap_or(1))
                .sum();
            assert_eq!(support_reads, 10);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {shipped:?} arrived after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Registry and access changes are in the chain too.
    let (ok, out, _) = fleet.cli(None, &["audit", "list", "--limit", "10000", "--json"]);
    assert!(ok);
    let all: Value = serde_json::from_str(&out).expect("json");
    let actions: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for a in [
        "create",
        "update",
        "delete",
        "token.create",
        "token.revoke",
        "role.create",
        "read_pii",
    ] {
        assert!(
            actions.contains(&a),
            "no `{a}` in the audit log: {actions:?}"
        );
    }

    let (ok, out, err) = fleet.cli(None, &["audit", "verify"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("intact"), "{out}");
    // Someone with database access rewrites who did something.
    let status = std::process::Command::new("psql")
        .args([
            &fleet.db.url,
            "-qc",
            "UPDATE audit_log SET actor = 'token:nobody' WHERE seq = 3",
        ])
        .status()
        .expect("psql");
    assert!(status.success());
    let (ok, out, err) = fleet.cli(None, &["audit", "verify"]);
    assert!(!ok, "a tampered chain must fail: {out}");
    assert!(out.contains("BROKEN at record 3"), "{out}{err}");
    let (s, v) = send(
        client().get(format!("{}/v1/audit/verify", fleet.cp_url())),
        Some(fleet.token("auditor")),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (v["ok"].as_bool(), v["broken_at"].as_u64()),
        (Some(false), Some(3)),
        "{v}"
    );
}

/// Wrong input on every new endpoint and verb: 4xx with a JSON error, non-zero exits.
async fn wrong_input(fleet: &Fleet) {
    let c = client();
    let cp = fleet.cp_url();
    // A training set may not read a source as its entity rows, nor write over the store or
    // anything that is not a training set.
    let data = fleet.dir.path().join("data");
    let objects = fleet.dir.path().join("objects");
    for (entities, out) in [
        (
            data.join("customers.parquet"),
            fleet.dir.path().join("t.csv"),
        ),
        (
            data.join("orders/x.parquet"),
            fleet.dir.path().join("t.csv"),
        ),
        (
            data.join("training_entities.parquet"),
            objects.join("t.parquet"),
        ),
        (
            data.join("training_entities.parquet"),
            fleet.dir.path().join("registry.db"),
        ),
    ] {
        let (s, b) = send(
            c.post(format!("{cp}/v1/historical")).json(&json!({
                "entities": entities, "feature_service": "segmentation_v1", "out": out,
            })),
            Some(fleet.token("consumer")),
        )
        .await;
        assert_eq!(s, 400, "{entities:?} → {out:?}: {b}");
    }
    // Quality reports show a consumer no values of PII features.
    let (s, q) = send(
        c.get(format!("{cp}/v1/quality/customer_profile")),
        Some(fleet.token("consumer")),
    )
    .await;
    assert_eq!(s, 200, "{q}");
    let text = q.to_string();
    assert!(text.contains("\"masked\":true"), "{text}");
    let (_, raw) = send(
        c.get(format!("{cp}/v1/quality/customer_profile")),
        Some(fleet.token("admin")),
    )
    .await;
    let country_top = raw.to_string().contains("top_values");
    assert!(country_top, "the admin sees value statistics: {raw}");
    for leaked in ["\"GB\"", "\"DE\"", "\"FR\""] {
        assert!(
            !text.contains(leaked),
            "a consumer sees a country value {leaked}: {text}"
        );
    }
    let admin = Some(fleet.token("admin"));
    for (req, status) in [
        (c.post(format!("{cp}/v1/tokens")).json(&json!({"name": "x", "role": "nope"})), 400),
        (c.post(format!("{cp}/v1/tokens")).json(&json!({"name": "bad name!", "role": "consumer"})), 400),
        (c.post(format!("{cp}/v1/tokens")).json(&json!({"name": "admin", "role": "consumer"})), 409),
        (c.post(format!("{cp}/v1/tokens")).json(&json!({"name": "y", "role": "consumer", "expires_in": "soon"})), 400),
        (c.post(format!("{cp}/v1/tokens")).body("not json"), 400),
        (c.delete(format!("{cp}/v1/tokens/no-such-token")), 404),
        (c.put(format!("{cp}/v1/roles/x")).json(&json!({"permissions": [{"actions": ["fly"]}]})), 400),
        (c.put(format!("{cp}/v1/roles/x")).json(&json!({"permissions": []})), 400),
        (c.put(format!("{cp}/v1/roles/admin")).json(&json!({"permissions": [{"actions": ["describe"]}]})), 400),
        (c.delete(format!("{cp}/v1/roles/admin")), 400),
        (c.delete(format!("{cp}/v1/roles/support")), 409),
        (c.delete(format!("{cp}/v1/roles/nope")), 404),
        (c.get(format!("{cp}/v1/audit?since=yesterday")), 400),
        (c.get(format!("{cp}/v1/audit?limit=100000")), 400),
        (c.get(format!("{cp}/v1/audit?bogus=1")), 400),
        (c.post(format!("{cp}/v1/audit/batch")).json(&json!({"edge": "e", "events": [{"at": "x", "actor": "a", "action": "b", "resource": "c"}]})), 400),
        (c.post(format!("{cp}/v1/audit/batch")).json(&json!({"edge": "", "events": []})), 400),
        (c.post(format!("{cp}/v1/erase")).json(&json!({"entity": {}})), 400),
        (c.post(format!("{cp}/v1/erase")).json(&json!({"entity": {"customer_id": 1, "x": 2}})), 400),
        (c.post(format!("{cp}/v1/erase")).json(&json!({"entity": {"customer_id": true}})), 400),
        (c.post(format!("{cp}/v1/erase")).json(&json!({"entity": {"nobody": 1}})), 400),
        (c.post(format!("{cp}/v1/erase")).body("{"), 400),
        (c.get(format!("{cp}/v1/compliance/report?since=soon")), 400),
        // Edges report PII reads, nothing else.
        (c.post(format!("{cp}/v1/audit/batch")).json(&json!({"edge": "e", "events": [{"at": "2026-01-01T00:00:00Z", "actor": "token:x", "action": "erase", "resource": "entity/customer", "origin": "edge:x", "origin_seq": 1, "detail": {}}]})), 400),
    ] {
        let (s, b) = send(req, admin).await;
        assert_eq!(s, status, "{b}");
        assert!(b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    }
    for args in [
        &["token", "create", "--role", "nope", "--name", "x"][..],
        &[
            "token",
            "create",
            "--role",
            "consumer",
            "--name",
            "x",
            "--expires-in",
            "soon",
        ],
        &["token", "revoke", "no-such-token"],
        &["role", "create", "x", "--permission", "fly:feature_view"],
        &["role", "create", "x", "--permission", "describe:planet"],
        &["role", "delete", "admin"],
        &["role", "delete", "nope"],
        &["audit", "list", "--limit", "100000"],
        &["erase", "--entity", "customer_id"],
        &["erase", "--entity", "nobody=1"],
        &["compliance", "report", "--since", "yesterday"],
    ] {
        let (ok, out, err) = fleet.cli(None, args);
        assert!(!ok, "`fstore {}` should fail: {out}", args.join(" "));
        assert!(err.starts_with("Error") || err.contains("error"), "{err}");
    }
    let mut env = fleet.env();
    env.push(("FSTORE_TOKEN", "garbage".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, _, err) = fstore(&["history", "view", "customer_rfm"], &env, fleet.dir.path());
    assert!(!ok && err.contains("not valid"), "{err}");
    // An edge with auth on and no key refuses to start, saying why.
    let (ok, _, err) = fstore(
        &["serve", "edge", "--addr", "127.0.0.1:0", "--auth", "on"],
        &[("FSTORE_STORE_URL", "unused")],
        fleet.dir.path(),
    );
    assert!(!ok && err.contains("--auth-public-key"), "{err}");
}
