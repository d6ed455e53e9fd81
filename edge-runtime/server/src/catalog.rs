use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use fstore_snapshot::{FeatureRef, KeyType, Row, Snapshot, SnapshotError};

use crate::metrics::ViewCounters;
use crate::ondemand::{OnDemandSpec, OnDemandView};
use crate::{ApiError, Metrics};

/// One view's snapshot, mapped and ready to serve: a full (base) snapshot and the delta
/// snapshots layered over it, which answer for the entities they hold.
#[derive(Debug)]
pub struct LoadedView {
    /// The manifest's name for this slot: the view (`customer_rfm`), a pinned definition
    /// version (`customer_rfm@v3`) or a service's rollback (`customer_rfm#41`).
    pub name: String,
    /// The version served: the newest delta's, else the base's.
    pub version: u64,
    /// The base snapshot's checksum (hex), as the manifest records it.
    pub checksum: String,
    /// The base (full) snapshot.
    pub snapshot: Snapshot,
    /// Deltas on top of `snapshot`, newest first (the order a lookup probes them in). Every
    /// one passed [`fstore_snapshot::check_delta`] against `snapshot`, so a row of any of them
    /// reads through the base's schema.
    pub deltas: Vec<Snapshot>,
    pub key_names: Vec<String>,
    pub key_types: Vec<KeyType>,
    /// The local file the snapshot is mapped from (None for in-memory snapshots).
    pub path: Option<PathBuf>,
    /// The local files the deltas are mapped from, in the order of `deltas` (empty for
    /// in-memory deltas).
    pub delta_paths: Vec<PathBuf>,
    /// Distinct entities served: the base's plus those only its deltas hold.
    pub entities: u64,
    /// Set when only some shards of a sharded slot are loaded: `snapshot` is then an empty
    /// stand-in carrying the schema, and each held shard is a view of its own (base shard and
    /// delta shards) that lookups route a key to by its hash.
    pub shards: Option<HeldShards>,
}

/// The shards of a sharded slot an edge holds.
#[derive(Debug)]
pub struct HeldShards {
    /// How many shards the slot is split into.
    pub count: u32,
    /// Each held shard's index and its layers, by index.
    pub parts: Vec<(u32, Arc<LoadedView>)>,
}

impl HeldShards {
    /// The held shard `key` falls in; None when its shard is not held.
    #[inline]
    fn part(&self, key: &[u8]) -> Option<&LoadedView> {
        let i = fstore_snapshot::shard_of(fstore_snapshot::format::key_hash(key), self.count);
        self.parts
            .iter()
            .find(|(p, _)| *p == i)
            .map(|(_, v)| v.as_ref())
    }
}

impl LoadedView {
    pub fn new(snapshot: Snapshot, checksum: String, path: Option<PathBuf>) -> Self {
        let name = snapshot.schema().view.clone();
        Self::named(name, snapshot, checksum, path)
    }

    /// A snapshot served under the manifest's slot name, which differs from the view name in
    /// the snapshot for rollbacks (`customer_rfm#41` serves a `customer_rfm` snapshot).
    pub fn named(
        name: String,
        snapshot: Snapshot,
        checksum: String,
        path: Option<PathBuf>,
    ) -> Self {
        let s = snapshot.schema();
        Self {
            name,
            version: s.version,
            key_names: s.keys.iter().map(|k| k.name.clone()).collect(),
            key_types: s.keys.iter().map(|k| k.ty).collect(),
            checksum,
            path,
            entities: snapshot.len(),
            snapshot,
            deltas: Vec::new(),
            delta_paths: Vec::new(),
            shards: None,
        }
    }

