//! `/jobs`: materialization runs with status, duration, rows and errors, refreshed every two
//! seconds; a form to queue a run of a view and a button to cancel an active one, for roles
//! that may materialize.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use fstore_access::{Action, ResourceKind};
use fstore_registry::{JobRun, RunQuery, RunStatus};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Live, Shared, given, query};
use crate::layout::{self, PageError, badge, compact, run_duration, short_time};
use crate::session::Viewer;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    view: Option<String>,
    status: Option<String>,
    triggered: Option<u64>,
    cancelled: Option<u64>,
    fragment: Option<String>,
}

const LIVE: Live<'static> = Live {
    id: "runs",
    every_ms: 2_000,
};

/// Runs shown.
const RUNS: usize = 50;

pub(crate) async fn page(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let q = query(q)?;
    v.check(Action::Describe)?;
    let view = given(q.view);
    let status = given(q.status)
        .map(|s| {
            RunStatus::parse(&s).ok_or_else(|| {
                PageError::bad_request(format!(
                    "`status={s}`: use queued, running, succeeded, failed, rejected or cancelled"
                ))
            })
        })
        .transpose()?;
    let runs = cp
        .job_runs(&RunQuery {
            view: view.clone(),
            status,
            before_id: None,
            limit: RUNS,
        })
        .await?;
    let may_cancel = v.may(Action::Materialize);
    let inner = table(&runs, may_cancel, &v.csrf);
    if LIVE.asked(q.fragment.as_deref()) {
        return Ok(Html(inner.into_string()).into_response());
    }
    // The views this caller may run, for the trigger form.
    let defs = cp
        .registry()
        .definitions()
        .await
        .map_err(fstore_control::ControlError::from)?;
    let mut runnable = Vec::new();
    for fv in &defs.feature_views {
        if cp
            .authorize(
                &v.principal,
                Action::Materialize,
                ResourceKind::FeatureView,
                &fv.name,
            )
            .await
            .is_ok()
        {
            runnable.push(fv.name.as_str());
        }
    }
    let scheduler = cp.config.jobs.enabled;
    Ok(LIVE.respond(None, inner, |region| {
        layout::page(
            "Jobs",
            "/jobs",
            &v,
            html! {
                h1 { "Jobs" }
                @if let Some(id) = q.triggered { p.flash.ok #flash { "Run #" (id) " queued." } }
                @if let Some(id) = q.cancelled { p.flash.ok #flash { "Run #" (id) " cancelled (or asked to stop)." } }
                @if !scheduler { p.flash.bad { "The scheduler is off in this replica (--no-scheduler): queued runs wait for a replica that runs it." } }
                div.card {
                    h2 { "Run a view now" }
                    @if runnable.is_empty() {
                        p.muted { "Your role may not materialize any view." }
                    } @else {
                        form.filters #trigger method="post" action="/jobs/trigger" {
                            input type="hidden" name="csrf" value=(v.csrf);
                            label { "View" select name="view" #trigger-view {
                                @for name in &runnable { option value=(name) selected[view.as_deref() == Some(*name)] { (name) } }
                            } }
                            button type="submit" #trigger-button { "Run now" }
                        }
                    }
                }
                form.filters method="get" action="/jobs" {
                    label { "View" input type="text" name="view" value=(view.as_deref().unwrap_or("")); }
                    label { "Status" select name="status" {
                        option value="" { "any" }
                        @for s in ["queued", "running", "succeeded", "failed", "rejected", "cancelled"] {
                            option value=(s) selected[status.map(RunStatus::as_str) == Some(s)] { (s) }
                        }
                    } }
                    button.secondary type="submit" { "Filter" }
                }
                div.card { (region) }
            },
        )
    }))
}

fn rows(r: &JobRun) -> String {
    let n = |v: Option<u64>| v.map_or("–".to_string(), |v| compact(v as f64));
    format!(
        "{} / {} / {}",
        n(r.rows_read),
        n(r.rows_written),
        n(r.rows_rejected)
    )
}

fn table(runs: &[JobRun], may_cancel: bool, csrf: &str) -> Markup {
    html! {
        @if runs.is_empty() { p.muted { "No runs." } }
        @else {
            table #runs-table {
                thead { tr { th.num { "Run" } th { "View" } th { "Status" } th { "Trigger" } th.num { "Attempt" } th { "By" }
                    th { "Requested" } th { "Duration" } th { "Mode" } th.num { "Rows read / written / rejected" } th.num { "Snapshot" } th { "Error" } th {} } }
                tbody {
                    @for r in runs {
                        tr data-run=(r.id) data-status=(r.status.as_str()) {
                            td.num { "#" (r.id) }
                            td { (r.view) }
                            td.status { (badge(r.status.as_str())) @if r.cancel_requested && r.status.is_active() { " stopping" } }
                            td { (r.trigger) }
                            td.num { (r.attempt) }
                            td { (r.actor) }
                            td { (short_time(&r.requested_at)) }
                            td { (run_duration(r.started_at.as_deref(), r.finished_at.as_deref())) }
                            td { (r.mode.as_deref().unwrap_or("–")) }
                            td.num { (rows(r)) }
                            td.num { @match r.snapshot_version { Some(s) => { "v" (s) }, None => { "–" } } }
                            td { @if let Some(e) = &r.error { code title=(e) { (e.chars().take(120).collect::<String>()) } } }
                            td { @if may_cancel && r.status.is_active() {
                                form.inline method="post" action={ "/jobs/" (r.id) "/cancel" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.danger type="submit" { "Cancel" }
                                }
                            } }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct TriggerForm {
    #[serde(default)]
    view: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /jobs/trigger`: queues a run as `POST /v1/jobs` does, then shows the list.
pub(crate) async fn trigger(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    form: Result<Form<TriggerForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(f) = form.map_err(|e| PageError::bad_request(e.body_text()))?;
    v.check_csrf(&f.csrf)?;
    let view = f.view.trim();
    if view.is_empty() {
        return Err(PageError::bad_request("choose a view to run"));
    }
    cp.authorize_views(&v.principal, Action::Materialize, &[view.to_string()])
        .await?;
    let t = cp.trigger_run(view, &v.principal.actor).await?;
    Ok(Redirect::to(&format!("/jobs?triggered={}", t.run.id)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct CancelForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
    form: Result<Form<CancelForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(f) = form.map_err(|e| PageError::bad_request(e.body_text()))?;
    v.check_csrf(&f.csrf)?;
    v.check(Action::Materialize)?;
    let id: u64 = id
        .parse()
        .map_err(|_| PageError::bad_request(format!("`{id}` is not a run number")))?;
    cp.cancel_run(id, &v.principal.actor).await?;
    Ok(Redirect::to(&format!("/jobs?cancelled={id}")).into_response())
}
