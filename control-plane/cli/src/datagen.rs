//! Deterministic synthetic customers and orders for the quickstart and the benchmarks: the
//! same seed and as-of date always give the same files.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

const DAY: i64 = 86_400_000_000;
const CHANNELS: [&str; 4] = ["web", "app", "store", "marketplace"];
const COUNTRIES: [&str; 6] = ["DE", "FR", "GB", "NL", "ES", "US"];

/// SplitMix64: tiny, fast and stable across versions (unlike a library RNG's stream).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenSpec {
    pub customers: u64,
    pub seed: u64,
    /// Month-end statistics rows per customer (the latest is the as-of date).
    pub months: u32,
    /// Also write the raw orders table.
    pub orders: bool,
    /// Microseconds since the epoch; statistics are computed as of this instant.
    pub as_of_micros: i64,
}

/// Row counts written.
#[derive(Debug, Clone, Default)]
pub struct GenStats {
    pub customers: u64,
    pub orders: u64,
    pub stat_rows: u64,
}

struct Order {
    ts: i64,
    amount: f64,
    channel: usize,
}

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

fn stats_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        ts_field("event_timestamp"),
        ts_field("created_timestamp"),
        Field::new("recency_days", DataType::Int64, true),
        Field::new("frequency_30d", DataType::Int64, false),
        Field::new("frequency_90d", DataType::Int64, false),
        Field::new("frequency_365d", DataType::Int64, false),
        Field::new("monetary_30d", DataType::Float64, false),
        Field::new("monetary_90d", DataType::Float64, false),
        Field::new("monetary_365d", DataType::Float64, false),
        Field::new("avg_order_value", DataType::Float64, true),
        Field::new("max_order_value", DataType::Float64, true),
        Field::new("days_since_signup", DataType::Int64, false),
        Field::new("tenure_months", DataType::Int64, false),
        Field::new("preferred_channel", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, false),
        Field::new("is_active", DataType::Boolean, false),
        Field::new(
            "last_order_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "spend_trend",
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            true,
        ),
    ]))
}

#[derive(Default)]
struct StatCols {
    customer_id: Vec<i64>,
    event: Vec<i64>,
    created: Vec<i64>,
    recency: Vec<Option<i64>>,
    f30: Vec<i64>,
    f90: Vec<i64>,
    f365: Vec<i64>,
    m30: Vec<f64>,
    m90: Vec<f64>,
    m365: Vec<f64>,
    aov: Vec<Option<f64>>,
    max: Vec<Option<f64>>,
    signup_days: Vec<i64>,
    tenure: Vec<i64>,
    channel: Vec<Option<&'static str>>,
    country: Vec<&'static str>,
    active: Vec<bool>,
    last: Vec<Option<i64>>,
    trend: Vec<Option<Vec<Option<f64>>>>,
}

impl StatCols {
    fn len(&self) -> usize {
        self.customer_id.len()
    }
    fn into_batch(self, schema: &Arc<Schema>) -> Result<RecordBatch, arrow::error::ArrowError> {
        let ts = |v: Vec<i64>| {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) as ArrayRef
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(self.customer_id)),
            ts(self.event),
            ts(self.created),
            Arc::new(Int64Array::from(self.recency)),
            Arc::new(Int64Array::from(self.f30)),
            Arc::new(Int64Array::from(self.f90)),
            Arc::new(Int64Array::from(self.f365)),
            Arc::new(Float64Array::from(self.m30)),
            Arc::new(Float64Array::from(self.m90)),
            Arc::new(Float64Array::from(self.m365)),
            Arc::new(Float64Array::from(self.aov)),
            Arc::new(Float64Array::from(self.max)),
            Arc::new(Int64Array::from(self.signup_days)),
            Arc::new(Int64Array::from(self.tenure)),
            Arc::new(StringArray::from(self.channel)),
            Arc::new(StringArray::from(self.country)),
            Arc::new(BooleanArray::from(self.active)),
            Arc::new(TimestampMicrosecondArray::from(self.last).with_timezone("UTC")),
            Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(
                self.trend,
            )),
        ];
        RecordBatch::try_new(schema.clone(), cols)
    }
}

/// Buffered rows of the orders table, written a batch at a time like `StatCols`.
#[derive(Default)]
struct OrderCols {
    id: Vec<i64>,
    customer: Vec<i64>,
    ts: Vec<i64>,
    amount: Vec<f64>,
    channel: Vec<&'static str>,
}

