use std::collections::BTreeMap;

use fstore_snapshot::FeatureRef;
use serde::{Deserialize, Serialize};

pub const MANIFEST_FORMAT: u32 = 1;

/// One view's live snapshot as recorded in a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestView {
    pub version: u64,
    /// Object key of the snapshot, relative to the store root.
    pub key: String,
    pub size_bytes: u64,
    pub rows: u64,
    /// xxh3-64 body checksum, as written in the snapshot header (hex).
    pub checksum: String,
}

/// Everything an edge needs to serve: each view's live snapshot and every feature service.
/// Immutable once written; a new publish writes a new manifest with a higher `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub seq: u64,
    pub created_at: String,
    pub views: BTreeMap<String, ManifestView>,
    pub services: BTreeMap<String, Vec<FeatureRef>>,
}

/// The content of `live.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pointer {
    pub format: u32,
    pub seq: u64,
    pub manifest: String,
}
