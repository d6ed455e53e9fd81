//! Rows pushed by an application or a stream (`POST /v1/push`): checked one by one against the
//! columns the source's views read, and the good ones appended to the source as new files in
//! its own format, so that the offline store keeps every value served and the next
//! incremental run (which reads only new files) picks them up.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use fstore_spec::{Definitions, Source, SourceFormat};
use fstore_storage::Store;
use serde_json::Value as Json;

use crate::OfflineError;
use crate::glob::glob_match;
use crate::source::{Target, locate};

/// Most rows one push may carry: a push is answered in one request, so it stays small; a
/// stream sends many pushes.
pub const MAX_PUSH_ROWS: usize = 100_000;

/// A pushed row that was not kept, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushRejected {
    /// 0-based position in the pushed `rows`.
    pub row: usize,
    pub reason: String,
}

/// What a push kept and where it went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushWritten {
    pub accepted: usize,
    pub rejected: Vec<PushRejected>,
    /// Fields some row carried that no view of the source reads (not stored).
    pub ignored_fields: Vec<String>,
    /// The files written, one per UTC event date, as paths or URLs.
    pub files: Vec<String>,
    /// The views reading the source: an incremental run of each picks the rows up.
    pub views: Vec<String>,
}

/// One column a push may carry: the type every view reading it needs, and whether a row
/// without it is rejected (join keys and the event timestamp).
#[derive(Debug, Clone, PartialEq)]
struct PushColumn {
    name: String,
    ty: DataType,
    required: bool,
}

/// The columns `source`'s views read, typed as a CSV of the source would be parsed (see
/// `table::source_columns`), required ones first.
fn push_columns(defs: &Definitions, source: &Source) -> Result<Vec<PushColumn>, OfflineError> {
    let mut out: Vec<PushColumn> = Vec::new();
    for view in defs
        .feature_views
        .iter()
        .filter(|v| v.source == source.name)
    {
        let (required, typed) = crate::table::source_columns(defs, view, source)?;
        for (name, ty) in typed {
            let required = required.contains(&name);
            match out.iter_mut().find(|c| c.name == name) {
                Some(c) => {
                    c.required |= required;
                    // The most specific type any view needs, as one view's CSV parse does.
                    crate::table::narrow(&mut c.ty, ty);
                }
                None => out.push(PushColumn { name, ty, required }),
            }
        }
    }
    Ok(out)
}

/// Where pushed files go: the store of `source`, the key prefix under it, and the glob the
/// files must match, resolved as a load resolves the source. A source that is one file or a
/// database has nowhere to append to.
fn push_location(source: &Source) -> Result<(Store, String, Option<String>), String> {
    if source.format == SourceFormat::Postgres {
        return Err(format!(
            "source `{}` is a PostgreSQL query; pushed rows can only be appended to a data-lake source",
            source.name
        ));
    }
    let (root, target) = locate(&source.path)?;
    let (prefix, glob) = match target {
        Target::Prefix(p) => (p, None),
        Target::Glob { list, pattern } => {
            let prefix = if list.is_empty() || list.ends_with('/') {
                list
            } else {
                format!("{list}/")
            };
            (prefix, Some(pattern))
        }
        Target::File(_) => {
            return Err(format!(
                "source `{}` is the single file `{}`; pushed rows are appended as new files, so its path must be a directory, a prefix or a glob",
                source.name, source.path
            ));
        }
    };
    let store = Store::from_url(&root).map_err(|e| e.to_string())?;
    Ok((store, prefix, glob))
}

fn extension(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::Csv => "csv",
        SourceFormat::Jsonl => "jsonl",
        SourceFormat::Parquet | SourceFormat::Postgres => "parquet",
    }
}

/// A value checked against its column's type.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    List(Vec<f64>),
}

fn describe(v: &Json) -> String {
    match v {
        Json::String(s) => format!("the string {}", Json::String(s.clone())),
        Json::Number(n) => format!("the number {n}"),
        Json::Bool(b) => format!("{b}"),
        Json::Array(_) => "an array".into(),
        Json::Object(_) => "an object".into(),
        Json::Null => "null".into(),
    }
}

/// Parses an RFC 3339 time or an integer of microseconds since the epoch, as JSON-lines
/// sources are read.
fn timestamp(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_micros()),
        _ => None,
    }
}

