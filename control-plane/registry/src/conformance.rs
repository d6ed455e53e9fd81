//! The behaviour every [`Registry`] backend must share, written once so SQLite (used on
//! laptops and in CI) cannot pass tests that PostgreSQL (used in production) would fail.
//!
//! This is a test helper compiled into the library so integration tests, and other crates'
//! tests, can run it against any registry: it panics on the first failed check. It must be
//! given an empty registry.

use fstore_snapshot::{FeatureRef, FeatureType, Field, KeyType};
use fstore_spec::{
    Aggregation, Definitions, Entity, FeatureDef, FeatureService, FeatureView, ObjectKind,
    OnDemandView, RequestSource, Source, SourceFormat, Transform,
};

use crate::{
    ChangeEntry, ChangelogQuery, Enqueued, JobRun, LEASE_EXPIRED, NewChange, NewRun, Registry,
    RegistryError, Rollback, RollbackBinding, RunOutcome, RunQuery, RunStatus, SearchHit,
    SearchQuery, SnapshotRecord,
};

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
    changelog_records_every_apply(reg).await;
    changelog_pages_and_filters(reg).await;
    recorded_changes(reg).await;
    search_ranks(reg).await;
    search_type_ahead(reg).await;
    search_filters(reg).await;
    search_pages(reg).await;
    search_highlights(reg).await;
    search_rejects_bad_input(reg).await;
    catalog_follows_applies(reg).await;
    changelog_classifies_changes(reg).await;
    rollbacks(reg).await;
    rollbacks_go_with_their_service(reg).await;
    edge_heartbeats(reg).await;
    named_locks(reg).await;
    job_runs_enqueue(reg).await;
    job_runs_claim_in_order(reg).await;
    job_runs_race(reg).await;
    job_runs_only_the_owner(reg).await;
    job_runs_cancel(reg).await;
    job_runs_expire(reg).await;
    job_runs_list(reg).await;
    quality_reports(reg).await;
    quality_distributions(reg).await;
    alerts_open_repeat_resolve(reg).await;
    serving_samples(reg).await;
    tokens(reg).await;
    roles_and_settings(reg).await;
    audit_chain(reg).await;
    audit_chain_concurrent(reg).await;
}

fn token_record(id: &str, name: &str, role: &str) -> crate::TokenRecord {
    crate::TokenRecord {
        id: id.into(),
        name: name.into(),
        role: role.into(),
        secret_sha256: format!("sha-of-{id}"),
        created_at: format!("2026-01-01T00:00:0{}.000000Z", id.len() % 10),
        created_by: "local:test".into(),
        expires_at: None,
        revoked_at: None,
        revoked_by: None,
    }
}

/// Tokens are stored with their hash, listed, found by id, and revoked by id or name; a name
/// is unique among active tokens only, so a revoked name can be reused.
async fn tokens(reg: &dyn Registry) {
    let ok = "the registry call succeeds";
    assert!(reg.tokens().await.expect(ok).is_empty());
    let mut web = token_record("aa01", "web", "consumer");
    web.expires_at = Some("2027-01-01T00:00:00.000000Z".into());
    reg.create_token(&web).await.expect(ok);
    reg.create_token(&token_record("bb02", "ops", "admin"))
        .await
        .expect(ok);
    let dup = reg
        .create_token(&token_record("cc03", "web", "admin"))
        .await;
    assert!(
        matches!(dup, Err(RegistryError::Duplicate(_))),
        "an active name is unique: {dup:?}"
    );
    assert_eq!(reg.token("aa01").await.expect(ok), Some(web.clone()));
    assert_eq!(reg.token("zz99").await.expect(ok), None);
    let revoked = reg
        .revoke_token("web", "local:test")
        .await
        .expect(ok)
        .expect("revoked by name");
    assert_eq!(revoked.id, "aa01");
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.revoked_by.as_deref(), Some("local:test"));
    assert_eq!(reg.revoke_token("web", "x").await.expect(ok), None, "once");
    assert!(
        reg.revoke_token("bb02", "x").await.expect(ok).is_some(),
        "by id"
    );
    reg.create_token(&token_record("cc03", "web", "admin"))
        .await
        .expect("a revoked token's name can be reused");
    let all = reg.tokens().await.expect(ok);
    assert_eq!(all.len(), 3);
    assert_eq!(
        all.iter().filter(|t| t.revoked_at.is_none()).count(),
        1,
        "{all:?}"
    );
}

async fn roles_and_settings(reg: &dyn Registry) {
    let ok = "the registry call succeeds";
    let role = crate::RoleRecord {
        name: "support".into(),
        description: "reads PII".into(),
        permissions: serde_json::json!([{"actions": ["read_online", "read_pii"]}]),
        created_at: "2026-01-01T00:00:00.000000Z".into(),
        created_by: "local:test".into(),
    };
    assert!(!reg.put_role(&role).await.expect(ok));
    let mut changed = role.clone();
    changed.description = "reads PII, changed".into();
    assert!(reg.put_role(&changed).await.expect(ok), "replaced");
    let mut other = role.clone();
    other.name = "analyst".into();
    reg.put_role(&other).await.expect(ok);
    let roles = reg.roles().await.expect(ok);
    assert_eq!(
        roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["analyst", "support"]
    );
    assert_eq!(roles[1], changed);
    assert!(reg.delete_role("analyst").await.expect(ok));
    assert!(!reg.delete_role("analyst").await.expect(ok));

    assert_eq!(reg.setting("signing_key").await.expect(ok), None);
    assert_eq!(reg.init_setting("signing_key", "a").await.expect(ok), "a");
    assert_eq!(
        reg.init_setting("signing_key", "b").await.expect(ok),
        "a",
        "the first value stays"
    );
    assert_eq!(
        reg.setting("signing_key").await.expect(ok).as_deref(),
        Some("a")
    );
}

fn audit_event(actor: &str, action: &str, origin_seq: Option<u64>) -> crate::NewAuditEvent {
    crate::NewAuditEvent {
        at: "2026-03-01T10:00:00.000000Z".into(),
        actor: actor.into(),
        action: action.into(),
        resource: "feature_view/customer_rfm".into(),
        detail: serde_json::json!({"features": ["email"], "entities": 2}),
        origin: if origin_seq.is_some() {
            "edge:e1"
        } else {
            "control-plane"
        }
        .into(),
        remote: Some("127.0.0.1".into()),
        origin_seq,
    }
}

