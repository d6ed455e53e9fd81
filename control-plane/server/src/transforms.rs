//! Registering transforms: every component a definition names is loaded and checked against
//! the world (`describe`, `configure`), addressed by its sha256 and stored beside the
//! snapshots; every view's transform steps are bound to its features by name and type; SQL
//! features are compiled into one component per view. What this resolves is what gets applied,
//! so `apply --dry-run` shows exactly the change, component versions included.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fstore_snapshot::{FeatureType, Field, SQL_STEP, TransformStep};
use fstore_spec::{Definitions, FeatureDef, ResolvedTransform, SpecError};
use fstore_storage::{
    ManifestTransform, Precompiled, StorageError, Store, precompiled_key, sha256_hex, transform_key,
};
use fstore_wasm_host::{Host, Limits, Transform, feature_type};

use crate::ControlError;

/// Deadline of a compiled SQL step. Its code has no loops (a row costs at most a few
/// instructions per node of the expression, and fuel bounds it too), so the wall-clock deadline
/// is only a backstop; a tight one would fail calls whenever the thread is descheduled.
const SQL_TIMEOUT_MS: u64 = 1_000;

/// Largest component accepted. Real transforms are tens to hundreds of kilobytes.
const MAX_COMPONENT_BYTES: usize = 32 << 20;

/// The control plane's wasm side: one engine, and the components it has loaded.
pub struct Transforms {
    host: Arc<Host>,
    loaded: Mutex<HashMap<String, Arc<Transform>>>,
    /// sha256 of precompiled artifacts by object key. The objects are immutable, so a publish
    /// need not download and hash them again.
    precompiled: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Transforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transforms").finish_non_exhaustive()
    }
}

fn fields(fs: &[fstore_wasm_host::Field]) -> Vec<Field<FeatureType>> {
    fs.iter()
        .map(|f| Field {
            name: f.name.clone(),
            ty: feature_type(f.type_),
        })
        .collect()
}

fn limits(timeout_ms: u64, fuel: u64) -> Limits {
    Limits {
        deadline: Duration::from_millis(timeout_ms),
        fuel_per_call: fuel,
        ..Limits::default()
    }
}

fn invalid(key: String, message: String) -> ControlError {
    ControlError::InvalidDefinitions(vec![SpecError::new(message).key(key)])
}