impl OrderCols {
    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("order_id", DataType::Int64, false),
            Field::new("customer_id", DataType::Int64, false),
            ts_field("order_ts"),
            Field::new("amount", DataType::Float64, false),
            Field::new("channel", DataType::Utf8, false),
        ]))
    }

    fn into_batch(self, schema: &Arc<Schema>) -> Result<RecordBatch, arrow::error::ArrowError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(self.id)),
            Arc::new(Int64Array::from(self.customer)),
            Arc::new(TimestampMicrosecondArray::from(self.ts).with_timezone("UTC")),
            Arc::new(Float64Array::from(self.amount)),
            Arc::new(StringArray::from(self.channel)),
        ];
        RecordBatch::try_new(schema.clone(), cols)
    }
}

fn writer(path: &Path, schema: Arc<Schema>) -> anyhow::Result<ArrowWriter<File>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .build();
    Ok(ArrowWriter::try_new(
        File::create(path)?,
        schema,
        Some(props),
    )?)
}

fn round2(x: f64) -> f64 {
    // `+ 0.0` turns the -0.0 an empty float sum yields into 0.0.
    (x * 100.0).round() / 100.0 + 0.0
}

/// Writes `customer_stats.parquet` (and `orders.parquet` when asked) into `dir`.
/// `progress` is called with the number of customers done so far.
pub fn generate(dir: &Path, spec: &GenSpec, progress: &dyn Fn(u64)) -> anyhow::Result<GenStats> {
    std::fs::create_dir_all(dir)?;
    let schema = stats_schema();
    let mut stats_w = writer(&dir.join("customer_stats.parquet"), schema.clone())?;
    let orders_schema = OrderCols::schema();
    let mut orders_w = if spec.orders {
        Some(writer(&dir.join("orders.parquet"), orders_schema.clone())?)
    } else {
        None
    };
    let mut out = GenStats::default();
    let mut cols = StatCols::default();
    let mut order_cols = OrderCols::default();
    let mut rng = Rng::new(spec.seed);
    let as_of = spec.as_of_micros;
    let history = 365 * DAY;
    let mut orders: Vec<Order> = Vec::new();
    for c in 0..spec.customers {
        let id = 1_000 + c as i64;
        let signup = as_of - (30 + rng.below(900) as i64) * DAY;
        let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        // Heavy-tailed activity: most customers buy rarely, a few very often.
        let per_month = rng.exp(1.2).min(20.0);
        let mean_amount = 15.0 + rng.exp(45.0);
        let fav = rng.below(CHANNELS.len() as u64) as usize;
        let churn_at = if rng.f64() < 0.25 {
            as_of - rng.below(300) as i64 * DAY
        } else {
            i64::MAX
        };
        orders.clear();
        if per_month > 0.05 {
            let mut t = (as_of - history).max(signup);
            loop {
                t += (rng.exp(30.0 / per_month) * DAY as f64) as i64 + 1;
                if t > as_of || t > churn_at {
                    break;
                }
                let channel = if rng.f64() < 0.7 {
                    fav
                } else {
                    rng.below(CHANNELS.len() as u64) as usize
                };
                orders.push(Order {
                    ts: t,
                    amount: round2(mean_amount * (0.3 + rng.exp(0.7))),
                    channel,
                });
            }
        }
        for o in &orders {
            out.orders += 1;
            if orders_w.is_some() {
                order_cols.id.push(out.orders as i64);
                order_cols.customer.push(id);
                order_cols.ts.push(o.ts);
                order_cols.amount.push(o.amount);
                order_cols.channel.push(CHANNELS[o.channel]);
            }
        }
        for m in (0..spec.months).rev() {
            let t = as_of - m as i64 * 30 * DAY;
            if t < signup {
                continue;
            }
            let upto: Vec<&Order> = orders.iter().filter(|o| o.ts <= t).collect();
            let within = |d: i64| upto.iter().filter(move |o| o.ts > t - d * DAY);
            let last = upto.last().map(|o| o.ts);
            let mut per_channel = [0u32; 4];
            for o in &upto {
                per_channel[o.channel] += 1;
            }
            let pref = per_channel
                .iter()
                .enumerate()
                .max_by_key(|(_, n)| **n)
                .filter(|(_, n)| **n > 0)
                .map(|(i, _)| CHANNELS[i]);
            let sum365: f64 = within(365).map(|o| o.amount).sum();
            let n365 = within(365).count() as i64;
            cols.customer_id.push(id);
            cols.event.push(t);
            cols.created.push(t + 3_600_000_000);
            cols.recency.push(last.map(|l| (t - l) / DAY));
            cols.f30.push(within(30).count() as i64);
            cols.f90.push(within(90).count() as i64);
            cols.f365.push(n365);
            cols.m30.push(round2(within(30).map(|o| o.amount).sum()));
            cols.m90.push(round2(within(90).map(|o| o.amount).sum()));
            cols.m365.push(round2(sum365));
            cols.aov
                .push((n365 > 0).then(|| round2(sum365 / n365 as f64)));
            cols.max.push(
                within(365)
                    .map(|o| o.amount)
                    .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x)))),
            );
            cols.signup_days.push((t - signup) / DAY);
            cols.tenure.push((t - signup) / (30 * DAY));
            cols.channel.push(pref);
            cols.country.push(country);
            cols.active.push(last.is_some_and(|l| t - l <= 90 * DAY));
            cols.last.push(last);
            cols.trend.push(Some(
                (0..3)
                    .rev()
                    .map(|k| {
                        Some(round2(
                            upto.iter()
                                .filter(|o| {
                                    o.ts <= t - k * 30 * DAY && o.ts > t - (k + 1) * 30 * DAY
                                })
                                .map(|o| o.amount)
                                .sum(),
                        ))
                    })
                    .collect(),
            ));
            out.stat_rows += 1;
        }
        if cols.len() >= 64 * 1024 {
            stats_w.write(&std::mem::take(&mut cols).into_batch(&schema)?)?;
        }
        if let Some(w) = orders_w
            .as_mut()
            .filter(|_| order_cols.id.len() >= 64 * 1024)
        {
            w.write(&std::mem::take(&mut order_cols).into_batch(&orders_schema)?)?;
        }
        out.customers += 1;
        if c % 4096 == 0 {
            progress(c);
        }
    }
    if cols.len() > 0 {
        stats_w.write(&cols.into_batch(&schema)?)?;
    }
    stats_w.close()?;
    if let Some(mut w) = orders_w {
        if !order_cols.id.is_empty() {
            w.write(&order_cols.into_batch(&orders_schema)?)?;
        }
        w.close()?;
    }
    progress(spec.customers);
    Ok(out)
}

