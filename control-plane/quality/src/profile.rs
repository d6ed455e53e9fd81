//! Profiling a snapshot: one pass over its rows gathers every feature's statistics and the
//! per-row outcomes of the rules that look at single values.

use std::collections::{BTreeMap, HashMap, HashSet};

use fstore_snapshot::{FeatureType, KeyType, Row, SnapshotSchema, Value};
use fstore_spec::{FeatureView, Rule};
use serde::{Deserialize, Serialize};

use crate::drift::{Distribution, Distributions};
use crate::{QualityError, render_key};

/// Quantiles and histograms come from a uniform sample of this many values per feature, so
/// profiling stays linear in memory for any snapshot; below it they are exact.
const SAMPLE: usize = 100_000;
/// Distinct strings counted for the top values and the categorical distribution; values first
/// seen after the table is full are counted together as "other".
const CATEGORIES: usize = 10_000;
const TOP_VALUES: usize = 10;
const HISTOGRAM_BINS: usize = 20;
/// Sample offending keys kept per failing rule.
pub(crate) const SAMPLE_KEYS: usize = 5;
/// A numeric distribution kept for drift holds at most this many quantile points.
const DISTRIBUTION_POINTS: usize = 10_000;

/// Statistics of one snapshot (what edges serve), stored with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewStats {
    /// Entities served.
    pub rows: u64,
    /// The newest and oldest event time served, microseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_event_micros: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_event_micros: Option<i64>,
    pub features: Vec<FeatureStats>,
}

impl ViewStats {
    pub fn feature(&self, name: &str) -> Option<&FeatureStats> {
        self.features.iter().find(|f| f.name == name)
    }
}

