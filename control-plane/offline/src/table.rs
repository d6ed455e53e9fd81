//! Loads a view's source into one table: normalized join keys, event and created timestamps,
//! and one input column per stored feature, typed for what the feature does with it. Both
//! materialization and historical retrieval start here, so they read rows identically.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, TimestampMicrosecondArray};
use arrow::compute::{concat, filter, filter_record_batch};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use fstore_snapshot::{FeatureType, Field, KeyType};
use fstore_spec::{Aggregation, Definitions, FeatureDef, FeatureView, SourceFormat};

use crate::columns::{key_target, normalize, target_type};
use crate::source::{SourceRows, list_source_files, read_source_rows};
use crate::{OfflineError, RejectedRow};

/// A view's source rows, every batch of every file concatenated.
pub(crate) struct Table {
    pub keys: Vec<ArrayRef>,
    pub event: TimestampMicrosecondArray,
    pub created: Option<TimestampMicrosecondArray>,
    /// One per stored feature of the view, in view order: its normalized input column, or
    /// None for aggregations that only count or time events.
    pub inputs: Vec<Option<ArrayRef>>,
    /// What was read, file by file, for lineage. A file's `rows` counts every data row
    /// read, rejected ones included.
    pub files: Vec<crate::InputFile>,
    /// How many rows the table keeps from each of `files`, in the same order: file i's rows
    /// are the next `file_rows[i]` rows of the table, in file order.
    pub file_rows: Vec<usize>,
    /// Every data row read: the table's length plus `rejected.len()`.
    pub rows_read: u64,
    /// Rows set aside: a null join key or event timestamp, or (CSV, JSON lines) a value
    /// that does not parse as its declared type. By file, then row.
    pub rejected: Vec<RejectedRow>,
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

/// Several features (or views) may read one column (a count of it, a sum of it): CSV text is
/// parsed as the most specific type any of them needs, since integers also read as floats and
/// anything reads as text, but not the other way round. Narrows `have` by `want`.
pub(crate) fn narrow(have: &mut DataType, want: DataType) {
    if *have == DataType::Utf8 || (*have == DataType::Float64 && want == DataType::Int64) {
        *have = want;
    }
}

/// Required column names, and every column with its type.
pub(crate) type SourceColumns = (Vec<String>, Vec<(String, DataType)>);

/// The columns a load of `view` reads from `source`, in read order, each with the type CSV
/// text is parsed as; and which of them a row cannot do without (join keys, event time).
/// Pushes check rows against the same list, so a pushed row reads back as it was accepted.
pub(crate) fn source_columns(
    defs: &Definitions,
    view: &FeatureView,
    source: &fstore_spec::Source,
) -> Result<SourceColumns, OfflineError> {
    let stored = stored_features(view);
    let keys: Vec<Field<KeyType>> = defs.view_keys(view);
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);

    let mut typed: Vec<(String, DataType)> = keys
        .iter()
        .map(|k| (k.name.clone(), key_target(k.ty)))
        .collect();
    let mut add = |c: &str, t: DataType| match typed.iter_mut().find(|(x, _)| x == c) {
        Some((_, have)) => narrow(have, t),
        None => typed.push((c.to_string(), t)),
    };
    add(&source.timestamp_field, ts.clone());
    if let Some(c) = &source.created_timestamp_field {
        add(c, ts.clone());
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
            add(c, csv_type(f));
        }
    }
    let mut required: Vec<String> = keys.iter().map(|k| k.name.clone()).collect();
    required.push(source.timestamp_field.clone());
    Ok((required, typed))
}

