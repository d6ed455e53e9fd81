//! The OpenAPI document, written out by hand and kept honest by a test that checks every
//! route the router serves is described here (see `tests` below).

use serde_json::{Value, json};

fn op(summary: &str, params: Value, body: Option<Value>, ok: &str) -> Value {
    let mut o = json!({
        "summary": summary,
        "parameters": params,
        "responses": {
            "200": {"description": ok, "content": {"application/json": {}}},
            "4XX": {"description": "the request was wrong", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        }
    });
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    o
}

fn path_param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": desc, "schema": {"type": "string"}})
}

/// The catalog, versions, lineage, rollbacks, fleet and jobs endpoints (one `json!` would
/// exceed the macro recursion limit).
fn catalog_paths(kinds: &Value) -> Value {
    json!({
            "/v1/{kind}/{name}/versions": {"get": op("Every version of an object (author, time, message), each with its diff against the one before, classified compatible or breaking",
                json!([{"name": "kind", "in": "path", "required": true, "schema": kinds}, path_param("name", "object name")]),
                None, "versions, oldest first")},
            "/v1/{kind}/{name}/diff": {"get": op("What changed between two versions, classified compatible or breaking",
                json!([{"name": "kind", "in": "path", "required": true, "schema": kinds}, path_param("name", "object name"),
                    {"name": "from", "in": "query", "required": true, "schema": {"type": "string"}, "description": "3 or v3"},
                    {"name": "to", "in": "query", "required": true, "schema": {"type": "string"}}]),
                None, "the diff")},
            "/v1/catalog/search": {"get": op("Ranked full-text search over features and definitions: names, descriptions and tags, the last word as a prefix; matches highlighted with <mark>",
                json!([{"name": "q", "in": "query", "schema": {"type": "string"}},
                    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["feature", "feature_view", "on_demand_view", "feature_service", "source", "transform", "entity", "request_source"]}},
                    {"name": "tag", "in": "query", "schema": {"type": "string"}},
                    {"name": "owner", "in": "query", "schema": {"type": "string"}},
                    {"name": "entity", "in": "query", "schema": {"type": "string"}},
                    {"name": "type", "in": "query", "schema": {"type": "string"}},
                    {"name": "view", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}]),
                None, "total, and one page of hits with scores and highlights")},
            "/v1/features/{view}/{feature}": {"get": op("A feature's page: definition, versions that touched it, services (pins, rollbacks), lineage, freshness, quality",
                json!([path_param("view", "feature view or on-demand view"), path_param("feature", "feature name")]),
                None, "the feature's page")},
            "/v1/changelog": {"get": op("Every registry mutation (apply, delete, publish, rollback), newest first: who, when, what changed",
                json!([{"name": "kind", "in": "query", "schema": {"type": "string"}},
                    {"name": "name", "in": "query", "schema": {"type": "string"}},
                    {"name": "actor", "in": "query", "schema": {"type": "string"}},
                    {"name": "action", "in": "query", "schema": {"type": "string"}},
                    {"name": "before", "in": "query", "schema": {"type": "integer"}, "description": "entries with a smaller sequence number (paging)"},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}]),
                None, "entries and the `before` of the next page")},
            "/v1/lineage/{kind}/{name}": {"get": op("Lineage: source → transform → view → snapshot → service, as JSON or Graphviz DOT",
                json!([path_param("kind", "source, entity, request_source, transform, feature_view, on_demand_view, feature_service, snapshot"), path_param("name", "node name (a snapshot is view/version)"),
                    {"name": "direction", "in": "query", "schema": {"type": "string", "enum": ["upstream", "downstream", "both"], "default": "both"}},
                    {"name": "depth", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "dot"], "default": "json"}}]),
                None, "the subgraph")},
            "/v1/impact/{kind}/{name}": {"get": op("What a change to this reaches: feature views, on-demand views, services, snapshots",
                json!([path_param("kind", "node kind"), path_param("name", "node name")]),
                None, "the affected objects")},
            "/v1/edges": {"get": op("The fleet: every edge that reported (region, address, manifest and snapshot versions it serves, last heartbeat), up or down", json!([]), None, "edges")},
            "/v1/edges/heartbeat": {"post": op("An edge reports itself (edges do this each poll interval when given --control-plane)",
                json!([]),
                Some(json!({"content": {"application/json": {"schema": {"type": "object",
                    "required": ["id", "region", "address", "views", "ready", "interval_ms", "started_at"],
                    "properties": {"id": {"type": "string"}, "region": {"type": "string"}, "address": {"type": "string"},
                        "manifest_seq": {"type": ["integer", "null"]}, "views": {"type": "object", "additionalProperties": {"type": "integer"}},
                        "ready": {"type": "boolean"}, "interval_ms": {"type": "integer"}, "started_at": {"type": "string"},
                        "serving": {"type": "object", "description": "per view since the previous report", "additionalProperties": {"type": "object",
                            "properties": {"lookups": {"type": "integer"}, "not_found": {"type": "integer"}, "errors": {"type": "integer"},
                                "p50_ms": {"type": ["number", "null"]}, "p99_ms": {"type": ["number", "null"]}}}},
                        "serving_window_ms": {"type": "integer"}}}}}})),
                "recorded (204)")},
            "/metrics": {"get": {"summary": "Prometheus text: job runs and durations of this replica, each view's freshness",
                "responses": {"200": {"description": "metrics", "content": {"text/plain": {}}}}}},
            "/v1/jobs": {
                "get": op("Materialization runs, newest first: status (queued, running, succeeded, failed, rejected by a quality rule, cancelled), trigger, attempt, times, rows, snapshot, error",
                    json!([{"name": "view", "in": "query", "schema": {"type": "string"}},
                        {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "rejected", "cancelled"]}},
                        {"name": "before", "in": "query", "schema": {"type": "integer"}, "description": "runs with a smaller id (paging)"},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}]),
                    None, "runs"),
                "post": op("Queue a run of a view for the scheduler's worker (202); 409 while one of the view is queued or running",
                    json!([]),
                    Some(json!({"content": {"application/json": {"schema": {"type": "object", "required": ["view"], "properties": {
                        "view": {"type": "string"}, "author": {"type": "string"}}}}}})),
                    "the queued run")},
            "/v1/jobs/{id}": {"get": op("One run", json!([path_param("id", "run id")]), None, "the run")},
            "/v1/jobs/{id}/cancel": {"post": op("Cancel a run: a queued one at once, a running one at its next lease renewal; 409 when it already finished",
                json!([path_param("id", "run id"), {"name": "author", "in": "query", "schema": {"type": "string"}}]), None, "the run")},
            "/v1/rollbacks": {"get": op("Services currently rolled back, and to which snapshots", json!([]), None, "rollbacks")},
            "/v1/rollbacks/{service}": {
                "post": op("Point a service back at earlier snapshots: every view as published version `to_version` served it, or one `view` to one `snapshot`; edges follow at their next poll",
                    json!([path_param("service", "feature service")]),
                    Some(json!({"content": {"application/json": {"schema": {"type": "object", "properties": {
                        "to_version": {"type": "integer"}, "view": {"type": "string"}, "snapshot": {"type": "integer"},
                        "message": {"type": "string"}, "author": {"type": "string"}}}}}})),
                    "the bindings and the manifest that serves them"),
                "delete": op("Undo a service's rollback: serve the live snapshots again",
                    json!([path_param("service", "feature service")]), None, "the manifest that serves it")},
            "/v1/snapshots/{view}/{version}": {"get": op("One snapshot's record and lineage: input files (size, ETag), rows, definition version, transform digests; `view` may be an edge's slot (customer_rfm#41)",
                json!([path_param("view", "view or slot"), {"name": "version", "in": "path", "required": true, "schema": {"type": "integer"}}]),
                None, "the snapshot record")}
    })
}

