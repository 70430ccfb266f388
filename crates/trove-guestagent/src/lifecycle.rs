//! The start/stop/restart/prepare sequence shared by the datastore managers.
//!
//! Each manager supplies the datastore-specific steps ([`ServerSteps`]: install and configure,
//! start and stop the server under the lifecycle lock, observe it); the order of the steps,
//! the lifecycle lock and the transient statuses (`building`, `failed to spawn`, `restarting`)
//! are here, once:
//!
//! ```text
//!  prepare: lock; format + mount the volume if prepare names a device ──(error)──> FAILED;
//!           start marker; BUILDING; install ──(error)──> FAILED; error
//!                                             └──> end marker; unlock;
//!           create databases, create users, enable root (as requested)
//!  restart: lock; RESTARTING; stop; start; (transient cleared)
//!  status:  transient status if any; NEW before the start marker; else observe the server
//! ```

use async_trait::async_trait;

use crate::error::Result;
use crate::manager::{DatastoreManager, ManagerConfig, PrepareRequest};
use crate::status::ServiceStatus;

/// The lifecycle lock (one of start, stop, restart, prepare at a time) and the transient
/// status reported while one of them runs.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    lock: tokio::sync::Mutex<()>,
    transient: std::sync::Mutex<Option<ServiceStatus>>,
}

impl Lifecycle {
    fn set_transient(&self, s: Option<ServiceStatus>) {
        *self.transient.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    fn transient(&self) -> Option<ServiceStatus> {
        *self.transient.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The datastore-specific steps of a manager, and the shared sequences built from them.
#[async_trait]
pub(crate) trait ServerSteps: DatastoreManager {
    /// The manager's lifecycle state.
    fn lifecycle(&self) -> &Lifecycle;

    /// The instance's configuration (markers).
    fn instance_config(&self) -> &ManagerConfig;

    /// The datastore's name in logs ("MariaDB").
    fn label(&self) -> &'static str;

    /// Installs and configures the server and starts it (the lifecycle lock is held).
    async fn install(&self, request: &PrepareRequest) -> Result<()>;

    /// Starts the server and waits until it answers (the lifecycle lock is held).
    async fn start_server(&self) -> Result<()>;

    /// Stops the server (the lifecycle lock is held).
    async fn stop_server(&self) -> Result<()>;

    /// The status of a prepared server, from its process and a ping.
    async fn observe_server(&self) -> ServiceStatus;

    /// `prepare` (see the module doc).
    async fn prepare_sequence(&self, request: PrepareRequest) -> Result<()> {
        let lc = self.lifecycle();
        let guard = lc.lock.lock().await;
        // The volume first: the markers and the whole layout live under the mount point, and
        // anything written there before the mount would end up hidden under it.
        if let Err(e) = self
            .instance_config()
            .mount_requested_volume(&request)
            .await
        {
            tracing::error!(error = %e, "preparing the data volume failed");
            lc.set_transient(Some(ServiceStatus::Failed));
            return Err(e);
        }
        self.instance_config().begin_install()?;
        lc.set_transient(Some(ServiceStatus::Building));
        tracing::info!(request = ?request, "preparing {}", self.label());
        if let Err(e) = self.install(&request).await {
            tracing::error!(error = %e, "prepare failed");
            lc.set_transient(Some(ServiceStatus::Failed));
            return Err(e);
        }
        self.instance_config().end_install()?;
        lc.set_transient(None);
        drop(guard);
        // As in Trove, the post-install steps run once the instance counts as prepared.
        if !request.databases.is_empty() {
            self.create_databases(request.databases.clone()).await?;
        }
        if !request.users.is_empty() {
            self.create_users(request.users.clone()).await?;
        }
        if let Some(pw) = request.root_password.clone() {
            self.enable_root(Some(pw)).await?;
        }
        Ok(())
    }

    /// `start` under the lifecycle lock.
    async fn start_sequence(&self) -> Result<()> {
        let _g = self.lifecycle().lock.lock().await;
        self.start_server().await
    }

    /// `stop` under the lifecycle lock.
    async fn stop_sequence(&self) -> Result<()> {
        let _g = self.lifecycle().lock.lock().await;
        self.stop_server().await
    }

    /// `restart`: stop then start under the lifecycle lock, reported as restarting.
    async fn restart_sequence(&self) -> Result<()> {
        let lc = self.lifecycle();
        let _g = lc.lock.lock().await;
        lc.set_transient(Some(ServiceStatus::Restarting));
        let r = async {
            self.stop_server().await?;
            self.start_server().await
        }
        .await;
        lc.set_transient(None);
        r
    }

    /// `status` (see the module doc).
    async fn status_sequence(&self) -> ServiceStatus {
        if let Some(s) = self.lifecycle().transient() {
            return s;
        }
        if !self.instance_config().prepare_start_marker().exists() {
            return ServiceStatus::New;
        }
        self.observe_server().await
    }
}
