//! The fstore edge runtime: loads published snapshots from object storage, swaps them in
//! atomically, and answers feature lookups (fstore's own API and the Feast feature server's
//! wire format) straight from memory-mapped files. It needs no control plane at run time.
//! On-demand views run their transform components per request, sandboxed.

mod audit;
mod catalog;
mod config;
mod error;
mod heartbeat;
mod http;
mod loader;
pub mod lookup;
mod metrics;
mod ondemand;

pub use audit::{AuditEvent, AuditQueue};
pub use catalog::{Catalog, HeldShards, LoadedView, ResolvedFeature};
pub use config::EdgeConfig;
pub use error::{ApiError, EdgeError};
/// The WebAssembly host on-demand views run in (its configuration is part of [`EdgeConfig`]).
pub use fstore_wasm_host as wasm;
pub use heartbeat::{Heartbeat, ViewSignals};
pub use http::{EdgeState, router, serve};
pub use loader::{Components, Loader, build_catalog};
pub use metrics::{Metrics, OnDemandMetrics, ViewCounters};
pub use ondemand::{OnDemandSpec, OnDemandView};
