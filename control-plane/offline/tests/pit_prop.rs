//! The point-in-time join against the plainest possible reference: for each entity row, scan
//! every feature row. Random small tables with many ties, equal timestamps, ttl edges,
//! duplicate entity rows, keys missing from the table and nulls everywhere they may occur.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampMicrosecondArray};
use fstore_offline::{EventIndex, concat_columns, gather, point_in_time_join};
use proptest::prelude::*;
use proptest::sample::Index;

/// Which join-key columns the view has.
#[derive(Debug, Clone, Copy)]
enum Keys {
    Int,
    Str,
    IntStr,
}

/// One key as generated; only the parts the view has are used.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    int: Option<i64>,
    text: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct FeatureRow {
    key: Key,
    event: Option<i64>,
    created: Option<i64>,
}

#[derive(Debug, Clone)]
struct EntityRow {
    key: Key,
    t: Option<i64>,
}

#[derive(Debug, Clone)]
struct Case {
    keys: Keys,
    table: Vec<FeatureRow>,
    has_created: bool,
    entities: Vec<EntityRow>,
    ttl: i64,
    /// Where the table is cut into two batches.
    split: Index,
    /// Int keys spread far apart (see `SPREAD`), so they are hashed rather than looked up in a
    /// dense table.
    spread: bool,
}

/// Where int key k lands when spread: far apart, and at both extremes (the table's keys are
/// 0..3, the entities' 0..4).
const SPREAD: [i64; 4] = [i64::MIN, -1, i64::MAX, 1 << 40];

fn key(ints: i64, texts: &'static [&'static str]) -> impl Strategy<Value = Key> {
    (
        prop_oneof![1 => Just(None), 9 => (0..ints).prop_map(Some)],
        prop_oneof![1 => Just(None), 9 => prop::sample::select(texts).prop_map(Some)],
    )
        .prop_map(|(int, text)| Key { int, text })
}

/// Mostly a handful of nearby instants, so that ties and ttl edges are common; sometimes the
/// extremes, to catch overflow at the ttl bound.
fn instant(max: i64) -> impl Strategy<Value = i64> {
    prop_oneof![
        20 => 0..max,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let keys = prop_oneof![Just(Keys::Int), Just(Keys::Str), Just(Keys::IntStr)];
    let feature = (
        key(3, &["a", "b", ""]),
        prop_oneof![1 => Just(None), 9 => instant(8).prop_map(Some)],
        // i64::MIN: a present created time as low as it gets still beats a missing one.
        prop_oneof![
            4 => Just(None),
            12 => (0..3i64).prop_map(Some),
            1 => Just(Some(i64::MIN)),
        ],
    )
        .prop_map(|(key, event, created)| FeatureRow {
            key,
            event,
            created,
        });
    // A slightly wider key space than the table's, so some entities are missing from it.
    let entity = (
        key(4, &["a", "b", "", "c"]),
        prop_oneof![1 => Just(None), 12 => instant(12).prop_map(Some)],
    )
        .prop_map(|(key, t)| EntityRow { key, t });
    (
        keys,
        prop::collection::vec(feature, 0..25),
        any::<bool>(),
        prop::collection::vec(entity, 0..25),
        prop::collection::vec(any::<Index>(), 0..6),
        prop_oneof![Just(0i64), 1..5i64, Just(i64::MAX)],
        (any::<Index>(), any::<bool>()),
    )
        .prop_map(
            |(keys, table, has_created, mut entities, dups, ttl, (split, spread))| {
                // Explicit duplicate entity rows, appended after their originals.
                if !entities.is_empty() {
                    for d in dups {
                        entities.push(entities[d.index(entities.len())].clone());
                    }
                }
                Case {
                    keys,
                    table,
                    has_created,
                    entities,
                    ttl,
                    split,
                    spread,
                }
            },
        )
}

/// Key equality under the view's key columns; a key with a null part equals nothing.
fn same_key(keys: Keys, a: &Key, b: &Key) -> bool {
    let int = a.int.is_some() && a.int == b.int;
    let text = a.text.is_some() && a.text == b.text;
    match keys {
        Keys::Int => int,
        Keys::Str => text,
        Keys::IntStr => int && text,
    }
}

/// The rule, written out: among the feature rows with the entity's key and
/// `t - ttl <= event <= t` (no lower bound when ttl is 0), the greatest (event, created), a
/// missing created time below any present one (Rust orders `None` before `Some`), and among
/// rows equal on both the last one in the table.
fn reference(c: &Case) -> Vec<Option<usize>> {
    let mut answers = Vec::new();
    for e in &c.entities {
        let mut best: Option<(i64, Option<i64>, usize)> = None;
        if let Some(t) = e.t {
            for (row, f) in c.table.iter().enumerate() {
                let Some(event) = f.event else { continue };
                if !same_key(c.keys, &e.key, &f.key) || event > t {
                    continue;
                }
                if c.ttl > 0 && (event as i128) < (t as i128) - (c.ttl as i128) {
                    continue;
                }
                let created = if c.has_created { f.created } else { None };
                let better = match best {
                    None => true,
                    // `>=`: rows are visited in table order, so an equal later row replaces.
                    Some((be, bc, _)) => (event, created) >= (be, bc),
                };
                if better {
                    best = Some((event, created, row));
                }
            }
        }
        answers.push(best.map(|(_, _, row)| row));
    }
    answers
}

fn key_columns(keys: Keys, spread: bool, rows: &[&Key]) -> Vec<ArrayRef> {
    let int = |k: i64| if spread { SPREAD[k as usize] } else { k };
    let ints: ArrayRef = Arc::new(Int64Array::from(
        rows.iter().map(|k| k.int.map(int)).collect::<Vec<_>>(),
    ));
    let texts: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|k| k.text).collect::<Vec<_>>(),
    ));
    match keys {
        Keys::Int => vec![ints],
        Keys::Str => vec![texts],
        Keys::IntStr => vec![ints, texts],
    }
}

