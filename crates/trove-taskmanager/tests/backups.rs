//! Backup workflows (internals-workflows §7.1, §7.4) against a real control database and
//! a fake guest agent served on the in-memory transport: `create_backup` casts the guest
//! with the `backup_info` (plus `swift_url` from the service catalog), and a backup that
//! cannot be handed to a guest ends FAILED; `delete_backup` removes a file-backed object
//! (with its segments and metadata, through trove-backup's local store) and the row, leaves a row it cannot clean DELETE_FAILED and deleted, and never touches
//! imported (RESTORED) objects. No cloud call is made by either.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use trove_backup::{BackupStore, LocalStore};
use trove_compute::{
    ComputeDriver, DriverError, FlavorSpec, NetworkDriver, NetworkRequest, Port, Server,
    ServerRequest, Volume, VolumeDriver, VolumeRequest,
};
use trove_config::Config;
use trove_db::testing::TestDb;
use trove_db::{Backend, Backup, Db, Instance, ServiceStatus, TaskStatus};
use trove_rpc::api::guest::{guest_topic, GUEST_LATEST_VERSION};
use trove_rpc::api::TaskManagerRequest;
use trove_rpc::{
    Dispatcher, InMemoryTransport, RemoteError, RpcContext, RpcEndpoint, SecureSerializer,
    ServerHandle, Target, Transport,
};
use trove_taskmanager::{Drivers, TaskManager};

/// A cloud that must not be used: every call is recorded and fails.
#[derive(Debug, Default)]
struct UnusedCloud(Mutex<Vec<String>>);

impl UnusedCloud {
    fn call<T>(&self, what: &str) -> trove_compute::Result<T> {
        self.0.lock().unwrap().push(what.to_string());
        Err(DriverError::Api(format!("{what} is not expected here")))
    }
}

#[async_trait]
impl ComputeDriver for UnusedCloud {
    async fn create_server(&self, _: &ServerRequest) -> trove_compute::Result<Server> {
        self.call("create_server")
    }
    async fn get_server(&self, _: &str) -> trove_compute::Result<Option<Server>> {
        self.call("get_server")
    }
    async fn delete_server(&self, _: &str) -> trove_compute::Result<()> {
        self.call("delete_server")
    }
    async fn find_server(&self, _: &str) -> trove_compute::Result<Option<Server>> {
        self.call("find_server")
    }
    async fn reboot_server(&self, _: &str) -> trove_compute::Result<()> {
        self.call("reboot_server")
    }
    async fn resize_server(&self, _: &str, _: &FlavorSpec) -> trove_compute::Result<()> {
        self.call("resize_server")
    }
    async fn confirm_resize(&self, _: &str) -> trove_compute::Result<()> {
        self.call("confirm_resize")
    }
    async fn revert_resize(&self, _: &str) -> trove_compute::Result<()> {
        self.call("revert_resize")
    }
}

#[async_trait]
impl VolumeDriver for UnusedCloud {
    async fn create_volume(&self, _: &VolumeRequest) -> trove_compute::Result<Volume> {
        self.call("create_volume")
    }
    async fn get_volume(&self, _: &str) -> trove_compute::Result<Option<Volume>> {
        self.call("get_volume")
    }
    async fn extend_volume(&self, _: &str, _: i64) -> trove_compute::Result<()> {
        self.call("extend_volume")
    }
    async fn delete_volume(&self, _: &str) -> trove_compute::Result<()> {
        self.call("delete_volume")
    }
    async fn find_volumes(&self, _: &str) -> trove_compute::Result<Vec<Volume>> {
        self.call("find_volumes")
    }
}

#[async_trait]
impl NetworkDriver for UnusedCloud {
    async fn allocate(&self, _: &NetworkRequest) -> trove_compute::Result<Vec<Port>> {
        self.call("allocate")
    }
    async fn release(&self, _: &str) -> trove_compute::Result<()> {
        self.call("release")
    }
}

/// A guest agent that records the casts it receives.
#[derive(Default)]
struct FakeGuest(Mutex<Vec<(String, Map<String, Value>)>>);

struct Agent(Arc<FakeGuest>);

