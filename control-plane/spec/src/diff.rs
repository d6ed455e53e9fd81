//! What changed between two versions of one definition, and whether the change can break its
//! consumers (models reading served features, callers sending request fields, training sets).
//!
//! Specs are compared as the JSON the registry stores, field by field. The rules:
//!
//! - Metadata (`description`, `owner`, `tags`, on the object or on one feature) is compatible.
//! - Feature views and on-demand views: features are matched by name, so reordering them is no
//!   change. A feature added is compatible; removed, or its `type` changed, is breaking; so is a
//!   change of how its value is computed (`column`, `transform`, `output`, `sql`,
//!   `aggregation`, `window_seconds`, `unit_seconds`). `entities` (the key), `source`, `sources`
//!   and `request_source` are breaking. `ttl_seconds` is compatible: it changes which entities
//!   are served, not their values; so is a view's `schedule`, which changes only when it is
//!   materialized. In `steps` (the resolved components a view runs, matched by
//!   transform name), a different `sha256`, `config`, `inputs` or `outputs` is breaking, new
//!   limits are compatible, and a step added or removed is compatible because the features it
//!   computes are compared on their own.
//! - Feature services: `features` entries are matched by base view and feature. A reference
//!   added is compatible, removed is breaking, a changed `@vN` pin is breaking, and a new order
//!   alone is compatible (responses name every feature).
//! - Transforms: a new `component` location alone is compatible (the content is compared by
//!   `resolved.sha256`, and a different one is breaking); `config` is breaking; `timeout_ms` and
//!   `fuel` are compatible; in `resolved`, an output removed or retyped is breaking, one added is
//!   compatible, and any change of `inputs` is breaking.
//! - Entities: `join_keys` is breaking. Sources: `path`, `format`, `query`, `timestamp_field`
//!   and `created_timestamp_field` are breaking. Request sources: any field added, removed or
//!   retyped is breaking, since callers must send exactly them.
//! - Any other differing field is breaking: when in doubt, say so.
//!
//! A created object is compatible with no changes listed; a deleted one is breaking.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::{ObjectKind, format_duration};
use Compatibility::{Breaking, Compatible};
use fstore_snapshot::FeatureRef;

/// Whether a change can break what consumes the object. Ordered so that the `max` of a list is
/// the class of the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compatibility {
    /// Consumers keep working unchanged.
    Compatible,
    /// Some consumer may fail or silently get different values.
    Breaking,
}

/// One difference between two versions of a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// Where: "description", "ttl_seconds", "features.monetary_90d.type", "features.orders_7d"
    /// (a whole feature added or removed), "entities", "steps.bucketize.sha256",
    /// "features.customer_rfm:x" (an entry of a service's list); "" for the whole object.
    pub path: String,
    /// The value before, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// Whether this change can break consumers.
    pub compatibility: Compatibility,
    /// Short human sentence: "type int64 → float64", "feature removed", "feature added".
    pub reason: String,
}

/// Every difference between two versions of a definition, and their overall class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// The most severe class among `changes` (compatible when there are none).
    pub compatibility: Compatibility,
    /// The differences, in a stable order.
    pub changes: Vec<FieldChange>,
}

impl Diff {
    fn new(changes: Vec<FieldChange>) -> Self {
        let compatibility = changes
            .iter()
            .map(|c| c.compatibility)
            .max()
            .unwrap_or(Compatibility::Compatible);
        Self {
            compatibility,
            changes,
        }
    }

    /// Whether any change is breaking.
    pub fn is_breaking(&self) -> bool {
        self.compatibility == Compatibility::Breaking
    }

    /// One line per change: `  ! features.x.type: type int64 → float64 (breaking)` or
    /// `  ~ description: changed`.
    pub fn render(&self) -> String {
        render_changes(&self.changes)
    }
}

/// The lines of [`Diff::render`], for callers holding only the changes.
pub(crate) fn render_changes(changes: &[FieldChange]) -> String {
    let mut out = String::new();
    for c in changes {
        let (sign, suffix) = match c.compatibility {
            Compatibility::Breaking => ('!', " (breaking)"),
            Compatibility::Compatible => ('~', ""),
        };
        let path = if c.path.is_empty() {
            String::new()
        } else {
            format!("{}: ", c.path)
        };
        out.push_str(&format!("  {sign} {path}{}{suffix}\n", c.reason));
    }
    out
}

