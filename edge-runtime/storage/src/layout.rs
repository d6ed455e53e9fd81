/// The live pointer: the one object that is overwritten, always after what it points to exists.
pub const POINTER_KEY: &str = "live.json";

/// Where version `version` of `view`'s snapshot lives. Zero-padded so that listing order is
/// version order.
pub fn snapshot_key(view: &str, version: u64) -> String {
    format!("snapshots/{view}/{version:020}.fss")
}

/// Where manifest number `seq` lives.
pub fn manifest_key(seq: u64) -> String {
    format!("manifests/{seq:020}.json")
}

/// The content address of a stored artifact: lowercase hex sha256 of its bytes. Components are
/// stored under it and manifests record it, so both planes must compute it the same way.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

/// Key of a transform component, addressed by the sha256 of its bytes: the same component
/// registered twice is stored once, and a key never changes meaning.
pub fn transform_key(sha256: &str) -> String {
    format!("transforms/{sha256}.wasm")
}

/// Key of a component precompiled for one engine configuration (its compatibility key).
pub fn precompiled_key(sha256: &str, compat: &str) -> String {
    format!("transforms/{sha256}/{compat}.cwasm")
}

/// Where shard `index` of `count` of the snapshot stored at `snapshot` lives: beside it, so
/// retention and listings treat a snapshot and its shards as one version.
pub fn shard_key(snapshot: &str, index: u32, count: u32) -> String {
    let stem = snapshot.strip_suffix(".fss").unwrap_or(snapshot);
    format!("{stem}.shard-{index:04}-of-{count:04}.fss")
}
