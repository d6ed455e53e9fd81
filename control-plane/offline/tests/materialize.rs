//! Materialization semantics on real files: latest row per key (event time, then created
//! time), ttl expiry as of the run, composite keys, prefixes of several files, errors that
//! name the file, and bad rows set aside rather than failing the run.

use fstore_snapshot::{KeyBuf, KeyPart, KeyType, Snapshot, Value};
use fstore_spec::parse_features_yaml;

const YAML: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
  - name: region
    join_keys: [{name: region, type: string}]
sources:
  - name: events
    path: lake/
    format: csv
    timestamp_field: ts
    created_timestamp_field: created
feature_views:
  - name: spend
    entities: [customer, region]
    source: events
    ttl: 30d
    features:
      - {name: amount, type: float64}
      - {name: note, type: string, column: comment}
"#;

const DAY: i64 = 86_400_000_000;
// 2026-03-01T00:00:00Z
const NOW: i64 = 1_772_323_200_000_000;

fn key(id: i64, region: &str) -> Vec<u8> {
    let mut k = KeyBuf::new();
    k.encode(
        &[KeyType::Int64, KeyType::String],
        &[KeyPart::Int64(id), KeyPart::String(region)],
    )
    .expect("key")
    .to_vec()
}

#[tokio::test]
async fn latest_row_wins_and_old_rows_expire() {
    let dir = tempfile::tempdir().expect("tmp");
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).expect("mkdir");
    let header = "customer_id,region,ts,created,amount,comment,ignored\n";
    std::fs::write(
        lake.join("a.csv"),
        format!(
            "{header}1,eu,2026-02-20T00:00:00Z,2026-02-20T01:00:00Z,10.0,first,x\n\
             1,eu,2026-02-25T00:00:00Z,2026-02-25T01:00:00Z,20.0,newer,x\n\
             1,us,2026-02-25T00:00:00Z,2026-02-25T01:00:00Z,5.0,other region,x\n\
             2,eu,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,99.0,too old,x\n"
        ),
    )
    .expect("write");
    // Same event time as the newest row for (1, eu), created later: it wins the tie.
    std::fs::write(
        lake.join("b.csv"),
        format!("{header}1,eu,2026-02-25T00:00:00Z,2026-02-26T00:00:00Z,21.0,restated,x\n3,eu,2026-02-28T00:00:00Z,,7.5,,x\n"),
    )
    .expect("write");
    std::fs::write(lake.join("notes.txt"), "not a source file").expect("write");

    let defs = parse_features_yaml(YAML, Some(dir.path())).expect("defs");
    let m = fstore_offline::materialize(&defs, "spend", 4, NOW, &[])
        .await
        .expect("materialize");
    assert_eq!(
        (
            m.files.len(),
            m.rows_read,
            m.rows_written,
            m.rows_expired,
            m.rows_superseded
        ),
        (2, 6, 3, 1, 2)
    );

    let snap = Snapshot::from_bytes(m.to_vec()).expect("valid");
    assert_eq!(snap.schema().version, 4);
    assert_eq!(snap.schema().ttl_seconds, 30 * 86_400);
    let row = snap.get(&key(1, "eu")).expect("(1, eu)");
    assert_eq!(row.value(0), Value::Float64(21.0));
    assert_eq!(row.value(1), Value::String("restated"));
    assert_eq!(row.created_micros(), Some(NOW - 3 * DAY));
    assert_eq!(
        snap.get(&key(1, "us")).expect("(1, us)").value(1),
        Value::String("other region")
    );
    assert!(
        snap.get(&key(2, "eu")).is_none(),
        "older than the ttl at materialization time"
    );
    let three = snap.get(&key(3, "eu")).expect("(3, eu)");
    assert_eq!(three.value(1), Value::Null);
    assert_eq!(three.created_micros(), None);
}

