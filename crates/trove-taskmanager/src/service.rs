//! Serving the `taskmanager` topic: [`TaskManagerServer`] and [`run`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use trove_config::Config;
use trove_rpc::api::taskmanager::TASKMANAGER_VERSION;
use trove_rpc::{RpcEndpoint, RpcError, SecureSerializer, ServerHandle, Target, Transport};

use crate::manager::{TaskDispatcher, TaskManager};

/// The RPC target: topic `taskmanager_queue`, server `host`.
pub fn target(config: &Config) -> Target {
    Target::server(
        config.default.taskmanager_queue.clone(),
        config.default.host.to_string(),
    )
}

/// The key of the API-to-taskmanager channel: `taskmanager_rpc_encr_key` when
/// `enable_secure_rpc_messaging` is on.
pub fn taskmanager_key(config: &Config) -> Option<String> {
    config.default.enable_secure_rpc_messaging.then(|| {
        config
            .default
            .taskmanager_rpc_encr_key
            .expose_secret()
            .to_owned()
    })
}

/// A running taskmanager: its RPC server and its recovery task.
pub struct TaskManagerServer {
    tm: Arc<TaskManager>,
    handle: ServerHandle,
    recovery: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TaskManagerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskManagerServer")
            .field("target", self.handle.target())
            .field("taskmanager", &self.tm)
            .finish()
    }
}

impl TaskManagerServer {
    /// Starts consuming `target` on `transport` and the recovery task (first pass at once,
    /// then every `recovery_period`).
    pub async fn start(
        tm: Arc<TaskManager>,
        transport: &dyn Transport,
        target: Target,
        recovery_period: Duration,
    ) -> Result<Self, RpcError> {
        let endpoint = RpcEndpoint::new(
            TASKMANAGER_VERSION,
            Arc::new(SecureSerializer::new(taskmanager_key(&tm.config))),
            Arc::new(TaskDispatcher(tm.clone())),
        );
        let handle = transport.serve(&target, Arc::new(endpoint)).await?;
        tracing::info!(topic = %target.topic, "taskmanager consuming");
        let recovery = tokio::spawn(tm.clone().recovery_loop(recovery_period));
        Ok(Self {
            tm,
            handle,
            recovery,
        })
    }

    /// The taskmanager.
    pub fn taskmanager(&self) -> &Arc<TaskManager> {
        &self.tm
    }

    /// Stops consuming (messages not taken stay queued for another taskmanager), lets
    /// running workflows end (those waiting for a guest stop waiting and stay for
    /// recovery), and stops the recovery task.
    pub async fn stop(self) {
        self.handle.stop().await;
        self.tm.shutdown().await;
        let _ = self.recovery.await;
        tracing::info!("taskmanager stopped");
    }
}

/// How often a taskmanager looks for work a stopped one left: a quarter of
/// `usage_timeout`, between 5 s and 60 s, so a stale create is noticed soon after its
/// timeout.
pub fn recovery_period(settings: &crate::Settings) -> Duration {
    (settings.usage_timeout / 4).clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// Serves `config`'s taskmanager target with `tm` until `shutdown`, then stops.
pub async fn run(
    tm: Arc<TaskManager>,
    transport: &dyn Transport,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RpcError> {
    let target = target(&tm.config);
    let period = recovery_period(&tm.settings);
    let server = TaskManagerServer::start(tm, transport, target, period).await?;
    shutdown.await;
    server.stop().await;
    Ok(())
}
