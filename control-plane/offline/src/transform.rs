//! Runs a view's transform steps over the rows a materialization keeps, through each
//! component's batch export, so the snapshot stores the outputs.

use std::sync::Arc;

use arrow::array::ArrayRef;
use fstore_snapshot::{FeatureType, TransformStep, Value};
use fstore_wasm_host::{Column, ColumnData, Transform};

use crate::OfflineError;

/// Rows per batch call: large enough to amortize the crossing into WebAssembly, small enough
/// that a batch's deadline and the guest's memory stay modest.
const BATCH_ROWS: usize = 16 * 1024;

/// A column the steps computed, one entry per kept row.
pub(crate) struct Computed {
    pub name: String,
    pub column: Column,
}

impl Computed {
    /// The column as an Arrow array of the feature type's Arrow type (see `columns::target_type`),
    /// reusing the fixed-width buffers rather than copying them.
    pub fn into_arrow(self) -> ArrayRef {
        use arrow::array::{
            BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
            TimestampMicrosecondArray,
        };
        use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
        let Column { data, validity } = self.column;
        let len = data_len(&data);
        let ok = |row: usize| valid(&validity, row);
        let nulls = (!validity.is_empty())
            .then(|| NullBuffer::new(BooleanBuffer::new(Buffer::from(validity.clone()), 0, len)));
        match data {
            ColumnData::Int64(v) => Arc::new(Int64Array::new(v.into(), nulls)),
            ColumnData::Float64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
            ColumnData::Timestamp(v) => Arc::new(TimestampMicrosecondArray::new(v.into(), nulls)),
            ColumnData::Boolean(v) => Arc::new(BooleanArray::new(
                BooleanBuffer::from_iter(v.iter().copied()),
                nulls,
            )),
            ColumnData::String(v) => Arc::new(StringArray::from_iter(
                v.iter()
                    .enumerate()
                    .map(|(i, s)| ok(i).then_some(s.as_str())),
            )),
            ColumnData::Float64List(v) => {
                Arc::new(ListArray::from_iter_primitive::<
                    arrow::datatypes::Float64Type,
                    _,
                    _,
                >(v.iter().enumerate().map(|(i, l)| {
                    ok(i).then(|| l.iter().map(|x| Some(*x)).collect::<Vec<_>>())
                })))
            }
        }
    }
}

/// For each name, the column the steps computed under it, as Arrow: the last one when several
/// steps output the same name (a later step overrides an earlier one), None when none did.
pub(crate) fn take_columns(computed: Vec<Computed>, names: &[&str]) -> Vec<Option<ArrayRef>> {
    let mut slots: Vec<Option<Computed>> = computed.into_iter().map(Some).collect();
    names
        .iter()
        .map(|name| {
            let i = slots
                .iter()
                .rposition(|c| c.as_ref().is_some_and(|c| c.name == *name))?;
            slots[i].take().map(Computed::into_arrow)
        })
        .collect()
}

fn data_len(d: &ColumnData) -> usize {
    match d {
        ColumnData::Int64(v) | ColumnData::Timestamp(v) => v.len(),
        ColumnData::Float64(v) => v.len(),
        ColumnData::String(v) => v.len(),
        ColumnData::Boolean(v) => v.len(),
        ColumnData::Float64List(v) => v.len(),
    }
}

fn valid(bitmap: &[u8], row: usize) -> bool {
    bitmap.is_empty() || bitmap[row / 8] & (1 << (row % 8)) != 0
}

/// Runs `steps` (with their loaded components) over `rows` rows. `stored` names the view's
/// stored features; `read(i, row)` reads stored feature `i` of kept row `row`. Returns every
/// output of every step, in step order.
pub(crate) fn run_steps<'a>(
    view: &str,
    steps: &[TransformStep],
    loaded: &[Arc<Transform>],
    rows: usize,
    stored: &[(&str, FeatureType)],
    read: &dyn Fn(usize, usize) -> Value<'a>,
) -> Result<Vec<Computed>, OfflineError> {
    let mut computed: Vec<Computed> = Vec::new();
    for (step, transform) in steps.iter().zip(loaded) {
        let fail = |message: String| OfflineError::Transform {
            view: view.to_string(),
            transform: step.transform.clone(),
            message,
        };
        let mut outputs: Vec<Column> = step
            .outputs
            .iter()
            .map(|f| Column {
                data: empty_column(f.ty, rows),
                validity: Vec::new(),
            })
            .collect();
        let mut nulls: Vec<Vec<bool>> = vec![Vec::new(); step.outputs.len()];
        let mut start = 0;
        while start < rows {
            let end = (start + BATCH_ROWS).min(rows);
            let mut inputs = Vec::with_capacity(step.inputs.len());
            for name in &step.inputs {
                let column = if let Some(c) = computed.iter().rev().find(|c| &c.name == name) {
                    slice_column(&c.column, start, end)
                } else if let Some(si) = stored.iter().position(|(n, _)| n == name) {
                    build_column(stored[si].1, start, end, &|row| read(si, row))
                } else {
                    return Err(fail(format!("input `{name}` is not a feature of the view")));
                };
                inputs.push(column);
            }
            let n = u32::try_from(end - start).unwrap_or(u32::MAX);
            let out = transform
                .call_batch(n, &inputs)
                .map_err(|e| fail(format!("rows {}..{}: {e}", start + 1, end)))?;
            for ((acc, nul), col) in outputs.iter_mut().zip(&mut nulls).zip(out) {
                append(acc, nul, col, end - start);
            }
            start = end;
        }
        for ((field, mut column), nul) in step.outputs.iter().zip(outputs).zip(nulls) {
            if nul.iter().any(|n| *n) {
                column.validity = bitmap(&nul);
            }
            computed.push(Computed {
                name: field.name.clone(),
                column,
            });
        }
    }
    Ok(computed)
}

