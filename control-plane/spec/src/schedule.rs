//! When the control plane's scheduler materializes a feature view: an interval aligned to the
//! Unix epoch, or a 5-field cron expression evaluated in UTC.
//!
//! A cron expression none of whose days exists (`0 0 30 2 *`) is refused when it is parsed, so
//! every parsed schedule fires again and `next_after` always finds the next time.

use std::fmt;

use fstore_snapshot::civil_from_days;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{format_duration, parse_duration};

const MICROS_PER_MINUTE: i64 = 60_000_000;
const MINUTES_PER_DAY: i64 = 1_440;
/// Days in the 400-year Gregorian cycle. It is a whole number of weeks, so dates and weekdays
/// repeat after it: a day that matches nowhere within it matches nowhere at all.
const CYCLE_DAYS: i64 = 146_097;

/// When a view is materialized by the control plane's scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every `seconds` (at least 1), at the multiples of it since the Unix epoch.
    Every {
        /// The interval, in seconds.
        seconds: u64,
    },
    /// At the minutes a cron expression selects, in UTC.
    Cron(Cron),
}

impl Schedule {
    /// Parses an interval in [`parse_duration`] syntax (`30s`, `15m`, `1h`, `1d`; at least
    /// one second) or a 5-field cron expression (`0 */6 * * *`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err(
                "the schedule is empty; write an interval such as `15m` or a cron expression such as `0 */6 * * *`"
                    .into(),
            );
        }
        if s.contains(char::is_whitespace) {
            return Cron::parse(s).map(Schedule::Cron);
        }
        match parse_duration(s)? {
            0 => Err(format!("`{s}`: an interval must be at least 1 second")),
            seconds => Ok(Schedule::Every { seconds }),
        }
    }

    /// The first fire time strictly after `after_micros` (µs since the Unix epoch, UTC).
    /// Intervals are aligned to the epoch (fire at multiples of the interval), so every replica
    /// of the control plane computes the same slots — they are used to deduplicate scheduled
    /// runs. Times past the end of `i64` come back as `i64::MAX`.
    pub fn next_after(&self, after_micros: i64) -> i64 {
        match self {
            Schedule::Every { seconds } => {
                // The variant is public, so a zero interval can be built by hand; treat it as
                // one second rather than divide by zero. i128 holds any u64 of seconds in µs.
                let step = i128::from((*seconds).max(1)) * 1_000_000;
                let next = (i128::from(after_micros).div_euclid(step) + 1) * step;
                i64::try_from(next).unwrap_or(i64::MAX)
            }
            Schedule::Cron(cron) => cron.next_after(after_micros),
        }
    }
}

impl fmt::Display for Schedule {
    /// The text [`Schedule::parse`] reads back: `15m`, or the cron fields joined by one space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every { seconds } => f.write_str(&format_duration(*seconds)),
            Schedule::Cron(cron) => cron.fmt(f),
        }
    }
}

/// Stored as its text, so the registry holds `"15m"` or `"0 */6 * * *"`.
impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Schedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A 5-field cron expression (minute, hour, day of month, month, day of week), read with
/// Vixie cron's rules. Built by [`Schedule::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// The fields, lowercased and joined by one space: what `Display` gives back.
    text: String,
    /// In each set, bit `n` stands for value `n`.
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    /// Bit 0 is Sunday; a written 7 is folded into it.
    weekdays: u64,
    /// Vixie cron's rule: when neither day field starts with `*`, a day matching either one
    /// fires; otherwise it must match both (so `*/2` in one of them still narrows the other).
    days_or_weekdays: bool,
}

/// What one cron field accepts.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names standing for `min`, `min + 1`, ...
    names: &'static [&'static str],
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

