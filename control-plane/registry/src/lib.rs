//! The fstore registry: definitions, their versions, and published snapshots, behind one trait
//! with SQLite and PostgreSQL backends.
//!
//! # One implementation, two databases
//!
//! Both backends share a single implementation over [`sqlx::AnyPool`] and a single set of
//! migrations (`migrations/`), so behaviour cannot drift between the laptop (SQLite) and the
//! deployed control plane (PostgreSQL). That works because the registry needs very little of
//! either database:
//!
//! - Every statement is written in the common subset of both dialects. `$1`-style placeholders
//!   are native to PostgreSQL, and sqlx's SQLite driver maps `$N` parameters by number too.
//! - Columns are only `TEXT` and `BIGINT`, because the Any driver only carries basic types:
//!   JSON specs and RFC 3339 UTC timestamps are text, and `u64` values are stored as `i64`
//!   (values above `i64::MAX` are refused rather than wrapped).
//! - Counters use `INSERT … ON CONFLICT … DO UPDATE … RETURNING`, which is atomic on
//!   PostgreSQL and on SQLite ≥ 3.35 (sqlx bundles a newer SQLite).
//! - Sorting by name happens in Rust, because PostgreSQL's `ORDER BY` on text follows the
//!   database collation while SQLite compares bytes; callers get the same order from both.
//! - Job runs, shared by control-plane replicas, need no locking of their own: a run changes
//!   hands only through single conditional `UPDATE`s (`… WHERE run_status = 'queued'`), and
//!   "one active run per view" is a partial unique index, both of which each database applies
//!   atomically. Lease times are computed in Rust from the registry's clock and compared as
//!   fixed-width RFC 3339 text, since the dialects' date functions differ (`sql/jobs.rs`).
//!
//! - The one thing that differs per backend is the full-text index behind catalog search
//!   (an FTS5 table on SQLite, a GIN `tsvector` index on PostgreSQL), created when the
//!   registry opens. It only retrieves candidates; tokens, scores, order and highlights are
//!   computed in Rust (`catalog.rs`), so both backends return identical results.
//!
//! What the Any driver cannot express is handled in [`open`]: SQLite settings that have no URL
//! form (WAL, busy timeout) are applied with `PRAGMA`s, and the in-memory database is confined
//! to one connection because sqlx gives every new in-memory connection a fresh database.

mod access;
mod catalog;
#[doc(hidden)]
pub mod conformance;
mod quality;
mod sql;
mod target;

use std::sync::Arc;

pub use access::{
    AUDIT_GENESIS, AuditFields, AuditHead, AuditQuery, AuditRecord, NewAuditEvent, RoleRecord,
    TokenRecord, audit_hash, current_audit_origin, with_audit_origin,
};
/// The kinds of catalog documents a search can be narrowed to.
pub use catalog::KIND_ORDER as SEARCH_KINDS;
pub use fstore_spec::{Definitions, ObjectKind};
pub use quality::{
    Alert, AlertQuery, NewAlert, QualityRecord, RollupStep, ServingBucket, ServingSample,
    ViewSignals,
};

