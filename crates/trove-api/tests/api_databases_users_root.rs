//! Databases, users, user access and root (api.md §6-§8) through real guest RPC: a fake
//! guest agent is served on trove-rpc's in-memory transport (topic `guestagent.<id>`,
//! the instance's own key), keeps databases, users, grants and root in memory and refuses
//! what a real guest would; one test runs the same calls through RabbitMQ.

mod common;
#[path = "common/fake_guest_pages.rs"]
mod fake_guest_pages;
use fake_guest_pages::{page, remote};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{redact, send, Resp, HOST, PROJECT};
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
use trove_rpc::api::{DatabaseModel, GuestRequest, UserModel};
use trove_rpc::{
    Dispatcher, InMemoryTransport, RemoteError, RpcContext, RpcEndpoint, SecureSerializer,
    ServerHandle, Target, Transport,
};

// ---------------------------------------------------------------------------------------
// The fake guest agent.

#[derive(Default)]
struct GuestData {
    dbs: BTreeMap<String, DatabaseModel>,
    /// By `name@host`, the order Trove pages users in.
    users: BTreeMap<String, UserModel>,
    root_password: Option<String>,
}

/// A guest agent keeping its database server in memory.
#[derive(Default)]
struct FakeGuest {
    data: Mutex<GuestData>,
    /// Contexts' user ids of the messages received, in order, with the method.
    seen: Mutex<Vec<(String, String)>>,
}

fn key(name: &str, host: &str) -> String {
    format!("{name}@{host}")
}

impl FakeGuest {
    fn with_system_db() -> Self {
        let g = FakeGuest::default();
        g.data.lock().unwrap().dbs.insert(
            "mysql".into(),
            DatabaseModel {
                name: "mysql".into(),
                ..DatabaseModel::default()
            },
        );
        g
    }

