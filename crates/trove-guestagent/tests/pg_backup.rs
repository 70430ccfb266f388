//! PostgreSQL backups and restores through the guest agent, on real `postgres` servers: the
//! agent serves on the in-memory transport, a conductor stand-in records what the guest casts
//! to it (`update_backup`, heartbeats, notifications), and backups land in a `LocalStore`
//! directory. Needs root (service account, ownership of the restored files) and PostgreSQL
//! 15's tools; skipped with a printed reason otherwise.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::Instance;
use serde_json::{json, Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::io::AsyncReadExt;
use trove_backup::{BackupStore, LocalStore};
use trove_guestagent::agent::AgentSettings;
use trove_guestagent::heartbeat::RestartBackoff;
use trove_guestagent::Agent;
use trove_rpc::api::guest::GUEST_LATEST_VERSION;
use trove_rpc::api::{GuestApi, GuestTimeouts, PrepareArgs};
use trove_rpc::{InMemoryTransport, MessageHandler, RemoteError, RpcContext, Target, Transport};

const PORT: u16 = 5432;

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

    async fn wait_backup_done(&self, backup_id: &str, within: Duration) -> Vec<Map<String, Value>> {
        let deadline = Instant::now() + within;
        loop {
            let u: Vec<_> = self
                .calls("update_backup")
                .into_iter()
                .filter(|a| a["backup_id"] == backup_id)
                .collect();
            if u.iter()
                .any(|a| a["state"] == "COMPLETED" || a["state"] == "FAILED")
            {
                return u;
            }
            assert!(
                Instant::now() < deadline,
                "backup {backup_id} not finished in {within:?}: {u:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

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

    fn fault_of(&self, needle: &str) -> String {
        self.calls("notify_exc_info")
            .iter()
            .filter_map(|a| a["message"].as_str().map(str::to_owned))
            .find(|m| m.contains(needle))
            .unwrap_or_default()
    }
}

fn can_run() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: backup tests need root (service account, restored file ownership)");
        return false;
    }
    let bin = std::path::Path::new("/usr/lib/postgresql/15/bin");
    if !bin.join("pg_basebackup").is_file() || !bin.join("pg_verifybackup").is_file() {
        eprintln!("skipped: PostgreSQL 15's pg_basebackup is not installed");
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

struct Guest {
    id: String,
    inst: Instance,
    agent: Option<Agent>,
    api: GuestApi,
}

impl Guest {
    async fn start(transport: &InMemoryTransport, conductor_topic: &str) -> Guest {
        let id = uuid::Uuid::new_v4().to_string();
        let inst = Instance::new(PORT);
        let settings = AgentSettings {
            guest_id: id.clone(),
            datastore_manager: "postgresql".into(),
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
    let restoring = !backup_info.is_null();
    // A restore brings the source's databases and users; the request names none (as for
    // an instance created from a backup without extra ones).
    let (databases, users) = if restoring {
        (json!([]), json!([]))
    } else {
        (
            json!([{"_name": "orders", "_character_set": null, "_collate": null}]),
            json!([{"_name": "app", "_password": "s3cret-Pass", "_host": "%",
                    "_databases": [{"_name": "orders"}]}]),
        )
    };
    serde_json::from_value(json!({
        "packages": null, "databases": databases, "memory_mb": 512, "users": users,
        "device_path": null, "mount_point": "/var/lib/postgresql",
        "backup_info": backup_info,
        "config_contents": null, "root_password": null, "overrides": null,
        "cluster_config": null, "snapshot": null, "modules": null, "ds_version": "15"
    }))
    .expect("prepare args")
}

async fn app_pool(inst: &Instance) -> PgPool {
    let opts = PgConnectOptions::new()
        .host(&inst.addr.to_string())
        .port(PORT)
        .username("app")
        .password("s3cret-Pass")
        .database("orders");
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .expect("app connects")
}

fn backup_info(id: &str, instance_id: &str, store_url: &str) -> Value {
    json!({"id": id, "name": "b", "description": null, "instance_id": instance_id,
        "backup_type": "full", "checksum": null, "parent": null, "datastore": "postgresql",
        "datastore_version": "15", "storage_driver": "swift", "swift_container": null,
        "swift_url": store_url})
}

/// `(count, min id, max id, digest of every row)` of table `t`.
async fn summary(pool: &PgPool) -> (i64, i64, i64, String) {
    sqlx::query_as(
        "SELECT count(*), coalesce(min(id), 0), coalesce(max(id), 0), \
         coalesce(md5(string_agg(id::text || ':' || v, ',' ORDER BY id)), '') FROM t",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Takes a backup and returns `(location, checksum)` of the COMPLETED backup.
async fn take_backup(g: &Guest, recorder: &Recorder, info: Value, id: &str) -> (String, String) {
    g.api.create_backup(&ctx(), info).await.unwrap();
    let u = recorder
        .wait_backup_done(id, Duration::from_secs(300))
        .await;
    assert_eq!(u[0]["state"], "BUILDING", "{u:?}");
    let done = u.last().unwrap();
    assert_eq!(
        done["state"],
        "COMPLETED",
        "{u:?} {}",
        recorder.fault_of(id)
    );
    assert_eq!(done["success"], true);
    (
        done["location"].as_str().unwrap().to_owned(),
        done["checksum"].as_str().unwrap().to_owned(),
    )
}

/// Prepares a new instance from a backup; returns it once healthy.
async fn restore(
    transport: &InMemoryTransport,
    conductor_topic: &str,
    recorder: &Recorder,
    location: &str,
    checksum: &str,
) -> Guest {
    let g = Guest::start(transport, conductor_topic).await;
    let restore = json!({"id": "x", "location": location, "checksum": checksum,
        "type": "pg_basebackup"});
    g.api.prepare(&ctx(), prepare_args(restore)).await.unwrap();
    let s = recorder
        .wait_heartbeat(
            &g.id,
            &["healthy", "failed to spawn"],
            Duration::from_secs(300),
        )
        .await;
    assert_eq!(s, "healthy", "{:?}", recorder.calls("notify_exc_info"));
    g
}

/// Full backup of a live instance while a writer keeps inserting; more writes; an
/// incremental backup; more writes; a second incremental. Each restores into a new instance:
/// the full one to a consistent state (a gap-free prefix of the writer's committed rows,
/// within the window), each incremental (with its chain) to exactly the source's rows at
/// its time, with the tenant's user and password. A tampered object is refused and no
/// server starts on it; an incremental whose WAL left the archive ends FAILED, leaving
/// nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_hot_backups_full_and_incremental_restore_into_new_instances() {
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
        .prefix("trove-pg-backups-")
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
    assert_eq!(s, "healthy", "{:?}", recorder.calls("notify_exc_info"));
    let pool = app_pool(&src.inst).await;
    sqlx::raw_sql("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t (v) SELECT 'row ' || g || ' ' || repeat('x', 100) FROM generate_series(1, 10000) g")
        .execute(&pool)
        .await
        .unwrap();
    let before = summary(&pool).await.0;
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
    let at_start = written.load(Ordering::SeqCst);
    let full_id = uuid::Uuid::new_v4().to_string();
    let (full_loc, full_sum) = take_backup(
        &src,
        &recorder,
        backup_info(&full_id, &src.id, &store_url),
        &full_id,
    )
    .await;
    let during = written.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        during > at_start,
        "the writer was blocked during the backup ({at_start} rows before it, {during} after)"
    );
    let total = summary(&pool).await.0;
    assert_eq!(
        full_loc,
        format!("{store_url}/database_backups/{full_id}.tar.zst")
    );
    let store = LocalStore::for_location(&full_loc).unwrap();
    let head = store.verify(&full_loc, Some(&full_sum)).await.unwrap();
    let m = &head.metadata;
    assert_eq!(m["datastore"], "postgresql");
    assert_eq!(m["datastore_version"], "15");
    assert_eq!(m["compression"], "zstd");
    assert_eq!(m["label"], full_id);
    assert_eq!(m["timeline"], "1");
    for k in ["start_segment", "stop_segment", "checkpoint_location"] {
        assert!(
            trove_guestagent::pgbackup::parse_lsn(&m[k]).is_some(),
            "{k}: {m:?}"
        );
    }
    for k in ["start_wal_file", "stop_wal_file"] {
        assert!(
            trove_guestagent::pgbackup::is_segment_name(&m[k]),
            "{k}: {m:?}"
        );
    }
    assert!(m["system_identifier"].parse::<u64>().is_ok(), "{m:?}");
    assert!(recorder.calls("notify_end").iter().any(|a| {
        a["serialized_notification"]["notification_classname"]
            == "trove.common.notification.DBaaSBackupCreate"
    }));

    // The full backup restored: every committed row before the writer, a gap-free prefix of
    // the writer's rows (one point in time), no more than were ever written.
    let dst = restore(
        &transport,
        &conductor_topic,
        &recorder,
        &full_loc,
        &full_sum,
    )
    .await;
    let pool_d = app_pool(&dst.inst).await;
    let (n, min, max, _) = summary(&pool_d).await;
    assert!(
        n >= before + 50,
        "{n} rows restored, {before} before the writer"
    );
    assert!(n <= total, "{n} > {total}");
    assert_eq!((min, max), (1, n), "restored ids are not a gap-free prefix");
    // The restored instance takes writes (it left recovery) and the agent administers it.
    sqlx::query("INSERT INTO t (v) VALUES ('on the copy')")
        .execute(&pool_d)
        .await
        .unwrap();
    let users = dst.api.list_users(&ctx(), None, None, false).await.unwrap();
    assert!(format!("{users:?}").contains("app"), "{users:?}");
    // The copy (promoted onto a new timeline) backs up in turn, full then incremental, and
    // its chain restores to exactly its rows.
    let copy_full = uuid::Uuid::new_v4().to_string();
    let (cf_loc, cf_sum) = take_backup(
        &dst,
        &recorder,
        backup_info(&copy_full, &dst.id, &store_url),
        &copy_full,
    )
    .await;
    assert_eq!(store.head(&cf_loc).await.unwrap().metadata["timeline"], "2");
    sqlx::query("INSERT INTO t (v) SELECT 'copy ' || g FROM generate_series(1, 500) g")
        .execute(&pool_d)
        .await
        .unwrap();
    let at_copy_inc = summary(&pool_d).await;
    pool_d.close().await;
    let copy_inc = uuid::Uuid::new_v4().to_string();
    let mut info = backup_info(&copy_inc, &dst.id, &store_url);
    info["backup_type"] = json!("incremental");
    info["parent"] = json!({"location": cf_loc, "checksum": cf_sum});
    let (ci_loc, ci_sum) = take_backup(&dst, &recorder, info, &copy_inc).await;
    dst.stop().await;
    let g = restore(&transport, &conductor_topic, &recorder, &ci_loc, &ci_sum).await;
    let p = app_pool(&g.inst).await;
    assert_eq!(
        summary(&p).await,
        at_copy_inc,
        "restored from the copy's chain"
    );
    p.close().await;
    g.stop().await;

    // More writes, then an incremental backup on top of the full one.
    sqlx::raw_sql("INSERT INTO t (v) VALUES ('after the full backup'); UPDATE t SET v = 'changed' WHERE id = 2; DELETE FROM t WHERE id = 1")
        .execute(&pool)
        .await
        .unwrap();
    let at_inc1 = summary(&pool).await;
    let inc1_id = uuid::Uuid::new_v4().to_string();
    let mut info = backup_info(&inc1_id, &src.id, &store_url);
    info["backup_type"] = json!("incremental");
    info["parent"] = json!({"location": full_loc, "checksum": full_sum});
    let (inc1_loc, inc1_sum) = take_backup(&src, &recorder, info, &inc1_id).await;
    let inc1_head = store.head(&inc1_loc).await.unwrap();
    assert_eq!(inc1_head.metadata["parent_location"], full_loc);
    assert_eq!(inc1_head.metadata["parent_checksum"], full_sum);
    assert!(inc1_head.metadata["stop_wal_file"] > m["stop_wal_file"]);
    // Really incremental: WAL segments only, no data files.
    let mut plain = Vec::new();
    trove_backup::compress::zstd_decompress(store.get(&inc1_loc, None).await.unwrap())
        .read_to_end(&mut plain)
        .await
        .unwrap();
    assert!(
        plain
            .windows(m["stop_wal_file"].len())
            .any(|w| w == m["stop_wal_file"].as_bytes()),
        "the incremental backup does not start at the parent's stop segment"
    );
    assert!(!plain.windows(10).any(|w| w == b"PG_VERSION"));

    // A second incremental, on the first.
    sqlx::raw_sql("INSERT INTO t (v) SELECT 'second ' || g FROM generate_series(1, 2000) g; UPDATE t SET v = 'changed again' WHERE id = 3")
        .execute(&pool)
        .await
        .unwrap();
    let at_inc2 = summary(&pool).await;
    let inc2_id = uuid::Uuid::new_v4().to_string();
    let mut info = backup_info(&inc2_id, &src.id, &store_url);
    info["backup_type"] = json!("incremental");
    info["parent"] = json!({"location": inc1_loc, "checksum": inc1_sum});
    let (inc2_loc, inc2_sum) = take_backup(&src, &recorder, info, &inc2_id).await;

    // Each incremental restores, with its chain, to exactly the source's rows at its time.
    for (loc, sum, expected) in [
        (&inc1_loc, &inc1_sum, &at_inc1),
        (&inc2_loc, &inc2_sum, &at_inc2),
    ] {
        let g = restore(&transport, &conductor_topic, &recorder, loc, sum).await;
        let p = app_pool(&g.inst).await;
        assert_eq!(&summary(&p).await, expected, "restored from {loc}");
        p.close().await;
        g.stop().await;
    }

    // An incremental whose WAL is no longer archived ends FAILED and stores nothing.
    let archive = src.inst.mount().join("data/wal_archive");
    let parent_stop = store.head(&inc2_loc).await.unwrap().metadata["stop_wal_file"].clone();
    sqlx::query("INSERT INTO t (v) SELECT 'third ' || g FROM generate_series(1, 100) g")
        .execute(&pool)
        .await
        .unwrap();
    std::fs::remove_file(archive.join(&parent_stop)).unwrap();
    let lost_id = uuid::Uuid::new_v4().to_string();
    let mut info = backup_info(&lost_id, &src.id, &store_url);
    info["backup_type"] = json!("incremental");
    info["parent"] = json!({"location": inc2_loc, "checksum": inc2_sum});
    src.api.create_backup(&ctx(), info).await.unwrap();
    let u = recorder
        .wait_backup_done(&lost_id, Duration::from_secs(120))
        .await;
    assert_eq!(u.last().unwrap()["state"], "FAILED", "{u:?}");
    let msg = recorder.fault_of(&lost_id);
    assert!(
        msg.contains(&parent_stop) && msg.contains("take a full backup"),
        "{msg}"
    );
    let left: Vec<String> = std::fs::read_dir(store_dir.path().join("database_backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&lost_id))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    pool.close().await;

    // The tool fails (its replication connection is refused): FAILED with the tool's reason,
    // and the partial object is removed.
    let hba = src.inst.mount().join("etc/pg_hba.conf");
    let good = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("local   replication   postgres   reject\n{good}"),
    )
    .unwrap();
    src.inst.signal_server("HUP");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let refused_id = uuid::Uuid::new_v4().to_string();
    src.api
        .create_backup(&ctx(), backup_info(&refused_id, &src.id, &store_url))
        .await
        .unwrap();
    let u = recorder
        .wait_backup_done(&refused_id, Duration::from_secs(120))
        .await;
    assert_eq!(u.last().unwrap()["state"], "FAILED", "{u:?}");
    let msg = recorder.fault_of(&refused_id);
    assert!(
        msg.contains("pg_basebackup") && msg.contains("pg_hba.conf"),
        "{msg}"
    );
    let left: Vec<String> = std::fs::read_dir(store_dir.path().join("database_backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&refused_id))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::write(&hba, good).unwrap();

    // A tampered full backup: the restore of an incremental on it is refused before anything
    // starts.
    let file = store_dir
        .path()
        .join(format!("database_backups/{full_id}.tar.zst"));
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let bad = Guest::start(&transport, &conductor_topic).await;
    let restore_info = json!({"id": inc1_id, "location": inc1_loc, "checksum": inc1_sum});
    bad.api
        .prepare(&ctx(), prepare_args(restore_info))
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
    assert!(!bad.inst.mount().join("data/pgdata/PG_VERSION").exists());

    bad.stop().await;
    src.stop().await;
}

/// The segment-named files in a WAL archive, sorted.
fn archived_segments(archive: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(archive)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| trove_guestagent::pgbackup::is_segment_name(n))
        .collect();
    v.sort();
    v
}

/// A full backup cleans up the WAL archive to its start segment: older segments go, an
/// incremental on a backup older than it is refused with a reason naming it, and
/// incrementals on it still work and restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_full_backup_cleans_the_wal_archive_up_to_its_start() {
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
        .prefix("trove-pg-backups-")
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
    assert_eq!(s, "healthy", "{:?}", recorder.calls("notify_exc_info"));
    let archive = src.inst.mount().join("data/wal_archive");
    let pool = app_pool(&src.inst).await;
    sqlx::raw_sql("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    // The superuser (over the instance's socket) switches WAL segments.
    let superuser = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            PgConnectOptions::new()
                .host(&src.inst.mount().join("run").to_string_lossy())
                .port(PORT)
                .username("postgres")
                .database("postgres"),
        )
        .await
        .expect("the superuser connects over the instance's socket");
    let wait_archived = |n: usize| {
        let archive = archive.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while archived_segments(&archive).len() < n {
                assert!(Instant::now() < deadline, "the archiver is stuck");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    // Full backup #1, an incremental on it, more segments.
    sqlx::query("INSERT INTO t (v) SELECT 'first ' || g FROM generate_series(1, 1000) g")
        .execute(&pool)
        .await
        .unwrap();
    let full1 = uuid::Uuid::new_v4().to_string();
    let (full1_loc, full1_sum) = take_backup(
        &src,
        &recorder,
        backup_info(&full1, &src.id, &store_url),
        &full1,
    )
    .await;
    let store = LocalStore::for_location(&full1_loc).unwrap();
    let inc1 = uuid::Uuid::new_v4().to_string();
    let mut info = backup_info(&inc1, &src.id, &store_url);
    info["backup_type"] = json!("incremental");
    info["parent"] = json!({"location": full1_loc, "checksum": full1_sum});
    let (inc1_loc, inc1_sum) = take_backup(&src, &recorder, info, &inc1).await;
    for _ in 0..3 {
        sqlx::query("INSERT INTO t (v) SELECT 'between ' || g FROM generate_series(1, 500) g")
            .execute(&pool)
            .await
            .unwrap();
        let before = archived_segments(&archive).len();
        sqlx::query("SELECT pg_switch_wal()")
            .execute(&superuser)
            .await
            .unwrap();
        wait_archived(before + 1).await;
    }
    let before_full2 = archived_segments(&archive);
    let full1_start = store.head(&full1_loc).await.unwrap().metadata["start_wal_file"].clone();
    assert!(
        before_full2.contains(&full1_start),
        "{full1_start} not archived: {before_full2:?}"
    );

    // Full backup #2: nothing before its start segment is left.
    let full2 = uuid::Uuid::new_v4().to_string();
    let (full2_loc, full2_sum) = take_backup(
        &src,
        &recorder,
        backup_info(&full2, &src.id, &store_url),
        &full2,
    )
    .await;
    let full2_start = store.head(&full2_loc).await.unwrap().metadata["start_wal_file"].clone();
    let after_full2 = archived_segments(&archive);
    assert!(
        after_full2.iter().all(|s| s[8..] >= full2_start[8..]),
        "segments before {full2_start} left: {after_full2:?}"
    );
    assert!(
        before_full2.iter().any(|s| s[8..] < full2_start[8..]),
        "nothing was older than {full2_start}: {before_full2:?}"
    );
    assert!(!archive.join(&full1_start).exists());
    assert_eq!(
        trove_guestagent::pgbackup::cleanup_point(&archive),
        Some((full2_start.clone(), full2.clone()))
    );

    // An incremental on the older chain is refused, naming the newer full backup.
    let stale = uuid::Uuid::new_v4().to_string();
    let mut info = backup_info(&stale, &src.id, &store_url);
    info["backup_type"] = json!("incremental");
    info["parent"] = json!({"location": inc1_loc, "checksum": inc1_sum});
    src.api.create_backup(&ctx(), info).await.unwrap();
    let u = recorder
        .wait_backup_done(&stale, Duration::from_secs(120))
        .await;
    let last = u.last().unwrap();
    assert_eq!(last["state"], "FAILED", "{u:?}");
    let reason = last["fault_message"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&full2) && reason.contains("older than the newest full backup"),
        "{reason}"
    );

    // Incrementals on #2 work and restore to the source's rows.
    sqlx::raw_sql("INSERT INTO t (v) SELECT 'after ' || g FROM generate_series(1, 700) g; DELETE FROM t WHERE id = 5")
        .execute(&pool)
        .await
        .unwrap();
    let inc2 = uuid::Uuid::new_v4().to_string();
    let mut info = backup_info(&inc2, &src.id, &store_url);
    info["backup_type"] = json!("incremental");
    info["parent"] = json!({"location": full2_loc, "checksum": full2_sum});
    let (inc2_loc, inc2_sum) = take_backup(&src, &recorder, info, &inc2).await;
    sqlx::query("INSERT INTO t (v) SELECT 'last ' || g FROM generate_series(1, 300) g")
        .execute(&pool)
        .await
        .unwrap();
    let expected = summary(&pool).await;
    let inc3 = uuid::Uuid::new_v4().to_string();
    let mut info = backup_info(&inc3, &src.id, &store_url);
    info["backup_type"] = json!("incremental");
    info["parent"] = json!({"location": inc2_loc, "checksum": inc2_sum});
    let (inc3_loc, inc3_sum) = take_backup(&src, &recorder, info, &inc3).await;
    pool.close().await;
    superuser.close().await;
    let g = restore(
        &transport,
        &conductor_topic,
        &recorder,
        &inc3_loc,
        &inc3_sum,
    )
    .await;
    let p = app_pool(&g.inst).await;
    assert_eq!(summary(&p).await, expected, "restored from {inc3_loc}");
    p.close().await;
    g.stop().await;
    src.stop().await;
}
