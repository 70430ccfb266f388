//! Management instance actions and diagnostics (api.md §19.2, §19.3): `stop`, `reboot`,
//! `reset-task-status`, `migrate`/`rebuild` (validated, then 501), root history, and the
//! guest calls `get_diagnostics`, `get_hwinfo` and `rpc_ping` through a fake guest agent
//! served on trove-rpc's in-memory transport; and the `deleted` / `project_id` filters and
//! offset paging of the management list (api.md §19.1).

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{send, Resp, HOST, PROJECT};
use reqwest::Method;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use trove_api::auth::NoAuth;
use trove_api::guest::RpcGuestClients;
use trove_api::policy::Enforcer;
use trove_api::taskmanager::RecordingTaskManager;
use trove_api::ApiApp;
use trove_config::Config;
use trove_db::testing::TestDb;
use trove_db::{Backend, DatastoreVersionSpec, Instance, ServiceStatus, TaskStatus};
use trove_rpc::api::guest::{guest_topic, GUEST_LATEST_VERSION};
use trove_rpc::{
    Dispatcher, InMemoryTransport, RemoteError, RpcContext, RpcEndpoint, SecureSerializer,
    ServerHandle, Target, Transport,
};

/// A guest agent that records the methods it receives and answers the diagnostics calls.
#[derive(Default)]
struct FakeGuest {
    seen: Mutex<Vec<String>>,
}

struct Agent(Arc<FakeGuest>);

#[async_trait]
impl Dispatcher for Agent {
    async fn dispatch(
        &self,
        _ctx: RpcContext,
        method: &str,
        _args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        self.0.seen.lock().unwrap().push(method.to_string());
        match method {
            "stop_db" => Ok(Value::Null),
            "rpc_ping" => Ok(json!(true)),
            "get_diagnostics" => Ok(json!({"version": "0.1.0", "threads": 9, "fd_size": 64,
                "vm_size": 300000, "vm_peak": 312000, "vm_rss": 20000, "vm_hwm": 21000})),
            "get_hwinfo" => Ok(json!({"mem_total": 16318540, "num_cpus": 4})),
            other => Err(RemoteError::no_such_method(other)),
        }
    }
}

