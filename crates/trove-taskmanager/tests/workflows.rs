//! The taskmanager's workflows against a recording fake cloud (the three driver traits)
//! and a real control database: the order of steps, what a failure at each step leaves
//! (error task, fault, nothing made), one create run by one of two taskmanagers, recovery
//! of a create a stopped taskmanager left, and delete.
//!
//! The guest is played by the test: it writes the service status the conductor would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use trove_compute::{
    Address, ComputeDriver, DriverError, FlavorSpec, NetworkDriver, NetworkRequest, Port, Server,
    ServerRequest, ServerStatus, Volume, VolumeDriver, VolumeRequest, VolumeStatus,
};
use trove_config::Config;
use trove_db::testing::TestDb;
use trove_db::{Backend, Db, Instance, ServiceStatus, TaskStatus};
use trove_rpc::api::{CreateInstanceArgs, TaskManagerRequest};
use trove_rpc::{InMemoryTransport, RpcContext, Transport};
use trove_taskmanager::{Drivers, TaskManager};

/// A cloud that keeps its resources in memory and records every call.
#[derive(Debug, Default)]
struct FakeCloud {
    calls: Mutex<Vec<String>>,
    servers: Mutex<HashMap<String, Server>>,
    volumes: Mutex<HashMap<String, (String, Volume)>>,
    ports: Mutex<HashMap<String, Port>>,
    fail_volume: AtomicBool,
    fail_server: AtomicBool,
    /// `(image id, tags)` of every image resolution.
    image_lookups: Mutex<Vec<(Option<String>, Vec<String>)>>,
    /// The image of every server created.
    server_images: Mutex<Vec<Option<String>>>,
}

impl FakeCloud {
    fn call(&self, c: String) {
        self.calls.lock().unwrap().push(c);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }
    fn empty(&self) -> bool {
        self.servers.lock().unwrap().is_empty()
            && self.volumes.lock().unwrap().is_empty()
            && self.ports.lock().unwrap().is_empty()
    }
}

#[async_trait]
impl ComputeDriver for FakeCloud {
    /// An image service with one image per tag set, and none with the tag `no-image`.
    async fn resolve_image(
        &self,
        image_id: Option<&str>,
        image_tags: &[String],
    ) -> trove_compute::Result<Option<String>> {
        self.image_lookups
            .lock()
            .unwrap()
            .push((image_id.map(str::to_owned), image_tags.to_vec()));
        if image_tags.iter().any(|t| t == "no-image") {
            return Err(DriverError::Invalid(format!(
                "No active image found with the tags {}.",
                image_tags.join(", ")
            )));
        }
        Ok(Some(image_id.map_or_else(
            || format!("img-{}", image_tags.join("-")),
            str::to_owned,
        )))
    }
    async fn create_server(&self, req: &ServerRequest) -> trove_compute::Result<Server> {
        self.call(format!("create_server {}", req.instance_id));
        self.server_images
            .lock()
            .unwrap()
            .push(req.image_id.clone());
        tokio::time::sleep(Duration::from_millis(20)).await;
        if self.fail_server.load(Ordering::SeqCst) {
            return Err(DriverError::Exhausted(
                "no host has room for this flavor".into(),
            ));
        }
        assert!(
            req.files.iter().any(|f| f.path.ends_with("guest_info.conf")
                && f.content
                    .contains(&format!("guest_id = {}", req.instance_id))),
            "guest_info.conf injected"
        );
        let s = Server {
            id: format!("srv-{}", req.instance_id),
            status: ServerStatus::Active,
            addresses: req.ports.iter().flat_map(|p| p.addresses.clone()).collect(),
            flavor_id: req.flavor.id.clone(),
            volume: None,
            fault: None,
        };
        self.servers.lock().unwrap().insert(s.id.clone(), s.clone());
        Ok(s)
    }
    async fn get_server(&self, id: &str) -> trove_compute::Result<Option<Server>> {
        Ok(self.servers.lock().unwrap().get(id).cloned())
    }
    async fn delete_server(&self, id: &str) -> trove_compute::Result<()> {
        self.call(format!("delete_server {id}"));
        self.servers.lock().unwrap().remove(id);
        Ok(())
    }
    async fn find_server(&self, instance_id: &str) -> trove_compute::Result<Option<Server>> {
        self.get_server(&format!("srv-{instance_id}")).await
    }
    async fn reboot_server(&self, id: &str) -> trove_compute::Result<()> {
        self.call(format!("reboot_server {id}"));
        Ok(())
    }
    async fn resize_server(&self, id: &str, flavor: &FlavorSpec) -> trove_compute::Result<()> {
        self.call(format!("resize_server {id} {}", flavor.id));
        if let Some(s) = self.servers.lock().unwrap().get_mut(id) {
            s.status = ServerStatus::VerifyResize;
            s.flavor_id = flavor.id.clone();
        }
        Ok(())
    }
    async fn confirm_resize(&self, id: &str) -> trove_compute::Result<()> {
        self.call(format!("confirm_resize {id}"));
        if let Some(s) = self.servers.lock().unwrap().get_mut(id) {
            s.status = ServerStatus::Active;
        }
        Ok(())
    }
    async fn revert_resize(&self, id: &str) -> trove_compute::Result<()> {
        self.call(format!("revert_resize {id}"));
        Ok(())
    }
}

