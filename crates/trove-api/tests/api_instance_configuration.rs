//! Configuration groups on instances (api.md §4.5, internals-workflows.md §6): attach
//! and detach through `PUT`/`PATCH /instances/{id}` against a fake guest agent on the
//! in-memory transport, the checks and their messages, the task left behind, and new
//! group values pushed to the instances using the group.

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
use trove_db::{
    Backend, ConfigParamRule, Configuration, DatastoreVersionSpec, Instance, ServiceStatus,
    TaskStatus,
};
use trove_rpc::api::guest::{guest_topic, GUEST_LATEST_VERSION};
use trove_rpc::api::GuestRequest;
use trove_rpc::{
    Dispatcher, InMemoryTransport, RemoteError, RpcContext, RpcEndpoint, SecureSerializer,
    ServerHandle, Target, Transport,
};

/// A guest agent recording the override calls it receives.
#[derive(Default)]
struct FakeGuest {
    /// `(method, overrides, remove)` in order.
    calls: Mutex<Vec<(String, Value, bool)>>,
    /// When set, `update_overrides` fails with this message.
    fail: Mutex<Option<String>>,
}

impl FakeGuest {
    fn calls(&self) -> Vec<(String, Value, bool)> {
        self.calls.lock().unwrap().clone()
    }
}

struct Agent(Arc<FakeGuest>);

#[async_trait]
impl Dispatcher for Agent {
    async fn dispatch(
        &self,
        _ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        match GuestRequest::decode(method, args)? {
            GuestRequest::UpdateOverrides { overrides, remove } => {
                if let Some(msg) = self.0.fail.lock().unwrap().clone() {
                    return Err(RemoteError::trove("BadRequest", msg));
                }
                self.0
                    .calls
                    .lock()
                    .unwrap()
                    .push(("update_overrides".into(), overrides, remove));
            }
            GuestRequest::ApplyOverrides { overrides } => {
                self.0
                    .calls
                    .lock()
                    .unwrap()
                    .push(("apply_overrides".into(), overrides, false));
            }
            other => panic!("unexpected guest call {other:?}"),
        }
        Ok(Value::Null)
    }
}

struct App {
    base: String,
    client: reqwest::Client,
    tdb: TestDb,
    transport: Arc<dyn Transport>,
    version_id: String,
    other_version_id: String,
    config: Config,
    servers: Vec<ServerHandle>,
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
        let spec = |name: &str| DatastoreVersionSpec {
            datastore: "mariadb".into(),
            name: name.into(),
            manager: "mariadb".into(),
            image_id: String::new(),
            packages: String::new(),
            active: true,
            image_tags: None,
            version: None,
            registry_ext: None,
            repl_strategy: None,
        };
        let v = db.datastore_version_upsert(&spec("10.11")).await.unwrap();
        let other = db.datastore_version_upsert(&spec("10.6")).await.unwrap();
        db.config_params_upsert(
            &v.id,
            &[
                ConfigParamRule {
                    name: "max_connections".into(),
                    restart_required: false,
                    data_type: "integer".into(),
                    min: Some("1".into()),
                    max: Some("100000".into()),
                },
                ConfigParamRule {
                    name: "autocommit".into(),
                    restart_required: false,
                    data_type: "boolean".into(),
                    min: None,
                    max: None,
                },
                ConfigParamRule {
                    name: "character_set_server".into(),
                    restart_required: true,
                    data_type: "string".into(),
                    min: None,
                    max: None,
                },
            ],
        )
        .await
        .unwrap();
        let router = ApiApp::builder(
            Arc::new(config.clone()),
            db.clone(),
            Arc::new(Enforcer::with_defaults()),
            Arc::new(NoAuth),
            Some(Arc::new(RecordingTaskManager::new())),
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
            version_id: v.id,
            other_version_id: other.id,
            config,
            servers: Vec::new(),
            shutdown: Some(tx),
        }
    }

    fn db(&self) -> &trove_db::Db {
        self.tdb.db()
    }

    /// An ACTIVE, healthy instance of `PROJECT` on `version_id`, with a per-instance key
    /// and a served fake guest.
    async fn instance(&mut self, version_id: &str) -> (String, Arc<FakeGuest>) {
        let id = uuid::Uuid::new_v4().to_string();
        let key = format!("key-{}", uuid::Uuid::new_v4().simple());
        let mut inst = Instance {
            id: id.clone(),
            name: Some("db1".into()),
            tenant_id: Some(PROJECT.into()),
            datastore_version_id: Some(version_id.into()),
            flavor_id: Some("2".into()),
            volume_size: Some(1),
            server_status: Some("ACTIVE".into()),
            compute_instance_id: Some("server-1".into()),
            encrypted_key: Some(trove_common::crypto::encrypt_instance_key(
                &key,
                self.config.default.inst_rpc_key_encr_key.expose_secret(),
            )),
            ..Instance::default()
        };
        inst.set_task_status(TaskStatus::None);
        self.db().instance_create(&inst).await.unwrap();
        self.db()
            .service_status_create(&id, ServiceStatus::Healthy)
            .await
            .unwrap();
        let guest = Arc::new(FakeGuest::default());
        let endpoint = RpcEndpoint::new(
            GUEST_LATEST_VERSION,
            Arc::new(SecureSerializer::new(Some(key))),
            Arc::new(Agent(guest.clone())),
        );
        let server = self
            .transport
            .serve(&Target::server(guest_topic(&id), &id), Arc::new(endpoint))
            .await
            .expect("serve guest");
        self.servers.push(server);
        (id, guest)
    }

    /// A group of `PROJECT` on `version_id` with `values` (stored text).
    async fn group(&self, version_id: &str, values: &[(&str, &str)]) -> String {
        let row = Configuration {
            id: trove_db::new_id(),
            name: "cfg".into(),
            tenant_id: PROJECT.into(),
            datastore_version_id: version_id.into(),
            ..Configuration::default()
        };
        let items: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.db()
            .configuration_create(&row, &items)
            .await
            .unwrap()
            .id
    }

    async fn update(&self, method: Method, id: &str, body: Value) -> Resp {
        send(
            self.client
                .request(
                    method,
                    format!("{}/v1.0/{PROJECT}/instances/{id}", self.base),
                )
                .header("host", HOST)
                .header("accept", "application/json")
                .json(&body),
        )
        .await
    }

    async fn group_call(&self, method: Method, id: &str, body: Value) -> Resp {
        send(
            self.client
                .request(
                    method,
                    format!("{}/v1.0/{PROJECT}/configurations/{id}", self.base),
                )
                .header("host", HOST)
                .header("accept", "application/json")
                .json(&body),
        )
        .await
    }

    async fn row(&self, id: &str) -> Instance {
        self.db().instance_get(id).await.unwrap()
    }
}