struct App {
    base: String,
    client: reqwest::Client,
    tdb: TestDb,
    transport: Arc<dyn Transport>,
    taskmanager: Arc<RecordingTaskManager>,
    version_id: String,
    _servers: Vec<ServerHandle>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl App {
    async fn start() -> App {
        let mut config = Config::default();
        config.default.agent_call_low_timeout = 1;
        config.default.agent_call_high_timeout = 2;
        let transport: Arc<dyn Transport> = Arc::new(InMemoryTransport::new());
        let tdb = TestDb::new(Backend::Sqlite).await;
        let db = tdb.db();
        db.datastore_update("mariadb", None).await.unwrap();
        let v = db
            .datastore_version_upsert(&DatastoreVersionSpec {
                datastore: "mariadb".into(),
                name: "10.11".into(),
                manager: "mariadb".into(),
                image_id: String::new(),
                packages: String::new(),
                active: true,
                image_tags: Some("trove".into()),
                version: None,
                registry_ext: None,
                repl_strategy: None,
            })
            .await
            .unwrap();
        let taskmanager = Arc::new(RecordingTaskManager::new());
        let router = ApiApp::builder(
            Arc::new(config.clone()),
            db.clone(),
            Arc::new(Enforcer::with_defaults()),
            Arc::new(NoAuth),
            Some(taskmanager.clone()),
        )
        .guests(Arc::new(RpcGuestClients::from_config(
            transport.clone(),
            &config,
        )))
        .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(trove_api::serve(listener, router, async move {
            let _ = rx.await;
        }));
        App {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            tdb,
            transport,
            taskmanager,
            version_id: v.id,
            _servers: Vec::new(),
            shutdown: Some(tx),
        }
    }

    fn db(&self) -> &trove_db::Db {
        self.tdb.db()
    }

    /// An ACTIVE, healthy instance of another project; `guest`: served by a fake agent.
    async fn instance(&mut self, guest: bool) -> (String, Arc<FakeGuest>) {
        let id = uuid::Uuid::new_v4().to_string();
        let mut inst = Instance {
            id: id.clone(),
            name: Some("db1".into()),
            tenant_id: Some("other-project".into()),
            datastore_version_id: Some(self.version_id.clone()),
            flavor_id: Some("2".into()),
            volume_size: Some(1),
            server_status: Some("ACTIVE".into()),
            compute_instance_id: Some("server-1".into()),
            ..Instance::default()
        };
        inst.set_task_status(TaskStatus::None);
        self.db().instance_create(&inst).await.unwrap();
        self.db()
            .service_status_create(&id, ServiceStatus::Healthy)
            .await
            .unwrap();
        let fake = Arc::new(FakeGuest::default());
        if guest {
            let endpoint = RpcEndpoint::new(
                GUEST_LATEST_VERSION,
                Arc::new(SecureSerializer::new(None)),
                Arc::new(Agent(fake.clone())),
            );
            let server = self
                .transport
                .serve(&Target::server(guest_topic(&id), &id), Arc::new(endpoint))
                .await
                .expect("serve guest");
            self._servers.push(server);
        }
        (id, fake)
    }

    fn req(&self, method: Method, path: &str, admin: bool) -> reqwest::RequestBuilder {
        let rb = self
            .client
            .request(method, format!("{}/v1.0/{PROJECT}{path}", self.base))
            .header("host", HOST)
            .header("accept", "application/json")
            .header("x-user-id", "alice");
        if admin {
            rb.header("x-roles", "admin")
        } else {
            rb
        }
    }

    async fn action(&self, id: &str, body: Value) -> Resp {
        send(
            self.req(Method::POST, &format!("/mgmt/instances/{id}/action"), true)
                .json(&body),
        )
        .await
    }

    async fn get(&self, path: &str) -> Resp {
        send(self.req(Method::GET, path, true)).await
    }

    async fn task(&self, id: &str) -> TaskStatus {
        self.db()
            .instance_get(id)
            .await
            .unwrap()
            .task_status()
            .unwrap()
    }
}

fn accepted(r: &Resp) {
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(r.text.is_empty(), "body: {}", r.text);
}

#[tokio::test]
async fn non_admins_get_401_on_every_mgmt_instance_call() {
    let mut app = App::start().await;
    let (id, guest) = app.instance(true).await;
    for (method, path, body) in [
        (
            Method::POST,
            format!("/mgmt/instances/{id}/action"),
            Some(json!({"reboot": {}})),
        ),
        (Method::GET, format!("/mgmt/instances/{id}/root"), None),
        (
            Method::GET,
            format!("/mgmt/instances/{id}/diagnostics"),
            None,
        ),
        (Method::GET, format!("/mgmt/instances/{id}/hwinfo"), None),
        (Method::GET, format!("/mgmt/instances/{id}/rpc_ping"), None),
    ] {
        let mut rb = app.req(method, &path, false);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = send(rb).await;
        assert_eq!(
            r.fault(401, "unauthorized"),
            "User does not have admin privileges.",
            "{path}"
        );
    }
    assert!(app.taskmanager.casts().is_empty());
    assert!(guest.seen.lock().unwrap().is_empty());
    assert_eq!(app.task(&id).await, TaskStatus::None);
}

#[tokio::test]
async fn reboot_sets_the_task_and_service_status_and_casts() {
    let mut app = App::start().await;
    let (id, _) = app.instance(false).await;
    accepted(&app.action(&id, json!({"reboot": {}})).await);
    assert_eq!(app.task(&id).await, TaskStatus::Rebooting);
    let svc = app.db().service_status_get(&id).await.unwrap();
    assert_eq!(svc.status(), Some(ServiceStatus::Restarting));
    let casts = app.taskmanager.casts();
    assert_eq!(casts.len(), 1);
    let (ctx, method, args) = &casts[0];
    assert_eq!(method, "reboot");
    assert_eq!(args, &json!({"instance_id": id}));
    assert!(ctx.is_admin);
    // A second reboot while the first runs fails the state gate.
    let r = app.action(&id, json!({"reboot": {}})).await;
    let msg = r.fault(422, "unprocessableEntity");
    assert!(msg.contains("is not currently available"), "{msg}");
    assert_eq!(app.taskmanager.casts().len(), 1);
}

#[tokio::test]
async fn reset_task_status_clears_the_task_and_fails_running_backups() {
    let mut app = App::start().await;
    let (id, _) = app.instance(false).await;
    app.db()
        .instance_update_task(&id, None, TaskStatus::Rebooting)
        .await
        .unwrap();
    let mk = |state: &str| trove_db::Backup {
        id: trove_db::new_id(),
        name: format!("b-{state}"),
        tenant_id: Some("other-project".into()),
        state: state.into(),
        instance_id: Some(id.clone()),
        ..Default::default()
    };
    let running = app.db().backup_create(&mk("SAVING")).await.unwrap();
    let done = app.db().backup_create(&mk("COMPLETED")).await.unwrap();
    accepted(&app.action(&id, json!({"reset-task-status": {}})).await);
    assert_eq!(app.task(&id).await, TaskStatus::None);
    assert_eq!(
        app.db().backup_get(&running.id).await.unwrap().state,
        "FAILED"
    );
    assert_eq!(
        app.db().backup_get(&done.id).await.unwrap().state,
        "COMPLETED"
    );
    // The service status is left as it was.
    let svc = app.db().service_status_get(&id).await.unwrap();
    assert_eq!(svc.status(), Some(ServiceStatus::Healthy));
    assert!(app.taskmanager.casts().is_empty());
}

#[tokio::test]
async fn stop_calls_the_guest_and_guest_errors_are_400() {
    let mut app = App::start().await;
    let (id, guest) = app.instance(true).await;
    accepted(&app.action(&id, json!({"stop": {}})).await);
    assert_eq!(*guest.seen.lock().unwrap(), vec!["stop_db".to_string()]);
    assert!(app.taskmanager.casts().is_empty());
    // No agent listening: the call times out, which Trove answers with 400.
    let (silent, _) = app.instance(false).await;
    let r = app.action(&silent, json!({"stop": {}})).await;
    let msg = r.fault(400, "badRequest");
    assert!(msg.contains("Timeout"), "{msg}");
}

#[tokio::test]
async fn bad_bodies_unknown_instances_migrate_and_rebuild() {
    let mut app = App::start().await;
    let (id, _) = app.instance(false).await;
    let r = app.action(&id, json!({"reboot": {}, "stop": {}})).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Only one action can be specified per request."
    );
    let r = app.action(&id, json!({"explode": {}})).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "Invalid instance action: explode"
    );
    let r = app.action(&id, json!({})).await;
    assert_eq!(r.fault(400, "badRequest"), "Invalid request body.");
    for bad in [
        json!({"rebuild": {}}),
        json!({"rebuild": {"image_id": "nope"}}),
        json!({"rebuild": {"image_id": "8d8a3f2e-1b7c-4b8e-9b59-0c6f3f1a2b3c", "x": 1}}),
        json!({"migrate": {"host": 5}}),
        json!({"migrate": {"where": "compute-2"}}),
    ] {
        let msg = app.action(&id, bad.clone()).await.fault(400, "badRequest");
        assert!(msg.starts_with("Validation error"), "{bad}: {msg}");
    }
    // Valid migrate and rebuild bodies: the local compute driver cannot do either.
    let r = app
        .action(&id, json!({"migrate": {"host": "compute-2"}}))
        .await;
    assert!(r.fault(501, "notImplemented").contains("cannot migrate"));
    let r = app
        .action(
            &id,
            json!({"rebuild": {"image_id": "8d8a3f2e-1b7c-4b8e-9b59-0c6f3f1a2b3c"}}),
        )
        .await;
    assert!(r.fault(501, "notImplemented").contains("cannot rebuild"));
    assert_eq!(app.task(&id).await, TaskStatus::None);
    assert!(app.taskmanager.casts().is_empty());
    // Unknown and deleted instances are 404.
    let unknown = uuid::Uuid::new_v4().to_string();
    let r = app.action(&unknown, json!({"reboot": {}})).await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        format!("Resource {unknown} cannot be found.")
    );
    app.db().instance_soft_delete(&id).await.unwrap();
    let r = app.action(&id, json!({"reset-task-status": {}})).await;
    r.fault(404, "itemNotFound");
}

