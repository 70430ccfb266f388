//! The server side shared by every transport: endpoints, dispatch rules and the
//! per-listener runtime (duplicate suppression, bounded concurrency, replies).
//!
//! A transport hands each received inner message to a [`MessageHandler`]. The usual
//! handler is [`RpcEndpoint`], which applies oslo.messaging's dispatch rules (spec §5.5):
//! * missing `version` means `1.0`; the endpoint accepts the message when the majors
//!   are equal and its minor is >= the message's; a `namespace` must match the endpoint's;
//! * no compatible endpoint -> `UnsupportedVersion`; compatible but no such method (or a
//!   method starting with `_`) -> `NoSuchMethod`;
//! * the serializer decrypts the context and arguments first; a message that does not
//!   decrypt is rejected (logged without content) and never reaches the [`Dispatcher`].

use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::FutureExt as _;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::context::{extract_from, RpcContext};
use crate::message::{build_reply, Target, UniqueIdCache, Version};
use crate::serializer::Serializer;
use crate::{RemoteError, RpcError};

/// Handles one received inner message and returns the (already serialized) result.
/// Transports call this; most code implements [`Dispatcher`] and wraps it in [`RpcEndpoint`].
#[async_trait]
pub trait MessageHandler: Send + Sync {
    /// Handles `message` (inner message without transport keys such as `_msg_id`).
    async fn handle(&self, message: Map<String, Value>) -> Result<Value, RemoteError>;
}

/// A service's manager: receives decrypted, version-checked requests.
#[async_trait]
pub trait Dispatcher: Send + Sync {
    /// Runs `method` with `args`. Unknown methods must return
    /// [`RemoteError::no_such_method`]; [`decode_args`] turns `args` into a typed struct.
    async fn dispatch(
        &self,
        ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError>;
}

/// Decodes a method's arguments into a typed struct; failures become Python-style
/// `TypeError`s as a Trove manager would raise for wrong arguments.
pub fn decode_args<T: DeserializeOwned>(
    method: &str,
    args: Map<String, Value>,
) -> Result<T, RemoteError> {
    serde_json::from_value(Value::Object(args))
        .map_err(|e| RemoteError::type_error(format!("{method}() got invalid arguments: {e}")))
}

/// Turns a typed return value into the JSON result of a call.
pub fn encode_result<T: serde::Serialize>(value: &T) -> Result<Value, RemoteError> {
    serde_json::to_value(value).map_err(|e| {
        RemoteError::new(
            "ValueError",
            "builtins",
            format!("unserializable result: {e}"),
        )
    })
}

/// oslo.messaging's RPC dispatcher for one endpoint: version/namespace checks, the
/// serializer, then the [`Dispatcher`].
pub struct RpcEndpoint {
    version: Version,
    namespace: Option<String>,
    serializer: Arc<dyn Serializer>,
    dispatcher: Arc<dyn Dispatcher>,
}

impl RpcEndpoint {
    /// An endpoint at API `version` (e.g. guest `1.3`, taskmanager/conductor `1.0`).
    pub fn new(
        version: Version,
        serializer: Arc<dyn Serializer>,
        dispatcher: Arc<dyn Dispatcher>,
    ) -> Self {
        Self {
            version,
            namespace: None,
            serializer,
            dispatcher,
        }
    }

    /// Sets the endpoint's namespace (Trove never uses one).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    async fn decode(
        &self,
        raw_ctx: Map<String, Value>,
        args: Map<String, Value>,
    ) -> Result<(RpcContext, Map<String, Value>), RpcError> {
        let ctx_map = self.serializer.deserialize_context(raw_ctx.clone()).await?;
        let mut out = Map::new();
        for (k, v) in args {
            out.insert(k, self.serializer.deserialize_entity(&raw_ctx, v).await?);
        }
        Ok((RpcContext::from_map(ctx_map)?, out))
    }
}

