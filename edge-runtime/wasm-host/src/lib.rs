//! The one wasmtime facade: loads transform components (the `fstore:transform` world in `wit/`)
//! and runs them sandboxed, with a per-call deadline, a fuel budget and a memory cap.
//!
//! One [`Host`] per process owns the engine, its pooling allocator and the thread that advances
//! the epoch clock. A [`Transform`] is one loaded component with its configuration; it keeps a
//! small pool of warm instances. An instance that trapped is dropped, never reused: after a trap
//! wasmtime refuses further calls on its store, and its memory may be in any state.
//!
//! The control plane uses the same host to validate, precompile and run transforms in batch, so
//! a value computed offline and one computed at the edge come from the same code under the same
//! engine configuration.

mod limits;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use fstore_snapshot::FeatureType;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use limits::Limits;
use limits::StoreState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "fstore:transform/transform",
        // Tests and callers compare values (offline against edge results).
        additional_derives: [PartialEq],
    });
}

pub use bindings::fstore::transform::types::{
    Column, ColumnData, Field, Signature, Value, ValueType,
};

/// How the engine of a process is set up. Every process that loads precompiled components must
/// use the same settings as the one that produced them ([`Host::compatibility_key`] tells).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Linear memory an instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Instances that may exist at once across every transform of this host (the pooling
    /// allocator reserves address space for all of them up front).
    pub max_instances: u32,
    /// How often the epoch clock ticks; deadlines are rounded up to whole ticks.
    pub epoch_tick: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            max_memory_bytes: 64 << 20,
            max_instances: 128,
            epoch_tick: Duration::from_millis(1),
        }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid transform component: {0}")]
    Invalid(String),
    #[error("precompiled component does not match this host's engine; compile the .wasm instead")]
    Incompatible,
    #[error("component could not be instantiated: {0}")]
    Instantiate(String),
    #[error("transform rejected its configuration: {0}")]
    Configure(String),
    #[error("transform declares an unusable signature: {0}")]
    Signature(String),
    #[error("engine setup failed: {0}")]
    Engine(String),
}

/// Why one call failed. Only the features the call computes are affected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("transform exceeded its deadline of {0:?}")]
    Timeout(Duration),
    #[error("transform exhausted its fuel budget")]
    OutOfFuel,
    #[error("transform exceeded its memory cap of {0} bytes")]
    MemoryLimit(usize),
    #[error("transform trapped: {0}")]
    Trap(String),
    #[error("transform returned an error: {0}")]
    Guest(String),
    #[error("transform returned bad output: {0}")]
    BadOutput(String),
    #[error("input does not match the transform's signature: {0}")]
    BadInput(String),
    #[error("no instance available: {0}")]
    Unavailable(String),
}

