use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use fstore_snapshot::Snapshot;
use fstore_storage::{Manifest, PointerRead, Store};

use crate::{Catalog, EdgeError, EdgeState, LoadedView};

/// Polls the live pointer and swaps in new manifests. Owns the local snapshot cache.
pub struct Loader {
    store: Store,
    cache_dir: PathBuf,
    state: Arc<EdgeState>,
    etag: Option<String>,
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
        }
    }

    /// One poll: returns whether a new manifest was swapped in. On error nothing changes:
    /// the edge keeps serving what it has.
    pub async fn poll_once(&mut self) -> Result<bool, EdgeError> {
        let (pointer, etag) = match self.store.read_pointer(self.etag.as_deref()).await? {
            PointerRead::Missing | PointerRead::NotModified => return Ok(false),
            PointerRead::Found { pointer, etag } => (pointer, etag),
        };
        let current = self.state.catalog.load_full();
        if current.as_ref().is_some_and(|c| c.seq == pointer.seq) {
            self.etag = etag;
            return Ok(false);
        }
        let manifest = self.store.read_manifest(&pointer.manifest).await?;
        let catalog = self.build(&manifest, current.as_deref()).await?;
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

    async fn build(
        &self,
        manifest: &Manifest,
        current: Option<&Catalog>,
    ) -> Result<Catalog, EdgeError> {
        tokio::fs::create_dir_all(&self.cache_dir)
            .await
            .map_err(|source| EdgeError::Io {
                path: self.cache_dir.display().to_string(),
                source,
            })?;
        let mut views = Vec::with_capacity(manifest.views.len());
        for (name, mv) in &manifest.views {
            if let Some(v) = current
                .and_then(|c| c.view(name))
                .filter(|v| v.version == mv.version && v.checksum == mv.checksum)
            {
                views.push(v.clone());
                continue;
            }
            let file = self
                .cache_dir
                .join(format!("{name}-{:020}.fss", mv.version));
            if !file.exists() {
                self.store.download(&mv.key, &file).await?;
            }
            let path = file.clone();
            // Mapping verifies the whole body checksum: CPU work, off the async threads.
            let opened = tokio::task::spawn_blocking(move || Snapshot::open(&path))
                .await
                .map_err(|e| EdgeError::Io {
                    path: file.display().to_string(),
                    source: std::io::Error::other(e),
                })?;
            let snapshot = match opened {
                Ok(s) => s,
                Err(source) => {
                    // A corrupt download must not poison the cache for the next poll.
                    let _ = std::fs::remove_file(&file);
                    return Err(EdgeError::Snapshot {
                        key: mv.key.clone(),
                        source,
                    });
                }
            };
            let actual = format!("{:016x}", snapshot.checksum());
            if actual != mv.checksum {
                let _ = std::fs::remove_file(&file);
                return Err(EdgeError::ChecksumMismatch {
                    key: mv.key.clone(),
                    expected: mv.checksum.clone(),
                    actual,
                });
            }
            views.push(Arc::new(LoadedView::new(snapshot, actual, Some(file))));
        }
        let catalog = Catalog::new(manifest.seq, views, &manifest.services);
        for (name, why) in &catalog.broken_services {
            tracing::warn!(service = %name, reason = %why, "feature service cannot be served");
        }
        Ok(catalog)
    }

    /// Deletes cached snapshot files neither the current nor the previous catalog uses.
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
            keep.extend(c.views().iter().filter_map(|v| v.path.clone()));
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
    pub async fn run(mut self, interval: std::time::Duration) {
        loop {
            if let Err(e) = self.poll_once().await {
                self.state
                    .metrics
                    .poll_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "poll failed; still serving the last good snapshot");
            }
            tokio::time::sleep(interval).await;
        }
    }
}
