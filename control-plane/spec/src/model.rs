use std::collections::BTreeMap;

use fstore_snapshot::{FeatureRef, FeatureType, Field, KeyType, TransformStep};
use serde::{Deserialize, Serialize};

use crate::{Schedule, SpecError};

/// The kinds of object the registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Entity,
    Source,
    RequestSource,
    Transform,
    FeatureView,
    OnDemandView,
    FeatureService,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Entity,
        ObjectKind::Source,
        ObjectKind::RequestSource,
        ObjectKind::Transform,
        ObjectKind::FeatureView,
        ObjectKind::OnDemandView,
        ObjectKind::FeatureService,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::RequestSource => "request_source",
            ObjectKind::Transform => "transform",
            ObjectKind::FeatureView => "feature_view",
            ObjectKind::OnDemandView => "on_demand_view",
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
    /// JSON lines: one object per line (`.jsonl`, `.ndjson`, `.json`).
    Jsonl,
    /// A PostgreSQL query; the source's `path` is the `postgres://` URL.
    Postgres,
}

impl SourceFormat {
    /// Whether the source is files in a data lake (rather than a database query).
    pub fn is_file(self) -> bool {
        !matches!(self, SourceFormat::Postgres)
    }
}

/// Timestamped rows: files in a data lake, or a PostgreSQL query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    /// A local path, or an object-store URL (`s3://bucket/prefix/`, `gs://…`, `az://…`): one
    /// file, a prefix (ends in `/`, or a local directory: every file of the format under it),
    /// or a glob (`*` and `?` within a segment, `**` across segments). For `format: postgres`,
    /// the `postgres://` URL, with `${VAR}` expanded from the environment when it is read so
    /// that passwords need not be written here.
    pub path: String,
    pub format: SourceFormat,
    /// The SQL query of a `postgres` source; file sources have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub timestamp_field: String,
    #[serde(default)]
    pub created_timestamp_field: Option<String>,
    /// How long raw data is kept: date partitions ending longer ago than this are deleted by
    /// `fstore retention` (and the control plane's daily pass). None keeps everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<u64>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Source {
    /// A `postgres` source needs a query and a `postgres://` URL; a file source takes no
    /// query. Messages never quote the path: a database URL may hold a password.
    fn validate_query(&self) -> Option<SpecError> {
        let has_query = self.query.as_deref().is_some_and(|q| !q.trim().is_empty());
        let (message, key) = match self.format {
            SourceFormat::Postgres if !has_query => (
                format!(
                    "source `{}` has format `postgres` but no `query`; add the SQL that selects its rows",
                    self.name
                ),
                "query",
            ),
            SourceFormat::Postgres
                if !(self.path.starts_with("postgres://")
                    || self.path.starts_with("postgresql://")) =>
            {
                (
                    format!(
                        "source `{}` has format `postgres`, so its path must be a `postgres://` URL",
                        self.name
                    ),
                    "path",
                )
            }
            f if f.is_file() && self.query.is_some() => (
                format!(
                    "source `{}`: `query` is only for `format: postgres`; a file source reads its files whole",
                    self.name
                ),
                "query",
            ),
            _ => return None,
        };
        Some(SpecError::new(message).key(format!("sources.{}.{key}", self.name)))
    }
}

/// The tag that marks a feature as personal data.
pub const PII_TAG: &str = "pii";

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
    /// Computed by this registered transform: the feature is its output of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// The transform output this feature takes, when it is not the feature's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Computed by this SQL expression over the view's other features (and request fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Aggregated over the source's events (of `column`, when the function reads one), per
    /// entity, as of a timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<Aggregation>,
    /// The aggregation's window in seconds: events with `t - window < event <= t`. None means
    /// every event up to `t`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
    /// What `recency` and `age` count in: a duration in seconds (default one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_seconds: Option<u64>,
    /// Quality rules on this feature's values in every snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::Check>,
    /// How callers without `read_pii` see it; setting one makes the feature PII.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<fstore_access::Mask>,
    #[serde(default)]
    pub description: String,
    /// Who answers for this feature, when not the view's owner (empty: the view's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// How an aggregated feature folds the events of its window. Like SQL, every function but
