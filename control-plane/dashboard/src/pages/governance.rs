//! `/governance`: tokens and roles (for `manage_access`), the audit log with filters and the
//! compliance report (for `read_audit`). Other roles get a 403 page naming what they lack.

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use fstore_access::{Action, Permission};
use fstore_registry::AuditQuery;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Shared, given, query};
use crate::layout::{self, PageError, badge, short_time};
use crate::session::Viewer;

/// The governance pages this viewer may open, the current one in bold.
fn tabs(active: &str, v: &Viewer) -> Markup {
    let tabs = [
        ("/governance", "Tokens and roles", Action::ManageAccess),
        ("/governance/audit", "Audit log", Action::ReadAudit),
        (
            "/governance/compliance",
            "Compliance report",
            Action::ReadAudit,
        ),
    ];
    html! {
        p.muted {
            @for (i, (path, label, _)) in tabs.into_iter().filter(|t| v.may(t.2)).enumerate() {
                @if i > 0 { " · " }
                @if path == active { strong { (label) } } @else { a href=(path) { (label) } }
            }
        }
    }
}

fn permission_text(p: &Permission) -> String {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "*".to_string()
        } else {
            items.join(",")
        }
    };
    let mut text = format!(
        "{}:{}:{}",
        list(p.actions.iter().map(ToString::to_string).collect()),
        list(p.kinds.iter().map(ToString::to_string).collect()),
        list(p.names.clone())
    );
    if !p.tags.is_empty() {
        text.push(':');
        text.push_str(&p.tags.join(","));
    }
    text
}

