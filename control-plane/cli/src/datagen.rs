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
    /// Microseconds since the epoch: orders cover the year before this instant.
    pub as_of_micros: i64,
    /// Scales how often customers order (1.0: about 11 orders per customer a year).
    pub activity: f64,
}

/// Row counts written.
#[derive(Debug, Clone, Default)]
pub struct GenStats {
    pub customers: u64,
    /// Rows of `customers.parquet`: one per customer, plus one per later change of country.
    pub customer_rows: u64,
    pub orders: u64,
    /// Daily partitions of the orders table.
    pub partitions: u64,
}

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

fn ts_array(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}

/// Buffered rows of the orders table.
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
            ts_array(self.ts),
            Arc::new(Float64Array::from(self.amount)),
            Arc::new(StringArray::from(self.channel)),
        ];
        RecordBatch::try_new(schema.clone(), cols)
    }
}

/// Buffered rows of the customers table (CRM records; a change is a new row).
#[derive(Default)]
struct CustomerCols {
    id: Vec<i64>,
    updated: Vec<i64>,
    signup: Vec<i64>,
    country: Vec<&'static str>,
    channel: Vec<&'static str>,
    style: Vec<Option<Vec<Option<f64>>>>,
}

impl CustomerCols {
    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Int64, false),
            ts_field("updated_at"),
            ts_field("signup_at"),
            Field::new("country", DataType::Utf8, false),
            Field::new("signup_channel", DataType::Utf8, false),
            Field::new(
                "style_vector",
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                true,
            ),
        ]))
    }

    fn into_batch(self, schema: &Arc<Schema>) -> Result<RecordBatch, arrow::error::ArrowError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(self.id)),
            ts_array(self.updated),
            ts_array(self.signup),
            Arc::new(StringArray::from(self.country)),
            Arc::new(StringArray::from(self.channel)),
            Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(
                self.style,
            )),
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

/// `YYYY-MM-DD` of a day number since the epoch.
pub fn civil_date(days: i64) -> String {
    let (y, m, d) = fstore_snapshot::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Writes the raw tables into `dir`: `orders/date=YYYY-MM-DD/orders.parquet` (a year of
/// orders, one Hive-style partition per day) and `customers.parquet` (CRM records, with a
/// second row for customers who later moved country). `progress` is called with the number
/// of customers done so far.
pub fn generate(dir: &Path, spec: &GenSpec, progress: &dyn Fn(u64)) -> anyhow::Result<GenStats> {
    std::fs::create_dir_all(dir)?;
    let mut out = GenStats::default();
    let mut rng = Rng::new(spec.seed);
    let as_of = spec.as_of_micros;
    let history = 365 * DAY;
    let first_day = (as_of - history).div_euclid(DAY);
    // Orders by day; a year of them for 100k customers is a few million rows, fine in memory.
    let mut by_day: Vec<OrderCols> = (0..=366).map(|_| OrderCols::default()).collect();
    let mut customers = CustomerCols::default();
    for c in 0..spec.customers {
        let id = 1_000 + c as i64;
        let signup = as_of - (30 + rng.below(900) as i64) * DAY;
        let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        // Heavy-tailed activity: most customers buy rarely, a few very often.
        let mut per_month = (rng.exp(1.2) * spec.activity).min(20.0 * spec.activity);
        let mean_amount = 15.0 + rng.exp(45.0);
        let fav = rng.below(CHANNELS.len() as u64) as usize;
        let mut churn = rng.f64() < 0.25;
        // The first few customers are the ones examples and tests look up: keep them active.
        if c < 4 {
            per_month = per_month.max(1.0);
            churn = false;
        }
        let churn_at = if churn {
            as_of - rng.below(300) as i64 * DAY
        } else {
            i64::MAX
        };
        customers.id.push(id);
        customers.updated.push(signup);
        customers.signup.push(signup);
        customers.country.push(country);
        customers.channel.push(CHANNELS[fav]);
        // A small taste embedding from the CRM; unknown for some customers.
        let style: Option<Vec<Option<f64>>> = (rng.f64() < 0.9).then(|| {
            (0..4)
                .map(|_| Some(round2(rng.f64() * 2.0 - 1.0)))
                .collect()
        });
        customers.style.push(style.clone());
        if rng.f64() < 0.1 {
            // Moved: a later CRM record, which training sets must only see after it happened.
            let moved = as_of - rng.below(360) as i64 * DAY - 1;
            if moved > signup {
                customers.id.push(id);
                customers.updated.push(moved);
                customers.signup.push(signup);
                customers
                    .country
                    .push(COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize]);
                customers.channel.push(CHANNELS[fav]);
                customers.style.push(style);
            }
        }
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
                let amount = round2(mean_amount * (0.3 + rng.exp(0.7)));
                out.orders += 1;
                let day = (t.div_euclid(DAY) - first_day).clamp(0, 366) as usize;
                let o = &mut by_day[day];
                o.id.push(out.orders as i64);
                o.customer.push(id);
                o.ts.push(t);
                o.amount.push(amount);
                o.channel.push(CHANNELS[channel]);
            }
        }
        out.customers += 1;
        if c % 4096 == 0 {
            progress(c);
        }
    }
    let orders_schema = OrderCols::schema();
    for (i, cols) in by_day.into_iter().enumerate() {
        if cols.id.is_empty() {
            continue;
        }
        let part = dir
            .join("orders")
            .join(format!("date={}", civil_date(first_day + i as i64)));
        std::fs::create_dir_all(&part)?;
        let mut w = writer(&part.join("orders.parquet"), orders_schema.clone())?;
        w.write(&cols.into_batch(&orders_schema)?)?;
        w.close()?;
        out.partitions += 1;
    }
    out.customer_rows = customers.id.len() as u64;
    let schema = CustomerCols::schema();
    let mut w = writer(&dir.join("customers.parquet"), schema.clone())?;
    w.write(&customers.into_batch(&schema)?)?;
    w.close()?;
    progress(spec.customers);
    Ok(out)
}

