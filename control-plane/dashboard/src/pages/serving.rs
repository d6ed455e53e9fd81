//! `/serving`: what edges report serving, per edge and per view, over the last minutes (at
//! most the hour the control plane keeps): lookups per second, p50/p99 latency, not-found and
//! error rates, as charts refreshed every five seconds. The registry sums the reports into
//! ten-second or one-minute buckets, so the page costs the same at any heartbeat rate.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use fstore_access::Action;
use fstore_registry::ServingBucket;
use maud::{Markup, html};
use serde::Deserialize;

use super::{Live, Shared, query};
use crate::charts::{Series, XAxis, line_chart};
use crate::layout::{self, PageError, compact, enc, percent};
use crate::session::Viewer;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    minutes: Option<i64>,
    /// Chart this view (the busiest ones otherwise).
    view: Option<String>,
    fragment: Option<String>,
}

/// The live region refreshes about as often as a bucket fills: every 5 s over five minutes
/// (ten-second buckets), every 10 s over a quarter hour, every 30 s over an hour.
fn live(minutes: i64) -> Live<'static> {
    Live {
        id: "serving",
        every_ms: match minutes {
            ..=5 => 5_000,
            6..=15 => 10_000,
            _ => 30_000,
        },
    }
}

const PERIODS: [i64; 3] = [5, 15, 60];

pub(crate) async fn page(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, PageError> {
    let q = query(q)?;
    v.check(Action::Describe)?;
    let minutes = q.minutes.unwrap_or(15);
    let live = live(minutes);
    // The service refuses a period it does not keep, with the range in its message.
    let (step, buckets) = cp.serving_buckets(minutes).await?;
    let period = Period {
        now: chrono::Utc::now(),
        minutes,
        step: step.seconds() as f64,
    };
    let focus = super::given(q.view);
    let inner = render(&buckets, &period, focus.as_deref());
    Ok(live.respond(q.fragment.as_deref(), inner, |region| {
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
                    ". Edges report with each heartbeat; the charts refresh every " (live.every_ms / 1000) " s."
                }
                (region)
            },
        )
    }))
}

/// Views charted at once (the busiest, or the one asked for); the tables list them all.
const CHARTED: usize = 12;

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Reports summed over some span of time and set of edges or views.
#[derive(Default, Clone, Copy)]
struct Totals {
    lookups: u64,
    not_found: u64,
    errors: u64,
    p50: Option<u64>,
    p99: Option<u64>,
}

impl Totals {
    fn add(&mut self, b: &ServingBucket) {
        self.merge(&Totals {
            lookups: b.lookups,
            not_found: b.not_found,
            errors: b.errors,
            p50: b.p50_us,
            p99: b.p99_us,
        });
    }

    fn merge(&mut self, o: &Totals) {
        self.lookups += o.lookups;
        self.not_found += o.not_found;
        self.errors += o.errors;
        self.p50 = self.p50.max(o.p50);
        self.p99 = self.p99.max(o.p99);
    }
}

/// The period shown and the buckets' width. Rates divide by wall-clock time, not by the
/// windows of the reports that arrived: edges report only the views that had lookups, so a
/// burst followed by silence is a low rate, not the burst's.
struct Period {
    now: chrono::DateTime<chrono::Utc>,
    minutes: i64,
    /// Seconds per bucket.
    step: f64,
}