#[async_trait]
impl MessageHandler for RpcEndpoint {
    async fn handle(&self, mut message: Map<String, Value>) -> Result<Value, RemoteError> {
        let method = match message.get("method") {
            Some(Value::String(m)) => m.clone(),
            _ => {
                return Err(RemoteError::new(
                    "InvalidMessage",
                    "trove_rpc",
                    "message has no method",
                ))
            }
        };
        let version_text = message
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("1.0")
            .to_owned();
        let namespace = message
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let compatible = namespace == self.namespace
            && Version::parse(&version_text)
                .map(|v| self.version.accepts(&v))
                .unwrap_or(false);
        if !compatible {
            return Err(RemoteError::unsupported_version(&version_text, &method));
        }
        if method.starts_with('_') {
            return Err(RemoteError::no_such_method(&method));
        }
        let args = match message.remove("args") {
            Some(Value::Object(a)) => a,
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(RemoteError::type_error("args is not an object")),
        };
        let raw_ctx = extract_from(&mut message);
        let (ctx, args) = match self.decode(raw_ctx, args).await {
            Ok(x) => x,
            Err(RpcError::Decrypt(why)) => {
                tracing::warn!(rpc.method = %method, reason = %why, "rejected an RPC message that does not decrypt");
                return Err(RemoteError::undecryptable());
            }
            Err(e) => return Err(RemoteError::new("ValueError", "builtins", e.to_string())),
        };
        let span = tracing::info_span!("rpc", rpc.method = %method, request_id = ctx.request_id.as_deref().unwrap_or(""));
        let result = self
            .dispatcher
            .dispatch(ctx, &method, args)
            .instrument(span)
            .await?;
        self.serializer
            .serialize_entity(result)
            .map_err(|e| RemoteError::new("ValueError", "builtins", e.to_string()))
    }
}

/// How many messages one listener processes at once (oslo's executor pool default).
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

/// Per-listener machinery shared by the transports: drops duplicates by `_unique_id`,
/// runs handlers with bounded concurrency and sends replies to calls.
pub(crate) struct ServerRuntime {
    handler: Arc<dyn MessageHandler>,
    /// Last 16 `_unique_id`s seen by this listener.
    dedup: Mutex<UniqueIdCache>,
    /// In-flight handler tasks, waited for on graceful stop.
    pub(crate) tracker: TaskTracker,
    /// Bounds concurrent handlers; a message is taken (and acked) only with a permit.
    permits: Arc<Semaphore>,
    pub(crate) target: Target,
}

impl ServerRuntime {
    pub(crate) fn new(target: Target, handler: Arc<dyn MessageHandler>) -> Self {
        Self {
            handler,
            dedup: Mutex::new(UniqueIdCache::default()),
            tracker: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENCY)),
            target,
        }
    }

    /// Waits until a handler slot is free (before acknowledging the next message).
    pub(crate) async fn acquire(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed")
    }

    /// Starts handling `msg`; `reply(reply_q, reply_message)` is awaited for calls.
    pub(crate) fn submit<F, Fut>(
        &self,
        permit: tokio::sync::OwnedSemaphorePermit,
        mut msg: Map<String, Value>,
        reply: F,
    ) where
        F: FnOnce(String, Map<String, Value>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Some(Value::String(uid)) = msg.get("_unique_id") {
            if !self.dedup.lock().expect("dedup lock").check_and_insert(uid) {
                tracing::debug!(topic = %self.target, unique_id = %uid, "dropping duplicate message");
                return;
            }
        }
        let msg_id = msg
            .remove("_msg_id")
            .and_then(|v| v.as_str().map(str::to_owned));
        let reply_q = msg
            .remove("_reply_q")
            .and_then(|v| v.as_str().map(str::to_owned));
        msg.remove("_unique_id");
        msg.remove("_timeout");
        let handler = self.handler.clone();
        let topic = self.target.to_string();
        self.tracker.spawn(async move {
            let method = msg.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
            // A panicking handler must not leave the caller waiting for its timeout.
            let outcome = std::panic::AssertUnwindSafe(handler.handle(msg)).catch_unwind().await.unwrap_or_else(|_| {
                tracing::error!(topic = %topic, rpc.method = %method, "RPC handler panicked");
                Err(RemoteError::new("RuntimeError", "builtins", format!("the server failed while handling {method}")))
            });
            drop(permit);
            match (msg_id, reply_q) {
                (Some(id), Some(q)) => reply(q, build_reply(&id, &outcome)).await,
                _ => {
                    if let Err(e) = outcome {
                        tracing::warn!(topic = %topic, rpc.method = %method, error = %e, "cast failed");
                    }
                }
            }
        });
    }
}

/// A running RPC server. [`ServerHandle::stop`] stops consuming, waits for in-flight
/// requests (and their replies) and returns unprocessed messages to the queue.
/// Dropping the handle stops consuming without waiting.
pub struct ServerHandle {
    cancel: CancellationToken,
    done: Option<tokio::task::JoinHandle<()>>,
    target: Target,
}

