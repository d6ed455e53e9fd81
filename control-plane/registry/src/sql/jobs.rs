//! Materialization job runs with leases, so that control-plane replicas sharing one database
//! never run a job twice and notice a replica that died mid-run.
//!
//! Every guarantee rests on single conditional statements (`UPDATE … WHERE run_status = …`),
//! which both databases apply atomically to each row: on PostgreSQL under READ COMMITTED a
//! second writer waits for the first and then re-checks the condition against the row as the
//! first left it; on SQLite writers are serialised. Two replicas can therefore read the same
//! queued run, but only one of their updates takes it. Times are the registry's own clock,
//! computed in Rust (the dialects' date functions differ) and compared as fixed-width text.

use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use sqlx::any::AnyRow;

use super::{Arg, Args, SqlRegistry, advance_counter, db, format_time, get, to_i64, to_u64};
use crate::{
    Enqueued, JobRun, LEASE_EXPIRED, NewRun, RegistryError, RunOutcome, RunQuery, RunStatus,
};

/// The counter that numbers runs.
const RUN_COUNTER: &str = "job_run";

const MAX_RUNS_LIMIT: usize = 1000;

/// How often a claimer that lost a race for a run tries the next one before reporting none;
/// each loss means another claimer took a run, so this only bounds a burst of contention.
const CLAIM_ATTEMPTS: usize = 16;

/// How often enqueue_run retries after the database refused its insert as a duplicate that
/// its own checks did not see (see there).
const ENQUEUE_ATTEMPTS: usize = 3;

const RUN_COLUMNS: &str = "id, view_name, run_status, run_trigger, attempt, scheduled_for, \
     actor, requested_at, not_before, started_at, finished_at, run_owner, lease_until, \
     cancel_requested, rows_read, rows_written, rows_rejected, snapshot_version, manifest_seq, \
     run_error, run_mode, entities, quarantine";

/// `t` as stored, provided it keeps the fixed width that text comparison relies on: chrono
/// writes years past 9999 (or before 0) with a sign, which would sort before every other time.
fn stored_time(t: DateTime<Utc>, what: &str) -> Result<String, RegistryError> {
    if !(0..=9999).contains(&t.year()) {
        return Err(RegistryError::Invalid(format!(
            "{what} falls in year {}, outside 0-9999",
            t.year()
        )));
    }
    Ok(format_time(t))
}

/// `t` as the registry stores times, or Invalid when it is not RFC 3339. Normalised to UTC
/// microseconds because times are compared and matched as text: `+02:00` or missing
/// fractions would sort wrongly and make one schedule slot look like two.
fn normalise_time(t: &str, what: &str) -> Result<String, RegistryError> {
    let parsed = DateTime::parse_from_rfc3339(t).map_err(|e| {
        RegistryError::Invalid(format!("{what} `{t}` is not an RFC 3339 time: {e}"))
    })?;
    stored_time(parsed.with_timezone(&Utc), &format!("{what} `{t}`"))
}

/// The time `lease` after `now`, as stored.
fn lease_end(now: DateTime<Utc>, lease: Duration) -> Result<String, RegistryError> {
    if lease.is_zero() {
        return Err(RegistryError::Invalid(
            "a run's lease must be longer than zero".into(),
        ));
    }
    let end = chrono::TimeDelta::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| RegistryError::Invalid(format!("a lease of {lease:?} is too long")))?;
    stored_time(end, &format!("a lease of {lease:?}"))
}

fn check_owner(owner: &str) -> Result<(), RegistryError> {
    if owner.trim().is_empty() {
        return Err(RegistryError::Invalid(
            "a run's owner (the replica running it) must not be empty".into(),
        ));
    }
    Ok(())
}

fn check_view(view: &str) -> Result<(), RegistryError> {
    if view.is_empty() {
        return Err(RegistryError::Invalid(
            "a run's view must not be empty".into(),
        ));
    }
    Ok(())
}

