//! Evaluating the declared rules of a view against its profile and the previous published
//! snapshot's statistics, and comparing two snapshots' statistics.

use fstore_spec::{FeatureView, Rule, Severity};
use serde::Serialize;

use crate::profile::{Profile, RowTally, SAMPLE_KEYS, ViewStats};

/// What the run knows besides the snapshot.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    /// When the run ends, microseconds since the epoch (freshness is measured from it).
    pub now_micros: i64,
    /// Entities of a plain view that had more than one row in what the run read.
    pub duplicate_keys: u64,
    pub duplicate_samples: Vec<String>,
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    pub severity: Severity,
    pub passed: bool,
    /// The figure the rule judged: a count, a rate, a change, an age in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    /// What the rule asks for, as text (`<= 0.05`, `in [0, 100]`).
    pub expected: String,
    /// Entities breaking a per-value rule.
    pub violations: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sample_keys: Vec<String>,
    pub message: String,
}

/// Evaluates every rule declared on the view and its features. Change rules pass when there
/// is no previous snapshot to compare with.
pub fn evaluate(
    view: &FeatureView,
    profile: &Profile,
    previous: Option<&ViewStats>,
    facts: &RunFacts,
) -> Vec<CheckResult> {
    let stats = &profile.stats;
    let mut out = Vec::new();
    for f in &view.features {
        let Some(fs) = stats.feature(&f.name) else {
            // Computed at request time: not in the snapshot, so nothing to check here.
            continue;
        };
        for (i, check) in f.checks.iter().enumerate() {
            let empty = RowTally::default();
            let tally = profile.tallies.get(&(f.name.clone(), i)).unwrap_or(&empty);
            let mut r = CheckResult {
                rule: check.rule.name().to_string(),
                feature: Some(f.name.clone()),
                severity: check.severity,
                passed: true,
                observed: None,
                expected: String::new(),
                violations: 0,
                sample_keys: Vec::new(),
                message: String::new(),
            };
            let per_value = |r: &mut CheckResult, expected: String| {
                r.violations = tally.violations;
                r.observed = Some(tally.violations as f64);
                r.sample_keys = tally.sample_keys.clone();
                r.passed = tally.violations == 0;
                r.message = if r.passed {
                    format!("`{}`: every value {expected}", f.name)
                } else {
                    format!(
                        "`{}`: {} of {} entities break `{}` ({expected}; for example {})",
                        f.name,
                        tally.violations,
                        stats.rows,
                        r.rule,
                        tally.sample_keys.join(", ")
                    )
                };
                r.expected = expected;
            };
            match &check.rule {
                Rule::NotNull => {
                    r.expected = "0 nulls".into();
                    r.violations = tally.violations;
                    r.observed = Some(fs.nulls as f64);
                    r.sample_keys = tally.sample_keys.clone();
                    r.passed = fs.nulls == 0;
                    r.message = if r.passed {
                        format!("`{}` has no nulls", f.name)
                    } else {
                        format!(
                            "`{}` is null for {} of {} entities (for example {})",
                            f.name,
                            fs.nulls,
                            stats.rows,
                            tally.sample_keys.join(", ")
                        )
                    };
                }
                Rule::MaxNullRate { ratio } => {
                    r.expected = format!("null rate <= {ratio}");
                    r.observed = Some(fs.null_rate);
                    r.violations = fs.nulls;
                    r.passed = fs.null_rate <= *ratio;
                    r.message = format!(
                        "`{}` null rate {:.4} {} the maximum {ratio}",
                        f.name,
                        fs.null_rate,
                        if r.passed { "within" } else { "over" }
                    );
                }
                Rule::Range { min, max } => {
                    let expected = format!(
                        "in [{}, {}]",
                        min.map_or("-inf".into(), |m| m.to_string()),
                        max.map_or("+inf".into(), |m| m.to_string())
                    );
                    per_value(&mut r, expected);
                }
                Rule::Allowed { values } => {
                    let expected = format!("one of {}", values.join(", "));
                    per_value(&mut r, expected);
                }
                Rule::Regex { pattern } => {
                    per_value(&mut r, format!("matches /{pattern}/"));
                }
                Rule::Unique => {
                    per_value(&mut r, "distinct from every other".into());
                }
                Rule::MaxMeanChange { ratio } => {
                    r.expected = format!("mean change <= {ratio}");
                    let before = previous
                        .and_then(|p| p.feature(&f.name))
                        .and_then(|p| p.mean);
                    match (before, fs.mean) {
                        (Some(b), Some(a)) => {
                            let change = relative_change(b, a);
                            r.observed = Some(change);
                            r.passed = change <= *ratio;
                            r.message = format!(
                                "`{}` mean moved from {b} to {a} ({:.2}% change, maximum {:.2}%)",
                                f.name,
                                change * 100.0,
                                ratio * 100.0
                            );
                        }
                        _ => {
                            r.message = format!("`{}`: no previous mean to compare with", f.name);
                        }
                    }
                }
                // View rules are not declared on features (the spec refuses them).
                Rule::MinRows { .. }
                | Rule::MaxRowChange { .. }
                | Rule::Freshness { .. }
                | Rule::UniqueKeys => continue,
            }
            out.push(r);
        }
    }
    for check in &view.checks {
        let mut r = CheckResult {
            rule: check.rule.name().to_string(),
            feature: None,
            severity: check.severity,
            passed: true,
            observed: None,
            expected: String::new(),
            violations: 0,
            sample_keys: Vec::new(),
            message: String::new(),
        };
        match &check.rule {
            Rule::MinRows { rows } => {
                r.expected = format!(">= {rows} rows");
                r.observed = Some(stats.rows as f64);
                r.passed = stats.rows >= *rows;
                r.message = format!(
                    "{} entities served, {} the minimum {rows}",
                    stats.rows,
                    if r.passed { "meets" } else { "below" }
                );
            }
            Rule::MaxRowChange { ratio } => {
                r.expected = format!("row count change <= {ratio}");
                match previous {
                    Some(p) => {
                        let change = relative_change(p.rows as f64, stats.rows as f64);
                        r.observed = Some(change);
                        r.passed = change <= *ratio;
                        r.message = format!(
                            "row count moved from {} to {} ({:.2}% change, maximum {:.2}%)",
                            p.rows,
                            stats.rows,
                            change * 100.0,
                            ratio * 100.0
                        );
                    }
                    None => r.message = "no previous row count to compare with".into(),
                }
            }
            Rule::Freshness { seconds } => {
                r.expected = format!("newest event <= {seconds}s old");
                match stats.newest_event_micros {
                    Some(newest) => {
                        let age = (facts.now_micros - newest) as f64 / 1e6;
                        r.observed = Some(age);
                        r.passed = age <= *seconds as f64;
                        r.message = format!(
                            "the newest event is {age:.0}s old, {} {seconds}s",
                            if r.passed { "within" } else { "older than" }
                        );
                    }
                    None => {
                        r.passed = false;
                        r.message = "the snapshot serves no events at all".into();
                    }
                }
            }
            Rule::UniqueKeys => {
                r.expected = "0 duplicated keys".into();
                r.observed = Some(facts.duplicate_keys as f64);
                r.violations = facts.duplicate_keys;
                r.sample_keys = facts
                    .duplicate_samples
                    .iter()
                    .take(SAMPLE_KEYS)
                    .cloned()
                    .collect();
                r.passed = facts.duplicate_keys == 0;
                r.message = if r.passed {
                    "every entity had one source row".into()
                } else {
                    format!(
                        "{} entities had more than one source row (for example {})",
                        facts.duplicate_keys,
                        r.sample_keys.join(", ")
                    )
                };
            }
            // Feature rules on a view are refused by the spec.
            _ => continue,
        }
        out.push(r);
    }
    out
}