/// Records chain from the genesis hash, each hash covering the one before; a resent edge
/// record is recorded once; filters and paging work.
async fn audit_chain(reg: &dyn Registry) {
    let ok = "the registry call succeeds";
    // Earlier tests changed definitions: each change is in the chain already.
    let start = reg.audit_head().await.expect(ok);
    let changes = reg
        .audit(&crate::AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect(ok);
    assert_eq!(
        changes.len() as u64,
        start.seq,
        "one record per change so far"
    );
    assert!(start.seq > 0, "applies are audited");
    let mut prev = crate::AUDIT_GENESIS.to_string();
    for r in &changes {
        assert_eq!(r.prev_hash, prev);
        assert_eq!(r.hash, r.expected_hash());
        prev = r.hash.clone();
    }
    assert_eq!(prev, start.hash);
    let applied = changes
        .iter()
        .find(|r| r.actor == "alice" && r.resource == "feature_service/churn_v1")
        .expect("the change log's applies are audited");
    assert_eq!(applied.action, "create");
    assert!(
        applied.detail.contains("changelog_seq"),
        "{}",
        applied.detail
    );

    let base = start.seq;
    let first = reg
        .append_audit(&[
            audit_event("token:web", "read_pii", Some(1)),
            audit_event("token:web", "read_pii", Some(2)),
            audit_event("local:ann", "apply", None),
        ])
        .await
        .expect(ok);
    assert_eq!(
        first.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [base + 1, base + 2, base + 3]
    );
    assert_eq!(first[0].prev_hash, start.hash);
    for w in first.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
    }
    for r in &first {
        assert_eq!(r.hash, r.expected_hash());
    }
    // The edge resends 2 with a new 3: only 3 is new.
    let again = reg
        .append_audit(&[
            audit_event("token:web", "read_pii", Some(2)),
            audit_event("token:web", "read_pii", Some(3)),
        ])
        .await
        .expect(ok);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].seq, base + 4);
    assert_eq!(again[0].prev_hash, first[2].hash);
    let head = reg.audit_head().await.expect(ok);
    assert_eq!((head.seq, &head.hash), (base + 4, &again[0].hash));

    let q = |f: &dyn Fn(&mut crate::AuditQuery)| {
        let mut q = crate::AuditQuery {
            after: Some(base),
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let all = reg.audit(&q(&|_| {})).await.expect(ok);
    assert_eq!(all.len(), 4);
    assert_eq!(&all[..3], &first[..]);
    let seqs = |v: Vec<crate::AuditRecord>| v.iter().map(|r| r.seq - base).collect::<Vec<_>>();
    let by_actor = reg
        .audit(&q(&|q| q.actor = Some("local:ann".into())))
        .await
        .expect(ok);
    assert_eq!(seqs(by_actor), [3]);
    let pii = reg
        .audit(&q(&|q| q.action = Some("read_pii".into())))
        .await
        .expect(ok);
    assert_eq!(seqs(pii), [1, 2, 4]);
    let views = reg
        .audit(&q(&|q| q.resource = Some("feature_view/".into())))
        .await
        .expect(ok);
    assert_eq!(views.len(), 4);
    let none = reg
        .audit(&q(&|q| q.resource = Some("feature_service/".into())))
        .await
        .expect(ok);
    assert!(none.is_empty());
    let page = reg
        .audit(&q(&|q| {
            q.after = Some(base + 1);
            q.limit = 2
        }))
        .await
        .expect(ok);
    assert_eq!(seqs(page), [2, 3]);
    // Newest first, paged back with `before`: what a person reading the log wants first.
    let newest = reg
        .audit(&q(&|q| {
            q.newest_first = true;
            q.limit = 2
        }))
        .await
        .expect(ok);
    assert_eq!(seqs(newest), [4, 3]);
    let older = reg
        .audit(&q(&|q| {
            q.newest_first = true;
            q.before = Some(base + 3);
            q.limit = 2
        }))
        .await
        .expect(ok);
    assert_eq!(seqs(older), [2, 1]);
    let later = reg
        .audit(&q(&|q| q.since = Some("2026-03-02T00:00:00Z".into())))
        .await
        .expect(ok);
    assert!(later.is_empty());
    assert!(matches!(
        reg.audit(&q(&|q| q.limit = 10_001)).await,
        Err(RegistryError::Invalid(_))
    ));
    assert!(reg.append_audit(&[]).await.expect(ok).is_empty());
}

/// Appenders racing each other still make one unbroken chain.
async fn audit_chain_concurrent(reg: &dyn Registry) {
    let before = reg.audit_head().await.expect("head").seq;
    let batches: Vec<Vec<crate::NewAuditEvent>> = (0..8)
        .map(|i| {
            (0..3)
                .map(|j| audit_event(&format!("racer{i}"), &format!("step{j}"), None))
                .collect()
        })
        .collect();
    let results = futures::future::join_all(batches.iter().map(|b| reg.append_audit(b))).await;
    for r in results {
        assert_eq!(r.expect("concurrent append succeeds").len(), 3);
    }
    let all = reg
        .audit(&crate::AuditQuery {
            after: Some(before),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 24);
    let mut prev = reg
        .audit(&crate::AuditQuery {
            after: Some(before - 1),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("list")[0]
        .hash
        .clone();
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.seq, before + 1 + i as u64);
        assert_eq!(r.prev_hash, prev);
        assert_eq!(r.hash, r.expected_hash());
        prev = r.hash.clone();
    }
    // Each batch stayed in one piece: a racer's three steps are consecutive.
    for w in all.chunks(3) {
        assert!(w.iter().all(|r| r.actor == w[0].actor), "{w:?}");
    }
}

fn quality_record(view: &str, version: u64, published: bool) -> crate::QualityRecord {
    crate::QualityRecord {
        view: view.into(),
        version,
        run_id: Some(version * 10),
        published,
        created_at: format!("2026-01-01T00:00:{version:02}.000000Z"),
        report: serde_json::json!({"stats": {"rows": version}}),
    }
}

/// Reports are listed newest first, filtered to published ones on request, replaced when a
/// version is recorded again, and read back one at a time.
async fn quality_reports(reg: &dyn Registry) {
    for (v, published) in [(1, true), (2, false), (3, true)] {
        reg.record_quality(&quality_record("q_view", v, published))
            .await
            .expect("the registry call succeeds");
    }
    reg.record_quality(&quality_record("other_view", 1, true))
        .await
        .expect("the registry call succeeds");
    let all = reg
        .quality_reports("q_view", false, 10)
        .await
        .expect("the registry call succeeds");
    assert_eq!(
        all.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert_eq!(all[1], quality_record("q_view", 2, false));
    let published = reg
        .quality_reports("q_view", true, 10)
        .await
        .expect("the registry call succeeds");
    assert_eq!(
        published.iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![3, 1]
    );
    assert_eq!(
        reg.quality_reports("q_view", false, 1)
            .await
            .expect("the registry call succeeds")
            .len(),
        1
    );
    assert!(reg.quality_reports("q_view", false, 5000).await.is_err());
    let mut again = quality_record("q_view", 2, true);
    again.report = serde_json::json!({"replaced": true});
    reg.record_quality(&again)
        .await
        .expect("the registry call succeeds");
    assert_eq!(
        reg.quality_report("q_view", 2)
            .await
            .expect("the registry call succeeds"),
        Some(again)
    );
    assert_eq!(
        reg.quality_report("q_view", 9)
            .await
            .expect("the registry call succeeds"),
        None
    );
    assert_eq!(
        reg.quality_report("q_view", u64::MAX)
            .await
            .expect("the registry call succeeds"),
        None
    );
}

/// Distributions are stored per view and key, replaced, and pruned to a kept set.
async fn quality_distributions(reg: &dyn Registry) {
    let d = |n: u64| serde_json::json!({"features": {"x": {"kind": "numeric", "values": [n]}}});
    for k in ["snapshot:1", "snapshot:2", "training_set:a.parquet"] {
        reg.put_distributions("d_view", k, &d(1))
            .await
            .expect("the registry call succeeds");
    }
    reg.put_distributions("d_view", "snapshot:2", &d(2))
        .await
        .expect("the registry call succeeds");
    reg.put_distributions("d_other", "snapshot:1", &d(7))
        .await
        .expect("the registry call succeeds");
    assert_eq!(
        reg.distributions("d_view", "snapshot:2")
            .await
            .expect("the registry call succeeds"),
        Some(d(2))
    );
    assert_eq!(
        reg.distributions("d_view", "snapshot:9")
            .await
            .expect("the registry call succeeds"),
        None
    );
    let gone = reg
        .prune_distributions(
            "d_view",
            &["snapshot:2".into(), "training_set:a.parquet".into()],
        )
        .await
        .expect("the registry call succeeds");
    assert_eq!(gone, 1);
    assert_eq!(
        reg.distributions("d_view", "snapshot:1")
            .await
            .expect("the registry call succeeds"),
        None
    );
    assert!(
        reg.distributions("d_view", "training_set:a.parquet")
            .await
            .expect("the registry call succeeds")
            .is_some()
    );
    // Another view's are untouched.
    assert_eq!(
        reg.distributions("d_other", "snapshot:1")
            .await
            .expect("the registry call succeeds"),
        Some(d(7))
    );
    assert_eq!(
        reg.prune_distributions("d_view", &[])
            .await
            .expect("the registry call succeeds"),
        2
    );
}

fn new_alert(fingerprint: &str, summary: &str) -> crate::NewAlert {
    crate::NewAlert {
        fingerprint: fingerprint.into(),
        kind: "check".into(),
        view: Some("a_view".into()),
        severity: "error".into(),
        summary: summary.into(),
        details: serde_json::json!({"observed": 3}),
    }
}

/// One open alert per fingerprint: raising it again counts an occurrence; resolving closes
/// it once; raising it after that opens a new episode. Deliveries append; the list filters.
async fn alerts_open_repeat_resolve(reg: &dyn Registry) {
    let (a, opened) = reg
        .open_alert(&new_alert("check:a_view:x:range", "first"))
        .await
        .expect("the registry call succeeds");
    assert!(opened);
    assert_eq!((a.status.as_str(), a.occurrences), ("open", 1));
    assert_eq!(a.resolved_at, None);
    let (b, opened) = reg
        .open_alert(&new_alert("check:a_view:x:range", "second"))
        .await
        .expect("the registry call succeeds");
    assert!(!opened, "the same problem while open is one alert");
    assert_eq!(
        (b.id, b.occurrences, b.summary.as_str()),
        (a.id, 2, "second")
    );
    let (other, opened) = reg
        .open_alert(&new_alert("check:a_view:y:not_null", "y"))
        .await
        .expect("the registry call succeeds");
    assert!(opened);
    assert_ne!(other.id, a.id);

    reg.record_delivery(a.id, &serde_json::json!({"target": "hook", "ok": false}))
        .await
        .expect("the registry call succeeds");
    reg.record_delivery(a.id, &serde_json::json!({"target": "hook", "ok": true}))
        .await
        .expect("the registry call succeeds");
    assert!(
        reg.record_delivery(u64::from(u32::MAX), &serde_json::json!({}))
            .await
            .is_err()
    );

    let resolved = reg
        .resolve_alert("check:a_view:x:range")
        .await
        .expect("the registry call succeeds")
        .expect("the registry call succeeds");
    assert_eq!(resolved.id, a.id);
    assert_eq!(resolved.status, "resolved");
    assert!(resolved.resolved_at.is_some());
    assert_eq!(resolved.deliveries.len(), 2);
    assert_eq!(resolved.deliveries[1]["ok"], true);
    assert_eq!(
        reg.resolve_alert("check:a_view:x:range")
            .await
            .expect("the registry call succeeds"),
        None,
        "resolved once"
    );
    assert_eq!(
        reg.resolve_alert("never:raised")
            .await
            .expect("the registry call succeeds"),
        None
    );

    let (again, opened) = reg
        .open_alert(&new_alert("check:a_view:x:range", "back"))
        .await
        .expect("the registry call succeeds");
    assert!(
        opened,
        "a problem that returns after resolving is a new alert"
    );
    assert!(again.id > a.id);

    let q = |status: Option<&str>| crate::AlertQuery {
        status: status.map(str::to_string),
        view: Some("a_view".into()),
        limit: 0,
    };
    let open = reg
        .alerts(&q(Some("open")))
        .await
        .expect("the registry call succeeds");
    assert_eq!(
        open.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![again.id, other.id]
    );
    let closed = reg
        .alerts(&q(Some("resolved")))
        .await
        .expect("the registry call succeeds");
    assert_eq!(closed.iter().map(|a| a.id).collect::<Vec<_>>(), vec![a.id]);
    assert_eq!(
        reg.alerts(&q(None))
            .await
            .expect("the registry call succeeds")
            .len(),
        3
    );
    assert!(reg.alerts(&q(Some("closed"))).await.is_err());
    assert!(reg.open_alert(&new_alert(" ", "blank")).await.is_err());
}

/// Samples come back oldest first from a time on, per view or all, and prune by time.
async fn serving_samples(reg: &dyn Registry) {
    let s = |edge: &str, view: &str, sec: u32, nf: u64| crate::ServingSample {
        edge: edge.into(),
        view: view.into(),
        at: format!("2026-01-01T00:00:{sec:02}.000000Z"),
        window_ms: 1000,
        lookups: 100,
        not_found: nf,
        errors: 0,
        p50_us: Some(120),
        p99_us: None,
    };
    reg.record_serving(&[
        s("e1", "v1", 1, 1),
        s("e2", "v1", 2, 2),
        s("e1", "v2", 3, 3),
    ])
    .await
    .expect("the registry call succeeds");
    reg.record_serving(&[])
        .await
        .expect("the registry call succeeds");
    let v1 = reg
        .serving_samples(Some("v1"), "2026-01-01T00:00:00.000000Z")
        .await
        .expect("the registry call succeeds");
    assert_eq!(v1, vec![s("e1", "v1", 1, 1), s("e2", "v1", 2, 2)]);
    // Summed per edge, view and ten seconds (all three samples fall in 00:00:00-09), then
    // per minute with one more sample a minute later.
    let rolled = reg
        .serving_rollup("2026-01-01T00:00:00.000000Z", crate::RollupStep::TenSeconds)
        .await
        .expect("the registry call succeeds");
    let key = |b: &crate::ServingBucket| (b.edge.clone(), b.view.clone(), b.start.clone());
    assert_eq!(
        rolled.iter().map(key).collect::<Vec<_>>(),
        [
            ("e1".into(), "v1".into(), "2026-01-01T00:00:00Z".into()),
            ("e1".into(), "v2".into(), "2026-01-01T00:00:00Z".into()),
            ("e2".into(), "v1".into(), "2026-01-01T00:00:00Z".into()),
        ]
    );
    reg.record_serving(&[crate::ServingSample {
        at: "2026-01-01T00:00:07.500000Z".into(),
        p50_us: Some(900),
        ..s("e1", "v1", 0, 5)
    }])
    .await
    .expect("the registry call succeeds");
    let minute = reg
        .serving_rollup("2026-01-01T00:00:00.000000Z", crate::RollupStep::Minute)
        .await
        .expect("the registry call succeeds");
    let e1v1 = minute
        .iter()
        .find(|b| b.edge == "e1" && b.view == "v1")
        .expect("e1 v1");
    assert_eq!(
        (
            e1v1.start.as_str(),
            e1v1.reports,
            e1v1.window_ms,
            e1v1.lookups,
            e1v1.not_found
        ),
        ("2026-01-01T00:00:00Z", 2, 2000, 200, 6)
    );
    assert_eq!(
        (e1v1.p50_us, e1v1.p99_us),
        (Some(900), None),
        "the worst; none stays none"
    );
    let later = reg
        .serving_samples(None, "2026-01-01T00:00:02.000000Z")
        .await
        .expect("the registry call succeeds");
    assert_eq!(later.len(), 3);
    assert_eq!(
        reg.prune_serving("2026-01-01T00:00:03.000000Z")
            .await
            .expect("the registry call succeeds"),
        2
    );
    assert_eq!(
        reg.serving_samples(None, "2000-01-01T00:00:00.000000Z")
            .await
            .expect("the registry call succeeds"),
        vec![
            s("e1", "v2", 3, 3),
            crate::ServingSample {
                at: "2026-01-01T00:00:07.500000Z".into(),
                p50_us: Some(900),
                ..s("e1", "v1", 0, 5)
            }
        ]
    );
    // Sums outlive their samples within the minute; a minute wholly before the cut goes.
    let kept = reg
        .serving_rollup("2000-01-01T00:00:00.000000Z", crate::RollupStep::Minute)
        .await
        .expect("the registry call succeeds");
    assert_eq!(kept.len(), 3, "minute 00:00 is not wholly before 00:00:03");
    reg.prune_serving("2026-01-01T00:01:00.000000Z")
        .await
        .expect("the registry call succeeds");
    for step in [crate::RollupStep::TenSeconds, crate::RollupStep::Minute] {
        assert!(
            reg.serving_rollup("2000-01-01T00:00:00.000000Z", step)
                .await
                .expect("the registry call succeeds")
                .is_empty()
        );
    }
}

/// Heartbeats insert, then replace by id (keeping `first_seen`); the list is sorted by id;
/// a blank id is refused.
async fn edge_heartbeats(reg: &dyn Registry) {
    let hb = |id: &str, seq: Option<u64>| crate::EdgeHeartbeat {
        id: id.into(),
        region: "eu-west".into(),
        address: "http://10.0.0.1:6566".into(),
        manifest_seq: seq,
        views: [
            ("customer_rfm".to_string(), 7u64),
            ("customer_rfm#3".to_string(), 3),
        ]
        .into_iter()
        .collect(),
        ready: seq.is_some(),
        interval_ms: 5_000,
        serving: Default::default(),
        serving_window_ms: 0,
        started_at: "2026-11-28T10:00:00.000000Z".into(),
    };
    assert!(reg.edges().await.expect("edges").is_empty());
    reg.record_heartbeat(&hb("edge-b", None)).await.expect("b");
    reg.record_heartbeat(&hb("edge-a", Some(4)))
        .await
        .expect("a");
    let first = reg.edges().await.expect("edges");
    assert_eq!(
        first
            .iter()
            .map(|e| e.heartbeat.id.as_str())
            .collect::<Vec<_>>(),
        ["edge-a", "edge-b"]
    );
    assert_eq!(first[1].heartbeat, hb("edge-b", None));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    reg.record_heartbeat(&hb("edge-b", Some(5)))
        .await
        .expect("b again");
    let again = reg.edges().await.expect("edges");
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].heartbeat.manifest_seq, Some(5));
    assert!(again[1].heartbeat.ready);
    assert_eq!(
        again[1].first_seen, first[1].first_seen,
        "first_seen is kept"
    );
    assert!(again[1].last_seen > first[1].last_seen, "last_seen moves");
    assert!(matches!(
        reg.record_heartbeat(&hb(" ", None)).await,
        Err(RegistryError::Invalid(_))
    ));
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
    FeatureDef::new(name, ty)
}

fn view(name: &str, entity: &str, features: Vec<FeatureDef>) -> FeatureView {
    FeatureView {
        name: name.into(),
        entities: vec![entity.into()],
        source: "transactions".into(),
        ttl_seconds: 86_400,
        features,
        schedule: None,
        max_rejected: None,
        checks: Vec::new(),
        drift: None,
        description: format!("{name} features"),
        owner: String::new(),
        tags: vec!["core".into()],
        shards: None,
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
            retention_seconds: None,
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
        definition_version: 0,
        lineage: serde_json::json!({}),
    }
}

async fn snapshots(reg: &dyn Registry) {
    // a1 is recorded as a publisher that predates lineage would: version 0, no lineage.
    let a1 = snap("customer_rfm", 1, 1, "2025-03-01T10:00:00.000000Z");
    let m1 = SnapshotRecord {
        definition_version: 1,
        lineage: serde_json::json!({"rows": 12}),
        ..snap("merchant_stats", 1, 2, "2025-03-01T11:00:00.000000Z")
    };
    let a2 = SnapshotRecord {
        definition_version: 2,
        lineage: serde_json::json!({
            "inputs": [
                {"path": "s3://lake/transactions/part-0.parquet", "size": 1_048_576, "etag": "\"abc\""},
                {"path": "s3://lake/transactions/part-1.parquet", "size": 2_048, "etag": null},
            ],
            "rows": {"read": 5_000, "written": 2_000},
            "transforms": {"double": "ab".repeat(32)},
            "note": "ünïcode ✓",
        }),
        ..snap("customer_rfm", 2, 3, "2025-03-02T10:00:00.000000Z")
    };
    for s in [&a1, &m1, &a2] {
        reg.record_snapshot(s).await.expect("record snapshot");
    }
    assert_eq!(
        reg.get_snapshot("customer_rfm", 2).await.expect("get"),
        Some(a2.clone()),
        "definition version and lineage round-trip"
    );
    assert_eq!(
        reg.get_snapshot("customer_rfm", 1).await.expect("get"),
        Some(a1.clone())
    );
    assert_eq!(
        reg.get_snapshot("merchant_stats", 1).await.expect("get"),
        Some(m1.clone())
    );
    assert_eq!(
        reg.get_snapshot("customer_rfm", 9).await.expect("get"),
        None
    );
    assert_eq!(
        reg.get_snapshot("no_such_view", 1).await.expect("get"),
        None
    );
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

// ---------------------------------------------------------------------------------------
// The catalog: change log, search, rollbacks.

/// Every change-log entry, oldest first.
async fn whole_changelog(reg: &dyn Registry) -> Vec<ChangeEntry> {
    let mut all = reg
        .changelog(&ChangelogQuery {
            limit: 1000,
            ..ChangelogQuery::default()
        })
        .await
        .expect("changelog");
    all.reverse();
    all
}

fn summary(entries: &[ChangeEntry]) -> Vec<(String, String, Option<u64>, String)> {
    entries
        .iter()
        .map(|e| {
            (
                e.action.clone(),
                e.actor.clone(),
                e.version,
                e.message.clone(),
            )
        })
        .collect()
}

fn owned(rows: &[(&str, &str, Option<u64>, &str)]) -> Vec<(String, String, Option<u64>, String)> {
    rows.iter()
        .map(|(a, b, v, m)| (a.to_string(), b.to_string(), *v, m.to_string()))
        .collect()
}

/// What the applies of the first part of the suite wrote, in order.
async fn changelog_records_every_apply(reg: &dyn Registry) {
    let all = whole_changelog(reg).await;
    let initial = all_names(&fixture()).len();
    // Creates, the ttl change, churn's delete / re-create / delete, the race, the teardown.
    assert_eq!(all.len(), initial + 1 + 3 + 1 + (initial - 1));
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "seq has no gaps"
    );
    for e in &all {
        assert_rfc3339_utc(&e.created_at);
    }

    // One entry per object, in (kind, name) order within an apply.
    let first: Vec<(String, String)> = all[..initial]
        .iter()
        .map(|e| (e.kind.clone(), e.name.clone()))
        .collect();
    let expected: Vec<(String, String)> = all_names(&fixture())
        .into_iter()
        .map(|(k, n)| (k.as_str().to_string(), n))
        .collect();
    assert_eq!(first, expected);
    for e in &all[..initial] {
        assert_eq!(
            (
                e.action.as_str(),
                e.actor.as_str(),
                e.version,
                e.message.as_str()
            ),
            ("create", "alice", Some(1), "initial import")
        );
        assert_eq!(e.details["compatibility"], "compatible");
    }

    let churn = reg
        .changelog(&ChangelogQuery {
            kind: Some("feature_service".into()),
            name: Some("churn_v1".into()),
            ..ChangelogQuery::default()
        })
        .await
        .expect("changelog");
    assert_eq!(
        summary(&churn),
        owned(&[
            ("delete", "carol", Some(4), "retire churn model again"),
            ("create", "dave", Some(3), "bring churn back"),
            ("delete", "carol", Some(2), "retire churn model"),
            ("create", "alice", Some(1), "initial import"),
        ]),
        "newest first, with the tombstone's version for a delete"
    );
    assert_eq!(churn[0].details["compatibility"], "breaking", "a delete");

    let rfm = reg
        .changelog(&ChangelogQuery {
            name: Some("customer_rfm".into()),
            ..ChangelogQuery::default()
        })
        .await
        .expect("changelog");
    assert_eq!(
        summary(&rfm),
        owned(&[
            ("delete", "frank", Some(3), "tear down"),
            ("update", "bob", Some(2), "longer ttl"),
            ("create", "alice", Some(1), "initial import"),
        ])
    );
    let ttl_change = rfm[1].details["changes"]
        .as_array()
        .expect("details hold the diff's changes");
    assert!(
        ttl_change.iter().any(|c| c["path"] == "ttl_seconds"),
        "the update names what changed: {ttl_change:?}"
    );

    let raced = reg
        .changelog(&ChangelogQuery {
            actor: Some("racer".into()),
            ..ChangelogQuery::default()
        })
        .await
        .expect("changelog");
    assert_eq!(
        raced.len(),
        1,
        "only the racing apply that changed something"
    );
    assert_eq!(
        (
            raced[0].action.as_str(),
            raced[0].name.as_str(),
            raced[0].version
        ),
        ("update", "fraud_v1", Some(2))
    );
}

async fn changelog_pages_and_filters(reg: &dyn Registry) {
    let all = whole_changelog(reg).await;
    let last = all.len() as u64;
    let page = |before: Option<u64>| async move {
        reg.changelog(&ChangelogQuery {
            before_seq: before,
            limit: 10,
            ..ChangelogQuery::default()
        })
        .await
    };
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let p = page(before).await.expect("page");
        assert!(p.len() <= 10);
        let Some(tail) = p.last() else { break };
        before = Some(tail.seq);
        seen.extend(p.iter().map(|e| e.seq));
    }
    assert_eq!(
        seen,
        (1..=last).rev().collect::<Vec<_>>(),
        "paging with before_seq visits every entry once, newest first"
    );
    assert!(page(Some(1)).await.expect("page").is_empty());
    assert_eq!(
        page(Some(u64::MAX)).await.expect("page")[0].seq,
        last,
        "a bound above every seq is no bound"
    );

    let deletes = reg
        .changelog(&ChangelogQuery {
            action: Some("delete".into()),
            limit: 1000,
            ..ChangelogQuery::default()
        })
        .await
        .expect("changelog");
    assert_eq!(
        deletes.len(),
        all.iter().filter(|e| e.action == "delete").count()
    );
    assert!(deletes.iter().all(|e| e.action == "delete"));
    let frank_entities = reg
        .changelog(&ChangelogQuery {
            actor: Some("frank".into()),
            kind: Some("entity".into()),
            ..ChangelogQuery::default()
        })
        .await
        .expect("changelog");
    let names: Vec<&str> = frank_entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["merchant", "customer", "Device"], "newest first");
    let none = reg
        .changelog(&ChangelogQuery {
            actor: Some("Frank".into()),
            ..ChangelogQuery::default()
        })
        .await
        .expect("changelog");
    assert!(none.is_empty(), "filters are exact");

    for limit in [0, 1001] {
        let err = reg
            .changelog(&ChangelogQuery {
                limit,
                ..ChangelogQuery::default()
            })
            .await
            .expect_err("limit out of range");
        assert!(matches!(err, RegistryError::Invalid(_)), "got {err:?}");
    }
}