    fn handle(&self, req: GuestRequest) -> Result<Value, RemoteError> {
        let mut d = self.data.lock().unwrap();
        match req {
            GuestRequest::CreateDatabase { databases } => {
                for v in databases {
                    let db: DatabaseModel =
                        serde_json::from_value(v).map_err(|e| remote(e.to_string()))?;
                    if db.name.is_empty() {
                        return Err(remote("Schema name empty."));
                    }
                    d.dbs.insert(db.name.clone(), db);
                }
                Ok(Value::Null)
            }
            GuestRequest::ListDatabases {
                limit,
                marker,
                include_marker,
            } => Ok(page(&d.dbs, limit, marker, include_marker)),
            GuestRequest::DeleteDatabase { database } => {
                let name = database["_name"].as_str().unwrap_or_default().to_string();
                d.dbs.remove(&name);
                for u in d.users.values_mut() {
                    u.databases.retain(|x| x.name != name);
                }
                Ok(Value::Null)
            }
            GuestRequest::CreateUser { users } => {
                for v in users {
                    let u: UserModel =
                        serde_json::from_value(v).map_err(|e| remote(e.to_string()))?;
                    let host = u.host.clone().unwrap_or_else(|| "%".into());
                    d.users.insert(key(&u.name, &host), u);
                }
                Ok(Value::Null)
            }
            GuestRequest::ListUsers {
                limit,
                marker,
                include_marker,
            } => {
                let shown: BTreeMap<String, UserModel> = d
                    .users
                    .iter()
                    .map(|(k, u)| {
                        let mut u = u.clone();
                        u.password = None;
                        (k.clone(), u)
                    })
                    .collect();
                Ok(page(&shown, limit, marker, include_marker))
            }
            GuestRequest::GetUser { username, hostname } => {
                let k = key(&username, hostname.as_deref().unwrap_or("%"));
                Ok(match d.users.get(&k) {
                    Some(u) => {
                        let mut u = u.clone();
                        u.password = None;
                        serde_json::to_value(u).unwrap()
                    }
                    None => Value::Null,
                })
            }
            GuestRequest::DeleteUser { user } => {
                let u: UserModel =
                    serde_json::from_value(user).map_err(|e| remote(e.to_string()))?;
                d.users
                    .remove(&key(&u.name, u.host.as_deref().unwrap_or("%")));
                Ok(Value::Null)
            }
            GuestRequest::ChangePasswords { users } => {
                for u in users {
                    let k = key(
                        u["name"].as_str().unwrap_or_default(),
                        u["host"].as_str().unwrap_or("%"),
                    );
                    let Some(found) = d.users.get_mut(&k) else {
                        return Err(remote(format!("User {k} does not exist.")));
                    };
                    found.password = u["password"].as_str().map(str::to_string);
                }
                Ok(Value::Null)
            }
            GuestRequest::UpdateAttributes {
                username,
                hostname,
                user_attrs,
            } => {
                let old = key(&username, hostname.as_deref().unwrap_or("%"));
                let Some(mut u) = d.users.remove(&old) else {
                    return Err(remote(format!("User {old} does not exist.")));
                };
                if let Some(n) = user_attrs["name"].as_str() {
                    u.name = n.into();
                }
                if let Some(h) = user_attrs["host"].as_str() {
                    u.host = Some(h.into());
                }
                if let Some(p) = user_attrs["password"].as_str() {
                    u.password = Some(p.into());
                }
                let k = key(&u.name, u.host.as_deref().unwrap_or("%"));
                d.users.insert(k, u);
                Ok(Value::Null)
            }
            GuestRequest::GrantAccess {
                username,
                hostname,
                databases,
            } => {
                for db in &databases {
                    if !d.dbs.contains_key(db) {
                        return Err(remote(format!("Database '{db}' does not exist")));
                    }
                }
                let k = key(&username, hostname.as_deref().unwrap_or("%"));
                let Some(u) = d.users.get_mut(&k) else {
                    return Err(remote(format!("User {k} does not exist.")));
                };
                for db in databases {
                    if !u.databases.iter().any(|x| x.name == db) {
                        u.databases.push(DatabaseModel {
                            name: db,
                            ..DatabaseModel::default()
                        });
                    }
                }
                Ok(Value::Null)
            }
            GuestRequest::RevokeAccess {
                username,
                hostname,
                database,
            } => {
                let k = key(&username, hostname.as_deref().unwrap_or("%"));
                if let Some(u) = d.users.get_mut(&k) {
                    u.databases.retain(|x| x.name != database);
                }
                Ok(Value::Null)
            }
            GuestRequest::ListAccess { username, hostname } => {
                let k = key(&username, hostname.as_deref().unwrap_or("%"));
                let dbs = d
                    .users
                    .get(&k)
                    .map(|u| u.databases.clone())
                    .unwrap_or_default();
                Ok(serde_json::to_value(dbs).unwrap())
            }
            GuestRequest::EnableRoot {} => {
                let pw = format!("gen-{}", uuid::Uuid::new_v4().simple());
                d.root_password = Some(pw.clone());
                Ok(root_user(&pw))
            }
            GuestRequest::EnableRootWithPassword { root_password } => {
                let pw = root_password.unwrap_or_else(|| "gen".into());
                d.root_password = Some(pw.clone());
                Ok(root_user(&pw))
            }
            GuestRequest::DisableRoot {} => {
                d.root_password = None;
                Ok(Value::Null)
            }
            GuestRequest::IsRootEnabled {} => Ok(json!(d.root_password.is_some())),
            other => Err(RemoteError::no_such_method(&format!("{other:?}"))),
        }
    }
}

fn root_user(pw: &str) -> Value {
    serde_json::to_value(UserModel {
        name: "root".into(),
        password: Some(pw.into()),
        host: Some("%".into()),
        is_root: true,
        ..UserModel::default()
    })
    .unwrap()
}

struct Agent(Arc<FakeGuest>);

#[async_trait]
impl Dispatcher for Agent {
    async fn dispatch(
        &self,
        ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        self.0
            .seen
            .lock()
            .unwrap()
            .push((method.to_string(), ctx.user.clone().unwrap_or_default()));
        let req = GuestRequest::decode(method, args)?;
        self.0.handle(req)
    }
}

/// Serves `guest` as the agent of `instance_id` with `key` on `transport`.
async fn serve_guest(
    transport: &dyn Transport,
    instance_id: &str,
    key: Option<String>,
    guest: Arc<FakeGuest>,
) -> ServerHandle {
    let endpoint = RpcEndpoint::new(
        GUEST_LATEST_VERSION,
        Arc::new(SecureSerializer::new(key)),
        Arc::new(Agent(guest)),
    );
    transport
        .serve(
            &Target::server(guest_topic(instance_id), instance_id),
            Arc::new(endpoint),
        )
        .await
        .expect("serve guest")
}

// ---------------------------------------------------------------------------------------
// The API under test.

struct App {
    base: String,
    client: reqwest::Client,
    tdb: TestDb,
    transport: Arc<dyn Transport>,
    version_id: String,
    redis_version_id: String,
    config: Config,
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

fn test_config() -> Config {
    let mut cfg = Config::default();
    cfg.default.agent_call_low_timeout = 1;
    cfg.default.agent_call_high_timeout = 2;
    cfg
}

impl App {
    async fn start(transport: Arc<dyn Transport>) -> App {
        Self::start_with(transport, Enforcer::with_defaults()).await
    }

