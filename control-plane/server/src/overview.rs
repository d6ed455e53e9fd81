//! The store at a glance, for the dashboard's front page and `GET /v1/overview`: every view's
//! freshness judged against its schedule, the fleet, open alerts and the latest job runs. It
//! costs one small registry read per live view (its snapshot's record), plus one per view that
//! looks late (its last successful run), plus a few for the rest.

use chrono::{DateTime, SecondsFormat, Utc};
use fstore_registry::{Alert, AlertQuery, JobRun, RunQuery};
use serde::Serialize;

use crate::{ControlError, ControlPlane, EdgeStatus};

/// How late a scheduled view may be before it is shown late: one whole period for short
/// schedules, at most five minutes (a run takes seconds; retries back off for minutes).
const MAX_GRACE_SECONDS: i64 = 300;

/// How many open alerts and recent runs the overview carries.
pub const OPEN_ALERTS: usize = 50;
const RECENT_RUNS: usize = 20;

/// Whether a view's served data is as recent as its schedule promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FreshnessStatus {
    /// Materialized since its last scheduled time (or within the grace after it).
    Fresh,
    /// A scheduled run is overdue by more than the grace.
    Late,
    /// Not scheduled: materialized by hand or by pushes; its age is shown, not judged.
    Manual,
    /// No snapshot of it is live.
    Never,
    /// An on-demand view: computed per request, always current.
    OnDemand,
}

impl FreshnessStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FreshnessStatus::Fresh => "fresh",
            FreshnessStatus::Late => "late",
            FreshnessStatus::Manual => "manual",
            FreshnessStatus::Never => "never",
            FreshnessStatus::OnDemand => "on demand",
        }
    }
}

/// One view's freshness and how much of the fleet serves its live snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct ViewHealth {
    pub view: String,
    /// `feature_view` or `on_demand_view`.
    pub kind: &'static str,
    pub owner: String,
    pub schedule: Option<String>,
    pub live_version: Option<u64>,
    pub rows: Option<u64>,
    pub materialized_at: Option<String>,
    pub age_seconds: Option<i64>,
    /// The scheduled time the live snapshot should be replaced by.
    pub next_due: Option<String>,
    pub status: FreshnessStatus,
    /// Edges that are up and serve the live version of this view.
    pub edges_current: usize,
}

/// What `GET /v1/overview` returns.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub generated_at: String,
    pub live_manifest: Option<u64>,
    pub views: Vec<ViewHealth>,
    pub edges: Vec<EdgeStatus>,
    /// The newest open alerts, at most [`OPEN_ALERTS`]; `open_alerts_more` says if there are
    /// more.
    pub open_alerts: Vec<Alert>,
    pub open_alerts_more: bool,
    pub recent_runs: Vec<JobRun>,
}

