use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt32Array};
use fstore_snapshot::{Field, KeyBuf, KeyType, SnapshotSchema, SnapshotWriter, Value};
use fstore_spec::{Definitions, FeatureView};

use crate::OfflineError;
use crate::aggregate::{Query, evaluate};
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
/// A row with a null join key or event timestamp fails the whole run, naming the file and
/// row: the caller publishes nothing, so the live snapshot stays.
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
    let table = load_table(defs, view, read_range(view, now_micros, now_micros)).await?;
    let index = EventIndex::build(&table.keys, &table.event, table.created.as_ref())?;
    let ttl = ttl_micros(view);

    // The row each kept entity is written under: its latest row as of now.
    let mut kept: Vec<u32> = Vec::with_capacity(index.groups());
    let mut queries: Vec<Option<Query<'_>>> = Vec::new();
    for g in index.iter() {
        if let Some(row) = g.latest_at(now_micros, ttl) {
            kept.push(row);
            if view.is_aggregate() {
                queries.push(Some(Query {
                    start: g.start,
                    events: g.events,
                    t: now_micros,
                }));
            }
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
    };
    let mut writer = SnapshotWriter::new(schema)?;
    writer.reserve(kept.len(), 64 + view.features.len() * 10);
    let key_cols: Vec<Col<'_>> = table.keys.iter().filter_map(Col::of).collect();
    let cols: Vec<Col<'_>> = columns.iter().filter_map(Col::of).collect();
    if cols.len() != columns.len() || key_cols.len() != table.keys.len() {
        return Err(OfflineError::UnknownView(format!(
            "{view_name} (a column has an unexpected type)"
        )));
    }
    let created = table.created.as_ref();
    let mut kb = KeyBuf::new();
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
    Ok(Materialized {
        checksum: fstore_snapshot::format::body_checksum(&parts[0]).unwrap_or_default(),
        parts,
        files: table.files,
        rows_read: table.rows_read,
        rows_written: written,
        rows_expired: distinct - written,
        rows_superseded: table.rows_read - distinct,
    })
}
