use crate::KeyType;

/// One column of an entity key as a caller supplies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart<'a> {
    Int64(i64),
    String(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("entity key has {got} columns, expected {expected}")]
    Arity { expected: usize, got: usize },
    #[error("join key `{column}` expects {expected}, got {got}")]
    Type {
        column: usize,
        expected: KeyType,
        got: &'static str,
    },
    #[error("entity key is longer than 65535 bytes")]
    TooLong,
}

/// A reusable buffer holding the canonical byte encoding of an entity key: the key columns in
/// declaration order, an int64 as 8 little-endian bytes, a string as its length (u32 LE) and
/// UTF-8 bytes. The types are fixed by the entity, so no tags are needed.
#[derive(Debug, Default, Clone)]
pub struct KeyBuf {
    buf: Vec<u8>,
}

impl KeyBuf {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn push_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn push_str(&mut self, s: &str) {
        self.buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
    }

    /// Encodes `parts` against the key column types, replacing what the buffer held.
    pub fn encode(&mut self, types: &[KeyType], parts: &[KeyPart<'_>]) -> Result<&[u8], KeyError> {
        if types.len() != parts.len() {
            return Err(KeyError::Arity {
                expected: types.len(),
                got: parts.len(),
            });
        }
        self.buf.clear();
        for (column, (ty, part)) in types.iter().zip(parts).enumerate() {
            match (ty, part) {
                (KeyType::Int64, KeyPart::Int64(v)) => self.push_i64(*v),
                (KeyType::String, KeyPart::String(s)) => self.push_str(s),
                (expected, got) => {
                    return Err(KeyError::Type {
                        column,
                        expected: *expected,
                        got: match got {
                            KeyPart::Int64(_) => "int64",
                            KeyPart::String(_) => "string",
                        },
                    });
                }
            }
        }
        if self.buf.len() > u16::MAX as usize {
            return Err(KeyError::TooLong);
        }
        Ok(&self.buf)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Decodes a key encoded by [`KeyBuf`]; `None` when the bytes do not fit the types.
pub fn decode_key<'a>(types: &[KeyType], mut bytes: &'a [u8]) -> Option<Vec<KeyPart<'a>>> {
    let mut parts = Vec::with_capacity(types.len());
    for ty in types {
        match ty {
            KeyType::Int64 => {
                let (head, rest) = bytes.split_at_checked(8)?;
                parts.push(KeyPart::Int64(i64::from_le_bytes(head.try_into().ok()?)));
                bytes = rest;
            }
            KeyType::String => {
                let (len, rest) = bytes.split_at_checked(4)?;
                let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
                let (s, rest) = rest.split_at_checked(len)?;
                parts.push(KeyPart::String(std::str::from_utf8(s).ok()?));
                bytes = rest;
            }
        }
    }
    bytes.is_empty().then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_round_trip() {
        let types = [KeyType::Int64, KeyType::String];
        let mut k = KeyBuf::new();
        let bytes = k
            .encode(&types, &[KeyPart::Int64(-7), KeyPart::String("eu-west")])
            .expect("encodes")
            .to_vec();
        assert_eq!(
            decode_key(&types, &bytes),
            Some(vec![KeyPart::Int64(-7), KeyPart::String("eu-west")])
        );
        assert!(decode_key(&types, &bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn wrong_types_and_arity_are_errors() {
        let mut k = KeyBuf::new();
        assert!(matches!(
            k.encode(&[KeyType::Int64], &[KeyPart::String("x")]),
            Err(KeyError::Type { column: 0, .. })
        ));
        assert!(matches!(
            k.encode(&[KeyType::Int64], &[]),
            Err(KeyError::Arity { .. })
        ));
    }
}
