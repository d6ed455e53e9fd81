//! A fleet as processes on loopback, reading one S3 object store (moto): a control plane,
//! three edges and a balancer in front of them.
//! - Behind nginx (running `deploy/nginx/nginx.conf` itself): the edges converge on a new
//!   version within their poll interval, the control plane's `/v1/edges` shows the fleet and
//!   marks a killed edge down, and while clients keep querying through nginx one edge is
//!   killed and restarted without a failed request.
//! - Behind the router (`fstore serve router`), with a view split into four shards and each
//!   edge holding half of them: edges download only their shards (and later only the delta
//!   shards they hold), every answer through the router equals the whole view's, a key sent
//!   straight to an edge that does not hold it is refused with 421, and an edge killed under
//!   load costs no request.
//! - A snapshot download broken mid-transfer resumes where it stopped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fstore_tests::proxy::CuttingProxy;
use fstore_tests::{Proc, S3Server, fstore, get_json, spawn_server, wait_ok};
use serde_json::{Value, json};

const CUSTOMERS: i64 = 2_000;
const POLL: &str = "1s";

fn yaml(shards: Option<u32>) -> String {
    let shards = shards.map_or(String::new(), |n| format!("    shards: {n}\n"));
    format!(
        r#"
entities:
  - name: customer
    join_keys: [{{name: customer_id, type: int64}}]
sources:
  - name: stats_csv
    path: data/stats/
    format: csv
    timestamp_field: ts
feature_views:
  - name: stats
    entities: [customer]
    source: stats_csv
    ttl: 36500d
{shards}    features:
      - {{name: spend, type: int64}}
"#
    )
}

/// Writes `data/stats/<file>.csv`: customers `ids` with spend `id * factor`, at day `day`.
fn write_csv(dir: &Path, file: &str, ids: impl Iterator<Item = i64>, factor: i64, day: u32) {
    let d = dir.join("data/stats");
    std::fs::create_dir_all(&d).expect("mkdir");
    let mut csv = String::from("customer_id,ts,spend\n");
    for id in ids {
        csv.push_str(&format!(
            "{id},2026-01-{day:02}T00:00:00Z,{}\n",
            id * factor
        ));
    }
    std::fs::write(d.join(format!("{file}.csv")), csv).expect("csv");
}