fn opt_u64(row: &AnyRow, col: &str, what: &str) -> Result<Option<u64>, RegistryError> {
    get::<Option<i64>>(row, col)?
        .map(|v| to_u64(v, what))
        .transpose()
}

fn job_run(row: &AnyRow) -> Result<JobRun, RegistryError> {
    let id = to_u64(get(row, "id")?, "a run id")?;
    let status: String = get(row, "run_status")?;
    let attempt: i64 = get(row, "attempt")?;
    Ok(JobRun {
        id,
        view: get(row, "view_name")?,
        status: RunStatus::parse(&status).ok_or_else(|| {
            RegistryError::Corrupt(format!("run {id} has unknown status `{status}`"))
        })?,
        trigger: get(row, "run_trigger")?,
        attempt: u32::try_from(attempt)
            .map_err(|_| RegistryError::Corrupt(format!("run {id} has attempt {attempt}")))?,
        scheduled_for: get(row, "scheduled_for")?,
        actor: get(row, "actor")?,
        requested_at: get(row, "requested_at")?,
        not_before: get(row, "not_before")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
        owner: get(row, "run_owner")?,
        lease_until: get(row, "lease_until")?,
        cancel_requested: get::<i64>(row, "cancel_requested")? != 0,
        rows_read: opt_u64(row, "rows_read", "a run's rows read")?,
        rows_written: opt_u64(row, "rows_written", "a run's rows written")?,
        rows_rejected: opt_u64(row, "rows_rejected", "a run's rows rejected")?,
        snapshot_version: opt_u64(row, "snapshot_version", "a run's snapshot version")?,
        manifest_seq: opt_u64(row, "manifest_seq", "a run's manifest sequence")?,
        error: get(row, "run_error")?,
        mode: get(row, "run_mode")?,
        entities: opt_u64(row, "entities", "a run's entities")?,
        quarantine: get(row, "quarantine")?,
    })
}

impl SqlRegistry {
    pub(super) async fn enqueue_run_impl(&self, r: &NewRun) -> Result<Enqueued, RegistryError> {
        check_view(&r.view)?;
        if r.trigger.trim().is_empty() {
            return Err(RegistryError::Invalid(format!(
                "a run of `{}` needs a trigger",
                r.view
            )));
        }
        if r.attempt == 0 {
            return Err(RegistryError::Invalid(format!(
                "a run of `{}` has attempt 0; the first try is attempt 1",
                r.view
            )));
        }
        let slot = r
            .scheduled_for
            .as_deref()
            .map(|t| normalise_time(t, "the schedule slot"))
            .transpose()?;
        let not_before = r
            .not_before
            .as_deref()
            .map(|t| normalise_time(t, "not_before"))
            .transpose()?;
        for _ in 0..ENQUEUE_ATTEMPTS {
            if let Some(out) = self.try_enqueue(r, slot.as_deref(), &not_before).await? {
                return Ok(out);
            }
        }
        Err(RegistryError::Duplicate(format!(
            "a run of `{}` kept colliding with another one being queued",
            r.view
        )))
    }