/// The control plane's OpenAPI 3.1 description.
pub fn openapi() -> Value {
    let kinds = json!({"type": "string", "enum": ["entities", "sources", "request-sources", "transforms", "feature-views", "on-demand-views", "feature-services"]});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "fstore control plane", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/healthz": {"get": op("Liveness and registry backend", json!([]), None, "alive")},
            "/openapi.json": {"get": op("This document", json!([]), None, "the OpenAPI document")},
            "/v1/apply": {"post": op(
                "Plan and apply a features.yaml (declarative: objects not in it are removed)",
                json!([{"name": "dry_run", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "force", "in": "query", "schema": {"type": "boolean"}, "description": "apply breaking changes that services still read"},
                    {"name": "message", "in": "query", "schema": {"type": "string"}},
                    {"name": "author", "in": "query", "schema": {"type": "string"}}]),
                Some(json!({"content": {
                    "application/yaml": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object", "properties": {
                        "yaml": {"type": "string"}, "definitions": {"type": "object"}, "dry_run": {"type": "boolean"},
                        "force": {"type": "boolean"}, "message": {"type": "string"}, "author": {"type": "string"}}}}
                }})),
                "the plan, and whether it was applied")},
            "/v1/materialize": {"post": op(
                "Materialize feature views and publish one manifest",
                json!([]),
                Some(json!({"content": {"application/json": {"schema": {"type": "object", "properties": {
                    "views": {"type": "array", "items": {"type": "string"}},
                    "mode": {"type": "string", "enum": ["full", "auto"], "default": "full",
                        "description": "auto: publish only what changed since each view's last run (a delta) where its live snapshot allows"}}}}}})),
                "one report per view (mode full, delta, compacted or unchanged; rows read and rejected; the quarantine file)")},
            "/v1/push": {"post": op(
                "Append rows to a source in the offline store and publish the views reading it incrementally; bad rows are rejected with reasons, good ones kept",
                json!([]),
                Some(json!({"content": {"application/json": {"schema": {"type": "object", "required": ["source", "rows"], "properties": {
                    "source": {"type": "string"},
                    "rows": {"type": "array", "items": {"type": "object"}, "maxItems": fstore_offline::MAX_PUSH_ROWS}}}}}})),
                "rows accepted and rejected (index and reason), files written, and each view's run (published, unchanged, pending or failed); 400 no_valid_rows when no row could be used")},
            "/v1/historical": {"post": op(
                "Build a training set: each entity row gets every feature as of its timestamp (point-in-time correct; rows kept in order, unmatched ones with nulls)",
                json!([]),
                Some(json!({"content": {"application/json": {"schema": {"type": "object", "required": ["entities", "out"], "properties": {
                    "entities": {"type": "string", "description": "Parquet or CSV entity rows: a local path or object-store URL"},
                    "feature_service": {"type": "string"},
                    "features": {"type": "array", "items": {"type": "string"}},
                    "out": {"type": "string", "description": "where to write the training set (.csv for CSV, else Parquet)"},
                    "full_feature_names": {"type": "boolean"},
                    "timestamp_column": {"type": "string", "default": "event_timestamp"}}}}}})),
                "rows, columns, size and per-view match counts")},
            "/v1/snapshots": {"get": op(
                "Published snapshots (newest first) and the live manifest",
                json!([{"name": "view", "in": "query", "schema": {"type": "string"}}]),
                None, "snapshots")},
            "/v1/versions": {"get": op(
                "Published versions object storage keeps (newest first: seq, created_at, each view's snapshot version, which is live) and the retention setting",
                json!([]), None, "versions")},
            "/v1/versions/{seq}": {"get": op(
                "One published version's manifest; 404 when it was pruned or never published",
                json!([{"name": "seq", "in": "path", "required": true, "description": "manifest sequence number", "schema": {"type": "integer", "minimum": 1}}]),
                None, "the manifest")},
            "/v1/{kind}": {"get": op("List registry objects of a kind",
                json!([{"name": "kind", "in": "path", "required": true, "schema": kinds}]), None, "objects")},
            "/v1/{kind}/{name}": {
                "get": op("Get one registry object",
                    json!([{"name": "kind", "in": "path", "required": true, "schema": kinds}, path_param("name", "object name")]),
                    None, "the object with its version"),
                "delete": op("Delete one definition; 409 `in_use` with its dependents while anything depends on it, unless force=true (which deletes them too)",
                    json!([{"name": "kind", "in": "path", "required": true, "schema": kinds}, path_param("name", "object name"),
                        {"name": "force", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "author", "in": "query", "schema": {"type": "string"}}]),
                    None, "what was deleted")}
        },
        "components": {"schemas": {"Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}
        }}}
    });
    doc["components"]["securitySchemes"] = json!({"token": {"type": "http", "scheme": "bearer",
        "description": "An fstore token (`fst_<id>_<secret>`, `fstore token create`). Every route but /healthz, /openapi.json, /metrics and /v1/auth/public-key needs one when authentication is on; 401 without a valid one, 403 with `details.missing` naming the permission lacking."}});
    doc["security"] = json!([{"token": []}]);
    for more in [catalog_paths(&kinds), quality_paths(), access_paths()] {
        if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), more) {
            paths.extend(more);
        }
    }
    doc
}

