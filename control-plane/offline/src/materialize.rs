use std::collections::HashMap;
use std::sync::Arc;

use xxhash_rust::xxh3::Xxh3Builder;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use fstore_snapshot::{FeatureType, Field, KeyBuf, KeyType, SnapshotSchema, SnapshotWriter, Value};
use fstore_spec::{Definitions, FeatureDef, SourceFormat};

use crate::OfflineError;
use crate::columns::{Col, key_target, normalize, target_type};
use crate::source::{list_source_files, read_source};
use crate::transform::run_steps;

/// The outcome of one materialization: snapshot bytes plus what happened to the rows.
#[derive(Debug)]
pub struct Materialized {
    /// The snapshot file as two parts (head, rows); see `SnapshotWriter::finish_parts`.
    pub parts: [Vec<u8>; 2],
    /// The snapshot's body checksum (xxh3-64), as its header records it.
    pub checksum: u64,
    pub files: usize,
    pub rows_read: u64,
    /// Entities written to the snapshot.
    pub rows_written: u64,
    /// Entities whose latest row was older than the ttl at materialization time.
    pub rows_expired: u64,
    /// Rows for entities that had a newer row.
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

/// Where an entity's latest row is: (batch, row in batch, event micros, created micros).
type Latest = (u32, u32, i64, i64);

/// One batch with its columns normalized: keys, event time, created time, then features.
struct Prepared {
    file: usize,
    first_row: u64,
    keys: Vec<ArrayRef>,
    event: ArrayRef,
    created: Option<ArrayRef>,
    features: Vec<ArrayRef>,
}

/// Materializes `view` as snapshot `version`: reads every file of its source, keeps the
/// latest row per entity key (by event timestamp, then created timestamp), drops entities
/// whose latest row is older than the ttl as of `now_micros`, and encodes the rest.
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
    // Only stored features come from the source; the rest are computed after the latest row
    // per key is known.
    let stored: Vec<&FeatureDef> = view.features.iter().filter(|f| f.is_stored()).collect();
    let source = defs.source(&view.source).ok_or_else(|| {
        OfflineError::UnknownView(format!("{view_name} (source `{}` missing)", view.source))
    })?;
    let keys: Vec<Field<KeyType>> = defs.view_keys(view);

    let mut columns: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    columns.push(source.timestamp_field.clone());
    if let Some(c) = &source.created_timestamp_field {
        columns.push(c.clone());
    }
    let feature_cols: Vec<String> = stored.iter().map(|f| f.column().to_string()).collect();
    for c in &feature_cols {
        if !columns.contains(c) {
            columns.push(c.clone());
        }
    }
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    let mut typed: Vec<(String, DataType)> = keys
        .iter()
        .map(|k| (k.name.clone(), key_target(k.ty)))
        .collect();
    typed.push((source.timestamp_field.clone(), ts.clone()));
    if let Some(c) = &source.created_timestamp_field {
        typed.push((c.clone(), ts.clone()));
    }
    for f in &stored {
        if source.format == SourceFormat::Csv && f.ty == fstore_snapshot::FeatureType::ListFloat64 {
            return Err(OfflineError::File {
                file: source.path.clone(),
                message: format!(
                    "feature `{}` is list<float64>, which CSV sources cannot hold; use Parquet",
                    f.name
                ),
            });
        }
        typed.push((f.column().to_string(), target_type(f.ty)));
    }

    let files = list_source_files(source).await?;
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut rows_read = 0u64;
    for (fi, file) in files.iter().enumerate() {
        let batches = read_source(file, source.format, &columns, &typed).await?;
        let mut first_row = 0u64;
        for batch in batches {
            let p = prepare(
                &batch,
                fi,
                first_row,
                &keys,
                source,
                &feature_cols,
                &stored,
                &file.display,
            )?;
            first_row += batch.num_rows() as u64;
            prepared.push(p);
        }
        rows_read += first_row;
    }

    // Latest row per key. Keys are compared as their canonical encoding.
    // Sized for about one row per entity, not for every source row (history has many rows per
    // key); xxh3 instead of SipHash, since keys come from our own files, not from attackers.
    let mut best: HashMap<Vec<u8>, Latest, Xxh3Builder> =
        HashMap::with_capacity_and_hasher((rows_read as usize / 4).max(1024), Xxh3Builder::new());
    let mut kb = KeyBuf::new();
    for (bi, p) in prepared.iter().enumerate() {
        let key_cols: Vec<Col<'_>> = p.keys.iter().filter_map(Col::of).collect();
        let ev = p.event.as_primitive::<TimestampMicrosecondType>();
        let cr = p
            .created
            .as_ref()
            .map(|c| c.as_primitive::<TimestampMicrosecondType>());
        for row in 0..ev.len() {
            let file_row = p.first_row + row as u64 + 1;
            let row_err = |message: String| OfflineError::Row {
                file: files[p.file].display.clone(),
                row: file_row,
                message,
            };
            kb.clear();
            for (ki, c) in key_cols.iter().enumerate() {
                match c.value(row) {
                    Value::Int64(v) => kb.push_i64(v),
                    Value::String(s) => kb.push_str(s),
                    _ => return Err(row_err(format!("join key `{}` is null", keys[ki].name))),
                }
            }
            if ev.is_null(row) {
                return Err(row_err(format!(
                    "event timestamp `{}` is null",
                    source.timestamp_field
                )));
            }
            let e = ev.value(row);
            let c = cr
                .map(|c| {
                    if c.is_null(row) {
                        i64::MIN
                    } else {
                        c.value(row)
                    }
                })
                .unwrap_or(i64::MIN);
            let cand = (bi as u32, row as u32, e, c);
            match best.get_mut(kb.as_bytes()) {
                Some(cur) => {
                    if (e, c) > (cur.2, cur.3) {
                        *cur = cand;
                    }
                }
                None => {
                    best.insert(kb.as_bytes().to_vec(), cand);
                }
            }
        }
    }