impl ServerHandle {
    pub(crate) fn new(
        target: Target,
        cancel: CancellationToken,
        done: tokio::task::JoinHandle<()>,
    ) -> Self {
        Self {
            cancel,
            done: Some(done),
            target,
        }
    }

    /// The target this server consumes.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Graceful stop (see the type's doc).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::build_request;
    use crate::serializer::{PlainSerializer, SecureSerializer};
    use serde_json::json;

    struct Echo;
    #[async_trait]
    impl Dispatcher for Echo {
        async fn dispatch(
            &self,
            ctx: RpcContext,
            method: &str,
            args: Map<String, Value>,
        ) -> Result<Value, RemoteError> {
            match method {
                "echo" => Ok(json!({"args": args, "user": ctx.user})),
                _ => Err(RemoteError::no_such_method(method)),
            }
        }
    }

    fn endpoint(v: Version, key: Option<&str>) -> RpcEndpoint {
        RpcEndpoint::new(
            v,
            Arc::new(SecureSerializer::new(key.map(Into::into))),
            Arc::new(Echo),
        )
    }

    fn req(method: &str, version: Option<&str>) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx.insert("user".into(), json!("u1"));
        let mut args = Map::new();
        args.insert("x".into(), json!(1));
        build_request(
            method,
            args,
            version.map(|v| Version::parse(v).unwrap()).as_ref(),
            None,
            ctx,
        )
    }

    #[tokio::test]
    async fn dispatch_rules() {
        let ep = endpoint(Version::new(1, 3), None);
        assert_eq!(
            ep.handle(req("echo", Some("1.1"))).await.unwrap(),
            json!({"args": {"x": 1}, "user": "u1"})
        );
        assert!(
            ep.handle(req("echo", None)).await.is_ok(),
            "missing version means 1.0"
        );
        let e = ep.handle(req("echo", Some("1.4"))).await.unwrap_err();
        assert_eq!(e.class, "UnsupportedVersion");
        assert_eq!(
            e.message,
            "Endpoint does not support RPC version 1.4. Attempted method: echo"
        );
        assert_eq!(
            ep.handle(req("echo", Some("2.0"))).await.unwrap_err().class,
            "UnsupportedVersion"
        );
        assert_eq!(
            ep.handle(req("nope", Some("1.0"))).await.unwrap_err().class,
            "NoSuchMethod"
        );
        assert_eq!(
            ep.handle(req("_private", Some("1.0")))
                .await
                .unwrap_err()
                .class,
            "NoSuchMethod"
        );
        // Version is checked before the method exists.
        assert_eq!(
            ep.handle(req("nope", Some("1.9"))).await.unwrap_err().class,
            "UnsupportedVersion"
        );
        let mut ns = req("echo", Some("1.0"));
        ns.insert("namespace".into(), json!("other"));
        assert_eq!(ep.handle(ns).await.unwrap_err().class, "UnsupportedVersion");
    }

    #[tokio::test]
    async fn encrypted_messages_are_decrypted_and_bad_ones_rejected() {
        let key = "k-123";
        let ep = endpoint(Version::new(1, 0), Some(key));
        let s = SecureSerializer::new(Some(key.into()));
        let mut args = Map::new();
        args.insert("x".into(), s.serialize_entity(json!(1)).unwrap());
        let mut ctx = Map::new();
        ctx.insert("user".into(), json!("u1"));
        let m = build_request(
            "echo",
            args,
            Some(&Version::new(1, 0)),
            None,
            s.serialize_context(ctx).unwrap(),
        );
        let out = ep.handle(m).await.unwrap();
        let plain = s.deserialize_entity(&Map::new(), out).await.unwrap();
        assert_eq!(plain, json!({"args": {"x": 1}, "user": "u1"}));
        // Clear text to a keyed endpoint is rejected, never executed.
        let e = ep.handle(req("echo", Some("1.0"))).await.unwrap_err();
        assert_eq!(e.class, "DecryptionError");
    }

    #[tokio::test]
    async fn plain_serializer_endpoint() {
        let ep = RpcEndpoint::new(
            Version::new(1, 0),
            Arc::new(PlainSerializer),
            Arc::new(Echo),
        );
        assert!(ep.handle(req("echo", Some("1.0"))).await.is_ok());
    }

    #[test]
    fn decode_args_type_error() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct A {
            instance_id: String,
        }
        let e = decode_args::<A>("restart", Map::new()).unwrap_err();
        assert_eq!(e.class, "TypeError");
    }
}