impl CallError {
    /// A short machine-readable name for responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::OutOfFuel => "out_of_fuel",
            Self::MemoryLimit(_) => "memory_limit",
            Self::Trap(_) => "trap",
            Self::Guest(_) => "guest_error",
            Self::BadOutput(_) => "bad_output",
            Self::BadInput(_) => "bad_input",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// Budget for instantiating a component and calling its `configure`.
const SETUP_DEADLINE: Duration = Duration::from_secs(1);
const SETUP_FUEL: u64 = 1_000_000_000;

/// Compiled components kept for reuse by [`Host::load`].
const MAX_COMPILED: usize = 64;

/// The process-wide engine. Cheap to share behind an `Arc`.
pub struct Host {
    engine: Engine,
    linker: Linker<StoreState>,
    config: HostConfig,
    ticker: Ticker,
    /// Compiled components by content hash: one component is often loaded with several
    /// configurations, and compiling is the expensive part of loading.
    compiled: Mutex<HashMap<u128, Component>>,
}

impl Host {
    pub fn new(config: HostConfig) -> Result<Self, LoadError> {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances.max(1);
        pool.total_component_instances(n)
            // A component built by wit-component may hold a few core instances and tables
            // (its shims); memories stay at one per component for every component we make.
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(8))
            .max_memory_size(config.max_memory_bytes);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .consume_fuel(true)
            // A trap is reported by kind; collecting frames would only slow hostile calls down.
            .wasm_backtrace_max_frames(None)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| LoadError::Engine(e.to_string()))?;
        let linker = Linker::new(&engine);
        let ticker = Ticker::start(engine.clone(), config.epoch_tick);
        Ok(Self {
            engine,
            linker,
            config,
            ticker,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// A stable name for this engine's code format: precompiled components are stored under it,
    /// and an edge loads a precompiled artifact only when its own key matches.
    pub fn compatibility_key(&self) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        self.config.max_memory_bytes.hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// Compiles a component to this engine's native code, for storing beside the `.wasm`.
    pub fn precompile(&self, wasm: &[u8]) -> Result<Vec<u8>, LoadError> {
        self.engine
            .precompile_component(wasm)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }

    /// Compiles and loads a component from its `.wasm` bytes, calls `describe` and `configure`.
    pub fn load(
        &self,
        wasm: &[u8],
        config: &[(String, String)],
        limits: Limits,
    ) -> Result<Transform, LoadError> {
        let hash = xxhash_rust::xxh3::xxh3_128(wasm);
        let cached = self
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
            .cloned();
        let component = match cached {
            Some(c) => c,
            None => {
                let c = Component::new(&self.engine, wasm)
                    .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
                let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
                // Bounded: a long-lived control plane sees every version ever applied.
                if compiled.len() >= MAX_COMPILED {
                    compiled.clear();
                }
                compiled.insert(hash, c.clone());
                c
            }
        };
        self.instantiate(component, config, limits)
    }

    /// Loads a component precompiled by [`Host::precompile`].
    ///
    /// # Safety
    /// The bytes are native code that runs unchecked: they must come from `precompile` of a host
    /// with the same [`Host::compatibility_key`], and must be verified to be exactly those bytes
    /// (the manifest's checksum) before this is called.
    pub unsafe fn load_precompiled(
        &self,
        cwasm: &[u8],
        config: &[(String, String)],
        limits: Limits,
    ) -> Result<Transform, LoadError> {
        if wasmtime::Engine::detect_precompiled(cwasm).is_none() {
            return Err(LoadError::Invalid("not a precompiled artifact".into()));
        }
        // SAFETY: the caller guarantees the artifact was produced by `precompile` of a
        // compatible engine and arrived unaltered.
        let component = unsafe { Component::deserialize(&self.engine, cwasm) }.map_err(|e| {
            let text = format!("{e:#}");
            if text.contains("compatib") || text.contains("configuration") {
                LoadError::Incompatible
            } else {
                LoadError::Invalid(text)
            }
        })?;
        self.instantiate(component, config, limits)
    }

    fn instantiate(
        &self,
        component: Component,
        config: &[(String, String)],
        limits: Limits,
    ) -> Result<Transform, LoadError> {
        let mut linker = self.linker.clone();
        // Transforms get no capabilities: whatever they import (a wasm32-wasip2 build imports
        // WASI for its standard library) traps if called, so a transform cannot read clocks,
        // files or the network, and its result depends on its inputs alone.
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let pre = bindings::TransformPre::new(pre).map_err(|e| {
            LoadError::Invalid(format!("does not implement fstore:transform: {e:#}"))
        })?;
        let mut transform = Transform {
            signature: Signature {
                inputs: Vec::new(),
                outputs: Vec::new(),
            },
            pre,
            engine: self.engine.clone(),
            config: config.to_vec(),
            limits,
            max_memory: self.config.max_memory_bytes,
            tick: self.config.epoch_tick,
            idle: Mutex::new(Vec::new()),
        };
        let mut slot = transform.fresh_slot().map_err(|e| match e {
            CallError::Guest(message) => LoadError::Configure(message),
            other => LoadError::Instantiate(other.to_string()),
        })?;
        slot.arm_setup(&transform.limits);
        let signature = slot
            .bindings
            .call_describe(&mut slot.store)
            .map_err(|e| LoadError::Instantiate(format!("describe failed: {e:#}")))?;
        check_signature(&signature)?;
        transform.signature = signature;
        transform
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(slot);
        Ok(transform)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

fn check_signature(sig: &Signature) -> Result<(), LoadError> {
    if sig.outputs.is_empty() {
        return Err(LoadError::Signature("declares no outputs".into()));
    }
    for (what, fields) in [("input", &sig.inputs), ("output", &sig.outputs)] {
        for (i, f) in fields.iter().enumerate() {
            if f.name.is_empty() {
                return Err(LoadError::Signature(format!(
                    "{what} {i} has an empty name"
                )));
            }
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(LoadError::Signature(format!(
                    "{what} `{}` declared twice",
                    f.name
                )));
            }
        }
    }
    Ok(())
}

/// Advances the engine's epoch on a fixed tick, which is what makes deadlines fire.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("fstore-wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .ok();
        Self { stop, thread }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A warm instance in its own store.
struct Slot {
    store: Store<StoreState>,
    bindings: bindings::Transform,
}

impl Slot {
    /// The budget of setup calls (`describe` at load): see [`arm_setup`].
    fn arm_setup(&mut self, limits: &Limits) {
        arm_setup(&mut self.store, limits);
    }

    /// Sets the budget for the next call: `units` row-equivalents of fuel and deadline.
    fn arm(&mut self, limits: &Limits, units: u64) {
        let fuel = limits.fuel_per_call.saturating_mul(units.max(1));
        // Setting fuel cannot fail: fuel consumption is always on in this engine.
        let _ = self.store.set_fuel(fuel);
        let tick = self.store.data().tick;
        self.store
            .set_epoch_deadline(ticks(limits.deadline(units), tick));
        self.store.data_mut().memory_denied = false;
    }
}

/// Sets the setup budget ([`SETUP_DEADLINE`], [`SETUP_FUEL`]) on a store, or the call budget
/// when that is larger.
fn arm_setup(store: &mut Store<StoreState>, limits: &Limits) {
    // Setting fuel cannot fail: fuel consumption is always on in this engine.
    let _ = store.set_fuel(SETUP_FUEL.max(limits.fuel_per_call));
    let tick = store.data().tick;
    store.set_epoch_deadline(ticks(SETUP_DEADLINE.max(limits.deadline(1)), tick));
}

/// Epoch ticks covering `deadline`: +1 because the current tick may be about to end, so `n`
/// ticks would give between `n - 1` and `n` ticks of time.
fn ticks(deadline: Duration, tick: Duration) -> u64 {
    let n = deadline.as_nanos().div_ceil(tick.as_nanos().max(1));
    u64::try_from(n).unwrap_or(u64::MAX).saturating_add(1)
}

/// One loaded transform with its configuration and a pool of warm instances.
pub struct Transform {
    signature: Signature,
    pre: bindings::TransformPre<StoreState>,
    engine: Engine,
    config: Vec<(String, String)>,
    limits: Limits,
    max_memory: usize,
    tick: Duration,
    idle: Mutex<Vec<Slot>>,
}

/// Warm instances kept per transform; more concurrent calls instantiate (cheap with the pool)
/// and the surplus is dropped on return.
const MAX_IDLE: usize = 16;

impl Transform {
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Computes one row. `inputs` are positional, in the order of `signature().inputs`.
    pub fn call(&self, inputs: &[Value]) -> Result<Vec<Value>, CallError> {
        check_row(&self.signature.inputs, inputs).map_err(CallError::BadInput)?;
        let mut slot = self.take()?;
        slot.arm(&self.limits, 1);
        let outcome = slot.bindings.call_compute(&mut slot.store, inputs);
        let outputs = self.finish(slot, outcome, 1)?;
        check_row(&self.signature.outputs, &outputs).map_err(CallError::BadOutput)?;
        Ok(outputs)
    }

    /// Computes `rows` rows given as one column per input.
    pub fn call_batch(&self, rows: u32, inputs: &[Column]) -> Result<Vec<Column>, CallError> {
        check_columns(&self.signature.inputs, rows, inputs).map_err(CallError::BadInput)?;
        let mut slot = self.take()?;
        slot.arm(&self.limits, u64::from(rows));
        let outcome = slot
            .bindings
            .call_compute_batch(&mut slot.store, rows, inputs);
        let outputs = self.finish(slot, outcome, u64::from(rows))?;
        check_columns(&self.signature.outputs, rows, &outputs).map_err(CallError::BadOutput)?;
        Ok(outputs)
    }

    fn take(&self) -> Result<Slot, CallError> {
        let reused = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match reused {
            Some(slot) => Ok(slot),
            None => self.fresh_slot(),
        }
    }

    /// Instantiates and configures a new instance.
    fn fresh_slot(&self) -> Result<Slot, CallError> {
        let mut store = Store::new(&self.engine, StoreState::new(self.max_memory, self.tick));
        store.limiter(|s| s);
        // Instantiating and configuring run the component's start code and `configure`: they
        // get a setup budget of their own, since a per-row deadline of a few milliseconds is
        // too tight for them on a loaded machine, while a component looping here is still
        // stopped.
        arm_setup(&mut store, &self.limits);
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Unavailable(format!("{e:#}")))?;
        // `configure` runs under the setup budget set above.
        let mut slot = Slot { store, bindings };
        match slot.bindings.call_configure(&mut slot.store, &self.config) {
            Ok(Ok(())) => Ok(slot),
            Ok(Err(message)) => Err(CallError::Guest(message)),
            Err(e) => Err(self.classify(&slot, e, 1)),
        }
    }

    /// Returns the instance to the pool unless the call trapped, and maps the outcome.
    fn finish<T>(
        &self,
        slot: Slot,
        outcome: wasmtime::Result<Result<T, String>>,
        units: u64,
    ) -> Result<T, CallError> {
        match outcome {
            Ok(result) => {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < MAX_IDLE {
                    idle.push(slot);
                }
                drop(idle);
                result.map_err(CallError::Guest)
            }
            // The slot is dropped here: a trapped store never runs again.
            Err(e) => Err(self.classify(&slot, e, units)),
        }
    }

    fn classify(&self, slot: &Slot, e: wasmtime::Error, units: u64) -> CallError {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::Timeout(self.limits.deadline(units)),
            Some(Trap::OutOfFuel) => CallError::OutOfFuel,
            _ if slot.store.data().memory_denied => CallError::MemoryLimit(self.max_memory),
            Some(trap) => CallError::Trap(trap.to_string()),
            None => CallError::Trap(format!("{e:#}")),
        }
    }
}

/// The WIT type of a value, or `None` for null (which every type admits).
fn type_of(v: &Value) -> Option<ValueType> {
    Some(match v {
        Value::Null => return None,
        Value::Int64(_) => ValueType::Int64,
        Value::Float64(_) => ValueType::Float64,
        Value::String(_) => ValueType::String,
        Value::Boolean(_) => ValueType::Boolean,
        Value::Timestamp(_) => ValueType::Timestamp,
        Value::Float64List(_) => ValueType::Float64List,
    })
}

fn column_type(c: &ColumnData) -> (ValueType, usize) {
    match c {
        ColumnData::Int64(v) => (ValueType::Int64, v.len()),
        ColumnData::Float64(v) => (ValueType::Float64, v.len()),
        ColumnData::String(v) => (ValueType::String, v.len()),
        ColumnData::Boolean(v) => (ValueType::Boolean, v.len()),
        ColumnData::Timestamp(v) => (ValueType::Timestamp, v.len()),
        ColumnData::Float64List(v) => (ValueType::Float64List, v.len()),
    }
}

/// The feature type a WIT value type stands for (the two sets are the same).
pub fn feature_type(t: ValueType) -> FeatureType {
    match t {
        ValueType::Int64 => FeatureType::Int64,
        ValueType::Float64 => FeatureType::Float64,
        ValueType::String => FeatureType::String,
        ValueType::Boolean => FeatureType::Bool,
        ValueType::Timestamp => FeatureType::Timestamp,
        ValueType::Float64List => FeatureType::ListFloat64,
    }
}

/// The WIT value type of a feature type.
pub fn value_type(t: FeatureType) -> ValueType {
    match t {
        FeatureType::Int64 => ValueType::Int64,
        FeatureType::Float64 => ValueType::Float64,
        FeatureType::String => ValueType::String,
        FeatureType::Bool => ValueType::Boolean,
        FeatureType::Timestamp => ValueType::Timestamp,
        FeatureType::ListFloat64 => ValueType::Float64List,
    }
}

/// The name of a value type as it appears in `features.yaml`.
pub fn type_name(t: ValueType) -> &'static str {
    feature_type(t).name()
}