/// The registry's operations; every backend must pass [`conformance::run_all`].
#[async_trait::async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Which backend ("sqlite" or "postgres"), for logs and /healthz.
    fn backend(&self) -> &'static str;

    /// All current (not deleted) definitions, sorted by name.
    async fn definitions(&self) -> Result<Definitions, RegistryError>;

    /// Makes `defs` the current definitions in ONE transaction: objects whose JSON spec
    /// differs or that are new get version+1 (new objects start at 1) and a row in the version
    /// history; objects absent from `defs` are deleted (history keeps a tombstone row).
    /// Unchanged objects keep their version. `author` and `message` are recorded in history.
    ///
    /// A name that was deleted and is applied again continues its old numbering (one past the
    /// tombstone), so a name's history never holds two rows with the same version.
    async fn apply(
        &self,
        defs: &Definitions,
        author: &str,
        message: &str,
    ) -> Result<ApplyOutcome, RegistryError>;

    async fn get_object(
        &self,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Option<StoredObject>, RegistryError>;

    /// Current objects of one kind, sorted by name.
    async fn list_objects(&self, kind: ObjectKind) -> Result<Vec<StoredObject>, RegistryError>;

    /// Version history of one object, oldest first (includes tombstones with spec = null).
    async fn history(
        &self,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Vec<ObjectVersion>, RegistryError>;

    /// Atomically allocates the next value (starting at 1) of a named monotonic counter, e.g.
    /// "snapshot:customer_rfm" or "manifest". Safe under concurrent callers, including
    /// separate processes sharing one PostgreSQL database.
    async fn next_sequence(&self, name: &str) -> Result<u64, RegistryError> {
        self.next_sequence_above(name, 0).await
    }

    /// Like [`Registry::next_sequence`], but the value is also greater than `floor`: the
    /// counter jumps ahead when something outside this registry (a restored backup, a second
    /// registry publishing to the same store) already used higher numbers.
    async fn next_sequence_above(&self, name: &str, floor: u64) -> Result<u64, RegistryError>;

    /// Records a published snapshot; recording the same (view, version) twice is an error
    /// ([`RegistryError::Duplicate`]) because it means two publishers raced for one version.
    async fn record_snapshot(&self, s: &SnapshotRecord) -> Result<(), RegistryError>;

    /// Newest first; filter by view when given.
    async fn list_snapshots(
        &self,
        view: Option<&str>,
    ) -> Result<Vec<SnapshotRecord>, RegistryError>;

    /// One recorded snapshot of `view`, if that version was recorded.
    async fn get_snapshot(
        &self,
        view: &str,
        version: u64,
    ) -> Result<Option<SnapshotRecord>, RegistryError>;

    /// Ranked full-text search over the catalog: every feature (as `view:feature`) and every
    /// definition, as of the last apply. Matching and filtering happen in the database,
    /// ranking in Rust, so both backends return the same hits in the same order with the
    /// same scores. An empty query (or one of only stop words) lists every document passing
    /// the filters, by kind then name. `limit` must be 1..=100; an unknown `kind` is
    /// [`RegistryError::Invalid`].
    async fn search(&self, q: &SearchQuery) -> Result<SearchResults, RegistryError>;

    /// Records an event the server performs outside `apply` (publish, rollback,
    /// materialize) in the change log; returns its sequence number.
    async fn record_change(&self, c: &NewChange) -> Result<u64, RegistryError>;

    /// Change-log entries matching `q`, newest (highest `seq`) first. `limit` must be
    /// 1..=1000.
    async fn changelog(&self, q: &ChangelogQuery) -> Result<Vec<ChangeEntry>, RegistryError>;

    /// Replaces the rollbacks of `service` with `bindings` (view reference as the service
    /// writes it → the snapshot to serve) in one transaction, and records a change-log entry
    /// (action "rollback", kind "feature_service", details = the bindings as a JSON object).
    /// Empty bindings, a view named twice, or a service that is not defined are
    /// [`RegistryError::Invalid`].
    async fn set_rollbacks(
        &self,
        service: &str,
        bindings: &[RollbackBinding],
        author: &str,
        message: &str,
    ) -> Result<(), RegistryError>;

    /// Removes the rollbacks of `service` and, when there were any, records a change-log
    /// entry (action "rollback_clear", details = the removed bindings); returns how many were
    /// removed.
    async fn clear_rollbacks(&self, service: &str, author: &str) -> Result<usize, RegistryError>;

    /// All rollbacks, sorted by (service, view).
    async fn rollbacks(&self) -> Result<Vec<Rollback>, RegistryError>;

    /// Records an edge's heartbeat (insert or replace by id), stamped with the registry's
    /// clock so that an edge with a wrong clock cannot look alive or dead.
    async fn record_heartbeat(&self, h: &EdgeHeartbeat) -> Result<(), RegistryError>;

    /// Every edge that ever reported, sorted by id.
    async fn edges(&self) -> Result<Vec<EdgeRecord>, RegistryError>;

    /// Queues a run unless one of the view is already queued or running, or its schedule slot
    /// (`scheduled_for`) was already queued. Both rules are enforced by the database (unique
    /// indexes), so replicas sharing it cannot both queue. When both apply, the slot wins
    /// ([`Enqueued::AlreadyScheduled`]). `not_before` and `scheduled_for` may be any RFC 3339
    /// time; they are stored in UTC with microseconds, so one slot written two ways is still
    /// one slot. An empty view or trigger, attempt 0, or a time that is not RFC 3339 is
    /// [`RegistryError::Invalid`].
    async fn enqueue_run(&self, r: &NewRun) -> Result<Enqueued, RegistryError>;

    /// Atomically takes the oldest (lowest id) queued run whose `not_before` has come, and
    /// marks it running, owned by `owner`, started now, leased until now + `lease`. `None`
    /// when there is none. Safe under concurrent callers in separate processes: each run is
    /// handed to exactly one of them (under heavy contention a caller may get `None` although
    /// runs remain; it claims them on its next poll). An empty owner or a zero lease is
    /// [`RegistryError::Invalid`].
    async fn claim_run(
        &self,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<JobRun>, RegistryError>;

    /// Claims the run `id` as [`Registry::claim_run`] would, whatever its `not_before`: for
    /// a caller that queued a run to execute it itself (typically with `not_before` far ahead,
    /// so that no worker takes it first). `None` when the run does not exist or is no longer
    /// queued (another replica claimed or cancelled it).
    async fn claim_run_id(
        &self,
        id: u64,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<JobRun>, RegistryError>;

    /// Extends the lease of a run still running and owned by `owner` to now + `lease`; false
    /// when it is not (finished, cancelled, or expired by [`Registry::expire_leases`] and so
    /// failed). A cancel request does not stop renewal (the runner keeps its lease while it
    /// stops): runners see the request in [`JobRun::cancel_requested`] of [`Registry::job_run`].
    async fn renew_lease(
        &self,
        id: u64,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<bool, RegistryError>;

    /// Records the outcome of a run still running and owned by `owner` (finished_at = now);
    /// false, and nothing written, otherwise. The status must be succeeded, failed or
    /// cancelled ([`RegistryError::Invalid`] else). A cancelled outcome without an error gets
    /// "cancelled by <actor>" when [`Registry::request_cancel`] asked for it.
    async fn finish_run(
        &self,
        id: u64,
        owner: &str,
        outcome: &RunOutcome,
    ) -> Result<bool, RegistryError>;

    /// Cancels a run: a queued one becomes cancelled at once (finished_at = now, error
    /// "cancelled by <actor>"); a running one gets `cancel_requested` (its runner stops it and
    /// finishes it as cancelled); a finished one is returned unchanged. Returns the run as it
    /// now is, `None` when the id does not exist.
    async fn request_cancel(&self, id: u64, actor: &str) -> Result<Option<JobRun>, RegistryError>;

    /// Runs still running whose lease has passed become failed, with finished_at = now and
    /// error [`LEASE_EXPIRED`]; returns them by id (the caller queues retries, except for
    /// those with `cancel_requested`). Each expired run is returned to exactly one caller.
    async fn expire_leases(&self) -> Result<Vec<JobRun>, RegistryError>;

    /// Runs matching `q`, newest (highest id) first. `limit` must be 1..=1000 and a view
    /// filter non-empty ([`RegistryError::Invalid`] else).
    async fn job_runs(&self, q: &RunQuery) -> Result<Vec<JobRun>, RegistryError>;

    async fn job_run(&self, id: u64) -> Result<Option<JobRun>, RegistryError>;

    /// The newest run of `view` with `status` (any status when `None`). An empty view is
    /// [`RegistryError::Invalid`].
    async fn last_run(
        &self,
        view: &str,
        status: Option<RunStatus>,
    ) -> Result<Option<JobRun>, RegistryError>;

    /// The latest schedule slot queued for `view`, whatever became of its run.
    async fn last_scheduled_slot(&self, view: &str) -> Result<Option<String>, RegistryError>;

    /// Takes the named lock for `holder` until `lease` from now, if it is free, expired, or
    /// already `holder`'s; true when taken. A lock held across processes (replicas, the CLI)
    /// that share this registry: what one process's mutex cannot serialize.
    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        lease: std::time::Duration,
    ) -> Result<bool, RegistryError>;

    /// Releases the named lock if `holder` has it.
    async fn unlock(&self, name: &str, holder: &str) -> Result<(), RegistryError>;

    /// Stores the quality report of a snapshot (replacing one stored for the same version).
    async fn record_quality(&self, r: &QualityRecord) -> Result<(), RegistryError>;

    /// A view's quality reports, newest version first; only published ones when asked.
    async fn quality_reports(
        &self,
        view: &str,
        published_only: bool,
        limit: usize,
    ) -> Result<Vec<QualityRecord>, RegistryError>;

    async fn quality_report(
        &self,
        view: &str,
        version: u64,
    ) -> Result<Option<QualityRecord>, RegistryError>;

    /// Stores value distributions under `key` for a view (replacing what was there).
    async fn put_distributions(
        &self,
        view: &str,
        key: &str,
        distributions: &serde_json::Value,
    ) -> Result<(), RegistryError>;

    async fn distributions(
        &self,
        view: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, RegistryError>;

    /// Deletes a view's distributions except those under `keep`; returns how many went.
    async fn prune_distributions(&self, view: &str, keep: &[String]) -> Result<u64, RegistryError>;

    /// Opens an alert for a problem, or, when one is open for its fingerprint, counts another
    /// occurrence on it (taking the new summary and details). Returns the alert and whether
    /// it was opened by this call, which is when it should be announced.
    async fn open_alert(&self, a: &NewAlert) -> Result<(Alert, bool), RegistryError>;

    /// Resolves the open alert of a fingerprint; returns it as resolved, or None when none was
    /// open (so only one of several replicas resolving at once announces it).
    async fn resolve_alert(&self, fingerprint: &str) -> Result<Option<Alert>, RegistryError>;

    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>, RegistryError>;

    /// Appends one delivery attempt to an alert's record.
    async fn record_delivery(
        &self,
        id: u64,
        delivery: &serde_json::Value,
    ) -> Result<(), RegistryError>;

    async fn record_serving(&self, samples: &[ServingSample]) -> Result<(), RegistryError>;

    /// Serving samples received at or after `since` (RFC 3339), of one view or all, oldest
    /// first.
    async fn serving_samples(
        &self,
        view: Option<&str>,
        since: &str,
    ) -> Result<Vec<ServingSample>, RegistryError>;

    /// Serving samples received at or after `since`, summed per edge, view and `step`,
    /// oldest bucket first: what a chart of the last hour needs without every report.
    async fn serving_rollup(
        &self,
        since: &str,
        step: RollupStep,
    ) -> Result<Vec<ServingBucket>, RegistryError>;

    /// Deletes serving samples received before `before`; returns how many went.
    async fn prune_serving(&self, before: &str) -> Result<u64, RegistryError>;

    /// Stores a new token; [`RegistryError::Duplicate`] when an active token has its name.
    async fn create_token(&self, t: &TokenRecord) -> Result<(), RegistryError>;

    /// Every token, revoked ones included, oldest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, RegistryError>;

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, RegistryError>;

    /// Revokes the active token with this id or name; None when there is none.
    async fn revoke_token(
        &self,
        id_or_name: &str,
        by: &str,
    ) -> Result<Option<TokenRecord>, RegistryError>;

    /// Creates or replaces a custom role; true when it replaced one.
    async fn put_role(&self, r: &RoleRecord) -> Result<bool, RegistryError>;

    /// Custom roles, by name.
    async fn roles(&self) -> Result<Vec<RoleRecord>, RegistryError>;

    /// Deletes a custom role; false when there was none.
    async fn delete_role(&self, name: &str) -> Result<bool, RegistryError>;

    async fn setting(&self, name: &str) -> Result<Option<String>, RegistryError>;

    /// Stores `value` under `name` unless a value is there already; returns the stored one,
    /// so concurrent first callers agree on one value.
    async fn init_setting(&self, name: &str, value: &str) -> Result<String, RegistryError>;

    /// Appends events to the audit chain in one transaction, in order, and returns the
    /// records made. An event whose `(origin, origin_seq)` is already recorded is skipped.
    async fn append_audit(
        &self,
        events: &[NewAuditEvent],
    ) -> Result<Vec<AuditRecord>, RegistryError>;

    /// Audit records matching `q`, oldest first.
    async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, RegistryError>;

    /// Where the audit chain ends.
    async fn audit_head(&self) -> Result<AuditHead, RegistryError>;
}

/// The error of a run failed by [`Registry::expire_leases`].
pub const LEASE_EXPIRED: &str = "lease expired: the control plane running it stopped or hung";

/// Where a materialization run is. `Default` is `Failed` so that an outcome which forgets to
/// set its status can never be recorded as a success.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    #[default]
    Failed,
    Cancelled,
    /// Computed, but an `error` quality rule stopped its publish. Not retried: the same data
    /// would fail the same way.
    Rejected,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Queued or running: the run still holds its view (no other run of it may start).
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One materialization run of a view. Times are RFC 3339 UTC with microseconds, from the
/// clock of the registry (control plane) that wrote them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobRun {
    /// From the `job_run` counter: increasing, so newer runs have higher ids.
    pub id: u64,
    pub view: String,
    pub status: RunStatus,
    /// What asked for it: "schedule", "api", "cli", "retry".
    pub trigger: String,
    /// 1 for a first try, 2.. for retries.
    pub attempt: u32,
    /// The schedule slot of a scheduled run.
    pub scheduled_for: Option<String>,
    pub actor: String,
    pub requested_at: String,
    /// The run may not start before this (retry backoff).
    pub not_before: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The replica that claimed it.
    pub owner: Option<String>,
    pub lease_until: Option<String>,
    pub cancel_requested: bool,
    pub rows_read: Option<u64>,
    pub rows_written: Option<u64>,
    pub rows_rejected: Option<u64>,
    pub snapshot_version: Option<u64>,
    pub manifest_seq: Option<u64>,
    pub error: Option<String>,
    /// `full`, `delta`, `compacted`, or `unchanged` (incremental, nothing new to publish).
    pub mode: Option<String>,
    /// Entities in the snapshot the run wrote (rows read count source rows).
    pub entities: Option<u64>,
    /// Object key of the file listing the source rows the run rejected.
    pub quarantine: Option<String>,
}

/// A run to queue with [`Registry::enqueue_run`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub view: String,
    pub trigger: String,
    /// 1 for a first try.
    pub attempt: u32,
    /// The schedule slot (RFC 3339) of a scheduled run. A slot is taken by its first run
    /// whatever became of it, so a retry carries `None` (or it is
    /// [`Enqueued::AlreadyScheduled`]).
    pub scheduled_for: Option<String>,
    /// RFC 3339; `None` means now.
    pub not_before: Option<String>,
    pub actor: String,
}

/// What [`Registry::enqueue_run`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Enqueued {
    Queued(JobRun),
    /// A queued or running run of the view exists (returned): overlapping runs are not
    /// started.
    AlreadyActive(JobRun),
    /// A run for this (view, scheduled_for) slot already exists, whatever its status: another
    /// replica scheduled it.
    AlreadyScheduled,
}

/// How a run ended, recorded by [`Registry::finish_run`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutcome {
    /// Succeeded, Failed or Cancelled.
    pub status: RunStatus,
    pub rows_read: Option<u64>,
    pub rows_written: Option<u64>,
    pub rows_rejected: Option<u64>,
    pub snapshot_version: Option<u64>,
    pub manifest_seq: Option<u64>,
    pub error: Option<String>,
    /// `full`, `delta`, `compacted`, or `unchanged` (incremental, nothing new to publish).
    pub mode: Option<String>,
    /// Entities in the snapshot the run wrote (rows read count source rows).
    pub entities: Option<u64>,
    /// Object key of the file listing the source rows the run rejected.
    pub quarantine: Option<String>,
}

