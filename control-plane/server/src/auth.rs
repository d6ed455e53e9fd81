//! Authentication and authorization of REST calls, and the access endpoints (tokens, roles,
//! the audit log).
//!
//! One table ([`need`]) says what every route requires, so the whole API's policy reads in one
//! place; a route missing from it needs `manage_access` (admins only), never nothing. Routes
//! whose resources are in the body (apply, materialize, push, training sets, job triggers)
//! need a valid token here and check each resource in their handler.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, RawPathParams, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fstore_access::{Action, ResourceKind};
use serde::Deserialize;

use crate::{ControlError, ControlPlane, Principal};

type Shared = Arc<ControlPlane>;

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing: health, the API description, metrics, the public key.
    Public,
    /// A valid token; the handler checks what it touches.
    Authenticated,
    /// `action` on the project.
    Project(Action),
    /// `action` on a definition named by path parameters.
    Object(Action, Target),
}

/// Which path parameters name the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `{view}`: a feature view (or a pinned slot of one).
    View,
    /// `{service}`: a feature service.
    Service,
    /// `{kind}/{name}` as in `/v1/feature-views/customer_rfm`.
    KindName,
}

/// The policy of every route, by method and route pattern.
pub(crate) fn need(method: &Method, route: &str) -> Need {
    use Action::*;
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let delete = method == Method::DELETE;
    match route {
        "/healthz" | "/openapi.json" | "/metrics" | "/v1/auth/public-key" if get => Need::Public,
        "/v1/whoami" if get => Need::Authenticated,
        "/v1/apply" | "/v1/materialize" | "/v1/historical" | "/v1/push" | "/v1/jobs"
        | "/v1/erase" | "/v1/retention"
            if post =>
        {
            Need::Authenticated
        }
        "/v1/snapshots"
        | "/v1/versions"
        | "/v1/versions/{seq}"
        | "/v1/catalog/search"
        | "/v1/changelog"
        | "/v1/rollbacks"
        | "/v1/edges"
        | "/v1/overview"
        | "/v1/jobs"
        | "/v1/jobs/{id}"
        | "/v1/alerts"
        | "/v1/serving"
        | "/v1/{kind}"
        | "/v1/lineage/{kind}/{name}"
        | "/v1/impact/{kind}/{name}"
            if get =>
        {
            Need::Project(Describe)
        }
        "/v1/features/{view}/{feature}"
        | "/v1/quality/{view}"
        | "/v1/snapshots/{view}/{version}"
            if get =>
        {
            Need::Object(Describe, Target::View)
        }
        "/v1/jobs/{id}/cancel" if post => Need::Project(Materialize),
        "/v1/edges/heartbeat" | "/v1/audit/batch" if post => Need::Project(Report),
        "/v1/rollbacks/{service}" if post || delete => Need::Object(Update, Target::Service),
        "/v1/{kind}/{name}" | "/v1/{kind}/{name}/versions" | "/v1/{kind}/{name}/diff" if get => {
            Need::Object(Describe, Target::KindName)
        }
        "/v1/{kind}/{name}" if delete => Need::Object(Delete, Target::KindName),
        "/v1/audit" | "/v1/audit/verify" | "/v1/compliance/report" if get => {
            Need::Project(ReadAudit)
        }
        _ => Need::Project(ManageAccess),
    }
}

fn param<'a>(params: &'a RawPathParams, name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// The resource a [`Target`] names in this request.
fn target(t: Target, params: &RawPathParams) -> Result<(ResourceKind, String), ControlError> {
    let missing = || ControlError::BadRequest("the path names no resource".into());
    match t {
        Target::View => Ok((
            ResourceKind::FeatureView,
            param(params, "view").ok_or_else(missing)?.to_string(),
        )),
        Target::Service => Ok((
            ResourceKind::FeatureService,
            param(params, "service").ok_or_else(missing)?.to_string(),
        )),
        Target::KindName => {
            let kind = crate::api::kind_from_path(param(params, "kind").ok_or_else(missing)?)?;
            Ok((
                crate::resource_kind(kind),
                param(params, "name").ok_or_else(missing)?.to_string(),
            ))
        }
    }
}

