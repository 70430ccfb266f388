//! The guest agent end to end: real `mariadbd`/`postgres` servers, the real RabbitMQ (per-test
//! exchange and topics, trove-rpc's shared broker lock held), and an in-process conductor on
//! SQLite whose instance row holds the encrypted per-instance key. Requests go through
//! `GuestApi`, as the API and taskmanager send them; statuses are read from the conductor's
//! `service_statuses` row. The broker URL is `TROVE_TEST_RABBIT_URL` (default
//! `rabbit://guest:guest@127.0.0.1:5672/`).

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Instance;
use serde_json::{json, Map, Value};
use trove_common::crypto::{encrypt_instance_key, generate_random_key};
use trove_config::Config;
use trove_db::testing::TestDb;
use trove_db::{Backend, Db, ServiceStatus};
use trove_guestagent::agent::{AgentSettings, SUPPORTED_MANAGERS};
use trove_guestagent::heartbeat::RestartBackoff;
use trove_guestagent::process::pid_alive;
use trove_guestagent::{Agent, AgentError};
use trove_rpc::api::guest::GUEST_LATEST_VERSION;
use trove_rpc::api::{
    guest_topic, DatabaseModel, GuestApi, GuestError, GuestRequest, GuestTimeouts, PrepareArgs,
    UserModel,
};
use trove_rpc::{
    AmqpOptions, AmqpTransport, RpcClient, RpcContext, SecureSerializer, Target, Transport, Version,
};

/// `inst_rpc_key_encr_key` of the test conductor (Trove's default).
const MASTER_KEY: &str = "emYjgHFqfXNB1NGehAFIUeoyw4V4XwWHEaKP";
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

