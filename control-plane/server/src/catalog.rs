//! Finding features and trusting them: catalog search, a feature's page, definition history
//! and diffs, the change log, lineage and impact analysis. Read-only; see `governance.rs` for
//! rollbacks and deletes.

use std::collections::BTreeMap;

use fstore_registry::{ChangeEntry, ChangelogQuery, SearchQuery, SearchResults, SnapshotRecord};
use fstore_spec::{
    Diff, Direction, Graph, Impact, NodeId, NodeKind, ObjectKind, Subgraph, diff_specs,
};
use serde::Serialize;

use crate::{ControlError, ControlPlane};

/// One entry of an object's history, with what changed against the version before it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub version: u64,
    pub author: String,
    pub message: String,
    pub created_at: String,
    /// The tombstone of a deletion.
    pub deleted: bool,
    pub diff: Diff,
}

/// What the catalog knows of one feature.
#[derive(Debug, Clone, Serialize)]
pub struct FeaturePage {
    pub view: String,
    pub feature: String,
    /// `feature_view` or `on_demand_view`.
    pub view_kind: String,
    pub view_version: u64,
    pub definition: serde_json::Value,
    pub feature_type: String,
    pub description: String,
    /// The feature's own owner, else its view's.
    pub owner: String,
    /// The feature's tags and its view's.
    pub tags: Vec<String>,
    pub entities: Vec<String>,
    pub source: Option<String>,
    pub transform: Option<String>,
    /// Versions of the view in which this feature was added, changed or removed.
    pub versions: Vec<FeatureVersion>,
    /// Services reading it, with the version they pin.
    pub services: Vec<ServiceUse>,
    pub lineage: Subgraph,
    pub freshness: Freshness,
    /// Quality statistics of the latest snapshot, once quality monitoring records them.
    pub quality: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureVersion {
    pub version: u64,
    pub author: String,
    pub created_at: String,
    pub message: String,
    /// What happened to this feature in that version: "added", "removed", or the changes.
    pub change: String,
    pub compatibility: fstore_spec::Compatibility,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceUse {
    pub service: String,
    /// The definition version the service pins, if it does.
    pub pinned_version: Option<u64>,
    /// The snapshot the service is rolled back to, if it is.
    pub rolled_back_to: Option<u64>,
}

/// How current the served values are.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Freshness {
    /// The snapshot the live manifest serves, if any.
    pub live_snapshot: Option<u64>,
    pub manifest_seq: Option<u64>,
    pub materialized_at: Option<String>,
    pub age_seconds: Option<i64>,
    pub ttl_seconds: Option<u64>,
    pub rows: Option<u64>,
}

impl ControlPlane {
    /// Ranked full-text search over the catalog.
    pub async fn search(&self, q: &SearchQuery) -> Result<SearchResults, ControlError> {
        Ok(self.registry().search(q).await?)
    }

    /// The registry-wide change log, newest first.
    pub async fn changelog(&self, q: &ChangelogQuery) -> Result<Vec<ChangeEntry>, ControlError> {
        Ok(self.registry().changelog(q).await?)
    }

