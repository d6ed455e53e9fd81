//! The access document: what an edge needs to authenticate and authorize callers, signed by
//! the control plane, and the [`Gate`] built from it.
//!
//! The control plane rewrites the document (`access.json` at the store's root) whenever a
//! token, a role or a definition's tags or masks change, with a larger `seq`. Edges poll it
//! with the live pointer, so a revoked token stops working at every edge within one poll
//! interval. An edge accepts a document only if its signature verifies with the public key it
//! was configured with and its `seq` is not lower than the one it holds (no replay of an
//! older, more permissive document).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::{AccessError, Action, Mask, Missing, Resource, ResourceKind, Role};

/// Where the document lives, relative to the store's root.
pub const ACCESS_KEY: &str = "access.json";

const FORMAT: u32 = 1;

/// One token an edge accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenGrant {
    pub id: String,
    pub name: String,
    pub role: String,
    pub secret_sha256: String,
    /// Unix seconds; None never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// Everything an edge authorizes with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessDoc {
    pub format: u32,
    /// Increases with every document; an edge never goes back to a lower one.
    pub seq: u64,
    pub issued_at: String,
    /// Built-in and custom roles.
    pub roles: Vec<Role>,
    /// Tokens neither revoked nor expired when the document was issued.
    pub tokens: Vec<TokenGrant>,
    /// `kind/name` → tags, for permissions that select by tag.
    pub tags: BTreeMap<String, Vec<String>>,
    /// View → feature → how it is masked for callers without `read_pii`.
    pub privacy: BTreeMap<String, BTreeMap<String, Mask>>,
    /// The key PII hashes are made with, hex. It travels with the document because the
    /// snapshots beside it hold the raw values anyway: whoever reads the bucket gains nothing
    /// from it that the snapshots do not already give.
    pub pii_key: String,
}

impl AccessDoc {
    pub fn new(seq: u64, issued_at: String, pii_key: String) -> Self {
        Self {
            format: FORMAT,
            seq,
            issued_at,
            roles: Vec::new(),
            tokens: Vec::new(),
            tags: BTreeMap::new(),
            privacy: BTreeMap::new(),
            pii_key,
        }
    }
}

/// The signed form written to the store: the document's exact bytes and their signature.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: u32,
    key_id: String,
    payload: String,
    signature: String,
}

/// A short, stable name for a public key, shown in logs and errors.
pub fn public_key_id(public_key_hex: &str) -> String {
    public_key_hex.chars().take(16).collect()
}

/// The control plane's signing key (an Ed25519 seed).
pub struct Signer {
    pair: aws_lc_rs::signature::Ed25519KeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public_key", &self.public_key_hex())
            .finish()
    }
}

impl Signer {
    /// A new random key, with its seed (hex) to store.
    pub fn generate() -> Result<(Signer, String), AccessError> {
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed)
            .map_err(|_| AccessError::Crypto("the system random number generator failed".into()))?;
        let hex_seed = hex::encode(seed);
        Ok((Signer::from_seed_hex(&hex_seed)?, hex_seed))
    }

    pub fn from_seed_hex(seed: &str) -> Result<Signer, AccessError> {
        let bytes = hex::decode(seed)
            .map_err(|e| AccessError::Invalid(format!("the signing key is not hex: {e}")))?;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&bytes)
            .map_err(|e| AccessError::Invalid(format!("the signing key is not Ed25519: {e}")))?;
        Ok(Signer { pair })
    }

    pub fn public_key_hex(&self) -> String {
        use aws_lc_rs::signature::KeyPair;
        hex::encode(self.pair.public_key().as_ref())
    }

    /// The document as written to the store.
    pub fn sign(&self, doc: &AccessDoc) -> Result<Vec<u8>, AccessError> {
        let payload = serde_json::to_string(doc)
            .map_err(|e| AccessError::Invalid(format!("the access document: {e}")))?;
        let signature = hex::encode(self.pair.sign(payload.as_bytes()).as_ref());
        serde_json::to_vec_pretty(&Envelope {
            format: FORMAT,
            key_id: public_key_id(&self.public_key_hex()),
            payload,
            signature,
        })
        .map_err(|e| AccessError::Invalid(format!("the access document: {e}")))
    }
}