/// The manifest `fstore materialize` says it published: `… (manifest N)`.
fn manifest_seq(out: &str) -> u64 {
    out.rsplit("(manifest ")
        .next()
        .and_then(|t| t.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no manifest in {out}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A registry and a moto S3 store for one test, and the environment every process gets.
struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    _s3: S3Server,
    vars: Vec<(String, String)>,
}

impl World {
    fn new(bucket: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().to_path_buf();
        let s3 = S3Server::start(bucket);
        let mut vars: Vec<(String, String)> = s3
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        vars.push((
            "FSTORE_DATABASE_URL".into(),
            dir.join("registry.db").to_string_lossy().into_owned(),
        ));
        vars.push(("FSTORE_STORE_URL".into(), format!("s3://{bucket}/live")));
        vars.push(("FSTORE_LOG".into(), "warn".into()));
        Self {
            _tmp: tmp,
            dir,
            _s3: s3,
            vars,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn run(&self, args: &[&str]) -> String {
        let (ok, out, err) = fstore(args, &self.env(), &self.dir);
        assert!(ok, "fstore {args:?}: {err}");
        out
    }

    async fn control_plane(&self) -> Proc {
        let cp = spawn_server(
            &[
                "serve",
                "control-plane",
                "--addr",
                "127.0.0.1:0",
                "--no-scheduler",
            ],
            &self.env(),
            &self.dir,
        );
        wait_ok(&format!("{}/healthz", cp.url), Duration::from_secs(60)).await;
        cp
    }

    /// An edge on `port` named `id`, reporting to `cp`, holding `shards`.
    async fn edge(&self, cp: &str, id: &str, port: u16, shards: &str) -> Proc {
        let cache = self.dir.join(format!("cache-{id}"));
        let addr = format!("127.0.0.1:{port}");
        let edge = spawn_server(
            &[
                "serve",
                "edge",
                "--addr",
                &addr,
                "--poll-interval",
                POLL,
                "--control-plane",
                cp,
                "--edge-id",
                id,
                "--region",
                id,
                "--cache-dir",
                &cache.to_string_lossy(),
                "--shards",
                shards,
            ],
            &self.env(),
            &self.dir,
        );
        wait_ok(&format!("{}/readyz", edge.url), Duration::from_secs(60)).await;
        edge
    }

    fn cached(&self, id: &str) -> BTreeSet<String> {
        std::fs::read_dir(self.dir.join(format!("cache-{id}")))
            .expect("cache")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".fss"))
            .collect()
    }
}

/// Looks up `ids` at `url` (an edge, nginx or the router); the spend of each, in order.
async fn spend(client: &reqwest::Client, url: &str, ids: &[i64]) -> Result<Vec<Value>, String> {
    let r = client
        .post(format!("{url}/v1/features"))
        .json(&json!({"features": ["stats:spend"], "entities": {"customer_id": ids}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    Ok(body["results"]
        .as_array()
        .ok_or("no results")?
        .iter()
        .map(|r| r["values"][0].clone())
        .collect())
}

/// Clients querying `url` until stopped; counts answers and wrong or failed ones.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str, factor: i64, batch: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..4)
            .map(|t| {
                let (stop, ok, failed, url) =
                    (stop.clone(), ok.clone(), failed.clone(), url.to_string());
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut next = 1 + t * 97;
                    while !stop.load(Ordering::Relaxed) {
                        let ids: Vec<i64> = (0..batch as i64)
                            .map(|i| (next + i * 31) % CUSTOMERS + 1)
                            .collect();
                        next += 7;
                        match spend(&client, &url, &ids).await {
                            Ok(v)
                                if v.iter()
                                    .zip(&ids)
                                    .all(|(v, id)| v.as_i64() == Some(id * factor)) =>
                            {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(v) => failed
                                .lock()
                                .expect("lock")
                                .push(format!("wrong answer {v:?}")),
                            Err(e) => failed.lock().expect("lock").push(e),
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("client task");
        }
        let failed = self.failed.lock().expect("lock").clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

async fn edge_status(cp: &str, id: &str) -> String {
    let v = get_json(&format!("{cp}/v1/edges")).await;
    v["items"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["id"] == id))
        .map_or("absent".into(), |e| {
            e["status"].as_str().unwrap_or("?").to_string()
        })
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A running nginx. Dropping it stops the master with SIGTERM, which takes its workers with
/// it; SIGKILL (what `Proc` sends) would leave the workers serving the port, orphaned.
struct Nginx {
    child: std::process::Child,
    url: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs deploy/nginx/nginx.conf with the edges at `ports` and listening on `listen`.
fn start_nginx(bin: &Path, dir: &Path, ports: &[u16], listen: u16) -> Nginx {
    let deployed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/nginx.conf"),
    )
    .expect("nginx.conf");
    let mut conf = deployed
        .replace("worker_processes auto;", "worker_processes 1;")
        .replace("listen 8080;", &format!("listen 127.0.0.1:{listen};"));
    for (i, port) in ports.iter().enumerate() {
        let from = format!("server edge-{}:6566", i + 1);
        assert!(conf.contains(&from), "nginx.conf has no `{from}`");
        conf = conf.replace(&from, &format!("server 127.0.0.1:{port}"));
    }
    // Temporary files under the test's directory, whoever runs it.
    let n = dir.join("nginx");
    std::fs::create_dir_all(&n).expect("mkdir");
    let temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("    {t}_temp_path {};\n", n.join(t).display()))
        .collect::<String>();
    conf = conf.replacen("http {\n", &format!("http {{\n{temp}"), 1);
    let path = n.join("nginx.conf");
    std::fs::write(&path, conf).expect("write");
    let child = std::process::Command::new(bin)
        .arg("-p")
        .arg(&n)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(n.join("error.log"))
        .arg("-g")
        .arg(format!(
            "daemon off; pid {};",
            n.join("nginx.pid").display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start nginx");
    Nginx {
        child,
        url: format!("http://127.0.0.1:{listen}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_behind_nginx_converges_and_survives_an_edge_restart() {
    let Some(nginx_bin) = nginx() else {
        assert!(
            std::env::var("CI").is_err(),
            "nginx is missing; .ci/run installs it"
        );
        eprintln!("skipping: nginx is not installed (see .ci/run)");
        return;
    };
    let w = World::new("fleet-nginx");
    std::fs::write(w.dir.join("features.yaml"), yaml(None)).expect("yaml");
    write_csv(&w.dir, "part-1", 1..=CUSTOMERS, 1, 1);
    w.run(&["apply", "-f", "features.yaml"]);
    w.run(&["materialize"]);
    let cp = w.control_plane().await;
    let ports = [free_port(), free_port(), free_port()];
    let mut edges = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        edges.push(
            w.edge(&cp.url, &format!("edge-{}", i + 1), *port, "all")
                .await,
        );
    }
    let lb_port = free_port();
    let lb = start_nginx(&nginx_bin, &w.dir, &ports, lb_port);
    let client = reqwest::Client::new();
    wait_for("nginx", Duration::from_secs(20), async || {
        spend(&client, &lb.url, &[1]).await.is_ok()
    })
    .await;
    assert_eq!(
        spend(&client, &lb.url, &[7, 1999])
            .await
            .expect("via nginx"),
        [json!(7), json!(1999)]
    );

    // The fleet as the control plane sees it.
    for i in 1..=3 {
        let id = format!("edge-{i}");
        wait_for("heartbeats", Duration::from_secs(20), async || {
            edge_status(&cp.url, &id).await == "up"
        })
        .await;
    }

    // A new version: every edge serves it within its poll interval of the publish.
    write_csv(&w.dir, "part-2", 1..=CUSTOMERS, 2, 2);
    let out = w.run(&["materialize"]);
    let published = Instant::now();
    let seq = manifest_seq(&out);
    for e in &edges {
        wait_for("convergence", Duration::from_secs(10), async || {
            let r = get_json(&format!("{}/readyz", e.url)).await;
            r["manifest"].as_u64() == Some(seq)
                && spend(&client, &e.url, &[5]).await.ok() == Some(vec![json!(10)])
        })
        .await;
    }
    eprintln!(
        "all three edges serve the new version {:?} after the publish",
        published.elapsed()
    );

    // Kill an edge under load, see the control plane mark it down, bring it back.
    let load = Load::start(&lb.url, 2, 20);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut killed = edges.remove(1);
    killed.child.kill().expect("kill");
    killed.child.wait().expect("wait");
    wait_for("edge-2 marked down", Duration::from_secs(20), async || {
        edge_status(&cp.url, "edge-2").await == "down"
    })
    .await;
    let up = get_json(&format!("{}/v1/edges", cp.url)).await;
    let down: Vec<&Value> = up["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["status"] == "down")
        .collect();
    assert_eq!(down.len(), 1, "{up}");
    let restarted = w.edge(&cp.url, "edge-2", ports[1], "all").await;
    wait_for("edge-2 back up", Duration::from_secs(20), async || {
        edge_status(&cp.url, "edge-2").await == "up"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} failed requests, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 50, "only {ok} requests answered");
    eprintln!("{ok} lookups through nginx while edge-2 was killed and restarted, none failed");
    drop((restarted, edges, lb, cp));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sharded_fleet_behind_the_router_answers_like_one_edge() {
    let w = World::new("fleet-shards");
    std::fs::write(w.dir.join("features.yaml"), yaml(Some(4))).expect("yaml");
    write_csv(&w.dir, "part-1", 1..=CUSTOMERS, 1, 1);
    w.run(&["apply", "-f", "features.yaml"]);
    w.run(&["materialize"]);
    let cp = w.control_plane().await;
    // Two edges hold shards 0 and 1, one holds 2 and 3.
    let layout = [("a", "0-1/4"), ("b", "2-3/4"), ("c", "0-1/4")];
    let mut edges = Vec::new();
    let mut ports = Vec::new();
    for (id, shards) in layout {
        let port = free_port();
        ports.push(port);
        edges.push(w.edge(&cp.url, id, port, shards).await);
    }
    // Each downloaded its two shard files, never the whole snapshot.
    for (id, _) in layout {
        let files = w.cached(id);
        assert_eq!(files.len(), 2, "{id}: {files:?}");
        assert!(
            files.iter().all(|f| f.contains(".shard-")),
            "{id}: {files:?}"
        );
    }
    let mut args = vec![
        "serve".to_string(),
        "router".into(),
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--check-interval".into(),
        "200ms".into(),
    ];
    for p in &ports {
        args.push("--edge".into());
        args.push(format!("http://127.0.0.1:{p}"));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let router = spawn_server(&argv, &w.env(), &w.dir);
    wait_ok(&format!("{}/readyz", router.url), Duration::from_secs(20)).await;

    // Every customer through the router, in batches that span all shards.
    let client = reqwest::Client::new();
    let all: Vec<i64> = (1..=CUSTOMERS).collect();
    for batch in all.chunks(500) {
        let got = spend(&client, &router.url, batch)
            .await
            .expect("via the router");
        let want: Vec<Value> = batch.iter().map(|&i| json!(i)).collect();
        assert_eq!(got, want);
    }
    // Feast's format too, merged column by column.
    let feast: Value = client
        .post(format!("{}/get-online-features", router.url))
        .json(
            &json!({"features": ["stats:spend"], "entities": {"customer_id": [3, 4, 5, 6, 7, 8]}}),
        )
        .send()
        .await
        .expect("feast")
        .json()
        .await
        .expect("json");
    assert_eq!(
        feast["results"][1]["values"],
        json!([3, 4, 5, 6, 7, 8]),
        "{feast}"
    );
    let metrics = client
        .get(format!("{}/metrics", router.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        !metrics.contains("fstore_router_split_requests_total 0\n"),
        "{metrics}"
    );

    // Straight to an edge that lacks the key's shard: 421, never NOT_FOUND.
    let mut refused = 0;
    for id in 1..=20 {
        if let Err(e) = spend(&client, &edges[1].url, &[id]).await {
            assert!(e.starts_with("421") && e.contains("shard_not_held"), "{e}");
            refused += 1;
        }
    }
    assert!(
        refused > 0 && refused < 20,
        "{refused} of 20 refused by an edge holding half"
    );

    // Bad input through the router: clear JSON errors, nothing forwarded half-done.
    for (body, status) in [
        ("{not json", 400),
        (r#"{"entities": {"customer_id": [1]}}"#, 400),
    ] {
        let r = client
            .post(format!("{}/v1/features", router.url))
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), status, "{body}");
        let v: Value = r.json().await.expect("a JSON error");
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    let big = format!(
        r#"{{"entities": {{"customer_id": [{}]}}}}"#,
        "1,".repeat(600_000) + "1"
    );
    let r = client
        .post(format!("{}/v1/features", router.url))
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["code"],
        "body_too_large"
    );
    for (method, path, status) in [("GET", "/v1/features", 405), ("GET", "/nowhere", 404)] {
        let r = client
            .request(
                method.parse().expect("method"),
                format!("{}{path}", router.url),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), status);
        assert!(r.json::<Value>().await.expect("json")["error"]["code"].is_string());
    }

    // A delta touching one customer: only the edge holding its shard downloads anything.
    let before: Vec<BTreeSet<String>> = layout.iter().map(|(id, _)| w.cached(id)).collect();
    let changed = 42;
    write_csv(&w.dir, "part-2", std::iter::once(changed), 1_000, 2);
    let out = w.run(&["materialize", "--incremental"]);
    assert!(out.contains("delta"), "{out}");
    let mut holder = None;
    for (i, e) in edges.iter().enumerate().take(3) {
        if matches!(spend(&client, &e.url, &[changed]).await, Ok(v) if !v.is_empty()) {
            holder = Some(i);
            break;
        }
    }
    let holder = holder.expect("someone holds customer 42");
    for (i, e) in edges.iter().enumerate() {
        let seq_ok = async || {
            let r = get_json(&format!("{}/readyz", e.url)).await;
            r["views"]["stats"].as_u64() >= Some(2)
        };
        wait_for("the delta everywhere", Duration::from_secs(10), seq_ok).await;
        let now = w.cached(layout[i].0);
        let new: Vec<&String> = now.difference(&before[i]).collect();
        if layout[i].1 == layout[holder].1 {
            assert_eq!(new.len(), 1, "{}: {new:?}", layout[i].0);
        } else {
            assert!(
                new.is_empty(),
                "{} downloaded {new:?} for a shard it does not hold",
                layout[i].0
            );
        }
    }
    assert_eq!(
        spend(&client, &router.url, &[changed, 43])
            .await
            .expect("router"),
        [json!(42_000), json!(43)]
    );

    // Kill one of the two edges holding shards 0-1 under load: the router retries the other.
    let load = Load::start(&router.url, 1, 40);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut a = edges.remove(0);
    a.child.kill().expect("kill");
    a.child.wait().expect("wait");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let restarted = w.edge(&cp.url, "a", ports[0], "0-1/4").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (ok, mut failed) = load.finish().await;
    // Customer 42 answers 42_000 now: the load's own check counts it wrong, so drop those.
    failed.retain(|f| !f.contains("42000"));
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 20, "only {ok} answered");
    drop((restarted, edges, router, cp));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_snapshot_download_resumes_where_it_stopped() {
    let s3 = S3Server::start("resume");
    let direct = s3.store("s3://resume/live");
    // 6 MiB of incompressible bytes from a seed.
    let mut rng = fstore_snapshot::testkit::Rng(11);
    let body: Vec<u8> = (0..6 * 1024 * 1024 / 8)
        .flat_map(|_| rng.next_u64().to_le_bytes())
        .collect();
    direct
        .put_new("snapshots/big/1.fss", body.clone().into())
        .await
        .expect("put");

    // The same store through a proxy that cuts the first two transfers after 1 MiB.
    let port: u16 = s3
        .endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let proxy = CuttingProxy::start(port, 1 << 20, 2);
    let flaky = fstore_storage::Store::from_url_opts(
        "s3://resume/live",
        &[
            ("aws_endpoint", &format!("http://127.0.0.1:{}", proxy.port)),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ],
    )
    .expect("store");
    let tmp = tempfile::tempdir().expect("tmp");
    let dest = tmp.path().join("big.fss");
    let n = flaky
        .download("snapshots/big/1.fss", &dest)
        .await
        .expect("download");
    assert_eq!(n, body.len() as u64);
    assert!(
        std::fs::read(&dest).expect("read") == body,
        "the file differs"
    );
    // Resumed, not restarted: later attempts asked for the rest only.
    let requests = proxy.requests.lock().expect("lock").clone();
    let ranged = requests
        .iter()
        .filter(|r| r.to_ascii_lowercase().contains("range: bytes="))
        .count();
    assert!(ranged >= 2, "{requests:?}");
    let moved = proxy.downstream_bytes.load(Ordering::SeqCst);
    assert!(
        moved < body.len() as u64 + (body.len() as u64) / 4,
        "{moved} bytes moved for {}",
        body.len()
    );
    assert!(
        !tmp.path().join("big.part").exists(),
        "the partial file is renamed into place"
    );
}
