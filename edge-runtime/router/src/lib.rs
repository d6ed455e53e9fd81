//! fstore's router: one address in front of a fleet of edges. It sends each entity of a
//! lookup to an edge that holds its shard (splitting a request across edges and merging the
//! answers in the caller's order), balances across the edges that can answer, and retries on
//! another one when an edge fails or goes away. Edges are found by their own `/readyz`, which
//! says which shards they hold; the router keeps no data and never calls the control plane.

mod split;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fstore_snapshot::ShardSet;
use serde::Serialize;
use serde_json::Value;

pub use split::{Format, MergeError, Plan, merge, plan, sub_request};

/// How a router runs.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// The edges' base URLs (`http://edge-1:6566`).
    pub edges: Vec<String>,
    /// The join-key columns sharded views are keyed by, in entity order (`customer_id`). A
    /// request without them goes whole to any edge.
    pub key: Vec<String>,
    /// How often each edge's `/readyz` is read.
    pub check_interval: Duration,
    /// How long one forwarded request may take.
    pub timeout: Duration,
    /// Tries per part of a request, the first included, each on another edge when there is one.
    pub attempts: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl RouterConfig {
    pub fn new(edges: Vec<String>) -> Self {
        Self {
            edges,
            key: vec!["customer_id".into()],
            check_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            attempts: 3,
            max_body_bytes: 1 << 20,
        }
    }
}

/// Errors that stop a router from starting.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// What the router knows of one edge.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeStatus {
    pub url: String,
    pub up: bool,
    /// The shards it said it holds (all, until it says otherwise).
    pub shards: ShardSet,
    /// The manifest it serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The router's state: the fleet as last seen, an HTTP client, counters.
#[derive(Debug)]
pub struct RouterState {
    config: RouterConfig,
    edges: Vec<RwLock<EdgeStatus>>,
    client: reqwest::Client,
    /// Rotates which of several able edges takes a request.
    next: AtomicUsize,
    requests: AtomicU64,
    split_requests: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
}

impl RouterState {
    pub fn new(config: RouterConfig) -> Result<Self, RouterError> {
        if config.edges.is_empty() {
            return Err(RouterError::Config(
                "a router needs at least one edge".into(),
            ));
        }
        if config.key.is_empty() || config.key.iter().any(|k| k.trim().is_empty()) {
            return Err(RouterError::Config(
                "the routing key needs column names".into(),
            ));
        }
        if config.attempts == 0 {
            return Err(RouterError::Config("attempts must be at least 1".into()));
        }
        let mut edges = Vec::with_capacity(config.edges.len());
        for url in &config.edges {
            let url = url.trim().trim_end_matches('/').to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(RouterError::Config(format!(
                    "edge `{url}` is not an http:// or https:// URL"
                )));
            }
            edges.push(RwLock::new(EdgeStatus {
                url,
                // Assumed up until a check says otherwise, so the first requests need not
                // wait for the first round of checks.
                up: true,
                shards: ShardSet::all(),
                manifest: None,
                last_error: None,
            }));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| RouterError::Config(format!("http client: {e}")))?;
        Ok(Self {
            config,
            edges,
            client,
            next: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            split_requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// The fleet as the router sees it.
    pub fn edges(&self) -> Vec<EdgeStatus> {
        self.edges.iter().map(|e| read(e).clone()).collect()
    }

    /// Reads every edge's `/readyz` once, all at once.
    pub async fn check(&self) {
        let checks = self.edges.iter().map(|e| async move {
            let url = read(e).url.clone();
            let seen = self.check_edge(&url).await;
            let mut s = e.write().unwrap_or_else(|p| p.into_inner());
            match seen {
                Ok((shards, manifest)) => {
                    if !s.up {
                        tracing::info!(edge = %url, "edge is up");
                    }
                    s.up = true;
                    s.shards = shards;
                    s.manifest = manifest;
                    s.last_error = None;
                }
                Err(why) => {
                    if s.up {
                        tracing::warn!(edge = %url, error = %why, "edge is down");
                    }
                    s.up = false;
                    s.last_error = Some(why);
                }
            }
        });
        futures::future::join_all(checks).await;
    }

    async fn check_edge(&self, url: &str) -> Result<(ShardSet, Option<u64>), String> {
        let r = self
            .client
            .get(format!("{url}/readyz"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("/readyz answered {}", r.status()));
        }
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        let shards = match body.get("shards") {
            Some(s) => serde_json::from_value(s.clone()).map_err(|e| format!("shards: {e}"))?,
            None => ShardSet::all(),
        };
        Ok((shards, body.get("manifest").and_then(Value::as_u64)))
    }

    /// Up edges that hold every hash of `hashes`, starting at a rotating offset.
    fn able(&self, hashes: &[u64]) -> Vec<usize> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        self.able_from(start, hashes)
    }

    /// Up edges that hold every hash of `hashes`, in edge order from `start`: one `start` per
    /// request sends all rows of a shard to the same edge.
    fn able_from(&self, start: usize, hashes: &[u64]) -> Vec<usize> {
        let n = self.edges.len();
        (0..n)
            .map(|i| (start + i) % n)
            .filter(|&i| {
                let e = read(&self.edges[i]);
                e.up && hashes.iter().all(|&h| e.shards.holds_hash(h))
            })
            .collect()
    }

    fn mark_down(&self, i: usize, why: String) {
        let mut s = self.edges[i].write().unwrap_or_else(|p| p.into_inner());
        if s.up {
            tracing::warn!(edge = %s.url, error = %why, "edge failed a request; marked down");
        }
        s.up = false;
        s.last_error = Some(why);
    }

    /// Sends `body` to `path` on the first able edge, then the next on failure. A caller's
    /// mistake (4xx other than 421) is answered as the edge gave it, not retried.
    async fn send(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
        able: &[usize],
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let mut last = String::from("no edge that is up holds these entities");
        for (attempt, &i) in able.iter().take(self.config.attempts).enumerate() {
            if attempt > 0 {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            let url = format!("{}{path}", read(&self.edges[i]).url);
            let mut req = self.client.post(&url).body(body.clone());
            for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
                if let Some(v) = headers.get(&name) {
                    req = req.header(name, v);
                }
            }
            match req.send().await {
                Ok(r) => {
                    let status = r.status();
                    let retry = status.is_server_error() || status.as_u16() == 421;
                    match r.bytes().await {
                        Ok(b) if !retry => return Ok((status, b)),
                        Ok(_) => last = format!("{url} answered {status}"),
                        Err(e) => {
                            last = format!("{url}: {e}");
                            self.mark_down(i, last.clone());
                        }
                    }
                }
                Err(e) => {
                    last = format!("{url}: {e}");
                    // Refused or timed out: stop sending it work until a check sees it back.
                    self.mark_down(i, last.clone());
                }
            }
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "no_edge",
            format!("no edge could answer: {last}"),
        ))
    }

