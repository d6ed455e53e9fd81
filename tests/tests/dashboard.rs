//! The dashboard end to end: a control plane (scheduler on, authentication on) and an edge
//! reporting to it as real processes. Over plain HTTP: the login flow, every page for admin
//! and consumer, and wrong input on every page and form (a 4xx page, never a 5xx). In a real
//! headless Chromium (`.ci/run` installs Debian's): log in with a token, see the running edge
//! on the overview, search the catalog, open a feature, trigger a job and watch its status
//! change without reloading, and get a 403 page for a consumer on governance.
//!
//! With `FSTORE_SCREENSHOTS=<dir>` the browser test saves its screenshots there (the ones in
//! `docs/screenshots/` were made so).

use std::path::PathBuf;
use std::time::Duration;

use fstore_tests::browser::{self, Browser};
use fstore_tests::{Proc, fstore, quickstart_data, spawn_server, wait_ok};
use serde_json::{Value, json};

struct Stack {
    dir: tempfile::TempDir,
    _cp: Proc,
    cp_url: String,
    _edge: Proc,
    edge_url: String,
    admin: String,
    consumer: String,
}

fn env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "FSTORE_DATABASE_URL",
            dir.join("registry.db").to_string_lossy().into_owned(),
        ),
        (
            "FSTORE_STORE_URL",
            dir.join("objects").to_string_lossy().into_owned(),
        ),
        ("FSTORE_AUTH", "on".into()),
    ]
}

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let env = env(dir);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, out, err) = fstore(args, &env, dir);
    assert!(ok, "fstore {args:?}: {out}{err}");
    out
}

fn token(dir: &std::path::Path, role: &str) -> String {
    let out = cli(
        dir,
        &["token", "create", "--role", role, "--name", role, "--json"],
    );
    serde_json::from_str::<Value>(&out).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string()
}

