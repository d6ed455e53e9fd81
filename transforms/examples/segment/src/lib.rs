//! `segment`: a named customer segment from the RFM scores (1..=5, as `rfm_score` writes them)
//! and the customer's tenure.
//!
//! The first rule that matches wins:
//!
//! | segment | rule | meaning |
//! |---|---|---|
//! | `new` | `tenure_months < 3` and `f <= 2` | joined lately, few orders yet: judge them later |
//! | `champions` | `r >= 4`, `f >= 4`, `m >= 4` | recent, frequent, big spenders |
//! | `loyal` | `r >= 3`, `f >= 4` | order often and not long ago |
//! | `potential` | `r >= 4` | recent but not (yet) frequent or big |
//! | `at_risk` | `r <= 2`, `f >= 3` | used to order often, have not lately |
//! | `lost` | `r == 1`, `f <= 2` | long gone, and never ordered much |
//! | `hibernating` | anything else | `r` of 2–3 with few orders |
//!
//! Nulls: a null `r_score` or `f_score` gives a null segment: without them no rule can be judged,
//! and a null is what every feature store consumer already handles as "unknown" (a made-up
//! `"unknown"` string would be one more value to special-case). A null `m_score` only keeps the
//! customer out of `champions`; a null tenure only keeps them out of `new`.
//! A score outside 1..=5 is an error: it means the transform was wired to the wrong features
//! (say, the 3..=15 total), and a wrong segment would be worse than a failed materialization.

use fstore_transform_sdk::transform;

/// The segments, in the order their rules are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    New,
    Champions,
    Loyal,
    Potential,
    AtRisk,
    Lost,
    Hibernating,
}

impl Segment {
    /// The feature value.
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::New => "new",
            Segment::Champions => "champions",
            Segment::Loyal => "loyal",
            Segment::Potential => "potential",
            Segment::AtRisk => "at_risk",
            Segment::Lost => "lost",
            Segment::Hibernating => "hibernating",
        }
    }
}

transform! {
    /// Customer segment from RFM scores and tenure.
    pub struct SegmentTransform;
    inputs: (r_score: int64, f_score: int64, m_score: int64, tenure_months: int64),
    outputs: (segment: string),
    compute: segment_feature,
}

fn check(name: &str, score: Option<i64>) -> Result<Option<i64>, String> {
    match score {
        Some(s) if !(1..=5).contains(&s) => Err(format!("{name} {s} is outside 1..=5")),
        s => Ok(s),
    }
}

/// The rules of the module docs; `None` when `r` or `f` is null.
pub fn classify(
    r: Option<i64>,
    f: Option<i64>,
    m: Option<i64>,
    tenure_months: Option<i64>,
) -> Result<Option<Segment>, String> {
    let (Some(r), Some(f)) = (check("r_score", r)?, check("f_score", f)?) else {
        return Ok(None);
    };
    let m = check("m_score", m)?;
    let segment = if tenure_months.is_some_and(|t| t < 3) && f <= 2 {
        Segment::New
    } else if r >= 4 && f >= 4 && m.is_some_and(|m| m >= 4) {
        Segment::Champions
    } else if r >= 3 && f >= 4 {
        Segment::Loyal
    } else if r >= 4 {
        Segment::Potential
    } else if r <= 2 && f >= 3 {
        Segment::AtRisk
    } else if r == 1 {
        Segment::Lost
    } else {
        Segment::Hibernating
    };
    Ok(Some(segment))
}

fn segment_feature(
    _: &(),
    r_score: Option<i64>,
    f_score: Option<i64>,
    m_score: Option<i64>,
    tenure_months: Option<i64>,
) -> Result<Option<String>, String> {
    Ok(classify(r_score, f_score, m_score, tenure_months)?.map(|s| s.as_str().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fstore_transform_sdk::{Column, ColumnData, Transform, Value};

    fn seg(r: i64, f: i64, m: i64, tenure: i64) -> Option<&'static str> {
        classify(Some(r), Some(f), Some(m), Some(tenure))
            .ok()
            .flatten()
            .map(Segment::as_str)
    }

    #[test]
    fn rules_in_order() {
        assert_eq!(seg(5, 1, 1, 1), Some("new"));
        assert_eq!(seg(5, 2, 5, 2), Some("new"));
        assert_eq!(seg(5, 3, 5, 2), Some("potential")); // 3 orders already: not judged as new
        assert_eq!(seg(5, 5, 5, 24), Some("champions"));
        assert_eq!(seg(4, 4, 4, 1), Some("champions"));
        assert_eq!(seg(5, 5, 3, 24), Some("loyal"));
        assert_eq!(seg(3, 4, 5, 24), Some("loyal"));
        assert_eq!(seg(4, 2, 5, 24), Some("potential"));
        assert_eq!(seg(2, 3, 1, 24), Some("at_risk"));
        assert_eq!(seg(1, 5, 5, 24), Some("at_risk"));
        assert_eq!(seg(1, 2, 5, 24), Some("lost"));
        assert_eq!(seg(2, 2, 5, 24), Some("hibernating"));
        assert_eq!(seg(3, 3, 5, 24), Some("hibernating"));
    }

    #[test]
    fn every_score_combination_has_a_segment() {
        for r in 1..=5 {
            for f in 1..=5 {
                for m in 1..=5 {
                    assert!(seg(r, f, m, 12).is_some(), "{r} {f} {m}");
                }
            }
        }
    }

    #[test]
    fn nulls_and_range() {
        assert_eq!(classify(None, Some(3), Some(3), Some(12)), Ok(None));
        assert_eq!(classify(Some(3), None, Some(3), Some(12)), Ok(None));
        assert_eq!(
            classify(Some(5), Some(5), None, Some(12)),
            Ok(Some(Segment::Loyal))
        );
        assert_eq!(
            classify(Some(5), Some(1), Some(1), None),
            Ok(Some(Segment::Potential))
        );
        assert_eq!(
            classify(Some(12), Some(1), Some(1), None),
            Err("r_score 12 is outside 1..=5".to_string())
        );
        assert!(classify(Some(1), Some(1), Some(0), None).is_err());
    }

    #[test]
    fn through_the_contract() {
        let row = SegmentTransform::compute(
            &(),
            &[
                Value::Int64(5),
                Value::Int64(5),
                Value::Int64(5),
                Value::Null,
            ],
        );
        assert_eq!(row, Ok(vec![Value::String("champions".into())]));
        let int = |v: Vec<i64>, validity: Vec<u8>| Column {
            data: ColumnData::Int64(v),
            validity,
        };
        let out = SegmentTransform::compute_batch(
            &(),
            2,
            &[
                int(vec![1, 0], vec![0b01]),
                int(vec![1, 1], vec![]),
                int(vec![1, 1], vec![]),
                int(vec![24, 24], vec![]),
            ],
        )
        .expect("batch");
        assert_eq!(
            out,
            vec![Column {
                data: ColumnData::String(vec!["lost".into(), String::new()]),
                validity: vec![0b01],
            }]
        );
    }
}
