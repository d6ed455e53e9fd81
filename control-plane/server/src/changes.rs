//! Changing definitions safely: which consumers a breaking change reaches, and which view
//! versions services pin. A breaking change nobody consumes is allowed; one that reaches a
//! service is refused unless forced, so a model never silently gets different inputs.

use std::collections::{BTreeMap, BTreeSet};

use fstore_spec::{Action, Compatibility, Definitions, ObjectKind, Plan};
use serde::Serialize;

use crate::ControlError;

/// Something that consumes a breaking change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Dependent {
    /// `feature_service`, `on_demand_view` or `feature_view`.
    pub kind: String,
    pub name: String,
    /// What it consumes that changes: `customer_rfm:monetary_90d`, `transform rfm_score`...
    pub via: String,
    /// The changed object: `feature_view customer_rfm`.
    pub change: String,
}

/// The feature names of a view as the registry stored it (its spec JSON): what a stored
/// version, a pin or a rollback's snapshot can serve.
pub fn stored_feature_names(spec: Option<&serde_json::Value>) -> BTreeSet<&str> {
    spec.and_then(|s| s.get("features"))
        .and_then(|f| f.as_array())
        .map(|fs| fs.iter().filter_map(|f| f.get("name")?.as_str()).collect())
        .unwrap_or_default()
}

/// Every `view@vN` slot some service reads.
pub fn pinned_slots(defs: &Definitions) -> BTreeSet<String> {
    defs.feature_services
        .iter()
        .flat_map(|s| &s.features)
        .filter(|r| matches!(r.pin(), Ok(Some(_))))
        .map(|r| r.view.clone())
        .collect()
}

/// Which features of a view a breaking change touches: `None` means all of them (its key,
/// source or transform steps changed), else the features whose diff path names them.
fn touched_features(change: &fstore_spec::Change) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for c in change
        .diff
        .iter()
        .filter(|c| c.compatibility == Compatibility::Breaking)
    {
        // Feature names cannot contain `.`, so the segment after `features.` is the name.
        match c.path.strip_prefix("features.") {
            Some(rest) => {
                names.insert(rest.split('.').next().unwrap_or(rest).to_string());
            }
            None => return None,
        }
    }
    Some(names)
}

/// Which references a change reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Only references without a pin: a pinned one keeps its definition version.
    Unpinned,
    /// Pinned ones too: a pinned version is still computed from today's source and entities.
    All,
}

/// Services reading `view` (pinned or not, per `reach`), and the features they read
/// (restricted to `features` when given).
fn service_consumers(
    defs: &Definitions,
    view: &str,
    features: Option<&BTreeSet<String>>,
    change: &str,
    reach: Reach,
    out: &mut BTreeSet<Dependent>,
) {
    for s in &defs.feature_services {
        for r in &s.features {
            let reads = match reach {
                Reach::Unpinned => r.view == view,
                Reach::All => r.base_view() == view,
            };
            if !reads || features.is_some_and(|f| !f.contains(&r.feature)) {
                continue;
            }
            out.insert(Dependent {
                kind: ObjectKind::FeatureService.as_str().into(),
                name: s.name.clone(),
                via: r.to_string(),
                change: change.to_string(),
            });
        }
    }
}

/// The consumers of a changed view: services reading its touched features, and on-demand
/// views computed from it (with their services).
fn view_consumers(
    defs: &Definitions,
    view: &str,
    features: Option<&BTreeSet<String>>,
    change: &str,
    reach: Reach,
    out: &mut BTreeSet<Dependent>,
) {
    service_consumers(defs, view, features, change, reach, out);
    for od in defs
        .on_demand_views
        .iter()
        .filter(|od| od.sources.iter().any(|s| s == view))
    {
        out.insert(Dependent {
            kind: ObjectKind::OnDemandView.as_str().into(),
            name: od.name.clone(),
            via: format!("feature view {view}"),
            change: change.to_string(),
        });
        service_consumers(defs, &od.name, None, change, Reach::Unpinned, out);
    }
}

