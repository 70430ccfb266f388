//! The agent's supervision of the server with a scripted manager on the in-memory transport
//! and tokio's paused clock: the back-off between automatic restarts, `stop_db` turning them
//! off, `restart` turning them on again, and no heartbeats before `prepare` has finished.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use trove_guestagent::agent::AgentSettings;
use trove_guestagent::heartbeat::RestartBackoff;
use trove_guestagent::manager::{FilesystemStats, ManagerConfig, Overrides, Page};
use trove_guestagent::models::{UserAttributes, UserPassword};
use trove_guestagent::process::ServiceUser;
use trove_guestagent::{
    Agent, Database, DatastoreManager, GuestError, PrepareRequest, Result, ServiceStatus, User,
};
use trove_rpc::api::guest::GUEST_LATEST_VERSION;
use trove_rpc::api::{GuestApi, GuestTimeouts};
use trove_rpc::{InMemoryTransport, RpcContext, Transport};

/// A server that dies as soon as it is started, until told otherwise.
#[derive(Default)]
struct Scripted {
    prepared: std::sync::atomic::AtomicBool,
    status: Mutex<Option<ServiceStatus>>,
    /// When `start` was called (paused clock).
    starts: Mutex<Vec<Instant>>,
    /// What `start` leaves behind.
    after_start: Mutex<Option<ServiceStatus>>,
}

impl Scripted {
    fn set(&self, s: ServiceStatus) {
        *self.status.lock().unwrap() = Some(s);
    }
    fn starts(&self) -> Vec<Instant> {
        self.starts.lock().unwrap().clone()
    }
}

fn unsupported<T>() -> Result<T> {
    Err(GuestError::NotSupported("scripted manager".into()))
}

#[async_trait]
impl DatastoreManager for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn is_prepared(&self) -> bool {
        self.prepared.load(Ordering::SeqCst)
    }
    async fn prepare(&self, _r: PrepareRequest) -> Result<()> {
        unsupported()
    }
    async fn start(&self) -> Result<()> {
        self.starts.lock().unwrap().push(Instant::now());
        let after = self
            .after_start
            .lock()
            .unwrap()
            .unwrap_or(ServiceStatus::Crashed);
        self.set(after);
        Ok(())
    }
    async fn stop(&self) -> Result<()> {
        self.set(ServiceStatus::Shutdown);
        Ok(())
    }
    async fn restart(&self) -> Result<()> {
        self.start().await
    }
    async fn status(&self) -> ServiceStatus {
        self.status.lock().unwrap().unwrap_or(ServiceStatus::New)
    }
    async fn create_databases(&self, _d: Vec<Database>) -> Result<()> {
        unsupported()
    }
    async fn list_databases(
        &self,
        _l: Option<usize>,
        _m: Option<String>,
        _i: bool,
    ) -> Result<Page<Database>> {
        unsupported()
    }
    async fn delete_database(&self, _d: Database) -> Result<()> {
        unsupported()
    }
    async fn create_users(&self, _u: Vec<User>) -> Result<()> {
        unsupported()
    }
    async fn list_users(
        &self,
        _l: Option<usize>,
        _m: Option<String>,
        _i: bool,
    ) -> Result<Page<User>> {
        unsupported()
    }
    async fn get_user(&self, _u: &str, _h: Option<&str>) -> Result<Option<User>> {
        unsupported()
    }
    async fn delete_user(&self, _u: User) -> Result<()> {
        unsupported()
    }
    async fn change_passwords(&self, _u: Vec<UserPassword>) -> Result<()> {
        unsupported()
    }
    async fn update_attributes(
        &self,
        _u: &str,
        _h: Option<&str>,
        _a: UserAttributes,
    ) -> Result<()> {
        unsupported()
    }
    async fn grant_access(&self, _u: &str, _h: Option<&str>, _d: Vec<String>) -> Result<()> {
        unsupported()
    }
    async fn revoke_access(&self, _u: &str, _h: Option<&str>, _d: &str) -> Result<()> {
        unsupported()
    }
    async fn list_access(&self, _u: &str, _h: Option<&str>) -> Result<Vec<Database>> {
        unsupported()
    }
    async fn enable_root(&self, _p: Option<String>) -> Result<User> {
        unsupported()
    }
    async fn disable_root(&self) -> Result<()> {
        unsupported()
    }
    async fn is_root_enabled(&self) -> Result<bool> {
        unsupported()
    }
    async fn get_filesystem_stats(&self, _p: Option<&Path>) -> Result<FilesystemStats> {
        unsupported()
    }
    async fn update_overrides(&self, _o: Overrides, _r: bool) -> Result<()> {
        unsupported()
    }
    async fn apply_overrides(&self, _o: Overrides) -> Result<()> {
        unsupported()
    }
    async fn reset_configuration(&self, _c: String) -> Result<()> {
        unsupported()
    }
}

