//! JSON lines (one object per line) read with arrow-json against the declared column types,
//! the way CSV is: columns the job uses get their Arrow type, so a bad value fails on its
//! row. Timestamps may be RFC 3339 strings or integers (µs since the epoch).

use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use arrow::record_batch::RecordBatch;

use crate::OfflineError;

const BATCH_ROWS: usize = 64 * 1024;

/// Reads a JSON-lines file into batches holding only `columns`, in that order. Fields an
/// object lacks are null; a column no object has at all is an error.
pub(crate) fn read_jsonl(
    bytes: &[u8],
    file: &str,
    columns: &[String],
    typed: &[(String, DataType)],
) -> Result<Vec<RecordBatch>, OfflineError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| {
            let ty = typed
                .iter()
                .find(|(n, _)| n == c)
                .map(|(_, t)| t.clone())
                .unwrap_or(DataType::Utf8);
            Field::new(c, ty, true)
        })
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let file_err = |message: String| OfflineError::File {
        file: file.to_string(),
        message,
    };
    let mut dec = builder(&schema)
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .map_err(|e| file_err(clean(&e)))?;
    let mut out: Vec<RecordBatch> = Vec::new();
    let (mut off, mut batch_start, mut rows_before) = (0usize, 0usize, 0u64);
    loop {
        let n = match dec.decode(&bytes[off..]) {
            Ok(n) => n,
            Err(e) => return Err(locate(bytes, batch_start, rows_before, file, &schema, &e)),
        };
        off += n;
        let done = off >= bytes.len();
        // The decoder stops early only with a full batch; anything else would loop forever.
        if n == 0 && !done && dec.len() < BATCH_ROWS {
            let e = arrow::error::ArrowError::JsonError("the decoder made no progress".into());
            return Err(locate(bytes, batch_start, rows_before, file, &schema, &e));
        }
        if done || dec.len() >= BATCH_ROWS {
            if done && dec.has_partial_record() {
                let e = arrow::error::ArrowError::JsonError("truncated record".into());
                return Err(locate(bytes, batch_start, rows_before, file, &schema, &e));
            }
            match dec.flush() {
                Ok(Some(batch)) => {
                    rows_before += batch.num_rows() as u64;
                    out.push(batch);
                }
                Ok(None) => {}
                Err(e) => return Err(locate(bytes, batch_start, rows_before, file, &schema, &e)),
            }
            batch_start = off;
        }
        if done {
            break;
        }
    }
    if rows_before > 0 {
        check_columns_present(bytes, &out, columns).map_err(file_err)?;
    }
    Ok(out)
}

/// Columns read as text (declared strings, and whatever `typed` leaves out) take numbers and
/// booleans as their JSON text, as CSV reads everything; every other type must match.
fn builder(schema: &SchemaRef) -> ReaderBuilder {
    ReaderBuilder::new(schema.clone()).with_coerce_primitive(true)
}

/// A column that is null in every row may simply be absent from the file (a misspelt name,
/// say), which would otherwise read as all nulls; look for the key in the objects themselves.
fn check_columns_present(
    bytes: &[u8],
    batches: &[RecordBatch],
    columns: &[String],
) -> Result<(), String> {
    for (i, c) in columns.iter().enumerate() {
        let all_null = batches
            .iter()
            .all(|b| b.column(i).null_count() == b.num_rows());
        if !all_null {
            continue;
        }
        let mut seen: Vec<String> = Vec::new();
        let mut found = false;
        for value in arrow::json::reader::ValueIter::new(bytes, None) {
            let Ok(value) = value else { break };
            let Some(obj) = value.as_object() else {
                continue;
            };
            if obj.contains_key(c.as_str()) {
                found = true;
                break;
            }
            for k in obj.keys() {
                if !seen.iter().any(|s| s == k) && seen.len() < 64 {
                    seen.push(k.clone());
                }
            }
        }
        if !found {
            return Err(format!(
                "has no column `{c}` (columns: {})",
                seen.join(", ")
            ));
        }
    }
    Ok(())
}