/// Compares two stored specs of one object. `old` None means the object is being created
/// (compatible, no changes); `new` None means it is being deleted (breaking, one change with
/// path "" and reason "deleted"). Specs are the JSON of the model structs as the registry
/// stores them.
pub fn diff_specs(kind: ObjectKind, old: Option<&Value>, new: Option<&Value>) -> Diff {
    let (old, new) = match (old, new) {
        (None, _) => return Diff::new(vec![]),
        (Some(_), None) => {
            return Diff::new(vec![FieldChange {
                path: String::new(),
                old: None,
                new: None,
                compatibility: Compatibility::Breaking,
                reason: "deleted".into(),
            }]);
        }
        (Some(o), Some(n)) => (o, n),
    };
    let mut out = Changes::default();
    for key in keys(old, new) {
        let (o, n) = (old.get(&key), new.get(&key));
        if o != n {
            top_level(kind, &key, o, n, &mut out);
        }
    }
    Diff::new(out.0)
}

/// Collects changes; a thin wrapper so each rule is one short call.
#[derive(Default)]
struct Changes(Vec<FieldChange>);

impl Changes {
    fn push(
        &mut self,
        path: impl Into<String>,
        old: Option<&Value>,
        new: Option<&Value>,
        compatibility: Compatibility,
        reason: impl Into<String>,
    ) {
        self.0.push(FieldChange {
            path: path.into(),
            old: old.cloned(),
            new: new.cloned(),
            compatibility,
            reason: reason.into(),
        });
    }
}

fn top_level(kind: ObjectKind, key: &str, o: Option<&Value>, n: Option<&Value>, out: &mut Changes) {
    use ObjectKind as K;
    match (kind, key) {
        (_, "description" | "owner" | "tags") => out.push(key, o, n, Compatible, "changed"),
        (K::FeatureView | K::OnDemandView, "features") => features(o, n, out),
        (K::FeatureView | K::OnDemandView, "steps") => steps(o, n, out),
        (K::FeatureView, "ttl_seconds") => {
            let reason = format!(
                "ttl {} → {}: changes which entities are served, not their values",
                ttl(o),
                ttl(n)
            );
            out.push(key, o, n, Compatible, reason);
        }
        (K::FeatureView, "schedule") => out.push(
            key,
            o,
            n,
            Compatible,
            format!(
                "schedule {} → {}: changes when it is materialized, not its values",
                show(o),
                show(n)
            ),
        ),
        (K::FeatureView, "checks" | "drift") => out.push(
            key,
            o,
            n,
            Compatible,
            format!("{key} changed: changes which runs publish or alert, not their values"),
        ),
        (K::FeatureView, "shards") => out.push(
            key,
            o,
            n,
            Compatible,
            format!(
                "shards {} → {}: changes how snapshots are split for edges, not their values",
                show(o),
                show(n)
            ),
        ),
        (K::FeatureView, "max_rejected") => out.push(
            key,
            o,
            n,
            Compatible,
            format!(
                "max_rejected {} → {}: changes which runs publish, not their values",
                show(o),
                show(n)
            ),
        ),
        (K::FeatureView, "entities") => out.push(
            key,
            o,
            n,
            Breaking,
            "entities changed: the view has a different key",
        ),
        (K::FeatureView, "source") | (K::OnDemandView, "sources" | "request_source") => out.push(
            key,
            o,
            n,
            Breaking,
            format!("reads {} instead of {}", show(n), show(o)),
        ),
        (K::FeatureService, "features") => service_refs(o, n, out),
        (K::Transform, "component") => out.push(
            key,
            o,
            n,
            Compatible,
            "component location changed (its content is compared by sha256)",
        ),
        (K::Transform, "resolved") => resolved(o, n, out),
        (K::Transform, "config") => config(o, n, out),
        (K::Transform, "timeout_ms" | "fuel") => out.push(
            key,
            o,
            n,
            Compatible,
            format!("limit {} → {}", show(o), show(n)),
        ),
        (K::Entity, "join_keys") => out.push(
            key,
            o,
            n,
            Breaking,
            "join keys changed: rows are keyed differently",
        ),
        // The reason never quotes a path: a database URL may hold a password.
        (K::Source, "path") => out.push(
            key,
            redact(o).as_ref(),
            redact(n).as_ref(),
            Breaking,
            "path changed",
        ),
        (K::Source, "format" | "timestamp_field" | "created_timestamp_field") => out.push(
            key,
            o,
            n,
            Breaking,
            format!("{key} {} → {}", show(o), show(n)),
        ),
        (K::Source, "query") => out.push(key, o, n, Breaking, "query changed"),
        (K::RequestSource, "fields") => named_types(
            "fields",
            o,
            n,
            (Breaking, "field added: callers must send it"),
            (Breaking, "field removed"),
            out,
        ),
        _ => out.push(key, o, n, Breaking, "changed"),
    }
}

