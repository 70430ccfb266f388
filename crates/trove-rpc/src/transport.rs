//! The [`Transport`] trait every service uses, and [`RpcClient`], the typed-message layer
//! (context, serializer, version) on top of it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::context::RpcContext;
use crate::message::{build_request, Target, Version};
use crate::serializer::Serializer;
use crate::server::{MessageHandler, ServerHandle};
use crate::RpcError;

/// Moves inner messages between processes: AMQP (oslo.messaging wire format) in
/// production, in-process channels in the all-in-one mode and unit tests.
///
/// Messages given to `call`/`cast` are inner requests as built by
/// [`crate::message::build_request`] (already serialized/encrypted); the transport adds
/// `_unique_id` (and `_msg_id`, `_reply_q`, `_timeout` for calls).
#[async_trait]
pub trait Transport: Send + Sync {
    /// Sends a request and waits up to `timeout` for its reply. Returns the raw (still
    /// serialized) result, [`RpcError::Remote`] for a failure, [`RpcError::Timeout`] when no
    /// reply came in time. Never waits longer than `timeout` (plus a little slack).
    async fn call(
        &self,
        target: &Target,
        message: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError>;

    /// Sends a request without waiting for a result. `Ok` means the broker accepted it.
    async fn cast(&self, target: &Target, message: Map<String, Value>) -> Result<(), RpcError>;

    /// Starts a server consuming `target.topic` and, with a server name, also
    /// `target.topic.server`. Several servers on one topic share the work.
    async fn serve(
        &self,
        target: &Target,
        handler: Arc<dyn MessageHandler>,
    ) -> Result<ServerHandle, RpcError>;

    /// Declares the queues (and bindings) a server on `topic`/`server` would consume, so
    /// casts sent before that server starts are kept (Trove does this before `prepare`).
    async fn declare_topic_queues(&self, topic: &str, server: Option<&str>)
        -> Result<(), RpcError>;

    /// Deletes the queues of `topic` (and `topic.server`), e.g. a guest's queues when its
    /// instance is deleted. Missing queues are not an error.
    async fn delete_topic_queues(&self, topic: &str, server: Option<&str>) -> Result<(), RpcError>;
}

/// Serializes any value into the `args` object of a request.
pub fn to_args<T: Serialize + ?Sized>(args: &T) -> Result<Map<String, Value>, RpcError> {
    match serde_json::to_value(args)? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(RpcError::Serialization(format!(
            "arguments must be an object, got {other}"
        ))),
    }
}

/// A client of one RPC API (oslo.messaging's `RPCClient`): target, version, serializer.
#[derive(Clone)]
pub struct RpcClient {
    transport: Arc<dyn Transport>,
    target: Target,
    version: Option<Version>,
    serializer: Arc<dyn Serializer>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("target", &self.target)
            .field("version", &self.version)
            .finish()
    }
}

impl RpcClient {
    /// A client sending to `target` at `version` through `serializer`.
    pub fn new(
        transport: Arc<dyn Transport>,
        target: Target,
        version: Option<Version>,
        serializer: Arc<dyn Serializer>,
    ) -> Self {
        Self {
            transport,
            target,
            version,
            serializer,
        }
    }

    /// The same client sending a different message version (oslo's `prepare(version=..)`).
    pub fn with_version(&self, version: Version) -> Self {
        Self {
            version: Some(version),
            ..self.clone()
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The transport.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    fn build(
        &self,
        ctx: &RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Map<String, Value>, RpcError> {
        let mut enc = Map::new();
        for (k, v) in args {
            enc.insert(k, self.serializer.serialize_entity(v)?);
        }
        let ctx = self.serializer.serialize_context(ctx.to_map())?;
        Ok(build_request(method, enc, self.version.as_ref(), None, ctx))
    }

    /// Calls `method` and waits up to `timeout` for the (deserialized) result.
    pub async fn call(
        &self,
        ctx: &RpcContext,
        method: &str,
        args: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let msg = self.build(ctx, method, args)?;
        let raw = self.transport.call(&self.target, msg, timeout).await?;
        self.serializer.deserialize_entity(&Map::new(), raw).await
    }

    /// Casts `method` (fire and forget).
    pub async fn cast(
        &self,
        ctx: &RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<(), RpcError> {
        let msg = self.build(ctx, method, args)?;
        self.transport.cast(&self.target, msg).await
    }
}
