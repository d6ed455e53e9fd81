//! Lock-free request metrics rendered as Prometheus text. Recording is a few relaxed atomic
//! adds, cheap enough for the lookup hot path; no registry lookup per request.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::heartbeat::ViewSignals;

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

/// Per-view lookup latency bucket upper bounds, in nanoseconds: log-spaced, 8 per power of
/// ten (each about 1.33× the one before), from 1 µs to 10 s. Fine enough that a quantile read
/// off a bucket bound overstates the true one by at most a third; an anomaly detector looks
/// for jumps far larger than that.
const VIEW_LATENCY_BOUNDS_NS: [u64; 57] = view_latency_bounds();

/// Buckets of the per-view latency histogram: one per bound plus one for anything slower.
pub(crate) const VIEW_LATENCY_BUCKETS: usize = VIEW_LATENCY_BOUNDS_NS.len() + 1;

const fn view_latency_bounds() -> [u64; 57] {
    // 10^(k/8) for k in 0..8, in thousandths: integers, so the bounds are exact and const.
    const STEPS: [u64; 8] = [1000, 1334, 1778, 2371, 3162, 4217, 5623, 7499];
    let mut out = [0; 57];
    let mut decade = 1;
    let mut i = 0;
    while i < 56 {
        out[i] = STEPS[i % 8] * decade;
        i += 1;
        if i % 8 == 0 {
            decade *= 10;
        }
    }
    // 10 s: `decade` is 10^7 here.
    out[56] = 1000 * decade;
    out
}

/// The per-view latency bucket a request of `elapsed` falls in. Computed once per request,
/// whatever the number of views it touched.
pub(crate) fn view_latency_bucket(elapsed: Duration) -> usize {
    let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    VIEW_LATENCY_BOUNDS_NS.partition_point(|&b| b < nanos)
}

/// Quantile `q` (0 < q ≤ 1) of the latencies counted in `counts` (per bucket of the
/// per-view histogram), in milliseconds: the upper bound of the bucket holding the sample of
/// rank ⌈q·total⌉, so never an underestimate, except past the last bound, which reads as
/// 10 s. Not interpolated: within a bucket the samples' spread is unknown, and the bound is
/// what the bucket guarantees. None without samples.
pub(crate) fn latency_quantile_ms(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut cum = 0;
    for (i, c) in counts.iter().enumerate() {
        cum += c;
        if cum >= rank {
            let bound = VIEW_LATENCY_BOUNDS_NS[i.min(VIEW_LATENCY_BOUNDS_NS.len() - 1)];
            return Some(bound as f64 / 1e6);
        }
    }
    None
}

/// Serving counters of one view (stored or on-demand), under its base name (`view@v3` and
/// `view#41` count as `view`). One instance per name for the life of the process, shared by
/// every catalog serving the view, so the counters only grow: Prometheus reads them as they
/// are, and a heartbeat reports the growth since the previous one (see
/// [`Metrics::take_signals`]). Recording is relaxed atomic adds; nothing else.
#[derive(Debug)]
pub struct ViewCounters {
    /// Entities looked up in the view (for an on-demand view, entities it was computed for).
    lookups: AtomicU64,
    /// Of those, the ones the view has no row for.
    not_found: AtomicU64,
    /// Entities whose on-demand features could not be computed.
    errors: AtomicU64,
    /// Requests that touched the view, by latency bucket.
    latency: [AtomicU64; VIEW_LATENCY_BUCKETS],
    /// The counters as of the previous take; only a take touches it, never a request.
    taken: Mutex<Taken>,
}

/// What a take last saw of a [`ViewCounters`].
#[derive(Debug)]
struct Taken {
    lookups: u64,
    not_found: u64,
    errors: u64,
    latency: [u64; VIEW_LATENCY_BUCKETS],
}

impl Default for ViewCounters {
    fn default() -> Self {
        Self {
            lookups: AtomicU64::new(0),
            not_found: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            taken: Mutex::new(Taken {
                lookups: 0,
                not_found: 0,
                errors: 0,
                latency: [0; VIEW_LATENCY_BUCKETS],
            }),
        }
    }
}

impl ViewCounters {
    /// `lookups` entities looked up, `not_found` of them without a row.
    #[inline]
    pub fn record_lookups(&self, lookups: u64, not_found: u64) {
        self.lookups.fetch_add(lookups, Ordering::Relaxed);
        if not_found > 0 {
            self.not_found.fetch_add(not_found, Ordering::Relaxed);
        }
    }

    /// `errors` entities whose on-demand features could not be computed.
    #[inline]
    pub fn record_errors(&self, errors: u64) {
        if errors > 0 {
            self.errors.fetch_add(errors, Ordering::Relaxed);
        }
    }

