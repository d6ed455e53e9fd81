use crate::FeatureType;

/// A list of float64, either borrowed as raw little-endian bytes from a mapped snapshot
/// (which need not be 8-aligned for `f64`) or as a native slice from the writer's input.
#[derive(Debug, Clone, Copy)]
pub enum F64List<'a> {
    Bytes(&'a [u8]),
    Slice(&'a [f64]),
}

impl<'a> F64List<'a> {
    pub fn len(&self) -> usize {
        match self {
            F64List::Bytes(b) => b.len() / 8,
            F64List::Slice(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> f64 {
        match self {
            F64List::Bytes(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[i * 8..i * 8 + 8]);
                f64::from_le_bytes(a)
            }
            F64List::Slice(s) => s[i],
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl PartialEq for F64List<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

/// One feature value, borrowed: from the snapshot on the read side, from the source batch on
/// the write side. Timestamps are microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Int64(i64),
    Float64(f64),
    String(&'a str),
    Bool(bool),
    Timestamp(i64),
    ListFloat64(F64List<'a>),
}

impl Value<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int64(_) => "int64",
            Value::Float64(_) => "float64",
            Value::String(_) => "string",
            Value::Bool(_) => "bool",
            Value::Timestamp(_) => "timestamp",
            Value::ListFloat64(_) => "list<float64>",
        }
    }

    pub fn matches(&self, ty: FeatureType) -> bool {
        matches!(
            (self, ty),
            (Value::Null, _)
                | (Value::Int64(_), FeatureType::Int64)
                | (Value::Float64(_), FeatureType::Float64)
                | (Value::String(_), FeatureType::String)
                | (Value::Bool(_), FeatureType::Bool)
                | (Value::Timestamp(_), FeatureType::Timestamp)
                | (Value::ListFloat64(_), FeatureType::ListFloat64)
        )
    }
}
