//! Point-in-time join: for each entity row (key, timestamp), the feature row that was the
//! latest known for that key at that moment.
//!
//! The rule, exactly: entity row (k, t) gets the feature row with key k whose event time e
//! satisfies `t - ttl <= e <= t` (both bounds inclusive; ttl 0 means no lower bound) and that
//! is greatest by (event time, created time), a null created time ranking below every non-null
//! one. Rows that tie on both come from the same event re-written, so the one written last
//! (highest row number in the table) wins: the later-written correction wins. An entity row
//! whose key or timestamp is null, or that has no candidate, gets no match. Entity rows are
//! never dropped, duplicated or reordered. Feature rows whose key or event time is null can
//! never match and are skipped (and counted).
//!
//! Keys are compared by their canonical [`KeyBuf`] encoding, so a composite key of int64 and
//! string columns joins exactly like the online store looks it up.
//!
//! Layout: the feature rows are grouped by key in one flat vector (offsets per group, CSR),
//! each group sorted by (event, created, row), with the event times alongside. A lookup is one
//! hash probe and one binary search; the winner is the last row with event ≤ t.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampMicrosecondArray, UInt32Array,
    new_null_array,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow::datatypes::DataType;
use fstore_snapshot::KeyBuf;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::OfflineError;

/// Marks "no group" (skipped feature row) and "no match" (entity row) in the working vectors;
/// row numbers are kept below it.
const NONE: u32 = u32::MAX;

/// Below this many rows (entity rows to join, rows to gather or concatenate) a second thread
/// costs more than it saves. Above it, two threads took the 1,000,000-row benchmark's join from
/// about 65 to 50 ms, its gather from 190 to 100 ms and its concatenation from 95 to 50 ms.
const PARALLEL_MIN_ROWS: usize = 1 << 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Int64,
    Utf8,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            KeyKind::Int64 => "Int64",
            KeyKind::Utf8 => "Utf8",
        }
    }
}

/// A join-key column downcast once.
enum KeyCol<'a> {
    Int64(&'a Int64Array),
    Utf8(&'a StringArray),
}

impl KeyCol<'_> {
    fn kind(&self) -> KeyKind {
        match self {
            KeyCol::Int64(_) => KeyKind::Int64,
            KeyCol::Utf8(_) => KeyKind::Utf8,
        }
    }
}

fn key_cols<'a>(keys: &'a [ArrayRef], side: &str) -> Result<Vec<KeyCol<'a>>, OfflineError> {
    if keys.is_empty() {
        return Err(OfflineError::Join(format!("{side}: no join key columns")));
    }
    keys.iter()
        .enumerate()
        .map(|(i, k)| match k.data_type() {
            DataType::Int64 => Ok(KeyCol::Int64(k.as_primitive())),
            DataType::Utf8 => Ok(KeyCol::Utf8(k.as_string())),
            other => Err(OfflineError::Join(format!(
                "{side}: join key column {} has type {other}; normalize it to Int64 or Utf8 first",
                i + 1
            ))),
        })
        .collect()
}

/// Writes the key of `row` into `kb`; false when any part is null.
#[inline]
fn encode(cols: &[KeyCol<'_>], row: usize, kb: &mut KeyBuf) -> bool {
    kb.clear();
    for c in cols {
        match c {
            KeyCol::Int64(a) => {
                if a.is_null(row) {
                    return false;
                }
                kb.push_i64(a.value(row));
            }
            KeyCol::Utf8(a) => {
                if a.is_null(row) {
                    return false;
                }
                kb.push_str(a.value(row));
            }
        }
    }
    true
}

fn check_len(what: &str, len: usize, expected: usize) -> Result<(), OfflineError> {
    if len == expected {
        Ok(())
    } else {
        Err(OfflineError::Join(format!(
            "{what} has {len} rows, but the timestamp column has {expected}"
        )))
    }
}

/// xxh3 of a whole key in one call. `Xxh3Builder` goes through xxh3's streaming state, whose
/// setup and digest cost more than hashing a short key: with it, index build and join of the
/// benchmark with sparse int64 keys took 240 ms instead of 115 ms. (Keeping short keys inline
/// in the buckets, instead of boxed, did not help string keys measurably: the probe's cache
/// misses dominate either way.)
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    // Slices hash their length first; folding it into the seed saves a second xxh3 call.
    fn write_usize(&mut self, n: usize) {
        self.0 ^= n as u64;
    }
}

type KeyHash = BuildHasherDefault<KeyHasher>;

