//! The behaviour every [`Registry`] backend must share, written once so SQLite (used on
//! laptops and in CI) cannot pass tests that PostgreSQL (used in production) would fail.
//!
//! This is a test helper compiled into the library so integration tests, and other crates'
//! tests, can run it against any registry: it panics on the first failed check. It must be
//! given an empty registry.

use fstore_snapshot::{FeatureRef, FeatureType, Field, KeyType};
use fstore_spec::{
    Definitions, Entity, FeatureDef, FeatureService, FeatureView, ObjectKind, Source, SourceFormat,
};

use crate::{Registry, RegistryError, SnapshotRecord};

/// Runs every check against `reg`, which must be empty.
pub async fn run_all(reg: &dyn Registry) {
    empty_registry(reg).await;
    apply_create_round_trips(reg).await;
    reapply_same_bumps_nothing(reg).await;
    changed_view_gets_new_version(reg).await;
    removed_service_leaves_tombstone(reg).await;
    recreated_name_continues_its_history(reg).await;
    get_and_list_objects(reg).await;
    rejected_apply_changes_nothing(reg).await;
    concurrent_applies_serialise(reg).await;
    sequences(reg).await;
    snapshots(reg).await;
    apply_nothing_deletes_everything(reg).await;
}

fn entity(name: &str, key: &str, ty: KeyType) -> Entity {
    Entity {
        name: name.into(),
        join_keys: vec![Field {
            name: key.into(),
            ty,
        }],
        description: String::new(),
        owner: "risk-team".into(),
        tags: vec![],
    }
}

fn feature(name: &str, ty: FeatureType) -> FeatureDef {
    FeatureDef {
        name: name.into(),
        ty,
        column: None,
        transform: None,
        output: None,
        sql: None,
        aggregation: None,
        window_seconds: None,
        unit_seconds: None,
        description: String::new(),
        tags: vec![],
    }
}

fn view(name: &str, entity: &str, features: Vec<FeatureDef>) -> FeatureView {
    FeatureView {
        name: name.into(),
        entities: vec![entity.into()],
        source: "transactions".into(),
        ttl_seconds: 86_400,
        features,
        description: format!("{name} features"),
        owner: String::new(),
        tags: vec!["core".into()],
        steps: vec![],
    }
}

fn service(name: &str, refs: &[(&str, &str)]) -> FeatureService {
    FeatureService {
        name: name.into(),
        features: refs
            .iter()
            .map(|(v, f)| FeatureRef {
                view: (*v).into(),
                feature: (*f).into(),
            })
            .collect(),
        description: String::new(),
        owner: String::new(),
        tags: vec![],
    }
}