#[tokio::test]
async fn root_history_never_then_enabled() {
    let mut app = App::start().await;
    let (id, _) = app.instance(false).await;
    let r = app.get(&format!("/mgmt/instances/{id}/root")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"root_history": {"id": id, "enabled": "Never", "user": "Nobody"}})
    );
    let row = app.db().root_history_record(&id, "user-7").await.unwrap();
    let r = app.get(&format!("/mgmt/instances/{id}/root")).await;
    let v = r.json();
    assert_eq!(v["root_history"]["id"], json!(id));
    assert_eq!(v["root_history"]["user"], "user-7");
    assert_eq!(
        v["root_history"]["enabled"],
        row.created.unwrap().format("%Y-%m-%dT%H:%M:%S").to_string()
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    app.get(&format!("/mgmt/instances/{unknown}/root"))
        .await
        .fault(404, "itemNotFound");
}

#[tokio::test]
async fn diagnostics_hwinfo_and_rpc_ping_ask_the_guest() {
    let mut app = App::start().await;
    let (id, guest) = app.instance(true).await;
    let r = app.get(&format!("/mgmt/instances/{id}/diagnostics")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"diagnostics": {"version": "0.1.0", "threads": 9, "fdSize": 64,
            "vmSize": 300000, "vmPeak": 312000, "vmRss": 20000, "vmHwm": 21000}})
    );
    let r = app.get(&format!("/mgmt/instances/{id}/hwinfo")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"hwinfo": {"mem_total": 16318540, "num_cpus": 4}})
    );
    let r = app.get(&format!("/mgmt/instances/{id}/rpc_ping")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert_eq!(
        *guest.seen.lock().unwrap(),
        vec!["get_diagnostics", "get_hwinfo", "rpc_ping"]
    );
    // A guest that does not answer: 400 (GuestTimeout is not in Trove's error map).
    let (silent, _) = app.instance(false).await;
    for what in ["diagnostics", "hwinfo", "rpc_ping"] {
        let r = app.get(&format!("/mgmt/instances/{silent}/{what}")).await;
        assert!(r.fault(400, "badRequest").contains("Timeout"), "{what}");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    app.get(&format!("/mgmt/instances/{unknown}/rpc_ping"))
        .await
        .fault(404, "itemNotFound");
}

#[tokio::test]
async fn list_filters_deleted_and_project_and_pages_by_offset() {
    let mut app = App::start().await;
    let (a, _) = app.instance(false).await;
    let (b, _) = app.instance(false).await;
    let (gone, _) = app.instance(false).await;
    app.db().instance_soft_delete(&gone).await.unwrap();
    let ids = |r: Resp| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.text);
        let mut v: Vec<String> = r.json()["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let r = app.get("/mgmt/instances?deleted=true").await;
    let listed = r.json();
    assert_eq!(ids(r), vec![gone.clone()]);
    assert_eq!(listed["instances"][0]["deleted"], true);
    assert!(listed["instances"][0]["deleted_at"].is_string());
    assert_eq!(listed["instances"][0]["tenant_id"], "other-project");
    assert_eq!(
        ids(app.get("/mgmt/instances?deleted=False").await),
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        ids(app.get("/mgmt/instances").await),
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        ids(app
            .get("/mgmt/instances?project_id=other-project&deleted=true")
            .await),
        vec![gone.clone()]
    );
    assert!(ids(app
        .get(&format!("/mgmt/instances?project_id={PROJECT}"))
        .await)
    .is_empty());
    // Offset paging over the two live ones, one per page (the limit is not capped).
    let first = app.get("/mgmt/instances?limit=1").await.json();
    assert_eq!(first["instances"].as_array().unwrap().len(), 1);
    let next = first["links"][0]["href"].as_str().unwrap();
    assert!(next.contains("marker=1"), "{next}");
    let rest = app.get("/mgmt/instances?limit=1&marker=1").await.json();
    assert_eq!(rest["instances"].as_array().unwrap().len(), 1);
    assert!(rest.get("links").is_none());
    assert_ne!(first["instances"][0]["id"], rest["instances"][0]["id"]);
    for _ in 0..4 {
        app.instance(false).await;
    }
    let big = app.get("/mgmt/instances?limit=1000").await.json();
    assert_eq!(big["instances"].as_array().unwrap().len(), 6);
    let first = app.get("/mgmt/instances?limit=2&deleted=true").await.json();
    assert_eq!(first["instances"].as_array().unwrap().len(), 1);
    assert!(first.get("links").is_none());
    // Paging over all six live instances.
    let first = app.get("/mgmt/instances?limit=4").await.json();
    assert_eq!(first["instances"].as_array().unwrap().len(), 4);
    let next = first["links"][0]["href"].as_str().unwrap();
    assert!(next.contains("marker=4"), "{next}");
    let rest = app.get("/mgmt/instances?limit=4&marker=4").await.json();
    assert_eq!(rest["instances"].as_array().unwrap().len(), 2);
    assert!(rest.get("links").is_none());
    let mut seen: Vec<String> = first["instances"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["instances"].as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);
    assert!(seen.contains(&a) && seen.contains(&b) && !seen.contains(&gone));
    // Non-admins: 401.
    let r = send(app.req(Method::GET, "/mgmt/instances?deleted=true", false)).await;
    r.fault(401, "unauthorized");
}
