//! Backups and restores through the guest agent, on real `mariadbd` servers: the agent serves
//! on the in-memory transport, a conductor stand-in records what the guest casts to it
//! (`update_backup`, heartbeats, notifications), and backups land in a `LocalStore`
//! directory. Needs root (service account, ownership of the restored files) and the
//! `mariadb-backup` package; skipped with a printed reason otherwise.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::Instance;
use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;
use trove_backup::{BackupStore, LocalStore};
use trove_guestagent::agent::AgentSettings;
use trove_guestagent::heartbeat::RestartBackoff;
use trove_guestagent::Agent;
use trove_rpc::api::guest::GUEST_LATEST_VERSION;
use trove_rpc::api::{GuestApi, GuestTimeouts, PrepareArgs};
use trove_rpc::{InMemoryTransport, MessageHandler, RemoteError, RpcContext, Target, Transport};

/// What the guest cast to the conductor: `(method, args)` in arrival order.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Map<String, Value>)>>);

#[async_trait]
impl MessageHandler for Recorder {
    async fn handle(&self, message: Map<String, Value>) -> Result<Value, RemoteError> {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let args = message
            .get("args")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        self.0.lock().unwrap().push((method, args));
        Ok(Value::Null)
    }
}

impl Recorder {
    fn calls(&self, method: &str) -> Vec<Map<String, Value>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// The `update_backup` casts about `backup_id`.
    /// The updates of a backup in the order the guest sent them (each cast is handled in
    /// a task of its own, so they may arrive in another order).
    fn backup_updates(&self, backup_id: &str) -> Vec<Map<String, Value>> {
        let mut u: Vec<Map<String, Value>> = self
            .calls("update_backup")
            .into_iter()
            .filter(|a| a["backup_id"] == backup_id)
            .collect();
        u.sort_by(|a, b| {
            let sent = |m: &Map<String, Value>| m["sent"].as_f64().unwrap_or(0.0);
            sent(a).total_cmp(&sent(b))
        });
        u
    }

