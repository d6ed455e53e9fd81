//! The offline engine on the quickstart's data at scale: RFM aggregations over 2,000,000 raw
//! orders of 100,000 customers (the customer_rfm view's aggregations, evaluated as of today),
//! and a training set of 1,000,000 entity rows joined point-in-time against the aggregating
//! view and the CRM view. Data is generated from a fixed seed on first use.
//!
//! Run: `cargo bench -p fstore-cli --bench offline`

use std::collections::HashMap;

use criterion::{Criterion, criterion_group, criterion_main};
use fstore_cli::datagen::{self, GenSpec};
use fstore_snapshot::FeatureRef;

const CUSTOMERS: u64 = 100_000;
const ENTITY_ROWS: u64 = 1_000_000;
const DAY: i64 = 86_400_000_000;

/// The quickstart's definitions without the features computed by components or SQL, so the
/// figures are the aggregation engine's (the components are measured in their own benches).
fn definitions(dir: &std::path::Path) -> fstore_spec::Definitions {
    let mut defs =
        fstore_spec::parse_features_yaml(datagen::FEATURES_YAML, Some(dir)).expect("yaml");
    for v in &mut defs.feature_views {
        v.features.retain(|f| f.is_stored());
    }
    defs.on_demand_views.clear();
    defs.feature_services.clear();
    defs
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let today = (chrono::Utc::now().timestamp_micros()).div_euclid(DAY) * DAY;
    let spec = GenSpec {
        customers: CUSTOMERS,
        seed: 42,
        as_of_micros: today,
        // About 20 orders per customer a year: 2 million orders.
        activity: 1.9,
    };
    let stats = datagen::generate(&dir.path().join("data"), &spec, &|_| {}).expect("generate");
    eprintln!(
        "{} customers, {} orders in {} partitions",
        stats.customers, stats.orders, stats.partitions
    );
    let entities = dir.path().join("data/entities.parquet");
    datagen::write_entity_rows(&entities, CUSTOMERS, ENTITY_ROWS, today, 42).expect("entities");
    let defs = definitions(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let mut g = c.benchmark_group("offline");
    g.sample_size(10);
    g.bench_function("rfm_aggregations_2m_orders_100k_customers", |b| {
        b.iter(|| {
            rt.block_on(fstore_offline::materialize(
                &defs,
                "customer_rfm",
                1,
                today,
                &[],
            ))
            .expect("materialize")
        })
    });
    let batch =
        fstore_offline::read_entity_rows(std::fs::read(&entities).expect("read").into(), false)
            .expect("entity rows");
    let request = fstore_offline::HistoricalRequest {
        features: defs
            .feature_views
            .iter()
            .flat_map(|v| {
                v.features
                    .iter()
                    .map(|f| FeatureRef::parse(&format!("{}:{}", v.name, f.name)).expect("ref"))
            })
            .collect(),
        full_feature_names: true,
        timestamp_column: "event_timestamp".into(),
    };
    g.bench_function("training_set_1m_rows_aggregates_and_crm", |b| {
        b.iter(|| {
            rt.block_on(fstore_offline::historical(
                &defs,
                &batch,
                &request,
                &HashMap::new(),
            ))
            .expect("historical")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
