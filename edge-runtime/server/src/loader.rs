use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fstore_snapshot::{ShardSet, Snapshot, TransformStep};
use fstore_storage::{Manifest, ManifestView, PointerRead, StorageError, Store, sha256_hex};
use fstore_wasm_host::{Host, HostConfig, Limits, LoadError, Transform};

use crate::{Catalog, EdgeError, EdgeState, LoadedView, Metrics, OnDemandSpec};

/// What makes two steps share one loaded component: the same code, configuration and budget
/// (the budget is fixed when a component is loaded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TransformKey {
    sha256: String,
    config: Vec<(String, String)>,
    timeout_ms: u64,
    fuel: u64,
}

impl TransformKey {
    fn of(step: &TransformStep) -> Self {
        Self {
            sha256: step.sha256.to_ascii_lowercase(),
            config: step.config.clone(),
            timeout_ms: step.timeout_ms,
            fuel: step.fuel,
        }
    }
}

/// Why a component could not be loaded, and whether trying again later may help.
#[derive(Debug)]
struct LoadFailure {
    message: String,
    /// The next poll tries again (a storage error other than a missing object, or an
    /// instantiation that failed).
    retryable: bool,
}

impl LoadFailure {
    fn permanent(message: String) -> Self {
        Self {
            message,
            retryable: false,
        }
    }

    fn storage(e: StorageError) -> Self {
        Self {
            retryable: !matches!(e, StorageError::NotFound(_)),
            message: e.to_string(),
        }
    }

    /// A component that compiled but could not be instantiated may succeed later: the pool
    /// may be full, or the machine so busy that instantiating overran the call deadline it runs
    /// under. Anything else (bad bytes, a rejected configuration or signature) stays wrong.
    fn load(e: LoadError) -> Self {
        Self {
            retryable: matches!(e, LoadError::Instantiate(_)),
            message: e.to_string(),
        }
    }
}

/// The WebAssembly engine and the transform components catalogs run, kept across catalogs so
/// that a re-publish does not recompile. An edge's [`Loader`] keeps one for its lifetime; a
/// one-shot reader (`fstore get --version`) makes one for the catalog it builds.
pub struct Components {
    host_config: HostConfig,
    /// The process's one WebAssembly engine, created when the first manifest with on-demand
    /// views arrives, so an edge without any reserves no memory pool and runs no epoch thread.
    host: Option<Arc<Host>>,
    /// Loaded components, kept across manifests so a re-publish does not recompile.
    transforms: HashMap<TransformKey, Arc<Transform>>,
    /// The components the served catalog uses (the cache keeps these and the next ones, so
    /// the previous catalog's survive one swap).
    live_transforms: HashSet<TransformKey>,
    /// The last catalog built misses a component for a reason that may pass.
    retry: bool,
}

impl std::fmt::Debug for Components {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Components")
            .field("loaded", &self.transforms.len())
            .finish_non_exhaustive()
    }
}

impl Components {
    /// No engine yet: it is created with `host_config` when a manifest first needs one.
    pub fn new(host_config: HostConfig) -> Self {
        Self {
            host_config,
            host: None,
            transforms: HashMap::new(),
            live_transforms: HashSet::new(),
            retry: false,
        }
    }

    /// How many components are loaded.
    pub fn loaded(&self) -> usize {
        self.transforms.len()
    }

    /// Whether the last catalog built misses a component for a reason that may pass, so
    /// building it again may succeed.
    pub fn retry(&self) -> bool {
        self.retry
    }

    fn host(&mut self) -> Result<Arc<Host>, String> {
        if let Some(h) = &self.host {
            return Ok(h.clone());
        }
        let h = Arc::new(
            Host::new(self.host_config.clone())
                .map_err(|e| format!("the WebAssembly engine could not start: {e}"))?,
        );
        self.host = Some(h.clone());
        Ok(h)
    }
}