/// The quickstart's `features.yaml`.
pub const FEATURES_YAML: &str = r#"# fstore quickstart: RFM-style customer features for segmentation.
entities:
  - name: customer
    join_keys:
      - {name: customer_id, type: int64}
    description: A shopper, keyed by the CRM id.
    owner: growth-data@example.com

sources:
  - name: customer_stats
    path: data/customer_stats.parquet
    timestamp_field: event_timestamp
    created_timestamp_field: created_timestamp
    description: Month-end statistics per customer, computed from the orders table.
    owner: growth-data@example.com
    tags: [batch, daily]

# Transforms are WebAssembly components (see wit/ and transforms/): the same bytes compute
# features in batch here and per request at the edge.
transforms:
  - name: rfm_score
    component: transforms/rfm_score.wasm
    description: R, F and M scores (1-5) from recency, 90-day orders and 90-day spend.
    owner: growth-data@example.com
    config: {recency_cuts: "14,30,60,120", frequency_cuts: "1,2,4,8", monetary_cuts: "50,150,400,1000"}
  - name: segment
    component: transforms/segment.wasm
    description: Marketing segment (champions, loyal, at_risk...) from the RFM scores.
    owner: growth-data@example.com
  - name: clv
    component: transforms/clv.wasm
    description: Discounted three-year customer lifetime value.
    owner: growth-data@example.com
    config: {margin: "0.3", horizon_years: "3", discount_rate: "0.1", retention: "0.8"}
  - name: next_offer
    component: transforms/next_offer.wasm
    description: The offer to show at checkout, from the segment and the cart.
    owner: growth-data@example.com

request_sources:
  - name: checkout
    description: What the shop knows at checkout time.
    fields:
      - {name: cart_value, type: float64}
      - {name: channel, type: string}

