//! Typed RPC APIs of Trove's three services, with Trove's method and argument names
//! (spec §2-4). Each API is one request enum serialized as `{"method", "args"}`, used by
//! the client to send and by the server to decode (`*Request::decode`), plus a client
//! type that knows the topic, version, serializer and call/cast kind of every method.

pub mod conductor;
pub mod guest;
pub mod models;
pub mod taskmanager;

pub use conductor::{ConductorApi, ConductorRequest, UpdateBackupFields, CONDUCTOR_TOPIC};
pub use guest::{
    guest_topic, guest_version_cap, CallKind, GuestApi, GuestError, GuestRequest, GuestTimeouts,
    PrepareArgs,
};
pub use models::{DatabaseModel, UserModel};
pub use taskmanager::{CreateInstanceArgs, TaskManagerApi, TaskManagerRequest, TASKMANAGER_TOPIC};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{RemoteError, RpcError};

/// Splits a request enum value into its wire method name and arguments.
pub(crate) fn split<T: Serialize>(req: &T) -> Result<(String, Map<String, Value>), RpcError> {
    let v = serde_json::to_value(req)?;
    let method = v
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::Serialization("request without method".into()))?
        .to_owned();
    let args = match v.get("args") {
        Some(Value::Object(a)) => a.clone(),
        _ => Map::new(),
    };
    Ok((method, args))
}

/// Decodes `(method, args)` into a request enum: unknown method -> `NoSuchMethod`, bad
/// arguments -> `TypeError`, as a Trove manager would answer.
pub(crate) fn decode<T: DeserializeOwned>(
    method: &str,
    args: Map<String, Value>,
) -> Result<T, RemoteError> {
    let v = serde_json::json!({"method": method, "args": Value::Object(args)});
    serde_json::from_value(v).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("unknown variant") {
            RemoteError::no_such_method(method)
        } else {
            RemoteError::type_error(format!("{method}() got invalid arguments: {text}"))
        }
    })
}

/// Seconds since the Unix epoch (UTC) with microseconds, Trove's `sent` timestamps.
pub fn epoch_now() -> f64 {
    let now = chrono::Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_micros()) / 1e6
}