/// Finds the line behind a decoding error: arrow-json reports what went wrong but not where,
/// so the rows of the failed batch are decoded one by one until one fails. Errors are rare;
/// the happy path pays nothing for this.
fn locate(
    bytes: &[u8],
    batch_start: usize,
    rows_before: u64,
    file: &str,
    schema: &SchemaRef,
    err: &arrow::error::ArrowError,
) -> OfflineError {
    let mut line_no = bytes[..batch_start].iter().filter(|&&b| b == b'\n').count() as u64;
    let mut row = rows_before;
    for line in bytes[batch_start..].split(|&b| b == b'\n') {
        line_no += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        row += 1;
        let Ok(mut dec) = builder(schema).build_decoder() else {
            break;
        };
        let result = dec.decode(line).and_then(|_| {
            if dec.has_partial_record() {
                Err(arrow::error::ArrowError::JsonError(
                    "truncated record (JSON lines need one whole object per line)".into(),
                ))
            } else {
                dec.flush().map(|_| ())
            }
        });
        if let Err(e) = result {
            return OfflineError::Row {
                file: file.to_string(),
                row,
                message: format!("line {line_no}: {}", clean(&e)),
            };
        }
    }
    OfflineError::File {
        file: file.to_string(),
        message: format!("after row {rows_before}: {}", clean(err)),
    }
}

fn clean(e: &arrow::error::ArrowError) -> String {
    let s = e.to_string();
    for prefix in ["Json error: ", "Parser error: ", "Invalid argument error: "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, ListArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};

    fn ts() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    }

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn typed() -> Vec<(String, DataType)> {
        vec![
            ("id".into(), DataType::Int64),
            ("ts".into(), ts()),
            ("amount".into(), DataType::Float64),
            ("name".into(), DataType::Utf8),
            ("vip".into(), DataType::Boolean),
            (
                "emb".into(),
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            ),
        ]
    }

    const GOOD: &str = r#"{"id": 1, "ts": "2026-05-01T10:00:00Z", "amount": 2, "name": "a", "vip": true, "emb": [1.0, 2.5], "extra": {"x": 1}}
{"id": 2, "ts": 1777629600000000, "amount": 3.25, "name": null, "vip": false, "emb": []}

