//! Agents on the conductor stand-in's broker, and the requests the taskmanager sends them
//! (`prepare`, `create_backup`, the restore of a backup).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use trove_guestagent::agent::AgentSettings;
use trove_guestagent::heartbeat::RestartBackoff;
use trove_guestagent::manager::ManagerConfig;
use trove_guestagent::Agent;
use trove_rpc::api::guest::GUEST_LATEST_VERSION;
use trove_rpc::api::{GuestApi, GuestTimeouts, PrepareArgs};
use trove_rpc::{RpcContext, Transport};

use super::conductor::{Conductor, Recorder};
use super::Instance;

/// The tenant user's password (user `app`, database `orders`).
pub const APP_PASSWORD: &str = "s3cret-Pass";

/// The datastores the agent runs, with what the requests about them name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datastore {
    MariaDb,
    Postgres,
}

impl Datastore {
    /// The agent's `datastore_manager`.
    pub fn manager(self) -> &'static str {
        match self {
            Datastore::MariaDb => "mariadb",
            Datastore::Postgres => "postgresql",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Datastore::MariaDb => "10.11",
            Datastore::Postgres => "15",
        }
    }

    pub fn port(self) -> u16 {
        match self {
            Datastore::MariaDb => 3306,
            Datastore::Postgres => 5432,
        }
    }

    /// The `mount_point` the taskmanager names in `prepare`.
    pub fn mount_point(self) -> &'static str {
        match self {
            Datastore::MariaDb => "/var/lib/mysql",
            Datastore::Postgres => "/var/lib/postgresql",
        }
    }

    /// The `type` of a restore of this datastore's backups.
    pub fn restore_type(self) -> &'static str {
        match self {
            Datastore::MariaDb => "mariabackup",
            Datastore::Postgres => "pg_basebackup",
        }
    }
}

pub fn ctx() -> RpcContext {
    RpcContext::new_internal()
}

/// One agent on the conductor stand-in's broker, with its client; `inst` holds the instance
/// (its directory and server) the agent manages.
pub struct Guest<I = Instance> {
    pub id: String,
    pub inst: I,
    agent: Option<Agent>,
    pub api: GuestApi,
    recorder: Arc<Recorder>,
}

impl Guest<Instance> {
    /// An agent of `ds` for a new instance on a free loopback address.
    pub async fn start(conductor: &Conductor, ds: Datastore) -> Guest {
        let inst = Instance::new(ds.port());
        let config = inst.config.clone();
        Guest::start_on(conductor, ds, config, inst, GuestTimeouts::default()).await
    }

    /// [`Guest::start`], then `prepare` with database `orders` and user `app`; returns once
    /// the server is healthy.
    pub async fn start_prepared(conductor: &Conductor, ds: Datastore) -> Guest {
        let g = Guest::start(conductor, ds).await;
        g.prepare_healthy(
            prepare_args(ds, Value::Null, true),
            Duration::from_secs(120),
        )
        .await;
        g
    }
}

impl<I> Guest<I> {
    /// An agent of `ds` managing `inst` with `config`; its client waits `timeouts`.
    pub async fn start_on(
        conductor: &Conductor,
        ds: Datastore,
        config: ManagerConfig,
        inst: I,
        timeouts: GuestTimeouts,
    ) -> Guest<I> {
        let id = uuid::Uuid::new_v4().to_string();
        let settings = AgentSettings {
            guest_id: id.clone(),
            datastore_manager: ds.manager().into(),
            rpc_key: None,
            conductor_topic: conductor.topic.clone(),
            report_interval: Duration::from_secs(1),
            restart_backoff: RestartBackoff::default(),
            manager: config,
        };
        let t: Arc<dyn Transport> = Arc::new(conductor.transport.clone());
        let agent = Agent::start(settings, t.clone())
            .await
            .expect("agent starts");
        let api = GuestApi::new(t, &id, None, timeouts, GUEST_LATEST_VERSION);
        Guest {
            id,
            inst,
            agent: Some(agent),
            api,
            recorder: conductor.recorder.clone(),
        }
    }

