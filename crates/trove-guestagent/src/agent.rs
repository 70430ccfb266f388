//! The guest agent's serving loop: the RPC server of one instance, its status task, and the
//! [`run`] entry point of the `trove-guestagent` binary.
//!
//! ```text
//!  run(config, shutdown)
//!    │ AgentSettings::from_config   guest_id, datastore_manager (else: exit with an error)
//!    │ AMQP connect (guest options: no exchange declaration, own reply queue names)
//!    v
//!  Agent::start ── manager_for(datastore_manager) ── serve guestagent.<id> / server <id>, v1.3,
//!    │                                               per-instance key (clear without one)
//!    ├── RPC calls ──────────> DatastoreManager (users, databases, root, config, fs stats...)
//!    ├── mount_volume, unmount_volume, resize_fs ──> crate::volume (the data volume)
//!    ├── prepare (cast) ─────> background task: heartbeat "building"; prepare (mounts the
//!    │                         volume named by device_path first);
//!    │                         heartbeat status ("healthy") + notify_end, or "failed to
//!    │                         spawn" + notify_exc_info (the conductor records a fault)
//!    ├── create_backup (cast) ──> background task: update_backup BUILDING, then COMPLETED
//!    │                            or FAILED (see crate::backup); one backup at a time
//!    ├── stop_db / restart ──> heartbeats "shutdown" / "restarting" at once
//!    ├── get_diagnostics, get_hwinfo ──> the agent process and its host, from /proc
//!    │                                   (see the private `sysinfo` module)
//!    └── status task ────────> every report_interval once prepared: heartbeat(status);
//!                              crashed server -> restart with back-off (see crate::heartbeat)
//!    │
//!  shutdown (SIGTERM) ──> Agent::stop: stop consuming (messages not started go back to the
//!                         queue), finish the requests in hand and a running prepare, stop the
//!                         status task. The database keeps running; a new agent finds the
//!                         end marker, does not prepare again and resumes heartbeats.
//! ```
//!
//! Replies follow Trove's shapes (`list_databases` -> `[[schema dicts], next_marker]`,
//! `get_user` -> user dict or null, `is_root_enabled` -> bool...). Methods the datastore layer
//! does not implement (replication, logs, modules, upgrades, TLS) answer
//! `NoSuchMethod`, as oslo.messaging does for a method the endpoint lacks. A guest error
//! becomes a remote error of module `trove.common.exception` whose message is the error's
//! text, which Trove's API shows as "An error occurred communicating with the guest: ...".
//!
//! Volumes: `prepare` formats (if empty) and mounts the device it names; `mount_volume`,
//! `unmount_volume` and `resize_fs` serve the taskmanager's volume resize (see
//! [`crate::volume`]). Unlike Trove's agent, nothing is mounted at start-up: a volume stays
//! mounted across agent restarts, and after a host reboot the fstab line written by
//! `prepare` mounts it again (loop devices, which do not survive a reboot, are not recorded).
//!
//! What it does not do (Trove's agent does): create the database container, log in to a
//! container registry.

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use trove_config::Config;
use trove_rpc::api::guest::GUEST_LATEST_VERSION;
use trove_rpc::api::{guest_topic, ConductorApi, ConductorRequest, GuestRequest, PrepareArgs};
use trove_rpc::{
    encode_result, AmqpOptions, AmqpTransport, Dispatcher, MessageHandler, RemoteError, RpcContext,
    RpcEndpoint, RpcError, SecureSerializer, ServerHandle, Target, Transport,
};

mod sysinfo;

use crate::error::GuestError;
use crate::heartbeat::{status_loop, RestartBackoff};
use crate::manager::{
    manager_for, DatastoreManager, ManagerConfig, Overrides, PrepareRequest, ReplicaContext,
};
use crate::models::{Database, User, UserAttributes, UserPassword};
use crate::process::ServiceUser;
use crate::status::ServiceStatus;
use crate::volume::{VolumeConfig, VolumeManager, SUPPORTED_FSTYPES};

/// Datastore managers this agent can run.
pub const SUPPORTED_MANAGERS: &[&str] = &["mariadb", "mysql", "postgresql"];

/// Why the agent cannot start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// `[DEFAULT] guest_id` is not set (it comes from the injected `guest_info.conf`).
    #[error("guest_id is not set: the agent needs [DEFAULT] guest_id (from guest_info.conf)")]
    MissingGuestId,
    /// `[DEFAULT] datastore_manager` is not set.
    #[error("datastore_manager is not set: the agent needs [DEFAULT] datastore_manager (from guest_info.conf)")]
    MissingDatastoreManager,
    /// `[DEFAULT] datastore_manager` names a datastore this agent cannot run.
    #[error("unknown datastore_manager '{0}' (supported: mariadb, mysql, postgresql)")]
    UnknownDatastoreManager(String),
    /// Another option has a value the agent cannot use.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The datastore layer refused to start (e.g. the service account cannot be created).
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// The message broker refused or is unreachable.
    #[error("messaging: {0}")]
    Rpc(#[from] RpcError),
}

/// Everything the agent needs, fixed for its life. Built from the configuration by
/// [`AgentSettings::from_config`]; tests build it directly.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The instance id (`[DEFAULT] guest_id`): topic `guestagent.<id>`, server `<id>`.
    pub guest_id: String,
    /// `[DEFAULT] datastore_manager` (`mariadb`, `mysql`, `postgresql`).
    pub datastore_manager: String,
    /// The per-instance RPC key (`[DEFAULT] instance_rpc_encr_key`); `None` talks in clear.
    pub rpc_key: Option<String>,
    /// The conductor's topic (`[DEFAULT] conductor_queue`).
    pub conductor_topic: String,
    /// Period of the status task (`[DEFAULT] report_interval`).
    pub report_interval: Duration,
    /// Delays between automatic restarts of a crashed server.
    pub restart_backoff: RestartBackoff,
    /// Where and how the server runs.
    pub manager: ManagerConfig,
}

