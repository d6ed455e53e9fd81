//! Drift between a baseline's distributions and a snapshot's: the population stability index
//! (PSI) for every feature, the Kolmogorov–Smirnov statistic for numeric ones and the
//! Jensen–Shannon divergence for categorical ones; and the rolling band serving anomalies are
//! judged against.

use std::collections::{BTreeMap, BTreeSet};

use fstore_spec::Drift;
use serde::{Deserialize, Serialize};

use crate::CheckResult;
use crate::profile::quantile;

/// Proportions below this are raised to it before PSI takes their logarithm, so a bin empty on
/// one side gives a large but finite figure (the usual convention).
const PSI_FLOOR: f64 = 1e-4;

/// What drift compares, per feature; stored with each published snapshot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Distributions {
    pub features: BTreeMap<String, Distribution>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Distribution {
    /// Sorted values (or up to 10,000 evenly spaced quantiles of them).
    Numeric { values: Vec<f64> },
    /// How many entities hold each value.
    Categorical { counts: BTreeMap<String, u64> },
}

/// One feature's drift figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftResult {
    pub feature: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    pub psi: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub js: Option<f64>,
    pub baseline_size: u64,
    pub current_size: u64,
}

/// Measures each tested feature present on both sides with values on both sides.
pub fn drift(spec: &Drift, baseline: &Distributions, current: &Distributions) -> Vec<DriftResult> {
    let mut out = Vec::new();
    for (name, cur) in &current.features {
        if !spec.features.is_empty() && !spec.features.contains(name) {
            continue;
        }
        let Some(base) = baseline.features.get(name) else {
            continue;
        };
        match (base, cur) {
            (Distribution::Numeric { values: b }, Distribution::Numeric { values: c })
                if !b.is_empty() && !c.is_empty() =>
            {
                out.push(DriftResult {
                    feature: name.clone(),
                    kind: "numeric",
                    psi: psi_numeric(b, c),
                    ks: Some(ks(b, c)),
                    js: None,
                    baseline_size: b.len() as u64,
                    current_size: c.len() as u64,
                });
            }
            (Distribution::Categorical { counts: b }, Distribution::Categorical { counts: c })
                if !b.is_empty() && !c.is_empty() =>
            {
                out.push(DriftResult {
                    feature: name.clone(),
                    kind: "categorical",
                    psi: psi_categorical(b, c),
                    ks: None,
                    js: Some(js(b, c)),
                    baseline_size: b.values().sum(),
                    current_size: c.values().sum(),
                });
            }
            _ => {}
        }
    }
    out
}

