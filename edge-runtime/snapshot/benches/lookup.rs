//! In-process lookup cost on a snapshot shaped like the quickstart's `customer_rfm`:
//! 1,000,000 customers (int64 key) × 16 features (7 int64, 5 float64, 2 strings, a bool, a
//! timestamp and a list<float64> of 3), built in memory once.
//!
//! `cargo bench -p fstore-snapshot --bench lookup -- --warm-up-time 1 --measurement-time 3`
//! Set `FSTORE_BENCH_BUILD=1` to also time building the 1M-row snapshot (slow: ~seconds/iter).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fstore_snapshot::testkit::{FIRST_ID, Rng, customer_rfm_writer as writer};
use fstore_snapshot::{Snapshot, json};

const CUSTOMERS: i64 = 1_000_000;

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
