//! Data-lake sources end to end: one seeded order history written as Parquet, CSV and JSON
//! lines under Hive `date=…/` partitions, to a local directory and to a moto S3 bucket, and
//! into a PostgreSQL table; every copy materialized through `fstore_offline::materialize`
//! must give the same snapshot, and wrong input must fail with a clear error.
//!
//! The tests share one process environment: the S3 store reads `AWS_*` variables and the
//! PostgreSQL source expands `${VAR}` from it. Each test therefore runs under one lock, on a
//! runtime it shuts down before releasing it, so setting a variable never races a reader.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Float64Builder, Int64Array, ListBuilder, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use fstore_offline::{OfflineError, list_source_files, materialize, read_source};
use fstore_snapshot::{KeyBuf, Snapshot, Value};
use fstore_tests::{S3Server, postgres_url};

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `body` alone (see the module comment), on a runtime shut down before returning.
fn serial<T>(setup: impl FnOnce(), body: impl std::future::Future<Output = T>) -> T {
    let _guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    setup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(body);
    drop(rt);
    out
}

fn skip_postgres() -> bool {
    std::env::var("FSTORE_SKIP_POSTGRES").is_ok_and(|v| v == "1")
}

const DAY: i64 = 86_400_000_000;
/// 2026-05-01T00:00:00Z in µs.
const MAY1: i64 = 1_777_593_600_000_000;
const DAYS: usize = 3;
const ROWS: usize = 240;
const CUSTOMERS: u64 = 40;
/// Materialization time: after every event, so no ttl expires anything.
const NOW: i64 = MAY1 + 30 * DAY;

#[derive(Debug, Clone)]
struct Order {
    customer_id: i64,
    order_ts: i64,
    amount: Option<f64>,
    channel: Option<&'static str>,
    is_gift: bool,
    /// Whole seconds, so that a millisecond Parquet column holds it exactly.
    shipped_at: i64,
    embedding: Vec<f64>,
}

impl Order {
    fn day(&self) -> usize {
        ((self.order_ts - MAY1) / DAY) as usize
    }
}

/// The seeded history: every event time distinct (so "latest" never needs a tie-break),
/// some null amounts and channels.
fn orders() -> Vec<Order> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..ROWS)
        .map(|i| {
            let day = (i % DAYS) as i64;
            let order_ts = MAY1 + day * DAY + (i as i64) * 300_000_000 + 123;
            Order {
                customer_id: (next() % CUSTOMERS) as i64 + 1,
                order_ts,
                amount: (i % 7 != 3).then(|| (next() % 50_000) as f64 / 100.0),
                channel: (i % 11 != 5).then(|| ["web", "app", "store"][(next() % 3) as usize]),
                is_gift: next() % 4 == 0,
                shipped_at: (order_ts / 1_000_000 + (next() % 7200) as i64) * 1_000_000,
                embedding: (0..3).map(|_| (next() % 1000) as f64 / 8.0).collect(),
            }
        })
        .collect()
}

fn rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .expect("in range")
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn date_dir(day: usize) -> String {
    format!("date=2026-05-{:02}", day + 1)
}

