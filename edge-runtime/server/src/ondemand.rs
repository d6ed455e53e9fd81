//! On-demand views: features computed per request by transform components, from the stored
//! features of other views and from request fields. Every name a step reads is bound to a slot
//! when the catalog is built, so a request only indexes: no string lookups on the hot path.

use std::sync::Arc;
use std::time::Instant;

use fstore_snapshot::{F64List, FeatureType, Field, Row, Value};
use fstore_storage::ManifestOnDemand;
use fstore_wasm_host::{Transform, Value as WasmValue, value_type};

use crate::lookup::EntityValue;
use crate::metrics::OnDemandMetrics;
use crate::{ApiError, LoadedView};

/// Where one transform input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    /// Feature slot `feature` of source `source` (an index into the view's sources).
    Source { source: usize, feature: usize },
    /// The view's request field number `0`.
    Request(usize),
    /// Output `output` of the view's earlier step `step`.
    Output { step: usize, output: usize },
}

pub(crate) struct BoundStep {
    pub(crate) transform: Arc<Transform>,
    pub(crate) inputs: Box<[Binding]>,
}

/// What the loader hands a catalog for one on-demand view: its definition from the manifest
/// and, per step, the loaded component or why it could not be loaded.
pub struct OnDemandSpec {
    pub name: String,
    pub definition: ManifestOnDemand,
    /// One entry per step of `definition`, in order.
    pub transforms: Vec<Result<Arc<Transform>, String>>,
    pub metrics: Arc<OnDemandMetrics>,
}

impl std::fmt::Debug for OnDemandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemandSpec")
            .field("name", &self.name)
            .field("definition", &self.definition)
            .finish_non_exhaustive()
    }
}

/// An on-demand view bound to one catalog's views.
pub struct OnDemandView {
    pub name: String,
    /// The source feature views, as indices into the catalog's views, in definition order.
    pub(crate) sources: Box<[usize]>,
    pub request: Vec<Field<FeatureType>>,
    pub features: Vec<Field<FeatureType>>,
    pub(crate) steps: Box<[BoundStep]>,
    /// For each served feature: the step and the output of that step that produce it.
    pub(crate) outputs: Box<[(usize, usize)]>,
    /// Why this view cannot be computed (a component failed to load, or the definition does
    /// not fit this manifest). Its features still resolve, so a feature service that includes
    /// them keeps serving everything else; they answer `TRANSFORM_ERROR`.
    pub unavailable: Option<String>,
    pub metrics: Arc<OnDemandMetrics>,
}

impl std::fmt::Debug for OnDemandView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemandView")
            .field("name", &self.name)
            .field("sources", &self.sources)
            .field("request", &self.request)
            .field("features", &self.features)
            .field("steps", &self.steps.len())
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

struct Bound {
    sources: Box<[usize]>,
    steps: Box<[BoundStep]>,
    outputs: Box<[(usize, usize)]>,
}

impl OnDemandView {
    /// Binds `spec` to a catalog's `views`; `index` finds a stored view by name. Never fails:
    /// a view that cannot be bound is kept as unavailable, with the reason.
    pub(crate) fn bind(
        spec: OnDemandSpec,
        views: &[Arc<LoadedView>],
        index: impl Fn(&str) -> Option<usize>,
    ) -> Self {
        let OnDemandSpec {
            name,
            definition,
            transforms,
            metrics,
        } = spec;
        let mut view = Self {
            name,
            sources: Box::default(),
            request: Vec::new(),
            features: Vec::new(),
            steps: Box::default(),
            outputs: Box::default(),
            unavailable: None,
            metrics,
        };
        match bind(&definition, transforms, views, &index) {
            Ok(b) => {
                view.sources = b.sources;
                view.steps = b.steps;
                view.outputs = b.outputs;
            }
            Err(why) => view.unavailable = Some(why),
        }
        view.request = definition.request;
        view.features = definition.features;
        view
    }

    /// A view that cannot be computed at all, for reasons found outside the definition.
    pub(crate) fn mark_unavailable(&mut self, why: String) {
        self.steps = Box::default();
        self.unavailable = Some(why);
    }
}

