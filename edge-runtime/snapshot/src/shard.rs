//! Splitting a snapshot into shards by the hash of the entity key, so an edge can hold part of
//! a view too large for one machine, and a router can tell which part holds a key.

use crate::format::{key_hash, shard_of};
use crate::{ShardOf, Snapshot, SnapshotError, SnapshotSchema, SnapshotWriter, Value};

/// Splits `snapshot` (a full snapshot or a delta) into `count` shards: shard `i` holds exactly
/// the rows whose key's [`key_hash`] gives `shard_of(hash, count) == i`, with their values and
/// timestamps copied, and the same schema plus `shard`. Returns each shard's header and body
/// (as [`SnapshotWriter::finish_parts`]) in shard order; a shard no row falls in is an empty
/// snapshot, which a caller may skip for a delta (an empty delta shard changes nothing).
pub fn split(snapshot: &Snapshot, count: u32) -> Result<Vec<[Vec<u8>; 2]>, SnapshotError> {
    if let Some(sh) = snapshot.schema().shard {
        return Err(SnapshotError::Layer(format!(
            "`{}` is already shard {} of {}; split the full snapshot instead",
            snapshot.schema().view,
            sh.index,
            sh.count
        )));
    }
    let mut writers = (0..count)
        .map(|index| {
            SnapshotWriter::new(SnapshotSchema {
                shard: Some(ShardOf { index, count }),
                ..snapshot.schema().clone()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let per_shard = (snapshot.len() / u64::from(count.max(1))) as usize;
    let per_row = (snapshot.size_bytes() / snapshot.len().max(1)) as usize;
    for w in &mut writers {
        // A little over the mean, so a shard slightly above it does not regrow its buffer.
        w.reserve(per_shard + per_shard / 16, per_row);
    }
    let n = snapshot.schema().features.len();
    let mut values: Vec<Value<'_>> = Vec::with_capacity(n);
    for row in snapshot.rows() {
        let key = row.key();
        let w = &mut writers[shard_of(key_hash(key), count) as usize];
        values.clear();
        values.extend((0..n).map(|f| row.value(f)));
        w.push(key, row.event_micros(), row.created_micros(), &values)?;
    }
    writers.into_iter().map(|w| w.finish_parts()).collect()
}

/// The shards an edge holds, as indices of a fleet-wide `count` (`"0,1/4"`, `"2-3/4"`). Each
/// index is a contiguous range of key hashes, so an edge holding `i` of `count` holds every key
/// whose hash falls in that range, in every sharded view, whatever each view's own shard
/// count: it loads the shards of the view that overlap its ranges ([`ShardSet::overlaps`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardSet {
    pub count: u32,
    /// Sorted, distinct, each below `count`.
    pub held: Vec<u32>,
}

impl ShardSet {
    /// Every key: one shard of one.
    pub fn all() -> Self {
        Self {
            count: 1,
            held: vec![0],
        }
    }

    pub fn is_all(&self) -> bool {
        self.held.len() as u64 == u64::from(self.count)
    }

    /// Whether the key with index hash `hash` is held.
    #[inline]
    pub fn holds_hash(&self, hash: u64) -> bool {
        self.held.binary_search(&shard_of(hash, self.count)).is_ok()
    }

    /// The ranges of the high 32 bits of key hashes this set holds, `[lo, hi)`, in order.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.held.iter().map(|&i| hash_range(i, self.count))
    }

    /// Whether shard `index` of `count` (a view's own split) holds any key this set holds.
    pub fn overlaps(&self, index: u32, count: u32) -> bool {
        let (lo, hi) = hash_range(index, count);
        self.held.iter().any(|&i| {
            let (a, b) = hash_range(i, self.count);
            lo < b && a < hi
        })
    }
}

/// The high-32-bit hash values `[lo, hi)` shard `index` of `count` covers under [`shard_of`].
fn hash_range(index: u32, count: u32) -> (u64, u64) {
    let edge = |i: u32| (u64::from(i) << 32).div_ceil(u64::from(count.max(1)));
    (edge(index), edge(index + 1))
}

impl std::fmt::Display for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held: Vec<String> = self.held.iter().map(u32::to_string).collect();
        write!(f, "{}/{}", held.join(","), self.count)
    }
}

impl std::str::FromStr for ShardSet {
    type Err = String;

