//! Catalog search: the documents derived from the definitions, the one tokenizer both the
//! index and the queries go through, BM25 ranking and highlighting.
//!
//! The databases only retrieve candidates (a document containing a query token) and apply the
//! filters. Everything that decides what a user sees — tokens, scores, order, highlights — is
//! computed here, from the same data, so SQLite and PostgreSQL give identical results: the
//! `body` column holds tokens this module produced, each `[a-z0-9]+`, which FTS5's `unicode61`
//! tokenizer and PostgreSQL's `simple` parser both take as one token, unchanged.
//!
//! # Tokens
//!
//! Text is split into runs of ASCII letters and digits (also at a `camelCase` boundary) and
//! lowercased; anything else separates (`monetary_90d` → `monetary`, `90d`). Then, in order:
//!
//! - Durations are written one way: a number with a unit, joined (`30d`, `24h`, `2w`) or as
//!   two words (`30 days`, `1 week`), becomes whole days when it is whole days (`30d`, `1d`,
//!   `14d`), else hours, minutes or seconds (`12h`, `5m`, `90s`). A month counts as 30 days
//!   and a year as 365.
//! - Stop words are dropped: [`STOP_WORDS`].
//! - Words of letters only are stemmed lightly by [`stem`] (`orders` → `order`, `spending` →
//!   `spend`, `categories` → `category`, `value`/`values` → `valu`).
//! - Tokens longer than [`MAX_TOKEN_LEN`] (hashes, mostly) are dropped.
//!
//! At index time only, each token also brings its synonyms ([`SYNONYMS`]), so a document
//! saying "30 days" is found by "month" and one saying "monthly" by "30d", without the
//! query growing.
//!
//! # Ranking
//!
//! BM25 (k1 = 1.2, b = 0.75) over a weighted document: a word counts 3 times in the name,
//! twice in the tags, once in the description and half in the context (source, transform,
//! aggregation, entities, member names); a word matching through several of its synonyms
//! counts once. idf uses N = all catalog documents and the document
//! frequency among the candidates, which is exact because every document containing a query
//! token is a candidate, whatever the filters; so filtering never changes a hit's score.
//! The last query token also matches as a prefix (type-ahead) when the query ends in it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use fstore_spec::{Definitions, FeatureDef, ObjectKind, format_duration};
use serde::{Deserialize, Serialize};

use crate::{Highlight, RegistryError, SearchHit, SearchQuery};

/// The document kind of a feature; the other documents use [`ObjectKind::as_str`].
pub(crate) const FEATURE: &str = "feature";

/// The kinds of catalog documents, in the order equally ranked hits (and an empty query) list
/// them: features first, since they are what people look for.
pub const KIND_ORDER: [&str; 8] = [
    FEATURE,
    "feature_view",
    "on_demand_view",
    "feature_service",
    "entity",
    "source",
    "request_source",
    "transform",
];

pub(crate) const MAX_LIMIT: usize = 100;

/// Bounds the size of the match expression a query sends to the database.
const MAX_QUERY_TERMS: usize = 32;

/// Longer tokens are hashes or encoded data, not words anyone types; PostgreSQL also refuses
/// to index very long words.
pub(crate) const MAX_TOKEN_LEN: usize = 64;

/// Words too common in descriptions to tell documents apart ("the last 30 days").
pub(crate) const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it",
    "its", "last", "of", "on", "or", "over", "per", "s", "t", "than", "that", "the", "this", "to",
    "was", "were", "with",
];

/// Groups of words that mean the same in feature descriptions; any member of a group found
/// in a document indexes all of them. Written as people write them and run through the
/// tokenizer once, so stemming applies to them too. Kept small on purpose: each group must be
/// a true synonym in this domain, or it would pull in noise.
pub(crate) const SYNONYMS: &[&[&str]] = &[
    &["1d", "daily"],
    &["7d", "week", "weekly"],
    &["30d", "month", "monthly"],
    &["90d", "quarter", "quarterly"],
    &["365d", "year", "yearly", "annual"],
    &["monetary", "spend", "revenue"],
    &["frequency", "count"],
    &["recency", "recent"],
    &["avg", "average", "mean"],
];

