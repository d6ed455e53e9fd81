use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use fstore_registry::{NewChange, Registry, SnapshotRecord};
use fstore_snapshot::{FeatureRef, Field, Snapshot};
use fstore_spec::{Definitions, Plan};
use fstore_storage::{
    MANIFEST_FORMAT, Manifest, ManifestOnDemand, ManifestView, StorageError, Store, Versions,
    snapshot_key,
};
use serde::{Deserialize, Serialize};

use crate::ControlError;
use crate::changes::Dependent;
use crate::incremental::{Plan as RunPlan, RunMode, SnapshotCache};
use crate::transforms::Transforms;

/// Where the control plane keeps its state.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// `sqlite://…`, a file path, or `postgres://…`.
    pub database_url: String,
    /// Where snapshots are published.
    pub store_url: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How many published versions object storage keeps (0 keeps all): after each publish,
    /// older manifests and the snapshots only they name are deleted.
    pub retain_versions: usize,
    /// The scheduler, worker and job-run settings.
    pub jobs: crate::jobs::JobSettings,
    /// Where alerts are delivered.
    pub alerts: crate::alerts::AlertSettings,
    /// Whether REST callers need a token. Off, every caller acts as an anonymous admin (the
    /// quickstart, in-process tests).
    pub auth: bool,
}

/// The default of [`ControlConfig::retain_versions`]: enough to step back through a few weeks
/// of daily publishes, small enough that a store does not grow without bound.
pub const DEFAULT_RETAIN_VERSIONS: usize = 20;

/// What `apply` did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub plan: Plan,
    pub applied: bool,
    /// Set when the apply republished the live manifest (services changed or views removed).
    pub republished_manifest: Option<u64>,
    /// What consumes the plan's breaking changes: a real apply is refused while this is not
    /// empty, unless forced.
    pub breaking_dependents: Vec<Dependent>,
    /// Services reading features tagged `deprecated` or `experimental`.
    pub warnings: Vec<String>,
}

/// How to apply: who, why, and whether to go ahead despite breaking changes in use.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Only plan.
    pub dry_run: bool,
    /// Apply even when a breaking change reaches a consumer.
    pub force: bool,
    pub author: String,
    /// Recorded with every version the apply creates, and in the change log.
    pub message: String,
    /// Who applies: each change is checked against their permissions before anything is
    /// written. None skips the check (in-process callers that are the store's owner).
    pub principal: Option<crate::Principal>,
}

impl ApplyOptions {
    pub fn new(author: impl Into<String>) -> Self {
        Self {
            dry_run: false,
            force: false,
            author: author.into(),
            message: "fstore apply".into(),
            principal: None,
        }
    }
}

/// One view's materialization.
#[derive(Debug, Clone, Serialize)]
pub struct MaterializeReport {
    /// The slot: the view, or `view@vN` for a definition version a service pins.
    pub view: String,
    /// The snapshot written (for `unchanged`, the slot's live version).
    pub version: u64,
    pub key: String,
    /// The registry version of the view's definition the snapshot was computed with.
    pub definition_version: u64,
    /// `full`, `delta` (only the entities that changed, on top of the live chain),
    /// `compacted` (the chain and this run's changes merged into a full snapshot) or
    /// `unchanged` (an incremental run that found nothing new; nothing written).
    pub mode: String,
    /// For a delta: the full snapshot its chain builds on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_version: Option<u64>,
    /// Source files read.
    pub files: usize,
    /// Source rows read, rejected ones included.
    pub rows_read: u64,
    /// Source rows set aside as unusable (listed in `quarantine`).
    pub rows_rejected: u64,
    /// Entities in the snapshot written (for a delta, the entities that changed).
    pub rows_written: u64,
    pub rows_expired: u64,
    /// Object key of the list of rejected rows, if any were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
    pub size_bytes: u64,
    pub duration_ms: u64,
    pub manifest_seq: u64,
}

/// A training-set request: entity rows in, features joined point-in-time correctly, out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoricalParams {
    /// Entity rows (join keys and a timestamp column): a Parquet or CSV file, local path or
    /// object-store URL.
    pub entities: String,
    #[serde(default)]
    pub feature_service: Option<String>,
    /// `view:feature` references, when no service is named.
    #[serde(default)]
    pub features: Vec<String>,
    /// Where to write the training set: a local path or object-store URL; `.csv` writes CSV,
    /// anything else Parquet. An existing file is replaced.
    pub out: String,
    #[serde(default)]
    pub full_feature_names: bool,
    #[serde(default = "default_timestamp_column")]
    pub timestamp_column: String,
    /// Who asks: PII features they may not read unmasked are masked as at the edge. None
    /// (an in-process owner) gets the stored values.
    #[serde(skip)]
    pub principal: Option<crate::Principal>,
}

fn default_timestamp_column() -> String {
    "event_timestamp".into()
}

/// What a training-set request produced.
#[derive(Debug, Clone, Serialize)]
pub struct HistoricalReport {
    pub out: String,
    pub rows: usize,
    pub columns: Vec<String>,
    pub size_bytes: u64,
    pub duration_ms: u64,
    pub views: Vec<HistoricalView>,
}

/// One view's part of a training set.
#[derive(Debug, Clone, Serialize)]
pub struct HistoricalView {
    pub view: String,
    pub source_rows_read: u64,
    /// Entity rows that found a value in this view (the rest have nulls).
    pub entity_rows_matched: u64,
}

/// A location as a store and a key: `s3://bucket/a/b.parquet` is (`s3://bucket`, `a/b.parquet`).
fn remote(location: &str) -> Option<(String, String)> {
    let (scheme, rest) = location.split_once("://")?;
    if scheme == "file" {
        return None;
    }
    let (bucket, key) = rest.split_once('/')?;
    Some((format!("{scheme}://{bucket}"), key.to_string()))
}

fn local_path(location: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

pub(crate) async fn read_location(location: &str) -> Result<bytes::Bytes, ControlError> {
    match remote(location) {
        Some((root, key)) => Ok(Store::from_url(&root)?.get_bytes(&key).await?),
        None => tokio::fs::read(local_path(location))
            .await
            .map(bytes::Bytes::from)
            .map_err(|e| ControlError::BadRequest(format!("cannot read `{location}`: {e}"))),
    }
}

async fn write_location(location: &str, bytes: Vec<u8>) -> Result<(), ControlError> {
    match remote(location) {
        Some((root, key)) => Ok(Store::from_url(&root)?
            .put_replace(&key, bytes.into())
            .await?),
        None => {
            let path = local_path(location);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await.map_err(|e| {
                    ControlError::BadRequest(format!("cannot create `{}`: {e}", dir.display()))
                })?;
            }
            tokio::fs::write(&path, bytes)
                .await
                .map_err(|e| ControlError::BadRequest(format!("cannot write `{location}`: {e}")))
        }
    }
}

pub(crate) fn is_csv(location: &str) -> bool {
    location.to_ascii_lowercase().ends_with(".csv")
}

/// The control plane's operations, free of HTTP: the REST handlers and the CLI both call these.
pub struct ControlPlane {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) store: Store,
    /// One publish at a time per process; across processes the manifest sequence (allocated
    /// by the registry) and the conditional pointer update keep publishes ordered.
    publish: tokio::sync::Mutex<()>,
    transforms: Transforms,
    jobs_metrics: crate::jobs::JobMetrics,
    /// For notifying edges of a publish; short timeouts, so a dead edge costs little.
    http: reqwest::Client,
    /// This instance's name in registry locks: unique even for two instances in one process.
    pub(crate) holder: String,
    /// Local copies of live snapshots, for incremental runs.
    pub(crate) cache: SnapshotCache,
    /// Opens, resolves and announces alerts.
    pub(crate) alerter: crate::alerts::Alerter,
    /// Signs the access document; loaded from the registry on first use.
    pub(crate) signer: tokio::sync::OnceCell<fstore_access::Signer>,
    /// One access-document write at a time in this process.
    pub(crate) access_publish: tokio::sync::Mutex<()>,
    pub config: ControlConfig,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("store", &self.store)
            .finish()
    }
}