/// Polls the live pointer and swaps in new manifests. Owns the local snapshot cache and the
/// loaded transform components.
pub struct Loader {
    store: Store,
    cache_dir: PathBuf,
    state: Arc<EdgeState>,
    etag: Option<String>,
    components: Components,
    /// The control plane's public key: set, the access document is polled and verified.
    access_key: Option<String>,
    access_etag: Option<String>,
    /// The shards of sharded views to load.
    shards: ShardSet,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("store", &self.store)
            .finish()
    }
}

impl Loader {
    pub fn new(store: Store, cache_dir: PathBuf, state: Arc<EdgeState>) -> Self {
        Self {
            store,
            cache_dir,
            state,
            etag: None,
            components: Components::new(HostConfig::default()),
            access_key: None,
            access_etag: None,
            shards: ShardSet::all(),
        }
    }

    /// Loads only these shards of sharded views (by default all of every view).
    pub fn with_shards(mut self, shards: ShardSet) -> Self {
        self.shards = shards;
        self
    }

    /// The engine settings the host is created with when first needed.
    pub fn with_host_config(mut self, config: HostConfig) -> Self {
        self.components.host_config = config;
        self
    }

    /// Uses `host` rather than creating one: for embedders (and tests) that already run an
    /// engine in this process.
    pub fn with_host(mut self, host: Arc<Host>) -> Self {
        self.components.host = Some(host);
        self
    }

    /// One poll: returns whether a new manifest was swapped in. On error nothing changes:
    /// the edge keeps serving what it has.
    pub async fn poll_once(&mut self) -> Result<bool, EdgeError> {
        // The served catalog misses a component for a reason that may pass: rebuild it even
        // though the pointer has not moved (cheap: snapshots and loaded components are reused).
        let retry = self.components.retry;
        let known = if retry { None } else { self.etag.as_deref() };
        let (pointer, etag) = match self.store.read_pointer(known).await? {
            PointerRead::Missing | PointerRead::NotModified => return Ok(false),
            PointerRead::Found { pointer, etag } => (pointer, etag),
        };
        let current = self.state.catalog.load_full();
        if !retry && current.as_ref().is_some_and(|c| c.seq == pointer.seq) {
            self.etag = etag;
            return Ok(false);
        }
        let manifest = self.store.read_manifest(&pointer.manifest).await?;
        let catalog = build_catalog(
            &self.store,
            &manifest,
            &self.cache_dir,
            current.as_deref(),
            &mut self.components,
            &self.state.metrics,
            &self.shards,
        )
        .await?;
        let previous = self.state.catalog.swap(Some(Arc::new(catalog)));
        // Keep the previous catalog (and so its mapped files) for rollback and inspection.
        self.state.previous.store(previous);
        self.state.metrics.swaps.fetch_add(1, Ordering::Relaxed);
        self.etag = etag;
        tracing::info!(
            seq = manifest.seq,
            views = manifest.views.len(),
            "swapped in manifest"
        );
        self.clean_cache();
        Ok(true)
    }

    /// How many components are loaded (the current and the previous catalog's).
    pub fn loaded_transforms(&self) -> usize {
        self.components.loaded()
    }