#[async_trait]
impl VolumeDriver for FakeCloud {
    async fn create_volume(&self, req: &VolumeRequest) -> trove_compute::Result<Volume> {
        self.call(format!("create_volume {}", req.instance_id));
        if self.fail_volume.load(Ordering::SeqCst) {
            return Err(DriverError::Exhausted(
                "volume quota of the service project exceeded".into(),
            ));
        }
        let v = Volume {
            id: format!("vol-{}", req.instance_id),
            size_gb: req.size_gb,
            status: VolumeStatus::Available,
        };
        self.volumes
            .lock()
            .unwrap()
            .insert(v.id.clone(), (req.instance_id.clone(), v.clone()));
        Ok(v)
    }
    async fn get_volume(&self, id: &str) -> trove_compute::Result<Option<Volume>> {
        Ok(self.volumes.lock().unwrap().get(id).map(|v| v.1.clone()))
    }
    async fn extend_volume(&self, id: &str, size: i64) -> trove_compute::Result<()> {
        self.call(format!("extend_volume {id} {size}"));
        if let Some(v) = self.volumes.lock().unwrap().get_mut(id) {
            v.1.size_gb = size;
        }
        Ok(())
    }
    async fn delete_volume(&self, id: &str) -> trove_compute::Result<()> {
        self.call(format!("delete_volume {id}"));
        self.volumes.lock().unwrap().remove(id);
        Ok(())
    }
    async fn find_volumes(&self, instance_id: &str) -> trove_compute::Result<Vec<Volume>> {
        Ok(self
            .volumes
            .lock()
            .unwrap()
            .values()
            .filter(|(i, _)| i == instance_id)
            .map(|(_, v)| v.clone())
            .collect())
    }
}

#[async_trait]
impl NetworkDriver for FakeCloud {
    async fn allocate(&self, req: &NetworkRequest) -> trove_compute::Result<Vec<Port>> {
        self.call(format!("allocate {}", req.instance_id));
        assert_eq!(
            req.tcp_ports.first(),
            Some(&3306),
            "the datastore's ports are opened"
        );
        let n = self.ports.lock().unwrap().len() + 1;
        let p = Port {
            id: format!("port-{}", req.instance_id),
            addresses: vec![Address {
                address: format!("10.0.0.{n}"),
                kind: "private".into(),
                network: "mgmt".into(),
            }],
        };
        self.ports
            .lock()
            .unwrap()
            .insert(req.instance_id.clone(), p.clone());
        Ok(vec![p])
    }
    async fn release(&self, instance_id: &str) -> trove_compute::Result<()> {
        self.call(format!("release {instance_id}"));
        self.ports.lock().unwrap().remove(instance_id);
        Ok(())
    }
}

struct Setup {
    _tdb: TestDb,
    db: Db,
    cloud: Arc<FakeCloud>,
    config: Arc<Config>,
    transport: Arc<dyn Transport>,
}

async fn setup(usage_timeout: i64) -> Setup {
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
            "--version",
            "10.11.19",
        ],
        vec!["datastore_update", "mariadb", "10.11"],
        vec!["flavor_create", "m1.tiny", "512", "1", "1", "--id", "1"],
    ] {
        let mut all = vec!["trove-manage"];
        all.extend(args);
        trove_manage::run_args(&db, all).await.unwrap();
    }
    let mut config = Config::default();
    config.default.usage_timeout = usage_timeout;
    config.default.usage_sleep_time = 1;
    config.default.guest_config = "/nonexistent/trove-guestagent.conf".into();
    Setup {
        _tdb: tdb,
        db,
        cloud: Arc::new(FakeCloud::default()),
        config: Arc::new(config),
        transport: Arc::new(InMemoryTransport::new()),
    }
}

