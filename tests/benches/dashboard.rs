//! The dashboard's overview with 100 feature views and 10 edges, over real HTTP on loopback
//! with authentication on (a session cookie): the HTML page (`GET /`), its live fragment and
//! the same figures as JSON (`GET /v1/overview`). The serving page is measured over a full
//! hour of reports: every edge reporting all 102 views every 5 seconds (the edges' default
//! poll interval), 734,400 samples in the registry.
//!
//! Run with `cargo bench -p fstore-tests --bench dashboard`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fstore_control::{ControlPlane, Principal};
use fstore_registry::{EdgeHeartbeat, ServingSample, ViewSignals};
use fstore_tests::quickstart_data;

const VIEWS: usize = 100;
const EDGES: usize = 10;
const REGIONS: [&str; 4] = ["eu-west", "eu-central", "us-east", "ap-south"];
/// Reports per edge and view in an hour at the edges' default 5-second poll interval.
const REPORTS: usize = 720;

struct Bench {
    _dir: tempfile::TempDir,
    url: String,
    cookie: String,
    token: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// The quickstart's definitions plus `VIEWS` more views of the CRM source, half of them on
/// an hourly schedule, owned by seven teams.
fn features_yaml() -> String {
    let mut views = String::new();
    for i in 0..VIEWS {
        views.push_str(&format!(
            "  - name: segment_{i:03}\n    entities: [customer]\n    source: customers\n    owner: team-{}@example.com\n    tags: [bench]\n{}    features:\n      - {{name: signup_channel, type: string}}\n      - {{name: signup_at, type: timestamp}}\n",
            i % 7,
            if i % 2 == 0 { "    schedule: 1h\n" } else { "" }
        ));
    }
    let y = fstore_tests::test_features_yaml();
    let at = y
        .find("\non_demand_views:")
        .expect("on_demand_views section");
    format!("{}\n{views}{}", &y[..at], &y[at..])
}

fn setup() -> Bench {
    let dir = tempfile::tempdir().expect("tmp");
    quickstart_data(dir.path(), 200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let (url, cookie, token) = rt.block_on(async {
        let cp = Arc::new(
            ControlPlane::open(fstore_control::ControlConfig {
                database_url: dir
                    .path()
                    .join("registry.db")
                    .to_string_lossy()
                    .into_owned(),
                store_url: dir.path().join("objects").to_string_lossy().into_owned(),
                max_body_bytes: 1 << 20,
                retain_versions: fstore_control::DEFAULT_RETAIN_VERSIONS,
                alerts: fstore_control::AlertSettings::default(),
                auth: true,
                jobs: fstore_control::JobSettings {
                    enabled: false,
                    ..fstore_control::JobSettings::default()
                },
            })
            .await
            .expect("open"),
        );
        let defs = ControlPlane::parse(&features_yaml(), Some(dir.path())).expect("defs");
        cp.apply(&defs, &fstore_control::ApplyOptions::new("bench"))
            .await
            .expect("apply");
        cp.materialize(&[], "bench", fstore_control::RunMode::Full)
            .await
            .expect("materialize");
        let me = Principal::local("bench");
        let admin = cp
            .create_token(&me, "bench-admin", "admin", None)
            .await
            .expect("token")
            .token;
        let o = cp.overview().await.expect("overview");
        let views: BTreeMap<String, u64> = o
            .views
            .iter()
            .filter_map(|v| Some((v.view.clone(), v.live_version?)))
            .collect();
        let serving: BTreeMap<String, ViewSignals> = views
            .keys()
            .map(|v| {
                (
                    v.clone(),
                    ViewSignals {
                        lookups: 5_000,
                        not_found: 40,
                        errors: 1,
                        p50_ms: Some(0.08),
                        p99_ms: Some(0.4),
                    },
                )
            })
            .collect();
        for i in 0..EDGES {
            cp.heartbeat(&EdgeHeartbeat {
                id: format!("edge-{i:02}"),
                region: REGIONS[i % REGIONS.len()].into(),
                address: format!("http://10.0.{i}.1:8081"),
                manifest_seq: o.live_manifest,
                views: views.clone(),
                ready: true,
                interval_ms: 1_000,
                started_at: chrono::Utc::now().to_rfc3339(),
                serving: serving.clone(),
                serving_window_ms: 1_000,
            })
            .await
            .expect("heartbeat");
        }
        // An hour of reports, as the heartbeats above would have left them.
        let now = chrono::Utc::now();
        let mut samples = Vec::with_capacity(EDGES * views.len() * REPORTS);
        for r in 0..REPORTS {
            let at = (now - chrono::Duration::seconds(5 * r as i64 + 5))
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            for e in 0..EDGES {
                for (i, view) in views.keys().enumerate() {
                    samples.push(ServingSample {
                        edge: format!("edge-{e:02}"),
                        view: view.clone(),
                        at: at.clone(),
                        window_ms: 5_000,
                        lookups: 1_000 + ((r * 7 + i * 13 + e) % 400) as u64,
                        not_found: (r % 11) as u64,
                        errors: u64::from(r % 97 == 0),
                        p50_us: Some(60 + (r % 30) as u64),
                        p99_us: Some(300 + (r * 31 % 500) as u64),
                    });
                }
            }
        }
        for chunk in samples.chunks(50_000) {
            cp.registry().record_serving(chunk).await.expect("samples");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut rx = rx;
        tokio::spawn(fstore_dashboard::serve(cp, listener, async move {
            let _ = rx.wait_for(|v| *v).await;
        }));
        (url, format!("fstore_session={admin}"), admin)
    });
    Bench {
        _dir: dir,
        url,
        cookie,
        token,
        http: reqwest::Client::new(),
        rt,
        _stop: stop,
    }
}

impl Bench {
    /// GETs `path` and returns the body's length, failing on anything but a 200.
    fn get(&self, path: &str, session: bool) -> usize {
        self.rt.block_on(async {
            let req = self.http.get(format!("{}{path}", self.url));
            let req = if session {
                req.header("cookie", &self.cookie)
            } else {
                req.bearer_auth(&self.token)
            };
            let resp = req.send().await.expect("get");
            assert_eq!(resp.status().as_u16(), 200, "{path}");
            resp.bytes().await.expect("body").len()
        })
    }
}

fn dashboard(c: &mut Criterion) {
    let b = setup();
    let page = b.get("/", true);
    assert!(page > 10_000, "a full overview: {page} bytes");
    eprintln!(
        "overview page {page} bytes, serving page {} bytes",
        b.get("/serving", true)
    );
    let mut g = c.benchmark_group("dashboard_100_views_10_edges");
    g.sample_size(30).measurement_time(Duration::from_secs(10));
    g.bench_function("overview_page", |x| x.iter(|| b.get("/", true)));
    g.bench_function("overview_fragment", |x| {
        x.iter(|| b.get("/?fragment=overview", true))
    });
    g.bench_function("overview_json", |x| x.iter(|| b.get("/v1/overview", false)));
    g.bench_function("serving_page_hour", |x| {
        x.iter(|| b.get("/serving?minutes=60", true))
    });
    g.bench_function("serving_page_15_min", |x| {
        x.iter(|| b.get("/serving?minutes=15", true))
    });
    g.bench_function("serving_page_5_min", |x| {
        x.iter(|| b.get("/serving?minutes=5", true))
    });
    g.finish();
}

criterion_group!(benches, dashboard);
criterion_main!(benches);