    /// Deletes cached snapshot files (bases and deltas) neither the current nor the previous
    /// catalog uses.
    /// Mapped files stay valid after unlinking, so this never disturbs a request in flight.
    fn clean_cache(&self) {
        let mut keep = HashSet::new();
        for c in [
            self.state.catalog.load_full(),
            self.state.previous.load_full(),
        ]
        .into_iter()
        .flatten()
        {
            for v in c.views() {
                keep.extend(v.files().cloned());
            }
        }
        let Ok(entries) = std::fs::read_dir(&self.cache_dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "fss") && !keep.contains(&p) {
                let _ = std::fs::remove_file(&p);
            }
        }
    }

    /// Polls forever at `interval`; errors are logged and counted, never fatal.
    /// Verifies with this public key (hex) and serves by the signed access document.
    pub fn with_access_key(mut self, key: Option<String>) -> Self {
        self.access_key = key;
        self
    }

    /// Loads a changed access document if its signature verifies and it is not older than
    /// the one held; returns whether it swapped one in. A document that fails verification
    /// is refused and the one held stays (it is an error: someone wrote to the store who
    /// should not have, or the edge has the wrong key).
    pub async fn poll_access(&mut self) -> Result<bool, EdgeError> {
        let Some(key) = &self.access_key else {
            return Ok(false);
        };
        let Some((bytes, etag)) = self
            .store
            .get_if_changed(fstore_access::ACCESS_KEY, self.access_etag.as_deref())
            .await?
        else {
            return Ok(false);
        };
        let doc = fstore_access::verify_doc(&bytes, key)
            .map_err(|e| EdgeError::Config(format!("{}: {e}", fstore_access::ACCESS_KEY)))?;
        // The highest number ever accepted, across restarts: a replayed older document (one
        // still listing a revoked token) is refused even by a freshly started edge.
        let floor_file = self.cache_dir.join("access.seq");
        let persisted = tokio::fs::read_to_string(&floor_file)
            .await
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let held = self
            .state
            .gate
            .load()
            .as_ref()
            .map(|g| g.seq())
            .max(persisted);
        if held.is_some_and(|h| doc.seq < h) {
            return Err(EdgeError::Config(format!(
                "{} number {} is older than the one served ({}); refusing to go back",
                fstore_access::ACCESS_KEY,
                doc.seq,
                held.unwrap_or_default()
            )));
        }
        let seq = doc.seq;
        let gate = fstore_access::Gate::new(doc)
            .map_err(|e| EdgeError::Config(format!("{}: {e}", fstore_access::ACCESS_KEY)))?;
        tokio::fs::create_dir_all(&self.cache_dir)
            .await
            .map_err(|source| EdgeError::Io {
                path: self.cache_dir.display().to_string(),
                source,
            })?;
        tokio::fs::write(&floor_file, seq.to_string())
            .await
            .map_err(|source| EdgeError::Io {
                path: floor_file.display().to_string(),
                source,
            })?;
        self.state.gate.store(Some(Arc::new(gate)));
        self.access_etag = etag;
        tracing::info!(seq, "loaded access document");
        Ok(true)
    }

    pub async fn run(mut self, interval: std::time::Duration) {
        loop {
            if let Err(e) = self.poll_access().await {
                self.state
                    .metrics
                    .poll_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "access document refused; keeping the one held");
            }
            if let Err(e) = self.poll_once().await {
                self.state
                    .metrics
                    .poll_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "poll failed; still serving the last good snapshot");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.state.wake.notified() => {}
            }
        }
    }
}