fn parquet_bytes(rows: &[&Order]) -> Vec<u8> {
    let mut emb = ListBuilder::new(Float64Builder::new());
    for o in rows {
        emb.values().append_slice(&o.embedding);
        emb.append(true);
    }
    let batch = RecordBatch::try_from_iter([
        // Column order differs from the other formats on purpose; event time carries a zone
        // and shipped_at is in milliseconds, both normalized on read.
        (
            "amount",
            Arc::new(rows.iter().map(|o| o.amount).collect::<Float64Array>()) as ArrayRef,
        ),
        (
            "customer_id",
            Arc::new(rows.iter().map(|o| o.customer_id).collect::<Int64Array>()) as ArrayRef,
        ),
        (
            "order_ts",
            Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter().map(|o| o.order_ts).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        (
            "channel",
            Arc::new(rows.iter().map(|o| o.channel).collect::<StringArray>()) as ArrayRef,
        ),
        (
            "is_gift",
            Arc::new(
                rows.iter()
                    .map(|o| Some(o.is_gift))
                    .collect::<BooleanArray>(),
            ) as ArrayRef,
        ),
        (
            "shipped_at",
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|o| o.shipped_at / 1000).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        ("embedding", Arc::new(emb.finish()) as ArrayRef),
        (
            "note",
            Arc::new(StringArray::from(vec!["unused"; rows.len()])) as ArrayRef,
        ),
    ])
    .expect("batch");
    let mut out = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}

fn csv_bytes(rows: &[&Order]) -> Vec<u8> {
    let mut s = String::from("order_ts,customer_id,note,amount,channel,is_gift,shipped_at\n");
    for o in rows {
        let _ = writeln!(
            s,
            "{},{},unused,{},{},{},{}",
            rfc3339(o.order_ts),
            o.customer_id,
            o.amount.map(|a| a.to_string()).unwrap_or_default(),
            o.channel.unwrap_or(""),
            o.is_gift,
            rfc3339(o.shipped_at)
        );
    }
    s.into_bytes()
}

fn jsonl_bytes(rows: &[&Order]) -> Vec<u8> {
    let plus2 = FixedOffset::east_opt(2 * 3600).expect("offset");
    let mut s = String::new();
    for (i, o) in rows.iter().enumerate() {
        // Both timestamp forms: RFC 3339 (UTC or with an offset) and integer µs.
        let ts = if i % 2 == 0 {
            format!("\"{}\"", rfc3339(o.order_ts))
        } else {
            o.order_ts.to_string()
        };
        let shipped = DateTime::<Utc>::from_timestamp_micros(o.shipped_at)
            .expect("in range")
            .with_timezone(&plus2)
            .to_rfc3339();
        // A null may be written out or left out.
        let amount = match (o.amount, i % 3) {
            (Some(a), _) => format!(", \"amount\": {a}"),
            (None, 0) => String::new(),
            (None, _) => ", \"amount\": null".into(),
        };
        let channel = match o.channel {
            Some(c) => format!("\"{c}\""),
            None => "null".into(),
        };
        let emb: Vec<String> = o.embedding.iter().map(|v| v.to_string()).collect();
        let _ = writeln!(
            s,
            "{{\"customer_id\": {}, \"order_ts\": {ts}{amount}, \"channel\": {channel}, \"is_gift\": {}, \"shipped_at\": \"{shipped}\", \"embedding\": [{}], \"note\": {{\"x\": 1}}}}",
            o.customer_id,
            o.is_gift,
            emb.join(", ")
        );
    }
    s.into_bytes()
}

/// Every format's files, one per daily partition: (relative path, bytes).
fn lake_files(orders: &[Order]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for day in 0..DAYS {
        let rows: Vec<&Order> = orders.iter().filter(|o| o.day() == day).collect();
        let dir = date_dir(day);
        out.push((
            format!("parquet/{dir}/part-0.parquet"),
            parquet_bytes(&rows),
        ));
        out.push((format!("csv/{dir}/part-0.csv"), csv_bytes(&rows)));
        out.push((format!("jsonl/{dir}/part-0.jsonl"), jsonl_bytes(&rows)));
    }
    out
}

/// A schema in the test database for this run, dropped on drop.
struct PgSchema {
    name: String,
}

fn psql(sql: &str) -> Result<(), String> {
    let mut child = std::process::Command::new("psql")
        .args([&postgres_url(), "-qX", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(child.stdin.as_mut().ok_or("stdin")?, sql.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl PgSchema {
    fn create(orders: &[Order]) -> Self {
        let name = format!(
            "fstore_src_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos()
        );
        // Column types chosen to exercise the mapping: int4 keys, numeric money, varchar,
        // timestamp without zone, float8[].
        let mut sql = format!(
            "CREATE SCHEMA {name};
             CREATE TABLE {name}.orders (customer_id int4 NOT NULL, order_ts timestamptz NOT NULL,
               amount numeric(10,2), channel varchar(8), is_gift bool NOT NULL,
               shipped_at timestamp NOT NULL, embedding float8[] NOT NULL, note jsonb);
             INSERT INTO {name}.orders VALUES\n"
        );
        let values: Vec<String> = orders
            .iter()
            .map(|o| {
                let emb: Vec<String> = o.embedding.iter().map(|v| v.to_string()).collect();
                format!(
                    "({}, '{}', {}, {}, {}, '{}', ARRAY[{}]::float8[], '{{}}')",
                    o.customer_id,
                    rfc3339(o.order_ts),
                    o.amount.map_or("NULL".into(), |a| a.to_string()),
                    o.channel.map_or("NULL".into(), |c| format!("'{c}'")),
                    o.is_gift,
                    rfc3339(o.shipped_at).trim_end_matches('Z'),
                    emb.join(",")
                )
            })
            .collect();
        sql.push_str(&values.join(",\n"));
        sql.push_str(";\n");
        if let Err(e) = psql(&sql) {
            panic!("creating the test table in {name}: {e}");
        }
        Self { name }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// The PostgreSQL URL with its user moved into `${FSTORE_IT_PG_USER}`, so the test also
/// proves variables are expanded at read time; returns (template, user).
fn pg_template() -> (String, String) {
    let base = postgres_url();
    let (scheme, rest) = base.split_once("://").expect("url");
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let (user, pw) = match userinfo.split_once(':') {
                Some((u, p)) => (u, format!(":{p}")),
                None => (userinfo, String::new()),
            };
            (
                format!("{scheme}://${{FSTORE_IT_PG_USER}}{pw}@{host}"),
                user.to_string(),
            )
        }
        None => (base.clone(), String::new()),
    }
}

const FEATURES: &str = "
      - {name: amount, type: float64}
      - {name: channel, type: string}
      - {name: is_gift, type: bool}
      - {name: shipped_at, type: timestamp}";

fn yaml(sources: &[(String, String)]) -> String {
    let mut y = String::from(
        "entities:\n  - name: customer\n    join_keys: [{name: customer_id, type: int64}]\nsources:\n",
    );
    for (name, body) in sources {
        let _ = writeln!(y, "  - name: {name}\n    timestamp_field: order_ts\n{body}");
    }
    y.push_str("feature_views:\n");
    for (name, _) in sources {
        let _ = writeln!(
            y,
            "  - name: orders_{name}\n    entities: [customer]\n    source: {name}\n    features:{FEATURES}"
        );
        if !name.starts_with("csv") {
            let _ = writeln!(
                y,
                "  - name: vectors_{name}\n    entities: [customer]\n    source: {name}\n    features:\n      - {{name: embedding, type: \"list<float64>\"}}"
            );
        }
    }
    y
}

fn render(v: Value<'_>) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Int64(i) => format!("i{i}"),
        Value::Float64(f) => format!("f{f:?}"),
        Value::String(s) => format!("s{s:?}"),
        Value::Bool(b) => format!("b{b}"),
        Value::Timestamp(t) => format!("t{t}"),
        Value::ListFloat64(l) => format!("l{:?}", l.iter().collect::<Vec<f64>>()),
    }
}

type Contents = BTreeMap<Vec<u8>, (i64, Vec<String>)>;

fn contents(bytes: Vec<u8>) -> Contents {
    let snap = Snapshot::from_bytes(bytes).expect("snapshot opens");
    let n = snap.schema().features.len();
    snap.rows()
        .map(|r| {
            (
                r.key().to_vec(),
                (
                    r.event_micros(),
                    (0..n).map(|i| render(r.value(i))).collect(),
                ),
            )
        })
        .collect()
}

/// What the snapshots must hold, computed from the generated rows directly.
fn expected(orders: &[Order], vectors: bool) -> Contents {
    let mut latest: BTreeMap<i64, &Order> = BTreeMap::new();
    for o in orders {
        let e = latest.entry(o.customer_id).or_insert(o);
        if o.order_ts > e.order_ts {
            *e = o;
        }
    }
    latest
        .values()
        .map(|o| {
            let mut k = KeyBuf::new();
            k.push_i64(o.customer_id);
            let values = if vectors {
                vec![render(Value::ListFloat64(fstore_snapshot::F64List::Slice(
                    &o.embedding,
                )))]
            } else {
                vec![
                    o.amount
                        .map_or("null".into(), |a| render(Value::Float64(a))),
                    o.channel
                        .map_or("null".into(), |c| render(Value::String(c))),
                    render(Value::Bool(o.is_gift)),
                    render(Value::Timestamp(o.shipped_at)),
                ]
            };
            (k.as_bytes().to_vec(), (o.order_ts, values))
        })
        .collect()
}

#[test]
fn formats_and_stores_give_identical_snapshots_and_partitions_prune() {
    let orders = orders();
    let dir = tempfile::tempdir().expect("tmp");
    let s3 = S3Server::start("fstore-sources");
    let (pg_url, pg_user) = pg_template();
    let pg = (!skip_postgres()).then(|| PgSchema::create(&orders));
    let setup = || {
        for (k, v) in s3.env() {
            // SAFETY: `serial` holds the lock and no runtime or other test thread exists.
            unsafe { std::env::set_var(k, v) };
        }
        unsafe { std::env::set_var("FSTORE_IT_PG_USER", &pg_user) };
    };
    serial(setup, async {
        let files = lake_files(&orders);
        let bucket = fstore_storage::Store::from_url("s3://fstore-sources").expect("s3 store");
        for (rel, bytes) in &files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, bytes).expect("write");
            bucket
                .put_new(&format!("lake/{rel}"), bytes.clone().into())
                .await
                .expect("upload");
        }
        // The litter a Spark job leaves is never read.
        std::fs::write(dir.path().join("parquet/date=2026-05-01/_SUCCESS"), "").expect("write");
        bucket
            .put_new("lake/csv/date=2026-05-01/_SUCCESS", Vec::new().into())
            .await
            .expect("upload");

        let local = dir.path().display().to_string();
        // One location style per source: prefix, `**` glob, segment globs, `?`.
        let mut sources: Vec<(String, String)> = vec![
            (
                "parquet_local".into(),
                format!("    path: {local}/parquet/\n    format: parquet"),
            ),
            (
                "csv_local".into(),
                format!("    path: {local}/csv/**/*.csv"),
            ),
            (
                "jsonl_local".into(),
                format!("    path: {local}/jsonl/date=*/part-?.jsonl"),
            ),
            (
                "parquet_s3".into(),
                "    path: s3://fstore-sources/lake/parquet/**/*.parquet".into(),
            ),
            (
                "csv_s3".into(),
                "    path: s3://fstore-sources/lake/csv/\n    format: csv".into(),
            ),
            (
                "jsonl_s3".into(),
                "    path: s3://fstore-sources/lake/jsonl/date=2026-05-0?/*.jsonl".into(),
            ),
        ];
        if let Some(pg) = &pg {
            sources.push((
                "pg".into(),
                format!(
                    "    path: {pg_url}\n    query: SELECT customer_id, order_ts, amount, channel, is_gift, shipped_at, embedding, note FROM {}.orders",
                    pg.name
                ),
            ));
        }
        let defs = fstore_spec::parse_features_yaml(&yaml(&sources), None)
            .unwrap_or_else(|e| panic!("definitions: {e:?}"));

        let want = expected(&orders, false);
        let want_vectors = expected(&orders, true);
        assert_eq!(want.len(), CUSTOMERS as usize, "every customer has orders");
        for (name, _) in &sources {
            let m = materialize(&defs, &format!("orders_{name}"), 1, NOW, &[])
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(m.rows_read, ROWS as u64, "{name}");
            assert_eq!(m.files.len(), if name == "pg" { 1 } else { DAYS }, "{name}");
            let got = contents(m.to_vec());
            assert_eq!(got.len(), want.len(), "{name}");
            for (key, w) in &want {
                assert_eq!(got.get(key), Some(w), "{name}: key {key:?}");
            }
            if !name.starts_with("csv") {
                let m = materialize(&defs, &format!("vectors_{name}"), 1, NOW, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(contents(m.to_vec()), want_vectors, "{name}: embeddings");
            }
        }

        // Pruning: a job needing only May 2nd reads one partition of three on every store.
        let may2 = Some((MAY1 + DAY, MAY1 + 2 * DAY - 1));
        for (name, _) in &sources {
            let source = defs.source(name).expect("source");
            let all = list_source_files(source, None).await.expect("lists");
            let some = list_source_files(source, may2).await.expect("lists");
            if name == "pg" {
                assert_eq!((all.len(), some.len(), some.pruned), (1, 1, 0), "{name}");
                // Shown as written (variables unexpanded, any password redacted).
                assert!(
                    some[0]
                        .display
                        .starts_with("postgres://${FSTORE_IT_PG_USER}"),
                    "{}",
                    some[0].display
                );
                continue;
            }
            assert_eq!((all.len(), all.pruned), (DAYS, 0), "{name}");
            assert_eq!((some.len(), some.pruned), (1, DAYS - 1), "{name}");
            assert!(
                some[0].display.contains("date=2026-05-02/"),
                "{}",
                some[0].display
            );
            assert_eq!(some[0].partition, Some((MAY1 + DAY, MAY1 + 2 * DAY)));
            // The one file left holds exactly that day's rows.
            let cols = vec!["customer_id".to_string()];
            let batches = read_source(&some[0], source.format, &cols, &[])
                .await
                .expect("reads");
            let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
            assert_eq!(n, orders.iter().filter(|o| o.day() == 1).count(), "{name}");
        }

        // A glob matching nothing in the bucket is an error naming the source and path.
        let mut nothing = defs.source("csv_s3").expect("source").clone();
        nothing.path = "s3://fstore-sources/lake/csv/date=2027-*/*.csv".into();
        let e = list_source_files(&nothing, None)
            .await
            .expect_err("no files");
        assert!(
            matches!(e, OfflineError::NoFiles { .. }) && e.to_string().contains("date=2027-*"),
            "{e}"
        );
    });
    drop(pg);
}

/// One feature view over a source written inline, for the error cases.
fn one_view(source_body: &str, features: &str) -> fstore_spec::Definitions {
    let y = format!(
        "entities:\n  - name: customer\n    join_keys: [{{name: customer_id, type: int64}}]\nsources:\n  - name: src\n    timestamp_field: order_ts\n{source_body}\nfeature_views:\n  - name: v\n    entities: [customer]\n    source: src\n    features:\n{features}\n"
    );
    fstore_spec::parse_features_yaml(&y, None).unwrap_or_else(|e| panic!("definitions: {e:?}\n{y}"))
}

async fn fails(defs: &fstore_spec::Definitions) -> OfflineError {
    match materialize(defs, "v", 1, NOW, &[]).await {
        Ok(m) => panic!("materialized {} rows from bad input", m.rows_written),
        Err(e) => e,
    }
}

/// Materializes `defs`, which must succeed with rows set aside.
async fn rejects(defs: &fstore_spec::Definitions) -> fstore_offline::Materialized {
    let m = materialize(defs, "v", 1, NOW, &[])
        .await
        .unwrap_or_else(|e| panic!("bad rows must be set aside, not fail the run: {e}"));
    assert!(m.rows_rejected > 0, "nothing was rejected");
    assert_eq!(m.rows_rejected, m.rejected.len() as u64);
    m
}

#[test]
fn wrong_input_is_a_clear_error() {
    let orders = orders();
    let dir = tempfile::tempdir().expect("tmp");
    for (rel, bytes) in lake_files(&orders) {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
    }
    let pg = (!skip_postgres()).then(|| PgSchema::create(&orders));
    let local = dir.path().display().to_string();
    serial(|| {}, async {
        let formats = [
            (
                "parquet",
                format!("    path: {local}/parquet/\n    format: parquet"),
            ),
            ("csv", format!("    path: {local}/csv/**/*.csv")),
            ("jsonl", format!("    path: {local}/jsonl/**/*.jsonl")),
        ];
        for (format, body) in &formats {
            // A column the data does not have.
            let e = fails(&one_view(body, "      - {name: discount, type: float64}")).await;
            let msg = e.to_string();
            assert!(
                msg.contains("`discount`") && msg.contains("date=2026-05-01/part-0"),
                "{format}: {msg}"
            );
            // A column of the wrong type: channel is text.
            let defs = one_view(body, "      - {name: channel, type: int64}");
            if *format == "parquet" {
                // A typed column that does not fit is a definition error.
                let msg = fails(&defs).await.to_string();
                assert!(msg.contains("channel"), "{format}: {msg}");
                assert!(msg.contains("date=2026-05-01/part-0"), "{format}: {msg}");
            } else {
                // Text formats set each row with a bad value aside, naming file, row and
                // column, and keep the rest (rows whose channel is empty parse as null).
                let m = rejects(&defs).await;
                let first = &m.rejected[0];
                assert!(
                    first.file.contains("date=2026-05-01/part-0"),
                    "{format}: {first:?}"
                );
                assert!(first.reason.contains("channel"), "{format}: {first:?}");
                assert!(
                    m.rows_written > 0,
                    "{format}: the null-channel rows are kept"
                );
            }
        }
        // A glob matching nothing.
        let e = fails(&one_view(
            &format!("    path: {local}/csv/date=*/*.parquet\n    format: parquet"),
            "      - {name: amount, type: float64}",
        ))
        .await;
        assert!(matches!(e, OfflineError::NoFiles { .. }), "{e}");
        assert!(e.to_string().contains("csv/date=*/*.parquet"), "{e}");
        // A malformed JSON line in the middle of a partition.
        let bad = dir.path().join("jsonl/date=2026-05-02/part-0.jsonl");
        let mut text = std::fs::read_to_string(&bad).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        let mut broken: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        broken[4] = "{\"customer_id\": 7, \"order_ts\": }".into();
        text = broken.join("\n");
        std::fs::write(&bad, text).expect("write");
        let m = rejects(&one_view(
            &formats[2].1,
            "      - {name: amount, type: float64}",
        ))
        .await;
        assert_eq!(m.rejected.len(), 1, "{:?}", m.rejected);
        let r = &m.rejected[0];
        assert_eq!(r.row, 5, "{r:?}");
        assert!(
            r.file.contains("date=2026-05-02/part-0.jsonl") && r.reason.contains("line 5"),
            "{r:?}"
        );

        let Some(pg) = &pg else {
            eprintln!("FSTORE_SKIP_POSTGRES=1: skipping the PostgreSQL cases");
            return;
        };
        let url = postgres_url();
        let pg_source = |query: &str| format!("    path: {url}\n    query: \"{query}\"");
        // Syntax error: the message points into the query.
        let e = fails(&one_view(
            &pg_source(&format!(
                "SELECT customer_id, order_ts, amount FROM {}.orders WHERE",
                pg.name
            )),
            "      - {name: amount, type: float64}",
        ))
        .await;
        let msg = e.to_string();
        assert!(matches!(e, OfflineError::Postgres { .. }), "{msg}");
        assert!(
            msg.contains("syntax error") && msg.contains("query line 1"),
            "{msg}"
        );
        // Missing column and an unsupported type, named.
        let body = pg_source(&format!("SELECT * FROM {}.orders", pg.name));
        let e = fails(&one_view(&body, "      - {name: discount, type: float64}")).await;
        assert!(e.to_string().contains("no column `discount`"), "{e}");
        let e = fails(&one_view(&body, "      - {name: note, type: string}")).await;
        let msg = e.to_string();
        assert!(msg.contains("`note`") && msg.contains("JSONB"), "{msg}");
        // A text column for an int64 feature.
        let e = fails(&one_view(&body, "      - {name: channel, type: int64}")).await;
        assert!(e.to_string().contains("channel"), "{e}");
        // Nothing listening there: a connection error that never shows the password.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let e = fails(&one_view(
            &format!("    path: postgres://postgres:sup3rsecret@127.0.0.1:{port}/test\n    query: SELECT 1"),
            "      - {name: amount, type: float64}",
        ))
        .await;
        let msg = e.to_string();
        assert!(
            msg.contains("cannot connect") && msg.contains(&port.to_string()),
            "{msg}"
        );
        assert!(
            !msg.contains("sup3rsecret") && msg.contains("postgres:***@"),
            "{msg}"
        );
        let e = fails(&one_view(
            "    path: postgres://postgres@no-such-host.invalid:5432/test\n    query: SELECT 1",
            "      - {name: amount, type: float64}",
        ))
        .await;
        assert!(e.to_string().contains("cannot connect"), "{e}");
        // An unset variable in the URL is named.
        let e = fails(&one_view(
            "    path: postgres://postgres:${FSTORE_IT_UNSET_PASSWORD}@127.0.0.1/test\n    query: SELECT 1",
            "      - {name: amount, type: float64}",
        ))
        .await;
        assert!(e.to_string().contains("FSTORE_IT_UNSET_PASSWORD"), "{e}");
    });
    drop(pg);
}

/// More rows than one batch: the PostgreSQL reader streams them into bounded batches.
#[test]
fn postgres_reads_stream_into_bounded_batches() {
    if skip_postgres() {
        eprintln!("FSTORE_SKIP_POSTGRES=1: skipping");
        return;
    }
    serial(|| {}, async {
        let defs = one_view(
            &format!(
                "    path: {}\n    query: SELECT g::int8 AS customer_id, timestamptz '2026-05-01 00:00:00+00' + g * interval '1 second' AS order_ts, (g % 1000)::numeric / 8 AS amount FROM generate_series(1, 70000) g",
                postgres_url()
            ),
            "      - {name: amount, type: float64}",
        );
        let source = defs.source("src").expect("source");
        let files = list_source_files(source, None).await.expect("lists");
        let cols: Vec<String> = ["customer_id", "order_ts", "amount"]
            .map(String::from)
            .to_vec();
        let batches = read_source(&files[0], source.format, &cols, &[])
            .await
            .expect("reads");
        let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, vec![65_536, 70_000 - 65_536]);
        let m = materialize(&defs, "v", 1, NOW, &[])
            .await
            .expect("materializes");
        assert_eq!((m.rows_read, m.rows_written), (70_000, 70_000));
        let snap = contents(m.to_vec());
        let mut k = KeyBuf::new();
        k.push_i64(69_999);
        let (event, values) = snap.get(k.as_bytes()).expect("row");
        assert_eq!(*event, MAY1 + 69_999 * 1_000_000);
        assert_eq!(values, &vec![render(Value::Float64(999.0 / 8.0))]);
    });
}
