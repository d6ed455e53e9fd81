//! The quality gate in front of every publish, and what it leaves behind.
//!
//! A run's snapshot is profiled as edges would serve it (a delta together with the chain it
//! lands on), its declared rules are evaluated against that profile and the previous published
//! one, and its drift is measured against the view's baseline. An `error` rule that fails stops
//! the publish (`ControlError::QualityRejected`; the live snapshot stays); otherwise the report
//! is recorded once the snapshot is published. Either way every failing rule raises an alert
//! and every passing one resolves its alert.

use std::time::Duration;

use fstore_quality::{
    CheckResult, Distributions, DriftResult, Profile, Profiler, RunFacts, ViewStats,
};
use fstore_registry::{NewAlert, QualityRecord};
use fstore_snapshot::Snapshot;
use fstore_spec::{Baseline, FeatureView};
use serde::Serialize;

use crate::{ControlError, ControlPlane};

/// How many snapshot distributions a view keeps besides its baseline: the newest two, so the
/// `previous` baseline always has the one before the run.
const KEPT_DISTRIBUTIONS: usize = 2;

/// Profiles what edges will serve: `layers` newest first (a delta run: its new delta, the
/// chain's deltas newest first, then the base; a full run: the one snapshot). A key is counted
/// once, from the newest layer holding it.
pub(crate) fn profile_layers(
    view: &FeatureView,
    layers: &[&Snapshot],
) -> Result<Profile, fstore_quality::QualityError> {
    let Some(base) = layers.last() else {
        return Err(fstore_quality::QualityError::Invalid(
            "no snapshot to profile".into(),
        ));
    };
    let mut p = Profiler::new(base.schema(), view)?;
    for (i, layer) in layers.iter().enumerate() {
        let newer = &layers[..i];
        for row in layer.rows() {
            if newer.iter().any(|l| l.get(row.key()).is_some()) {
                continue;
            }
            p.add(&row);
        }
    }
    Ok(p.finish())
}

/// A run's verdict, carried from the gate to the publish.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub report: serde_json::Value,
    pub results: Vec<CheckResult>,
    pub distributions: Distributions,
    /// The drift baseline's key, kept when distributions are pruned.
    pub baseline_key: Option<String>,
}

impl Verdict {
    pub(crate) fn blocking(&self) -> Vec<&CheckResult> {
        self.results
            .iter()
            .filter(|r| !r.passed && r.severity == fstore_spec::Severity::Error)
            .collect()
    }
}

/// What `GET /v1/quality/{view}` and `fstore quality show` return.
#[derive(Debug, Clone, Serialize)]
pub struct QualityView {
    pub view: String,
    pub version: u64,
    pub published: bool,
    pub created_at: String,
    /// Statistics, change against the previous published version, checks and drift.
    pub report: serde_json::Value,
    /// The view's latest evaluations, newest first: version, published, failing rules.
    pub history: Vec<serde_json::Value>,
}

fn fingerprint(slot: &str, r: &CheckResult) -> String {
    format!(
        "{}:{slot}:{}:{}",
        if r.rule == "drift" { "drift" } else { "check" },
        r.feature.as_deref().unwrap_or("-"),
        r.rule
    )
}

fn snapshot_key(version: u64) -> String {
    format!("snapshot:{version}")
}