    /// `"0,1/4"`, `"0-2/8"`, `"all"`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(Self::all());
        }
        let bad = |why: String| format!("shards `{s}`: {why} (expected e.g. `0,1/4` or `2-3/4`)");
        let (list, count) = s.split_once('/').ok_or_else(|| bad("no `/count`".into()))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{count}` is not a shard count")))?;
        if count == 0 || count > crate::MAX_SHARDS {
            return Err(bad(format!("the count must be 1 to {}", crate::MAX_SHARDS)));
        }
        let index = |t: &str| -> Result<u32, String> {
            let i: u32 = t
                .trim()
                .parse()
                .map_err(|_| bad(format!("`{t}` is not a shard index")))?;
            if i >= count {
                return Err(bad(format!("shard {i} does not exist in {count}")));
            }
            Ok(i)
        };
        let mut held = Vec::new();
        for part in list.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (index(a)?, index(b)?);
                    if a > b {
                        return Err(bad(format!("range {a}-{b} runs backwards")));
                    }
                    held.extend(a..=b);
                }
                None => held.push(index(part)?),
            }
        }
        held.sort_unstable();
        held.dedup();
        Ok(Self { count, held })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    fn whole(customers: i64) -> Snapshot {
        let bytes = testkit::customer_rfm_writer(customers)
            .finish_to_vec()
            .expect("bytes");
        Snapshot::from_bytes(bytes).expect("valid")
    }

    #[test]
    fn shards_partition_the_rows_and_answer_like_the_whole() {
        let whole = whole(5_000);
        let parts = split(&whole, 4).expect("split");
        assert_eq!(parts.len(), 4);
        let shards: Vec<Snapshot> = parts
            .into_iter()
            .map(|[h, b]| Snapshot::from_bytes([h, b].concat()).expect("valid shard"))
            .collect();
        let total: u64 = shards.iter().map(|s| s.len()).sum();
        assert_eq!(total, whole.len());
        for (i, s) in shards.iter().enumerate() {
            assert_eq!(
                s.schema().shard,
                Some(ShardOf {
                    index: i as u32,
                    count: 4
                })
            );
            // Hashes spread evenly: no shard is far from a quarter.
            assert!(s.len() > 1_000 && s.len() < 1_500, "shard {i}: {}", s.len());
        }
        for row in whole.rows() {
            let k = row.key();
            let home = shard_of(key_hash(k), 4) as usize;
            let got = shards[home].get(k).expect("in its shard");
            assert_eq!(got.event_micros(), row.event_micros());
            assert_eq!(got.created_micros(), row.created_micros());
            for f in 0..whole.schema().features.len() {
                assert_eq!(got.value(f), row.value(f));
            }
            for (j, other) in shards.iter().enumerate() {
                if j != home {
                    assert!(other.get(k).is_none(), "a key lives in one shard only");
                }
            }
        }
    }

    #[test]
    fn a_shard_is_refused_as_input_and_its_flag_must_match() {
        let whole = whole(100);
        let [h, b] = split(&whole, 2).expect("split").remove(0);
        let shard = Snapshot::from_bytes([h.clone(), b.clone()].concat()).expect("valid");
        assert!(split(&shard, 2).is_err());
        // Clearing the shard flag (and fixing the header checksum) must not pass as whole.
        let mut bytes = [h, b].concat();
        let flags = crate::format::read_u32(&bytes, crate::format::OFF_FLAGS) & !2;
        bytes[crate::format::OFF_FLAGS..crate::format::OFF_FLAGS + 4]
            .copy_from_slice(&flags.to_le_bytes());
        let sum = crate::format::header_checksum(&bytes);
        bytes[crate::format::OFF_HEADER_SUM..crate::format::OFF_HEADER_SUM + 8]
            .copy_from_slice(&sum.to_le_bytes());
        let err = Snapshot::from_bytes(bytes).expect_err("flag and schema disagree");
        assert!(err.to_string().contains("shard flag"), "{err}");
    }

    #[test]
    fn shard_sets_parse_and_overlap_views_of_any_count() {
        let s: ShardSet = "1/4".parse().expect("parse");
        assert_eq!(s.held, [1]);
        assert_eq!(
            "0-2,1/4".parse::<ShardSet>().expect("parse").held,
            [0, 1, 2]
        );
        assert!("all".parse::<ShardSet>().expect("all").is_all());
        assert!("0,1/2".parse::<ShardSet>().expect("both").is_all());
        for bad in ["", "1", "4/4", "0/0", "x/4", "3-1/4", "0/2000"] {
            assert!(bad.parse::<ShardSet>().is_err(), "{bad} parsed");
        }
        assert_eq!(s.to_string(), "1/4");
        // Shard 1 of 4 is the second quarter of the hash range: shard 0 of 2 holds it, and
        // of 8 shards, 2 and 3 do.
        assert!(s.overlaps(0, 2) && !s.overlaps(1, 2));
        let of8: Vec<u32> = (0..8).filter(|&i| s.overlaps(i, 8)).collect();
        assert_eq!(of8, [2, 3]);
        // Whatever a view's count, the shards overlapping a set hold every key it holds.
        let mut rng = crate::testkit::Rng(7);
        for _ in 0..10_000 {
            let h = rng.next_u64();
            if s.holds_hash(h) {
                for m in [1, 2, 3, 5, 8] {
                    assert!(s.overlaps(shard_of(h, m), m), "hash {h:x}, {m} shards");
                }
            }
        }
    }

    #[test]
    fn shard_of_covers_every_shard_in_order() {
        assert_eq!(shard_of(0, 4), 0);
        assert_eq!(shard_of(u64::MAX, 4), 3);
        assert_eq!(shard_of(1 << 63, 4), 2);
        // Low bits do not matter: the index uses them.
        assert_eq!(shard_of(0xffff_ffff, 4), 0);
    }
}
