//! Error types: [`RpcError`] for callers of the transport and typed APIs, [`RemoteError`]
//! for failures raised by a remote endpoint (oslo.messaging's `failure` JSON).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Module name oslo.messaging uses for its dispatcher errors.
pub const OSLO_DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";
/// Module name of Trove's exceptions (the one module Trove's clients re-raise as is).
pub const TROVE_EXCEPTION_MODULE: &str = "trove.common.exception";

/// An error raised by the remote endpoint, as carried in a reply's `failure` field.
///
/// On the wire it is the JSON text of
/// `{"class", "module", "message", "tb", "args", "kwargs"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{class}: {message}")]
pub struct RemoteError {
    /// Exception class name, e.g. `NoSuchMethod`.
    pub class: String,
    /// Module of the exception class, e.g. `oslo_messaging.rpc.dispatcher`.
    pub module: String,
    /// Human readable message (`str(exception)` in Python).
    pub message: String,
    /// Traceback lines, if the remote side sent any.
    #[serde(default, rename = "tb")]
    pub traceback: Vec<String>,
}

impl RemoteError {
    /// A remote error with the given class, module and message.
    pub fn new(
        class: impl Into<String>,
        module: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            class: class.into(),
            module: module.into(),
            message: message.into(),
            traceback: Vec::new(),
        }
    }

    /// oslo.messaging's `NoSuchMethod`: the endpoint is compatible but lacks the method.
    pub fn no_such_method(method: &str) -> Self {
        Self::new(
            "NoSuchMethod",
            OSLO_DISPATCHER_MODULE,
            format!("Endpoint does not support RPC method {method}"),
        )
    }

    /// oslo.messaging's `UnsupportedVersion`: no endpoint accepts the message's version.
    pub fn unsupported_version(version: &str, method: &str) -> Self {
        Self::new(
            "UnsupportedVersion",
            OSLO_DISPATCHER_MODULE,
            format!("Endpoint does not support RPC version {version}. Attempted method: {method}"),
        )
    }

    /// Python's `TypeError`, as raised when a method gets unexpected or missing arguments.
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::new("TypeError", "builtins", message)
    }

    /// A message that could not be decrypted and was therefore not executed.
    pub fn undecryptable() -> Self {
        Self::new(
            "DecryptionError",
            TROVE_EXCEPTION_MODULE,
            "The RPC message could not be decrypted and was rejected.",
        )
    }

    /// A Trove exception (module `trove.common.exception`) with the given class name.
    pub fn trove(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(class, TROVE_EXCEPTION_MODULE, message)
    }

    /// The `failure` field of a reply: JSON text as oslo.messaging writes it.
    pub fn to_failure_json(&self) -> String {
        let v = serde_json::json!({
            "class": self.class,
            "module": self.module,
            "message": self.message,
            "tb": self.traceback,
            "args": [self.message],
            "kwargs": {},
        });
        crate::message::python_json(&v)
    }

    /// Parses a reply's `failure` field. Unknown shapes become a `RemoteError` of class
    /// `RemoteError` holding the raw text, so a malformed failure is still an error.
    pub fn from_failure(failure: &Value) -> Self {
        let parsed = match failure {
            Value::String(s) => serde_json::from_str::<Value>(s).ok(),
            other => Some(other.clone()),
        };
        let Some(Value::Object(obj)) = parsed else {
            return Self::new(
                "RemoteError",
                "oslo_messaging.rpc.client",
                failure.to_string(),
            );
        };
        let s = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let traceback = obj
            .get("tb")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            class: s("class"),
            module: s("module"),
            message: s("message"),
            traceback,
        }
    }
}

/// Why an RPC operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// No reply arrived in time (the server is absent, slow, or the broker dropped the call).
    #[error("timed out after {seconds} s waiting for a reply to {method} on topic {topic}")]
    Timeout {
        /// Topic the call was sent to.
        topic: String,
        /// Method called.
        method: String,
        /// Timeout that expired, in seconds.
        seconds: f64,
    },
    /// The remote endpoint raised an error.
    #[error("remote error: {0}")]
    Remote(RemoteError),
    /// The broker cannot be reached (after waiting for reconnection where applicable).
    #[error("message broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused an operation for lack of permission (AMQP 403 ACCESS_REFUSED).
    #[error("access refused by the message broker: {0}")]
    AccessRefused(String),
    /// The broker did not accept a published message (nack or channel closed).
    #[error("message broker did not accept the message: {0}")]
    NotAccepted(String),
    /// A message could not be decrypted with the expected key (its content is never logged).
    #[error("message could not be decrypted: {0}")]
    Decrypt(String),
    /// JSON (de)serialization failed.
    #[error("serialization error: {0}")]
    Serialization(String),
    /// A received message does not follow the wire format.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// Invalid parameters (e.g. an unparsable transport URL).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The transport or server was shut down.
    #[error("transport is shut down")]
    Shutdown,
}

impl From<serde_json::Error> for RpcError {
    fn from(e: serde_json::Error) -> Self {
        RpcError::Serialization(e.to_string())
    }
}

impl RpcError {
    /// True for [`RpcError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, RpcError::Timeout { .. })
    }

    /// The remote error, if this is [`RpcError::Remote`].
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            RpcError::Remote(r) => Some(r),
            _ => None,
        }
    }
}