{"ts": "2026-05-01T12:00:00+02:00", "id": 3, "amount": null, "name": "c"}
"#;

    #[test]
    fn reads_declared_types_and_both_timestamp_forms() {
        let b = read_jsonl(
            GOOD.as_bytes(),
            "f.jsonl",
            &cols(&["id", "ts", "amount", "name", "vip", "emb"]),
            &typed(),
        )
        .expect("reads");
        assert_eq!(b.len(), 1);
        let b = &b[0];
        assert_eq!(b.num_rows(), 3);
        assert_eq!(b.schema().field(1).data_type(), &ts());
        let ids = b.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values().to_vec(), vec![1, 2, 3]);
        let t = b.column(1).as_primitive::<TimestampMicrosecondType>();
        // 10:00Z, the same as an integer, and 12:00+02:00 = 10:00Z.
        assert_eq!(t.value(0), 1_777_629_600_000_000);
        assert_eq!(t.value(1), 1_777_629_600_000_000);
        assert_eq!(t.value(2), 1_777_629_600_000_000);
        let a = b.column(2).as_primitive::<Float64Type>();
        assert_eq!((a.value(0), a.value(1), a.is_null(2)), (2.0, 3.25, true));
        assert!(b.column(3).is_null(1));
        assert!(b.column(4).is_null(2));
        let l: &ListArray = b.column(5).as_list();
        assert_eq!(
            l.value(0).as_primitive::<Float64Type>().values().to_vec(),
            vec![1.0, 2.5]
        );
        assert_eq!(l.value(1).len(), 0);
        assert!(l.is_null(2));
    }

    #[test]
    fn malformed_row_names_row_and_line() {
        let text = "{\"id\": 1, \"ts\": 0}\n\n{\"id\": 2, \"ts\": 0\n{\"id\": 3, \"ts\": 0}\n";
        let e = read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id", "ts"]), &typed())
            .expect_err("broken line");
        match &e {
            OfflineError::Row { file, row, message } => {
                assert_eq!((file.as_str(), *row), ("f.jsonl", 2), "{e}");
                assert!(message.starts_with("line 3:"), "{e}");
            }
            other => panic!("want a row error, got {other}"),
        }
    }

    #[test]
    fn wrong_value_type_names_row_line_and_field() {
        let text = "{\"id\": 1, \"amount\": 1.5}\n{\"id\": 2, \"amount\": \"lots\"}\n";
        let e = read_jsonl(
            text.as_bytes(),
            "s3://b/f.jsonl",
            &cols(&["id", "amount"]),
            &typed(),
        )
        .expect_err("bad amount");
        let msg = e.to_string();
        assert!(matches!(e, OfflineError::Row { row: 2, .. }), "{msg}");
        assert!(
            msg.contains("s3://b/f.jsonl") && msg.contains("line 2"),
            "{msg}"
        );
        assert!(msg.contains("amount") && msg.contains("lots"), "{msg}");
    }

    #[test]
    fn text_columns_take_scalars_as_text_but_numbers_stay_strict() {
        let text = "{\"id\": 1, \"name\": 42, \"other\": true}\n";
        let b = read_jsonl(
            text.as_bytes(),
            "f.jsonl",
            &cols(&["name", "other"]),
            &typed(),
        )
        .expect("reads");
        assert_eq!(b[0].column(0).as_string::<i32>().value(0), "42");
        assert_eq!(b[0].column(1).as_string::<i32>().value(0), "true");
        let text = "{\"id\": \"one\"}\n";
        let e = read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id"]), &typed())
            .expect_err("text for an int64");
        assert!(e.to_string().contains("'id'"), "{e}");
    }

    #[test]
    fn truncated_last_line_is_an_error() {
        let text = "{\"id\": 1}\n{\"id\": 2";
        let e = read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id"]), &typed())
            .expect_err("truncated");
        assert!(matches!(e, OfflineError::Row { row: 2, .. }), "{e}");
    }

    #[test]
    fn absent_column_is_an_error_but_null_column_is_not() {
        let text = "{\"id\": 1, \"amount\": null}\n{\"id\": 2}\n";
        let e = read_jsonl(
            text.as_bytes(),
            "f.jsonl",
            &cols(&["id", "amont"]),
            &typed(),
        )
        .expect_err("misspelt");
        let msg = e.to_string();
        assert!(
            msg.contains("no column `amont`") && msg.contains("amount"),
            "{msg}"
        );
        let b = read_jsonl(
            text.as_bytes(),
            "f.jsonl",
            &cols(&["id", "amount"]),
            &typed(),
        )
        .expect("present, null");
        assert_eq!(b[0].column(1).null_count(), 2);
        // An empty file is just empty.
        assert!(
            read_jsonl(b"\n", "f.jsonl", &cols(&["id"]), &typed())
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn many_rows_come_in_bounded_batches() {
        let mut text = String::new();
        for i in 0..(BATCH_ROWS + 10) {
            text.push_str(&format!("{{\"id\": {i}, \"ts\": {i}}}\n"));
        }
        let b =
            read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id", "ts"]), &typed()).expect("reads");
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].num_rows(), BATCH_ROWS);
        assert_eq!(b[1].num_rows(), 10);
        // An error in the second batch still gets its exact row and line.
        text.push_str("{\"id\": \"x\"}\n");
        let e = read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id", "ts"]), &typed())
            .expect_err("bad id");
        let want = (BATCH_ROWS + 11) as u64;
        assert!(
            matches!(e, OfflineError::Row { row, .. } if row == want),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("line {want}")), "{e}");
    }
}