/// Features of a view, matched by name.
fn features(o: Option<&Value>, n: Option<&Value>, out: &mut Changes) {
    for (name, o, n) in pair(by_name(o), by_name(n)) {
        let path = format!("features.{name}");
        match (o, n) {
            (None, n) => out.push(path, None, n, Compatible, "feature added"),
            (o, None) => out.push(path, o, None, Breaking, "feature removed"),
            (Some(o), Some(n)) => {
                for key in keys(o, n) {
                    let (a, b) = (o.get(&key), n.get(&key));
                    if a != b {
                        feature_field(&format!("{path}.{key}"), &key, a, b, out);
                    }
                }
            }
        }
    }
}

fn feature_field(path: &str, key: &str, o: Option<&Value>, n: Option<&Value>, out: &mut Changes) {
    let (reason, compatibility) = match key {
        "description" | "owner" | "tags" => ("changed".to_string(), Compatible),
        "checks" => (
            "quality checks changed: they decide which runs publish, not the values".into(),
            Compatible,
        ),
        "type" => (format!("type {} → {}", show(o), show(n)), Breaking),
        "sql" => ("computed by a different sql expression".into(), Breaking),
        "window_seconds" | "unit_seconds" => {
            let d = |v: Option<&Value>| {
                v.and_then(Value::as_u64)
                    .map_or("none".into(), format_duration)
            };
            let what = key.trim_end_matches("_seconds");
            (
                format!("computed differently: {what} {} → {}", d(o), d(n)),
                Breaking,
            )
        }
        "column" | "transform" | "output" | "aggregation" => (
            format!("computed differently: {key} {} → {}", show(o), show(n)),
            Breaking,
        ),
        _ => ("changed".into(), Breaking),
    };
    out.push(path, o, n, compatibility, reason);
}

/// A view's resolved steps, matched by transform name (and occurrence, should one run twice).
fn steps(o: Option<&Value>, n: Option<&Value>, out: &mut Changes) {
    let key = |s: &Value| show(s.get("transform"));
    for (name, o, n) in pair(keyed_list(o, key), keyed_list(n, key)) {
        let path = format!("steps.{name}");
        match (o, n) {
            // The features such a step computes are compared by name, so whether losing or
            // gaining it breaks anything shows there.
            (None, n) => out.push(
                path,
                None,
                n,
                Compatible,
                format!("transform `{name}` now runs"),
            ),
            (o, None) => out.push(
                path,
                o,
                None,
                Compatible,
                format!("transform `{name}` no longer runs"),
            ),
            (Some(o), Some(n)) => {
                for key in keys(o, n) {
                    let (a, b) = (o.get(&key), n.get(&key));
                    if a == b {
                        continue;
                    }
                    let (c, reason) = match key.as_str() {
                        "sha256" => (
                            Breaking,
                            format!(
                                "transform `{name}` component changed (sha256 {} → {})",
                                short_sha(a),
                                short_sha(b)
                            ),
                        ),
                        "timeout_ms" | "fuel" => (
                            Compatible,
                            format!("transform `{name}` limit {} → {}", show(a), show(b)),
                        ),
                        _ => (Breaking, format!("transform `{name}` {key} changed")),
                    };
                    out.push(format!("{path}.{key}"), a, b, c, reason);
                }
            }
        }
    }
}

