//! Published versions: the manifests the store still holds, finding the one that was live at a
//! given time (time travel), and retention (deleting manifests beyond the newest K and the
//! snapshots none of the kept manifests names).
//!
//! A published version is a manifest whose sequence number is at most the live pointer's: a
//! manifest above it is a publish still in flight (written, pointer not moved yet), so it is
//! neither listed nor answered from, and retention never touches it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use object_store::ObjectStoreExt;
use serde::Serialize;

use crate::{Manifest, PointerRead, StorageError, Store, manifest_key, snapshot_key};

/// How many manifests are read at once when listing (a remote store answers each GET in tens
/// of milliseconds; reading them one by one would make `fstore versions` slow for no reason).
const READ_CONCURRENCY: usize = 8;

/// One published version still kept in the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishedVersion {
    /// The manifest's sequence number: the version `fstore get --version` takes.
    pub seq: u64,
    /// When it was published (RFC 3339, UTC).
    pub created_at: String,
    /// Whether the live pointer names it.
    pub live: bool,
    /// Each feature view's served snapshot version in it (its newest delta's, else its base's).
    pub views: BTreeMap<String, u64>,
}

/// The published versions a store keeps, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Versions {
    /// The live version, `None` when nothing was ever published.
    pub live: Option<u64>,
    pub items: Vec<PublishedVersion>,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PruneReport {
    /// Sequence numbers of the deleted manifests.
    pub manifests: Vec<u64>,
    /// Keys of the deleted snapshots.
    pub snapshots: Vec<String>,
}

/// The sequence number in a manifest key, only for keys exactly as [`manifest_key`] writes them
/// (anything else under `manifests/` is not ours to interpret or delete).
fn parse_manifest_key(key: &str) -> Option<u64> {
    let seq: u64 = key
        .strip_prefix("manifests/")?
        .strip_suffix(".json")?
        .parse()
        .ok()?;
    (manifest_key(seq) == key).then_some(seq)
}

/// The view and version in a snapshot key, only for keys exactly as [`snapshot_key`] writes
/// them.
pub fn parse_snapshot_key(key: &str) -> Option<(&str, u64)> {
    let (view, file) = key.strip_prefix("snapshots/")?.split_once('/')?;
    let version: u64 = file.strip_suffix(".fss")?.parse().ok()?;
    (snapshot_key(view, version) == key).then_some((view, version))
}

