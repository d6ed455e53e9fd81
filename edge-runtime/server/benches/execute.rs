//! `lookup::execute` without HTTP: parse the body, resolve the feature service, probe the
//! snapshot, render the response. A catalog of 100,000 customers × 16 features (shaped like
//! the quickstart's `customer_rfm`) and a feature service of all 16.
//!
//! `cargo bench -p fstore-edge --bench execute -- --warm-up-time 1 --measurement-time 3`
//! Throughput is per customer, so criterion's "elem/s" reads as customers per second.

mod common;

use std::hint::black_box;

use common::{bodies, catalog};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fstore_edge::lookup::{self, Format};
use fstore_snapshot::testkit::{AS_OF, DAY};

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
