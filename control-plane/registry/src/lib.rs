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
//! What the Any driver cannot express is handled in [`open`]: SQLite settings that have no URL
//! form (WAL, busy timeout) are applied with `PRAGMA`s, and the in-memory database is confined
//! to one connection because sqlx gives every new in-memory connection a fresh database.

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
