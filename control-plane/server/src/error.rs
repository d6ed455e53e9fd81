use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fstore_spec::SpecError;

/// Everything the control plane can refuse or fail at. Each variant maps to one HTTP status:
/// caller mistakes are 4xx with a message; infrastructure failures are 5xx whose details go
/// to the log, not the client.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("invalid definitions: {}", .0.first().map(ToString::to_string).unwrap_or_default())]
    InvalidDefinitions(Vec<SpecError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{kind} `{name}` not found")]
    NotFound { kind: String, name: String },
    /// A published version the store does not keep, with why (pruned, never published).
    #[error("{0}")]
    VersionNotFound(String),
    #[error("materialization of `{view}` failed: {message}")]
    Materialization { view: String, message: String },
    /// A training set could not be built from the sources (a missing file, a bad row...).
    #[error("training set failed: {0}")]
    TrainingSet(String),
    /// Refused because of what depends on it (a breaking change or delete still in use, a
    /// rollback to a snapshot no longer kept); `details` lists what.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: serde_json::Value,
    },
    /// A request that is wrong in a way worth listing (`details`): every pushed row bad.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        details: serde_json::Value,
    },
    /// An `error` quality rule failed: the snapshot was computed, checked and not published;
    /// the live one stays. `details` lists every failing rule.
    #[error("`{view}` snapshot {version} was not published: {message}")]
    QualityRejected {
        view: String,
        version: u64,
        message: String,
        details: serde_json::Value,
    },
    /// No token, or one that is unknown, revoked or expired.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid caller without the permission this needs; `missing` names it.
    #[error("{message}")]
    Forbidden {
        message: String,
        missing: fstore_access::Missing,
    },
    /// Something that cannot fail did (the system's random number generator...).
    #[error("internal error: {0}")]
    Internal(String),
    #[error("registry: {0}")]
    Registry(#[from] fstore_registry::RegistryError),
    #[error("object storage: {0}")]
    Storage(#[from] fstore_storage::StorageError),
}

impl ControlError {
    pub fn status(&self) -> StatusCode {
        match self {
            ControlError::InvalidDefinitions(_)
            | ControlError::BadRequest(_)
            | ControlError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ControlError::NotFound { .. } | ControlError::VersionNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            ControlError::Materialization { .. }
            | ControlError::TrainingSet(_)
            | ControlError::QualityRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ControlError::Conflict { .. } => StatusCode::CONFLICT,
            ControlError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ControlError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ControlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // A value the caller gave that the registry cannot take (a search limit...).
            ControlError::Registry(fstore_registry::RegistryError::Invalid(_)) => {
                StatusCode::BAD_REQUEST
            }
            ControlError::Registry(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ControlError::Storage(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ControlError::InvalidDefinitions(_) => "invalid_definitions",
            ControlError::BadRequest(_) => "bad_request",
            ControlError::NotFound { .. } => "not_found",
            ControlError::VersionNotFound(_) => "version_not_found",
            ControlError::Materialization { .. } => "materialization_failed",
            ControlError::TrainingSet(_) => "training_set_failed",
            ControlError::QualityRejected { .. } => "quality_rejected",
            ControlError::Conflict { code, .. } | ControlError::Invalid { code, .. } => code,
            ControlError::Unauthorized(_) => "unauthorized",
            ControlError::Forbidden { .. } => "forbidden",
            ControlError::Internal(_) => "internal",
            ControlError::Registry(fstore_registry::RegistryError::Invalid(_)) => "bad_request",
            ControlError::Registry(_) => "registry_error",
            ControlError::Storage(_) => "storage_error",
        }
    }
}

/// The JSON error body every endpoint uses: `{"error": {"code", "message", "details"?}}`.
pub(crate) fn error_body(
    code: &str,
    message: &str,
    details: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut e = serde_json::json!({"code": code, "message": message});
    if let Some(d) = details {
        e["details"] = d;
    }
    serde_json::json!({ "error": e })
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "internal error; see the control plane's log".to_string()
        } else {
            self.to_string()
        };
        let details = match &self {
            ControlError::InvalidDefinitions(errs) => serde_json::to_value(errs).ok(),
            ControlError::Conflict { details, .. }
            | ControlError::Invalid { details, .. }
            | ControlError::QualityRejected { details, .. } => Some(details.clone()),
            ControlError::Forbidden { missing, .. } => {
                Some(serde_json::json!({ "missing": missing }))
            }
            _ => None,
        };
        (
            status,
            axum::Json(error_body(self.code(), &message, details)),
        )
            .into_response()
    }
}
