//! Masking PII columns of a training set for a caller without `read_pii`, with the edge's
//! policy and key, so a value hashes to the same text offline as online.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder, new_null_array};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use fstore_access::Mask;
use fstore_snapshot::{Value, json};

use crate::OfflineError;

/// The text a value is hashed from: a string's own bytes, anything else its JSON rendering
/// (the edge hashes exactly this).
fn hash_input(col: &ArrayRef, row: usize, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    let v = match col.data_type() {
        DataType::Utf8 => {
            buf.extend_from_slice(col.as_string::<i32>().value(row).as_bytes());
            return true;
        }
        DataType::LargeUtf8 => {
            buf.extend_from_slice(col.as_string::<i64>().value(row).as_bytes());
            return true;
        }
        DataType::Int64 => Value::Int64(col.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Value::Float64(col.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Value::Timestamp(col.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        _ => return false,
    };
    json::write_value(buf, &v);
    true
}

fn masked_column(col: &ArrayRef, mask: Mask, key: &[u8]) -> ArrayRef {
    let text = |keep: Option<u32>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(col.len(), col.len() * 32);
        let mut buf = Vec::new();
        for row in 0..col.len() {
            if col.is_null(row) {
                b.append_null();
                continue;
            }
            match keep {
                Some(n) => match col.data_type() {
                    DataType::Utf8 => b.append_value(fstore_access::truncate_text(
                        col.as_string::<i32>().value(row),
                        n,
                    )),
                    DataType::LargeUtf8 => b.append_value(fstore_access::truncate_text(
                        col.as_string::<i64>().value(row),
                        n,
                    )),
                    _ => b.append_null(),
                },
                None if hash_input(col, row, &mut buf) => {
                    b.append_value(fstore_access::hash_text(key, &buf));
                }
                None => b.append_null(),
            }
        }
        Arc::new(b.finish())
    };
    match mask {
        Mask::Redact => new_null_array(col.data_type(), col.len()),
        Mask::Hash => text(None),
        Mask::Truncate(n) => text(Some(n)),
    }
}

/// `batch` with the columns at the given positions masked. Hashed and truncated columns
/// become strings; redacted ones keep their type, all null.
pub fn mask_columns(
    batch: &RecordBatch,
    masks: &[(usize, Mask)],
    key: &[u8],
) -> Result<RecordBatch, OfflineError> {
    if masks.is_empty() {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for &(i, mask) in masks {
        let (Some(col), Some(field)) = (columns.get(i), fields.get(i)) else {
            continue;
        };
        let out = masked_column(col, mask, key);
        let field = Field::new(field.name(), out.data_type().clone(), true);
        fields[i] = field;
        columns[i] = out;
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| OfflineError::Historical(format!("masking PII columns: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    #[test]
    fn masks_hash_like_the_edge_truncate_and_redact() {
        let emails: ArrayRef = Arc::new(StringArray::from(vec![Some("ann@example.com"), None]));
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(42), Some(7)]));
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("Zürich"), Some("Bern")]));
        let batch = RecordBatch::try_from_iter([("email", emails), ("id", ids), ("city", names)])
            .expect("batch");
        let out = mask_columns(
            &batch,
            &[(0, Mask::Hash), (1, Mask::Redact), (2, Mask::Truncate(2))],
            b"key",
        )
        .expect("mask");
        let email = out.column(0).as_string::<i32>();
        assert_eq!(
            email.value(0),
            fstore_access::hash_text(b"key", b"ann@example.com")
        );
        assert!(email.is_null(1));
        assert_eq!(out.column(1).null_count(), 2);
        assert_eq!(out.column(1).data_type(), &DataType::Int64);
        let city = out.column(2).as_string::<i32>();
        assert_eq!((city.value(0), city.value(1)), ("Zü", "Be"));
        // An integer hashes from its JSON text, as the edge renders it.
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![42]));
        let b = RecordBatch::try_from_iter([("id", ids)]).expect("batch");
        let h = mask_columns(&b, &[(0, Mask::Hash)], b"k").expect("mask");
        assert_eq!(
            h.column(0).as_string::<i32>().value(0),
            fstore_access::hash_text(b"k", b"42")
        );
    }
}
