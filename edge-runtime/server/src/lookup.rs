//! Feature lookups without HTTP: parse a request body, resolve features, probe snapshots and
//! render the response straight into one buffer. The handlers in `http` are thin wrappers
//! around [`execute`], and the criterion benchmark calls it directly.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use fstore_access::{Action, Mask, Resource, ResourceKind};
use fstore_snapshot::{KeyBuf, KeyType, Row, Value, json};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::metrics::view_latency_bucket;
use crate::ondemand::{self, OnDemandView, RequestInput, RequestSource};
use crate::{ApiError, Catalog, LoadedView, Metrics, ResolvedFeature};

/// A value of `entities` or `request_context` as the caller sent it: a join key (integer or
/// string) or request data for on-demand views (any JSON value but an object).
#[derive(Debug, Clone, PartialEq)]
pub enum EntityValue<'a> {
    Int(i64),
    Str(Cow<'a, str>),
    Float(f64),
    Bool(bool),
    Null,
    List(Vec<EntityValue<'a>>),
    /// Anything else (an object, an integer beyond int64): never valid, reported as what it is.
    Other(&'static str),
}

impl EntityValue<'_> {
    /// What the value is, for error messages.
    pub fn describe(&self) -> &'static str {
        match self {
            EntityValue::Int(_) => "an integer",
            EntityValue::Str(_) => "a string",
            EntityValue::Float(_) => "a float",
            EntityValue::Bool(_) => "a bool",
            EntityValue::Null => "null",
            EntityValue::List(_) => "a list",
            EntityValue::Other(what) => what,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EntityValue<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = EntityValue<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an entity key (integer or string)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(EntityValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(
                    EntityValue::Other("an integer beyond int64"),
                    EntityValue::Int,
                ))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(EntityValue::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(EntityValue::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(EntityValue::Null)
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(EntityValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EntityValue::Str(Cow::Owned(v.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                // Kept: a list is a valid `list<float64>` request value.
                let mut items = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1024));
                while let Some(v) = a.next_element::<EntityValue<'a>>()? {
                    items.push(v);
                }
                Ok(EntityValue::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(EntityValue::Other("an object"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Entity columns in the order the caller sent them (Feast echoes join keys in that order).
#[derive(Debug, Default)]
pub struct Entities<'a>(pub Vec<(Cow<'a, str>, Vec<EntityValue<'a>>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entities<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Entities<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping join keys to lists of values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<Cow<'a, str>, Vec<EntityValue<'a>>>()? {
                    out.push((k, v));
                }
                Ok(Entities(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// `request_context`: request fields of on-demand views, each a single value for every entity
/// or an array with one value per entity, in the order the caller sent them.
#[derive(Debug, Default)]
pub struct RequestContext<'a>(pub Vec<(Cow<'a, str>, EntityValue<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for RequestContext<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RequestContext<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "`request_context` as an object mapping request fields to a value or a \
                     list of one value per entity",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<Cow<'a, str>, EntityValue<'a>>()? {
                    out.push((k, v));
                }
                Ok(RequestContext(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The body both lookup endpoints accept (a superset of Feast's; unknown keys are ignored,
/// as Feast's server does, so newer Feast clients keep working).
#[derive(Debug, Deserialize)]
pub struct LookupRequest<'a> {
    #[serde(borrow, default)]
    pub features: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub feature_service: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub entities: Entities<'a>,
    #[serde(default)]
    pub full_feature_names: bool,
    /// Request data for on-demand views. Feast's way, request columns inside `entities`, works
    /// too.
    #[serde(borrow, default)]
    pub request_context: RequestContext<'a>,
}

/// Which wire format to answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// fstore's row-major format (`POST /v1/features`).
    Fstore,
    /// The Feast feature server's column-major format (`POST /get-online-features`).
    Feast,
}

/// Per-request counters for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct LookupStats {
    pub entities: usize,
    pub found: usize,
    pub not_found: usize,
    /// Entities whose on-demand features could not be computed (one per view and entity).
    pub transform_errors: usize,
}

pub fn parse(body: &[u8]) -> Result<LookupRequest<'_>, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("request body is not a valid lookup request: {e}"),
        )
    })
}

/// Feast's timestamp for "none" (join keys, missing rows), as a JSON string literal.
const EPOCH_JSON: &[u8] = b"\"1970-01-01T00:00:00Z\"";

/// Where [`execute_observed`] records per-view serving signals.
#[derive(Debug, Clone, Copy)]
pub struct Observe<'m> {
    pub metrics: &'m Metrics,
    /// When the request started: each view it reads gets the time from here to the end of
    /// rendering as the request's latency.
    pub started: Instant,
}

/// The caller of an authenticated lookup, and the document that let them in.
#[derive(Debug, Clone, Copy)]
pub struct Access<'g> {
    pub caller: fstore_access::Caller<'g>,
    pub gate: &'g fstore_access::Gate,
}

impl Access<'_> {
    fn resource<'a>(&'a self, kind: ResourceKind, name: &'a str) -> Resource<'a> {
        Resource::new(kind, name, self.gate.tags(kind, name))
    }

    fn check(&self, action: Action, kind: ResourceKind, name: &str) -> Result<(), ApiError> {
        self.caller
            .check(action, &self.resource(kind, name))
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "forbidden",
                    e.to_string(),
                )
            })
    }
}