/// Reads `view`'s source. `range`, the inclusive event-time interval the caller needs, lets
/// date-partitioned sources skip files that cannot hold such events; of the files listed,
/// only those `read` accepts are read.
///
/// A row with a null join key or event timestamp, or a CSV/JSON-lines value that does not
/// parse as its declared type, is set aside in `rejected` (file, row, reason) and the other
/// rows are kept: one bad row should not cost the whole load. A missing column, a column
/// whose type does not fit, or an unreadable file still fails it.
pub(crate) async fn load_table(
    defs: &Definitions,
    view: &FeatureView,
    range: Option<(i64, i64)>,
    read: &dyn Fn(&crate::SourceFile) -> bool,
) -> Result<Table, OfflineError> {
    let stored = stored_features(view);
    let source = defs.source(&view.source).ok_or_else(|| {
        OfflineError::UnknownView(format!("{} (source `{}` missing)", view.name, view.source))
    })?;
    let keys: Vec<Field<KeyType>> = defs.view_keys(view);
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    let (_, typed) = source_columns(defs, view, source)?;
    let columns: Vec<String> = typed.iter().map(|(c, _)| c.clone()).collect();

    let files = list_source_files(source, range).await?;
    let mut parts: Vec<Parts> = Vec::new();
    let mut rows_read = 0u64;
    let mut input_files = Vec::with_capacity(files.len());
    let mut file_rows = Vec::with_capacity(files.len());
    let mut rejected: Vec<RejectedRow> = Vec::new();
    for file in files.iter().filter(|f| read(f)) {
        let SourceRows {
            batches,
            rejected: unparsed,
        } = read_source_rows(file, source.format, &columns, &typed).await?;
        let unparsed_rows: Vec<u64> = unparsed.iter().map(|r| r.row).collect();
        let mut numbers = RowNumbers::new(&unparsed_rows);
        let mut file_rejected = unparsed;
        // Rows of this file that parsed (in batches) before the current batch.
        let mut parsed = 0u64;
        let mut kept = 0usize;
        for batch in batches {
            let err = |message: String| OfflineError::File {
                file: file.display.clone(),
                message,
            };
            let mut p = Parts::default();
            for k in &keys {
                let raw = column(&batch, &k.name).map_err(err)?;
                let a = normalize(&raw, &key_target(k.ty), &format!("join key `{}`", k.name))
                    .map_err(err)?;
                p.keys.push(a);
            }
            let raw = column(&batch, &source.timestamp_field).map_err(err)?;
            let event = normalize(
                &raw,
                &ts,
                &format!("timestamp field `{}`", source.timestamp_field),
            )
            .map_err(err)?;
            // Rows without a key or an event time cannot be placed in time or entity: set
            // them aside, and read the remaining columns of the rows kept only.
            let mut bad: Vec<(usize, String)> = Vec::new();
            if event.null_count() > 0 || p.keys.iter().any(|a| a.null_count() > 0) {
                for i in 0..batch.num_rows() {
                    let reason = match keys.iter().zip(&p.keys).find(|(_, a)| a.is_null(i)) {
                        Some((k, _)) => format!("join key `{}` is null", k.name),
                        None if event.is_null(i) => {
                            format!("event timestamp `{}` is null", source.timestamp_field)
                        }
                        None => continue,
                    };
                    bad.push((i, reason));
                }
            }
            let (batch, event) = if bad.is_empty() {
                (batch, event)
            } else {
                let mut mask = vec![true; batch.num_rows()];
                for (i, reason) in bad.iter() {
                    mask[*i] = false;
                    file_rejected.push(RejectedRow {
                        file: file.display.clone(),
                        row: numbers.row(parsed + *i as u64),
                        reason: reason.clone(),
                    });
                }
                let mask = BooleanArray::from(mask);
                let keep = |a: &ArrayRef| filter(a, &mask).map_err(|e| err(e.to_string()));
                for k in p.keys.iter_mut() {
                    *k = keep(k)?;
                }
                let event = keep(&event)?;
                let batch = filter_record_batch(&batch, &mask).map_err(|e| err(e.to_string()))?;
                (batch, event)
            };
            parsed += (batch.num_rows() + bad.len()) as u64;
            kept += batch.num_rows();
            p.event = Some(event);
            if let Some(c) = &source.created_timestamp_field {
                let raw = column(&batch, c).map_err(err)?;
                p.created = Some(
                    normalize(&raw, &ts, &format!("created timestamp field `{c}`")).map_err(err)?,
                );
            }
            for f in &stored {
                let input = match input_column(f) {
                    None => None,
                    Some(c) => {
                        let raw = column(&batch, c).map_err(err)?;
                        let what = format!("column `{c}` (feature `{}`)", f.name);
                        let to = input_type(f, raw.data_type())
                            .map_err(|m| err(format!("{what}: {m}")))?;
                        Some(normalize(&raw, &to, &what).map_err(err)?)
                    }
                };
                p.inputs.push(input);
            }
            parts.push(p);
        }
        let rows = parsed + unparsed_rows.len() as u64;
        rows_read += rows;
        input_files.push(crate::InputFile::new(file, rows));
        file_rows.push(kept);
        // Parse rejections and null rejections each come in row order; interleave them.
        file_rejected.sort_by_key(|r| r.row);
        rejected.append(&mut file_rejected);
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
        files: input_files,
        file_rows,
        rows_read,
        rejected,
    })
}