/// Key to group id. A lone int64 key (the common case: customer id) skips the encoding, and
/// when its values are dense (ids 1..n) a plain table replaces the hash map: the lookup is then
/// one load from a table small enough to stay in cache instead of two scattered ones.
enum Groups {
    /// `gids[k - min]`, `NONE` for absent keys.
    Dense {
        min: i64,
        gids: Vec<u32>,
    },
    Int64(HashMap<i64, u32, KeyHash>),
    Encoded(HashMap<Box<[u8]>, u32, KeyHash>),
}

impl Groups {
    #[inline]
    fn int(&self, k: i64) -> Option<u32> {
        match self {
            Groups::Dense { min, gids } => {
                let at = usize::try_from(k.checked_sub(*min)?).ok()?;
                gids.get(at).copied().filter(|&g| g != NONE)
            }
            Groups::Int64(map) => map.get(&k).copied(),
            Groups::Encoded(_) => None,
        }
    }
}

/// Slack for dense tables: small tables with a few scattered ids still get one.
const DENSE_SLACK: u64 = 4096;

/// Rows of a feature table grouped by entity key, each group sorted by (event, created, row).
pub struct EventIndex {
    kinds: Vec<KeyKind>,
    groups: Groups,
    /// Group g is `rows[offsets[g]..offsets[g + 1]]`.
    offsets: Vec<u32>,
    rows: Vec<u32>,
    /// Event time of each entry of `rows`.
    events: Vec<i64>,
    table_rows: usize,
    skipped: u64,
}

impl std::fmt::Debug for EventIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventIndex")
            .field("kinds", &self.kinds)
            .field("groups", &(self.offsets.len() - 1))
            .field("table_rows", &self.table_rows)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// The feature rows of one key, sorted by (event, created, row), with their event times.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub rows: &'a [u32],
    pub events: &'a [i64],
    /// Where the group starts in [`EventIndex::order`].
    pub start: usize,
}

impl Group<'_> {
    /// The row entity timestamp `t` gets under the join rule, if any (`ttl_micros` 0: no lower
    /// bound).
    #[inline]
    pub fn latest_at(&self, t: i64, ttl_micros: i64) -> Option<u32> {
        // Sorted by (event, created, row): the last row with event ≤ t beats every other
        // candidate, and if it is older than the ttl, so are they.
        let p = self.events.partition_point(|&e| e <= t);
        let last = p.checked_sub(1)?;
        if ttl_micros > 0 && self.events[last] < t.saturating_sub(ttl_micros) {
            return None;
        }
        Some(self.rows[last])
    }
}

