//! Removing data from the offline store's files: one entity's rows (right to erasure), or
//! whole date partitions older than a source's retention.
//!
//! A file is rewritten in its own format with the entity's rows left out, everything else
//! kept as it was: CSV and JSON lines byte for byte (only the removed records go), Parquet
//! re-encoded (zstd) with the same schema. The rewrite replaces the object in one put, so a
//! job reading at the same time sees the old file or the new one, never half of either.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use fstore_spec::{Source, SourceFormat};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::OfflineError;
use crate::source::{SourceLocation, list_source_files};

/// A join-key value to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyValue::Int(i) => write!(f, "{i}"),
            KeyValue::Str(s) => f.write_str(s),
        }
    }
}

/// One file an entity was removed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasedFile {
    pub file: String,
    pub rows_removed: u64,
    pub rows_kept: u64,
}

/// Removes every row of `source` whose `column` equals `value`, file by file; returns the
/// files that held any (the others are left untouched).
pub async fn erase_rows(
    source: &Source,
    column: &str,
    value: &KeyValue,
) -> Result<Vec<ErasedFile>, OfflineError> {
    let files = list_source_files(source, None).await?;
    let mut out = Vec::new();
    for f in &files {
        let SourceLocation::Object { store, key } = &f.location else {
            continue;
        };
        let bytes = store.get_bytes(key).await?;
        let err = |message: String| OfflineError::File {
            file: f.display.clone(),
            message,
        };
        let (kept, removed, kept_rows) = match source.format {
            SourceFormat::Parquet => erase_parquet(bytes, column, value).map_err(err)?,
            SourceFormat::Csv => erase_csv(&bytes, column, value).map_err(err)?,
            SourceFormat::Jsonl => erase_jsonl(&bytes, column, value).map_err(err)?,
            SourceFormat::Postgres => continue,
        };
        if removed == 0 {
            continue;
        }
        store.put_replace(key, kept).await?;
        out.push(ErasedFile {
            file: f.display.clone(),
            rows_removed: removed,
            rows_kept: kept_rows,
        });
    }
    Ok(out)
}

/// Whether each value of `col` is not `value` (nulls are kept).
fn keep_mask(col: &ArrayRef, value: &KeyValue) -> Result<BooleanArray, String> {
    let target = match value {
        KeyValue::Int(_) => DataType::Int64,
        KeyValue::Str(_) => DataType::Utf8,
    };
    let col = cast(col, &target).map_err(|e| format!("the key column: {e}"))?;
    Ok(match value {
        KeyValue::Int(v) => {
            let a = col
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .ok_or("the key column is not an integer")?;
            a.iter().map(|x| Some(x != Some(*v))).collect()
        }
        KeyValue::Str(v) => {
            let a = col
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .ok_or("the key column is not text")?;
            a.iter().map(|x| Some(x != Some(v.as_str()))).collect()
        }
    })
}

fn erase_parquet(
    bytes: Bytes,
    column: &str,
    value: &KeyValue,
) -> Result<(Bytes, u64, u64), String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let schema = builder.schema().clone();
    let idx = schema
        .index_of(column)
        .map_err(|_| format!("has no column `{column}`"))?;
    let reader = builder.build().map_err(|e| e.to_string())?;
    let mut batches: Vec<RecordBatch> = Vec::new();
    let (mut removed, mut kept) = (0u64, 0u64);
    for b in reader {
        let b = b.map_err(|e| e.to_string())?;
        let mask = keep_mask(b.column(idx), value)?;
        let out = filter_record_batch(&b, &mask).map_err(|e| e.to_string())?;
        removed += (b.num_rows() - out.num_rows()) as u64;
        kept += out.num_rows() as u64;
        batches.push(out);
    }
    if removed == 0 {
        return Ok((Bytes::new(), 0, kept));
    }
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&schema), Some(props))
        .map_err(|e| e.to_string())?;
    for b in &batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    w.close().map_err(|e| e.to_string())?;
    Ok((Bytes::from(buf), removed, kept))
}

