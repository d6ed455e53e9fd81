//! Loads a view's source into one table: normalized join keys, event and created timestamps,
//! and one input column per stored feature, typed for what the feature does with it. Both
//! materialization and historical retrieval start here, so they read rows identically.

use arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use arrow::compute::concat;
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use fstore_snapshot::{FeatureType, Field, KeyType};
use fstore_spec::{Aggregation, Definitions, FeatureDef, FeatureView, SourceFormat};

use crate::OfflineError;
use crate::columns::{key_target, normalize, target_type};
use crate::source::{list_source_files, read_source};

/// A view's source rows, every batch of every file concatenated.
pub(crate) struct Table {
    pub keys: Vec<ArrayRef>,
    pub event: TimestampMicrosecondArray,
    pub created: Option<TimestampMicrosecondArray>,
    /// One per stored feature of the view, in view order: its normalized input column, or
    /// None for aggregations that only count or time events.
    pub inputs: Vec<Option<ArrayRef>>,
    /// What was read, file by file, for lineage.
    pub files: Vec<crate::InputFile>,
    pub rows_read: u64,
}

/// The stored features of a view: read from the source, directly or aggregated.
pub(crate) fn stored_features(view: &FeatureView) -> Vec<&FeatureDef> {
    view.features.iter().filter(|f| f.is_stored()).collect()
}

/// The source column a stored feature reads, if any.
fn input_column(f: &FeatureDef) -> Option<&str> {
    match f.aggregation {
        None => Some(f.column()),
        Some(_) => f.aggregated_column(),
    }
}

/// The Arrow type a stored feature's input column is normalized to, given the column's type in
/// the file. Counting functions take any type; `count_distinct` compares values in a
/// canonical type per kind.
fn input_type(f: &FeatureDef, raw: &DataType) -> Result<DataType, String> {
    use Aggregation::*;
    Ok(match f.aggregation {
        None | Some(Sum | Min | Max | Last) => target_type(f.ty),
        Some(Avg | Stddev) => DataType::Float64,
        Some(Count | Recency | Age) => raw.clone(),
        Some(CountDistinct) => match raw {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => DataType::Int64,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
            DataType::Boolean => DataType::Boolean,
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            other => {
                return Err(format!(
                    "count_distinct cannot compare values of type {other}"
                ));
            }
        },
    })
}

/// How CSV text is parsed for a stored feature's column (Parquet and JSON carry their types).
fn csv_type(f: &FeatureDef) -> DataType {
    use Aggregation::*;
    match f.aggregation {
        None | Some(Sum | Min | Max | Last) => target_type(f.ty),
        Some(Avg | Stddev) => DataType::Float64,
        Some(Count | CountDistinct | Recency | Age) => DataType::Utf8,
    }
}