impl Period {
    /// Seconds from now to `t` (negative: the past).
    fn offset(&self, t: &str) -> Option<f64> {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| (t.to_utc() - self.now).num_milliseconds() as f64 / 1000.0)
    }

    /// Where the period starts, in seconds from now.
    fn start(&self) -> f64 {
        -((self.minutes * 60) as f64)
    }

    /// A bucket's middle, for the chart.
    fn x(&self, start: &str) -> Option<f64> {
        self.offset(start).map(|s| s + self.step / 2.0)
    }

    /// The seconds of a bucket inside the period and before now (the first and the current
    /// bucket are partial); at least one.
    fn duration(&self, start: &str) -> Option<f64> {
        let s = self.offset(start)?;
        Some(((s + self.step).min(0.0) - s.max(self.start())).max(1.0))
    }

    /// Lookups per second over a bucket.
    fn bucket_rate(&self, start: &str, t: &Totals) -> Option<f64> {
        Some(t.lookups as f64 / self.duration(start)?)
    }

    /// The seconds from a line's first bucket in the period (an edge may have started since)
    /// to now; at least one.
    fn span(&self, first: Option<&str>) -> f64 {
        let from = first
            .and_then(|f| self.offset(f))
            .map_or(self.start(), |f| f.max(self.start()));
        (-from).max(1.0)
    }

    fn axis(&self) -> XAxis {
        let span = -self.start();
        XAxis {
            min: -span,
            max: 0.0,
            labels: vec![
                (-span, format!("-{} min", self.minutes)),
                (-span / 2.0, format!("-{} min", self.minutes as f64 / 2.0)),
                (0.0, "now".into()),
            ],
        }
    }
}

/// Per line (an edge, or the whole fleet), per bucket start: the buckets summed.
type Lines<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Totals>>;

fn group<'a>(
    buckets: impl Iterator<Item = &'a ServingBucket>,
    line: impl Fn(&'a ServingBucket) -> &'a str,
) -> Lines<'a> {
    let mut out: Lines<'a> = BTreeMap::new();
    for b in buckets {
        out.entry(line(b))
            .or_default()
            .entry(b.start.as_str())
            .or_default()
            .add(b);
    }
    out
}

/// The name of the one line a view's charts draw when not broken down by edge.
const FLEET: &str = "all edges";

/// One chart series per line, of `y` over its buckets.
fn series(
    lines: &Lines<'_>,
    period: &Period,
    suffix: &str,
    dashed: bool,
    y: impl Fn(&str, &Totals) -> Option<f64>,
) -> Vec<Series> {
    lines
        .iter()
        .map(|(name, buckets)| Series {
            name: format!("{name}{suffix}"),
            points: buckets
                .iter()
                .filter_map(|(start, t)| Some((period.x(start)?, y(start, t)?)))
                .collect(),
            dashed,
        })
        .collect()
}

/// A line's figures over the whole period.
struct Row<'a> {
    name: &'a str,
    per_second: f64,
    all: Totals,
}

/// The period's totals of each line, busiest first. `spans` gives the seconds each edge was
/// reporting in the period; a line's rate adds up its edges' rates.
fn rows<'a>(
    buckets: &'a [ServingBucket],
    line: impl Fn(&'a ServingBucket) -> &'a str,
    spans: &BTreeMap<&str, f64>,
) -> Vec<Row<'a>> {
    let mut per: BTreeMap<&str, BTreeMap<&str, Totals>> = BTreeMap::new();
    for b in buckets {
        per.entry(line(b))
            .or_default()
            .entry(b.edge.as_str())
            .or_default()
            .add(b);
    }
    let mut out: Vec<Row<'a>> = per
        .into_iter()
        .map(|(name, edges)| {
            let mut all = Totals::default();
            edges.values().for_each(|t| all.merge(t));
            Row {
                name,
                per_second: edges
                    .iter()
                    .map(|(e, t)| t.lookups as f64 / spans.get(e).copied().unwrap_or(1.0))
                    .sum(),
                all,
            }
        })
        .collect();
    out.sort_by(|a, b| b.all.lookups.cmp(&a.all.lookups).then(a.name.cmp(b.name)));
    out
}

fn micros(v: Option<u64>) -> Markup {
    html! { @match v { Some(p) => { (p) " µs" }, None => { "–" } } }
}