/// Builds the catalog an edge serves for `manifest`: downloads its snapshots (bases and
/// deltas) into `cache_dir` (unless already there), verifies and maps them, and loads the
/// components of its on-demand views into `components`. Views of `current` with the same base
/// (version and checksum) and the same deltas (keys and checksums) are reused; otherwise only
/// files missing from the cache are downloaded, so a new delta costs the delta alone.
/// The edge's loader and one-shot readers (`fstore get --version`) both build catalogs here,
/// so both answer a request the same way. Fails if any snapshot cannot be loaded; an on-demand
/// view whose component cannot be loaded only makes that view unavailable.
///
/// Of a sharded view (a slot whose manifest entry lists shards), only the shards overlapping
/// `shards` are downloaded and mapped, each with its own deltas; holding every shard, the
/// full snapshot is loaded instead (one file, one index).
pub async fn build_catalog(
    store: &Store,
    manifest: &Manifest,
    cache_dir: &Path,
    current: Option<&Catalog>,
    components: &mut Components,
    metrics: &Metrics,
    shards: &ShardSet,
) -> Result<Catalog, EdgeError> {
    tokio::fs::create_dir_all(cache_dir)
        .await
        .map_err(|source| EdgeError::Io {
            path: cache_dir.display().to_string(),
            source,
        })?;
    let mut views = Vec::with_capacity(manifest.views.len());
    for (name, mv) in &manifest.views {
        let held = current.and_then(|c| c.view(name));
        if let Some(parts) = shard_chains(mv, shards) {
            views.push(Arc::new(
                load_shards(store, cache_dir, name, mv, parts, held).await?,
            ));
            continue;
        }
        if let Some(v) = held.filter(|v| v.shards.is_none() && same_layers(v, mv, cache_dir)) {
            views.push(v.clone());
            continue;
        }
        views.push(Arc::new(load_view(store, cache_dir, name, mv).await?));
    }
    let on_demand = load_on_demand(store, manifest, components, metrics).await;
    let catalog = Catalog::with_on_demand(manifest.seq, views, on_demand, &manifest.services);
    // Resolved here, off the request path, so no request takes the metrics' lock.
    let _ = catalog.signals(metrics);
    for (name, why) in &catalog.broken_services {
        tracing::warn!(service = %name, reason = %why, "feature service cannot be served");
    }
    for (name, why) in catalog.broken_on_demand() {
        tracing::warn!(
            view = %name,
            reason = %why,
            "on-demand view cannot be computed; its features answer TRANSFORM_ERROR"
        );
    }
    Ok(catalog)
}

/// The cache file of object `key`. Keyed by the object, not the slot: a rollback slot reuses a
/// cached snapshot, and a new delta reuses its cached base.
fn cache_file(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join(key.replace('/', "_"))
}

/// Whether `v` serves exactly what `mv` names: the same base and the same deltas, in order.
fn same_layers(v: &LoadedView, mv: &ManifestView, cache_dir: &Path) -> bool {
    v.snapshot.schema().version == mv.version
        && v.checksum == mv.checksum
        && v.deltas.len() == mv.deltas.len()
        && v.delta_paths.len() == mv.deltas.len()
        // The view holds its deltas newest first, the manifest oldest first.
        && v
            .deltas
            .iter()
            .zip(&v.delta_paths)
            .rev()
            .zip(&mv.deltas)
            .all(|((d, path), md)| {
                *path == cache_file(cache_dir, &md.key)
                    && format!("{:016x}", d.checksum()) == md.checksum
            })
}

/// For a sharded slot of which `shards` holds only part: each shard to load as a chain of its
/// own (the base's shard and the deltas' shards of the same index, oldest first), by index.
/// None when the whole slot is to be loaded: it is not sharded, every shard is held, or its
/// entry is not a complete split (a delta without shards: loading it whole is always right).
fn shard_chains(mv: &ManifestView, shards: &ShardSet) -> Option<Vec<(u32, ManifestView)>> {
    let count = mv.shards.first()?.count;
    let complete = mv.shards.len() as u64 == u64::from(count)
        && mv
            .shards
            .iter()
            .enumerate()
            .all(|(i, s)| s.index as usize == i && s.count == count)
        && mv
            .deltas
            .iter()
            .all(|d| !d.shards.is_empty() && d.shards.iter().all(|s| s.count == count));
    if !complete || shards.is_all() {
        return None;
    }
    let wanted: Vec<u32> = (0..count).filter(|&i| shards.overlaps(i, count)).collect();
    if wanted.len() as u64 == u64::from(count) {
        return None;
    }
    Some(
        wanted
            .into_iter()
            .map(|i| {
                let base = &mv.shards[i as usize];
                let deltas = mv
                    .deltas
                    .iter()
                    .filter_map(|d| {
                        let s = d.shards.iter().find(|s| s.index == i)?;
                        Some(fstore_storage::ManifestDelta {
                            version: d.version,
                            key: s.key.clone(),
                            size_bytes: s.size_bytes,
                            rows: s.rows,
                            checksum: s.checksum.clone(),
                            shards: Vec::new(),
                        })
                    })
                    .collect();
                let chain = ManifestView {
                    version: mv.version,
                    key: base.key.clone(),
                    size_bytes: base.size_bytes,
                    rows: base.rows,
                    checksum: base.checksum.clone(),
                    deltas,
                    shards: Vec::new(),
                };
                (i, chain)
            })
            .collect(),
    )
}