/// Per-field weights of the ranking: name, tags, description, context.
const FIELD_WEIGHTS: [f64; 4] = [3.0, 2.0, 1.0, 0.5];
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Descriptions longer than this (in bytes) are cut around their first match.
const FRAGMENT_LEN: usize = 200;
/// How much of a long description is kept before its first match.
const FRAGMENT_LEAD: usize = 60;

pub(crate) fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

/// One searchable document, stored as JSON in `catalog.doc`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Doc {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub view: Option<String>,
    pub feature_type: Option<String>,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    pub entities: Vec<String>,
    /// Searched, at a low weight, but not shown: what the document is computed from or made
    /// of.
    pub context: String,
}

impl Doc {
    /// `|a|b|`, so that one value is the exact substring `|a|` (see `bar_pattern`).
    pub(crate) fn tags_column(&self) -> String {
        bars(&self.tags)
    }

    pub(crate) fn entities_column(&self) -> String {
        bars(&self.entities)
    }

    /// The tokens of every field (synonyms included), for the full-text index.
    pub(crate) fn body(&self) -> String {
        self.fields()
            .iter()
            .flat_map(|f| index_terms(f))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The ranked fields, in the order of [`FIELD_WEIGHTS`].
    fn fields(&self) -> [String; 4] {
        [
            self.name.clone(),
            self.tags.join(" "),
            self.description.clone(),
            self.context.clone(),
        ]
    }

    fn hit(self, score: f64, highlights: Vec<Highlight>) -> SearchHit {
        SearchHit {
            kind: self.kind,
            name: self.name,
            view: self.view,
            feature_type: self.feature_type,
            description: self.description,
            owner: self.owner,
            tags: self.tags,
            entities: self.entities,
            score,
            highlights,
        }
    }
}

fn bars(values: &[String]) -> String {
    if values.is_empty() {
        String::new()
    } else {
        format!("|{}|", values.join("|"))
    }
}

/// The substring a `|a|b|` column contains when it holds `value`.
pub(crate) fn bar_pattern(value: &str) -> String {
    format!("|{value}|")
}

fn sorted_set<'a>(items: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    items
        .into_iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The catalog documents of `defs`. Ids are unique: the registry does not validate
/// definitions, so a second document with an id already taken (a feature declared twice) is
/// left out rather than failing the apply.
pub(crate) fn documents(defs: &Definitions) -> Vec<Doc> {
    let mut out = Vec::new();
    let view_entities = |view: &str| -> Vec<String> {
        if let Some(v) = defs.view(view) {
            return v.entities.clone();
        }
        defs.on_demand_view(view)
            .map(|od| {
                sorted_set(
                    od.sources
                        .iter()
                        .filter_map(|s| defs.view(s))
                        .flat_map(|v| &v.entities),
                )
            })
            .unwrap_or_default()
    };

    for v in &defs.feature_views {
        for f in &v.features {
            let mut context = vec![v.source.clone()];
            context.extend(feature_context(f));
            context.extend(v.entities.iter().cloned());
            out.push(feature_doc(
                &v.name,
                f,
                &v.owner,
                &v.tags,
                &v.entities,
                context,
            ));
        }
        let mut context = vec![v.source.clone()];
        context.extend(v.entities.iter().cloned());
        context.extend(v.features.iter().map(|f| f.name.clone()));
        out.push(object_doc(
            ObjectKind::FeatureView,
            &v.name,
            &v.description,
            &v.owner,
            &v.tags,
            v.entities.clone(),
            context,
        ));
    }
    for v in &defs.on_demand_views {
        let entities = view_entities(&v.name);
        for f in &v.features {
            let mut context = v.sources.clone();
            context.extend(v.request_source.iter().cloned());
            context.extend(feature_context(f));
            context.extend(entities.iter().cloned());
            out.push(feature_doc(
                &v.name, f, &v.owner, &v.tags, &entities, context,
            ));
        }
        let mut context = v.sources.clone();
        context.extend(v.request_source.iter().cloned());
        context.extend(entities.iter().cloned());
        context.extend(v.features.iter().map(|f| f.name.clone()));
        out.push(object_doc(
            ObjectKind::OnDemandView,
            &v.name,
            &v.description,
            &v.owner,
            &v.tags,
            entities,
            context,
        ));
    }
    for s in &defs.feature_services {
        let entities: Vec<String> = s
            .features
            .iter()
            .flat_map(|r| view_entities(r.base_view()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut context: Vec<String> = s.features.iter().map(|r| r.to_string()).collect();
        context.extend(entities.iter().cloned());
        out.push(object_doc(
            ObjectKind::FeatureService,
            &s.name,
            &s.description,
            &s.owner,
            &s.tags,
            entities,
            context,
        ));
    }
    for e in &defs.entities {
        let context = e.join_keys.iter().map(|k| k.name.clone()).collect();
        out.push(object_doc(
            ObjectKind::Entity,
            &e.name,
            &e.description,
            &e.owner,
            &e.tags,
            vec![e.name.clone()],
            context,
        ));
    }
    for s in &defs.sources {
        // Not the path: for a database source it is a URL that may carry credentials.
        let mut context = vec![
            serde_json::to_value(s.format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            s.timestamp_field.clone(),
        ];
        context.extend(s.created_timestamp_field.iter().cloned());
        out.push(object_doc(
            ObjectKind::Source,
            &s.name,
            &s.description,
            &s.owner,
            &s.tags,
            Vec::new(),
            context,
        ));
    }
    for r in &defs.request_sources {
        let context = r.fields.iter().map(|f| f.name.clone()).collect();
        out.push(object_doc(
            ObjectKind::RequestSource,
            &r.name,
            &r.description,
            &r.owner,
            &r.tags,
            Vec::new(),
            context,
        ));
    }
    for t in &defs.transforms {
        let context = t
            .resolved
            .iter()
            .flat_map(|r| r.inputs.iter().chain(&r.outputs))
            .map(|f| f.name.clone())
            .collect();
        out.push(object_doc(
            ObjectKind::Transform,
            &t.name,
            &t.description,
            &t.owner,
            &t.tags,
            Vec::new(),
            context,
        ));
    }

    let mut seen = HashSet::new();
    out.retain(|d| seen.insert(d.id.clone()));
    out
}

/// How a feature is computed, in words the tokenizer indexes: its column, transform or SQL,
/// and its aggregation as "sum order_value 30d".
fn feature_context(f: &FeatureDef) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(f.column.iter().cloned());
    out.extend(f.transform.iter().cloned());
    out.extend(f.output.iter().cloned());
    out.extend(f.sql.iter().cloned());
    if let Some(a) = f.aggregation {
        let mut words = vec![a.as_str().to_string()];
        words.extend(f.aggregated_column().map(str::to_string));
        words.extend(f.window_seconds.map(format_duration));
        out.push(words.join(" "));
    }
    out
}

fn feature_doc(
    view: &str,
    f: &FeatureDef,
    view_owner: &str,
    view_tags: &[String],
    entities: &[String],
    context: Vec<String>,
) -> Doc {
    let name = format!("{view}:{}", f.name);
    Doc {
        id: format!("{FEATURE}:{name}"),
        kind: FEATURE.into(),
        name,
        view: Some(view.to_string()),
        feature_type: Some(f.ty.name().to_string()),
        description: f.description.clone(),
        owner: if f.owner.is_empty() {
            view_owner.to_string()
        } else {
            f.owner.clone()
        },
        tags: sorted_set(f.tags.iter().chain(view_tags)),
        entities: entities.to_vec(),
        context: context.join(" "),
    }
}

fn object_doc(
    kind: ObjectKind,
    name: &str,
    description: &str,
    owner: &str,
    tags: &[String],
    entities: Vec<String>,
    context: Vec<String>,
) -> Doc {
    Doc {
        id: format!("{kind}:{name}"),
        kind: kind.as_str().into(),
        name: name.to_string(),
        view: None,
        feature_type: None,
        description: description.to_string(),
        owner: owner.to_string(),
        tags: sorted_set(tags),
        entities,
        context: context.join(" "),
    }
}

// ---------------------------------------------------------------------------------------
// Tokenizer

/// A token and the bytes of the text it came from (for highlighting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub term: String,
    pub start: usize,
    pub end: usize,
}

/// Byte spans of the runs of ASCII letters and digits, split where a lowercase letter is
/// followed by an uppercase one (`cartValue`).
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_alphanumeric() {
            match start {
                Some(s) if b.is_ascii_uppercase() && bytes[i - 1].is_ascii_lowercase() => {
                    out.push((s, i));
                    start = Some(i);
                }
                Some(_) => {}
                None => start = Some(i),
            }
        } else if let Some(s) = start.take() {
            out.push((s, i));
        }
    }
    if let Some(s) = start {
        out.push((s, bytes.len()));
    }
    out
}