    /// A slot of which only the shards `parts` (index, layers; each part a shard's own view)
    /// are held, out of `count`. `version` is the slot's served version (a delta that touched
    /// none of the held shards still moves it) and `checksum` the full base's, as the manifest
    /// records them. Refuses parts whose schemas differ beyond their shard.
    pub fn sharded(
        name: String,
        version: u64,
        checksum: String,
        count: u32,
        parts: Vec<(u32, Arc<LoadedView>)>,
    ) -> Result<Self, SnapshotError> {
        let first = parts
            .first()
            .ok_or_else(|| SnapshotError::Layer("a sharded slot needs a shard".into()))?;
        let schema = fstore_snapshot::SnapshotSchema {
            shard: None,
            ..first.1.snapshot.schema().clone()
        };
        for (i, p) in &parts {
            let s = p.snapshot.schema();
            if s.keys != schema.keys || s.features != schema.features || s.view != schema.view {
                return Err(SnapshotError::Layer(format!(
                    "shard {i} of `{}` has another schema than shard {}",
                    schema.view, first.0
                )));
            }
        }
        // The stand-in: no rows, just the schema every part shares.
        let empty = fstore_snapshot::SnapshotWriter::new(schema)?.finish_to_vec()?;
        let mut view = Self::named(name, Snapshot::from_bytes(empty)?, checksum, None);
        view.version = version;
        view.entities = parts.iter().map(|(_, p)| p.entities).sum();
        view.shards = Some(HeldShards { count, parts });
        Ok(view)
    }

    /// Whether this edge holds the entity `key`: always, unless only some shards are loaded.
    #[inline]
    pub fn holds(&self, key: &[u8]) -> bool {
        self.shards.as_ref().is_none_or(|h| h.part(key).is_some())
    }

    /// Deltas layered on the base; for a view held by shard, the most any held shard has.
    pub fn delta_count(&self) -> usize {
        match &self.shards {
            None => self.deltas.len(),
            Some(h) => h
                .parts
                .iter()
                .map(|(_, p)| p.deltas.len())
                .max()
                .unwrap_or(0),
        }
    }

    /// Every local file this view maps (its shards' included), for cache cleaning.
    pub fn files(&self) -> Box<dyn Iterator<Item = &PathBuf> + '_> {
        let own = self.path.iter().chain(&self.delta_paths);
        match &self.shards {
            None => Box::new(own),
            Some(h) => Box::new(own.chain(h.parts.iter().flat_map(|(_, p)| p.files()))),
        }
    }

    /// Layers `deltas` (newest first) over the base, replacing any it had; `paths` are their
    /// local files in the same order, or empty for in-memory deltas. Refuses deltas that do not
    /// apply to the base (see [`fstore_snapshot::check_delta`]) or are out of order. Reads
    /// every delta row once to count entities: call it off the async threads.
    pub fn with_deltas(
        mut self,
        deltas: Vec<Snapshot>,
        paths: Vec<PathBuf>,
    ) -> Result<Self, SnapshotError> {
        if !paths.is_empty() && paths.len() != deltas.len() {
            return Err(SnapshotError::Layer(format!(
                "{} delta files for {} deltas",
                paths.len(),
                deltas.len()
            )));
        }
        let mut newer = u64::MAX;
        for d in &deltas {
            fstore_snapshot::check_delta(&self.snapshot, d)?;
            let v = d.schema().version;
            // Newest first decides which row a lookup answers with; a list in the manifest's
            // order (oldest first) would serve stale values without this check.
            if v >= newer {
                return Err(SnapshotError::Layer(format!(
                    "delta version {v} follows version {newer}: deltas go newest first"
                )));
            }
            newer = v;
        }
        // An entity a delta holds and no older layer does is new; the others replace a row.
        let mut entities = self.snapshot.len();
        for (i, d) in deltas.iter().enumerate() {
            let older = &deltas[i + 1..];
            entities += d
                .rows()
                .filter(|r| fstore_snapshot::layered_get(&self.snapshot, older, r.key()).is_none())
                .count() as u64;
        }
        self.version = deltas
            .first()
            .map_or(self.snapshot.schema().version, |d| d.schema().version);
        self.entities = entities;
        self.deltas = deltas;
        self.delta_paths = paths;
        Ok(self)
    }

    /// The row served for an encoded entity key: the newest delta holding it, else the base.
    /// With no deltas this is the base's own probe (the delta loop is over an empty slice).
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<Row<'_>> {
        match &self.shards {
            None => fstore_snapshot::layered_get(&self.snapshot, &self.deltas, key),
            Some(h) => h.part(key)?.get(key),
        }
    }

    /// When the newest layer served was materialized (microseconds since the Unix epoch).
    pub fn created_at_micros(&self) -> i64 {
        if let Some(h) = &self.shards {
            return h
                .parts
                .iter()
                .map(|(_, p)| p.created_at_micros())
                .max()
                .unwrap_or_default();
        }
        self.deltas
            .first()
            .unwrap_or(&self.snapshot)
            .schema()
            .created_at_micros
    }

    /// Bytes of every file served: the base and its deltas.
    pub fn size_bytes(&self) -> u64 {
        if let Some(h) = &self.shards {
            return h.parts.iter().map(|(_, p)| p.size_bytes()).sum();
        }
        self.deltas
            .iter()
            .fold(self.snapshot.size_bytes(), |n, d| n + d.size_bytes())
    }

    /// Whether a row with event time `event_micros` is older than the view's ttl at `now`.
    /// Unlike Feast, max age is enforced when serving, so a snapshot that outlives its data
    /// never serves stale values.
    #[inline]
    pub fn is_stale(&self, event_micros: i64, now_micros: i64) -> bool {
        let ttl = self.snapshot.schema().ttl_seconds;
        ttl > 0 && now_micros.saturating_sub(event_micros) > (ttl as i64).saturating_mul(1_000_000)
    }
}

