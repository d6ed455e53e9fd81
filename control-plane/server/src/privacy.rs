//! Privacy obligations: erasing one customer everywhere the store keeps them, deleting raw data
//! past its source's retention, and the compliance report on PII features.

use std::collections::BTreeMap;

use fstore_access::{Action, Resource, ResourceKind};
use fstore_registry::AuditQuery;
use fstore_spec::{Definitions, SourceFormat};
use serde::Serialize;

use crate::access::now_text;
use crate::{ControlError, ControlPlane, Principal, RunMode};

/// Where an entity was removed from.
#[derive(Debug, Clone, Serialize)]
pub struct EraseReport {
    pub entity: String,
    pub key: String,
    pub value: String,
    /// Source files the entity's rows were removed from.
    pub files: Vec<fstore_offline::ErasedFile>,
    pub rows_removed: u64,
    /// Sources that could not be erased here, and why (a PostgreSQL query: erase upstream).
    pub not_erased: Vec<NotErased>,
    /// The views re-materialized in full, so the new live snapshot no longer holds it.
    pub snapshots: Vec<ErasedSnapshot>,
    /// Older published versions keep the entity until retention prunes them.
    pub older_versions_kept: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotErased {
    pub source: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErasedSnapshot {
    pub view: String,
    pub version: u64,
    pub manifest_seq: u64,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionReport {
    pub sources: Vec<SourceRetention>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceRetention {
    pub source: String,
    pub retention_seconds: u64,
    pub cutoff: String,
    pub deleted: Vec<fstore_offline::ExpiredFile>,
    /// Files without date partitions: they cannot be dated by name and are kept.
    pub undated_files_kept: usize,
}

/// One PII feature in the compliance report.
#[derive(Debug, Clone, Serialize)]
pub struct PiiFeature {
    pub view: String,
    pub feature: String,
    pub mask: fstore_access::Mask,
    pub owner: String,
    pub tags: Vec<String>,
    pub source: Option<String>,
    pub source_retention_seconds: Option<u64>,
    pub services: Vec<String>,
    /// Active tokens that read it unmasked (`read_online` or `read_offline` and `read_pii`).
    pub tokens_unmasked: Vec<String>,
    /// Active tokens that read it masked only.
    pub tokens_masked: Vec<String>,
    /// Audited reads in the period: requests, and how many were unmasked.
    pub reads: u64,
    pub reads_unmasked: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComplianceReport {
    pub generated_at: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub features: Vec<PiiFeature>,
    /// Erasure requests in the period.
    pub erasures: u64,
}

impl ControlPlane {
    /// Erases the entity with `key = value`: its rows leave every file source of every view
    /// keyed by it, those views are re-materialized in full (a delta cannot delete) and
    /// published, and the request is recorded in the audit log.
    pub async fn erase(
        &self,
        by: &Principal,
        key: &str,
        value: &fstore_offline::KeyValue,
    ) -> Result<EraseReport, ControlError> {
        by.check(Action::Erase, &Resource::project())?;
        let defs = self.registry.definitions().await?;
        let entity = defs
            .entities
            .iter()
            .find(|e| e.join_keys.iter().any(|k| k.name == key))
            .ok_or_else(|| {
                ControlError::BadRequest(format!("no entity has the join key `{key}`"))
            })?;
        if entity.join_keys.len() > 1 {
            return Err(ControlError::BadRequest(format!(
                "entity `{}` has a composite key; erasing by one of its columns is not supported",
                entity.name
            )));
        }
        // The value as the join key is declared, whatever it looked like on the command line.
        let declared = entity
            .join_keys
            .iter()
            .find(|k| k.name == key)
            .map(|k| k.ty);
        let value = &match (declared, value) {
            (Some(fstore_snapshot::KeyType::Int64), fstore_offline::KeyValue::Str(s)) => {
                fstore_offline::KeyValue::Int(s.parse().map_err(|_| {
                    ControlError::BadRequest(format!("`{key}` is an integer key; `{s}` is not one"))
                })?)
            }
            (Some(fstore_snapshot::KeyType::String), fstore_offline::KeyValue::Int(i)) => {
                fstore_offline::KeyValue::Str(i.to_string())
            }
            (_, v) => v.clone(),
        };
        let views: Vec<&fstore_spec::FeatureView> = defs
            .feature_views
            .iter()
            .filter(|v| v.entities.contains(&entity.name))
            .collect();
        let mut report = EraseReport {
            entity: entity.name.clone(),
            key: key.to_string(),
            value: value.to_string(),
            files: Vec::new(),
            rows_removed: 0,
            not_erased: Vec::new(),
            snapshots: Vec::new(),
            older_versions_kept: 0,
        };
        let mut sources: Vec<&str> = views.iter().map(|v| v.source.as_str()).collect();
        sources.sort_unstable();
        sources.dedup();
        for name in sources {
            let Some(source) = defs.source(name) else {
                continue;
            };
            if source.format == SourceFormat::Postgres {
                report.not_erased.push(NotErased {
                    source: name.to_string(),
                    reason:
                        "a PostgreSQL query, read only by fstore: delete the rows in the database"
                            .into(),
                });
                continue;
            }
            let files = match fstore_offline::erase_rows(source, key, value).await {
                Ok(f) => f,
                Err(e) => {
                    // Files already rewritten stay so; the attempt is on record either way.
                    let message = format!("erasing from `{name}`: {e}");
                    self.audit(
                        &by.actor,
                        "erase.failed",
                        &format!("entity/{}", entity.name),
                        serde_json::json!({
                            "key": key,
                            "value": value.to_string(),
                            "files": report.files.iter().map(|f| &f.file).collect::<Vec<_>>(),
                            "error": message,
                        }),
                    )
                    .await?;
                    return Err(ControlError::BadRequest(message));
                }
            };
            report.rows_removed += files.iter().map(|f| f.rows_removed).sum::<u64>();
            report.files.extend(files);
        }
        let names: Vec<String> = views.iter().map(|v| v.name.clone()).collect();
        if !names.is_empty() && self.store.live_manifest().await?.is_some() {
            for r in self.materialize(&names, &by.actor, RunMode::Full).await? {
                report.snapshots.push(ErasedSnapshot {
                    view: r.view,
                    version: r.version,
                    manifest_seq: r.manifest_seq,
                });
            }
        }
        report.older_versions_kept = self
            .store
            .versions()
            .await
            .map(|v| v.items.len().saturating_sub(1))
            .unwrap_or(0);
        self.audit(
            &by.actor,
            "erase",
            &format!("entity/{}", entity.name),
            serde_json::json!({
                "key": key,
                "value": value.to_string(),
                "rows_removed": report.rows_removed,
                "files": report.files.iter().map(|f| &f.file).collect::<Vec<_>>(),
                "not_erased": report.not_erased.iter().map(|n| &n.source).collect::<Vec<_>>(),
                "snapshots": report.snapshots.iter().map(|s| format!("{}@{}", s.view, s.version)).collect::<Vec<_>>(),
            }),
        )
        .await?;
        Ok(report)
    }

    /// Deletes the date partitions of every source with a retention that ended before it.
    pub async fn apply_retention(&self, by: &Principal) -> Result<RetentionReport, ControlError> {
        by.check(Action::Erase, &Resource::project())?;
        let defs = self.registry.definitions().await?;
        let now = chrono::Utc::now();
        let mut out = RetentionReport {
            sources: Vec::new(),
        };
        for s in &defs.sources {
            let Some(secs) = s.retention_seconds else {
                continue;
            };
            // A retention longer than the calendar reaches back keeps everything.
            let Some(cutoff) = i64::try_from(secs)
                .ok()
                .and_then(chrono::TimeDelta::try_seconds)
                .and_then(|d| now.checked_sub_signed(d))
            else {
                continue;
            };
            let (deleted, undated) =
                fstore_offline::expire_partitions(s, cutoff.timestamp_micros())
                    .await
                    .map_err(|e| {
                        ControlError::BadRequest(format!("retention of `{}`: {e}", s.name))
                    })?;
            if !deleted.is_empty() {
                self.audit(
                    &by.actor,
                    "retention",
                    &format!("source/{}", s.name),
                    serde_json::json!({
                        "cutoff": cutoff.to_rfc3339(),
                        "files": deleted.iter().map(|f| &f.file).collect::<Vec<_>>(),
                    }),
                )
                .await?;
            }
            out.sources.push(SourceRetention {
                source: s.name.clone(),
                retention_seconds: secs,
                cutoff: cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                deleted,
                undated_files_kept: undated,
            });
        }
        Ok(out)
    }

    /// Every PII feature: its mask, owner, source and retention, the services that include it,
    /// the tokens that can read it (masked or not), and its audited reads in the period.
    pub async fn compliance_report(
        &self,
        by: &Principal,
        since: Option<String>,
        until: Option<String>,
    ) -> Result<ComplianceReport, ControlError> {
        by.check(Action::ReadAudit, &Resource::project())?;
        let defs = self.registry.definitions().await?;
        let privacy = Self::privacy(&defs);
        // The tokens that work now, with their roles.
        let now = now_text();
        let mut holders: Vec<(String, fstore_access::Role)> = Vec::new();
        for t in self.registry.tokens().await? {
            if crate::access::token_status(&t, &now) != "active" {
                continue;
            }
            if let Some(role) = self.role(&t.role).await? {
                holders.push((t.name, role));
            }
        }
        // Reads in the period, per view: (requests, unmasked) per feature.
        let mut reads: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        let mut erasures = 0u64;
        let mut after = 0u64;
        loop {
            let page = self
                .registry
                .audit(&AuditQuery {
                    after: Some(after),
                    since: since.clone(),
                    until: until.clone(),
                    limit: 10_000,
                    ..AuditQuery::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in &page {
                match r.action.as_str() {
                    "erase" => erasures += 1,
                    "read_pii" => {
                        let view = r
                            .resource
                            .strip_prefix("feature_view/")
                            .unwrap_or(&r.resource);
                        let d: serde_json::Value =
                            serde_json::from_str(&r.detail).unwrap_or_default();
                        let masked = d["masked"].as_bool().unwrap_or(true);
                        // An edge folds a caller's repeated reads into one record.
                        let requests = d["requests"].as_u64().unwrap_or(1);
                        for f in d["features"].as_array().into_iter().flatten() {
                            let Some(f) = f.as_str() else { continue };
                            let e = reads.entry((view.to_string(), f.to_string())).or_default();
                            e.0 += requests;
                            e.1 += if masked { 0 } else { requests };
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut features = Vec::new();
        for (view_name, masks) in &privacy {
            let view = defs.view(view_name);
            let od = defs.on_demand_views.iter().find(|o| &o.name == view_name);
            let (kind, view_tags, view_owner, defs_features, source) = match (view, od) {
                (Some(v), _) => (
                    ResourceKind::FeatureView,
                    v.tags.clone(),
                    v.owner.clone(),
                    &v.features,
                    Some(v.source.clone()),
                ),
                (None, Some(o)) => (
                    ResourceKind::OnDemandView,
                    o.tags.clone(),
                    o.owner.clone(),
                    &o.features,
                    None,
                ),
                (None, None) => continue,
            };
            let r = Resource::new(kind, view_name, &view_tags);
            let readers = |pii: bool| -> Vec<String> {
                holders
                    .iter()
                    .filter(|(_, role)| {
                        (role.allows(Action::ReadOnline, &r)
                            || role.allows(Action::ReadOffline, &r))
                            && role.allows(Action::ReadPii, &r) == pii
                    })
                    .map(|(n, _)| n.clone())
                    .collect()
            };
            for (feature, mask) in masks {
                let f = defs_features.iter().find(|f| &f.name == feature);
                let (n, unmasked) = reads
                    .get(&(view_name.clone(), feature.clone()))
                    .copied()
                    .unwrap_or_default();
                features.push(PiiFeature {
                    view: view_name.clone(),
                    feature: feature.clone(),
                    mask: *mask,
                    owner: f
                        .map(|f| f.owner.clone())
                        .filter(|o| !o.is_empty())
                        .unwrap_or_else(|| view_owner.clone()),
                    tags: f.map(|f| f.tags.clone()).unwrap_or_default(),
                    source_retention_seconds: source
                        .as_deref()
                        .and_then(|s| defs.source(s))
                        .and_then(|s| s.retention_seconds),
                    source: source.clone(),
                    services: services_reading(&defs, view_name, feature),
                    tokens_unmasked: readers(true),
                    tokens_masked: readers(false),
                    reads: n,
                    reads_unmasked: unmasked,
                });
            }
        }
        Ok(ComplianceReport {
            generated_at: now,
            since,
            until,
            features,
            erasures,
        })
    }
}

fn services_reading(defs: &Definitions, view: &str, feature: &str) -> Vec<String> {
    defs.feature_services
        .iter()
        .filter(|s| {
            s.features
                .iter()
                .any(|r| r.base_view() == view && r.feature == feature)
        })
        .map(|s| s.name.clone())
        .collect()
}
