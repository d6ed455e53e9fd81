//! `lookup::execute` without HTTP: parse the body, resolve the feature service, probe the
//! snapshot, render the response. A catalog of 100,000 customers × 16 features (shaped like
//! the quickstart's `customer_rfm`) and a feature service of all 16.
//!
//! `cargo bench -p fstore-edge --bench execute -- --warm-up-time 1 --measurement-time 3`
//! Throughput is per customer, so criterion's "elem/s" reads as customers per second.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fstore_edge::lookup::{self, Format};
use fstore_edge::{Catalog, LoadedView};
use fstore_snapshot::{
    F64List, FeatureRef, FeatureType, Field, KeyBuf, KeyType, Snapshot, SnapshotSchema,
    SnapshotWriter, Value,
};

const CUSTOMERS: i64 = 100_000;
const FIRST_ID: i64 = 1_000;
const DAY: i64 = 86_400_000_000;
const AS_OF: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
const CHANNELS: [&str; 4] = ["web", "app", "store", "marketplace"];
const COUNTRIES: [&str; 6] = ["DE", "FR", "GB", "NL", "ES", "US"];
const FEATURES: [(&str, FeatureType); 16] = [
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
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn snapshot() -> Snapshot {
    let schema = SnapshotSchema {
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
    };
    let mut w = SnapshotWriter::new(schema).expect("valid schema");
    let mut rng = Rng(42);
    let mut kb = KeyBuf::new();
    for c in 0..CUSTOMERS {
        let r = rng.next();
        let f = |shift: u32, m: u64| ((r >> shift) % m) as i64;
        let money = |shift: u32| ((r >> shift) % 100_000) as f64 / 100.0;
        let trend = [money(3), money(7), money(11)];
        let values = [
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
    Snapshot::from_bytes(w.finish_to_vec().expect("serializes")).expect("verifies")
}

fn catalog() -> Catalog {
    let snap = snapshot();
    let checksum = format!("{:016x}", snap.checksum());
    let view = Arc::new(LoadedView::new(snap, checksum, None));
    let mut services = BTreeMap::new();
    services.insert(
        "segmentation_v1".to_string(),
        FEATURES
            .iter()
            .map(|(n, _)| FeatureRef {
                view: "customer_rfm".into(),
                feature: (*n).into(),
            })
            .collect::<Vec<_>>(),
    );
    let c = Catalog::new(1, vec![view], &services);
    assert!(c.broken_services.is_empty(), "{:?}", c.broken_services);
    c
}

/// 256 request bodies of `per_request` random existing customers each.
fn bodies(per_request: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(7);
    (0..256)
        .map(|_| {
            let ids: Vec<String> = (0..per_request)
                .map(|_| (FIRST_ID + (rng.next() % CUSTOMERS as u64) as i64).to_string())
                .collect();
            format!(
                r#"{{"feature_service":"segmentation_v1","entities":{{"customer_id":[{}]}}}}"#,
                ids.join(",")
            )
            .into_bytes()
        })
        .collect()
}

fn execute(c: &mut Criterion) {
    let catalog = catalog();
    let now = AS_OF + DAY;
    let mut g = c.benchmark_group("execute_100k_x16");
    for per_request in [1usize, 100] {
        let bodies = bodies(per_request);
        g.throughput(Throughput::Elements(per_request as u64));
        for (format, name) in [(Format::Fstore, "fstore"), (Format::Feast, "feast")] {
            let mut out = Vec::new();
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new(name, per_request), |b| {
                b.iter(|| {
                    i = (i + 1) % bodies.len();
                    // The HTTP handler starts every response with a fresh Vec; do the same.
                    out = Vec::new();
                    let stats = lookup::execute(&catalog, &bodies[i], format, 1_000, now, &mut out)
                        .expect("lookup succeeds");
                    assert_eq!(stats.found, per_request);
                    black_box(out.len());
                })
            });
            eprintln!("{name}/{per_request}: response is {} bytes", out.len());
        }
    }
    g.finish();
}

criterion_group!(benches, execute);
criterion_main!(benches);