/// Reads a component from a local path or an object-store URL.
async fn read_component(location: &str) -> Result<Vec<u8>, String> {
    let bytes = if location.contains("://") && !location.starts_with("file://") {
        let (dir, name) = location
            .rsplit_once('/')
            .ok_or_else(|| format!("`{location}` names no object"))?;
        let store = Store::from_url(dir).map_err(|e| e.to_string())?;
        store
            .get_bytes(name)
            .await
            .map_err(|e| e.to_string())?
            .to_vec()
    } else {
        let path = location.strip_prefix("file://").unwrap_or(location);
        tokio::fs::read(path)
            .await
            .map_err(|e| format!("cannot read `{path}`: {e}"))?
    };
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(format!(
            "`{location}` is {} bytes; components are limited to {MAX_COMPONENT_BYTES}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Stores an immutable object unless it is already there (same key, same content: the key is
/// the content's hash).
async fn put_once(store: &Store, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
    match store.put_new(key, bytes.into()).await {
        Ok(()) | Err(StorageError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Transforms {
    pub fn new() -> Result<Self, ControlError> {
        let host = Host::new(fstore_wasm_host::HostConfig::default())
            .map_err(|e| ControlError::BadRequest(format!("cannot start the wasm engine: {e}")))?;
        Ok(Self {
            host: Arc::new(host),
            loaded: Mutex::new(HashMap::new()),
            precompiled: Mutex::new(HashMap::new()),
        })
    }

    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Fills in `defs`: each transform's `resolved`, each view's `steps`. With a store, the
    /// components are written to it (content-addressed); without one (dry run) nothing is
    /// written.
    pub async fn resolve(
        &self,
        defs: &mut Definitions,
        store: Option<&Store>,
    ) -> Result<(), ControlError> {
        let mut errs = Vec::new();
        for t in &mut defs.transforms {
            let key = format!("transforms.{}.component", t.name);
            let bytes = match read_component(&t.component).await {
                Ok(b) => b,
                Err(m) => {
                    errs.push(SpecError::new(format!("transform `{}`: {m}", t.name)).key(key));
                    continue;
                }
            };
            let sha = sha256_hex(&bytes);
            let config: Vec<(String, String)> = t
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let loaded = match self.load(&sha, &bytes, &config, limits(t.timeout_ms(), t.fuel())) {
                Ok(l) => l,
                Err(m) => {
                    errs.push(SpecError::new(format!("transform `{}`: {m}", t.name)).key(key));
                    continue;
                }
            };
            let sig = loaded.signature();
            t.resolved = Some(ResolvedTransform {
                sha256: sha.clone(),
                size_bytes: bytes.len() as u64,
                inputs: fields(&sig.inputs),
                outputs: fields(&sig.outputs),
            });
            if let Some(store) = store {
                put_once(store, &transform_key(&sha), bytes).await?;
            }
        }
        if !errs.is_empty() {
            return Err(ControlError::InvalidDefinitions(errs));
        }

        let mut views = std::mem::take(&mut defs.feature_views);
        for v in &mut views {
            let available: Vec<(String, FeatureType)> = v
                .features
                .iter()
                .filter(|f| f.is_stored())
                .map(|f| (f.name.clone(), f.ty))
                .collect();
            let prefix = format!("feature_views.{}", v.name);
            v.steps = self
                .bind_steps(defs, &prefix, &v.features, available, store)
                .await?;
        }
        defs.feature_views = views;

        let mut odvs = std::mem::take(&mut defs.on_demand_views);
        for v in &mut odvs {
            // Names an on-demand view can read: request fields by their name, source features
            // by their name when no other source has the same name (else only qualified).
            let mut available: Vec<(String, FeatureType)> = Vec::new();
            let mut qualified: HashMap<String, String> = HashMap::new();
            if let Some(r) = v
                .request_source
                .as_ref()
                .and_then(|r| defs.request_source(r))
            {
                for f in &r.fields {
                    available.push((f.name.clone(), f.ty));
                }
            }
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for s in v.sources.iter().filter_map(|s| defs.view(s)) {
                for f in &s.features {
                    *counts.entry(f.name.as_str()).or_default() += 1;
                }
            }
            for s in v.sources.iter().filter_map(|s| defs.view(s)) {
                for f in &s.features {
                    if counts.get(f.name.as_str()) == Some(&1)
                        && !available.iter().any(|(n, _)| *n == f.name)
                    {
                        available.push((f.name.clone(), f.ty));
                        qualified.insert(f.name.clone(), format!("{}:{}", s.name, f.name));
                    }
                }
            }
            let prefix = format!("on_demand_views.{}", v.name);
            let mut steps = self
                .bind_steps(defs, &prefix, &v.features, available, store)
                .await?;
            // Edges tell view features from request fields and earlier outputs by the `:`.
            for step in &mut steps {
                for input in &mut step.inputs {
                    if let Some(q) = qualified.get(input.as_str()) {
                        *input = q.clone();
                    }
                }
            }
            v.steps = steps;
        }
        defs.on_demand_views = odvs;
        Ok(())
    }

    /// Binds the transform and SQL features of one view to the names available before them.
    async fn bind_steps(
        &self,
        defs: &Definitions,
        prefix: &str,
        features: &[FeatureDef],
        mut available: Vec<(String, FeatureType)>,
        store: Option<&Store>,
    ) -> Result<Vec<TransformStep>, ControlError> {
        let mut steps = Vec::new();
        let mut order: Vec<&str> = Vec::new();
        for f in features {
            if let Some(t) = &f.transform
                && !order.contains(&t.as_str())
            {
                order.push(t);
            }
        }
        for name in order {
            let Some(t) = defs.transform(name) else {
                continue;
            };
            let Some(r) = &t.resolved else {
                continue;
            };
            let users: Vec<&FeatureDef> = features
                .iter()
                .filter(|f| f.transform.as_deref() == Some(name))
                .collect();
            let first = users.first().map_or("", |f| f.name.as_str());
            let mut inputs = Vec::with_capacity(r.inputs.len());
            for input in &r.inputs {
                match available.iter().find(|(n, _)| *n == input.name) {
                    Some((_, ty)) if *ty == input.ty => inputs.push(input.name.clone()),
                    Some((_, ty)) => {
                        return Err(invalid(
                            format!("{prefix}.features.{first}"),
                            format!(
                                "transform `{name}` reads `{}` as {}, but it is {} here",
                                input.name,
                                input.ty.name(),
                                ty.name()
                            ),
                        ));
                    }
                    None => {
                        return Err(invalid(
                            format!("{prefix}.features.{first}"),
                            format!(
                                "transform `{name}` needs input `{}` ({}), which is not available here (only features read from the source, request fields and outputs of earlier transforms are)",
                                input.name,
                                input.ty.name()
                            ),
                        ));
                    }
                }
            }
            // Outputs are positional; a step's output carries the name of the feature that
            // takes it, so materialization and edges find features by name. Outputs no
            // feature takes get a name no feature can have.
            let mut outputs: Vec<Field<FeatureType>> = r
                .outputs
                .iter()
                .map(|o| Field {
                    name: format!("{name}.{}", o.name),
                    ty: o.ty,
                })
                .collect();
            for f in &users {
                let wanted = f.output();
                match r.outputs.iter().position(|o| o.name == wanted) {
                    Some(i) if r.outputs[i].ty == f.ty => outputs[i].name = f.name.clone(),
                    Some(i) => {
                        return Err(invalid(
                            format!("{prefix}.features.{}", f.name),
                            format!(
                                "feature `{}` is declared {}, but transform `{name}` outputs `{wanted}` as {}",
                                f.name,
                                f.ty.name(),
                                r.outputs[i].ty.name()
                            ),
                        ));
                    }
                    None => {
                        let names: Vec<&str> = r.outputs.iter().map(|o| o.name.as_str()).collect();
                        return Err(invalid(
                            format!("{prefix}.features.{}", f.name),
                            format!(
                                "transform `{name}` has no output `{wanted}`; it outputs {}",
                                names.join(", ")
                            ),
                        ));
                    }
                }
                if available.iter().any(|(n, _)| *n == f.name) {
                    return Err(invalid(
                        format!("{prefix}.features.{}", f.name),
                        format!(
                            "feature `{}` would hide an input of the same name; give it another name and `output: {wanted}`",
                            f.name
                        ),
                    ));
                }
                available.push((f.name.clone(), f.ty));
            }
            steps.push(TransformStep {
                transform: name.to_string(),
                sha256: r.sha256.clone(),
                inputs,
                outputs,
                config: t
                    .config
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                timeout_ms: t.timeout_ms(),
                fuel: t.fuel(),
            });
        }

        let sql: Vec<&FeatureDef> = features.iter().filter(|f| f.sql.is_some()).collect();
        if let Some(f) = sql
            .iter()
            .find(|f| available.iter().any(|(n, _)| *n == f.name))
        {
            return Err(invalid(
                format!("{prefix}.features.{}", f.name),
                format!(
                    "feature `{}` would hide an input of the same name; give it another name",
                    f.name
                ),
            ));
        }
        if !sql.is_empty() {
            let exprs: Vec<fstore_compiler::Expr<'_>> = sql
                .iter()
                .map(|f| fstore_compiler::Expr {
                    name: &f.name,
                    sql: f.sql.as_deref().unwrap_or_default(),
                    declared: Some(f.ty),
                })
                .collect();
            let compiled = fstore_compiler::compile(&available, &exprs)
                .map_err(|e| invalid(format!("{prefix}.features.{}", e.expr), e.to_string()))?;
            let sha = sha256_hex(&compiled.component);
            let limits = limits(SQL_TIMEOUT_MS, fstore_snapshot::DEFAULT_FUEL);
            // Loading proves the compiled component runs under the same host as uploaded ones.
            self.load(&sha, &compiled.component, &[], limits)
                .map_err(|m| invalid(format!("{prefix}.features"), m))?;
            if let Some(store) = store {
                put_once(store, &transform_key(&sha), compiled.component).await?;
            }
            steps.push(TransformStep {
                transform: SQL_STEP.to_string(),
                sha256: sha,
                inputs: compiled.inputs.into_iter().map(|(n, _)| n).collect(),
                outputs: compiled
                    .outputs
                    .into_iter()
                    .map(|(name, ty)| Field { name, ty })
                    .collect(),
                config: Vec::new(),
                timeout_ms: SQL_TIMEOUT_MS,
                fuel: fstore_snapshot::DEFAULT_FUEL,
            });
        }
        Ok(steps)
    }

    /// Loads (or reuses) a component with one configuration.
    fn load(
        &self,
        sha: &str,
        bytes: &[u8],
        config: &[(String, String)],
        limits: Limits,
    ) -> Result<Arc<Transform>, String> {
        if let Some(t) = self.cached(sha, config, &limits) {
            return Ok(t);
        }
        let cache_key = cache_key(sha, config, &limits);
        let t = Arc::new(
            self.host
                .load(bytes, config, limits)
                .map_err(|e| e.to_string())?,
        );
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cache_key, t.clone());
        Ok(t)
    }

    /// A component already loaded with this configuration. Its bytes were checked against
    /// `sha` when it was loaded.
    fn cached(
        &self,
        sha: &str,
        config: &[(String, String)],
        limits: &Limits,
    ) -> Option<Arc<Transform>> {
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&cache_key(sha, config, limits))
            .cloned()
    }

    /// The loaded components of `steps`, fetched from the store when not in memory.
    pub async fn for_steps(
        &self,
        store: &Store,
        steps: &[TransformStep],
    ) -> Result<Vec<Arc<Transform>>, ControlError> {
        let mut out = Vec::with_capacity(steps.len());
        for s in steps {
            let limits = limits(s.timeout_ms, s.fuel);
            if let Some(t) = self.cached(&s.sha256, &s.config, &limits) {
                out.push(t);
                continue;
            }
            let bytes = store.get_bytes(&transform_key(&s.sha256)).await?;
            if sha256_hex(&bytes) != s.sha256 {
                return Err(ControlError::BadRequest(format!(
                    "stored component {} does not match its sha256; re-apply the definitions",
                    s.sha256
                )));
            }
            let t = self
                .load(&s.sha256, &bytes, &s.config, limits)
                .map_err(|m| {
                    ControlError::BadRequest(format!("transform `{}`: {m}", s.transform))
                })?;
            out.push(t);
        }
        Ok(out)
    }

    /// Makes sure every component the on-demand views need is stored with native code for
    /// this engine, and describes where (for the manifest). Precompiling happens here, once
    /// per component: the key is content-addressed, so later publishes find it.
    pub async fn artifacts(
        &self,
        store: &Store,
        defs: &Definitions,
    ) -> Result<BTreeMap<String, ManifestTransform>, ControlError> {
        let compat = self.host.compatibility_key();
        let mut out = BTreeMap::new();
        for step in defs.on_demand_views.iter().flat_map(|v| &v.steps) {
            if out.contains_key(&step.sha256) {
                continue;
            }
            let key = precompiled_key(&step.sha256, &compat);
            let sha256 = match self.precompiled_sha(&key) {
                Some(sha) => sha,
                None => {
                    let sha = sha256_hex(&self.native_code(store, step, &key).await?);
                    self.precompiled
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key.clone(), sha.clone());
                    sha
                }
            };
            let mut precompiled = BTreeMap::new();
            precompiled.insert(compat.clone(), Precompiled { key, sha256 });
            out.insert(
                step.sha256.clone(),
                ManifestTransform {
                    wasm: transform_key(&step.sha256),
                    precompiled,
                },
            );
        }
        Ok(out)
    }

    fn precompiled_sha(&self, key: &str) -> Option<String> {
        self.precompiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// The stored native code at `key`, precompiling and storing it first if it is missing.
    async fn native_code(
        &self,
        store: &Store,
        step: &TransformStep,
        key: &str,
    ) -> Result<Vec<u8>, ControlError> {
        let native = match store.get_bytes(key).await {
            Ok(b) => b.to_vec(),
            Err(StorageError::NotFound(_)) => {
                let wasm = store.get_bytes(&transform_key(&step.sha256)).await?;
                let native = self.host.precompile(&wasm).map_err(|e| {
                    ControlError::BadRequest(format!("transform `{}`: {e}", step.transform))
                })?;
                put_once(store, key, native).await?;
                // Another control plane may have stored its own build first: hash what
                // is stored, since that is what edges will load.
                store.get_bytes(key).await?.to_vec()
            }
            Err(e) => return Err(e.into()),
        };
        Ok(native)
    }
}

fn cache_key(sha: &str, config: &[(String, String)], limits: &Limits) -> String {
    format!("{sha}|{config:?}|{limits:?}")
}