fn rabbit_url() -> String {
    std::env::var("TROVE_TEST_RABBIT_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The controller side of one test: broker connections, a conductor on SQLite, an instance
/// row with a key, and the guest client. Dropping it leaves the broker lock.
struct Controller {
    db: TestDb,
    exchange: String,
    conductor_topic: String,
    instance_id: String,
    key: String,
    transport: AmqpTransport,
    conductor: Option<trove_conductor::ConductorServer>,
    guest: GuestApi,
    /// Set by [`Controller::cleanup`]; otherwise `Drop` (a failed test) deletes the queues.
    cleaned: bool,
    _lock: trove_rpc::testing::BrokerTestLock,
}

impl Controller {
    async fn new() -> Controller {
        common::init_logging();
        let lock = trove_rpc::testing::broker_lock_shared().expect("broker lock");
        let db = TestDb::new(Backend::Sqlite).await;
        let exchange = unique("trove_guestagent_test");
        let conductor_topic = unique("trove-conductor-ga");
        let transport =
            AmqpTransport::connect_url(&rabbit_url(), AmqpOptions::with_exchange(exchange.clone()))
                .await
                .expect("connect to RabbitMQ (is it running on 127.0.0.1:5672?)");
        let mut cfg = Config::default();
        cfg.default.conductor_queue = conductor_topic.clone();
        cfg.default.inst_rpc_key_encr_key = MASTER_KEY.into();
        let conductor = trove_conductor::start(&cfg, db.db().clone(), &transport)
            .await
            .expect("start conductor");
        let instance_id = trove_db::new_id();
        let key = generate_random_key();
        db.db()
            .instance_create(&trove_db::Instance {
                id: instance_id.clone(),
                name: Some("agent-test".into()),
                tenant_id: Some("project-1".into()),
                encrypted_key: Some(encrypt_instance_key(&key, MASTER_KEY)),
                ..Default::default()
            })
            .await
            .expect("create instance");
        db.db()
            .service_status_create(&instance_id, ServiceStatus::New)
            .await
            .expect("create service status");
        let guest = GuestApi::new(
            Arc::new(transport.clone()),
            &instance_id,
            Some(key.clone()),
            GuestTimeouts {
                low: Duration::from_secs(30),
                high: Duration::from_secs(120),
                snapshot: Duration::from_secs(120),
            },
            GUEST_LATEST_VERSION,
        );
        Controller {
            db,
            exchange,
            conductor_topic,
            instance_id,
            key,
            transport,
            conductor: Some(conductor),
            guest,
            cleaned: false,
            _lock: lock,
        }
    }

    fn db(&self) -> &Db {
        self.db.db()
    }

    /// A transport as a guest opens it (restricted options, shared test credentials).
    async fn guest_transport(&self) -> AmqpTransport {
        AmqpTransport::connect_url(
            &rabbit_url(),
            AmqpOptions::for_guest(self.exchange.clone(), &self.instance_id),
        )
        .await
        .expect("guest connects")
    }

    fn settings(&self, manager: &str, inst: &Instance) -> AgentSettings {
        AgentSettings {
            guest_id: self.instance_id.clone(),
            datastore_manager: manager.into(),
            rpc_key: Some(self.key.clone()),
            conductor_topic: self.conductor_topic.clone(),
            report_interval: REPORT_INTERVAL,
            restart_backoff: RestartBackoff::default(),
            manager: inst.config.clone(),
        }
    }

    async fn status(&self) -> (Option<ServiceStatus>, Option<chrono::NaiveDateTime>) {
        let row = self
            .db()
            .service_status_get(&self.instance_id)
            .await
            .expect("status row");
        (row.status(), row.updated_at)
    }

    /// Polls the row until it shows `wanted`; returns every status seen on the way.
    async fn wait_status(&self, wanted: ServiceStatus, within: Duration) -> Vec<ServiceStatus> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let (s, _) = self.status().await;
            if let Some(s) = s {
                if seen.last() != Some(&s) {
                    seen.push(s);
                }
                if s == wanted {
                    return seen;
                }
            }
            assert!(
                Instant::now() < deadline,
                "service status did not become {wanted:?} within {within:?}; seen {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the instance's fault until `accept` takes it; returns it.
    async fn wait_fault(
        &self,
        accept: impl Fn(&trove_db::faults::InstanceFault) -> bool,
        within: Duration,
    ) -> trove_db::faults::InstanceFault {
        let deadline = Instant::now() + within;
        loop {
            let fault = self
                .db()
                .instance_fault_get(&self.instance_id)
                .await
                .expect("read fault");
            match fault {
                Some(f) if accept(&f) => return f,
                other => assert!(
                    Instant::now() < deadline,
                    "no matching fault within {within:?}; last {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A raw client of the guest topic with the instance key (to *call* a cast method).
    fn raw_client(&self) -> RpcClient {
        RpcClient::new(
            Arc::new(self.transport.clone()),
            Target::topic(guest_topic(&self.instance_id)),
            Some(Version::new(1, 1)),
            Arc::new(SecureSerializer::new(Some(self.key.clone()))),
        )
    }

    /// Deletes the test's queues and closes the connection.
    async fn cleanup(mut self) {
        if let Some(c) = self.conductor.take() {
            c.stop().await;
        }
        let _ = self.guest.delete_queues().await;
        let _ = self
            .transport
            .delete_topic_queues(&self.conductor_topic, Some("0.0.0.0"))
            .await;
        self.transport.shutdown().await;
        self.cleaned = true;
    }
}

impl Drop for Controller {
    /// After a failed test: delete the test's queues from a thread with its own runtime (the
    /// test's runtime may be unwinding).
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let (exchange, id, topic) = (
            self.exchange.clone(),
            self.instance_id.clone(),
            self.conductor_topic.clone(),
        );
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let Ok(t) =
                    AmqpTransport::connect_url(&rabbit_url(), AmqpOptions::with_exchange(exchange))
                        .await
                else {
                    return;
                };
                let _ = t.delete_topic_queues(&guest_topic(&id), Some(&id)).await;
                let _ = t.delete_topic_queues(&topic, Some("0.0.0.0")).await;
                t.shutdown().await;
            });
        })
        .join();
    }
}

fn ctx() -> RpcContext {
    RpcContext::new_internal()
}

fn prepare_args(mount: &str, ds_version: &str) -> PrepareArgs {
    // As the taskmanager sends it for a create with one database and one user.
    serde_json::from_value(json!({
        "packages": null,
        "databases": [{"_name": "orders", "_character_set": null, "_collate": null}],
        "memory_mb": 512,
        "users": [{"_name": "app", "_password": "s3cret-Pass", "_host": "%",
                   "_databases": [{"_name": "orders"}]}],
        "device_path": null,
        "mount_point": mount,
        "backup_info": null,
        "config_contents": null,
        "root_password": null,
        "overrides": null,
        "cluster_config": null,
        "snapshot": null,
        "modules": null,
        "ds_version": ds_version
    }))
    .expect("prepare args")
}

async fn mariadb_login(inst: &Instance, user: &str, pw: &str, db: &str) -> Result<(), sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    let mut c = sqlx::mysql::MySqlConnectOptions::new()
        .host(&inst.addr.to_string())
        .port(3306)
        .username(user)
        .password(pw)
        .database(db)
        .connect()
        .await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut c).await?;
    assert_eq!(one, 1);
    c.close().await
}

