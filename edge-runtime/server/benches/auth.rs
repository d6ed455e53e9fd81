//! What authentication, authorization and PII masking add to a lookup at the edge, measured
//! in one run against the same catalog: `execute_observed` (no auth) against
//! `execute_authorized` with a token checked per request (parse, SHA-256, constant-time
//! compare, expiry) in a document of 1,000 tokens, `read_online` checked on the service and
//! the view, and `country` hashed (HMAC-SHA-256) for a consumer, or not for a `read_pii`
//! holder. 100,000 customers × 16 features, the whole service per request.
//!
//! `cargo bench -p fstore-edge --bench auth -- --warm-up-time 1 --measurement-time 3`

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use common::{bodies, catalog};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fstore_access::{AccessDoc, Gate, Mask, Permission, Role, TokenGrant, builtin_roles};
use fstore_edge::Metrics;
use fstore_edge::lookup::{self, Format, Observe};
use fstore_snapshot::testkit::{AS_OF, DAY};

/// A document of 1,000 tokens; returns it with a consumer's and a PII reader's token.
fn gate() -> (Gate, String, String) {
    let mut doc = AccessDoc::new(1, "2026-12-04T00:00:00Z".into(), "00".repeat(32));
    doc.roles = builtin_roles();
    doc.roles.push(Role {
        name: "support".into(),
        description: String::new(),
        permissions: vec![
            Permission::parse("read_online,read_pii:*:customer_*,segmentation_*")
                .expect("permission"),
        ],
    });
    let mut tokens = Vec::new();
    for i in 0..1_000 {
        let t = fstore_access::generate_token().expect("token");
        doc.tokens.push(TokenGrant {
            id: t.id.clone(),
            name: format!("t{i}"),
            role: if i % 2 == 0 { "consumer" } else { "support" }.into(),
            secret_sha256: t.secret_sha256.clone(),
            expires_at: Some(i64::MAX),
        });
        tokens.push(t.token);
    }
    doc.privacy.insert(
        "customer_rfm".into(),
        BTreeMap::from([("country".to_string(), Mask::Hash)]),
    );
    let consumer = tokens[500].clone();
    let support = tokens[501].clone();
    (Gate::new(doc).expect("gate"), consumer, support)
}

fn auth(c: &mut Criterion) {
    let catalog = catalog();
    let (gate, consumer, support) = gate();
    let metrics = Metrics::default();
    let now = AS_OF + DAY;
    let mut g = c.benchmark_group("auth_100k_x16");
    for per_request in [1usize, 100] {
        let bodies = bodies(per_request);
        g.throughput(Throughput::Elements(per_request as u64));
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("open", per_request), |b| {
            b.iter(|| {
                i = (i + 1) % bodies.len();
                let mut out = Vec::new();
                let observe = Observe {
                    metrics: &metrics,
                    started: Instant::now(),
                };
                let stats = lookup::execute_observed(
                    &catalog,
                    &bodies[i],
                    Format::Fstore,
                    1_000,
                    now,
                    &mut out,
                    observe,
                )
                .expect("lookup succeeds");
                black_box((stats.found, out.len()));
            })
        });
        for (name, token) in [("consumer_masked", &consumer), ("pii_reader", &support)] {
            g.bench_function(BenchmarkId::new(name, per_request), |b| {
                b.iter(|| {
                    i = (i + 1) % bodies.len();
                    let mut out = Vec::new();
                    let caller = gate
                        .authenticate(Some(token), now / 1_000_000)
                        .expect("valid");
                    let observe = Observe {
                        metrics: &metrics,
                        started: Instant::now(),
                    };
                    let mut pii = Vec::new();
                    let stats = lookup::execute_authorized(
                        &catalog,
                        &bodies[i],
                        Format::Fstore,
                        1_000,
                        now,
                        &mut out,
                        observe,
                        lookup::Access {
                            caller,
                            gate: &gate,
                        },
                        &mut pii,
                    )
                    .expect("lookup succeeds");
                    assert_eq!(pii.len(), 1, "the country read is audited");
                    black_box((stats.found, out.len()));
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
