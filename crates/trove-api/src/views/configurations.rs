//! Configuration groups (api.md §10.1): the list item, the detailed view, and the
//! entries of `GET /configurations/{id}/instances`.

use serde_json::{json, Map, Value};
use trove_db::{Configuration, Instance};

use super::timestamp;

/// Key fragments that mark a value as secret (compared without case); such values are
/// shown as `***`.
pub const SECRET_KEY_PARTS: &[&str] = &[
    "adminpass",
    "admin_pass",
    "password",
    "admin_password",
    "auth_token",
    "new_pass",
    "auth_password",
    "secret_uuid",
    "secret",
    "sys_pswd",
    "token",
    "configdrive",
    "chappassword",
    "encrypted_key",
    "private_key",
    "fernetkey",
    "sslkey",
    "passphrase",
];

/// Whether the value of parameter `key` must be masked.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_lowercase();
    SECRET_KEY_PARTS.iter().any(|p| k.contains(p))
}

/// Replaces the values of secret-looking keys with `***`.
pub fn mask_secrets(values: Map<String, Value>) -> Map<String, Value> {
    values
        .into_iter()
        .map(|(k, v)| {
            let v = if is_secret_key(&k) {
                Value::String("***".into())
            } else {
                v
            };
            (k, v)
        })
        .collect()
}

/// The datastore version a group is for, as the views name it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionNames {
    /// Datastore name.
    pub datastore_name: Option<String>,
    /// Version name.
    pub version_name: Option<String>,
    /// Version number (`version`, defaulting to the name).
    pub version_number: Option<String>,
}

fn ts(t: &Option<chrono::NaiveDateTime>) -> Value {
    t.as_ref().map(timestamp).map_or(Value::Null, Value::String)
}

/// A list item (`GET /configurations`), with `datastore_version_number` as the api-ref
/// shows it.
pub fn list_item(c: &Configuration, names: &VersionNames) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "created": ts(&c.created),
        "updated": ts(&c.updated),
        "datastore_version_id": c.datastore_version_id,
        "datastore_name": names.datastore_name,
        "datastore_version_name": names.version_name,
        "datastore_version_number": names.version_number,
    })
}

/// The detailed view (show, create): `values` are masked here.
pub fn detailed(
    c: &Configuration,
    names: &VersionNames,
    values: Map<String, Value>,
    instance_count: usize,
) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "values": Value::Object(mask_secrets(values)),
        "created": ts(&c.created),
        "updated": ts(&c.updated),
        "instance_count": instance_count,
        "datastore_name": names.datastore_name,
        "datastore_version_id": c.datastore_version_id,
        "datastore_version_name": names.version_name,
        "datastore_version_number": names.version_number,
    })
}

/// An instance using a group: `{"id", "name"}`.
pub fn instance_item(i: &Instance) -> Value {
    json!({ "id": i.id, "name": i.name })
}
