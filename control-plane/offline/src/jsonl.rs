//! JSON lines (one object per line) read with arrow-json against the declared column types,
//! the way CSV is: columns the job uses get their Arrow type, so a bad value rejects its row
//! (named by row and line) and the others are kept. Timestamps may be RFC 3339 strings or
//! integers (µs since the epoch).

use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use arrow::record_batch::RecordBatch;

use crate::source::{LineCounter, SourceRows, shown, type_name};
use crate::{OfflineError, RejectedRow};

const BATCH_ROWS: usize = 64 * 1024;

/// Reads a JSON-lines file into batches holding only `columns`, in that order. Fields an
/// object lacks are null; a column no object has at all is an error. A line that is not a
/// JSON object, or has a value that does not parse as its column's type, is set aside in
/// `rejected` and the other lines are kept.
pub(crate) fn read_jsonl(
    bytes: &[u8],
    file: &str,
    columns: &[String],
    typed: &[(String, DataType)],
) -> Result<SourceRows, OfflineError> {
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
    let new_decoder = || {
        builder(&schema)
            .with_batch_size(BATCH_ROWS)
            .build_decoder()
            .map_err(|e| file_err(clean(&e)))
    };
    let mut dec = new_decoder()?;
    let mut out = SourceRows::default();
    let mut lines = LineCounter::default();
    let (mut off, mut batch_start, mut rows_before) = (0usize, 0usize, 0u64);
    loop {
        // Whether this batch failed to decode: arrow-json fails the whole batch and does not
        // say where, so it is then re-decoded line by line (see `redecode`).
        let failed = match dec.decode(&bytes[off..]) {
            Err(_) => true,
            Ok(n) => {
                off += n;
                let done = off >= bytes.len();
                if done || dec.len() >= BATCH_ROWS {
                    if done && dec.has_partial_record() {
                        true
                    } else {
                        match dec.flush() {
                            Ok(batch) => {
                                if let Some(batch) = batch {
                                    rows_before += batch.num_rows() as u64;
                                    out.batches.push(batch);
                                }
                                batch_start = off;
                                false
                            }
                            Err(_) => true,
                        }
                    }
                } else {
                    // The decoder stops early only with a full batch; anything else would
                    // loop forever, so take the slow path, which always moves on.
                    n == 0
                }
            }
        };
        if failed {
            off = redecode(
                bytes,
                batch_start,
                file,
                &schema,
                &mut rows_before,
                &mut lines,
                &mut out,
            )?;
            batch_start = off;
            // A decoder that failed may hold part of a record; start clean.
            dec = new_decoder()?;
        }
        if off >= bytes.len() {
            break;
        }
    }
    if !out.batches.is_empty() {
        check_columns_present(bytes, &out.batches, columns).map_err(file_err)?;
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
        // A malformed (rejected) line ends the pass over the whole file; then go on line by
        // line, so the objects after it are looked at too.
        let stopped = std::cell::Cell::new(false);
        let whole = arrow::json::reader::ValueIter::new(bytes, None).map_while(|v| {
            stopped.set(v.is_err());
            v.ok()
        });
        let by_line = bytes
            .split(|&b| b == b'\n')
            .filter(|_| stopped.get())
            .filter_map(|line| arrow::json::reader::ValueIter::new(line, None).next()?.ok());
        for value in whole.chain(by_line) {
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

/// Decodes the lines from `start` one at a time, up to one batch's worth of rows, keeping
/// those that decode (as one batch) and rejecting the others with their row and line.
/// Returns where it stopped. Errors are rare; the happy path pays nothing for this.
fn redecode(
    bytes: &[u8],
    start: usize,
    file: &str,
    schema: &SchemaRef,
    rows_before: &mut u64,
    lines: &mut LineCounter,
    out: &mut SourceRows,
) -> Result<usize, OfflineError> {
    let file_err = |e: arrow::error::ArrowError| OfflineError::File {
        file: file.to_string(),
        message: clean(&e),
    };
    let mut good: Vec<RecordBatch> = Vec::new();
    let mut rows = 0usize;
    let mut pos = start;
    while pos < bytes.len() && rows < BATCH_ROWS {
        let line_start = pos;
        let line_end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i);
        pos = (line_end + 1).min(bytes.len());
        let line = &bytes[line_start..line_end];
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_line(schema, line) {
            Ok(batch) => {
                rows += batch.as_ref().map_or(0, RecordBatch::num_rows);
                good.extend(batch);
            }
            Err((e, syntax)) => {
                rows += 1;
                let line_no = lines.line_at(bytes, line_start);
                out.rejected.push(RejectedRow {
                    file: file.to_string(),
                    row: *rows_before + rows as u64,
                    reason: why(schema, line, &e, syntax, line_no),
                });
            }
        }
    }
    *rows_before += rows as u64;
    if let Some(first) = good.first() {
        let batch = arrow::compute::concat_batches(&first.schema(), &good).map_err(file_err)?;
        out.batches.push(batch);
    }
    Ok(pos)
}

/// Decodes one line on its own; an error says whether the line is not JSON (`true`) or a
/// value does not fit its column (`false`).
fn decode_line(
    schema: &SchemaRef,
    line: &[u8],
) -> Result<Option<RecordBatch>, (arrow::error::ArrowError, bool)> {
    let mut dec = builder(schema).build_decoder().map_err(|e| (e, true))?;
    dec.decode(line).map_err(|e| (e, true))?;
    if dec.has_partial_record() {
        return Err((
            arrow::error::ArrowError::JsonError(
                "truncated record (JSON lines need one whole object per line)".into(),
            ),
            true,
        ));
    }
    dec.flush().map_err(|e| (e, false))
}

/// Why one line does not decode: the column whose value does not fit, found by decoding the
/// line for each column alone, with the value as the line writes it.
fn why(
    schema: &SchemaRef,
    line: &[u8],
    err: &arrow::error::ArrowError,
    syntax: bool,
    line_no: u64,
) -> String {
    if syntax {
        return format!("malformed JSON: {} (file line {line_no})", clean(err));
    }
    for f in schema.fields() {
        let alone: SchemaRef = Arc::new(Schema::new(vec![f.as_ref().clone()]));
        let Err((e, _)) = decode_line(&alone, line) else {
            continue;
        };
        let value = arrow::json::reader::ValueIter::new(line, None)
            .next()
            .and_then(Result::ok)
            .and_then(|v| v.get(f.name()).map(|x| x.to_string()));
        return match value {
            Some(v) => format!(
                "column `{}`: cannot parse `{}` as {} (file line {line_no})",
                f.name(),
                shown(&v),
                type_name(f.data_type())
            ),
            None => format!("column `{}`: {} (file line {line_no})", f.name(), clean(&e)),
        };
    }
    format!("{} (file line {line_no})", clean(err))
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
        assert!(b.rejected.is_empty());
        let b = b.batches;
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

    /// Every kept row's `id` (column 0), across batches.
    fn ids(r: &SourceRows) -> Vec<i64> {
        r.batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn malformed_line_is_rejected_with_row_and_line_and_the_others_kept() {
        let text = "{\"id\": 1, \"ts\": 0}\n\n{\"id\": 2, \"ts\": 0\n{\"id\": 3, \"ts\": 0}\n";
        let r = read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id", "ts"]), &typed())
            .expect("reads the rest");
        assert_eq!(ids(&r), vec![1, 3]);
        assert_eq!(r.rejected.len(), 1, "{:?}", r.rejected);
        let bad = &r.rejected[0];
        assert_eq!((bad.file.as_str(), bad.row), ("f.jsonl", 2));
        assert!(
            bad.reason.starts_with("malformed JSON") && bad.reason.ends_with("(file line 3)"),
            "{bad:?}"
        );
    }

    #[test]
    fn wrong_value_type_is_rejected_naming_column_value_and_line() {
        let text = "{\"id\": 1, \"amount\": 1.5}\n{\"id\": 2, \"amount\": \"lots\"}\n{\"id\": 3}\n";
        let r = read_jsonl(
            text.as_bytes(),
            "s3://b/f.jsonl",
            &cols(&["id", "amount"]),
            &typed(),
        )
        .expect("reads the rest");
        assert_eq!(ids(&r), vec![1, 3]);
        assert_eq!(
            r.rejected,
            vec![RejectedRow {
                file: "s3://b/f.jsonl".into(),
                row: 2,
                reason: "column `amount`: cannot parse `\"lots\"` as float64 (file line 2)".into(),
            }]
        );
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
        .expect("reads")
        .batches;
        assert_eq!(b[0].column(0).as_string::<i32>().value(0), "42");
        assert_eq!(b[0].column(1).as_string::<i32>().value(0), "true");
        let text = "{\"id\": \"one\"}\n";
        let r = read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id"]), &typed()).expect("reads");
        assert!(r.batches.is_empty());
        assert_eq!(
            r.rejected[0].reason,
            "column `id`: cannot parse `\"one\"` as int64 (file line 1)"
        );
    }

    #[test]
    fn truncated_last_line_is_rejected() {
        let text = "{\"id\": 1}\n{\"id\": 2";
        let r = read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id"]), &typed()).expect("reads");
        assert_eq!(ids(&r), vec![1]);
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].row, 2);
        assert!(
            r.rejected[0].reason.contains("truncated"),
            "{:?}",
            r.rejected
        );
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
        .expect("present, null")
        .batches;
        assert_eq!(b[0].column(1).null_count(), 2);
        // An empty file is just empty.
        assert!(
            read_jsonl(b"\n", "f.jsonl", &cols(&["id"]), &typed())
                .expect("empty")
                .batches
                .is_empty()
        );
    }

    #[test]
    fn a_malformed_line_does_not_hide_a_column_present_after_it() {
        // `amount` is null wherever it is read; the only object naming it follows a bad line.
        let text = "{\"id\": 1}\n{\"id\": \n{\"id\": 3, \"amount\": null}\n";
        let r = read_jsonl(
            text.as_bytes(),
            "f.jsonl",
            &cols(&["id", "amount"]),
            &typed(),
        )
        .expect("present after the bad line");
        assert_eq!((ids(&r), r.rejected.len()), (vec![1, 3], 1));
    }

    #[test]
    fn many_rows_come_in_bounded_batches() {
        let mut text = String::new();
        for i in 0..(BATCH_ROWS + 10) {
            text.push_str(&format!("{{\"id\": {i}, \"ts\": {i}}}\n"));
        }
        let r =
            read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id", "ts"]), &typed()).expect("reads");
        assert_eq!(r.batches.len(), 2);
        assert_eq!(r.batches[0].num_rows(), BATCH_ROWS);
        assert_eq!(r.batches[1].num_rows(), 10);
        // A bad value in the second batch still gets its exact row and line.
        text.push_str("{\"id\": \"x\"}\n");
        let r =
            read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id", "ts"]), &typed()).expect("reads");
        let want = (BATCH_ROWS + 11) as u64;
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].row, want);
        assert!(
            r.rejected[0]
                .reason
                .ends_with(&format!("(file line {want})")),
            "{:?}",
            r.rejected
        );
        assert_eq!(ids(&r).len(), BATCH_ROWS + 10);
    }

    #[test]
    fn bad_lines_in_the_first_batch_keep_every_other_row_in_order() {
        // Row 5 has a bad value, row BATCH_ROWS + 3 is not JSON, a blank line shifts lines.
        let mut text = String::from("\n");
        let mut want = Vec::new();
        for i in 1..=(BATCH_ROWS as i64 + 10) {
            if i == 5 {
                text.push_str("{\"id\": \"five\", \"ts\": 5}\n");
            } else if i == BATCH_ROWS as i64 + 3 {
                text.push_str("not json\n");
            } else {
                text.push_str(&format!("{{\"id\": {i}, \"ts\": {i}}}\n"));
                want.push(i);
            }
        }
        let r =
            read_jsonl(text.as_bytes(), "f.jsonl", &cols(&["id", "ts"]), &typed()).expect("reads");
        assert_eq!(ids(&r), want);
        let rows: Vec<(u64, bool)> = r
            .rejected
            .iter()
            .map(|x| {
                (
                    x.row,
                    x.reason.contains(&format!("file line {}", x.row + 1)),
                )
            })
            .collect();
        assert_eq!(rows, vec![(5, true), (BATCH_ROWS as u64 + 3, true)]);
        assert!(r.batches.iter().all(|b| b.num_rows() <= BATCH_ROWS));
    }
}
