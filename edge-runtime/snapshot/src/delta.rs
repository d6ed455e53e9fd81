//! Delta snapshots: a delta holds only the entities that changed since the previous snapshot
//! of its slot and names the full snapshot its chain starts from (`base_version`). A reader
//! layers deltas over their base ([`layered_get`]); the control plane folds a chain into a new
//! full snapshot ([`compact`]). Both give the same row for every key: the newest layer holding
//! the key wins, and a key no layer holds is absent.
//!
//! Deltas carry no tombstones: an entity that leaves the source stays served from an older
//! layer until the chain is compacted from a fresh full materialization.

use crate::format::key_hash;
use crate::{Row, Snapshot, SnapshotError, SnapshotSchema, SnapshotWriter, Value};

/// Checks that `delta` can be layered over `base`: `base` is a full snapshot, `delta` is a
/// delta naming `base`'s version, and both describe the same view, keys and features (a row
/// of either must read the same way through either's schema).
pub fn check_delta(base: &Snapshot, delta: &Snapshot) -> Result<(), SnapshotError> {
    check_base(base)?;
    let (b, d) = (base.schema(), delta.schema());
    match d.base_version {
        None => Err(SnapshotError::Layer(format!(
            "version {} of `{}` is a full snapshot, not a delta",
            d.version, d.view
        ))),
        Some(v) if v != b.version => Err(SnapshotError::Layer(format!(
            "delta version {} of `{}` applies on top of version {v}, not {}",
            d.version, d.view, b.version
        ))),
        Some(_) if d.view != b.view => Err(SnapshotError::Layer(format!(
            "delta version {} is of view `{}`, its base of `{}`",
            d.version, d.view, b.view
        ))),
        Some(_) if d.keys != b.keys => Err(SnapshotError::Layer(format!(
            "delta version {} of `{}` has other key columns than its base",
            d.version, d.view
        ))),
        Some(_) if d.features != b.features => Err(SnapshotError::Layer(format!(
            "delta version {} of `{}` has other features (names, types or order) than its base",
            d.version, d.view
        ))),
        Some(_) => Ok(()),
    }
}

/// A chain's root must be a full snapshot: a delta alone lacks every unchanged entity.
fn check_base(base: &Snapshot) -> Result<(), SnapshotError> {
    if base.is_delta() {
        let b = base.schema();
        return Err(SnapshotError::Layer(format!(
            "the base, version {} of `{}`, is itself a delta",
            b.version, b.view
        )));
    }
    Ok(())
}

/// The row for `key` in the newest layer that holds it: the deltas, newest first, then the
/// base. The layers must have passed [`check_delta`], so a row reads the same through any of
/// them. With no deltas this is exactly `base.get(key)`; with some, the key is hashed once.
#[inline]
pub fn layered_get<'a>(
    base: &'a Snapshot,
    deltas_newest_first: &'a [Snapshot],
    key: &[u8],
) -> Option<Row<'a>> {
    if deltas_newest_first.is_empty() {
        return base.get(key);
    }
    let hash = key_hash(key);
    deltas_newest_first
        .iter()
        .find_map(|d| d.get_hashed(key, hash))
        .or_else(|| base.get_hashed(key, hash))
}

