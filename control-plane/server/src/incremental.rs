//! Incremental runs: deciding whether a view's slot can be brought up to date from only what
//! is new since its last run (a *delta* on top of its live snapshot), and holding the live
//! chain's snapshots locally so a run can compare against them and compact them.
//!
//! The high-water mark of a slot is its live chain (base snapshot plus deltas), as recorded in
//! the registry: the as-of time of its newest run and every source file the chain read, with
//! size and version tag. A file listed now that the chain never read is new; a file it read
//! that is gone or changed (a rewritten partition, a compaction of the lake) means rows may
//! have been removed or replaced, which only a full run can reflect.

use std::collections::HashMap;
use std::path::PathBuf;

use fstore_offline::InputFile;
use fstore_registry::SnapshotRecord;
use fstore_snapshot::Snapshot;
use fstore_storage::{Manifest, ManifestView, Store};

use crate::ControlError;

/// How a run computes its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Incremental when the slot's live chain allows it, else full (scheduled runs, pushes).
    #[default]
    Auto,
    /// Every source file in range, a new full snapshot (`fstore materialize`'s default).
    Full,
}

/// What the live chain of a slot says about the next run.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Read everything in range; the reason is shown in the run's lineage.
    Full(String),
    /// Read what is new and publish a delta.
    Incremental(Chain),
}

/// A slot's live chain: its base snapshot and deltas, and what they were computed from.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    /// The live manifest's entry (base snapshot plus deltas).
    pub live: ManifestView,
    /// The as-of time (µs) of the newest run in the chain.
    pub as_of: i64,
    /// Every source file the chain read, by path.
    pub seen: HashMap<String, InputFile>,
    /// Rows across the chain's deltas (to decide when to compact).
    pub delta_rows: u64,
    /// The earliest event time a run of the chain read but deferred as not yet due.
    pub defer_until: Option<i64>,
}

impl Chain {
    /// The chain's input files in path order, for the lineage of a compacted snapshot.
    pub fn inputs(&self) -> Vec<InputFile> {
        let mut v: Vec<InputFile> = self.seen.values().cloned().collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }
}

/// The as-of time and inputs a snapshot's lineage records (None for snapshots recorded
/// before incremental runs existed: the next run is then full).
fn as_of(record: &SnapshotRecord) -> Option<i64> {
    record.lineage.get("as_of_micros")?.as_i64()
}