/// `count` without a column skips null values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Events (or non-null values of `column`); 0 when there are none.
    Count,
    /// 0 when there are no values.
    Sum,
    Avg,
    Min,
    Max,
    /// Sample standard deviation (n - 1); null below two values.
    Stddev,
    /// Distinct non-null values; 0 when there are none.
    CountDistinct,
    /// The value of the latest event (by event time, then created time) whose value is not null.
    Last,
    /// Time since the latest event, in `unit`s (a day unless given): whole units (floored)
    /// for `int64`, fractional for `float64`.
    Recency,
    /// Time since the earliest event, in `unit`s like `recency` (tenure, customer age).
    Age,
}

impl Aggregation {
    pub const ALL: [Aggregation; 10] = [
        Aggregation::Count,
        Aggregation::Sum,
        Aggregation::Avg,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Stddev,
        Aggregation::CountDistinct,
        Aggregation::Last,
        Aggregation::Recency,
        Aggregation::Age,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Count => "count",
            Aggregation::Sum => "sum",
            Aggregation::Avg => "avg",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Stddev => "stddev",
            Aggregation::CountDistinct => "count_distinct",
            Aggregation::Last => "last",
            Aggregation::Recency => "recency",
            Aggregation::Age => "age",
        }
    }

    /// Whether the function reads a column (the others count or time events).
    pub fn reads_column(self) -> bool {
        !matches!(
            self,
            Aggregation::Count | Aggregation::Recency | Aggregation::Age
        )
    }

    /// The feature types the function can produce.
    pub fn allowed_types(self) -> &'static [FeatureType] {
        use FeatureType::*;
        match self {
            Aggregation::Count | Aggregation::CountDistinct => &[Int64],
            Aggregation::Sum => &[Int64, Float64],
            Aggregation::Avg | Aggregation::Stddev => &[Float64],
            Aggregation::Recency | Aggregation::Age => &[Int64, Float64],
            Aggregation::Min | Aggregation::Max => &[Int64, Float64, String, Timestamp],
            Aggregation::Last => &[Int64, Float64, String, Bool, Timestamp, ListFloat64],
        }
    }
}

impl FeatureDef {
    /// A feature read from the source column of its own name, with nothing else declared:
    /// the starting point code builds definitions from (tests, benchmarks, generators).
    pub fn new(name: &str, ty: FeatureType) -> Self {
        Self {
            name: name.into(),
            ty,
            column: None,
            transform: None,
            output: None,
            sql: None,
            aggregation: None,
            window_seconds: None,
            unit_seconds: None,
            checks: Vec::new(),
            mask: None,
            description: String::new(),
            owner: String::new(),
            tags: Vec::new(),
        }
    }

    /// Personal data: tagged `pii`, or given a mask.
    pub fn is_pii(&self) -> bool {
        self.mask.is_some() || self.tags.iter().any(|t| t == PII_TAG)
    }

    /// How it is masked for callers without `read_pii`; None when it is not PII.
    pub fn effective_mask(&self) -> Option<fstore_access::Mask> {
        self.mask
            .or_else(|| self.is_pii().then_some(fstore_access::Mask::Redact))
    }

    pub fn column(&self) -> &str {
        self.column.as_deref().unwrap_or(&self.name)
    }

    /// The transform output this feature takes.
    pub fn output(&self) -> &str {
        self.output.as_deref().unwrap_or(&self.name)
    }

    /// Read from the source (directly or aggregated) rather than computed by a transform or
    /// SQL expression.
    pub fn is_stored(&self) -> bool {
        self.transform.is_none() && self.sql.is_none()
    }

