//! How a view runs a transform component: the vocabulary both planes share, written by the
//! control plane into registered views and manifests, read by materialization and edges.

use serde::{Deserialize, Serialize};

use crate::{FeatureType, Field};

/// The name a step carries when it runs a view's SQL features, compiled into one component.
pub const SQL_STEP: &str = "sql";

/// One transform call per row: a component (addressed by the sha256 of its bytes), the names
/// bound to its inputs, and what it produces. A view's steps run in order; a step may read the
/// outputs of the steps before it.
/// Unknown fields are ignored, so a field added later does not make older edges reject a
/// whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformStep {
    /// The registered transform's name, or [`SQL_STEP`].
    pub transform: String,
    /// Lowercase hex sha256 of the component's `.wasm` bytes.
    pub sha256: String,
    /// For each declared input, in order: the feature, request field or earlier output it reads.
    pub inputs: Vec<String>,
    /// The component's declared outputs, in order. A view keeps those it declares as features.
    pub outputs: Vec<Field<FeatureType>>,
    /// Passed to the component's `configure`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<(String, String)>,
    /// Per-call deadline in milliseconds (a batch call scales it by its rows, up to a cap).
    pub timeout_ms: u64,
    /// Fuel per call (roughly, WebAssembly instructions); a batch call scales it by its rows.
    pub fuel: u64,
}

/// Default per-call deadline of a transform.
pub const DEFAULT_TIMEOUT_MS: u64 = 10;
/// Default fuel per call of a transform.
pub const DEFAULT_FUEL: u64 = 10_000_000;