/// Statistics of one feature. Numeric figures read bools as 0/1, timestamps as microseconds
/// and lists as their length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FeatureType,
    /// Non-null values.
    pub count: u64,
    pub nulls: u64,
    pub null_rate: f64,
    /// Float values that are NaN: counted in `count`, left out of every numeric figure.
    #[serde(default)]
    pub nans: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Population standard deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stddev: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantiles: Option<Quantiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    pub distinct: u64,
    /// Whether `distinct` is an estimate (over 4,096 distinct values: HyperLogLog).
    #[serde(default)]
    pub distinct_approximate: bool,
    /// Strings and bools: the most frequent values, most frequent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_values: Vec<TopValue>,
    /// How many values quantiles and the histogram were computed from (all of them unless
    /// there were more than the sample holds).
    #[serde(default)]
    pub sampled_from: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p1: f64,
    pub p5: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Equal-width bins from `min` to `max`; the last bin includes `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopValue {
    pub value: String,
    pub count: u64,
}

/// A per-row rule's tally over the snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowTally {
    pub violations: u64,
    pub sample_keys: Vec<String>,
}

enum RowRule {
    NotNull,
    Range(Option<f64>, Option<f64>),
    Allowed(HashSet<String>),
    Regex(regex::Regex),
    Unique(HashSet<u64>),
}

struct Column {
    name: String,
    ty: FeatureType,
    slot: usize,
    nulls: u64,
    nans: u64,
    count: u64,
    // Welford's running mean and squared deviations, exact over every value.
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    sample: Vec<f64>,
    seen_numeric: u64,
    distinct: Distinct,
    categories: HashMap<String, u64>,
    other: u64,
    rules: Vec<(usize, RowRule)>,
}

/// Streams a snapshot's rows into a [`Profile`].
pub struct Profiler {
    key_types: Vec<KeyType>,
    rows: u64,
    newest: Option<i64>,
    oldest: Option<i64>,
    columns: Vec<Column>,
    tallies: BTreeMap<(String, usize), RowTally>,
    rng: u64,
}

/// A finished profile: the statistics to store, plus what rules and drift need.
#[derive(Debug, Clone)]
pub struct Profile {
    pub stats: ViewStats,
    /// Sorted sample of each numeric feature.
    pub(crate) numeric: BTreeMap<String, Vec<f64>>,
    /// Value counts of each categorical feature (strings, bools).
    pub(crate) categorical: BTreeMap<String, BTreeMap<String, u64>>,
    /// (feature, index of the check in the feature's `checks`) → tally of a per-row rule.
    pub(crate) tallies: BTreeMap<(String, usize), RowTally>,
}

fn is_categorical(ty: FeatureType) -> bool {
    matches!(ty, FeatureType::String | FeatureType::Bool)
}

impl Profiler {
    /// Profiles the view's features that the snapshot stores (request-time features are not
    /// in a snapshot and have no statistics).
    pub fn new(schema: &SnapshotSchema, view: &FeatureView) -> Result<Self, QualityError> {
        let mut columns = Vec::new();
        for f in &view.features {
            let Some(slot) = schema.feature_index(&f.name) else {
                continue;
            };
            let ty = schema.features[slot].ty;
            if ty != f.ty {
                return Err(QualityError::Invalid(format!(
                    "feature `{}` is {} in the snapshot but {} in the view",
                    f.name, ty, f.ty
                )));
            }
            let mut rules = Vec::new();
            for (i, c) in f.checks.iter().enumerate() {
                let r = match &c.rule {
                    Rule::NotNull => RowRule::NotNull,
                    Rule::Range { min, max } => RowRule::Range(*min, *max),
                    Rule::Allowed { values } => RowRule::Allowed(values.iter().cloned().collect()),
                    Rule::Regex { pattern } => {
                        RowRule::Regex(regex::Regex::new(pattern).map_err(|e| {
                            QualityError::Invalid(format!(
                                "feature `{}`: regex `{pattern}` does not compile: {e}",
                                f.name
                            ))
                        })?)
                    }
                    Rule::Unique => RowRule::Unique(HashSet::new()),
                    _ => continue,
                };
                rules.push((i, r));
            }
            columns.push(Column {
                name: f.name.clone(),
                ty,
                slot,
                nulls: 0,
                nans: 0,
                count: 0,
                mean: 0.0,
                m2: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                sample: Vec::new(),
                seen_numeric: 0,
                distinct: Distinct::default(),
                categories: HashMap::new(),
                other: 0,
                rules,
            });
        }
        Ok(Self {
            key_types: schema.keys.iter().map(|k| k.ty).collect(),
            rows: 0,
            newest: None,
            oldest: None,
            columns,
            tallies: BTreeMap::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
        })
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: deterministic, so one snapshot always profiles the same.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn add(&mut self, row: &Row<'_>) {
        self.rows += 1;
        let t = row.event_micros();
        self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        self.oldest = Some(self.oldest.map_or(t, |o| o.min(t)));
        for c in 0..self.columns.len() {
            let value = row.value(self.columns[c].slot);
            let numeric = numeric_of(&value);
            let col = &mut self.columns[c];
            if matches!(value, Value::Null) {
                col.nulls += 1;
            } else {
                col.count += 1;
                col.distinct.insert(value_hash(&value));
                if is_categorical(col.ty) {
                    // Looked up by reference: most values were seen before and need no copy.
                    let text: &str = match value {
                        Value::String(s) => s,
                        Value::Bool(true) => "true",
                        _ => "false",
                    };
                    let room = col.categories.len() < CATEGORIES;
                    match col.categories.get_mut(text) {
                        Some(n) => *n += 1,
                        None if room => {
                            col.categories.insert(text.to_string(), 1);
                        }
                        None => col.other += 1,
                    }
                }
            }
            if let Some(x) = numeric {
                if x.is_nan() {
                    col.nans += 1;
                } else {
                    let n = (col.count - col.nans) as f64;
                    let d = x - col.mean;
                    col.mean += d / n;
                    col.m2 += d * (x - col.mean);
                    col.min = col.min.min(x);
                    col.max = col.max.max(x);
                    col.seen_numeric += 1;
                    // Algorithm R: every value ends in the sample with equal probability.
                    if col.sample.len() < SAMPLE {
                        col.sample.push(x);
                    } else {
                        let seen = col.seen_numeric;
                        let j = self.next_random() % seen;
                        let col = &mut self.columns[c];
                        if (j as usize) < SAMPLE {
                            col.sample[j as usize] = x;
                        }
                    }
                }
            }
            let col = &mut self.columns[c];
            let mut broken: Vec<usize> = Vec::new();
            for (i, rule) in col.rules.iter_mut() {
                let bad = match rule {
                    RowRule::NotNull => matches!(value, Value::Null),
                    RowRule::Range(min, max) => numeric.is_some_and(|x| {
                        x.is_nan() || min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m)
                    }),
                    RowRule::Allowed(set) => {
                        !matches!(value, Value::Null) && !set.contains(&text_of(&value))
                    }
                    RowRule::Regex(re) => match value {
                        Value::String(s) => !re.is_match(s),
                        _ => false,
                    },
                    RowRule::Unique(seen) => {
                        !matches!(value, Value::Null) && !seen.insert(value_hash(&value))
                    }
                };
                if bad {
                    broken.push(*i);
                }
            }
            if !broken.is_empty() {
                let name = col.name.clone();
                for i in broken {
                    let tally = self.tallies.entry((name.clone(), i)).or_default();
                    tally.violations += 1;
                    if tally.sample_keys.len() < SAMPLE_KEYS {
                        tally
                            .sample_keys
                            .push(render_key(&self.key_types, row.key()));
                    }
                }
            }
        }
    }

    pub fn finish(self) -> Profile {
        let rows = self.rows;
        let mut numeric = BTreeMap::new();
        let mut categorical = BTreeMap::new();
        let mut features = Vec::with_capacity(self.columns.len());
        for mut col in self.columns {
            let has_numbers = !col.sample.is_empty();
            col.sample.sort_unstable_by(f64::total_cmp);
            let quantiles = has_numbers.then(|| {
                let q = |p| quantile(&col.sample, p);
                Quantiles {
                    p1: q(0.01),
                    p5: q(0.05),
                    p25: q(0.25),
                    p50: q(0.50),
                    p75: q(0.75),
                    p95: q(0.95),
                    p99: q(0.99),
                }
            });
            let histogram = has_numbers.then(|| histogram(&col.sample, col.min, col.max));
            let (distinct, distinct_approximate) = col.distinct.estimate();
            let mut top: Vec<(&String, &u64)> = col.categories.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let top_values = top
                .iter()
                .take(TOP_VALUES)
                .map(|(v, n)| TopValue {
                    value: (*v).clone(),
                    count: **n,
                })
                .collect();
            let numbers = col.seen_numeric;
            features.push(FeatureStats {
                name: col.name.clone(),
                ty: col.ty,
                count: col.count,
                nulls: col.nulls,
                null_rate: if rows == 0 {
                    0.0
                } else {
                    col.nulls as f64 / rows as f64
                },
                nans: col.nans,
                min: has_numbers.then_some(col.min),
                max: has_numbers.then_some(col.max),
                mean: has_numbers.then_some(col.mean),
                stddev: has_numbers.then(|| (col.m2 / numbers as f64).sqrt()),
                quantiles,
                histogram,
                distinct,
                distinct_approximate,
                top_values,
                sampled_from: col.sample.len() as u64,
            });
            if is_categorical(col.ty) {
                let mut counts: BTreeMap<String, u64> = col.categories.into_iter().collect();
                if col.other > 0 {
                    counts.insert(OTHER.to_string(), col.other);
                }
                categorical.insert(col.name, counts);
            } else {
                numeric.insert(col.name, col.sample);
            }
        }
        Profile {
            stats: ViewStats {
                rows,
                newest_event_micros: self.newest,
                oldest_event_micros: self.oldest,
                features,
            },
            numeric,
            categorical,
            tallies: self.tallies,
        }
    }
}

/// The bucket holding categorical values first seen after the category table filled up.
const OTHER: &str = "\u{1}other";

impl Profile {
    /// What drift tests compare: up to 10,000 quantile points of each numeric feature, and
    /// the value counts of each categorical one.
    pub fn distributions(&self) -> Distributions {
        let mut features = BTreeMap::new();
        for (name, sorted) in &self.numeric {
            features.insert(
                name.clone(),
                Distribution::Numeric {
                    values: thin(sorted),
                },
            );
        }
        for (name, counts) in &self.categorical {
            features.insert(
                name.clone(),
                Distribution::Categorical {
                    counts: counts.clone(),
                },
            );
        }
        Distributions { features }
    }
}

/// Builds one feature's distribution from values read elsewhere (a training set's column).
pub struct DistributionBuilder {
    categorical: bool,
    numbers: Vec<f64>,
    counts: BTreeMap<String, u64>,
}

impl DistributionBuilder {
    pub fn new(ty: FeatureType) -> Self {
        Self {
            categorical: is_categorical(ty),
            numbers: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, v: &Value<'_>) {
        if matches!(v, Value::Null) {
            return;
        }
        if self.categorical {
            *self.counts.entry(text_of(v)).or_default() += 1;
        } else if let Some(x) = numeric_of(v).filter(|x| !x.is_nan()) {
            self.numbers.push(x);
        }
    }

    pub fn finish(mut self) -> Distribution {
        if self.categorical {
            return Distribution::Categorical {
                counts: self.counts,
            };
        }
        self.numbers.sort_unstable_by(f64::total_cmp);
        Distribution::Numeric {
            values: thin(&self.numbers),
        }
    }
}

/// At most [`DISTRIBUTION_POINTS`] evenly spaced quantiles of sorted values.
fn thin(sorted: &[f64]) -> Vec<f64> {
    if sorted.len() <= DISTRIBUTION_POINTS {
        return sorted.to_vec();
    }
    (0..DISTRIBUTION_POINTS)
        .map(|i| quantile(sorted, i as f64 / (DISTRIBUTION_POINTS - 1) as f64))
        .collect()
}

/// Linear interpolation between the closest ranks (the "type 7" estimator of R and NumPy).
pub(crate) fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn histogram(sorted: &[f64], min: f64, max: f64) -> Histogram {
    let mut counts = vec![0u64; HISTOGRAM_BINS];
    let width = (max - min) / HISTOGRAM_BINS as f64;
    for &x in sorted {
        let bin = if width > 0.0 {
            (((x - min) / width) as usize).min(HISTOGRAM_BINS - 1)
        } else {
            0
        };
        counts[bin] += 1;
    }
    Histogram { min, max, counts }
}

pub(crate) fn numeric_of(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Int64(x) => Some(*x as f64),
        Value::Float64(x) => Some(*x),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Timestamp(t) => Some(*t as f64),
        Value::ListFloat64(l) => Some(l.len() as f64),
        Value::Null | Value::String(_) => None,
    }
}

/// A value as `allowed` lists and top values show it.
fn text_of(v: &Value<'_>) -> String {
    match v {
        Value::String(s) => (*s).to_string(),
        Value::Int64(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float64(x) => x.to_string(),
        Value::Timestamp(t) => t.to_string(),
        Value::ListFloat64(l) => format!("{:?}", l.iter().collect::<Vec<_>>()),
        Value::Null => String::new(),
    }
}

fn value_hash(v: &Value<'_>) -> u64 {
    use xxhash_rust::xxh3::xxh3_64;
    match v {
        Value::String(s) => xxh3_64(s.as_bytes()),
        Value::Float64(x) => xxh3_64(&x.to_bits().to_le_bytes()),
        Value::ListFloat64(l) => {
            let bytes: Vec<u8> = l.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect();
            xxh3_64(&bytes)
        }
        // Distinct types never meet in one column, so equal bytes across types do not matter.
        Value::Int64(x) | Value::Timestamp(x) => xxh3_64(&x.to_le_bytes()),
        Value::Bool(b) => xxh3_64(&[u8::from(*b)]),
        Value::Null => 0,
    }
}

/// Distinct values: counted exactly (a set of hashes) up to [`DISTINCT_EXACT`], then
/// estimated by HyperLogLog with 2^14 registers (about 0.8 % standard error), whose insert is
/// one hash split and one compare, so profiling stays linear however many values are distinct.
#[derive(Default)]
struct Distinct {
    exact: HashSet<u64>,
    registers: Vec<u8>,
}

const DISTINCT_EXACT: usize = 4_096;
const HLL_BITS: u32 = 14;

impl Distinct {
    fn insert(&mut self, h: u64) {
        if self.registers.is_empty() {
            self.exact.insert(h);
            if self.exact.len() > DISTINCT_EXACT {
                self.registers = vec![0; 1 << HLL_BITS];
                for h in std::mem::take(&mut self.exact) {
                    self.observe(h);
                }
            }
            return;
        }
        self.observe(h);
    }

    fn observe(&mut self, h: u64) {
        let index = (h >> (64 - HLL_BITS)) as usize;
        let rank = ((h << HLL_BITS) | (1 << (HLL_BITS - 1))).leading_zeros() as u8 + 1;
        if let Some(r) = self.registers.get_mut(index)
            && rank > *r
        {
            *r = rank;
        }
    }

    fn estimate(&self) -> (u64, bool) {
        if self.registers.is_empty() {
            return (self.exact.len() as u64, false);
        }
        let m = self.registers.len() as f64;
        let sum: f64 = self
            .registers
            .iter()
            .map(|r| 2f64.powi(-i32::from(*r)))
            .sum();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        let zeros = self.registers.iter().filter(|r| **r == 0).count() as f64;
        // Small cardinalities: linear counting is the better estimate.
        let e = if raw <= 2.5 * m && zeros > 0.0 {
            m * (m / zeros).ln()
        } else {
            raw
        };
        (e.round() as u64, true)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use fstore_snapshot::{Field, KeyBuf, KeyPart, Snapshot, SnapshotWriter};

    /// A one-key snapshot of `(id, amount, segment)` rows, `None` for null.
    pub(crate) fn snapshot(rows: &[(i64, Option<f64>, Option<&str>)], event: i64) -> Snapshot {
        let schema = SnapshotSchema {
            view: "v".into(),
            version: 1,
            keys: vec![Field {
                name: "id".into(),
                ty: KeyType::Int64,
            }],
            features: vec![
                Field {
                    name: "amount".into(),
                    ty: FeatureType::Float64,
                },
                Field {
                    name: "segment".into(),
                    ty: FeatureType::String,
                },
            ],
            ttl_seconds: 0,
            created_at_micros: 0,
            base_version: None,
            shard: None,
        };
        let mut w = SnapshotWriter::new(schema).expect("schema");
        let mut k = KeyBuf::new();
        for (id, amount, segment) in rows {
            let key = k
                .encode(&[KeyType::Int64], &[KeyPart::Int64(*id)])
                .expect("key")
                .to_vec();
            let values = [
                amount.map_or(Value::Null, Value::Float64),
                segment.map_or(Value::Null, Value::String),
            ];
            w.push(&key, event, None, &values).expect("row");
        }
        Snapshot::from_bytes(w.finish_to_vec().expect("finish")).expect("opens")
    }

    pub(crate) fn view(yaml_checks_amount: Vec<fstore_spec::Check>) -> FeatureView {
        let feature = fstore_spec::FeatureDef::new;
        let mut amount = feature("amount", FeatureType::Float64);
        amount.checks = yaml_checks_amount;
        FeatureView {
            name: "v".into(),
            entities: vec!["customer".into()],
            source: "s".into(),
            ttl_seconds: 0,
            features: vec![amount, feature("segment", FeatureType::String)],
            schedule: None,
            max_rejected: None,
            checks: Vec::new(),
            drift: None,
            description: String::new(),
            owner: String::new(),
            tags: Vec::new(),
            shards: None,
            steps: Vec::new(),
        }
    }

    pub(crate) fn profile_of(snap: &Snapshot, view: &FeatureView) -> Profile {
        let mut p = Profiler::new(snap.schema(), view).expect("profiler");
        for row in snap.rows() {
            p.add(&row);
        }
        p.finish()
    }

    #[test]
    fn statistics_match_hand_computed_values() {
        let rows: Vec<(i64, Option<f64>, Option<&str>)> = (1..=10)
            .map(|i| {
                (
                    i,
                    Some(i as f64),
                    Some(if i <= 6 { "gold" } else { "silver" }),
                )
            })
            .chain([(11, None, None), (12, None, Some("gold"))])
            .collect();
        let snap = snapshot(&rows, 1_000);
        let p = profile_of(&snap, &view(Vec::new()));
        assert_eq!(p.stats.rows, 12);
        let a = p.stats.feature("amount").expect("amount");
        assert_eq!((a.count, a.nulls), (10, 2));
        assert!((a.null_rate - 2.0 / 12.0).abs() < 1e-12);
        assert_eq!((a.min, a.max), (Some(1.0), Some(10.0)));
        assert!((a.mean.expect("mean") - 5.5).abs() < 1e-12);
        // Population stddev of 1..=10: sqrt(8.25).
        assert!((a.stddev.expect("stddev") - 2.872_281_323_269_07).abs() < 1e-9);
        let q = a.quantiles.expect("quantiles");
        assert!((q.p25 - 3.25).abs() < 1e-12);
        assert!((q.p50 - 5.5).abs() < 1e-12);
        assert!((q.p99 - 9.91).abs() < 1e-12);
        assert!((q.p1 - 1.09).abs() < 1e-12);
        let h = a.histogram.as_ref().expect("histogram");
        assert_eq!(h.counts.len(), 20);
        assert_eq!(h.counts.iter().sum::<u64>(), 10);
        assert_eq!(h.counts[19], 1, "the maximum lands in the last bin");
        assert_eq!(a.distinct, 10);
        assert!(!a.distinct_approximate);
        let s = p.stats.feature("segment").expect("segment");
        assert_eq!(
            s.top_values[0],
            TopValue {
                value: "gold".into(),
                count: 7
            }
        );
        assert_eq!(
            s.top_values[1],
            TopValue {
                value: "silver".into(),
                count: 4
            }
        );
        assert_eq!(s.distinct, 2);
        assert_eq!(p.stats.newest_event_micros, Some(1_000));
    }

    #[test]
    fn many_distinct_values_are_estimated_closely() {
        let mut k = Distinct::default();
        for i in 0..200_000u64 {
            k.insert(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()));
        }
        let (n, approx) = k.estimate();
        assert!(approx);
        let err = (n as f64 - 200_000.0).abs() / 200_000.0;
        assert!(err < 0.05, "estimate {n} is {err} off");
    }
}
