//! Crossing into a component: rows per second through `compute-batch` (the offline path) and
//! the cost of one `compute` call with 16 inputs (the edge path), on the example components.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fstore_wasm_host::{Column, ColumnData, Host, HostConfig, Limits, Value};

fn component(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../transforms/components/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Same chunk size as materialization uses.
const ROWS: u32 = 16 * 1024;

fn batch(c: &mut Criterion) {
    let host = Host::new(HostConfig::default()).expect("host");
    let t = host
        .load(&component("rfm_score"), &[], Limits::default())
        .expect("load");
    let n = ROWS as usize;
    // Seeded, deterministic inputs spread over every score bucket.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let recency: Vec<i64> = (0..n).map(|_| (next() % 200) as i64).collect();
    let frequency: Vec<i64> = (0..n).map(|_| (next() % 12) as i64).collect();
    let monetary: Vec<f64> = (0..n).map(|_| (next() % 200_000) as f64 / 100.0).collect();
    let inputs = [
        Column {
            data: ColumnData::Int64(recency),
            validity: Vec::new(),
        },
        Column {
            data: ColumnData::Int64(frequency),
            validity: Vec::new(),
        },
        Column {
            data: ColumnData::Float64(monetary),
            validity: Vec::new(),
        },
    ];
    let mut g = c.benchmark_group("rfm_score");
    g.throughput(Throughput::Elements(u64::from(ROWS)));
    g.bench_function("compute_batch_16k_rows", |b| {
        b.iter(|| black_box(t.call_batch(ROWS, black_box(&inputs)).expect("batch")))
    });
    g.finish();
}

fn row(c: &mut Criterion) {
    let host = Host::new(HostConfig::default()).expect("host");
    let t = host
        .load(&component("rfm_score"), &[], Limits::default())
        .expect("load");
    let inputs = [Value::Int64(12), Value::Int64(4), Value::Float64(321.5)];
    c.bench_function("rfm_score/compute_one_row", |b| {
        b.iter(|| black_box(t.call(black_box(&inputs)).expect("call")))
    });
}

criterion_group!(benches, batch, row);
criterion_main!(benches);
