//! Changing what is served without a new definition: rolling a service back to earlier
//! snapshots, and deleting a definition (refused while something depends on it).

use std::collections::BTreeSet;

use fstore_registry::RollbackBinding;
use fstore_spec::{Definitions, NodeId, NodeKind, ObjectKind};
use serde::Serialize;

use crate::{ControlError, ControlPlane};

/// Where to roll a service back to: every view it reads as published version `to_version`
/// served it, or one view to one snapshot.
#[derive(Debug, Clone, Default)]
pub struct RollbackParams {
    pub to_version: Option<u64>,
    pub view: Option<String>,
    pub snapshot: Option<u64>,
    pub message: Option<String>,
}

/// What a rollback (or its undoing) changed.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub service: String,
    /// View reference → snapshot version now served; empty once cleared.
    pub bindings: Vec<(String, u64)>,
    /// The manifest that makes edges follow (None when nothing is published yet).
    pub manifest_seq: Option<u64>,
}

/// What a delete removed.
#[derive(Debug, Clone, Serialize)]
pub struct DeleteReport {
    /// `(kind, name)`, the object asked for first, then what a forced delete took with it.
    pub deleted: Vec<(String, String)>,
    pub republished_manifest: Option<u64>,
}

impl ControlPlane {
    /// Points `service` back at earlier snapshots; edges follow at their next poll.
    pub async fn rollback(
        &self,
        service: &str,
        p: &RollbackParams,
        author: &str,
    ) -> Result<RollbackReport, ControlError> {
        let defs = self.registry().definitions().await?;
        let svc = defs
            .service(service)
            .ok_or_else(|| ControlError::NotFound {
                kind: "feature service".into(),
                name: service.to_string(),
            })?;
        // Views the service reads, as it names them (`customer_rfm`, `customer_rfm@v3`).
        let reads: BTreeSet<&str> = svc
            .features
            .iter()
            .map(|r| r.view.as_str())
            .filter(|v| defs.view(fstore_snapshot::base_view(v)).is_some())
            .collect();
        let bindings: Vec<RollbackBinding> = match (p.to_version, &p.view, p.snapshot) {
            (Some(seq), None, None) => {
                let m = self.version(seq).await?;
                let mut out = Vec::new();
                for view in &reads {
                    let slot = served_slot(&m, service, svc, view).ok_or_else(|| {
                        ControlError::BadRequest(format!(
                            "published version {seq} does not serve `{view}`, which service \
                             `{service}` reads; roll that view back with `view` and `snapshot`"
                        ))
                    })?;
                    let mv = &m.views[slot];
                    out.push(RollbackBinding {
                        view: view.to_string(),
                        snapshot_view: key_view(&mv.key).unwrap_or(view).to_string(),
                        snapshot_version: mv.version,
                    });
                }
                out
            }
            (None, Some(view), Some(snapshot)) => {
                if !reads.contains(view.as_str()) {
                    return Err(ControlError::BadRequest(format!(
                        "service `{service}` does not read feature view `{view}` (it reads {})",
                        reads.iter().copied().collect::<Vec<_>>().join(", ")
                    )));
                }
                // A pinned slot's snapshots are its own, or its base view's that served it.
                let base = fstore_snapshot::base_view(view);
                let snapshot_view = if self
                    .registry()
                    .get_snapshot(view, snapshot)
                    .await?
                    .is_some()
                {
                    view.clone()
                } else {
                    base.to_string()
                };
                vec![RollbackBinding {
                    view: view.clone(),
                    snapshot_view,
                    snapshot_version: snapshot,
                }]
            }
            _ => {
                return Err(ControlError::BadRequest(
                    "give `to_version` (a published version), or `view` and `snapshot`".into(),
                ));
            }
        };
        if bindings.is_empty() {
            return Err(ControlError::BadRequest(format!(
                "service `{service}` reads no materialized feature view, so there is nothing \
                 to roll back"
            )));
        }
        for b in &bindings {
            self.check_rollback_target(svc, b).await?;
        }
        let message = p
            .message
            .clone()
            .unwrap_or_else(|| format!("roll {service} back"));
        self.registry()
            .set_rollbacks(service, &bindings, author, &message)
            .await?;
        let manifest_seq = self.republish_if_stale(&defs).await?;
        Ok(RollbackReport {
            service: service.to_string(),
            bindings: bindings
                .into_iter()
                .map(|b| (b.view, b.snapshot_version))
                .collect(),
            manifest_seq: manifest_seq.or(self.live_seq().await?),
        })
    }