/// A read of PII features, for the audit log: which view's, which features, for how many
/// entities (and which, up to [`AUDITED_KEYS`]), and whether the caller saw them masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiRead {
    pub view: String,
    pub features: Vec<String>,
    pub masked: bool,
    pub entities: usize,
    pub keys: Vec<String>,
}

/// How many entity keys a PII read's audit record lists.
pub const AUDITED_KEYS: usize = 100;

/// Parses `body`, looks everything up in `catalog` and renders the response into `out`.
pub fn execute(
    catalog: &Catalog,
    body: &[u8],
    format: Format,
    max_entities: usize,
    now_micros: i64,
    out: &mut Vec<u8>,
) -> Result<LookupStats, ApiError> {
    execute_inner(
        catalog,
        body,
        format,
        max_entities,
        now_micros,
        out,
        None,
        None,
        &mut Vec::new(),
    )
}

/// [`execute`], also counting the request in the serving signals of every view it read (see
/// [`Metrics::take_signals`]): per stored view, its entities and those not found; per
/// on-demand view, its entities and those that could not be computed; per view, the request's
/// latency. Only a request answered in full is counted, as [`LookupStats`] only are.
pub fn execute_observed(
    catalog: &Catalog,
    body: &[u8],
    format: Format,
    max_entities: usize,
    now_micros: i64,
    out: &mut Vec<u8>,
    observe: Observe<'_>,
) -> Result<LookupStats, ApiError> {
    execute_inner(
        catalog,
        body,
        format,
        max_entities,
        now_micros,
        out,
        Some(observe),
        None,
        &mut Vec::new(),
    )
}

/// [`execute_observed`] for an authenticated caller: every view read (and the feature
/// service, if named) needs `read_online`, else 403 before anything is read; PII features are
/// masked unless the caller has `read_pii` on their view; each PII read goes into `pii`.
#[allow(clippy::too_many_arguments)]
pub fn execute_authorized(
    catalog: &Catalog,
    body: &[u8],
    format: Format,
    max_entities: usize,
    now_micros: i64,
    out: &mut Vec<u8>,
    observe: Observe<'_>,
    access: Access<'_>,
    pii: &mut Vec<PiiRead>,
) -> Result<LookupStats, ApiError> {
    execute_inner(
        catalog,
        body,
        format,
        max_entities,
        now_micros,
        out,
        Some(observe),
        Some(access),
        pii,
    )
}

