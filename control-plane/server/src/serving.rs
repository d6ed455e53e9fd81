//! Serving-side signals: the per-view figures edges send with each heartbeat are kept for an
//! hour, and a view whose not-found or error rate leaves its recent band raises an alert
//! (resolved once a later report is back inside the band).

use std::collections::BTreeMap;

use chrono::{Duration as ChronoDuration, SecondsFormat, Utc};
use fstore_registry::{EdgeHeartbeat, NewAlert, RollupStep, ServingBucket, ServingSample};
use serde::Serialize;

use crate::{ControlError, ControlPlane};

/// How long serving samples are kept, and how far back the band looks.
const KEPT_MINUTES: i64 = 60;
const BAND_MINUTES: i64 = 30;
/// A report with fewer lookups says too little about a rate to judge it (or to shape a band).
const MIN_LOOKUPS: u64 = 20;
/// The band is the history's mean ± this many standard deviations …
const BAND_SIGMAS: f64 = 4.0;
/// … but never narrower than ± 5 percentage points: a steady 1 % must not alert at 2 %.
const BAND_FLOOR: f64 = 0.05;

/// One view's serving figures summed over every edge and the requested period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServingSummary {
    pub view: String,
    pub lookups: u64,
    pub lookups_per_second: f64,
    pub not_found_rate: f64,
    pub error_rate: f64,
    /// The worst p50 and p99 any edge reported in the period, in microseconds.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    /// Every report of the period, oldest first.
    pub samples: Vec<ServingSample>,
}

