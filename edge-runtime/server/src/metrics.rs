//! Lock-free request metrics rendered as Prometheus text. Recording is a few relaxed atomic
//! adds, cheap enough for the lookup hot path; no registry lookup per request.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn record(&self, secs: f64) {
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add((secs * 1e9) as u64, Ordering::Relaxed);
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
    latency: Histogram,
}

/// All edge metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    endpoints: [EndpointMetrics; 6],
    entities_found: AtomicU64,
    entities_not_found: AtomicU64,
    pub(crate) poll_errors: AtomicU64,
    pub(crate) swaps: AtomicU64,
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
        m.latency.record(secs);
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
            let h = &self.endpoints[ep as usize].latency;
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += h.counts[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    s,
                    "fstore_edge_request_duration_seconds_bucket{{endpoint=\"{}\",le=\"{b}\"}} {cum}",
                    ep.label()
                );
            }
            cum += h.counts[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                s,
                "fstore_edge_request_duration_seconds_bucket{{endpoint=\"{}\",le=\"+Inf\"}} {cum}",
                ep.label()
            );
            let _ = writeln!(
                s,
                "fstore_edge_request_duration_seconds_sum{{endpoint=\"{}\"}} {}",
                ep.label(),
                h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
            );
            let _ = writeln!(
                s,
                "fstore_edge_request_duration_seconds_count{{endpoint=\"{}\"}} {cum}",
                ep.label()
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
                "# HELP fstore_edge_snapshot_version Snapshot version served, per view."
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
                "# HELP fstore_edge_snapshot_age_seconds Time since the served snapshot was materialized."
            );
            let _ = writeln!(s, "# TYPE fstore_edge_snapshot_age_seconds gauge");
            for v in c.views() {
                let age = (now - v.snapshot.schema().created_at_micros).max(0) as f64 / 1e6;
                let _ = writeln!(
                    s,
                    "fstore_edge_snapshot_age_seconds{{view=\"{}\"}} {age}",
                    v.name
                );
            }
            let _ = writeln!(
                s,
                "# HELP fstore_edge_entities_loaded Entities in the served snapshot, per view."
            );
            let _ = writeln!(s, "# TYPE fstore_edge_entities_loaded gauge");
            for v in c.views() {
                let _ = writeln!(
                    s,
                    "fstore_edge_entities_loaded{{view=\"{}\"}} {}",
                    v.name,
                    v.snapshot.len()
                );
            }
            let _ = writeln!(s, "# TYPE fstore_edge_snapshot_bytes gauge");
            for v in c.views() {
                let _ = writeln!(
                    s,
                    "fstore_edge_snapshot_bytes{{view=\"{}\"}} {}",
                    v.name,
                    v.snapshot.size_bytes()
                );
            }
        }
        s
    }
}