/// The snapshot a shard file (`<version>.shard-IIII-of-NNNN.fss`) was split from, for a shard
/// file's key; `None` for any other key.
fn shard_base_key(key: &str) -> Option<String> {
    let (stem, rest) = key.rsplit_once(".shard-")?;
    let (index, count) = rest.strip_suffix(".fss")?.split_once("-of-")?;
    let (index, count) = (index.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
    let whole = format!("{stem}.fss");
    (crate::shard_key(&whole, index, count) == key).then_some(whole)
}

/// Renders kept sequence numbers for messages: `2, 3, 5` or `2–40 (39 versions)`.
fn describe_kept(seqs: &[u64]) -> String {
    match seqs {
        [] => "none".into(),
        [only] => only.to_string(),
        [first, .., last] if seqs.len() > 5 => {
            format!("{first}–{last} ({} versions)", seqs.len())
        }
        _ => seqs
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

impl Store {
    /// Sequence numbers of every manifest in the store, ascending (in-flight ones included).
    pub async fn manifest_seqs(&self) -> Result<Vec<u64>, StorageError> {
        let mut seqs: Vec<u64> = self
            .list("manifests/")
            .await?
            .iter()
            .filter_map(|k| parse_manifest_key(k))
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The live sequence number and the published versions' sequence numbers (ascending).
    async fn published(&self) -> Result<(u64, Vec<u64>), StorageError> {
        let live = match self.read_pointer(None).await? {
            PointerRead::Found { pointer, .. } => pointer.seq,
            PointerRead::Missing | PointerRead::NotModified => {
                return Err(StorageError::NothingPublished(self.url().to_string()));
            }
        };
        let mut seqs = self.manifest_seqs().await?;
        seqs.retain(|&s| s <= live);
        Ok((live, seqs))
    }

    /// Reads manifests `seqs` concurrently, in order; one deleted meanwhile (by a concurrent
    /// retention pass) is skipped.
    async fn read_manifests(&self, seqs: &[u64]) -> Result<Vec<Manifest>, StorageError> {
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(READ_CONCURRENCY) {
            // Owned sequence numbers: a closure over `&u64` here makes every caller's future
            // fail the `Send` check axum handlers need (a higher-ranked lifetime the compiler
            // cannot prove general enough).
            let reads = chunk.iter().copied().map(|seq| async move {
                let key = manifest_key(seq);
                self.read_manifest(&key).await
            });
            for r in futures::future::join_all(reads).await {
                match r {
                    Ok(m) => out.push(m),
                    Err(StorageError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// The published versions still kept, newest first. An empty list (and `live: None`) when
    /// nothing was published.
    pub async fn versions(&self) -> Result<Versions, StorageError> {
        let (live, mut seqs) = match self.published().await {
            Ok(p) => p,
            Err(StorageError::NothingPublished(_)) => {
                return Ok(Versions {
                    live: None,
                    items: Vec::new(),
                });
            }
            Err(e) => return Err(e),
        };
        seqs.reverse();
        let items = self
            .read_manifests(&seqs)
            .await?
            .into_iter()
            .map(|m| PublishedVersion {
                seq: m.seq,
                live: m.seq == live,
                views: m
                    .views
                    .iter()
                    .map(|(k, v)| (k.clone(), v.served_version()))
                    .collect(),
                created_at: m.created_at,
            })
            .collect();
        Ok(Versions {
            live: Some(live),
            items,
        })
    }

    /// The manifest of published version `seq`, or an error saying why it is not there
    /// (pruned, not published yet, nothing published at all).
    pub async fn manifest_at(&self, seq: u64) -> Result<Manifest, StorageError> {
        let (live, seqs) = self.published().await?;
        let not_kept = |reason: String| StorageError::VersionNotKept {
            seq,
            url: self.url().to_string(),
            reason,
        };
        if seq > live {
            return Err(not_kept(format!(
                "it has not been published (the live version is {live})"
            )));
        }
        if seq == 0 {
            return Err(not_kept("versions start at 1".into()));
        }
        if !seqs.contains(&seq) {
            let reason = match seqs.first() {
                Some(&oldest) if seq < oldest => format!(
                    "it was pruned by retention or never published; the oldest version kept is \
                     {oldest} (kept: {})",
                    describe_kept(&seqs)
                ),
                _ => format!(
                    "it was pruned or never published (kept: {})",
                    describe_kept(&seqs)
                ),
            };
            return Err(not_kept(reason));
        }
        match self.read_manifest(&manifest_key(seq)).await {
            Err(StorageError::NotFound(_)) => Err(not_kept("it was pruned just now".into())),
            other => other,
        }
    }

    /// The published version that was live at `at`: the manifest with the greatest sequence
    /// number whose `created_at` is at or before `at`.
    pub async fn manifest_as_of(&self, at: DateTime<Utc>) -> Result<Manifest, StorageError> {
        let (_, seqs) = self.published().await?;
        let mut oldest: Option<Manifest> = None;
        // Newest first, so the first match is the answer and a recent `at` reads one or two
        // manifests rather than all of them.
        for chunk in seqs.rchunks(READ_CONCURRENCY) {
            let mut chunk = chunk.to_vec();
            chunk.reverse();
            for m in self.read_manifests(&chunk).await? {
                let key = manifest_key(m.seq);
                let created = DateTime::parse_from_rfc3339(&m.created_at).map_err(|e| {
                    StorageError::Decode {
                        key,
                        reason: format!("created_at `{}` is not RFC 3339: {e}", m.created_at),
                    }
                })?;
                if created <= at {
                    return Ok(m);
                }
                oldest = Some(m);
            }
        }
        match oldest {
            Some(m) => Err(StorageError::BeforeFirstVersion {
                at: at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                url: self.url().to_string(),
                seq: m.seq,
                created_at: m.created_at,
            }),
            None => Err(StorageError::NothingPublished(self.url().to_string())),
        }
    }

    /// Retention: keeps the newest `keep` published versions (0 keeps everything) and deletes
    /// older manifests, then every snapshot no kept manifest names (as a base or a delta).
    ///
    /// Never deleted: the live manifest and what it names; manifests above the live one (a
    /// publish in flight); `transforms/` (content-addressed and shared across versions, and the
    /// control plane remembers which it stored); and any snapshot newer than every version of
    /// its view a manifest names, since a materialization writes its snapshots before the
    /// manifest naming them. Manifests go first, so an interrupted pass leaves unreferenced
    /// snapshots (deleted by the next pass), never a manifest naming a deleted snapshot.
    pub async fn prune(&self, keep: usize) -> Result<PruneReport, StorageError> {
        let mut report = PruneReport::default();
        if keep == 0 {
            return Ok(report);
        }
        let live = match self.read_pointer(None).await? {
            PointerRead::Found { pointer, .. } => pointer.seq,
            PointerRead::Missing | PointerRead::NotModified => return Ok(report),
        };
        let all = self.manifest_seqs().await?;
        let published: Vec<u64> = all.iter().copied().filter(|&s| s <= live).collect();
        let cut = published.len().saturating_sub(keep);
        let doomed: Vec<u64> = published[..cut].to_vec();
        let kept: Vec<u64> = all
            .iter()
            .copied()
            .filter(|s| !doomed.contains(s))
            .collect();

        // A kept manifest that cannot be read stops the pass: what it names is unknown.
        let kept_manifests = self.read_manifests(&kept).await?;
        // A slot's base and every delta layered over it are all needed to serve it.
        let referenced: BTreeSet<&str> = kept_manifests
            .iter()
            .flat_map(|m| m.views.values())
            .flat_map(|v| {
                let shards = v.shards.iter().map(|s| s.key.as_str());
                let deltas = v.deltas.iter().flat_map(|d| {
                    std::iter::once(d.key.as_str()).chain(d.shards.iter().map(|s| s.key.as_str()))
                });
                std::iter::once(v.key.as_str()).chain(shards).chain(deltas)
            })
            .collect();
        // Newest version of each view any manifest names, its deltas' included: snapshots
        // above it are in flight. Leaving deltas out would make a published delta (newer than
        // its base) look in flight forever, so it would outlive the manifests naming it.
        let mut newest: BTreeMap<String, u64> = BTreeMap::new();
        let mut note = |m: &Manifest| {
            for (view, v) in &m.views {
                let named = v.deltas.iter().map(|d| d.version).fold(v.version, u64::max);
                let n = newest.entry(view.clone()).or_insert(0);
                *n = (*n).max(named);
            }
        };
        kept_manifests.iter().for_each(&mut note);
        // An unreadable doomed manifest only makes the pass delete less.
        for seq in &doomed {
            if let Ok(m) = self.read_manifest(&manifest_key(*seq)).await {
                note(&m);
            }
        }

        for &seq in &doomed {
            self.delete(&manifest_key(seq)).await?;
            report.manifests.push(seq);
        }
        for key in self.list("snapshots/").await? {
            // A shard file is pruned with its snapshot's version, by the same rules.
            let whole = shard_base_key(&key);
            let Some((view, version)) = parse_snapshot_key(whole.as_deref().unwrap_or(&key)) else {
                continue;
            };
            let settled = newest.get(view).is_some_and(|&n| version <= n);
            if settled && !referenced.contains(key.as_str()) {
                self.delete(&key).await?;
                report.snapshots.push(key);
            }
        }
        Ok(report)
    }

    /// Deletes an object; one already gone (a concurrent pass) is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.object_store().delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StorageError::Store {
                key: key.to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MANIFEST_FORMAT, ManifestDelta, ManifestView};

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::from_url(&dir.path().join("objects").to_string_lossy()).expect("store")
    }

    /// Writes snapshots for `views` (name, version) and a manifest naming them.
    async fn manifest(
        store: &Store,
        seq: u64,
        created_at: &str,
        views: &[(&str, u64)],
    ) -> Manifest {
        let chains: Vec<(&str, u64, &[u64])> =
            views.iter().map(|&(v, n)| (v, n, &[][..])).collect();
        chained(store, seq, created_at, &chains).await
    }

    /// Writes a snapshot at `key` unless one is there already.
    async fn put_snapshot(store: &Store, key: &str) {
        match store.put_new(key, b"snapshot".to_vec().into()).await {
            Ok(()) | Err(StorageError::AlreadyExists(_)) => {}
            Err(e) => panic!("writing {key}: {e}"),
        }
    }

    /// Writes snapshots for `views` (name, base version, delta versions oldest first) and a
    /// manifest naming them.
    async fn chained(
        store: &Store,
        seq: u64,
        created_at: &str,
        views: &[(&str, u64, &[u64])],
    ) -> Manifest {
        let mut mv = BTreeMap::new();
        for &(view, version, delta_versions) in views {
            let key = snapshot_key(view, version);
            put_snapshot(store, &key).await;
            let mut deltas = Vec::new();
            for &v in delta_versions {
                let key = snapshot_key(view, v);
                put_snapshot(store, &key).await;
                deltas.push(ManifestDelta {
                    version: v,
                    key,
                    size_bytes: 8,
                    rows: 1,
                    checksum: "0".into(),
                    shards: Vec::new(),
                });
            }
            mv.insert(
                view.to_string(),
                ManifestView {
                    version,
                    key,
                    size_bytes: 8,
                    rows: 1,
                    checksum: "0".into(),
                    deltas,
                    shards: Vec::new(),
                },
            );
        }
        Manifest {
            format: MANIFEST_FORMAT,
            seq,
            created_at: created_at.into(),
            views: mv,
            services: BTreeMap::new(),
            on_demand: BTreeMap::new(),
            transforms: BTreeMap::new(),
        }
    }

    /// Writes a manifest as [`manifest`] does and makes it live.
    async fn publish(store: &Store, seq: u64, created_at: &str, views: &[(&str, u64)]) {
        let m = manifest(store, seq, created_at, views).await;
        store.publish(&m).await.expect("publish");
    }

    /// Writes a manifest as [`manifest`] does without moving the pointer: a publish in flight.
    async fn in_flight(store: &Store, seq: u64, views: &[(&str, u64)]) {
        let m = manifest(store, seq, "2026-06-01T00:00:00.000Z", views).await;
        let body = serde_json::to_vec(&m).expect("json");
        store
            .put_new(&manifest_key(seq), body.into())
            .await
            .expect("put");
    }

    async fn exists(store: &Store, key: &str) -> bool {
        match store.get_bytes(key).await {
            Ok(_) => true,
            Err(StorageError::NotFound(_)) => false,
            Err(e) => panic!("reading {key}: {e}"),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    /// Four versions: `a` re-materialized every time, `b` only at 1 and 3, `c` only in 1 (then
    /// removed from the definitions).
    async fn four_versions(store: &Store) {
        publish(
            store,
            1,
            "2026-05-01T00:00:00.000Z",
            &[("a", 1), ("b", 1), ("c", 1)],
        )
        .await;
        publish(store, 2, "2026-05-02T00:00:00.000Z", &[("a", 2), ("b", 1)]).await;
        publish(store, 3, "2026-05-03T00:00:00.000Z", &[("a", 3), ("b", 2)]).await;
        publish(store, 5, "2026-05-04T00:00:00.000Z", &[("a", 4), ("b", 2)]).await;
    }

    #[test]
    fn keys_parse_only_in_the_form_they_are_written() {
        assert_eq!(parse_manifest_key(&manifest_key(42)), Some(42));
        assert_eq!(parse_manifest_key("manifests/42.json"), None);
        assert_eq!(
            parse_manifest_key("manifests/00000000000000000042.json.tmp"),
            None
        );
        assert_eq!(
            parse_snapshot_key(&snapshot_key("v_1", 7)),
            Some(("v_1", 7))
        );
        assert_eq!(parse_snapshot_key("snapshots/v/7.fss"), None);
        assert_eq!(
            parse_snapshot_key("snapshots/v/x/00000000000000000007.fss"),
            None
        );
        assert_eq!(describe_kept(&[2, 3]), "2, 3");
        assert_eq!(describe_kept(&[1, 2, 3, 4, 5, 9]), "1–9 (6 versions)");
    }

    #[tokio::test]
    async fn versions_lists_published_manifests_newest_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(&dir);
        assert_eq!(
            s.versions().await.expect("versions"),
            Versions {
                live: None,
                items: Vec::new()
            }
        );
        four_versions(&s).await;
        in_flight(&s, 6, &[("a", 5)]).await;
        let v = s.versions().await.expect("versions");
        assert_eq!(v.live, Some(5));
        let seqs: Vec<(u64, bool)> = v.items.iter().map(|i| (i.seq, i.live)).collect();
        assert_eq!(seqs, [(5, true), (3, false), (2, false), (1, false)]);
        assert_eq!(
            v.items[3].views,
            BTreeMap::from([("a".into(), 1), ("b".into(), 1), ("c".into(), 1)])
        );
        assert_eq!(v.items[0].created_at, "2026-05-04T00:00:00.000Z");
    }

    #[tokio::test]
    async fn time_travel_finds_the_version_live_at_a_time() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(&dir);
        let nothing = s.manifest_at(1).await;
        assert!(
            matches!(&nothing, Err(StorageError::NothingPublished(_))),
            "{nothing:?}"
        );
        let nothing = s.manifest_as_of(at("2026-05-01T00:00:00Z")).await;
        assert!(
            matches!(&nothing, Err(StorageError::NothingPublished(_))),
            "{nothing:?}"
        );
        four_versions(&s).await;

        assert_eq!(s.manifest_at(2).await.expect("2").views["a"].version, 2);
        assert_eq!(s.manifest_at(5).await.expect("5").seq, 5);
        for (seq, why) in [
            (4, "pruned or never published"),
            (6, "live version is 5"),
            (0, "start at 1"),
        ] {
            let e = s.manifest_at(seq).await.expect_err("not kept").to_string();
            assert!(
                e.contains(&format!("version {seq} ")) && e.contains(why),
                "{e}"
            );
        }

        // Inclusive: a version is live from the instant it was created.
        let cases = [
            ("2026-05-01T00:00:00Z", 1),
            ("2026-05-01T23:59:59.999Z", 1),
            ("2026-05-02T00:00:00Z", 2),
            ("2026-05-03T02:00:00+02:00", 3),
            ("2026-05-03T01:59:59+02:00", 2),
            ("2030-01-01T00:00:00Z", 5),
        ];
        for (t, seq) in cases {
            assert_eq!(s.manifest_as_of(at(t)).await.expect(t).seq, seq, "{t}");
        }
        let before = s
            .manifest_as_of(at("2026-04-30T23:59:59Z"))
            .await
            .expect_err("before");
        assert!(
            matches!(&before, StorageError::BeforeFirstVersion { seq: 1, .. }),
            "{before:?}"
        );
        let msg = before.to_string();
        assert!(
            msg.contains("2026-04-30T23:59:59Z") && msg.contains("2026-05-01T00:00:00.000Z"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn prune_keeps_the_newest_versions_and_what_they_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(&dir);
        four_versions(&s).await;
        s.put_new("transforms/abc.wasm", b"wasm".to_vec().into())
            .await
            .expect("put");
        // A materialization in flight: its snapshot is written, no manifest names it yet.
        s.put_new(&snapshot_key("a", 5), b"new".to_vec().into())
            .await
            .expect("put");
        // A view materialized for the first time, also in flight.
        s.put_new(&snapshot_key("d", 1), b"new".to_vec().into())
            .await
            .expect("put");

        assert_eq!(s.prune(0).await.expect("keep all"), PruneReport::default());
        assert_eq!(s.manifest_seqs().await.expect("seqs"), [1, 2, 3, 5]);

        let r = s.prune(2).await.expect("prune");
        assert_eq!(r.manifests, [1, 2]);
        assert_eq!(
            r.snapshots,
            [
                snapshot_key("a", 1),
                snapshot_key("a", 2),
                snapshot_key("b", 1),
                snapshot_key("c", 1)
            ]
        );
        assert_eq!(s.manifest_seqs().await.expect("seqs"), [3, 5]);
        for key in [
            snapshot_key("a", 3),
            snapshot_key("a", 4),
            snapshot_key("b", 2),
            snapshot_key("a", 5),
            snapshot_key("d", 1),
            "transforms/abc.wasm".into(),
        ] {
            assert!(exists(&s, &key).await, "{key} was deleted");
        }
        let pruned = s.manifest_at(1).await.expect_err("pruned").to_string();
        assert!(
            pruned.contains("pruned") && pruned.contains("oldest version kept is 3"),
            "{pruned}"
        );
        // Nothing left to do: a second pass deletes nothing.
        assert_eq!(s.prune(2).await.expect("again"), PruneReport::default());

        // Keeping one never deletes the live manifest, nor a publish in flight above it.
        in_flight(&s, 9, &[("a", 5), ("b", 2)]).await;
        let r = s.prune(1).await.expect("prune");
        assert_eq!(r.manifests, [3]);
        assert_eq!(r.snapshots, [snapshot_key("a", 3)]);
        assert_eq!(s.manifest_seqs().await.expect("seqs"), [5, 9]);
        assert_eq!(s.live_manifest().await.expect("live").expect("some").seq, 5);
    }

    #[tokio::test]
    async fn prune_keeps_the_deltas_kept_manifests_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(&dir);
        let publish_chain = async |seq: u64, views: &[(&str, u64, &[u64])]| {
            let m = chained(&s, seq, "2026-05-01T00:00:00.000Z", views).await;
            s.publish(&m).await.expect("publish");
        };
        // `a`: base 1, then deltas 2 and 3 on it, then compacted into full snapshot 4.
        // `b`: base 1 with delta 2, then dropped from the definitions.
        publish_chain(1, &[("a", 1, &[]), ("b", 1, &[2])]).await;
        publish_chain(2, &[("a", 1, &[2])]).await;
        publish_chain(3, &[("a", 1, &[2, 3])]).await;
        publish_chain(4, &[("a", 4, &[])]).await;
        // A delta in flight: written, no manifest names it yet.
        s.put_new(&snapshot_key("a", 5), b"new".to_vec().into())
            .await
            .expect("put");

        // Manifests 3 and 4 are kept: the base and both deltas 3 names stay.
        let r = s.prune(2).await.expect("prune");
        assert_eq!(r.manifests, [1, 2]);
        // `b`'s delta 2 is settled (a manifest named it), so it goes with its base once no kept
        // manifest names it, rather than passing for a materialization in flight.
        assert_eq!(r.snapshots, [snapshot_key("b", 1), snapshot_key("b", 2)]);
        for v in 1..=5 {
            assert!(exists(&s, &snapshot_key("a", v)).await, "a/{v} was deleted");
        }

        // Only the compacted snapshot is named now: the chain goes, the delta in flight stays.
        let r = s.prune(1).await.expect("prune");
        assert_eq!(r.manifests, [3]);
        assert_eq!(
            r.snapshots,
            [
                snapshot_key("a", 1),
                snapshot_key("a", 2),
                snapshot_key("a", 3)
            ]
        );
        for v in [4, 5] {
            assert!(exists(&s, &snapshot_key("a", v)).await, "a/{v} was deleted");
        }
    }

    #[tokio::test]
    async fn prune_treats_shard_files_as_their_snapshot() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(&dir);
        // Version 1 of `a` split in two, with a delta 2 that only touched shard 1.
        let mut m1 = chained(&s, 1, "2026-05-01T00:00:00.000Z", &[("a", 1, &[2])]).await;
        let shard = |key: &str, index: u32| crate::ManifestShard {
            index,
            count: 2,
            key: crate::shard_key(key, index, 2),
            size_bytes: 8,
            rows: 1,
            checksum: "0".into(),
        };
        let v = m1.views.get_mut("a").expect("a");
        v.shards = vec![shard(&v.key, 0), shard(&v.key, 1)];
        v.deltas[0].shards = vec![shard(&v.deltas[0].key, 1)];
        let named: Vec<String> = v
            .shards
            .iter()
            .chain(&v.deltas[0].shards)
            .map(|s| s.key.clone())
            .collect();
        for k in &named {
            put_snapshot(&s, k).await;
        }
        s.publish(&m1).await.expect("publish");
        // A stray shard of the delta (never named) and a shard of a version in flight.
        let stray = crate::shard_key(&snapshot_key("a", 2), 0, 2);
        let flying = crate::shard_key(&snapshot_key("a", 3), 0, 2);
        put_snapshot(&s, &stray).await;
        put_snapshot(&s, &flying).await;
        assert_eq!(
            shard_base_key(&flying).as_deref(),
            Some(snapshot_key("a", 3).as_str())
        );
        assert_eq!(shard_base_key(&snapshot_key("a", 3)), None);

        let r = s.prune(1).await.expect("prune");
        assert_eq!(r.snapshots, [stray]);
        for k in named.iter().chain([&flying]) {
            assert!(exists(&s, k).await, "{k} was deleted");
        }
        // Once a full snapshot replaces the chain, its shards go with it.
        let m2 = chained(&s, 2, "2026-05-01T00:00:01.000Z", &[("a", 4, &[])]).await;
        s.publish(&m2).await.expect("publish");
        let r = s.prune(1).await.expect("prune");
        for k in &named {
            assert!(r.snapshots.contains(k), "{k} kept: {:?}", r.snapshots);
        }
    }

    #[tokio::test]
    async fn prune_on_an_empty_store_does_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = store(&dir);
        s.put_new(&snapshot_key("a", 1), b"x".to_vec().into())
            .await
            .expect("put");
        assert_eq!(s.prune(1).await.expect("prune"), PruneReport::default());
        assert!(exists(&s, &snapshot_key("a", 1)).await);
    }
}