impl Cron {
    fn parse(expr: &str) -> Result<Self, String> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let text = fields.join(" ").to_ascii_lowercase();
        let [minute, hour, day, month, weekday] = fields.as_slice() else {
            return Err(format!(
                "`{text}` has {} fields; a cron expression has 5: minute hour day-of-month month day-of-week",
                fields.len()
            ));
        };
        let field = |i: usize, f: &str| parse_field(&FIELDS[i], &f.to_ascii_lowercase(), &text);
        let sunday_twice = 1 << 7;
        let mut weekdays = field(4, weekday)?;
        if weekdays & sunday_twice != 0 {
            weekdays = (weekdays & !sunday_twice) | 1;
        }
        let cron = Cron {
            minutes: field(0, minute)?,
            hours: field(1, hour)?,
            days: field(2, day)?,
            months: field(3, month)?,
            weekdays,
            days_or_weekdays: !day.starts_with('*') && !weekday.starts_with('*'),
            text,
        };
        // With the OR rule every month has each weekday, so only the AND rule can select no
        // day at all: when none of the months has any of the days of the month.
        // 2000 is a leap year, so February counts its 29th.
        let some_day = (1..=12).any(|m: u32| {
            let month_days = (2u64 << days_in_month(2000, m)) - 2;
            cron.months & 1 << m != 0 && cron.days & month_days != 0
        });
        if !cron.days_or_weekdays && !some_day {
            return Err(format!(
                "`{}` never fires: none of its months has any of its days of the month",
                cron.text
            ));
        }
        Ok(cron)
    }

    fn next_after(&self, after_micros: i64) -> i64 {
        // Fire times are whole minutes: the first candidate is the minute after the one
        // holding `after_micros`, which is strictly after it even on a boundary.
        let first = after_micros.div_euclid(MICROS_PER_MINUTE) + 1;
        let mut day = first.div_euclid(MINUTES_PER_DAY);
        let mut from = first.rem_euclid(MINUTES_PER_DAY);
        let last_day = day + CYCLE_DAYS;
        while day <= last_day {
            let (year, month, dom) = civil_from_days(day);
            if self.months & 1 << month == 0 {
                day += i64::from(days_in_month(year, month) - dom + 1);
                from = 0;
                continue;
            }
            // 1970-01-01, day 0, was a Thursday.
            let weekday = (day + 4).rem_euclid(7);
            if self.day_matches(dom, weekday)
                && let Some(minute) = self.first_minute_from(from)
            {
                return (day * MINUTES_PER_DAY + minute)
                    .checked_mul(MICROS_PER_MINUTE)
                    .unwrap_or(i64::MAX);
            }
            day += 1;
            from = 0;
        }
        // Not reached: parse refuses expressions with no day, and one that has a day has it
        // within every 400-year cycle.
        i64::MAX
    }

    fn day_matches(&self, dom: u32, weekday: i64) -> bool {
        let by_day = self.days & 1 << dom != 0;
        let by_weekday = self.weekdays & 1 << weekday != 0;
        if self.days_or_weekdays {
            by_day || by_weekday
        } else {
            by_day && by_weekday
        }
    }

    /// The first selected minute of a day at or after minute-of-day `from`.
    fn first_minute_from(&self, from: i64) -> Option<i64> {
        (from / 60..24)
            .filter(|h| self.hours & 1 << h != 0)
            .find_map(|h| {
                let start = if h == from / 60 { from % 60 } else { 0 };
                let later = self.minutes >> start;
                (later != 0).then(|| h * 60 + start + i64::from(later.trailing_zeros()))
            })
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The values one field selects, as a bit set. `expr` is the whole expression, for messages.
fn parse_field(spec: &FieldSpec, field: &str, expr: &str) -> Result<u64, String> {
    let name = spec.name;
    let mut bits = 0;
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(spec, a, expr)?, value(spec, b, expr)?)
        } else if step.is_some() {
            // Some crons read `5/15` as `5-59/15`, others refuse it; asking for the range
            // leaves no doubt.
            return Err(format!(
                "`{expr}`: {name} `{item}`: a step needs a range or `*`, e.g. `{range}-{}/…` or `*/…`",
                spec.max
            ));
        } else {
            let v = value(spec, range, expr)?;
            (v, v)
        };
        if lo > hi {
            return Err(format!("`{expr}`: {name} range `{range}` runs backwards"));
        }
        let step =
            match step {
                None => 1,
                Some(s) => s.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("`{expr}`: {name} step `{s}` is not a positive number")
                })?,
            };
        for v in (lo..=hi).step_by(step) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