    /// Every version of an object, oldest first, each with its diff against the one before.
    pub async fn history(
        &self,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Vec<HistoryEntry>, ControlError> {
        let versions = self.registry().history(kind, name).await?;
        if versions.is_empty() {
            return Err(ControlError::NotFound {
                kind: kind.to_string(),
                name: name.to_string(),
            });
        }
        let mut prev: Option<&serde_json::Value> = None;
        let mut out = Vec::with_capacity(versions.len());
        for v in &versions {
            out.push(HistoryEntry {
                version: v.version,
                author: v.author.clone(),
                message: v.message.clone(),
                created_at: v.created_at.clone(),
                deleted: v.spec.is_none(),
                diff: diff_specs(kind, prev, v.spec.as_ref()),
            });
            prev = v.spec.as_ref();
        }
        Ok(out)
    }

    /// What changed between two versions of an object.
    pub async fn diff(
        &self,
        kind: ObjectKind,
        name: &str,
        from: u64,
        to: u64,
    ) -> Result<Diff, ControlError> {
        let versions = self.registry().history(kind, name).await?;
        if versions.is_empty() {
            return Err(ControlError::NotFound {
                kind: kind.to_string(),
                name: name.to_string(),
            });
        }
        let spec = |n: u64| {
            versions
                .iter()
                .find(|v| v.version == n)
                .map(|v| v.spec.as_ref())
                .ok_or_else(|| ControlError::NotFound {
                    kind: format!("version of {kind} `{name}`"),
                    name: format!("v{n}"),
                })
        };
        Ok(diff_specs(kind, spec(from)?, spec(to)?))
    }

    /// A snapshot's registry record, lineage included. `view` may be a slot as an edge names
    /// it: `customer_rfm#41` is snapshot 41 of `customer_rfm`, and
    /// `customer_rfm@v3#customer_rfm/12` snapshot 12 of `customer_rfm`.
    pub async fn snapshot(&self, view: &str, version: u64) -> Result<SnapshotRecord, ControlError> {
        let view = match view.split_once('#') {
            Some((_, rest)) if rest.contains('/') => rest.split('/').next().unwrap_or(rest),
            Some((slot, _)) => slot,
            None => view,
        };
        self.registry()
            .get_snapshot(view, version)
            .await?
            .ok_or_else(|| ControlError::NotFound {
                kind: "snapshot".into(),
                name: format!("{view}/{version}"),
            })
    }

    /// The whole lineage graph: definitions, the snapshots the live manifest serves (and
    /// recent ones), and which services read which snapshot.
    pub async fn lineage_graph(&self) -> Result<Graph, ControlError> {
        let defs = self.registry().definitions().await?;
        let mut g = Graph::from_definitions(&defs);
        for kind in [ObjectKind::FeatureView, ObjectKind::FeatureService] {
            for o in self.registry().list_objects(kind).await? {
                let id = NodeId {
                    kind: NodeKind::from_object(kind),
                    name: o.name.clone(),
                };
                if let Some(n) = g.node_mut(&id) {
                    n.attrs.insert("version".into(), o.version.into());
                }
            }
        }
        let live = self.store().live_manifest().await?;
        let records = self.registry().list_snapshots(None).await?;
        // The newest few per view: enough to see a rollout, not the whole history.
        let mut per_view: BTreeMap<&str, usize> = BTreeMap::new();
        let served: BTreeMap<(&str, u64), Vec<&str>> = live
            .as_ref()
            .map(|m| {
                m.views
                    .iter()
                    .map(|(slot, v)| ((snapshot_view(slot, &v.key), v.version), slot.as_str()))
                    .fold(BTreeMap::new(), |mut acc, (k, slot)| {
                        acc.entry(k).or_insert_with(Vec::new).push(slot);
                        acc
                    })
            })
            .unwrap_or_default();
        for r in &records {
            let is_live = served.contains_key(&(r.view.as_str(), r.version));
            let seen = per_view.entry(&r.view).or_default();
            *seen += 1;
            if !is_live && *seen > RECENT_SNAPSHOTS {
                continue;
            }
            let base = fstore_snapshot::base_view(&r.view);
            let id = NodeId {
                kind: NodeKind::Snapshot,
                name: format!("{}/{}", r.view, r.version),
            };
            let mut attrs = serde_json::Map::new();
            attrs.insert("rows".into(), r.rows.into());
            attrs.insert("created_at".into(), r.created_at.clone().into());
            attrs.insert("definition_version".into(), r.definition_version.into());
            attrs.insert("manifest_seq".into(), r.manifest_seq.into());
            attrs.insert("live".into(), is_live.into());
            attrs.insert("lineage".into(), r.lineage.clone());
            g.add_node(id.clone(), attrs);
            let view = NodeId {
                kind: NodeKind::FeatureView,
                name: base.to_string(),
            };
            if g.contains(&view) {
                g.add_link(
                    view,
                    id.clone(),
                    format!("materialized (definition v{})", r.definition_version),
                );
            }
        }
        // Edges that report in serve snapshots: link each to what it says it holds.
        for e in self.edges().await? {
            let hb = &e.record.heartbeat;
            let id = NodeId {
                kind: NodeKind::Edge,
                name: hb.id.clone(),
            };
            let mut attrs = serde_json::Map::new();
            attrs.insert("region".into(), hb.region.clone().into());
            attrs.insert("address".into(), hb.address.clone().into());
            attrs.insert("status".into(), e.status.into());
            attrs.insert("last_seen".into(), e.record.last_seen.clone().into());
            attrs.insert("manifest_seq".into(), hb.manifest_seq.into());
            g.add_node(id.clone(), attrs);
            for (slot, version) in &hb.views {
                let key = live
                    .as_ref()
                    .and_then(|m| m.views.get(slot))
                    .filter(|v| v.version == *version)
                    .map(|v| v.key.as_str())
                    .unwrap_or_default();
                let snap = NodeId {
                    kind: NodeKind::Snapshot,
                    name: format!("{}/{version}", snapshot_view(slot, key)),
                };
                if g.contains(&snap) {
                    g.add_link(snap, id.clone(), format!("served by ({slot})"));
                }
            }
        }
        if let Some(m) = &live {
            for (service, refs) in &m.services {
                for r in refs {
                    let Some(v) = m.views.get(&r.view) else {
                        continue;
                    };
                    let snap = NodeId {
                        kind: NodeKind::Snapshot,
                        name: format!("{}/{}", snapshot_view(&r.view, &v.key), v.version),
                    };
                    let svc = NodeId {
                        kind: NodeKind::FeatureService,
                        name: service.clone(),
                    };
                    if g.contains(&snap) && g.contains(&svc) {
                        g.add_link(snap, svc, format!("served as {}", r.view));
                    }
                }
            }
        }
        Ok(g)
    }

    /// The lineage graph and one node of it; a node not in it is a 404.
    async fn graph_around(
        &self,
        kind: NodeKind,
        name: &str,
    ) -> Result<(Graph, NodeId), ControlError> {
        let g = self.lineage_graph().await?;
        let id = NodeId {
            kind,
            name: name.to_string(),
        };
        if !g.contains(&id) {
            return Err(ControlError::NotFound {
                kind: kind.as_str().replace('_', " "),
                name: name.to_string(),
            });
        }
        Ok((g, id))
    }

    /// The lineage of one node, as far as `depth` links in `direction`.
    pub async fn lineage(
        &self,
        kind: NodeKind,
        name: &str,
        direction: Direction,
        depth: Option<usize>,
    ) -> Result<Subgraph, ControlError> {
        let (g, id) = self.graph_around(kind, name).await?;
        Ok(g.walk(&id, direction, depth))
    }

    /// What a change to one node would reach: views, services, snapshots.
    pub async fn impact(&self, kind: NodeKind, name: &str) -> Result<Impact, ControlError> {
        let (g, id) = self.graph_around(kind, name).await?;
        Ok(g.impact(&id))
    }

    /// Everything the catalog knows of `view:feature`.
    pub async fn feature_page(
        &self,
        view: &str,
        feature: &str,
    ) -> Result<FeaturePage, ControlError> {
        let defs = self.registry().definitions().await?;
        let not_found = || ControlError::NotFound {
            kind: "feature".into(),
            name: format!("{view}:{feature}"),
        };
        let (kind, features, entities, source, view_owner, view_tags, ttl) =
            if let Some(v) = defs.view(view) {
                (
                    ObjectKind::FeatureView,
                    &v.features,
                    v.entities.clone(),
                    Some(v.source.clone()),
                    &v.owner,
                    &v.tags,
                    Some(v.ttl_seconds),
                )
            } else if let Some(v) = defs.on_demand_view(view) {
                (
                    ObjectKind::OnDemandView,
                    &v.features,
                    Vec::new(),
                    None,
                    &v.owner,
                    &v.tags,
                    None,
                )
            } else {
                return Err(not_found());
            };
        let f = features
            .iter()
            .find(|f| f.name == feature)
            .ok_or_else(not_found)?;
        let mut tags = f.tags.clone();
        tags.extend(view_tags.iter().filter(|t| !f.tags.contains(t)).cloned());
        let view_version = self
            .registry()
            .get_object(kind, view)
            .await?
            .map_or(0, |o| o.version);
        let versions = self.feature_versions(kind, view, feature).await?;
        let rollbacks = self.registry().rollbacks().await?;
        let services = defs
            .feature_services
            .iter()
            .flat_map(|s| s.features.iter().map(move |r| (s, r)))
            .filter(|(_, r)| r.base_view() == view && r.feature == feature)
            .map(|(s, r)| ServiceUse {
                service: s.name.clone(),
                pinned_version: r.pin().ok().flatten(),
                rolled_back_to: rollbacks
                    .iter()
                    .find(|rb| rb.service == s.name && rb.view == r.view)
                    .map(|rb| rb.snapshot_version),
            })
            .collect();
        let graph = self.lineage_graph().await?;
        let id = NodeId {
            kind: NodeKind::from_object(kind),
            name: view.to_string(),
        };
        let lineage = graph.walk(&id, Direction::Both, Some(2));
        let freshness = self.freshness(view, ttl).await?;
        Ok(FeaturePage {
            view: view.to_string(),
            feature: feature.to_string(),
            view_kind: kind.as_str().into(),
            view_version,
            definition: serde_json::to_value(f).unwrap_or_default(),
            feature_type: f.ty.name().to_string(),
            description: f.description.clone(),
            owner: if f.owner.is_empty() {
                view_owner.clone()
            } else {
                f.owner.clone()
            },
            tags,
            entities,
            source,
            transform: f.transform.clone(),
            versions,
            services,
            lineage,
            freshness,
            quality: None,
        })
    }

    /// The versions of a view that added, changed or removed one feature.
    async fn feature_versions(
        &self,
        kind: ObjectKind,
        view: &str,
        feature: &str,
    ) -> Result<Vec<FeatureVersion>, ControlError> {
        let has = |spec: Option<&serde_json::Value>| {
            crate::changes::stored_feature_names(spec).contains(feature)
        };
        let prefix = format!("features.{feature}");
        let mut out = Vec::new();
        let mut prev: Option<serde_json::Value> = None;
        for v in self.registry().history(kind, view).await? {
            let (before, now) = (has(prev.as_ref()), has(v.spec.as_ref()));
            let (change, compatibility) = match (before, now) {
                (false, true) => ("added".to_string(), fstore_spec::Compatibility::Compatible),
                (true, false) => ("removed".to_string(), fstore_spec::Compatibility::Breaking),
                (false, false) => (String::new(), fstore_spec::Compatibility::Compatible),
                (true, true) => {
                    let diff = diff_specs(kind, prev.as_ref(), v.spec.as_ref());
                    let mine: Vec<_> = diff
                        .changes
                        .into_iter()
                        .filter(|c| c.path == prefix || c.path.starts_with(&format!("{prefix}.")))
                        .collect();
                    let compatibility = mine
                        .iter()
                        .map(|c| c.compatibility)
                        .max()
                        .unwrap_or(fstore_spec::Compatibility::Compatible);
                    let text = mine
                        .iter()
                        .map(|c| format!("{}: {}", c.path, c.reason))
                        .collect::<Vec<_>>()
                        .join("; ");
                    (text, compatibility)
                }
            };
            if !change.is_empty() {
                out.push(FeatureVersion {
                    version: v.version,
                    author: v.author.clone(),
                    created_at: v.created_at.clone(),
                    message: v.message.clone(),
                    change,
                    compatibility,
                });
            }
            prev = v.spec;
        }
        Ok(out)
    }

    async fn freshness(&self, view: &str, ttl: Option<u64>) -> Result<Freshness, ControlError> {
        let live = self.store().live_manifest().await?;
        let Some(m) = live else {
            return Ok(Freshness {
                ttl_seconds: ttl,
                ..Freshness::default()
            });
        };
        let Some(v) = m.views.get(view) else {
            return Ok(Freshness {
                manifest_seq: Some(m.seq),
                ttl_seconds: ttl,
                ..Freshness::default()
            });
        };
        let record = self.registry().get_snapshot(view, v.version).await?;
        let materialized_at = record.as_ref().map(|r| r.created_at.clone());
        let age_seconds = materialized_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| (chrono::Utc::now() - t.to_utc()).num_seconds());
        Ok(Freshness {
            live_snapshot: Some(v.version),
            manifest_seq: Some(m.seq),
            materialized_at,
            age_seconds,
            ttl_seconds: ttl,
            rows: Some(v.rows),
        })
    }
}

/// An edge as the fleet view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeStatus {
    #[serde(flatten)]
    pub record: fstore_registry::EdgeRecord,
    /// `up` while it reports, `down` after it missed [`MISSED_HEARTBEATS`] in a row.
    pub status: &'static str,
    pub seconds_since_seen: i64,
}

