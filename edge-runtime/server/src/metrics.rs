//! Lock-free request metrics rendered as Prometheus text. Recording is a few relaxed atomic
//! adds, cheap enough for the lookup hot path; no registry lookup per request.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Latency bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

/// Transform call latency bucket upper bounds, in seconds: a call takes microseconds, so the
/// request buckets above would put every call in the first one.
const CALL_BUCKETS: [f64; 16] = [
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
];

/// Counts per bucket of `bounds` (`N` is the bucket count plus one, for `+Inf`).
#[derive(Debug)]
struct Histogram<const N: usize> {
    counts: [AtomicU64; N],
    sum_nanos: AtomicU64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Histogram<N> {
    fn record(&self, bounds: &[f64], secs: f64) {
        let i = bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(bounds.len())
            .min(N - 1);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add((secs * 1e9) as u64, Ordering::Relaxed);
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of metric `name` with `labels`
    /// (`key="value"` pairs, comma-separated, without braces).
    fn render(&self, s: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let mut cum = 0;
        for (i, b) in bounds.iter().enumerate().take(N - 1) {
            cum += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(s, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
        }
        cum += self.counts[N - 1].load(Ordering::Relaxed);
        let _ = writeln!(s, "{name}_bucket{{{labels},le=\"+Inf\"}} {cum}");
        let _ = writeln!(
            s,
            "{name}_sum{{{labels}}} {}",
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(s, "{name}_count{{{labels}}} {cum}");
    }
}

/// The endpoints metrics are kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Features,
    Feast,
    Health,
    Ready,
    Metrics,
    Other,
}

impl Endpoint {
    const ALL: [Endpoint; 6] = [
        Endpoint::Features,
        Endpoint::Feast,
        Endpoint::Health,
        Endpoint::Ready,
        Endpoint::Metrics,
        Endpoint::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Endpoint::Features => "/v1/features",
            Endpoint::Feast => "/get-online-features",
            Endpoint::Health => "/healthz",
            Endpoint::Ready => "/readyz",
            Endpoint::Metrics => "/metrics",
            Endpoint::Other => "other",
        }
    }
}

#[derive(Debug, Default)]
struct EndpointMetrics {
    /// By status class: 2xx, 4xx, 5xx.
    status: [AtomicU64; 3],
    latency: Histogram<{ BUCKETS.len() + 1 }>,
}

/// The codes a failed transform call is counted under ([`fstore_wasm_host::CallError::code`]);
/// anything newer is counted as `other`.
const CALL_ERROR_CODES: [&str; 9] = [
    "timeout",
    "out_of_fuel",
    "memory_limit",
    "trap",
    "guest_error",
    "bad_output",
    "bad_input",
    "unavailable",
    "other",
];

/// Transform call metrics of one on-demand view. Kept by view name across manifest swaps (the
/// loader hands the same instance to every catalog that has the view), so counters never go
/// back.
#[derive(Debug, Default)]
pub struct OnDemandMetrics {
    calls: AtomicU64,
    errors: [AtomicU64; CALL_ERROR_CODES.len()],
    latency: Histogram<{ CALL_BUCKETS.len() + 1 }>,
}

impl OnDemandMetrics {
    /// One transform call, successful or not, that took `secs`.
    pub fn record_call(&self, secs: f64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.latency.record(&CALL_BUCKETS, secs);
    }

    /// One entity whose features the view could not compute, under the failure's code: a
    /// failed call, the view being unavailable, or an earlier entity of the same request
    /// having run into its deadline.
    pub fn record_error(&self, code: &str) {
        let i = CALL_ERROR_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(CALL_ERROR_CODES.len() - 1);
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Failures counted under `code`.
    pub fn errors(&self, code: &str) -> u64 {
        CALL_ERROR_CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.errors[i].load(Ordering::Relaxed))
    }
}

/// All edge metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    endpoints: [EndpointMetrics; 6],
    entities_found: AtomicU64,
    entities_not_found: AtomicU64,
    pub(crate) poll_errors: AtomicU64,
    pub(crate) swaps: AtomicU64,
    /// Per on-demand view, by name; only touched when a catalog is built.
    on_demand: Mutex<HashMap<String, Arc<OnDemandMetrics>>>,
}

impl Metrics {
    pub fn record(&self, ep: Endpoint, status: u16, secs: f64) {
        let m = &self.endpoints[ep as usize];
        let class = match status {
            200..=399 => 0,
            400..=499 => 1,
            _ => 2,
        };
        m.status[class].fetch_add(1, Ordering::Relaxed);
        m.latency.record(&BUCKETS, secs);
    }