/// A service's `view:feature` list, matched by base view and feature.
fn service_refs(o: Option<&Value>, n: Option<&Value>, out: &mut Changes) {
    let (old, new) = (keyed_list(o, ref_key), keyed_list(n, ref_key));
    // The order of the entries both versions have; additions and removals are reported on
    // their own.
    let common = |a: &[(String, &Value)], b: &[(String, &Value)]| -> Vec<String> {
        a.iter()
            .filter(|(k, _)| b.iter().any(|(kb, _)| kb == k))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let reordered = common(&old, &new) != common(&new, &old);
    for (key, o, n) in pair(old, new) {
        let path = format!("features.{key}");
        match (o, n) {
            (None, n) => out.push(path, None, n, Compatible, "feature added"),
            (o, None) => out.push(path, o, None, Breaking, "feature removed"),
            (Some(o), Some(n)) if o != n => {
                let reason = format!("pin {} → {}", pin_of(o), pin_of(n));
                out.push(path, Some(o), Some(n), Breaking, reason);
            }
            _ => {}
        }
    }
    if reordered {
        out.push(
            "features",
            o,
            n,
            Compatible,
            "features reordered (responses name every feature)",
        );
    }
}

/// `view:feature` without the view's pin, so a re-pinned reference matches its old self.
fn ref_key(v: &Value) -> String {
    let s = v.as_str().unwrap_or_default();
    match FeatureRef::parse(s) {
        Some(r) => format!("{}:{}", r.base_view(), r.feature),
        None => s.to_string(),
    }
}

/// "v3", or "latest" for an unpinned reference.
fn pin_of(v: &Value) -> String {
    match v.as_str().and_then(FeatureRef::parse).map(|r| r.pin()) {
        Some(Ok(Some(n))) => format!("v{n}"),
        Some(Ok(None)) => "latest".into(),
        _ => show(Some(v)),
    }
}

fn resolved(o: Option<&Value>, n: Option<&Value>, out: &mut Changes) {
    let (Some(o), Some(n)) = (o, n) else {
        // Without both signatures nothing proves the component is the same one.
        let reason = format!(
            "component changed (sha256 {} → {})",
            short_sha(o.and_then(|v| v.get("sha256"))),
            short_sha(n.and_then(|v| v.get("sha256")))
        );
        out.push("resolved", o, n, Breaking, reason);
        return;
    };
    for key in keys(o, n) {
        let (a, b) = (o.get(&key), n.get(&key));
        if a == b {
            continue;
        }
        let path = format!("resolved.{key}");
        match key.as_str() {
            "sha256" => {
                let reason = format!(
                    "component changed (sha256 {} → {})",
                    short_sha(a),
                    short_sha(b)
                );
                out.push(path, a, b, Breaking, reason);
            }
            // The size follows from the bytes the sha256 already covers.
            "size_bytes" => {}
            "outputs" => named_types(
                "resolved.outputs",
                a,
                b,
                (Compatible, "output added"),
                (Breaking, "output removed"),
                out,
            ),
            "inputs" => out.push(path, a, b, Breaking, "inputs changed"),
            _ => out.push(path, a, b, Breaking, "changed"),
        }
    }
}

/// A transform's `configure` map, key by key.
fn config(o: Option<&Value>, n: Option<&Value>, out: &mut Changes) {
    let empty = Value::Object(Default::default());
    let (o, n) = (o.unwrap_or(&empty), n.unwrap_or(&empty));
    for key in keys(o, n) {
        let (a, b) = (o.get(&key), n.get(&key));
        if a != b {
            let reason = format!("config {key} {} → {}", show(a), show(b));
            out.push(format!("config.{key}"), a, b, Breaking, reason);
        }
    }
}

/// A list of `{name, type}` fields: added and removed as given, retyped always breaking.
fn named_types(
    prefix: &str,
    o: Option<&Value>,
    n: Option<&Value>,
    added: (Compatibility, &str),
    removed: (Compatibility, &str),
    out: &mut Changes,
) {
    for (name, o, n) in pair(by_name(o), by_name(n)) {
        let path = format!("{prefix}.{name}");
        match (o, n) {
            (None, n) => out.push(path, None, n, added.0, added.1),
            (o, None) => out.push(path, o, None, removed.0, removed.1),
            (Some(o), Some(n)) if o.get("type") != n.get("type") => {
                let reason = format!("type {} → {}", show(o.get("type")), show(n.get("type")));
                out.push(
                    format!("{path}.type"),
                    o.get("type"),
                    n.get("type"),
                    Breaking,
                    reason,
                );
            }
            (Some(o), Some(n)) if o != n => out.push(path, Some(o), Some(n), Breaking, "changed"),
            _ => {}
        }
    }
}

/// The keys of two objects, sorted, each once (none for a non-object).
fn keys(a: &Value, b: &Value) -> Vec<String> {
    let mut keys: Vec<String> = [a, b]
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The entries of a list of objects, keyed by their `name`.
fn by_name(v: Option<&Value>) -> Vec<(String, &Value)> {
    keyed_list(v, |e| show(e.get("name")))
}

/// The entries of a list keyed by `key`; a repeated key gets `#2`, `#3`... so that each entry
/// still pairs with exactly one on the other side.
fn keyed_list(v: Option<&Value>, key: impl Fn(&Value) -> String) -> Vec<(String, &Value)> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for e in v.and_then(Value::as_array).into_iter().flatten() {
        let base = key(e);
        let count = seen.entry(base.clone()).or_default();
        *count += 1;
        let k = if *count == 1 {
            base
        } else {
            format!("{base}#{count}")
        };
        out.push((k, e));
    }
    out
}

/// Pairs entries by key: those of `new` in its order, then those only `old` has, in its order.
fn pair<'a>(
    old: Vec<(String, &'a Value)>,
    new: Vec<(String, &'a Value)>,
) -> Vec<(String, Option<&'a Value>, Option<&'a Value>)> {
    let find =
        |list: &[(String, &'a Value)], k: &str| list.iter().find(|(x, _)| x == k).map(|(_, v)| *v);
    let mut out: Vec<_> = new
        .iter()
        .map(|(k, v)| (k.clone(), find(&old, k), Some(*v)))
        .collect();
    out.extend(
        old.iter()
            .filter(|(k, _)| find(&new, k).is_none())
            .map(|(k, v)| (k.clone(), Some(*v), None)),
    );
    out
}

/// A value as a short human string: strings bare, absent or null as "none".
fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "none".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn ttl(v: Option<&Value>) -> String {
    match v.and_then(Value::as_u64) {
        Some(0) => "unbounded".into(),
        Some(s) => format_duration(s),
        None => show(v),
    }
}

/// The first 8 hex digits of a sha256 and an ellipsis, enough to tell versions apart.
fn short_sha(v: Option<&Value>) -> String {
    match v.and_then(Value::as_str) {
        Some(s) if s.len() > 8 => format!("{}…", s.get(..8).unwrap_or(s)),
        Some(s) => s.to_string(),
        None => "none".into(),
    }
}

/// A source path with any `user:password@` of a URL masked, since plans are shown and logged.
fn redact(v: Option<&Value>) -> Option<Value> {
    let s = v?.as_str()?;
    Some(Value::String(crate::redact_url(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Definitions, ResolvedTransform, Schedule, parse_features_yaml};
    use fstore_snapshot::{FeatureType, Field, TransformStep};

    const YAML: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: orders
    path: data/orders.parquet
    timestamp_field: ts
request_sources:
  - name: cart
    fields: [{name: amount, type: float64}]
transforms:
  - name: bucketize
    component: t/bucketize.wasm
    config: {cuts: "1,2"}
feature_views:
  - name: rfm
    entities: [customer]
    source: orders
    ttl: 30d
    features:
      - {name: monetary_90d, type: int64, aggregation: sum, column: amount, window: 90d}
      - {name: orders_7d, type: int64, aggregation: count, window: 7d}
on_demand_views:
  - name: risk
    sources: [rfm]
    request_source: cart
    features:
      - {name: bucket, type: int64, transform: bucketize}
feature_services:
  - name: svc
    features: [rfm:monetary_90d, rfm@v3:orders_7d]
"#;

    fn defs() -> Definitions {
        parse_features_yaml(YAML, None).expect("fixture is valid")
    }

    fn diff<T: Serialize>(kind: ObjectKind, old: &T, new: &T) -> Diff {
        let j = |t: &T| serde_json::to_value(t).expect("serializable");
        diff_specs(kind, Some(&j(old)), Some(&j(new)))
    }

    /// The only change of a diff, checked to be alone.
    fn only(d: &Diff) -> &FieldChange {
        assert_eq!(d.changes.len(), 1, "{d:#?}");
        &d.changes[0]
    }

    fn field(name: &str, ty: FeatureType) -> Field<FeatureType> {
        Field {
            name: name.into(),
            ty,
        }
    }

    #[test]
    fn created_and_deleted() {
        let v = serde_json::json!({"name": "x"});
        let created = diff_specs(ObjectKind::Entity, None, Some(&v));
        assert_eq!(created.compatibility, Compatible);
        assert!(created.changes.is_empty());
        let deleted = diff_specs(ObjectKind::Entity, Some(&v), None);
        assert!(deleted.is_breaking());
        assert_eq!(only(&deleted).path, "");
        assert_eq!(only(&deleted).reason, "deleted");
        assert!(!diff_specs(ObjectKind::Entity, Some(&v), Some(&v)).is_breaking());
    }

    #[test]
    fn view_metadata_and_ttl_are_compatible() {
        let old = defs().feature_views[0].clone();
        let mut new = old.clone();
        new.description = "RFM".into();
        new.owner = "growth".into();
        new.tags = vec!["core".into()];
        new.features[0].description = "spend".into();
        new.features[0].owner = "finance".into();
        new.ttl_seconds = 60 * 86_400;
        new.schedule = Schedule::parse("1h").ok();
        new.shards = Some(4);
        let d = diff(ObjectKind::FeatureView, &old, &new);
        assert_eq!(d.compatibility, Compatible, "{d:#?}");
        let paths: Vec<&str> = d.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "description",
                "features.monetary_90d.description",
                "features.monetary_90d.owner",
                "owner",
                "schedule",
                "shards",
                "tags",
                "ttl_seconds"
            ]
        );
        assert_eq!(
            d.changes[4].reason,
            "schedule none → 1h: changes when it is materialized, not its values"
        );
        assert_eq!(
            d.changes[5].reason,
            "shards none → 4: changes how snapshots are split for edges, not their values"
        );
        assert_eq!(
            d.changes[7].reason,
            "ttl 30d → 60d: changes which entities are served, not their values"
        );
    }

    #[test]
    fn view_features_match_by_name() {
        let old = defs().feature_views[0].clone();

        let mut reordered = old.clone();
        reordered.features.reverse();
        assert!(
            diff(ObjectKind::FeatureView, &old, &reordered)
                .changes
                .is_empty()
        );

        let mut added = old.clone();
        let mut extra = old.features[1].clone();
        extra.name = "orders_30d".into();
        added.features.insert(0, extra);
        let d = diff(ObjectKind::FeatureView, &old, &added);
        assert_eq!(d.compatibility, Compatible);
        assert_eq!(only(&d).path, "features.orders_30d");
        assert_eq!(only(&d).reason, "feature added");

        let d = diff(ObjectKind::FeatureView, &added, &old);
        assert!(d.is_breaking());
        assert_eq!(only(&d).reason, "feature removed");
        assert!(only(&d).old.is_some() && only(&d).new.is_none());

        let mut retyped = old.clone();
        retyped.features[0].ty = FeatureType::Float64;
        let d = diff(ObjectKind::FeatureView, &old, &retyped);
        assert!(d.is_breaking());
        assert_eq!(only(&d).path, "features.monetary_90d.type");
        assert_eq!(only(&d).reason, "type int64 → float64");
        assert_eq!(only(&d).old, Some(serde_json::json!("int64")));

        let mut window = old.clone();
        window.features[0].window_seconds = Some(30 * 86_400);
        let d = diff(ObjectKind::FeatureView, &old, &window);
        assert!(d.is_breaking());
        assert_eq!(only(&d).reason, "computed differently: window 90d → 30d");

        let mut column = old.clone();
        column.features[0].column = Some("total".into());
        let d = diff(ObjectKind::FeatureView, &old, &column);
        assert_eq!(
            only(&d).reason,
            "computed differently: column amount → total"
        );
        assert!(d.is_breaking());
    }

    #[test]
    fn view_key_and_source_are_breaking() {
        let old = defs().feature_views[0].clone();
        let mut new = old.clone();
        new.entities = vec!["account".into()];
        let d = diff(ObjectKind::FeatureView, &old, &new);
        assert!(d.is_breaking());
        assert_eq!(only(&d).path, "entities");
        let mut new = old.clone();
        new.source = "orders_v2".into();
        let d = diff(ObjectKind::FeatureView, &old, &new);
        assert!(d.is_breaking());
        assert_eq!(only(&d).reason, "reads orders_v2 instead of orders");
    }

    fn step(sha: &str, timeout_ms: u64) -> TransformStep {
        TransformStep {
            transform: "bucketize".into(),
            sha256: sha.into(),
            inputs: vec!["amount".into()],
            outputs: vec![field("bucket", FeatureType::Int64)],
            config: vec![],
            timeout_ms,
            fuel: 1000,
        }
    }

    #[test]
    fn steps_compare_components() {
        let mut old = defs().on_demand_views[0].clone();
        old.steps = vec![step(&"ab".repeat(32), 10)];
        let mut limits = old.clone();
        limits.steps = vec![step(&"ab".repeat(32), 20)];
        let d = diff(ObjectKind::OnDemandView, &old, &limits);
        assert_eq!(d.compatibility, Compatible);
        assert_eq!(only(&d).path, "steps.bucketize.timeout_ms");

        let mut component = old.clone();
        component.steps = vec![step(&"cd".repeat(32), 10)];
        let d = diff(ObjectKind::OnDemandView, &old, &component);
        assert!(d.is_breaking());
        assert_eq!(only(&d).path, "steps.bucketize.sha256");
        assert_eq!(
            only(&d).reason,
            "transform `bucketize` component changed (sha256 abababab… → cdcdcdcd…)"
        );

        let mut config = old.clone();
        config.steps[0].config = vec![("cuts".into(), "1,3".into())];
        assert!(diff(ObjectKind::OnDemandView, &old, &config).is_breaking());
    }

    #[test]
    fn on_demand_view_inputs_are_breaking() {
        let old = defs().on_demand_views[0].clone();
        let mut new = old.clone();
        new.sources.push("profile".into());
        assert!(diff(ObjectKind::OnDemandView, &old, &new).is_breaking());
        let mut new = old.clone();
        new.request_source = None;
        let d = diff(ObjectKind::OnDemandView, &old, &new);
        assert!(d.is_breaking());
        assert_eq!(only(&d).path, "request_source");
        let mut new = old.clone();
        new.features[0].transform = Some("other".into());
        let d = diff(ObjectKind::OnDemandView, &old, &new);
        assert_eq!(only(&d).path, "features.bucket.transform");
        assert!(d.is_breaking());
        let mut new = old.clone();
        new.tags = vec!["edge".into()];
        assert!(!diff(ObjectKind::OnDemandView, &old, &new).is_breaking());
    }

    #[test]
    fn service_refs() {
        let old = defs().feature_services[0].clone();
        let r = |s: &str| FeatureRef::parse(s).expect("valid ref");

        let mut added = old.clone();
        added.features.push(r("risk:bucket"));
        let d = diff(ObjectKind::FeatureService, &old, &added);
        assert_eq!(d.compatibility, Compatible);
        assert_eq!(only(&d).path, "features.risk:bucket");
        assert_eq!(only(&d).reason, "feature added");

        let d = diff(ObjectKind::FeatureService, &added, &old);
        assert!(d.is_breaking());
        assert_eq!(only(&d).reason, "feature removed");

        let mut repinned = old.clone();
        repinned.features[1] = r("rfm@v4:orders_7d");
        let d = diff(ObjectKind::FeatureService, &old, &repinned);
        assert!(d.is_breaking());
        assert_eq!(only(&d).path, "features.rfm:orders_7d");
        assert_eq!(only(&d).reason, "pin v3 → v4");
        repinned.features[1] = r("rfm:orders_7d");
        assert_eq!(
            only(&diff(ObjectKind::FeatureService, &old, &repinned)).reason,
            "pin v3 → latest"
        );

        let mut reordered = old.clone();
        reordered.features.reverse();
        let d = diff(ObjectKind::FeatureService, &old, &reordered);
        assert_eq!(d.compatibility, Compatible);
        assert_eq!(only(&d).path, "features");

        let mut described = old.clone();
        described.description = "v1 model".into();
        assert!(!diff(ObjectKind::FeatureService, &old, &described).is_breaking());
    }

    fn resolved(sha: &str) -> ResolvedTransform {
        ResolvedTransform {
            sha256: sha.into(),
            size_bytes: 100,
            inputs: vec![field("amount", FeatureType::Float64)],
            outputs: vec![field("bucket", FeatureType::Int64)],
        }
    }

    #[test]
    fn transforms() {
        let mut old = defs().transforms[0].clone();
        old.resolved = Some(resolved(&"ab".repeat(32)));

        let mut moved = old.clone();
        moved.component = "s3://bucket/bucketize.wasm".into();
        moved.timeout_ms = Some(50);
        moved.fuel = Some(1 << 20);
        let d = diff(ObjectKind::Transform, &old, &moved);
        assert_eq!(d.compatibility, Compatible, "{d:#?}");
        assert_eq!(d.changes.len(), 3);

        let mut rebuilt = moved.clone();
        rebuilt.resolved = Some(ResolvedTransform {
            size_bytes: 120,
            ..resolved(&"cd".repeat(32))
        });
        let d = diff(ObjectKind::Transform, &old, &rebuilt);
        assert!(d.is_breaking());
        let sha = d
            .changes
            .iter()
            .find(|c| c.path == "resolved.sha256")
            .expect("sha change");
        assert_eq!(
            sha.reason,
            "component changed (sha256 abababab… → cdcdcdcd…)"
        );
        assert!(!d.changes.iter().any(|c| c.path.contains("size_bytes")));

        let mut config = old.clone();
        config.config.insert("cuts".into(), "1,3".into());
        let d = diff(ObjectKind::Transform, &old, &config);
        assert!(d.is_breaking());
        assert_eq!(only(&d).path, "config.cuts");

        let with_outputs = |outputs| {
            let mut t = old.clone();
            if let Some(r) = t.resolved.as_mut() {
                r.outputs = outputs;
            }
            t
        };
        let more = with_outputs(vec![
            field("bucket", FeatureType::Int64),
            field("score", FeatureType::Float64),
        ]);
        let d = diff(ObjectKind::Transform, &old, &more);
        assert_eq!(d.compatibility, Compatible);
        assert_eq!(only(&d).path, "resolved.outputs.score");
        let d = diff(ObjectKind::Transform, &more, &old);
        assert!(d.is_breaking());
        assert_eq!(only(&d).reason, "output removed");
        let retyped = with_outputs(vec![field("bucket", FeatureType::String)]);
        let d = diff(ObjectKind::Transform, &old, &retyped);
        assert!(d.is_breaking());
        assert_eq!(only(&d).path, "resolved.outputs.bucket.type");

        let mut inputs = old.clone();
        if let Some(r) = inputs.resolved.as_mut() {
            r.inputs.push(field("channel", FeatureType::String));
        }
        let d = diff(ObjectKind::Transform, &old, &inputs);
        assert!(d.is_breaking());
        assert_eq!(only(&d).path, "resolved.inputs");
    }

    #[test]
    fn entities_and_sources() {
        let old = defs().entities[0].clone();
        let mut new = old.clone();
        new.description = "a buyer".into();
        assert!(!diff(ObjectKind::Entity, &old, &new).is_breaking());
        new.join_keys[0].name = "account_id".into();
        let d = diff(ObjectKind::Entity, &old, &new);
        assert!(d.is_breaking());
        assert!(d.changes.iter().any(|c| c.path == "join_keys"));

        let old = defs().sources[0].clone();
        let mut new = old.clone();
        new.owner = "data".into();
        assert!(!diff(ObjectKind::Source, &old, &new).is_breaking());
        for change in [
            |s: &mut crate::Source| s.path = "data/orders2.parquet".into(),
            |s: &mut crate::Source| s.format = crate::SourceFormat::Csv,
            |s: &mut crate::Source| s.timestamp_field = "event_ts".into(),
            |s: &mut crate::Source| s.created_timestamp_field = Some("created".into()),
            |s: &mut crate::Source| s.query = Some("select 1".into()),
        ] {
            let mut new = old.clone();
            change(&mut new);
            let d = diff(ObjectKind::Source, &old, &new);
            assert!(d.is_breaking(), "{d:#?}");
            assert_eq!(d.changes.len(), 1);
        }
    }

    #[test]
    fn source_paths_hide_passwords() {
        let mut old = defs().sources[0].clone();
        old.path = "postgres://app:s3cret@db:5432/shop".into();
        let mut new = old.clone();
        new.path = "postgres://app:s3cret@db2:5432/shop".into();
        let d = diff(ObjectKind::Source, &old, &new);
        assert_eq!(
            only(&d).new,
            Some(serde_json::json!("postgres://app:***@db2:5432/shop"))
        );
        assert!(!d.render().contains("s3cret"));
        // A `/` in the password, and a password parameter, are hidden too.
        new.path = "postgres://app:p/w@rd@db3/shop?password=s3cret&sslmode=disable".into();
        let d = diff(ObjectKind::Source, &old, &new);
        let shown = serde_json::to_string(&d).expect("json");
        assert!(
            !shown.contains("s3cret") && !shown.contains("w@rd"),
            "{shown}"
        );
    }

    #[test]
    fn request_fields_are_all_breaking() {
        let old = defs().request_sources[0].clone();
        let mut new = old.clone();
        new.description = "checkout".into();
        assert!(!diff(ObjectKind::RequestSource, &old, &new).is_breaking());
        let mut added = old.clone();
        added.fields.push(field("channel", FeatureType::String));
        let d = diff(ObjectKind::RequestSource, &old, &added);
        assert!(d.is_breaking());
        assert_eq!(only(&d).path, "fields.channel");
        assert!(diff(ObjectKind::RequestSource, &added, &old).is_breaking());
        let mut retyped = old.clone();
        retyped.fields[0].ty = FeatureType::Int64;
        let d = diff(ObjectKind::RequestSource, &old, &retyped);
        assert!(d.is_breaking());
        assert_eq!(only(&d).reason, "type float64 → int64");
    }

    #[test]
    fn unknown_fields_are_breaking() {
        let old = serde_json::json!({"name": "x", "shiny": 1});
        let new = serde_json::json!({"name": "x", "shiny": 2});
        let d = diff_specs(ObjectKind::Entity, Some(&old), Some(&new));
        assert!(d.is_breaking());
        assert_eq!(only(&d).reason, "changed");
    }

    #[test]
    fn renders_one_line_per_change() {
        let old = defs().feature_views[0].clone();
        let mut new = old.clone();
        new.description = "RFM".into();
        new.features[0].ty = FeatureType::Float64;
        let d = diff(ObjectKind::FeatureView, &old, &new);
        assert_eq!(
            d.render(),
            "  ~ description: changed\n  ! features.monetary_90d.type: type int64 → float64 (breaking)\n"
        );
        let json = serde_json::to_value(&d).expect("serializable");
        assert_eq!(json["compatibility"], "breaking");
        assert_eq!(json["changes"][0]["compatibility"], "compatible");
    }
}