async fn recorded_changes(reg: &dyn Registry) {
    let last = whole_changelog(reg).await.len() as u64;
    let details = serde_json::json!({"snapshots": [{"view": "customer_rfm", "version": 3}]});
    let seq = reg
        .record_change(&NewChange {
            actor: "scheduler".into(),
            action: "publish".into(),
            kind: "manifest".into(),
            name: "7".into(),
            version: Some(7),
            message: "materialized customer_rfm".into(),
            details: details.clone(),
        })
        .await
        .expect("record change");
    assert_eq!(seq, last + 1, "shares the numbering of applies");
    let seq2 = reg
        .record_change(&NewChange {
            actor: "scheduler".into(),
            action: "materialize".into(),
            kind: "feature_view".into(),
            name: "customer_rfm".into(),
            version: None,
            message: String::new(),
            details: serde_json::Value::Null,
        })
        .await
        .expect("record change");
    assert_eq!(seq2, seq + 1);

    let got = reg
        .changelog(&ChangelogQuery {
            actor: Some("scheduler".into()),
            ..ChangelogQuery::default()
        })
        .await
        .expect("changelog");
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].seq, got[0].action.as_str(), got[0].version),
        (seq2, "materialize", None)
    );
    assert_eq!(got[0].details, serde_json::Value::Null);
    assert_eq!(
        (
            got[1].seq,
            got[1].action.as_str(),
            got[1].kind.as_str(),
            got[1].name.as_str(),
            got[1].version,
            got[1].message.as_str()
        ),
        (
            seq,
            "publish",
            "manifest",
            "7",
            Some(7),
            "materialized customer_rfm"
        )
    );
    assert_eq!(got[1].details, details);

    let err = reg
        .record_change(&NewChange {
            actor: "x".into(),
            action: "publish".into(),
            kind: "manifest".into(),
            name: "huge".into(),
            version: Some(u64::MAX),
            message: String::new(),
            details: serde_json::Value::Null,
        })
        .await
        .expect_err("versions beyond i64 cannot be stored");
    assert!(matches!(err, RegistryError::Invalid(_)), "got {err:?}");
}

fn described(mut f: FeatureDef, description: &str) -> FeatureDef {
    f.description = description.into();
    f
}

fn aggregated(
    name: &str,
    ty: FeatureType,
    a: Aggregation,
    column: Option<&str>,
    window_days: Option<u64>,
    description: &str,
) -> FeatureDef {
    FeatureDef {
        aggregation: Some(a),
        column: column.map(str::to_string),
        window_seconds: window_days.map(|d| d * 86_400),
        ..described(feature(name, ty), description)
    }
}

