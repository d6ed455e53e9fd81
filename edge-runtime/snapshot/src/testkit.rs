//! Synthetic snapshots shaped like the quickstart's `customer_rfm` (16 features of every type),
//! shared by the benchmarks of this crate and of the edge. Not part of the format's API.

use crate::{F64List, FeatureType, Field, KeyBuf, KeyType, SnapshotSchema, SnapshotWriter, Value};

/// The first customer id; ids run from here upwards.
pub const FIRST_ID: i64 = 1_000;
pub const DAY: i64 = 86_400_000_000;
/// Every row's event time: 2026-01-01T00:00:00Z.
pub const AS_OF: i64 = 1_767_225_600_000_000;
const CHANNELS: [&str; 4] = ["web", "app", "store", "marketplace"];
const COUNTRIES: [&str; 6] = ["DE", "FR", "GB", "NL", "ES", "US"];

/// The features, in slot order: 7 int64, 5 float64, 2 strings, a bool, a timestamp and a
/// list<float64>.
pub const FEATURES: [(&str, FeatureType); 16] = [
    ("recency_days", FeatureType::Int64),
    ("frequency_30d", FeatureType::Int64),
    ("frequency_90d", FeatureType::Int64),
    ("frequency_365d", FeatureType::Int64),
    ("monetary_30d", FeatureType::Float64),
    ("monetary_90d", FeatureType::Float64),
    ("monetary_365d", FeatureType::Float64),
    ("avg_order_value", FeatureType::Float64),
    ("max_order_value", FeatureType::Float64),
    ("days_since_signup", FeatureType::Int64),
    ("tenure_months", FeatureType::Int64),
    ("preferred_channel", FeatureType::String),
    ("country", FeatureType::String),
    ("is_active", FeatureType::Bool),
    ("last_order_at", FeatureType::Timestamp),
    ("spend_trend", FeatureType::ListFloat64),
];

/// SplitMix64, so runs are repeatable without a dependency.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub fn customer_rfm_schema() -> SnapshotSchema {
    SnapshotSchema {
        view: "customer_rfm".into(),
        version: 1,
        keys: vec![Field {
            name: "customer_id".into(),
            ty: KeyType::Int64,
        }],
        features: FEATURES
            .iter()
            .map(|(n, ty)| Field {
                name: (*n).into(),
                ty: *ty,
            })
            .collect(),
        ttl_seconds: 45 * 86_400,
        created_at_micros: AS_OF,
        base_version: None,
        shard: None,
    }
}

/// A writer holding `customers` rows (ids `FIRST_ID..`), values drawn from a fixed seed with
/// 2 % nulls; not yet finished, so callers can time `finish_*` on their own.
pub fn customer_rfm_writer(customers: i64) -> SnapshotWriter {
    // Fixtures only: a schema this module built itself cannot be invalid.
    let mut w = SnapshotWriter::new(customer_rfm_schema()).expect("valid schema");
    w.reserve(customers as usize, 200);
    let mut rng = Rng(42);
    let mut kb = KeyBuf::new();
    for c in 0..customers {
        let r = rng.next_u64();
        let f = |shift: u32, m: u64| ((r >> shift) % m) as i64;
        let money = |shift: u32| ((r >> shift) % 100_000) as f64 / 100.0;
        let trend = [money(3), money(7), money(11)];
        let values = [
            // A few nulls, as real data has (recency of a customer who never ordered).
            if f(0, 50) == 0 {
                Value::Null
            } else {
                Value::Int64(f(1, 365))
            },
            Value::Int64(f(2, 10)),
            Value::Int64(f(3, 30)),
            Value::Int64(f(4, 120)),
            Value::Float64(money(5)),
            Value::Float64(money(9)),
            Value::Float64(money(13)),
            Value::Float64(money(17)),
            Value::Float64(money(21)),
            Value::Int64(f(25, 900)),
            Value::Int64(f(26, 30)),
            Value::String(CHANNELS[f(27, 4) as usize]),
            Value::String(COUNTRIES[f(29, 6) as usize]),
            Value::Bool(r & 1 == 0),
            Value::Timestamp(AS_OF - f(31, 365) * DAY),
            Value::ListFloat64(F64List::Slice(&trend)),
        ];
        kb.clear();
        kb.push_i64(FIRST_ID + c);
        w.push(kb.as_bytes(), AS_OF, Some(AS_OF + 3_600_000_000), &values)
            .expect("row fits the schema");
    }
    w
}
