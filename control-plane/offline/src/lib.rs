//! The fstore offline engine: reads a feature view's batch source (Parquet or CSV files in a
//! data lake) with Arrow, keeps the latest row per entity, and encodes the result as an
//! immutable snapshot ready to publish, running the view's transform components over the kept
//! rows in batches.

mod columns;
mod materialize;
mod source;
mod transform;

pub use materialize::{Materialized, materialize};
pub use source::{SourceFile, list_source_files, read_source};

/// Why a materialization failed. Source problems name the file and, for bad rows, the row.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("unknown feature view `{0}`")]
    UnknownView(String),
    #[error("source `{source_name}`: no {format} files found at `{path}`")]
    NoFiles {
        source_name: String,
        path: String,
        format: &'static str,
    },
    #[error("source file `{file}`: {message}")]
    File { file: String, message: String },
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
    #[error("storage: {0}")]
    Storage(#[from] fstore_storage::StorageError),
    #[error("snapshot: {0}")]
    Snapshot(#[from] fstore_snapshot::SnapshotError),
}