/// Folds `base` and its `deltas` (oldest to newest) into one full snapshot of version `version`
/// created at `created_at_micros`: every key of every layer, with the row of the newest layer
/// holding it, its timestamps and values copied as they are. The schema is `base`'s with the
/// new version and creation time and no base version. Returns the file as
/// [`SnapshotWriter::finish_parts`] does.
///
/// Refuses a delta that [`check_delta`] refuses, and deltas not in increasing version order
/// (the order decides which row wins, so a slice passed newest first would silently serve old
/// values).
pub fn compact(
    base: &Snapshot,
    deltas: &[&Snapshot],
    version: u64,
    created_at_micros: i64,
) -> Result<[Vec<u8>; 2], SnapshotError> {
    check_base(base)?;
    let mut previous = base.schema().version;
    for d in deltas {
        check_delta(base, d)?;
        let v = d.schema().version;
        if v <= previous {
            return Err(SnapshotError::Layer(format!(
                "delta version {v} of `{}` follows version {previous}: deltas must be given \
                 oldest first",
                d.schema().view
            )));
        }
        previous = v;
    }
    let schema = SnapshotSchema {
        version,
        created_at_micros,
        base_version: None,
        ..base.schema().clone()
    };
    let mut w = SnapshotWriter::new(schema)?;
    let layers: Vec<&Snapshot> = std::iter::once(base)
        .chain(deltas.iter().copied())
        .collect();
    let rows: u64 = layers.iter().map(|s| s.len()).sum();
    let bytes: u64 = layers.iter().map(|s| s.size_bytes()).sum();
    w.reserve(rows as usize, (bytes / rows.max(1)) as usize);
    let mut values: Vec<Value<'_>> = Vec::with_capacity(base.schema().features.len());
    for (i, layer) in layers.iter().enumerate() {
        let newer = &layers[i + 1..];
        for row in layer.rows() {
            let key = row.key();
            // A newer layer holding the key is the one that counts; its own pass writes it.
            let hash = key_hash(key);
            if newer.iter().any(|n| n.get_hashed(key, hash).is_some()) {
                continue;
            }
            values.clear();
            values.extend((0..layer.schema().features.len()).map(|f| row.value(f)));
            w.push(key, row.event_micros(), row.created_micros(), &values)?;
        }
    }
    w.finish_parts()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{self, FLAG_DELTA, HEADER_LEN, OFF_FLAGS, OFF_HEADER_SUM};
    use crate::{F64List, FeatureType, Field, KeyBuf, KeyType};

    fn schema(version: u64, base_version: Option<u64>) -> SnapshotSchema {
        SnapshotSchema {
            view: "customers".into(),
            version,
            keys: vec![Field {
                name: "customer_id".into(),
                ty: KeyType::Int64,
            }],
            features: vec![
                Field {
                    name: "orders".into(),
                    ty: FeatureType::Int64,
                },
                Field {
                    name: "segment".into(),
                    ty: FeatureType::String,
                },
                Field {
                    name: "trend".into(),
                    ty: FeatureType::ListFloat64,
                },
            ],
            ttl_seconds: 3_600,
            created_at_micros: 100 + version as i64,
            base_version,
            shard: None,
        }
    }

    fn key(id: i64) -> Vec<u8> {
        let mut k = KeyBuf::new();
        k.push_i64(id);
        k.as_bytes().to_vec()
    }

    /// A snapshot of `schema` with one row per id: orders = `tag * 1000 + id`, a segment naming
    /// the tag, event time `tag * 10 + id`, created time only for even ids, and a null trend
    /// for ids divisible by 3.
    fn build(schema: SnapshotSchema, tag: i64, ids: &[i64]) -> Snapshot {
        Snapshot::from_bytes(bytes(schema, tag, ids)).expect("valid")
    }

    fn bytes(schema: SnapshotSchema, tag: i64, ids: &[i64]) -> Vec<u8> {
        let mut w = SnapshotWriter::new(schema).expect("schema");
        let segment = format!("layer {tag}");
        for &id in ids {
            let trend = [tag as f64, id as f64];
            let values = [
                Value::Int64(tag * 1_000 + id),
                Value::String(&segment),
                if id % 3 == 0 {
                    Value::Null
                } else {
                    Value::ListFloat64(F64List::Slice(&trend))
                },
            ];
            let created = (id % 2 == 0).then_some(tag * 100 + id);
            w.push(&key(id), tag * 10 + id, created, &values)
                .expect("row");
        }
        w.finish_to_vec().expect("bytes")
    }

    /// Rewrites the header's flags and re-seals the header checksum, as a tool that edits
    /// headers would: only the flag/schema check can catch it.
    fn with_flags(mut b: Vec<u8>, flags: u32) -> Vec<u8> {
        b[OFF_FLAGS..OFF_FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
        let sum = format::header_checksum(&b[..HEADER_LEN]);
        b[OFF_HEADER_SUM..OFF_HEADER_SUM + 8].copy_from_slice(&sum.to_le_bytes());
        b
    }

    fn flags(b: &[u8]) -> u32 {
        format::read_u32(b, OFF_FLAGS)
    }

    #[test]
    fn the_delta_flag_round_trips() {
        let full = bytes(schema(1, None), 1, &[1, 2]);
        assert_eq!(flags(&full), 0);
        let full = Snapshot::from_bytes(full).expect("full");
        assert!(!full.is_delta());
        assert_eq!(full.base_version(), None);

        let delta = bytes(schema(2, Some(1)), 2, &[2, 3]);
        assert_eq!(flags(&delta), FLAG_DELTA);
        let delta = Snapshot::from_bytes(delta).expect("delta");
        assert!(delta.is_delta());
        assert_eq!(delta.base_version(), Some(1));
        assert_eq!(delta.schema().base_version, Some(1));
    }

    #[test]
    fn a_flag_that_disagrees_with_the_schema_is_refused() {
        let full = bytes(schema(1, None), 1, &[1]);
        let delta = bytes(schema(2, Some(1)), 2, &[1]);
        // The re-sealed header alone is fine: the same flags load.
        Snapshot::from_bytes(with_flags(full.clone(), 0)).expect("unchanged");
        for (b, what) in [
            (
                with_flags(full.clone(), FLAG_DELTA),
                "full snapshot flagged delta",
            ),
            (with_flags(delta, 0), "delta without the flag"),
            (with_flags(full, 0b10), "unknown flag bit"),
        ] {
            match Snapshot::from_bytes(b) {
                Err(SnapshotError::Flags(msg)) => assert!(!msg.is_empty(), "{what}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_delta_must_be_newer_than_its_base() {
        let e = SnapshotWriter::new(schema(3, Some(3))).expect_err("same version");
        assert!(matches!(e, SnapshotError::Schema(_)), "{e:?}");
    }

    #[test]
    fn compact_keeps_every_key_and_the_newest_row() {
        // Base: 1..=6. Delta 11: changes 2 and 3, adds 7. Delta 12: changes 3 and 6, adds 8.
        let base = build(schema(10, None), 1, &[1, 2, 3, 4, 5, 6]);
        let d1 = build(schema(11, Some(10)), 2, &[2, 3, 7]);
        let d2 = build(schema(12, Some(10)), 3, &[3, 6, 8]);
        let [head, rows] = compact(&base, &[&d1, &d2], 13, 999).expect("compact");
        let mut file = head;
        file.extend_from_slice(&rows);
        assert_eq!(flags(&file), 0);
        let full = Snapshot::from_bytes(file).expect("valid");
        assert!(!full.is_delta());
        assert_eq!(
            *full.schema(),
            SnapshotSchema {
                version: 13,
                created_at_micros: 999,
                base_version: None,
                ..base.schema().clone()
            }
        );
        assert_eq!(full.len(), 8);

        let newest_first = [d2, d1];
        let expected_tag = |id: i64| match id {
            3 | 6 | 8 => 3,
            2 | 7 => 2,
            _ => 1,
        };
        for id in 1..=9 {
            let k = key(id);
            let layered = layered_get(&base, &newest_first, &k);
            let compacted = full.get(&k);
            if id == 9 {
                assert!(layered.is_none() && compacted.is_none(), "absent key");
                continue;
            }
            let (l, c) = (layered.expect("layered"), compacted.expect("compacted"));
            let tag = expected_tag(id);
            assert_eq!(c.value(0), Value::Int64(tag * 1_000 + id), "id {id}");
            assert_eq!(c.event_micros(), tag * 10 + id, "id {id}");
            assert_eq!(
                c.created_micros(),
                (id % 2 == 0).then_some(tag * 100 + id),
                "id {id}"
            );
            for f in 0..3 {
                assert_eq!(l.value(f), c.value(f), "id {id} feature {f}");
            }
            assert_eq!(l.event_micros(), c.event_micros());
            assert_eq!(l.created_micros(), c.created_micros());
        }
        // With no deltas, the layered read is the base's.
        assert_eq!(
            layered_get(&base, &[], &key(3)).map(|r| r.value(0)),
            Some(Value::Int64(1_003))
        );
    }

    #[test]
    fn compact_refuses_what_does_not_layer() {
        let base = build(schema(10, None), 1, &[1, 2]);
        let good = build(schema(11, Some(10)), 2, &[1]);
        let refused = |deltas: &[&Snapshot], why: &str| match compact(&base, deltas, 20, 0) {
            Err(SnapshotError::Layer(msg)) => assert!(msg.contains(why), "{msg}"),
            other => panic!("{why}: {:?}", other.map(|_| ())),
        };

        let full = build(schema(11, None), 2, &[1]);
        refused(&[&full], "not a delta");
        let other_base = build(schema(11, Some(9)), 2, &[1]);
        refused(&[&good, &other_base], "on top of version 9");

        let mut s = schema(12, Some(10));
        s.view = "orders".into();
        refused(&[&build(s, 2, &[1])], "of view `orders`");

        let mut s = schema(12, Some(10));
        s.keys[0].ty = KeyType::String;
        refused(&[&build_keyed(s)], "key columns");

        let mut s = schema(12, Some(10));
        s.features.swap(1, 2);
        refused(&[&build_empty(s)], "other features");

        let d12 = build(schema(12, Some(10)), 3, &[2]);
        refused(&[&d12, &good], "oldest first");

        let e = compact(&good, &[], 20, 0)
            .map(|_| ())
            .expect_err("delta base");
        assert!(matches!(e, SnapshotError::Layer(_)), "{e:?}");
        // A delta is checked against the base alone, so an unrelated base is refused too.
        let e = check_delta(&build(schema(9, None), 1, &[1]), &good).expect_err("base 9");
        assert!(e.to_string().contains("not 9"), "{e}");
    }

    fn build_keyed(schema: SnapshotSchema) -> Snapshot {
        let mut w = SnapshotWriter::new(schema).expect("schema");
        let mut k = KeyBuf::new();
        k.push_str("a");
        w.push(k.as_bytes(), 0, None, &[Value::Null; 3])
            .expect("row");
        Snapshot::from_bytes(w.finish_to_vec().expect("bytes")).expect("valid")
    }

    fn build_empty(schema: SnapshotSchema) -> Snapshot {
        let w = SnapshotWriter::new(schema).expect("schema");
        Snapshot::from_bytes(w.finish_to_vec().expect("bytes")).expect("valid")
    }
}
