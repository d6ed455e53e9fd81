use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt32Array};
use fstore_snapshot::{Field, KeyBuf, KeyType, SnapshotSchema, SnapshotWriter, Value};
use fstore_spec::{Definitions, FeatureView};

use crate::OfflineError;
use crate::aggregate::{Query, evaluate};
use crate::changes::Changes;
use crate::columns::{Col, encode_key};
use crate::pit::{EventIndex, gather};
use crate::table::{load_table, stored_features};
use crate::view::complete;

/// The outcome of one materialization: snapshot bytes plus what happened to the rows.
#[derive(Debug)]
pub struct Materialized {
    /// The snapshot file as two parts (head, rows); see `SnapshotWriter::finish_parts`.
    pub parts: [Vec<u8>; 2],
    /// The snapshot's body checksum (xxh3-64), as its header records it.
    pub checksum: u64,
    /// The source files read, with their sizes, version tags and row counts.
    pub files: Vec<crate::InputFile>,
    pub rows_read: u64,
    /// Entities written to the snapshot.
    pub rows_written: u64,
    /// Entities whose latest row was older than the ttl at materialization time.
    pub rows_expired: u64,
    /// Rows for entities that had a newer row (or that an aggregation folded).
    pub rows_superseded: u64,
    /// Source rows set aside rather than used (`rejected.len()`); counted in `rows_read`.
    pub rows_rejected: u64,
    /// Each row set aside, with its file, row and why.
    pub rejected: Vec<crate::RejectedRow>,
    /// The earliest event time read that lies after the run's as-of time: such rows are not
    /// served yet, and an incremental chain must be recomputed in full once they are due.
    pub next_event_micros: Option<i64>,
    /// Plain views: entities written that had more than one row in what was read, so their
    /// served row was picked from several (the `unique_keys` rule's figure).
    pub duplicate_keys: u64,
    /// The encoded keys of the first few such entities.
    pub duplicate_samples: Vec<Vec<u8>>,
}