impl AgentSettings {
    /// Reads the agent's settings from `config`:
    /// * `[DEFAULT] guest_id`, `datastore_manager` (both required), `instance_rpc_encr_key`,
    ///   `conductor_queue`, `report_interval`, `state_change_wait_time`;
    /// * `[<manager>] mount_point` (the volume), `default_password_length`, and the port:
    ///   `postgresql_port` for PostgreSQL, else the first of `tcp_ports`;
    /// * the data volume's `[DEFAULT] volume_fstype`, `format_options`, `mount_options`,
    ///   `volume_format_timeout` and `command_process_timeout`;
    /// * the address the server listens on for tenants: `[DEFAULT] bind_host` (the guest has
    ///   no API of its own; the default `0.0.0.0` matches Trove's containers, which publish
    ///   their ports on every interface);
    /// * the service account `[<manager>] database_service_uname` with uid
    ///   `database_service_uid` (or `[DEFAULT] database_service_uid`). Side effect: when the
    ///   agent runs as root the account is created if missing; otherwise the server runs as
    ///   the agent's own account.
    pub fn from_config(config: &Config) -> Result<Self, AgentError> {
        let d = &config.default;
        let guest_id = d
            .guest_id
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or(AgentError::MissingGuestId)?;
        let manager = d
            .datastore_manager
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or(AgentError::MissingDatastoreManager)?;
        if !SUPPORTED_MANAGERS.contains(&manager.as_str()) {
            return Err(AgentError::UnknownDatastoreManager(manager));
        }
        let ds = config
            .datastore(&manager)
            .ok_or_else(|| AgentError::UnknownDatastoreManager(manager.clone()))?;
        let port = if manager == "postgresql" {
            ds.postgresql_port.unwrap_or(5432)
        } else {
            ds.tcp_ports.first().map(|r| r.start).unwrap_or(3306)
        };
        let uid_text = ds
            .database_service_uid
            .clone()
            .unwrap_or_else(|| d.database_service_uid.clone());
        let uid: u32 = uid_text.trim().parse().map_err(|_| {
            AgentError::Config(format!("database_service_uid '{uid_text}' is not a number"))
        })?;
        let service_user = if rustix::process::geteuid().is_root() {
            ServiceUser::ensure(&ds.database_service_uname, uid)?
        } else {
            ServiceUser::current()
        };
        let bind: IpAddr = d.bind_host;
        let mut mc = ManagerConfig::new(PathBuf::from(&ds.mount_point), bind, port, service_user);
        mc.state_change_wait_time = secs(d.state_change_wait_time, 1);
        mc.password_length = usize::try_from(ds.default_password_length.max(8)).unwrap_or(36);
        if !SUPPORTED_FSTYPES.contains(&d.volume_fstype.as_str()) {
            return Err(AgentError::Config(format!(
                "volume_fstype '{}' is not supported (supported: ext3, ext4, xfs)",
                d.volume_fstype
            )));
        }
        mc.volume = VolumeConfig {
            fstype: d.volume_fstype.clone(),
            format_options: d.format_options.clone(),
            mount_options: d.mount_options.clone(),
            format_timeout: secs(d.volume_format_timeout, 1),
            command_timeout: secs(d.command_process_timeout, 1),
            ..VolumeConfig::default()
        };
        Ok(AgentSettings {
            guest_id,
            datastore_manager: manager,
            rpc_key: d
                .instance_rpc_encr_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned())
                .filter(|k| !k.is_empty()),
            conductor_topic: d.conductor_queue.clone(),
            report_interval: secs(d.report_interval, 1),
            restart_backoff: RestartBackoff::default(),
            manager: mc,
        })
    }

    /// The RPC target the agent serves: topic `guestagent.<guest_id>`, server `<guest_id>`.
    pub fn target(&self) -> Target {
        Target::server(guest_topic(&self.guest_id), self.guest_id.clone())
    }
}

fn secs(value: i64, min: i64) -> Duration {
    Duration::from_secs(value.max(min) as u64)
}

/// Counters of a running agent.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Heartbeats the broker accepted.
    pub heartbeats: AtomicU64,
    /// Heartbeats that could not be sent.
    pub heartbeat_failures: AtomicU64,
    /// Automatic restarts of a crashed server.
    pub restarts: AtomicU64,
}

/// State shared by the RPC handlers, the background prepare and the status task.
pub(crate) struct Inner {
    pub(crate) guest_id: String,
    pub(crate) manager: Arc<dyn DatastoreManager>,
    conductor: ConductorApi,
    pub(crate) report_interval: Duration,
    pub(crate) restart_backoff: RestartBackoff,
    /// True while a `prepare` runs in the background: the status task stays quiet (prepare
    /// reports its own transitions) and a second `prepare` is refused.
    pub(crate) preparing: AtomicBool,
    /// True while a backup runs: a second one is refused (reported FAILED).
    backing_up: AtomicBool,
    /// Automatic restart of a crashed server; off after `stop_db`, on again with
    /// `restart`/`start_db_with_conf_changes`.
    pub(crate) auto_restart: AtomicBool,
    pub(crate) stats: AgentStats,
    /// Serializes "observe, then send" so heartbeats leave in the order of the observations
    /// (the conductor keeps only the newest `sent`).
    report_lock: tokio::sync::Mutex<()>,
    /// Work started by casts (prepare) that outlives the RPC handler; waited for on stop.
    pub(crate) tasks: TaskTracker,
    /// Stops the status task.
    pub(crate) cancel: CancellationToken,
    /// Parent span of everything the agent does (`instance.id`, `datastore`).
    span: tracing::Span,
    /// The prepare end marker (named when a second prepare is refused).
    end_marker: PathBuf,
    /// The data volume operations (`mount_volume`, `unmount_volume`, `resize_fs`).
    volumes: VolumeManager,
    /// The instance's mount point, used when a volume request names none.
    mount_point: PathBuf,
}

