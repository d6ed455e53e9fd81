//! Windowed aggregations evaluated as of a timestamp: for one entity's events, sorted by
//! (event time, created time, position), each feature folds the events with
//! `t - window < event <= t`. Materialization asks every entity as of now; historical
//! retrieval asks each entity row as of its own timestamp, through the same code.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Builder, Int64Builder, UInt32Array,
};
use arrow::compute::take;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
use fstore_snapshot::FeatureType;
use fstore_spec::{Aggregation, FeatureDef};

use crate::OfflineError;

const DAY_MICROS: i64 = 86_400_000_000;

/// One evaluation: an entity's events (sorted), where they start in the index's order, as of
/// `t`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query<'a> {
    pub start: usize,
    pub events: &'a [i64],
    pub t: i64,
}

impl<'a> Query<'a> {
    /// The positions (in the index's order) of the window ending at `t` (inclusive) and
    /// starting after `t - window`, with their event times.
    fn window(&self, window_micros: Option<i64>) -> (Range<usize>, &'a [i64]) {
        let hi = self.events.partition_point(|&e| e <= self.t);
        let lo = match window_micros {
            Some(w) => {
                let start = self.t.saturating_sub(w);
                self.events[..hi].partition_point(|&e| e <= start)
            }
            None => 0,
        };
        (self.start + lo..self.start + hi, &self.events[lo..hi])
    }
}