#[allow(clippy::too_many_arguments)]
fn execute_inner(
    catalog: &Catalog,
    body: &[u8],
    format: Format,
    max_entities: usize,
    now_micros: i64,
    out: &mut Vec<u8>,
    observe: Option<Observe<'_>>,
    access: Option<Access<'_>>,
    pii: &mut Vec<PiiRead>,
) -> Result<LookupStats, ApiError> {
    let req = parse(body)?;
    let resolved_owned;
    let features: &[ResolvedFeature] = if let Some(name) = &req.feature_service {
        catalog.service(name).map(|s| &s[..]).ok_or_else(|| {
            ApiError::not_found(
                "unknown_feature_service",
                format!("feature service `{name}` is not served by this edge"),
            )
        })?
    } else {
        if req.features.is_empty() {
            return Err(ApiError::bad_request(
                "no_features",
                "name `features` (a list of `view:feature`) or a `feature_service`",
            ));
        }
        let mut pairs = Vec::with_capacity(req.features.len());
        for f in &req.features {
            let (v, name) = f
                .split_once(':')
                .filter(|(v, n)| !v.is_empty() && !n.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_feature_reference",
                        format!("`{f}` is not a `view:feature` reference"),
                    )
                })?;
            pairs.push((v, name));
        }
        resolved_owned = catalog.resolve(pairs)?;
        &resolved_owned
    };

    let cols = &req.entities.0;
    if cols.is_empty() {
        return Err(ApiError::bad_request(
            "no_entities",
            "`entities` must map at least one join key to a list of values",
        ));
    }
    let n = cols[0].1.len();
    if let Some((name, c)) = cols.iter().find(|(_, c)| c.len() != n) {
        return Err(ApiError::bad_request(
            "ragged_entities",
            format!(
                "entity column `{name}` has {} values, `{}` has {n}",
                c.len(),
                cols[0].0
            ),
        ));
    }
    if n > max_entities {
        return Err(ApiError::bad_request(
            "too_many_entities",
            format!("{n} entities requested, the limit is {max_entities}"),
        ));
    }

    let on_demand = features.iter().any(|f| f.on_demand);
    // The distinct views involved, each with its join-key columns located in the request.
    let mut views: Vec<(usize, Vec<usize>)> = Vec::new();
    for f in features {
        if f.on_demand || views.iter().any(|(v, _)| *v == f.view) {
            continue;
        }
        views.push((f.view, key_columns(catalog, cols, f.view)?));
    }
    // The distinct on-demand views requested; their sources are probed like requested views.
    let mut computed: Vec<usize> = Vec::new();
    if on_demand {
        for f in features.iter().filter(|f| f.on_demand) {
            if computed.contains(&f.view) {
                continue;
            }
            computed.push(f.view);
            for &s in catalog.on_demand_at(f.view).sources.iter() {
                if !views.iter().any(|(v, _)| *v == s) {
                    views.push((s, key_columns(catalog, cols, s)?));
                }
            }
        }
    }

    let masks = match access {
        Some(a) => authorize(catalog, &req, features, &views, &computed, a)?,
        None => Vec::new(),
    };

    // Probe every (view, entity) once.
    let mut rows: Vec<Option<Row<'_>>> = Vec::with_capacity(views.len() * n);
    let mut kb = KeyBuf::new();
    let mut stats = LookupStats {
        entities: n,
        ..Default::default()
    };
    for (vi, idx) in &views {
        let lv = catalog.view_at(*vi);
        for r in 0..n {
            kb.clear();
            for (&ci, ty) in idx.iter().zip(&lv.key_types) {
                match (&cols[ci].1[r], ty) {
                    (EntityValue::Int(v), KeyType::Int64) => kb.push_i64(*v),
                    (EntityValue::Str(s), KeyType::String) => kb.push_str(s),
                    (got, ty) => {
                        return Err(ApiError::bad_request(
                            "wrong_key_type",
                            format!(
                                "join key `{}` is {ty}, but entity {r} is {}",
                                cols[ci].0,
                                got.describe()
                            ),
                        ));
                    }
                }
            }
            let row = lv.get(kb.as_bytes());
            if row.is_some() {
                stats.found += 1;
            } else if !lv.holds(kb.as_bytes()) {
                // Answering NOT_FOUND for a key another edge holds would be a wrong answer.
                return Err(not_held(lv, r));
            } else {
                stats.not_found += 1;
            }
            rows.push(row);
        }
    }
    let view_slot = |v: usize| views.iter().position(|(w, _)| *w == v).unwrap_or(0) * n;
    // Where each feature's values are: for a stored feature, the offset of its rows in `rows`;
    // for a computed one, its view's run in `runs`. Computed once rather than per cell.
    let slots: Vec<usize> = features
        .iter()
        .map(|f| {
            if f.on_demand {
                computed.iter().position(|&v| v == f.view).unwrap_or(0)
            } else {
                view_slot(f.view)
            }
        })
        .collect();

    let mut runs = Vec::new();
    let mut failures = Vec::new();
    let mut request_cols = Vec::new();
    if on_demand {
        request_cols = request_columns(catalog, &computed, &views, cols);
        // Every request input is checked before any transform runs: a caller's mistake is a
        // 400, never a half-computed answer.
        let mut inputs = Vec::with_capacity(computed.len());
        for &oi in &computed {
            inputs.push(request_inputs(catalog.on_demand_at(oi), &req, n)?);
        }
        for (&oi, request) in computed.iter().zip(&inputs) {
            let od = catalog.on_demand_at(oi);
            let source_rows: Vec<usize> = od.sources.iter().map(|&s| view_slot(s)).collect();
            let input = ondemand::RunInputs {
                views: catalog.views(),
                rows: &rows,
                source_rows: &source_rows,
                request,
                n,
                now_micros,
            };
            runs.push(ondemand::run(od, oi, &input, &mut failures));
        }
        stats.transform_errors = failures.len();
    }
    let ctx = Ctx {
        catalog,
        features,
        views: &views,
        rows: &rows,
        slots: &slots,
        n,
        now_micros,
        runs: &runs,
        failures: &failures,
        request_cols: &request_cols,
        masks: &masks,
        gate: access.map(|a| a.gate),
    };
    // About 40 bytes per value plus the header; one allocation for typical responses.
    out.reserve(256 + features.len() * 32 + n * features.len() * 40);
    match format {
        Format::Fstore => render_fstore(&ctx, &req, out),
        Format::Feast => render_feast(&ctx, &req, out),
    }
    if let Some(o) = observe {
        record_signals(&ctx, o);
    }
    if let Some(a) = access {
        pii_reads(&ctx, &req, a, pii);
    }
    Ok(stats)
}