    /// The column an aggregation reads: `column` when given, else none for functions that
    /// count or time events, else the feature's own name.
    pub fn aggregated_column(&self) -> Option<&str> {
        match self.aggregation {
            Some(a) if a.reads_column() => Some(self.column()),
            Some(_) => self.column.as_deref(),
            None => None,
        }
    }
}

/// A WebAssembly component implementing the `fstore:transform` world (see `wit/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    pub name: String,
    /// Where the `.wasm` comes from: a local path or an object-store URL.
    pub component: String,
    /// Passed to the component's `configure` (cut points, thresholds...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Per-call deadline in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Fuel per call (roughly, WebAssembly instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Filled in at apply, from the component itself: the version a view pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedTransform>,
}

/// What registration learned from a component: its content address and declared signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvedTransform {
    /// Lowercase hex sha256 of the `.wasm` bytes.
    pub sha256: String,
    pub size_bytes: u64,
    pub inputs: Vec<Field<FeatureType>>,
    pub outputs: Vec<Field<FeatureType>>,
}

impl Transform {
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
            .unwrap_or(fstore_snapshot::DEFAULT_TIMEOUT_MS)
    }

    pub fn fuel(&self) -> u64 {
        self.fuel.unwrap_or(fstore_snapshot::DEFAULT_FUEL)
    }
}

/// Fields a caller passes with a lookup (cart value, channel...), for on-demand views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSource {
    pub name: String,
    pub fields: Vec<Field<FeatureType>>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Features computed per request, at the edge, from other views' features and request fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandView {
    pub name: String,
    /// Feature views whose features it reads; all must have the same entities.
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_source: Option<String>,
    /// Each computed by a transform or a SQL expression.
    pub features: Vec<FeatureDef>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Filled in at apply: the components it runs, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<TransformStep>,
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
    /// When the control plane's scheduler materializes it; None: the scheduler does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// How many bad source rows a run may quarantine and still publish; None: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rejected: Option<crate::RejectLimit>,
    /// Quality rules on the whole snapshot (row count, freshness, duplicate keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::Check>,
    /// The drift test of its features against a baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::Drift>,
    /// Split each published snapshot into this many shards by the hash of the entity key,
    /// so edges can hold part of the view (`fstore serve edge --shards`). None: not split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Filled in at apply: the transforms that compute its derived features, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<TransformStep>,
}

impl FeatureView {
    /// Whether the view aggregates its source's events rather than reading one row per entity.
    pub fn is_aggregate(&self) -> bool {
        self.features.iter().any(|f| f.aggregation.is_some())
    }

    /// How far back before `t` an evaluation as of `t` reads events: the longest window, or
    /// None when some aggregation reads all history.
    pub fn lookback_seconds(&self) -> Option<u64> {
        let mut max = 0;
        for f in self.features.iter().filter(|f| f.aggregation.is_some()) {
            max = max.max(f.window_seconds?);
        }
        Some(max)
    }
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
    pub request_sources: Vec<RequestSource>,
    #[serde(default)]
    pub transforms: Vec<Transform>,
    #[serde(default)]
    pub feature_views: Vec<FeatureView>,
    #[serde(default)]
    pub on_demand_views: Vec<OnDemandView>,
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

    pub fn transform(&self, name: &str) -> Option<&Transform> {
        self.transforms.iter().find(|t| t.name == name)
    }

    pub fn request_source(&self, name: &str) -> Option<&RequestSource> {
        self.request_sources.iter().find(|r| r.name == name)
    }

    pub fn on_demand_view(&self, name: &str) -> Option<&OnDemandView> {
        self.on_demand_views.iter().find(|v| v.name == name)
    }