impl Inner {
    /// Sends one heartbeat; failures are logged and counted, never fatal.
    async fn send(&self, status: ServiceStatus) {
        match self
            .conductor
            .heartbeat(&RpcContext::default(), &self.guest_id, status.description())
            .await
        {
            Ok(()) => {
                self.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(service_status = %status, "heartbeat sent");
            }
            Err(e) => {
                self.stats
                    .heartbeat_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(service_status = %status, error = %e, "heartbeat not sent");
            }
        }
    }

    /// Reports an explicit transition at once.
    pub(crate) async fn report(&self, status: ServiceStatus) {
        let _g = self.report_lock.lock().await;
        self.send(status).await;
    }

    /// Observes the server and reports what it saw; returns it.
    pub(crate) async fn observe_and_report(&self) -> ServiceStatus {
        let _g = self.report_lock.lock().await;
        let status = self.manager.status().await;
        self.send(status).await;
        status
    }

    /// Runs a prepare started by the `prepare` cast (see the module doc).
    async fn run_prepare(
        self: Arc<Self>,
        request: PrepareRequest,
        preparing: PreparingGuard,
        notification: PrepareNotification,
    ) {
        self.report(ServiceStatus::Building).await;
        let result = self.manager.prepare(request).await;
        match result {
            Ok(()) => {
                tracing::info!("prepare finished");
                self.auto_restart.store(true, Ordering::SeqCst);
                drop(preparing);
                self.observe_and_report().await;
                self.notify_end(&notification).await;
            }
            Err(e) if self.manager.is_prepared() => {
                // The server is up; a database, user or root step after it failed. Trove only
                // logs these.
                tracing::error!(error = %e, "prepare finished, but creating its databases or users failed");
                drop(preparing);
                self.observe_and_report().await;
                self.notify_end(&notification).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "prepare failed");
                self.report(ServiceStatus::Failed).await;
                let text = e.to_string();
                self.notify_error(&notification, "prepare failed", &text, &error_lines(&e))
                    .await;
                drop(preparing);
            }
        }
    }

    /// Casts `notify_end` for a finished request; a failure is logged, never fatal.
    async fn notify_end(&self, n: &PrepareNotification) {
        let req = ConductorRequest::NotifyEnd {
            serialized_notification: n.payload.clone(),
            notification_args: Value::Object(Map::new()),
        };
        if let Err(e) = self.conductor.cast(&n.context(), &req).await {
            tracing::warn!(error = %e, "end notification not sent");
        }
    }

    /// Casts `notify_exc_info` so the conductor records an instance fault with `message`
    /// (`<what>: <why>`) and `lines` as its details; a failure is logged, never fatal.
    pub(crate) async fn notify_error(
        &self,
        n: &PrepareNotification,
        what: &str,
        why: &str,
        lines: &[String],
    ) {
        let req = ConductorRequest::NotifyExcInfo {
            serialized_notification: n.payload.clone(),
            message: format!("{what}: {why}"),
            exception: Value::from(lines.to_vec()),
        };
        match self.conductor.cast(&n.context(), &req).await {
            Ok(()) => tracing::debug!("error notification sent"),
            Err(e) => tracing::warn!(error = %e, "error notification not sent"),
        }
    }
}

/// The notification a request's outcome is reported with (`notify_end` / `notify_exc_info`):
/// the serialized notification the caller attached to the context (Trove's taskmanager
/// attaches the instance-create one), completed with the instance id and a class name.
pub(crate) struct PrepareNotification {
    payload: Value,
    request_id: Option<String>,
    global_request_id: Option<String>,
}

/// Class name of the notification of an instance creation.
const CREATE_NOTIFICATION: &str = "trove.common.notification.DBaaSInstanceCreate";

impl PrepareNotification {
    fn new(ctx: &RpcContext, instance_id: &str) -> Self {
        Self::with_class(ctx, instance_id, CREATE_NOTIFICATION)
    }

    /// As [`PrepareNotification::new`], with `class` when the caller attached none.
    fn with_class(ctx: &RpcContext, instance_id: &str, class: &str) -> Self {
        let mut payload = match &ctx.trove_notification {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        payload.insert("instance_id".into(), Value::from(instance_id));
        payload
            .entry("notification_classname")
            .or_insert_with(|| Value::from(class));
        PrepareNotification {
            payload: Value::Object(payload),
            request_id: ctx.request_id.clone(),
            global_request_id: ctx.global_request_id.clone(),
        }
    }

    /// The context of the conductor cast: the request's ids, nothing of its credentials.
    fn context(&self) -> RpcContext {
        RpcContext {
            request_id: self.request_id.clone(),
            global_request_id: self.global_request_id.clone(),
            ..RpcContext::default()
        }
    }
}

/// An error and its sources, one line each (the fault's details).
fn error_lines(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut lines = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        lines.push(format!("caused by: {s}"));
        source = s.source();
    }
    lines
}

/// Decodes a JSON value into a datastore type, as a `TypeError` on failure.
fn arg<T: DeserializeOwned>(method: &str, name: &str, v: Value) -> Result<T, RemoteError> {
    serde_json::from_value(v)
        .map_err(|e| RemoteError::type_error(format!("{method}(): invalid {name}: {e}")))
}

fn overrides(method: &str, v: Value) -> Result<Overrides, RemoteError> {
    match v {
        Value::Null => Ok(Overrides::new()),
        Value::Object(m) => Ok(m),
        _ => Err(RemoteError::type_error(format!(
            "{method}(): overrides must be an object"
        ))),
    }
}