/// The middleware: who is calling (401 without a valid token where one is needed), whether
/// the route allows them (403), and where audit records of the request say it came from.
pub(crate) async fn authenticate(
    State(cp): State<Shared>,
    matched: Option<MatchedPath>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let need = match &matched {
        Some(m) => need(req.method(), m.as_str()),
        // No route: authenticate, then let the fallback answer 404.
        None => Need::Authenticated,
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(fstore_access::bearer)
        .map(str::to_string);
    let principal = if !cp.config.auth {
        Principal::anonymous()
    } else if need == Need::Public {
        // Public routes never look at a token, so a bad one cannot break health checks.
        Principal::anonymous()
    } else {
        let Some(token) = token else {
            return ControlError::Unauthorized(
                "this endpoint needs a token: send `Authorization: Bearer <token>`".into(),
            )
            .into_response();
        };
        match cp.authenticate(&token).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        }
    };
    let allowed = match need {
        Need::Public | Need::Authenticated => Ok(()),
        Need::Project(action) => principal.check(action, &fstore_access::Resource::project()),
        Need::Object(action, t) => match params.as_ref().map(|p| target(t, p)) {
            Ok(Ok((kind, name))) => cp.authorize(&principal, action, kind, &name).await,
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ControlError::BadRequest("bad path parameters".into())),
        },
    };
    if let Err(e) = allowed {
        return e.into_response();
    }
    req.extensions_mut().insert(principal);
    crate::with_origin("control-plane".into(), remote, next.run(req)).await
}

/// Who a change is recorded as: the token's name when one was used; otherwise what the
/// client says (authentication off), or `api`.
pub(crate) fn author(p: &Principal, given: Option<String>) -> Result<String, ControlError> {
    if p.token_id.is_some() {
        return Ok(p.actor.clone());
    }
    match given {
        None => Ok("api".into()),
        Some(a) if a.trim().is_empty() || a.len() > 200 => Err(ControlError::BadRequest(
            "`author` must be 1-200 characters".into(),
        )),
        Some(a) => Ok(a),
    }
}

fn json<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ControlError> {
    let body = crate::api::body_or_error(body)?;
    serde_json::from_slice(&body)
        .map_err(|e| ControlError::BadRequest(format!("invalid JSON body: {e}")))
}

/// `GET /v1/auth/public-key`: what edges verify the access document with.
pub(crate) async fn public_key(State(cp): State<Shared>) -> Result<Response, ControlError> {
    let key = cp.public_key().await?;
    Ok(Json(serde_json::json!({
        "public_key": key,
        "key_id": fstore_access::public_key_id(&key),
    }))
    .into_response())
}