/// How long a publisher holds the registry's publish lock at most: publishing is a manifest
/// write, a pointer move and a retention pass, seconds at worst.
const PUBLISH_LOCK_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a publisher waits for another's publish before giving up.
const PUBLISH_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Numbers control-plane instances within a process, for [`ControlPlane`]'s lock holder name.
static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What one slot's run produced: the manifest entry to publish (None when nothing changed),
/// its report, and its definition version and lineage for the registry.
struct SlotRun {
    mv: Option<ManifestView>,
    report: MaterializeReport,
    record: (u64, serde_json::Value),
    /// The quality gate's verdict on what it publishes.
    quality: Option<crate::quality::Verdict>,
}

/// One snapshot a materialization computes.
struct Target {
    slot: String,
    /// The definitions to compute it with (for a pinned version, with the old view as `slot`).
    defs: Definitions,
    definition_version: u64,
}

/// Version `n` of a view from its history, named as its slot (`customer_rfm@v3`), so the
/// offline engine computes it like any other view.
fn pinned_view(
    slot: &str,
    n: u64,
    history: &[fstore_registry::ObjectVersion],
) -> Option<fstore_spec::FeatureView> {
    let spec = history.iter().find(|v| v.version == n)?.spec.clone()?;
    let mut view: fstore_spec::FeatureView = serde_json::from_value(spec).ok()?;
    view.name = slot.to_string();
    Some(view)
}

/// Whether a diff path is documentation only: the view's or one feature's description, owner
/// or tags (`description`, `features.spend_30d.tags`), never a feature named `tags`.
fn is_metadata_path(path: &str) -> bool {
    const META: [&str; 3] = ["description", "owner", "tags"];
    match path.split('.').collect::<Vec<_>>().as_slice() {
        [field] => META.contains(field),
        ["features", _, field] => META.contains(field),
        _ => false,
    }
}

/// The manifest slot of a rollback: `customer_rfm#41`, or `customer_rfm@v3#customer_rfm/12`
/// when a pinned slot is rolled back to a snapshot of its base view (whose versions are counted
/// apart from the slot's own).
pub(crate) fn rollback_slot(view: &str, snapshot_view: &str, version: u64) -> String {
    if view == snapshot_view {
        format!("{view}#{version}")
    } else {
        format!("{view}#{snapshot_view}/{version}")
    }
}

/// The views a materialization of `views` covers: all of them when empty; each must exist.
fn view_names(defs: &Definitions, views: &[String]) -> Result<Vec<String>, ControlError> {
    let names: Vec<String> = if views.is_empty() {
        defs.feature_views.iter().map(|v| v.name.clone()).collect()
    } else {
        for v in views {
            if defs.view(v).is_none() {
                return Err(ControlError::NotFound {
                    kind: "feature view".into(),
                    name: v.clone(),
                });
            }
        }
        views.to_vec()
    };
    if names.is_empty() {
        return Err(ControlError::BadRequest(
            "no feature views are defined; apply a features.yaml first".into(),
        ));
    }
    Ok(names)
}

impl ControlPlane {
    /// Splits the snapshot just stored at `key` (`head` + `body`) into `view.shards` shards
    /// by entity-key hash and stores them beside it, for edges that hold only some shards.
    /// Nothing for a view that is not sharded. Of a delta, shards no changed entity falls in
    /// are not written: edges holding them have nothing to download.
    async fn put_shards(
        &self,
        view: &fstore_spec::FeatureView,
        key: &str,
        head: &bytes::Bytes,
        body: &bytes::Bytes,
        delta: bool,
    ) -> Result<Vec<fstore_storage::ManifestShard>, ControlError> {
        let Some(count) = view.shards else {
            return Ok(Vec::new());
        };
        let fail = |message: String| ControlError::Materialization {
            view: view.name.clone(),
            message,
        };
        let bytes = [head.as_ref(), body.as_ref()].concat();
        let parts = tokio::task::spawn_blocking(move || {
            let snapshot = Snapshot::from_bytes(bytes)?;
            fstore_snapshot::split(&snapshot, count)
        })
        .await
        .map_err(|e| fail(format!("the sharding task failed: {e}")))?
        .map_err(|e| {
            fail(format!(
                "cannot split the snapshot into {count} shards: {e}"
            ))
        })?;
        let mut shards = Vec::with_capacity(parts.len());
        let mut puts = Vec::with_capacity(parts.len());
        for (index, [h, b]) in (0u32..).zip(parts) {
            let rows = fstore_snapshot::format::row_count(&h).unwrap_or_default();
            if delta && rows == 0 {
                continue;
            }
            let checksum = fstore_snapshot::format::body_checksum(&h).unwrap_or_default();
            let shard = fstore_storage::ManifestShard {
                index,
                count,
                key: fstore_storage::shard_key(key, index, count),
                size_bytes: (h.len() + b.len()) as u64,
                rows,
                checksum: format!("{checksum:016x}"),
            };
            puts.push((
                shard.key.clone(),
                vec![bytes::Bytes::from(h), bytes::Bytes::from(b)],
            ));
            shards.push(shard);
        }
        // Written before the manifest that names them, like every snapshot.
        futures::future::try_join_all(
            puts.into_iter()
                .map(|(k, parts)| async move { self.store.put_new_parts(&k, parts).await }),
        )
        .await?;
        Ok(shards)
    }
}

/// A recorded snapshot as a manifest serves it.
fn manifest_view(rec: SnapshotRecord) -> ManifestView {
    ManifestView {
        version: rec.version,
        key: rec.key,
        size_bytes: rec.size_bytes,
        rows: rec.rows,
        checksum: rec.checksum,
        deltas: Vec::new(),
        shards: Vec::new(),
    }
}

/// The full snapshot a recorded delta builds on, if `rec` is a delta.
fn delta_base(rec: &SnapshotRecord) -> Option<u64> {
    if rec.lineage.get("mode").and_then(|m| m.as_str()) != Some("delta") {
        return None;
    }
    rec.lineage.get("base_version").and_then(|v| v.as_u64())
}