fn ms_to_us(ms: Option<f64>) -> Option<u64> {
    ms.filter(|m| m.is_finite() && *m >= 0.0)
        .map(|m| (m * 1000.0).round() as u64)
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn ago(minutes: i64) -> String {
    (Utc::now() - ChronoDuration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Refuses serving figures that cannot be true, before anything of the heartbeat is kept.
pub(crate) fn validate_serving(h: &EdgeHeartbeat) -> Result<(), ControlError> {
    if h.serving.len() > 10_000 {
        return Err(ControlError::BadRequest(
            "`serving` reports over 10000 views".into(),
        ));
    }
    for (view, s) in &h.serving {
        if s.not_found > s.lookups || s.errors > s.lookups {
            return Err(ControlError::BadRequest(format!(
                "`serving.{view}`: `not_found` and `errors` cannot exceed `lookups`"
            )));
        }
    }
    Ok(())
}

/// How one rate is read off a sample.
type Signal = fn(&ServingSample) -> f64;

fn not_found_rate(s: &ServingSample) -> f64 {
    rate(s.not_found, s.lookups)
}

fn error_rate(s: &ServingSample) -> f64 {
    rate(s.errors, s.lookups)
}

impl ControlPlane {
    /// Keeps a heartbeat's serving figures and judges each view's rates against its band.
    pub(crate) async fn record_serving(&self, h: &EdgeHeartbeat) -> Result<(), ControlError> {
        if h.serving.is_empty() {
            return Ok(());
        }
        let since = ago(BAND_MINUTES);
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let samples: Vec<ServingSample> = h
            .serving
            .iter()
            .map(|(view, s)| ServingSample {
                edge: h.id.clone(),
                view: view.clone(),
                at: at.clone(),
                window_ms: h.serving_window_ms,
                lookups: s.lookups,
                not_found: s.not_found,
                errors: s.errors,
                p50_us: ms_to_us(s.p50_ms),
                p99_us: ms_to_us(s.p99_ms),
            })
            .collect();
        // The band is drawn from the history before this report.
        let mut history: BTreeMap<String, Vec<ServingSample>> = BTreeMap::new();
        for s in self.registry.serving_samples(None, &since).await? {
            if h.serving.contains_key(&s.view) {
                history.entry(s.view.clone()).or_default().push(s);
            }
        }
        self.registry.record_serving(&samples).await?;
        self.registry.prune_serving(&ago(KEPT_MINUTES)).await?;
        for s in &samples {
            if s.lookups < MIN_LOOKUPS {
                continue;
            }
            let past: Vec<&ServingSample> = history
                .get(&s.view)
                .into_iter()
                .flatten()
                .filter(|p| p.lookups >= MIN_LOOKUPS)
                .collect();
            let signals: [(&str, Signal); 2] = [
                ("not_found_rate", not_found_rate),
                ("error_rate", error_rate),
            ];
            for (signal, of) in signals {
                let now = of(s);
                let points: Vec<f64> = past.iter().map(|p| of(p)).collect();
                let Some(band) = fstore_quality::band(&points, BAND_SIGMAS, BAND_FLOOR) else {
                    continue;
                };
                let fingerprint = format!("serving:{}:{signal}", s.view);
                if !band.outside(now) {
                    self.alerter.resolve(&fingerprint).await;
                    continue;
                }
                self.alerter
                    .raise(NewAlert {
                        fingerprint,
                        kind: "serving".into(),
                        view: Some(s.view.clone()),
                        severity: "warn".into(),
                        summary: format!(
                            "{}: {} {:.1}% at edge `{}` left its recent band {:.1}%–{:.1}% ({} lookups)",
                            s.view,
                            signal.replace('_', " "),
                            now * 100.0,
                            s.edge,
                            band.low.max(0.0) * 100.0,
                            band.high.min(1.0) * 100.0,
                            s.lookups
                        ),
                        details: serde_json::json!({
                            "signal": signal,
                            "edge": s.edge,
                            "value": now,
                            "band": band,
                            "history": points.len(),
                            "sample": s,
                        }),
                    })
                    .await;
            }
        }
        Ok(())
    }

    /// Serving samples of the last `minutes` summed per edge, view and bucket (ten seconds up
    /// to five minutes, a minute beyond): a chart's worth, however often edges report.
    pub async fn serving_buckets(
        &self,
        minutes: i64,
    ) -> Result<(RollupStep, Vec<ServingBucket>), ControlError> {
        if !(1..=KEPT_MINUTES).contains(&minutes) {
            return Err(ControlError::BadRequest(format!(
                "`minutes` must be 1 to {KEPT_MINUTES}"
            )));
        }
        let step = if minutes <= 5 {
            RollupStep::TenSeconds
        } else {
            RollupStep::Minute
        };
        Ok((
            step,
            self.registry.serving_rollup(&ago(minutes), step).await?,
        ))
    }

    /// Each view's serving figures over the last `minutes` (at most an hour: older samples are
    /// not kept), across all edges.
    pub async fn serving(
        &self,
        view: Option<&str>,
        minutes: i64,
    ) -> Result<Vec<ServingSummary>, ControlError> {
        if !(1..=KEPT_MINUTES).contains(&minutes) {
            return Err(ControlError::BadRequest(format!(
                "`minutes` must be 1 to {KEPT_MINUTES}"
            )));
        }
        let mut by_view: BTreeMap<String, Vec<ServingSample>> = BTreeMap::new();
        for s in self.registry.serving_samples(view, &ago(minutes)).await? {
            by_view.entry(s.view.clone()).or_default().push(s);
        }
        Ok(by_view
            .into_iter()
            .map(|(view, samples)| {
                let lookups: u64 = samples.iter().map(|s| s.lookups).sum();
                let not_found: u64 = samples.iter().map(|s| s.not_found).sum();
                let errors: u64 = samples.iter().map(|s| s.errors).sum();
                // Edges report concurrently: the period is the span one edge's reports cover.
                let mut per_edge: BTreeMap<&str, u64> = BTreeMap::new();
                for s in &samples {
                    *per_edge.entry(s.edge.as_str()).or_default() += s.window_ms;
                }
                let span_ms = per_edge.values().copied().max().unwrap_or(0);
                ServingSummary {
                    lookups_per_second: if span_ms == 0 {
                        0.0
                    } else {
                        lookups as f64 * 1000.0 / span_ms as f64
                    },
                    not_found_rate: rate(not_found, lookups),
                    error_rate: rate(errors, lookups),
                    p50_us: samples.iter().filter_map(|s| s.p50_us).max(),
                    p99_us: samples.iter().filter_map(|s| s.p99_us).max(),
                    view,
                    lookups,
                    samples,
                }
            })
            .collect())
    }
}
