use fstore_snapshot::{FeatureRef, FeatureType, Field, KeyType};
use serde::{Deserialize, Serialize};

use crate::SpecError;

/// The kinds of object the registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Entity,
    Source,
    FeatureView,
    FeatureService,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 4] = [
        ObjectKind::Entity,
        ObjectKind::Source,
        ObjectKind::FeatureView,
        ObjectKind::FeatureService,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::FeatureView => "feature_view",
            ObjectKind::FeatureService => "feature_service",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a customer (or any keyed thing) is: its join-key columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub name: String,
    pub join_keys: Vec<Field<KeyType>>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Parquet,
    Csv,
}

/// Files (or a prefix of files) in a data lake holding timestamped rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    /// A local path, or an object-store URL (`s3://bucket/prefix/`, `gs://…`, `az://…`); a
    /// path ending in `/` (or a directory) means every file of the format under it.
    pub path: String,
    pub format: SourceFormat,
    pub timestamp_field: String,
    #[serde(default)]
    pub created_timestamp_field: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One feature of a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FeatureType,
    /// The source column, when it differs from the feature name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl FeatureDef {
    pub fn column(&self) -> &str {
        self.column.as_deref().unwrap_or(&self.name)
    }
}

/// Typed features of one or more entities, computed from a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureView {
    pub name: String,
    pub entities: Vec<String>,
    pub source: String,
    /// Maximum age of a row, in seconds; 0 means unbounded.
    pub ttl_seconds: u64,
    pub features: Vec<FeatureDef>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A named bundle of features a model consumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureService {
    pub name: String,
    pub features: Vec<FeatureRef>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A complete, validated set of definitions: what `features.yaml` declares and what the
/// registry holds. Each list is sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    #[serde(default)]
    pub entities: Vec<Entity>,
    #[serde(default)]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub feature_views: Vec<FeatureView>,
    #[serde(default)]
    pub feature_services: Vec<FeatureService>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-')
}