/// Which runs [`Registry::job_runs`] lists; filters are exact matches.
#[derive(Debug, Clone, PartialEq)]
pub struct RunQuery {
    pub view: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs with an id below this, to page back from the last run of a page.
    pub before_id: Option<u64>,
    /// 1..=1000.
    pub limit: usize,
}

impl Default for RunQuery {
    fn default() -> Self {
        Self {
            view: None,
            status: None,
            before_id: None,
            limit: 50,
        }
    }
}

/// What an edge reports about itself each poll interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeHeartbeat {
    pub id: String,
    pub region: String,
    /// Where clients reach it.
    pub address: String,
    pub manifest_seq: Option<u64>,
    /// Slot → snapshot version it serves.
    pub views: std::collections::BTreeMap<String, u64>,
    pub ready: bool,
    pub interval_ms: u64,
    /// When the edge process started (RFC 3339).
    pub started_at: String,
    /// Serving figures per view since the edge's previous report. Not stored with the edge:
    /// the control plane keeps them as [`ServingSample`]s.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub serving: std::collections::BTreeMap<String, ViewSignals>,
    /// The span `serving` covers, in milliseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub serving_window_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An edge as last heard from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EdgeRecord {
    #[serde(flatten)]
    pub heartbeat: EdgeHeartbeat,
    /// When it first and last reported (RFC 3339 UTC, the registry's clock).
    pub first_seen: String,
    pub last_seen: String,
}

