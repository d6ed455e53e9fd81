//! The fstore definition model: entities, batch and request sources, transforms, feature views
//! (materialized and on-demand) and feature services;
//! parsing and validating `features.yaml` with errors that name the line and the key; and the
//! plan (create / change / remove) that `apply` shows before it changes anything, with each
//! change classed compatible or breaking; and the lineage graph of what depends on what.

mod diff;
mod duration;
mod lineage;
mod model;
mod plan;
mod quality;
mod redact;
mod reject;
mod schedule;
mod yaml;

pub use diff::{Compatibility, Diff, FieldChange, diff_specs};
pub use duration::{format_duration, parse_duration};
pub use lineage::{Direction, Graph, Impact, Link, Node, NodeId, NodeKind, Subgraph};
pub use model::{
    Aggregation, Definitions, Entity, FeatureDef, FeatureService, FeatureView, ObjectKind,
    OnDemandView, PII_TAG, RequestSource, ResolvedTransform, Source, SourceFormat, Transform,
};
pub use plan::{Action, Change, Plan};
pub use quality::{Baseline, Check, Drift, Rule, Scope, Severity};
pub use redact::{redact_url, userinfo_span};
pub use reject::RejectLimit;
pub use schedule::{Cron, Schedule};
pub use yaml::parse_features_yaml;

/// A problem in a definition file or object, with its position when one is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}{message}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
pub struct SpecError {
    /// `line:column` (1-based) in the YAML source, when known.
    pub location: Option<String>,
    /// The key or object the problem is about, e.g. `feature_views[0].ttl`.
    pub key: Option<String>,
    pub message: String,
}

impl SpecError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            location: None,
            key: None,
            message: message.into(),
        }
    }

    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.location = Some(format!("line {line}, column {column}"));
        self
    }

    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}