fn empty_column(ty: FeatureType, rows: usize) -> ColumnData {
    match ty {
        FeatureType::Int64 => ColumnData::Int64(Vec::with_capacity(rows)),
        FeatureType::Float64 => ColumnData::Float64(Vec::with_capacity(rows)),
        FeatureType::String => ColumnData::String(Vec::with_capacity(rows)),
        FeatureType::Bool => ColumnData::Boolean(Vec::with_capacity(rows)),
        FeatureType::Timestamp => ColumnData::Timestamp(Vec::with_capacity(rows)),
        FeatureType::ListFloat64 => ColumnData::Float64List(Vec::with_capacity(rows)),
    }
}

/// Builds an input column from stored values; a null or mistyped value becomes a null entry.
fn build_column<'a>(
    ty: FeatureType,
    start: usize,
    end: usize,
    read: &dyn Fn(usize) -> Value<'a>,
) -> Column {
    let mut data = empty_column(ty, end - start);
    let mut nulls = Vec::with_capacity(end - start);
    for row in start..end {
        let v = read(row);
        let null = match (&mut data, v) {
            (ColumnData::Int64(d), Value::Int64(x)) => push(d, x),
            (ColumnData::Float64(d), Value::Float64(x)) => push(d, x),
            (ColumnData::String(d), Value::String(x)) => push(d, x.to_string()),
            (ColumnData::Boolean(d), Value::Bool(x)) => push(d, x),
            (ColumnData::Timestamp(d), Value::Timestamp(x)) => push(d, x),
            (ColumnData::Float64List(d), Value::ListFloat64(x)) => push(d, x.iter().collect()),
            (d, _) => {
                push_default(d);
                true
            }
        };
        nulls.push(null);
    }
    let validity = if nulls.iter().any(|n| *n) {
        bitmap(&nulls)
    } else {
        Vec::new()
    };
    Column { data, validity }
}

fn push<T>(v: &mut Vec<T>, x: T) -> bool {
    v.push(x);
    false
}

fn push_default(d: &mut ColumnData) {
    match d {
        ColumnData::Int64(v) | ColumnData::Timestamp(v) => v.push(0),
        ColumnData::Float64(v) => v.push(0.0),
        ColumnData::String(v) => v.push(String::new()),
        ColumnData::Boolean(v) => v.push(false),
        ColumnData::Float64List(v) => v.push(Vec::new()),
    }
}

fn slice_column(c: &Column, start: usize, end: usize) -> Column {
    let data = match &c.data {
        ColumnData::Int64(v) => ColumnData::Int64(v[start..end].to_vec()),
        ColumnData::Float64(v) => ColumnData::Float64(v[start..end].to_vec()),
        ColumnData::String(v) => ColumnData::String(v[start..end].to_vec()),
        ColumnData::Boolean(v) => ColumnData::Boolean(v[start..end].to_vec()),
        ColumnData::Timestamp(v) => ColumnData::Timestamp(v[start..end].to_vec()),
        ColumnData::Float64List(v) => ColumnData::Float64List(v[start..end].to_vec()),
    };
    let validity = if c.validity.is_empty() {
        Vec::new()
    } else {
        let nulls: Vec<bool> = (start..end).map(|r| !valid(&c.validity, r)).collect();
        bitmap(&nulls)
    };
    Column { data, validity }
}

/// Appends a batch's output column; records its nulls row by row.
fn append(acc: &mut Column, nulls: &mut Vec<bool>, col: Column, rows: usize) {
    nulls.extend((0..rows).map(|r| !valid(&col.validity, r)));
    match (&mut acc.data, col.data) {
        (ColumnData::Int64(a), ColumnData::Int64(b)) => a.extend(b),
        (ColumnData::Float64(a), ColumnData::Float64(b)) => a.extend(b),
        (ColumnData::String(a), ColumnData::String(b)) => a.extend(b),
        (ColumnData::Boolean(a), ColumnData::Boolean(b)) => a.extend(b),
        (ColumnData::Timestamp(a), ColumnData::Timestamp(b)) => a.extend(b),
        (ColumnData::Float64List(a), ColumnData::Float64List(b)) => a.extend(b),
        // The host checked each output's type against the declared signature.
        (a, _) => (0..rows).for_each(|_| push_default(a)),
    }
}

/// An Arrow-style validity bitmap from per-row null flags.
fn bitmap(nulls: &[bool]) -> Vec<u8> {
    let mut b = vec![0u8; nulls.len().div_ceil(8)];
    for (i, n) in nulls.iter().enumerate() {
        if !n {
            b[i / 8] |= 1 << (i % 8);
        }
    }
    b
}
