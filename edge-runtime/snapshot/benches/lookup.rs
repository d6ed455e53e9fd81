//! In-process lookup cost on a snapshot shaped like the quickstart's `customer_rfm`:
//! 1,000,000 customers (int64 key) × 16 features (7 int64, 5 float64, 2 strings, a bool, a
//! timestamp and a list<float64> of 3), built in memory once.
//!
//! `cargo bench -p fstore-snapshot --bench lookup -- --warm-up-time 1 --measurement-time 3`
//! Set `FSTORE_BENCH_BUILD=1` to also time building the 1M-row snapshot (slow: ~seconds/iter).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fstore_snapshot::{
    F64List, FeatureType, Field, KeyBuf, KeyType, Snapshot, SnapshotSchema, SnapshotWriter, Value,
    json,
};

const CUSTOMERS: i64 = 1_000_000;
const FIRST_ID: i64 = 1_000;
const DAY: i64 = 86_400_000_000;
const AS_OF: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
const CHANNELS: [&str; 4] = ["web", "app", "store", "marketplace"];
const COUNTRIES: [&str; 6] = ["DE", "FR", "GB", "NL", "ES", "US"];

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
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn schema() -> SnapshotSchema {
    use FeatureType::*;
    let features = [
        ("recency_days", Int64),
        ("frequency_30d", Int64),
        ("frequency_90d", Int64),
        ("frequency_365d", Int64),
        ("monetary_30d", Float64),
        ("monetary_90d", Float64),
        ("monetary_365d", Float64),
        ("avg_order_value", Float64),
        ("max_order_value", Float64),
        ("days_since_signup", Int64),
        ("tenure_months", Int64),
        ("preferred_channel", String),
        ("country", String),
        ("is_active", Bool),
        ("last_order_at", Timestamp),
        ("spend_trend", ListFloat64),
    ];
    SnapshotSchema {
        view: "customer_rfm".into(),
        version: 1,
        keys: vec![Field {
            name: "customer_id".into(),
            ty: KeyType::Int64,
        }],
        features: features
            .iter()
            .map(|(n, ty)| Field {
                name: (*n).into(),
                ty: *ty,
            })
            .collect(),
        ttl_seconds: 45 * 86_400,
        created_at_micros: AS_OF,
    }
}

fn writer(customers: i64) -> SnapshotWriter {
    let mut w = SnapshotWriter::new(schema()).expect("valid schema");
    w.reserve(customers as usize, 200);
    let mut rng = Rng(42);
    let mut kb = KeyBuf::new();
    for c in 0..customers {
        let r = rng.next();
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

fn build(customers: i64) -> Snapshot {
    let bytes = writer(customers).finish_to_vec().expect("serializes");
    Snapshot::from_bytes(bytes).expect("verifies")
}

/// Encoded keys, visited in random order so every lookup is a cold-ish probe of the 1M rows.
fn keys(n: usize, base: i64, range: u64) -> Vec<[u8; 8]> {
    let mut rng = Rng(7);
    (0..n)
        .map(|_| (base + rng.below(range) as i64).to_le_bytes())
        .collect()
}

fn lookups(c: &mut Criterion) {
    let t = Instant::now();
    let snap = build(CUSTOMERS);
    let n_features = snap.schema().features.len();
    eprintln!(
        "built {} rows × {} features, {:.1} MiB, in {:.2}s",
        snap.len(),
        n_features,
        snap.size_bytes() as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    let hits = keys(1 << 16, FIRST_ID, CUSTOMERS as u64);
    let misses = keys(1 << 16, FIRST_ID + CUSTOMERS, CUSTOMERS as u64);

    let mut g = c.benchmark_group("snapshot_1m_x16");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("get_and_read_16_values", |b| {
        b.iter(|| {
            i = (i + 1) & (hits.len() - 1);
            let row = snap.get(&hits[i]).expect("key exists");
            for f in 0..n_features {
                black_box(row.value(f));
            }
        })
    });
    // The same on 1,024 keys whose rows stay in cache: the CPU cost without memory latency.
    let hot = &hits[..1024];
    g.bench_function("get_and_read_16_values_cached", |b| {
        b.iter(|| {
            i = (i + 1) & (hot.len() - 1);
            let row = snap.get(&hot[i]).expect("key exists");
            for f in 0..n_features {
                black_box(row.value(f));
            }
        })
    });
    let mut out = Vec::with_capacity(1024);
    g.bench_function("get_and_render_16_values_json", |b| {
        b.iter(|| {
            i = (i + 1) & (hits.len() - 1);
            out.clear();
            let row = snap.get(&hits[i]).expect("key exists");
            for f in 0..n_features {
                json::write_value(&mut out, &row.value(f));
                out.push(b',');
            }
            black_box(out.len());
        })
    });
    g.bench_function("get_miss", |b| {
        b.iter(|| {
            i = (i + 1) & (misses.len() - 1);
            black_box(snap.get(&misses[i]).is_none());
        })
    });
    g.finish();
}

fn build_bench(c: &mut Criterion) {
    if std::env::var_os("FSTORE_BENCH_BUILD").is_none() {
        return;
    }
    let mut g = c.benchmark_group("snapshot_build_1m_x16");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(CUSTOMERS as u64));
    g.bench_function("push_1m_rows", |b| {
        b.iter(|| black_box(writer(CUSTOMERS).len()))
    });
    g.bench_function("finish_to_vec", |b| {
        b.iter_batched(
            || writer(CUSTOMERS),
            |w| black_box(w.finish_to_vec().expect("serializes").len()),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("from_bytes_verify", |b| {
        b.iter_batched(
            || writer(CUSTOMERS).finish_to_vec().expect("serializes"),
            |bytes| black_box(Snapshot::from_bytes(bytes).expect("verifies").len()),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, lookups, build_bench);
criterion_main!(benches);