fn bind(
    def: &ManifestOnDemand,
    transforms: Vec<Result<Arc<Transform>, String>>,
    views: &[Arc<LoadedView>],
    index: &impl Fn(&str) -> Option<usize>,
) -> Result<Bound, String> {
    if transforms.len() != def.steps.len() {
        return Err(format!(
            "{} steps but {} components",
            def.steps.len(),
            transforms.len()
        ));
    }
    let mut components = Vec::with_capacity(transforms.len());
    for (t, step) in transforms.into_iter().zip(&def.steps) {
        components.push(t.map_err(|e| format!("transform `{}`: {e}", step.transform))?);
    }

    let mut sources: Vec<usize> = Vec::with_capacity(def.sources.len());
    for s in &def.sources {
        let i = index(s).ok_or_else(|| format!("source feature view `{s}` is not served"))?;
        if let Some(&first) = sources.first() {
            let (a, b) = (&views[first], &views[i]);
            if a.key_names != b.key_names || a.key_types != b.key_types {
                return Err(format!(
                    "source feature views `{}` and `{}` have different join keys",
                    a.name, b.name
                ));
            }
        }
        sources.push(i);
    }

    let mut steps: Vec<BoundStep> = Vec::with_capacity(def.steps.len());
    for (k, (step, component)) in def.steps.iter().zip(&components).enumerate() {
        let sig = component.signature();
        let what = format!("step {k} (`{}`)", step.transform);
        if sig.inputs.len() != step.inputs.len() {
            return Err(format!(
                "{what} binds {} inputs, its component declares {}",
                step.inputs.len(),
                sig.inputs.len()
            ));
        }
        // Outputs are positional: the manifest names each after the feature that takes it,
        // which need not be the component's own name for it; count and types must agree.
        let declared = sig.outputs.iter().map(|f| f.type_);
        let expected = step.outputs.iter().map(|f| value_type(f.ty));
        if !declared.eq(expected) {
            return Err(format!(
                "{what}: its component's outputs differ from the manifest's"
            ));
        }
        let mut inputs = Vec::with_capacity(step.inputs.len());
        for (name, field) in step.inputs.iter().zip(&sig.inputs) {
            let (binding, ty) = bind_input(def, k, name, &sources, views)?;
            if value_type(ty) != field.type_ {
                return Err(format!(
                    "{what} input `{}` is {}, but `{name}` is {ty}",
                    field.name,
                    fstore_wasm_host::type_name(field.type_)
                ));
            }
            inputs.push(binding);
        }
        steps.push(BoundStep {
            transform: component.clone(),
            inputs: inputs.into(),
        });
    }

    let mut outputs = Vec::with_capacity(def.features.len());
    for f in &def.features {
        // The last step producing a name is the one whose value the view serves.
        let found = def.steps.iter().enumerate().rev().find_map(|(k, s)| {
            s.outputs
                .iter()
                .position(|o| o.name == f.name)
                .map(|o| (k, o, s.outputs[o].ty))
        });
        match found {
            Some((k, o, ty)) if ty == f.ty => outputs.push((k, o)),
            Some((_, _, ty)) => {
                return Err(format!(
                    "feature `{}` is declared {}, its step produces {ty}",
                    f.name, f.ty
                ));
            }
            None => return Err(format!("no step produces feature `{}`", f.name)),
        }
    }
    Ok(Bound {
        sources: sources.into(),
        steps: steps.into(),
        outputs: outputs.into(),
    })
}

/// Resolves input `name` of step `k`: an earlier step's output (latest first), else
/// `view:feature` of a source, else a request field.
fn bind_input(
    def: &ManifestOnDemand,
    k: usize,
    name: &str,
    sources: &[usize],
    views: &[Arc<LoadedView>],
) -> Result<(Binding, FeatureType), String> {
    for (j, s) in def.steps[..k].iter().enumerate().rev() {
        if let Some(o) = s.outputs.iter().position(|f| f.name == name) {
            return Ok((Binding::Output { step: j, output: o }, s.outputs[o].ty));
        }
    }
    if let Some((view, feature)) = name.split_once(':') {
        let s = def
            .sources
            .iter()
            .position(|v| v == view)
            .ok_or_else(|| format!("input `{name}` reads `{view}`, which is not a source"))?;
        let schema = views[sources[s]].snapshot.schema();
        let fi = schema
            .feature_index(feature)
            .ok_or_else(|| format!("input `{name}`: `{view}` has no feature `{feature}`"))?;
        return Ok((
            Binding::Source {
                source: s,
                feature: fi,
            },
            schema.features[fi].ty,
        ));
    }
    let i = def
        .request
        .iter()
        .position(|f| f.name == name)
        .ok_or_else(|| {
            format!(
                "input `{name}` is neither an earlier output, a source feature nor a request field"
            )
        })?;
    Ok((Binding::Request(i), def.request[i].ty))
}