fn cell(v: &Json, ty: &DataType) -> Result<Cell, String> {
    let wrong = |want: &str| format!("expected {want}, got {}", describe(v));
    if v.is_null() {
        return Ok(Cell::Null);
    }
    Ok(match ty {
        DataType::Int64 => Cell::Int(v.as_i64().ok_or_else(|| wrong("an integer"))?),
        DataType::Float64 => Cell::Float(v.as_f64().ok_or_else(|| wrong("a number"))?),
        DataType::Boolean => Cell::Bool(v.as_bool().ok_or_else(|| wrong("true or false"))?),
        DataType::Timestamp(_, _) => Cell::Int(
            timestamp(v)
                .ok_or_else(|| wrong("an RFC 3339 time or microseconds since the epoch"))?,
        ),
        DataType::List(_) => match v {
            Json::Array(items) => Cell::List(
                items
                    .iter()
                    .map(|x| x.as_f64().ok_or_else(|| wrong("an array of numbers")))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(wrong("an array of numbers")),
        },
        // Columns only counted are read as text: any scalar counts.
        _ => match v {
            Json::String(s) => Cell::Str(s.clone()),
            Json::Number(n) => Cell::Str(n.to_string()),
            Json::Bool(b) => Cell::Str(b.to_string()),
            _ => return Err(wrong("a string")),
        },
    })
}

/// Checks one pushed row; on success its cells in `cols` order.
fn check_row(row: &Json, cols: &[PushColumn], ts: usize) -> Result<(Vec<Cell>, i64), String> {
    let Json::Object(obj) = row else {
        return Err(format!("expected an object, got {}", describe(row)));
    };
    let mut cells = Vec::with_capacity(cols.len());
    for c in cols {
        let v = obj.get(&c.name).unwrap_or(&Json::Null);
        let got = cell(v, &c.ty).map_err(|m| format!("column `{}`: {m}", c.name))?;
        if c.required && got == Cell::Null {
            return Err(format!(
                "column `{}` is required and missing or null",
                c.name
            ));
        }
        cells.push(got);
    }
    let Cell::Int(event) = cells[ts] else {
        return Err("the event timestamp is missing".into());
    };
    Ok((cells, event))
}

fn batch(cols: &[PushColumn], rows: &[&Vec<Cell>]) -> Result<RecordBatch, OfflineError> {
    let err = |m: String| OfflineError::Historical(format!("cannot build the pushed rows: {m}"));
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(cols.len());
    let mut fields = Vec::with_capacity(cols.len());
    for (i, c) in cols.iter().enumerate() {
        let cells = rows.iter().map(|r| &r[i]);
        let (array, ty): (ArrayRef, DataType) = match &c.ty {
            DataType::Int64 => {
                let mut b = Int64Builder::with_capacity(rows.len());
                cells.for_each(|v| {
                    b.append_option(if let Cell::Int(x) = v { Some(*x) } else { None })
                });
                (Arc::new(b.finish()), DataType::Int64)
            }
            DataType::Float64 => {
                let mut b = Float64Builder::with_capacity(rows.len());
                cells.for_each(|v| {
                    b.append_option(if let Cell::Float(x) = v {
                        Some(*x)
                    } else {
                        None
                    })
                });
                (Arc::new(b.finish()), DataType::Float64)
            }
            DataType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(rows.len());
                cells.for_each(|v| {
                    b.append_option(if let Cell::Bool(x) = v {
                        Some(*x)
                    } else {
                        None
                    })
                });
                (Arc::new(b.finish()), DataType::Boolean)
            }
            DataType::Timestamp(_, _) => {
                // Written with an explicit UTC offset, so every format's reader takes it as
                // the instant it is.
                let tz = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
                let mut b = TimestampMicrosecondBuilder::with_capacity(rows.len());
                cells.for_each(|v| {
                    b.append_option(if let Cell::Int(x) = v { Some(*x) } else { None })
                });
                let a = b.finish().with_timezone("+00:00");
                (Arc::new(a), tz)
            }
            DataType::List(_) => {
                let mut b = ListBuilder::new(Float64Builder::new());
                for v in cells {
                    match v {
                        Cell::List(xs) => {
                            xs.iter().for_each(|x| b.values().append_value(*x));
                            b.append(true);
                        }
                        _ => b.append(false),
                    }
                }
                let a = b.finish();
                let ty = arrow::array::Array::data_type(&a).clone();
                (Arc::new(a), ty)
            }
            _ => {
                let mut b = StringBuilder::new();
                cells.for_each(|v| {
                    b.append_option(if let Cell::Str(x) = v {
                        Some(x.as_str())
                    } else {
                        None
                    })
                });
                (Arc::new(b.finish()), DataType::Utf8)
            }
        };
        fields.push(Field::new(&c.name, ty, true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| err(e.to_string()))
}

fn encode(batch: &RecordBatch, format: SourceFormat) -> Result<Vec<u8>, OfflineError> {
    match format {
        SourceFormat::Csv => crate::write_training_set(batch, true),
        SourceFormat::Jsonl => {
            let mut out = Vec::new();
            // Nulls written out: a column null in every pushed row must still be there, or
            // reading the file back fails on the missing column.
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(&mut out);
            w.write(batch)
                .and_then(|_| w.finish())
                .map_err(|e| OfflineError::Historical(format!("cannot write JSON lines: {e}")))?;
            Ok(out)
        }
        SourceFormat::Parquet | SourceFormat::Postgres => crate::write_training_set(batch, false),
    }
}

/// The UTC date of `micros` as `YYYY-MM-DD`.
fn utc_date(micros: i64) -> String {
    let (y, m, d) = fstore_snapshot::civil_from_days(micros.div_euclid(86_400_000_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Checks `rows` against the columns the views of source `source_name` read and appends the
/// good ones to the source, one new file per UTC event date (`…/date=YYYY-MM-DD/push-….ext`,
/// so date pruning applies to them). Bad rows are returned with reasons; nothing is written
/// when every row is bad. `nonce` makes the file names of one push unique across processes.
pub async fn push_rows(
    defs: &Definitions,
    source_name: &str,
    rows: &[Json],
    nonce: &str,
) -> Result<PushWritten, OfflineError> {
    let source = defs
        .source(source_name)
        .ok_or_else(|| OfflineError::UnknownSource(source_name.to_string()))?;
    let views: Vec<String> = defs
        .feature_views
        .iter()
        .filter(|v| v.source == source.name)
        .map(|v| v.name.clone())
        .collect();
    if views.is_empty() {
        return Err(OfflineError::Push(format!(
            "no feature view reads source `{source_name}`, so nothing would use pushed rows"
        )));
    }
    if rows.len() > MAX_PUSH_ROWS {
        return Err(OfflineError::Push(format!(
            "a push carries at most {MAX_PUSH_ROWS} rows, got {}; split it",
            rows.len()
        )));
    }
    let (store, prefix, glob) = push_location(source).map_err(OfflineError::Push)?;
    let cols = push_columns(defs, source)?;
    let ts = cols
        .iter()
        .position(|c| c.name == source.timestamp_field)
        .ok_or_else(|| OfflineError::Push("the source has no timestamp column".into()))?;
    let mut ignored = std::collections::BTreeSet::new();
    let mut rejected = Vec::new();
    let mut by_date: BTreeMap<String, Vec<Vec<Cell>>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        if let Json::Object(obj) = row {
            ignored.extend(
                obj.keys()
                    .filter(|k| !cols.iter().any(|c| &c.name == *k))
                    .cloned(),
            );
        }
        match check_row(row, &cols, ts) {
            Ok((cells, event)) => by_date.entry(utc_date(event)).or_default().push(cells),
            Err(reason) => rejected.push(PushRejected { row: i, reason }),
        }
    }
    let mut files = Vec::new();
    let ext = extension(source.format);
    for (n, (date, cells)) in by_date.iter().enumerate() {
        let refs: Vec<&Vec<Cell>> = cells.iter().collect();
        let bytes = encode(&batch(&cols, &refs)?, source.format)?;
        let key = format!("{prefix}date={date}/push-{nonce}-{n}.{ext}");
        if let Some(pattern) = &glob
            && !glob_match(pattern, &key)
        {
            return Err(OfflineError::Push(format!(
                "source `{source_name}`'s glob `{}` would not match the pushed file `{key}`; use a prefix or a `**` glob",
                source.path
            )));
        }
        store.put_new(&key, bytes.into()).await?;
        files.push(format!("{}/{key}", store.url().trim_end_matches('/')));
    }
    Ok(PushWritten {
        accepted: rows.len() - rejected.len(),
        rejected,
        ignored_fields: ignored.into_iter().collect(),
        files,
        views,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str, format: &str) -> Source {
        let y = format!(
            "entities:\n  - name: c\n    join_keys: [{{name: id, type: int64}}]\nsources:\n  - name: s\n    path: {path}\n    format: {format}\n    timestamp_field: ts\nfeature_views:\n  - name: v\n    entities: [c]\n    source: s\n    features:\n      - {{name: x, type: int64}}\n"
        );
        let d = fstore_spec::parse_features_yaml(&y, None).expect("valid");
        d.sources[0].clone()
    }

    #[test]
    fn pushes_go_under_the_source_prefix_or_glob() {
        let at = |path: &str| {
            push_location(&source(path, "parquet")).map(|(_, prefix, glob)| (prefix, glob))
        };
        assert_eq!(at("s3://b/lake/orders/"), Ok(("lake/orders/".into(), None)));
        // A glob's fixed part is a folder: files go below it, and must match the glob.
        assert_eq!(
            at("s3://b/lake/**/*.parquet"),
            Ok(("lake/".into(), Some("lake/**/*.parquet".into())))
        );
        let one = at("s3://b/lake/orders.parquet").expect_err("one object");
        assert!(one.contains("single file"), "{one}");
        let pg = push_location(&source("postgres://h/db\n    query: SELECT 1", "postgres"))
            .expect_err("pg");
        assert!(pg.contains("PostgreSQL"), "{pg}");
    }

    #[test]
    fn cells_are_checked_against_their_type() {
        assert_eq!(
            cell(&serde_json::json!(3), &DataType::Int64),
            Ok(Cell::Int(3))
        );
        assert!(cell(&serde_json::json!(3.5), &DataType::Int64).is_err());
        assert_eq!(
            cell(&serde_json::json!(3), &DataType::Float64),
            Ok(Cell::Float(3.0))
        );
        let e = cell(&serde_json::json!("abc"), &DataType::Float64).expect_err("string");
        assert_eq!(e, r#"expected a number, got the string "abc""#);
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(
            cell(&serde_json::json!("1970-01-01T00:00:01Z"), &ts),
            Ok(Cell::Int(1_000_000))
        );
        assert!(cell(&serde_json::json!("yesterday"), &ts).is_err());
        assert_eq!(cell(&Json::Null, &DataType::Int64), Ok(Cell::Null));
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(-1), "1969-12-31");
    }
}