/// Writes a training-set request: `rows` entity rows (customer id, `event_timestamp` on a past
/// day within the year before `as_of`, and a made-up `churned` label), as Parquet.
pub fn write_entity_rows(
    path: &Path,
    customers: u64,
    rows: u64,
    as_of_micros: i64,
    seed: u64,
) -> anyhow::Result<()> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut ids = Vec::with_capacity(rows as usize);
    let mut ts = Vec::with_capacity(rows as usize);
    let mut label = Vec::with_capacity(rows as usize);
    for _ in 0..rows {
        // A few ids past the last customer: they must come back with null features.
        ids.push(1_000 + rng.below(customers + customers / 50 + 1) as i64);
        ts.push(as_of_micros - rng.below(365) as i64 * DAY - rng.below(DAY as u64) as i64);
        label.push(rng.f64() < 0.2);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        ts_field("event_timestamp"),
        Field::new("churned", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)),
            ts_array(ts),
            Arc::new(BooleanArray::from(label)),
        ],
    )?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut w = writer(path, schema)?;
    w.write(&batch)?;
    w.close()?;
    Ok(())
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
  - name: orders
    path: data/orders/
    format: parquet
    timestamp_field: order_ts
    description: Every order as the order service wrote it, one Hive-style folder per day (date=YYYY-MM-DD).
    owner: growth-data@example.com
    tags: [raw, daily]
  - name: customers
    path: data/customers.parquet
    timestamp_field: updated_at
    description: CRM customer records; a change of country is a new row.
    owner: crm@example.com
    tags: [raw]

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
    source: orders
    ttl: 365d
    description: Recency, frequency and monetary value, aggregated from the raw orders as of each timestamp.
    owner: growth-data@example.com
    tags: [segmentation]
    features:
      - {name: recency_days, type: int64, aggregation: recency, description: Days since the last order.}
      - {name: orders_7d, type: int64, aggregation: count, window: 7d, description: Orders in the last 7 days.}
      - {name: frequency_30d, type: int64, aggregation: count, window: 30d, description: Orders in the last 30 days.}
      - {name: frequency_90d, type: int64, aggregation: count, window: 90d, description: Orders in the last 90 days.}
      - {name: frequency_365d, type: int64, aggregation: count, window: 365d, description: Orders in the last 365 days.}
      - {name: spend_7d, type: float64, aggregation: sum, column: amount, window: 7d, description: Spend in the last 7 days.}
      - {name: monetary_30d, type: float64, aggregation: sum, column: amount, window: 30d, description: Spend in the last 30 days.}
      - {name: monetary_90d, type: float64, aggregation: sum, column: amount, window: 90d, description: Spend in the last 90 days.}
      - {name: monetary_365d, type: float64, aggregation: sum, column: amount, window: 365d, description: Spend in the last 365 days.}
      - {name: avg_order_value, type: float64, aggregation: avg, column: amount, window: 365d, description: Mean order value over a year.}
      - {name: max_order_value, type: float64, aggregation: max, column: amount, window: 365d, description: Largest order in a year.}
      - {name: order_value_stddev, type: float64, aggregation: stddev, column: amount, window: 365d, description: Spread of order values over a year.}
      - {name: channels_365d, type: int64, aggregation: count_distinct, column: channel, window: 365d, description: Distinct channels ordered through in a year.}
      - {name: last_channel, type: string, aggregation: last, column: channel, description: Channel of the latest order.}
      - {name: last_order_at, type: timestamp, aggregation: max, column: order_ts}
      - {name: tenure_months, type: int64, aggregation: age, unit: 30d, description: Months since the first order.}
      - {name: is_active, type: bool, sql: "recency_days <= 90", description: Ordered within 90 days.}
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
  - name: customer_profile
    entities: [customer]
    source: customers
    description: What the CRM knows about a customer, as of each timestamp.
    owner: crm@example.com
    features:
      - {name: country, type: string, tags: [pii], mask: hash, description: "Country of residence; consumers without read_pii see a keyed hash."}
      - {name: signup_at, type: timestamp}
      - {name: signup_channel, type: string}
      - {name: style_vector, type: "list<float64>", description: Taste embedding from the CRM.}

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
      - customer_rfm:order_value_stddev
      - customer_rfm:channels_365d
      - customer_rfm:last_channel
      - customer_rfm:is_active
      - customer_rfm:last_order_at
      - customer_rfm:tenure_months
      - customer_rfm:rfm_score
      - customer_rfm:segment
      - customer_profile:country
      - customer_profile:signup_channel
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
        let rfm = d.view("customer_rfm").expect("customer_rfm");
        assert_eq!(rfm.features.len(), 24);
        assert!(rfm.is_aggregate());
        assert!(!d.view("customer_profile").expect("profile").is_aggregate());
        assert_eq!(d.on_demand_views[0].features.len(), 3);
    }
}