/// Seconds in one of a duration unit, as people abbreviate it.
fn unit_seconds(unit: &str) -> Option<u64> {
    Some(match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        "w" | "wk" | "wks" | "week" | "weeks" => 7 * 86_400,
        "mo" | "month" | "months" => 30 * 86_400,
        "y" | "yr" | "yrs" | "year" | "years" => 365 * 86_400,
        _ => return None,
    })
}

/// The one spelling of a duration: whole days if it is whole days, else the largest unit that
/// divides it.
fn canonical_duration(secs: u64) -> String {
    for (unit, s) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(s) {
            return format!("{}{unit}", secs / s);
        }
    }
    format!("{secs}s")
}

fn duration(number: &str, unit: &str) -> Option<String> {
    let n: u64 = number.parse().ok()?;
    n.checked_mul(unit_seconds(unit)?).map(canonical_duration)
}

/// `30d`, `24h`, `2weeks` as one word.
fn joined_duration(word: &str) -> Option<String> {
    let split = word.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = word.split_at(split);
    if number.is_empty() || !unit.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    duration(number, unit)
}

fn has_vowel(s: &str) -> bool {
    s.bytes().any(|b| b"aeiouy".contains(&b))
}

/// `shipp` → `ship`, `runn` → `run`; `l`, `s` and `z` double in stems (`roll`, `pass`).
fn undouble(stem: &str) -> String {
    let b = stem.as_bytes();
    let n = b.len();
    if n >= 2 && b[n - 1] == b[n - 2] && !b"aeiouylsz".contains(&b[n - 1]) {
        stem[..n - 1].to_string()
    } else {
        stem.to_string()
    }
}