    /// Waits for the final state of a backup (COMPLETED or FAILED); returns every update.
    async fn wait_backup_done(&self, backup_id: &str, within: Duration) -> Vec<Map<String, Value>> {
        let deadline = Instant::now() + within;
        loop {
            let u = self.backup_updates(backup_id);
            if u.iter()
                .any(|a| a["state"] == "COMPLETED" || a["state"] == "FAILED")
            {
                // Updates sent just before the last one may still be on their way.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return self.backup_updates(backup_id);
            }
            assert!(
                Instant::now() < deadline,
                "backup {backup_id} not finished in {within:?}: {u:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for a heartbeat of `instance` with one of `statuses`; returns it.
    async fn wait_heartbeat(&self, instance: &str, statuses: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let seen: Vec<String> = self
                .calls("heartbeat")
                .into_iter()
                .filter(|a| a["instance_id"] == instance)
                .filter_map(|a| a["payload"]["service_status"].as_str().map(str::to_owned))
                .collect();
            if let Some(s) = seen.iter().find(|s| statuses.contains(&s.as_str())) {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no heartbeat {statuses:?} from {instance} in {within:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn can_run() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: backup tests need root (service account, restored file ownership)");
        return false;
    }
    if trove_guestagent::backup::find_program("mariadb-backup").is_none()
        || trove_guestagent::backup::find_program("mbstream").is_none()
    {
        eprintln!("skipped: mariadb-backup and mbstream are not installed (Debian package mariadb-backup)");
        return false;
    }
    true
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// One agent on the shared in-memory broker, with its client.
struct Guest {
    id: String,
    inst: Instance,
    agent: Option<Agent>,
    api: GuestApi,
}

impl Guest {
    async fn start(transport: &InMemoryTransport, conductor_topic: &str) -> Guest {
        let id = uuid::Uuid::new_v4().to_string();
        let inst = Instance::new(3306);
        let settings = AgentSettings {
            guest_id: id.clone(),
            datastore_manager: "mariadb".into(),
            rpc_key: None,
            conductor_topic: conductor_topic.into(),
            report_interval: Duration::from_secs(1),
            restart_backoff: RestartBackoff::default(),
            manager: inst.config.clone(),
        };
        let t: Arc<dyn Transport> = Arc::new(transport.clone());
        let agent = Agent::start(settings, t.clone())
            .await
            .expect("agent starts");
        let api = GuestApi::new(t, &id, None, GuestTimeouts::default(), GUEST_LATEST_VERSION);
        Guest {
            id,
            inst,
            agent: Some(agent),
            api,
        }
    }

    async fn stop(mut self) {
        if let Some(a) = self.agent.take() {
            a.stop().await;
        }
    }
}

fn ctx() -> RpcContext {
    RpcContext::new_internal()
}

fn prepare_args(backup_info: Value) -> PrepareArgs {
    serde_json::from_value(json!({
        "packages": null,
        "databases": [{"_name": "orders", "_character_set": null, "_collate": null}],
        "memory_mb": 512,
        "users": [{"_name": "app", "_password": "s3cret-Pass", "_host": "%",
                   "_databases": [{"_name": "orders"}]}],
        "device_path": null, "mount_point": "/var/lib/mysql",
        "backup_info": backup_info,
        "config_contents": null, "root_password": null, "overrides": null,
        "cluster_config": null, "snapshot": null, "modules": null, "ds_version": "10.11"
    }))
    .expect("prepare args")
}

async fn app_pool(inst: &Instance) -> sqlx::MySqlPool {
    let opts = sqlx::mysql::MySqlConnectOptions::new()
        .host(&inst.addr.to_string())
        .port(3306)
        .username("app")
        .password("s3cret-Pass")
        .database("orders");
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .expect("app connects")
}

fn backup_info(id: &str, instance_id: &str, store_url: &str) -> Value {
    json!({"id": id, "name": "b", "description": null, "instance_id": instance_id,
        "backup_type": "full", "checksum": null, "parent": null, "datastore": "mariadb",
        "datastore_version": "10.11", "storage_driver": "swift", "swift_container": null,
        "swift_url": store_url})
}

/// Full backup of a live instance while a writer keeps inserting, then a new instance
/// restored from it has the rows (a consistent prefix of the writer's), the users and their
/// passwords; more writes, an incremental backup, and another new instance restored from
/// the chain has exactly the source's rows; a tampered backup is refused and a prepare never
/// starts a server on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_hot_backup_then_restore_into_a_new_instance() {
    if !can_run() {
        return;
    }
    init_logging();
    let transport = InMemoryTransport::new();
    let conductor_topic = format!("conductor-{}", uuid::Uuid::new_v4().simple());
    let recorder = Arc::new(Recorder::default());
    let _conductor = transport
        .serve(&Target::topic(conductor_topic.clone()), recorder.clone())
        .await
        .expect("conductor stand-in serves");
    let store_dir = tempfile::Builder::new()
        .prefix("trove-backups-")
        .tempdir()
        .unwrap();
    let store_url = format!("file://{}", store_dir.path().display());

    // Source instance with rows.
    let src = Guest::start(&transport, &conductor_topic).await;
    src.api
        .prepare(&ctx(), prepare_args(Value::Null))
        .await
        .unwrap();
    let s = recorder
        .wait_heartbeat(
            &src.id,
            &["healthy", "failed to spawn"],
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(s, "healthy");
    let pool = app_pool(&src.inst).await;
    sqlx::raw_sql(
        "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB; \
         CREATE TABLE m (k INT PRIMARY KEY, v TEXT) ENGINE=MyISAM",
    )
    .execute(&pool)
    .await
    .unwrap();
    for i in 0..20 {
        let values: Vec<String> = (0..500)
            .map(|j| format!("('row {i}-{j} {}')", "x".repeat(100)))
            .collect();
        sqlx::raw_sql(&format!("INSERT INTO t (v) VALUES {}", values.join(",")))
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO m VALUES (1, 'myisam row')")
        .execute(&pool)
        .await
        .unwrap();
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(before, 10_000);

    // A writer keeps inserting, one row per statement (autocommit), during the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicI64::new(0));
    let writer = {
        let (pool, stop, written) = (pool.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                sqlx::query("INSERT INTO t (v) VALUES ('during backup')")
                    .execute(&pool)
                    .await
                    .expect("writes keep flowing during the backup");
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while written.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backup_id = uuid::Uuid::new_v4().to_string();
    src.api
        .create_backup(&ctx(), backup_info(&backup_id, &src.id, &store_url))
        .await
        .unwrap();
    let updates = recorder
        .wait_backup_done(&backup_id, Duration::from_secs(300))
        .await;
    let during = written.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        during > 50,
        "the writer was blocked during the backup ({during} rows)"
    );

    assert_eq!(updates[0]["state"], "BUILDING", "{updates:?}");
    assert_eq!(updates[0]["backup_type"], "full");
    assert_eq!(updates[0]["instance_id"], src.id.as_str());
    assert!(updates[0]["size"].as_f64().is_some(), "{updates:?}");
    let done = updates.last().unwrap();
    assert_eq!(done["state"], "COMPLETED", "{updates:?}");
    assert_eq!(done["success"], true);
    let location = done["location"].as_str().unwrap().to_owned();
    let checksum = done["checksum"].as_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("{store_url}/database_backups/{backup_id}.xbstream.zst")
    );
    assert!(done["size"].as_f64().unwrap() > 0.0);
    let store = LocalStore::for_location(&location).unwrap();
    let info = store.verify(&location, Some(&checksum)).await.unwrap();
    assert_eq!(info.metadata["datastore"], "mariadb");
    assert_eq!(info.metadata["datastore_version"], "10.11");
    assert_eq!(info.metadata["compression"], "zstd");
    assert!(
        info.metadata
            .get("lsn")
            .is_some_and(|l| l.parse::<u64>().is_ok()),
        "{:?}",
        info.metadata
    );
    // The end notification of the backup reached the conductor.
    assert!(recorder.calls("notify_end").iter().any(|a| {
        a["serialized_notification"]["notification_classname"]
            == "trove.common.notification.DBaaSBackupCreate"
    }));
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();

    // A new instance from the backup.
    let dst = Guest::start(&transport, &conductor_topic).await;
    let restore = json!({"id": backup_id, "location": location, "checksum": checksum,
        "type": "mariabackup"});
    dst.api
        .prepare(&ctx(), prepare_args(restore))
        .await
        .unwrap();
    let s = recorder
        .wait_heartbeat(
            &dst.id,
            &["healthy", "failed to spawn"],
            Duration::from_secs(300),
        )
        .await;
    assert_eq!(s, "healthy", "{:?}", recorder.calls("notify_exc_info"));
    let pool2 = app_pool(&dst.inst).await;
    let (n, max_id): (i64, i64) = sqlx::query_as("SELECT COUNT(*), MAX(id) FROM t")
        .fetch_one(&pool2)
        .await
        .unwrap();
    // Every row committed before the backup, and a gap-free prefix of the writer's rows
    // (a consistent point in time), no more than were ever written.
    assert!(
        n >= before + 50,
        "{n} rows restored, {before} before the writer"
    );
    assert!(n <= total, "{n} > {total}");
    assert_eq!(n, max_id, "restored ids are not a gap-free prefix");
    let m: String = sqlx::query_scalar("SELECT v FROM m WHERE k = 1")
        .fetch_one(&pool2)
        .await
        .unwrap();
    assert_eq!(m, "myisam row");
    pool2.close().await;
    // The agent administers the restored server with its own new credentials.
    let users = dst.api.list_users(&ctx(), None, None, false).await.unwrap();
    assert!(
        format!("{users:?}").contains("app"),
        "restored users: {users:?}"
    );

    // More rows, then an incremental backup on top of the full one.
    sqlx::raw_sql("INSERT INTO t (v) VALUES ('after the full backup'); UPDATE m SET v = 'changed' WHERE k = 1; DELETE FROM t WHERE id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let (inc_rows, inc_max): (i64, i64) = sqlx::query_as("SELECT COUNT(*), MAX(id) FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let inc_id = uuid::Uuid::new_v4().to_string();
    let mut inc_info = backup_info(&inc_id, &src.id, &store_url);
    inc_info["backup_type"] = json!("incremental");
    inc_info["parent"] = json!({"location": location, "checksum": checksum});
    src.api.create_backup(&ctx(), inc_info).await.unwrap();
    let u = recorder
        .wait_backup_done(&inc_id, Duration::from_secs(300))
        .await;
    let inc_done = u.last().unwrap();
    assert_eq!(inc_done["state"], "COMPLETED", "{u:?}");
    assert_eq!(inc_done["backup_type"], "incremental");
    let inc_location = inc_done["location"].as_str().unwrap().to_owned();
    let inc_checksum = inc_done["checksum"].as_str().unwrap().to_owned();
    let inc_head = store.head(&inc_location).await.unwrap();
    assert_eq!(inc_head.metadata["parent_location"], location);
    assert_eq!(inc_head.metadata["parent_checksum"], checksum);
    // Really incremental: InnoDB files travel as deltas from the parent's LSN (pages not
    // flushed yet travel in the redo log, which the restore applies).
    let mut plain = Vec::new();
    trove_backup::compress::zstd_decompress(store.get(&inc_location, None).await.unwrap())
        .read_to_end(&mut plain)
        .await
        .unwrap();
    assert!(
        plain.windows(13).any(|w| w == b"ibdata1.delta"),
        "the incremental backup holds no InnoDB delta"
    );
    // Restored with its chain (full, then incremental) into another new instance.
    let dst2 = Guest::start(&transport, &conductor_topic).await;
    let restore = json!({"id": inc_id, "location": inc_location, "checksum": inc_checksum,
        "type": "mariabackup"});
    dst2.api
        .prepare(&ctx(), prepare_args(restore))
        .await
        .unwrap();
    let s = recorder
        .wait_heartbeat(
            &dst2.id,
            &["healthy", "failed to spawn"],
            Duration::from_secs(300),
        )
        .await;
    assert_eq!(s, "healthy", "{:?}", recorder.calls("notify_exc_info"));
    let pool3 = app_pool(&dst2.inst).await;
    let (n3, max3): (i64, i64) = sqlx::query_as("SELECT COUNT(*), MAX(id) FROM t")
        .fetch_one(&pool3)
        .await
        .unwrap();
    assert_eq!((n3, max3), (inc_rows, inc_max));
    let first: i64 = sqlx::query_scalar("SELECT MIN(id) FROM t")
        .fetch_one(&pool3)
        .await
        .unwrap();
    assert_eq!(first, 2);
    let m: String = sqlx::query_scalar("SELECT v FROM m WHERE k = 1")
        .fetch_one(&pool3)
        .await
        .unwrap();
    assert_eq!(m, "changed");
    pool3.close().await;
    dst2.stop().await;

    // A tampered backup is refused before anything starts.
    let seg = store_dir
        .path()
        .join(format!("database_backups/{backup_id}.xbstream.zst"));
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    let bad = Guest::start(&transport, &conductor_topic).await;
    let restore = json!({"id": backup_id, "location": location, "checksum": checksum});
    bad.api
        .prepare(&ctx(), prepare_args(restore))
        .await
        .unwrap();
    let s = recorder
        .wait_heartbeat(
            &bad.id,
            &["healthy", "failed to spawn"],
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(s, "failed to spawn");
    let faults = recorder.calls("notify_exc_info");
    assert!(
        faults.iter().any(|a| {
            let m = a["message"].as_str().unwrap_or_default();
            m.contains("backup object") && (m.contains("corrupt") || m.contains("checksum"))
        }),
        "{faults:?}"
    );
    assert!(bad.inst.server_pid().is_none());

    bad.stop().await;
    dst.stop().await;
    src.stop().await;
}

/// Failures end FAILED with a reason the tenant can read, and leave no object behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_backup_failures_are_reported() {
    if !can_run() {
        return;
    }
    init_logging();
    let transport = InMemoryTransport::new();
    let conductor_topic = format!("conductor-{}", uuid::Uuid::new_v4().simple());
    let recorder = Arc::new(Recorder::default());
    let _conductor = transport
        .serve(&Target::topic(conductor_topic.clone()), recorder.clone())
        .await
        .expect("conductor stand-in serves");
    let store_dir = tempfile::tempdir().unwrap();
    let store_url = format!("file://{}", store_dir.path().display());
    let g = Guest::start(&transport, &conductor_topic).await;

    // Not prepared yet: refused at once, reported FAILED.
    let id0 = uuid::Uuid::new_v4().to_string();
    let e = g
        .api
        .create_backup(&ctx(), backup_info(&id0, &g.id, &store_url))
        .await;
    // A cast: the refusal travels by update_backup, not by the cast's result.
    assert!(e.is_ok(), "{e:?}");
    let u = recorder
        .wait_backup_done(&id0, Duration::from_secs(10))
        .await;
    assert_eq!(u.last().unwrap()["state"], "FAILED");

    g.api
        .prepare(&ctx(), prepare_args(Value::Null))
        .await
        .unwrap();
    let s = recorder
        .wait_heartbeat(
            &g.id,
            &["healthy", "failed to spawn"],
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(s, "healthy");

    // No store URL, and a Swift URL this agent cannot write to.
    for (url, words) in [
        (Value::Null, "swift_url"),
        (json!("https://swift.example/v1/AUTH_t"), "local directory"),
    ] {
        let id = uuid::Uuid::new_v4().to_string();
        let mut info = backup_info(&id, &g.id, "");
        info["swift_url"] = url;
        g.api.create_backup(&ctx(), info).await.unwrap();
        let u = recorder
            .wait_backup_done(&id, Duration::from_secs(30))
            .await;
        assert_eq!(u[0]["state"], "BUILDING");
        assert_eq!(u.last().unwrap()["state"], "FAILED", "{u:?}");
        assert_eq!(u.last().unwrap()["success"], false);
        let faults = recorder.calls("notify_exc_info");
        assert!(
            faults.iter().any(|a| a["message"]
                .as_str()
                .is_some_and(|m| m.contains(&id) && m.contains(words))),
            "{faults:?}"
        );
    }

    // Two backups at once: one runs, the other is refused, as Trove refuses a second running
    // backup of an instance.
    let (a, b) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    g.api
        .create_backup(&ctx(), backup_info(&a, &g.id, &store_url))
        .await
        .unwrap();
    g.api
        .create_backup(&ctx(), backup_info(&b, &g.id, &store_url))
        .await
        .unwrap();
    let ua = recorder
        .wait_backup_done(&a, Duration::from_secs(120))
        .await;
    let ub = recorder
        .wait_backup_done(&b, Duration::from_secs(120))
        .await;
    let mut finals = [
        ua.last().unwrap()["state"].as_str().unwrap().to_owned(),
        ub.last().unwrap()["state"].as_str().unwrap().to_owned(),
    ];
    finals.sort();
    assert_eq!(finals, ["COMPLETED", "FAILED"], "{ua:?} {ub:?}");
    let faults = recorder.calls("notify_exc_info");
    assert!(
        faults.iter().any(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.contains("another backup of this instance is running"))),
        "{faults:?}"
    );
    for dir_entry in std::fs::read_dir(store_dir.path().join("database_backups")).unwrap() {
        std::fs::remove_file(dir_entry.unwrap().path()).unwrap();
    }

    // The tool fails mid-way (its account's password no longer works): FAILED, and the
    // container holds nothing.
    let cnf = g.inst.mount().join("conf.d/os_admin.cnf");
    let good = std::fs::read_to_string(&cnf).unwrap();
    std::fs::write(&cnf, good.replace("password=", "password=wrong")).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    g.api
        .create_backup(&ctx(), backup_info(&id, &g.id, &store_url))
        .await
        .unwrap();
    let u = recorder
        .wait_backup_done(&id, Duration::from_secs(120))
        .await;
    std::fs::write(&cnf, good).unwrap();
    assert_eq!(u.last().unwrap()["state"], "FAILED", "{u:?}");
    let faults = recorder.calls("notify_exc_info");
    let msg = faults
        .iter()
        .filter_map(|a| a["message"].as_str())
        .find(|m| m.contains(&id))
        .unwrap_or_default()
        .to_owned();
    assert!(msg.contains("mariadb-backup"), "{msg}");
    assert!(msg.contains("Access denied"), "{msg}");
    let left: Vec<_> = std::fs::read_dir(store_dir.path().join("database_backups"))
        .map(|r| r.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    g.stop().await;
}

/// With `backup_encryption_key` set, the object in the store is ciphertext (the encrypted
/// stream's header, no xbstream or zstd magic), a new instance restores from it with the
/// key, and an agent without the key refuses it before starting any server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_encrypted_backup_restores_only_with_its_key() {
    if !can_run() {
        return;
    }
    init_logging();
    use base64::Engine as _;
    let key_text = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let key = trove_backup::encrypt::EncryptionKey::from_base64(&key_text).unwrap();
    trove_backup::encrypt::set_process_key(Some(key.clone()));

    let transport = InMemoryTransport::new();
    let conductor_topic = format!("conductor-{}", uuid::Uuid::new_v4().simple());
    let recorder = Arc::new(Recorder::default());
    let _conductor = transport
        .serve(&Target::topic(conductor_topic.clone()), recorder.clone())
        .await
        .expect("conductor stand-in serves");
    let store_dir = tempfile::Builder::new()
        .prefix("trove-backups-")
        .tempdir()
        .unwrap();
    let store_url = format!("file://{}", store_dir.path().display());

    let src = Guest::start(&transport, &conductor_topic).await;
    src.api
        .prepare(&ctx(), prepare_args(Value::Null))
        .await
        .unwrap();
    let s = recorder
        .wait_heartbeat(
            &src.id,
            &["healthy", "failed to spawn"],
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(s, "healthy");
    let pool = app_pool(&src.inst).await;
    sqlx::raw_sql(
        "CREATE TABLE secret (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO secret VALUES (1, 'plain text that must not reach the store')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let backup_id = uuid::Uuid::new_v4().to_string();
    src.api
        .create_backup(&ctx(), backup_info(&backup_id, &src.id, &store_url))
        .await
        .unwrap();
    let u = recorder
        .wait_backup_done(&backup_id, Duration::from_secs(300))
        .await;
    let done = u.last().unwrap();
    assert_eq!(done["state"], "COMPLETED", "{u:?}");
    let location = done["location"].as_str().unwrap().to_owned();
    let checksum = done["checksum"].as_str().unwrap().to_owned();

    // What the store holds: the encrypted stream, recorded as such.
    let raw_store = LocalStore::for_location(&location).unwrap();
    let head = raw_store.head(&location).await.unwrap();
    assert_eq!(
        head.metadata[trove_backup::META_ENCRYPTION],
        trove_backup::encrypt::SCHEME
    );
    assert!(head.metadata.contains_key("lsn"), "{:?}", head.metadata);
    let mut stored = Vec::new();
    raw_store
        .get(&location, Some(&checksum))
        .await
        .unwrap()
        .read_to_end(&mut stored)
        .await
        .unwrap();
    assert_eq!(&stored[..8], b"TRVBKE1\0");
    let needle = b"plain text that must not reach the store";
    assert!(!stored.windows(needle.len()).any(|w| w == needle));

    let restore = json!({"id": backup_id, "location": location, "checksum": checksum,
        "type": "mariabackup"});
    // Without the key: refused, no server started.
    trove_backup::encrypt::set_process_key(None);
    let nokey = Guest::start(&transport, &conductor_topic).await;
    nokey
        .api
        .prepare(&ctx(), prepare_args(restore.clone()))
        .await
        .unwrap();
    let s = recorder
        .wait_heartbeat(
            &nokey.id,
            &["healthy", "failed to spawn"],
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(s, "failed to spawn");
    assert!(nokey.inst.server_pid().is_none(), "a server started");
    let faults = format!("{:?}", recorder.calls("notify_exc_info"));
    assert!(faults.contains("backup_encryption_key"), "{faults}");

    // With the key: the rows are back.
    trove_backup::encrypt::set_process_key(Some(key));
    let dst = Guest::start(&transport, &conductor_topic).await;
    dst.api
        .prepare(&ctx(), prepare_args(restore))
        .await
        .unwrap();
    let s = recorder
        .wait_heartbeat(
            &dst.id,
            &["healthy", "failed to spawn"],
            Duration::from_secs(300),
        )
        .await;
    assert_eq!(s, "healthy", "{:?}", recorder.calls("notify_exc_info"));
    let pool = app_pool(&dst.inst).await;
    let v: String = sqlx::query_scalar("SELECT v FROM secret WHERE id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(v, "plain text that must not reach the store");
    pool.close().await;
    for g in [src, nokey, dst] {
        g.stop().await;
    }
}