    /// A rollback may only name a snapshot that exists, is still kept, and holds every
    /// feature the service reads from that view (else the edge could not serve the service).
    async fn check_rollback_target(
        &self,
        svc: &fstore_spec::FeatureService,
        b: &RollbackBinding,
    ) -> Result<(), ControlError> {
        let (view, snapshot) = (&b.view, b.snapshot_version);
        let Some(record) = self
            .registry()
            .get_snapshot(&b.snapshot_view, snapshot)
            .await?
        else {
            return Err(ControlError::NotFound {
                kind: format!("snapshot of `{view}`"),
                name: snapshot.to_string(),
            });
        };
        // A delta is kept only with its base and the deltas before it.
        if self.chain_view(record.clone()).await?.is_none() {
            return Err(ControlError::Conflict {
                code: "snapshot_not_kept",
                message: format!(
                    "snapshot {snapshot} of `{view}` is no longer in object storage \
                     (retention deleted it); roll back to a kept version (`fstore versions`)"
                ),
                details: serde_json::json!({ "view": view, "snapshot": snapshot }),
            });
        }
        // Version 0: recorded before definition versions were; nothing to check against.
        if record.definition_version == 0 {
            return Ok(());
        }
        let base = fstore_snapshot::base_view(view);
        let history = self
            .registry()
            .history(ObjectKind::FeatureView, base)
            .await?;
        let has = crate::changes::stored_feature_names(
            history
                .iter()
                .find(|h| h.version == record.definition_version)
                .and_then(|h| h.spec.as_ref()),
        );
        let missing: Vec<&str> = svc
            .features
            .iter()
            .filter(|r| r.view == *view && !has.contains(r.feature.as_str()))
            .map(|r| r.feature.as_str())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ControlError::Conflict {
                code: "snapshot_incompatible",
                message: format!(
                    "snapshot {snapshot} of `{view}` was computed with definition version {} \
                     of `{base}`, which has no {}; the service could not be served from it",
                    record.definition_version,
                    missing.join(", ")
                ),
                details: serde_json::json!({ "view": view, "snapshot": snapshot, "missing": missing }),
            })
        }
    }

    /// Undoes a service's rollback: it reads the live snapshots again.
    pub async fn clear_rollback(
        &self,
        service: &str,
        author: &str,
    ) -> Result<RollbackReport, ControlError> {
        let defs = self.registry().definitions().await?;
        if defs.service(service).is_none() {
            return Err(ControlError::NotFound {
                kind: "feature service".into(),
                name: service.to_string(),
            });
        }
        if self.registry().clear_rollbacks(service, author).await? == 0 {
            return Err(ControlError::NotFound {
                kind: "rollback of feature service".into(),
                name: service.to_string(),
            });
        }
        let manifest_seq = self.republish_if_stale(&defs).await?;
        Ok(RollbackReport {
            service: service.to_string(),
            bindings: Vec::new(),
            manifest_seq: manifest_seq.or(self.live_seq().await?),
        })
    }

    async fn live_seq(&self) -> Result<Option<u64>, ControlError> {
        Ok(self.store().live_manifest().await?.map(|m| m.seq))
    }

    /// Deletes one definition. Refused while other definitions depend on it, with the list;
    /// `force` deletes those dependents too (transitively) and reports them.
    pub async fn delete(
        &self,
        kind: ObjectKind,
        name: &str,
        force: bool,
        author: &str,
        principal: Option<&crate::Principal>,
    ) -> Result<DeleteReport, ControlError> {
        let defs = self.registry().definitions().await?;
        let root = NodeId {
            kind: NodeKind::from_object(kind),
            name: name.to_string(),
        };
        let graph = fstore_spec::Graph::from_definitions(&defs);
        if self.registry().get_object(kind, name).await?.is_none() {
            return Err(ControlError::NotFound {
                kind: kind.to_string(),
                name: name.to_string(),
            });
        }
        let dependents = graph.dependents(&root);
        if !dependents.is_empty() && !force {
            let list: Vec<String> = dependents
                .iter()
                .map(|d| format!("{} `{}`", d.kind.as_str(), d.name))
                .collect();
            return Err(ControlError::Conflict {
                code: "in_use",
                message: format!(
                    "{kind} `{name}` is used by {}; change or delete those first, or force \
                     the delete to remove them too",
                    list.join(", ")
                ),
                details: serde_json::json!({ "dependents": dependents }),
            });
        }
        let mut doomed = vec![root.clone()];
        if force {
            let mut below: Vec<NodeId> = graph
                .walk(&root, fstore_spec::Direction::Downstream, None)
                .nodes
                .into_iter()
                .map(|n| n.id)
                .filter(|id| *id != root && id.kind.to_object().is_some())
                .collect();
            below.sort();
            doomed.extend(below);
        }
        // A forced delete removes what depends on the object too: each needs `delete`.
        if let Some(p) = principal {
            for id in &doomed {
                if let Some(k) = id.kind.to_object() {
                    let rk = crate::resource_kind(k);
                    let tags = crate::tags_of(&defs, rk, &id.name);
                    p.check(
                        fstore_access::Action::Delete,
                        &fstore_access::Resource::new(rk, &id.name, &tags),
                    )?;
                }
            }
        }
        let mut next = defs.clone();
        for id in &doomed {
            if let Some(k) = id.kind.to_object() {
                remove(&mut next, k, &id.name);
            }
        }
        next.validate().map_err(ControlError::InvalidDefinitions)?;
        // The registry applies whole definitions; one applied since they were read here would
        // be undone. Checking again narrows that window to the apply itself.
        if self.registry().definitions().await? != defs {
            return Err(ControlError::Conflict {
                code: "concurrent_change",
                message: "the definitions changed while the delete was prepared; try again".into(),
                details: serde_json::Value::Null,
            });
        }
        let message = format!(
            "delete {kind} {name}{}",
            if doomed.len() > 1 { " (forced)" } else { "" }
        );
        self.registry().apply(&next, author, &message).await?;
        let republished = self.republish_if_stale(&next).await?;
        Ok(DeleteReport {
            deleted: doomed
                .into_iter()
                .map(|id| (id.kind.as_str().to_string(), id.name))
                .collect(),
            republished_manifest: republished,
        })
    }
}