/// Light suffix stripping for words of lowercase letters longer than three: plurals (`-s`,
/// `-es` after s/x/ch/sh/z, `-ies` → `-y`; not `-ss`, `-us`, `-is`), then `-ing` and `-ed`
/// when at least three letters with a vowel remain (`string` and `speed` stay), then a final
/// `-e` of a stem of five letters or more, so that `value`, `values` and `valued` meet. It
/// is meant to join inflections of one word, not to be linguistically right: a wrong stem
/// only costs recall, and indexing and querying agree on it.
pub(crate) fn stem(word: &str) -> String {
    if word.len() <= 3 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return word.to_string();
    }
    let mut s = if let Some(base) = word.strip_suffix("ies") {
        format!("{base}y")
    } else if let Some(base) = word.strip_suffix("sses") {
        format!("{base}ss")
    } else if ["xes", "ches", "shes", "zzes"]
        .iter()
        .any(|suffix| word.ends_with(suffix))
    {
        word[..word.len() - 2].to_string()
    } else if word.ends_with("ss") || word.ends_with("us") || word.ends_with("is") {
        word.to_string()
    } else if let Some(base) = word.strip_suffix('s') {
        base.to_string()
    } else if let Some(base) = word
        .strip_suffix("ing")
        .filter(|b| b.len() >= 3 && has_vowel(b))
    {
        undouble(base)
    } else if let Some(base) = word
        .strip_suffix("ed")
        .filter(|b| b.len() >= 3 && has_vowel(b) && !b.ends_with('e'))
    {
        undouble(base)
    } else {
        word.to_string()
    };
    if s.len() >= 5 && s.ends_with('e') {
        s.pop();
    }
    s
}

