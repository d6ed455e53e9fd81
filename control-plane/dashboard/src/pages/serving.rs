//! `/serving`: what edges report serving, per edge and per view, over the last minutes (at
//! most the hour the control plane keeps): lookups per second, p50/p99 latency, not-found and
//! error rates, as charts refreshed every five seconds.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use fstore_access::Action;
use fstore_control::ServingSummary;
use fstore_registry::ServingSample;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Live, Shared, query};
use crate::charts::{Series, XAxis, line_chart};
use crate::layout::{self, PageError, compact, percent};
use crate::session::Viewer;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    minutes: Option<i64>,
    fragment: Option<String>,
}

const LIVE: Live<'static> = Live {
    id: "serving",
    every_ms: 5_000,
};

const PERIODS: [i64; 3] = [5, 15, 60];

pub(crate) async fn page(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let q = query(q)?;
    v.check(Action::Describe)?;
    let minutes = q.minutes.unwrap_or(60);
    // The service refuses a period it does not keep, with the range in its message.
    let summaries = cp.serving(None, minutes).await?;
    let now = chrono::Utc::now();
    let inner = render(&summaries, minutes, now);
    Ok(LIVE.respond(q.fragment.as_deref(), inner, |region| {
        layout::page(
            "Serving",
            "/serving",
            &v,
            html! {
                h1 { "Serving" }
                p.muted {
                    "Last "
                    @for (i, m) in PERIODS.iter().enumerate() {
                        @if i > 0 { " · " }
                        @if *m == minutes { strong { (m) " min" } }
                        @else { a href={ "/serving?minutes=" (m) } { (m) " min" } }
                    }
                    ". Edges report with each heartbeat; the page refreshes every 5 s."
                }
                (region)
            },
        )
    }))
}

/// Seconds from `now` back to a sample (negative: the past), the charts' x.
fn x_of(s: &ServingSample, now: chrono::DateTime<chrono::Utc>) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(&s.at)
        .ok()
        .map(|t| (t.to_utc() - now).num_milliseconds() as f64 / 1000.0)
}

