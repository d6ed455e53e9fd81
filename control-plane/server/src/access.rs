//! Who is calling and what they may do: tokens, roles, the signed access document edges
//! authorize with, and the audit log's reading and verification.
//!
//! The control plane authenticates against the registry on every request (a revoked token
//! stops at once here); edges authenticate against the signed document, rewritten after every
//! change that could alter an answer (tokens, roles, definitions' tags and masks).

use std::collections::BTreeMap;
use std::time::Duration;

use fstore_access::{AccessDoc, Action, Missing, Resource, ResourceKind, Role, Signer, TokenGrant};
use fstore_registry::{AuditQuery, AuditRecord, NewAuditEvent, RoleRecord, TokenRecord};
use fstore_spec::{Definitions, ObjectKind};
use serde::Serialize;

use crate::{ControlError, ControlPlane};

/// View → feature → how it is masked for callers without `read_pii`.
pub(crate) type Privacy = BTreeMap<String, BTreeMap<String, fstore_access::Mask>>;

/// Settings under which the registry keeps the signing key and the PII hashing key.
const SIGNING_KEY: &str = "access.signing_key";
const PII_KEY: &str = "access.pii_key";
/// The registry counter numbering access documents.
const ACCESS_COUNTER: &str = "access";
const ACCESS_LOCK_LEASE: Duration = Duration::from_secs(30);
/// Most audit events one edge batch may carry.
pub const MAX_AUDIT_BATCH: usize = 10_000;

/// Someone acting on the control plane.
#[derive(Debug, Clone)]
pub struct Principal {
    /// How the audit log names them: `token:<name>`, `local:<user>`, `anonymous`.
    pub actor: String,
    /// The token's id, when a token was used.
    pub token_id: Option<String>,
    pub role: Role,
}

fn admin_role() -> Role {
    fstore_access::builtin_roles()
        .into_iter()
        .find(|r| r.name == "admin")
        .unwrap_or_else(|| Role {
            name: "admin".into(),
            description: String::new(),
            permissions: vec![fstore_access::Permission::new(&Action::ALL, &[])],
        })
}

impl Principal {
    /// Whoever runs the CLI against the registry directly: holding the database's
    /// credentials already allows every change, so they act as admin (and are audited by
    /// their login name).
    pub fn local(user: &str) -> Self {
        Self {
            actor: format!("local:{user}"),
            token_id: None,
            role: admin_role(),
        }
    }

    /// Every caller when authentication is switched off (`--auth off`, the quickstart).
    pub fn anonymous() -> Self {
        Self {
            actor: "anonymous".into(),
            token_id: None,
            role: admin_role(),
        }
    }

    pub fn may(&self, action: Action, r: &Resource<'_>) -> bool {
        self.role.allows(action, r)
    }

    pub fn check(&self, action: Action, r: &Resource<'_>) -> Result<(), ControlError> {
        self.role
            .check(action, r)
            .map_err(|missing| forbidden(self, missing))
    }

    /// Whether any permission could let them create, update or delete a definition.
    pub fn may_change_definitions(&self) -> bool {
        self.role.permissions.iter().any(|p| {
            p.actions
                .iter()
                .any(|a| matches!(a, Action::Create | Action::Update | Action::Delete))
                && (p.kinds.is_empty() || p.kinds.iter().any(|k| *k != ResourceKind::Project))
        })
    }

    /// Whether any permission selects by tag, so checks need the resource's tags.
    pub fn needs_tags(&self) -> bool {
        self.role.permissions.iter().any(|p| !p.tags.is_empty())
    }
}

fn forbidden(p: &Principal, missing: Missing) -> ControlError {
    ControlError::Forbidden {
        message: format!("{} (role `{}`) lacks {missing}", p.actor, p.role.name),
        missing,
    }
}

pub fn resource_kind(kind: ObjectKind) -> ResourceKind {
    match kind {
        ObjectKind::Entity => ResourceKind::Entity,
        ObjectKind::Source => ResourceKind::Source,
        ObjectKind::RequestSource => ResourceKind::RequestSource,
        ObjectKind::Transform => ResourceKind::Transform,
        ObjectKind::FeatureView => ResourceKind::FeatureView,
        ObjectKind::OnDemandView => ResourceKind::OnDemandView,
        ObjectKind::FeatureService => ResourceKind::FeatureService,
    }
}