feature_views:
  - name: customer_rfm
    entities: [customer]
    source: customer_stats
    ttl: 45d
    description: Recency, frequency and monetary value, plus profile signals.
    owner: growth-data@example.com
    tags: [segmentation]
    features:
      - {name: recency_days, type: int64, description: Days since the last order.}
      - {name: frequency_30d, type: int64, description: Orders in the last 30 days.}
      - {name: frequency_90d, type: int64, description: Orders in the last 90 days.}
      - {name: frequency_365d, type: int64, description: Orders in the last 365 days.}
      - {name: monetary_30d, type: float64, description: Spend in the last 30 days.}
      - {name: monetary_90d, type: float64, description: Spend in the last 90 days.}
      - {name: monetary_365d, type: float64, description: Spend in the last 365 days.}
      - {name: avg_order_value, type: float64, description: Mean order value over a year.}
      - {name: max_order_value, type: float64, description: Largest order in a year.}
      - {name: days_since_signup, type: int64}
      - {name: tenure_months, type: int64}
      - {name: preferred_channel, type: string, description: Channel of most orders.}
      - {name: country, type: string, tags: [pii]}
      - {name: is_active, type: bool, description: Ordered within 90 days.}
      - {name: last_order_at, type: timestamp}
      - {name: spend_trend, type: "list<float64>", description: "Spend in each of the last three 30-day windows, oldest first."}
      - {name: r_score, type: int64, transform: rfm_score, description: "Recency score; 5 is the most recent."}
      - {name: f_score, type: int64, transform: rfm_score, description: Frequency score over 90 days.}
      - {name: m_score, type: int64, transform: rfm_score, description: Monetary score over 90 days.}
      - {name: rfm_score, type: int64, transform: rfm_score, description: "R + F + M, 3 to 15."}
      - {name: segment, type: string, transform: segment, tags: [segmentation]}
      - {name: clv, type: float64, transform: clv, description: Expected margin over three years.}
      - name: value_tier
        type: string
        description: Spend tier over a year, as a SQL expression compiled to WebAssembly.
        sql: "CASE WHEN monetary_365d >= 1000 THEN 'high' WHEN monetary_365d >= 250 THEN 'mid' ELSE 'low' END"

on_demand_views:
  - name: checkout_offer
    sources: [customer_rfm]
    request_source: checkout
    description: Computed at the edge per request from stored features and the cart.
    owner: growth-data@example.com
    features:
      - {name: offer, type: string, transform: next_offer}
      - {name: discount_pct, type: float64, transform: next_offer}
      - {name: cart_to_aov, type: float64, sql: "CASE WHEN avg_order_value > 0 THEN cart_value / avg_order_value END"}

feature_services:
  - name: segmentation_v1
    description: Inputs of the segmentation model.
    owner: growth-data@example.com
    features:
      - customer_rfm:recency_days
      - customer_rfm:frequency_30d
      - customer_rfm:frequency_90d
      - customer_rfm:frequency_365d
      - customer_rfm:monetary_30d
      - customer_rfm:monetary_90d
      - customer_rfm:monetary_365d
      - customer_rfm:avg_order_value
      - customer_rfm:max_order_value
      - customer_rfm:days_since_signup
      - customer_rfm:tenure_months
      - customer_rfm:preferred_channel
      - customer_rfm:country
      - customer_rfm:is_active
      - customer_rfm:last_order_at
      - customer_rfm:spend_trend
  - name: personalization_v1
    description: What the shop front reads at checkout.
    owner: growth-data@example.com
    features:
      - customer_rfm:segment
      - customer_rfm:clv
      - customer_rfm:value_tier
      - checkout_offer:offer
      - checkout_offer:discount_pct
      - checkout_offer:cart_to_aov
"#;

/// The example components the quickstart's definitions name, built from `transforms/` and
/// checked in (a test rebuilds them and compares).
pub const COMPONENTS: [(&str, &[u8]); 4] = [
    (
        "rfm_score",
        include_bytes!("../../../transforms/components/rfm_score.wasm"),
    ),
    (
        "segment",
        include_bytes!("../../../transforms/components/segment.wasm"),
    ),
    (
        "clv",
        include_bytes!("../../../transforms/components/clv.wasm"),
    ),
    (
        "next_offer",
        include_bytes!("../../../transforms/components/next_offer.wasm"),
    ),
];

/// Writes the example components where `FEATURES_YAML` expects them, under `dir`.
pub fn write_components(dir: &std::path::Path) -> std::io::Result<()> {
    let out = dir.join("transforms");
    std::fs::create_dir_all(&out)?;
    for (name, bytes) in COMPONENTS {
        std::fs::write(out.join(format!("{name}.wasm")), bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(
            (0..100).map(|_| a.next_u64()).collect::<Vec<_>>(),
            (0..100).map(|_| b.next_u64()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn quickstart_yaml_is_valid() {
        let d = fstore_spec::parse_features_yaml(FEATURES_YAML, None).expect("valid");
        assert_eq!(d.feature_views[0].features.len(), 23);
        assert_eq!(d.on_demand_views[0].features.len(), 3);
    }
}