/// A current definition as stored. Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredObject {
    pub kind: ObjectKind,
    pub name: String,
    pub version: u64,
    pub spec: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}

/// One entry of an object's history; `spec` is `None` for the tombstone of a deletion.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ObjectVersion {
    pub kind: ObjectKind,
    pub name: String,
    pub version: u64,
    pub spec: Option<serde_json::Value>,
    pub author: String,
    pub message: String,
    pub created_at: String,
}

/// What an apply changed, each list sorted by (kind, name).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ApplyOutcome {
    pub created: Vec<(ObjectKind, String)>,
    pub updated: Vec<(ObjectKind, String)>,
    pub deleted: Vec<(ObjectKind, String)>,
}

impl ApplyOutcome {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

/// A published snapshot of one feature view.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotRecord {
    pub view: String,
    pub version: u64,
    pub key: String,
    pub rows: u64,
    pub size_bytes: u64,
    pub checksum: String,
    pub manifest_seq: u64,
    pub created_at: String,
    pub duration_ms: u64,
    /// The version of the view's definition the snapshot was materialized from (0 for
    /// snapshots recorded before the registry kept it).
    #[serde(default)]
    pub definition_version: u64,
    /// What the snapshot was built from (input files with size and etag, rows, transform
    /// digests). Opaque to the registry; an empty object when unknown.
    #[serde(default = "empty_object")]
    pub lineage: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A catalog search. Filters are exact (case-sensitive) matches; `kind` is `feature` or an
/// [`ObjectKind`] name.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub q: String,
    pub kind: Option<String>,
    /// A tag of the document (for a feature: its own tags and its view's).
    pub tag: Option<String>,
    pub owner: Option<String>,
    pub entity: Option<String>,
    /// A feature type name as written in `features.yaml` (`float64`, `list<float64>`...).
    pub feature_type: Option<String>,
    /// The view a feature belongs to (only feature documents have one).
    pub view: Option<String>,
    /// 1..=100.
    pub limit: usize,
    pub offset: usize,
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self {
            q: String::new(),
            kind: None,
            tag: None,
            owner: None,
            entity: None,
            feature_type: None,
            view: None,
            limit: 20,
            offset: 0,
        }
    }
}