async fn postgres_login(
    inst: &Instance,
    user: &str,
    pw: &str,
    db: &str,
) -> Result<(), sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    let mut c = sqlx::postgres::PgConnectOptions::new()
        .host(&inst.addr.to_string())
        .port(5432)
        .username(user)
        .password(pw)
        .database(db)
        .connect()
        .await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut c).await?;
    assert_eq!(one, 1);
    c.close().await
}

fn remote_class(e: &GuestError) -> (&str, &str) {
    match e {
        GuestError::Remote(r) => (r.class.as_str(), r.message.as_str()),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_agent_prepare_calls_crash_restart_and_resume() {
    let t0 = Instant::now();
    let c = Controller::new().await;
    let inst = Instance::new(3306);
    let settings = c.settings("mariadb", &inst);
    let guest_t = c.guest_transport().await;
    let agent = Agent::start(settings.clone(), Arc::new(guest_t.clone()))
        .await
        .expect("agent starts");

    // prepare (a cast): building, then healthy.
    c.guest
        .prepare(&ctx(), prepare_args("/var/lib/mysql", "10.11"))
        .await
        .expect("prepare cast");
    let seen = c
        .wait_status(ServiceStatus::Healthy, Duration::from_secs(180))
        .await;
    assert!(seen.contains(&ServiceStatus::Building), "seen {seen:?}");
    assert!(!seen.contains(&ServiceStatus::Failed), "seen {seen:?}");
    eprintln!("prepared and healthy after {:?}", t0.elapsed());
    mariadb_login(&inst, "app", "s3cret-Pass", "orders")
        .await
        .expect("tenant logs in over TCP");

    // Calls in Trove's shapes.
    let (dbs, next) = c
        .guest
        .list_databases(&ctx(), None, None, false)
        .await
        .unwrap();
    assert_eq!(
        dbs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        vec!["orders"]
    );
    assert_eq!(next, None);
    c.guest
        .create_database(
            &ctx(),
            &[DatabaseModel {
                name: "reports".into(),
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    let user: UserModel = serde_json::from_value(json!({
        "_name": "bob", "_password": "B0b-pass", "_host": "%",
        "_databases": [{"_name": "reports"}]
    }))
    .unwrap();
    c.guest.create_user(&ctx(), &[user]).await.unwrap();
    // create_user is a cast: poll the listing.
    let deadline = Instant::now() + Duration::from_secs(30);
    let users = loop {
        let (users, _) = c.guest.list_users(&ctx(), None, None, false).await.unwrap();
        if users.iter().any(|u| u.name == "bob") || Instant::now() > deadline {
            break users;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, vec!["app", "bob"]);
    let bob = users.iter().find(|u| u.name == "bob").unwrap();
    assert_eq!(bob.databases[0].name, "reports");
    mariadb_login(&inst, "bob", "B0b-pass", "reports")
        .await
        .expect("bob logs in");
    let (page, next) = c
        .guest
        .list_users(&ctx(), Some(1), None, false)
        .await
        .unwrap();
    assert_eq!((page.len(), next.as_deref()), (1, Some("app@%")));
    let got = c
        .guest
        .send(
            &ctx(),
            GuestRequest::GetUser {
                username: "nobody".into(),
                hostname: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(got, Value::Null);
    let root = c
        .guest
        .send(&ctx(), GuestRequest::IsRootEnabled {})
        .await
        .unwrap();
    assert_eq!(root, Value::Bool(false));
    assert_eq!(
        c.guest
            .send(&ctx(), GuestRequest::RpcPing {})
            .await
            .unwrap(),
        Value::Bool(true)
    );

    let stats = c
        .guest
        .send(&ctx(), GuestRequest::GetFilesystemStats { fs_path: None })
        .await
        .unwrap();
    for k in [
        "block_size",
        "total_blocks",
        "free_blocks",
        "avail_blocks",
        "total",
        "free",
        "used",
    ] {
        assert!(stats[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {stats}");
    }
    assert_eq!(stats["mgr_extra_info"], json!({}));

    // A bad request carries the datastore's message; an unsupported method is NoSuchMethod.
    let e = c
        .guest
        .grant_access(&ctx(), "nobody", None, vec!["orders".into()])
        .await
        .unwrap_err();
    assert_eq!(remote_class(&e).0, "NotFound");
    let e = c
        .guest
        .send(&ctx(), GuestRequest::GuestLogList {})
        .await
        .unwrap_err();
    assert_eq!(remote_class(&e).0, "NoSuchMethod");
    // Replication: a backup is needed to seed a replica.
    let v = c
        .guest
        .send(&ctx(), GuestRequest::BackupRequiredForReplication {})
        .await
        .unwrap();
    assert_eq!(v, serde_json::Value::Bool(true));
    // Volume requests: the device is required, and one that does not exist is named.
    let e = c
        .guest
        .send(
            &ctx(),
            GuestRequest::MountVolume {
                device_path: None,
                mount_point: Some("/var/lib/mysql".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        remote_class(&e),
        ("BadRequest", "mount_volume(): device_path is required")
    );
    let e = c
        .guest
        .send(
            &ctx(),
            GuestRequest::ResizeFs {
                device_path: Some("/dev/trove-test-no-such-volume".into()),
                mount_point: None,
                online: Some(true),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        remote_class(&e),
        (
            "GuestError",
            "volume device /dev/trove-test-no-such-volume does not exist"
        )
    );

    // A second prepare is refused: called directly, the answer says why; cast, it changes
    // nothing.
    let mut args = serde_json::to_value(prepare_args("/var/lib/mysql", "10.11")).unwrap();
    let args: Map<String, Value> = args.as_object_mut().unwrap().clone();
    let e = c
        .raw_client()
        .call(&ctx(), "prepare", args, Duration::from_secs(30))
        .await
        .unwrap_err();
    let r = e.remote().expect("remote error");
    assert!(r.message.contains("already prepared"), "{r:?}");
    c.guest
        .prepare(&ctx(), prepare_args("/var/lib/mysql", "10.11"))
        .await
        .unwrap();
    tokio::time::sleep(REPORT_INTERVAL * 2).await;
    assert_eq!(c.status().await.0, Some(ServiceStatus::Healthy));
    mariadb_login(&inst, "app", "s3cret-Pass", "orders")
        .await
        .expect("the server was left alone");

    // kill -9: crashed within two report intervals, then healthy again after the restart.
    let old_pid = inst.server_pid().unwrap();
    let killed = Instant::now();
    inst.kill_server_hard();
    c.wait_status(
        ServiceStatus::Crashed,
        REPORT_INTERVAL * 2 + Duration::from_secs(1),
    )
    .await;
    eprintln!("crash reported after {:?}", killed.elapsed());
    c.wait_status(ServiceStatus::Healthy, Duration::from_secs(60))
        .await;
    eprintln!("healthy again after {:?}", killed.elapsed());
    assert_eq!(agent.stats().restarts.load(Ordering::SeqCst), 1);
    let new_pid = inst.server_pid().unwrap();
    assert_ne!(new_pid, old_pid);
    mariadb_login(&inst, "bob", "B0b-pass", "reports")
        .await
        .expect("bob logs in after the restart");

    // stop_db: shutdown at once, and no automatic restart; restart brings it back.
    // The heartbeat is a cast: the conductor applies it a moment after the call returns.
    c.guest.stop_db(&ctx()).await.unwrap();
    c.wait_status(ServiceStatus::Shutdown, Duration::from_secs(2))
        .await;
    tokio::time::sleep(REPORT_INTERVAL * 3).await;
    assert_eq!(c.status().await.0, Some(ServiceStatus::Shutdown));
    assert_eq!(agent.stats().restarts.load(Ordering::SeqCst), 1);
    c.guest.restart(&ctx()).await.unwrap();
    let seen = c
        .wait_status(ServiceStatus::Healthy, Duration::from_secs(2))
        .await;
    assert_eq!(seen.last(), Some(&ServiceStatus::Healthy));

    // Agent stopped while a restart is in hand: the restart finishes and is answered, and
    // the database keeps running. A new agent resumes heartbeats without preparing again.
    let start_marker = std::fs::read_to_string(inst.config.prepare_start_marker()).unwrap();
    let api = c.guest.clone();
    let in_hand = tokio::spawn(async move { api.restart(&ctx()).await });
    c.wait_status(ServiceStatus::Restarting, Duration::from_secs(10))
        .await;
    agent.stop().await;
    tokio::time::timeout(Duration::from_secs(5), in_hand)
        .await
        .expect("the restart in hand was answered before the agent stopped")
        .unwrap()
        .expect("restart succeeded");
    guest_t.shutdown().await;
    let pid = inst.server_pid().unwrap();
    assert!(
        pid_alive(pid),
        "stopping the agent leaves the server running"
    );
    tokio::time::sleep(REPORT_INTERVAL * 2).await;
    let (_, stamp) = c.status().await;
    let guest_t = c.guest_transport().await;
    let agent = Agent::start(settings, Arc::new(guest_t.clone()))
        .await
        .expect("agent restarts");
    let deadline = Instant::now() + REPORT_INTERVAL * 3;
    loop {
        let (s, at) = c.status().await;
        if at > stamp {
            assert_eq!(s, Some(ServiceStatus::Healthy));
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat from the new agent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        inst.server_pid(),
        Some(pid),
        "same server, not prepared again"
    );
    assert_eq!(
        std::fs::read_to_string(inst.config.prepare_start_marker()).unwrap(),
        start_marker
    );
    let (dbs, _) = c
        .guest
        .list_databases(&ctx(), None, None, false)
        .await
        .unwrap();
    assert_eq!(dbs.len(), 2);
    agent.stop().await;
    guest_t.shutdown().await;
    c.cleanup().await;
    eprintln!("total {:?}", t0.elapsed());
}

/// A prepare that cannot start the server ends in "failed to spawn" and an instance fault the
/// tenant can read (recorded by the conductor from the guest's error notification); as the end
/// marker was not written, a corrected prepare may follow and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_failed_prepare_then_retry() {
    let c = Controller::new().await;
    let inst = Instance::new(3306);
    let guest_t = c.guest_transport().await;
    let agent = Agent::start(c.settings("mariadb", &inst), Arc::new(guest_t.clone()))
        .await
        .expect("agent starts");
    // A restore is not something this agent can do: failed at once, nothing started.
    let mut restore = prepare_args("/var/lib/mysql", "10.11");
    restore.backup_info = Some(json!({"id": "b1", "location": "swift://x", "type": "mariabackup"}));
    c.guest.prepare(&ctx(), restore.clone()).await.unwrap();
    let seen = c
        .wait_status(ServiceStatus::Failed, Duration::from_secs(10))
        .await;
    assert_eq!(seen, vec![ServiceStatus::New, ServiceStatus::Failed]);
    let fault = c.wait_fault(|_| true, Duration::from_secs(10)).await;
    assert_eq!(fault.instance_id, c.instance_id);
    assert!(
        fault.message.starts_with("prepare failed: ")
            && fault.message.contains("restoring a backup"),
        "{fault:?}"
    );
    assert!(fault.details.contains("restoring a backup"), "{fault:?}");
    let args = serde_json::to_value(restore)
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    let e = c
        .raw_client()
        .call(&ctx(), "prepare", args, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        e.remote().unwrap().message.contains("restoring a backup"),
        "{e}"
    );
    assert!(inst.server_pid().is_none());

    // A configuration the server rejects: building, then failed to spawn.
    let mut bad = prepare_args("/var/lib/mysql", "10.11");
    bad.config_contents = Some("[mysqld]\nno_such_server_option = 1\n".into());
    c.guest.prepare(&ctx(), bad).await.unwrap();
    c.wait_status(ServiceStatus::Building, Duration::from_secs(10))
        .await;
    let seen = c
        .wait_status(ServiceStatus::Failed, Duration::from_secs(120))
        .await;
    assert_eq!(seen, vec![ServiceStatus::Building, ServiceStatus::Failed]);
    assert!(!agent.manager().is_prepared());
    let fault = c
        .wait_fault(
            |f| !f.message.contains("restoring a backup"),
            Duration::from_secs(10),
        )
        .await;
    assert!(fault.message.starts_with("prepare failed: "), "{fault:?}");
    assert!(!fault.details.is_empty(), "{fault:?}");
    eprintln!("fault recorded: {} / {}", fault.message, fault.details);
    // No heartbeats before a prepare succeeds: the row keeps saying why it failed.
    tokio::time::sleep(REPORT_INTERVAL * 2).await;
    assert_eq!(c.status().await.0, Some(ServiceStatus::Failed));

    c.guest
        .prepare(&ctx(), prepare_args("/var/lib/mysql", "10.11"))
        .await
        .unwrap();
    c.wait_status(ServiceStatus::Healthy, Duration::from_secs(120))
        .await;
    mariadb_login(&inst, "app", "s3cret-Pass", "orders")
        .await
        .expect("tenant logs in after the retry");
    agent.stop().await;
    guest_t.shutdown().await;
    c.cleanup().await;
}

/// Requests that arrive while a prepare runs are refused with a clear error (the server's admin
/// credentials are still changing), and once the prepare has finished the same requests work:
/// an admin connection made mid-prepare must not leave the agent locked out afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_requests_during_prepare_are_refused_then_work() {
    let c = Controller::new().await;
    let inst = Instance::new(3306);
    let guest_t = c.guest_transport().await;
    let agent = Agent::start(c.settings("mariadb", &inst), Arc::new(guest_t.clone()))
        .await
        .expect("agent starts");
    c.guest
        .prepare(&ctx(), prepare_args("/var/lib/mysql", "10.11"))
        .await
        .expect("prepare cast");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut refused = 0;
    loop {
        match c.guest.list_databases(&ctx(), None, None, false).await {
            Ok((dbs, _)) if dbs.iter().any(|d| d.name == "orders") => break,
            Ok(_) => {}
            Err(e) => {
                let (_, message) = remote_class(&e);
                // Before the prepare cast is picked up the server does not exist yet.
                assert!(
                    message.contains("being prepared") || message.contains("not running"),
                    "a request during prepare may only be refused as 'being prepared' \
                     (or 'not running' before it starts), got {e}"
                );
                refused += 1;
            }
        }
        assert!(Instant::now() < deadline, "prepare did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{refused} requests refused while preparing");
    // Well after the prepare: every request still works.
    for _ in 0..5 {
        let (dbs, _) = c
            .guest
            .list_databases(&ctx(), None, None, false)
            .await
            .expect("requests work after prepare");
        assert!(dbs.iter().any(|d| d.name == "orders"));
    }
    agent.stop().await;
    guest_t.shutdown().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_agent_prepare_to_healthy() {
    let t0 = Instant::now();
    let c = Controller::new().await;
    let inst = Instance::new(5432);
    let guest_t = c.guest_transport().await;
    let agent = Agent::start(c.settings("postgresql", &inst), Arc::new(guest_t.clone()))
        .await
        .expect("agent starts");
    c.guest
        .prepare(&ctx(), prepare_args("/var/lib/postgresql", "16"))
        .await
        .unwrap();
    let seen = c
        .wait_status(ServiceStatus::Healthy, Duration::from_secs(180))
        .await;
    assert!(seen.contains(&ServiceStatus::Building), "seen {seen:?}");
    eprintln!("prepared and healthy after {:?}", t0.elapsed());
    postgres_login(&inst, "app", "s3cret-Pass", "orders")
        .await
        .expect("tenant logs in over TCP");
    let (dbs, _) = c
        .guest
        .list_databases(&ctx(), None, None, false)
        .await
        .unwrap();
    assert_eq!(
        dbs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        vec!["orders"]
    );
    let stats = c
        .guest
        .send(&ctx(), GuestRequest::GetFilesystemStats { fs_path: None })
        .await
        .unwrap();
    assert!(stats["mgr_extra_info"].get("wal_size").is_some(), "{stats}");
    agent.stop().await;
    guest_t.shutdown().await;
    c.cleanup().await;
}

/// The binary's entry point: configuration as guest_info.conf and trove-guestagent.conf would
/// give it, RabbitMQ from `transport_url`, serving until the shutdown future completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_entry_point_serves_until_shutdown() {
    let c = Controller::new().await;
    let inst = Instance::new(5432);
    let text = format!(
        "[DEFAULT]\n\
         guest_id = {id}\n\
         datastore_manager = postgresql\n\
         instance_rpc_encr_key = {key}\n\
         transport_url = {url}\n\
         control_exchange = {exchange}\n\
         conductor_queue = {topic}\n\
         report_interval = 1\n\
         state_change_wait_time = 60\n\
         bind_host = {addr}\n\
         [postgresql]\n\
         mount_point = {mount}\n",
        id = c.instance_id,
        key = c.key,
        url = rabbit_url(),
        exchange = c.exchange,
        topic = c.conductor_topic,
        addr = inst.addr,
        mount = inst.mount().display(),
    );
    let config = Config::from_ini_str("guest_info.conf", &text)
        .expect("config")
        .config;
    let settings = AgentSettings::from_config(&config).expect("settings");
    assert_eq!(settings.manager.port, 5432);
    assert_eq!(settings.manager.mount_point, inst.mount());
    assert_eq!(settings.report_interval, REPORT_INTERVAL);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        trove_guestagent::run(&config, async {
            let _ = stop_rx.await;
        })
        .await
    });
    c.guest
        .prepare(&ctx(), prepare_args("/var/lib/postgresql", "16"))
        .await
        .unwrap();
    c.wait_status(ServiceStatus::Healthy, Duration::from_secs(180))
        .await;
    postgres_login(&inst, "app", "s3cret-Pass", "orders")
        .await
        .expect("tenant logs in");
    let pid = inst.server_pid().unwrap();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("run returns after shutdown")
        .unwrap()
        .expect("run ends without error");
    assert!(pid_alive(pid), "the database outlives the agent");
    c.cleanup().await;
}

#[tokio::test]
async fn run_refuses_incomplete_configuration() {
    let cfg = |text: &str| {
        Config::from_ini_str("guest_info.conf", text)
            .unwrap()
            .config
    };
    let never = std::future::pending::<()>();
    let e = trove_guestagent::run(&cfg("[DEFAULT]\ndatastore_manager = mariadb\n"), never)
        .await
        .unwrap_err();
    assert!(matches!(e, AgentError::MissingGuestId), "{e}");
    assert!(e.to_string().contains("guest_id"));
    let e = trove_guestagent::run(
        &cfg("[DEFAULT]\nguest_id = 1\ndatastore_manager = redis\n"),
        std::future::pending::<()>(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, AgentError::UnknownDatastoreManager(m) if m == "redis"),
        "{e}"
    );
    assert!(e.to_string().contains("mariadb, mysql, postgresql"));
    let e = AgentSettings::from_config(&cfg("[DEFAULT]\nguest_id = 1\n")).unwrap_err();
    assert!(matches!(e, AgentError::MissingDatastoreManager), "{e}");
    assert_eq!(SUPPORTED_MANAGERS, &["mariadb", "mysql", "postgresql"]);
}
