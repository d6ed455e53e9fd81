//! What the registry keeps about feature quality: each evaluated snapshot's report, the value
//! distributions drift is measured from, alerts with their deliveries, and the serving figures
//! edges report. Reports and distributions are JSON the registry stores without reading.

use serde::{Deserialize, Serialize};

/// The quality report of one evaluated snapshot, published or rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityRecord {
    pub view: String,
    pub version: u64,
    /// The job run that evaluated it, when it ran as one.
    pub run_id: Option<u64>,
    /// False when an `error` rule stopped it from being published.
    pub published: bool,
    pub created_at: String,
    /// Statistics, checks and drift, as `fstore-quality` renders them.
    pub report: serde_json::Value,
}

/// A problem to raise with [`crate::Registry::open_alert`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAlert {
    /// The problem's identity: raising the same fingerprint again while it is open adds an
    /// occurrence to the open alert instead of opening another.
    pub fingerprint: String,
    /// `check`, `drift`, `serving` or `run`.
    pub kind: String,
    pub view: Option<String>,
    /// `error` or `warn`.
    pub severity: String,
    pub summary: String,
    pub details: serde_json::Value,
}

/// An alert as stored: one episode of a problem, from opening to resolving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: u64,
    pub fingerprint: String,
    pub kind: String,
    pub view: Option<String>,
    pub severity: String,
    /// `open` or `resolved`.
    pub status: String,
    pub summary: String,
    pub details: serde_json::Value,
    pub opened_at: String,
    pub updated_at: String,
    pub resolved_at: Option<String>,
    /// How often the problem was seen while the alert was open.
    pub occurrences: u64,
    /// Each attempt to deliver it to a webhook, oldest first.
    pub deliveries: Vec<serde_json::Value>,
}

/// Which alerts [`crate::Registry::alerts`] lists, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertQuery {
    /// `open` or `resolved`.
    pub status: Option<String>,
    pub view: Option<String>,
    /// At most this many (1..=1000; 0 means 100).
    pub limit: usize,
}

/// What one edge served of one view over one heartbeat interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingSample {
    pub edge: String,
    pub view: String,
    /// When the control plane received it (RFC 3339 UTC).
    pub at: String,
    pub window_ms: u64,
    pub lookups: u64,
    pub not_found: u64,
    pub errors: u64,
    /// Latency percentiles in microseconds, when the edge measured any.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// How finely [`crate::Registry::serving_rollup`] sums serving samples. Samples are stamped
/// by the control plane's clock in one fixed format (`2026-12-04T10:01:23.456789Z`), so a
/// bucket is a prefix of that text: the same on SQLite and PostgreSQL, and indexable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupStep {
    TenSeconds,
    Minute,
}

impl RollupStep {
    /// The characters of a stamp that name its bucket (`2026-12-04T10:01:2`).
    pub fn prefix_len(self) -> usize {
        match self {
            RollupStep::TenSeconds => 18,
            RollupStep::Minute => 16,
        }
    }

    pub fn seconds(self) -> u64 {
        match self {
            RollupStep::TenSeconds => 10,
            RollupStep::Minute => 60,
        }
    }

    /// The bucket's start (RFC 3339) from its prefix.
    pub fn start(self, prefix: &str) -> String {
        match self {
            RollupStep::TenSeconds => format!("{prefix}0Z"),
            RollupStep::Minute => format!("{prefix}:00Z"),
        }
    }
}

/// One edge's serving samples of one view summed over one bucket of time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingBucket {
    pub edge: String,
    pub view: String,
    /// When the bucket starts (RFC 3339 UTC).
    pub start: String,
    /// How many reports were summed.
    pub reports: u64,
    pub window_ms: u64,
    pub lookups: u64,
    pub not_found: u64,
    pub errors: u64,
    /// The worst percentile reported in the bucket.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// How an edge served one view over one heartbeat interval, as it reports it (the edge's
/// `ViewSignals`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSignals {
    pub lookups: u64,
    pub not_found: u64,
    pub errors: u64,
    /// Latency percentiles in milliseconds (upper bounds of the edge's histogram buckets).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}