/// The view feature `f` is read from: (kind, base name, feature name).
fn feature_origin<'c>(catalog: &'c Catalog, f: &'c ResolvedFeature) -> (ResourceKind, &'c str) {
    if f.on_demand {
        (
            ResourceKind::OnDemandView,
            fstore_snapshot::base_view(&catalog.on_demand_at(f.view).name),
        )
    } else {
        (
            ResourceKind::FeatureView,
            fstore_snapshot::base_view(&catalog.view_at(f.view).name),
        )
    }
}

/// Checks `read_online` on everything the request reads and works out, per requested
/// feature, the mask the caller sees it through (None: the value as stored).
#[cold]
fn authorize(
    catalog: &Catalog,
    req: &LookupRequest<'_>,
    features: &[ResolvedFeature],
    views: &[(usize, Vec<usize>)],
    computed: &[usize],
    a: Access<'_>,
) -> Result<Vec<Option<Mask>>, ApiError> {
    if let Some(name) = &req.feature_service {
        a.check(Action::ReadOnline, ResourceKind::FeatureService, name)?;
    }
    for (vi, _) in views {
        let name = fstore_snapshot::base_view(&catalog.view_at(*vi).name);
        a.check(Action::ReadOnline, ResourceKind::FeatureView, name)?;
    }
    for &oi in computed {
        let name = fstore_snapshot::base_view(&catalog.on_demand_at(oi).name);
        a.check(Action::ReadOnline, ResourceKind::OnDemandView, name)?;
    }
    // Most requests read no PII: then no per-feature work at all.
    let any_pii = features
        .iter()
        .any(|f| a.gate.masks(feature_origin(catalog, f).1).is_some());
    if !any_pii {
        return Ok(Vec::new());
    }
    // Whether the caller sees each masked view raw, decided once per view.
    let mut raw: Vec<(&str, bool)> = Vec::new();
    Ok(features
        .iter()
        .map(|f| {
            let (kind, view) = feature_origin(catalog, f);
            let mask = a.gate.masks(view)?.get(&f.short_name).copied()?;
            let sees_raw = match raw.iter().find(|(v, _)| *v == view) {
                Some(&(_, r)) => r,
                None => {
                    let r = a
                        .caller
                        .role
                        .allows(Action::ReadPii, &a.resource(kind, view));
                    raw.push((view, r));
                    r
                }
            };
            (!sees_raw).then_some(mask)
        })
        .collect())
}

/// The PII reads of an answered request, one per view.
#[cold]
fn pii_reads(ctx: &Ctx<'_, '_>, req: &LookupRequest<'_>, a: Access<'_>, out: &mut Vec<PiiRead>) {
    if a.gate.doc().privacy.is_empty() {
        return;
    }
    for (fi, f) in ctx.features.iter().enumerate() {
        let (_, view) = feature_origin(ctx.catalog, f);
        let Some(masks) = a.gate.masks(view) else {
            continue;
        };
        if !masks.contains_key(&f.short_name) {
            continue;
        }
        let masked = ctx.masks.get(fi).is_some_and(Option::is_some);
        match out
            .iter_mut()
            .find(|r| r.view == view && r.masked == masked)
        {
            Some(r) => r.features.push(f.short_name.clone()),
            None => out.push(PiiRead {
                view: view.to_string(),
                features: vec![f.short_name.clone()],
                masked,
                entities: ctx.n,
                keys: entity_keys(req, ctx.n),
            }),
        }
    }
}

