use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Errors that stop an edge from starting or loading.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("storage: {0}")]
    Storage(#[from] fstore_storage::StorageError),
    #[error("snapshot `{key}`: {source}")]
    Snapshot {
        key: String,
        #[source]
        source: fstore_snapshot::SnapshotError,
    },
    #[error("snapshot `{key}` has checksum {actual}, manifest says {expected}")]
    ChecksumMismatch {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("snapshot `{key}` does not match the manifest: {reason}")]
    ManifestMismatch { key: String, reason: String },
    #[error("i/o on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad configuration: {0}")]
    Config(String),
}

/// An error answered to a caller: a status and a stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn body(&self) -> Vec<u8> {
        let v = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}