impl Definitions {
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn view(&self, name: &str) -> Option<&FeatureView> {
        self.feature_views.iter().find(|v| v.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&FeatureService> {
        self.feature_services.iter().find(|s| s.name == name)
    }

    /// The join-key columns of a view, in entity order.
    pub fn view_keys(&self, view: &FeatureView) -> Vec<Field<KeyType>> {
        view.entities
            .iter()
            .filter_map(|e| self.entity(e))
            .flat_map(|e| e.join_keys.iter().cloned())
            .collect()
    }

    pub fn sort(&mut self) {
        self.entities.sort_by(|a, b| a.name.cmp(&b.name));
        self.sources.sort_by(|a, b| a.name.cmp(&b.name));
        self.feature_views.sort_by(|a, b| a.name.cmp(&b.name));
        self.feature_services.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Checks names, uniqueness and every reference. Errors carry the key they concern
    /// (`feature_views.customer_rfm.source`); the YAML layer adds line numbers.
    pub fn validate(&self) -> Result<(), Vec<SpecError>> {
        let mut errs = Vec::new();
        let mut check_names = |kind: &str, names: Vec<&str>| {
            let mut seen = std::collections::HashSet::new();
            for n in names {
                if !valid_name(n) {
                    errs.push(
                        SpecError::new(format!(
                            "{kind} name `{n}` must be 1-128 characters of letters, digits, `_` or `-`"
                        ))
                        .key(format!("{kind}.{n}.name")),
                    );
                }
                if !seen.insert(n) {
                    errs.push(
                        SpecError::new(format!("{kind} `{n}` is defined twice"))
                            .key(format!("{kind}.{n}")),
                    );
                }
            }
        };
        check_names(
            "entities",
            self.entities.iter().map(|e| e.name.as_str()).collect(),
        );
        check_names(
            "sources",
            self.sources.iter().map(|e| e.name.as_str()).collect(),
        );
        check_names(
            "feature_views",
            self.feature_views.iter().map(|e| e.name.as_str()).collect(),
        );
        check_names(
            "feature_services",
            self.feature_services
                .iter()
                .map(|e| e.name.as_str())
                .collect(),
        );

        for e in &self.entities {
            if e.join_keys.is_empty() {
                errs.push(
                    SpecError::new(format!("entity `{}` needs at least one join key", e.name))
                        .key(format!("entities.{}.join_keys", e.name)),
                );
            }
        }
        for s in &self.sources {
            if s.path.trim().is_empty() {
                errs.push(
                    SpecError::new(format!("source `{}` has an empty path", s.name))
                        .key(format!("sources.{}.path", s.name)),
                );
            }
        }
        for v in &self.feature_views {
            let k = |field: &str| format!("feature_views.{}.{field}", v.name);
            if v.entities.is_empty() {
                errs.push(
                    SpecError::new(format!(
                        "feature view `{}` needs at least one entity",
                        v.name
                    ))
                    .key(k("entities")),
                );
            }
            for e in &v.entities {
                if self.entity(e).is_none() {
                    errs.push(
                        SpecError::new(format!(
                            "feature view `{}` refers to entity `{e}`, which is not defined",
                            v.name
                        ))
                        .key(k(&format!("entities.{e}"))),
                    );
                }
            }
            if self.source(&v.source).is_none() {
                errs.push(
                    SpecError::new(format!(
                        "feature view `{}` refers to source `{}`, which is not defined",
                        v.name, v.source
                    ))
                    .key(k("source")),
                );
            }
            if v.features.is_empty() {
                errs.push(
                    SpecError::new(format!("feature view `{}` declares no features", v.name))
                        .key(k("features")),
                );
            }
            let keys: Vec<String> = self.view_keys(v).into_iter().map(|f| f.name).collect();
            let mut seen = std::collections::HashSet::new();
            for f in &v.features {
                if !valid_name(&f.name) {
                    errs.push(
                        SpecError::new(format!(
                            "feature name `{}` must be letters, digits, `_` or `-`",
                            f.name
                        ))
                        .key(k(&format!("features.{}", f.name))),
                    );
                }
                if !seen.insert(f.name.as_str()) {
                    errs.push(
                        SpecError::new(format!(
                            "feature `{}` is declared twice in view `{}`",
                            f.name, v.name
                        ))
                        .key(k(&format!("features.{}", f.name))),
                    );
                }
                if keys.contains(&f.name) {
                    errs.push(
                        SpecError::new(format!(
                            "feature `{}` has the name of a join key of view `{}`",
                            f.name, v.name
                        ))
                        .key(k(&format!("features.{}", f.name))),
                    );
                }
            }
        }
        for s in &self.feature_services {
            if s.features.is_empty() {
                errs.push(
                    SpecError::new(format!("feature service `{}` names no features", s.name))
                        .key(format!("feature_services.{}.features", s.name)),
                );
            }
            for r in &s.features {
                let key = format!("feature_services.{}.features.{r}", s.name);
                match self.view(&r.view) {
                    None => errs.push(SpecError::new(format!("feature service `{}` refers to feature view `{}`, which is not defined", s.name, r.view)).key(key)),
                    Some(v) if !v.features.iter().any(|f| f.name == r.feature) => errs.push(
                        SpecError::new(format!("feature service `{}` refers to `{r}`, but view `{}` has no feature `{}`", s.name, r.view, r.feature)).key(key),
                    ),
                    Some(_) => {}
                }
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// Every object as `(kind, name, JSON)`, the form the registry stores.
    pub fn objects(&self) -> Vec<(ObjectKind, String, serde_json::Value)> {
        fn j<T: Serialize>(t: &T) -> serde_json::Value {
            serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
        }
        let mut out = Vec::new();
        out.extend(
            self.entities
                .iter()
                .map(|o| (ObjectKind::Entity, o.name.clone(), j(o))),
        );
        out.extend(
            self.sources
                .iter()
                .map(|o| (ObjectKind::Source, o.name.clone(), j(o))),
        );
        out.extend(
            self.feature_views
                .iter()
                .map(|o| (ObjectKind::FeatureView, o.name.clone(), j(o))),
        );
        out.extend(
            self.feature_services
                .iter()
                .map(|o| (ObjectKind::FeatureService, o.name.clone(), j(o))),
        );
        out
    }

    /// Rebuilds definitions from stored objects.
    pub fn from_objects(
        objects: impl IntoIterator<Item = (ObjectKind, serde_json::Value)>,
    ) -> Result<Self, SpecError> {
        let mut d = Definitions::default();
        for (kind, v) in objects {
            let err =
                |e: serde_json::Error| SpecError::new(format!("stored {kind} is unreadable: {e}"));
            match kind {
                ObjectKind::Entity => d.entities.push(serde_json::from_value(v).map_err(err)?),
                ObjectKind::Source => d.sources.push(serde_json::from_value(v).map_err(err)?),
                ObjectKind::FeatureView => d
                    .feature_views
                    .push(serde_json::from_value(v).map_err(err)?),
                ObjectKind::FeatureService => d
                    .feature_services
                    .push(serde_json::from_value(v).map_err(err)?),
            }
        }
        d.sort();
        Ok(d)
    }
}
