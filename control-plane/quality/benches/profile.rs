//! What the quality gate adds to a run: profiling a `customer_rfm`-shaped snapshot (the
//! testkit's 16 features) with a few per-row rules, and drift of two profiles.

use criterion::{Criterion, criterion_group, criterion_main};
use fstore_quality::Profiler;
use fstore_snapshot::{Snapshot, testkit};
use fstore_spec::{Check, FeatureDef, FeatureView, Rule, Severity};

fn view(snap: &Snapshot) -> FeatureView {
    let features = snap
        .schema()
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut def = FeatureDef::new(&f.name, f.ty);
            // Every other feature carries a per-row rule, as a well-guarded view would.
            if i % 2 == 0 {
                def.checks = vec![Check {
                    rule: Rule::NotNull,
                    severity: Severity::Warn,
                }];
            }
            def
        })
        .collect();
    FeatureView {
        name: "customer_rfm".into(),
        entities: vec!["customer".into()],
        source: "orders".into(),
        ttl_seconds: 0,
        features,
        schedule: None,
        max_rejected: None,
        checks: Vec::new(),
        drift: None,
        description: String::new(),
        owner: String::new(),
        tags: Vec::new(),
        shards: None,
        steps: Vec::new(),
    }
}

fn profile(snap: &Snapshot, v: &FeatureView) -> fstore_quality::Profile {
    let mut p = Profiler::new(snap.schema(), v).expect("profiler");
    for row in snap.rows() {
        p.add(&row);
    }
    p.finish()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("quality");
    g.sample_size(10);
    for customers in [100_000i64, 1_000_000] {
        let bytes = testkit::customer_rfm_writer(customers)
            .finish_to_vec()
            .expect("snapshot");
        let snap = Snapshot::from_bytes(bytes).expect("opens");
        let v = view(&snap);
        g.bench_function(
            format!("profile {customers} customers x 16 features"),
            |b| b.iter(|| profile(&snap, &v)),
        );
        let d = profile(&snap, &v).distributions();
        let spec = fstore_spec::Drift {
            baseline: fstore_spec::Baseline::Previous,
            psi: Some(0.2),
            ks: Some(0.1),
            js: Some(0.1),
            severity: Severity::Warn,
            features: Vec::new(),
        };
        g.bench_function(
            format!("drift of {customers} customers x 16 features"),
            |b| b.iter(|| fstore_quality::drift(&spec, &d, &d)),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