/// Loads the held shards of a sharded slot, each shard's chain reused from `held` when it
/// is unchanged (so a delta touching one shard re-verifies that shard alone).
async fn load_shards(
    store: &Store,
    cache_dir: &Path,
    name: &str,
    mv: &ManifestView,
    chains: Vec<(u32, ManifestView)>,
    held: Option<&Arc<LoadedView>>,
) -> Result<LoadedView, EdgeError> {
    let count = mv.shards.first().map_or(1, |s| s.count);
    let mut parts = Vec::with_capacity(chains.len());
    for (index, chain) in chains {
        let reuse = held
            .and_then(|v| v.shards.as_ref())
            .filter(|h| h.count == count)
            .and_then(|h| h.parts.iter().find(|(i, _)| *i == index))
            .map(|(_, p)| p)
            .filter(|p| same_layers(p, &chain, cache_dir));
        let part = match reuse {
            Some(p) => p.clone(),
            None => {
                let part = load_view(store, cache_dir, name, &chain).await?;
                let got = part.snapshot.schema().shard;
                if got != Some(fstore_snapshot::ShardOf { index, count }) {
                    return Err(EdgeError::ManifestMismatch {
                        key: chain.key.clone(),
                        reason: format!(
                            "it is {got:?}, the manifest says shard {index} of {count}"
                        ),
                    });
                }
                Arc::new(part)
            }
        };
        parts.push((index, part));
    }
    LoadedView::sharded(
        name.to_string(),
        mv.served_version(),
        mv.checksum.clone(),
        count,
        parts,
    )
    .map_err(|source| EdgeError::Snapshot {
        key: mv.key.clone(),
        source,
    })
}

/// Downloads (unless cached), maps and verifies one slot's base and deltas.
async fn load_view(
    store: &Store,
    cache_dir: &Path,
    name: &str,
    mv: &ManifestView,
) -> Result<LoadedView, EdgeError> {
    let (base, base_file) = open_cached(store, cache_dir, &mv.key, &mv.checksum, |s| {
        // A delta served alone would answer NOT_FOUND for every entity it does not hold.
        match s.base_version() {
            Some(b) => Err(format!(
                "it is a delta on top of version {b}, but a manifest's base must be a full \
                 snapshot"
            )),
            None => Ok(()),
        }
    })
    .await?;
    let mut deltas = Vec::with_capacity(mv.deltas.len());
    let mut files = Vec::with_capacity(mv.deltas.len());
    for md in &mv.deltas {
        let (base_version, version) = (mv.version, md.version);
        let (delta, file) = open_cached(store, cache_dir, &md.key, &md.checksum, move |d| {
            if d.base_version() != Some(base_version) {
                return Err(match d.base_version() {
                    None => "it is a full snapshot, not a delta".to_string(),
                    Some(b) => format!(
                        "it applies on top of version {b}, the manifest's base is {base_version}"
                    ),
                });
            }
            if d.schema().version != version {
                return Err(format!(
                    "it is version {}, the manifest says {version}",
                    d.schema().version
                ));
            }
            Ok(())
        })
        .await?;
        deltas.push(delta);
        files.push(file);
    }
    // The manifest lists deltas oldest first; lookups probe them newest first.
    deltas.reverse();
    files.reverse();
    let view = LoadedView::named(name.to_string(), base, mv.checksum.clone(), Some(base_file));
    if deltas.is_empty() {
        return Ok(view);
    }
    let keys: Vec<String> = mv.deltas.iter().rev().map(|d| d.key.clone()).collect();
    // Checking each delta against the base and counting entities reads every delta row.
    blocking_io(&mv.key, move || {
        // Which delta does not layer, so that only its file is dropped from the cache.
        for ((d, file), key) in deltas.iter().zip(&files).zip(&keys) {
            if let Err(source) = fstore_snapshot::check_delta(&view.snapshot, d) {
                let _ = std::fs::remove_file(file);
                return Err(EdgeError::Snapshot {
                    key: key.clone(),
                    source,
                });
            }
        }
        view.with_deltas(deltas, files)
            .map_err(|source| EdgeError::Snapshot {
                key: keys.join(", "),
                source,
            })
    })
    .await?
}