fn per_second(lookups: u64, window_ms: u64) -> f64 {
    if window_ms == 0 {
        0.0
    } else {
        lookups as f64 * 1000.0 / window_ms as f64
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// One edge's figures summed over views: a heartbeat reports every view for the same window.
#[derive(Default)]
struct EdgeTotals {
    lookups: u64,
    not_found: u64,
    errors: u64,
    /// Heartbeat time → (lookups, window) for the chart and the rate.
    beats: BTreeMap<String, (u64, u64)>,
    p50: Option<u64>,
    p99: Option<u64>,
}

fn by_edge(summaries: &[ServingSummary]) -> BTreeMap<&str, EdgeTotals> {
    let mut edges: BTreeMap<&str, EdgeTotals> = BTreeMap::new();
    for s in summaries.iter().flat_map(|v| &v.samples) {
        let e = edges.entry(s.edge.as_str()).or_default();
        e.lookups += s.lookups;
        e.not_found += s.not_found;
        e.errors += s.errors;
        let beat = e.beats.entry(s.at.clone()).or_insert((0, s.window_ms));
        beat.0 += s.lookups;
        e.p50 = e.p50.max(s.p50_us);
        e.p99 = e.p99.max(s.p99_us);
    }
    edges
}

fn series_per_edge(
    samples: &[ServingSample],
    now: chrono::DateTime<chrono::Utc>,
    y: impl Fn(&ServingSample) -> Option<f64>,
    suffix: &str,
    dashed: bool,
) -> Vec<Series> {
    let mut per: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for s in samples {
        if let (Some(x), Some(y)) = (x_of(s, now), y(s)) {
            per.entry(s.edge.as_str()).or_default().push((x, y));
        }
    }
    per.into_iter()
        .map(|(edge, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: format!("{edge}{suffix}"),
                points,
                dashed,
            }
        })
        .collect()
}

/// p99 per edge, with p50 dashed.
fn latency(samples: &[ServingSample], now: chrono::DateTime<chrono::Utc>) -> Vec<Series> {
    let mut out = series_per_edge(samples, now, |x| x.p99_us.map(|v| v as f64), " p99", false);
    out.extend(series_per_edge(
        samples,
        now,
        |x| x.p50_us.map(|v| v as f64),
        " p50",
        true,
    ));
    out
}

/// Not-found rate per edge, with the error rate dashed, in percent.
fn rates(samples: &[ServingSample], now: chrono::DateTime<chrono::Utc>) -> Vec<Series> {
    let pct = |part: fn(&ServingSample) -> u64| {
        move |x: &ServingSample| Some(100.0 * rate(part(x), x.lookups))
    };
    let mut out = series_per_edge(samples, now, pct(|x| x.not_found), " not found", false);
    out.extend(series_per_edge(
        samples,
        now,
        pct(|x| x.errors),
        " errors",
        true,
    ));
    out
}

fn render(
    summaries: &[ServingSummary],
    minutes: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Markup {
    let span = (minutes * 60) as f64;
    let axis = XAxis {
        min: -span,
        max: 0.0,
        labels: vec![
            (-span, format!("-{minutes} min")),
            (-span / 2.0, format!("-{} min", minutes as f64 / 2.0)),
            (0.0, "now".into()),
        ],
    };
    let edges = by_edge(summaries);
    let edge_series: Vec<Series> = edges
        .iter()
        .map(|(name, e)| Series {
            name: (*name).to_string(),
            points: e
                .beats
                .iter()
                .filter_map(|(at, (lookups, window))| {
                    let t = chrono::DateTime::parse_from_rfc3339(at).ok()?;
                    let x = (t.to_utc() - now).num_milliseconds() as f64 / 1000.0;
                    Some((x, per_second(*lookups, *window)))
                })
                .collect(),
            dashed: false,
        })
        .collect();
    html! {
        @if summaries.is_empty() {
            div.card { p.muted { "No edge reported lookups in the last " (minutes) " minutes. Edges report when started with "
                code { "--control-plane" } "." } }
        } @else {
            div.card {
                h2 { "Per edge" }
                (line_chart("lookups per second by edge", &edge_series, &axis, "/s"))
                table #serving-edges {
                    thead { tr { th { "Edge" } th.num { "Lookups/s" } th.num { "Lookups" } th.num { "Not found" }
                        th.num { "Errors" } th.num { "Worst p50" } th.num { "Worst p99" } } }
                    tbody {
                        @for (name, e) in &edges {
                            @let window: u64 = e.beats.values().map(|b| b.1).sum();
                            tr data-edge=(name) {
                                td { (name) }
                                td.num { (compact(per_second(e.lookups, window))) }
                                td.num { (compact(e.lookups as f64)) }
                                td.num { (percent(rate(e.not_found, e.lookups))) }
                                td.num { (percent(rate(e.errors, e.lookups))) }
                                td.num { @match e.p50 { Some(p) => { (p) " µs" }, None => { "–" } } }
                                td.num { @match e.p99 { Some(p) => { (p) " µs" }, None => { "–" } } }
                            }
                        }
                    }
                }
            }
            h2 { "Per view" }
            div.grid {
                @for s in summaries {
                    div.card data-view=(s.view) {
                        h2 { (s.view) }
                        p.muted {
                            strong { (compact(s.lookups_per_second)) } " lookups/s · "
                            (percent(s.not_found_rate)) " not found · "
                            (percent(s.error_rate)) " errors · p50 "
                            @match s.p50_us { Some(p) => { (p) " µs" }, None => { "–" } }
                            " · p99 "
                            @match s.p99_us { Some(p) => { (p) " µs" }, None => { "–" } }
                        }
                        h3 { "Lookups per second" }
                        (line_chart("lookups per second", &series_per_edge(&s.samples, now,
                            |x| Some(per_second(x.lookups, x.window_ms)), "", false), &axis, "/s"))
                        h3 { "Latency (µs)" }
                        (line_chart("latency p50 and p99", &latency(&s.samples, now), &axis, "µs"))
                        h3 { "Not-found and error rate (%)" }
                        (line_chart("not-found and error rates", &rates(&s.samples, now), &axis, "%"))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(edge: &str, view: &str, at: &str, lookups: u64, not_found: u64) -> ServingSample {
        ServingSample {
            edge: edge.into(),
            view: view.into(),
            at: at.into(),
            window_ms: 2_000,
            lookups,
            not_found,
            errors: 0,
            p50_us: Some(80),
            p99_us: Some(400),
        }
    }

    #[test]
    fn edges_sum_their_views_per_heartbeat() {
        let at = "2026-12-04T10:00:00Z";
        let summaries = vec![
            ServingSummary {
                view: "a".into(),
                lookups: 100,
                lookups_per_second: 50.0,
                not_found_rate: 0.1,
                error_rate: 0.0,
                p50_us: Some(80),
                p99_us: Some(400),
                samples: vec![sample("e1", "a", at, 100, 10)],
            },
            ServingSummary {
                view: "b".into(),
                lookups: 300,
                lookups_per_second: 150.0,
                not_found_rate: 0.0,
                error_rate: 0.0,
                p50_us: Some(80),
                p99_us: Some(400),
                samples: vec![sample("e1", "b", at, 300, 0)],
            },
        ];
        let edges = by_edge(&summaries);
        let e1 = &edges["e1"];
        assert_eq!((e1.lookups, e1.not_found), (400, 10));
        // One heartbeat of 2 s covering both views: 200 lookups/s, not 400.
        assert_eq!(e1.beats[at], (400, 2_000));
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-04T10:01:00Z")
            .expect("time")
            .to_utc();
        let html = render(&summaries, 5, now).into_string();
        assert!(html.contains("<td class=\"num\">200</td>"), "{html}");
        assert!(html.contains("data-view=\"b\""));
    }
}
