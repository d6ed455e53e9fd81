//! Materialization jobs: a scheduler that queues runs when a view's schedule comes due, and a
//! worker that claims queued runs and executes them under a lease, with a timeout,
//! cancellation and retries with exponential backoff.
//!
//! Every decision that must hold across replicas is the registry's: a view has at most one
//! queued or running run (so runs never overlap), a schedule slot is queued once whichever
//! replica sees it first, a run is claimed by one replica, and a replica that dies mid-run
//! stops renewing its lease, so another replica marks the run failed and queues a retry.
//! Nothing here is published until the whole run succeeded (see `ControlPlane::materialize`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fstore_registry::{Enqueued, JobRun, NewRun, RunOutcome, RunQuery, RunStatus};
use serde::Serialize;

use crate::{ControlError, ControlPlane, MaterializeReport};

/// How the control plane runs jobs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Run the scheduler and the worker in `serve` (the CLI's one-shot verbs never do).
    pub enabled: bool,
    /// This replica's name in `owner` columns; unique per process.
    pub replica: String,
    /// How often the scheduler and worker look for work.
    pub tick: Duration,
    /// How long a claimed run stays this replica's without renewal; renewed every third.
    pub lease: Duration,
    /// A run taking longer fails (and is retried).
    pub timeout: Duration,
    /// Tries per run, the first included.
    pub max_attempts: u32,
    /// The wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// An incremental run compacts its view's chain into a full snapshot once it would hold
    /// this many deltas (or its deltas approach the base in size); at least 1.
    pub compact_after: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            replica: default_replica(),
            tick: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(3600),
            max_attempts: 3,
            backoff: Duration::from_secs(10),
            compact_after: 8,
        }
    }
}

impl JobSettings {
    /// Settings that can run: a zero tick or lease would spin (or panic in a timer), a zero
    /// timeout would fail every run.
    pub fn validate(&self) -> Result<(), String> {
        let ms = |d: Duration| d.as_millis();
        if self.compact_after == 0 {
            return Err("compact_after must be at least 1".into());
        }
        if ms(self.tick) < 10 {
            return Err("the job tick must be at least 10 ms".into());
        }
        if ms(self.lease) < 300 {
            return Err("a job lease must be at least 300 ms".into());
        }
        if self.timeout.is_zero() || self.max_attempts == 0 {
            return Err("the job timeout and attempts must be above zero".into());
        }
        if self.backoff > MAX_BACKOFF {
            return Err("the job backoff must be at most a day".into());
        }
        if self.replica.trim().is_empty() {
            return Err("the replica id must not be empty".into());
        }
        Ok(())
    }
}

/// The longest wait before a retry, however many attempts came before.
const MAX_BACKOFF: Duration = Duration::from_secs(86_400);

/// `<host>-<pid>`: readable in `fstore jobs`, and unique among live processes.
fn default_replica() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "control-plane".into());
    format!("{host}-{}", std::process::id())
}

/// Per-view job figures of this replica, for `/metrics`.
#[derive(Debug, Default)]
pub struct JobMetrics {
    views: Mutex<BTreeMap<String, ViewFigures>>,
    pub(crate) scheduler_errors: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct ViewFigures {
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    rejected: u64,
    seconds_sum: f64,
}

impl JobMetrics {
    fn record(&self, view: &str, status: RunStatus, seconds: f64) {
        let mut views = self
            .views
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = views.entry(view.to_string()).or_default();
        match status {
            RunStatus::Succeeded => v.succeeded += 1,
            RunStatus::Cancelled => v.cancelled += 1,
            RunStatus::Rejected => v.rejected += 1,
            _ => v.failed += 1,
        }
        v.seconds_sum += seconds;
    }