/// The device and mount point of a volume request: `device_path` is required (a client
/// error without it); the mount point defaults to the instance's and must be absolute.
fn volume_args(
    method: &str,
    device_path: Option<String>,
    mount_point: Option<String>,
    default_mount: &Path,
) -> Result<(PathBuf, PathBuf), RemoteError> {
    let refuse = |why: String| {
        let e = GuestError::InvalidValue(format!("{method}(): {why}"));
        tracing::info!(error = %e, "request refused");
        Err(remote_error(&e))
    };
    let Some(dev) = device_path.filter(|d| !d.trim().is_empty()) else {
        return refuse("device_path is required".into());
    };
    let mp = match mount_point.filter(|m| !m.trim().is_empty()) {
        Some(m) => PathBuf::from(m),
        None => default_mount.to_path_buf(),
    };
    if !mp.is_absolute() {
        return refuse(format!(
            "mount_point '{}' is not an absolute path",
            mp.display()
        ));
    }
    if mp != default_mount {
        tracing::warn!(mount_point = %mp.display(), instance_mount_point = %default_mount.display(),
            "volume request names another mount point than the instance's");
    }
    Ok((PathBuf::from(dev.trim()), mp))
}

fn limit(v: Option<i64>) -> Option<usize> {
    v.filter(|l| *l >= 0).map(|l| l as usize)
}

/// A datastore error as the remote error the caller receives.
pub fn remote_error(e: &GuestError) -> RemoteError {
    let class = match e {
        GuestError::InvalidValue(_) | GuestError::Reserved(_) | GuestError::AlreadyExists(_) => {
            "BadRequest"
        }
        GuestError::NotFound(_) => "NotFound",
        _ => "GuestError",
    };
    RemoteError::trove(class, e.to_string())
}

fn ok<T: serde::Serialize>(r: Result<T, GuestError>) -> Result<Value, RemoteError> {
    match r {
        Ok(v) => encode_result(&v),
        Err(e) => {
            if e.is_client_error() {
                tracing::info!(error = %e, "request refused");
            } else {
                tracing::error!(error = %e, "request failed");
            }
            Err(remote_error(&e))
        }
    }
}

/// The guest's RPC dispatcher: decodes a [`GuestRequest`] and calls the manager.
struct GuestDispatcher(Arc<Inner>);