    async fn start_with(transport: Arc<dyn Transport>, enforcer: Enforcer) -> App {
        let config = test_config();
        let tdb = TestDb::new(Backend::Sqlite).await;
        let db = tdb.db();
        db.datastore_update("mariadb", None).await.unwrap();
        db.datastore_update("redis", None).await.unwrap();
        let spec = |ds: &str, name: &str, manager: &str| DatastoreVersionSpec {
            datastore: ds.into(),
            name: name.into(),
            manager: manager.into(),
            image_id: String::new(),
            packages: String::new(),
            active: true,
            image_tags: None,
            version: None,
            registry_ext: None,
            repl_strategy: None,
        };
        let v = db
            .datastore_version_upsert(&spec("mariadb", "10.11", "mariadb"))
            .await
            .unwrap();
        let redis = db
            .datastore_version_upsert(&spec("redis", "7", "redis"))
            .await
            .unwrap();
        let router = ApiApp::builder(
            Arc::new(config.clone()),
            db.clone(),
            Arc::new(enforcer),
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
            redis_version_id: redis.id,
            config,
            _servers: Vec::new(),
            shutdown: Some(tx),
        }
    }

    fn db(&self) -> &trove_db::Db {
        self.tdb.db()
    }

    /// Inserts an ACTIVE instance whose guest reports `service`; `encrypted`: with a
    /// per-instance key. Returns (id, plaintext key).
    async fn instance(
        &self,
        project: &str,
        version_id: &str,
        service: ServiceStatus,
        encrypted: bool,
    ) -> (String, Option<String>) {
        let id = uuid::Uuid::new_v4().to_string();
        let key = encrypted.then(|| format!("key-{}", uuid::Uuid::new_v4().simple()));
        let mut inst = Instance {
            id: id.clone(),
            name: Some("db1".into()),
            tenant_id: Some(project.into()),
            datastore_version_id: Some(version_id.into()),
            flavor_id: Some("2".into()),
            volume_size: Some(1),
            server_status: Some("ACTIVE".into()),
            compute_instance_id: Some("server-1".into()),
            encrypted_key: key.as_ref().map(|k| {
                trove_common::crypto::encrypt_instance_key(
                    k,
                    self.config.default.inst_rpc_key_encr_key.expose_secret(),
                )
            }),
            ..Instance::default()
        };
        inst.set_task_status(if service == ServiceStatus::New {
            TaskStatus::Building
        } else {
            TaskStatus::None
        });
        self.db().instance_create(&inst).await.unwrap();
        self.db().service_status_create(&id, service).await.unwrap();
        (id, key)
    }

    /// An ACTIVE, healthy MariaDB instance of `PROJECT` with a served fake guest.
    async fn healthy(&mut self, encrypted: bool) -> (String, Arc<FakeGuest>) {
        let (id, key) = self
            .instance(
                PROJECT,
                &self.version_id.clone(),
                ServiceStatus::Healthy,
                encrypted,
            )
            .await;
        let guest = Arc::new(FakeGuest::with_system_db());
        let server = serve_guest(&*self.transport, &id, key, guest.clone()).await;
        self._servers.push(server);
        (id, guest)
    }

    fn v1(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/v1.0/{PROJECT}{path}", self.base))
            .header("host", HOST)
            .header("accept", "application/json")
            .header("x-user-id", "alice")
    }

