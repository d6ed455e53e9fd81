//! The fstore offline engine: reads a feature view's batch source (Parquet, CSV or JSON-lines
//! files in a data lake, or a PostgreSQL query) with Arrow, keeps the latest row per entity,
//! and encodes the result as an immutable snapshot ready to publish, running the view's
//! transform components over the kept rows in batches.

mod aggregate;
mod changes;
mod columns;
mod erase;
mod glob;
mod historical;
mod jsonl;
mod mask;
mod materialize;
mod partition;
mod pit;
mod postgres;
mod push;
mod source;
mod table;
mod transform;
mod view;

pub use erase::{ErasedFile, ExpiredFile, KeyValue, erase_rows, expire_partitions};
pub use historical::{
    HistoricalRequest, TrainingSet, feature_column_values, historical, read_entity_rows,
    views_needed, write_training_set,
};
pub use mask::mask_columns;
pub use materialize::{Incremental, Materialized, materialize, materialize_delta};
pub use pit::{EventIndex, Group, concat_columns, gather, point_in_time_join};
pub use push::{MAX_PUSH_ROWS, PushRejected, PushWritten, push_rows};
pub use source::{SourceFile, SourceFiles, SourceLocation, list_source_files, read_source};

/// One source file a job read: what lineage records so a snapshot can be traced to the exact
/// bytes it was computed from (a changed file has a new version tag).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    /// Its path or URL (a database URL with its password redacted).
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    pub rows: u64,
}

impl InputFile {
    pub(crate) fn new(file: &SourceFile, rows: u64) -> Self {
        let o = file.object.as_ref();
        Self {
            path: file.display.clone(),
            size_bytes: o.map(|o| o.size),
            e_tag: o.and_then(|o| o.e_tag.clone()),
            last_modified: o.map(|o| o.last_modified.clone()),
            rows,
        }
    }
}

/// A source row a job could not use, set aside (quarantined) with why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RejectedRow {
    /// The file's path or URL, as `InputFile::path` shows it.
    pub file: String,
    /// 1-based data row within the file (the header of a CSV is not a row).
    pub row: u64,
    /// Why, e.g. "join key `customer_id` is null", "column `amount`: cannot parse `abc` as
    /// float64 (file line 4)".
    pub reason: String,
}

/// Why a materialization failed. Source problems name the file and, for bad rows (strict
/// reads through `read_source`), the row.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("unknown feature view `{0}`")]
    UnknownView(String),
    #[error("unknown source `{0}`")]
    UnknownSource(String),
    /// Pushed rows that cannot be stored as asked (the source, not a row, is the problem).
    #[error("push: {0}")]
    Push(String),
    #[error("source `{source_name}`: no {format} files found at `{path}`")]
    NoFiles {
        source_name: String,
        path: String,
        format: &'static str,
    },
    #[error("source file `{file}`: {message}")]
    File { file: String, message: String },
    /// A PostgreSQL source failed; `url` has its password redacted.
    #[error("PostgreSQL source `{url}`: {message}")]
    Postgres { url: String, message: String },
    #[error("source file `{file}`, row {row}: {message}")]
    Row {
        file: String,
        row: u64,
        message: String,
    },
    #[error("transform `{transform}` of view `{view}` failed: {message}")]
    Transform {
        view: String,
        transform: String,
        message: String,
    },
    /// A point-in-time join was given inputs it cannot join (types, lengths, ttl).
    #[error("point-in-time join: {0}")]
    Join(String),
    /// A training-set request that cannot be answered as asked.
    #[error("historical retrieval: {0}")]
    Historical(String),
    #[error("storage: {0}")]
    Storage(#[from] fstore_storage::StorageError),
    #[error("snapshot: {0}")]
    Snapshot(#[from] fstore_snapshot::SnapshotError),
}