async fn start() -> Stack {
    let dir = tempfile::tempdir().expect("tmp");
    quickstart_data(dir.path(), 300);
    std::fs::write(
        dir.path().join("features.yaml"),
        fstore_tests::test_features_yaml(),
    )
    .expect("yaml");
    cli(dir.path(), &["apply", "-f", "features.yaml"]);
    cli(dir.path(), &["materialize"]);
    let admin = token(dir.path(), "admin");
    let consumer = token(dir.path(), "consumer");
    let edge_token = token(dir.path(), "edge");
    let key = cli(dir.path(), &["auth", "public-key"]).trim().to_string();
    let e = env(dir.path());
    let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The scheduler runs (a quick tick), so a run queued from the page is picked up.
    let cp = spawn_server(
        &[
            "serve",
            "control-plane",
            "--addr",
            "127.0.0.1:0",
            "--job-tick",
            "200ms",
        ],
        &e,
        dir.path(),
    );
    wait_ok(&format!("{}/healthz", cp.url), Duration::from_secs(60)).await;
    let cache = dir.path().join("edge-cache");
    let edge = spawn_server(
        &[
            "serve",
            "edge",
            "--addr",
            "127.0.0.1:0",
            "--poll-interval",
            "1s",
            "--region",
            "eu-west",
            "--edge-id",
            "edge-eu-1",
            "--control-plane",
            &cp.url,
            "--cache-dir",
            &cache.to_string_lossy(),
            "--auth-public-key",
            &key,
            "--control-plane-token",
            &edge_token,
        ],
        &e,
        dir.path(),
    );
    wait_ok(&format!("{}/readyz", edge.url), Duration::from_secs(60)).await;
    Stack {
        cp_url: cp.url.clone(),
        edge_url: edge.url.clone(),
        dir,
        _cp: cp,
        _edge: edge,
        admin,
        consumer,
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A token of the right shape that was never issued.
const UNKNOWN_TOKEN: &str =
    "fst_0000000000000000_0000000000000000000000000000000000000000000000000000000000000000";

/// A form body as a browser encodes it.
fn encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A client that keeps cookies to itself and does not follow redirects, to see them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Logs in over HTTP; returns the session cookie (`fstore_session=…`).
async fn login(s: &Stack, token: &str) -> String {
    let resp = client()
        .post(format!("{}/login", s.cp_url))
        .header("content-type", FORM)
        .body(encode(&[("token", token), ("next", "/jobs")]))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"],
        "/jobs",
        "back where it was going"
    );
    let set = resp.headers()["set-cookie"].to_str().expect("cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().expect("cookie").to_string()
}

async fn get(s: &Stack, cookie: &str, path: &str) -> (u16, String) {
    let resp = client()
        .get(format!("{}{path}", s.cp_url))
        .header("cookie", cookie)
        .send()
        .await
        .expect("get");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

async fn post(s: &Stack, cookie: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let resp = client()
        .post(format!("{}{path}", s.cp_url))
        .header("cookie", cookie)
        .header("content-type", FORM)
        .body(encode(form))
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap_or_default().to_string());
    (status, location.unwrap_or(resp.text().await.expect("body")))
}

/// The CSRF value a page's forms carry.
fn csrf(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with csrf")
        + 19;
    html[at..].split('"').next().expect("value").to_string()
}

/// Lookups through the edge, so it has serving figures to report.
async fn traffic(s: &Stack) {
    let c = reqwest::Client::new();
    for id in 0..40 {
        let r = c
            .post(format!("{}/v1/features", s.edge_url))
            .bearer_auth(&s.consumer)
            .json(&json!({"features": ["customer_rfm:recency_days"], "entities": {"customer_id": [1000 + id]}}))
            .send()
            .await
            .expect("lookup");
        assert!(r.status().is_success(), "lookup {}", r.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_forms_and_refusals_over_http() {
    let s = start().await;
    traffic(&s).await;

    // No session: pages send to the login page and back; assets and the login page are open.
    let resp = client()
        .get(format!("{}/jobs?view=customer_rfm", s.cp_url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(
        resp.headers()["location"],
        "/login?next=%2Fjobs%3Fview%3Dcustomer_rfm"
    );
    let (st, css) = get(&s, "", "/assets/app.css").await;
    assert!(st == 200 && css.contains("--accent"));
    let (st, _) = get(&s, "", "/assets/missing.js").await;
    assert_eq!(st, 404);
    // A wrong token: 401 with the login form again; a garbled cookie: back to login.
    let resp = client()
        .post(format!("{}/login", s.cp_url))
        .header("content-type", FORM)
        .body(encode(&[("token", UNKNOWN_TOKEN)]))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.text().await.expect("body").contains("role=\"alert\""));
    let resp = client()
        .post(format!("{}/login", s.cp_url))
        .header("content-type", FORM)
        .body(encode(&[("nothing", "here")]))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status().as_u16(), 400);
    let resp = client()
        .get(format!("{}/", s.cp_url))
        .header("cookie", "fstore_session=garbage")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 303);
    assert!(
        resp.headers()["location"]
            .to_str()
            .expect("loc")
            .contains("expired=1")
    );

    let admin = login(&s, &s.admin).await;
    let consumer = login(&s, &s.consumer).await;

    // The overview shows the edge (heartbeats arrive each second) and every view's freshness.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (st, html) = get(&s, &admin, "/").await;
        assert_eq!(st, 200);
        if html.contains("data-edge=\"edge-eu-1\"") {
            assert!(html.contains("eu-west"));
            assert!(html.contains("data-view=\"customer_rfm\""), "{html}");
            assert!(
                html.contains("manual"),
                "customer_rfm has no schedule: {html}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no edge on the overview: {html}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The same figures as JSON for scripts, once the edge reports the live view loaded (its
    // first heartbeat may come before its first load).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (o, rfm) = loop {
        let o: Value = reqwest::Client::new()
            .get(format!("{}/v1/overview", s.cp_url))
            .bearer_auth(&s.consumer)
            .send()
            .await
            .expect("overview")
            .json()
            .await
            .expect("json");
        let rfm = o["views"]
            .as_array()
            .expect("views")
            .iter()
            .find(|v| v["view"] == "customer_rfm")
            .expect("customer_rfm")
            .clone();
        if rfm["edges_current"] == 1 {
            break (o, rfm);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the edge never served v1: {o}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(rfm["status"], "manual");
    assert_eq!(o["edges"][0]["id"], "edge-eu-1");
    let (st, _) = get(&s, &admin, "/?fragment=overview").await;
    assert_eq!(st, 200);

    // Serving: the edge's lookups arrive with its heartbeats.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (st, html) = get(&s, &consumer, "/serving?minutes=5").await;
        assert_eq!(st, 200);
        if html.contains("data-view=\"customer_rfm\"") {
            assert!(
                html.contains("<polyline") || html.contains("<circle"),
                "a chart with points"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no serving figures: {html}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Catalog, a feature page, lineage.
    let (st, html) = get(&s, &consumer, "/catalog?q=spend").await;
    assert_eq!(st, 200);
    assert!(html.contains("data-kind=\"feature\""), "{html}");
    assert!(
        html.contains("href=\"/catalog/features/customer_rfm/monetary_30d\""),
        "a feature hit links its page: {html}"
    );
    let (st, html) = get(&s, &consumer, "/catalog/features/customer_rfm/monetary_90d").await;
    assert_eq!(st, 200);
    assert!(html.contains("id=\"feature-title\""));
    assert!(html.contains("class=\"bar\""), "a histogram: {html}");
    // A PII feature: counts only for a role without read_pii, values for admin.
    let (st, html) = get(&s, &consumer, "/catalog/features/customer_profile/country").await;
    assert_eq!(st, 200);
    assert!(html.contains("This feature is PII"), "{html}");
    assert!(!html.contains("Most frequent values"), "{html}");
    let (_, html) = get(&s, &admin, "/catalog/features/customer_profile/country").await;
    assert!(html.contains("Most frequent values") && !html.contains("This feature is PII"));
    let (st, html) = get(&s, &consumer, "/lineage?focus=feature_view:customer_rfm").await;
    assert_eq!(st, 200);
    assert!(html.contains("node feature_view focus"));
    assert!(html.contains("data-node=\"feature_service:segmentation_v1\""));

    // Governance: admin sees tokens and the audit log; the consumer gets 403 pages and no link.
    let (st, html) = get(&s, &admin, "/governance").await;
    assert_eq!(st, 200);
    assert!(html.contains("id=\"tokens\"") && html.contains("consumer"));
    let (st, html) = get(&s, &admin, "/governance/audit?action=login").await;
    assert_eq!(st, 200);
    assert!(
        html.contains("<td>dashboard <span class=\"muted\">127.0.0.1</span></td>"),
        "logins are audited with the dashboard as origin and the client's address: {html}"
    );
    // Newest first: the consumer logged in after the admin.
    let consumer_at = html.find("token:consumer").expect("consumer's login");
    let admin_at = html.find("<td>token:admin").expect("admin's login");
    assert!(consumer_at < admin_at, "newest first");
    let (_, html) = get(&s, &admin, "/governance/audit?action=login_failed").await;
    assert!(
        html.contains("0000000000000000"),
        "the failed login is recorded with the id it tried: {html}"
    );
    let (st, html) = get(&s, &admin, "/governance/audit?verify=1").await;
    assert_eq!(st, 200);
    assert!(html.contains("The chain is intact"));
    let (st, _) = get(&s, &admin, "/governance/compliance").await;
    assert_eq!(st, 200);
    for page in ["/governance", "/governance/audit", "/governance/compliance"] {
        let (st, html) = get(&s, &consumer, page).await;
        assert_eq!(st, 403, "{page}");
        assert!(
            html.contains("403 Forbidden")
                && html.contains("read_audit") | html.contains("manage_access"),
            "{html}"
        );
    }
    let (_, html) = get(&s, &consumer, "/").await;
    assert!(
        !html.contains("href=\"/governance\""),
        "no link to a page they cannot see"
    );

    // Jobs: the consumer may not run anything; admin queues a run and it succeeds.
    let (_, html) = get(&s, &consumer, "/jobs").await;
    assert!(html.contains("may not materialize"));
    let consumer_csrf = csrf(&html);
    let (st, _) = post(
        &s,
        &consumer,
        "/jobs/trigger",
        &[("view", "customer_rfm"), ("csrf", &consumer_csrf)],
    )
    .await;
    assert_eq!(st, 403);
    let (_, html) = get(&s, &admin, "/jobs").await;
    let token = csrf(&html);
    let (st, to) = post(
        &s,
        &admin,
        "/jobs/trigger",
        &[("view", "customer_rfm"), ("csrf", &token)],
    )
    .await;
    assert_eq!(st, 303, "{to}");
    let id: u64 = to
        .strip_prefix("/jobs?triggered=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{to}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, frag) = get(&s, &admin, "/jobs?fragment=runs").await;
        assert!(!frag.contains("<html"), "a fragment, not a page");
        if frag.contains(&format!("data-run=\"{id}\" data-status=\"succeeded\"")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {id} did not succeed: {frag}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Wrong input everywhere: a 4xx page, never a 5xx.
    for (path, status) in [
        ("/lineage?focus=nonsense", 400),
        ("/lineage?focus=nonsense:x", 400),
        ("/lineage?focus=feature_view:nope", 404),
        ("/catalog/features/nope/x", 404),
        ("/catalog/features/customer_rfm/nope", 404),
        ("/catalog?offset=-1", 400),
        ("/catalog?bogus=1", 400),
        ("/serving?minutes=0", 400),
        ("/serving?minutes=abc", 400),
        ("/jobs?status=bogus", 400),
        ("/governance/audit?since=yesterday", 400),
        ("/governance/audit?before=abc", 400),
        ("/governance/compliance?until=soon", 400),
        ("/?fragment=overview&extra=1", 400),
    ] {
        let (st, html) = get(&s, &admin, path).await;
        assert_eq!(st, status, "{path}: {html}");
        assert!(html.contains("class=\"error\""), "{path}: an error page");
    }
    type Form<'a> = Vec<(&'a str, &'a str)>;
    let forms: [(&str, Form, u16); 6] = [
        ("/jobs/trigger", vec![("view", "customer_rfm")], 403),
        (
            "/jobs/trigger",
            vec![("view", "customer_rfm"), ("csrf", "forged")],
            403,
        ),
        ("/jobs/trigger", vec![("view", ""), ("csrf", &token)], 400),
        (
            "/jobs/trigger",
            vec![("view", "no_such_view"), ("csrf", &token)],
            404,
        ),
        ("/jobs/abc/cancel", vec![("csrf", &token)], 400),
        ("/jobs/999999/cancel", vec![("csrf", &token)], 404),
    ];
    for (path, form, status) in forms {
        let (st, body) = post(&s, &admin, path, &form).await;
        assert_eq!(st, status, "{path} {form:?}: {body}");
    }
    // A run that ended cannot be cancelled: 409.
    let (st, _) = post(
        &s,
        &admin,
        &format!("/jobs/{id}/cancel"),
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(st, 409);
    // A form posted from another site is refused even with the cookie.
    let resp = client()
        .post(format!("{}/jobs/trigger", s.cp_url))
        .header("cookie", &admin)
        .header("origin", "https://evil.example")
        .header("content-type", FORM)
        .body(encode(&[("view", "customer_rfm"), ("csrf", &token)]))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 403);
    // Logging out forgets the cookie (and is audited); the token works until revoked.
    let (st, to) = post(&s, &admin, "/logout", &[("csrf", &token)]).await;
    assert_eq!((st, to.as_str()), (303, "/login"));
    let (_, html) = get(&s, &admin, "/governance/audit?action=logout").await;
    assert!(
        html.contains("<td>token:admin</td><td>logout</td>"),
        "{html}"
    );
    // Revoking the consumer's token ends its session at the next request.
    cli(s.dir.path(), &["token", "revoke", "consumer"]);
    let resp = client()
        .get(format!("{}/", s.cp_url))
        .header("cookie", &consumer)
        .send()
        .await
        .expect("get");
    assert_eq!(
        resp.status().as_u16(),
        303,
        "a revoked token's session ends"
    );
}

fn screenshots() -> Option<PathBuf> {
    std::env::var_os("FSTORE_SCREENSHOTS").map(PathBuf::from)
}

async fn shot(b: &Browser, name: &str) {
    if let Some(dir) = screenshots() {
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        b.screenshot(&dir.join(format!("{name}.png"))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_searches_runs_a_job_and_is_refused_governance() {
    let Some((driver, chromium)) = browser::find() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver (.ci/run does)"
        );
        eprintln!(
            "chromium or chromedriver is missing: skipping the browser test (.ci/run installs them)"
        );
        return;
    };
    let s = start().await;
    traffic(&s).await;
    let b = Browser::start(&driver, &chromium).await;
    let wait = Duration::from_secs(30);

    // Log in: the overview redirects to the login page and back.
    b.goto(&format!("{}/", s.cp_url)).await;
    let field = b.wait_for("#token", wait).await;
    b.type_text(&field, &s.admin).await;
    b.click(&b.wait_for("form button[type=submit]", wait).await)
        .await;
    b.wait_for("#overview", wait).await;
    assert_eq!(b.url().await, format!("{}/", s.cp_url));
    // The running edge appears (the overview refreshes itself every 5 s).
    let row = b
        .wait_for("tr[data-edge='edge-eu-1']", Duration::from_secs(60))
        .await;
    assert!(b.text(&row).await.contains("eu-west"));
    shot(&b, "overview").await;

    // Serving charts, once the edge's figures arrived.
    traffic(&s).await;
    b.goto(&format!("{}/serving?minutes=5", s.cp_url)).await;
    for _ in 0..100 {
        if b.find("div[data-view='customer_rfm'] svg polyline")
            .await
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    b.wait_for("div[data-view='customer_rfm'] svg", wait).await;
    shot(&b, "serving").await;

    // Search the catalog and open a feature from the results.
    b.goto(&format!("{}/catalog", s.cp_url)).await;
    let q = b.wait_for("#q", wait).await;
    b.type_text(&q, "monetary\n").await;
    let hit = b
        .wait_for(
            ".hit[data-kind='feature'][data-name='customer_rfm:monetary_90d'] a",
            wait,
        )
        .await;
    shot(&b, "catalog").await;
    b.click(&hit).await;
    let title = b.wait_for("#feature-title", wait).await;
    assert!(b.text(&title).await.contains("customer_rfm:monetary_90d"));
    b.wait_for("#statistics svg rect.bar", wait).await;
    shot(&b, "feature").await;

    // Lineage: click from the view to a service reading it.
    b.goto(&format!(
        "{}/lineage?focus=feature_view:customer_rfm",
        s.cp_url
    ))
    .await;
    let svc = b
        .wait_for("a[data-node='feature_service:segmentation_v1']", wait)
        .await;
    shot(&b, "lineage").await;
    b.click(&svc).await;
    b.wait_for("#focus[data-focus='segmentation_v1']", wait)
        .await;

    // Trigger a run and watch its row go from queued to succeeded without reloading.
    b.goto(&format!("{}/jobs", s.cp_url)).await;
    b.click(
        &b.wait_for("#trigger-view option[value='customer_rfm']", wait)
            .await,
    )
    .await;
    b.click(&b.wait_for("#trigger-button", wait).await).await;
    b.wait_for("#flash", wait).await;
    let url = b.url().await;
    let id = url
        .split("triggered=")
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{url}"));
    // Watch the row in the page's source (elements are replaced by each refresh, so a
    // handle to one would go stale) until it says succeeded, without leaving the page.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let html = b.source().await;
        let status = html
            .split(&format!("data-run=\"{id}\" data-status=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "succeeded" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "run {id}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.url().await, url, "the status changed in place");
    // The region is refreshed by the page's script every 2 s.
    b.wait_for("#runs[data-updated]", Duration::from_secs(10))
        .await;
    eprintln!("run {id} went through {seen:?}");
    shot(&b, "jobs").await;

    b.goto(&format!("{}/governance/audit", s.cp_url)).await;
    b.wait_for("#audit", wait).await;
    shot(&b, "governance").await;

    // Log out; the consumer gets a 403 page on governance and sees no link to it.
    b.goto(&format!("{}/", s.cp_url)).await;
    b.click(&b.wait_for("form[action='/logout'] button", wait).await)
        .await;
    let field = b.wait_for("#token", wait).await;
    b.type_text(&field, &s.consumer).await;
    b.click(&b.wait_for("form button[type=submit]", wait).await)
        .await;
    b.wait_for("#overview", wait).await;
    assert!(b.find("nav a[href='/governance']").await.is_none());
    b.goto(&format!("{}/governance", s.cp_url)).await;
    let h1 = b.wait_for("h1", wait).await;
    assert_eq!(b.text(&h1).await, "403 Forbidden");
    assert!(b.source().await.contains("manage_access"));
    shot(&b, "forbidden").await;
    b.quit().await;
}
