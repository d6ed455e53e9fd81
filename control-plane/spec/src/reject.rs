//! How many bad source rows a view's run may set aside (quarantine) and still publish:
//! `max_rejected: 100` (rows) or `max_rejected: 0.5%` (of the rows read). Absent, the limit is
//! zero: one bad row stops the publish, though every bad row is still quarantined for
//! inspection, so a user opts in to publishing around bad data rather than discovering it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most rows a run may reject and still publish.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RejectLimit {
    Rows(u64),
    /// A fraction of the rows read, 0.0 to 1.0 (written as a percentage).
    Ratio(f64),
}

impl RejectLimit {
    /// Parses `100` or `0.5%`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(pct) = s.strip_suffix('%') {
            let p: f64 = pct
                .trim()
                .parse()
                .map_err(|_| format!("`{s}` is not a percentage such as `0.5%`"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("`{s}` is outside 0% to 100%"));
            }
            return Ok(Self::Ratio(p / 100.0));
        }
        s.parse::<u64>().map(Self::Rows).map_err(|_| {
            format!("`{s}` is neither a row count such as `100` nor a percentage such as `0.5%`")
        })
    }

    /// Whether `rejected` of `read` rows is within the limit.
    pub fn allows(&self, rejected: u64, read: u64) -> bool {
        match *self {
            Self::Rows(n) => rejected <= n,
            // Compared as counts, so `0%` allows none and `100%` allows all.
            Self::Ratio(r) => (rejected as f64) <= r * read as f64,
        }
    }
}

impl std::fmt::Display for RejectLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rows(n) => write!(f, "{n}"),
            Self::Ratio(r) => write!(f, "{}%", r * 100.0),
        }
    }
}

impl Serialize for RejectLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for RejectLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentages() {
        assert_eq!(RejectLimit::parse("100"), Ok(RejectLimit::Rows(100)));
        assert_eq!(RejectLimit::parse(" 0.5% "), Ok(RejectLimit::Ratio(0.005)));
        assert!(RejectLimit::Rows(2).allows(2, 10));
        assert!(!RejectLimit::Rows(2).allows(3, 10));
        assert!(RejectLimit::Ratio(0.1).allows(10, 100));
        assert!(!RejectLimit::Ratio(0.1).allows(11, 100));
        assert!(!RejectLimit::Ratio(0.0).allows(1, 1_000_000));
        assert!(RejectLimit::Ratio(1.0).allows(7, 7));
        for bad in ["", "-1", "1.5", "abc%", "101%", "-1%"] {
            assert!(RejectLimit::parse(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&RejectLimit::Ratio(0.005)).expect("json");
        assert_eq!(json, r#""0.5%""#);
        let back: RejectLimit = serde_json::from_str(&json).expect("back");
        assert_eq!(back, RejectLimit::Ratio(0.005));
    }
}