    /// Prometheus text for the runs this replica finished.
    pub fn render(&self, out: &mut String) {
        let views = self
            .views
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        out.push_str("# HELP fstore_job_runs_total Materialization runs this replica finished, by outcome.\n# TYPE fstore_job_runs_total counter\n");
        for (view, f) in &views {
            for (status, n) in [
                ("succeeded", f.succeeded),
                ("failed", f.failed),
                ("cancelled", f.cancelled),
                ("rejected", f.rejected),
            ] {
                out.push_str(&format!(
                    "fstore_job_runs_total{{view=\"{}\",status=\"{status}\"}} {n}\n",
                    label(view)
                ));
            }
        }
        out.push_str("# HELP fstore_job_run_seconds Time spent in materialization runs.\n# TYPE fstore_job_run_seconds summary\n");
        for (view, f) in &views {
            out.push_str(&format!(
                "fstore_job_run_seconds_sum{{view=\"{}\"}} {}\nfstore_job_run_seconds_count{{view=\"{}\"}} {}\n",
                label(view),
                f.seconds_sum,
                label(view),
                f.succeeded + f.failed + f.cancelled + f.rejected
            ));
        }
        out.push_str(&format!(
            "# HELP fstore_scheduler_errors_total Scheduler or worker passes that failed (registry unreachable...).\n# TYPE fstore_scheduler_errors_total counter\nfstore_scheduler_errors_total {}\n",
            self.scheduler_errors.load(Ordering::Relaxed)
        ));
    }
}

/// The run an enqueue queued, or the 409 `run_active` that says which run is in the way.
pub(crate) fn queued_run(view: &str, enqueued: Enqueued) -> Result<JobRun, ControlError> {
    match enqueued {
        Enqueued::Queued(run) => Ok(run),
        Enqueued::AlreadyActive(active) => Err(ControlError::Conflict {
            code: "run_active",
            message: format!(
                "run #{} of `{view}` is {}; runs of one view do not overlap \
                 (`fstore jobs`, or cancel it with `fstore jobs cancel {}`)",
                active.id,
                active.status.as_str(),
                active.id
            ),
            details: serde_json::to_value(&active).unwrap_or_default(),
        }),
        Enqueued::AlreadyScheduled => Err(ControlError::Conflict {
            code: "run_active",
            message: format!("a run of `{view}` is already queued"),
            details: serde_json::Value::Null,
        }),
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
pub(crate) fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// What `POST /v1/jobs` did.
#[derive(Debug, Clone, Serialize)]
pub struct Triggered {
    pub queued: bool,
    pub run: JobRun,
}

impl ControlPlane {
    /// Queues a run of `view` for the scheduler's worker; refused (409) while one of the view
    /// is queued or running.
    pub async fn trigger_run(&self, view: &str, actor: &str) -> Result<Triggered, ControlError> {
        let defs = self.registry().definitions().await?;
        if defs.view(view).is_none() {
            return Err(ControlError::NotFound {
                kind: "feature view".into(),
                name: view.to_string(),
            });
        }
        let queued = self
            .registry()
            .enqueue_run(&NewRun {
                view: view.to_string(),
                trigger: "api".into(),
                attempt: 1,
                scheduled_for: None,
                not_before: None,
                actor: actor.to_string(),
            })
            .await?;
        Ok(Triggered {
            queued: true,
            run: queued_run(view, queued)?,
        })
    }

    /// Prometheus text: this replica's job figures, and each view's freshness (the age of
    /// its live snapshot), which every replica reports alike.
    pub async fn metrics_text(&self) -> Result<String, ControlError> {
        let mut out = String::new();
        self.jobs_metrics().render(&mut out);
        out.push_str("# HELP fstore_view_freshness_seconds Age of the snapshot each view serves.\n# TYPE fstore_view_freshness_seconds gauge\n");
        let live = self.store().live_manifest().await?;
        let now = chrono::Utc::now().timestamp_micros();
        if let Some(m) = live {
            for (slot, v) in &m.views {
                let record = self
                    .registry()
                    .get_snapshot(
                        crate::governance::key_view(&v.key).unwrap_or(slot),
                        v.version,
                    )
                    .await?;
                if let Some(at) = record.and_then(|r| parse_time(&r.created_at)) {
                    out.push_str(&format!(
                        "fstore_view_freshness_seconds{{view=\"{}\"}} {}\n",
                        label(slot),
                        (now - at) as f64 / 1e6
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Runs, newest first.
    pub async fn job_runs(&self, q: &RunQuery) -> Result<Vec<JobRun>, ControlError> {
        Ok(self.registry().job_runs(q).await?)
    }

    pub async fn job_run(&self, id: u64) -> Result<JobRun, ControlError> {
        self.registry()
            .job_run(id)
            .await?
            .ok_or_else(|| ControlError::NotFound {
                kind: "job run".into(),
                name: id.to_string(),
            })
    }

    /// Cancels a queued run at once, or asks the replica running it to stop; a run that
    /// already ended is a 409 that says how it ended.
    pub async fn cancel_run(&self, id: u64, actor: &str) -> Result<JobRun, ControlError> {
        let before = self.job_run(id).await?;
        let finished = |run: JobRun| ControlError::Conflict {
            code: "run_finished",
            message: format!("run #{id} already {}", run.status.as_str()),
            details: serde_json::to_value(&run).unwrap_or_default(),
        };
        if !before.status.is_active() {
            return Err(finished(before));
        }
        if before.trigger == "manual" && before.status == RunStatus::Running {
            return Err(ControlError::Conflict {
                code: "run_not_cancellable",
                message: format!(
                    "run #{id} is a manual materialization running in the process that started \
                     it (`fstore materialize`); stop that process instead"
                ),
                details: serde_json::to_value(&before).unwrap_or_default(),
            });
        }
        let run = self
            .registry()
            .request_cancel(id, actor)
            .await?
            .ok_or_else(|| ControlError::NotFound {
                kind: "job run".into(),
                name: id.to_string(),
            })?;
        // It may have finished between the two reads.
        if !run.status.is_active() && run.status != RunStatus::Cancelled {
            return Err(finished(run));
        }
        Ok(run)
    }
}

/// Runs the scheduler and the worker until `stop` says so. They are separate loops so that a
/// long run on this replica does not hold back other views' schedules or lease expiry.
pub async fn run(cp: Arc<ControlPlane>, stop: tokio::sync::watch::Receiver<bool>) {
    let settings = cp.config.jobs.clone();
    tracing::info!(replica = %settings.replica, "job scheduler and worker started");
    let scheduler = every_tick(cp.clone(), settings.clone(), stop.clone(), Loop::Scheduler);
    let worker = every_tick(cp.clone(), settings, stop.clone(), Loop::Worker);
    let retention = retention_loop(cp, stop);
    tokio::join!(scheduler, worker, retention);
}

/// How often sources' retention is applied. Deleting an expired partition twice is harmless,
/// so replicas need not agree on who does it.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Applies every source's retention a minute after start, then daily.
async fn retention_loop(cp: Arc<ControlPlane>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let system = crate::Principal {
        actor: "system:retention".into(),
        ..crate::Principal::local("retention")
    };
    let mut wait = std::time::Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match cp.apply_retention(&system).await {
            Ok(r) => {
                let files: usize = r.sources.iter().map(|s| s.deleted.len()).sum();
                if files > 0 {
                    tracing::info!(files, "retention deleted expired partitions");
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed; trying again tomorrow"),
        }
        wait = RETENTION_EVERY;
    }
}

#[derive(Clone, Copy)]
enum Loop {
    /// Fails runs whose replica died (and queues their retries), queues due schedules.
    Scheduler,
    /// Claims queued runs and executes them, one at a time: a materialization already uses
    /// the cores this replica has.
    Worker,
}

async fn every_tick(
    cp: Arc<ControlPlane>,
    settings: JobSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
    which: Loop,
) {
    let mut tick = tokio::time::interval(settings.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let pass = match which {
            Loop::Scheduler => scheduler_pass(&cp, &settings).await,
            Loop::Worker => worker_pass(&cp, &settings, &stop).await,
        };
        if let Err(e) = pass {
            cp.jobs_metrics()
                .scheduler_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "job scheduler pass failed; trying again next tick");
        }
    }
}

async fn scheduler_pass(
    cp: &Arc<ControlPlane>,
    settings: &JobSettings,
) -> Result<(), ControlError> {
    for lost in cp.registry().expire_leases().await? {
        tracing::warn!(run = lost.id, view = %lost.view, owner = ?lost.owner, "a run's lease expired; marked failed");
        // Each has been failed already; one retry that cannot be queued must not cost the
        // others theirs.
        if lost.cancel_requested {
            continue;
        }
        if let Err(e) = retry(cp, settings, &lost).await {
            tracing::warn!(run = lost.id, error = %e, "could not queue the retry of an expired run");
        }
    }
    schedule(cp, settings.tick).await
}

async fn worker_pass(
    cp: &Arc<ControlPlane>,
    settings: &JobSettings,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<(), ControlError> {
    while !*stop.borrow() {
        let Some(run) = cp
            .registry()
            .claim_run(&settings.replica, settings.lease)
            .await?
        else {
            break;
        };
        execute(cp, settings, run).await?;
    }
    Ok(())
}

/// Queues the latest due slot of every scheduled view. A slot already queued (by this or
/// another replica) or a view with a run in progress is left alone; slots missed while no
/// control plane ran are caught up with one run, not one per slot.
async fn schedule(cp: &ControlPlane, tick: Duration) -> Result<(), ControlError> {
    let defs = cp.registry().definitions().await?;
    let now = chrono::Utc::now().timestamp_micros();
    for view in &defs.feature_views {
        let Some(schedule) = &view.schedule else {
            continue;
        };
        let last_slot = cp
            .registry()
            .last_scheduled_slot(&view.name)
            .await?
            .as_deref()
            .and_then(parse_time);
        // Catch up at most a day. A schedule with no run yet starts with the slots of the
        // last two ticks (the scheduler wakes once a tick, so a slot is seen within one).
        const DAY: i64 = 86_400_000_000;
        let window = i64::try_from(tick.as_micros())
            .unwrap_or(i64::MAX)
            .saturating_mul(2);
        let mut anchor = last_slot
            .unwrap_or(now.saturating_sub(window))
            .max(now - DAY);
        let mut due = None;
        for _ in 0..100_000 {
            let next = schedule.next_after(anchor);
            if next > now {
                break;
            }
            due = Some(next);
            anchor = next;
        }
        let Some(due) = due else { continue };
        let queued = cp
            .registry()
            .enqueue_run(&NewRun {
                view: view.name.clone(),
                trigger: "schedule".into(),
                attempt: 1,
                scheduled_for: Some(rfc3339(due)),
                not_before: None,
                actor: "scheduler".into(),
            })
            .await?;
        if let Enqueued::Queued(run) = queued {
            tracing::info!(run = run.id, view = %view.name, slot = %rfc3339(due), "scheduled run queued");
        }
    }
    Ok(())
}

/// Queues the next attempt of a failed run, after an exponential backoff, unless it has had
/// all its attempts.
async fn retry(
    cp: &ControlPlane,
    settings: &JobSettings,
    failed: &JobRun,
) -> Result<(), ControlError> {
    if failed.attempt >= settings.max_attempts {
        tracing::warn!(run = failed.id, view = %failed.view, attempts = failed.attempt, "run failed and has no attempts left");
        return Ok(());
    }
    let factor = 2u32.saturating_pow(failed.attempt.saturating_sub(1));
    let wait = settings.backoff.saturating_mul(factor).min(MAX_BACKOFF);
    let not_before =
        chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1));
    let queued = cp
        .registry()
        .enqueue_run(&NewRun {
            view: failed.view.clone(),
            trigger: "retry".into(),
            attempt: failed.attempt + 1,
            scheduled_for: None,
            not_before: Some(not_before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            actor: failed.actor.clone(),
        })
        .await?;
    if let Enqueued::Queued(run) = queued {
        tracing::info!(run = run.id, view = %run.view, attempt = run.attempt, wait_s = wait.as_secs_f64(), "retry queued");
    }
    Ok(())
}

/// Executes one claimed run: materializes its view while renewing the lease, and stops it on
/// cancellation, lost lease or timeout. Dropping the materialization before it publishes
/// publishes nothing; a snapshot it already wrote is unreferenced and left to retention.
async fn execute(
    cp: &Arc<ControlPlane>,
    settings: &JobSettings,
    run: JobRun,
) -> Result<(), ControlError> {
    let started = Instant::now();
    tracing::info!(run = run.id, view = %run.view, attempt = run.attempt, "run started");
    let committing = std::sync::atomic::AtomicBool::new(false);
    let work = cp.materialize_views(
        std::slice::from_ref(&run.view),
        &run.actor,
        Some(&committing),
        crate::incremental::RunMode::Auto,
    );
    tokio::pin!(work);
    let deadline = tokio::time::sleep(settings.timeout);
    tokio::pin!(deadline);
    let mut timed_out = false;
    let mut renew = tokio::time::interval(settings.lease / 3);
    renew.tick().await;
    // Once the run has started publishing it is seen through: dropping it then would leave a
    // published manifest recorded as failed, and a retry publishing it again.
    let committed = || committing.load(Ordering::SeqCst);
    let outcome = loop {
        tokio::select! {
            done = &mut work => break outcome_of(&run.view, done.as_ref()),
            _ = &mut deadline, if !timed_out => {
                timed_out = true;
                if !committed() {
                    break RunOutcome {
                        status: RunStatus::Failed,
                        error: Some(format!("timed out after {} s", settings.timeout.as_secs())),
                        ..RunOutcome::default()
                    };
                }
            }
            _ = renew.tick() => {
                match cp.registry().renew_lease(run.id, &settings.replica, settings.lease).await {
                    Ok(true) => {}
                    // Expired and failed by another replica, or finished elsewhere: not ours.
                    Ok(false) if !committed() => {
                        tracing::warn!(run = run.id, "lost the lease of a running run; abandoning it");
                        return Ok(());
                    }
                    Ok(false) => {}
                    // A registry hiccup: keep going; the lease has time left, and the next
                    // renewal tries again.
                    Err(e) => tracing::warn!(run = run.id, error = %e, "could not renew a run's lease"),
                }
                let cancelled = cp
                    .registry()
                    .job_run(run.id)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.cancel_requested);
                if cancelled && !committed() {
                    break RunOutcome {
                        status: RunStatus::Cancelled,
                        error: Some("cancelled while running".into()),
                        ..RunOutcome::default()
                    };
                }
            }
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    cp.jobs_metrics().record(&run.view, outcome.status, seconds);
    let failed = outcome.status == RunStatus::Failed;
    if let Some(e) = &outcome.error {
        tracing::warn!(run = run.id, view = %run.view, status = outcome.status.as_str(), error = %e, "run ended");
    } else {
        tracing::info!(run = run.id, view = %run.view, seconds, "run succeeded");
    }
    match cp
        .registry()
        .finish_run(run.id, &settings.replica, &outcome)
        .await
    {
        Ok(true) if failed => {
            if let Err(e) = retry(cp, settings, &run).await {
                tracing::warn!(run = run.id, error = %e, "could not queue a retry");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(run = run.id, error = %e, "could not record the end of a run; its lease will lapse and it will be retried")
        }
    }
    Ok(())
}

/// A run's outcome from its materialization's result.
pub(crate) fn outcome_of(
    view: &str,
    done: Result<&Vec<MaterializeReport>, &ControlError>,
) -> RunOutcome {
    match done {
        Ok(reports) => {
            let own = reports.iter().find(|r| r.view == view);
            let wrote = own.filter(|r| r.mode != "unchanged");
            // Source rows: every row read was either used (written into the snapshot's
            // computation) or rejected, so read = written + rejected holds by construction.
            RunOutcome {
                status: RunStatus::Succeeded,
                rows_read: own.map(|r| r.rows_read),
                rows_written: own.map(|r| r.rows_read - r.rows_rejected),
                rows_rejected: own.map(|r| r.rows_rejected),
                snapshot_version: wrote.map(|r| r.version),
                manifest_seq: own.map(|r| r.manifest_seq),
                error: None,
                mode: own.map(|r| r.mode.clone()),
                entities: wrote.map(|r| r.rows_written),
                quarantine: own.and_then(|r| r.quarantine.clone()),
            }
        }
        // Not a failure to retry: the same data would break the same rules.
        Err(
            e @ ControlError::QualityRejected {
                view: v, version, ..
            },
        ) if v == view => RunOutcome {
            status: RunStatus::Rejected,
            snapshot_version: Some(*version),
            error: Some(e.to_string()),
            ..RunOutcome::default()
        },
        Err(e) => RunOutcome {
            status: RunStatus::Failed,
            error: Some(e.to_string()),
            ..RunOutcome::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_run_are_refused() {
        assert!(JobSettings::default().validate().is_ok());
        for bad in [
            JobSettings {
                tick: Duration::ZERO,
                ..JobSettings::default()
            },
            JobSettings {
                lease: Duration::from_millis(1),
                ..JobSettings::default()
            },
            JobSettings {
                timeout: Duration::ZERO,
                ..JobSettings::default()
            },
            JobSettings {
                max_attempts: 0,
                ..JobSettings::default()
            },
            JobSettings {
                backoff: Duration::from_secs(10 * 86_400),
                ..JobSettings::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prometheus_labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