#[tokio::test]
async fn problems_name_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).expect("mkdir");
    let defs = parse_features_yaml(YAML, Some(dir.path())).expect("defs");

    let err = fstore_offline::materialize(&defs, "spend", 1, NOW, &[])
        .await
        .expect_err("empty prefix");
    assert!(err.to_string().contains("no csv files"), "{err}");

    std::fs::write(
        lake.join("a.csv"),
        "customer_id,region,ts,created,amount\n1,eu,2026-02-20T00:00:00Z,,1.0\n",
    )
    .expect("write");
    let err = fstore_offline::materialize(&defs, "spend", 1, NOW, &[])
        .await
        .expect_err("missing column");
    assert!(
        err.to_string().contains("a.csv") && err.to_string().contains("no column `comment`"),
        "{err}"
    );

    // A bad value is not the file's problem but its row's: rejected, naming file and value.
    std::fs::write(
        lake.join("a.csv"),
        "customer_id,region,ts,created,amount,comment\nseven,eu,2026-02-20T00:00:00Z,,1.0,x\n",
    )
    .expect("write");
    let m = fstore_offline::materialize(&defs, "spend", 1, NOW, &[])
        .await
        .expect("bad key rejected");
    assert_eq!((m.rows_read, m.rows_written, m.rows_rejected), (1, 0, 1));
    assert!(
        m.rejected[0].file.ends_with("a.csv") && m.rejected[0].reason.contains("`seven`"),
        "{:?}",
        m.rejected
    );

    let err = fstore_offline::materialize(&defs, "nope", 1, NOW, &[])
        .await
        .expect_err("unknown view");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn bad_rows_are_rejected_and_the_snapshot_holds_the_good_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).expect("mkdir");
    let header = "customer_id,region,ts,created,amount,comment\n";
    std::fs::write(
        lake.join("a.csv"),
        format!(
            "{header}1,eu,2026-02-20T00:00:00Z,,10.0,first\n\
             1,eu,2026-02-25T00:00:00Z,,lots,newer but unreadable\n\
             ,eu,2026-02-25T00:00:00Z,,1.0,no customer\n\
             2,eu,,,2.0,no time\n\
             2,eu,2026-02-21T00:00:00Z,,3.0,kept\n"
        ),
    )
    .expect("write");
    std::fs::write(
        lake.join("b.csv"),
        format!("{header}3,us,2026-02-26T00:00:00Z,yesterday,4.0,bad created\n3,us,2026-02-20T00:00:00Z,,5.0,older\n"),
    )
    .expect("write");
    let defs = parse_features_yaml(YAML, Some(dir.path())).expect("defs");
    let m = fstore_offline::materialize(&defs, "spend", 1, NOW, &[])
        .await
        .expect("materialize");
    assert_eq!(
        (
            m.rows_read,
            m.rows_written,
            m.rows_superseded,
            m.rows_rejected
        ),
        (7, 3, 0, 4)
    );
    assert_eq!(m.rows_rejected, m.rejected.len() as u64);
    assert_eq!(
        m.files.iter().map(|f| f.rows).collect::<Vec<_>>(),
        vec![5, 2]
    );
    let a = format!("{}/a.csv", lake.display());
    let b = format!("{}/b.csv", lake.display());
    let got: Vec<(&str, u64, &str)> = m
        .rejected
        .iter()
        .map(|r| (r.file.as_str(), r.row, r.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                a.as_str(),
                2,
                "column `amount`: cannot parse `lots` as float64 (file line 3)"
            ),
            (a.as_str(), 3, "join key `customer_id` is null"),
            (a.as_str(), 4, "event timestamp `ts` is null"),
            (
                b.as_str(),
                1,
                "column `created`: cannot parse `yesterday` as timestamp (file line 2)"
            ),
        ]
    );

    let snap = Snapshot::from_bytes(m.to_vec()).expect("valid");
    // The unreadable newer row is not served; the older good one is.
    assert_eq!(
        snap.get(&key(1, "eu")).expect("(1, eu)").value(0),
        Value::Float64(10.0)
    );
    assert_eq!(
        snap.get(&key(2, "eu")).expect("(2, eu)").value(1),
        Value::String("kept")
    );
    assert_eq!(
        snap.get(&key(3, "us")).expect("(3, us)").value(0),
        Value::Float64(5.0)
    );
}
