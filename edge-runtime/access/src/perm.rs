//! Actions, resources, permissions and roles: who may do what to which definitions.
//!
//! Deny by default: a role grants exactly the (action, resource) pairs one of its permissions
//! selects, and nothing else. A permission selects resources by kind, name pattern and tags,
//! in the spirit of Feast's permission model; unlike Feast's, nothing is allowed where no
//! permission matches.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::AccessError;

/// Something a caller does. Every endpoint and CLI verb is one of these on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read definitions, versions, lineage, the catalog, jobs, quality and the fleet.
    Describe,
    Create,
    Update,
    Delete,
    /// Look features up on an edge.
    ReadOnline,
    /// Build training sets from the offline store.
    ReadOffline,
    /// Push rows into a view (the offline store and, by a delta, the edges).
    WriteOnline,
    /// Run and cancel materialization jobs.
    Materialize,
    /// See features tagged `pii` unmasked.
    ReadPii,
    /// Read the audit log and compliance reports.
    ReadAudit,
    /// Create and revoke tokens, create and delete roles.
    ManageAccess,
    /// Erase an entity's data (right to erasure).
    Erase,
    /// Report as an edge: heartbeats and audit batches.
    Report,
}

impl Action {
    pub const ALL: [Action; 13] = [
        Action::Describe,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::ReadOnline,
        Action::ReadOffline,
        Action::WriteOnline,
        Action::Materialize,
        Action::ReadPii,
        Action::ReadAudit,
        Action::ManageAccess,
        Action::Erase,
        Action::Report,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Describe => "describe",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::ReadOnline => "read_online",
            Action::ReadOffline => "read_offline",
            Action::WriteOnline => "write_online",
            Action::Materialize => "materialize",
            Action::ReadPii => "read_pii",
            Action::ReadAudit => "read_audit",
            Action::ManageAccess => "manage_access",
            Action::Erase => "erase",
            Action::Report => "report",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an action is done to. `project` stands for the store as a whole: the change log,
/// the fleet, jobs, alerts, tokens, the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Project,
    Entity,
    Source,
    RequestSource,
    Transform,
    FeatureView,
    OnDemandView,
    FeatureService,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::Project,
        ResourceKind::Entity,
        ResourceKind::Source,
        ResourceKind::RequestSource,
        ResourceKind::Transform,
        ResourceKind::FeatureView,
        ResourceKind::OnDemandView,
        ResourceKind::FeatureService,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Project => "project",
            ResourceKind::Entity => "entity",
            ResourceKind::Source => "source",
            ResourceKind::RequestSource => "request_source",
            ResourceKind::Transform => "transform",
            ResourceKind::FeatureView => "feature_view",
            ResourceKind::OnDemandView => "on_demand_view",
            ResourceKind::FeatureService => "feature_service",
        }
    }

    pub fn parse(s: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One resource an action is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub kind: ResourceKind,
    pub name: &'a str,
    pub tags: &'a [String],
}

impl<'a> Resource<'a> {
    pub fn new(kind: ResourceKind, name: &'a str, tags: &'a [String]) -> Self {
        Self { kind, name, tags }
    }

    /// The store as a whole.
    pub fn project() -> Resource<'static> {
        Resource {
            kind: ResourceKind::Project,
            name: "*",
            tags: &[],
        }
    }
}

