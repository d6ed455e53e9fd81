//! `/catalog`: the search box and its ranked results, and a feature's page: its definition,
//! versions, freshness, statistics with a histogram, quality rules with their last results,
//! drift over time, the services reading it and its lineage.

use std::collections::BTreeSet;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use fstore_access::{Action, ResourceKind};
use fstore_control::{FeaturePage, FeatureQuality};
use fstore_registry::{SearchQuery, SearchResults};
use fstore_spec::NodeId;
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::{Shared, given, query};
use crate::charts::{Series, XAxis, histogram, line_chart};
use crate::layout::{self, PageError, badge, compact, enc, human_seconds, percent, short_time};
use crate::session::Viewer;

/// Results per page.
const PAGE: usize = 20;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    q: Option<String>,
    kind: Option<String>,
    tag: Option<String>,
    owner: Option<String>,
    #[serde(default)]
    offset: usize,
}

/// `GET /catalog?q=…`.
pub(crate) async fn search(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    q: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let p = query(q)?;
    v.check(Action::Describe)?;
    let text = p.q.unwrap_or_default();
    let kind = given(p.kind);
    let (tag, owner) = (given(p.tag), given(p.owner));
    let results = cp
        .search(&SearchQuery {
            q: text.clone(),
            kind: kind.clone(),
            tag: tag.clone(),
            owner: owner.clone(),
            limit: PAGE,
            offset: p.offset,
            ..SearchQuery::default()
        })
        .await?;
    let link = |offset: usize| {
        let mut pairs = vec![("q", text.as_str())];
        pairs.extend(kind.as_deref().map(|k| ("kind", k)));
        pairs.extend(tag.as_deref().map(|t| ("tag", t)));
        pairs.extend(owner.as_deref().map(|o| ("owner", o)));
        let offset = offset.to_string();
        pairs.push(("offset", &offset));
        format!("/catalog?{}", encode_pairs(&pairs))
    };
    let body = html! {
        h1 { "Catalog" }
        form.search method="get" action="/catalog" role="search" {
            input #q type="search" name="q" value=(text) placeholder="Search features, views, services, sources…" autofocus;
            select name="kind" {
                option value="" { "any kind" }
                @for k in fstore_registry::SEARCH_KINDS { option value=(k) selected[kind.as_deref() == Some(k)] { (k.replace('_', " ")) } }
            }
            input type="text" name="tag" value=(tag.as_deref().unwrap_or("")) placeholder="tag";
            input type="text" name="owner" value=(owner.as_deref().unwrap_or("")) placeholder="owner";
            button type="submit" { "Search" }
        }
        (hits(&results))
        p {
            @if results.offset > 0 { a href=(link(results.offset.saturating_sub(PAGE))) { "← previous" } " " }
            @if results.offset + results.hits.len() < results.total { a href=(link(results.offset + PAGE)) { "next →" } }
        }
    };
    Ok(layout::page("Catalog", "/catalog", &v, body))
}

/// `a=b&c=d`, percent-encoding each part.
fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Where a search hit leads: a feature to its page, anything else to the lineage graph.
fn hit_href(kind: &str, name: &str, view: Option<&str>) -> String {
    match (kind, view) {
        // A feature's catalog name is `view:feature`.
        ("feature", Some(view)) => {
            let feature = name
                .strip_prefix(view)
                .and_then(|n| n.strip_prefix(':'))
                .unwrap_or(name);
            format!("/catalog/features/{}/{}", enc(view), enc(feature))
        }
        _ => format!("/lineage?focus={}:{}", enc(kind), enc(name)),
    }
}

fn hits(r: &SearchResults) -> Markup {
    html! {
        div.card #results {
            p.muted { (r.total) " result" @if r.total != 1 { "s" } }
            @for h in &r.hits {
                div.hit data-kind=(h.kind) data-name=(h.name) {
                    div.title {
                        span.tag { (h.kind.replace('_', " ")) } " "
                        a href=(hit_href(&h.kind, &h.name, h.view.as_deref())) {
                            (h.name)
                        }
                        @if let Some(t) = &h.feature_type { " " code { (t) } }
                    }
                    @for hl in &h.highlights {
                        // The registry escapes fragments and adds only <mark>…</mark>.
                        div.muted { (hl.field) ": " (PreEscaped(&hl.fragment)) }
                    }
                    @if h.highlights.iter().all(|hl| hl.field != "description") && !h.description.is_empty() {
                        div { (h.description) }
                    }
                    div.muted {
                        @if !h.owner.is_empty() { "owner " (h.owner) " · " }
                        @for t in &h.tags { span.tag { (t) } }
                    }
                }
            }
        }
    }
}

