use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use fstore_snapshot::{FeatureRef, KeyType, Snapshot};

use crate::ApiError;

/// One view's snapshot, mapped and ready to serve.
#[derive(Debug)]
pub struct LoadedView {
    pub name: String,
    pub version: u64,
    pub checksum: String,
    pub snapshot: Snapshot,
    pub key_names: Vec<String>,
    pub key_types: Vec<KeyType>,
    /// The local file the snapshot is mapped from (None for in-memory snapshots).
    pub path: Option<PathBuf>,
}

impl LoadedView {
    pub fn new(snapshot: Snapshot, checksum: String, path: Option<PathBuf>) -> Self {
        let s = snapshot.schema();
        Self {
            name: s.view.clone(),
            version: s.version,
            key_names: s.keys.iter().map(|k| k.name.clone()).collect(),
            key_types: s.keys.iter().map(|k| k.ty).collect(),
            checksum,
            path,
            snapshot,
        }
    }
}

/// A requested feature resolved to a view slot and a feature slot, with the names the two
/// response formats use precomputed so the hot path formats nothing.
#[derive(Debug, Clone)]
pub struct ResolvedFeature {
    pub view: usize,
    pub feature: usize,
    /// `view:feature`
    pub reference: String,
    /// `feature`
    pub short_name: String,
    /// `view__feature` (Feast's full feature names)
    pub full_name: String,
    /// The three names above as JSON string literals, escaped once here rather than on
    /// every request.
    pub reference_json: Box<[u8]>,
    pub short_json: Box<[u8]>,
    pub full_json: Box<[u8]>,
}

fn json_literal(s: &str) -> Box<[u8]> {
    let mut v = Vec::with_capacity(s.len() + 2);
    fstore_snapshot::json::write_str(&mut v, s);
    v.into_boxed_slice()
}

/// Everything an edge serves from one manifest: immutable, swapped as a whole.
#[derive(Debug)]
pub struct Catalog {
    pub seq: u64,
    views: Vec<Arc<LoadedView>>,
    by_name: HashMap<String, usize>,
    services: HashMap<String, Arc<[ResolvedFeature]>>,
    /// Services the manifest names but this catalog cannot serve, with the reason.
    pub broken_services: Vec<(String, String)>,
    pub loaded_at: std::time::SystemTime,
}

impl Catalog {
    pub fn new(
        seq: u64,
        views: Vec<Arc<LoadedView>>,
        services: &BTreeMap<String, Vec<FeatureRef>>,
    ) -> Self {
        let by_name = views
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), i))
            .collect();
        let mut c = Self {
            seq,
            views,
            by_name,
            services: HashMap::new(),
            broken_services: Vec::new(),
            loaded_at: std::time::SystemTime::now(),
        };
        for (name, refs) in services {
            match c.resolve(refs.iter().map(|r| (r.view.as_str(), r.feature.as_str()))) {
                Ok(list) => {
                    c.services.insert(name.clone(), list.into());
                }
                Err(e) => c.broken_services.push((name.clone(), e.message)),
            }
        }
        c
    }

    pub fn views(&self) -> &[Arc<LoadedView>] {
        &self.views
    }

    pub fn view_at(&self, i: usize) -> &LoadedView {
        &self.views[i]
    }

    pub fn view(&self, name: &str) -> Option<&Arc<LoadedView>> {
        self.by_name.get(name).map(|&i| &self.views[i])
    }

    pub fn service(&self, name: &str) -> Option<&Arc<[ResolvedFeature]>> {
        self.services.get(name)
    }

    /// Resolves `(view, feature)` pairs; unknown views and features are 404s that say which.
    pub fn resolve<'a>(
        &self,
        refs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Vec<ResolvedFeature>, ApiError> {
        let mut out = Vec::new();
        for (view, feature) in refs {
            let &vi = self.by_name.get(view).ok_or_else(|| {
                ApiError::not_found(
                    "unknown_feature_view",
                    format!("feature view `{view}` is not served by this edge"),
                )
            })?;
            let fi = self.views[vi]
                .snapshot
                .schema()
                .feature_index(feature)
                .ok_or_else(|| {
                    ApiError::not_found(
                        "unknown_feature",
                        format!("feature view `{view}` has no feature `{feature}`"),
                    )
                })?;
            let reference = format!("{view}:{feature}");
            let full_name = format!("{view}__{feature}");
            out.push(ResolvedFeature {
                view: vi,
                feature: fi,
                reference_json: json_literal(&reference),
                short_json: json_literal(feature),
                full_json: json_literal(&full_name),
                reference,
                short_name: feature.to_string(),
                full_name,
            });
        }
        Ok(out)
    }
}
