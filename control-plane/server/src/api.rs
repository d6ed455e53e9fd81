use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fstore_spec::{Definitions, ObjectKind};
use serde::Deserialize;

use crate::error::error_body;
use crate::{ControlError, ControlPlane};

type Shared = Arc<ControlPlane>;

fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ControlError> {
    body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ControlError::BadRequest("request body is over the size limit".into())
        } else {
            ControlError::BadRequest(rej.body_text())
        }
    })
}

fn kind_from_path(kind: &str) -> Result<ObjectKind, ControlError> {
    match kind {
        "entities" => Ok(ObjectKind::Entity),
        "sources" => Ok(ObjectKind::Source),
        "request-sources" => Ok(ObjectKind::RequestSource),
        "transforms" => Ok(ObjectKind::Transform),
        "feature-views" => Ok(ObjectKind::FeatureView),
        "on-demand-views" => Ok(ObjectKind::OnDemandView),
        "feature-services" => Ok(ObjectKind::FeatureService),
        other => Err(ControlError::NotFound {
            kind: "object kind".into(),
            name: other.into(),
        }),
    }
}

async fn list_objects(
    State(cp): State<Shared>,
    Path(kind): Path<String>,
) -> Result<Response, ControlError> {
    let kind = kind_from_path(&kind)?;
    let objects = cp.registry().list_objects(kind).await?;
    Ok(Json(serde_json::json!({ "items": objects })).into_response())
}

async fn get_object(
    State(cp): State<Shared>,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Response, ControlError> {
    let k = kind_from_path(&kind)?;
    match cp.registry().get_object(k, &name).await? {
        Some(o) => Ok(Json(o).into_response()),
        None => Err(ControlError::NotFound {
            kind: k.to_string(),
            name,
        }),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyJson {
    #[serde(default)]
    yaml: Option<String>,
    #[serde(default)]
    definitions: Option<Definitions>,
    #[serde(default)]
    dry_run: bool,
}

/// `POST /v1/apply`: a `features.yaml` as the body (any text content type), or JSON
/// `{"yaml": "..."}` / `{"definitions": {...}}`; `?dry_run=true` (or `"dry_run": true`) only plans.
async fn apply(
    State(cp): State<Shared>,
    query: Result<Query<ApplyQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let Query(q) = query.map_err(|e| ControlError::BadRequest(e.body_text()))?;
    let body = body_or_error(body)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (defs, dry) = if is_json {
        let j: ApplyJson = serde_json::from_slice(&body)
            .map_err(|e| ControlError::BadRequest(format!("invalid JSON body: {e}")))?;
        let defs = match (j.yaml, j.definitions) {
            (Some(y), None) => ControlPlane::parse(&y, None)?,
            (None, Some(mut d)) => {
                d.sort();
                d
            }
            _ => {
                return Err(ControlError::BadRequest(
                    "give exactly one of `yaml` or `definitions`".into(),
                ));
            }
        };
        (defs, j.dry_run || q.dry_run)
    } else {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ControlError::BadRequest("body is not UTF-8 text".into()))?;
        (ControlPlane::parse(text, None)?, q.dry_run)
    };
    let report = cp.apply(&defs, dry, "api").await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MaterializeBody {
    #[serde(default)]
    views: Vec<String>,
}

async fn materialize(
    State(cp): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let body = body_or_error(body)?;
    let req: MaterializeBody = if body.iter().all(u8::is_ascii_whitespace) {
        MaterializeBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ControlError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let reports = cp.materialize(&req.views).await?;
    Ok(Json(serde_json::json!({ "snapshots": reports })).into_response())
}

async fn historical(
    State(cp): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let body = body_or_error(body)?;
    let req: crate::HistoricalParams = serde_json::from_slice(&body)
        .map_err(|e| ControlError::BadRequest(format!("invalid JSON body: {e}")))?;
    let report = cp.historical(&req).await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SnapshotsQuery {
    view: Option<String>,
}

async fn snapshots(
    State(cp): State<Shared>,
    query: Result<Query<SnapshotsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let Query(q) = query.map_err(|e| ControlError::BadRequest(e.body_text()))?;
    let list = cp.registry().list_snapshots(q.view.as_deref()).await?;
    let live = cp.store().live_manifest().await?;
    Ok(Json(serde_json::json!({ "items": list, "live": live })).into_response())
}

/// `GET /v1/versions`: the published versions object storage keeps, newest first.
async fn versions(
    State(cp): State<Shared>,
    query: Result<Query<NoQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    query.map_err(|e| ControlError::BadRequest(e.body_text()))?;
    let v = cp.versions().await?;
    Ok(Json(serde_json::json!({
        "live": v.live,
        "items": v.items,
        "retain_versions": cp.config.retain_versions,
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

/// `GET /v1/versions/{seq}`: one published version's manifest.
async fn version(
    State(cp): State<Shared>,
    Path(seq): Path<String>,
) -> Result<Response, ControlError> {
    let seq: u64 = seq.parse().map_err(|_| {
        ControlError::BadRequest(format!(
            "`{seq}` is not a version number (a manifest sequence number such as 3)"
        ))
    })?;
    Ok(Json(cp.version(seq).await?).into_response())
}

async fn healthz(State(cp): State<Shared>) -> Response {
    Json(serde_json::json!({"status": "ok", "registry": cp.registry().backend()})).into_response()
}

async fn openapi_json() -> Response {
    Json(crate::openapi()).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(error_body("no_route", "no such endpoint", None)),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(error_body(
            "method_not_allowed",
            "method not allowed on this endpoint",
            None,
        )),
    )
        .into_response()
}

/// The control plane's REST routes.
pub fn router(cp: Arc<ControlPlane>) -> Router {
    let limit = cp.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/apply", post(apply))
        .route("/v1/materialize", post(materialize))
        .route("/v1/historical", post(historical))
        .route("/v1/snapshots", get(snapshots))
        .route("/v1/versions", get(versions))
        .route("/v1/versions/{seq}", get(version))
        .route("/v1/{kind}", get(list_objects))
        .route("/v1/{kind}/{name}", get(get_object))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(cp)
}

/// Serves the control plane on `listener` until `shutdown` resolves.
pub async fn serve(
    cp: Arc<ControlPlane>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(cp))
        .with_graceful_shutdown(shutdown)
        .await
}