#[derive(Default)]
struct Parts {
    keys: Vec<ArrayRef>,
    event: Option<ArrayRef>,
    created: Option<ArrayRef>,
    inputs: Vec<Option<ArrayRef>>,
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef, String> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| format!("has no column `{name}`"))
}

/// Maps a row's index among the rows of a file that parsed (0-based) to its data row in the
/// file (1-based), skipping the rows the reader rejected. Asked in increasing order, so one
/// walk over the rejected rows serves the whole file.
struct RowNumbers<'a> {
    /// Rows the reader rejected, ascending.
    unparsed: &'a [u64],
    /// How many of them lie before the rows asked so far.
    skipped: usize,
}

impl<'a> RowNumbers<'a> {
    fn new(unparsed: &'a [u64]) -> Self {
        Self {
            unparsed,
            skipped: 0,
        }
    }

    fn row(&mut self, parsed: u64) -> u64 {
        loop {
            let row = parsed + 1 + self.skipped as u64;
            match self.unparsed.get(self.skipped) {
                Some(&r) if r <= row => self.skipped += 1,
                _ => return row,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{Float64Type, Int64Type};
    use parquet::arrow::ArrowWriter;

    /// 2026-05-01T00:00:00Z in µs.
    const MAY1: i64 = 1_777_593_600_000_000;

    fn defs(dir: &std::path::Path, path: &str, format: &str) -> Definitions {
        let yaml = format!(
            "entities:\n  - name: customer\n    join_keys: [{{name: customer_id, type: int64}}]\n\
             sources:\n  - name: orders\n    path: {path}\n    format: {format}\n    timestamp_field: ts\n\
             feature_views:\n  - name: spend\n    entities: [customer]\n    source: orders\n    features:\n      - {{name: amount, type: float64}}\n"
        );
        fstore_spec::parse_features_yaml(&yaml, Some(dir)).expect("definitions")
    }

    async fn load(defs: &Definitions, read: &dyn Fn(&crate::SourceFile) -> bool) -> Table {
        let view = defs.view("spend").expect("view");
        load_table(defs, view, None, read).await.expect("loads")
    }

    fn ids(t: &Table) -> Vec<i64> {
        t.keys[0].as_primitive::<Int64Type>().values().to_vec()
    }

    fn amounts(t: &Table) -> Vec<f64> {
        let a = t.inputs[0].as_ref().expect("amount");
        a.as_primitive::<Float64Type>().values().to_vec()
    }

    fn rejected(file: &str, row: u64, reason: &str) -> RejectedRow {
        RejectedRow {
            file: file.into(),
            row,
            reason: reason.into(),
        }
    }

    /// Every row read is either in the table or rejected, per file and in total.
    fn check_counts(t: &Table) {
        assert_eq!(t.rows_read, (t.event.len() + t.rejected.len()) as u64);
        assert_eq!(t.file_rows.iter().sum::<usize>(), t.event.len());
        assert_eq!(t.files.len(), t.file_rows.len());
        for (f, kept) in t.files.iter().zip(&t.file_rows) {
            let gone = t.rejected.iter().filter(|r| r.file == f.path).count();
            assert_eq!(f.rows, (kept + gone) as u64, "{}", f.path);
        }
    }

    #[tokio::test]
    async fn csv_value_that_does_not_parse_rejects_its_row_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let lake = dir.path().join("lake");
        std::fs::create_dir_all(&lake).expect("mkdir");
        std::fs::write(
            lake.join("a.csv"),
            "customer_id,ts,amount\n1,2026-05-01T00:00:00Z,1.5\n2,2026-05-01T00:00:00Z,2.5\n\
             3,2026-05-01T00:00:00Z,abc\n,2026-05-01T00:00:00Z,4\n5,,5\n6,2026-05-01T00:00:00Z,6\n",
        )
        .expect("write");
        std::fs::write(
            lake.join("b.csv"),
            "customer_id,ts,amount\nseven,2026-05-01T00:00:00Z,7\n8,2026-05-01T00:00:00Z,8\n",
        )
        .expect("write");
        let defs = defs(dir.path(), "lake/", "csv");
        let t = load(&defs, &|_| true).await;
        let a = format!("{}/a.csv", lake.display());
        let b = format!("{}/b.csv", lake.display());
        assert_eq!(ids(&t), vec![1, 2, 6, 8]);
        assert_eq!(amounts(&t), vec![1.5, 2.5, 6.0, 8.0]);
        assert_eq!(
            t.rejected,
            vec![
                rejected(
                    &a,
                    3,
                    "column `amount`: cannot parse `abc` as float64 (file line 4)"
                ),
                rejected(&a, 4, "join key `customer_id` is null"),
                rejected(&a, 5, "event timestamp `ts` is null"),
                rejected(
                    &b,
                    1,
                    "column `customer_id`: cannot parse `seven` as int64 (file line 2)"
                ),
            ]
        );
        assert_eq!(t.file_rows, vec![3, 1]);
        assert_eq!((t.files[0].rows, t.files[1].rows, t.rows_read), (6, 2, 8));
        check_counts(&t);

        // Files the filter refuses are not read and not listed.
        let t = load(&defs, &|f| f.display.ends_with("b.csv")).await;
        assert_eq!((ids(&t), t.file_rows.clone()), (vec![8], vec![1]));
        assert_eq!(t.files.len(), 1);
        assert_eq!(t.rejected.len(), 1);
        check_counts(&t);
    }

    #[tokio::test]
    async fn jsonl_bad_line_is_rejected_and_the_others_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("o.jsonl");
        std::fs::write(
            &p,
            "{\"customer_id\": 1, \"ts\": \"2026-05-01T00:00:00Z\", \"amount\": 1}\n\
             {\"customer_id\": 2, \"ts\": \"2026-05-01T00:00:00Z\", \"amount\": \"lots\"}\n\
             {\"customer_id\": 3, \"ts\": \n\
             {\"customer_id\": null, \"ts\": 0, \"amount\": 4}\n\
             {\"customer_id\": 5, \"ts\": 0, \"amount\": 5}\n",
        )
        .expect("write");
        let path = p.display().to_string();
        let t = load(&defs(dir.path(), &path, "jsonl"), &|_| true).await;
        assert_eq!(ids(&t), vec![1, 5]);
        assert_eq!(amounts(&t), vec![1.0, 5.0]);
        assert_eq!(t.rejected.len(), 3, "{:?}", t.rejected);
        assert_eq!(
            t.rejected[0],
            rejected(
                &path,
                2,
                "column `amount`: cannot parse `\"lots\"` as float64 (file line 2)"
            )
        );
        assert_eq!(
            (t.rejected[1].file.as_str(), t.rejected[1].row),
            (path.as_str(), 3)
        );
        assert!(
            t.rejected[1].reason.starts_with("malformed JSON"),
            "{:?}",
            t.rejected
        );
        assert_eq!(
            t.rejected[2],
            rejected(&path, 4, "join key `customer_id` is null")
        );
        assert_eq!((t.rows_read, t.file_rows.clone()), (5, vec![2]));
        check_counts(&t);
    }

    #[tokio::test]
    async fn parquet_null_key_and_null_event_time_are_rejected() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("o.parquet");
        let batch = arrow::record_batch::RecordBatch::try_from_iter([
            (
                "customer_id",
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3), Some(4)])) as ArrayRef,
            ),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(MAY1),
                    Some(MAY1),
                    None,
                    Some(MAY1),
                ])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let mut w = ArrowWriter::try_new(
            std::fs::File::create(&p).expect("create"),
            batch.schema(),
            None,
        )
        .expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let path = p.display().to_string();
        let t = load(&defs(dir.path(), &path, "parquet"), &|_| true).await;
        assert_eq!(ids(&t), vec![1, 4]);
        assert_eq!(amounts(&t), vec![1.0, 4.0]);
        assert_eq!(t.event.values().to_vec(), vec![MAY1, MAY1]);
        assert_eq!(
            t.rejected,
            vec![
                rejected(&path, 2, "join key `customer_id` is null"),
                rejected(&path, 3, "event timestamp `ts` is null"),
            ]
        );
        assert_eq!((t.rows_read, t.file_rows.clone()), (4, vec![2]));
        check_counts(&t);
    }

    #[test]
    fn row_numbers_skip_rows_the_reader_rejected() {
        let mut n = RowNumbers::new(&[2, 3, 6]);
        let rows: Vec<u64> = (0..5).map(|k| n.row(k)).collect();
        assert_eq!(rows, vec![1, 4, 5, 7, 8]);
        let mut n = RowNumbers::new(&[]);
        assert_eq!(n.row(9), 10);
    }
}
