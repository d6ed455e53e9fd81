//! Quality rules declared in `features.yaml`: checks on a feature or a whole view that every
//! run's snapshot must pass before it is published (`severity: error`, the default) or that
//! only raise an alert (`severity: warn`), and the drift test of a view's features against a
//! baseline. The model only; evaluating them is `fstore-quality`'s job.

use serde::{Deserialize, Serialize};

/// What a failing rule does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The snapshot is not published; the live one stays.
    #[default]
    Error,
    /// The snapshot is published and an alert is raised.
    Warn,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
        }
    }
}

/// One declared rule and its severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    #[serde(flatten)]
    pub rule: Rule,
    #[serde(default)]
    pub severity: Severity,
}

/// What a rule checks. Ratios are fractions (0.01 for `1%`). Changes compare with the view's
/// previous published snapshot and pass when there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    /// Feature: no entity has a null value.
    NotNull,
    /// Feature: at most this fraction of entities have a null value.
    MaxNullRate { ratio: f64 },
    /// Feature (numeric, timestamp as microseconds, list as its length): every non-null value
    /// within the bounds, inclusive.
    Range {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// Feature (string, int64, bool): every non-null value is one of these, as text.
    Allowed { values: Vec<String> },
    /// Feature (string): every non-null value matches the regular expression (anywhere; anchor
    /// it with `^…$` to match the whole value).
    Regex { pattern: String },
    /// Feature: no two entities share a non-null value.
    Unique,
    /// Feature: the mean moved by at most this fraction of the previous mean.
    MaxMeanChange { ratio: f64 },
    /// View: the snapshot serves at least this many entities.
    MinRows { rows: u64 },
    /// View: the number of entities moved by at most this fraction of the previous count.
    MaxRowChange { ratio: f64 },
    /// View: the newest event served is at most this old when the run ends.
    Freshness { seconds: u64 },
    /// View (plain views): no entity had more than one row in what the run read, so none of
    /// its served rows was picked from duplicates.
    UniqueKeys,
}

/// Where a rule may be declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Feature,
    View,
}

impl Rule {
    /// The rule's name as written in `features.yaml`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NotNull => "not_null",
            Self::MaxNullRate { .. } => "max_null_rate",
            Self::Range { .. } => "range",
            Self::Allowed { .. } => "allowed",
            Self::Regex { .. } => "regex",
            Self::Unique => "unique",
            Self::MaxMeanChange { .. } => "max_mean_change",
            Self::MinRows { .. } => "min_rows",
            Self::MaxRowChange { .. } => "max_row_change",
            Self::Freshness { .. } => "freshness",
            Self::UniqueKeys => "unique_keys",
        }
    }

    pub fn scope(&self) -> Scope {
        match self {
            Self::MinRows { .. }
            | Self::MaxRowChange { .. }
            | Self::Freshness { .. }
            | Self::UniqueKeys => Scope::View,
            _ => Scope::Feature,
        }
    }
}

/// What a view's features are compared with to measure drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// The view's previous published snapshot.
    Previous,
    /// One published snapshot version of the view, fixed.
    Version(u64),
    /// A training set file (Parquet, CSV or JSON lines) with a column per feature.
    TrainingSet(String),
}

/// The drift test of a view: each threshold, when set, fails the features whose figure
/// exceeds it. PSI applies to every feature, Kolmogorov–Smirnov to numeric ones and
/// Jensen–Shannon to categorical ones (string, bool).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub baseline: Baseline,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js: Option<f64>,
    /// Drift alerts by default rather than blocking: a changing population is news, not
    /// necessarily a broken job.
    #[serde(default = "warn")]
    pub severity: Severity,
    /// The features tested; empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

fn warn() -> Severity {
    Severity::Warn
}

/// A rule as written: a one-key map (`- range: {min: 0}`), optionally with `severity`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    #[serde(default)]
    not_null: Option<bool>,
    #[serde(default)]
    max_null_rate: Option<marked_yaml::Spanned<String>>,
    #[serde(default)]
    range: Option<RawRange>,
    #[serde(default)]
    allowed: Option<Vec<String>>,
    #[serde(default)]
    regex: Option<marked_yaml::Spanned<String>>,
    #[serde(default)]
    unique: Option<bool>,
    #[serde(default)]
    max_mean_change: Option<marked_yaml::Spanned<String>>,
    #[serde(default)]
    min_rows: Option<u64>,
    #[serde(default)]
    max_row_change: Option<marked_yaml::Spanned<String>>,
    #[serde(default)]
    freshness: Option<marked_yaml::Spanned<String>>,
    #[serde(default)]
    unique_keys: Option<bool>,
    #[serde(default)]
    severity: Option<Severity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRange {
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDrift {
    #[serde(default)]
    baseline: Option<marked_yaml::Spanned<String>>,
    #[serde(default)]
    training_set: Option<String>,
    #[serde(default)]
    psi: Option<f64>,
    #[serde(default)]
    ks: Option<f64>,
    #[serde(default)]
    js: Option<f64>,
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    features: Vec<String>,
}

/// Parses a ratio written as a percentage (`25%`) or a fraction (`0.25`).
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(p) => (p.trim(), 100.0),
        None => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v / scale),
        _ => Err(format!(
            "`{s}` is not a ratio such as `25%` or `0.25` (zero or more)"
        )),
    }
}