#[async_trait]
impl Dispatcher for GuestDispatcher {
    async fn dispatch(
        &self,
        ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        let req = GuestRequest::decode(method, args)?;
        let inner = &self.0;
        let m = inner.manager.as_ref();
        use GuestRequest as R;
        // While a prepare runs the server's admin credentials are still changing, so no other
        // request may reach the manager (its admin connection would be made with credentials
        // that are about to stop working). Liveness checks and the prepare itself pass.
        if inner.preparing.load(Ordering::SeqCst)
            && !matches!(
                req,
                R::Prepare(_)
                    | R::RpcPing {}
                    | R::GetFilesystemStats { .. }
                    | R::GetDiagnostics {}
                    | R::GetHwinfo {}
            )
        {
            tracing::info!(method, "request refused: the instance is being prepared");
            return Err(RemoteError::trove(
                "GuestError",
                "the instance is being prepared; try again when it is ready",
            ));
        }
        match req {
            R::Prepare(args) => self.prepare(&ctx, *args).await,
            R::RpcPing {} => Ok(Value::Bool(true)),
            R::GetDiagnostics {} => ok(sysinfo::diagnostics()),
            R::GetHwinfo {} => ok(sysinfo::hwinfo()),
            R::Restart {} => {
                inner.auto_restart.store(true, Ordering::SeqCst);
                inner.report(ServiceStatus::Restarting).await;
                let r = m.restart().await;
                inner.observe_and_report().await;
                ok(r)
            }
            R::StopDb { .. } => {
                inner.auto_restart.store(false, Ordering::SeqCst);
                let r = m.stop().await;
                inner.observe_and_report().await;
                ok(r)
            }
            R::StartDbWithConfChanges {
                config_contents, ..
            } => {
                inner.auto_restart.store(true, Ordering::SeqCst);
                let r = m.start_with_conf_changes(config_contents).await;
                inner.observe_and_report().await;
                ok(r)
            }
            R::ResetConfiguration { configuration } => {
                let contents = match configuration {
                    Value::String(s) => s,
                    Value::Object(mut o) => match o.remove("config_contents") {
                        Some(Value::String(s)) => s,
                        _ => {
                            return Err(RemoteError::type_error(
                                "reset_configuration(): configuration has no config_contents",
                            ))
                        }
                    },
                    _ => {
                        return Err(RemoteError::type_error(
                            "reset_configuration(): configuration must be an object",
                        ))
                    }
                };
                ok(m.reset_configuration(contents).await)
            }
            R::UpdateOverrides {
                overrides: o,
                remove,
            } => ok(m.update_overrides(overrides(method, o)?, remove).await),
            R::ApplyOverrides { overrides: o } => {
                ok(m.apply_overrides(overrides(method, o)?).await)
            }
            // Trove reports the datastore's volume whatever `fs_path` says; so do we (and no
            // caller can make the agent stat arbitrary paths).
            R::GetFilesystemStats { .. } => ok(m.get_filesystem_stats(None).await),
            R::MountVolume {
                device_path,
                mount_point,
            } => {
                let (dev, mp) = volume_args(method, device_path, mount_point, &inner.mount_point)?;
                let options = inner.volumes.config().mount_options.clone();
                ok(inner.volumes.mount(&dev, &mp, None, &options).await)
            }
            R::UnmountVolume {
                device_path,
                mount_point,
            } => {
                let (dev, mp) = volume_args(method, device_path, mount_point, &inner.mount_point)?;
                ok(inner.volumes.unmount(&mp, Some(&dev)).await)
            }
            R::ResizeFs {
                device_path,
                mount_point,
                online,
            } => {
                let (dev, mp) = volume_args(method, device_path, mount_point, &inner.mount_point)?;
                // API 1.0 peers send no `online`: their resize is the offline one.
                ok(inner
                    .volumes
                    .resize_fs(&dev, &mp, online.unwrap_or(false))
                    .await)
            }
            R::CreateDatabase { databases } => {
                let dbs: Vec<Database> = arg(method, "databases", Value::Array(databases))?;
                ok(m.create_databases(dbs).await)
            }
            R::ListDatabases {
                limit: l,
                marker,
                include_marker,
            } => ok(m.list_databases(limit(l), marker, include_marker).await),
            R::DeleteDatabase { database } => {
                ok(m.delete_database(arg(method, "database", database)?).await)
            }
            R::CreateUser { users } => {
                let users: Vec<User> = arg(method, "users", Value::Array(users))?;
                ok(m.create_users(users).await)
            }
            R::ListUsers {
                limit: l,
                marker,
                include_marker,
            } => ok(m.list_users(limit(l), marker, include_marker).await),
            R::GetUser { username, hostname } => {
                ok(m.get_user(&username, hostname.as_deref()).await)
            }
            R::DeleteUser { user } => ok(m.delete_user(arg(method, "user", user)?).await),
            R::ChangePasswords { users } => {
                let users: Vec<UserPassword> = arg(method, "users", Value::Array(users))?;
                ok(m.change_passwords(users).await)
            }
            R::UpdateAttributes {
                username,
                hostname,
                user_attrs,
            } => {
                let attrs: UserAttributes = arg(method, "user_attrs", user_attrs)?;
                ok(m.update_attributes(&username, hostname.as_deref(), attrs)
                    .await)
            }
            R::GrantAccess {
                username,
                hostname,
                databases,
            } => ok(m
                .grant_access(&username, hostname.as_deref(), databases)
                .await),
            R::RevokeAccess {
                username,
                hostname,
                database,
            } => ok(m
                .revoke_access(&username, hostname.as_deref(), &database)
                .await),
            R::ListAccess { username, hostname } => {
                ok(m.list_access(&username, hostname.as_deref()).await)
            }
            R::EnableRoot {} => ok(m.enable_root(None).await),
            R::EnableRootWithPassword { root_password } => ok(m.enable_root(root_password).await),
            R::DisableRoot {} => ok(m.disable_root().await),
            R::IsRootEnabled {} => ok(m.is_root_enabled().await),
            R::CreateBackup { backup_info } => self.create_backup(&ctx, backup_info).await,
            R::BackupRequiredForReplication {} => Ok(Value::Bool(true)),
            R::GetReplicationSnapshot { snapshot_info, .. } => {
                self.replication_snapshot(&ctx, snapshot_info).await
            }
            R::GetReplicaContext {} => ok(m.replica_context().await),
            R::AttachReplica {
                replica_info,
                restart,
                ..
            } => {
                let context: ReplicaContext = arg(method, "replica_info", replica_info)?;
                let r = m.attach_replica(&context, restart).await;
                inner.observe_and_report().await;
                ok(r)
            }
            R::DetachReplica { for_failover } => {
                let r = m.detach_replica(for_failover).await;
                inner.observe_and_report().await;
                ok(r)
            }
            R::MakeReadOnly { read_only } => ok(m.make_read_only(read_only).await),
            R::EnableAsMaster { .. } => ok(m.enable_as_master().await),
            R::DemoteReplicationMaster {} => ok(m.demote_replication_master().await),
            R::GetLastTxn {} => ok(m
                .get_last_txn()
                .await
                .map(|(uuid, txn)| serde_json::json!([uuid, txn]))),
            R::GetLatestTxnId {} => ok(m.get_latest_txn_id().await),
            R::WaitForTxn { txn } => {
                let txn = match txn {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                ok(m.wait_for_txn(&txn).await)
            }
            _ => Err(RemoteError::no_such_method(method)),
        }
    }
}

impl GuestDispatcher {
    /// `prepare`: refused at once when the instance is prepared or a prepare runs; otherwise
    /// started in the background (it is a cast; the outcome travels by heartbeat). Arguments
    /// this agent cannot honour (restore, replica, cluster) or cannot decode end in "failed to
    /// spawn" rather than in an instance silently built without them.
    async fn prepare(&self, ctx: &RpcContext, args: PrepareArgs) -> Result<Value, RemoteError> {
        let inner = &self.0;
        if inner.manager.is_prepared() {
            let e = GuestError::AlreadyPrepared(inner.end_marker.display().to_string());
            tracing::warn!("refusing a second prepare: the instance is already prepared");
            return Err(remote_error(&e));
        }
        if inner.preparing.swap(true, Ordering::SeqCst) {
            tracing::warn!("refusing a prepare while another one runs");
            return Err(RemoteError::trove(
                "GuestError",
                "a prepare is already running on this instance; refusing to prepare again",
            ));
        }
        let guard = PreparingGuard(inner.clone());
        let notification = PrepareNotification::new(ctx, &inner.guest_id);
        // A restore reads the backup with the user's token of this request.
        let token = ctx.auth_token.clone();
        let request = match crate::backup::with_auth_token_sync(token.clone(), || {
            prepare_request(args, inner.manager.name())
        }) {
            Ok(r) => r,
            Err(why) => {
                tracing::error!(reason = %why, "prepare refused");
                inner.report(ServiceStatus::Failed).await;
                inner
                    .notify_error(
                        &notification,
                        "prepare failed",
                        &why,
                        std::slice::from_ref(&why),
                    )
                    .await;
                drop(guard);
                return Err(RemoteError::trove("GuestError", why));
            }
        };
        tracing::info!(datastore = inner.manager.name(), "prepare accepted");
        let span = tracing::info_span!(parent: &inner.span, "prepare");
        let task = crate::backup::with_auth_token(
            token,
            inner.clone().run_prepare(request, guard, notification),
        );
        inner.tasks.spawn(task.instrument(span));
        Ok(Value::Null)
    }
}

impl GuestDispatcher {
    /// `create_backup` (a cast): checked at once, then run in the background; progress and
    /// outcome go to the conductor (`update_backup`) and, as Trove's guest does, an end or
    /// error notification follows (see [`crate::backup`]).
    async fn create_backup(
        &self,
        ctx: &RpcContext,
        backup_info: Value,
    ) -> Result<Value, RemoteError> {
        let inner = &self.0;
        let info: crate::backup::BackupInfo = arg("create_backup", "backup_info", backup_info)?;
        let notification =
            PrepareNotification::with_class(ctx, &inner.guest_id, BACKUP_NOTIFICATION);
        let refused = if !inner.manager.is_prepared() {
            Some("the instance is not prepared".to_string())
        } else if inner.backing_up.swap(true, Ordering::SeqCst) {
            Some("another backup of this instance is running".to_string())
        } else {
            None
        };
        if let Some(why) = refused {
            let text = format!("backup {} refused: {why}", info.id);
            tracing::warn!(backup.id = %info.id, reason = %why, "backup refused");
            inner.backup_failed(&info, &notification, &text).await;
            return Err(RemoteError::trove("GuestError", text));
        }
        let span = tracing::info_span!(parent: &inner.span, "backup", backup.id = %info.id);
        // The backup goes to the user's Swift account with the user's token of this request.
        let task = crate::backup::with_auth_token(
            ctx.auth_token.clone(),
            inner.clone().run_backup(info, notification),
        );
        // The outcome reaches the conductor; nobody waits for this cast.
        inner.tasks.spawn(
            async move {
                let _ = task.await;
            }
            .instrument(span),
        );
        Ok(Value::Null)
    }
}

impl GuestDispatcher {
    /// `get_replication_snapshot` (a call): makes the server a replication source, takes a
    /// full backup into the store `snapshot_info` names (reported to the conductor like any
    /// backup), and returns the snapshot a new replica is prepared from.
    async fn replication_snapshot(
        &self,
        ctx: &RpcContext,
        snapshot_info: Value,
    ) -> Result<Value, RemoteError> {
        let inner = &self.0;
        let m = inner.manager.as_ref();
        let Some(strategy) = m.replication_strategy() else {
            return Err(remote_error(&m.no_replication()));
        };
        let info: crate::backup::BackupInfo =
            arg("get_replication_snapshot", "snapshot_info", snapshot_info)?;
        let notification =
            PrepareNotification::with_class(ctx, &inner.guest_id, BACKUP_NOTIFICATION);
        if !m.is_prepared() {
            let text = format!("replication snapshot {} refused: not prepared", info.id);
            inner.backup_failed(&info, &notification, &text).await;
            return Err(RemoteError::trove("GuestError", text));
        }
        let context = match m.replica_context().await {
            Ok(c) => c,
            Err(e) => {
                let text = format!("replication snapshot {} failed: {e}", info.id);
                inner.backup_failed(&info, &notification, &text).await;
                return Err(remote_error(&e));
            }
        };
        if inner.backing_up.swap(true, Ordering::SeqCst) {
            let text = format!(
                "replication snapshot {} refused: another backup of this instance is running",
                info.id
            );
            inner.backup_failed(&info, &notification, &text).await;
            return Err(RemoteError::trove("GuestError", text));
        }
        let span = tracing::info_span!(parent: &inner.span, "backup", backup.id = %info.id);
        let id = info.id.clone();
        let outcome = crate::backup::with_auth_token(
            ctx.auth_token.clone(),
            inner.clone().run_backup(info, notification),
        )
        .instrument(span)
        .await;
        if let Err(text) = outcome {
            return Err(RemoteError::trove("GuestError", text));
        }
        let stats = m.get_filesystem_stats(None).await.ok();
        Ok(serde_json::json!({
            "dataset": {
                "datastore_manager": m.name(),
                "dataset_size": stats.as_ref().map(|s| s.used),
                "volume_size": stats.as_ref().map(|s| s.total),
                "snapshot_id": id,
            },
            "replication_strategy": strategy,
            "master": context.master,
            "replica_conf": context.replica_conf,
        }))
    }
}

/// Class name of the notification of a backup creation.
const BACKUP_NOTIFICATION: &str = "trove.common.notification.DBaaSBackupCreate";

impl Inner {
    /// Casts `update_backup`; a failure is logged (the backup row then stays as it was).
    async fn update_backup(&self, backup_id: &str, fields: trove_rpc::api::UpdateBackupFields) {
        if let Err(e) = self
            .conductor
            .update_backup(&RpcContext::default(), &self.guest_id, backup_id, fields)
            .await
        {
            tracing::warn!(backup.id = backup_id, error = %e, "backup update not sent");
        }
    }