/// One value of a field: a number within its bounds, or a name.
fn value(spec: &FieldSpec, s: &str, expr: &str) -> Result<u32, String> {
    let name = spec.name;
    if s.is_empty() {
        return Err(format!("`{expr}`: {name} is missing a value"));
    }
    if let Some(i) = spec.names.iter().position(|n| *n == s) {
        // At most twelve names, so the index fits.
        return Ok(spec.min + i as u32);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(match (spec.names.first(), spec.names.last()) {
            (Some(first), Some(last)) => {
                format!("`{expr}`: {name} `{s}` is not a number or a name ({first}-{last})")
            }
            _ => format!("`{expr}`: {name} `{s}` is not a number"),
        });
    }
    match s.parse::<u32>() {
        Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{expr}`: {name} {s} is outside {}-{}",
            spec.min, spec.max
        )),
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Schedule {
        Schedule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn rfc3339(micros: i64) -> String {
        let mut out = Vec::new();
        fstore_snapshot::format_rfc3339_micros(micros, &mut out);
        String::from_utf8(out).expect("ASCII")
    }

    /// Checks `next_after`, naming the times in RFC 3339 when it is wrong.
    fn next(s: &str, after: i64, want: i64) {
        let got = parse(s).next_after(after);
        assert_eq!(
            got,
            want,
            "`{s}` after {}: got {}, want {}",
            rfc3339(after),
            rfc3339(got),
            rfc3339(want)
        );
    }

    #[test]
    fn parses_intervals_and_cron() {
        assert_eq!(parse("15m"), Schedule::Every { seconds: 900 });
        assert_eq!(parse(" 30s "), Schedule::Every { seconds: 30 });
        assert_eq!(parse("1d"), Schedule::Every { seconds: 86_400 });
        for s in [
            "* * * * *",
            "*/15 * * * *",
            "0 */6 * * *",
            "30 9 * * mon-fri",
            "0 0 1,15 jan-jun,DEC 0,7",
            "5-55/10 8-18/2 1-7 * 1-5",
            "0 0 29 2 *",
            // The OR rule: fires on Mondays in February though there is no 30th.
            "0 0 30 2 mon",
        ] {
            assert!(matches!(parse(s), Schedule::Cron(_)), "{s}");
        }
    }

    #[test]
    fn refuses_bad_input_with_clear_messages() {
        for (s, want) in [
            ("", "the schedule is empty"),
            ("0s", "`0s`: an interval must be at least 1 second"),
            ("0", "`0`: an interval must be at least 1 second"),
            ("15x", "unknown unit `x`"),
            ("0 25 * * *", "`0 25 * * *`: hour 25 is outside 0-23"),
            ("60 * * * *", "`60 * * * *`: minute 60 is outside 0-59"),
            ("* * 0 * *", "day-of-month 0 is outside 1-31"),
            ("* * * 13 *", "month 13 is outside 1-12"),
            ("* * * * 8", "day-of-week 8 is outside 0-7"),
            ("0 * * *", "`0 * * *` has 4 fields; a cron expression has 5"),
            ("0 0 * * * *", "has 6 fields"),
            ("*/0 * * * *", "minute step `0` is not a positive number"),
            ("*/x * * * *", "minute step `x` is not a positive number"),
            ("5-3 * * * *", "minute range `5-3` runs backwards"),
            ("5/15 * * * *", "a step needs a range or `*`, e.g. `5-59/…`"),
            ("1,,2 * * * *", "minute is missing a value"),
            ("-1 * * * *", "minute is missing a value"),
            ("x * * * *", "minute `x` is not a number"),
            (
                "0 0 * * funday",
                "day-of-week `funday` is not a number or a name (sun-sat)",
            ),
            (
                "0 0 * foo *",
                "month `foo` is not a number or a name (jan-dec)",
            ),
            ("0 0 30 2 *", "`0 0 30 2 *` never fires"),
            ("0 0 31 apr,jun,sep,nov *", "never fires"),
            // `*/2` in the day of week keeps the AND rule, so February 30 is still required.
            ("0 0 30 2 */2", "never fires"),
        ] {
            let e = Schedule::parse(s).expect_err(s);
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn intervals_fire_at_multiples_since_the_epoch() {
        // 2025-06-15T12:34:56Z → 2025-06-15T12:45:00Z
        next("15m", 1_749_990_896_000_000, 1_749_991_500_000_000);
        // Exactly on a slot: 2025-06-15T12:45:00Z → 2025-06-15T13:00:00Z
        next("15m", 1_749_991_500_000_000, 1_749_992_400_000_000);
        // One µs before a slot: 2025-06-15T12:44:59.999999Z → 2025-06-15T12:45:00Z
        next("15m", 1_749_991_499_999_999, 1_749_991_500_000_000);
        // Aligned to the epoch, not the hour: 7 minutes (420 s) divides 1749990900 s.
        // 2025-06-15T12:34:56Z → 2025-06-15T12:35:00Z → 2025-06-15T12:42:00Z
        next("7m", 1_749_990_896_000_000, 1_749_990_900_000_000);
        next("7m", 1_749_990_900_000_000, 1_749_991_320_000_000);
        // Days start at midnight UTC: 2025-06-15T12:34:56Z → 2025-06-16T00:00:00Z
        next("1d", 1_749_990_896_000_000, 1_750_032_000_000_000);
        // Before the epoch: 1969-12-31T23:59:59.999999Z → 1970-01-01T00:00:00Z
        next("1h", -1, 0);
        assert_eq!(parse("1s").next_after(i64::MAX), i64::MAX);
        assert_eq!(Schedule::Every { seconds: 0 }.next_after(0), 1_000_000);
    }

    #[test]
    fn cron_every_minute_and_steps() {
        // 2025-06-15T12:34:56.789Z → 2025-06-15T12:35:00Z
        next("* * * * *", 1_749_990_896_789_000, 1_749_990_900_000_000);
        // Strictly after: 2025-06-15T12:35:00Z → 2025-06-15T12:36:00Z
        next("* * * * *", 1_749_990_900_000_000, 1_749_990_960_000_000);
        // 2025-06-15T12:34:56Z → 2025-06-15T12:45:00Z
        next("*/15 * * * *", 1_749_990_896_000_000, 1_749_991_500_000_000);
        // 2025-06-15T12:45:00Z → 2025-06-15T13:00:00Z
        next("*/15 * * * *", 1_749_991_500_000_000, 1_749_992_400_000_000);
        // 2025-06-15T23:50:00Z → 2025-06-16T00:00:00Z
        next("*/15 * * * *", 1_750_031_400_000_000, 1_750_032_000_000_000);
        // 2025-06-15T12:00:00Z → 2025-06-15T18:00:00Z
        next("0 */6 * * *", 1_749_988_800_000_000, 1_750_010_400_000_000);
        // 2025-06-15T18:00:01Z → 2025-06-16T00:00:00Z
        next("0 */6 * * *", 1_750_010_401_000_000, 1_750_032_000_000_000);
    }

    #[test]
    fn cron_days_of_week() {
        // Friday 2025-06-13T09:00:00Z → Friday 2025-06-13T09:30:00Z
        next(
            "30 9 * * mon-fri",
            1_749_805_200_000_000,
            1_749_807_000_000_000,
        );
        // Over the weekend: Friday 2025-06-13T10:00:00Z → Monday 2025-06-16T09:30:00Z
        next(
            "30 9 * * mon-fri",
            1_749_808_800_000_000,
            1_750_066_200_000_000,
        );
        next("30 9 * * 1-5", 1_749_808_800_000_000, 1_750_066_200_000_000);
        // 7 is Sunday too: Friday 2025-06-13T10:00:00Z → Sunday 2025-06-15T00:00:00Z
        next("0 0 * * 7", 1_749_808_800_000_000, 1_749_945_600_000_000);
        next("0 0 * * SUN", 1_749_808_800_000_000, 1_749_945_600_000_000);
    }

    #[test]
    fn cron_day_of_month_or_day_of_week() {
        // Both restricted: the 1st or a Monday, whichever comes first.
        // Tuesday 2025-06-24T12:00:00Z → Monday 2025-06-30T00:00:00Z
        next("0 0 1 * mon", 1_750_766_400_000_000, 1_751_241_600_000_000);
        // Monday 2025-06-30T00:00:00Z → Tuesday 2025-07-01T00:00:00Z
        next("0 0 1 * mon", 1_751_241_600_000_000, 1_751_328_000_000_000);
        // `*/2` starts with `*`, so (as in Vixie cron) both must match: an odd day that is a
        // Monday. Tuesday 2025-06-24T12:00:00Z → Monday 2025-07-07T00:00:00Z
        next(
            "0 0 */2 * mon",
            1_750_766_400_000_000,
            1_751_846_400_000_000,
        );
    }

    #[test]
    fn cron_months_and_years_roll_over() {
        // 2025-06-15T12:34:56Z → 2025-07-01T00:00:00Z
        next("0 0 1 * *", 1_749_990_896_000_000, 1_751_328_000_000_000);
        // June has no 31st: 2025-06-01T00:00:00Z → 2025-07-31T00:00:00Z
        next("0 0 31 * *", 1_748_736_000_000_000, 1_753_920_000_000_000);
        // 2025-06-15T12:34:56Z → 2026-01-01T00:00:00Z
        next("0 0 1 1 *", 1_749_990_896_000_000, 1_767_225_600_000_000);
        next("0 0 1 jan *", 1_749_990_896_000_000, 1_767_225_600_000_000);
        // 2025-12-31T23:59:30Z → 2026-01-01T00:00:00Z
        next("0 0 1 1 *", 1_767_225_570_000_000, 1_767_225_600_000_000);
    }

    #[test]
    fn cron_february_29_waits_for_a_leap_year() {
        // 2025-03-01T00:00:00Z → 2028-02-29T00:00:00Z
        next("0 0 29 2 *", 1_740_787_200_000_000, 1_835_395_200_000_000);
        // 2100 is not a leap year: 2096-03-01T00:00:00Z → 2104-02-29T00:00:00Z
        next("0 0 29 2 *", 3_981_398_400_000_000, 4_233_686_400_000_000);
        // Past the end of i64 time.
        assert_eq!(parse("* * * * *").next_after(i64::MAX), i64::MAX);
    }

    #[test]
    fn display_round_trips() {
        for (s, shown) in [
            ("15m", "15m"),
            ("90s", "90s"),
            ("60m", "1h"),
            ("14d", "2w"),
            ("  0  */6 * *\t* ", "0 */6 * * *"),
            ("30 9 * * MON-FRI", "30 9 * * mon-fri"),
        ] {
            let schedule = parse(s);
            assert_eq!(schedule.to_string(), shown, "{s}");
            assert_eq!(parse(shown), schedule, "{s}");
        }
    }

    #[test]
    fn serializes_as_its_text() {
        let json = serde_json::to_string(&parse("0 */6 * * *")).expect("json");
        assert_eq!(json, r#""0 */6 * * *""#);
        let back: Schedule = serde_json::from_str(r#""15m""#).expect("schedule");
        assert_eq!(back, Schedule::Every { seconds: 900 });
        let bad = serde_json::from_str::<Schedule>(r#""0 25 * * *""#).expect_err("bad hour");
        assert!(bad.to_string().contains("hour 25"), "{bad}");
    }
}