/// A requested feature resolved to a view slot and a feature slot, with the names the two
/// response formats use precomputed so the hot path formats nothing.
#[derive(Debug, Clone)]
pub struct ResolvedFeature {
    /// Index in [`Catalog::views`], or in [`Catalog::on_demand_views`] when `on_demand`.
    pub view: usize,
    /// Index of the feature in its view.
    pub feature: usize,
    /// Whether the feature is computed per request by an on-demand view.
    pub on_demand: bool,
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

/// What a view name refers to.
#[derive(Debug, Clone, Copy)]
enum Named {
    View(usize),
    OnDemand(usize),
}

/// Everything an edge serves from one manifest: immutable, swapped as a whole.
#[derive(Debug)]
pub struct Catalog {
    pub seq: u64,
    views: Vec<Arc<LoadedView>>,
    on_demand: Vec<OnDemandView>,
    by_name: HashMap<String, Named>,
    services: HashMap<String, Arc<[ResolvedFeature]>>,
    /// Services the manifest names but this catalog cannot serve, with the reason.
    pub broken_services: Vec<(String, String)>,
    pub loaded_at: std::time::SystemTime,
    /// The serving counters of every view (in the order of `views`) then every on-demand
    /// view (in the order of `on_demand`), resolved once, with the id of the [`Metrics`]
    /// they came from: a request then only indexes and adds.
    signals: OnceLock<(u64, Box<[Arc<ViewCounters>]>)>,
}

impl Catalog {
    pub fn new(
        seq: u64,
        views: Vec<Arc<LoadedView>>,
        services: &BTreeMap<String, Vec<FeatureRef>>,
    ) -> Self {
        Self::with_on_demand(seq, views, Vec::new(), services)
    }