/// Downloads object `key` into the cache unless it is there, maps it, and checks its checksum
/// against the manifest's and then `check` (which says what is wrong). A file failing any
/// check is removed, so a corrupt download does not poison the cache for the next poll.
async fn open_cached(
    store: &Store,
    cache_dir: &Path,
    key: &str,
    checksum: &str,
    check: impl FnOnce(&Snapshot) -> Result<(), String> + Send + 'static,
) -> Result<(Snapshot, PathBuf), EdgeError> {
    let file = cache_file(cache_dir, key);
    if !file.exists() {
        store.download(key, &file).await?;
    }
    let (path, key_owned, expected) = (file.clone(), key.to_string(), checksum.to_string());
    // Mapping verifies the whole body checksum: CPU work, off the async threads.
    let opened = blocking_io(key, move || {
        let snapshot = Snapshot::open(&path).map_err(|source| EdgeError::Snapshot {
            key: key_owned.clone(),
            source,
        })?;
        let actual = format!("{:016x}", snapshot.checksum());
        if actual != expected {
            return Err(EdgeError::ChecksumMismatch {
                key: key_owned,
                expected,
                actual,
            });
        }
        check(&snapshot).map_err(|reason| EdgeError::ManifestMismatch {
            key: key_owned,
            reason,
        })?;
        Ok(snapshot)
    })
    .await?;
    match opened {
        Ok(s) => Ok((s, file)),
        Err(e) => {
            let _ = std::fs::remove_file(&file);
            Err(e)
        }
    }
}

/// Runs loading work (mapping, verifying) off the async threads; a task that panicked is an
/// i/o error on `key`.
async fn blocking_io<T: Send + 'static>(
    key: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EdgeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EdgeError::Io {
            path: key.to_string(),
            source: std::io::Error::other(e),
        })
}

/// Loads the components of every on-demand view of `manifest`, reusing those already
/// loaded. Never fails: a component that cannot be loaded makes its views unavailable.
/// Called only once the manifest's snapshots are in, so the catalog it feeds is swapped in.
async fn load_on_demand(
    store: &Store,
    manifest: &Manifest,
    components: &mut Components,
    metrics: &Metrics,
) -> Vec<OnDemandSpec> {
    let mut specs = Vec::with_capacity(manifest.on_demand.len());
    let mut used = HashSet::new();
    let mut failed: HashMap<TransformKey, String> = HashMap::new();
    let mut retry = false;
    // Only a manifest with on-demand views starts the engine.
    let host = match manifest.on_demand.is_empty() {
        true => Err("no engine needed".to_string()),
        false => components.host(),
    };
    for (name, def) in &manifest.on_demand {
        let mut transforms = Vec::with_capacity(def.steps.len());
        for step in &def.steps {
            let key = TransformKey::of(step);
            let loaded = match (&host, components.transforms.get(&key), failed.get(&key)) {
                (Err(e), _, _) => Err(e.clone()),
                (Ok(_), Some(t), _) => Ok(t.clone()),
                (Ok(_), None, Some(e)) => Err(e.clone()),
                (Ok(host), None, None) => match load_transform(store, host, manifest, step).await {
                    Ok(t) => {
                        let t = Arc::new(t);
                        components.transforms.insert(key.clone(), t.clone());
                        Ok(t)
                    }
                    Err(f) => {
                        retry |= f.retryable;
                        failed.insert(key.clone(), f.message.clone());
                        Err(f.message)
                    }
                },
            };
            if loaded.is_ok() {
                used.insert(key);
            }
            transforms.push(loaded);
        }
        specs.push(OnDemandSpec {
            name: name.clone(),
            definition: def.clone(),
            transforms,
            metrics: metrics.on_demand(name),
        });
    }
    let live = std::mem::take(&mut components.live_transforms);
    components
        .transforms
        .retain(|k, _| used.contains(k) || live.contains(k));
    components.live_transforms = used;
    components.retry = retry;
    specs
}

