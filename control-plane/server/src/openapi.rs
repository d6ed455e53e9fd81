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

/// The control plane's OpenAPI 3.1 description.
pub fn openapi() -> Value {
    let kinds = json!({"type": "string", "enum": ["entities", "sources", "request-sources", "transforms", "feature-views", "on-demand-views", "feature-services"]});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "fstore control plane", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/healthz": {"get": op("Liveness and registry backend", json!([]), None, "alive")},
            "/openapi.json": {"get": op("This document", json!([]), None, "the OpenAPI document")},
            "/v1/apply": {"post": op(
                "Plan and apply a features.yaml (declarative: objects not in it are removed)",
                json!([{"name": "dry_run", "in": "query", "schema": {"type": "boolean"}}]),
                Some(json!({"content": {
                    "application/yaml": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object", "properties": {
                        "yaml": {"type": "string"}, "definitions": {"type": "object"}, "dry_run": {"type": "boolean"}}}}
                }})),
                "the plan, and whether it was applied")},
            "/v1/materialize": {"post": op(
                "Materialize feature views and publish one manifest",
                json!([]),
                Some(json!({"content": {"application/json": {"schema": {"type": "object", "properties": {
                    "views": {"type": "array", "items": {"type": "string"}}}}}}})),
                "one report per view")},
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
            "/v1/{kind}/{name}": {"get": op("Get one registry object",
                json!([{"name": "kind", "in": "path", "required": true, "schema": kinds}, path_param("name", "object name")]),
                None, "the object with its version")}
        },
        "components": {"schemas": {"Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}
        }}}
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
        assert_eq!(paths.len(), 10);
    }
}