/// The tags of a definition (empty when there is none by that name).
pub fn tags_of(defs: &Definitions, kind: ResourceKind, name: &str) -> Vec<String> {
    fn find<'a>(
        mut items: impl Iterator<Item = (&'a str, &'a [String])>,
        name: &str,
    ) -> Vec<String> {
        items
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_vec())
            .unwrap_or_default()
    }
    let base = fstore_snapshot::base_view(name);
    match kind {
        ResourceKind::Project => Vec::new(),
        ResourceKind::Entity => find(
            defs.entities.iter().map(|e| (e.name.as_str(), &e.tags[..])),
            name,
        ),
        ResourceKind::Source => find(
            defs.sources.iter().map(|e| (e.name.as_str(), &e.tags[..])),
            name,
        ),
        ResourceKind::RequestSource => find(
            defs.request_sources
                .iter()
                .map(|e| (e.name.as_str(), &e.tags[..])),
            name,
        ),
        ResourceKind::Transform => find(
            defs.transforms
                .iter()
                .map(|e| (e.name.as_str(), &e.tags[..])),
            name,
        ),
        ResourceKind::FeatureView => find(
            defs.feature_views
                .iter()
                .map(|e| (e.name.as_str(), &e.tags[..])),
            base,
        ),
        ResourceKind::OnDemandView => find(
            defs.on_demand_views
                .iter()
                .map(|e| (e.name.as_str(), &e.tags[..])),
            base,
        ),
        ResourceKind::FeatureService => find(
            defs.feature_services
                .iter()
                .map(|e| (e.name.as_str(), &e.tags[..])),
            name,
        ),
    }
}

/// A token as listed (never its secret), with whether it works now.
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    #[serde(flatten)]
    pub token: TokenRecord,
    pub status: &'static str,
}

/// A token just created: `token` is shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub record: TokenRecord,
    pub token: String,
}

/// A role as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RoleView {
    #[serde(flatten)]
    pub role: Role,
    pub builtin: bool,
}

/// The outcome of `audit verify`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditVerification {
    pub ok: bool,
    pub records: u64,
    pub head_seq: u64,
    pub head_hash: String,
    /// The first record that does not chain, and why.
    pub broken_at: Option<u64>,
    pub problem: Option<String>,
}

pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn token_status(t: &TokenRecord, now: &str) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.as_deref().is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

fn role_of(r: &RoleRecord) -> Result<Role, ControlError> {
    let permissions = serde_json::from_value(r.permissions.clone()).map_err(|e| {
        ControlError::Registry(fstore_registry::RegistryError::Corrupt(format!(
            "the permissions of role `{}`: {e}",
            r.name
        )))
    })?;
    Ok(Role {
        name: r.name.clone(),
        description: r.description.clone(),
        permissions,
    })
}

impl ControlPlane {
    /// The caller presenting `token`, checked against the registry (revocation and expiry
    /// apply at once).
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ControlError> {
        let bad = || {
            ControlError::Unauthorized(
                "the token is not valid (unknown, revoked or mistyped)".into(),
            )
        };
        let (id, secret) = fstore_access::parse_token(token).map_err(|_| bad())?;
        let t = self.registry.token(id).await?.ok_or_else(bad)?;
        if !fstore_access::secret_matches(secret, &t.secret_sha256) || t.revoked_at.is_some() {
            return Err(bad());
        }
        if token_status(&t, &now_text()) == "expired" {
            return Err(ControlError::Unauthorized(format!(
                "the token `{}` has expired",
                t.name
            )));
        }
        let role = self.role(&t.role).await?.ok_or_else(|| {
            ControlError::Unauthorized(format!(
                "the token `{}` has role `{}`, which no longer exists",
                t.name, t.role
            ))
        })?;
        Ok(Principal {
            actor: format!("token:{}", t.name),
            token_id: Some(t.id),
            role,
        })
    }

    /// A built-in or custom role.
    pub async fn role(&self, name: &str) -> Result<Option<Role>, ControlError> {
        if let Some(r) = fstore_access::builtin_roles()
            .into_iter()
            .find(|r| r.name == name)
        {
            return Ok(Some(r));
        }
        match self.registry.roles().await?.iter().find(|r| r.name == name) {
            Some(r) => Ok(Some(role_of(r)?)),
            None => Ok(None),
        }
    }