impl ControlPlane {
    /// Evaluates a profiled snapshot of `slot`: rules, change and drift. Raises no alert and
    /// records nothing; [`Self::settle_quality`] does once the outcome is known.
    pub(crate) async fn judge(
        &self,
        slot: &str,
        view: &FeatureView,
        version: u64,
        profile: &Profile,
        facts: &RunFacts,
    ) -> Result<Verdict, ControlError> {
        let previous = self.registry.quality_reports(slot, true, 1).await?;
        let previous = previous.into_iter().next();
        let prev_stats: Option<ViewStats> = previous
            .as_ref()
            .and_then(|p| serde_json::from_value(p.report["stats"].clone()).ok());
        let mut results = fstore_quality::evaluate(view, profile, prev_stats.as_ref(), facts);
        let distributions = profile.distributions();
        let mut drift: Vec<DriftResult> = Vec::new();
        let mut drift_note = None;
        let mut baseline_key = None;
        if let Some(spec) = &view.drift {
            let key: Option<String> = match &spec.baseline {
                Baseline::Previous => previous.as_ref().map(|p| snapshot_key(p.version)),
                Baseline::Version(v) => Some(snapshot_key(*v)),
                Baseline::TrainingSet(path) => Some(format!("training_set:{path}")),
            };
            baseline_key = key.clone();
            match key {
                None => {
                    drift_note =
                        Some("no previous published snapshot to compare with yet".to_string())
                }
                Some(key) => match self.baseline(slot, view, &spec.baseline, &key).await {
                    Ok(b) => {
                        drift = fstore_quality::drift(spec, &b, &distributions);
                        results.extend(fstore_quality::drift_checks(spec, &drift));
                    }
                    Err(e) => drift_note = Some(format!("no drift measured: {e}")),
                },
            }
        }
        let change = prev_stats
            .as_ref()
            .map(|p| fstore_quality::compare(&profile.stats, p));
        let blocked = results
            .iter()
            .any(|r| !r.passed && r.severity == fstore_spec::Severity::Error);
        let report = serde_json::json!({
            "version": version,
            "previous_version": previous.as_ref().map(|p| p.version),
            "stats": profile.stats,
            "change": change,
            "checks": results,
            "drift": drift,
            "drift_note": drift_note,
            "blocked": blocked,
        });
        Ok(Verdict {
            report,
            results,
            distributions,
            baseline_key,
        })
    }

    /// The distributions stored under `key`, computing and storing them first for a fixed
    /// snapshot version still in the store, or a training set file.
    async fn baseline(
        &self,
        slot: &str,
        view: &FeatureView,
        baseline: &Baseline,
        key: &str,
    ) -> Result<Distributions, ControlError> {
        if let Some(d) = self.registry.distributions(slot, key).await? {
            return serde_json::from_value(d).map_err(|e| {
                ControlError::BadRequest(format!("stored baseline `{key}` does not parse: {e}"))
            });
        }
        let computed = match baseline {
            Baseline::Previous => {
                return Err(ControlError::BadRequest(format!(
                    "the previous snapshot's distributions (`{key}`) are not stored"
                )));
            }
            Baseline::Version(v) => {
                let rec = self.registry.get_snapshot(slot, *v).await?.ok_or_else(|| {
                    ControlError::BadRequest(format!(
                        "baseline snapshot {v} of `{slot}` was never published"
                    ))
                })?;
                let mv = self.chain_view(rec).await?.ok_or_else(|| {
                    ControlError::BadRequest(format!(
                        "baseline snapshot {v} of `{slot}` is no longer in the store (retention)"
                    ))
                })?;
                let (base, mut deltas) = self.cache.open_chain(&self.store, &mv).await?;
                deltas.reverse();
                let mut layers: Vec<&Snapshot> = deltas.iter().collect();
                layers.push(&base);
                profile_layers(view, &layers)
                    .map_err(|e| ControlError::BadRequest(e.to_string()))?
                    .distributions()
            }
            Baseline::TrainingSet(path) => self.training_distributions(view, path).await?,
        };
        let json = serde_json::to_value(&computed).map_err(|e| {
            ControlError::BadRequest(format!("distributions do not serialise: {e}"))
        })?;
        self.registry.put_distributions(slot, key, &json).await?;
        Ok(computed)
    }

    /// The distributions of a training set file's columns, one per feature of the view
    /// (a column named as the feature, or `view__feature` as full feature names write it).
    async fn training_distributions(
        &self,
        view: &FeatureView,
        location: &str,
    ) -> Result<Distributions, ControlError> {
        let bytes = crate::service::read_location(location).await?;
        let bad = |e: fstore_offline::OfflineError| {
            ControlError::BadRequest(format!("training set `{location}`: {e}"))
        };
        let batch = fstore_offline::read_entity_rows(bytes, crate::service::is_csv(location))
            .map_err(bad)?;
        let mut out = Distributions::default();
        for f in &view.features {
            let mut b = fstore_quality::DistributionBuilder::new(f.ty);
            let mut found = false;
            for name in [f.name.clone(), format!("{}__{}", view.name, f.name)] {
                if fstore_offline::feature_column_values(&batch, &name, f.ty, &mut |v| b.add(&v))
                    .map_err(bad)?
                {
                    found = true;
                    break;
                }
            }
            if found {
                out.features.insert(f.name.clone(), b.finish());
            }
        }
        if out.features.is_empty() {
            return Err(ControlError::BadRequest(format!(
                "training set `{location}` has no column named after a feature of `{}`",
                view.name
            )));
        }
        Ok(out)
    }