fn inputs(record: &SnapshotRecord) -> Vec<InputFile> {
    record
        .lineage
        .get("inputs")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Decides how to run `slot` at `now`: incremental if its live chain was computed with
/// definition version `definition_version`, every file the chain read is still there
/// unchanged, and no row the chain deferred (dated after its run) has come due.
pub(crate) async fn plan(
    registry: &dyn fstore_registry::Registry,
    defs: &fstore_spec::Definitions,
    slot: &str,
    definition_version: u64,
    live: Option<&Manifest>,
    now: i64,
) -> Result<Plan, ControlError> {
    let full = |why: &str| Ok(Plan::Full(why.to_string()));
    if slot.contains('@') {
        return full("a pinned definition version is always computed in full");
    }
    let (Some(view), Some(mv)) = (defs.view(slot), live.and_then(|m| m.views.get(slot))) else {
        return full("no live snapshot to build on");
    };
    let Some(source) = defs.source(&view.source) else {
        return full("the view's source is not defined");
    };
    if source.format == fstore_spec::SourceFormat::Postgres {
        return full("a database query has no files to tell new rows by");
    }
    let mut versions = vec![mv.version];
    versions.extend(mv.deltas.iter().map(|d| d.version));
    let mut seen = HashMap::new();
    let mut newest = None;
    let mut delta_rows = 0;
    let mut defer_until: Option<i64> = None;
    for (i, v) in versions.iter().enumerate() {
        let Some(rec) = registry.get_snapshot(slot, *v).await? else {
            return full("the live snapshot is not recorded in this registry");
        };
        if rec.definition_version != definition_version {
            return full("the view's definition changed since the live snapshot");
        }
        let Some(t) = as_of(&rec) else {
            return full("the live snapshot records no as-of time");
        };
        let due = rec
            .lineage
            .get("defer_until_micros")
            .and_then(|v| v.as_i64());
        if due.is_some_and(|d| d <= now) {
            return full("rows dated after an earlier run have come due");
        }
        defer_until = match (defer_until, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if i > 0 {
            delta_rows += rec.rows;
        }
        newest = Some(newest.map_or(t, |n: i64| n.max(t)));
        for f in inputs(&rec) {
            seen.insert(f.path.clone(), f);
        }
    }
    let Some(as_of) = newest.filter(|&t| t <= now) else {
        return full("the live snapshot is dated in the future");
    };
    let listed = fstore_offline::list_source_files(source, None)
        .await
        .map_err(|e| ControlError::Materialization {
            view: slot.to_string(),
            message: e.to_string(),
        })?;
    let now_listed: HashMap<&str, &fstore_offline::SourceFile> =
        listed.iter().map(|f| (f.display.as_str(), f)).collect();
    for (path, f) in &seen {
        let Some(l) = now_listed.get(path.as_str()) else {
            return full(&format!("`{path}` was read before and is gone"));
        };
        let o = l.object.as_ref();
        if o.map(|o| o.size) != f.size_bytes || o.and_then(|o| o.e_tag.clone()) != f.e_tag {
            return full(&format!("`{path}` changed since it was read"));
        }
    }
    Ok(Plan::Incremental(Chain {
        live: mv.clone(),
        as_of,
        seen,
        delta_rows,
        defer_until,
    }))
}

/// Local copies of published snapshots, so a run can read its slot's live chain (compare
/// rows, compact) without holding it in memory. Objects are immutable, so a cached file stays
/// right; each file is checked against its manifest checksum when opened.
#[derive(Debug)]
pub(crate) struct SnapshotCache {
    dir: PathBuf,
}

impl SnapshotCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(key.replace('/', "_"))
    }

    /// Downloads (unless cached) and opens the snapshot at `key`, checking its checksum.
    pub async fn open(
        &self,
        store: &Store,
        key: &str,
        checksum: &str,
    ) -> Result<Snapshot, ControlError> {
        let bad = |message: String| ControlError::Materialization {
            view: key.to_string(),
            message,
        };
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| bad(format!("cannot create {}: {e}", self.dir.display())))?;
        let file = self.file(key);
        if !file.exists() {
            store.download(key, &file).await?;
        }
        let path = file.clone();
        let opened = tokio::task::spawn_blocking(move || Snapshot::open(&path))
            .await
            .map_err(|e| bad(format!("opening the live snapshot failed: {e}")))?;
        let snapshot = match opened {
            Ok(s) if format!("{:016x}", s.checksum()) == checksum => s,
            Ok(_) => {
                let _ = std::fs::remove_file(&file);
                return Err(bad("the cached live snapshot has the wrong checksum".into()));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                return Err(bad(format!("cannot open the live snapshot: {e}")));
            }
        };
        Ok(snapshot)
    }

    /// Opens a chain: the base, then its deltas oldest first.
    pub async fn open_chain(
        &self,
        store: &Store,
        mv: &ManifestView,
    ) -> Result<(Snapshot, Vec<Snapshot>), ControlError> {
        let base = self.open(store, &mv.key, &mv.checksum).await?;
        let mut deltas = Vec::with_capacity(mv.deltas.len());
        for d in &mv.deltas {
            deltas.push(self.open(store, &d.key, &d.checksum).await?);
        }
        Ok((base, deltas))
    }

    /// Deletes cached files of `slot` that `keep` (its new chain) does not name. Open
    /// mappings stay valid after unlinking.
    pub fn retain(&self, slot: &str, keep: &ManifestView) {
        // `snapshots_<slot>_<20 digits>.fss`: the slot's own files, not those of a slot whose
        // name merely starts with this one's.
        let prefix = format!("snapshots_{slot}_");
        let own = |name: &str| {
            name.strip_prefix(&prefix).is_some_and(|rest| {
                rest.len() == 24
                    && rest.ends_with(".fss")
                    && rest[..20].bytes().all(|b| b.is_ascii_digit())
            })
        };
        let mut names = vec![self.file(&keep.key)];
        names.extend(keep.deltas.iter().map(|d| self.file(&d.key)));
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if own(&name) && !names.contains(&p) {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}