/// |after − before| / |before|; a change from zero is infinite unless nothing changed.
fn relative_change(before: f64, after: f64) -> f64 {
    if before == 0.0 {
        if after == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        ((after - before) / before).abs()
    }
}

/// How a snapshot's statistics moved against the previous published one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsChange {
    pub rows_before: u64,
    pub rows_after: u64,
    /// Relative change of the row count (0.1 for 10 %).
    pub rows_change: f64,
    pub features: Vec<FeatureChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureChange {
    pub name: String,
    pub null_rate_before: f64,
    pub null_rate_after: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_before: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_after: Option<f64>,
    /// Relative change of the mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_change: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stddev_before: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stddev_after: Option<f64>,
    pub distinct_before: u64,
    pub distinct_after: u64,
}

/// Compares `current` with `previous`, feature by feature (features new in `current` are
/// left out: they have nothing to compare with).
pub fn compare(current: &ViewStats, previous: &ViewStats) -> StatsChange {
    let features = current
        .features
        .iter()
        .filter_map(|a| {
            let b = previous.feature(&a.name)?;
            Some(FeatureChange {
                name: a.name.clone(),
                null_rate_before: b.null_rate,
                null_rate_after: a.null_rate,
                mean_before: b.mean,
                mean_after: a.mean,
                mean_change: b.mean.zip(a.mean).map(|(b, a)| relative_change(b, a)),
                stddev_before: b.stddev,
                stddev_after: a.stddev,
                distinct_before: b.distinct,
                distinct_after: a.distinct,
            })
        })
        .collect();
    StatsChange {
        rows_before: previous.rows,
        rows_after: current.rows,
        rows_change: relative_change(previous.rows as f64, current.rows as f64),
        features,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::{profile_of, snapshot, view};
    use fstore_spec::Check;

    fn check(rule: Rule) -> Check {
        Check {
            rule,
            severity: Severity::Error,
        }
    }

    type Rows = Vec<(i64, Option<f64>, Option<&'static str>)>;

    /// Evaluates the view's one rule on a good and a bad snapshot: it must pass on the first
    /// and fail on the second; returns the failure.
    fn pass_then_fail(v: &FeatureView, good: Rows, bad: Rows) -> CheckResult {
        let facts = RunFacts::default();
        let ok = evaluate(v, &profile_of(&snapshot(&good, 0), v), None, &facts);
        assert!(ok[0].passed, "{:?}", ok[0]);
        let ko = evaluate(v, &profile_of(&snapshot(&bad, 0), v), None, &facts);
        assert!(!ko[0].passed, "{:?}", ko[0]);
        ko.into_iter().next().expect("one result")
    }

    /// A rule on `amount`, tried both ways; entity ids are 1, 2, … in order.
    fn both_ways(rule: Rule, good: &[Option<f64>], bad: &[Option<f64>]) -> CheckResult {
        let rows = |vals: &[Option<f64>]| -> Rows {
            (1..)
                .zip(vals)
                .map(|(i, a)| (i, *a, Some("gold")))
                .collect()
        };
        pass_then_fail(&view(vec![check(rule)]), rows(good), rows(bad))
    }

    #[test]
    fn not_null_both_ways() {
        let r = both_ways(
            Rule::NotNull,
            &[Some(1.0), Some(2.0)],
            &[Some(1.0), None, None],
        );
        assert_eq!(r.observed, Some(2.0));
        assert_eq!(r.sample_keys, vec!["2", "3"]);
    }

    #[test]
    fn max_null_rate_both_ways() {
        let r = both_ways(
            Rule::MaxNullRate { ratio: 0.25 },
            &[Some(1.0), None, Some(1.0), Some(1.0)],
            &[Some(1.0), None, None, Some(1.0)],
        );
        assert_eq!(r.observed, Some(0.5));
    }

    #[test]
    fn range_both_ways() {
        let rule = Rule::Range {
            min: Some(0.0),
            max: Some(100.0),
        };
        let r = both_ways(
            rule,
            &[Some(0.0), Some(100.0), None],
            &[Some(-1.0), Some(5.0), Some(101.0)],
        );
        assert_eq!(r.violations, 2);
        assert_eq!(r.sample_keys, vec!["1", "3"]);
    }

    #[test]
    fn unique_both_ways() {
        let r = both_ways(
            Rule::Unique,
            &[Some(1.0), Some(2.0), None, None],
            &[Some(1.0), Some(1.0)],
        );
        assert_eq!(
            (r.violations, r.sample_keys.clone()),
            (1, vec!["2".to_string()])
        );
    }

    /// A rule on `segment`, tried both ways.
    fn segment_rule(rule: Rule, good: &[&'static str], bad: &[&'static str]) -> CheckResult {
        let mut v = view(Vec::new());
        v.features[1].checks = vec![check(rule)];
        let rows = |vals: &[&'static str]| -> Rows {
            (1..)
                .zip(vals)
                .map(|(i, s)| (i, Some(1.0), Some(*s)))
                .collect()
        };
        pass_then_fail(&v, rows(good), rows(bad))
    }

    #[test]
    fn allowed_both_ways() {
        let rule = Rule::Allowed {
            values: vec!["gold".into(), "silver".into()],
        };
        let r = segment_rule(rule, &["gold", "silver"], &["gold", "platinum"]);
        assert_eq!(r.sample_keys, vec!["2"]);
        assert!(r.message.contains("1 of 2 entities"), "{}", r.message);
    }

    #[test]
    fn regex_both_ways() {
        let rule = Rule::Regex {
            pattern: "^[a-z]+$".into(),
        };
        let r = segment_rule(rule, &["gold", "silver"], &["Gold", "silver", "x1"]);
        assert_eq!(r.violations, 2);
    }

    #[test]
    fn change_rules_compare_with_the_previous_snapshot() {
        let mut v = view(vec![check(Rule::MaxMeanChange { ratio: 0.1 })]);
        v.checks = vec![check(Rule::MaxRowChange { ratio: 0.5 })];
        let facts = RunFacts::default();
        let rows = |n: i64, amount: f64| -> Vec<(i64, Option<f64>, Option<&'static str>)> {
            (1..=n).map(|i| (i, Some(amount), None)).collect()
        };
        let before = profile_of(&snapshot(&rows(10, 100.0), 0), &v);
        // Without a previous snapshot both pass.
        assert!(evaluate(&v, &before, None, &facts).iter().all(|r| r.passed));
        let same = profile_of(&snapshot(&rows(12, 105.0), 0), &v);
        let r = evaluate(&v, &same, Some(&before.stats), &facts);
        assert!(r.iter().all(|r| r.passed), "{r:?}");
        let moved = profile_of(&snapshot(&rows(4, 150.0), 0), &v);
        let r = evaluate(&v, &moved, Some(&before.stats), &facts);
        assert_eq!(r[0].observed, Some(0.5));
        assert_eq!(r[1].observed, Some(0.6));
        assert!(r.iter().all(|r| !r.passed));
        let change = compare(&moved.stats, &before.stats);
        assert_eq!((change.rows_before, change.rows_after), (10, 4));
        assert_eq!(change.features[0].mean_change, Some(0.5));
    }

    #[test]
    fn view_rules_both_ways() {
        let mut v = view(Vec::new());
        v.checks = vec![
            check(Rule::MinRows { rows: 3 }),
            check(Rule::Freshness { seconds: 60 }),
            check(Rule::UniqueKeys),
        ];
        let rows: Vec<(i64, Option<f64>, Option<&str>)> =
            (1..=3).map(|i| (i, Some(1.0), None)).collect();
        let event = 1_000_000_000;
        let p = profile_of(&snapshot(&rows, event), &v);
        let fresh = RunFacts {
            now_micros: event + 59_000_000,
            ..RunFacts::default()
        };
        assert!(evaluate(&v, &p, None, &fresh).iter().all(|r| r.passed));
        let stale = RunFacts {
            now_micros: event + 61_000_000,
            duplicate_keys: 2,
            duplicate_samples: vec!["7".into(), "9".into()],
        };
        let small = profile_of(&snapshot(&rows[..2], event), &v);
        let r = evaluate(&v, &small, None, &stale);
        assert!(r.iter().all(|r| !r.passed), "{r:?}");
        assert_eq!(r[0].observed, Some(2.0));
        assert_eq!(r[1].observed, Some(61.0));
        assert_eq!(r[2].sample_keys, vec!["7", "9"]);
    }
}