/// The tokens of `text`, with where each came from. One function for documents and queries.
pub(crate) fn tokenize(text: &str) -> Vec<Token> {
    let spans = word_spans(text);
    let words: Vec<String> = spans
        .iter()
        .map(|&(s, e)| text[s..e].to_ascii_lowercase())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let (start, end) = spans[i];
        let word = &words[i];
        if let Some(d) = joined_duration(word) {
            out.push(Token {
                term: d,
                start,
                end,
            });
            i += 1;
            continue;
        }
        if word.bytes().all(|b| b.is_ascii_digit())
            && let Some(d) = words.get(i + 1).and_then(|unit| duration(word, unit))
        {
            out.push(Token {
                term: d,
                start,
                end: spans[i + 1].1,
            });
            i += 2;
            continue;
        }
        i += 1;
        if STOP_WORDS.contains(&word.as_str()) {
            continue;
        }
        let term = stem(word);
        if term.len() <= MAX_TOKEN_LEN {
            out.push(Token { term, start, end });
        }
    }
    out
}

static SYNONYM_MAP: LazyLock<HashMap<String, Vec<String>>> = LazyLock::new(|| {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for group in SYNONYMS {
        let terms: Vec<String> = group
            .iter()
            .flat_map(|w| tokenize(w))
            .map(|t| t.term)
            .collect();
        for t in &terms {
            let others = map.entry(t.clone()).or_default();
            for o in &terms {
                if o != t && !others.contains(o) {
                    others.push(o.clone());
                }
            }
        }
    }
    map
});

/// `term` and its synonyms, `term` first.
pub(crate) fn expand(term: &str) -> Vec<String> {
    let mut out = vec![term.to_string()];
    if let Some(others) = SYNONYM_MAP.get(term) {
        out.extend(others.iter().cloned());
    }
    out
}

/// What a document field contributes to the index.
fn index_terms(text: &str) -> Vec<String> {
    tokenize(text)
        .iter()
        .flat_map(|t| expand(&t.term))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Queries

/// A query token; `prefix` matches every token starting with it (type-ahead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    pub text: String,
    pub prefix: bool,
}

impl Term {
    fn matches(&self, token: &str) -> bool {
        if self.prefix {
            token.starts_with(&self.text)
        } else {
            token == self.text
        }
    }
}

/// The distinct tokens of a query. The last one is a prefix when the query ends in it, i.e.
/// while the user is still typing that word; a trailing space or a stop word ends it.
pub(crate) fn query_terms(q: &str) -> Vec<Term> {
    let tokens = tokenize(q);
    let last_is_prefix = tokens.last().is_some_and(|t| t.end == q.len());
    let mut out: Vec<Term> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let prefix = last_is_prefix && i + 1 == tokens.len();
        if prefix {
            // The prefix matches everything the same exact token would.
            out.retain(|o| o.text != t.term);
        } else if out.iter().any(|o| o.text == t.term) {
            continue;
        }
        out.push(Term {
            text: t.term.clone(),
            prefix,
        });
    }
    out
}