    async fn get(&self, path: &str) -> Resp {
        send(self.v1(Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        send(self.v1(Method::POST, path).json(&body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Resp {
        send(self.v1(Method::PUT, path).json(&body)).await
    }

    async fn delete(&self, path: &str) -> Resp {
        send(self.v1(Method::DELETE, path)).await
    }
}

/// Waits until `cond` holds on the guest's data (casts are applied asynchronously).
async fn eventually(guest: &FakeGuest, what: &str, cond: impl Fn(&GuestData) -> bool) {
    for _ in 0..200 {
        if cond(&guest.data.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the guest never saw: {what}");
}

fn accepted(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.text, "", "empty body expected");
    assert!(r.header("content-type").starts_with("application/json"));
}

/// Masks the instance id and other UUIDs of a body, for snapshots.
fn snap(v: &Value) -> Value {
    redact(v)
}

// ---------------------------------------------------------------------------------------
// Databases.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_create_list_paged_and_delete() {
    let mut app = App::start(Arc::new(InMemoryTransport::new())).await;
    let (id, guest) = app.healthy(true).await;
    let path = format!("/instances/{id}/databases");

    let r = app
        .post(
            &path,
            json!({"databases": [
                {"name": "orders", "character_set": "utf8mb4", "collate": "utf8mb4_general_ci"},
                {"name": "reports"}, {"name": "archive"}
            ]}),
        )
        .await;
    accepted(&r, 202);
    eventually(&guest, "three databases", |d| d.dbs.len() == 4).await;
    let orders = guest.data.lock().unwrap().dbs["orders"].clone();
    assert_eq!(orders.character_set.as_deref(), Some("utf8mb4"));
    assert_eq!(orders.collate.as_deref(), Some("utf8mb4_general_ci"));
    // The request reached the guest with the caller's context.
    assert!(guest
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|(m, u)| m == "create_database" && u == "alice"));

    // The system database is hidden; everything in one page has no links.
    let r = app.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    insta::assert_json_snapshot!("databases_list", snap(&r.json()));

    // Paging by name: limit 2 gives a next link with the last name as marker.
    let r = app.get(&format!("{path}?limit=2")).await;
    let body = r.json();
    let names: Vec<&str> = body["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["archive"], "mysql is on the page but hidden");
    let next = body["links"][0]["href"].as_str().unwrap();
    assert_eq!(body["links"][0]["rel"], "next");
    assert_eq!(
        next,
        format!("https://{HOST}/v1.0/{PROJECT}{path}?limit=2&marker=mysql")
    );
    let r = app.get(&format!("{path}?limit=2&marker=mysql")).await;
    let body = r.json();
    assert_eq!(
        body["databases"],
        json!([{"name": "orders"}, {"name": "reports"}])
    );
    assert!(body.get("links").is_none(), "{body}");
    let r = app.get(&format!("{path}?limit=x")).await;
    r.fault(400, "badRequest");

    // Refusals.
    let cases = [
        (
            json!({}),
            "Validation error: 'databases' is a required property",
        ),
        (
            json!({"databases": [{"name": ""}]}),
            "Validation error: databases[0]['name'] '' is too short",
        ),
        (
            json!({"databases": [{"name": "bad;name"}]}),
            "'bad;name' is not a valid schema name.",
        ),
        (
            json!({"databases": [{"name": "mysql"}]}),
            "Cannot create database: Database name \"mysql\" is on the reserved list: ['mysql', 'information_schema', 'performance_schema'].",
        ),
        (
            json!({"databases": [{"name": "dup1"}, {"name": "dup1"}]}),
            "Two or more databases share the same name in the initial databases list. Please correct the names or remove the duplicate entries.",
        ),
        (
            json!({"databases": [{"name": "orders"}]}),
            "A database with the name \"orders\" already exists.",
        ),
    ];
    for (body, message) in cases {
        let r = app.post(&path, body.clone()).await;
        assert_eq!(r.fault(400, "badRequest"), message, "{body}");
    }

    // Show exists but is not implemented.
    app.get(&format!("{path}/orders"))
        .await
        .fault(501, "notImplemented");

    // Drop.
    accepted(&app.delete(&format!("{path}/reports")).await, 202);
    eventually(&guest, "reports dropped", |d| {
        !d.dbs.contains_key("reports")
    })
    .await;
    assert_eq!(
        app.delete(&format!("{path}/reports"))
            .await
            .fault(404, "itemNotFound"),
        "Database reports cannot be found on the instance."
    );
    assert_eq!(
        app.delete(&format!("{path}/mysql")).await.fault(400, "badRequest"),
        "Database delete error: Cannot delete database: Database name \"mysql\" is on the reserved list: ['mysql', 'information_schema', 'performance_schema']."
    );
}

// ---------------------------------------------------------------------------------------
// Users and grants.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_create_list_show_update_passwords_and_delete() {
    let mut app = App::start(Arc::new(InMemoryTransport::new())).await;
    let (id, guest) = app.healthy(true).await;
    let users = format!("/instances/{id}/users");
    accepted(
        &app.post(
            &format!("/instances/{id}/databases"),
            json!({"databases": [{"name": "orders"}]}),
        )
        .await,
        202,
    );
    eventually(&guest, "orders", |d| d.dbs.contains_key("orders")).await;

    let r = app
        .post(
            &users,
            json!({"users": [
                {"name": "app", "password": "s3cret-Pass", "host": "%", "databases": [{"name": "orders"}]},
                {"name": "report", "password": "x9-Pass", "host": "10.0.0.%", "databases": []},
                {"name": "bob", "password": "pw-Bob1", "host": "10.0.0.1"}
            ]}),
        )
        .await;
    accepted(&r, 202);
    eventually(&guest, "three users", |d| d.users.len() == 3).await;
    // Reserved users the guest has are hidden from the list.
    guest.data.lock().unwrap().users.insert(
        "os_admin@localhost".into(),
        UserModel {
            name: "os_admin".into(),
            host: Some("localhost".into()),
            ..UserModel::default()
        },
    );
    let r = app.get(&users).await;
    assert_eq!(r.status, 200, "{}", r.text);
    insta::assert_json_snapshot!("users_list", snap(&r.json()));

    // Paging by name@host.
    let body = app.get(&format!("{users}?limit=1")).await.json();
    assert_eq!(body["users"][0]["name"], "app");
    assert!(body["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with("?limit=1&marker=app%40%25"));
    let body = app
        .get(&format!("{users}?limit=1&marker=app%40%25"))
        .await
        .json();
    assert_eq!(body["users"][0]["name"], "bob");

    // Show: `name`, `name@host` with the client's quoting (`%40`, `%2e`, `%25`).
    let r = app.get(&format!("{users}/app")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    insta::assert_json_snapshot!("user_show", snap(&r.json()));
    let r = app.get(&format!("{users}/bob%4010%2e0%2e0%2e1")).await;
    assert_eq!(r.json()["user"]["host"], "10.0.0.1", "{}", r.text);
    let r = app.get(&format!("{users}/report%4010%2e0%2e0%2e%25")).await;
    assert_eq!(r.json()["user"]["host"], "10.0.0.%", "{}", r.text);
    assert_eq!(
        app.get(&format!("{users}/nobody"))
            .await
            .fault(404, "itemNotFound"),
        "User nobody@% cannot be found on the instance."
    );
    assert_eq!(
        app.get(&format!("{users}/bob%40example%2ecom"))
            .await
            .fault(400, "badRequest"),
        "User show error: 'example.com' is not a valid hostname."
    );

    // Refusals on create.
    let cases = [
        (
            json!({"users": [{"name": "a"}]}),
            "Validation error: users[0] 'password' is a required property",
        ),
        (
            json!({"users": [{"name": "a", "password": "p1", "host": "a-b"}]}),
            "Validation error: users[0]['host'] 'a-b' does not match '^[%]?[\\\\w(-).]*[%]?$'",
        ),
        (
            json!({"users": [{"name": "root", "password": "p1"}]}),
            "User create error: Cannot create user: User name \"root\" is on the reserved list: ['os_admin', 'root'].",
        ),
        (
            json!({"users": [{"name": "a'b", "password": "p1"}]}),
            "User create error: 'a'b' is not a valid user name.",
        ),
        (
            json!({"users": [{"name": "x", "password": "p1"}, {"name": "x", "password": "p2", "host": "%"}]}),
            "Two or more users share the same name and host in the initial users list. Please correct the names or remove the duplicate entries.",
        ),
        (
            json!({"users": [{"name": "app", "password": "p1"}]}),
            "A user with the name \"app\" already exists.",
        ),
    ];
    for (body, message) in cases {
        let r = app.post(&users, body.clone()).await;
        assert_eq!(r.fault(400, "badRequest"), message, "{body}");
    }

    // Update attributes: rename and move.
    let r = app
        .put(
            &format!("{users}/report%4010%2e0%2e0%2e%25"),
            json!({"user": {"name": "rep2", "host": "10.0.1.%", "password": "n3w-Pass"}}),
        )
        .await;
    accepted(&r, 202);
    eventually(&guest, "renamed", |d| d.users.contains_key("rep2@10.0.1.%")).await;
    assert_eq!(
        guest.data.lock().unwrap().users["rep2@10.0.1.%"]
            .password
            .as_deref(),
        Some("n3w-Pass")
    );
    assert_eq!(
        app.put(
            &format!("{users}/rep2%4010%2e0%2e1%2e%25"),
            json!({"user": {"name": "app", "host": "%"}})
        )
        .await
        .fault(400, "badRequest"),
        "A user with the name \"app\" already exists."
    );
    assert_eq!(
        app.put(&format!("{users}/rep2%4010%2e0%2e1%2e%25"), json!({"user": {"name": "os_admin"}}))
            .await
            .fault(400, "badRequest"),
        "User update error: Cannot update user: User name \"os_admin\" is on the reserved list: ['os_admin', 'root']."
    );
    assert_eq!(
        app.put(&format!("{users}/app"), json!({"user": {}}))
            .await
            .fault(400, "badRequest"),
        "Validation error: user {} does not have enough properties"
    );
    app.put(
        &format!("{users}/ghost"),
        json!({"user": {"password": "x1"}}),
    )
    .await
    .fault(404, "itemNotFound");

    // Change passwords.
    let r = app
        .put(
            &users,
            json!({"users": [{"name": "app", "host": "%", "password": "pw-2"}, {"name": "bob", "host": "10.0.0.1", "password": "pw-3"}]}),
        )
        .await;
    accepted(&r, 202);
    eventually(&guest, "passwords", |d| {
        d.users["app@%"].password.as_deref() == Some("pw-2")
            && d.users["bob@10.0.0.1"].password.as_deref() == Some("pw-3")
    })
    .await;
    assert_eq!(
        app.put(
            &users,
            json!({"users": [{"name": "ghost", "password": "pw"}]})
        )
        .await
        .fault(404, "itemNotFound"),
        "User ghost cannot be found on the instance."
    );

    // Delete.
    accepted(
        &app.delete(&format!("{users}/bob%4010%2e0%2e0%2e1")).await,
        202,
    );
    eventually(&guest, "bob gone", |d| {
        !d.users.contains_key("bob@10.0.0.1")
    })
    .await;
    app.delete(&format!("{users}/bob%4010%2e0%2e0%2e1"))
        .await
        .fault(404, "itemNotFound");
    assert_eq!(
        app.delete(&format!("{users}/root")).await.fault(400, "badRequest"),
        "User delete error: Cannot delete user: User name \"root\" is on the reserved list: ['os_admin', 'root']."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_access_list_grant_and_revoke() {
    let mut app = App::start(Arc::new(InMemoryTransport::new())).await;
    let (id, guest) = app.healthy(false).await;
    accepted(
        &app.post(
            &format!("/instances/{id}/databases"),
            json!({"databases": [{"name": "orders"}, {"name": "reports"}]}),
        )
        .await,
        202,
    );
    accepted(
        &app.post(
            &format!("/instances/{id}/users"),
            json!({"users": [{"name": "app", "password": "pw-1", "databases": [{"name": "orders"}]}]}),
        )
        .await,
        202,
    );
    eventually(&guest, "user and databases", |d| {
        d.users.contains_key("app@%") && d.dbs.len() == 3
    })
    .await;
    let access = format!("/instances/{id}/users/app/databases");
    let r = app.get(&access).await;
    assert_eq!(r.status, 200, "{}", r.text);
    insta::assert_json_snapshot!("user_access", r.json());

    accepted(
        &app.put(&access, json!({"databases": [{"name": "reports"}]}))
            .await,
        202,
    );
    assert_eq!(
        app.get(&access).await.json(),
        json!({"databases": [{"name": "orders"}, {"name": "reports"}]})
    );
    // The guest refuses an unknown database: its error comes back as a 400.
    assert_eq!(
        app.put(&access, json!({"databases": [{"name": "nope"}]}))
            .await
            .fault(400, "badRequest"),
        "An error occurred communicating with the guest: Database 'nope' does not exist."
    );
    assert_eq!(
        app.put(
            &access,
            json!({"databases": [{"name": "a"}, {"name": "a"}]})
        )
        .await
        .fault(400, "badRequest"),
        "Validation error: databases [{'name': 'a'}, {'name': 'a'}] has non-unique elements"
    );

    accepted(&app.delete(&format!("{access}/orders")).await, 202);
    assert_eq!(
        app.get(&access).await.json(),
        json!({"databases": [{"name": "reports"}]})
    );
    assert_eq!(
        app.delete(&format!("{access}/orders"))
            .await
            .fault(404, "itemNotFound"),
        "Database orders cannot be found on the instance."
    );
    assert_eq!(
        app.get(&format!("/instances/{id}/users/ghost/databases"))
            .await
            .fault(404, "itemNotFound"),
        "User ghost@% cannot be found on the instance."
    );
}

// ---------------------------------------------------------------------------------------
// Root.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_enable_show_and_disable() {
    let mut app = App::start(Arc::new(InMemoryTransport::new())).await;
    let (id, guest) = app.healthy(true).await;
    let root = format!("/instances/{id}/root");

    assert_eq!(app.get(&root).await.json(), json!({"rootEnabled": false}));
    assert_eq!(
        app.delete(&root).await.fault(404, "itemNotFound"),
        "Root user has never been enabled on the instance."
    );

    // No body: the guest generates the password.
    let r = send(app.v1(Method::POST, &root)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let generated = guest.data.lock().unwrap().root_password.clone().unwrap();
    assert_eq!(body["user"]["password"], generated.as_str());
    let mut shown = body.clone();
    shown["user"]["password"] = json!("[password]");
    insta::assert_json_snapshot!("root_enable", shown);
    let history = app.db().root_history_get(&id).await.unwrap().unwrap();
    assert_eq!(history.user.as_deref(), Some("alice"));
    assert_eq!(app.get(&root).await.json(), json!({"rootEnabled": true}));

    // With a password.
    let r = app.post(&root, json!({"password": "My-Root-Pw1"})).await;
    assert_eq!(
        r.json(),
        json!({"user": {"name": "root", "password": "My-Root-Pw1"}})
    );
    assert_eq!(
        guest.data.lock().unwrap().root_password.as_deref(),
        Some("My-Root-Pw1")
    );
    assert_eq!(
        app.post(&root, json!({"password": 5}))
            .await
            .fault(400, "badRequest"),
        "Validation error: password 5 is not of type 'string'"
    );

    // Disable: 204, then shown disabled and refused a second time.
    accepted(&app.delete(&root).await, 204);
    assert!(guest.data.lock().unwrap().root_password.is_none());
    assert_eq!(app.get(&root).await.json(), json!({"rootEnabled": false}));
    app.delete(&root).await.fault(404, "itemNotFound");
}

// ---------------------------------------------------------------------------------------
// Gates and failures.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_states_datastores_and_guest_timeouts() {
    let mut app = App::start(Arc::new(InMemoryTransport::new())).await;
    let (_ok, _guest) = app.healthy(true).await;
    let calls = |id: &str| {
        vec![
            (Method::GET, format!("/instances/{id}/databases"), None),
            (
                Method::POST,
                format!("/instances/{id}/databases"),
                Some(json!({"databases": [{"name": "orders"}]})),
            ),
            (Method::GET, format!("/instances/{id}/users"), None),
            (Method::GET, format!("/instances/{id}/users/app"), None),
            (Method::GET, format!("/instances/{id}/root"), None),
            (Method::POST, format!("/instances/{id}/root"), None),
        ]
    };
    let run = |method: Method, path: String, body: Option<Value>| {
        let rb = app.v1(method, &path);
        let rb = match body {
            Some(b) => rb.json(&b),
            None => rb,
        };
        send(rb)
    };

    // Unknown instance and another project's instance: 404.
    let unknown = uuid::Uuid::new_v4().to_string();
    for (m, p, b) in calls(&unknown) {
        let r = run(m, p.clone(), b).await;
        assert_eq!(
            r.fault(404, "itemNotFound"),
            format!("Resource {unknown} cannot be found."),
            "{p}"
        );
    }
    let (other, _) = app
        .instance(
            "someone-else",
            &app.version_id.clone(),
            ServiceStatus::Healthy,
            true,
        )
        .await;
    for (m, p, b) in calls(&other) {
        run(m, p, b).await.fault(404, "itemNotFound");
    }

    // Building: the guest is not ready (422).
    let (building, _) = app
        .instance(PROJECT, &app.version_id.clone(), ServiceStatus::New, true)
        .await;
    for (m, p, b) in calls(&building) {
        let r = run(m, p.clone(), b).await;
        assert_eq!(
            r.fault(422, "unprocessableEntity"),
            format!("Instance {building} is not ready, status: new."),
            "{p}"
        );
    }
    let show = app.get(&format!("/instances/{building}")).await.json();
    assert_eq!(show["instance"]["status"], "BUILD");
    let (stopped, _) = app
        .instance(
            PROJECT,
            &app.version_id.clone(),
            ServiceStatus::Shutdown,
            true,
        )
        .await;
    assert_eq!(
        app.get(&format!("/instances/{stopped}/users"))
            .await
            .fault(422, "unprocessableEntity"),
        format!("Instance {stopped} is not ready, status: shutdown.")
    );

    // A datastore without users and databases: 422; without a root controller: 501.
    let (redis, _) = app
        .instance(
            PROJECT,
            &app.redis_version_id.clone(),
            ServiceStatus::Healthy,
            true,
        )
        .await;
    assert_eq!(
        app.get(&format!("/instances/{redis}/databases"))
            .await
            .fault(422, "unprocessableEntity"),
        "Operation not supported for datastore redis."
    );
    assert_eq!(
        app.get(&format!("/instances/{redis}/root"))
            .await
            .fault(501, "notImplemented"),
        "The 'show_root' operation is not supported for the 'redis' datastore."
    );

    // Validation of the body comes first, even for an unknown instance.
    assert_eq!(
        app.post(&format!("/instances/{unknown}/users"), json!({"users": [{}]}))
            .await
            .fault(400, "badRequest"),
        "Validation error: users[0] 'name' is a required property; users[0] 'password' is a required property"
    );

    // A guest that never answers: Trove's GuestTimeout, a 400.
    let (silent, _) = app
        .instance(
            PROJECT,
            &app.version_id.clone(),
            ServiceStatus::Healthy,
            true,
        )
        .await;
    let started = std::time::Instant::now();
    assert_eq!(
        app.get(&format!("/instances/{silent}/databases"))
            .await
            .fault(400, "badRequest"),
        "Timeout trying to connect to the Guest Agent."
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // A guest holding another key refuses the calls: its refusal comes back as a 400.
    let (wrong_key, _) = app
        .instance(
            PROJECT,
            &app.version_id.clone(),
            ServiceStatus::Healthy,
            true,
        )
        .await;
    let server = serve_guest(
        &*app.transport,
        &wrong_key,
        Some("not-the-key".into()),
        Arc::new(FakeGuest::default()),
    )
    .await;
    let r = app.get(&format!("/instances/{wrong_key}/root")).await;
    assert_eq!(
        r.status, 200,
        "root show reads the history only: {}",
        r.text
    );
    let r = app
        .post(&format!("/instances/{wrong_key}/root"), json!({}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_rules_are_checked_on_the_instance_project() {
    let enforcer = Enforcer::with_overrides([
        ("instance:extension:root:create", "rule:admin"),
        ("instance:extension:user:index", "rule:admin"),
    ])
    .unwrap();
    let mut app = App::start_with(Arc::new(InMemoryTransport::new()), enforcer).await;
    let (id, _guest) = app.healthy(true).await;
    assert_eq!(
        app.post(&format!("/instances/{id}/root"), json!({}))
            .await
            .fault(403, "forbidden"),
        "Policy doesn't allow instance:extension:root:create to be performed."
    );
    assert_eq!(
        app.get(&format!("/instances/{id}/users"))
            .await
            .fault(403, "forbidden"),
        "Policy doesn't allow instance:extension:user:index to be performed."
    );
    // Rules left at their default still pass, and admins pass the overridden ones.
    assert_eq!(
        app.get(&format!("/instances/{id}/databases")).await.status,
        200
    );
    let r = send(
        app.v1(Method::GET, &format!("/instances/{id}/users"))
            .header("x-roles", "admin"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

// ---------------------------------------------------------------------------------------
// RabbitMQ.

fn rabbit_url() -> String {
    std::env::var("TROVE_TEST_RABBIT_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_trip_through_rabbitmq() {
    let _lock = trove_rpc::testing::broker_lock_shared().expect("broker lock");
    let exchange = format!("trove_api_dbs_test_{}", uuid::Uuid::new_v4().simple());
    let connect = || async {
        trove_rpc::AmqpTransport::connect_url(
            &rabbit_url(),
            trove_rpc::AmqpOptions::with_exchange(exchange.clone()),
        )
        .await
        .expect("connect to RabbitMQ (is it running on 127.0.0.1:5672?)")
    };
    let api_side = connect().await;
    let guest_side = connect().await;
    let app = App::start(Arc::new(api_side.clone())).await;
    let (id, key) = app
        .instance(
            PROJECT,
            &app.version_id.clone(),
            ServiceStatus::Healthy,
            true,
        )
        .await;
    let guest = Arc::new(FakeGuest::with_system_db());
    let server = serve_guest(&guest_side, &id, key, guest.clone()).await;

    accepted(
        &app.post(
            &format!("/instances/{id}/databases"),
            json!({"databases": [{"name": "orders"}]}),
        )
        .await,
        202,
    );
    eventually(&guest, "orders", |d| d.dbs.contains_key("orders")).await;
    assert_eq!(
        app.get(&format!("/instances/{id}/databases")).await.json(),
        json!({"databases": [{"name": "orders"}]})
    );
    accepted(
        &app.post(
            &format!("/instances/{id}/users"),
            json!({"users": [{"name": "app", "password": "pw-1", "databases": [{"name": "orders"}]}]}),
        )
        .await,
        202,
    );
    eventually(&guest, "app", |d| d.users.contains_key("app@%")).await;
    assert_eq!(
        app.get(&format!("/instances/{id}/users/app")).await.json(),
        json!({"user": {"name": "app", "host": "%", "databases": [{"name": "orders"}]}})
    );
    let r = app
        .post(
            &format!("/instances/{id}/root"),
            json!({"password": "Rabbit-1"}),
        )
        .await;
    assert_eq!(r.json()["user"]["password"], "Rabbit-1", "{}", r.text);
    accepted(&app.delete(&format!("/instances/{id}/root")).await, 204);

    server.stop().await;
    let _ = guest_side
        .delete_topic_queues(&guest_topic(&id), Some(&id))
        .await;
    drop(app);
    api_side.shutdown().await;
    guest_side.shutdown().await;
}