/// Everything in `defs` (the definitions after the apply) that consumes a breaking update in
/// `plan`. Creates are never breaking, and deletes of something still referenced do not
/// validate, so only updates are traced.
pub fn breaking_dependents(plan: &Plan, defs: &Definitions) -> Vec<Dependent> {
    let mut out = BTreeSet::new();
    for c in plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Update && c.compatibility == Compatibility::Breaking)
    {
        let change = format!("{} {}", c.kind, c.name);
        match c.kind {
            ObjectKind::FeatureView | ObjectKind::OnDemandView => {
                view_consumers(
                    defs,
                    &c.name,
                    touched_features(c).as_ref(),
                    &change,
                    Reach::Unpinned,
                    &mut out,
                );
            }
            ObjectKind::Transform => {
                let uses = |fs: &[fstore_spec::FeatureDef]| {
                    fs.iter()
                        .filter(|f| f.transform.as_deref() == Some(c.name.as_str()))
                        .map(|f| f.name.clone())
                        .collect::<BTreeSet<_>>()
                };
                let views = defs
                    .feature_views
                    .iter()
                    .map(|v| (&v.name, uses(&v.features)))
                    .chain(
                        defs.on_demand_views
                            .iter()
                            .map(|v| (&v.name, uses(&v.features))),
                    );
                for (view, features) in views.filter(|(_, f)| !f.is_empty()) {
                    view_consumers(
                        defs,
                        view,
                        Some(&features),
                        &change,
                        Reach::Unpinned,
                        &mut out,
                    );
                }
            }
            ObjectKind::Source | ObjectKind::Entity => {
                let reads: Vec<&String> = defs
                    .feature_views
                    .iter()
                    .filter(|v| match c.kind {
                        ObjectKind::Source => v.source == c.name,
                        _ => v.entities.contains(&c.name),
                    })
                    .map(|v| &v.name)
                    .collect();
                for view in reads {
                    view_consumers(defs, view, None, &change, Reach::All, &mut out);
                }
            }
            ObjectKind::RequestSource => {
                for od in defs
                    .on_demand_views
                    .iter()
                    .filter(|od| od.request_source.as_deref() == Some(c.name.as_str()))
                {
                    service_consumers(defs, &od.name, None, &change, Reach::Unpinned, &mut out);
                }
            }
            // A service's consumers are models outside the registry; its change is reported
            // as breaking in the plan, but nothing here can tell who reads it.
            ObjectKind::FeatureService => {}
        }
    }
    out.into_iter().collect()
}

/// Warnings for services that read features tagged `deprecated` or `experimental` (on the
/// feature or its view): allowed, but someone should know before a model depends on them.
pub fn tag_warnings(defs: &Definitions) -> Vec<String> {
    let mut out = Vec::new();
    for s in &defs.feature_services {
        for r in &s.features {
            let base = r.base_view();
            let (view_tags, features) = match (defs.view(base), defs.on_demand_view(base)) {
                (Some(v), _) => (&v.tags, &v.features),
                (None, Some(v)) => (&v.tags, &v.features),
                (None, None) => continue,
            };
            let feature_tags = features
                .iter()
                .find(|f| f.name == r.feature)
                .map(|f| f.tags.as_slice())
                .unwrap_or_default();
            for tag in ["deprecated", "experimental"] {
                let on = |tags: &[String]| tags.iter().any(|t| t == tag);
                if on(feature_tags) || on(view_tags) {
                    out.push(format!(
                        "feature service `{}` reads `{r}`, which is tagged {tag}",
                        s.name
                    ));
                }
            }
        }
    }
    out
}

