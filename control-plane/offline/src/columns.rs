//! Normalizes source columns to the one Arrow type each feature type reads from, so the row
//! loop below is a plain match with no per-cell type dispatch on Arrow's side.

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, TimeUnit};
use fstore_snapshot::{F64List, FeatureType, KeyBuf, KeyType, Value};

/// The Arrow type a column is converted to for a feature type.
pub fn target_type(ty: FeatureType) -> DataType {
    match ty {
        FeatureType::Int64 => DataType::Int64,
        FeatureType::Float64 => DataType::Float64,
        FeatureType::String => DataType::Utf8,
        FeatureType::Bool => DataType::Boolean,
        FeatureType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        FeatureType::ListFloat64 => DataType::List(std::sync::Arc::new(Field::new_list_field(
            DataType::Float64,
            true,
        ))),
    }
}

pub fn key_target(ty: KeyType) -> DataType {
    match ty {
        KeyType::Int64 => DataType::Int64,
        KeyType::String => DataType::Utf8,
    }
}

/// Whether a source column of type `from` may feed `to` without losing meaning: integer
/// widening, float widening, string flavours, timestamp units and dates. Anything else (a
/// string column for an int64 feature, say) is a definition error, not something to coerce.
fn compatible(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    match to {
        Int64 => matches!(from, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32),
        Float64 => matches!(
            from,
            Float16
                | Float32
                | Float64
                | Int8
                | Int16
                | Int32
                | Int64
                | UInt8
                | UInt16
                | UInt32
                | UInt64
        ),
        Utf8 => matches!(from, Utf8 | LargeUtf8 | Utf8View),
        Boolean => matches!(from, Boolean),
        Timestamp(_, _) => matches!(from, Timestamp(_, _) | Date32 | Date64),
        List(_) => match from {
            List(f) | LargeList(f) | FixedSizeList(f, _) => {
                matches!(f.data_type(), Float32 | Float64 | Int32 | Int64)
            }
            _ => false,
        },
        _ => false,
    }
}

/// Converts `array` to `to`, or explains why it cannot.
pub fn normalize(array: &ArrayRef, to: &DataType, what: &str) -> Result<ArrayRef, String> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    // Timestamps with a time zone are instants too; drop the zone after converting units.
    if let (DataType::Timestamp(_, Some(_)), DataType::Timestamp(unit, None)) =
        (array.data_type(), to)
    {
        let tz_free = cast(array, &DataType::Timestamp(*unit, Some("UTC".into())))
            .map_err(|e| e.to_string())?;
        let data = tz_free
            .to_data()
            .into_builder()
            .data_type(to.clone())
            .build()
            .map_err(|e| e.to_string())?;
        return Ok(arrow::array::make_array(data));
    }
    if !compatible(array.data_type(), to) {
        return Err(format!(
            "{what} has type {}, which cannot be read as {to}",
            array.data_type()
        ));
    }
    cast(array, to).map_err(|e| format!("{what}: {e}"))
}

/// A normalized column, downcast once per batch.
pub enum Col<'a> {
    Int64(&'a Int64Array),
    Float64(&'a Float64Array),
    Utf8(&'a StringArray),
    Bool(&'a BooleanArray),
    Ts(&'a TimestampMicrosecondArray),
    List(&'a ListArray, &'a [f64]),
}

impl<'a> Col<'a> {
    pub fn of(array: &'a ArrayRef) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Int64 => Col::Int64(array.as_primitive_opt()?),
            DataType::Float64 => Col::Float64(array.as_primitive_opt()?),
            DataType::Utf8 => Col::Utf8(array.as_string_opt()?),
            DataType::Boolean => Col::Bool(array.as_boolean_opt()?),
            DataType::Timestamp(TimeUnit::Microsecond, None) => Col::Ts(array.as_primitive_opt()?),
            DataType::List(_) => {
                let l: &ListArray = array.as_list_opt()?;
                let values = l.values().as_primitive_opt::<Float64Type>()?.values();
                Col::List(l, values)
            }
            _ => return None,
        })
    }

    #[inline]
    pub fn value(&self, row: usize) -> Value<'a> {
        match self {
            Col::Int64(a) if a.is_valid(row) => Value::Int64(a.value(row)),
            Col::Float64(a) if a.is_valid(row) => Value::Float64(a.value(row)),
            Col::Utf8(a) if a.is_valid(row) => Value::String(a.value(row)),
            Col::Bool(a) if a.is_valid(row) => Value::Bool(a.value(row)),
            Col::Ts(a) if a.is_valid(row) => Value::Timestamp(a.value(row)),
            Col::List(a, values) if a.is_valid(row) => {
                let o = a.value_offsets();
                let (s, e) = (o[row] as usize, o[row + 1] as usize);
                // Lists with null elements cannot be represented; read them as a null value.
                if a.values().null_count() > 0 && (s..e).any(|i| a.values().is_null(i)) {
                    return Value::Null;
                }
                Value::ListFloat64(F64List::Slice(&values[s..e]))
            }
            _ => Value::Null,
        }
    }
}

/// Encodes row `row` of normalized join-key columns into `kb`, as snapshots and the event
/// index key rows; false when a key is null (such a row has no key).
pub fn encode_key(cols: &[Col<'_>], row: usize, kb: &mut KeyBuf) -> bool {
    kb.clear();
    for c in cols {
        match c.value(row) {
            Value::Int64(v) => kb.push_i64(v),
            Value::String(s) => kb.push_str(s),
            _ => return false,
        }
    }
    true
}