/// The values of one request field for one request: absent (every entity reads null), one
/// value for every entity, or one per entity.
#[derive(Debug)]
pub(crate) enum RequestInput {
    Missing,
    Scalar(WasmValue),
    PerEntity(Vec<WasmValue>),
}

impl RequestInput {
    fn get(&self, r: usize) -> WasmValue {
        match self {
            RequestInput::Missing => WasmValue::Null,
            RequestInput::Scalar(v) => v.clone(),
            RequestInput::PerEntity(v) => v.get(r).cloned().unwrap_or(WasmValue::Null),
        }
    }
}

/// Where one request field's values come from in the request body.
pub(crate) enum RequestSource<'b, 'a> {
    Missing,
    /// A `request_context` entry: a scalar for every entity or an array, one per entity.
    Context(&'b EntityValue<'a>),
    /// A column of `entities` (Feast's way to pass request data).
    Column(&'b [EntityValue<'a>]),
}

/// Converts request field `field` of view `view` to its type, checking every value: a wrong
/// type or count is the caller's mistake, reported before any transform runs.
pub(crate) fn request_input(
    view: &str,
    field: &Field<FeatureType>,
    source: RequestSource<'_, '_>,
    n: usize,
) -> Result<RequestInput, ApiError> {
    let wrong = |got: &str, at: Option<usize>| {
        let at = match at {
            Some(r) => format!("entity {r}"),
            None => "the value given".into(),
        };
        ApiError::bad_request(
            "wrong_request_type",
            format!(
                "request field `{}` of on-demand view `{view}` is {}, but {at} is {got}",
                field.name, field.ty
            ),
        )
    };
    let per_entity = |values: &[EntityValue<'_>]| -> Result<RequestInput, ApiError> {
        let mut out = Vec::with_capacity(values.len());
        for (r, v) in values.iter().enumerate() {
            out.push(request_value(v, field.ty).map_err(|got| wrong(got, Some(r)))?);
        }
        Ok(RequestInput::PerEntity(out))
    };
    match source {
        RequestSource::Missing => Ok(RequestInput::Missing),
        RequestSource::Column(values) => per_entity(values),
        RequestSource::Context(EntityValue::List(items)) if !is_scalar_list(field.ty, items) => {
            if items.len() != n {
                return Err(ApiError::bad_request(
                    "bad_request_context",
                    format!(
                        "request_context field `{}` has {} values for {n} entities: give one \
                         value per entity, or a single value for all",
                        field.name,
                        items.len()
                    ),
                ));
            }
            per_entity(items)
        }
        RequestSource::Context(v) => Ok(RequestInput::Scalar(
            request_value(v, field.ty).map_err(|got| wrong(got, None))?,
        )),
    }
}