/// The starting definitions. `Device` is capitalised on purpose: bytewise it sorts before
/// `customer`, while PostgreSQL's usual collations put it after, so it catches a backend that
/// lets the database collation decide the order.
fn fixture() -> Definitions {
    let mut d = Definitions {
        entities: vec![
            entity("customer", "customer_id", KeyType::Int64),
            entity("merchant", "merchant_id", KeyType::String),
            entity("Device", "device_id", KeyType::String),
        ],
        sources: vec![Source {
            name: "transactions".into(),
            path: "s3://lake/transactions/".into(),
            format: SourceFormat::Parquet,
            query: None,
            timestamp_field: "event_time".into(),
            created_timestamp_field: None,
            description: String::new(),
            owner: String::new(),
            tags: vec![],
        }],
        // Every kind round-trips, including the ones apply fills in (steps, resolved).
        request_sources: vec![fstore_spec::RequestSource {
            name: "checkout".into(),
            fields: vec![fstore_snapshot::Field {
                name: "cart_value".into(),
                ty: FeatureType::Float64,
            }],
            description: String::new(),
            owner: String::new(),
            tags: vec![],
        }],
        transforms: vec![fstore_spec::Transform {
            name: "double".into(),
            component: "transforms/double.wasm".into(),
            config: [("factor".to_string(), "2".to_string())].into(),
            timeout_ms: Some(5),
            fuel: None,
            description: "Doubles the cart.".into(),
            owner: String::new(),
            tags: vec![],
            resolved: Some(fstore_spec::ResolvedTransform {
                sha256: "ab".repeat(32),
                size_bytes: 1234,
                inputs: vec![fstore_snapshot::Field {
                    name: "cart_value".into(),
                    ty: FeatureType::Float64,
                }],
                outputs: vec![fstore_snapshot::Field {
                    name: "doubled".into(),
                    ty: FeatureType::Float64,
                }],
            }),
        }],
        on_demand_views: vec![fstore_spec::OnDemandView {
            name: "cart".into(),
            sources: vec!["customer_rfm".into()],
            request_source: Some("checkout".into()),
            features: vec![FeatureDef {
                transform: Some("double".into()),
                output: Some("doubled".into()),
                ..feature("cart_doubled", FeatureType::Float64)
            }],
            description: String::new(),
            owner: String::new(),
            tags: vec![],
            steps: vec![fstore_snapshot::TransformStep {
                transform: "double".into(),
                sha256: "ab".repeat(32),
                inputs: vec!["cart_value".into()],
                outputs: vec![fstore_snapshot::Field {
                    name: "cart_doubled".into(),
                    ty: FeatureType::Float64,
                }],
                config: vec![("factor".into(), "2".into())],
                timeout_ms: 5,
                fuel: 1000,
            }],
        }],
        feature_views: vec![
            view(
                "merchant_stats",
                "merchant",
                vec![feature("risk", FeatureType::Float64)],
            ),
            view(
                "customer_rfm",
                "customer",
                vec![
                    feature("recency", FeatureType::Int64),
                    feature("frequency", FeatureType::Int64),
                    feature("monetary", FeatureType::Float64),
                ],
            ),
        ],
        feature_services: vec![
            service(
                "fraud_v1",
                &[("customer_rfm", "recency"), ("merchant_stats", "risk")],
            ),
            service("churn_v1", &[("customer_rfm", "frequency")]),
        ],
    };
    d.sort();
    d
}

/// The fixture after the customer_rfm change.
fn fixture_v2() -> Definitions {
    let mut d = fixture();
    for v in &mut d.feature_views {
        if v.name == "customer_rfm" {
            v.ttl_seconds = 7 * 86_400;
        }
    }
    d
}

/// The fixture after the customer_rfm change and the removal of churn_v1.
fn fixture_v3() -> Definitions {
    let mut d = fixture_v2();
    d.feature_services.retain(|s| s.name != "churn_v1");
    d
}

fn all_names(d: &Definitions) -> Vec<(ObjectKind, String)> {
    let mut v: Vec<_> = d.objects().into_iter().map(|(k, n, _)| (k, n)).collect();
    v.sort();
    v
}

fn spec_of(d: &Definitions, kind: ObjectKind, name: &str) -> serde_json::Value {
    d.objects()
        .into_iter()
        .find(|(k, n, _)| *k == kind && n == name)
        .map(|(_, _, j)| j)
        .expect("fixture object exists")
}

fn assert_rfc3339_utc(t: &str) {
    let parsed = chrono::DateTime::parse_from_rfc3339(t)
        .unwrap_or_else(|e| panic!("`{t}` is not RFC 3339: {e}"));
    assert_eq!(parsed.offset().local_minus_utc(), 0, "`{t}` is not in UTC");
}

async fn empty_registry(reg: &dyn Registry) {
    assert!(
        matches!(reg.backend(), "sqlite" | "postgres"),
        "unexpected backend name {}",
        reg.backend()
    );
    let defs = reg
        .definitions()
        .await
        .expect("definitions of empty registry");
    assert_eq!(defs, Definitions::default(), "registry must start empty");
    for kind in ObjectKind::ALL {
        assert!(reg.list_objects(kind).await.expect("list").is_empty());
    }
    assert_eq!(
        reg.get_object(ObjectKind::FeatureView, "customer_rfm")
            .await
            .expect("get"),
        None
    );
    assert!(
        reg.history(ObjectKind::FeatureView, "customer_rfm")
            .await
            .expect("history")
            .is_empty()
    );
    assert!(
        reg.list_snapshots(None)
            .await
            .expect("snapshots")
            .is_empty()
    );
}