/// Runs CPU-bound work (hashing, compiling) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LoadFailure> + Send + 'static,
) -> Result<T, LoadFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(LoadFailure::permanent(format!("loading task failed: {e}"))))
}

/// Loads the component of `step`: the artifact precompiled for this engine when the manifest
/// has one and it checks out, else the `.wasm`, compiled here. Both are verified against the
/// sha256 the manifest records before anything is made of them.
async fn load_transform(
    store: &Store,
    host: &Arc<Host>,
    manifest: &Manifest,
    step: &TransformStep,
) -> Result<Transform, LoadFailure> {
    let artifacts = manifest.transforms.get(&step.sha256).ok_or_else(|| {
        LoadFailure::permanent(format!(
            "the manifest has no component with sha256 {}",
            step.sha256
        ))
    })?;
    let limits = Limits {
        deadline: Duration::from_millis(step.timeout_ms),
        fuel_per_call: step.fuel,
        ..Limits::default()
    };
    if let Some(pre) = artifacts.precompiled.get(&host.compatibility_key()) {
        let loaded = match store.get_bytes(&pre.key).await {
            Ok(bytes) => {
                let (host, expected) = (host.clone(), pre.sha256.clone());
                let (config, limits) = (step.config.clone(), limits.clone());
                blocking(move || {
                    let actual = sha256_hex(&bytes);
                    if !actual.eq_ignore_ascii_case(&expected) {
                        return Err(LoadFailure::permanent(format!(
                            "its sha256 is {actual}, the manifest says {expected}"
                        )));
                    }
                    // SAFETY: `load_precompiled` runs the artifact's native code unchecked. It
                    // is the artifact the control plane precompiled for this engine (filed
                    // under this host's compatibility key, and wasmtime re-checks its engine
                    // version and settings while loading), and its bytes are exactly the ones
                    // the manifest's sha256 names (checked above), so neither a torn download
                    // nor an object replaced in the store gets here.
                    unsafe { host.load_precompiled(&bytes, &config, limits) }
                        .map_err(LoadFailure::load)
                })
                .await
            }
            Err(e) => Err(LoadFailure::storage(e)),
        };
        match loaded {
            Ok(t) => return Ok(t),
            // The `.wasm` is the source of truth: a bad native artifact costs a compile only.
            Err(why) => tracing::warn!(
                key = %pre.key,
                error = %why.message,
                "precompiled transform not usable; compiling its .wasm instead"
            ),
        }
    }
    let bytes = store
        .get_bytes(&artifacts.wasm)
        .await
        .map_err(LoadFailure::storage)?;
    let (host, expected) = (host.clone(), step.sha256.clone());
    let config = step.config.clone();
    let wasm_key = artifacts.wasm.clone();
    blocking(move || {
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&expected) {
            return Err(LoadFailure::permanent(format!(
                "`{wasm_key}` has sha256 {actual}, the manifest says {expected}"
            )));
        }
        host.load(&bytes, &config, limits)
            .map_err(LoadFailure::load)
    })
    .await
}