/// Reads `view`'s source. `range`, the inclusive event-time interval the caller needs, lets
/// date-partitioned sources skip files that cannot hold such events. A row with a null join
/// key or event timestamp fails the load, naming the file and row.
pub(crate) async fn load_table(
    defs: &Definitions,
    view: &FeatureView,
    range: Option<(i64, i64)>,
) -> Result<Table, OfflineError> {
    let stored = stored_features(view);
    let source = defs.source(&view.source).ok_or_else(|| {
        OfflineError::UnknownView(format!("{} (source `{}` missing)", view.name, view.source))
    })?;
    let keys: Vec<Field<KeyType>> = defs.view_keys(view);
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);

    let mut columns: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    let mut typed: Vec<(String, DataType)> = keys
        .iter()
        .map(|k| (k.name.clone(), key_target(k.ty)))
        .collect();
    // Several features may read one column (a count of it, a sum of it): parse CSV text as
    // the most specific type any of them needs, since integers also read as floats and
    // anything reads as text, but not the other way round.
    let mut add = |c: &str, t: DataType, columns: &mut Vec<String>| match typed
        .iter_mut()
        .find(|(x, _)| x == c)
    {
        Some((_, have)) => {
            if *have == DataType::Utf8 || (*have == DataType::Float64 && t == DataType::Int64) {
                *have = t;
            }
        }
        None => {
            columns.push(c.to_string());
            typed.push((c.to_string(), t));
        }
    };
    add(&source.timestamp_field, ts.clone(), &mut columns);
    if let Some(c) = &source.created_timestamp_field {
        add(c, ts.clone(), &mut columns);
    }
    for f in &stored {
        if source.format == SourceFormat::Csv && f.ty == FeatureType::ListFloat64 {
            return Err(OfflineError::File {
                file: source.path.clone(),
                message: format!(
                    "feature `{}` is list<float64>, which CSV sources cannot hold; use Parquet",
                    f.name
                ),
            });
        }
        if let Some(c) = input_column(f) {
            add(c, csv_type(f), &mut columns);
        }
    }

    let files = list_source_files(source, range).await?;
    let mut parts: Vec<Parts> = Vec::new();
    let mut rows_read = 0u64;
    let mut read = Vec::with_capacity(files.len());
    for file in &files {
        let batches = read_source(file, source.format, &columns, &typed).await?;
        let mut first_row = 0u64;
        for batch in batches {
            let err = |message: String| OfflineError::File {
                file: file.display.clone(),
                message,
            };
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| err(format!("has no column `{name}`")))
            };
            let mut p = Parts::default();
            for k in &keys {
                let a = normalize(
                    &col(&k.name)?,
                    &key_target(k.ty),
                    &format!("join key `{}`", k.name),
                )
                .map_err(err)?;
                if let Some(row) = first_null(&a) {
                    return Err(OfflineError::Row {
                        file: file.display.clone(),
                        row: first_row + row as u64 + 1,
                        message: format!("join key `{}` is null", k.name),
                    });
                }
                p.keys.push(a);
            }
            let event = normalize(
                &col(&source.timestamp_field)?,
                &ts,
                &format!("timestamp field `{}`", source.timestamp_field),
            )
            .map_err(err)?;
            if let Some(row) = first_null(&event) {
                return Err(OfflineError::Row {
                    file: file.display.clone(),
                    row: first_row + row as u64 + 1,
                    message: format!("event timestamp `{}` is null", source.timestamp_field),
                });
            }
            p.event = Some(event);
            if let Some(c) = &source.created_timestamp_field {
                p.created = Some(
                    normalize(&col(c)?, &ts, &format!("created timestamp field `{c}`"))
                        .map_err(err)?,
                );
            }
            for f in &stored {
                let input = match input_column(f) {
                    None => None,
                    Some(c) => {
                        let raw = col(c)?;
                        let what = format!("column `{c}` (feature `{}`)", f.name);
                        let to = input_type(f, raw.data_type())
                            .map_err(|m| err(format!("{what}: {m}")))?;
                        Some(normalize(&raw, &to, &what).map_err(err)?)
                    }
                };
                p.inputs.push(input);
            }
            first_row += batch.num_rows() as u64;
            parts.push(p);
        }
        rows_read += first_row;
        read.push(crate::InputFile::new(file, first_row));
    }
    let joined = |pick: &dyn Fn(&Parts) -> Option<ArrayRef>, empty: DataType| {
        let arrays: Vec<ArrayRef> = parts.iter().filter_map(pick).collect();
        let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
        if refs.is_empty() {
            return Ok(arrow::array::new_empty_array(&empty));
        }
        concat(&refs).map_err(|e| OfflineError::File {
            file: source.path.clone(),
            message: format!("cannot combine files: {e}"),
        })
    };
    let key_arrays = keys
        .iter()
        .enumerate()
        .map(|(i, k)| joined(&|p| p.keys.get(i).cloned(), key_target(k.ty)))
        .collect::<Result<Vec<_>, _>>()?;
    let event = joined(&|p| p.event.clone(), ts.clone())?
        .as_primitive::<TimestampMicrosecondType>()
        .clone();
    let created = match &source.created_timestamp_field {
        None => None,
        Some(_) => Some(
            joined(&|p| p.created.clone(), ts.clone())?
                .as_primitive::<TimestampMicrosecondType>()
                .clone(),
        ),
    };
    let mut inputs = Vec::with_capacity(stored.len());
    for (i, f) in stored.iter().enumerate() {
        inputs.push(match input_column(f) {
            None => None,
            Some(_) => Some(joined(
                &|p| p.inputs.get(i).cloned().flatten(),
                csv_type(f),
            )?),
        });
    }
    Ok(Table {
        keys: key_arrays,
        event,
        created,
        inputs,
        files: read,
        rows_read,
    })
}

#[derive(Default)]
struct Parts {
    keys: Vec<ArrayRef>,
    event: Option<ArrayRef>,
    created: Option<ArrayRef>,
    inputs: Vec<Option<ArrayRef>>,
}

fn first_null(a: &ArrayRef) -> Option<usize> {
    if a.null_count() == 0 {
        return None;
    }
    (0..a.len()).find(|&i| a.is_null(i))
}