impl Materialized {
    /// Size of the snapshot file in bytes.
    pub fn len(&self) -> u64 {
        (self.parts[0].len() + self.parts[1].len()) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole file in one buffer (tests, small snapshots).
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

/// How many duplicated keys a run keeps as examples.
const DUPLICATE_SAMPLES: usize = 5;

pub(crate) fn ttl_micros(view: &FeatureView) -> i64 {
    i64::try_from(view.ttl_seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

/// The event-time interval an evaluation of `view` between `from` and `to` needs, for
/// partition pruning: None when it needs all history.
pub(crate) fn read_range(view: &FeatureView, from: i64, to: i64) -> Option<(i64, i64)> {
    let ttl = ttl_micros(view);
    if view.is_aggregate() {
        // Recency and the entity set look back as far as the ttl; windows as far as the
        // longest window. Without a ttl an entity's last event may be arbitrarily old.
        let lookback = view.lookback_seconds()?;
        if ttl == 0 {
            return None;
        }
        let lookback = i64::try_from(lookback)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000)
            .max(ttl);
        Some((from.saturating_sub(lookback), to))
    } else if ttl > 0 {
        Some((from.saturating_sub(ttl), to))
    } else {
        Some((i64::MIN, to))
    }
}

/// Materializes `view` as snapshot `version`, as of `now_micros`.
///
/// A plain view keeps each entity's latest row with event time ≤ now (ties broken by the
/// created timestamp, then by the later row), if it is no older than the ttl. An aggregating
/// view folds each entity's events into its windows as of now, for entities whose latest
/// event is within the ttl. Both follow the rules historical retrieval uses, through the same
/// code, so a training set as of now equals the snapshot.
///
/// A row with a null join key or event timestamp, or a CSV/JSON-lines value that does not
/// parse, is not fatal: it is rejected (listed in `rejected` with its file, row and why) and
/// the snapshot is built from the other rows; the caller decides whether too many rejections
/// fail the run. Missing columns, types that do not fit and unreadable files fail it.
///
/// `transforms` holds the loaded component of each of the view's steps, in order; their outputs
/// are computed over the kept rows in batches and stored like any other feature.
pub async fn materialize(
    defs: &Definitions,
    view_name: &str,
    version: u64,
    now_micros: i64,
    transforms: &[Arc<fstore_wasm_host::Transform>],
) -> Result<Materialized, OfflineError> {
    run(defs, view_name, version, now_micros, transforms, None).await
}

/// An entity's served row, by encoded key: its event and created time, if it has one.
pub type LiveRow<'a> = &'a (dyn Fn(&[u8]) -> Option<(i64, Option<i64>)> + Sync);

/// What an incremental run knows of its slot's live chain (see `materialize_delta`).
pub struct Incremental<'a> {
    /// The full snapshot the chain builds on; the delta names it.
    pub base_version: u64,
    /// The as-of time of the chain's newest run: changes are counted from there.
    pub since_micros: i64,
    /// Whether a source file (by its path or URL) is new: the chain never read it.
    pub is_new: &'a (dyn Fn(&str) -> bool + Sync),
    /// The event and created time of an entity's served row (by encoded key), if any.
    pub live: LiveRow<'a>,
}

/// Materializes a *delta* of `view` as snapshot `version`: only the entities whose served
/// values change against the live chain, computed by the same rules as [`materialize`], so
/// the chain with the delta on top answers as a full snapshot as of `now_micros` would.
///
/// A plain view reads only new files; an entity's latest new row is kept if it is at least as
/// recent (event time, then created time) as its live row. An aggregating view reads its
/// windows as a full run does, and recomputes the entities with a row from a new file or
/// whose windows or clock-based features moved since `since_micros` (see `changes.rs`).
pub async fn materialize_delta(
    defs: &Definitions,
    view_name: &str,
    version: u64,
    now_micros: i64,
    transforms: &[Arc<fstore_wasm_host::Transform>],
    inc: &Incremental<'_>,
) -> Result<Materialized, OfflineError> {
    run(defs, view_name, version, now_micros, transforms, Some(inc)).await
}

async fn run(
    defs: &Definitions,
    view_name: &str,
    version: u64,
    now_micros: i64,
    transforms: &[Arc<fstore_wasm_host::Transform>],
    inc: Option<&Incremental<'_>>,
) -> Result<Materialized, OfflineError> {
    let view = defs
        .view(view_name)
        .ok_or_else(|| OfflineError::UnknownView(view_name.to_string()))?;
    if transforms.len() != view.steps.len() {
        return Err(OfflineError::UnknownView(format!(
            "{view_name} (needs {} loaded transforms, got {})",
            view.steps.len(),
            transforms.len()
        )));
    }
    let stored = stored_features(view);
    let keys: Vec<Field<KeyType>> = defs.view_keys(view);
    let plain = !view.is_aggregate();
    // A plain view's delta needs only the new rows; an aggregation needs its windows.
    let only_new = |f: &crate::SourceFile| inc.is_none_or(|i| !plain || (i.is_new)(&f.display));
    let table = load_table(
        defs,
        view,
        read_range(view, now_micros, now_micros),
        &only_new,
    )
    .await?;
    let index = EventIndex::build(&table.keys, &table.event, table.created.as_ref())?;
    let ttl = ttl_micros(view);
    let key_cols: Vec<Col<'_>> = table.keys.iter().filter_map(Col::of).collect();
    let created = table.created.as_ref();
    // Which table rows came from files the chain never read (aggregating deltas).
    let mut new_rows: Vec<bool> = Vec::new();
    if let Some(i) = inc.filter(|_| !plain) {
        new_rows.reserve(table.event.len());
        for (f, &n) in table.files.iter().zip(&table.file_rows) {
            new_rows.extend(std::iter::repeat_n((i.is_new)(&f.path), n));
        }
    }
    let changes = inc.map(|i| Changes::of(view, i.since_micros, now_micros));
    let mut kb = KeyBuf::new();

    // The row each kept entity is written under: its latest row as of now.
    let mut kept: Vec<u32> = Vec::with_capacity(index.groups());
    let mut queries: Vec<Option<Query<'_>>> = Vec::new();
    let mut expired = 0u64;
    let (mut duplicate_keys, mut duplicate_samples) = (0u64, Vec::new());
    for g in index.iter() {
        let Some(row) = g.latest_at(now_micros, ttl) else {
            expired += 1;
            continue;
        };
        if let (Some(i), Some(changes)) = (inc, &changes) {
            let r = row as usize;
            let changed = if plain {
                encode_key(&key_cols, r, &mut kb);
                let c = created.filter(|c| c.is_valid(r)).map(|c| c.value(r));
                // At least as recent as the served row: on a full tie the newer file wins,
                // as a full run's later-read row does for files named in time order.
                (i.live)(kb.as_bytes()).is_none_or(|live| (table.event.value(r), c) >= live)
            } else {
                changes.affected(&g, &|r| new_rows.get(r as usize).copied().unwrap_or(true))
            };
            if !changed {
                continue;
            }
        }
        kept.push(row);
        if plain && g.rows.len() > 1 {
            duplicate_keys += 1;
            if duplicate_samples.len() < DUPLICATE_SAMPLES {
                encode_key(&key_cols, row as usize, &mut kb);
                duplicate_samples.push(kb.as_bytes().to_vec());
            }
        }
        if view.is_aggregate() {
            queries.push(Some(Query {
                start: g.start,
                events: g.events,
                t: now_micros,
            }));
        }
    }
    let stored_cols: Vec<ArrayRef> = if view.is_aggregate() {
        evaluate(&stored, &table.inputs, index.order(), &queries)?
    } else {
        let inputs: Vec<ArrayRef> = table.inputs.iter().flatten().cloned().collect();
        gather(&inputs, &UInt32Array::from(kept.clone()))?
    };
    let columns = complete(view, kept.len(), stored_cols, transforms)?;

    let schema = SnapshotSchema {
        view: view.name.clone(),
        version,
        keys: keys.clone(),
        features: view
            .features
            .iter()
            .map(|f| Field {
                name: f.name.clone(),
                ty: f.ty,
            })
            .collect(),
        ttl_seconds: view.ttl_seconds,
        created_at_micros: now_micros,
        base_version: inc.map(|i| i.base_version),
        shard: None,
    };
    let mut writer = SnapshotWriter::new(schema)?;
    writer.reserve(kept.len(), 64 + view.features.len() * 10);
    let cols: Vec<Col<'_>> = columns.iter().filter_map(Col::of).collect();
    if cols.len() != columns.len() || key_cols.len() != table.keys.len() {
        return Err(OfflineError::UnknownView(format!(
            "{view_name} (a column has an unexpected type)"
        )));
    }
    let mut values: Vec<Value<'_>> = Vec::with_capacity(cols.len());
    for (i, &row) in kept.iter().enumerate() {
        let row = row as usize;
        // Loading rejected null keys, so every kept row encodes.
        encode_key(&key_cols, row, &mut kb);
        values.clear();
        values.extend(cols.iter().map(|c| c.value(i)));
        let c = created.filter(|c| c.is_valid(row)).map(|c| c.value(row));
        // An aggregate row carries no created time of its own.
        let c = if view.is_aggregate() { None } else { c };
        writer.push(kb.as_bytes(), table.event.value(row), c, &values)?;
    }
    let written = writer.len() as u64;
    let parts = writer.finish_parts()?;
    let distinct = index.groups() as u64;
    let now = now_micros;
    let next_event_micros = table
        .event
        .values()
        .iter()
        .copied()
        .filter(|&e| e > now)
        .min();
    Ok(Materialized {
        checksum: fstore_snapshot::format::body_checksum(&parts[0]).unwrap_or_default(),
        parts,
        files: table.files,
        rows_read: table.rows_read,
        rows_written: written,
        rows_expired: expired,
        next_event_micros,
        duplicate_keys,
        duplicate_samples,
        // Rejected rows never reached the index: they are neither kept nor superseded.
        rows_superseded: table.event.len() as u64 - distinct,
        rows_rejected: table.rejected.len() as u64,
        rejected: table.rejected,
    })
}
