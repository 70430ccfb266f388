//! Test support: a real API server on 127.0.0.1:0 over a fresh control database, and a
//! small HTTP client with Trove's headers.

#![allow(dead_code)]

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::oneshot;
use trove_api::auth::NoAuth;
use trove_api::policy::Enforcer;
use trove_api::taskmanager::{RecordingTaskManager, TaskManagerClient};
use trove_api::ApiApp;
use trove_config::Config;
use trove_db::testing::TestDb;
use trove_db::{Backend, DatastoreVersionSpec, NewFlavor};

/// Host header sent with every request, so links are stable in snapshots.
pub const HOST: &str = "db.example.org:8779";
/// The default project of requests.
pub const PROJECT: &str = "6b2f0c1d2e3f4a5b6c7d8e9f0a1b2c3d";

/// A running API.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub tdb: TestDb,
    pub taskmanager: Arc<RecordingTaskManager>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Options of [`TestApp::start_with`].
pub struct Options {
    pub backend: Backend,
    pub config: Config,
    pub body_limit: Option<usize>,
    pub rate_limits: Option<Vec<trove_api::ratelimit::Limit>>,
    pub authenticator: Option<Arc<dyn trove_api::auth::Authenticator>>,
    pub enforcer: Option<Arc<Enforcer>>,
    pub without_taskmanager: bool,
    /// The image service the datastore-version handlers check images with.
    pub images: Option<Arc<dyn trove_api::handlers::mgmt_datastores::ImageCheck>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            config: Config::default(),
            body_limit: None,
            rate_limits: None,
            authenticator: None,
            enforcer: None,
            without_taskmanager: false,
            images: None,
        }
    }
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(Options::default()).await
    }

    pub async fn start_on(backend: Backend) -> TestApp {
        Self::start_with(Options {
            backend,
            ..Options::default()
        })
        .await
    }

    pub async fn start_with(opts: Options) -> TestApp {
        let tdb = TestDb::new(opts.backend).await;
        let taskmanager = Arc::new(RecordingTaskManager::new());
        let tm: Arc<dyn TaskManagerClient> = taskmanager.clone();
        let mut builder = ApiApp::builder(
            Arc::new(opts.config),
            tdb.db().clone(),
            opts.enforcer
                .unwrap_or_else(|| Arc::new(Enforcer::with_defaults())),
            opts.authenticator.unwrap_or_else(|| Arc::new(NoAuth)),
            if opts.without_taskmanager {
                None
            } else {
                Some(tm)
            },
        );
        if let Some(b) = opts.body_limit {
            builder = builder.body_limit(b);
        }
        if let Some(l) = opts.rate_limits {
            builder = builder.rate_limits(l);
        }
        let router = match opts.images {
            Some(check) => builder.build().layer(axum::Extension(check)),
            None => builder.build(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(trove_api::serve(listener, router, async move {
            let _ = rx.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            tdb,
            taskmanager,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn db(&self) -> &trove_db::Db {
        self.tdb.db()
    }

    /// Makes an instance look built and healthy, as the taskmanager and guest would.
    pub async fn make_active(&self, id: &str) {
        let db = self.db();
        let mut inst = db.instance_get(id).await.unwrap();
        inst.set_task_status(trove_db::TaskStatus::None);
        inst.server_status = Some("ACTIVE".into());
        inst.compute_instance_id = Some("server-1".into());
        db.instance_save(&inst).await.unwrap();
        db.service_status_update(id, trove_db::ServiceStatus::Healthy)
            .await
            .unwrap();
    }

    /// A request to `path` (absolute, e.g. `/v1.0/p/flavors` or `/`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
            .header("host", HOST)
            .header("accept", "application/json")
    }

    /// A request relative to `/v1.0/{PROJECT}` as a member.
    pub fn v1(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, &format!("/v1.0/{PROJECT}{path}"))
    }

    /// Same, as an admin of `PROJECT`.
    pub fn v1_admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.v1(method, path).header("x-roles", "admin")
    }

    pub async fn get(&self, path: &str) -> Resp {
        send(self.v1(reqwest::Method::GET, path)).await
    }

    pub async fn get_admin(&self, path: &str) -> Resp {
        send(self.v1_admin(reqwest::Method::GET, path)).await
    }

    /// Seeds two datastores: `mariadb` (10.11 active default, 10.6 inactive) and
    /// `postgresql` (15 inactive only), plus flavors `2` (m1.small), `d2` and `0042`.
    pub async fn seed(&self) -> Seeded {
        let db = self.db();
        db.datastore_update("mariadb", None).await.unwrap();
        db.datastore_update("postgresql", None).await.unwrap();
        let spec = |ds: &str, name: &str, number: &str, manager: &str, active: bool| {
            DatastoreVersionSpec {
                datastore: ds.into(),
                name: name.into(),
                manager: manager.into(),
                image_id: String::new(),
                packages: String::new(),
                active,
                image_tags: Some("trove,mariadb".into()),
                version: Some(number.into()),
                registry_ext: None,
                repl_strategy: None,
            }
        };
        let v1011 = db
            .datastore_version_upsert(&spec("mariadb", "10.11", "10.11.6", "mariadb", true))
            .await
            .unwrap();
        let v106 = db
            .datastore_version_upsert(&spec("mariadb", "10.6", "10.6.16", "mariadb", false))
            .await
            .unwrap();
        let pg15 = db
            .datastore_version_upsert(&spec("postgresql", "15", "15.4", "postgresql", false))
            .await
            .unwrap();
        db.datastore_update("mariadb", Some("10.11")).await.unwrap();
        for (id, name, ram) in [
            ("2", "m1.small", 2048),
            ("d2", "ds2G", 2048),
            ("0042", "odd", 512),
        ] {
            db.flavor_create(&NewFlavor {
                id: Some(id.into()),
                name: name.into(),
                ram,
                vcpus: 1,
                disk: 20,
                ephemeral: 0,
            })
            .await
            .unwrap();
        }
        db.config_params_upsert(
            &v1011.id,
            &[
                trove_db::ConfigParamRule {
                    name: "max_connections".into(),
                    restart_required: false,
                    data_type: "integer".into(),
                    min: Some("1".into()),
                    max: Some("100000".into()),
                },
                trove_db::ConfigParamRule {
                    name: "character_set_server".into(),
                    restart_required: true,
                    data_type: "string".into(),
                    min: None,
                    max: None,
                },
                trove_db::ConfigParamRule {
                    name: "max_binlog_cache_size".into(),
                    restart_required: false,
                    data_type: "integer".into(),
                    min: Some("0".into()),
                    max: Some("18446744073709551615".into()),
                },
            ],
        )
        .await
        .unwrap();
        let mariadb = db.datastore_get("mariadb").await.unwrap();
        let postgresql = db.datastore_get("postgresql").await.unwrap();
        Seeded {
            mariadb: mariadb.id,
            postgresql: postgresql.id,
            v1011: v1011.id,
            v106: v106.id,
            pg15: pg15.id,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// Ids of seeded rows.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub mariadb: String,
    pub postgresql: String,
    pub v1011: String,
    pub v106: String,
    pub pg15: String,
}

/// A response: status, headers, body text and JSON (if any).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a Trove fault with this status and key; returns the message.
    pub fn fault(&self, status: u16, key: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert!(
            self.header("content-type").starts_with("application/json"),
            "content-type {:?}",
            self.header("content-type")
        );
        let v = self.json();
        assert_eq!(v[key]["code"], status, "body: {v}");
        v[key]["message"].as_str().expect("message").to_string()
    }
}

pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
    let r = rb.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    Resp {
        status,
        headers,
        text,
    }
}

fn is_uuid_at(b: &[u8], i: usize) -> bool {
    b.len() >= i + 36
        && b[i..i + 36].iter().enumerate().all(|(k, c)| match k {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn mask_uuids(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if is_uuid_at(b, i) {
            out.push_str("[uuid]");
            i += 36;
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_timestamp(s: &str, z: bool) -> bool {
    let fmt = if z {
        "%Y-%m-%dT%H:%M:%SZ"
    } else {
        "%Y-%m-%dT%H:%M:%S"
    };
    chrono::NaiveDateTime::parse_from_str(s, fmt).is_ok()
}

/// Masks UUIDs (anywhere in strings) and timestamps (in `created`, `updated`,
/// `nextAvailable`, ... keys) after checking their format, for snapshots.
pub fn redact(v: &Value) -> Value {
    redact_key(v, "")
}

fn redact_key(v: &Value, key: &str) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), redact_key(v, k)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| redact_key(v, key)).collect()),
        Value::String(s) => {
            let ts_key = matches!(
                key,
                "created" | "updated" | "service_status_updated" | "nextAvailable" | "deleted_at"
            );
            if ts_key {
                assert!(
                    is_timestamp(s, key == "nextAvailable"),
                    "{key} = {s:?} is not in Trove's timestamp format"
                );
                Value::String("[timestamp]".into())
            } else {
                Value::String(mask_uuids(s))
            }
        }
        other => other.clone(),
    }
}