fn times(v: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v.collect::<Vec<_>>()))
}

/// A feature value per table row: the row number, and a label that is null on every fifth.
fn label(row: usize) -> Option<String> {
    (row % 5 != 4).then(|| format!("r{row}"))
}

fn run(c: &Case) -> Result<(), TestCaseError> {
    // The table as columns: keys, event, created, then two features.
    let key_refs: Vec<&Key> = c.table.iter().map(|f| &f.key).collect();
    let mut columns = key_columns(c.keys, c.spread, &key_refs);
    let nkeys = columns.len();
    columns.push(times(c.table.iter().map(|f| f.event)));
    columns.push(times(c.table.iter().map(|f| f.created)));
    columns.push(Arc::new(Int64Array::from_iter_values(
        (0..c.table.len()).map(|r| r as i64),
    )));
    columns.push(Arc::new(StringArray::from(
        (0..c.table.len()).map(label).collect::<Vec<_>>(),
    )));

    // Delivered as two batches, joined back into one.
    let cut = c.split.index(c.table.len() + 1);
    let first: Vec<ArrayRef> = columns.iter().map(|a| a.slice(0, cut)).collect();
    let second: Vec<ArrayRef> = columns
        .iter()
        .map(|a| a.slice(cut, a.len() - cut))
        .collect();
    let table = concat_columns(&[first, second]).map_err(|e| TestCaseError::fail(e.to_string()))?;

    let event = table[nkeys].as_primitive();
    let created = c.has_created.then(|| table[nkeys + 1].as_primitive());
    let index = EventIndex::build(&table[..nkeys], event, created)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;

    let entity_refs: Vec<&Key> = c.entities.iter().map(|e| &e.key).collect();
    let entity_keys = key_columns(c.keys, c.spread, &entity_refs);
    let entity_ts = times(c.entities.iter().map(|e| e.t));
    let joined = point_in_time_join(&index, &entity_keys, entity_ts.as_primitive(), c.ttl)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;

    let expected = reference(c);
    let got: Vec<Option<usize>> = joined.iter().map(|r| r.map(|r| r as usize)).collect();
    prop_assert_eq!(&got, &expected);

    let skipped = c
        .table
        .iter()
        .filter(|f| {
            f.event.is_none()
                || match c.keys {
                    Keys::Int => f.key.int.is_none(),
                    Keys::Str => f.key.text.is_none(),
                    Keys::IntStr => f.key.int.is_none() || f.key.text.is_none(),
                }
        })
        .count();
    prop_assert_eq!(index.skipped(), skipped as u64);

    let out =
        gather(&table[nkeys + 2..], &joined).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let ids = out[0].as_primitive::<arrow::datatypes::Int64Type>();
    let labels = out[1].as_string::<i32>();
    prop_assert_eq!(ids.len(), c.entities.len());
    prop_assert_eq!(labels.len(), c.entities.len());
    for (i, want) in expected.iter().enumerate() {
        prop_assert_eq!(ids.is_valid(i).then(|| ids.value(i) as usize), *want);
        let want_label = want.and_then(label);
        prop_assert_eq!(
            labels.is_valid(i).then(|| labels.value(i).to_string()),
            want_label
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn join_matches_the_reference(c in case()) {
        run(&c)?;
    }
}