/// Grants `actions` on every resource matching all of its selectors; an empty selector
/// matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub actions: Vec<Action>,
    /// Resource kinds; empty: every kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<ResourceKind>,
    /// Name patterns (`*` matches any run of characters); empty: every name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Tags the resource must all carry (`pii`, `team:growth`); empty: no requirement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Permission {
    pub fn new(actions: &[Action], kinds: &[ResourceKind]) -> Self {
        Self {
            actions: actions.to_vec(),
            kinds: kinds.to_vec(),
            names: Vec::new(),
            tags: Vec::new(),
        }
    }

    pub fn allows(&self, action: Action, r: &Resource<'_>) -> bool {
        self.actions.contains(&action)
            && (self.kinds.is_empty() || self.kinds.contains(&r.kind))
            // The project is not named: only a permission with no name patterns reaches it.
            && (self.names.is_empty()
                || (r.kind != ResourceKind::Project
                    && self.names.iter().any(|p| glob_match(p, r.name))))
            && self.tags.iter().all(|t| r.tags.contains(t))
    }

    /// The permission in the compact text form the CLI takes:
    /// `actions:kinds:names[:tags]`, lists comma-separated, `*` for "any".
    pub fn parse(text: &str) -> Result<Permission, AccessError> {
        let bad = |why: String| AccessError::Invalid(format!("permission `{text}`: {why}"));
        let parts: Vec<&str> = text.split(':').collect();
        if !(1..=4).contains(&parts.len()) {
            return Err(bad(
                "expected `actions[:kinds[:names[:tags]]]`, e.g. `read_online:feature_view:customer_*`"
                    .into(),
            ));
        }
        let list = |i: usize| -> Vec<&str> {
            match parts.get(i).copied() {
                None | Some("*") | Some("") => Vec::new(),
                Some(s) => s.split(',').map(str::trim).collect(),
            }
        };
        let mut actions = Vec::new();
        for a in list(0) {
            actions.push(Action::parse(a).ok_or_else(|| {
                bad(format!(
                    "unknown action `{a}` (one of {})",
                    Action::ALL.map(Action::as_str).join(", ")
                ))
            })?);
        }
        if parts[0].trim() == "*" {
            actions = Action::ALL.to_vec();
        }
        let mut kinds = Vec::new();
        for k in list(1) {
            kinds.push(ResourceKind::parse(k).ok_or_else(|| {
                bad(format!(
                    "unknown resource kind `{k}` (one of {})",
                    ResourceKind::ALL.map(ResourceKind::as_str).join(", ")
                ))
            })?);
        }
        let names = list(2).into_iter().map(str::to_string).collect();
        let tags = list(3).into_iter().map(str::to_string).collect();
        let p = Permission {
            actions,
            kinds,
            names,
            tags,
        };
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), AccessError> {
        if self.actions.is_empty() {
            return Err(AccessError::Invalid(
                "a permission must name at least one action".into(),
            ));
        }
        if let Some(n) = self.names.iter().find(|n| n.is_empty() || n.len() > 200) {
            return Err(AccessError::Invalid(format!(
                "name pattern `{n}` must be 1-200 characters"
            )));
        }
        Ok(())
    }
}

/// `*` matches any run of characters (none included); everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // The position after the last `*` and the name position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi + 1, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<Permission>,
}

/// Why an action was refused: the permission that was missing, for the 403's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub action: Action,
    pub kind: ResourceKind,
    pub name: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ResourceKind::Project {
            write!(f, "`{}` on the project", self.action)
        } else {
            write!(f, "`{}` on {} `{}`", self.action, self.kind, self.name)
        }
    }
}

impl Role {
    pub fn allows(&self, action: Action, r: &Resource<'_>) -> bool {
        self.permissions.iter().any(|p| p.allows(action, r))
    }

    /// `Ok` when allowed, else what is missing.
    pub fn check(&self, action: Action, r: &Resource<'_>) -> Result<(), Missing> {
        if self.allows(action, r) {
            Ok(())
        } else {
            Err(Missing {
                action,
                kind: r.kind,
                name: r.name.to_string(),
            })
        }
    }

    pub fn validate(&self) -> Result<(), AccessError> {
        validate_name(&self.name, "role name")?;
        if self.permissions.is_empty() {
            return Err(AccessError::Invalid(format!(
                "role `{}` grants nothing: give it at least one permission",
                self.name
            )));
        }
        for p in &self.permissions {
            p.validate()?;
        }
        Ok(())
    }
}

/// Names of roles and tokens: 1-64 of `[A-Za-z0-9_.-]`, so they read well in logs and URLs.
pub fn validate_name(name: &str, what: &str) -> Result<(), AccessError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AccessError::Invalid(format!(
            "{what} `{name}` must be 1-64 letters, digits, `_`, `-` or `.`"
        )))
    }
}

/// Kinds that definitions (`features.yaml`) are made of.
const DEFINITIONS: [ResourceKind; 7] = [
    ResourceKind::Entity,
    ResourceKind::Source,
    ResourceKind::RequestSource,
    ResourceKind::Transform,
    ResourceKind::FeatureView,
    ResourceKind::OnDemandView,
    ResourceKind::FeatureService,
];