/// `GET /catalog/features/{view}/{feature}`.
pub(crate) async fn feature(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    Path((view, feature)): Path<(String, String)>,
) -> Result<Response, PageError> {
    cp.authorize(
        &v.principal,
        Action::Describe,
        ResourceKind::FeatureView,
        &view,
    )
    .await?;
    let page = cp.feature_page(&view, &feature).await?;
    let quality = cp.feature_quality(&v.principal, &view, &feature).await?;
    // The graph names other definitions: the REST API shows it to `describe` on the project
    // only, and so does this page.
    let lineage = if v.may(Action::Describe) {
        Some(lineage(&cp, &page.view_kind, &view).await?)
    } else {
        None
    };
    let title = format!("{view}:{feature}");
    Ok(layout::page(&title, "/catalog", &v, render(&page, &quality, lineage)).into_response())
}

/// The view's lineage both ways, its node in focus.
async fn lineage(cp: &Shared, view_kind: &str, view: &str) -> Result<Markup, PageError> {
    let graph = cp.lineage_graph().await?;
    let root = NodeId::new(
        fstore_spec::NodeKind::parse(view_kind).unwrap_or(fstore_spec::NodeKind::FeatureView),
        view,
    );
    let walk = graph.walk(&root, fstore_spec::Direction::Both, None);
    let nodes: Vec<&fstore_spec::Node> = walk
        .nodes
        .iter()
        .filter(|n| n.id.kind.is_definition())
        .collect();
    let links: Vec<&fstore_spec::Link> = walk
        .links
        .iter()
        .filter(|l| l.from.kind.is_definition() && l.to.kind.is_definition())
        .collect();
    let lit: BTreeSet<NodeId> = nodes.iter().map(|n| n.id.clone()).collect();
    Ok(crate::graph::render(&nodes, &links, Some(&root), &lit))
}

fn render(p: &FeaturePage, q: &FeatureQuality, lineage: Option<Markup>) -> Markup {
    html! {
        p.muted { a href="/catalog" { "Catalog" } " / " (p.view) }
        h1 #feature-title { (p.view) ":" (p.feature) " " code { (p.feature_type) } }
        div.columns {
            div {
                div.card {
                    h2 { "About" }
                    dl.facts {
                        dt { "Description" } dd { @if p.description.is_empty() { span.muted { "none" } } @else { (p.description) } }
                        dt { "Owner" } dd { (p.owner) }
                        dt { "Tags" } dd { @for t in &p.tags { span.tag { (t) } } }
                        dt { "View" } dd { a href={ "/lineage?focus=" (p.view_kind) ":" (enc(&p.view)) } { (p.view) } " v" (p.view_version) " (" (p.view_kind.replace('_', " ")) ")" }
                        dt { "Entities" } dd { (p.entities.join(", ")) }
                        @if let Some(s) = &p.source { dt { "Source" } dd { (s) } }
                        @if let Some(t) = &p.transform { dt { "Transform" } dd { (t) } }
                    }
                }
                div.card #statistics {
                    h2 { "Statistics" @if let Some(v) = q.version { span.muted { " of snapshot v" (v) } } }
                    (statistics(q))
                }
                div.card #rules {
                    h2 { "Quality rules" }
                    @if q.checks.is_empty() { p.muted { "No rule about this feature has been evaluated." } }
                    @else {
                        table {
                            thead { tr { th { "Rule" } th { "Result" } th { "Severity" } th { "Expected" } th.num { "Observed" } th.num { "Violations" } } }
                            tbody {
                                @for c in &q.checks {
                                    tr {
                                        td { (c["rule"].as_str().unwrap_or("")) }
                                        td { (badge(if c["passed"] == true { "passed" } else { "failed" })) }
                                        td { (c["severity"].as_str().unwrap_or("")) }
                                        td { code { (c["expected"].as_str().unwrap_or("")) } }
                                        td.num { @match c["observed"].as_f64() { Some(o) => { (compact(o)) }, None => { "–" } } }
                                        td.num { (c["violations"].as_u64().unwrap_or(0)) }
                                    }
                                }
                            }
                        }
                    }
                }
                div.card #drift {
                    h2 { "Drift over time" }
                    (drift(q))
                }
                @if let Some(lineage) = lineage {
                    div.card {
                        h2 { "Lineage" }
                        div style="overflow-x:auto" { (lineage) }
                    }
                }
            }
            div {
                div.card #freshness {
                    h2 { "Freshness" }
                    dl.facts {
                        dt { "Live snapshot" } dd { @match p.freshness.live_snapshot { Some(v) => { "v" (v) }, None => { "none" } } }
                        dt { "Materialized" } dd { @match &p.freshness.materialized_at { Some(t) => { (short_time(t)) }, None => { "–" } } }
                        dt { "Age" } dd { @match p.freshness.age_seconds { Some(a) => { (human_seconds(a)) }, None => { "–" } } }
                        dt { "TTL" } dd { @match p.freshness.ttl_seconds { Some(t) => { (human_seconds(t as i64)) }, None => { "–" } } }
                        dt { "Rows" } dd { @match p.freshness.rows { Some(r) => { (compact(r as f64)) }, None => { "–" } } }
                    }
                }
                div.card {
                    h2 { "Served by" }
                    @if p.services.is_empty() { p.muted { "No feature service reads it." } }
                    ul {
                        @for s in &p.services {
                            li { a href={ "/lineage?focus=feature_service:" (enc(&s.service)) } { (s.service) }
                                @if let Some(v) = s.pinned_version { " pins v" (v) }
                                @if let Some(v) = s.rolled_back_to { " " (badge("warn")) " rolled back to snapshot " (v) } }
                        }
                    }
                }
                div.card #versions {
                    h2 { "Versions" }
                    table {
                        thead { tr { th.num { "View" } th { "Change" } th { "By" } th { "When" } } }
                        tbody {
                            @for fv in p.versions.iter().rev() {
                                tr { td.num { "v" (fv.version) } td { (fv.change) } td { (fv.author) } td { (short_time(&fv.created_at)) } }
                            }
                        }
                    }
                }
                div.card {
                    h2 { "Definition" }
                    pre { (serde_json::to_string_pretty(&p.definition).unwrap_or_default()) }
                }
            }
        }
    }
}

