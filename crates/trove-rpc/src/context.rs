//! The request context that travels with every message as flattened `_context_*` keys.
//!
//! Fields follow oslo.context's `to_dict()` plus Trove's additions. Unknown keys are kept
//! in [`RpcContext::extra`] so that a context round-trips through this process unchanged.
//! The Keystone token is a secret: `Debug` never prints it.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Prefix of the flattened context keys in an inner message.
pub const CONTEXT_PREFIX: &str = "_context_";

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn default_true() -> bool {
    true
}

/// A request context (oslo.context `RequestContext` + Trove's `TroveContext` fields).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RpcContext {
    /// User id.
    #[serde(default)]
    pub user: Option<String>,
    /// Project (tenant) id.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Legacy alias of `project_id` (Trove sends both).
    #[serde(default)]
    pub project: Option<String>,
    /// Domain id.
    #[serde(default)]
    pub domain: Option<String>,
    /// User's domain id.
    #[serde(default)]
    pub user_domain: Option<String>,
    /// Project's domain id.
    #[serde(default)]
    pub project_domain: Option<String>,
    /// System scope, if any.
    #[serde(default)]
    pub system_scope: Option<String>,
    /// Whether the caller is an administrator.
    #[serde(default, deserialize_with = "null_default")]
    pub is_admin: bool,
    /// Read-only request.
    #[serde(default, deserialize_with = "null_default")]
    pub read_only: bool,
    /// Show deleted rows.
    #[serde(default, deserialize_with = "null_default")]
    pub show_deleted: bool,
    /// The user's Keystone token (secret; used by the guest to reach Swift).
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Request id (`req-<uuid>`).
    #[serde(default)]
    pub request_id: Option<String>,
    /// Global request id across services.
    #[serde(default)]
    pub global_request_id: Option<String>,
    /// Resource id, if any.
    #[serde(default)]
    pub resource_uuid: Option<String>,
    /// Role names.
    #[serde(default, deserialize_with = "null_default")]
    pub roles: Vec<String>,
    /// `"user project domain user_domain project_domain"` identity string.
    #[serde(default)]
    pub user_identity: Option<String>,
    /// Whether the project is the admin project.
    #[serde(default = "default_true", deserialize_with = "null_default_true")]
    pub is_admin_project: bool,
    /// Pagination limit (Trove).
    #[serde(default)]
    pub limit: Option<Value>,
    /// Pagination marker (Trove).
    #[serde(default)]
    pub marker: Option<Value>,
    /// Keystone service catalog (Trove).
    #[serde(default)]
    pub service_catalog: Option<Value>,
    /// Serialized notification attached to the request (Trove), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trove_notification: Option<Value>,
    /// Set by the conductor from `csz-instance-id` when it decrypts a guest's context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Any other context keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn null_default_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

impl std::fmt::Debug for RpcContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcContext")
            .field("user", &self.user)
            .field("project_id", &self.project_id)
            .field("request_id", &self.request_id)
            .field("roles", &self.roles)
            .field("is_admin", &self.is_admin)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl RpcContext {
    /// An empty context with a fresh `req-<uuid>` request id (for internal requests).
    pub fn new_internal() -> Self {
        Self {
            request_id: Some(format!("req-{}", uuid::Uuid::new_v4())),
            is_admin_project: true,
            ..Default::default()
        }
    }

    /// The context as a JSON object (oslo.context `to_dict()`).
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// Builds a context from a JSON object; missing fields take defaults.
    pub fn from_map(map: Map<String, Value>) -> Result<Self, crate::RpcError> {
        serde_json::from_value(Value::Object(map))
            .map_err(|e| crate::RpcError::InvalidMessage(format!("bad context: {e}")))
    }
}

/// Adds `_context_<key>` entries for every key of `ctx` to `msg`.
pub fn flatten_into(msg: &mut Map<String, Value>, ctx: Map<String, Value>) {
    for (k, v) in ctx {
        msg.insert(format!("{CONTEXT_PREFIX}{k}"), v);
    }
}

/// Removes every `_context_<key>` entry from `msg` and returns them without the prefix.
pub fn extract_from(msg: &mut Map<String, Value>) -> Map<String, Value> {
    let keys: Vec<String> = msg
        .keys()
        .filter(|k| k.starts_with(CONTEXT_PREFIX))
        .cloned()
        .collect();
    let mut out = Map::new();
    for k in keys {
        if let Some(v) = msg.remove(&k) {
            out.insert(k[CONTEXT_PREFIX.len()..].to_owned(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_unknown_keys_and_hides_token() {
        let raw = json!({"user": "u", "project_id": "p", "auth_token": "gAAAA-secret", "roles": null,
                         "is_admin": false, "request_id": "req-1", "custom": 5});
        let ctx = RpcContext::from_map(raw.as_object().unwrap().clone()).unwrap();
        assert_eq!(ctx.extra.get("custom"), Some(&json!(5)));
        assert!(ctx.roles.is_empty());
        assert!(!format!("{ctx:?}").contains("secret"));
        let m = ctx.to_map();
        assert_eq!(m["auth_token"], json!("gAAAA-secret"));
        assert_eq!(m["custom"], json!(5));
    }

    #[test]
    fn flatten_and_extract() {
        let mut msg = Map::new();
        msg.insert("method".into(), json!("m"));
        let mut c = Map::new();
        c.insert("user".into(), json!("u"));
        c.insert("csz-instance-id".into(), json!("i"));
        flatten_into(&mut msg, c.clone());
        assert_eq!(msg["_context_csz-instance-id"], json!("i"));
        assert_eq!(extract_from(&mut msg), c);
        assert_eq!(msg.len(), 1);
    }
}
