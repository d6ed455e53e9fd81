//! On-demand views at the edge, with the real example components of `transforms/components`:
//! request data from `request_context` and from Feast's `entities`, chained steps, every way a
//! hostile component can misbehave (each failing only its own features), bad request data, the
//! loader (precompiled artifacts, checksums, reuse across manifests, broken components) and the
//! whole thing over HTTP.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fstore_edge::lookup::{Format, execute};
use fstore_edge::wasm::{Host, HostConfig, Limits, Transform, ValueType};
use fstore_edge::{Catalog, EdgeConfig, EdgeState, LoadedView, Loader, OnDemandSpec};
use fstore_snapshot::{
    FeatureRef, FeatureType, Field, KeyBuf, KeyType, Snapshot, SnapshotSchema, SnapshotWriter,
    TransformStep, Value,
};
use fstore_storage::{
    MANIFEST_FORMAT, Manifest, ManifestOnDemand, ManifestTransform, ManifestView, Precompiled,
    Store, precompiled_key, snapshot_key, transform_key,
};
use serde_json::{Value as Json, json};

const NOW: i64 = 1_800_000_000_000_000;

// ---------------------------------------------------------------------------------------------
// Components

fn components_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../transforms/components")
}

fn wasm(name: &str) -> Vec<u8> {
    let path = components_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The test process's one engine, with the edge's default settings.
fn host() -> Arc<Host> {
    static HOST: OnceLock<Arc<Host>> = OnceLock::new();
    HOST.get_or_init(|| Arc::new(Host::new(HostConfig::default()).expect("engine starts")))
        .clone()
}

/// `name` precompiled for [`host`], once per test process and cached on disk across runs:
/// compiling with a debug build of cranelift takes seconds per component.
fn cwasm(name: &str) -> Arc<Vec<u8>> {
    type Cell = Arc<OnceLock<Arc<Vec<u8>>>>;
    static CACHE: OnceLock<Mutex<HashMap<String, Cell>>> = OnceLock::new();
    let cell = CACHE
        .get_or_init(Default::default)
        .lock()
        .expect("cache lock")
        .entry(name.to_string())
        .or_default()
        .clone();
    cell.get_or_init(|| {
        let bytes = wasm(name);
        let h = host();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fstore-edge-cwasm");
        let file = dir.join(format!(
            "{name}-{}-{}.cwasm",
            &fstore_storage::sha256_hex(&bytes)[..16],
            h.compatibility_key()
        ));
        if let Ok(c) = std::fs::read(&file) {
            return Arc::new(c);
        }
        let c = h.precompile(&bytes).expect("precompiles");
        std::fs::create_dir_all(&dir).expect("cache dir");
        let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, &c).expect("write cache");
        std::fs::rename(&tmp, &file).expect("rename cache");
        Arc::new(c)
    })
    .clone()
}

fn limits(deadline_ms: u64, fuel: u64) -> Limits {
    Limits {
        deadline: Duration::from_millis(deadline_ms),
        fuel_per_call: fuel,
        ..Limits::default()
    }
}

/// The default fuel, and a deadline far above the default 10 ms: deadlines are wall-clock
/// time, and a debug build of the host on a machine busy compiling can be descheduled for
/// longer than 10 ms, which would fail well-behaved calls at random.
fn default_limits() -> Limits {
    limits(2_000, fstore_snapshot::DEFAULT_FUEL)
}

/// Loads `name` with `config` and `limits`.
fn load(name: &str, config: &[(String, String)], limits: Limits) -> Arc<Transform> {
    let c = cwasm(name);
    // SAFETY: `c` is what `precompile` of `host()` produced for this very component (the disk
    // cache is keyed by the component's sha256 and the engine's compatibility key, and written
    // by rename, so it is whole).
    Arc::new(unsafe { host().load_precompiled(&c, config, limits) }.expect("component loads"))
}

fn feature_type(t: ValueType) -> FeatureType {
    match t {
        ValueType::Int64 => FeatureType::Int64,
        ValueType::Float64 => FeatureType::Float64,
        ValueType::String => FeatureType::String,
        ValueType::Boolean => FeatureType::Bool,
        ValueType::Timestamp => FeatureType::Timestamp,
        ValueType::Float64List => FeatureType::ListFloat64,
    }
}

/// One step running component `name` on `inputs`, with its loaded transform.
struct Step {
    step: TransformStep,
    transform: Arc<Transform>,
}

fn step(name: &str, inputs: &[&str], config: &[(&str, &str)], limits: Limits) -> Step {
    let config: Vec<(String, String)> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let transform = load(name, &config, limits.clone());
    let outputs = transform
        .signature()
        .outputs
        .iter()
        .map(|f| Field {
            name: f.name.clone(),
            ty: feature_type(f.type_),
        })
        .collect();
    Step {
        step: TransformStep {
            transform: name.into(),
            sha256: fstore_storage::sha256_hex(&wasm(name)),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs,
            config,
            timeout_ms: limits.deadline.as_millis() as u64,
            fuel: limits.fuel_per_call,
        },
        transform,
    }
}

fn fields(list: &[(&str, FeatureType)]) -> Vec<Field<FeatureType>> {
    list.iter()
        .map(|(n, t)| Field {
            name: n.to_string(),
            ty: *t,
        })
        .collect()
}

struct Od {
    name: &'static str,
    definition: ManifestOnDemand,
    transforms: Vec<Result<Arc<Transform>, String>>,
}