/// One search result. `name` is `view:feature` for a feature.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_type: Option<String>,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    pub entities: Vec<String>,
    /// BM25 relevance, rounded to 4 decimals; 0 for an empty query.
    pub score: f64,
    pub highlights: Vec<Highlight>,
}

/// A field of a hit (`name`, `description` or `tags`) with the matched words wrapped in
/// `<mark>`…`</mark>`; everything else in `fragment` is HTML-escaped.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Highlight {
    pub field: String,
    pub fragment: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchResults {
    /// Hits before pagination.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub hits: Vec<SearchHit>,
}

/// An event for the change log, recorded by [`Registry::record_change`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    pub actor: String,
    pub action: String,
    pub kind: String,
    pub name: String,
    pub version: Option<u64>,
    pub message: String,
    pub details: serde_json::Value,
}

/// Which change-log entries to read; filters are exact matches.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangelogQuery {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only entries with `seq` below this, to page back from the last entry of a page.
    pub before_seq: Option<u64>,
    /// 1..=1000.
    pub limit: usize,
}

impl Default for ChangelogQuery {
    fn default() -> Self {
        Self {
            kind: None,
            name: None,
            actor: None,
            action: None,
            before_seq: None,
            limit: 50,
        }
    }
}

/// One change-log entry. `action` is "create", "update" or "delete" for applies (with
/// `details` = the definition diff), else what the recorder said ("publish", "rollback"...).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChangeEntry {
    pub seq: u64,
    pub created_at: String,
    pub actor: String,
    pub action: String,
    pub kind: String,
    pub name: String,
    pub version: Option<u64>,
    pub message: String,
    pub details: serde_json::Value,
}

