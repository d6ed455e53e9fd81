use std::path::PathBuf;
use std::time::Duration;

use fstore_wasm_host::HostConfig;

/// How an edge runs. Every field has a default except the store URL.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Where snapshots are published (`./.fstore/objects`, `s3://bucket/prefix`, …).
    pub store_url: String,
    /// Local directory snapshots are downloaded to and mapped from.
    pub cache_dir: PathBuf,
    /// How often the live pointer is polled (a conditional GET, so cheap).
    pub poll_interval: Duration,
    /// Most entity rows one lookup request may ask for.
    pub max_entities: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// A label for metrics and logs.
    pub region: String,
    /// The WebAssembly engine on-demand views run in (memory cap per instance, instances at
    /// once, deadline granularity). Precompiled components are only used when these match the
    /// settings they were compiled with, so keep the defaults unless the control plane changes
    /// them too; otherwise the edge compiles the `.wasm` itself.
    pub wasm: HostConfig,
    /// The control plane to report to (`http://cp:6565`): a heartbeat each poll interval with
    /// the versions this edge serves, so the control plane knows its fleet and its lineage
    /// reaches the edges. None: the edge reports to no one (it never needs the control plane
    /// to serve).
    pub control_plane_url: Option<String>,
    /// This edge's name in the fleet; by default `<region>-<address>`.
    pub edge_id: Option<String>,
    /// The address clients reach this edge at, when not the one it listens on (behind NAT,
    /// a load balancer, or listening on 0.0.0.0).
    pub advertise_addr: Option<String>,
    /// The control plane's public key (hex, `fstore auth public-key`). Set, every lookup
    /// needs a token the signed access document lists; None serves anyone (authentication
    /// off).
    pub auth_public_key: Option<String>,
    /// The token this edge reports to the control plane with (role `edge`).
    pub control_plane_token: Option<String>,
    /// Which shards of sharded views this edge holds (by default all: every view whole). A
    /// lookup of a key in a shard not held is refused with 421 `shard_not_held`; a router
    /// (`fstore serve router`) sends each key to an edge holding it.
    pub shards: fstore_snapshot::ShardSet,
}

impl EdgeConfig {
    pub fn new(store_url: impl Into<String>) -> Self {
        Self {
            store_url: store_url.into(),
            cache_dir: std::env::temp_dir().join(format!("fstore-edge-{}", std::process::id())),
            poll_interval: Duration::from_secs(5),
            max_entities: 1_000,
            max_body_bytes: 1 << 20,
            region: "local".into(),
            wasm: HostConfig::default(),
            control_plane_url: None,
            edge_id: None,
            advertise_addr: None,
            auth_public_key: None,
            control_plane_token: None,
            shards: fstore_snapshot::ShardSet::all(),
        }
    }
}
