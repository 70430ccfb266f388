//! [`TaskManager`]: the state every workflow shares, the RPC dispatcher of the
//! `taskmanager` topic, and the helpers the workflows have in common.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use trove_compute::{ComputeDriver, NetworkDriver, VolumeDriver};
use trove_config::Config;
use trove_db::{Db, DbError, Instance, TaskStatus};
use trove_rpc::admin::BrokerAdmin;
use trove_rpc::api::{GuestApi, TaskManagerRequest};
use trove_rpc::{Dispatcher, RemoteError, RpcContext, Transport};

use crate::error::{Result, TaskError};
use crate::settings::Settings;

/// The three drivers of one cloud.
#[derive(Debug, Clone)]
pub struct Drivers {
    /// Servers.
    pub compute: Arc<dyn ComputeDriver>,
    /// Data volumes.
    pub volumes: Arc<dyn VolumeDriver>,
    /// Ports and addresses.
    pub network: Arc<dyn NetworkDriver>,
}

/// The taskmanager: runs each request it receives as a background workflow.
pub struct TaskManager {
    pub(crate) db: Db,
    pub(crate) config: Arc<Config>,
    pub(crate) settings: Settings,
    pub(crate) drivers: Drivers,
    pub(crate) transport: Arc<dyn Transport>,
    /// Makes each guest its own RabbitMQ user (distributed mode); `None` when guests share
    /// the transport (all-in-one) or the operator gave no management access.
    pub(crate) broker: Option<BrokerAdmin>,
    pub(crate) tasks: TaskTracker,
    pub(crate) cancel: CancellationToken,
    /// Instances whose create runs in this taskmanager now: its recovery leaves them alone
    /// (the create times out by itself and says so).
    pub(crate) creating: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for TaskManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskManager")
            .field("drivers", &self.drivers)
            .field("running", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl TaskManager {
    /// A taskmanager for `config` on `db`, sending to guests over `transport`.
    pub fn new(
        config: Arc<Config>,
        db: Db,
        drivers: Drivers,
        transport: Arc<dyn Transport>,
        broker: Option<BrokerAdmin>,
    ) -> Arc<Self> {
        Arc::new(TaskManager {
            settings: Settings::from_config(&config),
            db,
            config,
            drivers,
            transport,
            broker,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            creating: std::sync::Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The drivers.
    pub fn drivers(&self) -> &Drivers {
        &self.drivers
    }

    /// Whether this taskmanager runs the create of instance `id` now.
    pub fn is_creating(&self, id: &str) -> bool {
        self.creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Workflows running now.
    pub fn running(&self) -> usize {
        self.tasks.len()
    }

    /// Stops accepting work and waits for the running workflows. Workflows that wait for a
    /// guest stop waiting at once; what they leave is picked up by [`TaskManager::recover`]
    /// of the next taskmanager.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Runs `request` to its end (tests and the dispatcher's background tasks).
    pub async fn run_request(self: &Arc<Self>, ctx: RpcContext, request: TaskManagerRequest) {
        use TaskManagerRequest as R;
        match request {
            R::CreateInstance(args) => self.create_instance(ctx, *args).await,
            R::DeleteInstance { instance_id } => self.delete_instance(ctx, &instance_id).await,
            R::Restart { instance_id } => self.restart(ctx, &instance_id).await,
            R::Reboot { instance_id } => self.reboot(ctx, &instance_id).await,
            R::ResizeVolume {
                new_size,
                instance_id,
            } => self.resize_volume(ctx, &instance_id, new_size).await,
            R::ResizeFlavor {
                instance_id,
                old_flavor,
                new_flavor,
            } => {
                self.resize_flavor(ctx, &instance_id, old_flavor, new_flavor)
                    .await
            }
            R::CreateBackup {
                backup_info,
                instance_id,
            } => self.create_backup(ctx, backup_info, &instance_id).await,
            R::DeleteBackup { backup_id } => self.delete_backup(ctx, &backup_id).await,
            R::DetachReplica { instance_id } => self.detach_replica(ctx, &instance_id).await,
            R::PromoteToReplicaSource { instance_id } => {
                self.promote_to_replica_source(ctx, &instance_id).await
            }
            R::EjectReplicaSource { instance_id } => {
                self.eject_replica_source(ctx, &instance_id).await
            }
            other => {
                tracing::error!(method = %other.method(), "this taskmanager does not run this workflow; request dropped");
            }
        }
    }

    /// A client of the guest of `inst`, with its per-instance key.
    pub(crate) fn guest(&self, inst: &Instance) -> Result<GuestApi> {
        let key = match inst.encrypted_key.as_deref().filter(|k| !k.is_empty()) {
            None => None,
            Some(k) => Some(
                trove_common::crypto::decrypt_instance_key(
                    k,
                    self.config.default.inst_rpc_key_encr_key.expose_secret(),
                )
                .map_err(|e| {
                    TaskError::Invalid(format!("the instance's RPC key cannot be decrypted: {e}"))
                })?,
            ),
        };
        Ok(GuestApi::new(
            self.transport.clone(),
            &inst.id,
            key,
            self.settings.guest_timeouts,
            self.settings.guest_version_cap,
        ))
    }

    /// The live instance `id`, or `None` (logged) when it is gone.
    pub(crate) async fn live_instance(&self, id: &str) -> Result<Option<Instance>> {
        match self.db.instance_get(id).await {
            Ok(i) => Ok(Some(i)),
            Err(DbError::NotFound { .. }) => {
                tracing::info!(instance.id = id, "instance no longer exists; nothing to do");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the task back to NONE after an action, unless the instance moved on
    /// (deleted, or another task took over).
    pub(crate) async fn finish_task(&self, id: &str, from: TaskStatus) {
        match self
            .db
            .instance_update_task(id, Some(from), TaskStatus::None)
            .await
        {
            Ok(()) | Err(DbError::NotFound { .. }) | Err(DbError::Conflict(_)) => {}
            Err(e) => tracing::error!(instance.id = id, error = %e, "cannot reset the task"),
        }
    }

    /// Records a fault a tenant reads in `trove show`.
    pub(crate) async fn record_fault(&self, id: &str, message: &str, details: &str) {
        if let Err(e) = self.db.instance_fault_upsert(id, message, details).await {
            tracing::error!(instance.id = id, error = %e, "cannot record the instance's fault");
        }
    }
}

/// Runs one step of a workflow and logs its duration with the instance id.
pub(crate) async fn step<T, F>(instance_id: &str, name: &'static str, fut: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let out = fut.await;
    let ms = started.elapsed().as_millis() as u64;
    match &out {
        Ok(_) => tracing::info!(
            instance.id = instance_id,
            step = name,
            duration_ms = ms,
            "step done"
        ),
        Err(e) => {
            tracing::warn!(instance.id = instance_id, step = name, duration_ms = ms, error = %e, "step failed")
        }
    }
    out
}

/// The dispatcher of the `taskmanager` topic: every method is a cast, so each request is
/// decoded, started as a background workflow and acknowledged at once.
pub(crate) struct TaskDispatcher(pub(crate) Arc<TaskManager>);

#[async_trait]
impl Dispatcher for TaskDispatcher {
    async fn dispatch(
        &self,
        ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        let request = TaskManagerRequest::decode(method, args)?;
        let tm = self.0.clone();
        if tm.cancel.is_cancelled() {
            return Err(RemoteError::new(
                "TroveError",
                "trove.common.exception",
                "taskmanager is shutting down",
            ));
        }
        let span = tracing::info_span!("taskmanager", method = %method, request_id = ctx.request_id.as_deref().unwrap_or(""));
        let tasks = tm.tasks.clone();
        tasks.spawn(async move { tm.run_request(ctx, request).await }.instrument(span));
        Ok(Value::Null)
    }
}