fn table(id: &str, what: &str, rows: &[Row<'_>], link: impl Fn(&str) -> Option<String>) -> Markup {
    html! {
        table id=(id) {
            thead { tr { th { (what) } th.num { "Lookups/s" } th.num { "Lookups" } th.num { "Not found" }
                th.num { "Errors" } th.num { "Worst p50" } th.num { "Worst p99" } } }
            tbody {
                @for r in rows {
                    tr data-row=(r.name) {
                        td { @match link(r.name) { Some(href) => { a href=(href) { (r.name) } }, None => { (r.name) } } }
                        td.num { (compact(r.per_second)) }
                        td.num { (compact(r.all.lookups as f64)) }
                        td.num { (percent(rate(r.all.not_found, r.all.lookups))) }
                        td.num { (percent(rate(r.all.errors, r.all.lookups))) }
                        td.num { (micros(r.all.p50)) }
                        td.num { (micros(r.all.p99)) }
                    }
                }
            }
        }
    }
}

/// A view's charts: one line per edge when it is the view asked for, else one line for the
/// fleet.
fn view_charts(
    row: &Row<'_>,
    buckets: &[ServingBucket],
    period: &Period,
    axis: &XAxis,
    by_edge: bool,
) -> Markup {
    let of_view = buckets.iter().filter(|b| b.view == row.name);
    let lines = if by_edge {
        group(of_view, |b| b.edge.as_str())
    } else {
        group(of_view, |_| FLEET)
    };
    let mut latency = series(&lines, period, " p99", false, |_, t| {
        t.p99.map(|v| v as f64)
    });
    latency.extend(series(&lines, period, " p50", true, |_, t| {
        t.p50.map(|v| v as f64)
    }));
    let mut rates = series(&lines, period, " not found", false, |_, t| {
        Some(100.0 * rate(t.not_found, t.lookups))
    });
    rates.extend(series(&lines, period, " errors", true, |_, t| {
        Some(100.0 * rate(t.errors, t.lookups))
    }));
    let t = &row.all;
    html! {
        div.card data-view=(row.name) {
            h2 { (row.name) }
            p.muted {
                strong { (compact(row.per_second)) } " lookups/s · "
                (percent(rate(t.not_found, t.lookups))) " not found · "
                (percent(rate(t.errors, t.lookups))) " errors · p50 " (micros(t.p50)) " · p99 " (micros(t.p99))
            }
            h3 { "Lookups per second" }
            (line_chart("lookups per second", &series(&lines, period, "", false, |s, t| period.bucket_rate(s, t)), axis, "/s"))
            h3 { "Latency (µs)" }
            (line_chart("latency p50 and p99", &latency, axis, "µs"))
            h3 { "Not-found and error rate (%)" }
            (line_chart("not-found and error rates", &rates, axis, "%"))
        }
    }
}

fn render(buckets: &[ServingBucket], period: &Period, focus: Option<&str>) -> Markup {
    let axis = period.axis();
    let minutes = period.minutes;
    let edges = group(buckets.iter(), |b| b.edge.as_str());
    // Buckets are ordered by time, so each edge's first key is its first report.
    let spans: BTreeMap<&str, f64> = edges
        .iter()
        .map(|(e, times)| (*e, period.span(times.keys().next().copied())))
        .collect();
    let edge_rows = rows(buckets, |b| b.edge.as_str(), &spans);
    let view_rows = rows(buckets, |b| b.view.as_str(), &spans);
    let charted: Vec<&Row<'_>> = match focus {
        Some(v) => view_rows.iter().filter(|r| r.name == v).collect(),
        None => view_rows.iter().take(CHARTED).collect(),
    };
    html! {
        @if buckets.is_empty() {
            div.card { p.muted { "No edge reported lookups in the last " (minutes) " minutes. Edges report when started with "
                code { "--control-plane" } "." } }
        } @else {
            div.card {
                h2 { "Per edge" }
                (line_chart("lookups per second by edge", &series(&edges, period, "", false, |s, t| period.bucket_rate(s, t)), &axis, "/s"))
                (table("serving-edges", "Edge", &edge_rows, |_| None))
            }
            div.card {
                h2 { "Per view" }
                (table("serving-views", "View", &view_rows,
                    |v| Some(format!("/serving?minutes={minutes}&view={}", enc(v)))))
                @if focus.is_none() {
                    p.muted { "Charts below: the " (CHARTED.min(view_rows.len())) " busiest views, all edges together; click a view for its charts per edge." }
                }
            }
            div.grid {
                @for r in &charted { (view_charts(r, buckets, period, &axis, focus.is_some())) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(edge: &str, view: &str, start: &str, lookups: u64, not_found: u64) -> ServingBucket {
        ServingBucket {
            edge: edge.into(),
            view: view.into(),
            start: start.into(),
            reports: 2,
            window_ms: 2_000,
            lookups,
            not_found,
            errors: 0,
            p50_us: Some(80),
            p99_us: Some(400),
        }
    }

    fn period() -> Period {
        Period {
            now: chrono::DateTime::parse_from_rfc3339("2026-12-04T10:01:00Z")
                .expect("time")
                .to_utc(),
            minutes: 5,
            step: 10.0,
        }
    }

    #[test]
    fn rates_divide_by_wall_clock_time_and_edges_add_up() {
        // e1 reports from 10:00:00 on (60 s before now), e2 only in the last bucket; a view's
        // quiet buckets are simply missing (edges report views that had lookups).
        let buckets = vec![
            bucket("e1", "a", "2026-12-04T10:00:00Z", 120, 12),
            bucket("e1", "b", "2026-12-04T10:00:00Z", 300, 0),
            bucket("e1", "b", "2026-12-04T10:00:50Z", 60, 0),
            bucket("e2", "b", "2026-12-04T10:00:50Z", 100, 0),
        ];
        let p = period();
        let edges = group(buckets.iter(), |b| b.edge.as_str());
        let spans: BTreeMap<&str, f64> = edges
            .iter()
            .map(|(e, t)| (*e, p.span(t.keys().next().copied())))
            .collect();
        assert_eq!((spans["e1"], spans["e2"]), (60.0, 10.0));
        // e1: 480 lookups in 60 s, not 480 over the 4 s its reports' windows covered.
        let edge_rows = rows(&buckets, |b| b.edge.as_str(), &spans);
        let e1 = edge_rows.iter().find(|r| r.name == "e1").expect("e1");
        assert_eq!(e1.per_second, 8.0);
        // View b: e1 360 in 60 s plus e2 100 in 10 s; busiest first.
        let view_rows = rows(&buckets, |b| b.view.as_str(), &spans);
        assert_eq!((view_rows[0].name, view_rows[0].per_second), ("b", 16.0));
        assert_eq!((view_rows[1].name, view_rows[1].per_second), ("a", 2.0));
        // A bucket's point is its lookups over its ten seconds.
        let fleet = group(buckets.iter().filter(|b| b.view == "b"), |_| FLEET);
        let last = &fleet[FLEET]["2026-12-04T10:00:50Z"];
        assert_eq!(p.bucket_rate("2026-12-04T10:00:50Z", last), Some(16.0));
        let html = render(&buckets, &p, None).into_string();
        assert!(
            html.find("data-view=\"b\"") < html.find("data-view=\"a\""),
            "{html}"
        );
        assert!(
            html.contains(">all edges<"),
            "the overall page draws the fleet per view"
        );
        let one = render(&buckets, &p, Some("b")).into_string();
        assert!(one.contains("data-view=\"b\"") && !one.contains("data-view=\"a\""));
        assert!(
            !one.contains(">all edges<"),
            "a view asked for is drawn per edge"
        );
    }

    #[test]
    fn partial_buckets_count_only_their_time_in_the_period() {
        let p = period();
        assert_eq!(p.x("2026-12-04T10:00:50Z"), Some(-5.0));
        assert_eq!(p.duration("2026-12-04T10:00:50Z"), Some(10.0));
        // The current bucket has run 3 s so far.
        assert_eq!(p.duration("2026-12-04T10:00:57Z"), Some(3.0));
        // The bucket straddling the period's start counts from the start.
        assert_eq!(p.duration("2026-12-04T09:55:55Z"), Some(5.0));
        assert_eq!(p.duration("not a time"), None);
        assert_eq!(p.span(None), 300.0);
    }
}