/// A small catalog with descriptions, owners and tags, for search.
fn catalog_fixture() -> Definitions {
    let mut vip = aggregated(
        "vip",
        FeatureType::Bool,
        Aggregation::Last,
        Some("is_vip"),
        None,
        "Flag for <b>VIP</b> & partners",
    );
    vip.owner = "crm-team".into();
    vip.tags = vec!["pii".into()];
    let mut d = Definitions {
        entities: vec![
            Entity {
                description: "A person who places orders".into(),
                owner: "growth-team".into(),
                ..entity("customer", "customer_id", KeyType::Int64)
            },
            Entity {
                description: "A shop that sells through us".into(),
                ..entity("merchant", "merchant_id", KeyType::String)
            },
        ],
        sources: vec![Source {
            name: "orders".into(),
            path: "s3://lake/orders/".into(),
            format: SourceFormat::Parquet,
            query: None,
            timestamp_field: "event_time".into(),
            created_timestamp_field: None,
            retention_seconds: None,
            description: "Order events from the web shop".into(),
            owner: "data-eng".into(),
            tags: vec!["raw".into()],
        }],
        request_sources: vec![RequestSource {
            name: "checkout".into(),
            fields: vec![Field {
                name: "cart_value".into(),
                ty: FeatureType::Float64,
            }],
            description: "Fields sent with a checkout".into(),
            owner: "risk-team".into(),
            tags: vec![],
        }],
        transforms: vec![Transform {
            name: "risk_score".into(),
            component: "transforms/risk.wasm".into(),
            config: Default::default(),
            timeout_ms: None,
            fuel: None,
            description: "Scores the risk of a checkout".into(),
            owner: "risk-team".into(),
            tags: vec![],
            resolved: None,
        }],
        feature_views: vec![
            FeatureView {
                source: "orders".into(),
                description: "Spending and order behaviour of customers".into(),
                owner: "growth-team".into(),
                tags: vec!["rfm".into()],
                ..view(
                    "customer_spend",
                    "customer",
                    vec![
                        aggregated(
                            "spend_30d",
                            FeatureType::Float64,
                            Aggregation::Sum,
                            Some("order_value"),
                            Some(30),
                            "Total spend in the last 30 days",
                        ),
                        aggregated(
                            "spend_7d",
                            FeatureType::Float64,
                            Aggregation::Sum,
                            Some("order_value"),
                            Some(7),
                            "Total spend in the last 7 days",
                        ),
                        aggregated(
                            "order_count_90d",
                            FeatureType::Int64,
                            Aggregation::Count,
                            None,
                            Some(90),
                            "Number of orders in the last quarter",
                        ),
                        aggregated(
                            "days_since_last_order",
                            FeatureType::Int64,
                            Aggregation::Recency,
                            None,
                            None,
                            "Days since the most recent purchase",
                        ),
                        vip,
                    ],
                )
            },
            FeatureView {
                source: "orders".into(),
                description: "Risk signals of merchants".into(),
                owner: "risk-team".into(),
                tags: vec!["fraud".into()],
                ..view(
                    "merchant_risk",
                    "merchant",
                    vec![
                        aggregated(
                            "chargeback_rate_30d",
                            FeatureType::Float64,
                            Aggregation::Avg,
                            Some("charged_back"),
                            Some(30),
                            "Share of orders charged back over 30 days",
                        ),
                        aggregated(
                            "monthly_volume",
                            FeatureType::Float64,
                            Aggregation::Sum,
                            Some("order_value"),
                            Some(30),
                            "Monthly order volume",
                        ),
                    ],
                )
            },
        ],
        on_demand_views: vec![OnDemandView {
            name: "checkout_risk".into(),
            sources: vec!["merchant_risk".into()],
            request_source: Some("checkout".into()),
            features: vec![FeatureDef {
                transform: Some("risk_score".into()),
                ..described(
                    feature("score", FeatureType::Float64),
                    "Risk of the checkout, scored at the edge",
                )
            }],
            description: "Risk of a checkout, computed per request".into(),
            owner: "risk-team".into(),
            tags: vec!["fraud".into(), "realtime".into()],
            steps: vec![],
        }],
        feature_services: vec![
            FeatureService {
                description: "Inputs of the fraud model".into(),
                owner: "risk-team".into(),
                ..service(
                    "fraud_model",
                    &[
                        ("merchant_risk", "chargeback_rate_30d"),
                        ("checkout_risk", "score"),
                    ],
                )
            },
            FeatureService {
                description: "Inputs of the growth model".into(),
                owner: "growth-team".into(),
                ..service(
                    "growth_model",
                    &[
                        ("customer_spend", "spend_30d"),
                        ("customer_spend", "order_count_90d"),
                    ],
                )
            },
        ],
    };
    d.sort();
    d
}

async fn search(reg: &dyn Registry, q: SearchQuery) -> crate::SearchResults {
    reg.search(&q)
        .await
        .unwrap_or_else(|e| panic!("search {q:?}: {e}"))
}

fn q(text: &str) -> SearchQuery {
    SearchQuery {
        q: text.into(),
        limit: 100,
        ..SearchQuery::default()
    }
}

fn names(hits: &[SearchHit]) -> Vec<String> {
    hits.iter()
        .map(|h| format!("{}:{}", h.kind, h.name))
        .collect()
}

fn scored(hits: &[SearchHit]) -> Vec<(String, f64)> {
    hits.iter()
        .map(|h| (format!("{}:{}", h.kind, h.name), h.score))
        .collect()
}

fn highlights_of(hit: &SearchHit) -> Vec<(&str, &str)> {
    hit.highlights
        .iter()
        .map(|h| (h.field.as_str(), h.fragment.as_str()))
        .collect()
}

async fn search_ranks(reg: &dyn Registry) {
    reg.apply(&catalog_fixture(), "gina", "catalog")
        .await
        .expect("apply the catalog fixture");

    // Scores are pinned, not only the order: they are computed in Rust from what either
    // database returns, so they must come out the same on every backend.
    let r = search(reg, q("spend month")).await;
    assert_eq!(r.total, 11);
    assert_eq!(
        scored(&r.hits)[..3],
        [
            ("feature:customer_spend:spend_30d".to_string(), 3.3273),
            ("feature_view:customer_spend".to_string(), 2.2811),
            ("feature_service:growth_model".to_string(), 1.9625),
        ],
        "\"30 days\" is a month; spend in name and description ranks first"
    );
    assert_eq!(
        names(&r.hits)[3..],
        [
            "feature:customer_spend:spend_7d",
            "feature:merchant_risk:monthly_volume",
            "feature:merchant_risk:chargeback_rate_30d",
            "feature:customer_spend:vip",
            "feature:customer_spend:order_count_90d",
            "feature:customer_spend:days_since_last_order",
            "feature_view:merchant_risk",
            "feature_service:fraud_model",
        ]
    );

    // Synonyms: revenue is spend; equal scores fall back to kind, then name.
    let r = search(reg, q("revenue")).await;
    assert_eq!(
        names(&r.hits)[..3],
        [
            "feature:customer_spend:spend_30d",
            "feature:customer_spend:spend_7d",
            "feature_view:customer_spend",
        ]
    );
    assert_eq!(r.hits[0].score, r.hits[1].score);

    let r = search(reg, q("quarter")).await;
    assert_eq!(
        names(&r.hits),
        [
            "feature:customer_spend:order_count_90d",
            "feature_service:growth_model",
            "feature_view:customer_spend",
        ],
        "\"90d\" is a quarter"
    );

    // Stemming and stop words: "recent purchase" finds "the most recent purchase".
    let r = search(reg, q("recent purchases")).await;
    assert_eq!(
        names(&r.hits),
        ["feature:customer_spend:days_since_last_order"]
    );

    // "monthly", "30 days" and "30d" are one thing, whichever way it is written.
    let monthly = search(reg, q("monthly")).await;
    assert_eq!(
        names(&monthly.hits)[..3],
        [
            "feature:customer_spend:spend_30d",
            "feature:merchant_risk:monthly_volume",
            "feature:merchant_risk:chargeback_rate_30d",
        ]
    );
    for same in ["30 days", "30d", "30-day"] {
        assert_eq!(
            scored(&search(reg, q(same)).await.hits),
            scored(&monthly.hits),
            "{same}"
        );
    }

    let r = search(reg, q("risk checkout")).await;
    assert_eq!(
        names(&r.hits)[..4],
        [
            "on_demand_view:checkout_risk",
            "feature:checkout_risk:score",
            "transform:risk_score",
            "request_source:checkout",
        ]
    );

    assert_eq!(search(reg, q("nonexistentword")).await.total, 0);
}

async fn search_type_ahead(reg: &dyn Registry) {
    // While the last word is typed it matches as a prefix...
    let r = search(reg, q("charg")).await;
    assert_eq!(
        names(&r.hits),
        [
            "feature:merchant_risk:chargeback_rate_30d",
            "feature_service:fraud_model",
            "feature_view:merchant_risk",
        ]
    );
    // ...and once it is finished (a trailing space) only as itself: "charged" stems to it.
    let r = search(reg, q("charg ")).await;
    assert_eq!(
        names(&r.hits),
        ["feature:merchant_risk:chargeback_rate_30d"]
    );

    let r = search(reg, q("days since la")).await;
    assert_eq!(
        r.hits[0].name, "customer_spend:days_since_last_order",
        "earlier words are whole, the last a prefix"
    );
    let r = search(reg, q("cust")).await;
    assert_eq!(r.hits[0].name, "customer", "the entity named exactly so");
    assert_eq!(r.total, search(reg, q("customer")).await.total);
}