impl EventIndex {
    /// Indexes a feature table. `keys` are the join-key columns already normalized to Int64 or
    /// Utf8 (see `columns::key_target`), `event` the event time, `created` the optional created
    /// time. Rows whose key or event time is null are skipped and counted.
    pub fn build(
        keys: &[ArrayRef],
        event: &TimestampMicrosecondArray,
        created: Option<&TimestampMicrosecondArray>,
    ) -> Result<Self, OfflineError> {
        let n = event.len();
        let cols = key_cols(keys, "feature table")?;
        for (i, k) in keys.iter().enumerate() {
            check_len(
                &format!("feature table join key column {}", i + 1),
                k.len(),
                n,
            )?;
        }
        if let Some(c) = created {
            check_len("feature table created timestamp column", c.len(), n)?;
        }
        if n >= NONE as usize {
            return Err(OfflineError::Join(format!(
                "feature table has {n} rows; at most {} can be joined at once",
                NONE - 1
            )));
        }

        // Pass 1: group id of every row, and the size of every group.
        let ev_nulls = event.nulls();
        let mut gid: Vec<u32> = Vec::with_capacity(n);
        let mut counts: Vec<u32> = Vec::new();
        let mut skipped = 0u64;
        // History usually holds several rows per key; a quarter avoids most regrowth.
        let capacity = (n / 4).max(16);
        // `g` is an existing group or the next new one.
        let count = |g: u32, counts: &mut Vec<u32>| -> u32 {
            if g as usize == counts.len() {
                counts.push(0);
            }
            counts[g as usize] += 1;
            g
        };
        let dense = match cols.as_slice() {
            [KeyCol::Int64(a)] => dense_range(a, event),
            _ => None,
        };
        let groups = match (cols.as_slice(), dense) {
            ([KeyCol::Int64(a)], Some((min, len))) => {
                let mut gids = vec![NONE; len];
                for (row, &k) in a.values().iter().enumerate() {
                    if a.is_null(row) || ev_nulls.is_some_and(|nb| nb.is_null(row)) {
                        skipped += 1;
                        gid.push(NONE);
                        continue;
                    }
                    // In range: `dense_range` saw every usable key.
                    let slot = &mut gids[(k - min) as usize];
                    if *slot == NONE {
                        *slot = counts.len() as u32;
                    }
                    gid.push(count(*slot, &mut counts));
                }
                Groups::Dense { min, gids }
            }
            ([KeyCol::Int64(a)], None) => {
                let mut map: HashMap<i64, u32, KeyHash> =
                    HashMap::with_capacity_and_hasher(capacity, KeyHash::default());
                let values = a.values();
                for (row, &k) in values.iter().enumerate() {
                    if a.is_null(row) || ev_nulls.is_some_and(|nb| nb.is_null(row)) {
                        skipped += 1;
                        gid.push(NONE);
                        continue;
                    }
                    let next = counts.len() as u32;
                    let g = *map.entry(k).or_insert(next);
                    gid.push(count(g, &mut counts));
                }
                Groups::Int64(map)
            }
            (_, _) => {
                let mut map: HashMap<Box<[u8]>, u32, KeyHash> =
                    HashMap::with_capacity_and_hasher(capacity, KeyHash::default());
                let mut kb = KeyBuf::new();
                for row in 0..n {
                    if !encode(&cols, row, &mut kb) || ev_nulls.is_some_and(|nb| nb.is_null(row)) {
                        skipped += 1;
                        gid.push(NONE);
                        continue;
                    }
                    let g = match map.get(kb.as_bytes()) {
                        Some(&g) => g,
                        None => {
                            let g = counts.len() as u32;
                            map.insert(kb.as_bytes().into(), g);
                            g
                        }
                    };
                    gid.push(count(g, &mut counts));
                }
                Groups::Encoded(map)
            }
        };

        // Pass 2: place rows into their group's slots (ascending row order within each).
        let mut offsets: Vec<u32> = Vec::with_capacity(counts.len() + 1);
        let mut total = 0u32;
        offsets.push(0);
        for &c in &counts {
            total += c;
            offsets.push(total);
        }
        let mut cursor: Vec<u32> = offsets[..counts.len()].to_vec();
        let mut rows = vec![0u32; total as usize];
        for (row, &g) in gid.iter().enumerate() {
            if g != NONE {
                let slot = &mut cursor[g as usize];
                rows[*slot as usize] = row as u32;
                *slot += 1;
            }
        }
        drop(gid);

        // Pass 3: order each group. Tables written in time order are already sorted, so the
        // check usually saves the sort.
        let ev = event.values();
        let created = created.map(|c| (c.values(), c.nulls()));
        let order = |&r: &u32| {
            let r_ = r as usize;
            // None < Some(_): a missing created time ranks below every present one.
            let c = created.and_then(|(v, nb)| match nb {
                Some(nb) if nb.is_null(r_) => None,
                _ => Some(v[r_]),
            });
            (ev[r_], c, r)
        };
        for w in offsets.windows(2) {
            let group = &mut rows[w[0] as usize..w[1] as usize];
            if !group.is_sorted_by_key(order) {
                group.sort_unstable_by_key(order);
            }
        }
        let events: Vec<i64> = rows.iter().map(|&r| ev[r as usize]).collect();

        Ok(EventIndex {
            kinds: cols.iter().map(KeyCol::kind).collect(),
            groups,
            offsets,
            rows,
            events,
            table_rows: n,
            skipped,
        })
    }

