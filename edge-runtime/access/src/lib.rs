//! Access control shared by both planes: roles and permissions, API tokens, the signed access
//! document edges authorize callers with, and the masking of PII features.
//!
//! Edges never call the control plane per request. Everything they need to check a caller
//! (token hashes, roles, resource tags, masking policies) travels as one document the control
//! plane signs with Ed25519 and writes beside the snapshots; an edge verifies it with the
//! control plane's public key, which it is configured with, so whoever can write to the
//! object store still cannot grant themselves access.

mod doc;
mod mask;
mod perm;
mod token;

pub use doc::{
    ACCESS_KEY, AccessDoc, Caller, Gate, GateError, Signer, TokenGrant, public_key_id, verify_doc,
};
pub use mask::{Mask, hash_text, truncate_text};
pub use perm::{
    Action, Missing, Permission, Resource, ResourceKind, Role, builtin_roles, glob_match,
    is_builtin_role, validate_name,
};
pub use token::{
    NewToken, TOKEN_PREFIX, bearer, generate_token, parse_token, random_hex, secret_matches,
    secret_sha256,
};

/// Errors of this crate: input that does not make sense, or a document that does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Invalid(String),
    #[error("access document rejected: {0}")]
    Rejected(String),
    #[error("cryptography failed: {0}")]
    Crypto(String),
}