    /// Refuses with 403 unless `p` may do `action` to the named resource.
    pub async fn authorize(
        &self,
        p: &Principal,
        action: Action,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(), ControlError> {
        // `/v1/features/{view}/…` and `/v1/quality/{view}` name on-demand views too.
        let kind = if kind == ResourceKind::FeatureView {
            let defs = self.registry.definitions().await?;
            let base = fstore_snapshot::base_view(name);
            if defs.view(base).is_none() && defs.on_demand_views.iter().any(|o| o.name == base) {
                ResourceKind::OnDemandView
            } else {
                kind
            }
        } else {
            kind
        };
        let tags = if p.needs_tags() && kind != ResourceKind::Project {
            tags_of(&self.registry.definitions().await?, kind, name)
        } else {
            Vec::new()
        };
        p.check(action, &Resource::new(kind, name, &tags))
    }

    /// Checks `action` on each named view, or on every view when none is named.
    pub async fn authorize_views(
        &self,
        p: &Principal,
        action: Action,
        views: &[String],
    ) -> Result<(), ControlError> {
        let defs = self.registry.definitions().await?;
        let all: Vec<String>;
        let views = if views.is_empty() {
            all = defs.feature_views.iter().map(|v| v.name.clone()).collect();
            &all
        } else {
            views
        };
        for v in views {
            let tags = tags_of(&defs, ResourceKind::FeatureView, v);
            p.check(action, &Resource::new(ResourceKind::FeatureView, v, &tags))?;
        }
        Ok(())
    }

    /// A push writes to every view reading its source: `write_online` on each.
    pub async fn authorize_push(&self, p: &Principal, source: &str) -> Result<(), ControlError> {
        let defs = self.registry.definitions().await?;
        let views: Vec<String> = defs
            .feature_views
            .iter()
            .filter(|v| v.source == source)
            .map(|v| v.name.clone())
            .collect();
        if views.is_empty() {
            let tags = tags_of(&defs, ResourceKind::Source, source);
            return p.check(
                Action::WriteOnline,
                &Resource::new(ResourceKind::Source, source, &tags),
            );
        }
        self.authorize_views(p, Action::WriteOnline, &views).await
    }

    /// A training set reads its service (if named) and every view it takes features from.
    pub async fn authorize_historical(
        &self,
        p: &Principal,
        req: &crate::HistoricalParams,
    ) -> Result<(), ControlError> {
        let defs = self.registry.definitions().await?;
        let mut views: Vec<String> = Vec::new();
        if let Some(s) = &req.feature_service {
            let tags = tags_of(&defs, ResourceKind::FeatureService, s);
            p.check(
                Action::ReadOffline,
                &Resource::new(ResourceKind::FeatureService, s, &tags),
            )?;
            if let Some(svc) = defs.service(s) {
                views.extend(svc.features.iter().map(|r| r.view.clone()));
            }
        }
        for f in &req.features {
            if let Some((v, _)) = f.split_once(':') {
                views.push(v.to_string());
            }
        }
        // An on-demand view reads its source views: a training set of it reads them too.
        let sources: Vec<String> = views
            .iter()
            .filter_map(|v| {
                defs.on_demand_views
                    .iter()
                    .find(|o| o.name == fstore_snapshot::base_view(v))
            })
            .flat_map(|o| o.sources.iter().cloned())
            .collect();
        views.extend(sources);
        views.sort();
        views.dedup();
        if p.token_id.is_some() {
            self.check_training_locations(&defs, req)?;
        }
        for v in &views {
            let base = fstore_snapshot::base_view(v);
            let kind = if defs.on_demand_views.iter().any(|o| o.name == base) {
                ResourceKind::OnDemandView
            } else {
                ResourceKind::FeatureView
            };
            let tags = tags_of(&defs, kind, base);
            p.check(Action::ReadOffline, &Resource::new(kind, base, &tags))?;
        }
        Ok(())
    }

    /// Where a token's training set may read entity rows from and write to: Parquet or CSV
    /// files outside the object store the edges read and outside every source. Otherwise a
    /// `read_offline` token could copy a raw source (PII and all) through as "entity rows",
    /// or overwrite the registry, the access document or a manifest with its output.
    fn check_training_locations(
        &self,
        defs: &Definitions,
        req: &crate::HistoricalParams,
    ) -> Result<(), ControlError> {
        fn absolute(loc: &str) -> String {
            if loc.contains("://") {
                return loc.to_string();
            }
            std::path::absolute(loc)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| loc.to_string())
        }
        let protected: Vec<String> = std::iter::once(absolute(&self.config.store_url))
            .chain(
                defs.sources
                    .iter()
                    .filter(|s| s.format != fstore_spec::SourceFormat::Postgres)
                    .map(|s| {
                        // A single file protects itself; a prefix, directory or glob its
                        // fixed folder.
                        let fixed = s.path.split(['*', '?']).next().unwrap_or(&s.path);
                        let is_file = fixed.len() == s.path.len()
                            && !s.path.ends_with('/')
                            && !std::path::Path::new(&s.path).is_dir();
                        if is_file {
                            absolute(&s.path)
                        } else {
                            let dir = fixed.rsplit_once('/').map_or(fixed, |(d, _)| d);
                            absolute(dir)
                        }
                    }),
            )
            .filter(|p| !p.is_empty() && p != "/")
            .collect();
        for (what, loc) in [("entities", &req.entities), ("out", &req.out)] {
            let lower = loc.to_ascii_lowercase();
            if !(lower.ends_with(".parquet") || lower.ends_with(".csv")) {
                return Err(ControlError::BadRequest(format!(
                    "`{what}` must be a .parquet or .csv file"
                )));
            }
            let abs = absolute(loc);
            if let Some(p) = protected.iter().find(|p| {
                abs.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }) {
                return Err(ControlError::BadRequest(format!(
                    "`{what}` is inside `{p}`, which holds a source or the object store; \
                     training sets read and write elsewhere"
                )));
            }
        }
        Ok(())
    }

