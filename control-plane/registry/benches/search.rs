//! Catalog search and apply on a large registry, on SQLite and (when
//! `FSTORE_TEST_POSTGRES_URL` reaches a server) PostgreSQL: 500 feature views of 20 features
//! each, 10,000 features in all, every view with the same feature templates so that common
//! words match thousands of documents.
//!
//! `cargo bench -p fstore-registry --bench search`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fstore_registry::{Registry, SearchQuery};
use fstore_snapshot::{FeatureRef, FeatureType, Field, KeyType};
use fstore_spec::{
    Definitions, Entity, FeatureDef, FeatureService, FeatureView, Source, SourceFormat,
};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

const VIEWS: usize = 500;

/// Twenty features per view, named and described the way a real RFM view is.
const TEMPLATES: [(&str, &str, FeatureType); 20] = [
    (
        "recency_days",
        "Days since the last order",
        FeatureType::Int64,
    ),
    ("orders_7d", "Orders in the last 7 days", FeatureType::Int64),
    (
        "orders_30d",
        "Orders in the last 30 days",
        FeatureType::Int64,
    ),
    (
        "orders_90d",
        "Orders in the last 90 days",
        FeatureType::Int64,
    ),
    (
        "orders_365d",
        "Orders in the last 365 days",
        FeatureType::Int64,
    ),
    ("spend_7d", "Spend in the last 7 days", FeatureType::Float64),
    (
        "spend_30d",
        "Spend in the last 30 days",
        FeatureType::Float64,
    ),
    (
        "spend_90d",
        "Spend in the last 90 days",
        FeatureType::Float64,
    ),
    (
        "spend_365d",
        "Spend in the last 365 days",
        FeatureType::Float64,
    ),
    (
        "avg_order_value",
        "Mean order value over a year",
        FeatureType::Float64,
    ),
    (
        "max_order_value",
        "Largest order in a year",
        FeatureType::Float64,
    ),
    (
        "order_value_stddev",
        "Spread of order values over a year",
        FeatureType::Float64,
    ),
    (
        "channels_365d",
        "Distinct channels ordered through in a year",
        FeatureType::Int64,
    ),
    (
        "last_channel",
        "Channel of the latest order",
        FeatureType::String,
    ),
    (
        "tenure_months",
        "Months since the first order",
        FeatureType::Int64,
    ),
    ("is_active", "Ordered within 90 days", FeatureType::Bool),
    (
        "r_score",
        "Recency score; 5 is the most recent",
        FeatureType::Int64,
    ),
    (
        "f_score",
        "Frequency score over 90 days",
        FeatureType::Int64,
    ),
    ("m_score", "Monetary score over 90 days", FeatureType::Int64),
    (
        "segment",
        "Marketing segment from the RFM scores",
        FeatureType::String,
    ),
];

fn feature(name: &str, description: &str, ty: FeatureType, pii: bool) -> FeatureDef {
    FeatureDef {
        description: description.into(),
        tags: if pii { vec!["pii".into()] } else { vec![] },
        ..FeatureDef::new(name, ty)
    }
}

/// The catalog; `generation` changes one view's description so each apply has work to do.
fn definitions(generation: usize) -> Definitions {
    let feature_views = (0..VIEWS)
        .map(|i| FeatureView {
            name: format!("region_{i:03}_rfm"),
            entities: vec!["customer".into()],
            source: "orders".into(),
            ttl_seconds: 0,
            features: TEMPLATES
                .iter()
                .map(|(n, d, t)| feature(n, d, *t, *n == "last_channel"))
                .collect(),
            description: format!(
                "RFM features for region {i} (generation {})",
                if i == 0 { generation } else { 0 }
            ),
            owner: format!("team-{}", i % 10),
            tags: vec!["segmentation".into()],
            shards: None,
            steps: vec![],
            schedule: None,
            max_rejected: None,
            checks: Vec::new(),
            drift: None,
        })
        .collect();
    let feature_services = (0..VIEWS / 10)
        .map(|i| FeatureService {
            name: format!("model_{i:02}"),
            features: vec![FeatureRef {
                view: format!("region_{:03}_rfm", i * 10),
                feature: "spend_30d".into(),
            }],
            description: format!("Model {i}"),
            owner: String::new(),
            tags: vec![],
        })
        .collect();
    let mut defs = Definitions {
        entities: vec![Entity {
            name: "customer".into(),
            join_keys: vec![Field {
                name: "customer_id".into(),
                ty: KeyType::Int64,
            }],
            description: "A shopper".into(),
            owner: String::new(),
            tags: vec![],
        }],
        sources: vec![Source {
            name: "orders".into(),
            path: "data/orders/".into(),
            format: SourceFormat::Parquet,
            query: None,
            timestamp_field: "order_ts".into(),
            created_timestamp_field: None,
            retention_seconds: None,
            description: "Every order".into(),
            owner: String::new(),
            tags: vec![],
        }],
        feature_views,
        feature_services,
        ..Definitions::default()
    };
    defs.sort();
    defs
}

fn query(q: &str) -> SearchQuery {
    SearchQuery {
        q: q.into(),
        ..SearchQuery::default()
    }
}

fn bench_backend(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, reg: &dyn Registry) {
    rt.block_on(reg.apply(&definitions(0), "bench", "load"))
        .expect("apply");
    let total = rt
        .block_on(reg.search(&SearchQuery::default()))
        .expect("count")
        .total;
    assert!(total > VIEWS * TEMPLATES.len(), "{total} documents");
    let mut g = c.benchmark_group(format!("catalog_{name}"));
    g.sample_size(20);
    for (label, q) in [
        ("common_words", query("spend in the last month")),
        ("rare_word", query("stddev")),
        ("prefix", query("tenu")),
        ("name", query("region_042_rfm")),
        (
            "filter_only",
            SearchQuery {
                tag: Some("pii".into()),
                ..SearchQuery::default()
            },
        ),
    ] {
        g.bench_function(format!("search_{label}"), |b| {
            b.iter(|| black_box(rt.block_on(reg.search(&q)).expect("search")))
        });
    }
    let mut generation = 0;
    g.bench_function("apply_rebuilds_catalog", |b| {
        b.iter(|| {
            generation += 1;
            rt.block_on(reg.apply(&definitions(generation), "bench", "bump"))
                .expect("apply")
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let sqlite = rt
        .block_on(fstore_registry::open(
            dir.path().join("registry.db").to_str().expect("utf-8"),
        ))
        .expect("sqlite");
    bench_backend(c, &rt, "sqlite", sqlite.as_ref());

    let base = std::env::var("FSTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let db = format!("fstore_bench_{}", std::process::id());
    let admin = rt.block_on(async {
        let mut conn = PgConnection::connect(&base).await.ok()?;
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
            .await
            .ok()?;
        Some(conn)
    });
    let Some(mut admin) = admin else {
        eprintln!("PostgreSQL at {base} is not reachable: benchmarked SQLite only");
        return;
    };
    let url = match base.rsplit_once('/') {
        Some((prefix, _)) => format!("{prefix}/{db}"),
        None => return,
    };
    let pg = rt.block_on(fstore_registry::open(&url)).expect("postgres");
    bench_backend(c, &rt, "postgres", pg.as_ref());
    drop(pg);
    let _ = rt.block_on(admin.execute(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
    ))));
}

criterion_group!(search, benches);
criterion_main!(search);
