//! Sharded views at the edge: an edge holding some shards downloads only those (and only the
//! delta shards that touch them), answers every key it holds as the whole view would, and
//! refuses a key it does not hold with 421 rather than a wrong NOT_FOUND.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fstore_edge::lookup::{Format, execute};
use fstore_edge::{EdgeConfig, EdgeState, Loader};
use fstore_snapshot::{
    FeatureType, Field, KeyBuf, KeyType, ShardSet, Snapshot, SnapshotSchema, SnapshotWriter, Value,
    format::key_hash, shard_of, split,
};
use fstore_storage::{
    MANIFEST_FORMAT, Manifest, ManifestDelta, ManifestShard, ManifestView, Store, shard_key,
    snapshot_key,
};
use serde_json::Value as Json;

const NOW: i64 = 1_800_000_000_000_000;
const VIEW: &str = "customers";
const SHARDS: u32 = 4;

fn schema(version: u64, base_version: Option<u64>) -> SnapshotSchema {
    SnapshotSchema {
        view: VIEW.into(),
        version,
        keys: vec![Field {
            name: "customer_id".into(),
            ty: KeyType::Int64,
        }],
        features: vec![Field {
            name: "orders".into(),
            ty: FeatureType::Int64,
        }],
        ttl_seconds: 0,
        created_at_micros: NOW - 1_000 + version as i64,
        base_version,
        shard: None,
    }
}

/// A snapshot of `ids`, each with `orders = id * factor`.
fn bytes(version: u64, base_version: Option<u64>, ids: &[i64], factor: i64) -> Vec<u8> {
    let mut w = SnapshotWriter::new(schema(version, base_version)).expect("schema");
    let mut kb = KeyBuf::new();
    for &id in ids {
        kb.clear();
        kb.push_i64(id);
        w.push(
            kb.as_bytes(),
            NOW - 1_000,
            None,
            &[Value::Int64(id * factor)],
        )
        .expect("row");
    }
    w.finish_to_vec().expect("bytes")
}

fn shard(id: i64) -> u32 {
    let mut kb = KeyBuf::new();
    kb.push_i64(id);
    shard_of(key_hash(kb.as_bytes()), SHARDS)
}

/// Stores `bytes` at `key` and its shards beside it (empty ones too unless `skip_empty`);
/// returns the manifest's record of the whole and of each shard stored.
async fn put(
    store: &Store,
    key: &str,
    bytes: Vec<u8>,
    skip_empty: bool,
) -> ((u64, u64, String), Vec<ManifestShard>) {
    let snap = Snapshot::from_bytes(bytes.clone()).expect("valid");
    let whole = (
        bytes.len() as u64,
        snap.len(),
        format!("{:016x}", snap.checksum()),
    );
    store.put_new(key, bytes.into()).await.expect("put");
    let mut shards = Vec::new();
    for (index, [h, b]) in (0u32..).zip(split(&snap, SHARDS).expect("split")) {
        let part = Snapshot::from_bytes([h.clone(), b.clone()].concat()).expect("shard");
        if skip_empty && part.is_empty() {
            continue;
        }
        let k = shard_key(key, index, SHARDS);
        store
            .put_new(&k, [h, b].concat().into())
            .await
            .expect("put shard");
        shards.push(ManifestShard {
            index,
            count: SHARDS,
            key: k,
            size_bytes: part.size_bytes(),
            rows: part.len(),
            checksum: format!("{:016x}", part.checksum()),
        });
    }
    (whole, shards)
}

async fn publish(store: &Store, seq: u64, view: ManifestView) {
    let m = Manifest {
        format: MANIFEST_FORMAT,
        seq,
        created_at: "2027-01-15T08:00:00Z".into(),
        views: BTreeMap::from([(VIEW.to_string(), view)]),
        services: BTreeMap::new(),
        on_demand: BTreeMap::new(),
        transforms: BTreeMap::new(),
    };
    store.publish(&m).await.expect("publish");
}

fn edge(store: &Store, dir: &std::path::Path, shards: &str) -> (Loader, Arc<EdgeState>) {
    let mut cfg = EdgeConfig::new("unused");
    cfg.shards = shards.parse().expect("shards");
    let state = Arc::new(EdgeState::new(&cfg));
    let loader =
        Loader::new(store.clone(), dir.to_path_buf(), state.clone()).with_shards(cfg.shards);
    (loader, state)
}

fn lookup(state: &EdgeState, ids: &[i64]) -> Result<Json, fstore_edge::ApiError> {
    let c = state.catalog.load_full().expect("a catalog");
    let body =
        serde_json::json!({"features": ["customers:orders"], "entities": {"customer_id": ids}});
    let mut out = Vec::new();
    execute(
        &c,
        body.to_string().as_bytes(),
        Format::Fstore,
        10_000,
        NOW,
        &mut out,
    )?;
    Ok(serde_json::from_slice(&out).expect("JSON"))
}

fn orders(answer: &Json) -> Vec<Json> {
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["values"][0].clone())
        .collect()
}

fn cached(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".fss"))
        .collect()
}