/// One view of a service rolled back: the service's view reference and the snapshot it
/// reads instead of the live one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RollbackBinding {
    pub view: String,
    pub snapshot_view: String,
    pub snapshot_version: u64,
}

impl RollbackBinding {
    /// A snapshot of the view the service names.
    pub fn new(view: impl Into<String>, snapshot_version: u64) -> Self {
        let view = view.into();
        Self {
            snapshot_view: view.clone(),
            view,
            snapshot_version,
        }
    }
}

/// A feature service reading an older snapshot of one view instead of the live one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rollback {
    pub service: String,
    /// The view as the service names it (`customer_rfm`, `customer_rfm@v3`).
    pub view: String,
    /// The view the snapshot was recorded under: usually `view`, but a pinned slot may be
    /// served by a snapshot of its base view (`customer_rfm`), whose versions are counted
    /// separately.
    pub snapshot_view: String,
    pub snapshot_version: u64,
    pub author: String,
    pub created_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("bad registry URL: {0}")]
    BadUrl(String),

    #[error("cannot create the directory for the registry database {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("registry database error while {context}: {source}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },

    /// The database opened but cannot be configured as the registry requires.
    #[error("cannot set up the registry database: {0}")]
    Setup(String),

    #[error("cannot migrate the registry schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// Stored data that does not parse; the database was edited by hand or by a newer fstore.
    #[error("registry holds unreadable data: {0}")]
    Corrupt(String),

    /// A value the caller passed that cannot be stored.
    #[error("cannot store this in the registry: {0}")]
    Invalid(String),

    #[error("already recorded: {0}")]
    Duplicate(String),
}