fn od(
    name: &'static str,
    sources: &[&str],
    request: &[(&str, FeatureType)],
    features: &[(&str, FeatureType)],
    steps: Vec<Step>,
) -> Od {
    Od {
        name,
        definition: ManifestOnDemand {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            request: fields(request),
            features: fields(features),
            steps: steps.iter().map(|s| s.step.clone()).collect(),
        },
        transforms: steps.into_iter().map(|s| Ok(s.transform)).collect(),
    }
}

impl Od {
    fn spec(self) -> OnDemandSpec {
        OnDemandSpec {
            name: self.name.into(),
            definition: self.definition,
            transforms: self.transforms,
            metrics: Arc::default(),
        }
    }
}

const F: FeatureType = FeatureType::Float64;
const S: FeatureType = FeatureType::String;

/// `next_offer` over the stored `customers:segment` and `customers:clv`, with the cart value
/// and channel from the request.
fn next_offer() -> Od {
    od(
        "next_offer",
        &["customers"],
        &[("cart_value", F), ("channel", S)],
        &[("offer", S), ("discount_pct", F)],
        vec![step(
            "next_offer",
            &[
                "customers:segment",
                "customers:clv",
                "cart_value",
                "channel",
            ],
            &[],
            default_limits(),
        )],
    )
}

/// All four examples chained: scores → segment, clv → offer.
fn pipeline() -> Od {
    od(
        "offer_pipeline",
        &["customers"],
        &[("cart_value", F), ("channel", S)],
        &[
            ("segment", S),
            ("clv", F),
            ("offer", S),
            ("discount_pct", F),
        ],
        vec![
            step(
                "rfm_score",
                &[
                    "customers:recency_days",
                    "customers:frequency_90d",
                    "customers:monetary_90d",
                ],
                &[],
                default_limits(),
            ),
            step(
                "segment",
                &["r_score", "f_score", "m_score", "customers:tenure_months"],
                &[],
                default_limits(),
            ),
            step(
                "clv",
                &["customers:avg_order_value", "customers:frequency_365d"],
                &[],
                default_limits(),
            ),
            step(
                "next_offer",
                &["segment", "clv", "cart_value", "channel"],
                &[],
                default_limits(),
            ),
        ],
    )
}

const MODES: [(&str, &str); 6] = [
    ("loop", "timeout"),
    ("alloc", "memory_limit"),
    ("panic", "trap"),
    ("wrong_type", "bad_output"),
    ("wrong_len", "bad_output"),
    ("error", "guest_error"),
];

/// `hostile_<mode>`: `y = 2 × customers:clv`, or the misbehaviour `mode` names.
fn hostile(mode: &str) -> Od {
    let name: &'static str = Box::leak(format!("hostile_{mode}").into_boxed_str());
    let limits = match mode {
        // Unlimited fuel, so the deadline is what stops the loop. 200 ms rather than the
        // default 10: instantiating an instance (at load and after each trap) runs under the
        // same deadline, and in a debug build on a busy machine that alone can take 50 ms.
        "loop" => limits(200, u64::MAX / 4),
        // Filling 64 MiB takes a while; the memory cap, not the deadline, must stop it.
        "alloc" => limits(5_000, u64::MAX / 4),
        // A generous deadline, so fuel is what stops the loop.
        "fuel" => limits(5_000, 2_000_000),
        _ => default_limits(),
    };
    let wasm_mode = if mode == "fuel" { "loop" } else { mode };
    od(
        name,
        &["customers"],
        &[],
        &[("y", F)],
        vec![step(
            "hostile",
            &["customers:clv"],
            &[("mode", wasm_mode)],
            limits,
        )],
    )
}

// ---------------------------------------------------------------------------------------------
// Stored data and catalogs

fn customers_schema() -> SnapshotSchema {
    SnapshotSchema {
        view: "customers".into(),
        version: 3,
        keys: vec![Field {
            name: "customer_id".into(),
            ty: KeyType::Int64,
        }],
        features: fields(&[
            ("segment", S),
            ("clv", F),
            ("recency_days", FeatureType::Int64),
            ("frequency_90d", FeatureType::Int64),
            ("monetary_90d", F),
            ("tenure_months", FeatureType::Int64),
            ("avg_order_value", F),
            ("frequency_365d", FeatureType::Int64),
        ]),
        ttl_seconds: 0,
        created_at_micros: NOW,
        base_version: None,
        shard: None,
    }
}

