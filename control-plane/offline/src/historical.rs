//! Historical retrieval: a training set built point-in-time correctly. Each entity row (join
//! keys plus a timestamp) gets, from every view, what that view would have served at the row's
//! timestamp: a plain view's latest row at or before it within the ttl, an aggregating view's
//! windows evaluated as of it. Transform steps and on-demand views then run on the joined rows
//! with the same components the edges run. No entity row is dropped, duplicated or reordered.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field as ArrowField, Schema, TimeUnit, TimestampMicrosecondType};
use fstore_snapshot::{FeatureRef, FeatureType, KeyBuf, Value};
use fstore_spec::{Definitions, FeatureView, OnDemandView};
use fstore_wasm_host::Transform;

use crate::OfflineError;
use crate::aggregate::{Query, evaluate};
use crate::columns::{Col, encode_key, key_target, normalize, target_type};
use crate::materialize::{read_range, ttl_micros};
use crate::pit::{EventIndex, gather, point_in_time_join};
use crate::table::{load_table, stored_features};
use crate::transform::{run_steps, take_columns};
use crate::view::complete;

/// What to retrieve.
#[derive(Debug, Clone)]
pub struct HistoricalRequest {
    /// The features, in output order (a feature service's list, or the caller's).
    pub features: Vec<FeatureRef>,
    /// Name output columns `view__feature` instead of `feature`.
    pub full_feature_names: bool,
    /// The entity rows' timestamp column.
    pub timestamp_column: String,
}

/// A training set and what it took.
#[derive(Debug)]
pub struct TrainingSet {
    /// The entity rows, unchanged and in order, followed by one column per feature.
    pub batch: RecordBatch,
    /// For each feature view read: (view, source rows read, entity rows that matched).
    pub views: Vec<(String, u64, u64)>,
}

fn err(message: impl Into<String>) -> OfflineError {
    OfflineError::Historical(message.into())
}