    /// One enqueue transaction; `None` when the insert hit a unique index after the checks
    /// passed, so the caller tries again.
    async fn try_enqueue(
        &self,
        r: &NewRun,
        slot: Option<&str>,
        not_before: &Option<String>,
    ) -> Result<Option<Enqueued>, RegistryError> {
        let view = r.view.as_str();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db(format!("starting to queue a run of `{view}`")))?;
        // The id is allocated first on purpose: the counter upsert is a write, so on SQLite
        // the transaction holds the write lock before it reads (see apply_lock), and on
        // PostgreSQL it locks the counter row until commit, so enqueues run one after another
        // and each one's checks below see the runs queued before it.
        let id = advance_counter(&mut *tx, RUN_COUNTER, 0).await?;
        if let Some(slot) = slot {
            let taken: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM job_runs WHERE view_name = $1 AND scheduled_for = $2",
            )
            .bind(view)
            .bind(slot)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(format!(
                "looking for the run of `{view}` scheduled for {slot}"
            )))?;
            if taken.is_some() {
                // Dropping the transaction rolls it back, so the id is not used up.
                return Ok(Some(Enqueued::AlreadyScheduled));
            }
        }
        let active = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM job_runs \
             WHERE view_name = $1 AND run_status IN ('queued', 'running')"
        )))
        .bind(view)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db(format!("looking for an active run of `{view}`")))?;
        if let Some(row) = active {
            return Ok(Some(Enqueued::AlreadyActive(job_run(&row)?)));
        }

        let now = super::now();
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO job_runs (id, view_name, run_status, run_trigger, attempt, \
             scheduled_for, actor, requested_at, not_before, cancel_requested) \
             VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, 0) RETURNING {RUN_COLUMNS}"
        )))
        .bind(to_i64(id, "a run id")?)
        .bind(view)
        .bind(&r.trigger)
        .bind(i64::from(r.attempt))
        .bind(slot)
        .bind(&r.actor)
        .bind(&now)
        .bind(not_before.as_deref().unwrap_or(&now))
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            // Only a writer that skipped the counter (another fstore version, a hand edit)
            // can get here; the checks are simply run again on a fresh transaction (on
            // PostgreSQL this one is aborted).
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Ok(None);
            }
            Err(e) => return Err(db(format!("queuing a run of `{view}`"))(e)),
        };
        let run = job_run(&row)?;
        tx.commit()
            .await
            .map_err(db(format!("committing the queued run of `{view}`")))?;
        Ok(Some(Enqueued::Queued(run)))
    }

    pub(super) async fn claim_run_impl(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<JobRun>, RegistryError> {
        check_owner(owner)?;
        lease_end(Utc::now(), lease)?;
        for _ in 0..CLAIM_ATTEMPTS {
            let now = Utc::now();
            let stamp = format_time(now);
            let candidate: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM job_runs WHERE run_status = 'queued' AND not_before <= $1 \
                 ORDER BY id LIMIT 1",
            )
            .bind(&stamp)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("looking for a queued run"))?;
            let Some(id) = candidate else {
                return Ok(None);
            };
            if let Some(run) = self.take(id, owner, now, lease).await? {
                return Ok(Some(run));
            }
        }
        Ok(None)
    }

    pub(super) async fn claim_run_id_impl(
        &self,
        id: u64,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<JobRun>, RegistryError> {
        check_owner(owner)?;
        lease_end(Utc::now(), lease)?;
        let Ok(id) = i64::try_from(id) else {
            // No stored id is that large.
            return Ok(None);
        };
        self.take(id, owner, Utc::now(), lease).await
    }

    /// Marks run `id` running for `owner` if it is still queued.
    async fn take(
        &self,
        id: i64,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<JobRun>, RegistryError> {
        // The status condition is what makes this safe: of several replicas that picked the
        // same run, the first update takes it and the others' updates match nothing.
        let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE job_runs SET run_status = 'running', run_owner = $1, lease_until = $2, \
             started_at = $3 WHERE id = $4 AND run_status = 'queued' RETURNING {RUN_COLUMNS}"
        )))
        .bind(owner)
        .bind(lease_end(now, lease)?)
        .bind(format_time(now))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!("claiming run {id}")))?;
        claimed.as_ref().map(job_run).transpose()
    }

    pub(super) async fn renew_lease_impl(
        &self,
        id: u64,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, RegistryError> {
        check_owner(owner)?;
        let until = lease_end(Utc::now(), lease)?;
        let Ok(id) = i64::try_from(id) else {
            // No stored id is that large.
            return Ok(false);
        };
        let renewed = sqlx::query(
            "UPDATE job_runs SET lease_until = $1 \
             WHERE id = $2 AND run_owner = $3 AND run_status = 'running'",
        )
        .bind(&until)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db(format!("renewing the lease of run {id}")))?
        .rows_affected();
        Ok(renewed == 1)
    }

    pub(super) async fn finish_run_impl(
        &self,
        id: u64,
        owner: &str,
        o: &RunOutcome,
    ) -> Result<bool, RegistryError> {
        check_owner(owner)?;
        if o.status.is_active() {
            return Err(RegistryError::Invalid(format!(
                "run {id} cannot finish as {}; it must succeed, fail or be cancelled",
                o.status
            )));
        }
        let count = |v: Option<u64>, what: &str| v.map(|v| to_i64(v, what)).transpose();
        let rows_read = count(o.rows_read, "the rows read")?;
        let rows_written = count(o.rows_written, "the rows written")?;
        let rows_rejected = count(o.rows_rejected, "the rows rejected")?;
        let snapshot_version = count(o.snapshot_version, "the snapshot version")?;
        let manifest_seq = count(o.manifest_seq, "the manifest sequence")?;
        let entities = count(o.entities, "the entities")?;
        let Ok(id) = i64::try_from(id) else {
            return Ok(false);
        };
        // A runner stopping on request seldom has more to say than that it was cancelled, so
        // the error then names who asked, as for a queued run. `'x' || NULL` is NULL in both
        // dialects, so a run nobody asked to cancel gets no error.
        let finished = sqlx::query(
            "UPDATE job_runs SET run_status = $1, finished_at = $2, rows_read = $3, \
             rows_written = $4, rows_rejected = $5, snapshot_version = $6, manifest_seq = $7, \
             run_error = COALESCE($9, CASE WHEN $1 = 'cancelled' \
             THEN 'cancelled by ' || cancel_actor END), \
             run_mode = $11, entities = $12, quarantine = $13 \
             WHERE id = $8 AND run_owner = $10 AND run_status = 'running'",
        )
        .bind(o.status.as_str())
        .bind(super::now())
        .bind(rows_read)
        .bind(rows_written)
        .bind(rows_rejected)
        .bind(snapshot_version)
        .bind(manifest_seq)
        .bind(id)
        .bind(o.error.as_deref())
        .bind(owner)
        .bind(o.mode.as_deref())
        .bind(entities)
        .bind(o.quarantine.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db(format!("recording the outcome of run {id}")))?
        .rows_affected();
        Ok(finished == 1)
    }

    pub(super) async fn request_cancel_impl(
        &self,
        id: u64,
        actor: &str,
    ) -> Result<Option<JobRun>, RegistryError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        // A run only moves forward (queued → running → finished, or queued → cancelled), so
        // trying the two transitions in this order and then reading needs no transaction:
        // whichever state the run is in when a step runs, the right step applies.
        let cancelled = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE job_runs SET run_status = 'cancelled', finished_at = $1, run_error = $2, \
             cancel_actor = $3 WHERE id = $4 AND run_status = 'queued' RETURNING {RUN_COLUMNS}"
        )))
        .bind(super::now())
        .bind(format!("cancelled by {actor}"))
        .bind(actor)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!("cancelling queued run {id}")))?;
        if let Some(row) = cancelled {
            return job_run(&row).map(Some);
        }
        let requested = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE job_runs SET cancel_requested = 1, cancel_actor = $1 \
             WHERE id = $2 AND run_status = 'running' RETURNING {RUN_COLUMNS}"
        )))
        .bind(actor)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!("asking running run {id} to stop")))?;
        if let Some(row) = requested {
            return job_run(&row).map(Some);
        }
        self.job_run_impl(to_u64(id, "a run id")?).await
    }

    pub(super) async fn expire_leases_impl(&self) -> Result<Vec<JobRun>, RegistryError> {
        let now = super::now();
        // One statement, so that of several replicas sweeping at once each expired run is
        // failed (and so retried) by exactly one.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE job_runs SET run_status = 'failed', finished_at = $1, run_error = $2 \
             WHERE run_status = 'running' AND lease_until < $1 RETURNING {RUN_COLUMNS}"
        )))
        .bind(&now)
        .bind(LEASE_EXPIRED)
        .fetch_all(&self.pool)
        .await
        .map_err(db("failing runs whose lease expired"))?;
        let mut out = rows.iter().map(job_run).collect::<Result<Vec<_>, _>>()?;
        // RETURNING has no order.
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    pub(super) async fn job_runs_impl(&self, q: &RunQuery) -> Result<Vec<JobRun>, RegistryError> {
        if q.limit == 0 || q.limit > MAX_RUNS_LIMIT {
            return Err(RegistryError::Invalid(format!(
                "job-run limit must be between 1 and {MAX_RUNS_LIMIT}, got {}",
                q.limit
            )));
        }
        let mut args = Args::default();
        let mut filters = Vec::new();
        if let Some(view) = &q.view {
            check_view(view)?;
            filters.push(format!("view_name = {}", args.text(view.as_str())));
        }
        if let Some(status) = q.status {
            filters.push(format!("run_status = {}", args.text(status.as_str())));
        }
        if let Some(before) = q.before_id {
            // Every stored id is below i64::MAX, so a larger bound means no bound.
            if let Ok(before) = i64::try_from(before) {
                filters.push(format!("id < {}", args.push(Arg::Int(before))));
            }
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        // The limit is a checked number, written into the statement as in changelog().
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM job_runs{filter} ORDER BY id DESC LIMIT {}",
            q.limit
        );
        let rows = args
            .fetch_all(sql, &self.pool)
            .await
            .map_err(db("listing job runs"))?;
        rows.iter().map(job_run).collect()
    }

    pub(super) async fn job_run_impl(&self, id: u64) -> Result<Option<JobRun>, RegistryError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM job_runs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!("reading run {id}")))?;
        row.as_ref().map(job_run).transpose()
    }

    pub(super) async fn last_run_impl(
        &self,
        view: &str,
        status: Option<RunStatus>,
    ) -> Result<Option<JobRun>, RegistryError> {
        check_view(view)?;
        let mut args = Args::default();
        let mut filter = format!("view_name = {}", args.text(view));
        if let Some(status) = status {
            filter.push_str(&format!(" AND run_status = {}", args.text(status.as_str())));
        }
        let sql =
            format!("SELECT {RUN_COLUMNS} FROM job_runs WHERE {filter} ORDER BY id DESC LIMIT 1");
        let rows = args
            .fetch_all(sql, &self.pool)
            .await
            .map_err(db(format!("reading the last run of `{view}`")))?;
        rows.first().map(job_run).transpose()
    }

    pub(super) async fn last_scheduled_slot_impl(
        &self,
        view: &str,
    ) -> Result<Option<String>, RegistryError> {
        check_view(view)?;
        let slot: Option<String> =
            sqlx::query_scalar("SELECT MAX(scheduled_for) FROM job_runs WHERE view_name = $1")
                .bind(view)
                .fetch_one(&self.pool)
                .await
                .map_err(db(format!("reading the last schedule slot of `{view}`")))?;
        Ok(slot)
    }

    pub(super) async fn try_lock_impl(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, RegistryError> {
        if name.is_empty() || holder.is_empty() {
            return Err(RegistryError::Invalid(
                "a lock needs a name and a holder".into(),
            ));
        }
        let now = Utc::now();
        let until = lease_end(now, lease)?;
        let now = stored_time(now, "the current time")?;
        // One statement: the row is taken when it is missing, expired, or already ours, and
        // RETURNING says whether this caller's update happened.
        let taken: Option<String> = sqlx::query_scalar(
            "INSERT INTO locks (lock_name, holder, lease_until) VALUES ($1, $2, $3) \
             ON CONFLICT (lock_name) DO UPDATE SET holder = excluded.holder, \
             lease_until = excluded.lease_until \
             WHERE locks.lease_until < $4 OR locks.holder = excluded.holder \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(&until)
        .bind(&now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!("taking lock `{name}`")))?;
        Ok(taken.is_some())
    }

    pub(super) async fn unlock_impl(&self, name: &str, holder: &str) -> Result<(), RegistryError> {
        sqlx::query("DELETE FROM locks WHERE lock_name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(db(format!("releasing lock `{name}`")))?;
        Ok(())
    }
}