    /// After the outcome is known: records the report (published or not), keeps the published
    /// snapshot's distributions for later drift, and raises or resolves each rule's alert.
    pub(crate) async fn settle_quality(
        &self,
        slot: &str,
        version: u64,
        verdict: &Verdict,
        published: bool,
    ) -> Result<(), ControlError> {
        self.registry
            .record_quality(&QualityRecord {
                view: slot.to_string(),
                version,
                run_id: None,
                published,
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                report: verdict.report.clone(),
            })
            .await?;
        if published {
            let json = serde_json::to_value(&verdict.distributions).map_err(|e| {
                ControlError::BadRequest(format!("distributions do not serialise: {e}"))
            })?;
            self.registry
                .put_distributions(slot, &snapshot_key(version), &json)
                .await?;
            let recent = self
                .registry
                .quality_reports(slot, true, KEPT_DISTRIBUTIONS)
                .await?;
            let mut keep: Vec<String> = recent.iter().map(|r| snapshot_key(r.version)).collect();
            keep.extend(verdict.baseline_key.clone());
            self.registry.prune_distributions(slot, &keep).await?;
        }
        for r in &verdict.results {
            let fp = fingerprint(slot, r);
            if r.passed {
                self.alerter.resolve(&fp).await;
                continue;
            }
            let stopped = !published && r.severity == fstore_spec::Severity::Error;
            self.alerter
                .raise(NewAlert {
                    fingerprint: fp,
                    kind: if r.rule == "drift" { "drift" } else { "check" }.into(),
                    view: Some(slot.to_string()),
                    severity: r.severity.name().into(),
                    summary: format!(
                        "{slot} v{version}: {}{}",
                        r.message,
                        if stopped { " (not published)" } else { "" }
                    ),
                    details: serde_json::json!({"version": version, "published": published, "check": r}),
                })
                .await;
        }
        Ok(())
    }

    /// The latest quality report of a view (or of one version), with its recent history.
    pub async fn quality(
        &self,
        view: &str,
        version: Option<u64>,
    ) -> Result<QualityView, ControlError> {
        let defs = self.registry.definitions().await?;
        if defs.view(fstore_snapshot::base_view(view)).is_none() {
            return Err(ControlError::NotFound {
                kind: "feature view".into(),
                name: view.to_string(),
            });
        }
        let history = self.registry.quality_reports(view, false, 20).await?;
        let rec = match version {
            Some(v) => self.registry.quality_report(view, v).await?,
            None => history.first().cloned(),
        };
        let rec = rec.ok_or_else(|| match version {
            Some(v) => ControlError::NotFound {
                kind: "quality report".into(),
                name: format!("{view} v{v}"),
            },
            None => ControlError::NotFound {
                kind: "quality report".into(),
                name: format!("{view} (no run has been evaluated yet)"),
            },
        })?;
        let history = history
            .iter()
            .map(|h| {
                let failing: Vec<serde_json::Value> = h.report["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["passed"] == false)
                    .map(|c| serde_json::json!({"rule": c["rule"], "feature": c["feature"], "severity": c["severity"]}))
                    .collect();
                serde_json::json!({
                    "version": h.version,
                    "published": h.published,
                    "created_at": h.created_at,
                    "rows": h.report["stats"]["rows"],
                    "failing": failing,
                })
            })
            .collect();
        Ok(QualityView {
            view: rec.view,
            version: rec.version,
            published: rec.published,
            created_at: rec.created_at,
            report: rec.report,
            history,
        })
    }

    /// Alerts, newest first.
    pub async fn alerts(
        &self,
        q: &fstore_registry::AlertQuery,
    ) -> Result<Vec<fstore_registry::Alert>, ControlError> {
        if let Some(s) = q.status.as_deref()
            && !matches!(s, "open" | "resolved")
        {
            return Err(ControlError::BadRequest(format!(
                "`status={s}`: use open or resolved"
            )));
        }
        if !(1..=1000).contains(&q.limit) {
            return Err(ControlError::BadRequest("`limit` must be 1 to 1000".into()));
        }
        Ok(self.registry.alerts(q).await?)
    }

    /// Waits for alert deliveries under way (one-shot commands call this before exiting).
    pub async fn flush_alerts(&self, limit: Duration) {
        self.alerter.flush(limit).await;
    }
}

/// One feature's part of its view's quality reports, for the catalog's feature page.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FeatureQuality {
    /// The latest evaluated version, if any run has been evaluated.
    pub version: Option<u64>,
    pub created_at: Option<String>,
    /// The feature's statistics in it (count, nulls, quantiles, histogram, top values).
    pub stats: Option<serde_json::Value>,
    /// The rules about it in it, with their outcome.
    pub checks: Vec<serde_json::Value>,
    /// Drift of it per evaluated version, oldest first.
    pub drift: Vec<DriftPoint>,
    /// True when values were withheld: it is PII and the caller may not read PII.
    pub masked: bool,
}