    /// Reports a backup FAILED with `text` as the tenant-readable reason.
    async fn backup_failed(
        &self,
        info: &crate::backup::BackupInfo,
        notification: &PrepareNotification,
        text: &str,
    ) {
        // The conductor stores the reason (its last lines, secrets masked) as the backup's
        // fault, which the tenant reads.
        self.update_backup(
            &info.id,
            trove_rpc::api::UpdateBackupFields {
                state: Some("FAILED".into()),
                backup_type: Some(info.backup_type.clone()),
                success: Some(false),
                fault_message: Some(trove_rpc::api::conductor::tenant_fault_message(text)),
                ..Default::default()
            },
        )
        .await;
        self.notify_error(notification, "backup failed", text, &[text.to_string()])
            .await;
    }

    /// Runs one backup (see [`crate::backup`]).
    async fn run_backup(
        self: Arc<Self>,
        info: crate::backup::BackupInfo,
        notification: PrepareNotification,
    ) -> std::result::Result<(), String> {
        let used =
            |stats: Result<crate::manager::FilesystemStats, GuestError>| stats.ok().map(|s| s.used);
        let size = used(self.manager.get_filesystem_stats(None).await);
        self.update_backup(
            &info.id,
            trove_rpc::api::UpdateBackupFields {
                state: Some("BUILDING".into()),
                size,
                backup_type: Some(info.backup_type.clone()),
                ..Default::default()
            },
        )
        .await;
        tracing::info!(container = info.container(), "backup started");
        let started = std::time::Instant::now();
        let result = match crate::backup::BackupJob::from_info(&info) {
            Ok(job) => self.manager.create_backup(&job).await,
            Err(e) => Err(e),
        };
        let outcome = match result {
            Ok(stored) => {
                tracing::info!(location = %stored.location, checksum = %stored.checksum,
                    bytes = stored.size, segments = stored.segments,
                    seconds = started.elapsed().as_secs_f64(), "backup completed");
                // The size a restore needs: the data on the volume, as at the start.
                let size = used(self.manager.get_filesystem_stats(None).await).or(size);
                self.update_backup(
                    &info.id,
                    trove_rpc::api::UpdateBackupFields {
                        state: Some("COMPLETED".into()),
                        size,
                        backup_type: Some(info.backup_type.clone()),
                        checksum: Some(stored.checksum),
                        location: Some(stored.location),
                        success: Some(true),
                        ..Default::default()
                    },
                )
                .await;
                self.notify_end(&notification).await;
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "backup failed");
                let text = format!("backup {} failed: {e}", info.id);
                self.backup_failed(&info, &notification, &text).await;
                Err(text)
            }
        };
        self.backing_up.store(false, Ordering::SeqCst);
        outcome
    }
}