async fn search_filters(reg: &dyn Registry) {
    let filtered = |f: fn(&mut SearchQuery)| {
        let mut query = q("");
        f(&mut query);
        query
    };
    let all_features = [
        "feature:checkout_risk:score",
        "feature:customer_spend:days_since_last_order",
        "feature:customer_spend:order_count_90d",
        "feature:customer_spend:spend_30d",
        "feature:customer_spend:spend_7d",
        "feature:customer_spend:vip",
        "feature:merchant_risk:chargeback_rate_30d",
        "feature:merchant_risk:monthly_volume",
    ];
    let r = search(reg, filtered(|q| q.kind = Some("feature".into()))).await;
    assert_eq!(
        names(&r.hits),
        all_features,
        "an empty query lists, by name"
    );
    assert!(
        r.hits
            .iter()
            .all(|h| h.score == 0.0 && h.highlights.is_empty())
    );

    // Everything, by kind then name (bytewise).
    let r = search(reg, q("")).await;
    assert_eq!(r.total, 18);
    assert_eq!(names(&r.hits)[..8], all_features);
    assert_eq!(
        names(&r.hits)[8..],
        [
            "feature_view:customer_spend",
            "feature_view:merchant_risk",
            "on_demand_view:checkout_risk",
            "feature_service:fraud_model",
            "feature_service:growth_model",
            "entity:customer",
            "entity:merchant",
            "source:orders",
            "request_source:checkout",
            "transform:risk_score",
        ]
    );

    let r = search(reg, filtered(|q| q.kind = Some("feature_view".into()))).await;
    assert_eq!(
        names(&r.hits),
        ["feature_view:customer_spend", "feature_view:merchant_risk"]
    );
    let mut risky = q("risk");
    risky.kind = Some("feature_view".into());
    assert_eq!(
        names(&search(reg, risky).await.hits),
        ["feature_view:merchant_risk"]
    );

    // A feature has its own tags and its view's.
    let r = search(reg, filtered(|q| q.tag = Some("pii".into()))).await;
    assert_eq!(names(&r.hits), ["feature:customer_spend:vip"]);
    assert_eq!(r.hits[0].tags, ["pii", "rfm"]);
    let r = search(reg, filtered(|q| q.tag = Some("fraud".into()))).await;
    assert_eq!(
        names(&r.hits),
        [
            "feature:checkout_risk:score",
            "feature:merchant_risk:chargeback_rate_30d",
            "feature:merchant_risk:monthly_volume",
            "feature_view:merchant_risk",
            "on_demand_view:checkout_risk",
        ]
    );
    for not_a_tag in ["Fraud", "frau", "fraud%", "_raud", ""] {
        let mut query = q("");
        query.tag = Some(not_a_tag.into());
        assert_eq!(
            search(reg, query).await.total,
            0,
            "tags match exactly: {not_a_tag:?}"
        );
    }

    // A feature's own owner wins over its view's.
    let r = search(reg, filtered(|q| q.owner = Some("crm-team".into()))).await;
    assert_eq!(names(&r.hits), ["feature:customer_spend:vip"]);
    let r = search(reg, filtered(|q| q.owner = Some("growth-team".into()))).await;
    assert_eq!(
        names(&r.hits),
        [
            "feature:customer_spend:days_since_last_order",
            "feature:customer_spend:order_count_90d",
            "feature:customer_spend:spend_30d",
            "feature:customer_spend:spend_7d",
            "feature_view:customer_spend",
            "feature_service:growth_model",
            "entity:customer",
        ]
    );

    // Entities reach on-demand views (through their sources) and services.
    let r = search(reg, filtered(|q| q.entity = Some("merchant".into()))).await;
    assert_eq!(
        names(&r.hits),
        [
            "feature:checkout_risk:score",
            "feature:merchant_risk:chargeback_rate_30d",
            "feature:merchant_risk:monthly_volume",
            "feature_view:merchant_risk",
            "on_demand_view:checkout_risk",
            "feature_service:fraud_model",
            "entity:merchant",
        ]
    );
    assert_eq!(r.hits[0].entities, ["merchant"]);
    let mut query = q("");
    query.entity = Some("Merchant".into());
    assert_eq!(search(reg, query).await.total, 0, "entities match exactly");

    let r = search(reg, filtered(|q| q.feature_type = Some("int64".into()))).await;
    assert_eq!(
        names(&r.hits),
        [
            "feature:customer_spend:days_since_last_order",
            "feature:customer_spend:order_count_90d",
        ]
    );
    assert_eq!(r.hits[0].feature_type.as_deref(), Some("int64"));
    let r = search(reg, filtered(|q| q.view = Some("merchant_risk".into()))).await;
    assert_eq!(
        names(&r.hits),
        [
            "feature:merchant_risk:chargeback_rate_30d",
            "feature:merchant_risk:monthly_volume",
        ]
    );
    assert_eq!(r.hits[0].view.as_deref(), Some("merchant_risk"));

    // Filters combine with text, and do not change scores.
    let unfiltered = search(reg, q("spend month")).await;
    let mut query = q("spend month");
    query.view = Some("customer_spend".into());
    query.feature_type = Some("float64".into());
    let r = search(reg, query).await;
    assert_eq!(
        names(&r.hits),
        [
            "feature:customer_spend:spend_30d",
            "feature:customer_spend:spend_7d",
        ]
    );
    let mut query = q("spend");
    query.tag = Some("pii".into());
    query.entity = Some("customer".into());
    query.owner = Some("crm-team".into());
    query.kind = Some("feature".into());
    assert_eq!(
        names(&search(reg, query).await.hits),
        ["feature:customer_spend:vip"]
    );
    for h in &r.hits {
        let same = unfiltered
            .hits
            .iter()
            .find(|u| u.name == h.name && u.kind == h.kind)
            .expect("in the unfiltered hits");
        assert_eq!(h.score, same.score, "{}", h.name);
    }
}

async fn search_pages(reg: &dyn Registry) {
    let page = |offset: usize, limit: usize| {
        let mut query = q("");
        query.kind = Some("feature".into());
        query.offset = offset;
        query.limit = limit;
        query
    };
    let all = names(&search(reg, page(0, 100)).await.hits);
    let mut seen = Vec::new();
    for offset in [0, 3, 6] {
        let r = search(reg, page(offset, 3)).await;
        assert_eq!((r.total, r.offset, r.limit), (8, offset, 3));
        seen.extend(names(&r.hits));
    }
    assert_eq!(seen, all);
    let r = search(reg, page(8, 3)).await;
    assert_eq!((r.total, r.hits.len()), (8, 0), "past the end");

    let ranked = search(reg, q("spend month")).await;
    let mut query = q("spend month");
    query.offset = 1;
    query.limit = 2;
    let r = search(reg, query).await;
    assert_eq!(r.total, ranked.total);
    assert_eq!(r.hits, ranked.hits[1..3], "pages are cut after ranking");

    let r = search(
        reg,
        SearchQuery {
            q: "order".into(),
            ..SearchQuery::default()
        },
    )
    .await;
    assert_eq!(r.limit, 20, "the default limit");
}

async fn search_highlights(reg: &dyn Registry) {
    let r = search(reg, q("spend")).await;
    let hit = r
        .hits
        .iter()
        .find(|h| h.name == "customer_spend:spend_30d")
        .expect("hit");
    assert_eq!(
        highlights_of(hit),
        [
            ("name", "customer_<mark>spend</mark>:<mark>spend</mark>_30d"),
            (
                "description",
                "Total <mark>spend</mark> in the last 30 days"
            ),
        ]
    );
    let view = r
        .hits
        .iter()
        .find(|h| h.kind == "feature_view")
        .expect("the view");
    assert_eq!(
        highlights_of(view),
        [
            ("name", "customer_<mark>spend</mark>"),
            (
                "description",
                "<mark>Spending</mark> and order behaviour of customers"
            ),
        ],
        "words are matched by their stems"
    );

    // Words found through a synonym are marked too: that is why the hit matched.
    let r = search(reg, q("month")).await;
    let hit = r
        .hits
        .iter()
        .find(|h| h.name == "customer_spend:spend_30d")
        .expect("hit");
    assert_eq!(
        highlights_of(hit),
        [
            ("name", "customer_spend:spend_<mark>30d</mark>"),
            (
                "description",
                "Total spend in the last <mark>30 days</mark>"
            ),
        ]
    );

    // The description is returned as written; in fragments, HTML is escaped.
    let r = search(reg, q("vip pii")).await;
    assert_eq!(r.hits[0].name, "customer_spend:vip");
    assert_eq!(r.hits[0].description, "Flag for <b>VIP</b> & partners");
    assert_eq!(
        highlights_of(&r.hits[0]),
        [
            ("name", "customer_spend:<mark>vip</mark>"),
            (
                "description",
                "Flag for &lt;b&gt;<mark>VIP</mark>&lt;/b&gt; &amp; partners"
            ),
            ("tags", "<mark>pii</mark>, rfm"),
        ]
    );
    // Even a query for the markup's own letters only marks them inside the escaped text.
    let r = search(reg, q("b")).await;
    assert_eq!(r.hits[0].name, "customer_spend:vip");
    assert_eq!(
        highlights_of(&r.hits[0]),
        [(
            "description",
            "Flag for &lt;<mark>b</mark>&gt;VIP&lt;/<mark>b</mark>&gt; &amp; partners"
        )]
    );
    for h in &r.hits {
        for hl in &h.highlights {
            assert!(
                !hl.fragment.contains("<b>"),
                "unescaped HTML in {}",
                hl.fragment
            );
        }
    }
}

async fn search_rejects_bad_input(reg: &dyn Registry) {
    let bad = [
        SearchQuery {
            limit: 0,
            ..q("spend")
        },
        SearchQuery {
            limit: 101,
            ..q("spend")
        },
        SearchQuery {
            kind: Some("widget".into()),
            ..q("spend")
        },
        SearchQuery {
            tag: Some("a|b".into()),
            ..q("")
        },
    ];
    for query in bad {
        let err = reg.search(&query).await.expect_err("refused");
        assert!(
            matches!(err, RegistryError::Invalid(_)),
            "{query:?}: {err:?}"
        );
    }
    let many: Vec<String> = (0..40).map(|i| format!("word{i}")).collect();
    let err = reg
        .search(&q(&many.join(" ")))
        .await
        .expect_err("too many words");
    assert!(matches!(err, RegistryError::Invalid(_)), "got {err:?}");
    // Punctuation, quotes and operators are separators, never query syntax.
    for odd in [
        "\"",
        "spend\" OR",
        "a:* | !b",
        "NEAR(x y)",
        "'; DROP TABLE catalog; --",
        "ünïcödé",
    ] {
        search(reg, q(odd)).await;
    }
    assert_eq!(search(reg, q("")).await.total, 18, "the catalog is intact");
}

async fn catalog_follows_applies(reg: &dyn Registry) {
    let mut d = catalog_fixture();
    d.feature_views.retain(|v| v.name != "merchant_risk");
    for v in &mut d.feature_views {
        for f in &mut v.features {
            if f.name == "days_since_last_order" {
                f.description = "Days since the latest checkout".into();
            }
        }
    }
    reg.apply(&d, "gina", "drop merchant risk")
        .await
        .expect("apply");

    let mut query = q("chargeback");
    query.kind = Some("feature".into());
    assert_eq!(
        search(reg, query).await.total,
        0,
        "a deleted view's features are gone"
    );
    let mut query = q("");
    query.view = Some("merchant_risk".into());
    assert_eq!(search(reg, query).await.total, 0);
    assert!(
        search(reg, q("purchase")).await.hits.is_empty(),
        "the old description is gone"
    );
    let r = search(reg, q("latest")).await;
    assert_eq!(
        names(&r.hits),
        ["feature:customer_spend:days_since_last_order"]
    );
    assert_eq!(r.hits[0].description, "Days since the latest checkout");

    reg.apply(&catalog_fixture(), "gina", "restore merchant risk")
        .await
        .expect("apply");
    assert_eq!(search(reg, q("")).await.total, 18);
    assert_eq!(
        names(&search(reg, q("purchase")).await.hits),
        ["feature:customer_spend:days_since_last_order"]
    );
}

async fn last_change(reg: &dyn Registry, kind: &str, name: &str) -> ChangeEntry {
    reg.changelog(&ChangelogQuery {
        kind: Some(kind.into()),
        name: Some(name.into()),
        limit: 1,
        ..ChangelogQuery::default()
    })
    .await
    .expect("changelog")
    .pop()
    .expect("an entry")
}

