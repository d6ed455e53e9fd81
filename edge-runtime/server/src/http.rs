use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use axum::Router;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::rejection::{BytesRejection, ExtensionRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::lookup::{self, Format};
use crate::metrics::Endpoint;
use crate::{ApiError, Catalog, EdgeConfig, EdgeError, Loader, Metrics};

/// What handlers share: the served catalog (swapped atomically), the one before it, metrics.
#[derive(Debug)]
pub struct EdgeState {
    pub catalog: ArcSwapOption<Catalog>,
    pub previous: ArcSwapOption<Catalog>,
    pub metrics: Metrics,
    pub max_entities: usize,
    pub region: String,
    /// Wakes the poller before its interval: the control plane's notification of a publish.
    pub wake: tokio::sync::Notify,
    /// Whether lookups need a token (the edge was given the control plane's public key).
    pub auth: bool,
    /// The verified access document callers are checked against; None until the first one
    /// loads (lookups answer 503 meanwhile).
    pub gate: ArcSwapOption<fstore_access::Gate>,
    /// PII reads waiting to be written to the audit spool.
    pub audit: crate::audit::AuditQueue,
    /// The shards of sharded views this edge holds, reported on `/readyz` for routers.
    pub shards: fstore_snapshot::ShardSet,
}

impl EdgeState {
    pub fn new(config: &EdgeConfig) -> Self {
        Self {
            catalog: ArcSwapOption::empty(),
            previous: ArcSwapOption::empty(),
            metrics: Metrics::default(),
            max_entities: config.max_entities,
            region: config.region.clone(),
            wake: tokio::sync::Notify::new(),
            auth: config.auth_public_key.is_some(),
            gate: ArcSwapOption::empty(),
            audit: crate::audit::AuditQueue::default(),
            shards: config.shards.clone(),
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn body_error(rej: BytesRejection) -> ApiError {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is over the size limit",
        )
    } else {
        ApiError::bad_request("bad_body", rej.body_text())
    }
}

fn gate_error(e: fstore_access::GateError) -> ApiError {
    let status = match e {
        fstore_access::GateError::Forbidden { .. } => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    };
    let code = if status == StatusCode::FORBIDDEN {
        "forbidden"
    } else {
        "unauthorized"
    };
    ApiError::new(status, code, e.to_string())
}

/// Who is calling, for audit records.
struct CallerInfo<'a> {
    token: Option<&'a str>,
    /// Rendered only for an audit record, never on a plain lookup.
    remote: Option<SocketAddr>,
}

fn lookup_handler(
    state: &EdgeState,
    body: Result<Bytes, BytesRejection>,
    format: Format,
    ep: Endpoint,
    who: CallerInfo<'_>,
) -> Response {
    let start = Instant::now();
    let result = (|| {
        let body = body.map_err(body_error)?;
        let catalog = state.catalog.load();
        let catalog = catalog.as_deref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "no snapshot loaded yet",
            )
        })?;
        let mut out = Vec::with_capacity(2048);
        let now = now_micros();
        let observe = lookup::Observe {
            metrics: &state.metrics,
            started: start,
        };
        let stats = if state.auth {
            let gate = state.gate.load();
            let gate = gate.as_deref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    "no verified access document loaded yet",
                )
            })?;
            let caller = gate
                .authenticate(who.token, now.div_euclid(1_000_000))
                .map_err(gate_error)?;
            let mut pii = Vec::new();
            let access = lookup::Access { caller, gate };
            let stats = lookup::execute_authorized(
                catalog,
                &body,
                format,
                state.max_entities,
                now,
                &mut out,
                observe,
                access,
                &mut pii,
            )?;
            for read in pii {
                state.audit.push(pii_event(&caller, read, &who, now), now);
            }
            stats
        } else {
            lookup::execute_observed(
                catalog,
                &body,
                format,
                state.max_entities,
                now,
                &mut out,
                observe,
            )?
        };
        state.metrics.record_lookup(stats.found, stats.not_found);
        Ok::<_, ApiError>(out)
    })();
    let (status, resp) = match result {
        Ok(out) => (StatusCode::OK, json_response(StatusCode::OK, out)),
        Err(e) => (e.status, e.into_response()),
    };
    state
        .metrics
        .record(ep, status.as_u16(), start.elapsed().as_secs_f64());
    resp
}

/// The audit record of one PII read.
#[cold]
fn pii_event(
    caller: &fstore_access::Caller<'_>,
    read: lookup::PiiRead,
    who: &CallerInfo<'_>,
    now: i64,
) -> crate::audit::AuditEvent {
    let mut at = Vec::with_capacity(32);
    fstore_snapshot::format_rfc3339_micros(now, &mut at);
    crate::audit::AuditEvent {
        at: String::from_utf8_lossy(&at).into_owned(),
        actor: format!("token:{}", caller.token.name),
        action: "read_pii".into(),
        resource: format!("feature_view/{}", read.view),
        detail: serde_json::json!({
            "features": read.features,
            "masked": read.masked,
            "entities": read.entities,
            "keys": read.keys,
        }),
        origin: String::new(),
        remote: who.remote.map(|a| a.ip().to_string()),
        origin_seq: 0,
    }
}

fn caller_info<'a>(
    headers: &'a HeaderMap,
    remote: &Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
) -> CallerInfo<'a> {
    CallerInfo {
        token: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(fstore_access::bearer),
        remote: remote.as_ref().ok().map(|c| c.0),
    }
}

