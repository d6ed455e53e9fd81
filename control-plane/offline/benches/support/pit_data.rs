//! The point-in-time benchmark's data, generated from a fixed seed: 100,000 customers × 8
//! weekly snapshots × 16 features (10 float64, 4 int64, 2 strings), delivered in batches as a
//! Parquet reader would, and 1,000,000 entity rows spread over the same weeks, about 9% of
//! them for customers the table does not know.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::Int64Type;

pub const CUSTOMERS: i64 = 100_000;
pub const WEEKS: i64 = 8;
pub const ENTITY_ROWS: usize = 1_000_000;
pub const BATCH_ROWS: usize = 8192;
pub const HOUR: i64 = 3_600_000_000;
pub const DAY: i64 = 24 * HOUR;
pub const WEEK: i64 = 7 * DAY;
/// 2026-01-05T00:00:00Z.
pub const START: i64 = 1_767_571_200_000_000;
pub const TTL: i64 = 10 * DAY;

/// SplitMix64: tiny, fast and good enough for benchmark data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One batch of the feature table: key, event, created, then the 16 features.
pub struct FeatureBatch {
    pub key: ArrayRef,
    pub event: ArrayRef,
    pub created: ArrayRef,
    pub features: Vec<ArrayRef>,
}

impl FeatureBatch {
    /// Key, event, created, features: the layout `concat_columns` gets.
    pub fn columns(&self) -> Vec<ArrayRef> {
        let mut c = vec![self.key.clone(), self.event.clone(), self.created.clone()];
        c.extend(self.features.iter().cloned());
        c
    }
}

const COUNTRIES: [&str; 8] = ["DE", "FR", "NL", "PL", "ES", "IT", "SE", "PT"];
const SEGMENTS: [&str; 5] = [
    "champion",
    "loyal",
    "at_risk",
    "hibernating",
    "new_customer",
];

/// The feature table in snapshot order (week by week, customers in id order).
pub fn feature_batches(seed: u64) -> Vec<FeatureBatch> {
    let mut rng = Rng::new(seed);
    let total = (CUSTOMERS * WEEKS) as usize;
    let mut batches = Vec::with_capacity(total.div_ceil(BATCH_ROWS));
    let mut row = 0usize;
    while row < total {
        let n = BATCH_ROWS.min(total - row);
        let mut key = Vec::with_capacity(n);
        let mut event = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut floats: Vec<Vec<f64>> = (0..10).map(|_| Vec::with_capacity(n)).collect();
        let mut ints: Vec<Vec<i64>> = (0..4).map(|_| Vec::with_capacity(n)).collect();
        let mut country = Vec::with_capacity(n);
        let mut segment = Vec::with_capacity(n);
        for r in row..row + n {
            let week = r as i64 / CUSTOMERS;
            key.push(r as i64 % CUSTOMERS + 1);
            // Snapshots land during the first day of their week, written within the hour.
            let e = START + week * WEEK + rng.below(DAY as u64) as i64;
            event.push(e);
            created.push(e + rng.below(HOUR as u64) as i64);
            for f in &mut floats {
                f.push(rng.unit() * 1000.0);
            }
            for i in &mut ints {
                i.push(rng.below(10_000) as i64);
            }
            country.push(COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize]);
            segment.push(SEGMENTS[rng.below(SEGMENTS.len() as u64) as usize]);
        }
        let mut features: Vec<ArrayRef> = Vec::with_capacity(16);
        features.extend(
            floats
                .into_iter()
                .map(|f| Arc::new(Float64Array::from(f)) as ArrayRef),
        );
        features.extend(
            ints.into_iter()
                .map(|i| Arc::new(Int64Array::from(i)) as ArrayRef),
        );
        features.push(Arc::new(StringArray::from(country)));
        features.push(Arc::new(StringArray::from(segment)));
        batches.push(FeatureBatch {
            key: Arc::new(Int64Array::from(key)),
            event: Arc::new(TimestampMicrosecondArray::from(event)),
            created: Arc::new(TimestampMicrosecondArray::from(created)),
            features,
        });
        row += n;
    }
    batches
}

/// Entity rows: customer ids up to 10% past the table's, timestamps from a week before the
/// first snapshot to a week after the last.
pub fn entities(seed: u64) -> (ArrayRef, TimestampMicrosecondArray) {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let span = ((WEEKS + 2) * WEEK) as u64;
    let mut key = Vec::with_capacity(ENTITY_ROWS);
    let mut ts = Vec::with_capacity(ENTITY_ROWS);
    for _ in 0..ENTITY_ROWS {
        key.push(rng.below((CUSTOMERS + CUSTOMERS / 10) as u64) as i64 + 1);
        ts.push(START - WEEK + rng.below(span) as i64);
    }
    (
        Arc::new(Int64Array::from(key)),
        TimestampMicrosecondArray::from(ts),
    )
}

/// Customer ids scattered over the whole i64 range, so they are hashed instead of looked up
/// in a dense table.
pub fn sparse_ids(ids: &ArrayRef) -> ArrayRef {
    let ids = ids.as_primitive::<Int64Type>();
    Arc::new(Int64Array::from_iter_values(
        ids.values()
            .iter()
            .map(|&k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64)),
    ))
}

/// Customer ids as strings (`cust-0000123`), hashed through their KeyBuf encoding.
pub fn string_ids(ids: &ArrayRef) -> ArrayRef {
    let ids = ids.as_primitive::<Int64Type>();
    Arc::new(StringArray::from_iter_values(
        ids.values().iter().map(|k| format!("cust-{k:07}")),
    ))
}
