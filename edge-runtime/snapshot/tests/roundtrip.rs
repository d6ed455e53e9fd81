//! Writes snapshots and reads them back: every type, nulls, composite keys, corruption.

use fstore_snapshot::*;

fn schema(n_features: usize) -> SnapshotSchema {
    let types = FeatureType::ALL;
    SnapshotSchema {
        view: "v".into(),
        version: 3,
        keys: vec![
            Field {
                name: "customer_id".into(),
                ty: KeyType::Int64,
            },
            Field {
                name: "region".into(),
                ty: KeyType::String,
            },
        ],
        features: (0..n_features)
            .map(|i| Field {
                name: format!("f{i}"),
                ty: types[i % types.len()],
            })
            .collect(),
        ttl_seconds: 86_400,
        created_at_micros: 1,
        base_version: None,
        shard: None,
    }
}

fn value_for(ty: FeatureType, row: i64, list: &[f64]) -> Value<'_> {
    if row % 7 == 0 {
        return Value::Null;
    }
    match ty {
        FeatureType::Int64 => Value::Int64(row * 3),
        FeatureType::Float64 => Value::Float64(row as f64 / 4.0),
        FeatureType::String => Value::String(if row % 2 == 0 {
            "even"
        } else {
            "odd \"quoted\""
        }),
        FeatureType::Bool => Value::Bool(row % 3 == 0),
        FeatureType::Timestamp => Value::Timestamp(row * 1_000_000),
        FeatureType::ListFloat64 => Value::ListFloat64(F64List::Slice(list)),
    }
}

fn build(rows: i64, n_features: usize) -> Vec<u8> {
    let s = schema(n_features);
    let types: Vec<_> = s.features.iter().map(|f| f.ty).collect();
    let mut w = SnapshotWriter::new(s).expect("schema ok");
    let mut k = KeyBuf::new();
    let list = [1.0, 2.5, -3.0];
    for r in 0..rows {
        let region = format!("r{}", r % 5);
        k.encode(
            &[KeyType::Int64, KeyType::String],
            &[KeyPart::Int64(r), KeyPart::String(&region)],
        )
        .expect("key");
        let vals: Vec<Value<'_>> = types.iter().map(|t| value_for(*t, r, &list)).collect();
        w.push(
            k.as_bytes(),
            r * 10,
            if r % 2 == 0 { Some(r) } else { None },
            &vals,
        )
        .expect("push");
    }
    w.finish_to_vec().expect("finish")
}

#[test]
fn every_row_reads_back_exactly() {
    let bytes = build(5_000, 16);
    let snap = Snapshot::from_bytes(bytes).expect("valid");
    assert_eq!(snap.len(), 5_000);
    assert_eq!(snap.schema().version, 3);
    let types: Vec<_> = snap.schema().features.iter().map(|f| f.ty).collect();
    let list = [1.0, 2.5, -3.0];
    let mut k = KeyBuf::new();
    for r in 0..5_000 {
        let region = format!("r{}", r % 5);
        k.encode(
            &[KeyType::Int64, KeyType::String],
            &[KeyPart::Int64(r), KeyPart::String(&region)],
        )
        .expect("key");
        let row = snap.get(k.as_bytes()).expect("present");
        assert_eq!(row.event_micros(), r * 10);
        assert_eq!(
            row.created_micros(),
            if r % 2 == 0 { Some(r) } else { None }
        );
        for (i, t) in types.iter().enumerate() {
            assert_eq!(row.value(i), value_for(*t, r, &list), "row {r} feature {i}");
        }
    }
    // Same id, other region: absent.
    k.encode(
        &[KeyType::Int64, KeyType::String],
        &[KeyPart::Int64(1), KeyPart::String("r2")],
    )
    .expect("key");
    assert!(snap.get(k.as_bytes()).is_none());
    assert_eq!(snap.rows().count(), 5_000);
}

#[test]
fn empty_snapshot_is_valid() {
    let snap = Snapshot::from_bytes(build(0, 4)).expect("valid");
    assert!(snap.is_empty());
    assert!(snap.get(b"anything").is_none());
}

#[test]
fn mmap_open_matches_heap() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("s.fss");
    std::fs::write(&path, build(100, 3)).expect("write");
    let snap = Snapshot::open(&path).expect("open");
    assert_eq!(snap.len(), 100);
}

#[test]
fn any_flipped_byte_is_detected() {
    let bytes = build(50, 5);
    for pos in (0..bytes.len()).step_by(37) {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x40;
        assert!(
            Snapshot::from_bytes(bad).is_err(),
            "flip at {pos} went unnoticed"
        );
    }
    assert!(matches!(
        Snapshot::from_bytes(bytes[..100].to_vec()),
        Err(SnapshotError::Corrupt(_))
    ));
    assert!(matches!(
        Snapshot::from_bytes(vec![0; 200]),
        Err(SnapshotError::BadMagic)
    ));
}

#[test]
fn writer_rejects_bad_rows() {
    let mut w = SnapshotWriter::new(schema(2)).expect("schema");
    let ok = [Value::Int64(1), Value::Float64(1.0)];
    w.push(b"k", 0, None, &ok).expect("first");
    assert!(matches!(
        w.push(b"k", 0, None, &ok),
        Err(SnapshotError::DuplicateKey)
    ));
    assert!(matches!(
        w.push(b"j", 0, None, &ok[..1]),
        Err(SnapshotError::Arity { .. })
    ));
    assert!(matches!(
        w.push(b"j", 0, None, &[Value::String("x"), Value::Null]),
        Err(SnapshotError::TypeMismatch { .. })
    ));
}