async fn apply_create_round_trips(reg: &dyn Registry) {
    let defs = fixture();
    let out = reg
        .apply(&defs, "alice", "initial import")
        .await
        .expect("first apply");
    assert_eq!(out.created, all_names(&defs), "everything is created");
    assert!(out.updated.is_empty() && out.deleted.is_empty());
    assert_eq!(reg.definitions().await.expect("definitions"), defs);

    for (kind, name, spec) in defs.objects() {
        let o = reg
            .get_object(kind, &name)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{kind} {name} was applied"));
        assert_eq!((o.kind, o.version, &o.spec), (kind, 1, &spec));
        assert_rfc3339_utc(&o.created_at);
        assert_eq!(o.created_at, o.updated_at);
        let h = reg.history(kind, &name).await.expect("history");
        assert_eq!(h.len(), 1, "{kind} {name} has one version");
        assert_eq!(h[0].version, 1);
        assert_eq!(h[0].spec.as_ref(), Some(&spec));
        assert_eq!(
            (h[0].author.as_str(), h[0].message.as_str()),
            ("alice", "initial import")
        );
        assert_rfc3339_utc(&h[0].created_at);
    }
}

async fn reapply_same_bumps_nothing(reg: &dyn Registry) {
    let defs = fixture();
    let out = reg.apply(&defs, "bob", "no-op").await.expect("re-apply");
    assert!(out.is_empty(), "nothing changed, got {out:?}");
    for (kind, name, _) in defs.objects() {
        let o = reg
            .get_object(kind, &name)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(o.version, 1, "{kind} {name} keeps version 1");
        assert_eq!(reg.history(kind, &name).await.expect("history").len(), 1);
    }
    assert_eq!(reg.definitions().await.expect("definitions"), defs);
}