fn attach(cid: &str) -> Value {
    json!({"instance": {"configuration": cid}})
}

#[tokio::test]
async fn attach_without_restart_applies_live_and_detach_with_null_or_empty() {
    let mut app = App::start().await;
    let (id, guest) = app.instance(&app.version_id.clone()).await;
    let cid = app
        .group(
            &app.version_id.clone(),
            &[("max_connections", "200"), ("autocommit", "1")],
        )
        .await;
    let r = app.update(Method::PUT, &id, attach(&cid)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.text, "");
    let want = json!({"max_connections": 200, "autocommit": true});
    assert_eq!(
        guest.calls(),
        vec![
            ("update_overrides".to_string(), want.clone(), false),
            ("apply_overrides".to_string(), want, false),
        ]
    );
    let row = app.row(&id).await;
    assert_eq!(row.configuration_id.as_deref(), Some(cid.as_str()));
    assert_eq!(row.task_status(), Some(TaskStatus::None));

    // Attaching again: 400 ConfigurationAlreadyAttached.
    let r = app.update(Method::PATCH, &id, attach(&cid)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        format!("Instance {id} already has a Configuration Group attached: {cid}.")
    );

    // Detach with null: the guest removes its overrides; a restart is needed to go
    // back to the defaults.
    let r = app
        .update(
            Method::PUT,
            &id,
            json!({"instance": {"configuration": null}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        guest.calls()[2],
        ("update_overrides".to_string(), json!({}), true)
    );
    assert_eq!(guest.calls().len(), 3);
    let row = app.row(&id).await;
    assert_eq!(row.configuration_id, None);
    assert_eq!(row.task_status(), Some(TaskStatus::RestartRequired));

    // While RESTART_REQUIRED, attaching is refused by the state gate.
    let r = app.update(Method::PUT, &id, attach(&cid)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "The operation you have requested cannot be executed because the instance status \
         is currently: RESTART_REQUIRED."
    );

    // `{}` detaches too, and detaching nothing is a no-op.
    app.db()
        .instance_update_task(&id, None, TaskStatus::None)
        .await
        .unwrap();
    let r = app.update(Method::PATCH, &id, attach(&cid)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = app.update(Method::PUT, &id, json!({"instance": {}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(app.row(&id).await.configuration_id, None);
    let n = guest.calls().len();
    app.db()
        .instance_update_task(&id, None, TaskStatus::None)
        .await
        .unwrap();
    let r = app.update(Method::PUT, &id, json!({"instance": {}})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(guest.calls().len(), n);
}

#[tokio::test]
async fn attach_of_a_restart_parameter_leaves_restart_required() {
    let mut app = App::start().await;
    let (id, guest) = app.instance(&app.version_id.clone()).await;
    let cid = app
        .group(
            &app.version_id.clone(),
            &[
                ("character_set_server", "utf8mb4"),
                ("max_connections", "50"),
            ],
        )
        .await;
    let r = app.update(Method::PATCH, &id, attach(&cid)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        guest.calls(),
        vec![(
            "update_overrides".to_string(),
            json!({"character_set_server": "utf8mb4", "max_connections": 50}),
            false
        )]
    );
    let row = app.row(&id).await;
    assert_eq!(row.configuration_id.as_deref(), Some(cid.as_str()));
    assert_eq!(row.task_status(), Some(TaskStatus::RestartRequired));
    let show = send(
        app.client
            .get(format!("{}/v1.0/{PROJECT}/instances/{id}", app.base))
            .header("host", HOST),
    )
    .await
    .json();
    assert_eq!(show["instance"]["status"], "RESTART_REQUIRED");
}

#[tokio::test]
async fn attach_checks_group_version_state_and_guest_errors() {
    let mut app = App::start().await;
    let (id, guest) = app.instance(&app.version_id.clone()).await;
    let missing = uuid::Uuid::new_v4().to_string();
    let r = app.update(Method::PUT, &id, attach(&missing)).await;
    assert_eq!(
        r.fault(404, "itemNotFound"),
        format!("Configuration group with ID {missing} could not be found.")
    );
    let other = app.group(&app.other_version_id.clone(), &[]).await;
    let r = app.update(Method::PUT, &id, attach(&other)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        format!(
            "Datastore Version on Configuration {other} does not match the Datastore \
             Version on Instance {id}."
        )
    );
    let cid = app
        .group(&app.version_id.clone(), &[("max_connections", "10")])
        .await;
    // Not ACTIVE: the server status is reported.
    let mut row = app.row(&id).await;
    row.server_status = Some("SHUTOFF".into());
    app.db().instance_save(&row).await.unwrap();
    let r = app.update(Method::PUT, &id, attach(&cid)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "The operation you have requested cannot be executed because the instance status \
         is currently: SHUTOFF."
    );
    // A task running: its action is reported.
    row.server_status = Some("ACTIVE".into());
    row.set_task_status(TaskStatus::Rebooting);
    app.db().instance_save(&row).await.unwrap();
    let r = app.update(Method::PUT, &id, attach(&cid)).await;
    assert_eq!(
        r.fault(400, "badRequest"),
        "The operation you have requested cannot be executed because the instance status \
         is currently: REBOOTING."
    );
    assert!(guest.calls().is_empty());
    // The guest refusing: 400 with its message, nothing recorded.
    app.db()
        .instance_update_task(&id, None, TaskStatus::None)
        .await
        .unwrap();
    *guest.fail.lock().unwrap() = Some("disk full".into());
    let r = app.update(Method::PUT, &id, attach(&cid)).await;
    let msg = r.fault(400, "badRequest");
    assert!(msg.contains("disk full"), "{msg}");
    let row = app.row(&id).await;
    assert_eq!(row.configuration_id, None);
    assert_eq!(row.task_status(), Some(TaskStatus::None));
}

#[tokio::test]
async fn new_group_values_reach_the_instances_using_the_group() {
    let mut app = App::start().await;
    let (id, guest) = app.instance(&app.version_id.clone()).await;
    let cid = app
        .group(&app.version_id.clone(), &[("max_connections", "10")])
        .await;
    assert_eq!(app.update(Method::PUT, &id, attach(&cid)).await.status, 202);

    let r = app
        .group_call(
            Method::PATCH,
            &cid,
            json!({"configuration": {"values": {"max_connections": 20}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let want = json!({"max_connections": 20});
    assert_eq!(
        guest.calls()[2..].to_vec(),
        vec![
            ("update_overrides".to_string(), want.clone(), false),
            ("apply_overrides".to_string(), want, false),
        ]
    );
    assert_eq!(app.row(&id).await.task_status(), Some(TaskStatus::None));

    let r = app
        .group_call(
            Method::PUT,
            &cid,
            json!({"configuration": {"values": {"character_set_server": "latin1"}}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(
        guest.calls()[4..].to_vec(),
        vec![(
            "update_overrides".to_string(),
            json!({"character_set_server": "latin1"}),
            false
        )]
    );
    assert_eq!(
        app.row(&id).await.task_status(),
        Some(TaskStatus::RestartRequired)
    );
}