fn describe_reports(reports: &[MaterializeReport]) -> String {
    reports
        .iter()
        .filter(|r| r.mode != "unchanged")
        .map(|r| format!("{} v{} ({})", r.view, r.version, r.mode))
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The key column types of a view's entities, for rendering sample keys.
fn profile_key_types(
    defs: &Definitions,
    view: &fstore_spec::FeatureView,
) -> Vec<fstore_snapshot::KeyType> {
    defs.view_keys(view).into_iter().map(|f| f.ty).collect()
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl ControlPlane {
    pub async fn open(config: ControlConfig) -> Result<Self, ControlError> {
        config.jobs.validate().map_err(ControlError::BadRequest)?;
        config.alerts.validate().map_err(ControlError::BadRequest)?;
        let registry = fstore_registry::open(&config.database_url).await?;
        let store = Store::from_url(&config.store_url)?;
        let instance = INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Per process and instance, so two control planes on one machine never read each
        // other's half-written downloads. Files from a local store are hard links.
        let cache = SnapshotCache::new(
            std::env::temp_dir().join(format!("fstore-control-{}-{instance}", std::process::id())),
        );
        Ok(Self {
            alerter: crate::alerts::Alerter::new(registry.clone(), config.alerts.clone()),
            registry,
            store,
            publish: tokio::sync::Mutex::new(()),
            transforms: Transforms::new()?,
            jobs_metrics: crate::jobs::JobMetrics::default(),
            holder: format!("{}#{instance}", config.jobs.replica),
            cache,
            signer: tokio::sync::OnceCell::new(),
            access_publish: tokio::sync::Mutex::new(()),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(1))
                .build()
                .map_err(|e| {
                    ControlError::BadRequest(format!("cannot build an HTTP client: {e}"))
                })?,
            config,
        })
    }

    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn jobs_metrics(&self) -> &crate::jobs::JobMetrics {
        &self.jobs_metrics
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Parses a `features.yaml` text; relative source paths resolve against `base_dir`.
    pub fn parse(
        yaml: &str,
        base_dir: Option<&std::path::Path>,
    ) -> Result<Definitions, ControlError> {
        fstore_spec::parse_features_yaml(yaml, base_dir).map_err(ControlError::InvalidDefinitions)
    }

    /// What applying `defs` would change. Transforms are resolved first (loaded, checked,
    /// SQL compiled; nothing stored), so the plan compares what would really be applied.
    pub async fn plan(&self, defs: &Definitions) -> Result<Plan, ControlError> {
        let mut resolved = defs.clone();
        self.transforms.resolve(&mut resolved, None).await?;
        self.plan_resolved(&resolved).await
    }

    async fn plan_resolved(&self, resolved: &Definitions) -> Result<Plan, ControlError> {
        let current = self.registry.definitions().await?;
        Ok(Plan::between(&current, resolved))
    }

    pub fn transforms(&self) -> &Transforms {
        &self.transforms
    }

    /// Validates and (unless `dry_run`) applies `defs` as the complete set of definitions.
    /// Transforms are loaded and checked, and SQL features compiled, in both cases; only a real
    /// apply stores the components.
    pub async fn apply(
        &self,
        defs: &Definitions,
        opts: &ApplyOptions,
    ) -> Result<ApplyReport, ControlError> {
        defs.validate().map_err(ControlError::InvalidDefinitions)?;
        // Permissions first: resolving reads and compiles components (and stores them), which
        // nobody without the right to change these definitions may make happen.
        if let Some(p) = &opts.principal {
            if opts.dry_run {
                p.check(
                    fstore_access::Action::Describe,
                    &fstore_access::Resource::project(),
                )?;
            } else if !p.may_change_definitions() {
                // Nothing to resolve for someone who may change nothing: refuse before any
                // component is read. The unresolved plan differs from the real one only in
                // transform digests, so the refusal names a change of the request: a create
                // or delete first, else an update.
                let mut unresolved = self.plan_resolved(defs).await?;
                unresolved.changes.sort_by_key(|c| match c.action {
                    fstore_spec::Action::Create => 0,
                    fstore_spec::Action::Delete => 1,
                    fstore_spec::Action::Update => 2,
                });
                self.authorize_plan(p, &unresolved, defs).await?;
            }
        }
        let mut resolved = defs.clone();
        self.transforms
            .resolve(&mut resolved, (!opts.dry_run).then_some(&self.store))
            .await?;
        let defs = &resolved;
        self.check_pins(defs).await?;
        let plan = self.plan_resolved(defs).await?;
        if let Some(p) = &opts.principal {
            if opts.dry_run {
                p.check(
                    fstore_access::Action::Describe,
                    &fstore_access::Resource::project(),
                )?;
            } else {
                self.authorize_plan(p, &plan, defs).await?;
            }
        }
        let dependents = crate::changes::breaking_dependents(&plan, defs);
        let warnings = crate::changes::tag_warnings(defs);
        if opts.dry_run || plan.is_empty() {
            return Ok(ApplyReport {
                plan,
                applied: false,
                republished_manifest: None,
                breaking_dependents: dependents,
                warnings,
            });
        }
        if !dependents.is_empty() && !opts.force {
            return Err(crate::changes::refusal(
                "breaking_change",
                format!(
                    "this apply makes breaking changes that {} still consume{}; pin the \
                     consumers to the current version (`view@vN:feature`) first, or force it",
                    crate::changes::describe(&dependents),
                    if dependents.len() == 1 { "s" } else { "" },
                ),
                &plan,
                &dependents,
            ));
        }
        self.registry
            .apply(defs, &opts.author, &opts.message)
            .await?;
        // Edges learn feature services from the manifest, so a live manifest whose services
        // or views no longer match the registry is republished right away.
        let republished = self.republish_if_stale(defs).await?;
        // Tags and masks travel in the access document: edges get the new ones at once.
        self.publish_access().await?;
        Ok(ApplyReport {
            plan,
            applied: true,
            republished_manifest: republished,
            breaking_dependents: dependents,
            warnings,
        })
    }

    /// Every `view@vN` a service pins must name a stored version of that view that has the
    /// feature: the registry's history, not the definitions, knows.
    async fn check_pins(&self, defs: &Definitions) -> Result<(), ControlError> {
        let mut errs = Vec::new();
        let mut histories = std::collections::HashMap::new();
        for s in &defs.feature_services {
            for r in &s.features {
                let Ok(Some(n)) = r.pin() else { continue };
                let base = r.base_view().to_string();
                if !histories.contains_key(&base) {
                    let h = self
                        .registry
                        .history(fstore_spec::ObjectKind::FeatureView, &base)
                        .await?;
                    histories.insert(base.clone(), h);
                }
                let spec = histories[&base]
                    .iter()
                    .find(|v| v.version == n)
                    .and_then(|v| v.spec.as_ref());
                let key = format!("feature_services.{}.features.{r}", s.name);
                let has = crate::changes::stored_feature_names(spec).contains(r.feature.as_str());
                match spec {
                    None => errs.push(
                        fstore_spec::SpecError::new(format!(
                            "feature service `{}` pins `{r}`, but feature view `{base}` has no version {n} (see `fstore history view {base}`)",
                            s.name
                        ))
                        .key(key),
                    ),
                    Some(_) if !has => errs.push(
                        fstore_spec::SpecError::new(format!(
                            "feature service `{}` pins `{r}`, but version {n} of `{base}` has no feature `{}`",
                            s.name, r.feature
                        ))
                        .key(key),
                    ),
                    Some(_) => {}
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ControlError::InvalidDefinitions(errs))
        }
    }

    /// Republishes the live manifest when what it should hold changed (services, views,
    /// rollbacks); returns the new sequence number.
    pub(crate) async fn republish_if_stale(
        &self,
        defs: &Definitions,
    ) -> Result<Option<u64>, ControlError> {
        let guard = self.lock_publish().await?;
        let published = self.republish_locked(defs).await;
        self.unlock_publish(guard).await;
        let seq = published?;
        if let Some(seq) = seq {
            self.notify_edges(seq).await;
        }
        Ok(seq)
    }

    async fn republish_locked(&self, defs: &Definitions) -> Result<Option<u64>, ControlError> {
        let Some(live) = self.store.live_manifest().await? else {
            return Ok(None);
        };
        let next = self
            .next_manifest(Some(&live), defs, BTreeMap::new())
            .await?;
        if next.views == live.views
            && next.services == live.services
            && next.on_demand == live.on_demand
            && next.transforms == live.transforms
        {
            return Ok(None);
        }
        self.publish_and_prune(&next).await?;
        Ok(Some(next.seq))
    }

    /// Takes the right to publish: this process's mutex, then the registry's `publish` lock,
    /// which serializes publishers across processes (replicas, the CLI). Two publishers
    /// building from the same live manifest would otherwise each publish their own views on
    /// top of it, the later undoing the earlier.
    async fn lock_publish(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, ControlError> {
        let guard = self.publish.lock().await;
        let deadline = Instant::now() + PUBLISH_LOCK_WAIT;
        while !self
            .registry
            .try_lock("publish", &self.holder, PUBLISH_LOCK_LEASE)
            .await?
        {
            if Instant::now() > deadline {
                return Err(ControlError::Conflict {
                    code: "publish_busy",
                    message: format!(
                        "another process has held the publish lock for over {} s",
                        PUBLISH_LOCK_WAIT.as_secs()
                    ),
                    details: serde_json::Value::Null,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(guard)
    }

    /// Releases what [`Self::lock_publish`] took. A failed release is logged: the lease
    /// lapses on its own.
    async fn unlock_publish(&self, guard: tokio::sync::MutexGuard<'_, ()>) {
        if let Err(e) = self.registry.unlock("publish", &self.holder).await {
            tracing::warn!(error = %e, "could not release the publish lock; it lapses by itself");
        }
        drop(guard);
    }

    /// Publishes `manifest`, then applies retention. Call with the publish lock held. A failed
    /// retention pass is logged and left for the next publish: the publish itself succeeded.
    async fn publish_and_prune(&self, manifest: &Manifest) -> Result<(), ControlError> {
        self.store.publish(manifest).await?;
        match self.store.prune(self.config.retain_versions).await {
            Ok(r) if r.manifests.is_empty() && r.snapshots.is_empty() => {}
            Ok(r) => tracing::info!(
                manifests = ?r.manifests,
                snapshots = r.snapshots.len(),
                keep = self.config.retain_versions,
                "retention deleted old published versions"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                seq = manifest.seq,
                "retention failed after a successful publish; the next publish tries again"
            ),
        }
        Ok(())
    }

    /// The published versions object storage still keeps, newest first.
    pub async fn versions(&self) -> Result<Versions, ControlError> {
        Ok(self.store.versions().await?)
    }

    /// The manifest of published version `seq`; a version not kept (pruned, never published)
    /// is a not-found that says why.
    pub async fn version(&self, seq: u64) -> Result<Manifest, ControlError> {
        match self.store.manifest_at(seq).await {
            Ok(m) => Ok(m),
            Err(e @ (StorageError::VersionNotKept { .. } | StorageError::NothingPublished(_))) => {
                Err(ControlError::VersionNotFound(e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A manifest with the live views (minus views no longer defined or pinned) overlaid with
    /// `new_views`, plus the snapshots services are rolled back to, and the registry's services
    /// restricted to what those views can serve.
    ///
    /// A manifest view is a slot: `customer_rfm` (the current definition), `customer_rfm@v3`
    /// (definition version 3, which some service pins, materialized side by side) or
    /// `customer_rfm#41` (snapshot 41, which a service was rolled back to). A service's
    /// references are rewritten to the slots it reads, so an edge needs no notion of either.
    async fn next_manifest(
        &self,
        live: Option<&Manifest>,
        defs: &Definitions,
        new_views: BTreeMap<String, ManifestView>,
    ) -> Result<Manifest, ControlError> {
        let pinned = crate::changes::pinned_slots(defs);
        let mut views: BTreeMap<String, ManifestView> = live
            .map(|m| {
                m.views
                    .iter()
                    .filter(|(name, _)| defs.view(name).is_some() || pinned.contains(*name))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        views.extend(new_views);
        self.fill_pins(&pinned, &mut views).await?;
        let services = self.service_slots(defs, &mut views).await?;
        // An on-demand view is served once every view it reads is.
        let on_demand: BTreeMap<String, ManifestOnDemand> = defs
            .on_demand_views
            .iter()
            .filter(|v| v.sources.iter().all(|s| views.contains_key(s)))
            .map(|v| {
                let request = v
                    .request_source
                    .as_ref()
                    .and_then(|r| defs.request_source(r))
                    .map(|r| r.fields.clone())
                    .unwrap_or_default();
                let od = ManifestOnDemand {
                    sources: v.sources.clone(),
                    request,
                    features: v
                        .features
                        .iter()
                        .map(|f| Field {
                            name: f.name.clone(),
                            ty: f.ty,
                        })
                        .collect(),
                    steps: v.steps.clone(),
                };
                (v.name.clone(), od)
            })
            .collect();
        let mut served = defs.clone();
        served
            .on_demand_views
            .retain(|v| on_demand.contains_key(&v.name));
        let transforms = self.transforms.artifacts(&self.store, &served).await?;
        let mut kept = BTreeMap::new();
        for (name, refs) in services {
            let servable = |refs: &[FeatureRef], views: &BTreeMap<String, ManifestView>| {
                refs.iter()
                    .all(|r| views.contains_key(&r.view) || on_demand.contains_key(&r.view))
            };
            if servable(&refs, &views) {
                kept.insert(name, refs);
                continue;
            }
            // A slot not materialized yet (a pin of a version never computed, say): the
            // service keeps what the live manifest served it, slots included, rather than
            // vanishing from the edges until the next materialization.
            let Some((old, live_views)) =
                live.and_then(|m| m.services.get(&name).map(|old| (old, &m.views)))
            else {
                continue;
            };
            let mut carried = views.clone();
            for r in old {
                if let Some(v) = live_views.get(&r.view) {
                    carried.entry(r.view.clone()).or_insert_with(|| v.clone());
                }
            }
            if servable(old, &carried) {
                tracing::warn!(service = %name, "a slot it reads has no snapshot yet; serving it as before until the next materialization");
                views = carried;
                kept.insert(name, old.clone());
            }
        }
        let services = kept;
        // Past whatever the store already holds, even if this registry did not write it.
        let floor = live.map_or(0, |m| m.seq);
        let seq = self.registry.next_sequence_above("manifest", floor).await?;
        Ok(Manifest {
            format: MANIFEST_FORMAT,
            seq,
            created_at: now_rfc3339(),
            views,
            services,
            on_demand,
            transforms,
        })
    }

    /// Builds a training set: for each entity row, every requested feature as of the row's
    /// timestamp (see `fstore_offline::historical`), written to `params.out`.
    pub async fn historical(
        &self,
        params: &HistoricalParams,
    ) -> Result<HistoricalReport, ControlError> {
        let started = Instant::now();
        let defs = self.registry.definitions().await?;
        let features: Vec<FeatureRef> = match (&params.feature_service, params.features.is_empty())
        {
            (Some(_), false) => {
                return Err(ControlError::BadRequest(
                    "name a feature_service or features, not both".into(),
                ));
            }
            (Some(s), true) => defs
                .service(s)
                .ok_or_else(|| ControlError::NotFound {
                    kind: "feature service".into(),
                    name: s.clone(),
                })?
                .features
                .clone(),
            (None, false) => params
                .features
                .iter()
                .map(|f| {
                    FeatureRef::parse(f).ok_or_else(|| {
                        ControlError::BadRequest(format!("`{f}` is not a `view:feature` reference"))
                    })
                })
                .collect::<Result<_, _>>()?,
            (None, true) => {
                return Err(ControlError::BadRequest(
                    "name a feature_service or features".into(),
                ));
            }
        };
        if params.out.trim().is_empty() {
            return Err(ControlError::BadRequest("`out` is empty".into()));
        }
        // A pinned reference reads the view as that version defined it.
        let mut defs = defs;
        for r in &features {
            let Ok(Some(n)) = r.pin() else { continue };
            if defs.view(&r.view).is_some() {
                continue;
            }
            let history = self
                .registry
                .history(fstore_spec::ObjectKind::FeatureView, r.base_view())
                .await?;
            let view = pinned_view(&r.view, n, &history).ok_or_else(|| {
                ControlError::BadRequest(format!(
                    "`{r}`: feature view `{}` has no version {n}",
                    r.base_view()
                ))
            })?;
            defs.feature_views.push(view);
        }
        let bytes = read_location(&params.entities).await?;
        let entities = fstore_offline::read_entity_rows(bytes, is_csv(&params.entities))
            .map_err(|e| ControlError::BadRequest(format!("`{}`: {e}", params.entities)))?;
        let (views, on_demand) =
            fstore_offline::views_needed(&defs, &features).map_err(|e| match e {
                fstore_offline::OfflineError::Historical(m) => ControlError::BadRequest(m),
                other => ControlError::BadRequest(other.to_string()),
            })?;
        // The components of every view that runs, loaded once and cached like
        // materialization's.
        let mut transforms = std::collections::HashMap::new();
        for (name, steps) in views
            .iter()
            .map(|v| (&v.name, &v.steps))
            .chain(on_demand.iter().map(|od| (&od.name, &od.steps)))
        {
            let loaded = self.transforms.for_steps(&self.store, steps).await?;
            transforms.insert(name.clone(), loaded);
        }
        let privacy = self.privacy_all(&defs).await?;
        let masks = Self::training_masks(params.principal.as_ref(), &defs, &privacy, &features);
        let pii = Self::pii_features(&privacy, &features);
        let request_names: Vec<String> = features.iter().map(|r| r.feature.clone()).collect();
        let request = fstore_offline::HistoricalRequest {
            features,
            full_feature_names: params.full_feature_names,
            timestamp_column: params.timestamp_column.clone(),
        };
        // CPU-bound for seconds on large requests: keep the REST API answering meanwhile.
        let handle = tokio::runtime::Handle::current();
        let set = tokio::task::spawn_blocking(move || {
            handle.block_on(fstore_offline::historical(
                &defs,
                &entities,
                &request,
                &transforms,
            ))
        })
        .await
        .map_err(|e| ControlError::TrainingSet(format!("the retrieval task failed: {e}")))?
        .map_err(|e| match e {
            fstore_offline::OfflineError::Storage(s) => ControlError::Storage(s),
            // The request itself is wrong (a missing column, an unknown feature...).
            fstore_offline::OfflineError::Historical(m) => ControlError::BadRequest(m),
            // The request is fine but the data behind it is not (a source file, a row).
            other => ControlError::TrainingSet(other.to_string()),
        })?;
        let csv = is_csv(&params.out);
        let set = if masks.is_empty() {
            set
        } else {
            // The requested features are the last columns, in the order asked.
            let first = set.batch.num_columns().saturating_sub(masks.len());
            let at: Vec<(usize, fstore_access::Mask)> = masks
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.map(|m| (first + i, m)))
                .collect();
            let key = self.pii_key_bytes().await?;
            let batch = fstore_offline::mask_columns(&set.batch, &at, &key)
                .map_err(|e| ControlError::TrainingSet(e.to_string()))?;
            fstore_offline::TrainingSet { batch, ..set }
        };
        let bytes = fstore_offline::write_training_set(&set.batch, csv)
            .map_err(|e| ControlError::BadRequest(e.to_string()))?;
        let size = bytes.len() as u64;
        write_location(&params.out, bytes).await?;
        // Reading PII into a training set is a read like any other: audited per view.
        for (view, names) in pii {
            let masked = names
                .iter()
                .any(|i| masks.get(*i).copied().flatten().is_some());
            let features: Vec<&str> = names
                .iter()
                .filter_map(|i| request_names.get(*i).map(String::as_str))
                .collect();
            self.audit(
                params
                    .principal
                    .as_ref()
                    .map_or("in-process", |p| p.actor.as_str()),
                "read_pii",
                &format!("feature_view/{view}"),
                serde_json::json!({
                    "features": features,
                    "masked": masked,
                    "entities": set.batch.num_rows(),
                    "training_set": params.out,
                }),
            )
            .await?;
        }
        Ok(HistoricalReport {
            out: params.out.clone(),
            rows: set.batch.num_rows(),
            columns: set
                .batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            size_bytes: size,
            duration_ms: started.elapsed().as_millis() as u64,
            views: set
                .views
                .into_iter()
                .map(|(view, read, matched)| HistoricalView {
                    view,
                    source_rows_read: read,
                    entity_rows_matched: matched,
                })
                .collect(),
        })
    }

    /// Materializes `views` (all views when empty) now, in this process, and records it as one
    /// job run per view (trigger `manual`), so `fstore jobs` shows it and no scheduled run of
    /// those views can overlap it. Refused (409 `run_active`) while a run of one of them is
    /// queued or running.
    ///
    /// `mode` is [`RunMode::Full`] for a new full snapshot of each view (`fstore materialize`'s
    /// default), or [`RunMode::Auto`] for a delta where the live chain allows one.
    pub async fn materialize(
        &self,
        views: &[String],
        actor: &str,
        mode: RunMode,
    ) -> Result<Vec<MaterializeReport>, ControlError> {
        let defs = self.registry.definitions().await?;
        let names = view_names(&defs, views)?;
        let owner = format!("{}/manual", self.config.jobs.replica);
        let mut runs: Vec<fstore_registry::JobRun> = Vec::new();
        if let Err(e) = self
            .claim_manual(&names, actor, "manual", &owner, &mut runs)
            .await
        {
            self.abandon(&runs, &owner, &e.to_string()).await;
            return Err(e);
        }
        self.run_claimed(&names, &runs, actor, &owner, mode).await
    }

    /// Runs `names`, whose runs this process claimed as `owner`, renewing their leases while
    /// it works, and records how each ended.
    pub(crate) async fn run_claimed(
        &self,
        names: &[String],
        runs: &[fstore_registry::JobRun],
        actor: &str,
        owner: &str,
        mode: RunMode,
    ) -> Result<Vec<MaterializeReport>, ControlError> {
        let lease = self.config.jobs.lease;
        let owner = owner.to_string();
        let ids: Vec<u64> = runs.iter().map(|r| r.id).collect();
        let work = self.materialize_views(names, actor, None, mode);
        tokio::pin!(work);
        let mut renew = tokio::time::interval(lease / 3);
        renew.tick().await;
        // The lease is renewed while the work runs, or another replica would take this
        // process for dead and retry the views.
        let result = loop {
            tokio::select! {
                done = &mut work => break done,
                _ = renew.tick() => {
                    for id in &ids {
                        match self.registry.renew_lease(*id, &owner, lease).await {
                            Ok(true) => {}
                            // Failed by a replica that took this process for dead: the work
                            // goes on (stopping halfway helps nobody) and the record says so.
                            Ok(false) => tracing::warn!(run = id, "lost the lease of a manual run"),
                            Err(e) => tracing::warn!(run = id, error = %e, "could not renew a manual run's lease"),
                        }
                    }
                }
            }
        };
        for run in runs {
            let outcome = crate::jobs::outcome_of(&run.view, result.as_ref());
            // What happened was published or not either way; a record that fails to save
            // must not turn a publish into an error.
            if let Err(e) = self.registry.finish_run(run.id, &owner, &outcome).await {
                tracing::warn!(run = run.id, error = %e, "could not record the end of a manual run");
            }
        }
        result
    }

    /// Queues and claims one run per view for a manual materialization, into `runs`; on an
    /// error the caller abandons what is there.
    pub(crate) async fn claim_manual(
        &self,
        names: &[String],
        actor: &str,
        trigger: &str,
        owner: &str,
        runs: &mut Vec<fstore_registry::JobRun>,
    ) -> Result<(), ControlError> {
        let lease = self.config.jobs.lease;
        for view in names {
            let queued = self
                .registry
                .enqueue_run(&fstore_registry::NewRun {
                    view: view.clone(),
                    trigger: trigger.into(),
                    attempt: 1,
                    scheduled_for: None,
                    // Far ahead, so no worker claims it before this process does below.
                    not_before: Some(
                        (chrono::Utc::now() + chrono::Duration::days(365))
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    ),
                    actor: actor.to_string(),
                })
                .await?;
            let run = crate::jobs::queued_run(view, queued)?;
            match self.registry.claim_run_id(run.id, owner, lease).await {
                Ok(Some(claimed)) => runs.push(claimed),
                other => {
                    // Still queued a year ahead: cancel it so the view is not blocked.
                    let _ = self.registry.request_cancel(run.id, actor).await;
                    other?;
                    return Err(ControlError::Conflict {
                        code: "run_active",
                        message: format!("another process took the run of `{view}`"),
                        details: serde_json::Value::Null,
                    });
                }
            }
        }
        Ok(())
    }

    /// Finishes runs this process claimed but will not execute, as cancelled.
    pub(crate) async fn abandon(&self, runs: &[fstore_registry::JobRun], owner: &str, why: &str) {
        for run in runs {
            let outcome = fstore_registry::RunOutcome {
                status: fstore_registry::RunStatus::Cancelled,
                error: Some(format!("not started: {why}")),
                ..fstore_registry::RunOutcome::default()
            };
            if let Err(e) = self.registry.finish_run(run.id, owner, &outcome).await {
                tracing::warn!(run = run.id, error = %e, "could not record an abandoned run");
            }
        }
    }

    /// Materializes `views` (all views when empty), and the definition versions services pin
    /// of them, and publishes them in one manifest. Every snapshot is written before the
    /// pointer moves; if any view fails, nothing is published and the live snapshot stays.
    pub(crate) async fn materialize_views(
        &self,
        views: &[String],
        actor: &str,
        committing: Option<&std::sync::atomic::AtomicBool>,
        mode: RunMode,
    ) -> Result<Vec<MaterializeReport>, ControlError> {
        let defs = self.registry.definitions().await?;
        let names = view_names(&defs, views)?;
        let targets = self.targets(&defs, &names).await?;
        let mut reports = Vec::new();
        let mut new_views = BTreeMap::new();
        let mut lineage = BTreeMap::new();
        let mut verdicts = BTreeMap::new();
        let live_before = self.store.live_manifest().await?;
        for target in targets {
            let pinned = target.slot.contains('@');
            match self
                .materialize_one(&target, live_before.as_ref(), mode)
                .await
            {
                Ok(run) => {
                    if let Some(mv) = run.mv {
                        new_views.insert(target.slot.clone(), mv);
                        lineage.insert(target.slot.clone(), run.record);
                    }
                    if let Some(v) = run.quality {
                        verdicts.insert(target.slot.clone(), v);
                    }
                    reports.push(run.report);
                }
                // A pinned version is computed from an old definition over today's source,
                // which may no longer fit it (a dropped column): that must not hold back
                // every other view. Its last snapshot stays in the manifest.
                Err(e) if pinned => {
                    tracing::warn!(slot = %target.slot, error = %e, "a pinned version failed to materialize; its last snapshot stays live");
                    self.registry
                        .record_change(&NewChange {
                            actor: actor.to_string(),
                            action: "materialize_failed".into(),
                            kind: fstore_spec::ObjectKind::FeatureView.as_str().into(),
                            name: target.slot.clone(),
                            version: Some(target.definition_version),
                            message: e.to_string(),
                            details: serde_json::Value::Null,
                        })
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
        if new_views.is_empty() {
            // Incremental runs that found nothing new: nothing to publish or record.
            let seq = live_before.as_ref().map_or(0, |m| m.seq);
            for r in &mut reports {
                r.manifest_seq = seq;
            }
            return Ok(reports);
        }
        let guard = self.lock_publish().await?;
        // From here the run is committed: a job runner that times out or is cancelled now
        // waits for it rather than dropping it halfway through recording what it published.
        if let Some(c) = committing {
            c.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let published = async {
            let live = self.store.live_manifest().await?;
            let manifest = self
                .next_manifest(live.as_ref(), &defs, new_views.clone())
                .await?;
            self.publish_and_prune(&manifest).await?;
            Ok::<_, ControlError>(manifest)
        }
        .await;
        self.unlock_publish(guard).await;
        let manifest = published?;
        self.notify_edges(manifest.seq).await;
        for r in &mut reports {
            r.manifest_seq = manifest.seq;
            let Some(mv) = new_views.get(&r.view) else {
                continue;
            };
            self.cache.retain(&r.view, mv);
            // A delta's own checksum, not its chain base's.
            let checksum = match mv.deltas.last() {
                Some(d) if d.version == r.version => d.checksum.clone(),
                _ => mv.checksum.clone(),
            };
            let (definition_version, lineage) = lineage.remove(&r.view).unwrap_or_default();
            self.registry
                .record_snapshot(&SnapshotRecord {
                    view: r.view.clone(),
                    version: r.version,
                    key: r.key.clone(),
                    rows: r.rows_written,
                    size_bytes: r.size_bytes,
                    checksum,
                    manifest_seq: manifest.seq,
                    created_at: now_rfc3339(),
                    duration_ms: r.duration_ms,
                    definition_version,
                    lineage,
                })
                .await?;
            if let Some(v) = verdicts.get(&r.view) {
                // Published already: a report that cannot be recorded costs the report and
                // its alerts, not the publish.
                if let Err(e) = self.settle_quality(&r.view, r.version, v, true).await {
                    tracing::warn!(view = %r.view, error = %e, "could not record a quality report");
                }
            }
        }
        self.registry
            .record_change(&NewChange {
                actor: actor.to_string(),
                action: "publish".into(),
                kind: "manifest".into(),
                name: manifest.seq.to_string(),
                version: Some(manifest.seq),
                message: format!("materialized {}", describe_reports(&reports)),
                details: serde_json::json!({
                    "snapshots": reports
                        .iter()
                        .filter(|r| r.mode != "unchanged")
                        .map(|r| serde_json::json!({"view": r.view, "version": r.version, "mode": r.mode, "definition_version": r.definition_version, "rows": r.rows_written}))
                        .collect::<Vec<_>>(),
                }),
            })
            .await?;
        Ok(reports)
    }

    /// A recorded snapshot as a manifest serves it: a full snapshot alone; a delta as the
    /// chain that was live with it (its base and the deltas on that base up to it), since a
    /// delta means nothing without what it applies to. None if a link is gone from the store.
    pub(crate) async fn chain_view(
        &self,
        rec: SnapshotRecord,
    ) -> Result<Option<ManifestView>, ControlError> {
        let Some(base) = delta_base(&rec) else {
            let kept = self.store.head(&rec.key).await.is_ok();
            return Ok(kept.then(|| manifest_view(rec)));
        };
        let Some(base_rec) = self.registry.get_snapshot(&rec.view, base).await? else {
            return Ok(None);
        };
        let mut links: Vec<SnapshotRecord> = self
            .registry
            .list_snapshots(Some(&rec.view))
            .await?
            .into_iter()
            .filter(|r| delta_base(r) == Some(base) && r.version <= rec.version)
            .collect();
        links.sort_by_key(|r| r.version);
        let mut mv = manifest_view(base_rec);
        for r in links {
            if self.store.head(&r.key).await.is_err() {
                return Ok(None);
            }
            mv.deltas.push(fstore_storage::ManifestDelta {
                version: r.version,
                key: r.key,
                size_bytes: r.size_bytes,
                rows: r.rows,
                checksum: r.checksum,
                shards: Vec::new(),
            });
        }
        if self.store.head(&mv.key).await.is_err() {
            return Ok(None);
        }
        Ok(Some(mv))
    }

    /// Computes and stores one slot's snapshot (full, a delta on its live chain, or the chain
    /// compacted); nothing is published here. An incremental run that finds nothing changed
    /// writes nothing and says so (`mode: unchanged`).
    async fn materialize_one(
        &self,
        target: &Target,
        live_before: Option<&Manifest>,
        mode: RunMode,
    ) -> Result<SlotRun, ControlError> {
        let name = target.slot.clone();
        let started = Instant::now();
        let now = now_micros();
        let plan = match mode {
            RunMode::Full => RunPlan::Full("a full run was asked for".into()),
            RunMode::Auto => {
                crate::incremental::plan(
                    self.registry.as_ref(),
                    &target.defs,
                    &name,
                    target.definition_version,
                    live_before,
                    now,
                )
                .await?
            }
        };
        // Versions only grow, even past ones this registry did not hand out itself.
        let floor = live_before
            .and_then(|m| m.views.get(&name))
            .map_or(0, |v| v.served_version());
        let version = self
            .registry
            .next_sequence_above(&format!("snapshot:{name}"), floor)
            .await?;
        let view = target
            .defs
            .view(&name)
            .ok_or_else(|| ControlError::NotFound {
                kind: "feature view".into(),
                name: name.clone(),
            })?;
        let steps = view.steps.clone();
        let loaded = self
            .transforms
            .for_steps(&self.store, &steps)
            .await
            .map_err(|e| ControlError::Materialization {
                view: name.clone(),
                message: e.to_string(),
            })?;
        let offline_err = |e: fstore_offline::OfflineError| match e {
            fstore_offline::OfflineError::Storage(s) => ControlError::Storage(s),
            other => ControlError::Materialization {
                view: name.clone(),
                message: other.to_string(),
            },
        };
        let task_err = |e: tokio::task::JoinError| ControlError::Materialization {
            view: name.clone(),
            message: format!("the materialization task failed: {e}"),
        };
        // Materializing is CPU-bound for seconds at a time: run it on the blocking pool so
        // the REST API keeps answering meanwhile.
        let (defs2, view2, handle) = (
            target.defs.clone(),
            name.clone(),
            tokio::runtime::Handle::current(),
        );
        let checked = view.clone();
        let (mut m, compacted, why, chain, profile) = match plan {
            RunPlan::Full(why) => {
                let (m, profile) = tokio::task::spawn_blocking(move || {
                    let m = handle.block_on(fstore_offline::materialize(
                        &defs2, &view2, version, now, &loaded,
                    ))?;
                    // Profiled from the encoded snapshot, exactly as edges will read it.
                    let snap = Snapshot::from_bytes(m.to_vec())?;
                    let profile = crate::quality::profile_layers(&checked, &[&snap]);
                    Ok::<_, fstore_offline::OfflineError>((m, Some(profile)))
                })
                .await
                .map_err(task_err)?
                .map_err(offline_err)?;
                (m, None, why, None, profile)
            }
            RunPlan::Incremental(chain) => {
                let (base, mut deltas) = self.cache.open_chain(&self.store, &chain.live).await?;
                // Newest first, the order a lookup probes them in.
                deltas.reverse();
                let c = chain.clone();
                let compact_after = self.config.jobs.compact_after;
                let done = tokio::task::spawn_blocking(move || {
                    let live = |key: &[u8]| {
                        fstore_snapshot::layered_get(&base, &deltas, key)
                            .map(|r| (r.event_micros(), r.created_micros()))
                    };
                    let is_new = |path: &str| !c.seen.contains_key(path);
                    let inc = fstore_offline::Incremental {
                        base_version: c.live.version,
                        since_micros: c.as_of,
                        is_new: &is_new,
                        live: &live,
                    };
                    let m = handle.block_on(fstore_offline::materialize_delta(
                        &defs2, &view2, version, now, &loaded, &inc,
                    ))?;
                    // Compact when the chain grows long, or its deltas approach the base in
                    // size (each lookup probes every delta; the edge downloads the base anyway).
                    let rows = c.delta_rows + m.rows_written;
                    let due = deltas.len() + 1 >= compact_after || rows * 2 > base.len();
                    if m.rows_written == 0 {
                        return Ok((m, None, None));
                    }
                    let delta = Snapshot::from_bytes(m.to_vec())?;
                    if !due {
                        // What edges will serve: the new delta over the chain.
                        let mut served: Vec<&Snapshot> = vec![&delta];
                        served.extend(deltas.iter());
                        served.push(&base);
                        let profile = crate::quality::profile_layers(&checked, &served);
                        return Ok((m, None, Some(profile)));
                    }
                    // compact() takes the layers oldest first.
                    let mut layers: Vec<&Snapshot> = deltas.iter().rev().collect();
                    layers.push(&delta);
                    let parts = fstore_snapshot::compact(&base, &layers, version, now)?;
                    let compacted = Snapshot::from_bytes(parts.concat())?;
                    let profile = crate::quality::profile_layers(&checked, &[&compacted]);
                    Ok::<_, fstore_offline::OfflineError>((m, Some(parts), Some(profile)))
                })
                .await
                .map_err(task_err)?
                .map_err(offline_err)?;
                (done.0, done.1, String::new(), Some(chain), done.2)
            }
        };
        let quarantine = self.quarantine(&name, version, &m.rejected).await?;
        let limit = view
            .max_rejected
            .unwrap_or(fstore_spec::RejectLimit::Rows(0));
        if !limit.allows(m.rows_rejected, m.rows_read) {
            let first = m.rejected.first().map_or(String::new(), |r| {
                format!(
                    "; the first: source file `{}`, row {}: {}",
                    r.file, r.row, r.reason
                )
            });
            return Err(ControlError::Materialization {
                view: name.clone(),
                message: format!(
                    "{} of {} source rows rejected, over the view's max_rejected of {limit}{first}; every rejected row is listed in {}",
                    m.rows_rejected,
                    m.rows_read,
                    quarantine
                        .as_deref()
                        .map_or("the quarantine".into(), |k| self.store_location(k)),
                ),
            });
        }
        let verdict = match profile {
            None => None,
            Some(profile) => {
                let profile = profile.map_err(|e| ControlError::Materialization {
                    view: name.clone(),
                    message: format!("cannot profile the snapshot: {e}"),
                })?;
                let types: Vec<fstore_snapshot::KeyType> = profile_key_types(&target.defs, view);
                let facts = fstore_quality::RunFacts {
                    now_micros: now,
                    duplicate_keys: m.duplicate_keys,
                    duplicate_samples: m
                        .duplicate_samples
                        .iter()
                        .map(|k| fstore_quality::render_key(&types, k))
                        .collect(),
                };
                let verdict = self.judge(&name, view, version, &profile, &facts).await?;
                let blocking = verdict.blocking();
                if !blocking.is_empty() {
                    let message = blocking
                        .iter()
                        .map(|r| r.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ");
                    let details = serde_json::json!({
                        "version": version,
                        "failing": blocking,
                    });
                    self.settle_quality(&name, version, &verdict, false).await?;
                    return Err(ControlError::QualityRejected {
                        view: name.clone(),
                        version,
                        message,
                        details,
                    });
                }
                Some(verdict)
            }
        };
        let mode = match (&chain, &compacted) {
            (None, _) => "full",
            (Some(_), Some(_)) => "compacted",
            (Some(_), None) if m.rows_written == 0 => "unchanged",
            (Some(_), None) => "delta",
        };
        let source = view.source.clone();
        let mut report = MaterializeReport {
            view: name.clone(),
            version,
            key: String::new(),
            definition_version: target.definition_version,
            mode: mode.to_string(),
            base_version: None,
            files: m.files.len(),
            rows_read: m.rows_read,
            rows_rejected: m.rows_rejected,
            rows_written: m.rows_written,
            rows_expired: m.rows_expired,
            size_bytes: 0,
            duration_ms: 0,
            manifest_seq: 0,
            quarantine: quarantine.clone(),
        };
        let mut inputs = m.files.clone();
        let key = snapshot_key(&name, version);
        let (mv, entities) = match (&chain, compacted) {
            (Some(c), None) if m.rows_written == 0 => {
                // Nothing new: the slot stays as it is and no snapshot is written.
                report.version = c.live.served_version();
                report.duration_ms = started.elapsed().as_millis() as u64;
                return Ok(SlotRun {
                    mv: None,
                    report,
                    record: (target.definition_version, serde_json::Value::Null),
                    quality: None,
                });
            }
            (Some(c), Some(parts)) => {
                let size = (parts[0].len() + parts[1].len()) as u64;
                let rows = fstore_snapshot::format::row_count(&parts[0]).unwrap_or_default();
                let checksum =
                    fstore_snapshot::format::body_checksum(&parts[0]).unwrap_or_default();
                let [head, body] = parts;
                let (head, body) = (bytes::Bytes::from(head), bytes::Bytes::from(body));
                self.store
                    .put_new_parts(&key, vec![head.clone(), body.clone()])
                    .await?;
                let shards = self.put_shards(view, &key, &head, &body, false).await?;
                let mut all = c.inputs();
                all.retain(|f| !m.files.iter().any(|n| n.path == f.path));
                all.extend(m.files.iter().cloned());
                all.sort_by(|a, b| a.path.cmp(&b.path));
                inputs = all;
                let mv = ManifestView {
                    version,
                    key: key.clone(),
                    size_bytes: size,
                    rows,
                    checksum: format!("{checksum:016x}"),
                    deltas: Vec::new(),
                    shards,
                };
                report.size_bytes = size;
                (mv, rows)
            }
            (chain, _) => {
                let checksum = format!("{:016x}", m.checksum);
                let size = m.len();
                // Moved out, not copied: a full snapshot can be hundreds of MiB.
                let [head, body] = std::mem::take(&mut m.parts);
                let (head, body) = (bytes::Bytes::from(head), bytes::Bytes::from(body));
                self.store
                    .put_new_parts(&key, vec![head.clone(), body.clone()])
                    .await?;
                let shards = self
                    .put_shards(view, &key, &head, &body, chain.is_some())
                    .await?;
                report.size_bytes = size;
                let mv = match chain {
                    None => ManifestView {
                        version,
                        key: key.clone(),
                        size_bytes: size,
                        rows: m.rows_written,
                        checksum,
                        deltas: Vec::new(),
                        shards,
                    },
                    Some(c) => {
                        report.base_version = Some(c.live.version);
                        let mut mv = c.live.clone();
                        mv.deltas.push(fstore_storage::ManifestDelta {
                            version,
                            key: key.clone(),
                            size_bytes: size,
                            rows: m.rows_written,
                            checksum,
                            shards,
                        });
                        mv
                    }
                };
                (mv, m.rows_written)
            }
        };
        let defer = [
            m.next_event_micros,
            chain
                .as_ref()
                .and_then(|c| c.defer_until)
                .filter(|_| mode == "compacted"),
        ]
        .into_iter()
        .flatten()
        .min();
        let record = (
            target.definition_version,
            serde_json::json!({
                "source": source,
                "definition_version": target.definition_version,
                "mode": mode,
                "why_full": (!why.is_empty()).then_some(why),
                "base_version": report.base_version,
                "as_of_micros": now,
                "defer_until_micros": defer,
                "inputs": inputs,
                "rows_read": m.rows_read,
                "rows_rejected": m.rows_rejected,
                "rows_written": entities,
                "rows_expired": m.rows_expired,
                "quarantine": quarantine,
                "transforms": steps
                    .iter()
                    .map(|s| serde_json::json!({"transform": s.transform, "sha256": s.sha256}))
                    .collect::<Vec<_>>(),
            }),
        );
        report.key = key;
        report.rows_written = entities;
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(SlotRun {
            mv: Some(mv),
            report,
            record,
            quality: verdict,
        })
    }

    /// Writes the rows a run rejected to `quarantine/<slot>/<version>.jsonl` (one JSON object
    /// per line: file, row, reason), next to the snapshots, and returns its key. Quarantine
    /// files are evidence and are never pruned.
    async fn quarantine(
        &self,
        slot: &str,
        version: u64,
        rejected: &[fstore_offline::RejectedRow],
    ) -> Result<Option<String>, ControlError> {
        if rejected.is_empty() {
            return Ok(None);
        }
        let mut body = Vec::with_capacity(rejected.len() * 96);
        for r in rejected {
            serde_json::to_writer(&mut body, r).map_err(|e| ControlError::Materialization {
                view: slot.to_string(),
                message: format!("cannot write the quarantine: {e}"),
            })?;
            body.push(b'\n');
        }
        let key = format!("quarantine/{slot}/{version:020}.jsonl");
        self.store.put_new(&key, body.into()).await?;
        Ok(Some(key))
    }

    /// Where object `key` of the snapshot store is, as a path or URL a user can open.
    fn store_location(&self, key: &str) -> String {
        format!("{}/{key}", self.store.url().trim_end_matches('/'))
    }

    /// What a materialization of `names` produces: each view at its current definition, then
    /// each definition version a service pins, as its own slot (`customer_rfm@v3`) computed
    /// from the stored definition with today's source and entities.
    async fn targets(
        &self,
        defs: &Definitions,
        names: &[String],
    ) -> Result<Vec<Target>, ControlError> {
        let pinned = crate::changes::pinned_slots(defs);
        let mut out = Vec::new();
        for name in names {
            let current = self
                .registry
                .get_object(fstore_spec::ObjectKind::FeatureView, name)
                .await?
                .map_or(0, |o| o.version);
            out.push(Target {
                slot: name.clone(),
                defs: defs.clone(),
                definition_version: current,
            });
            let mine: Vec<&String> = pinned
                .iter()
                .filter(|p| fstore_snapshot::base_view(p) == name)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let history = self
                .registry
                .history(fstore_spec::ObjectKind::FeatureView, name)
                .await?;
            for slot in mine {
                let Ok(Some(n)) = fstore_snapshot::view_pin(slot) else {
                    continue;
                };
                // Apply checked the pin; a stored version that vanished or no longer parses
                // skips this slot (its last snapshot stays live) rather than every view.
                let Some(view) = pinned_view(slot, n, &history) else {
                    tracing::warn!(slot = %slot, "the pinned version is not a readable feature view; skipped");
                    continue;
                };
                let mut with_pin = defs.clone();
                with_pin.feature_views.push(view);
                out.push(Target {
                    slot: slot.clone(),
                    defs: with_pin,
                    definition_version: n,
                });
            }
        }
        Ok(out)
    }

    /// A newly pinned version has no snapshot of its own until the next materialization; the
    /// newest snapshot the view's own slot made with a definition that serves the same
    /// features and values (that version, or one differing only in descriptions, owners and
    /// tags) serves
    /// it meanwhile. Pinning the current version before changing it is the common case.
    async fn fill_pins(
        &self,
        pinned: &std::collections::BTreeSet<String>,
        views: &mut BTreeMap<String, ManifestView>,
    ) -> Result<(), ControlError> {
        let missing: Vec<&String> = pinned.iter().filter(|p| !views.contains_key(*p)).collect();
        for slot in missing {
            let Ok(Some(n)) = fstore_snapshot::view_pin(slot) else {
                continue;
            };
            let base = fstore_snapshot::base_view(slot);
            let history = self
                .registry
                .history(fstore_spec::ObjectKind::FeatureView, base)
                .await?;
            let spec = |v: u64| {
                history
                    .iter()
                    .find(|h| h.version == v)
                    .and_then(|h| h.spec.as_ref())
            };
            let Some(pinned_spec) = spec(n) else { continue };
            let same_values = |d: u64| {
                d == n
                    || spec(d).is_some_and(|s| {
                        fstore_spec::diff_specs(
                            fstore_spec::ObjectKind::FeatureView,
                            Some(s),
                            Some(pinned_spec),
                        )
                        .changes
                        .iter()
                        .all(|c| is_metadata_path(&c.path))
                    })
            };
            let records = self.registry.list_snapshots(Some(base)).await?;
            for rec in records
                .into_iter()
                .filter(|r| same_values(r.definition_version))
            {
                // Retention may have deleted it; an older one may still be kept.
                if let Some(mv) = self.chain_view(rec).await? {
                    views.insert(slot.clone(), mv);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Each service's references rewritten to the slots it reads: a rolled-back view reads
    /// the snapshot it was rolled back to, added to `views` from the registry's record. A
    /// rollback whose view the service no longer reads, or whose snapshot is gone, is skipped
    /// (the service reads the live slot): a manifest must only name snapshots that exist.
    async fn service_slots(
        &self,
        defs: &Definitions,
        views: &mut BTreeMap<String, ManifestView>,
    ) -> Result<BTreeMap<String, Vec<FeatureRef>>, ControlError> {
        let rollbacks = self.registry.rollbacks().await?;
        let mut out = BTreeMap::new();
        for s in &defs.feature_services {
            let mut refs = s.features.clone();
            for rb in rollbacks.iter().filter(|rb| rb.service == s.name) {
                if !refs.iter().any(|r| r.view == rb.view) {
                    continue;
                }
                let slot = rollback_slot(&rb.view, &rb.snapshot_view, rb.snapshot_version);
                if !views.contains_key(&slot) {
                    let rec = self
                        .registry
                        .get_snapshot(&rb.snapshot_view, rb.snapshot_version)
                        .await?;
                    let chain = match rec {
                        Some(r) => self.chain_view(r).await?,
                        None => None,
                    };
                    match chain {
                        Some(mv) => {
                            views.insert(slot.clone(), mv);
                        }
                        None => {
                            tracing::warn!(
                                service = %s.name,
                                view = %rb.view,
                                snapshot = rb.snapshot_version,
                                "the snapshot a rollback names is gone; serving the live one"
                            );
                            continue;
                        }
                    }
                }
                for r in refs.iter_mut().filter(|r| r.view == rb.view) {
                    r.view = slot.clone();
                }
            }
            out.insert(s.name.clone(), refs);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_documentation_paths_are_metadata() {
        for p in ["description", "owner", "tags", "features.spend.tags"] {
            assert!(is_metadata_path(p), "{p}");
        }
        // A feature named `tags` is a feature, not metadata.
        for p in [
            "features.tags",
            "features.spend.type",
            "ttl_seconds",
            "steps",
        ] {
            assert!(!is_metadata_path(p), "{p}");
        }
    }

    #[test]
    fn rollback_slots_name_their_snapshot() {
        assert_eq!(rollback_slot("rfm", "rfm", 41), "rfm#41");
        assert_eq!(rollback_slot("rfm@v3", "rfm", 12), "rfm@v3#rfm/12");
    }
}