fn parse_micros(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn text(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Judges a scheduled view materialized at `at` (µs) against `schedule` at `now` (µs);
/// returns the status and when the next run was due.
pub fn judge(schedule: &fstore_spec::Schedule, at: i64, now: i64) -> (FreshnessStatus, i64) {
    let due = schedule.next_after(at);
    let period = schedule.next_after(due).saturating_sub(due) / 1_000_000;
    let grace = period.clamp(1, MAX_GRACE_SECONDS).saturating_mul(1_000_000);
    let status = if now > due.saturating_add(grace) {
        FreshnessStatus::Late
    } else {
        FreshnessStatus::Fresh
    };
    (status, due)
}

impl ControlPlane {
    /// The store at a glance. Views are in name order, feature views first.
    pub async fn overview(&self) -> Result<Overview, ControlError> {
        let defs = self.registry().definitions().await?;
        let live = self.store().live_manifest().await?;
        let edges = self.edges().await?;
        let open_alerts = self
            .registry()
            .alerts(&AlertQuery {
                status: Some("open".into()),
                view: None,
                limit: OPEN_ALERTS + 1,
            })
            .await?;
        let open_alerts_more = open_alerts.len() > OPEN_ALERTS;
        let open_alerts: Vec<Alert> = open_alerts.into_iter().take(OPEN_ALERTS).collect();
        let recent_runs = self
            .registry()
            .job_runs(&RunQuery {
                limit: RECENT_RUNS,
                ..RunQuery::default()
            })
            .await?;
        let now = Utc::now().timestamp_micros();
        let current = |view: &str, version: u64| {
            edges
                .iter()
                .filter(|e| {
                    e.status == "up" && e.record.heartbeat.views.get(view) == Some(&version)
                })
                .count()
        };
        let mut views = Vec::with_capacity(defs.feature_views.len() + defs.on_demand_views.len());
        for v in &defs.feature_views {
            let slot = live.as_ref().and_then(|m| m.views.get(&v.name));
            let record = match slot {
                Some(s) => self.registry().get_snapshot(&v.name, s.version).await?,
                None => None,
            };
            let at = record.as_ref().and_then(|r| parse_micros(&r.created_at));
            let (status, due) = match (at, &v.schedule) {
                (None, _) => (FreshnessStatus::Never, None),
                (Some(_), None) => (FreshnessStatus::Manual, None),
                (Some(at), Some(s)) => {
                    let (mut status, mut due) = judge(s, at, now);
                    // A scheduled run that found nothing new succeeds without a snapshot:
                    // the view is as fresh as its last successful run.
                    if status == FreshnessStatus::Late
                        && let Some(ran) = self.last_success(&v.name).await?
                        && ran > at
                    {
                        (status, due) = judge(s, ran, now);
                    }
                    (status, Some(text(due)))
                }
            };
            views.push(ViewHealth {
                view: v.name.clone(),
                kind: "feature_view",
                owner: v.owner.clone(),
                schedule: v.schedule.as_ref().map(ToString::to_string),
                live_version: slot.map(|s| s.version),
                rows: slot.map(|s| s.rows),
                materialized_at: record.map(|r| r.created_at),
                age_seconds: at.map(|at| (now - at) / 1_000_000),
                next_due: due,
                status,
                edges_current: slot.map_or(0, |s| current(&v.name, s.version)),
            });
        }
        for v in &defs.on_demand_views {
            views.push(ViewHealth {
                view: v.name.clone(),
                kind: "on_demand_view",
                owner: v.owner.clone(),
                schedule: None,
                live_version: None,
                rows: None,
                materialized_at: None,
                age_seconds: None,
                next_due: None,
                status: FreshnessStatus::OnDemand,
                edges_current: edges
                    .iter()
                    .filter(|e| e.status == "up" && e.record.heartbeat.ready)
                    .count(),
            });
        }
        Ok(Overview {
            generated_at: text(now),
            live_manifest: live.map(|m| m.seq),
            views,
            edges,
            open_alerts,
            open_alerts_more,
            recent_runs,
        })
    }

    /// When the view's last successful run finished (µs), if it has one.
    async fn last_success(&self, view: &str) -> Result<Option<i64>, ControlError> {
        let runs = self
            .registry()
            .job_runs(&RunQuery {
                view: Some(view.to_string()),
                status: Some(fstore_registry::RunStatus::Succeeded),
                before_id: None,
                limit: 1,
            })
            .await?;
        Ok(runs
            .first()
            .and_then(|r| r.finished_at.as_deref())
            .and_then(parse_micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        parse_micros(s).expect("time")
    }

    #[test]
    fn a_view_is_late_once_a_run_is_overdue_past_the_grace() {
        let hourly = fstore_spec::Schedule::parse("1h").expect("schedule");
        let made = at("2026-12-04T10:10:00Z");
        // Due at 11:00; five minutes of grace.
        let (s, due) = judge(&hourly, made, at("2026-12-04T11:04:59Z"));
        assert_eq!(
            (s, text(due).as_str()),
            (FreshnessStatus::Fresh, "2026-12-04T11:00:00Z")
        );
        let (s, _) = judge(&hourly, made, at("2026-12-04T11:05:01Z"));
        assert_eq!(s, FreshnessStatus::Late);
        // A one-minute schedule gets one minute of grace, not five.
        let minutely = fstore_spec::Schedule::parse("1m").expect("schedule");
        let (s, _) = judge(&minutely, made, at("2026-12-04T10:12:01Z"));
        assert_eq!(s, FreshnessStatus::Late);
        let (s, _) = judge(&minutely, made, at("2026-12-04T10:11:59Z"));
        assert_eq!(s, FreshnessStatus::Fresh);
    }
}