/// The document in `bytes`, if its signature verifies with `public_key_hex`.
pub fn verify_doc(bytes: &[u8], public_key_hex: &str) -> Result<AccessDoc, AccessError> {
    let env: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| AccessError::Rejected(format!("not a signed access document: {e}")))?;
    let key = hex::decode(public_key_hex.trim())
        .map_err(|e| AccessError::Invalid(format!("the public key is not hex: {e}")))?;
    let sig = hex::decode(&env.signature)
        .map_err(|_| AccessError::Rejected("the signature is not hex".into()))?;
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &key)
        .verify(env.payload.as_bytes(), &sig)
        .map_err(|_| {
            AccessError::Rejected(format!(
                "the signature does not verify with public key {} (signed by {})",
                public_key_id(public_key_hex),
                env.key_id
            ))
        })?;
    let doc: AccessDoc = serde_json::from_str(&env.payload)
        .map_err(|e| AccessError::Rejected(format!("the signed payload: {e}")))?;
    if doc.format != FORMAT {
        return Err(AccessError::Rejected(format!(
            "format {} is not the supported {FORMAT}",
            doc.format
        )));
    }
    Ok(doc)
}

/// Why a caller was turned away: 401 for the first three, 403 for the last.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("this endpoint needs a token: send `Authorization: Bearer <token>`")]
    NoToken,
    #[error("the token is not valid (unknown, revoked or mistyped)")]
    BadToken,
    #[error("the token `{0}` has expired")]
    Expired(String),
    #[error("token `{token}` (role `{role}`) lacks {missing}")]
    Forbidden {
        token: String,
        role: String,
        missing: Missing,
    },
}

/// A caller the gate let in.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'g> {
    pub token: &'g TokenGrant,
    pub role: &'g Role,
}

impl Caller<'_> {
    pub fn check(&self, action: Action, r: &Resource<'_>) -> Result<(), GateError> {
        self.role
            .check(action, r)
            .map_err(|missing| GateError::Forbidden {
                token: self.token.name.clone(),
                role: self.role.name.clone(),
                missing,
            })
    }
}

/// A verified document, indexed for per-request checks: nothing a lookup asks of it allocates.
pub struct Gate {
    doc: AccessDoc,
    tokens: HashMap<String, (usize, usize)>,
    /// Tags by kind, then name.
    tags: HashMap<ResourceKind, HashMap<String, Vec<String>>>,
    pii_key: Vec<u8>,
    /// The PII key's HMAC schedule, made once rather than per masked value.
    pii_hmac: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("seq", &self.doc.seq)
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

const NO_TAGS: &[String] = &[];

impl Gate {
    pub fn new(doc: AccessDoc) -> Result<Gate, AccessError> {
        let mut tokens = HashMap::with_capacity(doc.tokens.len());
        for (i, t) in doc.tokens.iter().enumerate() {
            // A token whose role is unknown is left out: it can do nothing anyway.
            if let Some(r) = doc.roles.iter().position(|r| r.name == t.role) {
                tokens.insert(t.id.clone(), (i, r));
            }
        }
        let pii_key = hex::decode(&doc.pii_key)
            .map_err(|e| AccessError::Rejected(format!("the PII key is not hex: {e}")))?;
        let mut tags: HashMap<ResourceKind, HashMap<String, Vec<String>>> = HashMap::new();
        for (key, t) in &doc.tags {
            let kind = key
                .split_once('/')
                .and_then(|(k, n)| Some((ResourceKind::parse(k)?, n)));
            if let Some((kind, name)) = kind {
                tags.entry(kind)
                    .or_default()
                    .insert(name.to_string(), t.clone());
            }
        }
        Ok(Gate {
            pii_hmac: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &pii_key),
            doc,
            tokens,
            tags,
            pii_key,
        })
    }

    pub fn doc(&self) -> &AccessDoc {
        &self.doc
    }

    pub fn seq(&self) -> u64 {
        self.doc.seq
    }

    pub fn pii_key(&self) -> &[u8] {
        &self.pii_key
    }

