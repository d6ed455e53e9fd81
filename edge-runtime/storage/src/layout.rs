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