    /// Checks every change of an apply: creating and updating need the new definition's
    /// tags, deleting the old one's.
    pub async fn authorize_plan(
        &self,
        p: &Principal,
        plan: &fstore_spec::Plan,
        desired: &Definitions,
    ) -> Result<(), ControlError> {
        let current = if p.needs_tags() {
            Some(self.registry.definitions().await?)
        } else {
            None
        };
        for c in &plan.changes {
            let kind = resource_kind(c.kind);
            let (action, defs) = match c.action {
                fstore_spec::Action::Create => (Action::Create, Some(desired)),
                fstore_spec::Action::Update => (Action::Update, Some(desired)),
                fstore_spec::Action::Delete => (Action::Delete, current.as_ref()),
            };
            let tags = defs.map(|d| tags_of(d, kind, &c.name)).unwrap_or_default();
            p.check(action, &Resource::new(kind, &c.name, &tags))?;
            // An update must also be allowed on what it changes: retagging a view into one's
            // own reach takes the permission on its current tags too.
            if action == Action::Update
                && let Some(cur) = &current
            {
                let old = tags_of(cur, kind, &c.name);
                p.check(action, &Resource::new(kind, &c.name, &old))?;
            }
        }
        Ok(())
    }

    pub async fn create_token(
        &self,
        by: &Principal,
        name: &str,
        role: &str,
        expires_in: Option<Duration>,
    ) -> Result<CreatedToken, ControlError> {
        by.check(Action::ManageAccess, &Resource::project())?;
        fstore_access::validate_name(name, "token name").map_err(bad_request)?;
        if self.role(role).await?.is_none() {
            return Err(ControlError::BadRequest(format!(
                "role `{role}` does not exist (built in: {}; or create it with `fstore role create`)",
                fstore_access::builtin_roles()
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let expires_at = match expires_in {
            None => None,
            Some(d) => {
                let d = chrono::Duration::from_std(d)
                    .ok()
                    .filter(|d| *d > chrono::Duration::zero())
                    .ok_or_else(|| {
                        ControlError::BadRequest("the expiry must be a positive duration".into())
                    })?;
                let at = chrono::Utc::now()
                    .checked_add_signed(d)
                    .ok_or_else(|| ControlError::BadRequest("the expiry is too far away".into()))?;
                Some(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            }
        };
        let t = fstore_access::generate_token().map_err(internal)?;
        let record = TokenRecord {
            id: t.id,
            name: name.to_string(),
            role: role.to_string(),
            secret_sha256: t.secret_sha256,
            created_at: now_text(),
            created_by: by.actor.clone(),
            expires_at,
            revoked_at: None,
            revoked_by: None,
        };
        self.registry
            .create_token(&record)
            .await
            .map_err(|e| match e {
                fstore_registry::RegistryError::Duplicate(m) => ControlError::Conflict {
                    code: "token_exists",
                    message: format!("{m}; revoke it first or pick another name"),
                    details: serde_json::Value::Null,
                },
                e => e.into(),
            })?;
        self.audit(
            &by.actor,
            "token.create",
            &format!("token/{name}"),
            serde_json::json!({"id": record.id, "role": role, "expires_at": record.expires_at}),
        )
        .await?;
        self.publish_access().await?;
        Ok(CreatedToken {
            record,
            token: t.token,
        })
    }

    pub async fn tokens(&self, by: &Principal) -> Result<Vec<TokenView>, ControlError> {
        by.check(Action::ManageAccess, &Resource::project())?;
        let now = now_text();
        Ok(self
            .registry
            .tokens()
            .await?
            .into_iter()
            .map(|t| TokenView {
                status: token_status(&t, &now),
                token: t,
            })
            .collect())
    }

    pub async fn revoke_token(
        &self,
        by: &Principal,
        id_or_name: &str,
    ) -> Result<TokenRecord, ControlError> {
        by.check(Action::ManageAccess, &Resource::project())?;
        let t = self
            .registry
            .revoke_token(id_or_name, &by.actor)
            .await?
            .ok_or_else(|| ControlError::NotFound {
                kind: "active token".into(),
                name: id_or_name.to_string(),
            })?;
        self.audit(
            &by.actor,
            "token.revoke",
            &format!("token/{}", t.name),
            serde_json::json!({"id": t.id}),
        )
        .await?;
        self.publish_access().await?;
        Ok(t)
    }

    pub async fn roles(&self, by: &Principal) -> Result<Vec<RoleView>, ControlError> {
        by.check(Action::ManageAccess, &Resource::project())?;
        let mut out: Vec<RoleView> = fstore_access::builtin_roles()
            .into_iter()
            .map(|role| RoleView {
                role,
                builtin: true,
            })
            .collect();
        for r in self.registry.roles().await? {
            out.push(RoleView {
                role: role_of(&r)?,
                builtin: false,
            });
        }
        Ok(out)
    }

    /// Creates or replaces a custom role.
    pub async fn put_role(&self, by: &Principal, role: Role) -> Result<bool, ControlError> {
        by.check(Action::ManageAccess, &Resource::project())?;
        role.validate().map_err(bad_request)?;
        if fstore_access::is_builtin_role(&role.name) {
            return Err(ControlError::BadRequest(format!(
                "`{}` is a built-in role and cannot be changed; create a role of another name",
                role.name
            )));
        }
        let permissions = serde_json::to_value(&role.permissions)
            .map_err(|e| ControlError::BadRequest(format!("permissions: {e}")))?;
        let replaced = self
            .registry
            .put_role(&RoleRecord {
                name: role.name.clone(),
                description: role.description.clone(),
                permissions: permissions.clone(),
                created_at: now_text(),
                created_by: by.actor.clone(),
            })
            .await?;
        self.audit(
            &by.actor,
            if replaced {
                "role.update"
            } else {
                "role.create"
            },
            &format!("role/{}", role.name),
            serde_json::json!({"permissions": permissions}),
        )
        .await?;
        self.publish_access().await?;
        Ok(replaced)
    }

    /// Deletes a custom role; refused while an active token has it.
    pub async fn delete_role(&self, by: &Principal, name: &str) -> Result<(), ControlError> {
        by.check(Action::ManageAccess, &Resource::project())?;
        if fstore_access::is_builtin_role(name) {
            return Err(ControlError::BadRequest(format!(
                "`{name}` is a built-in role and cannot be deleted"
            )));
        }
        let now = now_text();
        let users: Vec<String> = self
            .registry
            .tokens()
            .await?
            .into_iter()
            .filter(|t| t.role == name && token_status(t, &now) == "active")
            .map(|t| t.name)
            .collect();
        if !users.is_empty() {
            return Err(ControlError::Conflict {
                code: "role_in_use",
                message: format!(
                    "role `{name}` is held by active tokens ({}); revoke them first",
                    users.join(", ")
                ),
                details: serde_json::json!({ "tokens": users }),
            });
        }
        if !self.registry.delete_role(name).await? {
            return Err(ControlError::NotFound {
                kind: "role".into(),
                name: name.into(),
            });
        }
        self.audit(
            &by.actor,
            "role.delete",
            &format!("role/{name}"),
            serde_json::Value::Null,
        )
        .await?;
        self.publish_access().await?;
        Ok(())
    }

    /// The key access documents are signed with, made on first use and kept in the registry
    /// (so replicas sharing a registry sign alike).
    pub async fn signer(&self) -> Result<&Signer, ControlError> {
        self.signer
            .get_or_try_init(|| async {
                let (fresh, seed) = Signer::generate().map_err(internal)?;
                let stored = self.registry.init_setting(SIGNING_KEY, &seed).await?;
                if stored == seed {
                    Ok(fresh)
                } else {
                    Signer::from_seed_hex(&stored).map_err(internal)
                }
            })
            .await
    }

    /// The public key edges verify access documents with (hex).
    pub async fn public_key(&self) -> Result<String, ControlError> {
        Ok(self.signer().await?.public_key_hex())
    }

    async fn pii_key(&self) -> Result<String, ControlError> {
        let fresh = fstore_access::random_hex(32).map_err(internal)?;
        Ok(self.registry.init_setting(PII_KEY, &fresh).await?)
    }

    /// Takes the values of PII features out of a quality report for a caller who may not see
    /// them raw (top values, extremes, quantiles, histograms, observed figures): what is left
    /// is counts and verdicts.
    pub async fn scrub_quality(
        &self,
        p: &Principal,
        view: &str,
        report: &mut crate::QualityView,
    ) -> Result<(), ControlError> {
        let base = fstore_snapshot::base_view(view);
        let defs = self.registry.definitions().await?;
        let tags = tags_of(&defs, ResourceKind::FeatureView, base);
        if p.may(
            Action::ReadPii,
            &Resource::new(ResourceKind::FeatureView, base, &tags),
        ) {
            return Ok(());
        }
        let privacy = self.privacy_all(&defs).await?;
        let Some(pii) = privacy.get(base) else {
            return Ok(());
        };
        fn scrub(v: &mut serde_json::Value, pii: &BTreeMap<String, fstore_access::Mask>) {
            const KEEP: [&str; 13] = [
                "name",
                "feature",
                "type",
                "count",
                "nulls",
                "null_rate",
                "nans",
                "distinct",
                "distinct_approximate",
                "rule",
                "severity",
                "passed",
                "status",
            ];
            match v {
                serde_json::Value::Object(o) => {
                    let named = ["name", "feature"].iter().any(|k| {
                        o.get(*k)
                            .and_then(|n| n.as_str())
                            .is_some_and(|n| pii.contains_key(n))
                    });
                    if named {
                        o.retain(|k, _| KEEP.contains(&k.as_str()));
                        o.insert("masked".into(), true.into());
                    } else {
                        for (k, child) in o.iter_mut() {
                            // Maps keyed by feature name (distributions, drift).
                            if pii.contains_key(k) {
                                *child = serde_json::json!({"masked": true});
                            } else {
                                scrub(child, pii);
                            }
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(|c| scrub(c, pii)),
                _ => {}
            }
        }
        scrub(&mut report.report, pii);
        report.history.iter_mut().for_each(|h| scrub(h, pii));
        Ok(())
    }

    /// [`Self::privacy`] over every version of every view: a feature that was PII in any
    /// version stays masked (with its newest mask), so a pinned `view@v1`, a rollback slot or
    /// an older snapshot still serving a renamed feature cannot leak it.
    pub(crate) async fn privacy_all(&self, defs: &Definitions) -> Result<Privacy, ControlError> {
        let mut out = Self::privacy(defs);
        for (kind, name) in defs
            .feature_views
            .iter()
            .map(|v| (ObjectKind::FeatureView, &v.name))
            .chain(
                defs.on_demand_views
                    .iter()
                    .map(|v| (ObjectKind::OnDemandView, &v.name)),
            )
        {
            for version in self.registry.history(kind, name).await?.iter().rev() {
                let Some(spec) = &version.spec else { continue };
                let Some(features) = spec.get("features").cloned() else {
                    continue;
                };
                let Ok(features) = serde_json::from_value::<Vec<fstore_spec::FeatureDef>>(features)
                else {
                    continue;
                };
                for f in features {
                    if let Some(m) = f.effective_mask() {
                        out.entry(name.clone())
                            .or_default()
                            .entry(f.name)
                            .or_insert(m);
                    }
                }
            }
        }
        Ok(out)
    }

    /// How each PII feature is masked: view → feature → mask.
    pub(crate) fn privacy(
        defs: &Definitions,
    ) -> BTreeMap<String, BTreeMap<String, fstore_access::Mask>> {
        let mut out = BTreeMap::new();
        let views = defs
            .feature_views
            .iter()
            .map(|v| (&v.name, &v.features))
            .chain(defs.on_demand_views.iter().map(|v| (&v.name, &v.features)));
        for (name, features) in views {
            let masks: BTreeMap<String, fstore_access::Mask> = features
                .iter()
                .filter_map(|f| f.effective_mask().map(|m| (f.name.clone(), m)))
                .collect();
            if !masks.is_empty() {
                out.insert(name.clone(), masks);
            }
        }
        out
    }

    /// Per requested feature, the mask `p` sees it through in a training set (all None when
    /// nothing is masked).
    pub(crate) fn training_masks(
        p: Option<&Principal>,
        defs: &Definitions,
        privacy: &Privacy,
        features: &[fstore_snapshot::FeatureRef],
    ) -> Vec<Option<fstore_access::Mask>> {
        let Some(p) = p else { return Vec::new() };
        let masks: Vec<Option<fstore_access::Mask>> = features
            .iter()
            .map(|r| {
                let view = r.base_view();
                let mask = privacy.get(view)?.get(&r.feature).copied()?;
                let kind = if defs.on_demand_views.iter().any(|o| o.name == view) {
                    ResourceKind::OnDemandView
                } else {
                    ResourceKind::FeatureView
                };
                let tags = tags_of(defs, kind, view);
                (!p.may(Action::ReadPii, &Resource::new(kind, view, &tags))).then_some(mask)
            })
            .collect();
        if masks.iter().all(Option::is_none) {
            Vec::new()
        } else {
            masks
        }
    }

    /// The PII features among `features`: view → positions in `features`.
    pub(crate) fn pii_features(
        privacy: &Privacy,
        features: &[fstore_snapshot::FeatureRef],
    ) -> BTreeMap<String, Vec<usize>> {
        let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in features.iter().enumerate() {
            let view = r.base_view();
            if privacy
                .get(view)
                .is_some_and(|m| m.contains_key(&r.feature))
            {
                out.entry(view.to_string()).or_default().push(i);
            }
        }
        out
    }

    /// The PII key (bytes) masks are hashed with, shared with the edges.
    pub(crate) async fn pii_key_bytes(&self) -> Result<Vec<u8>, ControlError> {
        hex::decode(self.pii_key().await?).map_err(|_| {
            ControlError::Registry(fstore_registry::RegistryError::Corrupt(
                "the PII key is not hex".into(),
            ))
        })
    }

    /// Writes a new signed access document for the edges; returns its number.
    pub async fn publish_access(&self) -> Result<u64, ControlError> {
        // One writer at a time in this process, and a holder name no other call shares (so
        // the registry lock excludes other calls and replicas, even ones with the same pid).
        let _guard = self.access_publish.lock().await;
        let holder = format!(
            "access-{}-{}",
            self.holder,
            fstore_access::random_hex(8).map_err(internal)?
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !self
            .registry
            .try_lock("access", &holder, ACCESS_LOCK_LEASE)
            .await?
        {
            if std::time::Instant::now() > deadline {
                return Err(ControlError::Conflict {
                    code: "access_busy",
                    message: "another process has held the access lock for over 60 s".into(),
                    details: serde_json::Value::Null,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let result = self.publish_access_locked().await;
        if let Err(e) = self.registry.unlock("access", &holder).await {
            tracing::warn!(error = %e, "could not release the access lock; it lapses by itself");
        }
        result
    }

    async fn publish_access_locked(&self) -> Result<u64, ControlError> {
        let signer = self.signer().await?;
        // The number must pass the stored document's, which a new or restored registry
        // would not know.
        let stored_seq = match self.store.get_bytes(fstore_access::ACCESS_KEY).await {
            Ok(bytes) => fstore_access::verify_doc(&bytes, &signer.public_key_hex())
                .map(|d| d.seq)
                .unwrap_or(0),
            Err(_) => 0,
        };
        let seq = self
            .registry
            .next_sequence_above(ACCESS_COUNTER, stored_seq)
            .await?;
        let defs = self.registry.definitions().await?;
        let mut doc = AccessDoc::new(seq, now_text(), self.pii_key().await?);
        doc.roles = fstore_access::builtin_roles();
        for r in self.registry.roles().await? {
            doc.roles.push(role_of(&r)?);
        }
        let now = now_text();
        for t in self.registry.tokens().await? {
            if token_status(&t, &now) != "active" {
                continue;
            }
            let expires_at = t
                .expires_at
                .as_deref()
                .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
                .map(|e| e.timestamp());
            doc.tokens.push(TokenGrant {
                id: t.id,
                name: t.name,
                role: t.role,
                secret_sha256: t.secret_sha256,
                expires_at,
            });
        }
        for (kind, name, _) in defs.objects() {
            let rk = resource_kind(kind);
            let tags = tags_of(&defs, rk, &name);
            if !tags.is_empty() {
                doc.tags.insert(format!("{rk}/{name}"), tags);
            }
        }
        doc.privacy = self.privacy_all(&defs).await?;
        let bytes = signer.sign(&doc).map_err(internal)?;
        self.store
            .put_replace(fstore_access::ACCESS_KEY, bytes.into())
            .await?;
        Ok(seq)
    }

    /// Appends one event to the audit log, as coming from this process.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        resource: &str,
        detail: serde_json::Value,
    ) -> Result<(), ControlError> {
        let (origin, remote) = current_origin();
        self.registry
            .append_audit(&[NewAuditEvent {
                at: now_text(),
                actor: actor.to_string(),
                action: action.to_string(),
                resource: resource.to_string(),
                detail,
                origin,
                remote,
                origin_seq: None,
            }])
            .await?;
        Ok(())
    }

    pub async fn audit_log(
        &self,
        by: &Principal,
        q: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, ControlError> {
        by.check(Action::ReadAudit, &Resource::project())?;
        Ok(self.registry.audit(q).await?)
    }

    /// Records a batch an edge shipped. Every event is stamped with the edge's origin, so an
    /// edge cannot write records in another's name; resent events are recorded once.
    pub async fn ingest_audit(
        &self,
        by: &Principal,
        edge: &str,
        events: Vec<NewAuditEvent>,
    ) -> Result<usize, ControlError> {
        by.check(Action::Report, &Resource::project())?;
        if edge.is_empty() || edge.len() > 200 {
            return Err(ControlError::BadRequest(
                "`edge` must be 1-200 characters".into(),
            ));
        }
        if events.len() > MAX_AUDIT_BATCH {
            return Err(ControlError::BadRequest(format!(
                "{} events in one batch; at most {MAX_AUDIT_BATCH}",
                events.len()
            )));
        }
        // The origin starts with the sending token, never what the body claims, so an edge
        // cannot write in another token's name or pre-claim its sequence numbers; the fleet
        // id follows, so edges sharing a token keep apart (their sequence numbers are their
        // own clocks and may coincide).
        let origin = format!(
            "edge:{}/{edge}",
            by.actor.strip_prefix("token:").unwrap_or(&by.actor)
        );
        let mut events = events;
        for (i, e) in events.iter_mut().enumerate() {
            let kind_ok = ["feature_view/", "on_demand_view/"]
                .iter()
                .any(|p| e.resource.starts_with(p));
            if e.action != "read_pii" || !kind_ok {
                return Err(ControlError::BadRequest(format!(
                    "event {i}: edges report `read_pii` of a `feature_view/…` or \
                     `on_demand_view/…`, not `{}` of `{}`",
                    e.action, e.resource
                )));
            }
            if let serde_json::Value::Object(d) = &mut e.detail {
                d.insert("edge".into(), edge.into());
            }
            if e.origin_seq.is_none() {
                return Err(ControlError::BadRequest(format!(
                    "event {i} has no `origin_seq`: edges number their events so a resent \
                     batch is recorded once"
                )));
            }
            if chrono::DateTime::parse_from_rfc3339(&e.at).is_err() {
                return Err(ControlError::BadRequest(format!(
                    "event {i}: `at` is not an RFC 3339 time"
                )));
            }
            e.origin.clone_from(&origin);
        }
        Ok(self.registry.append_audit(&events).await?.len())
    }

    /// Walks the whole chain: every record must hash to its stored hash and name the one
    /// before it, and the last must be the head.
    pub async fn verify_audit(&self, by: &Principal) -> Result<AuditVerification, ControlError> {
        by.check(Action::ReadAudit, &Resource::project())?;
        let head = self.registry.audit_head().await?;
        let mut prev = fstore_registry::AUDIT_GENESIS.to_string();
        let mut expected_seq = 0u64;
        let mut problem: Option<(u64, String)> = None;
        'pages: loop {
            let page = self
                .registry
                .audit(&AuditQuery {
                    after: Some(expected_seq),
                    limit: 10_000,
                    ..AuditQuery::default()
                })
                .await?;
            if page.is_empty() {
                break;
            }
            // Records appended after the head was read are the next verification's.
            for r in page.iter().take_while(|r| r.seq <= head.seq) {
                let seq = expected_seq + 1;
                if r.seq != seq {
                    problem = Some((seq, format!("record {seq} is missing (next is {})", r.seq)));
                    break 'pages;
                }
                if r.prev_hash != prev {
                    problem = Some((
                        seq,
                        format!(
                            "record {seq} does not follow record {}: its previous hash differs",
                            seq - 1
                        ),
                    ));
                    break 'pages;
                }
                if r.hash != r.expected_hash() {
                    problem = Some((
                        seq,
                        format!(
                            "record {seq} was changed: its fields no longer hash to its stored hash"
                        ),
                    ));
                    break 'pages;
                }
                prev.clone_from(&r.hash);
                expected_seq = seq;
            }
            if expected_seq >= head.seq {
                break;
            }
        }
        if problem.is_none() && (expected_seq != head.seq || prev != head.hash) {
            problem = Some((
                expected_seq + 1,
                format!(
                    "the chain ends at record {expected_seq}, but the head says {}: records were removed",
                    head.seq
                ),
            ));
        }
        Ok(AuditVerification {
            ok: problem.is_none(),
            records: expected_seq,
            head_seq: head.seq,
            head_hash: head.hash,
            broken_at: problem.as_ref().map(|p| p.0),
            problem: problem.map(|p| p.1),
        })
    }
}

/// Runs `f` as a request from `remote` (or, for the CLI, with `origin` naming it): audit
/// records it writes, the registry's included, say so.
pub async fn with_origin<F: std::future::Future>(
    origin: String,
    remote: Option<String>,
    f: F,
) -> F::Output {
    fstore_registry::with_audit_origin(origin, remote, f).await
}

fn current_origin() -> (String, Option<String>) {
    fstore_registry::current_audit_origin().unwrap_or_else(|| ("control-plane".to_string(), None))
}

fn bad_request(e: fstore_access::AccessError) -> ControlError {
    ControlError::BadRequest(e.to_string())
}

fn internal(e: fstore_access::AccessError) -> ControlError {
    ControlError::Internal(e.to_string())
}
