//! `/`: the control plane and every edge, each view's freshness against its schedule, open
//! alerts and the last job runs; refreshed every five seconds.

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use fstore_access::Action;
use fstore_control::{FreshnessStatus, Overview};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Live, Shared, query};
use crate::layout::{
    self, PageError, badge, compact, enc, human_seconds, run_duration, short_time,
};
use crate::session::Viewer;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    fragment: Option<String>,
}

const LIVE: Live<'static> = Live {
    id: "overview",
    every_ms: 5_000,
};

pub(crate) async fn page(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let q = query(q)?;
    v.check(Action::Describe)?;
    let o = cp.overview().await?;
    let inner = render(&o, cp.config.auth, cp.config.jobs.enabled);
    Ok(LIVE.respond(q.fragment.as_deref(), inner, |region| {
        layout::page("Overview", "/", &v, html! { h1 { "Overview" } (region) })
    }))
}

fn render(o: &Overview, auth: bool, scheduler: bool) -> Markup {
    let count = |s: FreshnessStatus| o.views.iter().filter(|v| v.status == s).count();
    let up = o.edges.iter().filter(|e| e.status == "up").count();
    let feature_views = o.views.iter().filter(|v| v.kind == "feature_view").count();
    html! {
        div.tiles {
            div.tile { div.label { "Feature views" } div.figure #views-count { (feature_views) }
                div.muted { (count(FreshnessStatus::Fresh)) " fresh · " (count(FreshnessStatus::Late)) " late · "
                    (count(FreshnessStatus::Manual)) " manual · " (count(FreshnessStatus::Never)) " never" } }
            div.tile { div.label { "Edges up" } div.figure #edges-up { (up) " / " (o.edges.len()) } }
            div.tile { div.label { "Open alerts" } div.figure #alerts-open { (o.open_alerts.len()) @if o.open_alerts_more { "+" } } }
            div.tile { div.label { "Live manifest" } div.figure {
                @match o.live_manifest { Some(m) => { "#" (m) }, None => { "none" } } } }
        }
        div.card {
            h2 { "Control plane" }
            dl.facts {
                dt { "Status" } dd { (badge("up")) " answered at " (short_time(&o.generated_at)) " UTC" }
                dt { "Authentication" } dd { @if auth { "on" } @else { (badge("warn")) " off: every caller is admin" } }
                dt { "Scheduler" } dd { @if scheduler { "running" } @else { "off in this replica" } }
            }
        }
        div.card {
            h2 { "Edges" }
            @if o.edges.is_empty() {
                p.muted { "No edge has reported yet. Start one with " code { "fstore serve edge --control-plane <url>" } "." }
            } @else {
                table #edges {
                    thead { tr { th { "Edge" } th { "Region" } th { "Address" } th { "Status" } th { "Ready" }
                        th.num { "Manifest" } th.num { "Views" } th { "Last heartbeat" } th { "Started" } } }
                    tbody {
                        @for e in &o.edges {
                            @let h = &e.record.heartbeat;
                            @let behind = matches!((h.manifest_seq, o.live_manifest), (Some(a), Some(b)) if a < b);
                            tr data-edge=(h.id) {
                                td { (h.id) }
                                td { (h.region) }
                                td { code { (h.address) } }
                                td { (badge(e.status)) }
                                td { (badge(if h.ready { "ready" } else { "not ready" })) }
                                td.num {
                                    @match h.manifest_seq { Some(s) => { "#" (s) }, None => { "–" } }
                                    @if behind { " " (badge("behind")) }
                                }
                                td.num { (h.views.len()) }
                                td { (human_seconds(e.seconds_since_seen)) " ago" }
                                td { (short_time(&h.started_at)) }
                            }
                        }
                    }
                }
            }
        }
        div.card {
            h2 { "Freshness" }
            @if o.views.is_empty() {
                p.muted { "No views are registered: " code { "fstore apply" } " a features.yaml." }
            } @else {
                table #freshness {
                    thead { tr { th { "View" } th { "Owner" } th { "Schedule" } th.num { "Live version" }
                        th.num { "Rows" } th { "Age" } th { "Next due" } th { "Freshness" } th.num { "Edges current" } } }
                    tbody {
                        @for v in &o.views {
                            tr data-view=(v.view) {
                                td { a href={ "/lineage?focus=" (v.kind) ":" (enc(&v.view)) } { (v.view) } }
                                td { (v.owner) }
                                td { (v.schedule.as_deref().unwrap_or("–")) }
                                td.num { @match v.live_version { Some(x) => { "v" (x) }, None => { "–" } } }
                                td.num { @match v.rows { Some(r) => { (compact(r as f64)) }, None => { "–" } } }
                                td { @match v.age_seconds { Some(a) => { (human_seconds(a)) }, None => { "–" } } }
                                td { @match &v.next_due { Some(d) => { (short_time(d)) }, None => { "–" } } }
                                td { (badge(v.status.as_str())) }
                                td.num { (v.edges_current) " / " (o.edges.len()) }
                            }
                        }
                    }
                }
            }
        }
        div.grid {
            div.card {
                h2 { "Open alerts" }
                @if o.open_alerts.is_empty() { p.muted { "None." } }
                @for a in &o.open_alerts {
                    div.hit {
                        (badge(&a.severity)) " "
                        strong { (a.summary) }
                        div.muted { (a.kind) @if let Some(v) = &a.view { " · " (v) } " · opened "
                            (short_time(&a.opened_at)) " · seen " (a.occurrences) "×" }
                    }
                }
            }
            div.card {
                h2 { "Last job runs" " " a href="/jobs" { "all runs →" } }
                @if o.recent_runs.is_empty() { p.muted { "No runs yet." } }
                @else {
                    table {
                        thead { tr { th.num { "Run" } th { "View" } th { "Status" } th { "Trigger" } th { "Duration" } } }
                        tbody {
                            @for r in &o.recent_runs {
                                tr { td.num { "#" (r.id) } td { (r.view) } td { (badge(r.status.as_str())) }
                                    td { (r.trigger) } td { (run_duration(r.started_at.as_deref(), r.finished_at.as_deref())) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