    /// `prepare`; returns once the guest reports its server healthy (within `within`).
    pub async fn prepare_healthy(&self, args: PrepareArgs, within: Duration) {
        self.api.prepare(&ctx(), args).await.unwrap();
        let s = self
            .recorder
            .wait_heartbeat(&self.id, &["healthy", "failed to spawn"], within)
            .await;
        assert_eq!(s, "healthy", "{:?}", self.recorder.calls("notify_exc_info"));
    }

    /// `create_backup` of `info` (backup `id`); returns `(location, checksum)` once the guest
    /// reports it COMPLETED (within `within`), after BUILDING.
    pub async fn take_backup(&self, info: Value, id: &str, within: Duration) -> (String, String) {
        self.api.create_backup(&ctx(), info).await.unwrap();
        let u = self.recorder.wait_backup_done(id, within).await;
        assert_eq!(u[0]["state"], "BUILDING", "{u:?}");
        let done = u.last().unwrap();
        assert_eq!(
            done["state"],
            "COMPLETED",
            "{u:?} {}",
            self.recorder.fault_of(id)
        );
        assert_eq!(done["success"], true);
        (
            done["location"].as_str().unwrap().to_owned(),
            done["checksum"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn stop(mut self) {
        if let Some(a) = self.agent.take() {
            a.stop().await;
        }
    }
}

/// The `prepare` arguments of a new `ds` instance restoring `backup_info` (unless null),
/// with database `orders` and user `app` (allowed on it) when `with_tenant`.
pub fn prepare_args(ds: Datastore, backup_info: Value, with_tenant: bool) -> PrepareArgs {
    let (databases, users) = if with_tenant {
        (
            json!([{"_name": "orders", "_character_set": null, "_collate": null}]),
            json!([{"_name": "app", "_password": APP_PASSWORD, "_host": "%",
                    "_databases": [{"_name": "orders"}]}]),
        )
    } else {
        (json!([]), json!([]))
    };
    serde_json::from_value(json!({
        "packages": null, "databases": databases, "memory_mb": 512, "users": users,
        "device_path": null, "mount_point": ds.mount_point(),
        "backup_info": backup_info,
        "config_contents": null, "root_password": null, "overrides": null,
        "cluster_config": null, "snapshot": null, "modules": null, "ds_version": ds.version()
    }))
    .expect("prepare args")
}

/// The `backup_info` of `create_backup`: a full backup `id` of `instance_id` into the
/// store at `store_url`.
pub fn backup_info(ds: Datastore, id: &str, instance_id: &str, store_url: &str) -> Value {
    json!({"id": id, "name": "b", "description": null, "instance_id": instance_id,
        "backup_type": "full", "checksum": null, "parent": null, "datastore": ds.manager(),
        "datastore_version": ds.version(), "storage_driver": "swift", "swift_container": null,
        "swift_url": store_url})
}

/// [`backup_info`] of an incremental backup on the backup at `parent_location`.
pub fn incremental_info(
    ds: Datastore,
    id: &str,
    instance_id: &str,
    store_url: &str,
    parent_location: &str,
    parent_checksum: &str,
) -> Value {
    let mut info = backup_info(ds, id, instance_id, store_url);
    info["backup_type"] = json!("incremental");
    info["parent"] = json!({"location": parent_location, "checksum": parent_checksum});
    info
}

/// The `backup_info` of a `prepare` that restores backup `id`.
pub fn restore_info(ds: Datastore, id: &str, location: &str, checksum: &str) -> Value {
    json!({"id": id, "location": location, "checksum": checksum, "type": ds.restore_type()})
}

/// A local directory store (prefix `prefix`) and its `file://` URL.
pub fn local_store(prefix: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    (dir, url)
}

/// User `app` on database `orders` of the MariaDB server `config` describes, over TCP.
pub async fn mariadb_app_pool(config: &ManagerConfig) -> sqlx::MySqlPool {
    let opts = sqlx::mysql::MySqlConnectOptions::new()
        .host(&config.bind_address.to_string())
        .port(config.port)
        .username("app")
        .password(APP_PASSWORD)
        .database("orders");
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .expect("app connects")
}

/// User `app` on database `orders` of the PostgreSQL server `config` describes, over TCP.
pub async fn pg_app_pool(config: &ManagerConfig) -> sqlx::PgPool {
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host(&config.bind_address.to_string())
        .port(config.port)
        .username("app")
        .password(APP_PASSWORD)
        .database("orders");
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .expect("app connects")
}