fn check_row(fields: &[Field], values: &[Value]) -> Result<(), String> {
    if fields.len() != values.len() {
        return Err(format!(
            "expected {} values, got {}",
            fields.len(),
            values.len()
        ));
    }
    for (f, v) in fields.iter().zip(values) {
        if let Some(t) = type_of(v)
            && t != f.type_
        {
            return Err(format!(
                "`{}` must be {}, got {}",
                f.name,
                type_name(f.type_),
                type_name(t)
            ));
        }
    }
    Ok(())
}

fn check_columns(fields: &[Field], rows: u32, columns: &[Column]) -> Result<(), String> {
    if fields.len() != columns.len() {
        return Err(format!(
            "expected {} columns, got {}",
            fields.len(),
            columns.len()
        ));
    }
    let rows = rows as usize;
    for (f, c) in fields.iter().zip(columns) {
        let (t, len) = column_type(&c.data);
        if t != f.type_ {
            return Err(format!(
                "column `{}` must be {}, got {}",
                f.name,
                type_name(f.type_),
                type_name(t)
            ));
        }
        if len != rows {
            return Err(format!(
                "column `{}` has {len} rows, expected {rows}",
                f.name
            ));
        }
        if !c.validity.is_empty() && c.validity.len() != rows.div_ceil(8) {
            return Err(format!(
                "column `{}` has a validity bitmap of {} bytes, expected {}",
                f.name,
                c.validity.len(),
                rows.div_ceil(8)
            ));
        }
    }
    Ok(())
}
