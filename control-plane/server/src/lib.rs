//! The fstore control plane: applies definitions to the registry, materializes feature views
//! into snapshots, publishes them to object storage, and exposes all of it over REST. It is
//! never on the lookup path: edges read only object storage.

mod api;
mod error;
mod openapi;
mod service;
mod transforms;

pub use api::{router, serve};
pub use error::ControlError;
pub use openapi::openapi;
pub use service::{
    ApplyReport, ControlConfig, ControlPlane, DEFAULT_RETAIN_VERSIONS, HistoricalParams,
    HistoricalReport, HistoricalView, MaterializeReport,
};
pub use transforms::Transforms;
