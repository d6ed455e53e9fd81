//! Freshness of the pipeline, end to end, with a control plane and an edge as processes over
//! HTTP on the quickstart's data at 100,000 customers:
//! - `push_1000_rows_served`: `POST /v1/push` of 1,000 rows until the edge answers the last
//!   pushed value (append to the offline store, incremental run, delta publish, notification,
//!   edge download and swap), for a plain view and for the aggregating `customer_rfm`;
//! - `incremental_day`: a new file with one day of orders for the 100,000 customers, then
//!   `POST /v1/materialize {"mode": "auto"}` of `customer_rfm` until it has published.
//!
//! Run with `cargo build --release -p fstore-cli && cargo bench -p fstore-tests --bench
//! pipeline` (the benchmark starts `target/release/fstore`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use criterion::{Criterion, criterion_group, criterion_main};
use fstore_tests::{Proc, control_plane_and_edge, fstore, quickstart_data};
use serde_json::{Value, json};

const CUSTOMERS: i64 = 100_000;
const DAY: i64 = 86_400_000_000;

/// A plain view on a directory of JSON lines, which pushes can append to (the quickstart's
/// CRM source is one file).
const PROFILE_YAML: &str = r#"
  - name: live_profile
    entities: [customer]
    source: profile_updates
    ttl: 3650d
    features:
      - {name: tier, type: string}
      - {name: score, type: float64}
"#;

struct Bench {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    cp: Proc,
    edge: Proc,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

fn setup() -> Bench {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_path_buf();
    quickstart_data(&dir, CUSTOMERS as u64);
    let profiles = dir.join("data/profile_updates");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let lines: String = (1..=CUSTOMERS)
        .map(|c| {
            format!(
                "{}\n",
                json!({"customer_id": c, "updated_at": rfc3339(now() - DAY), "tier": "base", "score": 1.0})
            )
        })
        .collect();
    std::fs::write(profiles.join("base.jsonl"), lines).expect("profiles");
    let yaml = std::fs::read_to_string(dir.join("features.yaml")).expect("yaml");
    let yaml = yaml
        .replacen(
            "sources:\n",
            "sources:\n  - name: profile_updates\n    path: data/profile_updates/\n    format: jsonl\n    timestamp_field: updated_at\n",
            1,
        )
        .replace("\non_demand_views:", &format!("{PROFILE_YAML}\non_demand_views:"));
    std::fs::write(dir.join("features.yaml"), yaml).expect("yaml");
    let env = [
        ("FSTORE_DATABASE_URL", "registry.db"),
        ("FSTORE_STORE_URL", "objects"),
        ("FSTORE_LOG", "warn"),
    ];
    for args in [&["apply", "-f", "features.yaml"][..], &["materialize"]] {
        let (ok, _, err) = fstore(args, &env, &dir);
        assert!(ok, "{args:?}: {err}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (cp, edge) = rt.block_on(control_plane_and_edge(&env, &dir, &[]));
    Bench {
        _tmp: tmp,
        dir,
        cp,
        edge,
        http: reqwest::Client::new(),
        rt,
    }
}

impl Bench {
    async fn feature(&self, reference: &str, customer: i64) -> Value {
        let v: Value = self
            .http
            .post(format!("{}/v1/features", self.edge.url))
            .json(&json!({"features": [reference], "entities": {"customer_id": [customer]}}))
            .send()
            .await
            .expect("lookup")
            .json()
            .await
            .expect("json");
        v["results"][0]["values"][0].clone()
    }

    /// Pushes `rows` to `source` and waits until the edge answers `want` for `customer`.
    async fn push_until_served(
        &self,
        source: &str,
        rows: Vec<Value>,
        reference: &str,
        customer: i64,
        want: &Value,
    ) -> Duration {
        let started = Instant::now();
        let r = self
            .http
            .post(format!("{}/v1/push", self.cp.url))
            .json(&json!({"source": source, "rows": rows}))
            .send()
            .await
            .expect("push");
        assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
        loop {
            if &self.feature(reference, customer).await == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "never served {want}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// One day of orders (as many as the generator writes per day on average, 0 to 3 per
/// customer) in a new file of today's partition, dated between midnight and now.
fn write_day(dir: &Path, n: u64) {
    let today = now() - now().rem_euclid(DAY);
    let span = (now() - today).max(1);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ n;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ids, mut customers, mut ts, mut amounts) = (vec![], vec![], vec![], vec![]);
    // About 11 orders per customer a year.
    let orders = CUSTOMERS * 11 / 365;
    for i in 0..orders {
        ids.push(1_000_000_000 + n as i64 * 1_000_000 + i);
        customers.push((next() % CUSTOMERS as u64) as i64 + 1);
        ts.push(today + (next() % span as u64) as i64);
        amounts.push((next() % 30_000) as f64 / 100.0);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int64, false),
        Field::new(
            "order_ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Float64, false),
        Field::new("channel", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)) as ArrayRef,
            Arc::new(Int64Array::from(customers)),
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(StringArray::from(vec!["web"; orders as usize])),
        ],
    )
    .expect("batch");
    let part = dir
        .join("data/orders")
        .join(format!("date={}", &rfc3339(today)[..10]));
    std::fs::create_dir_all(&part).expect("mkdir");
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    std::fs::write(part.join(format!("day-{n}.parquet")), out).expect("write");
}

fn pipeline(c: &mut Criterion) {
    let b = setup();
    let mut g = c.benchmark_group("push_1000_rows_served");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let round = std::sync::atomic::AtomicI64::new(0);
    g.bench_function("plain_view", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let r = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let score = 1000.0 + r as f64;
                let first = (r * 1000) % (CUSTOMERS - 1000) + 1;
                let rows: Vec<Value> = (first..first + 1000)
                    .map(|c| json!({"customer_id": c, "updated_at": rfc3339(now()), "tier": "pushed", "score": score}))
                    .collect();
                total += b.rt.block_on(b.push_until_served(
                    "profile_updates",
                    rows,
                    "live_profile:score",
                    first + 999,
                    &json!(score),
                ));
            }
            total
        })
    });
    g.bench_function("customer_rfm", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let r = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let first = (r * 1000) % (CUSTOMERS - 1000) + 1;
                let at = now() - 1_000;
                let rows: Vec<Value> = (first..first + 1000)
                    .map(|c| json!({"order_id": -r * 1000 - c, "customer_id": c, "order_ts": rfc3339(at), "amount": 12.5, "channel": "app"}))
                    .collect();
                let want = json!(rfc3339(at));
                total += b.rt.block_on(b.push_until_served(
                    "orders",
                    rows,
                    "customer_rfm:last_order_at",
                    first + 999,
                    &want,
                ));
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("incremental_day");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    let day = std::sync::atomic::AtomicU64::new(0);
    g.bench_function("customer_rfm_100k", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                write_day(
                    &b.dir,
                    day.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                );
                let started = Instant::now();
                let report: Value = b.rt.block_on(async {
                    let r = b
                        .http
                        .post(format!("{}/v1/materialize", b.cp.url))
                        .json(&json!({"mode": "auto", "views": ["customer_rfm"]}))
                        .send()
                        .await
                        .expect("materialize");
                    assert_eq!(r.status().as_u16(), 200);
                    r.json().await.expect("json")
                });
                total += started.elapsed();
                let s = &report["snapshots"][0];
                eprintln!(
                    "  {} v{}: {} entities, {} rows read, {} ms in the run",
                    s["mode"], s["version"], s["rows_written"], s["rows_read"], s["duration_ms"]
                );
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
