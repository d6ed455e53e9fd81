//! Property test: windowed aggregations in a training set equal a plain reference that, for
//! each entity row, filters the events by hand. Random events with many equal timestamps,
//! nulls, ttl edges, unknown keys and queries before, between and after events.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use fstore_snapshot::FeatureRef;
use proptest::prelude::*;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
// 2026-03-01T00:00:00Z
const T0: i64 = 1_772_323_200_000_000;

const YAML: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: orders
    path: orders.parquet
    timestamp_field: ts
feature_views:
  - name: v
    entities: [customer]
    source: orders
    ttl: TTL
    features:
      - {name: n, type: int64, aggregation: count}
      - {name: n_amount_3d, type: int64, aggregation: count, column: amount, window: 3d}
      - {name: sum_3d, type: float64, aggregation: sum, column: amount, window: 3d}
      - {name: avg_7d, type: float64, aggregation: avg, column: amount, window: 7d}
      - {name: min_7d, type: float64, aggregation: min, column: amount, window: 7d}
      - {name: max_3d, type: float64, aggregation: max, column: amount, window: 3d}
      - {name: sd_7d, type: float64, aggregation: stddev, column: amount, window: 7d}
      - {name: distinct_7d, type: int64, aggregation: count_distinct, column: channel, window: 7d}
      - {name: last_channel, type: string, aggregation: last, column: channel}
      - {name: recency_h, type: int64, aggregation: recency, unit: 1h}
      - {name: age_d, type: float64, aggregation: age, window: 7d}
"#;

#[derive(Debug, Clone)]
struct Event {
    key: i64,
    ts: i64,
    amount: Option<f64>,
    channel: Option<&'static str>,
}

fn event() -> impl Strategy<Value = Event> {
    (
        0i64..4,
        0i64..(12 * 24),
        proptest::option::of(0i64..50),
        proptest::option::of(0usize..3),
    )
        .prop_map(|(key, h, amount, ch)| Event {
            key,
            // Hours over 12 days, so windows (3d, 7d) and the ttl (5d) cut through them and
            // many events share a timestamp.
            ts: T0 + h * HOUR,
            amount: amount.map(|a| a as f64),
            channel: ch.map(|c| ["web", "app", "store"][c]),
        })
}

fn write_orders(dir: &std::path::Path, events: &[Event]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("amount", DataType::Float64, true),
        Field::new("channel", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.key))),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                events.iter().map(|e| e.ts),
            )),
            Arc::new(Float64Array::from(
                events.iter().map(|e| e.amount).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                events.iter().map(|e| e.channel).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch");
    let file = std::fs::File::create(dir.join("orders.parquet")).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// What the reference says for one feature: integers, floats and strings, or null.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    I(i64),
    F(f64),
    S(String),
}

/// The plain reference: filter, then fold, for each feature.
fn reference(events: &[Event], key: i64, t: i64, ttl: i64) -> Vec<V> {
    // Events of the key up to t, in (event time, position) order: the later-written wins ties.
    let mut mine: Vec<(usize, &Event)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.key == key && e.ts <= t)
        .collect();
    mine.sort_by_key(|(i, e)| (e.ts, *i));
    let Some((_, latest)) = mine.last() else {
        return vec![V::Null; 11];
    };
    if ttl > 0 && latest.ts < t - ttl {
        return vec![V::Null; 11];
    }
    let within = |w: i64| -> Vec<&Event> {
        mine.iter()
            .map(|(_, e)| *e)
            .filter(|e| e.ts > t - w)
            .collect()
    };
    let amounts = |w: i64| -> Vec<f64> { within(w).iter().filter_map(|e| e.amount).collect() };
    let (a3, a7) = (amounts(3 * DAY), amounts(7 * DAY));
    let fmin = |v: &[f64]| v.iter().copied().reduce(f64::min).map_or(V::Null, V::F);
    let fmax = |v: &[f64]| v.iter().copied().reduce(f64::max).map_or(V::Null, V::F);
    let avg = if a7.is_empty() {
        V::Null
    } else {
        V::F(a7.iter().sum::<f64>() / a7.len() as f64)
    };
    let sd = if a7.len() < 2 {
        V::Null
    } else {
        let m = a7.iter().sum::<f64>() / a7.len() as f64;
        V::F((a7.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (a7.len() - 1) as f64).sqrt())
    };
    let mut channels: Vec<&str> = within(7 * DAY).iter().filter_map(|e| e.channel).collect();
    channels.sort_unstable();
    channels.dedup();
    let last = mine
        .iter()
        .rev()
        .find_map(|(_, e)| e.channel)
        .map_or(V::Null, |c| V::S(c.to_string()));
    let w7 = within(7 * DAY);
    let age = w7
        .first()
        .map_or(V::Null, |e| V::F((t - e.ts) as f64 / DAY as f64));
    vec![
        V::I(mine.len() as i64),
        V::I(a3.len() as i64),
        V::F(a3.iter().sum::<f64>()),
        avg,
        fmin(&a7),
        fmax(&a3),
        sd,
        V::I(channels.len() as i64),
        last,
        V::I((t - latest.ts).div_euclid(HOUR)),
        age,
    ]
}

