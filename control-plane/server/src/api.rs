use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Extension;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fstore_access::{Action, ResourceKind};
use fstore_spec::{Definitions, ObjectKind};
use serde::Deserialize;

use crate::auth::{self, author};
use crate::error::error_body;
use crate::{ControlError, ControlPlane, Principal};

type Shared = Arc<ControlPlane>;

pub(crate) fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ControlError> {
    body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ControlError::BadRequest("request body is over the size limit".into())
        } else {
            ControlError::BadRequest(rej.body_text())
        }
    })
}

pub(crate) fn kind_from_path(kind: &str) -> Result<ObjectKind, ControlError> {
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
    #[serde(default)]
    force: bool,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    author: Option<String>,
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
    #[serde(default)]
    force: bool,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    author: Option<String>,
}

pub(crate) fn query<T>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ControlError> {
    q.map(|Query(q)| q)
        .map_err(|e| ControlError::BadRequest(e.body_text()))
}

fn json_body<T: serde::de::DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ControlError> {
    let body = body_or_error(body)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ControlError::BadRequest(format!("invalid JSON body: {e}")))
}

/// `POST /v1/apply`: a `features.yaml` as the body (any text content type), or JSON
/// `{"yaml": "..."}` / `{"definitions": {...}}`; `?dry_run=true` (or `"dry_run": true`) only plans.
async fn apply(
    State(cp): State<Shared>,
    Extension(p): Extension<Principal>,
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
        let opts = crate::ApplyOptions {
            dry_run: j.dry_run || q.dry_run,
            force: j.force || q.force,
            author: author(&p, j.author.or(q.author.clone()))?,
            message: j
                .message
                .or(q.message.clone())
                .unwrap_or_else(|| "fstore apply".into()),
            principal: Some(p.clone()),
        };
        (defs, opts)
    } else {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ControlError::BadRequest("body is not UTF-8 text".into()))?;
        let opts = crate::ApplyOptions {
            dry_run: q.dry_run,
            force: q.force,
            author: author(&p, q.author)?,
            message: q.message.unwrap_or_else(|| "fstore apply".into()),
            principal: Some(p.clone()),
        };
        (ControlPlane::parse(text, None)?, opts)
    };
    let report = cp.apply(&defs, &dry).await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MaterializeBody {
    #[serde(default)]
    views: Vec<String>,
    #[serde(default)]
    author: Option<String>,
    /// `full` (the default) or `auto`: a delta where the live chain allows one.
    #[serde(default)]
    mode: Option<crate::RunMode>,
}

async fn materialize(
    State(cp): State<Shared>,
    Extension(p): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let req: MaterializeBody = json_body(body)?;
    let mode = req.mode.unwrap_or(crate::RunMode::Full);
    cp.authorize_views(&p, Action::Materialize, &req.views)
        .await?;
    let reports = cp
        .materialize(&req.views, &author(&p, req.author)?, mode)
        .await?;
    Ok(Json(serde_json::json!({ "snapshots": reports })).into_response())
}

/// `POST /v1/push`: 200 with what was kept, rejected and published (some rows may be
/// rejected); 400 when no row could be used.
async fn push(
    State(cp): State<Shared>,
    Extension(p): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let body = body_or_error(body)?;
    let req: crate::PushRequest = serde_json::from_slice(&body)
        .map_err(|e| ControlError::BadRequest(format!("invalid JSON body: {e}")))?;
    cp.authorize_push(&p, &req.source).await?;
    let report = cp.push(&req, &author(&p, None)?).await?;
    Ok(Json(report).into_response())
}

async fn historical(
    State(cp): State<Shared>,
    Extension(p): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let body = body_or_error(body)?;
    let mut req: crate::HistoricalParams = serde_json::from_slice(&body)
        .map_err(|e| ControlError::BadRequest(format!("invalid JSON body: {e}")))?;
    cp.authorize_historical(&p, &req).await?;
    req.principal = Some(p);
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    #[serde(default)]
    q: String,
    kind: Option<String>,
    tag: Option<String>,
    owner: Option<String>,
    entity: Option<String>,
    #[serde(rename = "type")]
    feature_type: Option<String>,
    view: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
}