/// Turns one written rule into a [`Check`] declared at `scope`; `ty` is the feature's type
/// for feature rules. The error says what is wrong; the caller positions it.
pub(crate) fn check_of(
    raw: &RawCheck,
    scope: Scope,
    ty: Option<fstore_snapshot::FeatureType>,
) -> Result<Check, String> {
    use fstore_snapshot::FeatureType as T;
    let mut rules: Vec<Result<Rule, String>> = Vec::new();
    let ratio = |s: &marked_yaml::Spanned<String>| parse_ratio(s);
    if let Some(b) = raw.not_null {
        if b {
            rules.push(Ok(Rule::NotNull));
        } else {
            return Err("`not_null: false` checks nothing; leave the rule out".into());
        }
    }
    if let Some(r) = &raw.max_null_rate {
        rules.push(ratio(r).map(|ratio| Rule::MaxNullRate { ratio }));
    }
    if let Some(r) = &raw.range {
        rules.push(match (r.min, r.max) {
            (None, None) => Err("`range` needs `min`, `max` or both".into()),
            (Some(a), Some(b)) if a > b => Err(format!("`range` has min {a} above max {b}")),
            (min, max) => Ok(Rule::Range { min, max }),
        });
    }
    if let Some(values) = &raw.allowed {
        rules.push(if values.is_empty() {
            Err("`allowed` lists no values".into())
        } else {
            Ok(Rule::Allowed {
                values: values.clone(),
            })
        });
    }
    if let Some(p) = &raw.regex {
        rules.push(
            regex::Regex::new(p)
                .map(|_| Rule::Regex {
                    pattern: p.to_string(),
                })
                .map_err(|e| format!("`regex` does not compile: {e}")),
        );
    }
    if raw.unique == Some(true) {
        rules.push(Ok(Rule::Unique));
    }
    if let Some(r) = &raw.max_mean_change {
        rules.push(ratio(r).map(|ratio| Rule::MaxMeanChange { ratio }));
    }
    if let Some(rows) = raw.min_rows {
        rules.push(Ok(Rule::MinRows { rows }));
    }
    if let Some(r) = &raw.max_row_change {
        rules.push(ratio(r).map(|ratio| Rule::MaxRowChange { ratio }));
    }
    if let Some(f) = &raw.freshness {
        rules.push(crate::parse_duration(f).map(|seconds| Rule::Freshness { seconds }));
    }
    if raw.unique_keys == Some(true) {
        rules.push(Ok(Rule::UniqueKeys));
    }
    if raw.unique == Some(false) || raw.unique_keys == Some(false) {
        return Err("a rule set to `false` checks nothing; leave it out".into());
    }
    let rule = match rules.len() {
        0 => return Err("names no rule (not_null, max_null_rate, range, allowed, regex, unique, max_mean_change, min_rows, max_row_change, freshness, unique_keys)".into()),
        1 => rules.pop().unwrap_or_else(|| Err("no rule".into()))?,
        _ => return Err("names more than one rule; write one rule per list item".into()),
    };
    if rule.scope() != scope {
        return Err(match scope {
            Scope::Feature => format!(
                "`{}` is a rule of the whole view: declare it under the view's `checks`",
                rule.name()
            ),
            Scope::View => format!(
                "`{}` is a rule of one feature: declare it under that feature's `checks`",
                rule.name()
            ),
        });
    }
    if let Some(ty) = ty {
        let fits = match &rule {
            Rule::Range { .. } | Rule::MaxMeanChange { .. } => {
                matches!(
                    ty,
                    T::Int64 | T::Float64 | T::Timestamp | T::ListFloat64 | T::Bool
                ) && !(matches!(rule, Rule::Range { .. }) && ty == T::Bool)
            }
            Rule::Allowed { .. } => matches!(ty, T::String | T::Int64 | T::Bool),
            Rule::Regex { .. } => ty == T::String,
            Rule::Unique => ty != T::ListFloat64,
            _ => true,
        };
        if !fits {
            return Err(format!(
                "`{}` does not apply to a {ty} feature",
                rule.name()
            ));
        }
    }
    Ok(Check {
        rule,
        severity: raw.severity.unwrap_or_default(),
    })
}

/// Turns the written drift test into a [`Drift`], given the view's feature names.
pub(crate) fn drift_of(raw: &RawDrift, features: &[&str]) -> Result<Drift, String> {
    let baseline = match (&raw.baseline, raw.training_set.clone()) {
        (Some(_), Some(_)) => {
            return Err("names both `baseline` and `training_set`; choose one".into());
        }
        (None, None) => {
            return Err(
                "needs `baseline` (`previous` or a snapshot version) or `training_set` (a file)"
                    .into(),
            );
        }
        (None, Some(path)) => Baseline::TrainingSet(path),
        (Some(b), None) => match b.trim() {
            "previous" => Baseline::Previous,
            v => v.parse::<u64>().map(Baseline::Version).map_err(|_| {
                format!("baseline `{v}` is neither `previous` nor a snapshot version")
            })?,
        },
    };
    if raw.psi.is_none() && raw.ks.is_none() && raw.js.is_none() {
        return Err("sets no threshold (`psi`, `ks` or `js`)".into());
    }
    for (name, t) in [("psi", raw.psi), ("ks", raw.ks), ("js", raw.js)] {
        if t.is_some_and(|t| !(t.is_finite() && t >= 0.0)) {
            return Err(format!("`{name}` must be zero or more"));
        }
    }
    if let Some(f) = raw
        .features
        .iter()
        .find(|f| !features.contains(&f.as_str()))
    {
        return Err(format!("names `{f}`, which is not a feature of the view"));
    }
    Ok(Drift {
        baseline,
        psi: raw.psi,
        ks: raw.ks,
        js: raw.js,
        severity: raw.severity.unwrap_or(Severity::Warn),
        features: raw.features.clone(),
    })
}
