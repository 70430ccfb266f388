//! Serving the conductor topic: [`ConductorServer`], [`start`] and [`run`].
//!
//! The server consumes `conductor_queue` (default `trove-conductor`) and
//! `conductor_queue.<host>` on the control exchange, at API version 1.0. Several
//! conductors (processes or hosts) on one topic are competing consumers of the plain topic
//! queue: each message goes to one of them, and the database's stale filter keeps them
//! consistent. Inside one process the transport runs up to 64 messages at once.
//!
//! Decryption is trove-rpc's [`ConductorHostSerializer`], behind a guard that drops any
//! `instance_id` a clear-text context brings along, so `RpcContext::instance_id` reaching
//! the [`Conductor`] always means "decrypted with that instance's key". A message that does
//! not decrypt, or whose `csz-instance-id` names no instance with a key, is rejected before
//! the conductor sees it and logged without its content.
//!
//! Not here: configuration loading, signals and process set-up (the `trove-conductor`
//! binary does those).

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tracing::Instrument;
use trove_config::Config;
use trove_db::Db;
use trove_rpc::api::conductor::CONDUCTOR_VERSION;
use trove_rpc::serializer::INSTANCE_ID_TAG;
use trove_rpc::{
    CachingKeyLookup, ConductorHostSerializer, MessageHandler, RemoteError, RpcEndpoint, RpcError,
    Serializer, ServerHandle, Target, Transport,
};

use crate::error::ConductorError;
use crate::keys::DbKeyLookup;
use crate::manager::Conductor;

impl Conductor {
    /// A conductor for `config` on `db`: instance keys come from `instances.encrypted_key`
    /// decrypted with `inst_rpc_key_encr_key`, with Trove's cache of the 10 most recently
    /// used keys.
    pub fn from_config(config: &Config, db: Db) -> Self {
        let lookup = DbKeyLookup::new(db.clone(), config.default.inst_rpc_key_encr_key.clone());
        let keys = CachingKeyLookup::new(Arc::new(lookup), CachingKeyLookup::DEFAULT_CAPACITY);
        Conductor::new(db, Arc::new(keys))
    }

    /// The message handler to serve: version 1.0 endpoint, per-instance decryption, the
    /// conductor as dispatcher, and counting of every finished message.
    pub fn handler(self: &Arc<Self>) -> Arc<dyn MessageHandler> {
        let serializer = TagOnlyInstanceId(ConductorHostSerializer::new(self.keys().clone()));
        let endpoint = RpcEndpoint::new(CONDUCTOR_VERSION, Arc::new(serializer), self.clone());
        Arc::new(CountingHandler {
            endpoint,
            conductor: self.clone(),
        })
    }
}

/// The RPC target of the conductor: topic `conductor_queue`, server `host`.
pub fn target(config: &Config) -> Target {
    Target::server(
        config.default.conductor_queue.clone(),
        config.default.host.to_string(),
    )
}

/// Only the conductor serializer may set the context's `instance_id` (from the
/// `csz-instance-id` tag, after decrypting); a clear context cannot claim one.
struct TagOnlyInstanceId(ConductorHostSerializer);

#[async_trait]
impl Serializer for TagOnlyInstanceId {
    fn serialize_entity(&self, entity: Value) -> Result<Value, RpcError> {
        self.0.serialize_entity(entity)
    }
    fn serialize_context(&self, ctx: Map<String, Value>) -> Result<Map<String, Value>, RpcError> {
        self.0.serialize_context(ctx)
    }
    async fn deserialize_entity(
        &self,
        raw_ctx: &Map<String, Value>,
        entity: Value,
    ) -> Result<Value, RpcError> {
        self.0.deserialize_entity(raw_ctx, entity).await
    }
    async fn deserialize_context(
        &self,
        mut ctx: Map<String, Value>,
    ) -> Result<Map<String, Value>, RpcError> {
        if !ctx.contains_key(INSTANCE_ID_TAG) {
            ctx.remove("instance_id");
        }
        self.0.deserialize_context(ctx).await
    }
}

/// Counts every message the endpoint finishes (see [`crate::ConductorStats`]).
struct CountingHandler {
    endpoint: RpcEndpoint,
    conductor: Arc<Conductor>,
}

#[async_trait]
impl MessageHandler for CountingHandler {
    async fn handle(&self, message: Map<String, Value>) -> Result<Value, RemoteError> {
        // The claimed sender, so a rejection logged by the endpoint names the instance.
        let tag = message
            .get(&format!("_context_{INSTANCE_ID_TAG}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let span = tracing::info_span!("conductor", sender.instance_id = %tag);
        let result = self.endpoint.handle(message).instrument(span).await;
        self.conductor.count_finished(&result);
        result
    }
}

/// A running conductor RPC server.
pub struct ConductorServer {
    conductor: Arc<Conductor>,
    /// The transport's server; stopping it stops consuming and waits for in-flight work.
    handle: ServerHandle,
}

impl std::fmt::Debug for ConductorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConductorServer")
            .field("target", self.handle.target())
            .field("conductor", &self.conductor)
            .finish()
    }
}

impl ConductorServer {
    /// Starts consuming `target` on `transport` with `conductor`. Returns once the server
    /// consumes (its queues exist, so casts sent from now on are kept).
    pub async fn start(
        conductor: Arc<Conductor>,
        transport: &dyn Transport,
        target: Target,
    ) -> Result<Self, ConductorError> {
        let handle = transport.serve(&target, conductor.handler()).await?;
        tracing::info!(topic = %target.topic, server = target.server.as_deref().unwrap_or(""), "conductor consuming");
        Ok(Self { conductor, handle })
    }

    /// The conductor (for its [`Conductor::stats`]).
    pub fn conductor(&self) -> &Arc<Conductor> {
        &self.conductor
    }

    /// The target consumed.
    pub fn target(&self) -> &Target {
        self.handle.target()
    }

    /// Graceful stop: no new messages are taken, messages in flight finish, messages
    /// received but not started go back to the queue.
    pub async fn stop(self) {
        let target = self.handle.target().clone();
        self.handle.stop().await;
        tracing::info!(topic = %target, stats = ?self.conductor.stats(), "conductor stopped");
    }
}

/// Starts a conductor for `config` on `db`, serving [`target`]`(config)` on `transport`.
pub async fn start(
    config: &Config,
    db: Db,
    transport: &dyn Transport,
) -> Result<ConductorServer, ConductorError> {
    let conductor = Arc::new(Conductor::from_config(config, db));
    ConductorServer::start(conductor, transport, target(config)).await
}

/// Runs a conductor until `shutdown` completes, then stops gracefully (stop consuming,
/// finish in-flight messages).
///
/// Errors only when the server cannot start (broker unreachable or refusing the queues);
/// failures of single messages are logged and counted, never fatal. Closing `db` and the
/// transport is left to the caller.
pub async fn run(
    config: &Config,
    db: Db,
    transport: Arc<dyn Transport>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ConductorError> {
    let server = start(config, db, transport.as_ref()).await?;
    shutdown.await;
    tracing::info!("conductor shutting down");
    server.stop().await;
    Ok(())
}