/// Whether an array given for a `list<float64>` field is one list for every entity rather
/// than one entry per entity: it is when it is empty or holds numbers.
fn is_scalar_list(ty: FeatureType, items: &[EntityValue<'_>]) -> bool {
    ty == FeatureType::ListFloat64
        && (items.is_empty()
            || items
                .iter()
                .any(|v| matches!(v, EntityValue::Int(_) | EntityValue::Float(_))))
}

/// One JSON value as a value of type `ty`; `Err` says what it was instead.
fn request_value(v: &EntityValue<'_>, ty: FeatureType) -> Result<WasmValue, &'static str> {
    Ok(match (v, ty) {
        (EntityValue::Null, _) => WasmValue::Null,
        (EntityValue::Int(i), FeatureType::Int64) => WasmValue::Int64(*i),
        (EntityValue::Int(i), FeatureType::Float64) => WasmValue::Float64(*i as f64),
        (EntityValue::Float(f), FeatureType::Float64) => WasmValue::Float64(*f),
        (EntityValue::Str(s), FeatureType::String) => WasmValue::String(s.to_string()),
        (EntityValue::Bool(b), FeatureType::Bool) => WasmValue::Boolean(*b),
        // Epoch seconds, as the Feast format renders timestamps.
        (EntityValue::Int(i), FeatureType::Timestamp) => WasmValue::Timestamp(
            i.checked_mul(1_000_000)
                .ok_or("an integer too large for a timestamp")?,
        ),
        (EntityValue::Str(s), FeatureType::Timestamp) => {
            WasmValue::Timestamp(parse_rfc3339(s).ok_or("a string that is not an RFC 3339 time")?)
        }
        (EntityValue::List(items), FeatureType::ListFloat64) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(match i {
                    EntityValue::Int(i) => *i as f64,
                    EntityValue::Float(f) => *f,
                    _ => return Err("a list holding something other than numbers"),
                });
            }
            WasmValue::Float64List(out)
        }
        (v, _) => return Err(v.describe()),
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`t` or a space also separate date and time) to
/// microseconds since the Unix epoch.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(d.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Digits past microseconds are truncated.
        for (k, &c) in b[start..i].iter().take(6).enumerate() {
            micros += i64::from(c - b'0') * 10i64.pow(5 - k as u32);
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant's algorithm), the inverse of the snapshot crate's formatter.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs * 1_000_000 + micros)
}

fn to_wasm(v: Value<'_>) -> WasmValue {
    match v {
        Value::Null => WasmValue::Null,
        Value::Int64(i) => WasmValue::Int64(i),
        Value::Float64(f) => WasmValue::Float64(f),
        Value::String(s) => WasmValue::String(s.to_string()),
        Value::Bool(b) => WasmValue::Boolean(b),
        Value::Timestamp(t) => WasmValue::Timestamp(t),
        Value::ListFloat64(l) => WasmValue::Float64List(l.iter().collect()),
    }
}

/// A computed value, borrowed for rendering.
pub(crate) fn from_wasm(v: &WasmValue) -> Value<'_> {
    match v {
        WasmValue::Null => Value::Null,
        WasmValue::Int64(i) => Value::Int64(*i),
        WasmValue::Float64(f) => Value::Float64(*f),
        WasmValue::String(s) => Value::String(s),
        WasmValue::Boolean(b) => Value::Bool(*b),
        WasmValue::Timestamp(t) => Value::Timestamp(*t),
        WasmValue::Float64List(l) => Value::ListFloat64(F64List::Slice(l)),
    }
}

/// One entity whose on-demand features could not be computed.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// Index of the on-demand view in the catalog.
    pub(crate) view: usize,
    pub(crate) entity: usize,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// One on-demand view computed for every entity of a request.
#[derive(Debug)]
pub(crate) struct Run {
    /// Index of the on-demand view in the catalog.
    pub(crate) view: usize,
    /// Per entity: the outputs of every step, or the index of the entity's [`Failure`].
    pub(crate) results: Vec<Result<Vec<Vec<WasmValue>>, usize>>,
}

/// What one run reads: the probed rows of the request and where each source's rows start.
pub(crate) struct RunInputs<'x, 'c> {
    pub(crate) views: &'c [Arc<LoadedView>],
    pub(crate) rows: &'x [Option<Row<'c>>],
    /// Per source of the view: the offset of its first entity's row in `rows`.
    pub(crate) source_rows: &'x [usize],
    /// Per request field of the view.
    pub(crate) request: &'x [RequestInput],
    pub(crate) n: usize,
    pub(crate) now_micros: i64,
}

/// Whether a failure is expensive enough (it ran into a budget) that the view's remaining
/// entities in the request fail right away rather than each spend the same budget.
fn trips(code: &str) -> bool {
    matches!(code, "timeout" | "out_of_fuel")
}