impl Setup {
    fn taskmanager(&self) -> Arc<TaskManager> {
        TaskManager::new(
            self.config.clone(),
            self.db.clone(),
            Drivers {
                compute: self.cloud.clone(),
                volumes: self.cloud.clone(),
                network: self.cloud.clone(),
            },
            self.transport.clone(),
            None,
        )
    }

    /// An instance row as the API writes it (BUILDING, service status NEW, own key).
    async fn instance(&self, id: &str) -> TaskManagerRequest {
        let ds = self.db.datastore_get("mariadb").await.unwrap();
        let version = self
            .db
            .datastore_version_find(&ds.id, "10.11", None)
            .await
            .unwrap();
        let mut row = Instance {
            id: id.into(),
            name: Some(format!("name-{id}")),
            flavor_id: Some("1".into()),
            volume_size: Some(1),
            tenant_id: Some("p1".into()),
            datastore_version_id: Some(version.id.clone()),
            encrypted_key: trove_common::crypto::new_encrypted_instance_key(
                true,
                self.config.default.inst_rpc_key_encr_key.expose_secret(),
            ),
            ..Instance::default()
        };
        row.set_task_status(TaskStatus::Building);
        self.db.instance_create(&row).await.unwrap();
        self.db
            .service_status_create(id, ServiceStatus::New)
            .await
            .unwrap();
        TaskManagerRequest::CreateInstance(Box::new(CreateInstanceArgs {
            instance_id: json!(id),
            name: json!(format!("name-{id}")),
            flavor: json!({"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1}),
            datastore_manager: "mariadb".into(),
            volume_size: Some(1),
            ds_version: Some("10.11.19".into()),
            ..CreateInstanceArgs::default()
        }))
    }

    async fn task(&self, id: &str) -> TaskStatus {
        self.db
            .instance_get_any(id)
            .await
            .unwrap()
            .task_status()
            .unwrap()
    }

    /// Plays the guest: after `delay`, reports `status` as the conductor would write it.
    fn guest_reports(&self, id: &str, status: ServiceStatus, delay: Duration) {
        let db = self.db.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            db.service_status_update(&id, status).await.unwrap();
        });
    }
}

#[tokio::test]
async fn create_builds_in_trove_order_and_ends_active() {
    let s = setup(60).await;
    let tm = s.taskmanager();
    let req = s.instance("i-ok").await;
    s.guest_reports("i-ok", ServiceStatus::Healthy, Duration::from_millis(300));
    tm.run_request(RpcContext::new_internal(), req).await;
    assert_eq!(s.task("i-ok").await, TaskStatus::None);
    assert_eq!(
        s.cloud.calls(),
        vec!["allocate i-ok", "create_volume i-ok", "create_server i-ok"]
    );
    let inst = s.db.instance_get("i-ok").await.unwrap();
    assert_eq!(inst.compute_instance_id.as_deref(), Some("srv-i-ok"));
    assert_eq!(inst.volume_id.as_deref(), Some("vol-i-ok"));
    assert_eq!(inst.server_status.as_deref(), Some("ACTIVE"));
    assert!(inst.task_start_time.is_some(), "the create was claimed");
    let addrs = s.db.instance_addresses("i-ok").await.unwrap();
    assert_eq!(addrs.len(), 1);
    assert_eq!(addrs[0].address, "10.0.0.1");
    assert!(s.db.instance_fault_get("i-ok").await.unwrap().is_none());
}

#[tokio::test]
async fn one_create_delivered_to_two_taskmanagers_is_built_once() {
    let s = setup(60).await;
    let (a, b) = (s.taskmanager(), s.taskmanager());
    let req = s.instance("i-twice").await;
    s.guest_reports(
        "i-twice",
        ServiceStatus::Healthy,
        Duration::from_millis(300),
    );
    tokio::join!(
        a.run_request(RpcContext::new_internal(), req.clone()),
        b.run_request(RpcContext::new_internal(), req)
    );
    assert_eq!(s.cloud.count("create_server"), 1, "{:?}", s.cloud.calls());
    assert_eq!(s.cloud.count("allocate"), 1);
    assert_eq!(s.task("i-twice").await, TaskStatus::None);
}