async fn changed_view_gets_new_version(reg: &dyn Registry) {
    let before = reg
        .get_object(ObjectKind::FeatureView, "customer_rfm")
        .await
        .expect("get")
        .expect("present");
    let defs = fixture_v2();
    let out = reg
        .apply(&defs, "bob", "longer ttl")
        .await
        .expect("apply change");
    assert_eq!(
        out.updated,
        vec![(ObjectKind::FeatureView, "customer_rfm".to_string())]
    );
    assert!(out.created.is_empty() && out.deleted.is_empty());

    let o = reg
        .get_object(ObjectKind::FeatureView, "customer_rfm")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(o.version, 2);
    assert_eq!(
        o.spec,
        spec_of(&defs, ObjectKind::FeatureView, "customer_rfm")
    );
    assert_eq!(
        o.created_at, before.created_at,
        "creation time survives updates"
    );
    assert!(o.updated_at >= before.updated_at);

    let h = reg
        .history(ObjectKind::FeatureView, "customer_rfm")
        .await
        .expect("history");
    let summary: Vec<_> = h
        .iter()
        .map(|v| (v.version, v.author.as_str(), v.message.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![(1, "alice", "initial import"), (2, "bob", "longer ttl")]
    );
    assert_eq!(
        h[0].spec,
        Some(spec_of(&fixture(), ObjectKind::FeatureView, "customer_rfm"))
    );
    assert_eq!(h[1].spec, Some(o.spec.clone()));

    for (kind, name, _) in defs.objects() {
        if name != "customer_rfm" {
            let o = reg
                .get_object(kind, &name)
                .await
                .expect("get")
                .expect("present");
            assert_eq!(o.version, 1, "{kind} {name} was not touched");
        }
    }
    assert_eq!(reg.definitions().await.expect("definitions"), defs);
}

async fn removed_service_leaves_tombstone(reg: &dyn Registry) {
    let defs = fixture_v3();
    let out = reg
        .apply(&defs, "carol", "retire churn model")
        .await
        .expect("apply removal");
    assert_eq!(
        out.deleted,
        vec![(ObjectKind::FeatureService, "churn_v1".to_string())]
    );
    assert!(out.created.is_empty() && out.updated.is_empty());
    assert_eq!(
        reg.get_object(ObjectKind::FeatureService, "churn_v1")
            .await
            .expect("get"),
        None
    );
    assert_eq!(reg.definitions().await.expect("definitions"), defs);

    let h = reg
        .history(ObjectKind::FeatureService, "churn_v1")
        .await
        .expect("history");
    assert_eq!(h.len(), 2, "creation plus tombstone");
    assert_eq!(h[1].version, 2);
    assert_eq!(h[1].spec, None, "tombstone has no spec");
    assert_eq!(
        (h[1].author.as_str(), h[1].message.as_str()),
        ("carol", "retire churn model")
    );
}

async fn recreated_name_continues_its_history(reg: &dyn Registry) {
    let out = reg
        .apply(&fixture_v2(), "dave", "bring churn back")
        .await
        .expect("re-create");
    assert_eq!(
        out.created,
        vec![(ObjectKind::FeatureService, "churn_v1".to_string())]
    );
    let o = reg
        .get_object(ObjectKind::FeatureService, "churn_v1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(o.version, 3, "numbering continues past the tombstone");
    let versions: Vec<_> = reg
        .history(ObjectKind::FeatureService, "churn_v1")
        .await
        .expect("history")
        .iter()
        .map(|v| (v.version, v.spec.is_some()))
        .collect();
    assert_eq!(versions, vec![(1, true), (2, false), (3, true)]);

    let out = reg
        .apply(&fixture_v3(), "carol", "retire churn model again")
        .await
        .expect("remove again");
    assert_eq!(out.deleted.len(), 1);
}

async fn get_and_list_objects(reg: &dyn Registry) {
    let defs = fixture_v3();
    for kind in ObjectKind::ALL {
        let listed = reg.list_objects(kind).await.expect("list");
        let expected: Vec<_> = defs
            .objects()
            .into_iter()
            .filter(|(k, _, _)| *k == kind)
            .collect();
        let mut expected_names: Vec<_> = expected.iter().map(|(_, n, _)| n.clone()).collect();
        expected_names.sort();
        let names: Vec<_> = listed.iter().map(|o| o.name.clone()).collect();
        assert_eq!(
            names, expected_names,
            "{kind} objects sorted bytewise by name"
        );
        for o in &listed {
            assert_eq!(o.kind, kind);
            assert_eq!(o.spec, spec_of(&defs, kind, &o.name));
            let got = reg.get_object(kind, &o.name).await.expect("get");
            assert_eq!(got.as_ref(), Some(o));
        }
    }
    let entities: Vec<_> = reg
        .list_objects(ObjectKind::Entity)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(entities, ["Device", "customer", "merchant"]);
    // Names are per kind: a view name is not an entity.
    assert_eq!(
        reg.get_object(ObjectKind::Entity, "customer_rfm")
            .await
            .expect("get"),
        None
    );
}

async fn rejected_apply_changes_nothing(reg: &dyn Registry) {
    let before = reg.definitions().await.expect("definitions");
    let mut bad = fixture();
    bad.entities
        .push(entity("customer", "other_id", KeyType::String));
    let err = reg
        .apply(&bad, "eve", "duplicate")
        .await
        .expect_err("a name defined twice is refused");
    assert!(matches!(err, RegistryError::Invalid(_)), "got {err:?}");
    assert_eq!(reg.definitions().await.expect("definitions"), before);
}

async fn concurrent_applies_serialise(reg: &dyn Registry) {
    let mut defs = fixture_v3();
    for s in &mut defs.feature_services {
        s.description = "raced".into();
    }
    let outcomes = futures::future::join_all(
        (0..8).map(|i| reg.apply(&defs, "racer", if i == 0 { "a" } else { "b" })),
    )
    .await;
    let mut updated = 0;
    for out in outcomes {
        let out = out.expect("concurrent apply succeeds");
        assert!(out.created.is_empty() && out.deleted.is_empty());
        updated += out.updated.len();
    }
    assert_eq!(updated, 1, "exactly one racing apply sees the change");
    let o = reg
        .get_object(ObjectKind::FeatureService, "fraud_v1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(o.version, 2);
    assert_eq!(reg.definitions().await.expect("definitions"), defs);
}

async fn sequences(reg: &dyn Registry) {
    for expected in 1..=3 {
        assert_eq!(reg.next_sequence("manifest").await.expect("seq"), expected);
    }
    assert_eq!(
        reg.next_sequence("snapshot:customer_rfm")
            .await
            .expect("seq"),
        1,
        "each counter starts at 1 independently"
    );
    assert_eq!(reg.next_sequence("manifest").await.expect("seq"), 4);
    // A floor makes the counter jump past numbers used elsewhere, and never go back.
    assert_eq!(reg.next_sequence_above("jump", 10).await.expect("seq"), 11);
    assert_eq!(reg.next_sequence("jump").await.expect("seq"), 12);
    assert_eq!(reg.next_sequence_above("jump", 5).await.expect("seq"), 13);
    assert_eq!(reg.next_sequence_above("jump", 13).await.expect("seq"), 14);
    assert_eq!(
        reg.next_sequence("snapshot:customer_rfm")
            .await
            .expect("seq"),
        2
    );

    let mut got: Vec<u64> =
        futures::future::join_all((0..20).map(|_| reg.next_sequence("concurrent")))
            .await
            .into_iter()
            .map(|r| r.expect("concurrent next_sequence"))
            .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        (1..=20).collect::<Vec<u64>>(),
        "no value handed out twice"
    );
    assert_eq!(reg.next_sequence("manifest").await.expect("seq"), 5);
}

fn snap(view: &str, version: u64, manifest_seq: u64, created_at: &str) -> SnapshotRecord {
    SnapshotRecord {
        view: view.into(),
        version,
        key: format!("snapshots/{view}/v{version}.fsnap"),
        rows: 1_000 * version,
        size_bytes: 65_536 * version,
        checksum: format!("xxh3:{version:016x}"),
        manifest_seq,
        created_at: created_at.into(),
        duration_ms: 1_234,
    }
}

async fn snapshots(reg: &dyn Registry) {
    let a1 = snap("customer_rfm", 1, 1, "2025-03-01T10:00:00.000000Z");
    let m1 = snap("merchant_stats", 1, 2, "2025-03-01T11:00:00.000000Z");
    let a2 = snap("customer_rfm", 2, 3, "2025-03-02T10:00:00.000000Z");
    for s in [&a1, &m1, &a2] {
        reg.record_snapshot(s).await.expect("record snapshot");
    }
    assert_eq!(
        reg.list_snapshots(None).await.expect("list"),
        vec![a2.clone(), m1.clone(), a1.clone()],
        "newest first"
    );
    assert_eq!(
        reg.list_snapshots(Some("customer_rfm"))
            .await
            .expect("list"),
        vec![a2.clone(), a1.clone()]
    );
    assert_eq!(
        reg.list_snapshots(Some("merchant_stats"))
            .await
            .expect("list"),
        vec![m1.clone()]
    );
    assert!(
        reg.list_snapshots(Some("no_such_view"))
            .await
            .expect("list")
            .is_empty()
    );

    let err = reg
        .record_snapshot(&a1)
        .await
        .expect_err("the same view version twice is refused");
    assert!(matches!(err, RegistryError::Duplicate(_)), "got {err:?}");

    let mut huge = snap("customer_rfm", 3, 4, "2025-03-03T10:00:00.000000Z");
    huge.size_bytes = u64::MAX;
    let err = reg
        .record_snapshot(&huge)
        .await
        .expect_err("values beyond i64 cannot be stored");
    assert!(matches!(err, RegistryError::Invalid(_)), "got {err:?}");
    assert_eq!(reg.list_snapshots(None).await.expect("list").len(), 3);
}

async fn apply_nothing_deletes_everything(reg: &dyn Registry) {
    let before = all_names(&reg.definitions().await.expect("definitions"));
    let out = reg
        .apply(&Definitions::default(), "frank", "tear down")
        .await
        .expect("apply empty");
    assert_eq!(out.deleted, before);
    assert_eq!(
        reg.definitions().await.expect("definitions"),
        Definitions::default()
    );
    for kind in ObjectKind::ALL {
        assert!(reg.list_objects(kind).await.expect("list").is_empty());
    }
    // Snapshots and counters are not definitions and stay.
    assert_eq!(reg.list_snapshots(None).await.expect("list").len(), 3);
    assert_eq!(reg.next_sequence("manifest").await.expect("seq"), 6);
}
