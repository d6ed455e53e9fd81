//! How a PII feature is shown to a caller without `read_pii`.

use serde::{Deserialize, Serialize};

/// A feature's masking policy (`mask:` in `features.yaml`). A feature tagged `pii` without one
/// is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// The value becomes null.
    Redact,
    /// The value becomes a keyed hash (HMAC-SHA-256 with the project's key, 32 hex digits):
    /// equal values stay equal, so it still joins and counts, but it cannot be reversed or
    /// recomputed without the key.
    Hash,
    /// A string keeps its first N characters (`{truncate: 3}`).
    Truncate(u32),
}

impl std::fmt::Display for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mask::Redact => f.write_str("redact"),
            Mask::Hash => f.write_str("hash"),
            Mask::Truncate(n) => write!(f, "truncate to {n} characters"),
        }
    }
}

/// The keyed hash of a value's text (its JSON rendering without quotes for strings).
pub fn hash_text(key: &[u8], text: &[u8]) -> String {
    hash_with(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        text,
    )
}

pub(crate) fn hash_with(key: &aws_lc_rs::hmac::Key, text: &[u8]) -> String {
    let tag = aws_lc_rs::hmac::sign(key, text);
    hex::encode(&tag.as_ref()[..16])
}

/// The first `keep` characters of `s`.
pub fn truncate_text(s: &str, keep: u32) -> &str {
    match s.char_indices().nth(keep as usize) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let a = hash_text(b"key", b"alice@example.com");
        assert_eq!(a.len(), 32);
        assert_eq!(a, hash_text(b"key", b"alice@example.com"));
        assert_ne!(a, hash_text(b"other key", b"alice@example.com"));
        assert_ne!(a, hash_text(b"key", b"bob@example.com"));
        // RFC 4231 test case 2, truncated to 128 bits.
        assert_eq!(
            hash_text(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c7"
        );
        assert_eq!(truncate_text("Zürich", 2), "Zü");
        assert_eq!(truncate_text("ab", 5), "ab");
        assert_eq!(truncate_text("ab", 0), "");
        let m: Mask = serde_json::from_str(r#"{"truncate":3}"#).expect("mask");
        assert_eq!(m, Mask::Truncate(3));
        let m: Mask = serde_json::from_str(r#""hash""#).expect("mask");
        assert_eq!(m, Mask::Hash);
    }
}