/// Checks what SQL cannot: limits, the kind's name, values the `|a|b|` columns cannot hold.
pub(crate) fn validate(q: &SearchQuery, terms: &[Term]) -> Result<(), RegistryError> {
    if q.limit == 0 || q.limit > MAX_LIMIT {
        return Err(RegistryError::Invalid(format!(
            "search limit must be between 1 and {MAX_LIMIT}, got {}",
            q.limit
        )));
    }
    if let Some(k) = &q.kind
        && k != FEATURE
        && ObjectKind::parse(k).is_none()
    {
        return Err(RegistryError::Invalid(format!(
            "unknown kind `{k}`; use one of {}",
            KIND_ORDER.join(", ")
        )));
    }
    for (what, v) in [("tag", &q.tag), ("entity", &q.entity)] {
        if v.as_deref().is_some_and(|v| v.contains('|')) {
            return Err(RegistryError::Invalid(format!(
                "a search {what} cannot contain `|`"
            )));
        }
    }
    if terms.len() > MAX_QUERY_TERMS {
        return Err(RegistryError::Invalid(format!(
            "the search has {} distinct words; use at most {MAX_QUERY_TERMS}",
            terms.len()
        )));
    }
    Ok(())
}

/// The FTS5 MATCH expression: any term, the prefix one as `"tok"*`. Terms are `[a-z0-9]+`,
/// so the quotes never need escaping; they keep FTS5 from reading a term as an operator.
pub(crate) fn fts5_match(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|t| {
            if t.prefix {
                format!("\"{}\"*", t.text)
            } else {
                format!("\"{}\"", t.text)
            }
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The PostgreSQL tsquery: any term, the prefix one as `tok:*`.
pub(crate) fn tsquery(terms: &[Term]) -> String {
    terms
        .iter()
        .map(|t| {
            if t.prefix {
                format!("{}:*", t.text)
            } else {
                t.text.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

// ---------------------------------------------------------------------------------------
// Ranking

/// A document the database returned: it contains a query token (or, for an empty query,
/// passes the filters); `selected` says whether it passes the filters.
pub(crate) struct Candidate {
    pub doc: Doc,
    pub selected: bool,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn tie_break(a: &Doc, b: &Doc) -> std::cmp::Ordering {
    kind_rank(&a.kind)
        .cmp(&kind_rank(&b.kind))
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| a.id.cmp(&b.id))
}

/// Scores and orders the selected candidates (see the module docs). `total_docs` is the size
/// of the whole catalog. Without terms, every selected candidate scores 0.
pub(crate) fn rank(
    mut candidates: Vec<Candidate>,
    terms: &[Term],
    total_docs: u64,
) -> Vec<(Doc, f64)> {
    if terms.is_empty() {
        let mut out: Vec<(Doc, f64)> = candidates
            .into_iter()
            .filter(|c| c.selected)
            .map(|c| (c.doc, 0.0))
            .collect();
        out.sort_by(|a, b| tie_break(&a.0, &b.0));
        return out;
    }

    // A fixed order, so the floating-point sums below add up in the same order whatever
    // order the database returned rows in.
    candidates.sort_by(|a, b| a.doc.id.cmp(&b.doc.id));

    struct Stats {
        doc: Doc,
        selected: bool,
        /// Per term, the weighted count of matching tokens.
        tf: Vec<f64>,
        length: f64,
    }
    let mut stats = Vec::with_capacity(candidates.len());
    // Which terms each distinct token matches: catalogs repeat the same few hundred words,
    // so each is expanded and compared once per query rather than once per occurrence.
    let mut matched: HashMap<String, Vec<bool>> = HashMap::new();
    for c in candidates {
        let mut tf = vec![0.0; terms.len()];
        let mut length = 0.0;
        for (field, weight) in c.doc.fields().iter().zip(FIELD_WEIGHTS) {
            // A word counts once per term however many of its synonyms match (`30 days`
            // matches `month*` as `month` and as `monthly`), and synonyms do not lengthen
            // the document: they are how it was found, not more text.
            let tokens = tokenize(field);
            length += weight * tokens.len() as f64;
            for t in tokens {
                let hits = matched.entry(t.term).or_insert_with_key(|token| {
                    let forms = expand(token);
                    terms
                        .iter()
                        .map(|term| forms.iter().any(|f| term.matches(f)))
                        .collect()
                });
                for (j, hit) in hits.iter().enumerate() {
                    if *hit {
                        tf[j] += weight;
                    }
                }
            }
        }
        // The index may predate a tokenizer change; what counts is what matches now.
        if tf.iter().any(|x| *x > 0.0) {
            stats.push(Stats {
                doc: c.doc,
                selected: c.selected,
                tf,
                length,
            });
        }
    }
    if stats.is_empty() {
        return Vec::new();
    }

    let n = (total_docs as f64).max(stats.len() as f64);
    let idf: Vec<f64> = (0..terms.len())
        .map(|j| {
            let df = stats.iter().filter(|s| s.tf[j] > 0.0).count() as f64;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        })
        .collect();
    let avg_length = (stats.iter().map(|s| s.length).sum::<f64>() / stats.len() as f64).max(1.0);

    let mut out: Vec<(Doc, f64)> = stats
        .into_iter()
        .filter(|s| s.selected)
        .map(|s| {
            let norm = K1 * (1.0 - B + B * s.length / avg_length);
            let score: f64 =
                s.tf.iter()
                    .zip(&idf)
                    .filter(|(tf, _)| **tf > 0.0)
                    .map(|(tf, idf)| idf * tf * (K1 + 1.0) / (tf + norm))
                    .sum();
            (s.doc, round4(score))
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| tie_break(&a.0, &b.0)));
    out
}

/// The hit of a ranked document, with highlights of its name, description and tags.
pub(crate) fn hit(doc: Doc, score: f64, terms: &[Term]) -> SearchHit {
    let mut highlights = Vec::new();
    if !terms.is_empty() {
        let tags = doc.tags.join(", ");
        for (field, text) in [
            ("name", doc.name.as_str()),
            ("description", doc.description.as_str()),
            ("tags", tags.as_str()),
        ] {
            if let Some(fragment) = highlight(text, terms) {
                highlights.push(Highlight {
                    field: field.into(),
                    fragment,
                });
            }
        }
    }
    doc.hit(score, highlights)
}

fn escape_html(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `text` with the words that match a query term marked, HTML-escaped; None if nothing
/// matches. A word matches when one of its tokens, or a synonym of it (which is how the
/// document was found), matches a term. Long text is cut to a window around the first match.
pub(crate) fn highlight(text: &str, terms: &[Term]) -> Option<String> {
    let spans: Vec<(usize, usize)> = tokenize(text)
        .into_iter()
        .filter(|t| {
            expand(&t.term)
                .iter()
                .any(|x| terms.iter().any(|q| q.matches(x)))
        })
        .map(|t| (t.start, t.end))
        .collect();
    let first = spans.first()?.0;
    let (mut from, mut to) = (0, text.len());
    if text.len() > FRAGMENT_LEN {
        // Cut at spaces so no word is split, and never inside the first match.
        from = floor_boundary(text, first.saturating_sub(FRAGMENT_LEAD));
        if from > 0 {
            from = text[from..first]
                .find(char::is_whitespace)
                .map_or(first, |i| from + i + 1);
        }
        to = floor_boundary(text, from + FRAGMENT_LEN);
        if to < text.len()
            && let Some(i) = text[from..to].rfind(char::is_whitespace)
            && from + i > first
        {
            to = from + i;
        }
    }
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = from;
    for (s, e) in spans {
        if s < from || e > to {
            continue;
        }
        escape_html(&text[at..s], &mut out);
        out.push_str("<mark>");
        escape_html(&text[s..e], &mut out);
        out.push_str("</mark>");
        at = e;
    }
    escape_html(&text[at..to], &mut out);
    if to < text.len() {
        out.push('…');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        tokenize(text).into_iter().map(|t| t.term).collect()
    }

    #[test]
    fn splits_lowercases_and_drops_stop_words() {
        assert_eq!(terms("monetary_90d"), ["monetary", "90d"]);
        assert_eq!(
            terms("Total spend in the last 30 days"),
            ["total", "spend", "30d"]
        );
        assert_eq!(terms("cartValue"), ["cart", "valu"]);
        assert_eq!(terms("café"), ["caf"]);
        assert!(terms("the of and").is_empty());
    }

    #[test]
    fn durations_have_one_spelling() {
        assert_eq!(terms("30d 30 days 30-day"), ["30d", "30d", "30d"]);
        assert_eq!(terms("1w 1 week 7 days"), ["7d", "7d", "7d"]);
        assert_eq!(terms("24h 36 hours 90s 5m"), ["1d", "36h", "90s", "5m"]);
        assert_eq!(terms("3 months 1 year"), ["90d", "365d"]);
        // Not a unit: both words stay.
        assert_eq!(terms("2 orders"), ["2", "order"]);
        assert_eq!(terms("99999999999999999999d"), ["99999999999999999999d"]);
    }

    #[test]
    fn stems_lightly() {
        for (word, stemmed) in [
            ("orders", "order"),
            ("ordered", "order"),
            ("spending", "spend"),
            ("categories", "category"),
            ("matches", "match"),
            ("processes", "process"),
            ("status", "status"),
            ("shipped", "ship"),
            ("billing", "bill"),
            ("string", "string"),
            ("speed", "speed"),
            ("values", "valu"),
            ("value", "valu"),
            ("days", "day"),
            ("bus", "bus"),
            ("float64", "float64"),
        ] {
            assert_eq!(stem(word), stemmed, "{word}");
        }
    }

    #[test]
    fn synonyms_are_symmetric_and_stemmed() {
        assert_eq!(expand("30d"), ["30d", "month", "monthly"]);
        assert_eq!(expand("month"), ["month", "30d", "monthly"]);
        assert_eq!(expand("revenu"), ["revenu", "monetary", "spend"]);
        assert_eq!(expand("order"), ["order"]);
    }

    #[test]
    fn every_token_is_one_database_token() {
        let text = "Ünïcode <b>HTML</b> 30 days user@example.com 1e5 0x1F a.b-c_d sha256:abcdef";
        for t in tokenize(text) {
            assert!(
                t.term
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{t:?}"
            );
            assert!(!t.term.is_empty() && t.term.len() <= MAX_TOKEN_LEN);
        }
        assert!(
            terms(&"ab".repeat(40)).is_empty(),
            "long tokens are dropped"
        );
    }

    #[test]
    fn the_last_word_is_a_prefix_while_typed() {
        let q = query_terms("spend mon");
        assert_eq!(
            q,
            [
                Term {
                    text: "spend".into(),
                    prefix: false
                },
                Term {
                    text: "mon".into(),
                    prefix: true
                }
            ]
        );
        assert!(query_terms("spend mon ").iter().all(|t| !t.prefix));
        assert!(query_terms("spend the").iter().all(|t| !t.prefix));
        assert_eq!(query_terms("order orders").len(), 1);
        assert!(query_terms("").is_empty());
        assert_eq!(fts5_match(&q), "\"spend\" OR \"mon\"*");
        assert_eq!(tsquery(&q), "spend | mon:*");
    }

    #[test]
    fn highlights_escape_and_mark() {
        let q = query_terms("vip month");
        assert_eq!(
            highlight("Flag for <b>VIP</b> & partners, 30 days", &q).as_deref(),
            Some(
                "Flag for &lt;b&gt;<mark>VIP</mark>&lt;/b&gt; &amp; partners, <mark>30 days</mark>"
            )
        );
        assert_eq!(highlight("nothing here", &q), None);
        let long = format!("{} vip {}", "word ".repeat(40), "tail ".repeat(60));
        let h = highlight(&long, &q).expect("matches");
        assert!(h.starts_with('…') && h.ends_with('…'), "{h}");
        assert!(h.contains("<mark>vip</mark>"), "{h}");
        assert!(h.len() < long.len());
    }
}
