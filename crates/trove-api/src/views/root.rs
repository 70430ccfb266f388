//! Root user of an instance (api.md §8).

use serde_json::{json, Value};

/// `GET /instances/{id}/root`: `{"rootEnabled": bool}`.
pub fn root_enabled(enabled: bool) -> Value {
    json!({ "rootEnabled": enabled })
}

/// `POST /instances/{id}/root`: `{"user": {"name", "password"}}`.
pub fn root_created(name: &str, password: Option<&str>) -> Value {
    json!({ "user": { "name": name, "password": password } })
}