#[async_trait]
impl Dispatcher for Agent {
    async fn dispatch(
        &self,
        _ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        self.0 .0.lock().unwrap().push((method.to_string(), args));
        Ok(Value::Null)
    }
}

struct Setup {
    _tdb: TestDb,
    db: Db,
    cloud: Arc<UnusedCloud>,
    transport: Arc<dyn Transport>,
    tm: Arc<TaskManager>,
    version_id: String,
}

async fn setup() -> Setup {
    setup_with(Config::default()).await
}

async fn setup_with(config: Config) -> Setup {
    let tdb = TestDb::new(Backend::Sqlite).await;
    let db = tdb.db().clone();
    for args in [
        vec!["datastore_update", "mariadb", ""],
        vec![
            "datastore_version_update",
            "mariadb",
            "10.11",
            "mariadb",
            "",
            "",
            "1",
        ],
        vec!["datastore_update", "mariadb", "10.11"],
    ] {
        let mut all = vec!["trove-manage"];
        all.extend(args);
        trove_manage::run_args(&db, all).await.unwrap();
    }
    let ds = db.datastore_get("mariadb").await.unwrap();
    let version_id = db
        .datastore_version_find(&ds.id, "10.11", None)
        .await
        .unwrap()
        .id;
    let cloud = Arc::new(UnusedCloud::default());
    let transport: Arc<dyn Transport> = Arc::new(InMemoryTransport::new());
    let tm = TaskManager::new(
        Arc::new(config),
        db.clone(),
        Drivers {
            compute: cloud.clone(),
            volumes: cloud.clone(),
            network: cloud.clone(),
        },
        transport.clone(),
        None,
    );
    Setup {
        _tdb: tdb,
        db,
        cloud,
        transport,
        tm,
        version_id,
    }
}

impl Setup {
    /// An active instance (no per-instance key) and its guest agent.
    async fn instance(&self, id: &str) -> (Arc<FakeGuest>, ServerHandle) {
        let mut row = Instance {
            id: id.into(),
            name: Some(id.into()),
            flavor_id: Some("1".into()),
            tenant_id: Some("p1".into()),
            datastore_version_id: Some(self.version_id.clone()),
            compute_instance_id: Some(format!("srv-{id}")),
            server_status: Some("ACTIVE".into()),
            ..Instance::default()
        };
        row.set_task_status(TaskStatus::None);
        self.db.instance_create(&row).await.unwrap();
        self.db
            .service_status_create(id, ServiceStatus::Healthy)
            .await
            .unwrap();
        let guest = Arc::new(FakeGuest::default());
        let endpoint = RpcEndpoint::new(
            GUEST_LATEST_VERSION,
            Arc::new(SecureSerializer::new(None)),
            Arc::new(Agent(guest.clone())),
        );
        let server = self
            .transport
            .serve(&Target::server(guest_topic(id), id), Arc::new(endpoint))
            .await
            .unwrap();
        (guest, server)
    }

    /// A backup row as the API writes it.
    async fn backup(&self, id: &str, instance: &str, state: &str, location: Option<String>) {
        self.db
            .backup_create(&Backup {
                id: id.into(),
                name: format!("name-{id}"),
                tenant_id: Some("p1".into()),
                state: state.into(),
                instance_id: Some(instance.into()),
                location,
                backup_type: Some("full".into()),
                datastore_version_id: Some(self.version_id.clone()),
                storage_driver: Some("swift".into()),
                ..Backup::default()
            })
            .await
            .unwrap();
    }

    /// The live row of a backup.
    async fn row(&self, id: &str) -> Option<Backup> {
        self.db.backup_get(id).await.ok()
    }
}

fn info(id: &str, instance: &str, driver: &str) -> Value {
    json!({
        "id": id, "name": format!("name-{id}"), "description": null, "instance_id": instance,
        "backup_type": "full", "checksum": null, "parent": null,
        "datastore": "mariadb", "datastore_version": "10.11",
        "storage_driver": driver, "swift_container": null,
    })
}

