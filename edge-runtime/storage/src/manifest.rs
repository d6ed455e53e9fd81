use std::collections::BTreeMap;

use fstore_snapshot::{FeatureRef, FeatureType, Field, TransformStep};
use serde::{Deserialize, Serialize};

pub const MANIFEST_FORMAT: u32 = 1;

/// One view's live snapshot as recorded in a manifest: a full (base) snapshot and the deltas
/// an edge layers over it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestView {
    /// The base (full) snapshot's version; the version served is [`ManifestView::served_version`].
    pub version: u64,
    /// Object key of the base snapshot, relative to the store root.
    pub key: String,
    pub size_bytes: u64,
    pub rows: u64,
    /// xxh3-64 body checksum, as written in the snapshot header (hex).
    pub checksum: String,
    /// Delta snapshots applied on top of the base, oldest to newest; each names the base's
    /// version as its own. Absent when empty, so manifests without deltas read and write as
    /// before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<ManifestDelta>,
    /// The base split by entity-key hash, one entry per shard in shard order, for edges that
    /// hold only some shards; empty for a view that is not sharded. The full snapshot (`key`)
    /// stays the source of truth: the control plane and edges holding every shard read it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ManifestShard>,
}

impl ManifestView {
    /// The version an edge serves for this slot: the newest delta's, else the base's.
    pub fn served_version(&self) -> u64 {
        self.deltas.last().map_or(self.version, |d| d.version)
    }
}

/// One delta snapshot of a slot's chain, as recorded in a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestDelta {
    pub version: u64,
    /// Object key of the delta snapshot, relative to the store root.
    pub key: String,
    pub size_bytes: u64,
    /// Rows the delta holds (changed or new entities), not the entities served.
    pub rows: u64,
    /// xxh3-64 body checksum, as written in the snapshot header (hex).
    pub checksum: String,
    /// The delta split like its base's shards, but only the shards it changes: an edge
    /// downloads a delta shard only when it holds that shard and the delta touched it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ManifestShard>,
}

/// One shard file of a sharded snapshot (a base or a delta).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestShard {
    /// Which shard: the entities whose key hash gives `fstore_snapshot::shard_of(hash,
    /// count) == index`.
    pub index: u32,
    pub count: u32,
    /// Object key of the shard file, relative to the store root.
    pub key: String,
    pub size_bytes: u64,
    pub rows: u64,
    /// xxh3-64 body checksum, as written in the shard's header (hex).
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
    /// Views computed per request from other views' features and request fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub on_demand: BTreeMap<String, ManifestOnDemand>,
    /// The components on-demand views run, by the sha256 of their `.wasm` bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub transforms: BTreeMap<String, ManifestTransform>,
}

/// An on-demand view as an edge runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestOnDemand {
    /// The feature views it reads, all keyed by the same join keys (which become its keys).
    pub sources: Vec<String>,
    /// The request fields a caller passes, with their types.
    #[serde(default)]
    pub request: Vec<Field<FeatureType>>,
    /// The features it serves, in order.
    pub features: Vec<Field<FeatureType>>,
    pub steps: Vec<TransformStep>,
}

/// Where a transform component's artifacts are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestTransform {
    /// Object key of the `.wasm` component.
    pub wasm: String,
    /// Native code per engine compatibility key, for edges whose engine matches.
    #[serde(default)]
    pub precompiled: BTreeMap<String, Precompiled>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Precompiled {
    pub key: String,
    /// Lowercase hex sha256 of the artifact: it is native code, so it is checked before use.
    pub sha256: String,
}

/// The content of `live.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pointer {
    pub format: u32,
    pub seq: u64,
    pub manifest: String,
}