    /// The metrics of on-demand view `view`, the same instance for every catalog.
    pub fn on_demand(&self, view: &str) -> Arc<OnDemandMetrics> {
        let mut m = self
            .on_demand
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        m.entry(view.to_string()).or_default().clone()
    }

    pub fn record_lookup(&self, found: usize, not_found: usize) {
        self.entities_found
            .fetch_add(found as u64, Ordering::Relaxed);
        self.entities_not_found
            .fetch_add(not_found as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition; `catalog` adds per-view snapshot gauges.
    pub fn render(&self, catalog: Option<&crate::Catalog>, region: &str) -> String {
        let mut s = String::with_capacity(4096);
        let _ = writeln!(
            s,
            "# HELP fstore_edge_requests_total Requests answered, by endpoint and status class."
        );
        let _ = writeln!(s, "# TYPE fstore_edge_requests_total counter");
        for ep in Endpoint::ALL {
            let m = &self.endpoints[ep as usize];
            for (i, class) in ["2xx", "4xx", "5xx"].iter().enumerate() {
                let _ = writeln!(
                    s,
                    "fstore_edge_requests_total{{endpoint=\"{}\",status=\"{class}\"}} {}",
                    ep.label(),
                    m.status[i].load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP fstore_edge_request_duration_seconds Time spent answering, by endpoint."
        );
        let _ = writeln!(s, "# TYPE fstore_edge_request_duration_seconds histogram");
        for ep in Endpoint::ALL {
            self.endpoints[ep as usize].latency.render(
                &mut s,
                "fstore_edge_request_duration_seconds",
                &format!("endpoint=\"{}\"", ep.label()),
                &BUCKETS,
            );
        }
        let _ = writeln!(
            s,
            "# HELP fstore_edge_entities_total Entity lookups, by result."
        );
        let _ = writeln!(s, "# TYPE fstore_edge_entities_total counter");
        let _ = writeln!(
            s,
            "fstore_edge_entities_total{{result=\"found\"}} {}",
            self.entities_found.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "fstore_edge_entities_total{{result=\"not_found\"}} {}",
            self.entities_not_found.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# TYPE fstore_edge_poll_errors_total counter");
        let _ = writeln!(
            s,
            "fstore_edge_poll_errors_total {}",
            self.poll_errors.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# TYPE fstore_edge_snapshot_swaps_total counter");
        let _ = writeln!(
            s,
            "fstore_edge_snapshot_swaps_total {}",
            self.swaps.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# HELP fstore_edge_ready 1 once a snapshot is loaded.");
        let _ = writeln!(s, "# TYPE fstore_edge_ready gauge");
        let _ = writeln!(
            s,
            "fstore_edge_ready{{region=\"{region}\"}} {}",
            u8::from(catalog.is_some())
        );
        if let Some(c) = catalog {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0);
            let _ = writeln!(s, "# TYPE fstore_edge_manifest_seq gauge");
            let _ = writeln!(s, "fstore_edge_manifest_seq {}", c.seq);
            let _ = writeln!(
                s,
                "# HELP fstore_edge_snapshot_version Snapshot version served, per view (the \
                 newest delta's when deltas are applied)."
            );
            let _ = writeln!(s, "# TYPE fstore_edge_snapshot_version gauge");
            for v in c.views() {
                let _ = writeln!(
                    s,
                    "fstore_edge_snapshot_version{{view=\"{}\"}} {}",
                    v.name, v.version
                );
            }
            let _ = writeln!(
                s,
                "# HELP fstore_edge_snapshot_deltas Delta snapshots applied on top of the full \
                 snapshot, per view."
            );
            let _ = writeln!(s, "# TYPE fstore_edge_snapshot_deltas gauge");
            for v in c.views() {
                let _ = writeln!(
                    s,
                    "fstore_edge_snapshot_deltas{{view=\"{}\"}} {}",
                    v.name,
                    v.deltas.len()
                );
            }
            let _ = writeln!(
                s,
                "# HELP fstore_edge_snapshot_age_seconds Time since the newest snapshot served \
                 (delta or full) was materialized."
            );
            let _ = writeln!(s, "# TYPE fstore_edge_snapshot_age_seconds gauge");
            for v in c.views() {
                let age = (now - v.created_at_micros()).max(0) as f64 / 1e6;
                let _ = writeln!(
                    s,
                    "fstore_edge_snapshot_age_seconds{{view=\"{}\"}} {age}",
                    v.name
                );
            }
            let _ = writeln!(
                s,
                "# HELP fstore_edge_entities_loaded Distinct entities served, per view (the full \
                 snapshot's plus those only its deltas hold)."
            );
            let _ = writeln!(s, "# TYPE fstore_edge_entities_loaded gauge");
            for v in c.views() {
                let _ = writeln!(
                    s,
                    "fstore_edge_entities_loaded{{view=\"{}\"}} {}",
                    v.name, v.entities
                );
            }
            let _ = writeln!(
                s,
                "# HELP fstore_edge_snapshot_bytes Bytes of the snapshot files served, per view \
                 (full snapshot and deltas together)."
            );
            let _ = writeln!(s, "# TYPE fstore_edge_snapshot_bytes gauge");
            for v in c.views() {
                let _ = writeln!(
                    s,
                    "fstore_edge_snapshot_bytes{{view=\"{}\"}} {}",
                    v.name,
                    v.size_bytes()
                );
            }
            render_on_demand(&mut s, c);
        }
        s
    }
}

fn render_on_demand(s: &mut String, c: &crate::Catalog) {
    let views = c.on_demand_views();
    if views.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "# HELP fstore_edge_on_demand_available 1 when the on-demand view's transforms loaded."
    );
    let _ = writeln!(s, "# TYPE fstore_edge_on_demand_available gauge");
    for v in views {
        let _ = writeln!(
            s,
            "fstore_edge_on_demand_available{{view=\"{}\"}} {}",
            v.name,
            u8::from(v.unavailable.is_none())
        );
    }
    let _ = writeln!(
        s,
        "# HELP fstore_edge_transform_calls_total Transform calls made for on-demand views."
    );
    let _ = writeln!(s, "# TYPE fstore_edge_transform_calls_total counter");
    for v in views {
        let _ = writeln!(
            s,
            "fstore_edge_transform_calls_total{{view=\"{}\"}} {}",
            v.name,
            v.metrics.calls()
        );
    }
    let _ = writeln!(
        s,
        "# HELP fstore_edge_transform_errors_total Failed on-demand computations, by view and code."
    );
    let _ = writeln!(s, "# TYPE fstore_edge_transform_errors_total counter");
    for v in views {
        for (i, code) in CALL_ERROR_CODES.iter().enumerate() {
            let _ = writeln!(
                s,
                "fstore_edge_transform_errors_total{{view=\"{}\",code=\"{code}\"}} {}",
                v.name,
                v.metrics.errors[i].load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP fstore_edge_transform_call_duration_seconds Time per transform call, by on-demand view."
    );
    let _ = writeln!(
        s,
        "# TYPE fstore_edge_transform_call_duration_seconds histogram"
    );
    for v in views {
        v.metrics.latency.render(
            s,
            "fstore_edge_transform_call_duration_seconds",
            &format!("view=\"{}\"", v.name),
            &CALL_BUCKETS,
        );
    }
}