/// The first [`AUDITED_KEYS`] entities of a request as `key=value[,key=value]`.
fn entity_keys(req: &LookupRequest<'_>, n: usize) -> Vec<String> {
    (0..n.min(AUDITED_KEYS))
        .map(|r| {
            let mut s = String::new();
            for (i, (name, vals)) in req.entities.0.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(name);
                s.push('=');
                let mut v = Vec::new();
                write_entity(&mut v, &vals[r]);
                let text = std::str::from_utf8(&v).unwrap_or("?").trim_matches('"');
                // A key is an id; anything longer is cut so one request cannot bloat the log.
                s.push_str(fstore_access::truncate_text(text, 128));
            }
            s
        })
        .collect()
}

/// Counts a request answered in full in the serving signals of the views it read. No
/// allocation: the catalog holds its views' counters, resolved when it was built.
fn record_signals(ctx: &Ctx<'_, '_>, o: Observe<'_>) {
    let n = ctx.n;
    // A request for no entity read nothing.
    if n == 0 {
        return;
    }
    let signals = ctx.catalog.signals(o.metrics);
    let bucket = view_latency_bucket(o.started.elapsed());
    let stored = ctx.catalog.views().len();
    // The counters of each view read, in order: stored views, then on-demand ones.
    let touched = ctx
        .views
        .iter()
        .map(|(vi, _)| *vi)
        .chain(ctx.runs.iter().map(|r| stored + r.view));
    for (k, i) in touched.clone().enumerate() {
        let Some(c) = signals.get(i) else { continue };
        if i < stored {
            let rows = ctx.rows.get(k * n..(k + 1) * n).unwrap_or_default();
            let not_found = rows.iter().filter(|r| r.is_none()).count();
            c.record_lookups(n as u64, not_found as u64);
        } else if let Some(run) = k.checked_sub(ctx.views.len()).and_then(|r| ctx.runs.get(r)) {
            let errors = run.results.iter().filter(|r| r.is_err()).count();
            c.record_lookups(n as u64, 0);
            c.record_errors(errors as u64);
        }
        // One latency sample per request and view, even when two slots of the request
        // (`view` and `view@v3`) count under the same view.
        let seen = touched
            .clone()
            .take(k)
            .any(|j| signals.get(j).is_some_and(|d| Arc::ptr_eq(c, d)));
        if !seen {
            c.record_latency(bucket);
        }
    }
}

/// The positions in `cols` of view `vi`'s join keys.
fn key_columns(
    catalog: &Catalog,
    cols: &[(Cow<'_, str>, Vec<EntityValue<'_>>)],
    vi: usize,
) -> Result<Vec<usize>, ApiError> {
    let lv = catalog.view_at(vi);
    let mut idx = Vec::with_capacity(lv.key_names.len());
    for k in &lv.key_names {
        let i = cols.iter().position(|(c, _)| c == k).ok_or_else(|| {
            ApiError::bad_request(
                "missing_join_key",
                format!(
                    "feature view `{}` is keyed by `{k}`, which `entities` does not have",
                    lv.name
                ),
            )
        })?;
        idx.push(i);
    }
    Ok(idx)
}

/// Which columns of `entities` are request data rather than join keys (Feast passes request
/// data there): those named like a request field of a requested on-demand view that no probed
/// view uses as a join key. They are not echoed back, as Feast does not.
fn request_columns(
    catalog: &Catalog,
    computed: &[usize],
    views: &[(usize, Vec<usize>)],
    cols: &[(Cow<'_, str>, Vec<EntityValue<'_>>)],
) -> Vec<bool> {
    (0..cols.len())
        .map(|ci| {
            !views.iter().any(|(_, idx)| idx.contains(&ci))
                && computed.iter().any(|&oi| {
                    catalog
                        .on_demand_at(oi)
                        .request
                        .iter()
                        .any(|f| f.name == cols[ci].0)
                })
        })
        .collect()
}

/// The request inputs of on-demand view `od`, from `request_context` or from `entities`.
fn request_inputs(
    od: &OnDemandView,
    req: &LookupRequest<'_>,
    n: usize,
) -> Result<Vec<RequestInput>, ApiError> {
    let mut out = Vec::with_capacity(od.request.len());
    for field in &od.request {
        let name = field.name.as_str();
        let context = req.request_context.0.iter().find(|(k, _)| k == name);
        let column = req.entities.0.iter().find(|(k, _)| k == name);
        let source = match (context, column) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "bad_request_context",
                    format!(
                        "request field `{name}` is given both in `request_context` and in \
                         `entities`; give it once"
                    ),
                ));
            }
            (Some((_, v)), None) => RequestSource::Context(v),
            (None, Some((_, c))) => RequestSource::Column(c),
            (None, None) => RequestSource::Missing,
        };
        out.push(ondemand::request_input(&od.name, field, source, n)?);
    }
    Ok(out)
}

