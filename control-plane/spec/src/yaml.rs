//! `features.yaml`: the declarative file users write. Parsed with position information so that
//! every error names the line and the key.

use std::collections::HashMap;

use fstore_snapshot::{FeatureRef, FeatureType, Field, KeyType};
use marked_yaml::Spanned;
use serde::Deserialize;

use crate::quality::{RawCheck, RawDrift, check_of, drift_of};
use crate::{
    Aggregation, Definitions, Entity, FeatureDef, FeatureService, FeatureView, OnDemandView,
    RequestSource, Schedule, Scope, Source, SourceFormat, SpecError, Transform, parse_duration,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    entities: Vec<RawEntity>,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    request_sources: Vec<RawRequestSource>,
    #[serde(default)]
    transforms: Vec<RawTransform>,
    #[serde(default)]
    feature_views: Vec<RawView>,
    #[serde(default)]
    on_demand_views: Vec<RawOnDemandView>,
    #[serde(default)]
    feature_services: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequestSource {
    name: Spanned<String>,
    fields: Vec<RawTypedField>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTypedField {
    name: String,
    #[serde(rename = "type")]
    ty: FeatureType,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransform {
    name: Spanned<String>,
    component: Spanned<String>,
    #[serde(default)]
    config: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    fuel: Option<u64>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnDemandView {
    name: Spanned<String>,
    sources: Vec<Spanned<String>>,
    #[serde(default)]
    request_source: Option<Spanned<String>>,
    features: Vec<RawFeature>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    #[serde(rename = "type")]
    ty: KeyType,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    name: Spanned<String>,
    join_keys: Vec<RawKey>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    path: Spanned<String>,
    #[serde(default)]
    format: Option<SourceFormat>,
    #[serde(default)]
    query: Option<Spanned<String>>,
    timestamp_field: String,
    #[serde(default)]
    created_timestamp_field: Option<String>,
    #[serde(default)]
    retention: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeature {
    name: Spanned<String>,
    #[serde(rename = "type")]
    ty: FeatureType,
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    transform: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    sql: Option<String>,
    #[serde(default)]
    aggregation: Option<Aggregation>,
    #[serde(default)]
    window: Option<Spanned<String>>,
    #[serde(default)]
    unit: Option<Spanned<String>>,
    #[serde(default)]
    checks: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    mask: Option<Spanned<fstore_access::Mask>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
}

impl RawFeature {
    /// The definition, or the error of its `window`, positioned at it.
    fn into_def(self) -> Result<FeatureDef, SpecError> {
        let duration = |what: &str, d: &Option<Spanned<String>>| match d {
            None => Ok(None),
            Some(w) => parse_duration(w).map(Some).map_err(|m| {
                with_pos(
                    SpecError::new(format!("feature `{}`: {what} {m}", &*self.name)),
                    pos(w),
                )
            }),
        };
        let window_seconds = duration("window", &self.window)?;
        let unit_seconds = duration("unit", &self.unit)?;
        let mut checks = Vec::with_capacity(self.checks.len());
        for c in &self.checks {
            let at = pos(c);
            let check = check_of(c, Scope::Feature, Some(self.ty)).map_err(|m| {
                with_pos(
                    SpecError::new(format!("feature `{}`: check {m}", &*self.name)),
                    at,
                )
            })?;
            checks.push(check);
        }
        if let Some(m) = &self.mask
            && let fstore_access::Mask::Truncate(_) = **m
            && self.ty != FeatureType::String
        {
            return Err(with_pos(
                SpecError::new(format!(
                    "feature `{}`: `mask: {{truncate: N}}` keeps the first N characters of a \
                     string, but this feature is {}; use `hash` or `redact`",
                    &*self.name, self.ty
                )),
                pos(m),
            ));
        }
        Ok(FeatureDef {
            name: self.name.to_string(),
            ty: self.ty,
            column: self.column,
            transform: self.transform,
            output: self.output,
            sql: self.sql,
            aggregation: self.aggregation,
            window_seconds,
            unit_seconds,
            checks,
            mask: self.mask.map(|m| *m),
            description: self.description,
            owner: self.owner,
            tags: self.tags,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawView {
    name: Spanned<String>,
    entities: Vec<Spanned<String>>,
    source: Spanned<String>,
    #[serde(default)]
    ttl: Option<Spanned<String>>,
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    max_rejected: Option<Spanned<String>>,
    #[serde(default)]
    shards: Option<Spanned<u32>>,
    #[serde(default)]
    checks: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    drift: Option<Spanned<RawDrift>>,
    features: Vec<RawFeature>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    features: Vec<Spanned<String>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
}

type Spans = HashMap<String, (usize, usize)>;

fn pos<T>(s: &Spanned<T>) -> (usize, usize) {
    s.span()
        .start()
        .map(|m| (m.line(), m.column()))
        .unwrap_or((0, 0))
}

fn with_pos(e: SpecError, p: (usize, usize)) -> SpecError {
    if p.0 > 0 { e.at(p.0, p.1) } else { e }
}

/// The definitions of a view's features; a feature whose own keys are malformed is reported
/// and left out.
fn features_of(raw: Vec<RawFeature>, errs: &mut Vec<SpecError>) -> Vec<FeatureDef> {
    raw.into_iter()
        .filter_map(|f| f.into_def().map_err(|e| errs.push(e)).ok())
        .collect()
}

/// Parses and validates a `features.yaml`. `base_dir`, when given, is where relative source
/// paths are resolved from (the directory holding the file). Returns every problem found, each
/// with its line when the problem has one.
pub fn parse_features_yaml(
    text: &str,
    base_dir: Option<&std::path::Path>,
) -> Result<Definitions, Vec<SpecError>> {
    let raw: RawFile = marked_yaml::from_yaml(0, text).map_err(|e| vec![yaml_error(e)])?;
    let _ = raw.project;
    let mut spans: Spans = HashMap::new();
    let mut errs = Vec::new();
    let mut defs = Definitions::default();

    for e in raw.entities {
        spans.insert(format!("entities.{}", *e.name), pos(&e.name));
        spans.insert(format!("entities.{}.name", *e.name), pos(&e.name));
        spans.insert(format!("entities.{}.join_keys", *e.name), pos(&e.name));
        defs.entities.push(Entity {
            name: e.name.to_string(),
            join_keys: e
                .join_keys
                .into_iter()
                .map(|k| Field {
                    name: k.name,
                    ty: k.ty,
                })
                .collect(),
            description: e.description,
            owner: e.owner,
            tags: e.tags,
        });
    }
    for s in raw.sources {
        spans.insert(format!("sources.{}", *s.name), pos(&s.name));
        spans.insert(format!("sources.{}.name", *s.name), pos(&s.name));
        spans.insert(format!("sources.{}.path", *s.name), pos(&s.path));
        spans.insert(
            format!("sources.{}.query", *s.name),
            s.query.as_ref().map_or(pos(&s.name), pos),
        );
        let format = match s.format {
            Some(f) => f,
            None => match infer_format(&s.path) {
                Some(f) => f,
                None => {
                    errs.push(with_pos(
                        SpecError::new(format!(
                            "source `{}`: cannot tell the format of `{}`; add `format:` with parquet, csv, jsonl or postgres",
                            *s.name, *s.path
                        ))
                        .key(format!("sources.{}.format", *s.name)),
                        pos(&s.path),
                    ));
                    SourceFormat::Parquet
                }
            },
        };
        let retention_seconds = match &s.retention {
            None => None,
            Some(r) => match parse_duration(r) {
                Ok(secs) if secs > 100 * 366 * 86_400 => {
                    errs.push(with_pos(
                        SpecError::new(format!(
                            "source `{}`: retention of over a hundred years; leave it out to keep everything",
                            *s.name
                        ))
                        .key(format!("sources.{}.retention", *s.name)),
                        pos(r),
                    ));
                    None
                }
                Ok(secs) if secs > 0 => Some(secs),
                Ok(_) => {
                    errs.push(with_pos(
                        SpecError::new(format!(
                            "source `{}`: retention must be longer than zero",
                            *s.name
                        ))
                        .key(format!("sources.{}.retention", *s.name)),
                        pos(r),
                    ));
                    None
                }
                Err(m) => {
                    errs.push(with_pos(
                        SpecError::new(format!("source `{}`: retention {m}", *s.name))
                            .key(format!("sources.{}.retention", *s.name)),
                        pos(r),
                    ));
                    None
                }
            },
        };
        if format == SourceFormat::Postgres
            && let Some(r) = &s.retention
        {
            errs.push(with_pos(
                SpecError::new(format!(
                    "source `{}`: retention deletes expired files; a PostgreSQL source keeps its rows in the database, where its own retention applies",
                    *s.name
                ))
                .key(format!("sources.{}.retention", *s.name)),
                pos(r),
            ));
        }
        defs.sources.push(Source {
            name: s.name.to_string(),
            path: resolve_path(&s.path, base_dir),
            format,
            query: s.query.map(|q| q.to_string()),
            timestamp_field: s.timestamp_field,
            created_timestamp_field: s.created_timestamp_field,
            retention_seconds,
            description: s.description,
            owner: s.owner,
            tags: s.tags,
        });
    }
    for v in raw.feature_views {
        let name = v.name.to_string();
        spans.insert(format!("feature_views.{name}"), pos(&v.name));
        spans.insert(format!("feature_views.{name}.name"), pos(&v.name));
        spans.insert(format!("feature_views.{name}.source"), pos(&v.source));
        spans.insert(format!("feature_views.{name}.entities"), pos(&v.name));
        spans.insert(format!("feature_views.{name}.features"), pos(&v.name));
        for e in &v.entities {
            spans.insert(format!("feature_views.{name}.entities.{}", **e), pos(e));
        }
        for f in &v.features {
            spans.insert(
                format!("feature_views.{name}.features.{}", *f.name),
                pos(&f.name),
            );
        }
        let ttl_seconds = match &v.ttl {
            None => 0,
            Some(t) => parse_duration(t).unwrap_or_else(|m| {
                errs.push(with_pos(
                    SpecError::new(format!("feature view `{name}`: ttl {m}"))
                        .key(format!("feature_views.{name}.ttl")),
                    pos(t),
                ));
                0
            }),
        };
        let schedule = v.schedule.as_ref().and_then(|s| {
            Schedule::parse(s)
                .map_err(|m| {
                    errs.push(with_pos(
                        SpecError::new(format!("feature view `{name}`: schedule {m}"))
                            .key(format!("feature_views.{name}.schedule")),
                        pos(s),
                    ))
                })
                .ok()
        });
        let max_rejected = v.max_rejected.as_ref().and_then(|s| {
            crate::RejectLimit::parse(s)
                .map_err(|m| {
                    errs.push(with_pos(
                        SpecError::new(format!("feature view `{name}`: max_rejected {m}"))
                            .key(format!("feature_views.{name}.max_rejected")),
                        pos(s),
                    ))
                })
                .ok()
        });
        // The count's range is checked by `Definitions::validate`, for REST as well as YAML.
        let shards = v.shards.as_ref().map(|n| {
            spans.insert(format!("feature_views.{name}.shards"), pos(n));
            **n
        });
        let mut checks = Vec::new();
        for c in &v.checks {
            let at = pos(c);
            match check_of(c, Scope::View, None) {
                Ok(c) => checks.push(c),
                Err(m) => errs.push(with_pos(
                    SpecError::new(format!("feature view `{name}`: check {m}"))
                        .key(format!("feature_views.{name}.checks")),
                    at,
                )),
            }
        }
        let drift = v.drift.as_ref().and_then(|d| {
            let at = pos(d);
            let names: Vec<&str> = v.features.iter().map(|f| f.name.as_str()).collect();
            drift_of(d, &names)
                .map(|mut d| {
                    // A training set is found like a source file: relative to features.yaml.
                    if let crate::Baseline::TrainingSet(path) = &d.baseline {
                        d.baseline = crate::Baseline::TrainingSet(resolve_path(path, base_dir));
                    }
                    d
                })
                .map_err(|m| {
                    errs.push(with_pos(
                        SpecError::new(format!("feature view `{name}`: drift {m}"))
                            .key(format!("feature_views.{name}.drift")),
                        at,
                    ))
                })
                .ok()
        });
        defs.feature_views.push(FeatureView {
            name,
            entities: v.entities.iter().map(|e| e.to_string()).collect(),
            source: v.source.to_string(),
            ttl_seconds,
            features: features_of(v.features, &mut errs),
            schedule,
            max_rejected,
            checks,
            drift,
            shards,
            description: v.description,
            owner: v.owner,
            tags: v.tags,
            steps: Vec::new(),
        });
    }
    for r in raw.request_sources {
        let name = r.name.to_string();
        for k in ["", ".name", ".fields"] {
            spans.insert(format!("request_sources.{name}{k}"), pos(&r.name));
        }
        defs.request_sources.push(RequestSource {
            name,
            fields: r
                .fields
                .into_iter()
                .map(|f| Field {
                    name: f.name,
                    ty: f.ty,
                })
                .collect(),
            description: r.description,
            owner: r.owner,
            tags: r.tags,
        });
    }
    for t in raw.transforms {
        let name = t.name.to_string();
        for k in ["", ".name"] {
            spans.insert(format!("transforms.{name}{k}"), pos(&t.name));
        }
        spans.insert(format!("transforms.{name}.component"), pos(&t.component));
        defs.transforms.push(Transform {
            name,
            component: resolve_path(&t.component, base_dir),
            config: t.config,
            timeout_ms: t.timeout_ms,
            fuel: t.fuel,
            description: t.description,
            owner: t.owner,
            tags: t.tags,
            resolved: None,
        });
    }
    for v in raw.on_demand_views {
        let name = v.name.to_string();
        for k in ["", ".name", ".sources", ".features"] {
            spans.insert(format!("on_demand_views.{name}{k}"), pos(&v.name));
        }
        for src in &v.sources {
            spans.insert(
                format!("on_demand_views.{name}.sources.{}", **src),
                pos(src),
            );
        }
        if let Some(r) = &v.request_source {
            spans.insert(format!("on_demand_views.{name}.request_source"), pos(r));
        }
        for f in &v.features {
            spans.insert(
                format!("on_demand_views.{name}.features.{}", *f.name),
                pos(&f.name),
            );
        }
        defs.on_demand_views.push(OnDemandView {
            name,
            sources: v.sources.iter().map(|s| s.to_string()).collect(),
            request_source: v.request_source.map(|r| r.to_string()),
            features: features_of(v.features, &mut errs),
            description: v.description,
            owner: v.owner,
            tags: v.tags,
            steps: Vec::new(),
        });
    }
    for s in raw.feature_services {
        let name = s.name.to_string();
        spans.insert(format!("feature_services.{name}"), pos(&s.name));
        spans.insert(format!("feature_services.{name}.name"), pos(&s.name));
        spans.insert(format!("feature_services.{name}.features"), pos(&s.name));
        let mut refs = Vec::new();
        for r in &s.features {
            match FeatureRef::parse(r) {
                Some(fr) => {
                    spans.insert(format!("feature_services.{name}.features.{fr}"), pos(r));
                    refs.push(fr);
                }
                None => errs.push(with_pos(
                    SpecError::new(format!(
                        "feature service `{name}`: `{}` is not a `view:feature` reference",
                        **r
                    ))
                    .key(format!("feature_services.{name}.features")),
                    pos(r),
                )),
            }
        }
        defs.feature_services.push(FeatureService {
            name,
            features: refs,
            description: s.description,
            owner: s.owner,
            tags: s.tags,
        });
    }
    if let Err(v) = defs.validate() {
        errs.extend(v.into_iter().map(|e| {
            let p = e
                .key
                .as_ref()
                .and_then(|k| spans.get(k))
                .copied()
                .unwrap_or((0, 0));
            with_pos(e, p)
        }));
    }
    if !errs.is_empty() {
        errs.sort_by_key(|e| e.location.clone());
        return Err(errs);
    }
    defs.sort();
    Ok(defs)
}

fn yaml_error(e: marked_yaml::FromYamlError) -> SpecError {
    match e {
        marked_yaml::FromYamlError::ParseYaml(le) => {
            let msg = le.to_string();
            SpecError::new(format!("not valid YAML: {msg}"))
        }
        marked_yaml::FromYamlError::FromNode(ne) => {
            let key = ne.path().map(str::to_string);
            let mark = ne.start_mark();
            let inner = ne.into_inner();
            let mut err = SpecError::new(match &key {
                Some(k) => format!("{k}: {inner}"),
                None => inner.to_string(),
            });
            if let Some(k) = key {
                err = err.key(k);
            }
            match mark {
                Some(m) => err.at(m.line(), m.column()),
                None => err,
            }
        }
    }
}

fn infer_format(path: &str) -> Option<SourceFormat> {
    let p = path.trim_end_matches('/').to_ascii_lowercase();
    if p.starts_with("postgres://") || p.starts_with("postgresql://") {
        Some(SourceFormat::Postgres)
    } else if p.ends_with(".parquet") || p.ends_with(".pq") {
        Some(SourceFormat::Parquet)
    } else if p.ends_with(".csv") {
        Some(SourceFormat::Csv)
    } else if p.ends_with(".jsonl") || p.ends_with(".ndjson") || p.ends_with(".json") {
        Some(SourceFormat::Jsonl)
    } else {
        None
    }
}

fn resolve_path(path: &str, base: Option<&std::path::Path>) -> String {
    let is_url = path.contains("://");
    match base {
        Some(base) if !is_url && !std::path::Path::new(path).is_absolute() => {
            let joined = base.join(path);
            let mut s = joined.to_string_lossy().into_owned();
            if path.ends_with('/') && !s.ends_with('/') {
                s.push('/');
            }
            s
        }
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: stats
    path: data/stats.parquet
    timestamp_field: event_timestamp
feature_views:
  - name: customer_rfm
    entities: [customer]
    source: stats
    ttl: 30d
    features:
      - {name: recency_days, type: int64}
      - {name: embedding, type: "list<float64>"}
feature_services:
  - name: segmentation_v1
    features: [customer_rfm:recency_days]
"#;

    #[test]
    fn parses_a_good_file() {
        let d = parse_features_yaml(GOOD, Some(std::path::Path::new("/repo"))).expect("valid");
        assert_eq!(d.feature_views[0].ttl_seconds, 30 * 86_400);
        assert_eq!(d.sources[0].path, "/repo/data/stats.parquet");
        assert_eq!(d.sources[0].format, SourceFormat::Parquet);
        assert_eq!(d.feature_views[0].features[1].ty, FeatureType::ListFloat64);
    }

    #[test]
    fn masks_make_features_pii_and_fit_their_type() {
        let text = GOOD.replace(
            "      - {name: recency_days, type: int64}\n",
            "      - {name: recency_days, type: int64, mask: hash}\n      \
             - {name: email, type: string, mask: {truncate: 3}}\n      \
             - {name: phone, type: string, tags: [pii]}\n",
        );
        let d = parse_features_yaml(&text, None).expect("valid");
        let f = &d.feature_views[0].features;
        use fstore_access::Mask;
        assert_eq!(f[0].effective_mask(), Some(Mask::Hash));
        assert_eq!(f[1].effective_mask(), Some(Mask::Truncate(3)));
        assert_eq!(
            f[2].effective_mask(),
            Some(Mask::Redact),
            "pii without a mask"
        );
        assert_eq!(f[3].effective_mask(), None);
        assert!(f[2].is_pii() && !f[3].is_pii());
        let e = first_err(&text.replace("mask: hash", "mask: {truncate: 2}"));
        assert!(e.message.contains("truncate"), "{e}");
        assert!(e.location.is_some(), "{e}");
        let e = first_err(&text.replace("mask: hash", "mask: scramble"));
        assert!(e.message.contains("scramble"), "{e}");
    }

    #[test]
    fn views_may_be_split_into_shards() {
        let text = GOOD.replace("    ttl: 30d\n", "    ttl: 30d\n    shards: 4\n");
        let d = parse_features_yaml(&text, None).expect("valid");
        assert_eq!(d.feature_views[0].shards, Some(4));
        assert_eq!(
            parse_features_yaml(GOOD, None)
                .expect("valid")
                .feature_views[0]
                .shards,
            None
        );
        // Definitions that did not come from YAML (the REST API) are held to the same range.
        let mut defs = d.clone();
        for n in [0, 1, 1025] {
            defs.feature_views[0].shards = Some(n);
            let errs = defs.validate().expect_err("out of range");
            assert!(
                errs.iter()
                    .any(|e| e.key.as_deref() == Some("feature_views.customer_rfm.shards")),
                "{n}: {errs:?}"
            );
        }
        for bad in ["shards: 1", "shards: 5000", "shards: many"] {
            let e = first_err(&text.replace("shards: 4", bad));
            assert!(e.location.is_some(), "{bad}: {e}");
            if bad != "shards: many" {
                assert!(e.message.contains("2 to 1024"), "{bad}: {e}");
            }
        }
    }

    #[test]
    fn sources_take_a_retention() {
        let text = GOOD.replace(
            "    timestamp_field: event_timestamp\n",
            "    timestamp_field: event_timestamp\n    retention: 400d\n",
        );
        let d = parse_features_yaml(&text, None).expect("valid");
        assert_eq!(d.sources[0].retention_seconds, Some(400 * 86_400));
        assert_eq!(
            parse_features_yaml(GOOD, None).expect("valid").sources[0].retention_seconds,
            None
        );
        for (bad, says) in [("0d", "longer than zero"), ("soon", "retention")] {
            let e = first_err(&text.replace("400d", bad));
            assert!(e.message.contains(says), "{bad}: {e}");
            assert_eq!(e.key.as_deref(), Some("sources.stats.retention"), "{e}");
        }
    }

    fn first_err(text: &str) -> SpecError {
        parse_features_yaml(text, None)
            .expect_err("must fail")
            .remove(0)
    }

    #[test]
    fn services_pin_feature_view_versions() {
        let with = |refs: &str| {
            GOOD.replace(
                "features: [customer_rfm:recency_days]",
                &format!("features: [{refs}]"),
            )
        };
        let d = parse_features_yaml(&with("customer_rfm@v3:recency_days"), None).expect("pin");
        let r = &d.feature_services[0].features[0];
        assert_eq!((r.base_view(), r.pin()), ("customer_rfm", Ok(Some(3))));
        for (refs, says) in [
            ("customer_rfm@v0:recency_days", "view@vN"),
            ("customer_rfm@3:recency_days", "view@vN"),
            ("customer_rfm@vx:recency_days", "view@vN"),
            ("customer_rfm#4:recency_days", "only rollbacks"),
            ("other@v1:recency_days", "not defined"),
            (
                "customer_rfm:recency_days, customer_rfm@v2:recency_days",
                "twice",
            ),
        ] {
            let e = first_err(&with(refs));
            assert!(e.message.contains(says), "{refs}: {e}");
        }
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = first_err(&GOOD.replace("    ttl: 30d", "    ttl: 30d\n    tll: 3d"));
        assert!(e.message.contains("tll"), "{e}");
        assert_eq!(e.location.as_deref(), Some("line 14, column 5"), "{e}");
    }

    #[test]
    fn wrong_type_names_line() {
        let e = first_err(&GOOD.replace("type: int64}]", "type: int65}]"));
        assert!(e.message.contains("int65"), "{e}");
        assert!(
            e.location
                .as_deref()
                .is_some_and(|l| l.starts_with("line 4")),
            "{e}"
        );
    }

    #[test]
    fn dangling_references_name_line_and_key() {
        let e = first_err(&GOOD.replace("source: stats", "source: orders"));
        assert_eq!(e.key.as_deref(), Some("feature_views.customer_rfm.source"));
        assert!(
            e.location
                .as_deref()
                .is_some_and(|l| l.starts_with("line 12,")),
            "{e}"
        );
        let e = first_err(&GOOD.replace("[customer_rfm:recency_days]", "[customer_rfm:nope]"));
        assert!(e.message.contains("no feature `nope`"), "{e}");
        assert!(
            e.location
                .as_deref()
                .is_some_and(|l| l.starts_with("line 19,")),
            "{e}"
        );
        let e = first_err(&GOOD.replace("ttl: 30d", "ttl: 30 days"));
        assert!(e.message.contains("ttl"), "{e}");
    }

    #[test]
    fn views_take_a_schedule() {
        let with =
            |s: &str| GOOD.replace("    ttl: 30d", &format!("    ttl: 30d\n    schedule: {s}"));
        let schedule = |text: &str| {
            let d = parse_features_yaml(text, None).unwrap_or_else(|e| panic!("{e:?}"));
            d.feature_views[0].schedule.clone()
        };
        assert_eq!(schedule(GOOD), None);
        assert_eq!(
            schedule(&with("15m")),
            Some(Schedule::Every { seconds: 900 })
        );
        for cron in ["\"0 */6 * * *\"", "30 9 * * mon-fri"] {
            let s = schedule(&with(cron)).map(|s| s.to_string());
            assert_eq!(s.as_deref(), Some(cron.trim_matches('"')));
        }

        // Stored as its text, and only when there is one.
        let d = parse_features_yaml(&with("15m"), None).expect("valid");
        let json = serde_json::to_value(&d.feature_views[0]).expect("json");
        assert_eq!(json["schedule"], "15m");
        let back =
            Definitions::from_objects(d.objects().into_iter().map(|(kind, _, json)| (kind, json)))
                .expect("readable");
        assert_eq!(back, d);
        let d = parse_features_yaml(GOOD, None).expect("valid");
        let json = serde_json::to_string(&d.feature_views[0]).expect("json");
        assert!(!json.contains("schedule"), "{json}");

        let e = first_err(&with("\"0 25 * * *\""));
        assert_eq!(
            e.message,
            "feature view `customer_rfm`: schedule `0 25 * * *`: hour 25 is outside 0-23"
        );
        assert_eq!(
            e.key.as_deref(),
            Some("feature_views.customer_rfm.schedule")
        );
        assert_eq!(e.location.as_deref(), Some("line 14, column 15"), "{e}");
        let e = first_err(&with("0s"));
        assert!(e.message.contains("at least 1 second"), "{e}");
    }

    #[test]
    fn broken_yaml_is_an_error() {
        assert!(parse_features_yaml("entities: [", None).is_err());
        assert!(parse_features_yaml("- a\n- b\n", None).is_err());
    }

    #[test]
    fn source_formats_are_inferred_or_declared() {
        for (path, want) in [
            ("data/orders.jsonl", SourceFormat::Jsonl),
            ("data/orders.ndjson", SourceFormat::Jsonl),
            ("s3://lake/orders/*.json", SourceFormat::Jsonl),
            ("data/date=*/part-*.csv", SourceFormat::Csv),
            ("gs://lake/**/*.parquet", SourceFormat::Parquet),
        ] {
            let d = parse_features_yaml(&GOOD.replace("data/stats.parquet", path), None)
                .unwrap_or_else(|e| panic!("{path}: {e:?}"));
            assert_eq!(d.sources[0].format, want, "{path}");
            assert_eq!(d.sources[0].query, None);
        }
        let e = first_err(&GOOD.replace("data/stats.parquet", "s3://lake/orders/"));
        assert!(e.message.contains("jsonl or postgres"), "{e}");
        let d = parse_features_yaml(
            &GOOD.replace(
                "path: data/stats.parquet",
                "path: s3://lake/orders/\n    format: jsonl",
            ),
            None,
        )
        .expect("declared");
        assert_eq!(d.sources[0].format, SourceFormat::Jsonl);
    }

    #[test]
    fn postgres_sources_need_a_query_and_files_take_none() {
        let pg = GOOD.replace(
            "path: data/stats.parquet",
            "path: postgres://app:${PGPASSWORD}@db/shop\n    query: SELECT * FROM orders",
        );
        let d = parse_features_yaml(&pg, Some(std::path::Path::new("/repo"))).expect("valid");
        assert_eq!(d.sources[0].format, SourceFormat::Postgres);
        assert_eq!(d.sources[0].query.as_deref(), Some("SELECT * FROM orders"));
        // URLs are not resolved against the file's directory, and `${VAR}` stays for later.
        assert_eq!(d.sources[0].path, "postgres://app:${PGPASSWORD}@db/shop");

        let e = first_err(&GOOD.replace(
            "path: data/stats.parquet",
            "path: postgres://app:hunter2@db/shop",
        ));
        assert_eq!(e.key.as_deref(), Some("sources.stats.query"), "{e}");
        assert!(e.message.contains("no `query`"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");

        let e = first_err(&GOOD.replace(
            "path: data/stats.parquet",
            "path: data/stats.parquet\n    query: SELECT 1",
        ));
        assert_eq!(e.key.as_deref(), Some("sources.stats.query"), "{e}");
        assert!(
            e.location
                .as_deref()
                .is_some_and(|l| l.starts_with("line 8,")),
            "{e}"
        );

        let e = first_err(&GOOD.replace(
            "path: data/stats.parquet",
            "path: data/orders.db\n    format: postgres\n    query: SELECT 1",
        ));
        assert_eq!(e.key.as_deref(), Some("sources.stats.path"), "{e}");

        // Stored definitions without a query keep their JSON unchanged.
        let d = parse_features_yaml(GOOD, None).expect("valid");
        let json = serde_json::to_string(&d.sources[0]).expect("json");
        assert!(!json.contains("query"), "{json}");
    }

    const CHECKED: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: stats
    path: data/stats.parquet
    timestamp_field: event_timestamp
feature_views:
  - name: customer_rfm
    entities: [customer]
    source: stats
    checks:
      - min_rows: 1000
      - max_row_change: 20%
        severity: warn
      - freshness: 2d
      - unique_keys: true
    drift:
      baseline: previous
      psi: 0.2
      ks: 0.1
    features:
      - name: monetary
        type: float64
        checks:
          - not_null: true
          - range: {min: 0}
          - max_mean_change: "0.5"
            severity: warn
      - name: segment
        type: string
        checks:
          - allowed: [gold, silver, bronze]
          - regex: "^[a-z]+$"
          - max_null_rate: 1%
"#;

    #[test]
    fn parses_checks_and_drift() {
        use crate::{Baseline, Rule, Severity};
        let d = parse_features_yaml(CHECKED, Some(std::path::Path::new("/repo"))).expect("valid");
        let v = &d.feature_views[0];
        let rules: Vec<&Rule> = v.checks.iter().map(|c| &c.rule).collect();
        assert_eq!(
            rules,
            [
                &Rule::MinRows { rows: 1000 },
                &Rule::MaxRowChange { ratio: 0.2 },
                &Rule::Freshness { seconds: 172_800 },
                &Rule::UniqueKeys
            ]
        );
        assert_eq!(
            v.checks[0].severity,
            Severity::Error,
            "error is the default"
        );
        assert_eq!(v.checks[1].severity, Severity::Warn);
        let m = &v.features[0].checks;
        assert_eq!(
            m[1].rule,
            Rule::Range {
                min: Some(0.0),
                max: None
            }
        );
        assert_eq!(m[2].rule, Rule::MaxMeanChange { ratio: 0.5 });
        assert_eq!(
            v.features[1].checks[2].rule,
            Rule::MaxNullRate { ratio: 0.01 }
        );
        let drift = v.drift.as_ref().expect("drift");
        assert_eq!(drift.baseline, Baseline::Previous);
        assert_eq!(
            (drift.psi, drift.ks, drift.js),
            (Some(0.2), Some(0.1), None)
        );
        assert_eq!(drift.severity, Severity::Warn, "drift alerts by default");

        let with_training = CHECKED.replace("baseline: previous", "training_set: train.csv");
        let d = parse_features_yaml(&with_training, Some(std::path::Path::new("/repo")))
            .expect("valid");
        assert_eq!(
            d.feature_views[0].drift.as_ref().expect("drift").baseline,
            Baseline::TrainingSet("/repo/train.csv".into())
        );
        // Definitions round-trip through the registry's JSON.
        let json = serde_json::to_string(&d).expect("json");
        let back: Definitions = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, d);
    }

    #[test]
    fn wrong_checks_are_refused_where_written() {
        for (from, to, says, key) in [
            (
                "      - min_rows: 1000",
                "      - min_rows: 1000\n        unique_keys: true",
                "more than one rule",
                "feature_views.customer_rfm.checks",
            ),
            (
                "          - not_null: true",
                "          - min_rows: 3",
                "rule of the whole view",
                "",
            ),
            (
                "      - unique_keys: true",
                "      - unique: true",
                "rule of one feature",
                "feature_views.customer_rfm.checks",
            ),
            (
                "          - max_null_rate: 1%",
                "          - range: {min: 0}",
                "does not apply to a string",
                "",
            ),
            (
                "          - regex: \"^[a-z]+$\"",
                "          - regex: \"([a-z\"",
                "does not compile",
                "",
            ),
            (
                "          - range: {min: 0}",
                "          - regex: \"x\"",
                "does not apply to a float64",
                "",
            ),
            (
                "          - range: {min: 0}",
                "          - range: {min: 5, max: 1}",
                "above max",
                "",
            ),
            (
                "          - max_null_rate: 1%",
                "          - max_null_rate: lots",
                "not a ratio",
                "",
            ),
            (
                "          - allowed: [gold, silver, bronze]",
                "          - allowed: []",
                "no values",
                "",
            ),
            (
                "          - not_null: true",
                "          - not_nul: true",
                "not_nul",
                "",
            ),
            (
                "      ks: 0.1",
                "      ks: -1",
                "zero or more",
                "feature_views.customer_rfm.drift",
            ),
            (
                "      psi: 0.2\n      ks: 0.1",
                "      severity: warn",
                "no threshold",
                "feature_views.customer_rfm.drift",
            ),
            (
                "      baseline: previous",
                "      baseline: latest",
                "neither `previous`",
                "",
            ),
            (
                "      baseline: previous",
                "      psi_max: 1",
                "psi_max",
                "",
            ),
        ] {
            assert!(CHECKED.contains(from), "{from}");
            let text = CHECKED.replace(from, to);
            let e = first_err(&text);
            assert!(e.message.contains(says), "{to}: {e}");
            assert!(e.location.is_some(), "{to}: {e} has no position");
            if !key.is_empty() {
                assert_eq!(e.key.as_deref(), Some(key), "{to}: {e}");
            }
        }
    }
}