fn value(b: &RecordBatch, col: usize, row: usize) -> V {
    let a = b.column(col);
    if a.is_null(row) {
        return V::Null;
    }
    match a.data_type() {
        DataType::Int64 => V::I(a.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => V::F(a.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => V::S(a.as_string::<i32>().value(row).to_string()),
        other => panic!("unexpected type {other}"),
    }
}

fn close(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::F(x), V::F(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn aggregations_match_the_reference(
        events in proptest::collection::vec(event(), 1..40),
        queries in proptest::collection::vec((0i64..5, -24i64..(14 * 24)), 1..30),
        with_ttl in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        write_orders(dir.path(), &events);
        let ttl = if with_ttl { 5 * DAY } else { 0 };
        let yaml = YAML.replace("TTL", if with_ttl { "5d" } else { "0" });
        let defs = fstore_spec::parse_features_yaml(&yaml, Some(dir.path())).expect("defs");
        // Query times on the hour (equal to event times) and in between.
        let times: Vec<i64> = queries
            .iter()
            .enumerate()
            .map(|(i, (_, h))| T0 + h * HOUR + if i % 3 == 0 { HOUR / 2 } else { 0 })
            .collect();
        let entities = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("customer_id", DataType::Int64, false),
                Field::new(
                    "event_timestamp",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    false,
                ),
            ])),
            vec![
                Arc::new(Int64Array::from_iter_values(queries.iter().map(|q| q.0))),
                Arc::new(TimestampMicrosecondArray::from(times.clone())),
            ],
        )
        .expect("entities");
        let view = defs.view("v").expect("view");
        let request = fstore_offline::HistoricalRequest {
            features: view
                .features
                .iter()
                .map(|f| FeatureRef::parse(&format!("v:{}", f.name)).expect("ref"))
                .collect(),
            full_feature_names: false,
            timestamp_column: "event_timestamp".into(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let set = rt
            .block_on(fstore_offline::historical(&defs, &entities, &request, &HashMap::new()))
            .expect("historical");
        prop_assert_eq!(set.batch.num_rows(), queries.len());
        for (row, ((key, _), t)) in queries.iter().zip(&times).enumerate() {
            let want = reference(&events, *key, *t, ttl);
            for (f, w) in want.iter().enumerate() {
                let got = value(&set.batch, 2 + f, row);
                prop_assert!(
                    close(&got, w),
                    "row {} (key {}, t = T0 + {} h), feature {}: got {:?}, want {:?}",
                    row,
                    key,
                    (t - T0) as f64 / HOUR as f64,
                    view.features[f].name,
                    got,
                    w
                );
            }
        }
    }
}
