//! Reporting to the control plane: each poll interval an edge says who it is, where it is
//! reachable and which snapshot versions it serves. The control plane builds its fleet view
//! and lineage from these. Best effort by design: an edge serves from object storage alone, so
//! a control plane that is down costs a warning, never a lookup.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{EdgeConfig, EdgeError, EdgeState};

/// What an edge reports (`POST /v1/edges/heartbeat` on the control plane).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub id: String,
    pub region: String,
    /// Where clients reach it.
    pub address: String,
    /// The manifest it serves, None until its first snapshot loaded.
    pub manifest_seq: Option<u64>,
    /// Slot (view, `view@vN`, `view#N`) → snapshot version.
    pub views: BTreeMap<String, u64>,
    pub ready: bool,
    /// How often it reports: the control plane marks it down after missing a few.
    pub interval_ms: u64,
    /// When this process started (RFC 3339 UTC): a restart shows as a new time.
    pub started_at: String,
    /// Serving figures per view since the previous report (not cumulative): a lost report
    /// loses its interval's figures, which anomaly detection tolerates.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub serving: BTreeMap<String, ViewSignals>,
    /// The span `serving` covers, in milliseconds.
    #[serde(default)]
    pub serving_window_ms: u64,
}

/// How one view (stored or on-demand, by base name: `view@v3` reports as `view`) was served
/// over a heartbeat's interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSignals {
    /// Entities looked up in the view, one per entity per request reading it (for an
    /// on-demand view, entities it was computed for).
    pub lookups: u64,
    /// Of `lookups`, those the view has no row for (never counted for on-demand views).
    pub not_found: u64,
    /// Entities whose on-demand features could not be computed (on-demand views only).
    pub errors: u64,
    /// Median and 99th percentile latency of the requests that read the view, in
    /// milliseconds: the upper bound of the histogram bucket holding the quantile (buckets
    /// are log-spaced, 8 per power of ten from 1 µs to 10 s), so at most about a third above
    /// the true value. None when no request was timed.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

pub(crate) struct Heartbeats {
    client: reqwest::Client,
    url: String,
    state: Arc<EdgeState>,
    interval: Duration,
    id: String,
    region: String,
    address: String,
    started_at: String,
    token: Option<String>,
}

fn now_rfc3339() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let mut out = Vec::with_capacity(32);
    fstore_snapshot::format_rfc3339_micros(micros, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Heartbeats are reported at the poll interval, but not more than once a second nor less
/// than every 30 seconds, so the fleet view stays current without flooding the control plane.
fn interval(poll: Duration) -> Duration {
    poll.clamp(Duration::from_secs(1), Duration::from_secs(30))
}

impl Heartbeats {
    pub(crate) fn new(
        control_plane: &str,
        config: &EdgeConfig,
        address: String,
        state: Arc<EdgeState>,
    ) -> Result<Self, EdgeError> {
        let base = control_plane.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(EdgeError::Config(format!(
                "the control plane URL `{control_plane}` must start with http:// or https://"
            )));
        }
        let interval = interval(config.poll_interval);
        let client = reqwest::Client::builder()
            .timeout(interval.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| EdgeError::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: format!("{base}/v1/edges/heartbeat"),
            id: config
                .edge_id
                .clone()
                .unwrap_or_else(|| format!("{}-{address}", config.region)),
            region: config.region.clone(),
            address,
            state,
            interval,
            started_at: now_rfc3339(),
            token: config.control_plane_token.clone(),
        })
    }

    pub(crate) fn current(&self) -> Heartbeat {
        let catalog = self.state.catalog.load_full();
        Heartbeat {
            id: self.id.clone(),
            region: self.region.clone(),
            address: self.address.clone(),
            manifest_seq: catalog.as_ref().map(|c| c.seq),
            views: catalog
                .as_ref()
                .map(|c| {
                    c.views()
                        .iter()
                        .map(|v| (v.name.clone(), v.version))
                        .collect()
                })
                .unwrap_or_default(),
            ready: catalog.is_some(),
            interval_ms: self.interval.as_millis() as u64,
            started_at: self.started_at.clone(),
            serving: BTreeMap::new(),
            serving_window_ms: 0,
        }
    }

    /// The next report: [`Heartbeats::current`] with the serving figures since the previous
    /// report, which this takes. If it is not delivered, those figures are lost, never
    /// folded into the next report: each report covers its own window, so a control plane
    /// computing rates is not misled by a report spanning an outage.
    pub(crate) fn report(&self) -> Heartbeat {
        let mut hb = self.current();
        let (serving, window) = self.state.metrics.take_signals();
        hb.serving = serving;
        hb.serving_window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        hb
    }

    pub(crate) async fn run(self) {
        let mut failing = false;
        loop {
            let mut req = self.client.post(&self.url).json(&self.report());
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let sent = req
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            match sent {
                Ok(_) if failing => {
                    tracing::info!(url = %self.url, "control plane reachable again");
                    failing = false;
                }
                Ok(_) => {}
                // Logged once per outage, not once per interval.
                Err(e) if !failing => {
                    tracing::warn!(url = %self.url, error = %e, "heartbeat to the control plane failed; serving continues");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}
