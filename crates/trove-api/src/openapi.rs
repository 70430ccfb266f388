//! `GET /openapi.json`: an OpenAPI 3.1 description of the API generated from the route
//! table ([`crate::routes::v1_routes`]), unauthenticated.
//!
//! It lists every path and method with its summary, the path parameters, the
//! authentication header, whether the call is implemented yet, and Trove's fault body as
//! the error response. Request and response schemas are not described (api.md is the
//! reference for them).

use axum::Json;
use serde_json::{json, Map, Value};

use crate::routes::v1_routes;

fn params_of(path: &str) -> Vec<Value> {
    let mut out = vec![json!({
        "name": "project", "in": "path", "required": true,
        "schema": {"type": "string"}, "description": "Project of the token"
    })];
    for seg in path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            out.push(
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}),
            );
        }
    }
    out
}

/// The OpenAPI document.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for route in v1_routes() {
        let op = json!({
            "summary": route.summary,
            "operationId": format!("{} {}", route.method, route.path),
            "parameters": params_of(route.path),
            "security": [{"keystone": []}],
            "x-implemented": route.implemented,
            "responses": {
                "default": {"description": "Trove fault", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Fault"}}}},
                "2XX": {"description": "Success (see api.md for the body)"},
            },
        });
        let full = format!("/v1.0/{{project}}{}", route.path);
        if let Value::Object(m) = paths.entry(full).or_insert_with(|| json!({})) {
            m.insert(route.method.to_ascii_lowercase(), op);
        }
    }
    paths.insert(
        "/".into(),
        json!({"get": {"summary": "List API versions", "operationId": "versions", "security": [],
                        "responses": {"200": {"description": "Version document"}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Trove-rs Database as a Service API",
            "version": "1.0",
            "description": "The OpenStack Trove v1 API, compatible with python-troveclient 8.11.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"keystone": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
            "schemas": {"Fault": {
                "type": "object",
                "description": "One key naming the fault (badRequest, itemNotFound, ...).",
                "minProperties": 1, "maxProperties": 1,
                "additionalProperties": {"type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}},
            }},
        },
    })
}

/// Serves the document.
pub async fn document() -> Json<Value> {
    Json(openapi())
}