/// `2 feature services (segmentation_v1, churn) and 1 on-demand view (checkout_offer)`.
pub fn describe(dependents: &[Dependent]) -> String {
    let mut by_kind: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for d in dependents {
        by_kind.entry(&d.kind).or_default().insert(&d.name);
    }
    by_kind
        .iter()
        .map(|(kind, names)| {
            let kind = kind.replace('_', " ");
            let plural = if names.len() == 1 { "" } else { "s" };
            let names: Vec<&str> = names.iter().copied().collect();
            format!("{} {kind}{plural} ({})", names.len(), names.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A 409 that lists what would break, and the changes that would break it.
pub fn refusal(
    code: &'static str,
    message: String,
    plan: &Plan,
    dependents: &[Dependent],
) -> ControlError {
    let changes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.compatibility == Compatibility::Breaking)
        .collect();
    ControlError::Conflict {
        code,
        message,
        details: serde_json::json!({ "dependents": dependents, "breaking_changes": changes }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: orders
    path: /data/orders.parquet
    timestamp_field: ts
feature_views:
  - name: rfm
    entities: [customer]
    source: orders
    ttl: 30d
    features:
      - {name: spend, type: float64}
      - {name: orders, type: int64}
on_demand_views:
  - name: doubled
    sources: [rfm]
    features:
      - {name: double_spend, type: float64, sql: "spend * 2"}
feature_services:
  - name: reads_spend
    features: [rfm:spend]
  - name: reads_orders
    features: [rfm:orders]
  - name: pinned
    features: [rfm@v1:spend]
  - name: reads_doubled
    features: [doubled:double_spend]
"#;

    fn defs(yaml: &str) -> Definitions {
        fstore_spec::parse_features_yaml(yaml, None).expect("valid")
    }

    fn names(deps: &[Dependent]) -> Vec<String> {
        deps.iter()
            .map(|d| format!("{} {}", d.kind, d.name))
            .collect()
    }

    #[test]
    fn a_changed_feature_reaches_its_unpinned_readers_only() {
        let new = defs(&YAML.replace(
            "{name: spend, type: float64}",
            "{name: spend, type: float64, column: net}",
        ));
        let plan = Plan::between(&defs(YAML), &new);
        assert_eq!(
            names(&breaking_dependents(&plan, &new)),
            [
                "feature_service reads_doubled",
                "feature_service reads_spend",
                "on_demand_view doubled"
            ]
        );
    }

    #[test]
    fn a_compatible_change_reaches_nobody() {
        let new = defs(&YAML.replace(
            "{name: orders, type: int64}",
            "{name: orders, type: int64, description: Orders ever}",
        ));
        let plan = Plan::between(&defs(YAML), &new);
        assert!(!plan.changes.is_empty());
        assert!(breaking_dependents(&plan, &new).is_empty());
    }

    #[test]
    fn a_source_change_reaches_pinned_readers_too() {
        // A pinned version is still computed from today's source.
        let new = defs(&YAML.replace("timestamp_field: ts", "timestamp_field: created"));
        let plan = Plan::between(&defs(YAML), &new);
        let deps = names(&breaking_dependents(&plan, &new));
        assert!(
            deps.contains(&"feature_service pinned".to_string()),
            "{deps:?}"
        );
        assert!(
            deps.contains(&"feature_service reads_orders".to_string()),
            "{deps:?}"
        );
    }

    #[test]
    fn services_reading_deprecated_features_are_warned_about() {
        let d = defs(&YAML.replace(
            "{name: orders, type: int64}",
            "{name: orders, type: int64, tags: [deprecated]}",
        ));
        assert_eq!(
            tag_warnings(&d),
            ["feature service `reads_orders` reads `rfm:orders`, which is tagged deprecated"]
        );
        assert!(tag_warnings(&defs(YAML)).is_empty());
    }

    #[test]
    fn describe_groups_by_kind() {
        let d = |kind: &str, name: &str| Dependent {
            kind: kind.into(),
            name: name.into(),
            via: String::new(),
            change: String::new(),
        };
        assert_eq!(
            describe(&[
                d("feature_service", "a"),
                d("feature_service", "b"),
                d("on_demand_view", "c")
            ]),
            "2 feature services (a, b) and 1 on demand view (c)"
        );
    }
}