/// The roles every store has. They cannot be changed or deleted; custom roles sit beside them.
pub fn builtin_roles() -> Vec<Role> {
    use Action::*;
    let all_kinds: &[ResourceKind] = &[];
    vec![
        Role {
            name: "admin".into(),
            description: "everything, PII unmasked included".into(),
            permissions: vec![Permission::new(&Action::ALL, all_kinds)],
        },
        Role {
            name: "author".into(),
            description: "define and change features and transforms".into(),
            permissions: vec![
                Permission::new(&[Describe], all_kinds),
                Permission::new(&[Create, Update, Delete], &DEFINITIONS),
            ],
        },
        Role {
            name: "operator".into(),
            description: "run, cancel and push to materialization jobs".into(),
            permissions: vec![
                Permission::new(&[Describe], all_kinds),
                Permission::new(
                    &[Materialize, WriteOnline],
                    &[ResourceKind::FeatureView, ResourceKind::Project],
                ),
            ],
        },
        Role {
            name: "consumer".into(),
            description: "read features online and offline (PII masked)".into(),
            permissions: vec![Permission::new(
                &[Describe, ReadOnline, ReadOffline],
                all_kinds,
            )],
        },
        Role {
            name: "auditor".into(),
            description: "read the audit log and compliance reports".into(),
            permissions: vec![Permission::new(&[Describe, ReadAudit], all_kinds)],
        },
        Role {
            name: "edge".into(),
            description: "an edge runtime: heartbeats and audit batches".into(),
            permissions: vec![Permission::new(&[Report], &[ResourceKind::Project])],
        },
    ]
}

pub fn is_builtin_role(name: &str) -> bool {
    builtin_roles().iter().any(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("customer_*", "customer_rfm"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*_rfm", "customer_rfm"));
        assert!(glob_match("c*r*m", "customer_rfm"));
        assert!(!glob_match("customer_*", "orders"));
        assert!(!glob_match("customer", "customer_rfm"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn builtin_roles_grant_what_they_say() {
        let roles = builtin_roles();
        let role = |n: &str| roles.iter().find(|r| r.name == n).expect("role");
        let view = Resource::new(ResourceKind::FeatureView, "customer_rfm", &[]);
        assert!(role("admin").allows(Action::ReadPii, &view));
        assert!(role("author").allows(Action::Update, &view));
        assert!(!role("author").allows(Action::Materialize, &view));
        assert!(role("operator").allows(Action::Materialize, &view));
        assert!(!role("operator").allows(Action::Delete, &view));
        assert!(role("consumer").allows(Action::ReadOnline, &view));
        assert!(!role("consumer").allows(Action::ReadPii, &view));
        assert!(!role("consumer").allows(Action::Create, &view));
        assert!(role("auditor").allows(Action::ReadAudit, &Resource::project()));
        assert!(!role("auditor").allows(Action::ReadOnline, &view));
        assert!(!role("edge").allows(Action::Describe, &view));
        assert!(role("edge").allows(Action::Report, &Resource::project()));
        let missing = role("consumer")
            .check(Action::Update, &view)
            .expect_err("refused");
        assert_eq!(
            missing.to_string(),
            "`update` on feature_view `customer_rfm`"
        );
    }

    #[test]
    fn custom_permissions_select_by_kind_name_and_tags() {
        let p = Permission::parse("read_online,read_pii:feature_view:customer_*:team:growth")
            .expect_err("five parts are too many");
        assert!(p.to_string().contains("expected"), "{p}");
        let p = Permission::parse("read_online,read_pii:feature_view:customer_*:growth")
            .expect("parse");
        let tags = vec!["growth".to_string(), "pii".to_string()];
        let r = Role {
            name: "support".into(),
            description: String::new(),
            permissions: vec![p],
        };
        let hit = Resource::new(ResourceKind::FeatureView, "customer_rfm", &tags);
        assert!(r.allows(Action::ReadPii, &hit));
        assert!(!r.allows(Action::Describe, &hit));
        let untagged = Resource::new(ResourceKind::FeatureView, "customer_rfm", &[]);
        assert!(!r.allows(Action::ReadOnline, &untagged));
        let other = Resource::new(ResourceKind::FeatureView, "orders", &tags);
        assert!(!r.allows(Action::ReadOnline, &other));
        let service = Resource::new(ResourceKind::FeatureService, "customer_x", &tags);
        assert!(!r.allows(Action::ReadOnline, &service));
        // A named permission never reaches the project.
        let named = Permission::parse("describe:*:customer_*").expect("parse");
        assert!(!named.allows(Action::Describe, &Resource::project()));
        assert!(
            Permission::parse("*")
                .expect("all")
                .allows(Action::Erase, &hit)
        );
        for bad in ["fly:feature_view", "describe:planet", "describe:*:", ""] {
            let e = Permission::parse(bad);
            if bad == "describe:*:" {
                assert!(e.is_ok(), "an empty list means any");
            } else {
                assert!(e.is_err(), "{bad}");
            }
        }
    }
}
