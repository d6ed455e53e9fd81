//! Test support for fstore's integration tests: starting the real servers as processes,
//! a real S3 API server (moto), fresh PostgreSQL databases, and seeded data sets.

pub mod browser;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `fstore` binary cargo built for this test run.
pub fn fstore_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("fstore");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `fstore <args>` with `env`, returning (success, stdout, stderr).
pub fn fstore(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> (bool, String, String) {
    let out = Command::new(fstore_bin())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .expect("run fstore");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `fstore serve …` on port 0 and waits for the line announcing its address.
pub fn spawn_server(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Proc {
    let mut child = Command::new(fstore_bin())
        .args(args)
        // Tests of other features run servers open; the access tests pass FSTORE_AUTH=on.
        .env("FSTORE_AUTH", "off")
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fstore");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("read stderr");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Proc { child, url }
}

/// Starts `fstore serve control-plane --no-scheduler` (plus `extra` flags) and an edge that
/// polls only once a minute but reports to it, so it learns of publishes by notification;
/// waits until both answer. The edge caches under `cwd/edge-cache`.
pub async fn control_plane_and_edge(
    env: &[(&str, &str)],
    cwd: &Path,
    extra: &[&str],
) -> (Proc, Proc) {
    let mut args = vec![
        "serve",
        "control-plane",
        "--addr",
        "127.0.0.1:0",
        "--no-scheduler",
    ];
    args.extend_from_slice(extra);
    let cp = spawn_server(&args, env, cwd);
    wait_ok(&format!("{}/healthz", cp.url), Duration::from_secs(60)).await;
    let cache = cwd.join("edge-cache");
    let edge = spawn_server(
        &[
            "serve",
            "edge",
            "--addr",
            "127.0.0.1:0",
            "--poll-interval",
            "60s",
            "--control-plane",
            &cp.url,
            "--cache-dir",
            &cache.to_string_lossy(),
        ],
        env,
        cwd,
    );
    wait_ok(&format!("{}/readyz", edge.url), Duration::from_secs(60)).await;
    (cp, edge)
}

/// Polls `url` until it answers 200 or `timeout` passes.
pub async fn wait_ok(url: &str, timeout: Duration) {
    let c = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = c.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The quickstart's `features.yaml` with a generous per-call deadline on every transform: the
/// deadline is wall-clock time, and tests share two cores with each other, so the default
/// 10 ms would fail a call whenever its thread is descheduled at the wrong moment.
pub fn test_features_yaml() -> String {
    fstore_cli::datagen::FEATURES_YAML.replace(
        "    component: transforms/",
        "    timeout_ms: 2000\n    component: transforms/",
    )
}

/// The test features.yaml with every data and component path made absolute under `dir`, for
/// the REST API (which resolves relative paths against the server's directory).
pub fn absolute_features_yaml(dir: &Path) -> String {
    let d = dir.display();
    test_features_yaml()
        .replace("path: data/", &format!("path: {d}/data/"))
        .replace(
            "component: transforms/",
            &format!("component: {d}/transforms/"),
        )
}

/// Writes a small seeded data set, the example components and the quickstart's features.yaml
/// into `dir`.
pub fn quickstart_data(dir: &Path, customers: u64) {
    let today = chrono_free_today_micros();
    let spec = fstore_cli::datagen::GenSpec {
        customers,
        seed: 7,
        as_of_micros: today,
        activity: 1.0,
    };
    fstore_cli::datagen::generate(&dir.join("data"), &spec, &|_| {}).expect("generate");
    fstore_cli::datagen::write_entity_rows(
        &dir.join("data/training_entities.parquet"),
        customers,
        customers * 2,
        today,
        7,
    )
    .expect("entity rows");
    fstore_cli::datagen::write_components(dir).expect("write components");
    std::fs::write(dir.join("features.yaml"), test_features_yaml()).expect("write yaml");
}

fn chrono_free_today_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    (now - now % 86_400) * 1_000_000
}

/// The PostgreSQL server tests use (CI has one on 127.0.0.1:5432).
pub fn postgres_url() -> String {
    std::env::var("FSTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh database on the test server, dropped when the guard drops.
pub struct TempDb {
    pub url: String,
    name: String,
}

impl TempDb {
    pub fn create() -> Self {
        let name = format!(
            "fstore_it_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos()
        );
        let base = postgres_url();
        let ok = Command::new("psql")
            .args([&base, "-qc", &format!("CREATE DATABASE {name}")])
            .status()
            .expect("psql");
        assert!(ok.success(), "could not create database {name} on {base}");
        let url = match base.rsplit_once('/') {
            Some((prefix, _)) => format!("{prefix}/{name}"),
            None => panic!("bad postgres url {base}"),
        };
        Self { url, name }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &postgres_url(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}

/// A moto S3 server on a free port, with a bucket; killed on drop.
pub struct S3Server {
    _proc: Proc,
    pub endpoint: String,
}

impl S3Server {
    pub fn start(bucket: &str) -> Self {
        let has_moto = Command::new("python3")
            .args(["-c", "import moto.server"])
            .status()
            .is_ok_and(|s| s.success());
        if !has_moto {
            let ok = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "moto[server]"])
                .status()
                .expect("pip");
            assert!(ok.success(), "installing moto[server] from PyPI failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Create the bucket with a plain PUT (moto accepts unsigned requests).
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        std::io::Write::write_all(&mut conn, format!("PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
            .expect("send");
        let mut reply = String::new();
        std::io::Read::read_to_string(&mut conn, &mut reply).expect("read");
        assert!(
            reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
            "creating bucket {bucket}: {reply}"
        );
        Self {
            _proc: Proc {
                child,
                url: endpoint.clone(),
            },
            endpoint,
        }
    }

    /// Environment for a process talking to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// An object store at `url` (`s3://bucket/prefix`) on this server, for a test to put or
    /// list objects directly.
    pub fn store(&self, url: &str) -> fstore_storage::Store {
        fstore_storage::Store::from_url_opts(
            url,
            &[
                ("aws_endpoint", &self.endpoint),
                ("aws_access_key_id", "test"),
                ("aws_secret_access_key", "test"),
                ("aws_region", "us-east-1"),
                ("aws_allow_http", "true"),
            ],
        )
        .expect("store")
    }
}

/// Azurite's well-known development account (public, documented by Microsoft).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";

/// An Azurite blob server (Azure Blob Storage's emulator, from npm) on a free port, with a
/// container; killed on drop. Needs `FSTORE_AZURITE_DIR`: a directory where `azurite` and
/// `@azure/storage-blob` are npm-installed (`.ci/run` makes one); None without it.
pub struct AzuriteServer {
    _proc: Proc,
    _data: tempfile::TempDir,
    pub endpoint: String,
    port: u16,
    modules: PathBuf,
}

impl AzuriteServer {
    pub fn start(container: &str) -> Option<Self> {
        let dir = PathBuf::from(std::env::var_os("FSTORE_AZURITE_DIR")?);
        let data = tempfile::tempdir().expect("tmp");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new(dir.join("node_modules/.bin/azurite-blob"))
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            .args(["--silent", "--skipApiVersionCheck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite (is FSTORE_AZURITE_DIR an npm install of azurite?)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "azurite did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let server = Self {
            _proc: Proc {
                child,
                url: endpoint.clone(),
            },
            _data: data,
            endpoint,
            port,
            modules: dir.join("node_modules"),
        };
        let ok = server.node(container).status().expect("node");
        assert!(ok.success(), "creating container {container} on azurite");
        Some(server)
    }

    /// Environment for a process talking to this server (object_store's emulator mode).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint.clone()),
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT.into()),
        ]
    }

    /// Uploads every file under `dir` to `container`, keyed `prefix/<path under dir>`.
    pub fn upload(&self, container: &str, dir: &Path, prefix: &str) {
        let ok = self
            .node(container)
            .arg(dir)
            .arg(prefix)
            .status()
            .expect("node");
        assert!(ok.success(), "uploading {} to azurite", dir.display());
    }

    fn node(&self, container: &str) -> Command {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/azure_container.js");
        let mut c = Command::new("node");
        c.arg(script)
            .args([&self.port.to_string(), container])
            .env("NODE_PATH", self.modules.clone());
        c
    }
}

/// A control plane and an edge in this process, each on its own loopback port (real HTTP),
/// over SQLite and a local directory, with the quickstart's definitions applied and
/// materialized once.
pub struct Stack {
    pub dir: tempfile::TempDir,
    pub cp: std::sync::Arc<fstore_control::ControlPlane>,
    pub edge_url: String,
    pub control_url: String,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Stack {
    pub async fn start(customers: u64, max_entities: usize, max_body_bytes: usize) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        quickstart_data(dir.path(), customers);
        let cp = std::sync::Arc::new(
            fstore_control::ControlPlane::open(fstore_control::ControlConfig {
                database_url: dir
                    .path()
                    .join("registry.db")
                    .to_string_lossy()
                    .into_owned(),
                store_url: dir.path().join("objects").to_string_lossy().into_owned(),
                max_body_bytes,
                retain_versions: fstore_control::DEFAULT_RETAIN_VERSIONS,
                alerts: fstore_control::AlertSettings::default(),
                // The tests materialize when they mean to; no scheduler runs behind them.
                auth: false,
                jobs: fstore_control::JobSettings {
                    enabled: false,
                    ..fstore_control::JobSettings::default()
                },
            })
            .await
            .expect("open control plane"),
        );
        let defs = fstore_control::ControlPlane::parse(&test_features_yaml(), Some(dir.path()))
            .expect("defs");
        cp.apply(&defs, &fstore_control::ApplyOptions::new("test"))
            .await
            .expect("apply");
        cp.materialize(&[], "test", fstore_control::RunMode::Full)
            .await
            .expect("materialize");

        let (stop, rx) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let el = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let edge_url = format!("http://{}", el.local_addr().expect("addr"));
        let mut cfg =
            fstore_edge::EdgeConfig::new(dir.path().join("objects").to_string_lossy().into_owned());
        cfg.cache_dir = dir.path().join("edge-cache");
        cfg.poll_interval = Duration::from_millis(20);
        cfg.max_entities = max_entities;
        cfg.max_body_bytes = max_body_bytes;
        tokio::spawn(fstore_edge::serve(cfg, el, wait(rx.clone())));
        let cl = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let control_url = format!("http://{}", cl.local_addr().expect("addr"));
        tokio::spawn(fstore_dashboard::serve(cp.clone(), cl, wait(rx)));
        wait_ok(&format!("{edge_url}/readyz"), Duration::from_secs(30)).await;
        Self {
            dir,
            cp,
            edge_url,
            control_url,
            stop,
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Asserts `resp` is a 4xx with the `{"error": {"code", "message"}}` body; returns the code.
pub async fn expect_api_error(resp: reqwest::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status, "unexpected status");
    let v: serde_json::Value = resp.json().await.expect("error body is JSON");
    let code = v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {v}"))
        .to_string();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no error.message in {v}"
    );
    code
}

/// GETs `url` and parses the body as JSON, whatever the status.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: body is not JSON: {e}"))
}
