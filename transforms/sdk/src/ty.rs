//! The value types a transform declares, named as in the WIT `value-type` enum, and how each maps
//! to Rust arguments and results.
//!
//! The markers are lower-case on purpose: a declaration reads like the contract
//! (`inputs: (recency_days: int64, name: string)`), and the marker, not the Rust type, decides the
//! WIT type (`int64` and `timestamp` are both `i64` in Rust).
#![allow(non_camel_case_types)]

use crate::column::ColumnBuilder;
use crate::{Column, ColumnData, Value, ValueType};

/// A declared type.
pub trait Type {
    /// The WIT type `describe` reports.
    const TYPE: ValueType;
}

/// A type a transform can read. Inputs are borrowed from the call's values or columns.
pub trait Input: Type {
    /// One entry of the column data (`i64`, `String`, …).
    type Item;
    /// What the transform function receives for a non-null value (`i64`, `&str`, …).
    type Ref<'a>: Copy
    where
        Self::Item: 'a;

    /// The value if it has this type; `None` if it holds another (never called with `null`).
    fn from_value(v: &Value) -> Option<Self::Ref<'_>>;
    /// The column's entries if it has this type.
    fn from_column(d: &ColumnData) -> Option<&[Self::Item]>;
    /// One entry, borrowed.
    fn item(x: &Self::Item) -> Self::Ref<'_>;
}

/// A type a transform can write.
pub trait Output: Type {
    /// The value the transform function returns (`i64`, `String`, …); a null row's column entry
    /// is its `Default` (zero or empty, the contract's convention).
    type Item: Default;

    /// The row value.
    fn value(x: Self::Item) -> Value;
    /// The column data.
    fn column(data: Vec<Self::Item>) -> ColumnData;
}

macro_rules! types {
    ($(
        $(#[$meta:meta])*
        $marker:ident => $vt:ident, $item:ty, $ref:ty, |$x:ident| $borrow:expr;
    )+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub struct $marker;

        impl Type for $marker {
            const TYPE: ValueType = ValueType::$vt;
        }

        impl Input for $marker {
            type Item = $item;
            type Ref<'a> = $ref;

            #[inline]
            fn from_value(v: &Value) -> Option<Self::Ref<'_>> {
                match v {
                    Value::$vt($x) => Some($borrow),
                    _ => None,
                }
            }

            #[inline]
            fn from_column(d: &ColumnData) -> Option<&[$item]> {
                match d {
                    ColumnData::$vt(v) => Some(v),
                    _ => None,
                }
            }

            #[inline]
            fn item($x: &$item) -> Self::Ref<'_> {
                $borrow
            }
        }

        impl Output for $marker {
            type Item = $item;

            #[inline]
            fn value(x: $item) -> Value {
                Value::$vt(x)
            }

            #[inline]
            fn column(data: Vec<$item>) -> ColumnData {
                ColumnData::$vt(data)
            }
        }
    )+};
}

types! {
    /// `int64`: `i64`.
    int64 => Int64, i64, i64, |x| *x;
    /// `float64`: `f64`.
    float64 => Float64, f64, f64, |x| *x;
    /// `string`: read as `&str`, written as `String`.
    string => String, String, &'a str, |x| x.as_str();
    /// `boolean`: `bool`.
    boolean => Boolean, bool, bool, |x| *x;
    /// `timestamp`: `i64` microseconds since 1970-01-01T00:00:00Z.
    timestamp => Timestamp, i64, i64, |x| *x;
    /// `float64-list`: read as `&[f64]`, written as `Vec<f64>`.
    float64_list => Float64List, Vec<f64>, &'a [f64], |x| x.as_slice();
}

/// A transform's outputs: one [`Output`] type, or a tuple of them in declaration order. Converts
/// the function's results to a row or to columns.
pub trait Outputs {
    /// What the transform function returns for a row: `Option<T>` or a tuple of them.
    type Row;
    /// One column builder per output.
    type Builders;

    /// A row's values, in order.
    fn values(row: Self::Row) -> Vec<Value>;
    /// Empty builders for `rows` rows.
    fn builders(rows: usize) -> Self::Builders;
    /// Appends one row.
    fn push(builders: &mut Self::Builders, row: Self::Row);
    /// The finished columns, in order.
    fn finish(builders: Self::Builders) -> Vec<Column>;
}

#[inline]
fn cell<T: Output>(v: Option<T::Item>) -> Value {
    v.map_or(Value::Null, T::value)
}

impl<T: Output> Outputs for T {
    type Row = Option<T::Item>;
    type Builders = ColumnBuilder<T>;

    fn values(row: Self::Row) -> Vec<Value> {
        vec![cell::<T>(row)]
    }

    fn builders(rows: usize) -> Self::Builders {
        ColumnBuilder::new(rows)
    }

    #[inline]
    fn push(builders: &mut Self::Builders, row: Self::Row) {
        builders.push(row);
    }

    fn finish(builders: Self::Builders) -> Vec<Column> {
        vec![builders.finish()]
    }
}

macro_rules! tuple_outputs {
    ($(($($t:ident $i:tt),+))+) => {$(
        impl<$($t: Output),+> Outputs for ($($t,)+) {
            type Row = ($(Option<$t::Item>,)+);
            type Builders = ($(ColumnBuilder<$t>,)+);

            fn values(row: Self::Row) -> Vec<Value> {
                vec![$(cell::<$t>(row.$i)),+]
            }

            fn builders(rows: usize) -> Self::Builders {
                ($(ColumnBuilder::<$t>::new(rows),)+)
            }

            #[inline]
            fn push(builders: &mut Self::Builders, row: Self::Row) {
                $(builders.$i.push(row.$i);)+
            }

            fn finish(builders: Self::Builders) -> Vec<Column> {
                vec![$(builders.$i.finish()),+]
            }
        }
    )+};
}

tuple_outputs! {
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
}