/// `GET /v1/whoami`: the caller's name, role and permissions.
pub(crate) async fn whoami(
    axum::Extension(p): axum::Extension<Principal>,
) -> Result<Response, ControlError> {
    Ok(Json(serde_json::json!({
        "actor": p.actor,
        "token_id": p.token_id,
        "role": p.role,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
    role: String,
    /// `30d`, `12h`…; none: the token does not expire.
    #[serde(default)]
    expires_in: Option<String>,
}

/// `POST /v1/tokens`: 201 with the token, shown this once.
pub(crate) async fn create_token(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let b: NewTokenBody = json(body)?;
    let expires = b
        .expires_in
        .as_deref()
        .map(|e| {
            fstore_spec::parse_duration(e)
                .map(std::time::Duration::from_secs)
                .map_err(|m| ControlError::BadRequest(format!("`expires_in`: {m}")))
        })
        .transpose()?;
    let t = cp.create_token(&p, &b.name, &b.role, expires).await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

pub(crate) async fn tokens(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
) -> Result<Response, ControlError> {
    Ok(Json(serde_json::json!({ "items": cp.tokens(&p).await? })).into_response())
}

/// `DELETE /v1/tokens/{id}`: revoke by id or name.
pub(crate) async fn revoke_token(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ControlError> {
    Ok(Json(cp.revoke_token(&p, &id).await?).into_response())
}

pub(crate) async fn roles(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
) -> Result<Response, ControlError> {
    Ok(Json(serde_json::json!({ "items": cp.roles(&p).await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    #[serde(default)]
    description: String,
    permissions: Vec<fstore_access::Permission>,
}

/// `PUT /v1/roles/{name}`: create or replace a custom role.
pub(crate) async fn put_role(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let b: RoleBody = json(body)?;
    let role = fstore_access::Role {
        name,
        description: b.description,
        permissions: b.permissions,
    };
    let replaced = cp.put_role(&p, role.clone()).await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(role)).into_response())
}

pub(crate) async fn delete_role(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ControlError> {
    cp.delete_role(&p, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    after: Option<u64>,
    actor: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

/// A time given as a query parameter, normalized to RFC 3339 UTC with microseconds.
pub fn time_param(name: &str, v: Option<String>) -> Result<Option<String>, ControlError> {
    match v {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| {
                Some(
                    t.to_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                )
            })
            .map_err(|_| {
                ControlError::BadRequest(format!(
                    "`{name}={s}` is not an RFC 3339 time (2026-05-01T12:00:00Z)"
                ))
            }),
    }
}

/// `GET /v1/audit`: audit records oldest first; page with `after`.
pub(crate) async fn audit(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
    q: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let q = crate::api::query(q)?;
    let query = fstore_registry::AuditQuery {
        after: q.after,
        actor: q.actor,
        action: q.action,
        resource: q.resource,
        since: time_param("since", q.since)?,
        until: time_param("until", q.until)?,
        limit: q.limit.unwrap_or(100),
        ..fstore_registry::AuditQuery::default()
    };
    let items = cp.audit_log(&p, &query).await?;
    let next = items.last().map(|r| r.seq);
    Ok(Json(serde_json::json!({ "items": items, "next_after": next })).into_response())
}

/// `GET /v1/audit/verify`: walks the chain; 200 either way, `ok` says.
pub(crate) async fn verify_audit(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
) -> Result<Response, ControlError> {
    Ok(Json(cp.verify_audit(&p).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditBatch {
    edge: String,
    events: Vec<fstore_registry::NewAuditEvent>,
}

/// `POST /v1/audit/batch`: an edge's audit records.
pub(crate) async fn audit_batch(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let b: AuditBatch = json(body)?;
    let recorded = cp.ingest_audit(&p, &b.edge, b.events).await?;
    Ok(Json(serde_json::json!({ "recorded": recorded })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseBody {
    /// `{"customer_id": 123}`: one join key and its value.
    entity: serde_json::Map<String, serde_json::Value>,
}

/// `POST /v1/erase`: remove one entity from the offline files and the next snapshot.
pub(crate) async fn erase(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ControlError> {
    let b: EraseBody = json(body)?;
    let mut it = b.entity.into_iter();
    let (Some((key, value)), None) = (it.next(), it.next()) else {
        return Err(ControlError::BadRequest(
            "`entity` must name exactly one join key, e.g. {\"customer_id\": 123}".into(),
        ));
    };
    let value = match value {
        serde_json::Value::Number(n) if n.is_i64() => {
            fstore_offline::KeyValue::Int(n.as_i64().unwrap_or_default())
        }
        serde_json::Value::String(s) => fstore_offline::KeyValue::Str(s),
        other => {
            return Err(ControlError::BadRequest(format!(
                "`{key}` must be an integer or a string, not {other}"
            )));
        }
    };
    Ok(Json(cp.erase(&p, &key, &value).await?).into_response())
}

/// `POST /v1/retention`: apply every source's retention now.
pub(crate) async fn retention(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
) -> Result<Response, ControlError> {
    Ok(Json(cp.apply_retention(&p).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComplianceParams {
    since: Option<String>,
    until: Option<String>,
}

/// `GET /v1/compliance/report?since=&until=`.
pub(crate) async fn compliance(
    State(cp): State<Shared>,
    axum::Extension(p): axum::Extension<Principal>,
    q: Result<Query<ComplianceParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ControlError> {
    let q = crate::api::query(q)?;
    let report = cp
        .compliance_report(
            &p,
            time_param("since", q.since)?,
            time_param("until", q.until)?,
        )
        .await?;
    Ok(Json(report).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_routes_are_admin_only_and_public_ones_are_few() {
        assert_eq!(need(&Method::GET, "/healthz"), Need::Public);
        assert_eq!(
            need(&Method::POST, "/healthz"),
            Need::Project(Action::ManageAccess)
        );
        assert_eq!(
            need(&Method::GET, "/v1/some-new-route"),
            Need::Project(Action::ManageAccess)
        );
        assert_eq!(
            need(&Method::DELETE, "/v1/{kind}/{name}"),
            Need::Object(Action::Delete, Target::KindName)
        );
        assert_eq!(
            need(&Method::GET, "/v1/audit"),
            Need::Project(Action::ReadAudit)
        );
    }
}