    /// Routes one lookup: whole to one edge when one edge holds every entity, else split by
    /// edge and merged.
    pub async fn lookup(
        &self,
        format: Format,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let parsed: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the request body is not JSON: {e}"),
            )
        })?;
        let hashes = match plan(&parsed, &self.config.key) {
            Plan::Anywhere => Vec::new(),
            Plan::Rows(h) => h,
        };
        let whole = self.able(&hashes);
        if !whole.is_empty() || hashes.is_empty() {
            return self.send(path, headers, body, &whole).await;
        }
        // No one edge holds them all: group rows by the first able edge of each.
        self.split_requests.fetch_add(1, Ordering::Relaxed);
        let n = hashes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (r, &h) in hashes.iter().enumerate() {
            let Some(&edge) = self.able_from(start, &[h]).first() else {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shard_unavailable",
                    format!("no edge that is up holds the shard of entity {r}"),
                ));
            };
            match groups.iter_mut().find(|(e, _)| *e == edge) {
                Some((_, rows)) => rows.push(r),
                None => groups.push((edge, vec![r])),
            }
        }
        let sends = groups.into_iter().map(|(_, rows)| {
            let part = sub_request(&parsed, &rows, n);
            let group_hashes: Vec<u64> = rows.iter().map(|&r| hashes[r]).collect();
            async move {
                let able = self.able(&group_hashes);
                let body = Bytes::from(serde_json::to_vec(&part).unwrap_or_default());
                let answer = self.send(path, headers, body, &able).await?;
                Ok::<_, ApiError>((rows, answer))
            }
        });
        let answers = futures::future::try_join_all(sends).await?;
        let mut parts = Vec::with_capacity(answers.len());
        for (rows, (status, bytes)) in answers {
            // One part's refusal (bad input, no token) is the whole request's.
            if !status.is_success() {
                return Ok((status, bytes));
            }
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "bad_edge_answer",
                    format!("an edge answered something that is not JSON: {e}"),
                )
            })?;
            parts.push((rows, v));
        }
        let merged = merge(format, n, parts).map_err(|e| {
            ApiError::new(StatusCode::BAD_GATEWAY, "bad_edge_answer", e.to_string())
        })?;
        Ok((
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&merged).unwrap_or_default()),
        ))
    }

    /// Whether the up edges together hold every key (every hash range covered).
    pub fn covered(&self) -> bool {
        let mut ranges: Vec<(u64, u64)> = self
            .edges
            .iter()
            .filter_map(|e| {
                let e = read(e);
                e.up.then(|| e.shards.ranges().collect::<Vec<_>>())
            })
            .flatten()
            .collect();
        ranges.sort_unstable();
        let mut reached = 0u64;
        for (lo, hi) in ranges {
            if lo > reached {
                return false;
            }
            reached = reached.max(hi);
        }
        reached >= 1 << 32
    }

    fn render_metrics(&self) -> String {
        let up = self.edges.iter().filter(|e| read(e).up).count();
        format!(
            "# HELP fstore_router_requests_total Lookups received.\n\
             # TYPE fstore_router_requests_total counter\n\
             fstore_router_requests_total {}\n\
             # HELP fstore_router_split_requests_total Lookups split across edges by shard.\n\
             # TYPE fstore_router_split_requests_total counter\n\
             fstore_router_split_requests_total {}\n\
             # HELP fstore_router_retries_total Forwarded requests tried again on another edge.\n\
             # TYPE fstore_router_retries_total counter\n\
             fstore_router_retries_total {}\n\
             # HELP fstore_router_failures_total Lookups no edge could answer.\n\
             # TYPE fstore_router_failures_total counter\n\
             fstore_router_failures_total {}\n\
             # HELP fstore_router_edges_up Edges passing their readiness check.\n\
             # TYPE fstore_router_edges_up gauge\n\
             fstore_router_edges_up {up}\n",
            self.requests.load(Ordering::Relaxed),
            self.split_requests.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

fn read(e: &RwLock<EdgeStatus>) -> std::sync::RwLockReadGuard<'_, EdgeStatus> {
    e.read().unwrap_or_else(|p| p.into_inner())
}

/// An error answered to a caller, in the edges' shape: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: String) -> Self {
        Self {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

fn answer((status, body): (StatusCode, Bytes)) -> Response {
    let json = HeaderValue::from_static("application/json");
    (status, [(header::CONTENT_TYPE, json)], body).into_response()
}

/// A body that could not be read (too large, cut short) as a JSON error like any other.
fn unreadable(e: BytesRejection) -> ApiError {
    let code = match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        _ => "bad_body",
    };
    ApiError::new(e.status(), code, e.body_text())
}

/// Routes one lookup in `format` to `path` on the edges, a body that cannot be read being a
/// JSON error like any other.
async fn route(
    s: &RouterState,
    format: Format,
    path: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return unreadable(e).into_response(),
    };
    match s.lookup(format, path, headers, body).await {
        Ok(a) => answer(a),
        Err(e) => e.into_response(),
    }
}