#[tokio::test]
async fn a_failed_volume_leaves_an_error_task_a_fault_and_nothing_made() {
    let s = setup(60).await;
    s.cloud.fail_volume.store(true, Ordering::SeqCst);
    let req = s.instance("i-vol").await;
    s.taskmanager()
        .run_request(RpcContext::new_internal(), req)
        .await;
    assert_eq!(s.task("i-vol").await, TaskStatus::BuildingErrorVolume);
    let fault =
        s.db.instance_fault_get("i-vol")
            .await
            .unwrap()
            .expect("fault");
    assert!(
        fault
            .message
            .contains("volume quota of the service project exceeded"),
        "{}",
        fault.message
    );
    assert_eq!(s.cloud.count("create_server"), 0);
    assert!(s.cloud.empty(), "left: {:?}", s.cloud.calls());
    let st = s.db.service_status_get("i-vol").await.unwrap();
    assert_eq!(st.status(), Some(ServiceStatus::Failed));
}

#[tokio::test]
async fn a_failed_server_removes_the_volume_and_the_port() {
    let s = setup(60).await;
    s.cloud.fail_server.store(true, Ordering::SeqCst);
    let req = s.instance("i-srv").await;
    s.taskmanager()
        .run_request(RpcContext::new_internal(), req)
        .await;
    assert_eq!(s.task("i-srv").await, TaskStatus::BuildingErrorServer);
    let fault = s.db.instance_fault_get("i-srv").await.unwrap().unwrap();
    assert!(
        fault.message.contains("no host has room"),
        "{}",
        fault.message
    );
    assert!(s.cloud.empty(), "left: {:?}", s.cloud.calls());
    assert!(s
        .cloud
        .calls()
        .contains(&"delete_volume vol-i-srv".to_string()));
}