/// Tokens, roles, the audit log.
fn access_paths() -> Value {
    let name = || path_param("name", "role name");
    json!({
        "/v1/auth/public-key": {"get": op("The Ed25519 public key (hex) edges verify the signed access document with; public",
            json!([]), None, "public_key and key_id")},
        "/v1/whoami": {"get": op("The caller: actor, token id, role and its permissions", json!([]), None, "the caller")},
        "/v1/tokens": {
            "get": op("Every token (never its secret) with status active, expired or revoked; manage_access", json!([]), None, "tokens"),
            "post": op("Create a token; the token is in this response only (201); manage_access",
                json!([]),
                Some(json!({"content": {"application/json": {"schema": {"type": "object", "required": ["name", "role"], "properties": {
                    "name": {"type": "string"}, "role": {"type": "string"},
                    "expires_in": {"type": "string", "description": "30d, 12h…; none: no expiry"}}}}}})),
                "the token record and `token`")},
        "/v1/tokens/{id}": {"delete": op("Revoke a token by id or name: refused here at once, at edges within one poll interval; manage_access",
            json!([path_param("id", "token id or name")]), None, "the revoked token")},
        "/v1/roles": {"get": op("Built-in and custom roles with their permissions; manage_access", json!([]), None, "roles")},
        "/v1/roles/{name}": {
            "put": op("Create (201) or replace a custom role; manage_access",
                json!([name()]),
                Some(json!({"content": {"application/json": {"schema": {"type": "object", "required": ["permissions"], "properties": {
                    "description": {"type": "string"},
                    "permissions": {"type": "array", "items": {"type": "object", "required": ["actions"], "properties": {
                        "actions": {"type": "array", "items": {"type": "string", "enum": ["describe", "create", "update", "delete", "read_online", "read_offline", "write_online", "materialize", "read_pii", "read_audit", "manage_access", "erase", "report"]}},
                        "kinds": {"type": "array", "items": {"type": "string"}},
                        "names": {"type": "array", "items": {"type": "string"}, "description": "patterns, `*` any run of characters"},
                        "tags": {"type": "array", "items": {"type": "string"}, "description": "tags the resource must all carry"}}}}}}}}})),
                "the role"),
            "delete": op("Delete a custom role (204); 409 while an active token has it; manage_access", json!([name()]), None, "deleted")},
        "/v1/audit": {"get": op("Audit records oldest first (registry changes, token and role changes, PII reads at edges), each with its place in the hash chain; read_audit",
            json!([{"name": "after", "in": "query", "schema": {"type": "integer"}},
                {"name": "actor", "in": "query", "schema": {"type": "string"}},
                {"name": "action", "in": "query", "schema": {"type": "string"}},
                {"name": "resource", "in": "query", "schema": {"type": "string"}, "description": "a resource, or a prefix ending in /"},
                {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}}]),
            None, "records and next_after")},
        "/v1/audit/verify": {"get": op("Walk the hash chain: ok, or the first record that does not chain and why; read_audit", json!([]), None, "the verification")},
        "/v1/erase": {"post": op("Right to erasure: remove one entity's rows from every file source of the views keyed by it, re-materialize those views in full and publish, record the request; erase",
            json!([]),
            Some(json!({"content": {"application/json": {"schema": {"type": "object", "required": ["entity"], "properties": {
                "entity": {"type": "object", "description": "one join key and its value, e.g. {\"customer_id\": 123}"}}}}}})),
            "files and rows removed, sources not erasable here, the new snapshots")},
        "/v1/retention": {"post": op("Delete every source's date partitions older than its retention now (the control plane also does it daily); erase",
            json!([]), None, "per source: cutoff, files deleted, undated files kept")},
        "/v1/compliance/report": {"get": op("Every PII feature: mask, owner, source and retention, services, tokens that read it masked or unmasked, audited reads in the period, and erasures; read_audit",
            json!([{"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}}]),
            None, "the report")},
        "/v1/audit/batch": {"post": op("An edge's audit records (each with its own origin_seq; resent ones are recorded once); report",
            json!([]),
            Some(json!({"content": {"application/json": {"schema": {"type": "object", "required": ["edge", "events"]}}}})),
            "how many were recorded")}
    })
}

/// Quality reports, alerts and serving signals.
fn quality_paths() -> Value {
    json!({
        "/v1/quality/{view}": {"get": op("A view's latest quality report (or one version's): per-feature statistics (count, null rate, min, max, mean, stddev, quantiles, histogram, distinct, top values), change against the previous published version, every rule's result with observed value and sample offending keys, drift figures, and recent history; 404 before any run was evaluated",
            json!([path_param("view", "feature view (or slot)"), {"name": "version", "in": "query", "schema": {"type": "integer"}}]),
            None, "the report")},
        "/v1/alerts": {"get": op("Alerts newest first (quality checks, drift, serving anomalies), one per open problem, with occurrences and every webhook delivery attempt",
            json!([{"name": "status", "in": "query", "schema": {"type": "string", "enum": ["open", "resolved"]}},
                {"name": "view", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}]),
            None, "alerts")},
        "/v1/overview": {"get": op("The store at a glance: each view's live snapshot, age and freshness against its schedule (fresh, late, manual, never, on demand), the edges serving it, the fleet, open alerts and the latest job runs", json!([]), None, "the overview")},
        "/v1/serving": {"get": op("What edges report serving per view over the last minutes: lookups per second, not-found and error rates, p50/p99 latency, and every report",
            json!([{"name": "view", "in": "query", "schema": {"type": "string"}},
                {"name": "minutes", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 60, "default": 15}}]),
            None, "per-view serving figures")}
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented() {
        let src = include_str!("api.rs");
        let doc = super::openapi();
        let paths = doc["paths"].as_object().expect("paths");
        for line in src.lines() {
            if let Some(rest) = line.trim().strip_prefix(".route(\"") {
                let path = rest.split('"').next().expect("path");
                assert!(
                    paths.contains_key(path),
                    "route {path} is missing from openapi.json"
                );
            }
        }
        assert_eq!(paths.len(), 43);
    }
}