async fn features(
    State(s): State<Arc<RouterState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    route(&s, Format::Fstore, "/v1/features", &headers, body).await
}

async fn feast(
    State(s): State<Arc<RouterState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    route(&s, Format::Feast, "/get-online-features", &headers, body).await
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Ready while the up edges hold every shard between them.
async fn readyz(State(s): State<Arc<RouterState>>) -> Response {
    if s.covered() {
        return axum::Json(serde_json::json!({"status": "ready"})).into_response();
    }
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        "the edges that are up do not hold every shard".into(),
    )
    .into_response()
}

async fn edges(State(s): State<Arc<RouterState>>) -> Response {
    axum::Json(serde_json::json!({"edges": s.edges()})).into_response()
}

async fn metrics(State(s): State<Arc<RouterState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.render_metrics(),
    )
        .into_response()
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such endpoint".into()).into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method".into(),
    )
    .into_response()
}

/// The router's HTTP routes over `state`.
pub fn router(state: Arc<RouterState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/features", post(features))
        .route("/get-online-features", post(feast))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/edges", get(edges))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Runs a router over `state` (built, and so checked, before the caller binds its port) on
/// `listener` until `shutdown`: checks the edges at once and then every `check_interval`, and
/// serves.
pub async fn serve(
    state: Arc<RouterState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RouterError> {
    let interval = state.config.check_interval;
    state.check().await;
    let checker = {
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                state.check().await;
            }
        })
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    checker.abort();
    served.map_err(RouterError::Io)
}