struct Ctx<'c, 'r> {
    catalog: &'c Catalog,
    features: &'c [ResolvedFeature],
    /// The views probed, in order of first use, each with its join-key columns.
    views: &'r [(usize, Vec<usize>)],
    rows: &'r [Option<Row<'c>>],
    slots: &'r [usize],
    n: usize,
    now_micros: i64,
    /// The on-demand views computed, in order of first use.
    runs: &'r [ondemand::Run],
    failures: &'r [ondemand::Failure],
    /// Per column of `entities`: whether it is request data (not echoed). Empty when none is.
    request_cols: &'r [bool],
    /// Per requested feature, the mask the caller sees it through; empty when none applies.
    masks: &'r [Option<Mask>],
    /// The document PII hashes are made with (its key); None without authentication.
    gate: Option<&'r fstore_access::Gate>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Present,
    NotFound,
    Null,
    OutsideMaxAge,
    TransformError,
    /// A PII value shown hashed or truncated.
    Masked,
    /// A PII value withheld (null).
    Redacted,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Present => "\"PRESENT\"",
            Status::NotFound => "\"NOT_FOUND\"",
            Status::Null => "\"NULL_VALUE\"",
            Status::OutsideMaxAge => "\"OUTSIDE_MAX_AGE\"",
            Status::TransformError => "\"TRANSFORM_ERROR\"",
            Status::Masked | Status::Redacted => "\"MASKED\"",
        }
    }

    /// Feast's `FieldStatus` has no value for a failed transform; `INVALID` is its closest,
    /// and a Feast client rejects names outside its enum.
    fn as_feast_str(self) -> &'static str {
        match self {
            Status::TransformError => "\"INVALID\"",
            // Feast's enum has no MASKED: a masked value is present, a withheld one null.
            Status::Masked => "\"PRESENT\"",
            Status::Redacted => "\"NULL_VALUE\"",
            other => other.as_str(),
        }
    }
}

impl Ctx<'_, '_> {
    /// The value of feature `fi` (position in the request) for entity `r`, its status and
    /// its event time (micros).
    #[inline]
    fn cell(&self, fi: usize, r: usize) -> (Value<'_>, Status, Option<i64>) {
        let f = &self.features[fi];
        if f.on_demand {
            return self.computed_cell(fi, r);
        }
        let Some(row) = self.rows[self.slots[fi] + r] else {
            return (Value::Null, Status::NotFound, None);
        };
        let ev = row.event_micros();
        if self.catalog.view_at(f.view).is_stale(ev, self.now_micros) {
            return (Value::Null, Status::OutsideMaxAge, Some(ev));
        }
        match row.value(f.feature) {
            Value::Null => (Value::Null, Status::Null, Some(ev)),
            v => (v, Status::Present, Some(ev)),
        }
    }

    /// A computed feature: it has no event time of its own (computed now, from the request).
    #[cold]
    fn computed_cell(&self, fi: usize, r: usize) -> (Value<'_>, Status, Option<i64>) {
        let f = &self.features[fi];
        let run = &self.runs[self.slots[fi]];
        let od = self.catalog.on_demand_at(run.view);
        let value = match (&run.results[r], od.outputs.get(f.feature)) {
            (Ok(steps), Some(&(step, output))) => steps
                .get(step)
                .and_then(|o| o.get(output))
                .map(ondemand::from_wasm),
            _ => None,
        };
        match value {
            None => (Value::Null, Status::TransformError, None),
            Some(Value::Null) => (Value::Null, Status::Null, None),
            Some(v) => (v, Status::Present, None),
        }
    }

    /// Writes feature `fi`'s value for the caller: as stored, or through its mask (only a
    /// present value is masked). Returns the status to report.
    #[inline]
    fn write_cell_value(
        &self,
        out: &mut Vec<u8>,
        fi: usize,
        v: &Value<'_>,
        s: Status,
        feast: bool,
    ) -> Status {
        match self.masks.get(fi).copied().flatten() {
            Some(mask) if s == Status::Present => self.write_masked(out, mask, v),
            _ => {
                if feast {
                    write_feast_value(out, v);
                } else {
                    json::write_value(out, v);
                }
                s
            }
        }
    }