/// `GET /v1/catalog/search?q=…`: ranked full-text search with filters and highlights.
async fn search(
    State(cp): State<Shared>,
    q: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let p = query(q)?;
    let q = fstore_registry::SearchQuery {
        q: p.q,
        kind: p.kind,
        tag: p.tag,
        owner: p.owner,
        entity: p.entity,
        feature_type: p.feature_type,
        view: p.view,
        limit: p.limit.unwrap_or(20),
        offset: p.offset,
    };
    Ok(Json(cp.search(&q).await?).into_response())
}

/// `GET /v1/features/{view}/{feature}`: a feature's page.
async fn feature_page(
    State(cp): State<Shared>,
    Path((view, feature)): Path<(String, String)>,
) -> Result<Response, ControlError> {
    Ok(Json(cp.feature_page(&view, &feature).await?).into_response())
}

/// `GET /v1/{kind}/{name}/versions`: every version, each with its diff to the one before.
async fn history(
    State(cp): State<Shared>,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Response, ControlError> {
    let kind = kind_from_path(&kind)?;
    let items = cp.history(kind, &name).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DiffParams {
    from: Option<String>,
    to: Option<String>,
}

/// A version as given in a query: `3` or `v3`.
fn version_param(name: &str, v: Option<String>) -> Result<u64, ControlError> {
    let v = v.ok_or_else(|| ControlError::BadRequest(format!("`{name}` is required")))?;
    v.strip_prefix('v')
        .unwrap_or(&v)
        .parse()
        .map_err(|_| ControlError::BadRequest(format!("`{name}={v}` is not a version (3 or v3)")))
}

/// `GET /v1/{kind}/{name}/diff?from=2&to=3`.
async fn diff(
    State(cp): State<Shared>,
    Path((kind, name)): Path<(String, String)>,
    q: Result<Query<DiffParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let kind = kind_from_path(&kind)?;
    let p = query(q)?;
    let (from, to) = (version_param("from", p.from)?, version_param("to", p.to)?);
    Ok(Json(cp.diff(kind, &name, from, to).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    #[serde(default)]
    force: bool,
    author: Option<String>,
}

/// `DELETE /v1/{kind}/{name}`: refused with the dependents while anything uses it, unless
/// `?force=true`.
async fn delete_object(
    State(cp): State<Shared>,
    Extension(pr): Extension<Principal>,
    Path((kind, name)): Path<(String, String)>,
    q: Result<Query<DeleteParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let kind = kind_from_path(&kind)?;
    let p = query(q)?;
    let report = cp
        .delete(kind, &name, p.force, &author(&pr, p.author)?, Some(&pr))
        .await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ChangelogParams {
    kind: Option<String>,
    name: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/changelog`: every registry mutation, newest first; page with `before`.
async fn changelog(
    State(cp): State<Shared>,
    q: Result<Query<ChangelogParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let p = query(q)?;
    let items = cp
        .changelog(&fstore_registry::ChangelogQuery {
            kind: p.kind,
            name: p.name,
            actor: p.actor,
            action: p.action,
            before_seq: p.before,
            limit: p.limit.unwrap_or(50),
        })
        .await?;
    let next = items.last().map(|e| e.seq).filter(|s| *s > 1);
    Ok(Json(serde_json::json!({ "items": items, "next_before": next })).into_response())
}

fn node_kind(kind: &str) -> Result<fstore_spec::NodeKind, ControlError> {
    fstore_spec::NodeKind::parse(kind).ok_or_else(|| ControlError::NotFound {
        kind: "lineage node kind".into(),
        name: kind.into(),
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LineageParams {
    direction: Option<String>,
    depth: Option<usize>,
    format: Option<String>,
}

/// `GET /v1/lineage/{kind}/{name}?direction=upstream|downstream|both&depth=N&format=json|dot`.
async fn lineage(
    State(cp): State<Shared>,
    Path((kind, name)): Path<(String, String)>,
    q: Result<Query<LineageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let kind = node_kind(&kind)?;
    let p = query(q)?;
    let direction = p.direction.as_deref().unwrap_or("both");
    let direction = fstore_spec::Direction::parse(direction).ok_or_else(|| {
        ControlError::BadRequest(format!(
            "`direction={direction}`: use upstream, downstream or both"
        ))
    })?;
    let g = cp.lineage(kind, &name, direction, p.depth).await?;
    match p.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(g).into_response()),
        "dot" => Ok((
            [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
            g.to_dot(),
        )
            .into_response()),
        other => Err(ControlError::BadRequest(format!(
            "`format={other}`: use json or dot"
        ))),
    }
}

/// `GET /v1/impact/{kind}/{name}`: what a change to it reaches.
async fn impact(
    State(cp): State<Shared>,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Response, ControlError> {
    let kind = node_kind(&kind)?;
    Ok(Json(cp.impact(kind, &name).await?).into_response())
}

/// `GET /v1/rollbacks`: every service currently rolled back, and to what.
async fn rollbacks(State(cp): State<Shared>) -> Result<Response, ControlError> {
    let items = cp.registry().rollbacks().await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to_version: Option<u64>,
    view: Option<String>,
    snapshot: Option<u64>,
    message: Option<String>,
    author: Option<String>,
}

/// `POST /v1/rollbacks/{service}`: `{"to_version": N}` or `{"view": …, "snapshot": N}`.
async fn rollback(
    State(cp): State<Shared>,
    Extension(p): Extension<Principal>,
    Path(service): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let b: RollbackBody = json_body(body)?;
    let params = crate::RollbackParams {
        to_version: b.to_version,
        view: b.view,
        snapshot: b.snapshot,
        message: b.message,
    };
    let report = cp
        .rollback(&service, &params, &author(&p, b.author)?)
        .await?;
    Ok(Json(report).into_response())
}

/// `DELETE /v1/rollbacks/{service}`: serve the live snapshots again.
async fn clear_rollback(
    State(cp): State<Shared>,
    Extension(pr): Extension<Principal>,
    Path(service): Path<String>,
    q: Result<Query<DeleteParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let p = query(q)?;
    if p.force {
        return Err(ControlError::BadRequest(
            "`force` does not apply to clearing a rollback".into(),
        ));
    }
    let report = cp.clear_rollback(&service, &author(&pr, p.author)?).await?;
    Ok(Json(report).into_response())
}

/// `GET /v1/snapshots/{view}/{version}`: one snapshot's record and lineage (its input files,
/// their sizes and ETags, row counts, transform digests). `view` may be an edge's slot name.
async fn snapshot(
    State(cp): State<Shared>,
    Path((view, version)): Path<(String, String)>,
) -> Result<Response, ControlError> {
    let version: u64 = version
        .parse()
        .map_err(|_| ControlError::BadRequest(format!("`{version}` is not a snapshot version")))?;
    Ok(Json(cp.snapshot(&view, version).await?).into_response())
}

/// `POST /v1/edges/heartbeat`: an edge reporting who and where it is and what it serves.
async fn heartbeat(
    State(cp): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let body = body_or_error(body)?;
    let h: fstore_registry::EdgeHeartbeat = serde_json::from_slice(&body)
        .map_err(|e| ControlError::BadRequest(format!("invalid heartbeat: {e}")))?;
    cp.heartbeat(&h).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/overview`: every view's freshness against its schedule, the fleet, open alerts
/// and the latest runs.
async fn overview(State(cp): State<Shared>) -> Result<Response, ControlError> {
    Ok(Json(cp.overview().await?).into_response())
}

/// `GET /v1/edges`: the fleet, each edge up or down.
async fn edges(State(cp): State<Shared>) -> Result<Response, ControlError> {
    let items = cp.edges().await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct JobsParams {
    view: Option<String>,
    status: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/jobs`: materialization runs, newest first.
async fn jobs(
    State(cp): State<Shared>,
    q: Result<Query<JobsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let p = query(q)?;
    let status = p
        .status
        .as_deref()
        .map(|s| {
            fstore_registry::RunStatus::parse(s).ok_or_else(|| {
                ControlError::BadRequest(format!(
                    "`status={s}`: use queued, running, succeeded, failed, rejected or cancelled"
                ))
            })
        })
        .transpose()?;
    let items = cp
        .job_runs(&fstore_registry::RunQuery {
            view: p.view,
            status,
            before_id: p.before,
            limit: p.limit.unwrap_or(50),
        })
        .await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct QualityParams {
    version: Option<u64>,
}

/// `GET /v1/quality/{view}`: the latest quality report of a view (or `?version=`), with its
/// statistics, change against the previous version, checks, drift and recent history.
async fn quality(
    State(cp): State<Shared>,
    Extension(pr): Extension<Principal>,
    Path(view): Path<String>,
    q: Result<Query<QualityParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let p = query(q)?;
    let mut report = cp.quality(&view, p.version).await?;
    cp.scrub_quality(&pr, &view, &mut report).await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AlertsParams {
    status: Option<String>,
    view: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/alerts`: alerts newest first, with every delivery attempt.
async fn alerts(
    State(cp): State<Shared>,
    q: Result<Query<AlertsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let p = query(q)?;
    let items = cp
        .alerts(&fstore_registry::AlertQuery {
            status: p.status,
            view: p.view,
            limit: p.limit.unwrap_or(100),
        })
        .await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServingParams {
    view: Option<String>,
    minutes: Option<i64>,
}

/// `GET /v1/serving`: what edges report serving, per view, over the last `minutes` (15).
async fn serving(
    State(cp): State<Shared>,
    q: Result<Query<ServingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let p = query(q)?;
    let items = cp
        .serving(p.view.as_deref(), p.minutes.unwrap_or(15))
        .await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

fn run_id(id: &str) -> Result<u64, ControlError> {
    id.parse()
        .map_err(|_| ControlError::BadRequest(format!("`{id}` is not a run id")))
}

/// `GET /v1/jobs/{id}`.
async fn job(State(cp): State<Shared>, Path(id): Path<String>) -> Result<Response, ControlError> {
    Ok(Json(cp.job_run(run_id(&id)?).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    view: Option<String>,
    author: Option<String>,
}

/// `POST /v1/jobs` `{"view": …}`: queue a run for the scheduler's worker (202).
async fn trigger_job(
    State(cp): State<Shared>,
    Extension(p): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let b: TriggerBody = json_body(body)?;
    let view = b
        .view
        .ok_or_else(|| ControlError::BadRequest("`view` is required".into()))?;
    cp.authorize(&p, Action::Materialize, ResourceKind::FeatureView, &view)
        .await?;
    let t = cp.trigger_run(&view, &author(&p, b.author)?).await?;
    Ok((StatusCode::ACCEPTED, Json(t)).into_response())
}

/// `POST /v1/jobs/{id}/cancel`.
async fn cancel_job(
    State(cp): State<Shared>,
    Extension(pr): Extension<Principal>,
    Path(id): Path<String>,
    q: Result<Query<DeleteParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let p = query(q)?;
    if p.force {
        return Err(ControlError::BadRequest(
            "`force` does not apply to cancelling a run".into(),
        ));
    }
    let run = cp.cancel_run(run_id(&id)?, &author(&pr, p.author)?).await?;
    Ok(Json(run).into_response())
}

/// `GET /metrics`: Prometheus text: job runs and durations of this replica, and how old each
/// view's live snapshot is.
async fn metrics(State(cp): State<Shared>) -> Result<Response, ControlError> {
    let text = cp.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
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
        .route("/v1/push", post(push))
        .route("/v1/snapshots", get(snapshots))
        .route("/v1/versions", get(versions))
        .route("/v1/versions/{seq}", get(version))
        .route("/v1/catalog/search", get(search))
        .route("/v1/features/{view}/{feature}", get(feature_page))
        .route("/v1/changelog", get(changelog))
        .route("/v1/lineage/{kind}/{name}", get(lineage))
        .route("/v1/impact/{kind}/{name}", get(impact))
        .route("/v1/rollbacks", get(rollbacks))
        .route("/v1/edges", get(edges))
        .route("/v1/overview", get(overview))
        .route("/v1/jobs", get(jobs).post(trigger_job))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/quality/{view}", get(quality))
        .route("/v1/alerts", get(alerts))
        .route("/v1/serving", get(serving))
        .route("/metrics", get(metrics))
        .route("/v1/edges/heartbeat", post(heartbeat))
        .route(
            "/v1/rollbacks/{service}",
            post(rollback).delete(clear_rollback),
        )
        .route("/v1/snapshots/{view}/{version}", get(snapshot))
        .route("/v1/{kind}", get(list_objects))
        .route("/v1/{kind}/{name}", get(get_object).delete(delete_object))
        .route("/v1/{kind}/{name}/versions", get(history))
        .route("/v1/{kind}/{name}/diff", get(diff))
        .route("/v1/auth/public-key", get(auth::public_key))
        .route("/v1/whoami", get(auth::whoami))
        .route("/v1/tokens", get(auth::tokens).post(auth::create_token))
        .route("/v1/tokens/{id}", axum::routing::delete(auth::revoke_token))
        .route("/v1/roles", get(auth::roles))
        .route(
            "/v1/roles/{name}",
            axum::routing::put(auth::put_role).delete(auth::delete_role),
        )
        .route("/v1/audit", get(auth::audit))
        .route("/v1/audit/verify", get(auth::verify_audit))
        .route("/v1/audit/batch", post(auth::audit_batch))
        .route("/v1/erase", post(auth::erase))
        .route("/v1/retention", post(auth::retention))
        .route("/v1/compliance/report", get(auth::compliance))
        // Every route above is authenticated and authorized by the table in `auth::need`.
        .route_layer(axum::middleware::from_fn_with_state(
            cp.clone(),
            auth::authenticate,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(cp)
}

/// How often a serving control plane rewrites the access document regardless of changes.
const ACCESS_REPUBLISH: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves the control plane's REST API on `listener` until `shutdown` resolves.
pub async fn serve(
    cp: Arc<ControlPlane>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(cp.clone());
    serve_app(cp, app, listener, shutdown).await
}

/// Serves `app` (the REST API and whatever was merged into it, such as the dashboard) with
/// the control plane's background work: the scheduler and the access document's republish.
pub async fn serve_app(
    cp: Arc<ControlPlane>,
    app: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let jobs = cp
        .config
        .jobs
        .enabled
        .then(|| tokio::spawn(crate::jobs::run(cp.clone(), stopped)));
    // Edges need a document before they can answer anyone; it is written again every minute,
    // so a change whose publish failed (the store was down) still reaches them, and expired
    // tokens leave it.
    let access = cp.config.auth.then(|| {
        let cp = cp.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = cp.publish_access().await {
                    tracing::error!(error = %e, "could not publish the access document");
                }
                tokio::time::sleep(ACCESS_REPUBLISH).await;
            }
        })
    });
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    // A run in progress is abandoned, not published: its lease lapses and another replica
    // (or this one, restarted) fails and retries it.
    let _ = stop.send(true);
    if let Some(j) = jobs {
        j.abort();
    }
    if let Some(a) = access {
        a.abort();
    }
    served
}