/// Clears [`Inner::preparing`] when the prepare ends, however it ends (even by a panic).
struct PreparingGuard(Arc<Inner>);

impl Drop for PreparingGuard {
    fn drop(&mut self) {
        self.0.preparing.store(false, Ordering::SeqCst);
    }
}

/// The datastore layer's request from `prepare`'s wire arguments.
fn prepare_request(args: PrepareArgs, manager: &str) -> Result<PrepareRequest, String> {
    let present = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
    let restore = match args.backup_info.clone().filter(|v| !v.is_null()) {
        Some(_) if !matches!(manager, "mariadb" | "postgresql") => {
            return Err(format!(
                "restoring a backup in prepare is not supported for {manager} by this guest agent"
            ))
        }
        Some(v) => Some(crate::backup::RestoreInfo::from_value(v)?),
        None => None,
    };
    if present(&args.snapshot) && !matches!(manager, "mariadb" | "mysql" | "postgresql") {
        return Err(format!(
            "creating a replica of {manager} is not supported by this guest agent"
        ));
    }
    if present(&args.snapshot) && restore.is_none() {
        return Err("a replica's prepare needs the source's snapshot as backup_info".into());
    }
    if present(&args.cluster_config) {
        return Err("cluster members are not supported by this guest agent".into());
    }
    if args.modules.as_ref().is_some_and(|m| !m.is_empty()) {
        tracing::warn!("prepare names modules; modules are not supported and are ignored");
    }
    let mut value = serde_json::to_value(&args).map_err(|e| format!("invalid arguments: {e}"))?;
    if let Some(mem) = value.get_mut("memory_mb") {
        if mem.as_i64().is_some_and(|m| m < 0) {
            *mem = Value::from(0);
        }
    }
    if let Some(obj) = value.as_object_mut() {
        obj.remove("backup_info");
        if obj.get("snapshot").is_some_and(Value::is_null) {
            obj.remove("snapshot");
        }
    }
    let mut request: PrepareRequest =
        serde_json::from_value(value).map_err(|e| format!("prepare(): invalid arguments: {e}"))?;
    request.backup_info = restore;
    Ok(request)
}

/// Runs the endpoint inside the agent's span, so request logs carry the instance id.
struct SpannedHandler {
    endpoint: RpcEndpoint,
    span: tracing::Span,
}

#[async_trait]
impl MessageHandler for SpannedHandler {
    async fn handle(&self, message: Map<String, Value>) -> Result<Value, RemoteError> {
        self.endpoint
            .handle(message)
            .instrument(self.span.clone())
            .await
    }
}

