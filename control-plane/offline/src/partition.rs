//! Hive-style date partitions in file paths (`date=2026-05-01/`, `dt=…`, or nested
//! `year=2026/month=05/day=01/`), read as the UTC time range a file's rows fall in, so a job
//! that needs only some days skips the other files without opening them.

use chrono::NaiveDate;

/// The UTC range `[start, end)` in µs since the epoch that the partition directories of `path`
/// put its rows in, or None when its path names no (valid) date partition. A date segment
/// gives one day; `year=`/`month=`/`day=` give a day, a month or a year, depending on how many
/// are present (a `day=` without a `month=` says nothing). Several partition segments narrow
/// one another; contradictory ones give an empty range, which overlaps nothing.
pub(crate) fn partition_range(path: &str) -> Option<(i64, i64)> {
    let mut range: Option<(i64, i64)> = None;
    let (mut year, mut month, mut day) = (None, None, None);
    let mut segments: Vec<&str> = path.split('/').collect();
    // The last segment is the file itself, not a partition directory.
    segments.pop();
    for seg in segments {
        let Some((key, value)) = seg.split_once('=') else {
            continue;
        };
        match key.to_ascii_lowercase().as_str() {
            "date" | "dt" => {
                if let Some(d) = parse_date(value) {
                    range = narrow(range, day_range(d));
                }
            }
            "year" => year = value.parse::<i32>().ok(),
            "month" => month = value.parse::<u32>().ok(),
            "day" => day = value.parse::<u32>().ok(),
            _ => {}
        }
    }
    let nested = match (year, month, day) {
        (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y, m, d).and_then(day_range),
        (Some(y), Some(m), None) => NaiveDate::from_ymd_opt(y, m, 1).and_then(|first| {
            let next = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)
            }?;
            Some((micros(first)?, micros(next)?))
        }),
        (Some(y), None, _) => {
            let first = NaiveDate::from_ymd_opt(y, 1, 1)?;
            let next = NaiveDate::from_ymd_opt(y + 1, 1, 1)?;
            Some((micros(first)?, micros(next)?))
        }
        _ => None,
    };
    match nested {
        Some(r) => narrow(range, Some(r)),
        None => range,
    }
}

/// Whether a file whose partition range is `partition` may hold rows in the inclusive job
/// range `[from, to]`. Files without a partition, and jobs without a range, always may.
pub(crate) fn may_overlap(partition: Option<(i64, i64)>, range: Option<(i64, i64)>) -> bool {
    match (partition, range) {
        (Some((start, end)), Some((from, to))) => {
            start < end && from <= to && start <= to && end > from
        }
        _ => true,
    }
}

fn narrow(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
    match (a, b) {
        (Some((s1, e1)), Some((s2, e2))) => {
            let (s, e) = (s1.max(s2), e1.min(e2));
            Some((s, e.max(s)))
        }
        (a, None) => a,
        (None, b) => b,
    }
}

/// `YYYY-MM-DD`, exactly.
fn parse_date(v: &str) -> Option<NaiveDate> {
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |s: &str| -> Option<u32> {
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let y = num(&v[..4])?;
    NaiveDate::from_ymd_opt(y as i32, num(&v[5..7])?, num(&v[8..])?)
}

fn day_range(d: NaiveDate) -> Option<(i64, i64)> {
    Some((micros(d)?, micros(d.succ_opt()?)?))
}

fn micros(d: NaiveDate) -> Option<i64> {
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;
    /// 2026-05-01T00:00:00Z in µs.
    const MAY1: i64 = 1_777_593_600_000_000;

    #[test]
    fn date_segments_give_one_utc_day() {
        assert_eq!(
            partition_range("s3://b/lake/date=2026-05-01/part-0.parquet"),
            Some((MAY1, MAY1 + DAY))
        );
        assert_eq!(
            partition_range("/data/dt=2026-05-02/x.csv"),
            Some((MAY1 + DAY, MAY1 + 2 * DAY))
        );
        assert_eq!(
            partition_range("lake/DATE=2026-05-01/x.csv"),
            Some((MAY1, MAY1 + DAY))
        );
    }

    #[test]
    fn nested_year_month_day() {
        assert_eq!(
            partition_range("lake/year=2026/month=05/day=01/x.parquet"),
            Some((MAY1, MAY1 + DAY))
        );
        assert_eq!(
            partition_range("lake/year=2026/month=5/x.parquet"),
            Some((MAY1, MAY1 + 31 * DAY))
        );
        // December rolls into the next year.
        let (s, e) = partition_range("lake/year=2025/month=12/x.parquet").expect("range");
        assert_eq!(e - s, 31 * DAY);
        assert_eq!(e, partition_range("year=2026/f").expect("y").0);
        let (s, e) = partition_range("lake/year=2024/x.parquet").expect("range");
        assert_eq!(e - s, 366 * DAY, "2024 is a leap year");
        // Leap day exists in 2024, not in 2026.
        assert!(partition_range("year=2024/month=02/day=29/f").is_some());
        assert_eq!(partition_range("year=2026/month=02/day=29/f"), None);
    }

    #[test]
    fn no_or_invalid_partitions_give_no_range() {
        assert_eq!(partition_range("lake/orders.parquet"), None);
        assert_eq!(partition_range("lake/region=eu/orders.parquet"), None);
        assert_eq!(partition_range("lake/date=2026-13-01/x"), None);
        assert_eq!(partition_range("lake/date=2026-5-1/x"), None);
        assert_eq!(
            partition_range("lake/date=__HIVE_DEFAULT_PARTITION__/x"),
            None
        );
        assert_eq!(partition_range("lake/date=+026-05-01/x"), None);
        assert_eq!(partition_range("lake/month=05/day=01/x"), None);
        // A file named like a partition is not one.
        assert_eq!(partition_range("lake/date=2026-05-01"), None);
    }

    #[test]
    fn day_without_month_is_ignored_and_segments_narrow() {
        assert_eq!(
            partition_range("year=2026/day=01/f"),
            partition_range("year=2026/f")
        );
        assert_eq!(
            partition_range("year=2026/date=2026-05-01/f"),
            Some((MAY1, MAY1 + DAY))
        );
        // Contradictory segments: an empty range.
        let r = partition_range("year=2025/date=2026-05-01/f");
        assert!(matches!(r, Some((s, e)) if s == e), "{r:?}");
        assert!(!may_overlap(r, Some((i64::MIN, i64::MAX))));
    }

    #[test]
    fn overlap_is_half_open_against_an_inclusive_range() {
        let p = Some((MAY1, MAY1 + DAY));
        assert!(may_overlap(p, None));
        assert!(may_overlap(None, Some((0, 1))));
        assert!(may_overlap(p, Some((MAY1, MAY1))));
        assert!(may_overlap(p, Some((MAY1 + DAY - 1, MAY1 + 5 * DAY))));
        assert!(!may_overlap(p, Some((MAY1 + DAY, MAY1 + 5 * DAY))));
        assert!(may_overlap(p, Some((0, MAY1))));
        assert!(!may_overlap(p, Some((0, MAY1 - 1))));
        assert!(may_overlap(p, Some((i64::MIN, i64::MAX))));
        // An inverted job range holds nothing.
        assert!(!may_overlap(p, Some((MAY1 + 10, MAY1))));
    }
}
