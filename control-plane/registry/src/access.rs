//! Tokens, custom roles, settings and the hash-chained audit log, as the registry stores them.
//! What a permission means is the `fstore-access` crate's business; here roles' permissions
//! are JSON the registry keeps.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

tokio::task_local! {
    /// Where the registry changes made in this task come from: (origin, remote address).
    static AUDIT_ORIGIN: (String, Option<String>);
}

/// Runs `f` with its registry changes audited as coming from `origin` (`control-plane`,
/// `cli:<host>`) and `remote` (the caller's address).
pub async fn with_audit_origin<F: std::future::Future>(
    origin: String,
    remote: Option<String>,
    f: F,
) -> F::Output {
    AUDIT_ORIGIN.scope((origin, remote), f).await
}

/// The origin set by [`with_audit_origin`] for the running task, if any.
pub fn current_audit_origin() -> Option<(String, Option<String>)> {
    AUDIT_ORIGIN.try_with(Clone::clone).ok()
}

pub(crate) fn audit_origin() -> (String, Option<String>) {
    current_audit_origin().unwrap_or_else(|| ("registry".to_string(), None))
}

/// The hash before the first audit record.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    #[serde(skip_serializing)]
    pub secret_sha256: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
}

/// One custom role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRecord {
    pub name: String,
    pub description: String,
    pub permissions: serde_json::Value,
    pub created_at: String,
    pub created_by: String,
}

/// Something to record in the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAuditEvent {
    /// RFC 3339 UTC: when it happened (an edge's records keep the edge's time).
    pub at: String,
    /// Who: `token:<name>`, `local:<user>`, `anonymous`.
    pub actor: String,
    /// What was done: `apply`, `token.create`, `read_pii`, …
    pub action: String,
    /// To what: `feature_view/customer_rfm`, `token/web`, `project`.
    pub resource: String,
    #[serde(default)]
    pub detail: serde_json::Value,
    /// Where it was recorded: `control-plane`, `edge:<id>`, `cli`.
    pub origin: String,
    /// From where the caller came (its address), when known.
    #[serde(default)]
    pub remote: Option<String>,
    /// The origin's own sequence number, which makes resending a batch harmless.
    #[serde(default)]
    pub origin_seq: Option<u64>,
}

/// A recorded audit event with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    /// The detail exactly as stored (the hash covers this text).
    pub detail: String,
    pub origin: String,
    pub remote: Option<String>,
    pub origin_seq: Option<u64>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// The hash this record should have: SHA-256 over the previous hash and every field.
    pub fn expected_hash(&self) -> String {
        audit_hash(
            &self.prev_hash,
            self.seq,
            AuditFields {
                at: &self.at,
                actor: &self.actor,
                action: &self.action,
                resource: &self.resource,
                detail: &self.detail,
                origin: &self.origin,
                remote: self.remote.as_deref(),
                origin_seq: self.origin_seq,
            },
        )
    }
}

/// The fields a record's hash covers.
#[derive(Debug, Clone, Copy)]
pub struct AuditFields<'a> {
    pub at: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    pub detail: &'a str,
    pub origin: &'a str,
    pub remote: Option<&'a str>,
    pub origin_seq: Option<u64>,
}

/// The chain's hash function. Fields are JSON-encoded in a fixed order, so no two different
/// records share an input (a field cannot bleed into the next).
pub fn audit_hash(prev_hash: &str, seq: u64, f: AuditFields<'_>) -> String {
    let fields = serde_json::json!([
        seq,
        f.at,
        f.actor,
        f.action,
        f.resource,
        f.detail,
        f.origin,
        f.remote,
        f.origin_seq
    ]);
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(fields.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Which audit records to list (oldest first unless `newest_first`).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records after this sequence number.
    pub after: Option<u64>,
    /// Only records before this sequence number (to page back through a newest-first list).
    pub before: Option<u64>,
    /// Newest first: the records nearest the head (or `before`) rather than `after`.
    pub newest_first: bool,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// A resource, or a prefix of one ending in `/` (`feature_view/`).
    pub resource: Option<String>,
    /// RFC 3339 bounds on `at`, inclusive.
    pub since: Option<String>,
    pub until: Option<String>,
    /// 1..=10,000; 0 means 1,000.
    pub limit: usize,
}

/// Where the chain ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}