/// The slot published version `m` served `view` from for `service`: the slot of the
/// service's own reference to that view there (a pin or an earlier rollback), else the view's
/// own slot.
fn served_slot<'m>(
    m: &'m fstore_storage::Manifest,
    service: &str,
    svc: &fstore_spec::FeatureService,
    view: &str,
) -> Option<&'m str> {
    let base = fstore_snapshot::base_view(view);
    let features: BTreeSet<&str> = svc
        .features
        .iter()
        .filter(|r| r.view == view)
        .map(|r| r.feature.as_str())
        .collect();
    m.services
        .get(service)
        .and_then(|refs| {
            refs.iter().find(|r| {
                r.base_view() == base
                    && features.contains(r.feature.as_str())
                    && m.views.contains_key(&r.view)
            })
        })
        .map(|r| r.view.as_str())
        .or_else(|| m.views.get_key_value(view).map(|(k, _)| k.as_str()))
}

/// The view a snapshot key belongs to (`snapshots/<view>/<version>.fss`).
pub(crate) fn key_view(key: &str) -> Option<&str> {
    fstore_storage::parse_snapshot_key(key).map(|(view, _)| view)
}

fn remove(defs: &mut Definitions, kind: ObjectKind, name: &str) {
    match kind {
        ObjectKind::Entity => defs.entities.retain(|o| o.name != name),
        ObjectKind::Source => defs.sources.retain(|o| o.name != name),
        ObjectKind::RequestSource => defs.request_sources.retain(|o| o.name != name),
        ObjectKind::Transform => defs.transforms.retain(|o| o.name != name),
        ObjectKind::FeatureView => defs.feature_views.retain(|o| o.name != name),
        ObjectKind::OnDemandView => defs.on_demand_views.retain(|o| o.name != name),
        ObjectKind::FeatureService => defs.feature_services.retain(|o| o.name != name),
    }
}