async fn features(
    State(s): State<Arc<EdgeState>>,
    remote: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = caller_info(&headers, &remote);
    lookup_handler(&s, body, Format::Fstore, Endpoint::Features, who)
}

async fn feast(
    State(s): State<Arc<EdgeState>>,
    remote: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let who = caller_info(&headers, &remote);
    lookup_handler(&s, body, Format::Feast, Endpoint::Feast, who)
}

async fn healthz(State(s): State<Arc<EdgeState>>) -> Response {
    s.metrics.record(Endpoint::Health, 200, 0.0);
    json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec())
}

/// `POST /v1/notify`: something was published; poll now instead of at the next interval.
/// The poll itself decides what to load (the live pointer is the only truth), so a spurious
/// or repeated notification costs one conditional GET, and the body is not read.
async fn notify(State(s): State<Arc<EdgeState>>) -> Response {
    s.wake.notify_one();
    json_response(StatusCode::ACCEPTED, br#"{"status":"polling"}"#.to_vec())
}

async fn readyz(State(s): State<Arc<EdgeState>>) -> Response {
    let c = s.catalog.load();
    let no_gate = s.auth && s.gate.load().is_none();
    let (status, body) = match c.as_deref() {
        Some(_) if no_gate => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": {"code": "not_ready", "message": "no verified access document loaded yet"}}),
        ),
        Some(c) => {
            let views: serde_json::Map<String, serde_json::Value> = c
                .views()
                .iter()
                .map(|v| (v.name.clone(), serde_json::json!(v.version)))
                .collect();
            // Routers read `shards` to know which keys this edge can answer.
            let mut body = serde_json::json!({
                "status": "ready",
                "manifest": c.seq,
                "views": views,
                "shards": s.shards,
            });
            // Ready all the same: everything else is served, and these features answer
            // TRANSFORM_ERROR with the reason.
            let unavailable: serde_json::Map<String, serde_json::Value> = c
                .broken_on_demand()
                .map(|(name, why)| (name.to_string(), why.into()))
                .collect();
            if !unavailable.is_empty() {
                body["unavailable_on_demand_views"] = unavailable.into();
            }
            (StatusCode::OK, body)
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": {"code": "not_ready", "message": "no snapshot loaded yet"}}),
        ),
    };
    s.metrics.record(Endpoint::Ready, status.as_u16(), 0.0);
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}

async fn metrics(State(s): State<Arc<EdgeState>>) -> Response {
    let c = s.catalog.load();
    let text = s.metrics.render(c.as_deref(), &s.region);
    s.metrics.record(Endpoint::Metrics, 200, 0.0);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

async fn not_found(State(s): State<Arc<EdgeState>>) -> Response {
    s.metrics.record(Endpoint::Other, 404, 0.0);
    ApiError::not_found("no_route", "no such endpoint").into_response()
}

async fn method_not_allowed(State(s): State<Arc<EdgeState>>) -> Response {
    s.metrics.record(Endpoint::Other, 405, 0.0);
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
    .into_response()
}

/// The edge's HTTP routes over `state`.
pub fn router(state: Arc<EdgeState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/features", post(features))
        .route("/get-online-features", post(feast))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/notify", post(notify))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Runs an edge on `listener` until `shutdown` resolves: starts the poller, serves HTTP.
/// The first poll happens right away; `/readyz` turns green once it has loaded a snapshot.
pub async fn serve(
    config: EdgeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EdgeError> {
    let store = fstore_storage::Store::from_url(&config.store_url)?;
    let state = Arc::new(EdgeState::new(&config));
    let loader = Loader::new(store, config.cache_dir.clone(), state.clone())
        .with_host_config(config.wasm.clone())
        .with_shards(config.shards.clone())
        .with_access_key(config.auth_public_key.clone());
    let poller = tokio::spawn(loader.run(config.poll_interval));
    let address = match &config.advertise_addr {
        Some(a) => a.clone(),
        None => listener
            .local_addr()
            .map(|a| format!("http://{a}"))
            .map_err(|source| EdgeError::Io {
                path: "listener".into(),
                source,
            })?,
    };
    let edge_id = config
        .edge_id
        .clone()
        .unwrap_or_else(|| format!("{}-{address}", config.region));
    let shipper = match config.auth_public_key {
        Some(_) => {
            let s = crate::audit::Shipper::new(
                &config.cache_dir,
                config.control_plane_url.as_deref(),
                config.control_plane_token.clone(),
                edge_id,
            )?;
            Some(tokio::spawn(s.run(state.clone())))
        }
        None => None,
    };
    let heartbeat = match &config.control_plane_url {
        Some(url) => {
            let hb = crate::heartbeat::Heartbeats::new(url, &config, address, state.clone())?;
            Some(tokio::spawn(hb.run()))
        }
        None => None,
    };
    let state_for_shutdown = state.clone();
    let app =
        router(state, config.max_body_bytes).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    poller.abort();
    if let Some(s) = shipper {
        // Let the shipper put the last queued audit records on disk (it flushes every 250 ms)
        // before stopping it; what it has not shipped is shipped by the next start.
        for _ in 0..8 {
            if state_for_shutdown.audit.pending() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(125)).await;
        }
        s.abort();
    }
    if let Some(h) = heartbeat {
        h.abort();
    }
    served.map_err(|source| EdgeError::Io {
        path: "listener".into(),
        source,
    })
}