    /// The caller presenting `token` (the bearer value), at `now` (Unix seconds).
    pub fn authenticate(&self, token: Option<&str>, now: i64) -> Result<Caller<'_>, GateError> {
        let token = token.ok_or(GateError::NoToken)?;
        let (id, secret) = crate::parse_token(token).map_err(|_| GateError::BadToken)?;
        let &(t, r) = self.tokens.get(id).ok_or(GateError::BadToken)?;
        let grant = &self.doc.tokens[t];
        if !crate::secret_matches(secret, &grant.secret_sha256) {
            return Err(GateError::BadToken);
        }
        if grant.expires_at.is_some_and(|e| e <= now) {
            return Err(GateError::Expired(grant.name.clone()));
        }
        Ok(Caller {
            token: grant,
            role: &self.doc.roles[r],
        })
    }

    pub fn tags(&self, kind: ResourceKind, name: &str) -> &[String] {
        self.tags
            .get(&kind)
            .and_then(|m| m.get(name))
            .map_or(NO_TAGS, Vec::as_slice)
    }

    /// [`crate::hash_text`] with this document's PII key.
    pub fn hash_pii(&self, text: &[u8]) -> String {
        crate::mask::hash_with(&self.pii_hmac, text)
    }

    /// The masked features of `view` (its base name: pinned slots share its policy).
    pub fn masks(&self, view: &str) -> Option<&BTreeMap<String, Mask>> {
        self.doc.privacy.get(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Permission, builtin_roles, generate_token};

    fn doc_with(token: &crate::NewToken, role: &str, expires_at: Option<i64>) -> AccessDoc {
        let mut doc = AccessDoc::new(7, "2026-12-04T00:00:00Z".into(), "00ff".into());
        doc.roles = builtin_roles();
        doc.roles.push(Role {
            name: "growth".into(),
            description: String::new(),
            permissions: vec![
                Permission::parse("read_online:feature_view:*:team-growth").expect("permission"),
            ],
        });
        doc.tokens.push(TokenGrant {
            id: token.id.clone(),
            name: "web".into(),
            role: role.into(),
            secret_sha256: token.secret_sha256.clone(),
            expires_at,
        });
        doc.tags.insert(
            "feature_view/customer_rfm".into(),
            vec!["team-growth".into()],
        );
        doc.privacy.insert(
            "customer_profile".into(),
            BTreeMap::from([("email".to_string(), Mask::Hash)]),
        );
        doc
    }

    #[test]
    fn a_signed_document_verifies_and_a_changed_one_does_not() {
        let (signer, seed) = Signer::generate().expect("key");
        let again = Signer::from_seed_hex(&seed).expect("same key");
        assert_eq!(signer.public_key_hex(), again.public_key_hex());
        let t = generate_token().expect("token");
        let doc = doc_with(&t, "consumer", None);
        let bytes = signer.sign(&doc).expect("sign");
        let back = verify_doc(&bytes, &signer.public_key_hex()).expect("verify");
        assert_eq!(back, doc);

        // Granting oneself admin in the stored document breaks the signature.
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        let forged = text.replace(r#"\"role\":\"consumer\""#, r#"\"role\":\"admin\""#);
        assert_ne!(forged, text);
        let e = verify_doc(forged.as_bytes(), &signer.public_key_hex()).expect_err("forged");
        assert!(e.to_string().contains("does not verify"), "{e}");
        // So does another key.
        let (other, _) = Signer::generate().expect("key");
        assert!(verify_doc(&bytes, &other.public_key_hex()).is_err());
        assert!(verify_doc(b"{}", &signer.public_key_hex()).is_err());
    }

    #[test]
    fn the_gate_authenticates_and_authorizes() {
        let t = generate_token().expect("token");
        let gate = Gate::new(doc_with(&t, "growth", Some(1_000))).expect("gate");
        let caller = gate.authenticate(Some(&t.token), 999).expect("valid");
        let tags = gate.tags(ResourceKind::FeatureView, "customer_rfm");
        assert_eq!(tags, ["team-growth".to_string()]);
        let rfm = Resource::new(ResourceKind::FeatureView, "customer_rfm", tags);
        assert!(caller.check(Action::ReadOnline, &rfm).is_ok());
        let orders = Resource::new(ResourceKind::FeatureView, "orders", &[]);
        let e = caller
            .check(Action::ReadOnline, &orders)
            .expect_err("untagged");
        assert_eq!(
            e.to_string(),
            "token `web` (role `growth`) lacks `read_online` on feature_view `orders`"
        );
        assert_eq!(
            gate.authenticate(Some(&t.token), 1_000)
                .expect_err("expired"),
            GateError::Expired("web".into())
        );
        assert_eq!(
            gate.authenticate(None, 0).expect_err("none"),
            GateError::NoToken
        );
        let other = generate_token().expect("token");
        assert_eq!(
            gate.authenticate(Some(&other.token), 0)
                .expect_err("unknown"),
            GateError::BadToken
        );
        // The right id with another secret.
        let (_, secret) = crate::parse_token(&other.token).expect("parse");
        let spoof = format!("fst_{}_{secret}", t.id);
        assert_eq!(
            gate.authenticate(Some(&spoof), 0)
                .expect_err("wrong secret"),
            GateError::BadToken
        );
        assert_eq!(gate.masks("customer_profile").map(|m| m.len()), Some(1));
        assert!(gate.masks("customer_rfm").is_none());
    }
}
