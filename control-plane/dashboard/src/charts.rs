//! Line charts and histograms drawn as inline SVG on the server: no charting library, no
//! canvas, and a page's figures are in the HTML a test (or `curl`) reads.

use maud::{Markup, html};

use crate::layout::compact;

const W: f64 = 600.0;
const H: f64 = 180.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;
/// Series beyond this many share colours.
const COLOURS: usize = 8;

/// One line: `(x, y)` points in x order.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// The x axis: its span and the labels under it.
#[derive(Debug, Clone)]
pub(crate) struct XAxis {
    pub min: f64,
    pub max: f64,
    pub labels: Vec<(f64, String)>,
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

/// The smallest of 1, 2, 2.5, 5 × a power of ten at or above `v`: round axis tops.
pub(crate) fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    let m = v / p;
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|s| m <= *s + 1e-9)
        .unwrap_or(10.0);
    step * p
}

fn plot_x(x: f64, axis: &XAxis) -> f64 {
    let span = (axis.max - axis.min).max(f64::EPSILON);
    LEFT + (x - axis.min) / span * (W - LEFT - RIGHT)
}

fn plot_y(y: f64, top: f64) -> f64 {
    TOP + (1.0 - (y / top).clamp(0.0, 1.0)) * (H - TOP - BOTTOM)
}

fn frame(top: f64, unit: &str, axis: &XAxis) -> Markup {
    html! {
        @for frac in [0.0, 0.5, 1.0] {
            @let y = plot_y(top * frac, top);
            line class=@if frac == 0.0 { "axis" } @else { "grid" }
                x1=(f1(LEFT)) x2=(f1(W - RIGHT)) y1=(f1(y)) y2=(f1(y)) {}
            text x=(f1(LEFT - 6.0)) y=(f1(y + 4.0)) text-anchor="end" {
                (compact(top * frac)) @if frac == 1.0 && !unit.is_empty() { " " (unit) }
            }
        }
        @for (x, label) in &axis.labels {
            text x=(f1(plot_x(*x, axis))) y=(f1(H - 6.0)) text-anchor="middle" { (label) }
        }
    }
}

fn legend(series: &[Series]) -> Markup {
    html! {
        div.legend {
            @for (i, s) in series.iter().enumerate() {
                span { i class={ "s" (i % COLOURS) } {} (s.name) @if s.dashed { " (dashed)" } }
            }
        }
    }
}

/// A line chart of `series` over `axis`, the y axis from 0 to a round top in `unit`.
pub(crate) fn line_chart(label: &str, series: &[Series], axis: &XAxis, unit: &str) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let empty = series.iter().all(|s| s.points.is_empty());
    html! {
        figure.chart {
            svg.chart viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(label) {
                (frame(top, unit, axis))
                @if empty {
                    text x=(f1(W / 2.0)) y=(f1(H / 2.0)) text-anchor="middle" { "no reports in this period" }
                }
                @for (i, s) in series.iter().enumerate() {
                    @let class = format!("line s{}{}", i % COLOURS, if s.dashed { " dashed" } else { "" });
                    @if s.points.len() == 1 {
                        @let (x, y) = s.points[0];
                        circle class={ "dot s" (i % COLOURS) } cx=(f1(plot_x(x, axis))) cy=(f1(plot_y(y, top))) r="3" {}
                    } @else if !s.points.is_empty() {
                        polyline class=(class) points=(s.points.iter()
                            .map(|(x, y)| format!("{},{}", f1(plot_x(*x, axis)), f1(plot_y(*y, top))))
                            .collect::<Vec<_>>()
                            .join(" ")) {}
                    }
                }
            }
            @if !series.is_empty() { (legend(series)) }
        }
    }
}

/// Equal-width bins from `min` to `max` as bars, with the range under them.
pub(crate) fn histogram(label: &str, min: f64, max: f64, counts: &[u64]) -> Markup {
    let top = nice_ceiling(counts.iter().copied().max().unwrap_or(0) as f64);
    let n = counts.len().max(1) as f64;
    let width = (W - LEFT - RIGHT) / n;
    let axis = XAxis {
        min: 0.0,
        max: n,
        labels: vec![
            (0.0, compact(min)),
            (n / 2.0, compact((min + max) / 2.0)),
            (n, compact(max)),
        ],
    };
    html! {
        figure.chart {
            svg.chart viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(label) {
                (frame(top, "", &axis))
                @for (i, c) in counts.iter().enumerate() {
                    @let y = plot_y(*c as f64, top);
                    rect.bar x=(f1(LEFT + i as f64 * width + 1.0)) y=(f1(y))
                        width=(f1((width - 2.0).max(1.0))) height=(f1(H - BOTTOM - y)) {
                        title { (c) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
        assert_eq!(nice_ceiling(2100.0), 2500.0);
        assert_eq!(nice_ceiling(0.043), 0.05);
    }

    #[test]
    fn a_chart_draws_each_series_inside_its_frame() {
        let axis = XAxis {
            min: 0.0,
            max: 10.0,
            labels: vec![(0.0, "-10m".into()), (10.0, "now".into())],
        };
        let s = vec![
            Series {
                name: "edge-a".into(),
                points: vec![(0.0, 0.0), (10.0, 90.0)],
                dashed: false,
            },
            Series {
                name: "edge-b".into(),
                points: vec![(5.0, 40.0)],
                dashed: true,
            },
        ];
        let svg = line_chart("lookups", &s, &axis, "/s").into_string();
        // 90 rounds up to a top of 100: the first series ends 90 % of the way up the plot.
        assert!(svg.contains(r#"points="52.0,158.0 588.0,24.8""#), "{svg}");
        assert!(
            svg.contains(r#"<circle class="dot s1" cx="320.0""#),
            "{svg}"
        );
        assert!(svg.contains("edge-b (dashed)"));
        assert!(!svg.contains("no reports"));
        let empty = line_chart("lookups", &[], &axis, "/s").into_string();
        assert!(empty.contains("no reports in this period"));
    }

    #[test]
    fn a_histogram_has_a_bar_per_bin() {
        let svg = histogram("h", 0.0, 100.0, &[1, 5, 2, 0]).into_string();
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 4);
        assert!(svg.contains(">100<"), "the range's end is labelled: {svg}");
    }
}
