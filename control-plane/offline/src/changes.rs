//! Which entities an incremental run must recompute: those whose features as of `now` may
//! differ from what they were as of the last run (`since`). For a plain view that is every
//! entity with a new row. An aggregating view also changes with time alone: an event leaves
//! a window (`since - w < e <= now - w`), or a whole-unit `recency`/`age` ticks over. Every
//! other entity's aggregates read exactly the same events and the same clock reading, so its
//! values are unchanged and the live chain keeps serving them.

use fstore_snapshot::FeatureType;
use fstore_spec::{Aggregation, FeatureView};

use crate::pit::Group;

fn micros(seconds: u64) -> i64 {
    i64::try_from(seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

/// A value that moves with the clock: the time since the latest (`recency`) or earliest
/// (`age`) event in a window, in whole units.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Clock {
    latest: bool,
    window: Option<i64>,
    unit: i64,
}

/// What makes an entity's features change between two evaluation times.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Changes {
    since: i64,
    now: i64,
    /// Every window length, in µs.
    windows: Vec<i64>,
    clocks: Vec<Clock>,
    /// A fractional `recency`/`age` changes at every instant: every entity with an event.
    every_entity: bool,
}

impl Changes {
    pub fn of(view: &FeatureView, since: i64, now: i64) -> Self {
        let mut c = Changes {
            since,
            now,
            windows: Vec::new(),
            clocks: Vec::new(),
            every_entity: false,
        };
        for f in &view.features {
            let Some(agg) = f.aggregation else {
                continue;
            };
            let window = f.window_seconds.map(micros);
            if let Some(w) = window
                && !c.windows.contains(&w)
            {
                c.windows.push(w);
            }
            if matches!(agg, Aggregation::Recency | Aggregation::Age) {
                if f.ty != FeatureType::Int64 {
                    c.every_entity = true;
                }
                c.clocks.push(Clock {
                    latest: agg == Aggregation::Recency,
                    window,
                    unit: micros(f.unit_seconds.unwrap_or(86_400)).max(1),
                });
            }
        }
        c
    }

    /// Whether `g`'s features may differ between `since` and `now`. `new_row` tells rows read
    /// from files the last run had not read.
    pub fn affected(&self, g: &Group<'_>, new_row: &dyn Fn(u32) -> bool) -> bool {
        if g.rows.iter().any(|&r| new_row(r)) {
            return true;
        }
        let count_in = |lo: i64, hi: i64| {
            // Events e with lo < e <= hi; events are sorted.
            let a = g.events.partition_point(|&e| e <= lo);
            let b = g.events.partition_point(|&e| e <= hi);
            b > a
        };
        // An event the last run saw as future and is now due (its files were read before).
        if count_in(self.since, self.now) {
            return true;
        }
        if self
            .windows
            .iter()
            .any(|&w| count_in(self.since.saturating_sub(w), self.now.saturating_sub(w)))
        {
            return true;
        }
        let any_event = g.events.first().is_some_and(|&e| e <= self.now);
        if self.every_entity {
            return any_event;
        }
        self.clocks.iter().any(|c| {
            // The same reference event at both times (nothing entered or left the window, or
            // we returned above), so only the clock moved.
            let lo = c.window.map_or(i64::MIN, |w| self.now.saturating_sub(w));
            let a = g.events.partition_point(|&e| e <= lo);
            let b = g.events.partition_point(|&e| e <= self.now);
            let in_window = &g.events[a..b];
            let at = if c.latest {
                in_window.last()
            } else {
                in_window.first()
            };
            at.is_some_and(|&e| {
                self.now.saturating_sub(e).div_euclid(c.unit)
                    != self.since.saturating_sub(e).div_euclid(c.unit)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn view(yaml_features: &str) -> FeatureView {
        let text = format!(
            "entities:\n  - name: c\n    join_keys: [{{name: id, type: int64}}]\nsources:\n  - name: s\n    path: /tmp/x.parquet\n    timestamp_field: ts\nfeature_views:\n  - name: v\n    entities: [c]\n    source: s\n    features:\n{yaml_features}"
        );
        let d = fstore_spec::parse_features_yaml(&text, None).expect("valid");
        d.feature_views[0].clone()
    }

    fn group<'a>(rows: &'a [u32], events: &'a [i64]) -> Group<'a> {
        Group {
            rows,
            events,
            start: 0,
        }
    }

    #[test]
    fn windows_and_clocks() {
        let v = view(
            "      - {name: n7, type: int64, aggregation: count, window: 7d}\n      - {name: r, type: int64, aggregation: recency}\n",
        );
        let since = 100 * DAY;
        let old = |_: u32| false;
        // Run again one hour later.
        let c = Changes::of(&v, since, since + DAY / 24);
        // An event 7 days before `since` leaves the window in that hour.
        assert!(c.affected(&group(&[0], &[since - 7 * DAY + 60_000_000]), &old));
        // One well inside it, 3.5 days old: neither window nor whole-day recency moves...
        assert!(!c.affected(&group(&[0], &[since - 3 * DAY - DAY / 2]), &old));
        // ...unless the day ticks over within the hour.
        assert!(c.affected(&group(&[0], &[since - 3 * DAY + DAY / 48]), &old));
        // A row from a new file, and an event that has come due.
        assert!(c.affected(&group(&[5], &[since - 3 * DAY - DAY / 2]), &|r| r == 5));
        assert!(c.affected(&group(&[0], &[since + 60_000_000]), &old));
        // Fractional recency moves for everyone.
        let f = view("      - {name: r, type: float64, aggregation: recency}\n");
        assert!(Changes::of(&f, since, since + 1).affected(&group(&[0], &[0]), &old));
        // A plain view changes only with new rows.
        let p = view("      - {name: x, type: int64}\n");
        let c = Changes::of(&p, since, since + DAY);
        assert!(!c.affected(&group(&[0], &[since - DAY]), &old));
    }
}