const CONDUCTOR: &str = "conductor-supervision-test";

fn settings() -> AgentSettings {
    let mc = ManagerConfig::new(
        "/nonexistent",
        "127.0.0.1".parse().unwrap(),
        3306,
        ServiceUser::current(),
    );
    AgentSettings {
        guest_id: "inst-1".into(),
        datastore_manager: "mariadb".into(),
        rpc_key: None,
        conductor_topic: CONDUCTOR.into(),
        report_interval: Duration::from_secs(1),
        restart_backoff: RestartBackoff::default(),
        manager: mc,
    }
}

/// Seconds from `t0` of each start, rounded.
fn offsets(t0: Instant, starts: &[Instant]) -> Vec<u64> {
    starts
        .iter()
        .map(|s| s.duration_since(t0).as_secs_f64().round() as u64)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn crashed_server_is_restarted_with_backoff_until_stop_db() {
    let transport = InMemoryTransport::new();
    // Collect the heartbeats in the conductor's queue.
    transport
        .declare_topic_queues(CONDUCTOR, None)
        .await
        .unwrap();
    let mgr = Arc::new(Scripted::default());
    let agent = Agent::with_manager(settings(), mgr.clone(), Arc::new(transport.clone()))
        .await
        .unwrap();
    let t0 = Instant::now();

    // Not prepared: silence, and no restarts even though the status would say crashed.
    mgr.set(ServiceStatus::Crashed);
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert_eq!(transport.pending(CONDUCTOR), 0);
    assert!(mgr.starts().is_empty());

    // Prepared, and the server keeps dying: restarts after 1, 2, 4, 8 s (plus the report
    // interval between a restart and the next observation).
    mgr.prepared.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(19)).await;
    assert_eq!(offsets(t0, &mgr.starts()), vec![7, 10, 15, 24]);
    assert_eq!(agent.stats().restarts.load(Ordering::SeqCst), 4);
    assert!(
        transport.pending(CONDUCTOR) >= 8,
        "a heartbeat per tick and restart"
    );

    // stop_db turns the restarts off (the scripted server still "crashes").
    let guest = GuestApi::new(
        Arc::new(transport.clone()),
        "inst-1",
        None,
        GuestTimeouts::default(),
        GUEST_LATEST_VERSION,
    );
    let ctx = RpcContext::default();
    guest.stop_db(&ctx).await.unwrap();
    mgr.set(ServiceStatus::Crashed);
    let before = mgr.starts().len();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        mgr.starts().len(),
        before,
        "no automatic restart after stop_db"
    );

    // restart turns them on again; once the server stays up nothing more happens.
    *mgr.after_start.lock().unwrap() = Some(ServiceStatus::Healthy);
    guest.restart(&ctx).await.unwrap();
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    let after_restart = mgr.starts().len();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(mgr.starts().len(), after_restart);
    // Healthy for longer than the back-off's maximum since the last automatic restart: the
    // next crash is restarted after the first delay again (1 s, within the next tick).
    *mgr.after_start.lock().unwrap() = Some(ServiceStatus::Crashed);
    mgr.set(ServiceStatus::Crashed);
    let crashed = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let last = *mgr.starts().last().unwrap();
    assert_eq!(mgr.starts().len(), after_restart + 1);
    assert!(last.duration_since(crashed) <= Duration::from_secs(2));
    agent.stop().await;
}