    /// The group of one key, given as its [`KeyBuf`] encoding.
    pub fn group(&self, key: &[u8]) -> Option<Group<'_>> {
        let g = match &self.groups {
            Groups::Encoded(map) => *map.get(key)?,
            ints => ints.int(i64::from_le_bytes(key.try_into().ok()?))?,
        };
        Some(self.group_at(g))
    }

    /// Every group, in the order their keys first appear in the table.
    pub fn iter(&self) -> impl Iterator<Item = Group<'_>> + '_ {
        (0..self.groups() as u32).map(|g| self.group_at(g))
    }

    #[inline]
    fn group_at(&self, g: u32) -> Group<'_> {
        let (s, e) = (
            self.offsets[g as usize] as usize,
            self.offsets[g as usize + 1] as usize,
        );
        Group {
            rows: &self.rows[s..e],
            events: &self.events[s..e],
            start: s,
        }
    }

    /// Every indexed row, group after group, each group in its sorted order: permuting a column
    /// by this makes each group's rows contiguous (see `aggregate::evaluate`).
    pub fn order(&self) -> &[u32] {
        &self.rows
    }

    /// Feature rows that can never match: null key or null event time.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Distinct keys.
    pub fn groups(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Rows of the indexed table, skipped ones included.
    pub fn table_rows(&self) -> usize {
        self.table_rows
    }

    /// Answers entity rows `start..start + out.len()` into `out` (`NONE` = no match).
    fn join_into(
        &self,
        cols: &[KeyCol<'_>],
        ts: &TimestampMicrosecondArray,
        ttl_micros: i64,
        start: usize,
        out: &mut [u32],
    ) {
        let tv = ts.values();
        let tn = ts.nulls();
        let ts_null = |row: usize| tn.is_some_and(|nb| nb.is_null(row));
        match (&self.groups, cols) {
            (Groups::Dense { .. } | Groups::Int64(_), [KeyCol::Int64(a)]) => {
                let kv = a.values();
                let kn = a.nulls();
                for (i, o) in out.iter_mut().enumerate() {
                    let row = start + i;
                    *o = if kn.is_some_and(|nb| nb.is_null(row)) || ts_null(row) {
                        NONE
                    } else {
                        self.groups
                            .int(kv[row])
                            .and_then(|g| self.group_at(g).latest_at(tv[row], ttl_micros))
                            .unwrap_or(NONE)
                    };
                }
            }
            (Groups::Encoded(map), _) => {
                let mut kb = KeyBuf::new();
                for (i, o) in out.iter_mut().enumerate() {
                    let row = start + i;
                    *o = if !encode(cols, row, &mut kb) || ts_null(row) {
                        NONE
                    } else {
                        map.get(kb.as_bytes())
                            .and_then(|&g| self.group_at(g).latest_at(tv[row], ttl_micros))
                            .unwrap_or(NONE)
                    };
                }
            }
            // Key kinds were checked against the index, which picks its map by them.
            _ => out.fill(NONE),
        }
    }
}

/// `(min, max - min + 1)` of the usable keys of a lone int64 key column when that span is at
/// most about one slot per feature row, so a dense table costs no more than the rows do.
fn dense_range(keys: &Int64Array, event: &TimestampMicrosecondArray) -> Option<(i64, usize)> {
    let ev_nulls = event.nulls();
    let mut bounds: Option<(i64, i64)> = None;
    for (row, &k) in keys.values().iter().enumerate() {
        if keys.is_null(row) || ev_nulls.is_some_and(|nb| nb.is_null(row)) {
            continue;
        }
        bounds = Some(match bounds {
            None => (k, k),
            Some((lo, hi)) => (lo.min(k), hi.max(k)),
        });
    }
    let (lo, hi) = bounds?;
    // In i128: the span of i64::MIN..=i64::MAX does not fit in 64 bits.
    let span = hi as i128 - lo as i128 + 1;
    (span <= keys.len() as i128 + DENSE_SLACK as i128).then_some((lo, span as usize))
}

/// For each entity row, the feature row it gets under the join rule (see the module
/// documentation), or null. The result has exactly one entry per entity row, in order.
///
/// `entity_keys` must have the index's key column types, in the same order; `ttl_micros` 0
/// means unbounded.
pub fn point_in_time_join(
    index: &EventIndex,
    entity_keys: &[ArrayRef],
    entity_ts: &TimestampMicrosecondArray,
    ttl_micros: i64,
) -> Result<UInt32Array, OfflineError> {
    if ttl_micros < 0 {
        return Err(OfflineError::Join(format!(
            "ttl is negative ({ttl_micros} µs); use 0 for unbounded"
        )));
    }
    let n = entity_ts.len();
    let cols = key_cols(entity_keys, "entity rows")?;
    if cols.len() != index.kinds.len() {
        return Err(OfflineError::Join(format!(
            "entity rows have {} join key columns, the feature table {}",
            cols.len(),
            index.kinds.len()
        )));
    }
    for (i, (c, k)) in cols.iter().zip(&index.kinds).enumerate() {
        if c.kind() != *k {
            return Err(OfflineError::Join(format!(
                "entity join key column {} is {}, the feature table's is {}",
                i + 1,
                c.kind().name(),
                k.name()
            )));
        }
    }
    for (i, k) in entity_keys.iter().enumerate() {
        check_len(&format!("entity join key column {}", i + 1), k.len(), n)?;
    }

    let mut out = vec![NONE; n];
    if n >= PARALLEL_MIN_ROWS {
        let (a, b) = out.split_at_mut(n / 2);
        let cols = &cols;
        std::thread::scope(|s| {
            s.spawn(|| index.join_into(cols, entity_ts, ttl_micros, n / 2, b));
            index.join_into(cols, entity_ts, ttl_micros, 0, a);
        });
    } else {
        index.join_into(&cols, entity_ts, ttl_micros, 0, &mut out);
    }

    let valid = BooleanBuffer::collect_bool(n, |i| out[i] != NONE);
    let nulls = NullBuffer::new(valid);
    // The value behind a null is never read, but keep it a valid row number for `take`.
    for o in out.iter_mut().filter(|o| **o == NONE) {
        *o = 0;
    }
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Ok(UInt32Array::new(ScalarBuffer::from(out), nulls))
}

/// Gathers feature columns by the join's row numbers: one output column per input column,
/// one row per entity row, null where there was no match.
pub fn gather(columns: &[ArrayRef], indices: &UInt32Array) -> Result<Vec<ArrayRef>, OfflineError> {
    let n = indices.len();
    if indices.null_count() == n {
        return Ok(columns
            .iter()
            .map(|c| new_null_array(c.data_type(), n))
            .collect());
    }
    // Checked once here so `take` runs without its per-column bounds pass.
    let max = match indices.nulls() {
        None => indices.values().iter().copied().max(),
        Some(nb) => nb.valid_indices().map(|i| indices.value(i)).max(),
    }
    .unwrap_or(0) as usize;
    if let Some((i, c)) = columns.iter().enumerate().find(|(_, c)| max >= c.len()) {
        return Err(OfflineError::Join(format!(
            "feature column {} has {} rows, but the join refers to row {max}",
            i + 1,
            c.len()
        )));
    }
    let take = |i: usize| {
        arrow::compute::take(columns[i].as_ref(), indices, None)
            .map_err(|e| OfflineError::Join(format!("gathering feature column {}: {e}", i + 1)))
    };
    if n < PARALLEL_MIN_ROWS {
        (0..columns.len()).map(take).collect()
    } else {
        on_two_threads(columns.len(), take).into_iter().collect()
    }
}

/// Runs `work` for items `0..count` on this thread and one more, each taking the next undone
/// item, and returns the results in item order. Items are whole columns: large enough that
/// handing them out costs nothing, and the second core also takes half of the page faults of
/// the fresh output buffers, which are much of the cost of a gather.
fn on_two_threads<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let run = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                return done;
            }
            done.push((i, work(i)));
        }
    };
    let (mut mine, theirs) = std::thread::scope(|s| {
        let other = s.spawn(run);
        (run(), other.join())
    });
    mine.extend(theirs.unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
    mine.sort_unstable_by_key(|(i, _)| *i);
    mine.into_iter().map(|(_, t)| t).collect()
}