/// Customers 1 (stored segment `at_risk`, clv 1500; RFM inputs of a champion), 2 (stored
/// `champions`, clv 300; RFM inputs of an at-risk customer) and 4 (every feature null).
/// Customer 3 does not exist.
fn customers_bytes() -> Vec<u8> {
    let mut w = SnapshotWriter::new(customers_schema()).expect("schema");
    let mut kb = KeyBuf::new();
    let rows: [(i64, [Value<'_>; 8]); 3] = [
        (
            1,
            [
                Value::String("at_risk"),
                Value::Float64(1500.0),
                Value::Int64(5),
                Value::Int64(10),
                Value::Float64(2000.0),
                Value::Int64(24),
                Value::Float64(100.0),
                Value::Int64(40),
            ],
        ),
        (
            2,
            [
                Value::String("champions"),
                Value::Float64(300.0),
                Value::Int64(100),
                Value::Int64(5),
                Value::Float64(100.0),
                Value::Int64(12),
                Value::Float64(50.0),
                Value::Int64(30),
            ],
        ),
        (4, [Value::Null; 8]),
    ];
    for (id, values) in rows {
        kb.clear();
        kb.push_i64(id);
        w.push(kb.as_bytes(), NOW - 3_600_000_000, None, &values)
            .expect("row");
    }
    w.finish_to_vec().expect("bytes")
}

fn customers() -> LoadedView {
    let snap = Snapshot::from_bytes(customers_bytes()).expect("valid");
    LoadedView::new(snap, "x".into(), None)
}

fn refs(list: &[&str]) -> Vec<FeatureRef> {
    list.iter()
        .map(|r| FeatureRef::parse(r).expect("reference"))
        .collect()
}

fn catalog(ods: Vec<Od>) -> Catalog {
    let services = BTreeMap::from([(
        "offers".to_string(),
        refs(&[
            "customers:segment",
            "next_offer:offer",
            "next_offer:discount_pct",
        ]),
    )]);
    Catalog::with_on_demand(
        1,
        vec![Arc::new(customers())],
        ods.into_iter().map(Od::spec).collect(),
        &services,
    )
}

fn run(c: &Catalog, body: &Json, format: Format) -> Json {
    let mut out = Vec::new();
    execute(c, body.to_string().as_bytes(), format, 100, NOW, &mut out)
        .unwrap_or_else(|e| panic!("lookup of {body} failed: {e:?}"));
    serde_json::from_slice(&out).expect("valid JSON")
}

/// Column `i` of row-major results: `field` (`values`, `statuses`) of every entity.
fn column(v: &Json, field: &str, i: usize) -> Json {
    Json::Array(
        v["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r[field][i].clone())
            .collect(),
    )
}

/// What `clv` computes with its default configuration.
fn expected_clv(aov: f64, orders: f64) -> f64 {
    let (margin, years, rate, retention) = (0.3, 3, 0.1, 0.8);
    let q: f64 = retention / (1.0 + rate);
    let (mut factor, mut sum) = (1.0, 0.0);
    for _ in 0..years {
        factor *= q;
        sum += factor;
    }
    aov * orders * margin * sum
}

// ---------------------------------------------------------------------------------------------
// Lookups

#[test]
fn request_context_scalar_and_per_entity() {
    let c = catalog(vec![next_offer()]);
    let body = json!({
        "features": ["customers:segment", "next_offer:offer", "next_offer:discount_pct"],
        "entities": {"customer_id": [1, 1, 2, 3]},
        "request_context": {"cart_value": [60, 10.0, 10, 500], "channel": "web"}
    });
    let v = run(&c, &body, Format::Fstore);
    assert_eq!(
        v["views"],
        json!({"customers": 3}),
        "the source that answered"
    );
    assert_eq!(
        column(&v, "values", 1),
        json!(["win_back", "none", "early_access", "none"])
    );
    assert_eq!(column(&v, "values", 2), json!([25.0, 0.0, 0.0, 0.0]));
    assert_eq!(
        column(&v, "statuses", 0),
        json!(["PRESENT", "PRESENT", "PRESENT", "NOT_FOUND"])
    );
    for i in [1, 2] {
        assert_eq!(column(&v, "statuses", i), json!(vec![json!("PRESENT"); 4]));
        assert_eq!(
            column(&v, "event_timestamps", i),
            json!(vec![json!(null); 4]),
            "computed now, no event time"
        );
    }
    assert_eq!(v["results"][0]["entity"], json!({"customer_id": 1}));
    assert!(v.get("errors").is_none(), "{v}");

    // The other way round: one cart value for all, a channel per entity.
    let body = json!({
        "feature_service": "offers",
        "entities": {"customer_id": [1, 1, 2, 3]},
        "request_context": {"cart_value": 10, "channel": ["web", "mobile", "web", "mobile"]}
    });
    let v = run(&c, &body, Format::Fstore);
    assert_eq!(
        column(&v, "values", 1),
        json!(["none", "free_shipping", "early_access", "free_shipping"])
    );

    // A missing request field is a null input: the transform decides (a null cart is small).
    let body = json!({
        "features": ["next_offer:offer"],
        "entities": {"customer_id": [1]},
        "request_context": {"channel": "web", "unrelated": {"ignored": true}}
    });
    assert_eq!(
        column(&run(&c, &body, Format::Fstore), "values", 0),
        json!(["none"])
    );
}

#[test]
fn feast_format_takes_request_data_from_entities() {
    let c = catalog(vec![next_offer()]);
    let body = json!({
        "features": ["customers:segment", "next_offer:offer", "next_offer:discount_pct"],
        "entities": {"customer_id": [1, 3], "cart_value": [60.0, 5], "channel": ["web", "mobile"]}
    });
    let v = run(&c, &body, Format::Feast);
    assert_eq!(
        v["metadata"]["feature_names"],
        json!(["customer_id", "segment", "offer", "discount_pct"]),
        "request data is not echoed as a join key"
    );
    let r = &v["results"];
    assert_eq!(r[0]["values"], json!([1, 3]));
    assert_eq!(r[1]["statuses"], json!(["PRESENT", "NOT_FOUND"]));
    assert_eq!(r[2]["values"], json!(["win_back", "free_shipping"]));
    assert_eq!(r[2]["statuses"], json!(["PRESENT", "PRESENT"]));
    assert_eq!(
        r[2]["event_timestamps"],
        json!(["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"])
    );
    assert_eq!(r[3]["values"], json!([25.0, 0.0]));

    let body = json!({
        "feature_service": "offers",
        "entities": {"customer_id": [2], "cart_value": [1], "channel": ["web"]},
        "full_feature_names": true
    });
    let v = run(&c, &body, Format::Feast);
    assert_eq!(
        v["metadata"]["feature_names"],
        json!([
            "customer_id",
            "customers__segment",
            "next_offer__offer",
            "next_offer__discount_pct"
        ])
    );
    assert_eq!(v["results"][2]["values"], json!(["early_access"]));

    // `request_context` works in the Feast endpoint too.
    let body = json!({
        "features": ["next_offer:offer"],
        "entities": {"customer_id": [1]},
        "request_context": {"cart_value": 60, "channel": "web"}
    });
    assert_eq!(
        run(&c, &body, Format::Feast)["results"][1]["values"],
        json!(["win_back"])
    );
}

#[test]
fn steps_read_the_outputs_of_earlier_steps() {
    let c = catalog(vec![pipeline()]);
    assert_eq!(c.broken_on_demand().count(), 0);
    let body = json!({
        "features": [
            "offer_pipeline:segment",
            "offer_pipeline:clv",
            "offer_pipeline:offer",
            "offer_pipeline:discount_pct"
        ],
        "entities": {"customer_id": [1, 2, 3]},
        "request_context": {"cart_value": 60, "channel": "web"}
    });
    let v = run(&c, &body, Format::Fstore);
    assert_eq!(
        column(&v, "values", 0),
        json!(["champions", "at_risk", null])
    );
    let clv = column(&v, "values", 1);
    assert!((clv[0].as_f64().expect("clv") - expected_clv(100.0, 40.0)).abs() < 1e-9);
    assert!((clv[1].as_f64().expect("clv") - expected_clv(50.0, 30.0)).abs() < 1e-9);
    assert_eq!(clv[2], Json::Null);
    assert_eq!(
        column(&v, "values", 2),
        json!(["early_access", "win_back", "none"])
    );
    assert_eq!(column(&v, "values", 3), json!([0.0, 15.0, 0.0]));
    assert_eq!(
        column(&v, "statuses", 0),
        json!(["PRESENT", "PRESENT", "NULL_VALUE"]),
        "a missing customer still runs, with null inputs"
    );
    // Every step ran once per entity, whatever the number of features requested.
    let od = c.on_demand("offer_pipeline").expect("view");
    assert_eq!(od.metrics.calls(), 3 * 4);
}

#[test]
fn each_hostile_mode_fails_only_its_own_features() {
    let mut ods = vec![next_offer(), hostile("ok")];
    ods.extend(MODES.iter().map(|(m, _)| hostile(m)));
    let c = catalog(ods);
    assert_eq!(c.broken_on_demand().count(), 0);
    for (mode, code) in MODES {
        for round in 0..2 {
            let body = json!({
                "features": [
                    "customers:segment",
                    "next_offer:offer",
                    "hostile_ok:y",
                    format!("hostile_{mode}:y"),
                ],
                "entities": {"customer_id": [1]},
                "request_context": {"cart_value": 60, "channel": "web"}
            });
            let v = run(&c, &body, Format::Fstore);
            let r = &v["results"][0];
            assert_eq!(
                r["statuses"],
                json!(["PRESENT", "PRESENT", "PRESENT", "TRANSFORM_ERROR"]),
                "{mode}, round {round}: {v}"
            );
            assert_eq!(r["values"], json!(["at_risk", "win_back", 3000.0, null]));
            let errors = v["errors"].as_array().expect("errors");
            assert_eq!(errors.len(), 1, "{v}");
            assert_eq!(errors[0]["view"], format!("hostile_{mode}"));
            assert_eq!(errors[0]["entity"], 0);
            assert_eq!(errors[0]["code"], code, "{mode}: {v}");
            assert!(
                errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{v}"
            );
            // Feast's format carries the status only, as the closest value of Feast's own
            // enum (its clients reject names outside it).
            let f = run(&c, &body, Format::Feast);
            assert_eq!(f["results"][4]["statuses"], json!(["INVALID"]));
            assert_eq!(f["results"][4]["values"], json!([null]));
            assert_eq!(f["results"][3]["values"], json!([3000.0]));
            assert!(f.get("errors").is_none());
        }
    }
    let loop_view = c.on_demand("hostile_loop").expect("view");
    assert_eq!(loop_view.metrics.errors("timeout"), 4);
}

#[test]
fn a_looping_transform_times_out_and_the_request_completes() {
    let c = catalog(vec![next_offer(), hostile("loop")]);
    let body = json!({
        "features": ["hostile_loop:y", "next_offer:offer"],
        "entities": {"customer_id": [1, 2, 3, 4, 1, 2, 3, 4]},
        "request_context": {"cart_value": 60, "channel": "web"}
    });
    let start = Instant::now();
    let v = run(&c, &body, Format::Fstore);
    let took = start.elapsed();
    assert_eq!(
        column(&v, "statuses", 0),
        json!(vec![json!("TRANSFORM_ERROR"); 8])
    );
    assert_eq!(column(&v, "statuses", 1), json!(vec![json!("PRESENT"); 8]));
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 8);
    assert!(errors.iter().all(|e| e["code"] == "timeout"), "{v}");
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deadline")),
        "{v}"
    );
    // Only the first entity spends the deadline; the others fail at once, so a request of
    // many entities is not held for a deadline each.
    assert!(
        errors[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("entity 0")),
        "{v}"
    );
    eprintln!("8 entities, a looping transform: answered in {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn running_out_of_fuel_is_its_own_error() {
    let c = catalog(vec![hostile("fuel")]);
    let v = run(
        &c,
        &json!({"features": ["hostile_fuel:y"], "entities": {"customer_id": [1]}}),
        Format::Fstore,
    );
    assert_eq!(v["errors"][0]["code"], "out_of_fuel", "{v}");
}

#[test]
fn bad_request_data_is_a_400_naming_the_field() {
    let c = catalog(vec![next_offer()]);
    let calls = || c.on_demand("next_offer").expect("view").metrics.calls();
    let before = calls();
    let cases = [
        (
            json!({"features": ["next_offer:offer"], "entities": {"customer_id": [1]},
                   "request_context": {"cart_value": "lots"}}),
            Format::Fstore,
            "wrong_request_type",
            &["cart_value", "next_offer", "float64", "a string"][..],
        ),
        (
            json!({"features": ["next_offer:offer"], "entities": {"customer_id": [1, 2]},
                   "request_context": {"cart_value": [1, true]}}),
            Format::Fstore,
            "wrong_request_type",
            &["cart_value", "entity 1", "a bool"],
        ),
        (
            json!({"features": ["next_offer:offer"], "entities": {"customer_id": [1, 2]},
                   "request_context": {"channel": 7}}),
            Format::Fstore,
            "wrong_request_type",
            &["channel", "string", "an integer"],
        ),
        (
            json!({"features": ["next_offer:offer"], "entities": {"customer_id": [1, 2]},
                   "request_context": {"cart_value": [1, 2, 3]}}),
            Format::Fstore,
            "bad_request_context",
            &["cart_value", "3 values for 2 entities"],
        ),
        (
            json!({"features": ["next_offer:offer"],
                   "entities": {"customer_id": [1], "cart_value": [5]},
                   "request_context": {"cart_value": 5}}),
            Format::Feast,
            "bad_request_context",
            &["cart_value", "both"],
        ),
        (
            json!({"features": ["next_offer:offer"],
                   "entities": {"customer_id": [1, 2], "cart_value": ["a", 1]}}),
            Format::Feast,
            "wrong_request_type",
            &["cart_value", "entity 0", "a string"],
        ),
        (
            json!({"features": ["next_offer:offer"], "entities": {"customer_id": [1]},
                   "request_context": [1, 2]}),
            Format::Fstore,
            "invalid_json",
            &["request_context"],
        ),
    ];
    for (body, format, code, words) in cases {
        let mut out = Vec::new();
        let e = execute(&c, body.to_string().as_bytes(), format, 100, NOW, &mut out)
            .expect_err("bad request data");
        assert_eq!(e.status.as_u16(), 400, "{body}");
        assert_eq!(e.code, code, "{body}: {}", e.message);
        for w in words {
            assert!(e.message.contains(w), "`{w}` not in `{}`", e.message);
        }
        let parsed: Json = serde_json::from_slice(&e.body()).expect("JSON error body");
        assert_eq!(parsed["error"]["code"], code);
    }
    assert_eq!(calls(), before, "nothing ran for a bad request");
}

#[test]
fn an_unavailable_view_fails_its_features_and_nothing_else() {
    let mut mistyped = next_offer();
    mistyped.name = "mistyped";
    // `segment` is a string input; bound to a float feature it cannot run.
    mistyped.definition.steps[0].inputs[0] = "customers:clv".into();
    let mut orphan = next_offer();
    orphan.name = "orphan";
    orphan.definition.sources = vec!["nowhere".into()];
    let mut broken = next_offer();
    broken.name = "broken";
    broken.transforms = vec![Err("could not compile: boom".into())];
    let mut shadowing = next_offer();
    shadowing.name = "customers";

    let services = BTreeMap::from([(
        "with_broken".to_string(),
        refs(&["customers:segment", "broken:offer", "next_offer:offer"]),
    )]);
    let c = Catalog::with_on_demand(
        1,
        vec![Arc::new(customers())],
        vec![
            next_offer().spec(),
            mistyped.spec(),
            orphan.spec(),
            broken.spec(),
            shadowing.spec(),
        ],
        &services,
    );
    let broken_views: BTreeMap<&str, &str> = c.broken_on_demand().collect();
    assert_eq!(
        broken_views.keys().copied().collect::<Vec<_>>(),
        ["broken", "customers", "mistyped", "orphan"]
    );
    assert!(broken_views["broken"].contains("boom"));
    assert!(
        broken_views["mistyped"].contains("segment"),
        "{broken_views:?}"
    );
    assert!(broken_views["orphan"].contains("nowhere"));
    assert!(c.broken_services.is_empty(), "{:?}", c.broken_services);
    assert!(
        c.view("customers").is_some(),
        "the stored view keeps its name"
    );

    let v = run(
        &c,
        &json!({"feature_service": "with_broken", "entities": {"customer_id": [1, 2]},
                "request_context": {"cart_value": 60, "channel": "web"}}),
        Format::Fstore,
    );
    assert_eq!(
        v["results"][0]["statuses"],
        json!(["PRESENT", "TRANSFORM_ERROR", "PRESENT"])
    );
    assert_eq!(
        v["results"][1]["values"],
        json!(["champions", null, "early_access"])
    );
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "one per entity: {v}");
    assert!(
        errors
            .iter()
            .all(|e| e["code"] == "unavailable" && e["view"] == "broken")
    );
    assert!(
        errors[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("boom"))
    );
}

#[test]
fn concurrent_requests_are_untouched_by_a_misbehaving_transform() {
    let c = Arc::new(catalog(vec![
        next_offer(),
        hostile("loop"),
        hostile("panic"),
    ]));
    let stop = Arc::new(AtomicBool::new(false));
    let good = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..4 {
        let (c, stop, good) = (c.clone(), stop.clone(), good.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 5 {
                n += 1;
                if t < 2 {
                    let bad = if t == 0 {
                        "hostile_loop:y"
                    } else {
                        "hostile_panic:y"
                    };
                    let v = run(
                        &c,
                        &json!({"features": [bad], "entities": {"customer_id": [1, 2]}}),
                        Format::Fstore,
                    );
                    assert_eq!(
                        column(&v, "statuses", 0),
                        json!(vec![json!("TRANSFORM_ERROR"); 2])
                    );
                } else {
                    let v = run(
                        &c,
                        &json!({"features": ["next_offer:offer", "customers:clv"],
                                "entities": {"customer_id": [1, 2]},
                                "request_context": {"cart_value": 60, "channel": "web"}}),
                        Format::Fstore,
                    );
                    assert_eq!(column(&v, "values", 0), json!(["win_back", "early_access"]));
                    assert!(v.get("errors").is_none());
                    good.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("no thread panicked");
    }
    assert!(good.load(Ordering::Relaxed) >= 10);
}

#[test]
fn transform_metrics_are_in_the_prometheus_text() {
    let c = catalog(vec![next_offer(), hostile("error")]);
    for _ in 0..3 {
        run(
            &c,
            &json!({"features": ["next_offer:offer", "hostile_error:y"],
                    "entities": {"customer_id": [1, 2]}}),
            Format::Fstore,
        );
    }
    let text = fstore_edge::Metrics::default().render(Some(&c), "test");
    for line in [
        "fstore_edge_on_demand_available{view=\"next_offer\"} 1",
        "fstore_edge_transform_calls_total{view=\"next_offer\"} 6",
        "fstore_edge_transform_calls_total{view=\"hostile_error\"} 6",
        "fstore_edge_transform_errors_total{view=\"hostile_error\",code=\"guest_error\"} 6",
        "fstore_edge_transform_errors_total{view=\"next_offer\",code=\"guest_error\"} 0",
        "fstore_edge_transform_call_duration_seconds_count{view=\"next_offer\"} 6",
        "fstore_edge_transform_call_duration_seconds_bucket{view=\"next_offer\",le=\"+Inf\"} 6",
    ] {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
}

#[test]
fn serving_signals_count_transform_errors_per_on_demand_view() {
    let c = catalog(vec![next_offer(), hostile("error")]);
    let m = fstore_edge::Metrics::default();
    // Customers 1 and 2 exist, 3 does not: the source view has one entity not found per
    // request, the failing view an error per entity.
    let body = json!({"features": ["next_offer:offer", "hostile_error:y"],
                      "entities": {"customer_id": [1, 2, 3]},
                      "request_context": {"cart_value": 60, "channel": "web"}});
    for _ in 0..2 {
        let mut out = Vec::new();
        let stats = fstore_edge::lookup::execute_observed(
            &c,
            body.to_string().as_bytes(),
            Format::Fstore,
            100,
            NOW,
            &mut out,
            fstore_edge::lookup::Observe {
                metrics: &m,
                started: Instant::now(),
            },
        )
        .expect("lookup");
        assert_eq!(
            stats.transform_errors,
            3,
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
    let (serving, _) = m.take_signals();
    let get = |v: &str| {
        let s = serving
            .get(v)
            .unwrap_or_else(|| panic!("`{v}` not in {serving:?}"));
        (s.lookups, s.not_found, s.errors)
    };
    assert_eq!(
        get("customers"),
        (6, 2, 0),
        "probed once per entity for both views"
    );
    assert_eq!(get("next_offer"), (6, 0, 0));
    assert_eq!(get("hostile_error"), (6, 0, 6));
    assert!(
        serving
            .values()
            .all(|s| s.p50_ms.is_some() && s.p50_ms <= s.p99_ms)
    );
    // The same as on-demand metrics count them.
    assert_eq!(
        c.on_demand("hostile_error")
            .expect("view")
            .metrics
            .errors("guest_error"),
        6
    );
    let text = m.render(Some(&c), "test");
    for line in [
        "fstore_edge_view_errors_total{view=\"hostile_error\"} 6",
        "fstore_edge_view_errors_total{view=\"next_offer\"} 0",
        "fstore_edge_view_lookups_total{view=\"customers\"} 6",
        "fstore_edge_view_not_found_total{view=\"customers\"} 2",
    ] {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
    assert!(m.take_signals().0.is_empty());
}

#[test]
fn requests_without_on_demand_features_are_answered_as_before() {
    let c = catalog(vec![next_offer(), hostile("loop")]);
    // Request data sent along with stored features only: ignored, and nothing runs.
    let v = run(
        &c,
        &json!({"features": ["customers:segment"],
                "entities": {"customer_id": [1], "cart_value": [2.5]},
                "request_context": {"channel": 1}}),
        Format::Fstore,
    );
    assert_eq!(
        v,
        json!({"manifest": 1, "views": {"customers": 3}, "features": ["customers:segment"],
               "results": [{"entity": {"customer_id": 1, "cart_value": 2.5},
                            "values": ["at_risk"], "statuses": ["PRESENT"],
                            "event_timestamps": ["2027-01-15T07:00:00Z"]}]})
    );
    assert_eq!(
        c.on_demand("hostile_loop").expect("view").metrics.calls(),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// The loader

/// An object store in a temporary directory holding the `customers` snapshot and the
/// components, and a way to publish manifests over it.
struct Published {
    dir: tempfile::TempDir,
    store: Store,
    view: ManifestView,
}

impl Published {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::from_url(&dir.path().join("objects").to_string_lossy()).expect("store");
        let bytes = customers_bytes();
        let snap = Snapshot::from_bytes(bytes.clone()).expect("valid");
        let key = snapshot_key("customers", 3);
        let view = ManifestView {
            version: 3,
            key: key.clone(),
            size_bytes: bytes.len() as u64,
            rows: snap.len(),
            checksum: format!("{:016x}", snap.checksum()),
            deltas: Vec::new(),
            shards: Vec::new(),
        };
        store.put_new(&key, bytes.into()).await.expect("put");
        Self { dir, store, view }
    }

    /// Stores component `name` (its `.wasm` as `wasm`, its precompiled artifact if
    /// `precompiled` is given, under the sha256 that artifact is recorded with); returns
    /// the manifest entry.
    async fn component(
        &self,
        name: &str,
        wasm_bytes: Vec<u8>,
        precompiled: Option<(Vec<u8>, String)>,
    ) -> (String, ManifestTransform) {
        let sha = fstore_storage::sha256_hex(&wasm(name));
        let wasm_key = transform_key(&sha);
        let _ = self.store.put_new(&wasm_key, wasm_bytes.into()).await;
        let mut entry = ManifestTransform {
            wasm: wasm_key,
            precompiled: BTreeMap::new(),
        };
        if let Some((bytes, recorded)) = precompiled {
            let compat = host().compatibility_key();
            let key = precompiled_key(&sha, &compat);
            let _ = self.store.put_new(&key, bytes.into()).await;
            entry.precompiled.insert(
                compat,
                Precompiled {
                    key,
                    sha256: recorded,
                },
            );
        }
        (sha, entry)
    }

    async fn publish(
        &self,
        seq: u64,
        on_demand: Vec<Od>,
        transforms: Vec<(String, ManifestTransform)>,
    ) {
        let m = Manifest {
            format: MANIFEST_FORMAT,
            seq,
            created_at: "2027-01-15T08:00:00Z".into(),
            views: BTreeMap::from([("customers".to_string(), self.view.clone())]),
            services: BTreeMap::new(),
            on_demand: on_demand
                .into_iter()
                .map(|o| (o.name.to_string(), o.definition))
                .collect(),
            transforms: transforms.into_iter().collect(),
        };
        self.store.publish(&m).await.expect("publish");
    }

    fn loader(&self) -> (Loader, Arc<EdgeState>) {
        let cfg = EdgeConfig::new(self.dir.path().join("objects").to_string_lossy());
        let state = Arc::new(EdgeState::new(&cfg));
        let loader = Loader::new(
            self.store.clone(),
            self.dir.path().join("cache"),
            state.clone(),
        )
        .with_host(host());
        (loader, state)
    }
}

fn offer_of(state: &EdgeState, view: &str) -> Json {
    let c = state.catalog.load_full().expect("a catalog");
    let v = run(
        &c,
        &json!({"features": [format!("{view}:offer"), "customers:segment"],
                "entities": {"customer_id": [1]},
                "request_context": {"cart_value": 60, "channel": "web"}}),
        Format::Fstore,
    );
    v["results"][0]["values"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_loader_verifies_precompiled_artifacts_and_falls_back_to_the_wasm() {
    let p = Published::new().await;
    let (mut loader, state) = p.loader();
    let pre = cwasm("next_offer").to_vec();
    let pre_sha = fstore_storage::sha256_hex(&pre);

    // 1. A good precompiled artifact is used: the `.wasm` beside it is garbage, and the view
    //    works all the same.
    let t = p
        .component(
            "next_offer",
            b"not a component".to_vec(),
            Some((pre.clone(), pre_sha)),
        )
        .await;
    p.publish(1, vec![next_offer()], vec![t]).await;
    assert!(loader.poll_once().await.expect("poll"));
    let c = state.catalog.load_full().expect("catalog");
    assert_eq!(c.broken_on_demand().count(), 0, "{:?}", c.on_demand_views());
    assert_eq!(
        offer_of(&state, "next_offer"),
        json!(["win_back", "at_risk"])
    );

    // 2. The artifact's bytes do not match the manifest's sha256: never loaded, and with a
    //    garbage `.wasm` the view is unavailable, while the rest of the manifest is served.
    let p2 = Published::new().await;
    let (mut loader2, state2) = p2.loader();
    let t = p2
        .component(
            "next_offer",
            b"not a component".to_vec(),
            Some((pre.clone(), "0".repeat(64))),
        )
        .await;
    p2.publish(1, vec![next_offer()], vec![t]).await;
    assert!(
        loader2
            .poll_once()
            .await
            .expect("a broken component is no poll error")
    );
    let c = state2.catalog.load_full().expect("catalog");
    let broken: Vec<_> = c.broken_on_demand().collect();
    assert_eq!(broken.len(), 1);
    assert!(broken[0].1.contains("sha256"), "{broken:?}");
    assert_eq!(offer_of(&state2, "next_offer"), json!([null, "at_risk"]));

    // 3. Same bad artifact, a good `.wasm`: compiled here instead.
    let p3 = Published::new().await;
    let (mut loader3, state3) = p3.loader();
    let t = p3
        .component(
            "next_offer",
            wasm("next_offer"),
            Some((b"tampered".to_vec(), fstore_storage::sha256_hex(&pre))),
        )
        .await;
    p3.publish(1, vec![next_offer()], vec![t]).await;
    assert!(loader3.poll_once().await.expect("poll"));
    assert_eq!(
        offer_of(&state3, "next_offer"),
        json!(["win_back", "at_risk"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_republish_reuses_loaded_components() {
    let p = Published::new().await;
    let (mut loader, state) = p.loader();
    let pre = cwasm("next_offer").to_vec();
    let pre_sha = fstore_storage::sha256_hex(&pre);
    let t = p
        .component("next_offer", wasm("next_offer"), Some((pre, pre_sha)))
        .await;
    p.publish(1, vec![next_offer()], vec![t.clone()]).await;
    assert!(loader.poll_once().await.expect("poll"));
    assert_eq!(loader.loaded_transforms(), 1);

    // The components vanish from the store: a loader that loaded them again would fail.
    std::fs::remove_dir_all(p.dir.path().join("objects/transforms")).expect("rm");
    std::fs::remove_file(p.dir.path().join(format!("objects/{}", t.1.wasm))).ok();
    let mut renamed = next_offer();
    renamed.name = "next_offer_again";
    p.publish(2, vec![next_offer(), renamed], vec![t.clone()])
        .await;
    assert!(loader.poll_once().await.expect("poll"));
    let c = state.catalog.load_full().expect("catalog");
    assert_eq!(c.seq, 2);
    assert_eq!(c.broken_on_demand().count(), 0, "{:?}", c.on_demand_views());
    assert_eq!(
        loader.loaded_transforms(),
        1,
        "one component for both views"
    );
    assert_eq!(
        offer_of(&state, "next_offer_again"),
        json!(["win_back", "at_risk"])
    );

    // Metrics follow the view across manifests.
    assert_eq!(
        offer_of(&state, "next_offer"),
        json!(["win_back", "at_risk"])
    );
    let before = c.on_demand("next_offer").expect("view").metrics.calls();
    assert_eq!(before, 1);
    p.publish(3, vec![next_offer()], vec![t.clone()]).await;
    assert!(loader.poll_once().await.expect("poll"));
    let c3 = state.catalog.load_full().expect("catalog");
    assert_eq!(
        c3.on_demand("next_offer").expect("view").metrics.calls(),
        before
    );

    // Dropped from the manifest: kept one more swap (the previous catalog uses it), then gone.
    p.publish(4, vec![], vec![]).await;
    assert!(loader.poll_once().await.expect("poll"));
    assert_eq!(loader.loaded_transforms(), 1);
    p.publish(5, vec![], vec![]).await;
    assert!(loader.poll_once().await.expect("poll"));
    assert_eq!(loader.loaded_transforms(), 0);
}

// ---------------------------------------------------------------------------------------------
// Over HTTP

async fn post(url: &str, body: &Json) -> (u16, Json) {
    let r = reqwest::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_a_misbehaving_transform_fails_only_its_features() {
    let p = Published::new().await;
    let precompiled = |name: &str| {
        let c = cwasm(name).to_vec();
        let s = fstore_storage::sha256_hex(&c);
        (c, s)
    };
    let offer = p
        .component(
            "next_offer",
            wasm("next_offer"),
            Some(precompiled("next_offer")),
        )
        .await;
    let hostile_entry = p
        .component("hostile", wasm("hostile"), Some(precompiled("hostile")))
        .await;
    p.publish(
        1,
        vec![next_offer(), hostile("loop"), hostile("ok")],
        vec![offer, hostile_entry],
    )
    .await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut cfg = EdgeConfig::new(p.dir.path().join("objects").to_string_lossy());
    cfg.cache_dir = p.dir.path().join("edge-cache");
    cfg.poll_interval = Duration::from_millis(20);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(fstore_edge::serve(cfg, listener, async move {
        let mut rx = rx;
        let _ = rx.wait_for(|v| *v).await;
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/readyz"))
        .await
        .map_or(true, |r| r.status() != 200)
    {
        assert!(Instant::now() < deadline, "edge not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let good = json!({"features": ["customers:segment", "next_offer:offer", "hostile_ok:y"],
                      "entities": {"customer_id": [1, 2]},
                      "request_context": {"cart_value": 60, "channel": "web"}});
    let bad = json!({"features": ["customers:segment", "hostile_loop:y"],
                     "entities": {"customer_id": [1, 2]}});
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (url, body) = (
            format!("{base}/v1/features"),
            if i % 2 == 0 {
                good.clone()
            } else {
                bad.clone()
            },
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let (status, v) = post(&url, &body).await;
                assert_eq!(status, 200, "{v}");
                if i % 2 == 0 {
                    assert_eq!(
                        v["results"][0]["values"],
                        json!(["at_risk", "win_back", 3000.0])
                    );
                    assert!(v.get("errors").is_none(), "{v}");
                } else {
                    assert_eq!(
                        v["results"][1]["statuses"],
                        json!(["PRESENT", "TRANSFORM_ERROR"])
                    );
                    assert_eq!(v["errors"][0]["code"], "timeout");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }

    // Feast's request data inside `entities`.
    let (status, v) = post(
        &format!("{base}/get-online-features"),
        &json!({"features": ["next_offer:offer"],
                "entities": {"customer_id": [1, 3], "cart_value": [60, 5], "channel": ["web", "mobile"]}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["metadata"]["feature_names"],
        json!(["customer_id", "offer"])
    );
    assert_eq!(
        v["results"][1]["values"],
        json!(["win_back", "free_shipping"])
    );

    // A caller's mistake is a 400 with a JSON error.
    let (status, v) = post(
        &format!("{base}/v1/features"),
        &json!({"features": ["next_offer:offer"], "entities": {"customer_id": [1]},
                "request_context": {"cart_value": {"amount": 3}}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "wrong_request_type");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cart_value"))
    );

    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .expect("get")
            .status(),
        200
    );
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    for line in [
        "fstore_edge_transform_calls_total{view=\"next_offer\"} 62",
        "fstore_edge_transform_errors_total{view=\"hostile_loop\",code=\"timeout\"} 60",
        "fstore_edge_on_demand_available{view=\"hostile_loop\"} 1",
    ] {
        assert!(metrics.contains(line), "`{line}` missing from:\n{metrics}");
    }
    let _ = stop.send(true);
    server.await.expect("server task").expect("server ran");
}