async fn changelog_classifies_changes(reg: &dyn Registry) {
    let mut d = catalog_fixture();
    for f in &mut d.feature_views[0].features {
        if f.name == "spend_7d" {
            f.ty = FeatureType::Int64;
        }
    }
    assert_eq!(d.feature_views[0].name, "customer_spend");
    let out = reg.apply(&d, "hana", "count cents").await.expect("apply");
    assert_eq!(
        out.updated,
        vec![(ObjectKind::FeatureView, "customer_spend".to_string())]
    );
    let version = reg
        .get_object(ObjectKind::FeatureView, "customer_spend")
        .await
        .expect("get")
        .expect("present")
        .version;
    let e = last_change(reg, "feature_view", "customer_spend").await;
    assert_eq!(
        (
            e.action.as_str(),
            e.actor.as_str(),
            e.version,
            e.message.as_str()
        ),
        ("update", "hana", Some(version), "count cents")
    );
    assert_eq!(e.details["compatibility"], "breaking", "{}", e.details);
    assert!(
        e.details["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["path"] == "features.spend_7d.type")),
        "{}",
        e.details
    );
    let mut query = q("");
    query.feature_type = Some("int64".into());
    assert!(
        names(&search(reg, query).await.hits)
            .contains(&"feature:customer_spend:spend_7d".to_string()),
        "the catalog has the new type"
    );

    d.feature_views[0].description = "How customers spend".into();
    reg.apply(&d, "hana", "reword").await.expect("apply");
    let e = last_change(reg, "feature_view", "customer_spend").await;
    assert_eq!(
        (e.action.as_str(), e.version, e.message.as_str()),
        ("update", Some(version + 1), "reword")
    );
    assert_eq!(e.details["compatibility"], "compatible", "{}", e.details);

    reg.apply(&catalog_fixture(), "hana", "back to the fixture")
        .await
        .expect("apply");
}

fn rollback(service: &str, view: &str, snapshot_version: u64, author: &str) -> Rollback {
    Rollback {
        service: service.into(),
        view: view.into(),
        snapshot_view: fstore_snapshot::base_view(view).into(),
        snapshot_version,
        author: author.into(),
        created_at: String::new(),
    }
}

/// Rollbacks without their times, which only need to be well-formed.
async fn listed_rollbacks(reg: &dyn Registry) -> Vec<Rollback> {
    reg.rollbacks()
        .await
        .expect("rollbacks")
        .into_iter()
        .map(|mut r| {
            assert_rfc3339_utc(&r.created_at);
            r.created_at.clear();
            r
        })
        .collect()
}

async fn rollbacks(reg: &dyn Registry) {
    assert!(reg.rollbacks().await.expect("rollbacks").is_empty());
    let fraud_version = reg
        .get_object(ObjectKind::FeatureService, "fraud_model")
        .await
        .expect("get")
        .expect("present")
        .version;

    reg.set_rollbacks(
        "fraud_model",
        &[
            RollbackBinding::new("merchant_risk", 3),
            RollbackBinding::new("checkout_risk", 1),
        ],
        "ivan",
        "bad materialization",
    )
    .await
    .expect("set rollbacks");
    reg.set_rollbacks(
        "growth_model",
        &[RollbackBinding {
            view: "customer_spend@v3".into(),
            snapshot_view: "customer_spend".into(),
            snapshot_version: 7,
        }],
        "judy",
        "pinned view regressed",
    )
    .await
    .expect("set rollbacks");
    assert_eq!(
        listed_rollbacks(reg).await,
        [
            rollback("fraud_model", "checkout_risk", 1, "ivan"),
            rollback("fraud_model", "merchant_risk", 3, "ivan"),
            rollback("growth_model", "customer_spend@v3", 7, "judy"),
        ]
    );

    // Setting replaces the service's rollbacks, and leaves other services alone.
    reg.set_rollbacks(
        "fraud_model",
        &[RollbackBinding::new("merchant_risk", 2)],
        "ivan",
        "older",
    )
    .await
    .expect("replace rollbacks");
    assert_eq!(
        listed_rollbacks(reg).await,
        [
            rollback("fraud_model", "merchant_risk", 2, "ivan"),
            rollback("growth_model", "customer_spend@v3", 7, "judy"),
        ]
    );

    let entries = reg
        .changelog(&ChangelogQuery {
            action: Some("rollback".into()),
            name: Some("fraud_model".into()),
            ..ChangelogQuery::default()
        })
        .await
        .expect("changelog");
    assert_eq!(
        summary(&entries),
        owned(&[
            ("rollback", "ivan", Some(fraud_version), "older"),
            (
                "rollback",
                "ivan",
                Some(fraud_version),
                "bad materialization"
            ),
        ])
    );
    assert_eq!(entries[0].kind, "feature_service");
    assert_eq!(entries[0].details, serde_json::json!({"merchant_risk": 2}));
    assert_eq!(
        entries[1].details,
        serde_json::json!({"checkout_risk": 1, "merchant_risk": 3})
    );

    // Refused without changing anything.
    let before = listed_rollbacks(reg).await;
    let entries_before = whole_changelog(reg).await.len();
    for (service, bindings) in [
        ("fraud_model", vec![]),
        (
            "fraud_model",
            vec![
                RollbackBinding::new("merchant_risk", 1),
                RollbackBinding::new("merchant_risk", 2),
            ],
        ),
        ("fraud_model", vec![RollbackBinding::new("", 1)]),
        (
            "fraud_model",
            vec![RollbackBinding {
                snapshot_view: String::new(),
                ..RollbackBinding::new("merchant_risk", 1)
            }],
        ),
        (
            "fraud_model",
            vec![RollbackBinding::new("merchant_risk", u64::MAX)],
        ),
        (
            "no_such_service",
            vec![RollbackBinding::new("merchant_risk", 1)],
        ),
    ] {
        let err = reg
            .set_rollbacks(service, &bindings, "mallory", "bad")
            .await
            .expect_err("refused");
        assert!(
            matches!(err, RegistryError::Invalid(_)),
            "{service} {bindings:?}: {err:?}"
        );
    }
    assert_eq!(listed_rollbacks(reg).await, before);
    assert_eq!(whole_changelog(reg).await.len(), entries_before);

    assert_eq!(
        reg.clear_rollbacks("fraud_model", "ivan")
            .await
            .expect("clear"),
        1
    );
    assert_eq!(
        listed_rollbacks(reg).await,
        [rollback("growth_model", "customer_spend@v3", 7, "judy")]
    );
    let e = last_change(reg, "feature_service", "fraud_model").await;
    assert_eq!(
        (e.action.as_str(), e.actor.as_str(), e.version),
        ("rollback_clear", "ivan", Some(fraud_version))
    );
    assert_eq!(e.details, serde_json::json!({"merchant_risk": 2}));
    let entries_before = whole_changelog(reg).await.len();
    assert_eq!(
        reg.clear_rollbacks("fraud_model", "ivan")
            .await
            .expect("clear"),
        0,
        "nothing left to clear"
    );
    assert_eq!(
        whole_changelog(reg).await.len(),
        entries_before,
        "and nothing recorded"
    );
}

async fn rollbacks_go_with_their_service(reg: &dyn Registry) {
    let mut d = catalog_fixture();
    d.feature_services.retain(|s| s.name != "growth_model");
    let out = reg.apply(&d, "kim", "retire growth").await.expect("apply");
    assert_eq!(
        out.deleted,
        vec![(ObjectKind::FeatureService, "growth_model".to_string())]
    );
    assert!(
        reg.rollbacks().await.expect("rollbacks").is_empty(),
        "a deleted service's rollbacks go with it"
    );
    let e = last_change(reg, "feature_service", "growth_model").await;
    assert_eq!((e.action.as_str(), e.actor.as_str()), ("delete", "kim"));

    reg.apply(&catalog_fixture(), "kim", "growth is back")
        .await
        .expect("apply");
    assert!(
        reg.rollbacks().await.expect("rollbacks").is_empty(),
        "a re-created service starts without rollbacks"
    );
    assert_eq!(
        reg.clear_rollbacks("growth_model", "kim")
            .await
            .expect("clear"),
        0
    );
}

/// A lease no test outlives.
const LEASE: std::time::Duration = std::time::Duration::from_secs(600);

fn new_run(view: &str) -> NewRun {
    NewRun {
        view: view.into(),
        trigger: "api".into(),
        attempt: 1,
        scheduled_for: None,
        not_before: None,
        actor: "ana".into(),
    }
}

fn scheduled(view: &str, slot: &str) -> NewRun {
    NewRun {
        trigger: "schedule".into(),
        scheduled_for: Some(slot.into()),
        actor: "scheduler".into(),
        ..new_run(view)
    }
}

/// A time `offset` from now, in the registry's format when `utc`, else in +02:00.
fn time_from_now(offset: chrono::TimeDelta, utc: bool) -> String {
    let t = chrono::Utc::now() + offset;
    if utc {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    } else {
        let zone = chrono::FixedOffset::east_opt(7200).expect("a valid offset");
        t.with_timezone(&zone).to_rfc3339()
    }
}

async fn queue(reg: &dyn Registry, r: NewRun) -> JobRun {
    match reg.enqueue_run(&r).await.expect("enqueue") {
        Enqueued::Queued(run) => run,
        other => panic!("{r:?} was not queued: {other:?}"),
    }
}

async fn claim(reg: &dyn Registry, owner: &str) -> JobRun {
    reg.claim_run(owner, LEASE)
        .await
        .expect("claim")
        .expect("a run to claim")
}

fn outcome(status: RunStatus) -> RunOutcome {
    RunOutcome {
        status,
        ..RunOutcome::default()
    }
}

async fn finish(reg: &dyn Registry, run: &JobRun, status: RunStatus) {
    let owner = run.owner.as_deref().expect("a claimed run");
    assert!(
        reg.finish_run(run.id, owner, &outcome(status))
            .await
            .expect("finish"),
        "run {} finishes",
        run.id
    );
}

/// Queues a run of `view`, claims it (it must be the next due run) and finishes it.
async fn run_to(reg: &dyn Registry, view: &str, status: RunStatus) -> JobRun {
    let queued = queue(reg, new_run(view)).await;
    let running = claim(reg, "replica-1").await;
    assert_eq!(running.id, queued.id, "the only due run is claimed");
    finish(reg, &running, status).await;
    reg.job_run(queued.id).await.expect("read").expect("exists")
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, RegistryError>, what: &str) {
    assert!(
        matches!(r, Err(RegistryError::Invalid(_))),
        "{what}: got {r:?}"
    );
}

/// Queuing: one active run per view, one run per schedule slot (whatever became of it),
/// times normalised, refusals use up no id, bad input refused.
async fn job_runs_enqueue(reg: &dyn Registry) {
    assert!(
        reg.job_runs(&RunQuery::default())
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(reg.job_run(1).await.expect("get"), None);
    assert_eq!(reg.last_run("jobs_a", None).await.expect("last"), None);
    assert_eq!(
        reg.claim_run("replica-1", LEASE).await.expect("claim"),
        None
    );
    assert!(reg.expire_leases().await.expect("expire").is_empty());

    let a = queue(reg, new_run("jobs_a")).await;
    assert_eq!(a.view, "jobs_a");
    assert_eq!(a.status, RunStatus::Queued);
    assert_eq!((a.trigger.as_str(), a.attempt), ("api", 1));
    assert_eq!(
        (a.scheduled_for.as_deref(), a.actor.as_str()),
        (None, "ana")
    );
    assert_rfc3339_utc(&a.requested_at);
    assert_eq!(a.not_before, a.requested_at, "due at once by default");
    assert_eq!(
        (&a.started_at, &a.finished_at, &a.owner, &a.lease_until),
        (&None, &None, &None, &None)
    );
    assert!(!a.cancel_requested);
    assert_eq!(
        (a.rows_read, a.rows_written, a.rows_rejected),
        (None, None, None)
    );
    assert_eq!((a.snapshot_version, a.manifest_seq), (None, None));
    assert_eq!(a.error, None);
    assert_eq!(reg.job_run(a.id).await.expect("get"), Some(a.clone()));

    // A second run of a view already queued is not started: the caller gets the first.
    let again = reg
        .enqueue_run(&NewRun {
            trigger: "cli".into(),
            ..new_run("jobs_a")
        })
        .await
        .expect("enqueue");
    assert_eq!(again, Enqueued::AlreadyActive(a.clone()));

    // A slot is stored in UTC with microseconds, so the same instant written another way is
    // the same slot; the slot check comes before the active-run check.
    assert_eq!(reg.last_scheduled_slot("jobs_b").await.expect("slot"), None);
    let b = queue(reg, scheduled("jobs_b", "2026-11-28T10:00:00Z")).await;
    assert_eq!(b.id, a.id + 1, "a refused enqueue uses up no id");
    assert_eq!(
        reg.last_scheduled_slot("jobs_b").await.expect("slot"),
        b.scheduled_for.clone()
    );
    assert_eq!(
        b.scheduled_for.as_deref(),
        Some("2026-11-28T10:00:00.000000Z")
    );
    assert_eq!(
        (b.trigger.as_str(), b.actor.as_str()),
        ("schedule", "scheduler")
    );
    assert_eq!(
        reg.enqueue_run(&scheduled("jobs_b", "2026-11-28T11:00:00+01:00"))
            .await
            .expect("enqueue"),
        Enqueued::AlreadyScheduled
    );
    assert_eq!(
        reg.enqueue_run(&scheduled("jobs_b", "2026-11-28T12:00:00Z"))
            .await
            .expect("enqueue"),
        Enqueued::AlreadyActive(b.clone()),
        "a new slot of a view still running is not started either"
    );
    // The same slot of another view is another slot.
    let other = queue(reg, scheduled("jobs_a2", "2026-11-28T10:00:00Z")).await;

    let ran_a = claim(reg, "replica-1").await;
    let ran_b = claim(reg, "replica-1").await;
    let ran_other = claim(reg, "replica-1").await;
    assert_eq!(
        [ran_a.id, ran_b.id, ran_other.id],
        [a.id, b.id, other.id],
        "claimed oldest first"
    );
    for run in [&ran_a, &ran_b, &ran_other] {
        finish(reg, run, RunStatus::Succeeded).await;
    }

    // A slot stays taken after its run finished: another replica's scheduler that saw the
    // same slot late must not run it again.
    assert_eq!(
        reg.enqueue_run(&scheduled("jobs_b", "2026-11-28T10:00:00.000000Z"))
            .await
            .expect("enqueue"),
        Enqueued::AlreadyScheduled
    );
    let next = queue(reg, scheduled("jobs_b", "2026-11-28T12:00:00Z")).await;
    assert_eq!(next.id, other.id + 1);
    let retry = queue(
        reg,
        NewRun {
            trigger: "retry".into(),
            attempt: 2,
            ..new_run("jobs_a")
        },
    )
    .await;
    assert_eq!((retry.trigger.as_str(), retry.attempt), ("retry", 2));
    for run in [&next, &retry] {
        let cancelled = reg
            .request_cancel(run.id, "ana")
            .await
            .expect("cancel")
            .expect("exists");
        assert_eq!(cancelled.status, RunStatus::Cancelled);
    }

    for (bad, what) in [
        (new_run(""), "an empty view"),
        (
            NewRun {
                trigger: " ".into(),
                ..new_run("jobs_a")
            },
            "an empty trigger",
        ),
        (
            NewRun {
                attempt: 0,
                ..new_run("jobs_a")
            },
            "attempt 0",
        ),
        (scheduled("jobs_a", "tomorrow"), "a slot that is no time"),
        (
            NewRun {
                not_before: Some("9999-12-31T23:00:00-02:00".into()),
                ..new_run("jobs_a")
            },
            "a time past year 9999 (it would not sort as text)",
        ),
        (
            NewRun {
                not_before: Some("2026-11-28 10:00".into()),
                ..new_run("jobs_a")
            },
            "a not_before that is not RFC 3339",
        ),
    ] {
        assert_invalid(reg.enqueue_run(&bad).await, what);
    }
    assert_eq!(
        reg.last_run("jobs_a", None)
            .await
            .expect("last")
            .map(|r| r.id),
        Some(retry.id),
        "refused enqueues queued nothing"
    );
}

/// Claims take the oldest due run, skip runs not due yet, and record owner, start and lease.
async fn job_runs_claim_in_order(reg: &dyn Registry) {
    // Written in +02:00 and stored in UTC, so it compares correctly with the claim time.
    let later = queue(
        reg,
        NewRun {
            not_before: Some(time_from_now(chrono::TimeDelta::hours(1), false)),
            ..new_run("jobs_later")
        },
    )
    .await;
    assert_rfc3339_utc(&later.not_before);
    assert!(later.not_before > later.requested_at);
    assert_eq!(
        later.not_before.len(),
        later.requested_at.len(),
        "one format"
    );
    let first = queue(reg, new_run("jobs_first")).await;
    let second = queue(reg, new_run("jobs_second")).await;

    let before = time_from_now(chrono::TimeDelta::zero(), true);
    let got = claim(reg, "replica-1").await;
    assert_eq!(got.id, first.id, "the oldest due run, skipping one not due");
    assert_eq!(got.status, RunStatus::Running);
    assert_eq!(got.owner.as_deref(), Some("replica-1"));
    let started = got.started_at.clone().expect("started");
    assert_rfc3339_utc(&started);
    assert!(started >= before);
    let lease = got.lease_until.clone().expect("leased");
    let expected = chrono::DateTime::parse_from_rfc3339(&started).expect("time")
        + chrono::TimeDelta::from_std(LEASE).expect("lease");
    assert_eq!(
        lease,
        expected
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "leased from the start time"
    );
    assert_eq!(
        got,
        JobRun {
            status: RunStatus::Running,
            started_at: Some(started),
            owner: Some("replica-1".into()),
            lease_until: Some(lease),
            ..first.clone()
        },
        "nothing else changes"
    );
    assert_eq!(reg.job_run(got.id).await.expect("get"), Some(got.clone()));

    let got2 = claim(reg, "replica-2").await;
    assert_eq!(
        (got2.id, got2.owner.as_deref()),
        (second.id, Some("replica-2"))
    );
    assert_eq!(
        reg.claim_run("replica-1", LEASE).await.expect("claim"),
        None,
        "the remaining run is not due"
    );
    assert_eq!(
        reg.job_run(later.id).await.expect("get"),
        Some(later.clone())
    );

    // A not_before in the past is due at once, behind older runs that are not.
    let overdue = queue(
        reg,
        NewRun {
            not_before: Some("2020-01-01T00:00:00Z".into()),
            ..new_run("jobs_overdue")
        },
    )
    .await;
    assert_eq!(overdue.not_before, "2020-01-01T00:00:00.000000Z");
    assert_eq!(claim(reg, "replica-1").await.id, overdue.id);

    for run in [&got, &got2] {
        finish(reg, run, RunStatus::Succeeded).await;
    }
    let overdue = reg.job_run(overdue.id).await.expect("get").expect("exists");
    finish(reg, &overdue, RunStatus::Succeeded).await;

    // A run not due yet can still be claimed by id, by a caller that queued it to run it
    // itself; only while it is queued.
    let mine = reg
        .claim_run_id(later.id, "replica-9", LEASE)
        .await
        .expect("claim by id")
        .expect("queued, so claimed");
    assert_eq!(
        (mine.status, mine.owner.as_deref(), &mine.not_before),
        (RunStatus::Running, Some("replica-9"), &later.not_before)
    );
    assert!(mine.lease_until.is_some() && mine.started_at.is_some());
    assert_eq!(
        reg.job_run(later.id).await.expect("get"),
        Some(mine.clone())
    );
    for id in [later.id, first.id, 999_999, u64::MAX] {
        assert_eq!(
            reg.claim_run_id(id, "replica-8", LEASE)
                .await
                .expect("claim by id"),
            None,
            "run {id} is running, finished or missing"
        );
    }
    assert_invalid(
        reg.claim_run_id(later.id, "", LEASE).await,
        "an empty owner",
    );
    assert_invalid(
        reg.claim_run_id(later.id, "replica-8", std::time::Duration::ZERO)
            .await,
        "a zero lease",
    );
    finish(reg, &mine, RunStatus::Succeeded).await;

    assert_invalid(reg.claim_run("", LEASE).await, "an empty owner");
    assert_invalid(
        reg.claim_run("replica-1", std::time::Duration::ZERO).await,
        "a zero lease",
    );
    assert_invalid(
        reg.claim_run("replica-1", std::time::Duration::MAX).await,
        "an endless lease",
    );
    assert_invalid(
        reg.claim_run(
            "replica-1",
            std::time::Duration::from_secs(10_000 * 366 * 86_400),
        )
        .await,
        "a lease ending after year 9999",
    );
}

/// Replicas racing: each run goes to exactly one claimer, and of several enqueues of one
/// view or one slot exactly one queues.
async fn job_runs_race(reg: &dyn Registry) {
    let views = ["race_a", "race_b", "race_c"];
    let mut queued = Vec::new();
    for v in views {
        queued.push(queue(reg, new_run(v)).await.id);
    }
    let owners: Vec<String> = (0..8).map(|i| format!("replica-{i}")).collect();
    let results = futures::future::join_all(owners.iter().map(|o| reg.claim_run(o, LEASE))).await;
    let mut claimed = Vec::new();
    for (owner, r) in owners.iter().zip(results) {
        if let Some(run) = r.expect("concurrent claim") {
            assert_eq!(run.owner.as_ref(), Some(owner), "a run names its claimer");
            claimed.push(run);
        }
    }
    let mut ids: Vec<u64> = claimed.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, queued, "every run claimed, none twice");
    for run in &claimed {
        let stored = reg.job_run(run.id).await.expect("get").expect("exists");
        assert_eq!(&stored, run, "the stored run is the one its claimer got");
        finish(reg, run, RunStatus::Succeeded).await;
    }

    let slot = "2026-11-28T10:00:00Z";
    let results = futures::future::join_all(
        (0..8).map(|_| async move { reg.enqueue_run(&scheduled("race_a", slot)).await }),
    )
    .await;
    let mut winners = Vec::new();
    for r in results {
        match r.expect("concurrent enqueue") {
            Enqueued::Queued(run) => winners.push(run),
            Enqueued::AlreadyScheduled => {}
            other => panic!("one slot, so {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "one slot is queued once");

    let results = futures::future::join_all(
        (0..8).map(|_| async move { reg.enqueue_run(&new_run("race_b")).await }),
    )
    .await;
    let mut queued_b = Vec::new();
    let mut active = Vec::new();
    for r in results {
        match r.expect("concurrent enqueue") {
            Enqueued::Queued(run) => queued_b.push(run),
            Enqueued::AlreadyActive(run) => active.push(run),
            Enqueued::AlreadyScheduled => panic!("no slot, so never AlreadyScheduled"),
        }
    }
    assert_eq!(queued_b.len(), 1, "one view is queued once");
    assert!(active.iter().all(|r| r.id == queued_b[0].id));
    for run in winners.iter().chain(&queued_b) {
        reg.request_cancel(run.id, "ana").await.expect("cancel");
    }
}

/// Only the owner renews and finishes, only while the run is running; outcomes are stored.
async fn job_runs_only_the_owner(reg: &dyn Registry) {
    let queued = queue(reg, new_run("jobs_owned")).await;
    let run = claim(reg, "replica-1").await;
    assert_eq!(run.id, queued.id);
    let lease = run.lease_until.clone().expect("leased");

    assert!(
        !reg.renew_lease(run.id, "replica-2", LEASE)
            .await
            .expect("renew")
    );
    assert!(
        !reg.renew_lease(run.id + 1000, "replica-1", LEASE)
            .await
            .expect("renew")
    );
    assert!(
        !reg.renew_lease(u64::MAX, "replica-1", LEASE)
            .await
            .expect("renew")
    );
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    assert!(
        reg.renew_lease(run.id, "replica-1", LEASE)
            .await
            .expect("renew")
    );
    let renewed = reg.job_run(run.id).await.expect("get").expect("exists");
    assert!(
        renewed.lease_until.clone().expect("leased") > lease,
        "extended"
    );
    assert_eq!(
        renewed,
        JobRun {
            lease_until: renewed.lease_until.clone(),
            ..run.clone()
        }
    );
    assert_invalid(
        reg.renew_lease(run.id, "replica-1", std::time::Duration::ZERO)
            .await,
        "a zero lease",
    );
    assert_invalid(reg.renew_lease(run.id, "", LEASE).await, "an empty owner");

    let done = RunOutcome {
        status: RunStatus::Succeeded,
        rows_read: Some(1_000),
        rows_written: Some(990),
        rows_rejected: Some(10),
        snapshot_version: Some(7),
        manifest_seq: Some(12),
        error: None,
        mode: Some("delta".into()),
        entities: Some(400),
        quarantine: Some("quarantine/orders_view/00000000000000000007.jsonl".into()),
    };
    assert!(
        !reg.finish_run(run.id, "replica-2", &done)
            .await
            .expect("finish"),
        "not the owner"
    );
    assert!(
        !reg.finish_run(u64::MAX, "replica-1", &done)
            .await
            .expect("finish")
    );
    for status in [RunStatus::Queued, RunStatus::Running] {
        assert_invalid(
            reg.finish_run(run.id, "replica-1", &outcome(status)).await,
            "an active outcome",
        );
    }
    assert_invalid(
        reg.finish_run(
            run.id,
            "replica-1",
            &RunOutcome {
                rows_read: Some(u64::MAX),
                ..done.clone()
            },
        )
        .await,
        "an unstorable count",
    );
    assert_eq!(
        reg.job_run(run.id).await.expect("get"),
        Some(renewed.clone()),
        "refused finishes wrote nothing"
    );

    assert!(
        reg.finish_run(run.id, "replica-1", &done)
            .await
            .expect("finish")
    );
    let finished = reg.job_run(run.id).await.expect("get").expect("exists");
    let at = finished.finished_at.clone().expect("finished");
    assert_rfc3339_utc(&at);
    assert!(at >= *renewed.started_at.as_ref().expect("started"));
    assert_eq!(
        finished,
        JobRun {
            status: RunStatus::Succeeded,
            finished_at: Some(at),
            rows_read: Some(1_000),
            rows_written: Some(990),
            rows_rejected: Some(10),
            snapshot_version: Some(7),
            manifest_seq: Some(12),
            mode: Some("delta".into()),
            entities: Some(400),
            quarantine: Some("quarantine/orders_view/00000000000000000007.jsonl".into()),
            ..renewed.clone()
        }
    );
    // Finished: neither the lease nor the outcome can change any more.
    assert!(
        !reg.renew_lease(run.id, "replica-1", LEASE)
            .await
            .expect("renew")
    );
    assert!(
        !reg.finish_run(run.id, "replica-1", &outcome(RunStatus::Failed))
            .await
            .expect("finish")
    );
    assert_eq!(
        reg.job_run(run.id).await.expect("get"),
        Some(finished.clone())
    );

    // A failure keeps its error; the view is free for the next run.
    queue(reg, new_run("jobs_owned")).await;
    let run = claim(reg, "replica-2").await;
    let failed = RunOutcome {
        status: RunStatus::Failed,
        rows_read: Some(5),
        error: Some("source unreachable".into()),
        ..RunOutcome::default()
    };
    assert!(
        reg.finish_run(run.id, "replica-2", &failed)
            .await
            .expect("finish")
    );
    let stored = reg.job_run(run.id).await.expect("get").expect("exists");
    assert_eq!(stored.status, RunStatus::Failed);
    assert_eq!(stored.error.as_deref(), Some("source unreachable"));
    assert_eq!((stored.rows_read, stored.rows_written), (Some(5), None));
}

/// Cancelling a queued run ends it; a running one is asked to stop and its runner finishes
/// it; a finished one is left alone.
async fn job_runs_cancel(reg: &dyn Registry) {
    let queued = queue(reg, new_run("jobs_cancel")).await;
    let cancelled = reg
        .request_cancel(queued.id, "bob")
        .await
        .expect("cancel")
        .expect("exists");
    let at = cancelled.finished_at.clone().expect("finished");
    assert_rfc3339_utc(&at);
    assert_eq!(
        cancelled,
        JobRun {
            status: RunStatus::Cancelled,
            finished_at: Some(at),
            error: Some("cancelled by bob".into()),
            ..queued.clone()
        }
    );
    assert_eq!(
        reg.job_run(queued.id).await.expect("get"),
        Some(cancelled.clone())
    );
    assert_eq!(
        reg.claim_run("replica-1", LEASE).await.expect("claim"),
        None,
        "a cancelled run is never claimed"
    );
    assert_eq!(
        reg.request_cancel(queued.id, "carol")
            .await
            .expect("cancel"),
        Some(cancelled.clone()),
        "cancelling again changes nothing"
    );

    // The view is free again; this time the run is running when cancelled.
    queue(reg, new_run("jobs_cancel")).await;
    let running = claim(reg, "replica-1").await;
    let asked = reg
        .request_cancel(running.id, "carol")
        .await
        .expect("cancel")
        .expect("exists");
    assert_eq!(
        asked,
        JobRun {
            cancel_requested: true,
            ..running.clone()
        },
        "still running until its runner stops"
    );
    assert_eq!(
        reg.job_run(running.id).await.expect("get"),
        Some(asked.clone())
    );
    assert!(
        reg.renew_lease(running.id, "replica-1", LEASE)
            .await
            .expect("renew"),
        "the runner keeps its lease while it stops"
    );
    assert!(
        reg.finish_run(running.id, "replica-1", &outcome(RunStatus::Cancelled))
            .await
            .expect("finish")
    );
    let stopped = reg.job_run(running.id).await.expect("get").expect("exists");
    assert_eq!(stopped.status, RunStatus::Cancelled);
    assert!(stopped.cancel_requested);
    assert_eq!(
        stopped.error.as_deref(),
        Some("cancelled by carol"),
        "says who asked"
    );

    assert_eq!(
        reg.request_cancel(running.id, "dave")
            .await
            .expect("cancel"),
        Some(stopped.clone()),
        "a finished run is returned unchanged"
    );
    assert_eq!(
        reg.request_cancel(999_999, "bob").await.expect("cancel"),
        None
    );
    assert_eq!(
        reg.request_cancel(u64::MAX, "bob").await.expect("cancel"),
        None
    );

    // A runner that cancels on its own (no request) records its own error, or none.
    queue(reg, new_run("jobs_cancel")).await;
    let running = claim(reg, "replica-1").await;
    finish(reg, &running, RunStatus::Cancelled).await;
    let own = reg.job_run(running.id).await.expect("get").expect("exists");
    assert_eq!((own.status, own.error), (RunStatus::Cancelled, None));
}

/// Runs whose lease passed fail, once, and their owner can then neither renew nor finish.
async fn job_runs_expire(reg: &dyn Registry) {
    let tiny = std::time::Duration::from_millis(1);
    queue(reg, new_run("jobs_dies")).await;
    queue(reg, new_run("jobs_lives")).await;
    queue(reg, new_run("jobs_stopping")).await;
    let dies = reg
        .claim_run("replica-1", tiny)
        .await
        .expect("claim")
        .expect("a run");
    let lives = claim(reg, "replica-2").await;
    let stopping = reg
        .claim_run("replica-3", tiny)
        .await
        .expect("claim")
        .expect("a run");
    reg.request_cancel(stopping.id, "ana")
        .await
        .expect("cancel");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let expired = reg.expire_leases().await.expect("expire");
    assert_eq!(
        expired.iter().map(|r| r.id).collect::<Vec<_>>(),
        [dies.id, stopping.id],
        "by id"
    );
    for run in &expired {
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.error.as_deref(), Some(LEASE_EXPIRED));
        assert_rfc3339_utc(run.finished_at.as_deref().expect("finished"));
        assert_eq!(reg.job_run(run.id).await.expect("get").as_ref(), Some(run));
    }
    assert_eq!(
        expired[0],
        JobRun {
            status: RunStatus::Failed,
            finished_at: expired[0].finished_at.clone(),
            error: Some(LEASE_EXPIRED.into()),
            ..dies.clone()
        }
    );
    assert!(
        expired[1].cancel_requested,
        "so the caller does not retry it"
    );
    assert!(
        reg.expire_leases().await.expect("expire").is_empty(),
        "each expired run is returned once"
    );

    // The replica that held it may come back: too late.
    assert!(
        !reg.renew_lease(dies.id, "replica-1", LEASE)
            .await
            .expect("renew")
    );
    assert!(
        !reg.finish_run(dies.id, "replica-1", &outcome(RunStatus::Succeeded))
            .await
            .expect("finish")
    );
    assert_eq!(
        reg.job_run(dies.id).await.expect("get").as_ref(),
        Some(&expired[0])
    );
    // The view is free for the retry.
    let retry = queue(
        reg,
        NewRun {
            trigger: "retry".into(),
            attempt: 2,
            ..new_run("jobs_dies")
        },
    )
    .await;
    reg.request_cancel(retry.id, "ana").await.expect("cancel");

    assert_eq!(
        reg.job_run(lives.id).await.expect("get").as_ref(),
        Some(&lives),
        "a live lease is left alone"
    );
    finish(reg, &lives, RunStatus::Succeeded).await;
}

/// Listing: newest first, filters, paging; last_run; bad queries refused.
async fn job_runs_list(reg: &dyn Registry) {
    let a1 = run_to(reg, "list_a", RunStatus::Succeeded).await;
    let a2 = run_to(reg, "list_a", RunStatus::Failed).await;
    let b1 = run_to(reg, "list_b", RunStatus::Succeeded).await;
    let a3 = run_to(reg, "list_a", RunStatus::Succeeded).await;
    let b2 = queue(
        reg,
        NewRun {
            not_before: Some(time_from_now(chrono::TimeDelta::hours(1), true)),
            ..new_run("list_b")
        },
    )
    .await;

    let list = |view: Option<&str>, status: Option<RunStatus>, before_id, limit| {
        let q = RunQuery {
            view: view.map(String::from),
            status,
            before_id,
            limit,
        };
        async move { reg.job_runs(&q).await.expect("list") }
    };
    assert_eq!(
        list(Some("list_a"), None, None, 50).await,
        [a3.clone(), a2.clone(), a1.clone()]
    );
    assert_eq!(
        list(Some("list_a"), Some(RunStatus::Succeeded), None, 50).await,
        [a3.clone(), a1.clone()]
    );
    assert_eq!(
        list(None, Some(RunStatus::Queued), None, 50).await,
        std::slice::from_ref(&b2),
        "every other run has ended"
    );
    assert_eq!(
        list(Some("list_b"), Some(RunStatus::Failed), None, 50).await,
        []
    );
    assert_eq!(list(Some("list_c"), None, None, 50).await, []);

    // Pages of two, each starting below the last id of the one before.
    assert_eq!(
        list(Some("list_a"), None, None, 2).await,
        [a3.clone(), a2.clone()]
    );
    assert_eq!(
        list(Some("list_a"), None, Some(a2.id), 2).await,
        std::slice::from_ref(&a1)
    );
    assert_eq!(list(Some("list_a"), None, Some(a1.id), 2).await, []);
    assert_eq!(
        list(Some("list_a"), None, Some(u64::MAX), 1).await,
        std::slice::from_ref(&a3)
    );

    let everything = list(None, None, None, 1000).await;
    assert_eq!(everything[0], b2, "newest first");
    assert!(everything.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(everything.last().map(|r| r.id), Some(1), "ids start at 1");
    let page = reg.job_runs(&RunQuery::default()).await.expect("list");
    assert_eq!(
        page,
        everything[..everything.len().min(50)],
        "the default limit is 50"
    );

    let last = |view: &'static str, status| async move {
        reg.last_run(view, status).await.expect("last run")
    };
    assert_eq!(last("list_a", None).await, Some(a3.clone()));
    assert_eq!(last("list_a", Some(RunStatus::Failed)).await, Some(a2));
    assert_eq!(last("list_a", Some(RunStatus::Cancelled)).await, None);
    assert_eq!(last("list_b", None).await, Some(b2.clone()));
    assert_eq!(last("list_b", Some(RunStatus::Succeeded)).await, Some(b1));
    assert_eq!(last("list_c", None).await, None);

    for limit in [0, 1001] {
        assert_invalid(
            reg.job_runs(&RunQuery {
                limit,
                ..RunQuery::default()
            })
            .await,
            "a limit outside 1..=1000",
        );
    }
    assert_invalid(
        reg.job_runs(&RunQuery {
            view: Some(String::new()),
            ..RunQuery::default()
        })
        .await,
        "an empty view",
    );
    assert_invalid(reg.last_run("", None).await, "an empty view");
    reg.request_cancel(b2.id, "ana").await.expect("cancel");
}

/// A named lock is held by one holder until released or expired; its holder may renew it.
async fn named_locks(reg: &dyn Registry) {
    let long = std::time::Duration::from_secs(60);
    assert!(reg.try_lock("publish", "a", long).await.expect("a takes"));
    assert!(!reg.try_lock("publish", "b", long).await.expect("b waits"));
    assert!(reg.try_lock("publish", "a", long).await.expect("a renews"));
    assert!(
        reg.try_lock("other", "b", long)
            .await
            .expect("another name")
    );
    reg.unlock("publish", "b").await.expect("not b's: no-op");
    assert!(!reg.try_lock("publish", "b", long).await.expect("still a's"));
    reg.unlock("publish", "a").await.expect("a releases");
    assert!(reg.try_lock("publish", "b", long).await.expect("b takes"));
    // An expired lease is taken over.
    let short = std::time::Duration::from_millis(1);
    assert!(reg.try_lock("brief", "a", short).await.expect("a takes"));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(
        reg.try_lock("brief", "b", long)
            .await
            .expect("b takes over")
    );
    for (name, holder) in [("", "a"), ("x", "")] {
        assert!(matches!(
            reg.try_lock(name, holder, long).await,
            Err(RegistryError::Invalid(_))
        ));
    }
    reg.unlock("publish", "b").await.expect("release");
    reg.unlock("other", "b").await.expect("release");
    reg.unlock("brief", "b").await.expect("release");
}