/// Builds the training set for `entities`. `transforms` holds, per view name (feature views
/// and on-demand views alike), the loaded component of each of its steps, in order.
///
/// Source rows that materialization would reject (a null join key or event timestamp, a
/// CSV/JSON-lines value that does not parse) are skipped: no entity row matches them, as no
/// snapshot holds them. A training set reports no rejections; a materialization of the same
/// view lists them.
pub async fn historical(
    defs: &Definitions,
    entities: &RecordBatch,
    request: &HistoricalRequest,
    transforms: &HashMap<String, Vec<Arc<Transform>>>,
) -> Result<TrainingSet, OfflineError> {
    let n = entities.num_rows();
    let ts_col = entities
        .column_by_name(&request.timestamp_column)
        .ok_or_else(|| {
            err(format!(
                "the entity rows have no `{}` column (columns: {})",
                request.timestamp_column,
                column_names(entities)
            ))
        })?;
    let ts = normalize(
        ts_col,
        &DataType::Timestamp(TimeUnit::Microsecond, None),
        &format!("entity column `{}`", request.timestamp_column),
    )
    .map_err(err)?;
    let ts = ts.as_primitive::<TimestampMicrosecondType>().clone();
    let (min_t, max_t) = ts
        .iter()
        .flatten()
        .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));

    let (feature_views, on_demand) = views_needed(defs, &request.features)?;

    let no_transforms: Vec<Arc<Transform>> = Vec::new();
    let loaded = |name: &str, steps: usize| -> Result<&Vec<Arc<Transform>>, OfflineError> {
        let t = transforms.get(name).unwrap_or(&no_transforms);
        if t.len() != steps {
            return Err(err(format!(
                "view `{name}` needs {steps} loaded transforms, got {}",
                t.len()
            )));
        }
        Ok(t)
    };

    // Every feature of every needed view, per entity row.
    let mut values: HashMap<String, Vec<ArrayRef>> = HashMap::new();
    let mut stats = Vec::new();
    for view in &feature_views {
        let keys = entity_keys(defs, view, entities)?;
        let ttl = ttl_micros(view);
        let range = if min_t <= max_t {
            read_range(view, min_t, max_t)
        } else {
            // No entity row has a timestamp: nothing can match, read as little as possible.
            Some((i64::MIN, i64::MIN))
        };
        let table = load_table(defs, view, range, &|_| true).await?;
        let index = EventIndex::build(&table.keys, &table.event, table.created.as_ref())?;
        let stored = stored_features(view);
        // `positions[i]`: row i's place among the matched rows, null when it has no match.
        let (matched, stored_cols): (Vec<u32>, Vec<ArrayRef>) = if view.is_aggregate() {
            let key_cols: Vec<Col<'_>> = keys.iter().filter_map(Col::of).collect();
            let mut kb = KeyBuf::new();
            let mut matched = Vec::new();
            let mut queries = Vec::new();
            for row in 0..n {
                if ts.is_null(row) || !encode_key(&key_cols, row, &mut kb) {
                    continue;
                }
                let t = ts.value(row);
                if let Some(g) = index.group(kb.as_bytes())
                    && g.latest_at(t, ttl).is_some()
                {
                    matched.push(row as u32);
                    queries.push(Some(Query {
                        start: g.start,
                        events: g.events,
                        t,
                    }));
                }
            }
            let cols = evaluate(&stored, &table.inputs, index.order(), &queries)?;
            (matched, cols)
        } else {
            let joined = point_in_time_join(&index, &keys, &ts, ttl)?;
            let mut matched = Vec::new();
            let mut rows = Vec::new();
            for (i, r) in joined.iter().enumerate() {
                if let Some(r) = r {
                    matched.push(i as u32);
                    rows.push(r);
                }
            }
            let inputs: Vec<ArrayRef> = table.inputs.iter().flatten().cloned().collect();
            let cols = gather(&inputs, &UInt32Array::from(rows))?;
            (matched, cols)
        };
        let computed = complete(
            view,
            matched.len(),
            stored_cols,
            loaded(&view.name, view.steps.len())?,
        )?;
        let positions = scatter_positions(n, &matched);
        let full = computed
            .iter()
            .map(|c| take(c.as_ref(), &positions, None).map_err(|e| err(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        stats.push((view.name.clone(), table.rows_read, matched.len() as u64));
        values.insert(view.name.clone(), full);
    }

    // On-demand views: every row, like the edge (missing inputs are nulls).
    for od in &on_demand {
        let mut names: Vec<(String, FeatureType)> = Vec::new();
        let mut cols: Vec<ArrayRef> = Vec::new();
        for s in &od.sources {
            let v = defs
                .view(s)
                .ok_or_else(|| err(format!("unknown view `{s}`")))?;
            let arrays = values
                .get(s)
                .ok_or_else(|| err(format!("view `{s}` was not read")))?;
            for (f, a) in v.features.iter().zip(arrays) {
                names.push((format!("{s}:{}", f.name), f.ty));
                cols.push(a.clone());
            }
        }
        if let Some(rs) = &od.request_source {
            let src = defs
                .request_source(rs)
                .ok_or_else(|| err(format!("unknown request source `{rs}`")))?;
            for f in &src.fields {
                let c = entities.column_by_name(&f.name).ok_or_else(|| {
                    err(format!(
                        "on-demand view `{}` needs request field `{}`, which the entity rows lack (columns: {})",
                        od.name,
                        f.name,
                        column_names(entities)
                    ))
                })?;
                let c = normalize(
                    c,
                    &target_type(f.ty),
                    &format!("entity column `{}`", f.name),
                )
                .map_err(err)?;
                names.push((f.name.clone(), f.ty));
                cols.push(c);
            }
        }
        let readers: Vec<Col<'_>> = cols.iter().filter_map(Col::of).collect();
        if readers.len() != cols.len() {
            return Err(err(format!(
                "on-demand view `{}`: an input has an unexpected type",
                od.name
            )));
        }
        let name_refs: Vec<(&str, FeatureType)> =
            names.iter().map(|(s, t)| (s.as_str(), *t)).collect();
        let read = |si: usize, i: usize| -> Value<'_> { readers[si].value(i) };
        let computed = run_steps(
            &od.name,
            &od.steps,
            loaded(&od.name, od.steps.len())?,
            n,
            &name_refs,
            &read,
        )?;
        let feature_names: Vec<&str> = od.features.iter().map(|f| f.name.as_str()).collect();
        let mut out = Vec::with_capacity(od.features.len());
        for (f, column) in od
            .features
            .iter()
            .zip(take_columns(computed, &feature_names))
        {
            out.push(column.ok_or_else(|| {
                err(format!(
                    "on-demand view `{}`: no step computes `{}`",
                    od.name, f.name
                ))
            })?);
        }
        values.insert(od.name.clone(), out);
    }

    // The entity rows, then the features in the order asked.
    let mut fields: Vec<ArrowField> = entities
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = entities.columns().to_vec();
    for r in &request.features {
        let feats = defs
            .features_of(&r.view)
            .ok_or_else(|| err(format!("unknown view `{}`", r.view)))?;
        let fi = feats
            .iter()
            .position(|f| f.name == r.feature)
            .ok_or_else(|| err(format!("`{r}` is not a feature")))?;
        let array = values
            .get(&r.view)
            .and_then(|v| v.get(fi))
            .ok_or_else(|| err(format!("`{r}` was not computed")))?;
        let name = if request.full_feature_names {
            format!("{}__{}", r.base_view(), r.feature)
        } else {
            r.feature.clone()
        };
        if fields.iter().any(|f| f.name() == &name) {
            return Err(err(format!(
                "two output columns would be named `{name}`; ask for full feature names (`view__feature`) or rename the entity column"
            )));
        }
        let array = utc(array)?;
        fields.push(ArrowField::new(name, array.data_type().clone(), true));
        columns.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| err(e.to_string()))?;
    Ok(TrainingSet {
        batch,
        views: stats,
    })
}

/// The views a request reads, each once: the feature views and on-demand views it names, and
/// the feature views those on-demand views read. Their transforms are what the caller loads.
pub fn views_needed<'d>(
    defs: &'d Definitions,
    features: &[FeatureRef],
) -> Result<(Vec<&'d FeatureView>, Vec<&'d OnDemandView>), OfflineError> {
    let mut feature_views: Vec<&FeatureView> = Vec::new();
    let mut on_demand: Vec<&OnDemandView> = Vec::new();
    for r in features {
        if let Some(v) = defs.view(&r.view) {
            if !v.features.iter().any(|f| f.name == r.feature) {
                return Err(err(format!(
                    "feature view `{}` has no feature `{}`",
                    r.view, r.feature
                )));
            }
            if !feature_views.iter().any(|x| x.name == v.name) {
                feature_views.push(v);
            }
        } else if let Some(od) = defs.on_demand_view(&r.view) {
            if !od.features.iter().any(|f| f.name == r.feature) {
                return Err(err(format!(
                    "on-demand view `{}` has no feature `{}`",
                    r.view, r.feature
                )));
            }
            if !on_demand.iter().any(|x| x.name == od.name) {
                on_demand.push(od);
            }
            for s in &od.sources {
                let v = defs.view(s).ok_or_else(|| {
                    err(format!(
                        "on-demand view `{}` reads unknown view `{s}`",
                        od.name
                    ))
                })?;
                if !feature_views.iter().any(|x| x.name == v.name) {
                    feature_views.push(v);
                }
            }
        } else {
            return Err(err(format!(
                "no feature view or on-demand view is named `{}`",
                r.view
            )));
        }
    }

    Ok((feature_views, on_demand))
}

/// Feature timestamps are instants: say so in the output's type.
fn utc(a: &ArrayRef) -> Result<ArrayRef, OfflineError> {
    if let DataType::Timestamp(TimeUnit::Microsecond, None) = a.data_type() {
        let p = a.as_primitive::<TimestampMicrosecondType>().clone();
        return Ok(Arc::new(p.with_timezone("UTC")));
    }
    Ok(a.clone())
}

/// Maps each of `n` rows to its index among `matched` (ascending row numbers), or null.
fn scatter_positions(n: usize, matched: &[u32]) -> UInt32Array {
    let mut out: Vec<Option<u32>> = vec![None; n];
    for (i, &r) in matched.iter().enumerate() {
        out[r as usize] = Some(i as u32);
    }
    UInt32Array::from(out)
}

/// The view's join-key columns from the entity rows, normalized like the source's.
fn entity_keys(
    defs: &Definitions,
    view: &FeatureView,
    entities: &RecordBatch,
) -> Result<Vec<ArrayRef>, OfflineError> {
    defs.view_keys(view)
        .iter()
        .map(|k| {
            let c = entities.column_by_name(&k.name).ok_or_else(|| {
                err(format!(
                    "view `{}` joins on `{}`, which the entity rows lack (columns: {})",
                    view.name,
                    k.name,
                    column_names(entities)
                ))
            })?;
            normalize(c, &key_target(k.ty), &format!("entity column `{}`", k.name)).map_err(err)
        })
        .collect()
}

fn column_names(b: &RecordBatch) -> String {
    b.schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads entity rows (Parquet, or CSV with a header) from bytes, all columns.
pub fn read_entity_rows(bytes: bytes::Bytes, csv: bool) -> Result<RecordBatch, OfflineError> {
    let batches: Vec<RecordBatch> = if csv {
        let format = arrow::csv::reader::Format::default().with_header(true);
        let (schema, _) = format
            .infer_schema(std::io::Cursor::new(&bytes[..]), Some(1000))
            .map_err(|e| err(format!("entity rows are not readable CSV: {e}")))?;
        arrow::csv::ReaderBuilder::new(Arc::new(schema))
            .with_header(true)
            .with_batch_size(64 * 1024)
            .build(std::io::Cursor::new(bytes))
            .map_err(|e| err(format!("entity rows are not readable CSV: {e}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(format!("entity rows are not readable CSV: {e}")))?
    } else {
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| err(format!("entity rows are not a readable Parquet file: {e}")))?
            .with_batch_size(64 * 1024)
            .build()
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(format!("entity rows are not a readable Parquet file: {e}")))?
    };
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Err(err("the entity rows file holds no rows")),
    };
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| err(e.to_string()))
}

/// Calls `each` with every value of column `name` read as a feature of type `ty` (a training
/// set's column, say); false when the batch has no such column.
pub fn feature_column_values(
    batch: &RecordBatch,
    name: &str,
    ty: FeatureType,
    each: &mut dyn FnMut(Value<'_>),
) -> Result<bool, OfflineError> {
    let Some(array) = batch.column_by_name(name) else {
        return Ok(false);
    };
    let array = normalize(array, &target_type(ty), &format!("column `{name}`")).map_err(err)?;
    let col =
        Col::of(&array).ok_or_else(|| err(format!("column `{name}` cannot be read as {ty}")))?;
    for row in 0..array.len() {
        each(col.value(row));
    }
    Ok(true)
}

/// Writes a training set as Parquet (zstd) or, when `csv`, as CSV with a header.
pub fn write_training_set(batch: &RecordBatch, csv: bool) -> Result<Vec<u8>, OfflineError> {
    let mut out = Vec::new();
    if csv {
        // The CSV writer renders named time zones only with chrono-tz (a large dependency);
        // the instants are UTC either way, so render them with a plain offset.
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(unit, Some(_)) => {
                    arrow::compute::cast(c, &DataType::Timestamp(*unit, Some("+00:00".into())))
                        .map_err(|e| err(e.to_string()))
                }
                _ => Ok(c.clone()),
            })
            .collect::<Result<_, _>>()?;
        let fields: Vec<ArrowField> = batch
            .schema()
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| ArrowField::new(f.name(), c.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| err(e.to_string()))?;
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        w.write(&batch)
            .map_err(|e| err(format!("cannot write CSV: {e}")))?;
    } else {
        use parquet::basic::{Compression, ZstdLevel};
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).map_err(|e| err(e.to_string()))?,
            ))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props))
            .map_err(|e| err(e.to_string()))?;
        w.write(batch).map_err(|e| err(e.to_string()))?;
        w.close().map_err(|e| err(e.to_string()))?;
    }
    Ok(out)
}
