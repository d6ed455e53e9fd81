//! Reading input columns and building output columns with Arrow-style validity bitmaps: bit
//! `i % 8` of byte `i / 8` is set when row `i` holds a value, and an empty bitmap means every row
//! does.

use crate::ty::{Input, Output};
use crate::{Column, type_name};
use std::marker::PhantomData;

/// A checked view of one input column: its data has exactly `rows` entries and its bitmap is
/// empty or covers `rows` bits, so [`ColumnView::get`] needs no further checks.
pub struct ColumnView<'a, T: Input> {
    data: &'a [T::Item],
    validity: &'a [u8],
    _type: PhantomData<T>,
}

impl<'a, T: Input> ColumnView<'a, T> {
    /// Checks `column` against the declared type and the row count. The error does not name the
    /// input; the caller adds it.
    pub fn new(column: &'a Column, rows: usize) -> Result<Self, String> {
        let data = T::from_column(&column.data).ok_or_else(|| {
            format!(
                "expected a column of {}, got a column of {}",
                type_name(T::TYPE),
                column_kind(column)
            )
        })?;
        if data.len() != rows {
            return Err(format!("{} entries for {rows} rows", data.len()));
        }
        let validity = column.validity.as_slice();
        if !validity.is_empty() && validity.len() < rows.div_ceil(8) {
            return Err(format!(
                "validity bitmap of {} bytes for {rows} rows (needs {}, or 0 when no row is null)",
                validity.len(),
                rows.div_ceil(8)
            ));
        }
        Ok(ColumnView {
            data,
            validity,
            _type: PhantomData,
        })
    }

    /// Row `i`, `None` when null. Panics past the row count, which the generated loop never
    /// reaches.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T::Ref<'a>> {
        if self.validity.is_empty() || self.validity[i / 8] & (1 << (i % 8)) != 0 {
            Some(T::item(&self.data[i]))
        } else {
            None
        }
    }
}

fn column_kind(c: &Column) -> &'static str {
    use crate::ColumnData as D;
    match c.data {
        D::Int64(_) => "int64",
        D::Float64(_) => "float64",
        D::String(_) => "string",
        D::Boolean(_) => "boolean",
        D::Timestamp(_) => "timestamp",
        D::Float64List(_) => "float64-list",
    }
}

/// Builds one output column. The bitmap is only allocated at the first null (all bits set, then
/// that one cleared), so a column without nulls costs nothing but its data and ends with the
/// empty bitmap the contract asks for.
pub struct ColumnBuilder<T: Output> {
    data: Vec<T::Item>,
    validity: Vec<u8>,
}

impl<T: Output> ColumnBuilder<T> {
    /// A builder sized for `rows` rows (more may be pushed).
    pub fn new(rows: usize) -> Self {
        ColumnBuilder {
            data: Vec::with_capacity(rows),
            validity: Vec::new(),
        }
    }

    /// Appends one row.
    #[inline]
    pub fn push(&mut self, v: Option<T::Item>) {
        match v {
            Some(x) => self.data.push(x),
            None => self.push_null(),
        }
    }

    #[cold]
    fn push_null(&mut self) {
        let i = self.data.len();
        if self.validity.len() <= i / 8 {
            // Rows before this one (and, until proven otherwise, after it) are valid.
            let len = (i / 8 + 1).max(self.data.capacity().div_ceil(8));
            self.validity.resize(len, 0xff);
        }
        self.validity[i / 8] &= !(1 << (i % 8));
        self.data.push(T::Item::default());
    }

    /// The column: exactly one entry per pushed row, and a bitmap of exactly
    /// `ceil(rows / 8)` bytes with the padding bits clear, or empty when no row is null.
    pub fn finish(self) -> Column {
        let ColumnBuilder { data, mut validity } = self;
        if !validity.is_empty() {
            let rows = data.len();
            validity.resize(rows.div_ceil(8), 0xff);
            if rows % 8 != 0
                && let Some(last) = validity.last_mut()
            {
                *last &= (1u8 << (rows % 8)) - 1;
            }
        }
        Column {
            data: T::column(data),
            validity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ColumnData;
    use crate::ty::{float64, int64, string};

    #[test]
    fn builder_without_nulls_has_empty_bitmap() {
        let mut b = ColumnBuilder::<int64>::new(3);
        for i in 0..3 {
            b.push(Some(i));
        }
        let c = b.finish();
        assert_eq!(c.data, ColumnData::Int64(vec![0, 1, 2]));
        assert!(c.validity.is_empty());
    }

    #[test]
    fn builder_bitmap_marks_nulls_and_clears_padding() {
        let mut b = ColumnBuilder::<float64>::new(10);
        for i in 0..10 {
            b.push(if i == 1 || i == 9 {
                None
            } else {
                Some(i as f64)
            });
        }
        let c = b.finish();
        assert_eq!(
            c.data,
            ColumnData::Float64(vec![0.0, 0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0.0])
        );
        assert_eq!(c.validity, vec![0b1111_1101, 0b0000_0001]);
    }

    #[test]
    fn builder_grows_past_its_size_hint() {
        let mut b = ColumnBuilder::<string>::new(1);
        b.push(Some("a".into()));
        for _ in 0..9 {
            b.push(None);
        }
        b.push(Some("z".into()));
        let c = b.finish();
        assert_eq!(c.validity, vec![0b0000_0001, 0b0000_0100]);
        match c.data {
            ColumnData::String(v) => assert_eq!(v.len(), 11),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn view_reads_bitmap_and_checks_shape() {
        let col = Column {
            data: ColumnData::Int64(vec![10, 0, 30]),
            validity: vec![0b101],
        };
        let v = ColumnView::<int64>::new(&col, 3).expect("valid column");
        assert_eq!((v.get(0), v.get(1), v.get(2)), (Some(10), None, Some(30)));

        let all = Column {
            validity: vec![],
            ..col.clone()
        };
        let v = ColumnView::<int64>::new(&all, 3).expect("valid column");
        assert_eq!(v.get(1), Some(0));

        let err = |c: &Column, rows| ColumnView::<int64>::new(c, rows).err();
        assert_eq!(err(&col, 4), Some("3 entries for 4 rows".to_string()));
        let short = Column {
            data: ColumnData::Int64(vec![0; 9]),
            validity: vec![0xff],
        };
        assert!(err(&short, 9).is_some_and(|e| e.contains("validity bitmap of 1 bytes")));
        let wrong = Column {
            data: ColumnData::Float64(vec![1.0]),
            validity: vec![],
        };
        assert_eq!(
            err(&wrong, 1),
            Some("expected a column of int64, got a column of float64".to_string())
        );
    }
}
