//! The fstore control plane: applies definitions to the registry, materializes feature views
//! into snapshots, publishes them to object storage, and exposes all of it over REST. It is
//! never on the lookup path: edges read only object storage.

mod access;
mod alerts;
mod api;
mod auth;
mod catalog;
mod changes;
mod error;
mod governance;
mod incremental;
mod jobs;
mod openapi;
mod overview;
mod privacy;
mod push;
mod quality;
mod service;
mod serving;
mod transforms;

pub use access::{
    AuditVerification, CreatedToken, MAX_AUDIT_BATCH, Principal, RoleView, TokenView,
    resource_kind, tags_of, with_origin,
};
pub use alerts::{AlertSettings, Webhook, WebhookFormat};
pub use api::{router, serve, serve_app};
pub use auth::time_param;
pub use catalog::{
    EdgeStatus, FeaturePage, FeatureVersion, Freshness, HistoryEntry, MISSED_HEARTBEATS, ServiceUse,
};
pub use changes::Dependent;
pub use error::ControlError;
pub use governance::{DeleteReport, RollbackParams, RollbackReport};
pub use incremental::RunMode;
pub use jobs::{JobMetrics, JobSettings, Triggered};
pub use openapi::openapi;
pub use overview::{FreshnessStatus, Overview, ViewHealth};
pub use privacy::{
    ComplianceReport, EraseReport, ErasedSnapshot, NotErased, PiiFeature, RetentionReport,
    SourceRetention,
};
pub use push::{PushReport, PushRequest, PushedView};
pub use quality::{DriftPoint, FeatureQuality, QualityView};
pub use service::{
    ApplyOptions, ApplyReport, ControlConfig, ControlPlane, DEFAULT_RETAIN_VERSIONS,
    HistoricalParams, HistoricalReport, HistoricalView, MaterializeReport,
};
pub use serving::ServingSummary;
pub use transforms::Transforms;