async fn wait_for_casts(guest: &FakeGuest, n: usize) -> Vec<(String, Map<String, Value>)> {
    for _ in 0..200 {
        let seen = guest.0.lock().unwrap().clone();
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    guest.0.lock().unwrap().clone()
}

#[tokio::test]
async fn create_backup_casts_the_guest_with_the_backup_info() {
    let s = setup().await;
    let (guest, _server) = s.instance("i1").await;
    s.backup("b1", "i1", "NEW", None).await;
    let mut ctx = RpcContext::new_internal();
    ctx.service_catalog = Some(json!([{"type": "object-store", "endpoints": [
        {"interface": "public", "region": "RegionOne", "url": "https://swift.example.org/v1/AUTH_p1"}
    ]}]));
    s.tm.run_request(
        ctx,
        TaskManagerRequest::CreateBackup {
            backup_info: info("b1", "i1", "swift"),
            instance_id: "i1".into(),
        },
    )
    .await;
    let seen = wait_for_casts(&guest, 1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "create_backup");
    let mut want = info("b1", "i1", "swift");
    want["swift_url"] = json!("https://swift.example.org/v1/AUTH_p1");
    assert_eq!(seen[0].1["backup_info"], want);
    // The guest reports progress itself; the row is untouched here.
    assert_eq!(s.row("b1").await.unwrap().state, "NEW");
    assert!(s.cloud.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_backup_that_cannot_reach_a_guest_ends_failed() {
    let s = setup().await;
    let (guest, _server) = s.instance("i1").await;
    // The instance is gone.
    s.backup("b-gone", "i-gone", "NEW", None).await;
    s.tm.run_request(
        RpcContext::new_internal(),
        TaskManagerRequest::CreateBackup {
            backup_info: info("b-gone", "i-gone", "swift"),
            instance_id: "i-gone".into(),
        },
    )
    .await;
    assert_eq!(s.row("b-gone").await.unwrap().state, "FAILED");
    // Volume snapshot backups are not supported.
    s.backup("b-cinder", "i1", "NEW", None).await;
    s.tm.run_request(
        RpcContext::new_internal(),
        TaskManagerRequest::CreateBackup {
            backup_info: info("b-cinder", "i1", "cinder"),
            instance_id: "i1".into(),
        },
    )
    .await;
    assert_eq!(s.row("b-cinder").await.unwrap().state, "FAILED");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(guest.0.lock().unwrap().is_empty());
}

/// Stores `data` as `object` in the local store under `root` (segments of 4 bytes).
async fn put(root: &std::path::Path, object: &str, data: &[u8]) -> String {
    let store = LocalStore::new(root).unwrap().with_segment_size(4);
    let mut reader = data;
    store
        .put("database_backups", object, &mut reader, &Default::default())
        .await
        .unwrap()
        .location
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn delete_backup_removes_the_objects_their_segments_and_the_row() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let small = put(dir.path(), "b1.xbstream.zst", b"abc").await;
    let large = put(dir.path(), "b2.xbstream.zst", b"several segments of data").await;
    let keep = put(dir.path(), "b9.xbstream.zst", b"another backup").await;
    let before = files_under(dir.path());
    assert!(
        before.iter().filter(|f| f.contains("b2")).count() > 2,
        "segments and metadata of the large object: {before:?}"
    );
    s.backup("b1", "i1", "COMPLETED", Some(small)).await;
    s.backup("b2", "i1", "COMPLETED", Some(large)).await;
    s.backup("b3", "i1", "FAILED", None).await;
    for id in ["b1", "b2", "b3"] {
        s.tm.run_request(
            RpcContext::new_internal(),
            TaskManagerRequest::DeleteBackup {
                backup_id: id.into(),
            },
        )
        .await;
        assert!(s.row(id).await.is_none(), "{id} still live");
        let row = s.db.backup_get_any(id).await.unwrap();
        assert!(row.deleted, "{id}");
        assert_eq!(row.datastore_version_id, None, "{id}");
        assert_ne!(row.state, "DELETE_FAILED", "{id}");
    }
    let after = files_under(dir.path());
    assert!(
        after.iter().all(|f| f.contains("b9")),
        "only the other backup's files are left: {after:?}"
    );
    assert!(!after.is_empty());
    LocalStore::for_location(&keep)
        .unwrap()
        .verify(&keep, None)
        .await
        .unwrap();
    assert!(s.db.backup_list_all(None).await.unwrap().is_empty());
    // A redelivered delete finds nothing to do.
    s.tm.run_request(
        RpcContext::new_internal(),
        TaskManagerRequest::DeleteBackup {
            backup_id: "b1".into(),
        },
    )
    .await;
    assert!(s.cloud.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_object_already_gone_is_not_a_failure() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let loc = put(dir.path(), "b1.xbstream.zst", b"abc").await;
    LocalStore::for_location(&loc)
        .unwrap()
        .delete(&loc)
        .await
        .unwrap();
    s.backup("b1", "i1", "COMPLETED", Some(loc)).await;
    s.tm.run_request(
        RpcContext::new_internal(),
        TaskManagerRequest::DeleteBackup {
            backup_id: "b1".into(),
        },
    )
    .await;
    let row = s.db.backup_get_any("b1").await.unwrap();
    assert!(row.deleted);
    assert_eq!(row.state, "COMPLETED");
}

#[tokio::test]
async fn objects_that_cannot_be_deleted_leave_delete_failed_and_imports_are_kept() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let imported = put(dir.path(), "imported.xbstream.zst", b"made elsewhere").await;
    s.backup("b-imported", "i1", "RESTORED", Some(imported.clone()))
        .await;
    s.backup(
        "b-swift",
        "i1",
        "COMPLETED",
        Some("https://swift.example.org/v1/AUTH_p1/database_backups/b-swift.xbstream.gz".into()),
    )
    .await;
    s.backup(
        "b-relative",
        "i1",
        "COMPLETED",
        Some("file://relative/path".into()),
    )
    .await;

    for id in ["b-imported", "b-swift", "b-relative"] {
        s.tm.run_request(
            RpcContext::new_internal(),
            TaskManagerRequest::DeleteBackup {
                backup_id: id.into(),
            },
        )
        .await;
        assert!(
            s.row(id).await.is_none(),
            "{id} is marked deleted in all cases"
        );
        let row = s.db.backup_get_any(id).await.unwrap();
        assert!(row.deleted && row.deleted_at.is_some(), "{id}");
        assert_eq!(row.datastore_version_id, None, "{id}");
        let want = if id == "b-imported" {
            "RESTORED"
        } else {
            "DELETE_FAILED"
        };
        assert_eq!(row.state, want, "{id}");
    }
    LocalStore::for_location(&imported)
        .unwrap()
        .verify(&imported, None)
        .await
        .expect("an imported backup's object is not ours to delete");
}

#[tokio::test]
async fn a_backup_whose_guest_stopped_reporting_ends_failed() {
    let config = Config::from_ini_str("t.conf", "[DEFAULT]\nagent_heartbeat_expiry = 2\n")
        .unwrap()
        .config;
    let s = setup_with(config).await;
    let (_g1, _h1) = s.instance("i-dead").await;
    let (_g2, _h2) = s.instance("i-alive").await;
    s.backup("b-dead", "i-dead", "BUILDING", None).await;
    s.backup("b-alive", "i-alive", "BUILDING", None).await;
    assert_eq!(s.tm.recover().await, 0, "every guest reported just now");
    // Both backups run on; only one guest keeps sending heartbeats. (Times are stored to
    // the second.)
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.db.service_status_touch("i-alive").await.unwrap();
    }
    assert_eq!(s.tm.recover().await, 1);
    let dead = s.row("b-dead").await.unwrap();
    assert_eq!(dead.state, "FAILED");
    assert_eq!(
        dead.fault_message.as_deref(),
        Some("The guest agent stopped responding during the backup."),
        "the tenant reads why"
    );
    let alive = s.row("b-alive").await.unwrap();
    assert_eq!(alive.state, "BUILDING");
    assert_eq!(alive.fault_message, None);
    // A backup that finished meanwhile is left as it is.
    let mut done = s.row("b-alive").await.unwrap();
    done.state = "COMPLETED".into();
    s.db.backup_save(&done).await.unwrap();
    assert!(!s
        .db
        .backup_fail_if_running("b-alive", "not applied")
        .await
        .unwrap());
    let alive = s.row("b-alive").await.unwrap();
    assert_eq!(alive.state, "COMPLETED");
    assert_eq!(alive.fault_message, None);
}
