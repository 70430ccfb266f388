//! `GET /`: the version document.

use serde_json::{json, Value};

/// The `versions` document; `base` is the public endpoint or the request's
/// `scheme://host`, without a trailing slash.
pub fn versions(base: &str) -> Value {
    json!({"versions": [version(base)]})
}

/// The one version entry.
pub fn version(base: &str) -> Value {
    json!({
        "id": "v1.0",
        "status": "CURRENT",
        "updated": "2012-08-01T00:00:00Z",
        "links": [{"href": format!("{}/v1.0/", base.trim_end_matches('/')), "rel": "self"}],
    })
}