/// Evaluates each aggregated feature for every query; a `None` query (no entity, or no event
/// in reach) gives nulls. Returns one column per feature, typed as the feature.
///
/// `order` is the index's row order (`EventIndex::order`): the input columns are permuted by it
/// once, so each entity's events are contiguous and a window is a range read sequentially,
/// instead of rows scattered wherever the files put them.
pub(crate) fn evaluate(
    features: &[&FeatureDef],
    inputs: &[Option<ArrayRef>],
    order: &[u32],
    queries: &[Option<Query<'_>>],
) -> Result<Vec<ArrayRef>, OfflineError> {
    let order = UInt32Array::from(order.to_vec());
    features
        .iter()
        .zip(inputs)
        .map(|(f, input)| {
            let permuted = input
                .as_ref()
                .map(|a| take(a.as_ref(), &order, None))
                .transpose()
                .map_err(|e| OfflineError::UnknownView(format!("feature `{}`: {e}", f.name)))?;
            evaluate_one(f, permuted.as_ref(), queries)
        })
        .collect()
}

fn micros(secs: Option<u64>) -> Option<i64> {
    secs.map(|s| i64::try_from(s).unwrap_or(i64::MAX / 1_000_000) * 1_000_000)
}

fn evaluate_one(
    f: &FeatureDef,
    input: Option<&ArrayRef>,
    queries: &[Option<Query<'_>>],
) -> Result<ArrayRef, OfflineError> {
    let Some(agg) = f.aggregation else {
        return Err(OfflineError::UnknownView(format!(
            "feature `{}` is not an aggregation",
            f.name
        )));
    };
    let window = micros(f.window_seconds);
    let unit = micros(f.unit_seconds).unwrap_or(DAY_MICROS).max(1);
    let n = queries.len();
    let need = |what: &str| {
        input.ok_or_else(|| {
            OfflineError::UnknownView(format!("feature `{}`: {what} needs a column", f.name))
        })
    };
    let wrong = |a: &ArrayRef| {
        OfflineError::UnknownView(format!(
            "feature `{}`: input column has type {}, expected another",
            f.name,
            a.data_type()
        ))
    };
    let windows = || queries.iter().map(|q| q.map(|q| q.window(window)));
    Ok(match agg {
        Aggregation::Count => {
            let mut b = Int64Builder::with_capacity(n);
            for w in windows() {
                match (w, input) {
                    (None, _) => b.append_null(),
                    (Some((rows, _)), None) => b.append_value(rows.len() as i64),
                    (Some((rows, _)), Some(a)) => {
                        b.append_value(rows.filter(|&r| a.is_valid(r)).count() as i64)
                    }
                }
            }
            Arc::new(b.finish())
        }
        Aggregation::Sum if f.ty == FeatureType::Int64 => {
            let a = need("sum")?;
            let a = a.as_primitive_opt::<Int64Type>().ok_or_else(|| wrong(a))?;
            let mut b = Int64Builder::with_capacity(n);
            for w in windows() {
                match w {
                    None => b.append_null(),
                    Some((rows, _)) => b.append_value(
                        rows.filter(|&r| a.is_valid(r))
                            .fold(0i64, |s, r| s.saturating_add(a.value(r))),
                    ),
                }
            }
            Arc::new(b.finish())
        }
        Aggregation::Sum | Aggregation::Avg | Aggregation::Stddev => {
            let a = need(agg.as_str())?;
            let a = a
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| wrong(a))?;
            let mut b = Float64Builder::with_capacity(n);
            for w in windows() {
                let Some((rows, _)) = w else {
                    b.append_null();
                    continue;
                };
                // Welford's update: one pass, no catastrophic cancellation for large sums.
                let (mut count, mut mean, mut m2, mut sum) = (0u64, 0.0f64, 0.0f64, 0.0f64);
                for r in rows {
                    if a.is_valid(r) {
                        let x = a.value(r);
                        count += 1;
                        sum += x;
                        let d = x - mean;
                        mean += d / count as f64;
                        m2 += d * (x - mean);
                    }
                }
                match agg {
                    Aggregation::Sum => b.append_value(sum + 0.0),
                    Aggregation::Avg if count > 0 => b.append_value(sum / count as f64),
                    Aggregation::Stddev if count > 1 => {
                        b.append_value((m2 / (count - 1) as f64).sqrt())
                    }
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Aggregation::Min | Aggregation::Max | Aggregation::Last => {
            let a = need(agg.as_str())?;
            let picks: UInt32Array = windows()
                .map(|w| {
                    w.and_then(|(rows, _)| match agg {
                        Aggregation::Last => rows.rev().find(|&r| a.is_valid(r)).map(|r| r as u32),
                        _ => extreme(a, rows, agg == Aggregation::Max),
                    })
                })
                .collect();
            take(a.as_ref(), &picks, None)
                .map_err(|e| OfflineError::UnknownView(format!("feature `{}`: {e}", f.name)))?
        }
        Aggregation::CountDistinct => {
            let a = need("count_distinct")?;
            let mut b = Int64Builder::with_capacity(n);
            let mut ints: Vec<i64> = Vec::new();
            let mut strs: Vec<&str> = Vec::new();
            for w in windows() {
                let Some((rows, _)) = w else {
                    b.append_null();
                    continue;
                };
                let valid = rows.filter(|&r| a.is_valid(r));
                let distinct = match a.data_type() {
                    DataType::Int64 => {
                        let v = a.as_primitive::<Int64Type>();
                        ints.clear();
                        ints.extend(valid.map(|r| v.value(r)));
                        sort_dedup(&mut ints)
                    }
                    DataType::Timestamp(_, _) => {
                        let v = a.as_primitive::<TimestampMicrosecondType>();
                        ints.clear();
                        ints.extend(valid.map(|r| v.value(r)));
                        sort_dedup(&mut ints)
                    }
                    DataType::Float64 => {
                        let v = a.as_primitive::<Float64Type>();
                        ints.clear();
                        // Equal numbers count once: -0.0 is 0.0, and every NaN is one value.
                        ints.extend(valid.map(|r| {
                            let x = v.value(r) + 0.0;
                            if x.is_nan() {
                                i64::MIN
                            } else {
                                x.to_bits() as i64
                            }
                        }));
                        sort_dedup(&mut ints)
                    }
                    DataType::Boolean => {
                        let v: &BooleanArray = a.as_boolean();
                        let (mut t, mut fa) = (false, false);
                        for r in valid {
                            if v.value(r) { t = true } else { fa = true }
                        }
                        usize::from(t) + usize::from(fa)
                    }
                    DataType::Utf8 => {
                        let v = a.as_string::<i32>();
                        strs.clear();
                        strs.extend(valid.map(|r| v.value(r)));
                        strs.sort_unstable();
                        strs.dedup();
                        strs.len()
                    }
                    _ => return Err(wrong(a)),
                };
                b.append_value(distinct as i64);
            }
            Arc::new(b.finish())
        }
        Aggregation::Recency | Aggregation::Age => {
            let since = |q: &Query<'_>, events: &[i64]| {
                let at = if agg == Aggregation::Recency {
                    events.last()
                } else {
                    events.first()
                };
                at.map(|&e| q.t.saturating_sub(e))
            };
            if f.ty == FeatureType::Int64 {
                let mut b = Int64Builder::with_capacity(n);
                for q in queries {
                    let d = q.and_then(|q| since(&q, q.window(window).1));
                    b.append_option(d.map(|d| d.div_euclid(unit)));
                }
                Arc::new(b.finish())
            } else {
                let mut b = Float64Builder::with_capacity(n);
                for q in queries {
                    let d = q.and_then(|q| since(&q, q.window(window).1));
                    b.append_option(d.map(|d| d as f64 / unit as f64));
                }
                Arc::new(b.finish())
            }
        }
    })
}

fn sort_dedup(v: &mut Vec<i64>) -> usize {
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// The row holding the smallest (or largest) non-null value; the earliest such row on ties.
fn extreme(a: &ArrayRef, rows: Range<usize>, max: bool) -> Option<u32> {
    use std::cmp::Ordering;
    fn best<T>(
        rows: Range<usize>,
        valid: impl Fn(usize) -> bool,
        get: impl Fn(usize) -> T,
        cmp: impl Fn(&T, &T) -> Ordering,
        max: bool,
    ) -> Option<u32> {
        let mut out: Option<(u32, T)> = None;
        for r in rows {
            if !valid(r) {
                continue;
            }
            let v = get(r);
            let better = match &out {
                None => true,
                Some((_, cur)) => {
                    let o = cmp(&v, cur);
                    if max {
                        o == Ordering::Greater
                    } else {
                        o == Ordering::Less
                    }
                }
            };
            if better {
                out = Some((r as u32, v));
            }
        }
        out.map(|(r, _)| r)
    }
    let valid = |r: usize| a.is_valid(r);
    match a.data_type() {
        DataType::Int64 => {
            let v = a.as_primitive::<Int64Type>();
            best(rows, valid, |r| v.value(r), i64::cmp, max)
        }
        DataType::Timestamp(_, _) => {
            let v = a.as_primitive::<TimestampMicrosecondType>();
            best(rows, valid, |r| v.value(r), i64::cmp, max)
        }
        DataType::Float64 => {
            let v = a.as_primitive::<Float64Type>();
            best(rows, valid, |r| v.value(r), f64::total_cmp, max)
        }
        DataType::Utf8 => {
            let v = a.as_string::<i32>();
            best(
                rows,
                valid,
                |r| v.value(r),
                |x: &&str, y: &&str| x.cmp(y),
                max,
            )
        }
        _ => None,
    }
}