#[tokio::test]
async fn a_guest_that_fails_its_prepare_ends_in_error_with_everything_removed() {
    let s = setup(60).await;
    let req = s.instance("i-gf").await;
    s.guest_reports("i-gf", ServiceStatus::Failed, Duration::from_millis(300));
    s.taskmanager()
        .run_request(RpcContext::new_internal(), req)
        .await;
    assert_eq!(s.task("i-gf").await, TaskStatus::BuildingErrorTimeoutGa);
    let fault = s.db.instance_fault_get("i-gf").await.unwrap().unwrap();
    assert!(
        fault.message.contains("Service not active"),
        "{}",
        fault.message
    );
    assert!(s.cloud.empty(), "left: {:?}", s.cloud.calls());
    assert!(s.db.instance_addresses("i-gf").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_silent_guest_times_out_after_usage_timeout() {
    let s = setup(2).await;
    let req = s.instance("i-quiet").await;
    let started = std::time::Instant::now();
    s.taskmanager()
        .run_request(RpcContext::new_internal(), req)
        .await;
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(s.task("i-quiet").await, TaskStatus::BuildingErrorTimeoutGa);
    let st = s.db.service_status_get("i-quiet").await.unwrap();
    assert_eq!(st.status(), Some(ServiceStatus::FailedTimeoutGuestagent));
    let fault = s.db.instance_fault_get("i-quiet").await.unwrap().unwrap();
    assert!(fault.message.contains("usage_timeout"), "{}", fault.message);
    assert!(s.cloud.empty());
}

#[tokio::test]
async fn recovery_fails_and_cleans_a_create_a_stopped_taskmanager_left() {
    let s = setup(2).await;
    let req = s.instance("i-orphan").await;
    // A taskmanager that stops while waiting for the guest leaves the create as it was.
    let first = s.taskmanager();
    let run = {
        let first = first.clone();
        tokio::spawn(async move { first.run_request(RpcContext::new_internal(), req).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.shutdown().await;
    run.await.unwrap();
    assert_eq!(s.task("i-orphan").await, TaskStatus::Building);
    assert_eq!(s.cloud.count("create_server"), 1);
    assert!(!s.cloud.empty());
    // The next taskmanager finds it once usage_timeout has passed.
    let next = s.taskmanager();
    assert_eq!(next.recover().await, 0, "not stale yet");
    // (Times are stored to the second, so allow one more.)
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(next.recover().await, 1);
    assert_eq!(s.task("i-orphan").await, TaskStatus::BuildingErrorTimeoutGa);
    let fault = s.db.instance_fault_get("i-orphan").await.unwrap().unwrap();
    assert!(fault.message.contains("interrupted"), "{}", fault.message);
    assert!(s.cloud.empty(), "left: {:?}", s.cloud.calls());
}

#[tokio::test]
async fn delete_removes_every_resource_and_the_row() {
    let s = setup(60).await;
    let tm = s.taskmanager();
    let req = s.instance("i-del").await;
    s.guest_reports("i-del", ServiceStatus::Healthy, Duration::from_millis(200));
    tm.run_request(RpcContext::new_internal(), req).await;
    assert_eq!(s.task("i-del").await, TaskStatus::None);
    s.db.instance_update_task("i-del", None, TaskStatus::Deleting)
        .await
        .unwrap();
    tm.run_request(
        RpcContext::new_internal(),
        TaskManagerRequest::DeleteInstance {
            instance_id: "i-del".into(),
        },
    )
    .await;
    assert!(s.cloud.empty(), "left: {:?}", s.cloud.calls());
    let row = s.db.instance_get_any("i-del").await.unwrap();
    assert!(row.deleted);
    assert!(s.db.instance_addresses("i-del").await.unwrap().is_empty());
    assert_eq!(
        s.db.service_status_get("i-del").await.unwrap().status(),
        Some(ServiceStatus::Deleted)
    );
}

#[tokio::test]
async fn resize_volume_extends_and_records_the_size() {
    let s = setup(60).await;
    let tm = s.taskmanager();
    let req = s.instance("i-rv").await;
    s.guest_reports("i-rv", ServiceStatus::Healthy, Duration::from_millis(200));
    tm.run_request(RpcContext::new_internal(), req).await;
    s.db.instance_update_task("i-rv", None, TaskStatus::Resizing)
        .await
        .unwrap();
    // No guest answers resize_fs here: the volume still grows and is recorded, the guest
    // error becomes a fault, and the task goes back to NONE.
    let mut cfg = (*s.config).clone();
    cfg.default.agent_call_low_timeout = 1;
    cfg.default.agent_call_high_timeout = 1;
    let tm = TaskManager::new(
        Arc::new(cfg),
        s.db.clone(),
        Drivers {
            compute: s.cloud.clone(),
            volumes: s.cloud.clone(),
            network: s.cloud.clone(),
        },
        s.transport.clone(),
        None,
    );
    tm.run_request(
        RpcContext::new_internal(),
        TaskManagerRequest::ResizeVolume {
            new_size: 3,
            instance_id: "i-rv".into(),
        },
    )
    .await;
    assert!(s
        .cloud
        .calls()
        .contains(&"extend_volume vol-i-rv 3".to_string()));
    assert_eq!(
        s.db.instance_get("i-rv").await.unwrap().volume_size,
        Some(3)
    );
    assert_eq!(s.task("i-rv").await, TaskStatus::None);
    let fault = s.db.instance_fault_get("i-rv").await.unwrap().unwrap();
    assert!(
        fault.message.starts_with("Volume resize failed"),
        "{}",
        fault.message
    );
}

#[tokio::test]
async fn recovery_completes_a_create_whose_guest_came_up_after_its_taskmanager_stopped() {
    let s = setup(2).await;
    let req = s.instance("i-late").await;
    let first = s.taskmanager();
    let run = {
        let first = first.clone();
        tokio::spawn(async move { first.run_request(RpcContext::new_internal(), req).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.shutdown().await;
    run.await.unwrap();
    // The guest reports after its taskmanager is gone.
    s.db.service_status_update("i-late", ServiceStatus::Healthy)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let next = s.taskmanager();
    assert_eq!(next.recover().await, 1);
    assert_eq!(s.task("i-late").await, TaskStatus::None);
    assert!(s.db.instance_fault_get("i-late").await.unwrap().is_none());
    assert_eq!(s.cloud.count("delete_server"), 0, "{:?}", s.cloud.calls());
}

/// Gives the seeded version image tags instead of an image id.
async fn tag_version(db: &Db, tags: &str) {
    db.datastore_version_upsert(&trove_db::DatastoreVersionSpec {
        datastore: "mariadb".into(),
        name: "10.11".into(),
        manager: "mariadb".into(),
        image_id: String::new(),
        packages: String::new(),
        active: true,
        image_tags: Some(tags.into()),
        version: Some("10.11.19".into()),
        registry_ext: None,
        repl_strategy: None,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_image_is_resolved_from_the_version_tags_before_anything_is_made() {
    let s = setup(60).await;
    tag_version(&s.db, "trove, mariadb").await;
    let req = s.instance("i-img").await;
    s.guest_reports("i-img", ServiceStatus::Healthy, Duration::from_millis(300));
    s.taskmanager()
        .run_request(RpcContext::new_internal(), req)
        .await;
    assert_eq!(s.task("i-img").await, TaskStatus::None);
    assert_eq!(
        s.cloud.image_lookups.lock().unwrap().clone(),
        vec![(None, vec!["trove".to_string(), "mariadb".to_string()])]
    );
    assert_eq!(
        s.cloud.server_images.lock().unwrap().clone(),
        vec![Some("img-trove-mariadb".to_string())]
    );
}

#[tokio::test]
async fn no_image_for_the_tags_fails_the_create_with_a_readable_fault_and_nothing_made() {
    let s = setup(60).await;
    tag_version(&s.db, "trove,no-image").await;
    let req = s.instance("i-noimg").await;
    s.taskmanager()
        .run_request(RpcContext::new_internal(), req)
        .await;
    assert_eq!(s.task("i-noimg").await, TaskStatus::BuildingErrorServer);
    let fault = s.db.instance_fault_get("i-noimg").await.unwrap().unwrap();
    assert!(
        fault
            .message
            .contains("No active image found with the tags trove, no-image."),
        "{}",
        fault.message
    );
    // Nothing was asked for (the clean-up after a failed create releases, idempotently).
    assert_eq!(
        s.cloud.count("allocate") + s.cloud.count("create_"),
        0,
        "{:?}",
        s.cloud.calls()
    );
    assert!(s.cloud.empty());
}

#[tokio::test]
async fn a_source_that_cannot_snapshot_fails_its_replicas_and_keeps_no_snapshot() {
    let mut s = setup(60).await;
    let mut config = (*s.config).clone();
    config.default.agent_replication_snapshot_timeout = 1;
    s.config = Arc::new(config);
    // The source: built, but its guest does not answer (nobody listens on its topic).
    let req = s.instance("i-src").await;
    s.guest_reports("i-src", ServiceStatus::Healthy, Duration::from_millis(200));
    let tm = s.taskmanager();
    tm.run_request(RpcContext::new_internal(), req).await;
    assert_eq!(s.task("i-src").await, TaskStatus::None);
    // Two replicas of it, as the API writes them.
    let mut ids = Vec::new();
    for id in ["i-r1", "i-r2"] {
        let TaskManagerRequest::CreateInstance(_) = s.instance(id).await else {
            unreachable!()
        };
        s.db.instance_update_slave_of(id, Some("i-src"))
            .await
            .unwrap();
        ids.push(id);
    }
    let replicas = TaskManagerRequest::CreateInstance(Box::new(CreateInstanceArgs {
        instance_id: json!(ids),
        name: json!(["r-1", "r-2"]),
        flavor: json!({"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1}),
        datastore_manager: "mariadb".into(),
        volume_size: Some(1),
        slave_of_id: Some("i-src".into()),
        ds_version: Some("10.11.19".into()),
        ..CreateInstanceArgs::default()
    }));
    let calls_before = s.cloud.calls().len();
    tm.run_request(RpcContext::new_internal(), replicas).await;
    for id in &ids {
        assert_eq!(s.task(id).await, TaskStatus::BuildingErrorReplica, "{id}");
        let fault = s.db.instance_fault_get(id).await.unwrap().unwrap();
        assert!(
            fault.message.contains("replication snapshot"),
            "{}",
            fault.message
        );
    }
    // The source keeps working and says why.
    assert_eq!(s.task("i-src").await, TaskStatus::None);
    let fault = s.db.instance_fault_get("i-src").await.unwrap().unwrap();
    assert!(fault.message.contains("Timeout"), "{}", fault.message);
    // Nothing was made for the replicas; the snapshot's backup row is gone.
    assert_eq!(s.cloud.calls().len(), calls_before, "{:?}", s.cloud.calls());
    let backups = s.db.backup_list("p1", None, 100, None).await.unwrap();
    assert!(backups.items.is_empty(), "{:?}", backups.items);
}