    let cutoff = if view.ttl_seconds > 0 {
        now_micros.saturating_sub((view.ttl_seconds as i64).saturating_mul(1_000_000))
    } else {
        i64::MIN
    };
    let distinct = best.len() as u64;
    let mut keep: Vec<(Vec<u8>, Latest)> =
        best.into_iter().filter(|(_, v)| v.2 >= cutoff).collect();
    // Deterministic output: source order.
    keep.sort_unstable_by_key(|(_, v)| (v.0, v.1));

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
    writer.reserve(keep.len(), 64 + view.features.len() * 10);
    let cols: Vec<Vec<Col<'_>>> = prepared
        .iter()
        .map(|p| p.features.iter().filter_map(Col::of).collect())
        .collect();
    let stored_names: Vec<(&str, FeatureType)> =
        stored.iter().map(|f| (f.name.as_str(), f.ty)).collect();
    let read = |si: usize, i: usize| {
        let (_, (bi, row, _, _)) = &keep[i];
        cols[*bi as usize][si].value(*row as usize)
    };
    let computed = run_steps(
        &view.name,
        &view.steps,
        transforms,
        keep.len(),
        &stored_names,
        &read,
    )?;
    // Where each feature's value comes from: a stored column or a computed one.
    let mut sources = Vec::with_capacity(view.features.len());
    for f in &view.features {
        let source = if f.is_stored() {
            Slot::Stored(stored.iter().position(|s| s.name == f.name).unwrap_or(0))
        } else {
            match computed.iter().rposition(|c| c.name == f.name) {
                Some(ci) => Slot::Computed(ci),
                None => {
                    return Err(OfflineError::UnknownView(format!(
                        "{view_name} (feature `{}` is computed by no transform step; re-apply the definitions)",
                        f.name
                    )));
                }
            }
        };
        sources.push(source);
    }
    let mut values: Vec<Value<'_>> = Vec::with_capacity(view.features.len());
    for (i, (key, (bi, row, e, c))) in keep.iter().enumerate() {
        values.clear();
        values.extend(sources.iter().map(|s| match s {
            Slot::Stored(si) => cols[*bi as usize][*si].value(*row as usize),
            Slot::Computed(ci) => computed[*ci].value(i),
        }));
        writer.push(key, *e, (*c != i64::MIN).then_some(*c), &values)?;
    }
    let written = writer.len() as u64;
    let parts = writer.finish_parts()?;
    Ok(Materialized {
        checksum: fstore_snapshot::format::body_checksum(&parts[0]).unwrap_or_default(),
        parts,
        files: files.len(),
        rows_read,
        rows_written: written,
        rows_expired: distinct - written,
        rows_superseded: rows_read - distinct,
    })
}

enum Slot {
    Stored(usize),
    Computed(usize),
}

#[allow(clippy::too_many_arguments)]
fn prepare(
    batch: &RecordBatch,
    file: usize,
    first_row: u64,
    keys: &[Field<KeyType>],
    source: &fstore_spec::Source,
    feature_cols: &[String],
    stored: &[&FeatureDef],
    display: &str,
) -> Result<Prepared, OfflineError> {
    let err = |message: String| OfflineError::File {
        file: display.to_string(),
        message,
    };
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| err(format!("has no column `{name}`")))
    };
    let mut key_arrays = Vec::with_capacity(keys.len());
    for k in keys {
        let a = col(&k.name)?;
        key_arrays.push(
            normalize(&a, &key_target(k.ty), &format!("join key `{}`", k.name)).map_err(err)?,
        );
    }
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    let event = normalize(
        &col(&source.timestamp_field)?,
        &ts,
        &format!("timestamp field `{}`", source.timestamp_field),
    )
    .map_err(err)?;
    let created = match &source.created_timestamp_field {
        Some(c) => {
            Some(normalize(&col(c)?, &ts, &format!("created timestamp field `{c}`")).map_err(err)?)
        }
        None => None,
    };
    let mut features = Vec::with_capacity(feature_cols.len());
    for (f, c) in stored.iter().zip(feature_cols) {
        features.push(
            normalize(
                &col(c)?,
                &target_type(f.ty),
                &format!("column `{c}` (feature `{}`)", f.name),
            )
            .map_err(err)?,
        );
    }
    Ok(Prepared {
        file,
        first_row,
        keys: key_arrays,
        event,
        created,
        features,
    })
}