/// A running guest agent (see the module doc).
pub struct Agent {
    inner: Arc<Inner>,
    /// The RPC server; stopping it stops consuming and waits for requests in hand.
    server: ServerHandle,
    /// The status task.
    status_task: tokio::task::JoinHandle<()>,
    target: Target,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("target", &self.target)
            .field("datastore", &self.inner.manager.name())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts an agent with the manager `settings.datastore_manager` names (see
    /// [`Agent::with_manager`]).
    pub async fn start(
        settings: AgentSettings,
        transport: Arc<dyn Transport>,
    ) -> Result<Agent, AgentError> {
        let manager = manager_for(&settings.datastore_manager, settings.manager.clone())
            .map_err(|_| AgentError::UnknownDatastoreManager(settings.datastore_manager.clone()))?;
        Self::with_manager(settings, Arc::from(manager), transport).await
    }

    /// Starts serving `settings.target()` on `transport` with `manager`, and the status task.
    ///
    /// Returns once the server consumes its queues. Errors when the broker refuses them
    /// (nothing keeps running then). The database server is not touched: a prepared instance
    /// whose server runs is simply reported on, one whose server crashed is restarted by the
    /// status task.
    pub async fn with_manager(
        settings: AgentSettings,
        manager: Arc<dyn DatastoreManager>,
        transport: Arc<dyn Transport>,
    ) -> Result<Agent, AgentError> {
        let conductor = ConductorApi::new(
            transport.clone(),
            &settings.conductor_topic,
            &settings.guest_id,
            settings.rpc_key.clone(),
        );
        let inner = Arc::new(Inner {
            guest_id: settings.guest_id.clone(),
            manager,
            conductor,
            report_interval: settings.report_interval,
            restart_backoff: settings.restart_backoff,
            preparing: AtomicBool::new(false),
            backing_up: AtomicBool::new(false),
            auto_restart: AtomicBool::new(true),
            stats: AgentStats::default(),
            report_lock: tokio::sync::Mutex::new(()),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            span: tracing::info_span!(
                "guestagent",
                instance.id = %settings.guest_id,
                datastore = %settings.datastore_manager
            ),
            end_marker: settings.manager.prepare_end_marker(),
            volumes: VolumeManager::new(settings.manager.volume.clone()),
            mount_point: settings.manager.mount_point.clone(),
        });
        let endpoint = RpcEndpoint::new(
            GUEST_LATEST_VERSION,
            Arc::new(SecureSerializer::new(settings.rpc_key.clone())),
            Arc::new(GuestDispatcher(inner.clone())),
        );
        let target = settings.target();
        let handler = SpannedHandler {
            endpoint,
            span: inner.span.clone(),
        };
        let server = transport.serve(&target, Arc::new(handler)).await?;
        let status_task = tokio::spawn(status_loop(inner.clone()).instrument(inner.span.clone()));
        tracing::info!(
            parent: &inner.span,
            topic = %target.topic,
            encrypted = settings.rpc_key.is_some(),
            prepared = inner.manager.is_prepared(),
            report_interval_s = settings.report_interval.as_secs(),
            "guest agent serving"
        );
        Ok(Agent {
            inner,
            server,
            status_task,
            target,
        })
    }

    /// The datastore manager.
    pub fn manager(&self) -> &Arc<dyn DatastoreManager> {
        &self.inner.manager
    }

    /// The target served.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Counters (heartbeats, automatic restarts).
    pub fn stats(&self) -> &AgentStats {
        &self.inner.stats
    }

    /// Graceful stop: stop consuming (messages not started go back to the queue), finish the
    /// requests in hand and a prepare under way, stop the status task. The database server
    /// keeps running.
    pub async fn stop(self) {
        let Agent {
            inner,
            server,
            status_task,
            target,
        } = self;
        server.stop().await;
        inner.tasks.close();
        inner.tasks.wait().await;
        inner.cancel.cancel();
        let _ = status_task.await;
        tracing::info!(
            parent: &inner.span,
            topic = %target.topic,
            heartbeats = inner.stats.heartbeats.load(Ordering::Relaxed),
            restarts = inner.stats.restarts.load(Ordering::Relaxed),
            "guest agent stopped"
        );
    }
}

/// AMQP options of a guest from its configuration: the control exchange, the retry and
/// heartbeat settings of `[oslo_messaging_rabbit]`, and [`AmqpOptions::for_guest`]'s
/// restrictions (a guest's broker user may not declare the exchange or other queues).
pub fn guest_amqp_options(config: &Config, guest_id: &str) -> AmqpOptions {
    let rabbit = &config.oslo_messaging_rabbit;
    let mut opts = AmqpOptions::for_guest(config.default.control_exchange.clone(), guest_id);
    opts.retry_interval = secs(rabbit.rabbit_retry_interval, 0);
    opts.retry_backoff = secs(rabbit.rabbit_retry_backoff, 0);
    opts.interval_max = secs(rabbit.rabbit_interval_max, 0);
    opts.heartbeat = u16::try_from(rabbit.heartbeat_timeout_threshold.max(0)).unwrap_or(u16::MAX);
    opts.connection_name = Some(format!("trove-guestagent@{guest_id}"));
    opts
}

/// Serves with `settings` on `transport` until `shutdown` completes, then stops gracefully.
pub async fn serve(
    settings: AgentSettings,
    transport: Arc<dyn Transport>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let agent = Agent::start(settings, transport).await?;
    shutdown.await;
    tracing::info!("guest agent shutting down");
    agent.stop().await;
    Ok(())
}

/// Sets the key backups are encrypted with from `[DEFAULT] backup_encryption_key` (empty:
/// backups are not encrypted) and the largest segment they are stored in from
/// `[DEFAULT] backup_segment_max_size`, for the stores this process opens.
pub fn set_backup_key(config: &Config) -> Result<(), AgentError> {
    trove_backup::set_process_segment_size(config.default.backup_segment_max_size);
    let text = config.default.backup_encryption_key.expose_secret().trim();
    let key = if text.is_empty() {
        None
    } else {
        Some(
            trove_backup::encrypt::EncryptionKey::from_base64(text)
                .map_err(|e| AgentError::Config(e.to_string()))?,
        )
    };
    trove_backup::encrypt::set_process_key(key);
    Ok(())
}

/// The `trove-guestagent` program after configuration loading: settings from `config`
/// (missing `guest_id` or an unknown `datastore_manager` is an error before anything else
/// happens), RabbitMQ from `[DEFAULT] transport_url` with guest options, then [`serve`] until
/// `shutdown`; the broker connection is closed at the end.
pub async fn run(config: &Config, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let settings = AgentSettings::from_config(config)?;
    set_backup_key(config)?;
    let opts = guest_amqp_options(config, &settings.guest_id);
    let transport =
        AmqpTransport::connect_url(config.default.transport_url.expose_secret(), opts).await?;
    let result = serve(
        settings,
        Arc::new(transport.clone()) as Arc<dyn Transport>,
        shutdown,
    )
    .await;
    transport.shutdown().await;
    result
}