/// Runs every step of `view` (index `vi` in the catalog) once per entity.
pub(crate) fn run(
    view: &OnDemandView,
    vi: usize,
    input: &RunInputs<'_, '_>,
    failures: &mut Vec<Failure>,
) -> Run {
    let mut results = Vec::with_capacity(input.n);
    let fail = |failures: &mut Vec<Failure>, r: usize, code, message| {
        view.metrics.record_error(code);
        failures.push(Failure {
            view: vi,
            entity: r,
            code,
            message,
        });
        Err(failures.len() - 1)
    };
    let mut tripped: Option<(&'static str, usize)> = None;
    let mut args: Vec<WasmValue> = Vec::new();
    for r in 0..input.n {
        if let Some(why) = &view.unavailable {
            results.push(fail(
                failures,
                r,
                "unavailable",
                format!("on-demand view is unavailable: {why}"),
            ));
            continue;
        }
        if let Some((code, first)) = tripped {
            results.push(fail(
                failures,
                r,
                code,
                format!(
                    "not computed: entity {first} of this request already failed with `{code}`"
                ),
            ));
            continue;
        }
        let mut outputs: Vec<Vec<WasmValue>> = Vec::with_capacity(view.steps.len());
        let mut failed = None;
        for step in view.steps.iter() {
            args.clear();
            for b in step.inputs.iter() {
                args.push(match *b {
                    Binding::Source { source, feature } => {
                        source_value(view, input, source, feature, r)
                    }
                    Binding::Request(i) => input.request[i].get(r),
                    Binding::Output { step, output } => outputs
                        .get(step)
                        .and_then(|o| o.get(output))
                        .cloned()
                        .unwrap_or(WasmValue::Null),
                });
            }
            let start = Instant::now();
            let result = step.transform.call(&args);
            let secs = start.elapsed().as_secs_f64();
            match result {
                Ok(o) => {
                    view.metrics.record_call(secs);
                    outputs.push(o);
                }
                Err(e) => {
                    // Counted as a call here, as an error once per entity below.
                    view.metrics.record_call(secs);
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => results.push(Ok(outputs)),
            Some(e) => {
                let code = e.code();
                if trips(code) {
                    tripped = Some((code, r));
                }
                results.push(fail(failures, r, code, e.to_string()));
            }
        }
    }
    Run { view: vi, results }
}

/// A source feature of entity `r`, null when the row is missing or older than its view's ttl
/// (a withheld value must not reach a transform either).
fn source_value(
    view: &OnDemandView,
    input: &RunInputs<'_, '_>,
    source: usize,
    feature: usize,
    r: usize,
) -> WasmValue {
    let (Some(&vi), Some(&base)) = (view.sources.get(source), input.source_rows.get(source)) else {
        return WasmValue::Null;
    };
    let Some(Some(row)) = input.rows.get(base + r) else {
        return WasmValue::Null;
    };
    if input.views[vi].is_stale(row.event_micros(), input.now_micros) {
        return WasmValue::Null;
    }
    to_wasm(row.value(feature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_the_formatter() {
        for micros in [
            0,
            1_714_564_800_000_000,
            951_782_400_000_001,
            -1_000_000,
            1_800_000_000_123_456,
        ] {
            let mut s = Vec::new();
            fstore_snapshot::format_rfc3339_micros(micros, &mut s);
            let s = String::from_utf8(s).expect("ascii");
            assert_eq!(parse_rfc3339(&s), Some(micros), "{s}");
        }
        assert_eq!(
            parse_rfc3339("2024-05-01T14:00:00+02:00"),
            Some(1_714_564_800_000_000)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.5Z"),
            Some(1_714_564_800_500_000)
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-13-01T12:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "yesterday at noon, roughly",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn request_values_convert_or_say_what_they_were() {
        use EntityValue as E;
        // The generated WIT types have no `PartialEq`; compare their debug forms.
        let conv = |v: E<'_>, ty| format!("{:?}", request_value(&v, ty));
        let ok = |v: WasmValue| format!("{:?}", Ok::<_, &str>(v));
        assert_eq!(
            conv(E::Int(3), FeatureType::Float64),
            ok(WasmValue::Float64(3.0))
        );
        assert_eq!(
            conv(E::Int(2), FeatureType::Timestamp),
            ok(WasmValue::Timestamp(2_000_000))
        );
        assert_eq!(conv(E::Null, FeatureType::String), ok(WasmValue::Null));
        assert_eq!(
            conv(
                E::Str("2024-05-01T12:00:00Z".into()),
                FeatureType::Timestamp
            ),
            ok(WasmValue::Timestamp(1_714_564_800_000_000))
        );
        assert!(request_value(&E::Float(1.5), FeatureType::Int64).is_err_and(|e| e == "a float"));
        assert!(
            request_value(&E::Str("x".into()), FeatureType::Float64)
                .is_err_and(|e| e == "a string")
        );
        assert_eq!(
            conv(
                E::List(vec![E::Int(1), E::Float(2.5)]),
                FeatureType::ListFloat64
            ),
            ok(WasmValue::Float64List(vec![1.0, 2.5]))
        );
        assert!(is_scalar_list(FeatureType::ListFloat64, &[]));
        assert!(is_scalar_list(FeatureType::ListFloat64, &[E::Float(1.0)]));
        assert!(!is_scalar_list(
            FeatureType::ListFloat64,
            &[E::List(vec![]), E::Null]
        ));
        assert!(!is_scalar_list(FeatureType::Float64, &[E::Float(1.0)]));
    }
}