    /// One request that touched the view, whose latency falls in `bucket`
    /// ([`view_latency_bucket`]).
    #[inline]
    pub(crate) fn record_latency(&self, bucket: usize) {
        if let Some(c) = self.latency.get(bucket) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entities looked up since the process started.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    pub fn not_found(&self) -> u64 {
        self.not_found.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The growth of the counters since the previous take, which this one becomes. A request
    /// recorded while this runs may be split across two takes (its lookups in one, its
    /// latency in the next); `not_found` is capped at `lookups` so a split never reports a
    /// rate above one.
    fn take(&self) -> ViewSignals {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        let mut latency = [0; VIEW_LATENCY_BUCKETS];
        for (i, c) in self.latency.iter().enumerate() {
            let now = c.load(Ordering::Relaxed);
            latency[i] = now.saturating_sub(taken.latency[i]);
            taken.latency[i] = now;
        }
        let errors = self.errors.load(Ordering::Relaxed);
        let not_found = self.not_found.load(Ordering::Relaxed);
        let lookups = self.lookups.load(Ordering::Relaxed);
        let signals = ViewSignals {
            lookups: lookups.saturating_sub(taken.lookups),
            not_found: not_found
                .saturating_sub(taken.not_found)
                .min(lookups.saturating_sub(taken.lookups)),
            errors: errors.saturating_sub(taken.errors),
            p50_ms: latency_quantile_ms(&latency, 0.5),
            p99_ms: latency_quantile_ms(&latency, 0.99),
        };
        taken.lookups = lookups;
        taken.not_found = not_found;
        taken.errors = errors;
        signals
    }
}

/// Tells [`Metrics`] instances apart, so a catalog's resolved counters are only used with
/// the instance they came from.
static NEXT_METRICS_ID: AtomicU64 = AtomicU64::new(0);

/// All edge metrics.
#[derive(Debug)]
pub struct Metrics {
    endpoints: [EndpointMetrics; 6],
    entities_found: AtomicU64,
    entities_not_found: AtomicU64,
    pub(crate) poll_errors: AtomicU64,
    pub(crate) swaps: AtomicU64,
    /// Per on-demand view, by name; only touched when a catalog is built.
    on_demand: Mutex<HashMap<String, Arc<OnDemandMetrics>>>,
    /// Serving counters per view, by base name; written only when a view is first seen
    /// (catalogs resolve their views' counters once, when built), so requests never wait on
    /// it. Sorted, for a stable rendering.
    views: RwLock<BTreeMap<String, Arc<ViewCounters>>>,
    /// When [`Metrics::take_signals`] last ran (at first, when these metrics were made).
    last_take: Mutex<Instant>,
    pub(crate) id: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            endpoints: Default::default(),
            entities_found: AtomicU64::new(0),
            entities_not_found: AtomicU64::new(0),
            poll_errors: AtomicU64::new(0),
            swaps: AtomicU64::new(0),
            on_demand: Mutex::default(),
            views: RwLock::default(),
            last_take: Mutex::new(Instant::now()),
            id: NEXT_METRICS_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Metrics {
    /// The serving counters of view `view` (a slot name such as `view@v3` counts under its
    /// base name), the same instance for every catalog. Takes a lock, so it is for building
    /// catalogs, not for requests.
    pub fn view(&self, view: &str) -> Arc<ViewCounters> {
        let base = fstore_snapshot::base_view(view);
        if let Some(c) = self
            .views
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(base)
        {
            return c.clone();
        }
        self.views
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(base.to_string())
            .or_default()
            .clone()
    }

    /// Serving figures per view since the previous call (or since these metrics were made),
    /// and the span they cover. Lists the views that had lookups or errors in that span.
    /// Whatever the caller does with them, they are not reported again: a heartbeat that
    /// fails to send loses its interval's figures.
    pub fn take_signals(&self) -> (BTreeMap<String, ViewSignals>, Duration) {
        let mut last = self
            .last_take
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let window = now.duration_since(*last);
        *last = now;
        // Cloned out so the lock is not held while taking: a catalog being built may need
        // to add a view.
        let views: Vec<(String, Arc<ViewCounters>)> = self
            .views
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let serving = views
            .into_iter()
            .filter_map(|(name, c)| {
                let s = c.take();
                (s.lookups > 0 || s.errors > 0).then_some((name, s))
            })
            .collect();
        (serving, window)
    }

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
        self.render_views(&mut s);
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
                    v.delta_count()
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

    /// The cumulative per-view serving counters, of every view served since the process
    /// started (a view dropped from the manifest keeps its last values).
    fn render_views(&self, s: &mut String) {
        let views = self.views.read().unwrap_or_else(PoisonError::into_inner);
        if views.is_empty() {
            return;
        }
        type Counter = (&'static str, &'static str, fn(&ViewCounters) -> u64);
        let counters: [Counter; 3] = [
            (
                "fstore_edge_view_lookups_total",
                "Entities looked up, per view (on-demand views: entities computed).",
                ViewCounters::lookups,
            ),
            (
                "fstore_edge_view_not_found_total",
                "Entities looked up that the view has no row for, per view.",
                ViewCounters::not_found,
            ),
            (
                "fstore_edge_view_errors_total",
                "Entities whose on-demand features could not be computed, per view.",
                ViewCounters::errors,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} counter");
            for (view, c) in views.iter() {
                let _ = writeln!(s, "{name}{{view=\"{view}\"}} {}", value(c));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_bounds_are_log_spaced_from_a_microsecond_to_ten_seconds() {
        assert_eq!(VIEW_LATENCY_BOUNDS_NS[0], 1_000);
        assert_eq!(VIEW_LATENCY_BOUNDS_NS[8], 10_000);
        assert_eq!(VIEW_LATENCY_BOUNDS_NS[32], 10_000_000, "10 ms");
        assert_eq!(VIEW_LATENCY_BOUNDS_NS[56], 10_000_000_000, "10 s");
        for w in VIEW_LATENCY_BOUNDS_NS.windows(2) {
            let ratio = w[1] as f64 / w[0] as f64;
            assert!((1.33..1.34).contains(&ratio), "{w:?}");
        }
    }

    #[test]
    fn a_duration_falls_in_the_first_bucket_bounding_it() {
        let b = |nanos| view_latency_bucket(Duration::from_nanos(nanos));
        assert_eq!(b(0), 0);
        assert_eq!(b(1_000), 0, "bounds are inclusive");
        assert_eq!(b(1_001), 1);
        assert_eq!(b(1_000_000), 24, "1 ms");
        assert_eq!(b(1_000_001), 25);
        assert_eq!(b(10_000_000_000), 56);
        assert_eq!(b(10_000_000_001), 57, "past 10 s");
        assert_eq!(view_latency_bucket(Duration::MAX), 57);
    }

    #[test]
    fn quantiles_read_the_upper_bound_of_the_bucket_holding_them() {
        let mut counts = [0u64; VIEW_LATENCY_BUCKETS];
        assert_eq!(latency_quantile_ms(&counts, 0.5), None);
        // 90 requests at ≤ 1 ms (bucket 24), 9 at ≤ 10 ms (bucket 32), 1 at ≤ 1 s (bucket 48).
        counts[24] = 90;
        counts[32] = 9;
        counts[48] = 1;
        assert_eq!(latency_quantile_ms(&counts, 0.5), Some(1.0));
        assert_eq!(latency_quantile_ms(&counts, 0.9), Some(1.0), "rank 90");
        assert_eq!(latency_quantile_ms(&counts, 0.91), Some(10.0), "rank 91");
        assert_eq!(latency_quantile_ms(&counts, 0.99), Some(10.0), "rank 99");
        assert_eq!(latency_quantile_ms(&counts, 1.0), Some(1000.0), "rank 100");
        // One sample: every quantile is its bucket.
        let mut one = [0u64; VIEW_LATENCY_BUCKETS];
        one[25] = 1;
        assert_eq!(latency_quantile_ms(&one, 0.5), Some(1.334));
        assert_eq!(latency_quantile_ms(&one, 0.99), Some(1.334));
        // Slower than the last bound: reported as the last bound.
        let mut slow = [0u64; VIEW_LATENCY_BUCKETS];
        slow[VIEW_LATENCY_BUCKETS - 1] = 3;
        assert_eq!(latency_quantile_ms(&slow, 0.5), Some(10_000.0));
    }

    #[test]
    fn a_take_reports_the_growth_since_the_previous_one() {
        let m = Metrics::default();
        let v = m.view("visits@v3");
        assert!(Arc::ptr_eq(&v, &m.view("visits")), "counted by base name");
        assert!(Arc::ptr_eq(&v, &m.view("visits#41")));
        let idle = m.view("idle");
        v.record_lookups(10, 3);
        v.record_latency(view_latency_bucket(Duration::from_micros(500)));
        v.record_latency(view_latency_bucket(Duration::from_millis(20)));
        let (serving, _) = m.take_signals();
        assert_eq!(serving.len(), 1, "only views with lookups: {serving:?}");
        let s = &serving["visits"];
        assert_eq!((s.lookups, s.not_found, s.errors), (10, 3, 0));
        assert_eq!(s.p50_ms, Some(0.5623));
        assert_eq!(s.p99_ms, Some(23.71));

        // Nothing since: nothing to report, though the cumulative counters stay.
        let (serving, _) = m.take_signals();
        assert!(serving.is_empty(), "{serving:?}");
        assert_eq!((v.lookups(), v.not_found()), (10, 3));

        // Errors alone are reported, without latency.
        idle.record_errors(2);
        v.record_lookups(4, 0);
        let (serving, window) = m.take_signals();
        assert_eq!(serving["idle"].errors, 2);
        assert_eq!(serving["idle"].p50_ms, None);
        assert_eq!(
            (serving["visits"].lookups, serving["visits"].not_found),
            (4, 0)
        );
        assert!(window < Duration::from_secs(60));
    }
}