    #[cold]
    fn write_masked(&self, out: &mut Vec<u8>, mask: Mask, v: &Value<'_>) -> Status {
        match (mask, v) {
            (Mask::Hash, Value::ListFloat64(_)) => {
                // Lists are not hashed (nor in training sets): withheld.
                out.extend_from_slice(b"null");
                Status::Redacted
            }
            (Mask::Hash, v) => {
                // Masks exist only with a gate; without one, withhold rather than guess.
                let Some(gate) = self.gate else {
                    out.extend_from_slice(b"null");
                    return Status::Redacted;
                };
                let hashed = match v {
                    Value::String(s) => gate.hash_pii(s.as_bytes()),
                    v => {
                        let mut text = Vec::new();
                        json::write_value(&mut text, v);
                        gate.hash_pii(&text)
                    }
                };
                json::write_str(out, &hashed);
                Status::Masked
            }
            (Mask::Truncate(n), Value::String(s)) => {
                json::write_str(out, fstore_access::truncate_text(s, n));
                Status::Masked
            }
            // Truncation is only declared on strings; anything else is withheld.
            (Mask::Redact, _) | (Mask::Truncate(_), _) => {
                out.extend_from_slice(b"null");
                Status::Redacted
            }
        }
    }

    /// Whether column `ci` of `entities` is echoed (join keys are, request data is not).
    #[inline]
    fn echoed(&self, ci: usize) -> bool {
        !self.request_cols.get(ci).copied().unwrap_or(false)
    }
}

/// Echoes a value of `entities` as the caller sent it (an object, never valid, as null).
fn write_entity(out: &mut Vec<u8>, v: &EntityValue<'_>) {
    match v {
        EntityValue::Int(i) => json::write_i64(out, *i),
        EntityValue::Str(s) => json::write_str(out, s),
        EntityValue::Float(f) => json::write_f64(out, *f),
        EntityValue::Bool(true) => out.extend_from_slice(b"true"),
        EntityValue::Bool(false) => out.extend_from_slice(b"false"),
        EntityValue::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_entity(out, item);
            }
            out.push(b']');
        }
        EntityValue::Null | EntityValue::Other(_) => out.extend_from_slice(b"null"),
    }
}

fn render_fstore(ctx: &Ctx<'_, '_>, req: &LookupRequest<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"manifest\":");
    json::write_i64(out, ctx.catalog.seq as i64);
    out.extend_from_slice(b",\"views\":{");
    // Every view that answered, the sources of on-demand views included.
    for (i, (vi, _)) in ctx.views.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let lv = ctx.catalog.view_at(*vi);
        json::write_str(out, &lv.name);
        out.push(b':');
        json::write_i64(out, lv.version as i64);
    }
    out.extend_from_slice(b"},\"features\":[");
    for (i, f) in ctx.features.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&f.reference_json);
    }
    out.extend_from_slice(b"],\"results\":[");
    let mut statuses: Vec<Status> = Vec::with_capacity(ctx.features.len());
    let mut times: Vec<Option<i64>> = Vec::with_capacity(ctx.features.len());
    for r in 0..ctx.n {
        if r > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"entity\":{");
        let mut first = true;
        for (ci, (name, vals)) in req.entities.0.iter().enumerate() {
            if !ctx.echoed(ci) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            json::write_str(out, name);
            out.push(b':');
            write_entity(out, &vals[r]);
        }
        out.extend_from_slice(b"},\"values\":[");
        statuses.clear();
        times.clear();
        for i in 0..ctx.features.len() {
            if i > 0 {
                out.push(b',');
            }
            let (v, s, t) = ctx.cell(i, r);
            let s = ctx.write_cell_value(out, i, &v, s, false);
            statuses.push(s);
            times.push(t);
        }
        out.extend_from_slice(b"],\"statuses\":[");
        for (i, s) in statuses.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(s.as_str().as_bytes());
        }
        out.extend_from_slice(b"],\"event_timestamps\":[");
        // Features of one view share the row's event time: format it once, copy it after.
        let mut last: Option<(i64, std::ops::Range<usize>)> = None;
        for (i, t) in times.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match (t, &last) {
                (Some(t), Some((lt, range))) if lt == t => out.extend_from_within(range.clone()),
                (Some(t), _) => {
                    let start = out.len();
                    json::write_timestamp(out, *t);
                    last = Some((*t, start..out.len()));
                }
                (None, _) => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b']');
    if !ctx.failures.is_empty() {
        render_failures(ctx, out);
    }
    out.push(b'}');
}