/// The drift figures of one feature in one evaluated version.
#[derive(Debug, Clone, Serialize)]
pub struct DriftPoint {
    pub version: u64,
    pub created_at: String,
    pub psi: f64,
    pub ks: Option<f64>,
    pub js: Option<f64>,
}

/// How many evaluated versions the drift history goes back.
const DRIFT_HISTORY: usize = 30;

impl ControlPlane {
    /// One feature's statistics, rules and drift over time, with values withheld as
    /// [`Self::scrub_quality`] withholds them for a caller who may not read PII.
    pub async fn feature_quality(
        &self,
        p: &crate::Principal,
        view: &str,
        feature: &str,
    ) -> Result<FeatureQuality, ControlError> {
        let reports = self
            .registry
            .quality_reports(view, false, DRIFT_HISTORY)
            .await?;
        let Some(latest) = reports.first() else {
            return Ok(FeatureQuality::default());
        };
        // Every report goes through the same scrub as the latest (the history carries them
        // whole), so a PII feature's figures are withheld from each, whatever the latest holds.
        let mut latest = QualityView {
            view: latest.view.clone(),
            version: latest.version,
            published: latest.published,
            created_at: latest.created_at.clone(),
            report: latest.report.clone(),
            history: reports.iter().map(|r| r.report.clone()).collect(),
        };
        self.scrub_quality(p, view, &mut latest).await?;
        let named = |v: &&serde_json::Value| v["feature"] == feature || v["name"] == feature;
        let stats = latest.report["stats"]["features"]
            .as_array()
            .and_then(|fs| fs.iter().find(named))
            .cloned();
        let masked = stats.as_ref().is_some_and(|s| s["masked"] == true)
            || latest
                .history
                .iter()
                .flat_map(|h| h["drift"].as_array().into_iter().flatten())
                .any(|d| d["feature"] == feature && d["masked"] == true);
        let checks = latest.report["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(named)
            .cloned()
            .collect();
        // Drift figures are distances between distributions, not values, but a masked
        // feature's are withheld like the rest of its figures (the scrub left no `psi`).
        let drift = reports
            .iter()
            .zip(&latest.history)
            .rev()
            .filter_map(|(r, scrubbed)| {
                let d = scrubbed["drift"]
                    .as_array()?
                    .iter()
                    .find(|d| d["feature"] == feature)?;
                Some(DriftPoint {
                    version: r.version,
                    created_at: r.created_at.clone(),
                    psi: d["psi"].as_f64()?,
                    ks: d["ks"].as_f64(),
                    js: d["js"].as_f64(),
                })
            })
            .collect();
        Ok(FeatureQuality {
            version: Some(latest.version),
            created_at: Some(latest.created_at),
            stats,
            checks,
            drift,
            masked,
        })
    }
}
