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
use fstore_snapshot::testkit::{AS_OF, DAY, FEATURES, FIRST_ID, Rng, customer_rfm_writer};
use fstore_snapshot::{FeatureRef, Snapshot};

const CUSTOMERS: i64 = 100_000;

fn snapshot() -> Snapshot {
    let bytes = customer_rfm_writer(CUSTOMERS)
        .finish_to_vec()
        .expect("serializes");
    Snapshot::from_bytes(bytes).expect("verifies")
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
                .map(|_| (FIRST_ID + rng.below(CUSTOMERS as u64) as i64).to_string())
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