#[tokio::test]
async fn an_edge_holding_one_shard_loads_and_answers_only_that_shard() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::from_url(&dir.path().join("objects").to_string_lossy()).expect("store");
    let ids: Vec<i64> = (1..=2_000).collect();
    let base_key = snapshot_key(VIEW, 10);
    let ((size, rows, checksum), shards) =
        put(&store, &base_key, bytes(10, None, &ids, 1), false).await;
    let base = ManifestView {
        version: 10,
        key: base_key.clone(),
        size_bytes: size,
        rows,
        checksum,
        deltas: Vec::new(),
        shards,
    };
    publish(&store, 1, base.clone()).await;

    let cache = dir.path().join("cache-1");
    let (mut loader, state) = edge(&store, &cache, "1/4");
    assert!(loader.poll_once().await.expect("poll"));
    let mine: Vec<i64> = ids.iter().copied().filter(|&i| shard(i) == 1).collect();
    let other = *ids.iter().find(|&&i| shard(i) != 1).expect("another shard");
    assert!(mine.len() > 400 && mine.len() < 600, "{}", mine.len());
    // Only shard 1's file came down: not the whole, not the others.
    let name = |k: &str| k.replace('/', "_");
    assert_eq!(
        cached(&cache),
        BTreeSet::from([name(&shard_key(&base_key, 1, SHARDS))])
    );
    let got = lookup(&state, &mine).expect("lookup");
    assert_eq!(
        orders(&got),
        mine.iter().map(|&i| Json::from(i)).collect::<Vec<_>>()
    );
    assert_eq!(got["views"][VIEW], 10);
    let c = state.catalog.load_full().expect("catalog");
    assert_eq!(c.view(VIEW).expect("view").entities, mine.len() as u64);
    // A key of another shard is a misdirected request, never a NOT_FOUND.
    let err = lookup(&state, &[mine[0], other]).expect_err("not held");
    assert_eq!((err.status.as_u16(), err.code), (421, "shard_not_held"));
    // A key no shard holds, but whose shard this edge holds, is an honest NOT_FOUND.
    let absent = (1_000_000..)
        .find(|&i| shard(i) == 1)
        .expect("an absent id");
    assert_eq!(
        orders(&lookup(&state, &[absent]).expect("lookup")),
        [Json::Null]
    );

    // A delta changing one key of shard 1 and one of shard 2: only shard 1's part is fetched.
    let changed_other = *ids.iter().find(|&&i| shard(i) == 2).expect("shard 2");
    let delta_ids = [mine[0], changed_other];
    let delta_key = snapshot_key(VIEW, 11);
    let ((size, rows, checksum), delta_shards) = put(
        &store,
        &delta_key,
        bytes(11, Some(10), &delta_ids, 100),
        true,
    )
    .await;
    assert_eq!(delta_shards.len(), 2, "empty delta shards are not stored");
    let mut with_delta = base.clone();
    with_delta.deltas.push(ManifestDelta {
        version: 11,
        key: delta_key.clone(),
        size_bytes: size,
        rows,
        checksum,
        shards: delta_shards,
    });
    publish(&store, 2, with_delta.clone()).await;
    assert!(loader.poll_once().await.expect("poll"));
    assert_eq!(
        cached(&cache),
        BTreeSet::from([
            name(&shard_key(&base_key, 1, SHARDS)),
            name(&shard_key(&delta_key, 1, SHARDS)),
        ])
    );
    let got = lookup(&state, &mine[..2]).expect("lookup");
    assert_eq!(
        orders(&got),
        [Json::from(mine[0] * 100), Json::from(mine[1])]
    );
    assert_eq!(got["views"][VIEW], 11);

    // An edge holding every shard maps the whole snapshot and its delta instead.
    let all_cache = dir.path().join("cache-all");
    let (mut all, all_state) = edge(&store, &all_cache, "all");
    assert!(all.poll_once().await.expect("poll"));
    assert_eq!(
        cached(&all_cache),
        BTreeSet::from([name(&base_key), name(&delta_key)])
    );
    let got = lookup(&all_state, &[mine[0], changed_other, other]).expect("lookup");
    assert_eq!(
        orders(&got),
        [
            Json::from(mine[0] * 100),
            Json::from(changed_other * 100),
            Json::from(other)
        ]
    );
    // Two of four shards, as ranges of an eight-way fleet split: shards 0 and 1 of 4.
    let (mut half, half_state) = edge(&store, &dir.path().join("cache-half"), "0-3/8");
    assert!(half.poll_once().await.expect("poll"));
    let zero_or_one: Vec<i64> = ids.iter().copied().filter(|&i| shard(i) < 2).collect();
    let got = lookup(&half_state, &zero_or_one).expect("lookup");
    assert_eq!(orders(&got).len(), zero_or_one.len());
    assert!(orders(&got).iter().all(|v| !v.is_null()));

    // A manifest naming the wrong file for shard 1 is refused; the edge keeps serving.
    let mut wrong = with_delta.clone();
    wrong.shards[1] = wrong.shards[2].clone();
    wrong.shards[1].index = 1;
    publish(&store, 3, wrong).await;
    let err = loader.poll_once().await.expect_err("refused");
    assert!(err.to_string().contains("shard"), "{err}");
    assert_eq!(state.catalog.load_full().expect("catalog").seq, 2);
    assert_eq!(
        orders(&lookup(&state, &[mine[1]]).expect("still serving")),
        [Json::from(mine[1])]
    );
}

#[test]
fn shard_sets_from_config_reject_nonsense() {
    for bad in ["", "5/4", "1", "a/b"] {
        assert!(bad.parse::<ShardSet>().is_err(), "{bad}");
    }
}
