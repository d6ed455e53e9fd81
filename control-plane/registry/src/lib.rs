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
//!
//! - The one thing that differs per backend is the full-text index behind catalog search
//!   (an FTS5 table on SQLite, a GIN `tsvector` index on PostgreSQL), created when the
//!   registry opens. It only retrieves candidates; tokens, scores, order and highlights are
//!   computed in Rust (`catalog.rs`), so both backends return identical results.
//!
//! What the Any driver cannot express is handled in [`open`]: SQLite settings that have no URL
//! form (WAL, busy timeout) are applied with `PRAGMA`s, and the in-memory database is confined
//! to one connection because sqlx gives every new in-memory connection a fresh database.

mod catalog;
#[doc(hidden)]
pub mod conformance;
mod sql;
mod target;

use std::sync::Arc;

pub use fstore_spec::{Definitions, ObjectKind};

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
}