/// Opens (creating if needed, and migrating) a registry.
/// - "postgres://..." or "postgresql://..." -> PostgreSQL
/// - "sqlite://path", "sqlite:path", "sqlite::memory:", or a plain file path (e.g.
///   ".fstore/registry.db") -> SQLite file, created if missing (parent dirs too), WAL mode.
///
/// The path after `sqlite:`/`sqlite://` is taken literally (no percent-decoding, no query
/// parameters), since registry URLs are typed by people, not generated.
pub async fn open(url: &str) -> Result<Arc<dyn Registry>, RegistryError> {
    let target = target::Target::parse(url)?;
    let reg = sql::SqlRegistry::open(target).await?;
    Ok(Arc::new(reg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_records_from_before_lineage_still_parse() {
        let old = serde_json::json!({
            "view": "customer_rfm", "version": 3, "key": "snapshots/customer_rfm/3.fss",
            "rows": 10, "size_bytes": 100, "checksum": "xxh3:0", "manifest_seq": 4,
            "created_at": "2025-03-01T10:00:00.000000Z", "duration_ms": 5,
        });
        let r: SnapshotRecord = serde_json::from_value(old).expect("parses");
        assert_eq!(r.definition_version, 0);
        assert_eq!(r.lineage, serde_json::json!({}));
    }

    #[test]
    fn run_statuses_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            // The API and the database spell a status the same way.
            assert_eq!(serde_json::to_value(s).expect("serialises"), s.as_str());
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(RunStatus::parse("Running"), None);
        let active: Vec<_> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active, [RunStatus::Queued, RunStatus::Running]);
        assert_eq!(RunOutcome::default().status, RunStatus::Failed);
        assert_eq!(RunQuery::default().limit, 50);
    }
}