/// The records of a CSV text: byte ranges, each ending after its line break. As the CSV
/// reader does, a quote opens a quoted field only at the field's start (where it may hold
/// commas and line breaks, and `""` is a quote); elsewhere it is an ordinary character.
fn csv_records(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut field_start) = (0, false, true);
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if quoted {
            if b == b'"' {
                if text.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else {
            match b {
                b'"' if field_start => quoted = true,
                b',' => {
                    field_start = true;
                    i += 1;
                    continue;
                }
                b'\n' => {
                    out.push((start, i + 1));
                    start = i + 1;
                    field_start = true;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        field_start = false;
        i += 1;
    }
    if start < text.len() {
        out.push((start, text.len()));
    }
    out
}

/// Field `n` of one CSV record, unquoted (quoting as in [`csv_records`]).
fn csv_field(record: &[u8], n: usize) -> Option<String> {
    let record = record.strip_suffix(b"\n").unwrap_or(record);
    let record = record.strip_suffix(b"\r").unwrap_or(record);
    let (mut field, mut quoted, mut field_start) = (0, false, true);
    let mut current = Vec::new();
    let mut i = 0;
    while i < record.len() {
        let b = record[i];
        if quoted {
            if b == b'"' && record.get(i + 1) == Some(&b'"') {
                current.push(b'"');
                i += 1;
            } else if b == b'"' {
                quoted = false;
            } else {
                current.push(b);
            }
        } else {
            match b {
                b'"' if field_start => quoted = true,
                b',' => {
                    if field == n {
                        return String::from_utf8(current).ok();
                    }
                    field += 1;
                    current.clear();
                    field_start = true;
                    i += 1;
                    continue;
                }
                _ => current.push(b),
            }
        }
        field_start = false;
        i += 1;
    }
    (field == n)
        .then(|| String::from_utf8(current).ok())
        .flatten()
}

fn erase_csv(text: &[u8], column: &str, value: &KeyValue) -> Result<(Bytes, u64, u64), String> {
    let records = csv_records(text);
    let Some(&(hs, he)) = records.first() else {
        return Ok((Bytes::new(), 0, 0));
    };
    let header = &text[hs..he];
    let idx = (0..)
        .map_while(|i| csv_field(header, i))
        .position(|h| h.trim() == column)
        .ok_or_else(|| format!("has no column `{column}`"))?;
    // Compared as the reader types it: an integer key numerically (`0123` is 123).
    let matches = |f: &str| match value {
        KeyValue::Int(i) => f.trim().parse::<i64>() == Ok(*i),
        KeyValue::Str(w) => f == w,
    };
    let mut out = Vec::with_capacity(text.len());
    out.extend_from_slice(header);
    let (mut removed, mut kept) = (0u64, 0u64);
    for &(s, e) in &records[1..] {
        let rec = &text[s..e];
        if csv_field(rec, idx).is_some_and(|f| matches(&f)) {
            removed += 1;
        } else {
            out.extend_from_slice(rec);
            kept += u64::from(!rec.iter().all(u8::is_ascii_whitespace));
        }
    }
    Ok((Bytes::from(out), removed, kept))
}

fn erase_jsonl(text: &[u8], column: &str, value: &KeyValue) -> Result<(Bytes, u64, u64), String> {
    let mut out = Vec::with_capacity(text.len());
    let (mut removed, mut kept) = (0u64, 0u64);
    for line in text.split_inclusive(|&b| b == b'\n') {
        let matches = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .is_some_and(|v| match (&v[column], value) {
                (serde_json::Value::Number(n), KeyValue::Int(i)) => n.as_i64() == Some(*i),
                (serde_json::Value::String(s), KeyValue::Str(w)) => s == w,
                (serde_json::Value::String(s), KeyValue::Int(i)) => s == &i.to_string(),
                // A string key read from a JSON number, as the reader coerces it.
                (serde_json::Value::Number(n), KeyValue::Str(w)) => n.to_string() == *w,
                _ => false,
            });
        if matches {
            removed += 1;
        } else {
            out.extend_from_slice(line);
            kept += u64::from(!line.iter().all(u8::is_ascii_whitespace));
        }
    }
    Ok((Bytes::from(out), removed, kept))
}

/// A date partition deleted by retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiredFile {
    pub file: String,
    pub bytes: u64,
}

/// Deletes the files of `source` whose date partition ended before `cutoff_micros`. Files
/// without partition directories cannot be dated by name and are counted in the second value,
/// never deleted.
pub async fn expire_partitions(
    source: &Source,
    cutoff_micros: i64,
) -> Result<(Vec<ExpiredFile>, usize), OfflineError> {
    if source.format == SourceFormat::Postgres {
        return Ok((Vec::new(), 0));
    }
    let files = list_source_files(source, None).await?;
    let (mut deleted, mut undated) = (Vec::new(), 0usize);
    for f in &files {
        let SourceLocation::Object { store, key } = &f.location else {
            continue;
        };
        match f.partition {
            Some((_, end)) if end <= cutoff_micros => {
                store.delete(key).await?;
                deleted.push(ExpiredFile {
                    file: f.display.clone(),
                    bytes: f.object.as_ref().map_or(0, |o| o.size),
                });
            }
            Some(_) => {}
            None => undated += 1,
        }
    }
    Ok((deleted, undated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_erasure_keeps_every_other_byte() {
        let text = b"id,name,note\n1,ann,\"a, \"\"quoted\"\"\nnote\"\n2,bob,x\r\n1,ann,y\n3,cy,z";
        let (out, removed, kept) = erase_csv(text, "id", &KeyValue::Int(1)).expect("erase");
        assert_eq!((removed, kept), (2, 2));
        assert_eq!(&out[..], b"id,name,note\n2,bob,x\r\n3,cy,z");
        let (_, removed, _) = erase_csv(text, "name", &KeyValue::Str("bob".into())).expect("erase");
        assert_eq!(removed, 1);
        assert!(erase_csv(text, "nope", &KeyValue::Int(1)).is_err());
        assert_eq!(csv_field(b"a,\"b,c\",d\n", 1).as_deref(), Some("b,c"));
        // A quote inside an unquoted field is a character, as the CSV reader treats it.
        let inches = b"id,note\n2,12\" tv\n1,x\n3,y\"z\n";
        let (out, removed, kept) = erase_csv(inches, "id", &KeyValue::Int(1)).expect("erase");
        assert_eq!((removed, kept), (1, 2));
        assert_eq!(&out[..], b"id,note\n2,12\" tv\n3,y\"z\n");
        assert_eq!(csv_field(b"a,b\n", 2), None);
    }

    #[test]
    fn jsonl_erasure_matches_numbers_and_strings() {
        let text = b"{\"id\":1,\"v\":1}\n{\"id\":2}\n\n{\"id\":\"1\"}\n";
        let (out, removed, kept) = erase_jsonl(text, "id", &KeyValue::Int(1)).expect("erase");
        assert_eq!((removed, kept), (2, 1));
        assert_eq!(&out[..], b"{\"id\":2}\n\n");
    }

    #[test]
    fn parquet_erasure_keeps_the_schema() {
        let ids: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1, 2, 1, 3]));
        let names: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["a", "b", "c", "d"]));
        let batch = RecordBatch::try_from_iter([("id", ids), ("name", names)]).expect("batch");
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let (out, removed, kept) =
            erase_parquet(Bytes::from(buf), "id", &KeyValue::Int(1)).expect("erase");
        assert_eq!((removed, kept), (2, 2));
        let back: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(out)
            .expect("reader")
            .build()
            .expect("build")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(back[0].schema(), batch.schema());
        assert_eq!(back.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
    }
}
