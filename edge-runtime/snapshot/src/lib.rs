//! The fstore snapshot format: an immutable, memory-mappable file holding one feature view's
//! latest row per entity, with a hash index so that a lookup is a hash, a probe and a few loads,
//! never a parse of the row.
//!
//! Both planes use this crate: the control plane writes snapshots ([`SnapshotWriter`]), the edge
//! maps them ([`Snapshot::open`]) and renders values straight from the mapped bytes
//! ([`json`]). The byte layout is documented in `ARCHITECTURE.md` and in [`format`].
//!
//! A delta snapshot holds only the entities that changed and names its chain's full base
//! snapshot; readers layer deltas over the base ([`layered_get`]) and the control plane folds a
//! chain into a new full snapshot ([`compact`]). A view too large for one edge is split into
//! shards by the hash of the entity key ([`split`], [`shard_of`]).

mod delta;
pub mod format;
pub mod json;
mod key;
mod reader;
mod schema;
mod shard;
mod step;
#[doc(hidden)]
pub mod testkit;
mod time;
mod value;
mod writer;

pub use delta::{check_delta, compact, layered_get};
pub use format::shard_of;
pub use key::{KeyBuf, KeyError, KeyPart, decode_key};
pub use reader::{Row, Snapshot};
pub use schema::{
    FeatureRef, FeatureType, Field, KeyType, MAX_SHARDS, ShardOf, SnapshotSchema, base_view,
    view_pin,
};
pub use shard::{ShardSet, split};
pub use step::{DEFAULT_FUEL, DEFAULT_TIMEOUT_MS, SQL_STEP, TransformStep};
pub use time::{civil_from_days, format_rfc3339_micros};
pub use value::{F64List, Value};
pub use writer::SnapshotWriter;

/// Everything that can go wrong reading or writing a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("i/o error on snapshot: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an fstore snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported snapshot format version {0} (this build reads {max})", max = format::FORMAT_VERSION)]
    UnsupportedVersion(u16),
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "snapshot checksum mismatch: header says {expected:#018x}, content hashes to {actual:#018x}"
    )]
    ChecksumMismatch { expected: u64, actual: u64 },
    #[error("invalid snapshot schema: {0}")]
    Schema(String),
    #[error("duplicate entity key in snapshot")]
    DuplicateKey,
    #[error("row has {got} values, schema has {expected} features")]
    Arity { expected: usize, got: usize },
    #[error("feature `{feature}` expects {expected}, got {got}")]
    TypeMismatch {
        feature: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("row too large: {0} bytes (limit 4 GiB)")]
    RowTooLarge(usize),
    #[error("snapshot header flags: {0}")]
    Flags(String),
    #[error("snapshot cannot be layered on its base: {0}")]
    Layer(String),
}