/// The longest heartbeat interval accepted: an hour (edges clamp theirs to 30 s).
const MAX_HEARTBEAT_MS: u64 = 3_600_000;

/// Heartbeats an edge may miss before it is shown down: one late report is noise, three are not.
pub const MISSED_HEARTBEATS: i64 = 3;

impl ControlPlane {
    /// Records an edge's heartbeat.
    pub async fn heartbeat(&self, h: &fstore_registry::EdgeHeartbeat) -> Result<(), ControlError> {
        if !(1..=MAX_HEARTBEAT_MS).contains(&h.interval_ms) {
            return Err(ControlError::BadRequest(format!(
                "`interval_ms` must be 1 to {MAX_HEARTBEAT_MS}"
            )));
        }
        for (what, v) in [("region", &h.region), ("address", &h.address)] {
            if v.len() > 500 {
                return Err(ControlError::BadRequest(format!(
                    "`{what}` is over 500 characters"
                )));
            }
        }
        if h.views.len() > 10_000 {
            return Err(ControlError::BadRequest(
                "`views` lists over 10000 slots".into(),
            ));
        }
        crate::serving::validate_serving(h)?;
        self.registry().record_heartbeat(h).await?;
        self.record_serving(h).await
    }

    /// Tells every edge that is up that version `seq` was published, so it polls now rather
    /// than at its next interval. Best effort and bounded (one second per edge, all at once):
    /// an edge that misses it still polls.
    pub(crate) async fn notify_edges(&self, seq: u64) {
        let edges = match self.edges().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list edges to notify of a publish");
                return;
            }
        };
        let targets: Vec<String> = edges
            .into_iter()
            .filter(|e| e.status == "up")
            .map(|e| e.record.heartbeat.address)
            .filter(|a| a.starts_with("http://") || a.starts_with("https://"))
            .collect();
        let sends = targets.iter().map(|address| {
            self.http()
                .post(format!("{}/v1/notify", address.trim_end_matches('/')))
                .json(&serde_json::json!({ "manifest_seq": seq }))
                .send()
        });
        for (address, sent) in targets.iter().zip(futures::future::join_all(sends).await) {
            if let Err(e) = sent.and_then(reqwest::Response::error_for_status) {
                tracing::info!(edge = %address, error = %e, "could not notify an edge of a publish; it will poll");
            }
        }
    }

    /// The fleet: every edge that reported, up or down by how long ago it last did.
    pub async fn edges(&self) -> Result<Vec<EdgeStatus>, ControlError> {
        let now = chrono::Utc::now();
        Ok(self
            .registry()
            .edges()
            .await?
            .into_iter()
            .map(|record| {
                let since = chrono::DateTime::parse_from_rfc3339(&record.last_seen)
                    .map(|t| (now - t.to_utc()).num_milliseconds())
                    .unwrap_or(i64::MAX);
                // At least a second per heartbeat, so a fast-polling edge is not flagged down
                // by a scheduling hiccup.
                let interval = i64::try_from(record.heartbeat.interval_ms).unwrap_or(i64::MAX);
                let allowed = interval.max(1_000).saturating_mul(MISSED_HEARTBEATS);
                EdgeStatus {
                    status: if since <= allowed { "up" } else { "down" },
                    seconds_since_seen: since / 1_000,
                    record,
                }
            })
            .collect())
    }
}

/// How many past snapshots per view the lineage graph shows besides the live ones.
const RECENT_SNAPSHOTS: usize = 3;

/// The registry's name for the snapshot behind a manifest slot: the key
/// (`snapshots/<view>/<version>.fss`) says it for certain; without one, a rollback slot
/// (`customer_rfm#41`) serves a snapshot of the view before the `#`.
fn snapshot_view<'a>(slot: &'a str, key: &'a str) -> &'a str {
    crate::governance::key_view(key).unwrap_or_else(|| slot.split('#').next().unwrap_or(slot))
}