/// Treats a table that arrived as several batches as one: column i of the result is column i
/// of every batch end to end, so row numbers count across batches in order. A single batch is
/// returned as is, without copying.
pub fn concat_columns<B: AsRef<[ArrayRef]> + Sync>(
    batches: &[B],
) -> Result<Vec<ArrayRef>, OfflineError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let width = first.as_ref().len();
    if let Some((bi, b)) = batches
        .iter()
        .enumerate()
        .find(|(_, b)| b.as_ref().len() != width)
    {
        return Err(OfflineError::Join(format!(
            "batch {} has {} columns, batch 1 has {width}",
            bi + 1,
            b.as_ref().len()
        )));
    }
    if batches.len() == 1 {
        return Ok(first.as_ref().to_vec());
    }
    let concat = |ci: usize| {
        let parts: Vec<&dyn Array> = batches.iter().map(|b| b.as_ref()[ci].as_ref()).collect();
        arrow::compute::concat(&parts).map_err(|e| {
            OfflineError::Join(format!(
                "concatenating column {} of the batches: {e}",
                ci + 1
            ))
        })
    };
    let rows: usize = batches
        .iter()
        .map(|b| b.as_ref().first().map_or(0, |c| c.len()))
        .sum();
    if rows < PARALLEL_MIN_ROWS {
        (0..width).map(concat).collect()
    } else {
        on_two_threads(width, concat).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};

    use super::*;

    fn ints(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    fn strs(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn ts(v: &[Option<i64>]) -> TimestampMicrosecondArray {
        TimestampMicrosecondArray::from(v.to_vec())
    }

    /// Joins a one-int-key table `(key, event, created)` against entity rows `(key, t)`.
    fn join1(
        table: &[(Option<i64>, Option<i64>, Option<i64>)],
        entities: &[(Option<i64>, Option<i64>)],
        ttl: i64,
    ) -> Vec<Option<u32>> {
        let keys = [ints(&table.iter().map(|r| r.0).collect::<Vec<_>>())];
        let ev = ts(&table.iter().map(|r| r.1).collect::<Vec<_>>());
        let cr = ts(&table.iter().map(|r| r.2).collect::<Vec<_>>());
        let index = EventIndex::build(&keys, &ev, Some(&cr)).expect("valid input");
        let ek = [ints(&entities.iter().map(|r| r.0).collect::<Vec<_>>())];
        let et = ts(&entities.iter().map(|r| r.1).collect::<Vec<_>>());
        let out = point_in_time_join(&index, &ek, &et, ttl).expect("valid input");
        assert_eq!(out.len(), entities.len());
        out.iter().collect()
    }

    #[test]
    fn latest_row_at_or_before_the_timestamp() {
        let table = [
            (Some(1), Some(10), None),
            (Some(1), Some(30), None),
            (Some(1), Some(20), None),
            (Some(2), Some(15), None),
        ];
        let got = join1(
            &table,
            &[
                (Some(1), Some(9)),
                (Some(1), Some(10)),
                (Some(1), Some(25)),
                (Some(1), Some(30)),
                (Some(1), Some(99)),
                (Some(2), Some(14)),
                (Some(2), Some(15)),
            ],
            0,
        );
        assert_eq!(
            got,
            [None, Some(0), Some(2), Some(1), Some(1), None, Some(3)]
        );
    }

    #[test]
    fn ttl_bounds_are_inclusive_and_zero_is_unbounded() {
        let table = [(Some(1), Some(100), None)];
        let entities = [
            (Some(1), Some(99)),
            (Some(1), Some(100)),
            (Some(1), Some(110)),
            (Some(1), Some(111)),
            (Some(1), Some(1_000_000)),
        ];
        assert_eq!(
            join1(&table, &entities, 10),
            [None, Some(0), Some(0), None, None]
        );
        assert_eq!(
            join1(&table, &entities, 0),
            [None, Some(0), Some(0), Some(0), Some(0)]
        );
        // A ttl reaching below i64::MIN must not wrap around.
        assert_eq!(
            join1(
                &[(Some(1), Some(i64::MIN), None)],
                &[(Some(1), Some(-5))],
                i64::MAX
            ),
            [Some(0)]
        );
    }

    #[test]
    fn ttl_applies_to_the_latest_row_only() {
        // The latest row at t is too old; an even older one must not be used instead.
        let table = [(Some(1), Some(10), None), (Some(1), Some(50), None)];
        assert_eq!(join1(&table, &[(Some(1), Some(100))], 20), [None]);
        assert_eq!(join1(&table, &[(Some(1), Some(70))], 20), [Some(1)]);
    }

    #[test]
    fn ties_on_event_go_to_the_latest_created() {
        let table = [
            (Some(1), Some(10), Some(5)),
            (Some(1), Some(10), Some(7)),
            (Some(1), Some(10), Some(6)),
        ];
        assert_eq!(join1(&table, &[(Some(1), Some(10))], 0), [Some(1)]);
    }

    #[test]
    fn full_ties_go_to_the_row_written_last() {
        let table = [
            (Some(1), Some(10), Some(5)),
            (Some(2), Some(10), Some(5)),
            (Some(1), Some(10), Some(5)),
            (Some(1), Some(9), Some(9)),
        ];
        assert_eq!(join1(&table, &[(Some(1), Some(10))], 0), [Some(2)]);
        let table = [(Some(1), Some(10), None), (Some(1), Some(10), None)];
        assert_eq!(join1(&table, &[(Some(1), Some(10))], 0), [Some(1)]);
    }

    #[test]
    fn null_created_ranks_below_any_created() {
        let table = [
            (Some(1), Some(10), Some(i64::MIN)),
            (Some(1), Some(10), None),
        ];
        assert_eq!(join1(&table, &[(Some(1), Some(10))], 0), [Some(0)]);
        // Without a created column at all, the last-written row wins the tie.
        let keys = [ints(&[Some(1), Some(1)])];
        let index =
            EventIndex::build(&keys, &ts(&[Some(10), Some(10)]), None).expect("valid input");
        let out =
            point_in_time_join(&index, &keys, &ts(&[Some(10), Some(10)]), 0).expect("valid input");
        assert_eq!(out.iter().collect::<Vec<_>>(), [Some(1), Some(1)]);
    }

    #[test]
    fn nulls_on_either_side_never_match() {
        let table = [
            (None, Some(10), None),
            (Some(1), None, None),
            (Some(1), Some(5), None),
        ];
        let keys = [ints(&[None, Some(1), Some(1)])];
        let ev = ts(&[Some(10), None, Some(5)]);
        let index = EventIndex::build(&keys, &ev, None).expect("valid input");
        assert_eq!(index.skipped(), 2);
        assert_eq!(index.groups(), 1);
        // The row with a null event time is not a candidate: row 2 (event 5) wins at t = 20.
        assert_eq!(
            join1(
                &table,
                &[(None, Some(20)), (Some(1), None), (Some(1), Some(20))],
                0
            ),
            [None, None, Some(2)]
        );
    }

    #[test]
    fn entity_rows_keep_their_order_and_duplicates() {
        let table = [(Some(1), Some(10), None), (Some(2), Some(10), None)];
        let entities = [
            (Some(2), Some(10)),
            (Some(7), Some(10)),
            (Some(1), Some(10)),
            (Some(2), Some(10)),
            (Some(2), Some(10)),
        ];
        assert_eq!(
            join1(&table, &entities, 0),
            [Some(1), None, Some(0), Some(1), Some(1)]
        );
    }

    #[test]
    fn composite_keys_match_every_part() {
        let keys = [
            ints(&[Some(1), Some(1), Some(2), Some(1)]),
            strs(&[Some("eu"), Some("us"), Some("eu"), None]),
        ];
        let ev = ts(&[Some(1), Some(2), Some(3), Some(4)]);
        let index = EventIndex::build(&keys, &ev, None).expect("valid input");
        assert_eq!(index.skipped(), 1);
        let firsts: Vec<&[u32]> = index.iter().map(|g| g.rows).collect();
        assert_eq!(firsts, [&[0u32][..], &[1], &[2]]);
        let mut kb = KeyBuf::new();
        kb.push_i64(1);
        kb.push_str("us");
        assert_eq!(index.group(kb.as_bytes()).expect("valid input").rows, [1]);

        let ek = [
            ints(&[Some(1), Some(1), Some(2), Some(2), Some(1)]),
            strs(&[Some("eu"), Some("us"), Some("eu"), Some("us"), None]),
        ];
        let out = point_in_time_join(&index, &ek, &ts(&[Some(9); 5]), 0).expect("valid input");
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            [Some(0), Some(1), Some(2), None, None]
        );
    }

    #[test]
    fn string_keys_use_the_encoded_map() {
        let keys = [strs(&[Some("a"), Some(""), Some("a")])];
        let index =
            EventIndex::build(&keys, &ts(&[Some(1), Some(1), Some(2)]), None).expect("valid input");
        let ek = [strs(&[Some(""), Some("a"), Some("b"), Some("a")])];
        let out = point_in_time_join(&index, &ek, &ts(&[Some(5), Some(1), Some(5), Some(5)]), 0)
            .expect("valid input");
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            [Some(1), Some(0), None, Some(2)]
        );
    }

    #[test]
    fn empty_table_and_empty_entities() {
        let index = EventIndex::build(&[ints(&[])], &ts(&[]), None).expect("valid input");
        assert_eq!(index.groups(), 0);
        let out = point_in_time_join(&index, &[ints(&[Some(1)])], &ts(&[Some(1)]), 0)
            .expect("valid input");
        assert_eq!(out.iter().collect::<Vec<_>>(), [None]);
        let cols = gather(
            &[Arc::new(StringArray::from(Vec::<&str>::new())) as ArrayRef],
            &out,
        )
        .expect("valid input");
        assert_eq!(cols[0].len(), 1);
        assert!(cols[0].is_null(0));

        let index =
            EventIndex::build(&[ints(&[Some(1)])], &ts(&[Some(1)]), None).expect("valid input");
        let out = point_in_time_join(&index, &[ints(&[])], &ts(&[]), 0).expect("valid input");
        assert_eq!(out.len(), 0);
        let cols = gather(&[ints(&[Some(3)])], &out).expect("valid input");
        assert_eq!(cols[0].len(), 0);
    }

    #[test]
    fn gather_puts_nulls_where_nothing_matched() {
        let values: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.5), None, Some(3.5)]));
        let names = strs(&[Some("a"), Some("b"), Some("c")]);
        let idx = UInt32Array::from(vec![Some(2), None, Some(0), Some(1), Some(2)]);
        let out = gather(&[values, names], &idx).expect("valid input");
        let f = out[0].as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            [Some(3.5), None, Some(1.5), None, Some(3.5)]
        );
        let s = out[1].as_string::<i32>();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [Some("c"), None, Some("a"), Some("b"), Some("c")]
        );
    }

    #[test]
    fn concatenated_batches_count_rows_across_batches() {
        let b1 = vec![ints(&[Some(1), Some(2)]), strs(&[Some("x"), Some("y")])];
        let b2 = vec![ints(&[Some(3)]), strs(&[Some("z")])];
        let cols = concat_columns(&[b1.clone(), b2]).expect("valid input");
        assert_eq!(cols[0].len(), 3);
        assert_eq!(cols[1].as_string::<i32>().value(2), "z");
        let one = concat_columns(&[b1]).expect("valid input");
        assert_eq!(one[0].len(), 2);
        let err = concat_columns(&[vec![ints(&[Some(1)])], vec![]]).expect_err("invalid input");
        assert!(err.to_string().contains("batch 2 has 0 columns"), "{err}");
    }

    #[test]
    fn mismatched_inputs_are_explained() {
        let keys = [ints(&[Some(1)])];
        let index = EventIndex::build(&keys, &ts(&[Some(1)]), None).expect("valid input");
        let e = point_in_time_join(&index, &[strs(&[Some("1")])], &ts(&[Some(1)]), 0)
            .expect_err("invalid input")
            .to_string();
        assert!(
            e.contains("column 1 is Utf8, the feature table's is Int64"),
            "{e}"
        );
        let e = point_in_time_join(&index, &keys, &ts(&[Some(1)]), -1)
            .expect_err("invalid input")
            .to_string();
        assert!(e.contains("ttl is negative"), "{e}");
        let e = point_in_time_join(&index, &keys, &ts(&[Some(1), Some(2)]), 0)
            .expect_err("invalid input")
            .to_string();
        assert!(e.contains("entity join key column 1 has 1 rows"), "{e}");
        let i32s: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![1]));
        let e = EventIndex::build(&[i32s], &ts(&[Some(1)]), None)
            .expect_err("invalid input")
            .to_string();
        assert!(e.contains("join key column 1 has type Int32"), "{e}");
        let e = gather(&[ints(&[Some(1)])], &UInt32Array::from(vec![1]))
            .expect_err("invalid input")
            .to_string();
        assert!(
            e.contains("has 1 rows, but the join refers to row 1"),
            "{e}"
        );
    }

    #[test]
    fn large_inputs_split_across_threads_agree() {
        // Above PARALLEL_MIN_ROWS the join runs in two halves and gather and concat hand
        // columns to two threads; neither seam may shift rows or columns.
        let n = PARALLEL_MIN_ROWS + 3;
        let keys = [ints(&(0..100).map(Some).collect::<Vec<_>>())];
        let index = EventIndex::build(&keys, &ts(&[Some(0); 100]), None).expect("valid input");
        let ek = [ints(
            &(0..n as i64).map(|i| Some(i % 150)).collect::<Vec<_>>(),
        )];
        let out = point_in_time_join(&index, &ek, &ts(&vec![Some(1); n]), 0).expect("valid input");
        for (i, got) in out.iter().enumerate() {
            let k = (i % 150) as u32;
            assert_eq!(got, (k < 100).then_some(k), "entity row {i}");
        }

        let columns: Vec<ArrayRef> = (0..5)
            .map(|c| ints(&(0..100).map(|r| Some(r * 10 + c)).collect::<Vec<_>>()))
            .collect();
        let gathered = gather(&columns, &out).expect("valid input");
        for (c, col) in gathered.iter().enumerate() {
            let col = col.as_primitive::<arrow::datatypes::Int64Type>();
            for (i, got) in col.iter().enumerate() {
                let want = out.is_valid(i).then(|| out.value(i) as i64 * 10 + c as i64);
                assert_eq!(got, want, "column {c}, row {i}");
            }
        }

        let halves: Vec<Vec<ArrayRef>> = [0..n / 2, n / 2..n]
            .into_iter()
            .map(|rows| {
                (0..5)
                    .map(|c| {
                        let v: Vec<Option<i64>> =
                            rows.clone().map(|r| Some((r * 5 + c) as i64)).collect();
                        ints(&v)
                    })
                    .collect()
            })
            .collect();
        let whole = concat_columns(&halves).expect("valid input");
        for (c, col) in whole.iter().enumerate() {
            let col = col.as_primitive::<arrow::datatypes::Int64Type>();
            assert_eq!(col.len(), n);
            let ok = col
                .values()
                .iter()
                .enumerate()
                .all(|(r, &v)| v == (r * 5 + c) as i64);
            assert!(ok, "column {c}");
        }
    }
}