fn statistics(q: &FeatureQuality) -> Markup {
    let Some(s) = &q.stats else {
        return html! { p.muted { "No snapshot of this view has been profiled yet." } };
    };
    let num = |k: &str| s[k].as_f64();
    html! {
        @if q.masked {
            p.flash.bad { "This feature is PII: your role may not read it, so only counts are shown." }
        }
        dl.facts {
            dt { "Values" } dd { (compact(num("count").unwrap_or(0.0))) }
            dt { "Nulls" } dd { (compact(num("nulls").unwrap_or(0.0))) " (" (percent(num("null_rate").unwrap_or(0.0))) ")" }
            dt { "Distinct" } dd { (compact(num("distinct").unwrap_or(0.0))) @if s["distinct_approximate"] == true { " (estimate)" } }
            @for k in ["min", "max", "mean", "stddev"] {
                @if let Some(x) = num(k) { dt { (k) } dd { (compact(x)) } }
            }
            @if let Some(qs) = s["quantiles"].as_object() {
                dt { "Quantiles" }
                dd { @for k in ["p1", "p25", "p50", "p75", "p99"] {
                    @if let Some(x) = qs.get(k).and_then(|x| x.as_f64()) { (k) " " (compact(x)) "  " } } }
            }
        }
        @if let Some(h) = s["histogram"].as_object() {
            @let counts: Vec<u64> = h.get("counts").and_then(|c| c.as_array()).into_iter().flatten().filter_map(|c| c.as_u64()).collect();
            h3 { "Histogram" }
            (histogram("histogram", h.get("min").and_then(|x| x.as_f64()).unwrap_or(0.0),
                h.get("max").and_then(|x| x.as_f64()).unwrap_or(0.0), &counts))
        }
        @if let Some(top) = s["top_values"].as_array() {
            h3 { "Most frequent values" }
            table { tbody { @for t in top.iter().take(10) {
                tr { td { (t["value"].as_str().unwrap_or("")) } td.num { (t["count"].as_u64().unwrap_or(0)) } }
            } } }
        }
    }
}

fn drift(q: &FeatureQuality) -> Markup {
    if q.drift.is_empty() {
        return html! { p.muted { @if q.masked { "Withheld: the feature is PII." }
        @else { "No drift measured: declare `drift:` on the view to compare each snapshot with a baseline." } } };
    }
    let first = q.drift.first().map_or(0.0, |d| d.version as f64);
    let last = q.drift.last().map_or(1.0, |d| d.version as f64);
    let axis = XAxis {
        min: first,
        max: if last > first { last } else { first + 1.0 },
        labels: vec![(first, format!("v{first}")), (last, format!("v{last}"))],
    };
    let series = vec![
        Series {
            name: "PSI".into(),
            points: q.drift.iter().map(|d| (d.version as f64, d.psi)).collect(),
            dashed: false,
        },
        Series {
            name: "KS".into(),
            points: q
                .drift
                .iter()
                .filter_map(|d| Some((d.version as f64, d.ks?)))
                .collect(),
            dashed: true,
        },
    ];
    html! {
        (line_chart("drift by snapshot version", &series, &axis, ""))
        table {
            thead { tr { th.num { "Snapshot" } th { "When" } th.num { "PSI" } th.num { "KS" } th.num { "JS" } } }
            tbody { @for d in q.drift.iter().rev() {
                tr { td.num { "v" (d.version) } td { (short_time(&d.created_at)) } td.num { (format!("{:.4}", d.psi)) }
                    td.num { @match d.ks { Some(x) => { (format!("{x:.4}")) }, None => { "–" } } }
                    td.num { @match d.js { Some(x) => { (format!("{x:.4}")) }, None => { "–" } } } }
            } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_what_names_may_hold() {
        assert_eq!(
            hit_href("feature", "v/1:a b", Some("v/1")),
            "/catalog/features/v%2F1/a%20b"
        );
        assert_eq!(
            hit_href("feature_view", "rfm", None),
            "/lineage?focus=feature_view:rfm"
        );
        assert_eq!(
            encode_pairs(&[("q", "a&b"), ("offset", "20")]),
            "q=a%26b&offset=20"
        );
    }
}