/// `GET /governance`: tokens and roles.
pub(crate) async fn access(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
) -> Result<Html<String>, PageError> {
    v.check(Action::ManageAccess)?;
    let tokens = cp.tokens(&v.principal).await?;
    let roles = cp.roles(&v.principal).await?;
    let body = html! {
        h1 { "Governance" }
        (tabs("/governance", &v))
        div.card {
            h2 { "Tokens" }
            p.muted { "Create and revoke with " code { "fstore token create|revoke" } "; a token's secret is shown once, at creation." }
            table #tokens {
                thead { tr { th { "Id" } th { "Name" } th { "Role" } th { "Status" } th { "Created" } th { "By" } th { "Expires" } th { "Revoked" } } }
                tbody {
                    @for t in &tokens {
                        tr data-token=(t.token.id) {
                            td { code { (t.token.id) } }
                            td { (t.token.name) }
                            td { (t.token.role) }
                            td { (badge(t.status)) }
                            td { (short_time(&t.token.created_at)) }
                            td { (t.token.created_by) }
                            td { @match &t.token.expires_at { Some(e) => { (short_time(e)) }, None => { "never" } } }
                            td { @match &t.token.revoked_at { Some(e) => { (short_time(e)) @if let Some(b) = &t.token.revoked_by { " by " (b) } }, None => { "–" } } }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Roles" }
            table #roles {
                thead { tr { th { "Role" } th { "Description" } th { "Permissions (actions:kinds:names[:tags])" } } }
                tbody {
                    @for r in &roles {
                        tr {
                            td { (r.role.name) @if r.builtin { " " span.tag { "built-in" } } }
                            td { (r.role.description) }
                            td { @for p in &r.role.permissions { code { (permission_text(p)) } br; } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Governance", "/governance", &v, body))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<u64>,
    #[serde(default)]
    verify: Option<String>,
}

/// Records per page of the audit log.
const AUDIT_PAGE: usize = 200;

/// `GET /governance/audit`: newest first, paged back with `before`, filtered by actor,
/// action, resource and time; `verify=1` also walks the hash chain.
pub(crate) async fn audit(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    q: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let p = query(q)?;
    v.check(Action::ReadAudit)?;
    let (actor, action, resource) = (given(p.actor), given(p.action), given(p.resource));
    let (since_text, until_text) = (given(p.since), given(p.until));
    let records = cp
        .audit_log(
            &v.principal,
            &AuditQuery {
                after: None,
                before: p.before,
                newest_first: true,
                actor: actor.clone(),
                action: action.clone(),
                resource: resource.clone(),
                since: fstore_control::time_param("since", since_text.clone())?,
                until: fstore_control::time_param("until", until_text.clone())?,
                limit: AUDIT_PAGE,
            },
        )
        .await?;
    let verification = match p.verify.as_deref() {
        Some("1") => Some(cp.verify_audit(&v.principal).await?),
        _ => None,
    };
    let next = (records.len() == AUDIT_PAGE)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    let field = |name: &'static str,
                 label: &'static str,
                 value: Option<&str>,
                 hint: &'static str| {
        html! { label { (label) input type="text" name=(name) value=(value.unwrap_or("")) placeholder=(hint); } }
    };
    let body = html! {
        h1 { "Governance" }
        (tabs("/governance/audit", &v))
        form.filters #audit-filters method="get" action="/governance/audit" {
            (field("actor", "Actor", actor.as_deref(), "token:ci"))
            (field("action", "Action", action.as_deref(), "read_pii"))
            (field("resource", "Resource", resource.as_deref(), "feature_view/"))
            (field("since", "Since (RFC 3339)", since_text.as_deref(), "2026-12-01T00:00:00Z"))
            (field("until", "Until", until_text.as_deref(), ""))
            button type="submit" { "Filter" }
            a.button href="/governance/audit?verify=1" { "Verify the chain" }
        }
        @if let Some(ver) = &verification {
            @if ver.ok {
                p.flash.ok #verify { "The chain is intact: " (ver.records) " records up to #" (ver.head_seq) "." }
            } @else {
                p.flash.bad #verify { "The chain is BROKEN at record " (ver.broken_at.unwrap_or(0)) "." }
            }
        }
        div.card {
            p.muted { (records.len()) @if records.len() == 1 { " record" } @else { " records" } ", newest first." }
            table #audit {
                thead { tr { th.num { "#" } th { "When" } th { "Actor" } th { "Action" } th { "Resource" } th { "Origin" } th { "Detail" } } }
                tbody {
                    @for r in &records {
                        tr {
                            td.num { (r.seq) }
                            td { (short_time(&r.at)) }
                            td { (r.actor) }
                            td { (r.action) }
                            td { code { (r.resource) } }
                            td { (r.origin) @if let Some(ip) = &r.remote { " " span.muted { (ip) } } }
                            td { code { (r.detail.chars().take(160).collect::<String>()) } }
                        }
                    }
                }
            }
            @if let Some(before) = next {
                p { a href=(older_page(before, &[("actor", &actor), ("action", &action), ("resource", &resource),
                    ("since", &since_text), ("until", &until_text)])) { "older records →" } }
            }
        }
    };
    Ok(layout::page("Audit log", "/governance", &v, body))
}

/// The link to the page of records before `before`, keeping the filters.
fn older_page(before: u64, filters: &[(&str, &Option<String>)]) -> String {
    let mut url = format!("/governance/audit?before={before}");
    for (k, v) in filters {
        if let Some(v) = v {
            url.push_str(&format!("&{k}={}", layout::enc(v)));
        }
    }
    url
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComplianceParams {
    since: Option<String>,
    until: Option<String>,
}

/// `GET /governance/compliance`.
pub(crate) async fn compliance(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    q: Result<Query<ComplianceParams>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let p = query(q)?;
    v.check(Action::ReadAudit)?;
    let since = fstore_control::time_param("since", given(p.since))?;
    let until = fstore_control::time_param("until", given(p.until))?;
    let r = cp.compliance_report(&v.principal, since, until).await?;
    let body = html! {
        h1 { "Governance" }
        (tabs("/governance/compliance", &v))
        p.muted { "Generated " (short_time(&r.generated_at)) " UTC · " (r.erasures) " erasure requests in the period." }
        div.card {
            h2 { "PII features" }
            @if r.features.is_empty() { p.muted { "No feature is marked PII (tag it `pii` or give it a `mask:`)." } }
            @else {
                table #compliance {
                    thead { tr { th { "Feature" } th { "Mask" } th { "Owner" } th { "Source" } th { "Retention" }
                        th { "Services" } th { "Tokens reading it unmasked" } th { "Masked" } th.num { "Reads" } th.num { "Unmasked reads" } } }
                    tbody {
                        @for f in &r.features {
                            tr {
                                td { a href={ "/catalog/features/" (layout::enc(&f.view)) "/" (layout::enc(&f.feature)) } { (f.view) ":" (f.feature) } }
                                td { code { (serde_json::to_string(&f.mask).unwrap_or_default().trim_matches('"')) } }
                                td { (f.owner) }
                                td { (f.source.as_deref().unwrap_or("–")) }
                                td { @match f.source_retention_seconds { Some(s) => { (layout::human_seconds(s as i64)) }, None => { "none" } } }
                                td { (f.services.join(", ")) }
                                td { (f.tokens_unmasked.join(", ")) }
                                td { (f.tokens_masked.join(", ")) }
                                td.num { (f.reads) }
                                td.num { (f.reads_unmasked) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Compliance", "/governance", &v, body))
}