    /// The features of a feature view or an on-demand view.
    pub fn features_of(&self, view: &str) -> Option<&[FeatureDef]> {
        self.view(view)
            .map(|v| v.features.as_slice())
            .or_else(|| self.on_demand_view(view).map(|v| v.features.as_slice()))
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
        self.request_sources.sort_by(|a, b| a.name.cmp(&b.name));
        self.transforms.sort_by(|a, b| a.name.cmp(&b.name));
        self.feature_views.sort_by(|a, b| a.name.cmp(&b.name));
        self.on_demand_views.sort_by(|a, b| a.name.cmp(&b.name));
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
            "request_sources",
            self.request_sources
                .iter()
                .map(|e| e.name.as_str())
                .collect(),
        );
        check_names(
            "transforms",
            self.transforms.iter().map(|e| e.name.as_str()).collect(),
        );
        check_names(
            "feature_views",
            self.feature_views.iter().map(|e| e.name.as_str()).collect(),
        );
        check_names(
            "on_demand_views",
            self.on_demand_views
                .iter()
                .map(|e| e.name.as_str())
                .collect(),
        );
        check_names(
            "feature_services",
            self.feature_services
                .iter()
                .map(|e| e.name.as_str())
                .collect(),
        );
        // Feature references (`view:feature`) do not say which kind of view they mean, so the
        // two kinds share one namespace.
        for v in &self.on_demand_views {
            if self.view(&v.name).is_some() {
                errs.push(
                    SpecError::new(format!(
                        "`{}` names both a feature view and an on-demand view",
                        v.name
                    ))
                    .key(format!("on_demand_views.{}", v.name)),
                );
            }
        }

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
            errs.extend(s.validate_query());
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
            if let Some(n) = v.shards
                && !(2..=fstore_snapshot::MAX_SHARDS).contains(&n)
            {
                errs.push(
                    SpecError::new(format!(
                        "feature view `{}`: shards {n}: a view is split into 2 to {} shards \
                         (leave it out for none)",
                        v.name,
                        fstore_snapshot::MAX_SHARDS
                    ))
                    .key(k("shards")),
                );
            }
            let keys: Vec<String> = self.view_keys(v).into_iter().map(|f| f.name).collect();
            self.check_features(
                "feature_views",
                &v.name,
                &v.features,
                &keys,
                false,
                &mut errs,
            );
        }
        for v in &self.on_demand_views {
            let k = |field: &str| format!("on_demand_views.{}.{field}", v.name);
            if v.sources.is_empty() {
                errs.push(
                    SpecError::new(format!(
                        "on-demand view `{}` needs at least one source feature view",
                        v.name
                    ))
                    .key(k("sources")),
                );
            }
            let mut entities: Option<&Vec<String>> = None;
            for src in &v.sources {
                match self.view(src) {
                    None => errs.push(
                        SpecError::new(format!(
                            "on-demand view `{}` reads feature view `{src}`, which is not defined",
                            v.name
                        ))
                        .key(k(&format!("sources.{src}"))),
                    ),
                    Some(fv) => match entities {
                        None => entities = Some(&fv.entities),
                        Some(e) if *e != fv.entities => errs.push(
                            SpecError::new(format!(
                                "on-demand view `{}`: its sources must share their entities, but `{src}` has {:?} and `{}` has {:?}",
                                v.name, fv.entities, v.sources[0], e
                            ))
                            .key(k(&format!("sources.{src}"))),
                        ),
                        Some(_) => {}
                    },
                }
            }
            if let Some(r) = &v.request_source
                && self.request_source(r).is_none()
            {
                errs.push(
                    SpecError::new(format!(
                        "on-demand view `{}` refers to request source `{r}`, which is not defined",
                        v.name
                    ))
                    .key(k("request_source")),
                );
            }
            if v.features.is_empty() {
                errs.push(
                    SpecError::new(format!("on-demand view `{}` declares no features", v.name))
                        .key(k("features")),
                );
            }
            let keys: Vec<String> = v
                .sources
                .first()
                .and_then(|s| self.view(s))
                .map(|fv| self.view_keys(fv).into_iter().map(|f| f.name).collect())
                .unwrap_or_default();
            self.check_features(
                "on_demand_views",
                &v.name,
                &v.features,
                &keys,
                true,
                &mut errs,
            );
        }
        for t in &self.transforms {
            if t.component.trim().is_empty() {
                errs.push(
                    SpecError::new(format!("transform `{}` names no component", t.name))
                        .key(format!("transforms.{}.component", t.name)),
                );
            }
            if t.timeout_ms == Some(0) || t.fuel == Some(0) {
                errs.push(
                    SpecError::new(format!(
                        "transform `{}`: timeout_ms and fuel must be positive",
                        t.name
                    ))
                    .key(format!("transforms.{}", t.name)),
                );
            }
        }
        for r in &self.request_sources {
            let k = format!("request_sources.{}.fields", r.name);
            if r.fields.is_empty() {
                errs.push(
                    SpecError::new(format!("request source `{}` declares no fields", r.name))
                        .key(k.clone()),
                );
            }
            let mut seen = std::collections::HashSet::new();
            for f in &r.fields {
                if !valid_name(&f.name) || !seen.insert(f.name.as_str()) {
                    errs.push(
                        SpecError::new(format!(
                            "request source `{}`: field `{}` is invalid or declared twice",
                            r.name, f.name
                        ))
                        .key(k.clone()),
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
            let mut served = std::collections::HashSet::new();
            for r in &s.features {
                let key = format!("feature_services.{}.features.{r}", s.name);
                // Pins do not rename what a model receives, so `v:x` and `v@v2:x` would be
                // two columns of one name.
                if !served.insert((r.base_view(), r.feature.as_str())) {
                    errs.push(SpecError::new(format!("feature service `{}` reads `{}:{}` twice (pinned or not); a service gets each feature once", s.name, r.base_view(), r.feature)).key(key));
                    continue;
                }
                if r.view.contains('#') {
                    errs.push(SpecError::new(format!("feature service `{}`: `{r}` uses `#`, which only rollbacks use; pin a definition version with `view@vN:feature`", s.name)).key(key));
                    continue;
                }
                match r.pin() {
                    Err(m) => {
                        errs.push(
                            SpecError::new(format!("feature service `{}`: {m}", s.name)).key(key),
                        );
                        continue;
                    }
                    // Whether version N exists and has the feature is in the registry's
                    // history, so the control plane checks it when it applies.
                    Ok(Some(_)) => {
                        if self.view(r.base_view()).is_none() {
                            errs.push(SpecError::new(format!("feature service `{}` pins `{r}`, but feature view `{}` is not defined (only feature views can be pinned)", s.name, r.base_view())).key(key));
                        }
                        continue;
                    }
                    Ok(None) => {}
                }
                match self.features_of(&r.view) {
                    None => errs.push(SpecError::new(format!("feature service `{}` refers to feature view `{}`, which is not defined", s.name, r.view)).key(key)),
                    Some(fs) if !fs.iter().any(|f| f.name == r.feature) => errs.push(
                        SpecError::new(format!("feature service `{}` refers to `{r}`, but view `{}` has no feature `{}`", s.name, r.view, r.feature)).key(key),
                    ),
                    Some(_) => {}
                }
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// Checks one view's features: names, uniqueness, and how each is computed.
    fn check_features(
        &self,
        kind: &str,
        view: &str,
        features: &[FeatureDef],
        keys: &[String],
        on_demand: bool,
        errs: &mut Vec<SpecError>,
    ) {
        let mut seen = std::collections::HashSet::new();
        for f in features {
            let key = format!("{kind}.{view}.features.{}", f.name);
            let mut err = |m: String| errs.push(SpecError::new(m).key(key.clone()));
            if !valid_name(&f.name) {
                err(format!(
                    "feature name `{}` must be letters, digits, `_` or `-`",
                    f.name
                ));
            }
            if !seen.insert(f.name.as_str()) {
                err(format!(
                    "feature `{}` is declared twice in view `{view}`",
                    f.name
                ));
            }
            if keys.contains(&f.name) {
                err(format!(
                    "feature `{}` has the name of a join key of view `{view}`",
                    f.name
                ));
            }
            let ways = [f.column.is_some(), f.transform.is_some(), f.sql.is_some()];
            if ways.iter().filter(|w| **w).count() > 1 {
                err(format!(
                    "feature `{}` may have only one of `column`, `transform` and `sql`",
                    f.name
                ));
            }
            if on_demand && f.is_stored() {
                err(format!(
                    "feature `{}` of on-demand view `{view}` needs a `transform` or `sql`",
                    f.name
                ));
            }
            if let Some(t) = &f.transform
                && self.transform(t).is_none()
            {
                err(format!(
                    "feature `{}` refers to transform `{t}`, which is not defined",
                    f.name
                ));
            }
            if f.output.is_some() && f.transform.is_none() {
                err(format!(
                    "feature `{}` names an `output` but no `transform`",
                    f.name
                ));
            }
            if f.sql.as_deref().is_some_and(|q| q.trim().is_empty()) {
                err(format!("feature `{}` has an empty `sql`", f.name));
            }
            match f.aggregation {
                Some(a) if on_demand => err(format!(
                    "feature `{}` of on-demand view `{view}` cannot aggregate (`{}`); aggregate in a feature view",
                    f.name,
                    a.as_str()
                )),
                Some(a) => {
                    if f.transform.is_some() || f.sql.is_some() {
                        err(format!(
                            "feature `{}` may have only one of `aggregation`, `transform` and `sql`",
                            f.name
                        ));
                    }
                    if !a.allowed_types().contains(&f.ty) {
                        let names: Vec<&str> = a.allowed_types().iter().map(|t| t.name()).collect();
                        err(format!(
                            "feature `{}`: `{}` gives {}, not {}",
                            f.name,
                            a.as_str(),
                            names.join(" or "),
                            f.ty.name()
                        ));
                    }
                    if f.window_seconds == Some(0) || f.unit_seconds == Some(0) {
                        err(format!(
                            "feature `{}`: window and unit must be positive",
                            f.name
                        ));
                    }
                    if f.unit_seconds.is_some()
                        && !matches!(a, Aggregation::Recency | Aggregation::Age)
                    {
                        err(format!(
                            "feature `{}`: only `recency` and `age` take a `unit`",
                            f.name
                        ));
                    }
                }
                None if f.window_seconds.is_some() || f.unit_seconds.is_some() => err(format!(
                    "feature `{}` has a `window` or `unit` but no `aggregation`",
                    f.name
                )),
                None => {}
            }
        }
        // An aggregating view answers "as of t" from all events; a plain column would have no
        // single row to come from.
        if features.iter().any(|f| f.aggregation.is_some()) {
            for f in features
                .iter()
                .filter(|f| f.is_stored() && f.aggregation.is_none())
            {
                errs.push(
                    SpecError::new(format!(
                        "feature `{}` of view `{view}` reads a column directly, but the view aggregates events; use `aggregation: last`",
                        f.name
                    ))
                    .key(format!("{kind}.{view}.features.{}", f.name)),
                );
            }
        }
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
            self.request_sources
                .iter()
                .map(|o| (ObjectKind::RequestSource, o.name.clone(), j(o))),
        );
        out.extend(
            self.transforms
                .iter()
                .map(|o| (ObjectKind::Transform, o.name.clone(), j(o))),
        );
        out.extend(
            self.feature_views
                .iter()
                .map(|o| (ObjectKind::FeatureView, o.name.clone(), j(o))),
        );
        out.extend(
            self.on_demand_views
                .iter()
                .map(|o| (ObjectKind::OnDemandView, o.name.clone(), j(o))),
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
                ObjectKind::RequestSource => d
                    .request_sources
                    .push(serde_json::from_value(v).map_err(err)?),
                ObjectKind::Transform => d.transforms.push(serde_json::from_value(v).map_err(err)?),
                ObjectKind::FeatureView => d
                    .feature_views
                    .push(serde_json::from_value(v).map_err(err)?),
                ObjectKind::OnDemandView => d
                    .on_demand_views
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
