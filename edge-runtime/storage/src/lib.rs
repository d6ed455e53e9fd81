//! Object storage for fstore: opening a store from a URL, the object layout both planes agree
//! on, and the publish protocol (immutable objects plus one live pointer) that guarantees no
//! reader ever sees half a snapshot.
//!
//! Layout under the store's root prefix:
//! - `snapshots/<view>/<version>.fss`: one immutable snapshot file per view version;
//! - `manifests/<seq>.json`: one immutable manifest per publish (what every view's live version
//!   is, as a full snapshot and the deltas layered over it, and the feature services);
//! - `live.json`: the pointer to the current manifest, the only object ever overwritten.
//!
//! Every manifest still in the store is a version one can read back ([`Store::manifest_at`],
//! [`Store::manifest_as_of`]); [`Store::prune`] is the retention that bounds how many are kept.

mod layout;
mod manifest;
mod store;
mod versions;

pub use fstore_snapshot::FeatureRef;
pub use layout::{
    POINTER_KEY, manifest_key, precompiled_key, sha256_hex, shard_key, snapshot_key, transform_key,
};
pub use manifest::{
    MANIFEST_FORMAT, Manifest, ManifestDelta, ManifestOnDemand, ManifestShard, ManifestTransform,
    ManifestView, Pointer, Precompiled,
};
pub use store::{DOWNLOAD_ATTEMPTS, ObjectInfo, PointerRead, Store};
pub use versions::{PruneReport, PublishedVersion, Versions, parse_snapshot_key};

/// Errors talking to object storage, with the location that failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid object-store URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("object `{0}` not found")]
    NotFound(String),
    #[error("object `{0}` already exists (objects are immutable)")]
    AlreadyExists(String),
    #[error("live pointer already at manifest {current}, refusing to move it back to {attempted}")]
    Stale { current: u64, attempted: u64 },
    #[error("nothing has been published to `{0}` yet")]
    NothingPublished(String),
    #[error("published version {seq} is not kept in `{url}`: {reason}")]
    VersionNotKept {
        seq: u64,
        url: String,
        reason: String,
    },
    #[error(
        "nothing was live in `{url}` at {at}: the oldest version kept, {seq}, was published at \
         {created_at}"
    )]
    BeforeFirstVersion {
        at: String,
        url: String,
        seq: u64,
        created_at: String,
    },
    #[error("invalid `{key}`: {reason}")]
    Decode { key: String, reason: String },
    #[error("object store error on `{key}`: {source}")]
    Store {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("local i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