/// `"errors"`: one entry per on-demand view and entity that could not be computed.
#[cold]
fn render_failures(ctx: &Ctx<'_, '_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"errors\":[");
    for (i, e) in ctx.failures.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"view\":");
        json::write_str(out, &ctx.catalog.on_demand_at(e.view).name);
        out.extend_from_slice(b",\"entity\":");
        json::write_i64(out, e.entity as i64);
        out.extend_from_slice(b",\"code\":");
        json::write_str(out, e.code);
        out.extend_from_slice(b",\"message\":");
        json::write_str(out, &e.message);
        out.push(b'}');
    }
    out.push(b']');
}

/// Feast's value encoding: timestamps as epoch seconds, an empty list as null (Feast's client
/// cannot infer a type from `[]`).
fn write_feast_value(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Timestamp(t) => json::write_i64(out, t.div_euclid(1_000_000)),
        Value::ListFloat64(l) if l.is_empty() => out.extend_from_slice(b"null"),
        v => json::write_value(out, v),
    }
}

fn render_feast(ctx: &Ctx<'_, '_>, req: &LookupRequest<'_>, out: &mut Vec<u8>) {
    let n = ctx.n;
    out.extend_from_slice(b"{\"metadata\":{\"feature_names\":[");
    let mut first = true;
    for (ci, (name, _)) in req.entities.0.iter().enumerate() {
        if !ctx.echoed(ci) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        json::write_str(out, name);
    }
    for f in ctx.features {
        if !first {
            out.push(b',');
        }
        first = false;
        json::write_str(
            out,
            if req.full_feature_names {
                &f.full_name
            } else {
                &f.short_name
            },
        );
    }
    out.extend_from_slice(b"]},\"results\":[");
    let mut first = true;
    let epoch_list = |out: &mut Vec<u8>| {
        for r in 0..n {
            if r > 0 {
                out.push(b',');
            }
            out.extend_from_slice(EPOCH_JSON);
        }
    };
    for (ci, (_, vals)) in req.entities.0.iter().enumerate() {
        if !ctx.echoed(ci) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(b"{\"values\":[");
        for (r, v) in vals.iter().enumerate() {
            if r > 0 {
                out.push(b',');
            }
            write_entity(out, v);
        }
        out.extend_from_slice(b"],\"statuses\":[");
        for r in 0..n {
            if r > 0 {
                out.push(b',');
            }
            out.extend_from_slice(Status::Present.as_str().as_bytes());
        }
        out.extend_from_slice(b"],\"event_timestamps\":[");
        epoch_list(out);
        out.extend_from_slice(b"]}");
    }
    let mut statuses: Vec<Status> = Vec::with_capacity(n);
    let mut times: Vec<Option<i64>> = Vec::with_capacity(n);
    for fi in 0..ctx.features.len() {
        if !first {
            out.push(b',');
        }
        first = false;
        statuses.clear();
        times.clear();
        out.extend_from_slice(b"{\"values\":[");
        for r in 0..n {
            if r > 0 {
                out.push(b',');
            }
            let (v, s, t) = ctx.cell(fi, r);
            let s = ctx.write_cell_value(out, fi, &v, s, true);
            statuses.push(s);
            times.push(t);
        }
        out.extend_from_slice(b"],\"statuses\":[");
        for (r, s) in statuses.iter().enumerate() {
            if r > 0 {
                out.push(b',');
            }
            out.extend_from_slice(s.as_feast_str().as_bytes());
        }
        out.extend_from_slice(b"],\"event_timestamps\":[");
        for (r, t) in times.iter().enumerate() {
            if r > 0 {
                out.push(b',');
            }
            match t {
                Some(t) => json::write_timestamp(out, *t),
                None => out.extend_from_slice(EPOCH_JSON),
            }
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
}

/// 421: entity `r` of a sharded view lives in a shard this edge does not hold.
#[cold]
fn not_held(lv: &LoadedView, r: usize) -> ApiError {
    let count = lv.shards.as_ref().map_or(1, |h| h.count);
    ApiError::new(
        axum::http::StatusCode::MISDIRECTED_REQUEST,
        "shard_not_held",
        format!(
            "entity {r} of `{}` lives in a shard this edge does not hold (the view is split \
             into {count}); send the request through the router (`fstore serve router`)",
            lv.name
        ),
    )
}
