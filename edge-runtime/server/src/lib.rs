//! The fstore edge runtime: loads published snapshots from object storage, swaps them in
//! atomically, and answers feature lookups (fstore's own API and the Feast feature server's
//! wire format) straight from memory-mapped files. It needs no control plane at run time.

mod catalog;
mod config;
mod error;
mod http;
mod loader;
pub mod lookup;
mod metrics;

pub use catalog::{Catalog, LoadedView, ResolvedFeature};
pub use config::EdgeConfig;
pub use error::{ApiError, EdgeError};
pub use http::{EdgeState, router, serve};
pub use loader::Loader;
pub use metrics::Metrics;