    /// A catalog that also computes on-demand views. Each is bound to `views` here, once; one
    /// that cannot be bound (or whose components failed to load) is kept as unavailable, so
    /// it never takes the rest of the catalog down.
    pub fn with_on_demand(
        seq: u64,
        views: Vec<Arc<LoadedView>>,
        on_demand: Vec<OnDemandSpec>,
        services: &BTreeMap<String, Vec<FeatureRef>>,
    ) -> Self {
        let mut by_name: HashMap<String, Named> = views
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.clone(), Named::View(i)))
            .collect();
        let index = |name: &str| match by_name.get(name) {
            Some(Named::View(i)) => Some(*i),
            _ => None,
        };
        let mut bound: Vec<OnDemandView> = on_demand
            .into_iter()
            .map(|spec| OnDemandView::bind(spec, &views, index))
            .collect();
        for (i, od) in bound.iter_mut().enumerate() {
            if by_name.contains_key(&od.name) {
                od.mark_unavailable(format!(
                    "its name is also a feature view's or another on-demand view's, so `{}:…` \
                     cannot name it",
                    od.name
                ));
                continue;
            }
            by_name.insert(od.name.clone(), Named::OnDemand(i));
        }
        let mut c = Self {
            seq,
            views,
            on_demand: bound,
            by_name,
            services: HashMap::new(),
            broken_services: Vec::new(),
            loaded_at: std::time::SystemTime::now(),
            signals: OnceLock::new(),
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
        match self.by_name.get(name) {
            Some(&Named::View(i)) => Some(&self.views[i]),
            _ => None,
        }
    }

    pub fn on_demand_views(&self) -> &[OnDemandView] {
        &self.on_demand
    }

    pub fn on_demand_at(&self, i: usize) -> &OnDemandView {
        &self.on_demand[i]
    }

    pub fn on_demand(&self, name: &str) -> Option<&OnDemandView> {
        match self.by_name.get(name) {
            Some(&Named::OnDemand(i)) => Some(&self.on_demand[i]),
            _ => None,
        }
    }

    /// On-demand views this catalog cannot compute, with the reason.
    pub fn broken_on_demand(&self) -> impl Iterator<Item = (&str, &str)> {
        self.on_demand
            .iter()
            .filter_map(|v| Some((v.name.as_str(), v.unavailable.as_deref()?)))
    }

    /// The serving counters of this catalog's views in `metrics`: those of view `i` at `i`,
    /// those of on-demand view `i` at `views().len() + i`. Resolved on the first call (the
    /// loader makes it when building the catalog) and kept; a call with other metrics than
    /// the first (tests only) resolves afresh.
    pub(crate) fn signals(&self, metrics: &Metrics) -> Cow<'_, [Arc<ViewCounters>]> {
        let resolve = || -> Box<[Arc<ViewCounters>]> {
            self.views
                .iter()
                .map(|v| metrics.view(&v.name))
                .chain(self.on_demand.iter().map(|v| metrics.view(&v.name)))
                .collect()
        };
        let (id, signals) = self.signals.get_or_init(|| (metrics.id, resolve()));
        if *id == metrics.id {
            Cow::Borrowed(signals)
        } else {
            Cow::Owned(resolve().into_vec())
        }
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
            let &named = self.by_name.get(view).ok_or_else(|| {
                ApiError::not_found(
                    "unknown_feature_view",
                    format!("feature view `{view}` is not served by this edge"),
                )
            })?;
            let (vi, fi, on_demand) = match named {
                Named::View(vi) => (
                    vi,
                    self.views[vi].snapshot.schema().feature_index(feature),
                    false,
                ),
                Named::OnDemand(oi) => (
                    oi,
                    self.on_demand[oi]
                        .features
                        .iter()
                        .position(|f| f.name == feature),
                    true,
                ),
            };
            let fi = fi.ok_or_else(|| {
                ApiError::not_found(
                    "unknown_feature",
                    format!("feature view `{view}` has no feature `{feature}`"),
                )
            })?;
            let reference = format!("{view}:{feature}");
            // Names a model sees stay the same when its service pins or rolls back a view.
            let full_name = format!("{}__{feature}", fstore_snapshot::base_view(view));
            out.push(ResolvedFeature {
                view: vi,
                feature: fi,
                on_demand,
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