/// One check per measured feature: it fails when any figure with a threshold exceeds it.
pub fn drift_checks(spec: &Drift, results: &[DriftResult]) -> Vec<CheckResult> {
    let mut expected = Vec::new();
    for (name, t) in [("psi", spec.psi), ("ks", spec.ks), ("js", spec.js)] {
        if let Some(t) = t {
            expected.push(format!("{name} <= {t}"));
        }
    }
    let expected = expected.join(", ");
    results
        .iter()
        .map(|d| {
            let figures = [
                ("psi", Some(d.psi), spec.psi),
                ("ks", d.ks, spec.ks),
                ("js", d.js, spec.js),
            ];
            let over: Vec<(&str, f64, f64)> = figures
                .iter()
                .filter_map(|(n, v, t)| Some((*n, (*v)?, (*t)?)))
                .filter(|(_, v, t)| v > t)
                .collect();
            let passed = over.is_empty();
            let message = if passed {
                format!("`{}` has not drifted (psi {:.4})", d.feature, d.psi)
            } else {
                format!(
                    "`{}` drifted: {}",
                    d.feature,
                    over.iter()
                        .map(|(n, v, t)| format!("{n} {v:.4} > {t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            CheckResult {
                rule: "drift".into(),
                feature: Some(d.feature.clone()),
                severity: spec.severity,
                passed,
                observed: Some(over.first().map_or(d.psi, |o| o.1)),
                expected: expected.clone(),
                violations: 0,
                sample_keys: Vec::new(),
                message,
            }
        })
        .collect()
}

/// PSI = Σ (cᵢ − bᵢ) · ln(cᵢ / bᵢ) over matching proportions, each floored at 10⁻⁴.
pub fn psi_from_proportions(baseline: &[f64], current: &[f64]) -> f64 {
    baseline
        .iter()
        .zip(current)
        .map(|(b, c)| {
            let (b, c) = (b.max(PSI_FLOOR), c.max(PSI_FLOOR));
            (c - b) * (c / b).ln()
        })
        .sum()
}

/// PSI over ten bins cut at the baseline's deciles (fewer when deciles coincide); both
/// inputs sorted.
pub fn psi_numeric(baseline: &[f64], current: &[f64]) -> f64 {
    let mut edges: Vec<f64> = (1..10)
        .map(|i| quantile(baseline, i as f64 / 10.0))
        .collect();
    edges.dedup();
    let proportions = |sorted: &[f64]| -> Vec<f64> {
        let n = sorted.len() as f64;
        let mut below = 0usize;
        let mut out = Vec::with_capacity(edges.len() + 1);
        for e in &edges {
            let upto = sorted.partition_point(|x| x <= e);
            out.push((upto - below) as f64 / n);
            below = upto;
        }
        out.push((sorted.len() - below) as f64 / n);
        out
    };
    psi_from_proportions(&proportions(baseline), &proportions(current))
}

fn proportions(keys: &BTreeSet<&String>, counts: &BTreeMap<String, u64>) -> Vec<f64> {
    let total: u64 = counts.values().sum();
    keys.iter()
        .map(|k| counts.get(*k).copied().unwrap_or(0) as f64 / total.max(1) as f64)
        .collect()
}

/// PSI over the union of both sides' categories.
pub fn psi_categorical(baseline: &BTreeMap<String, u64>, current: &BTreeMap<String, u64>) -> f64 {
    let keys: BTreeSet<&String> = baseline.keys().chain(current.keys()).collect();
    psi_from_proportions(&proportions(&keys, baseline), &proportions(&keys, current))
}

/// The Jensen–Shannon divergence in bits: 0 for equal distributions, 1 for disjoint ones.
pub fn js(baseline: &BTreeMap<String, u64>, current: &BTreeMap<String, u64>) -> f64 {
    let keys: BTreeSet<&String> = baseline.keys().chain(current.keys()).collect();
    let p = proportions(&keys, baseline);
    let q = proportions(&keys, current);
    let kl_to_mean = |a: &[f64], b: &[f64]| -> f64 {
        a.iter()
            .zip(b)
            .filter(|(x, _)| **x > 0.0)
            .map(|(x, y)| x * (x / ((x + y) / 2.0)).log2())
            .sum()
    };
    (kl_to_mean(&p, &q) + kl_to_mean(&q, &p)) / 2.0
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest distance between the empirical
/// distribution functions; both inputs sorted.
pub fn ks(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// A rate's recent normal range: its mean ± `k` standard deviations, but never narrower than
/// ± `floor` (a perfectly steady history would otherwise flag the smallest wobble).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    pub mean: f64,
    pub stddev: f64,
    pub low: f64,
    pub high: f64,
}

impl Band {
    pub fn outside(&self, x: f64) -> bool {
        x < self.low || x > self.high
    }
}

/// The band of `history`; None with fewer than three points (too little to call anything
/// normal).
pub fn band(history: &[f64], k: f64, floor: f64) -> Option<Band> {
    if history.len() < 3 {
        return None;
    }
    let n = history.len() as f64;
    let mean = history.iter().sum::<f64>() / n;
    let stddev = (history.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let half = (k * stddev).max(floor);
    Some(Band {
        mean,
        stddev,
        low: mean - half,
        high: mean + half,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fstore_spec::{Baseline, Severity};

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn ks_by_hand() {
        assert_eq!(ks(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]), 0.5);
        assert_eq!(ks(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(ks(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
        // Ties move both functions together: F_a(1)=2/3, F_b(1)=1/3.
        assert!((ks(&[1.0, 1.0, 2.0], &[1.0, 2.0, 2.0]) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn psi_by_hand() {
        // (0.25-0.5)·ln(0.5) + (0.75-0.5)·ln(1.5) = 0.173287 + 0.101366
        let psi = psi_from_proportions(&[0.5, 0.5], &[0.25, 0.75]);
        assert!((psi - 0.274_653_072).abs() < 1e-8, "{psi}");
        assert_eq!(psi_from_proportions(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
        let cat = psi_categorical(
            &counts(&[("a", 1), ("b", 1)]),
            &counts(&[("a", 1), ("b", 3)]),
        );
        assert!((cat - psi).abs() < 1e-12);
        // An empty bin is floored: (1e-4 - 1)·ln(1e-4) + (1 - 1e-4)·ln(1e4).
        let disjoint = psi_categorical(&counts(&[("a", 5)]), &counts(&[("b", 5)]));
        assert!(
            (disjoint - 2.0 * 0.9999 * 1e4f64.ln()).abs() < 1e-9,
            "{disjoint}"
        );
    }

    #[test]
    fn psi_numeric_cuts_at_baseline_deciles() {
        let base: Vec<f64> = (1..=100).map(f64::from).collect();
        assert!(psi_numeric(&base, &base).abs() < 1e-12);
        // Everything above the baseline's 90th percentile: one bin holds it all.
        let shifted: Vec<f64> = (1..=100).map(|i| 1000.0 + f64::from(i)).collect();
        let expected =
            9.0 * (1e-4 - 0.1) * (1e-4f64 / 0.1).ln() + (1.0 - 0.1) * (1.0f64 / 0.1).ln();
        assert!((psi_numeric(&base, &shifted) - expected).abs() < 1e-9);
    }

    #[test]
    fn js_by_hand() {
        assert_eq!(js(&counts(&[("a", 1)]), &counts(&[("b", 1)])), 1.0);
        assert_eq!(
            js(
                &counts(&[("a", 2), ("b", 2)]),
                &counts(&[("a", 1), ("b", 1)])
            ),
            0.0
        );
        // P = (1/2, 1/2), Q = (1, 0): M = (3/4, 1/4).
        // KL(P‖M) = ½log2(2/3) + ½log2(2); KL(Q‖M) = log2(4/3).
        let expected = (0.5 * (2.0f64 / 3.0).log2() + 0.5 + (4.0f64 / 3.0).log2()) / 2.0;
        let got = js(&counts(&[("a", 1), ("b", 1)]), &counts(&[("a", 4)]));
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn drift_checks_fail_only_over_a_threshold() {
        let spec = Drift {
            baseline: Baseline::Previous,
            psi: Some(0.2),
            ks: Some(0.4),
            js: None,
            severity: Severity::Warn,
            features: Vec::new(),
        };
        let mut base = Distributions::default();
        base.features.insert(
            "x".into(),
            Distribution::Numeric {
                values: vec![1.0, 2.0, 3.0, 4.0],
            },
        );
        let mut cur = base.clone();
        let same = drift(&spec, &base, &cur);
        assert!(drift_checks(&spec, &same).iter().all(|c| c.passed));
        cur.features.insert(
            "x".into(),
            Distribution::Numeric {
                values: vec![3.0, 4.0, 5.0, 6.0],
            },
        );
        let moved = drift(&spec, &base, &cur);
        assert_eq!(moved[0].ks, Some(0.5));
        let checks = drift_checks(&spec, &moved);
        assert!(!checks[0].passed);
        assert_eq!(checks[0].severity, Severity::Warn);
        assert!(
            checks[0].message.contains("ks 0.5000 > 0.4"),
            "{}",
            checks[0].message
        );
    }

    #[test]
    fn bands_flag_a_jump() {
        let history = [0.01, 0.012, 0.009, 0.011, 0.01];
        let b = band(&history, 4.0, 0.02).expect("enough history");
        assert!(!b.outside(0.02));
        assert!(b.outside(0.30));
        assert!(band(&[0.1, 0.2], 4.0, 0.02).is_none());
    }
}
