//! A database larger than the free space of its volume backs up: the backup streams from the
//! tool through compression into the store, staging nothing on the instance's disk.
//!
//! The source instance is prepared on its own small ext4 volume (an image file on a loop
//! device, formatted and mounted by the agent as a Cinder volume would be), filled until its
//! data takes more room than is left free there; the backup goes to a local directory store
//! on another file system and is restored into an instance on the ordinary disk, whose rows
//! must equal the source's (count and checksum). Needs root (loop devices, mount, service
//! account) and the datastore's backup tools; skipped with a printed reason otherwise.
//! Instances listen on 127.2.13.x.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use trove_backup::{BackupStore, LocalStore};
use trove_guestagent::agent::AgentSettings;
use trove_guestagent::heartbeat::RestartBackoff;
use trove_guestagent::manager::ManagerConfig;
use trove_guestagent::process::{
    pid_alive, ServerProcess, ServiceUser, DEFAULT_SERVICE_UID, DEFAULT_SERVICE_USER,
};
use trove_guestagent::{volume, Agent};
use trove_rpc::api::guest::GUEST_LATEST_VERSION;
use trove_rpc::api::{GuestApi, GuestTimeouts, PrepareArgs};
use trove_rpc::{InMemoryTransport, MessageHandler, RemoteError, RpcContext, Target, Transport};

const MIB: u64 = 1024 * 1024;

/// Size of the source's volume.
const VOLUME_MIB: u64 = 256;

/// What the guests cast to the conductor: `(method, args)` in arrival order.
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

    /// Waits for the final state of a backup (COMPLETED or FAILED); returns every update.
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

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// Root, loop devices and the programs the test needs; prints why not otherwise.
fn can_run(tools: &[&str]) -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (loop devices, mount, service account)");
        return false;
    }
    for t in ["losetup", "mkfs.ext4", "mount", "umount", "du"]
        .iter()
        .chain(tools)
    {
        if trove_guestagent::backup::find_program(t).is_none() {
            eprintln!("skipped: {t} is not installed");
            return false;
        }
    }
    true
}

static TAKEN: Mutex<Vec<Ipv4Addr>> = Mutex::new(Vec::new());

/// A free address 127.2.13.x where `port` can be bound now.
fn free_address(port: u16) -> Ipv4Addr {
    let mut taken = TAKEN.lock().unwrap();
    for x in 2..=254 {
        let ip = Ipv4Addr::new(127, 2, 13, x);
        if !taken.contains(&ip) && TcpListener::bind((ip, port)).is_ok() {
            taken.push(ip);
            return ip;
        }
    }
    panic!("no free address 127.2.13.x for port {port}");
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An image file attached to a loop device; dropping it unmounts `mount_point` where this
/// device is mounted there, then detaches the device.
struct LoopDevice {
    dev: PathBuf,
    mount_point: PathBuf,
}

impl LoopDevice {
    fn new(image: &Path, size_mib: u64, mount_point: &Path) -> LoopDevice {
        std::fs::File::create(image)
            .and_then(|f| f.set_len(size_mib * MIB))
            .expect("image file");
        let dev = sh("losetup", &["--find", "--show", image.to_str().unwrap()]);
        // The guard exists before anything else can fail, so the device is always detached.
        let lo = LoopDevice {
            dev: PathBuf::from(dev.trim()),
            mount_point: mount_point.to_path_buf(),
        };
        assert!(
            lo.dev.to_string_lossy().starts_with("/dev/loop"),
            "losetup gave {dev:?}"
        );
        lo
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let ours = volume::block_device_number(&self.dev).ok();
        let mut attempts = 0;
        while let Ok(Some(m)) = volume::mount_at(&self.mount_point) {
            if Some(m.dev) != ours {
                break;
            }
            let ok = Command::new("umount")
                .arg(&self.mount_point)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            attempts += 1;
            if !ok && attempts >= 50 {
                // Still busy (a failed test left a process): detach it from the tree; the
                // kernel releases it, and the device, when the last user goes.
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(&self.mount_point)
                    .status();
                break;
            }
            if !ok {
                // A server just killed may hold its files a moment longer.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// An instance directory (mount point `<dir>/mnt`), optionally with its own volume.
/// Dropping it kills the server, then unmounts and detaches the volume, then removes the
/// directory (fields drop in this order).
struct TestInstance {
    config: ManagerConfig,
    addr: Ipv4Addr,
    lo: Option<LoopDevice>,
    dir: Option<tempfile::TempDir>,
}

impl TestInstance {
    fn new(port: u16, volume_mib: Option<u64>) -> TestInstance {
        let dir = tempfile::Builder::new()
            .prefix("trove-ga-disk-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let user =
            ServiceUser::ensure(DEFAULT_SERVICE_USER, DEFAULT_SERVICE_UID).expect("service user");
        let addr = free_address(port);
        let mount = dir.path().join("mnt");
        let mut config = ManagerConfig::new(&mount, addr.into(), port, user);
        config.state_change_wait_time = Duration::from_secs(60);
        config.volume.fstab = dir.path().join("fstab");
        let lo = volume_mib.map(|mib| LoopDevice::new(&dir.path().join("volume.img"), mib, &mount));
        TestInstance {
            config,
            addr,
            lo,
            dir: Some(dir),
        }
    }

    fn mount(&self) -> &Path {
        &self.config.mount_point
    }

    fn device(&self) -> Option<String> {
        self.lo
            .as_ref()
            .map(|l| l.dev.to_string_lossy().into_owned())
    }
}

impl Drop for TestInstance {
    fn drop(&mut self) {
        let sp = ServerProcess::new(self.mount().join("run/server.pid"), PathBuf::new());
        if let Some(pid) = sp.recorded_pid() {
            sp.kill_group();
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
            for _ in 0..200 {
                if !pid_alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        drop(self.lo.take());
        drop(self.dir.take());
    }
}

/// One agent on the shared in-memory broker, with its client.
struct Guest {
    id: String,
    inst: TestInstance,
    agent: Option<Agent>,
    api: GuestApi,
}

impl Guest {
    async fn start(
        transport: &InMemoryTransport,
        conductor_topic: &str,
        manager: &str,
        port: u16,
        volume_mib: Option<u64>,
    ) -> Guest {
        let id = uuid::Uuid::new_v4().to_string();
        let inst = TestInstance::new(port, volume_mib);
        let settings = AgentSettings {
            guest_id: id.clone(),
            datastore_manager: manager.into(),
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
        let timeouts = GuestTimeouts {
            low: Duration::from_secs(60),
            high: Duration::from_secs(300),
            snapshot: Duration::from_secs(300),
        };
        let api = GuestApi::new(t, &id, None, timeouts, GUEST_LATEST_VERSION);
        Guest {
            id,
            inst,
            agent: Some(agent),
            api,
        }
    }

    /// `prepare` (restoring `backup_info` unless null); returns once the server is healthy.
    async fn prepare(&self, recorder: &Recorder, args: PrepareArgs) {
        self.api.prepare(&ctx(), args).await.unwrap();
        let s = recorder
            .wait_heartbeat(
                &self.id,
                &["healthy", "failed to spawn"],
                Duration::from_secs(300),
            )
            .await;
        assert_eq!(s, "healthy", "{:?}", recorder.calls("notify_exc_info"));
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

/// Bytes available to unprivileged writers (the server runs as the service account) on the
/// file system holding `path`.
fn available(path: &Path) -> u64 {
    let st = rustix::fs::statvfs(path).unwrap();
    st.f_bavail * st.f_frsize
}

/// Bytes `path` takes on disk (`du`).
fn disk_usage(path: &Path) -> u64 {
    let out = sh("du", &["-s", "-B1", path.to_str().unwrap()]);
    out.split_whitespace().next().unwrap().parse().unwrap()
}

fn device_of(path: &Path) -> u64 {
    rustix::fs::stat(path).unwrap().st_dev
}

/// Samples the free space of `path` until stopped; keeps the lowest value seen.
struct FreeSpaceWatch {
    stop: Arc<AtomicBool>,
    lowest: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FreeSpaceWatch {
    fn start(path: &Path) -> FreeSpaceWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let lowest = Arc::new(AtomicU64::new(available(path)));
        let task = {
            let (stop, lowest, path) = (stop.clone(), lowest.clone(), path.to_path_buf());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    lowest.fetch_min(available(&path), Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        FreeSpaceWatch { stop, lowest, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        self.lowest.load(Ordering::SeqCst)
    }
}

/// Takes a full backup into `store_url`; returns `(location, checksum)` once COMPLETED and
/// the lowest free space seen on `watched` while it ran.
async fn backup_watching_free_space(
    g: &Guest,
    recorder: &Recorder,
    info: Value,
    id: &str,
    watched: &Path,
) -> ((String, String), u64) {
    let watch = FreeSpaceWatch::start(watched);
    g.api.create_backup(&ctx(), info).await.unwrap();
    let u = recorder
        .wait_backup_done(id, Duration::from_secs(600))
        .await;
    let lowest = watch.finish().await;
    assert_eq!(u[0]["state"], "BUILDING", "{u:?}");
    let done = u.last().unwrap();
    assert_eq!(done["state"], "COMPLETED", "{u:?}");
    assert_eq!(done["success"], true);
    (
        (
            done["location"].as_str().unwrap().to_owned(),
            done["checksum"].as_str().unwrap().to_owned(),
        ),
        lowest,
    )
}

/// Checks the premise: the source's data is on its own volume and takes more room than is
/// left free there; returns `(data bytes, free bytes)`.
fn data_larger_than_free_space(inst: &TestInstance, data_dir: &Path, store: &Path) -> (u64, u64) {
    let m = volume::mount_at(inst.mount())
        .unwrap()
        .expect("the volume is mounted");
    assert_eq!(m.fstype, "ext4");
    assert_eq!(
        device_of(data_dir),
        device_of(inst.mount()),
        "the data is not on the volume"
    );
    assert_ne!(
        device_of(store),
        device_of(inst.mount()),
        "the store must be on another file system"
    );
    let data = disk_usage(data_dir);
    let free = available(inst.mount());
    assert!(
        data > free,
        "the data ({} MiB) does not exceed the free space ({} MiB)",
        data / MIB,
        free / MIB
    );
    (data, free)
}

/// Rows are added in batches of ~10 MiB until the table alone exceeds the free space by a
/// margin, leaving room for the server's own work.
fn filled_enough(table: u64, free: u64) -> bool {
    table > free + 20 * MIB || free < 40 * MIB
}

fn mariadb_prepare_args(device: Option<String>, mount: &Path, backup_info: Value) -> PrepareArgs {
    let restoring = !backup_info.is_null();
    let users = if restoring {
        json!([])
    } else {
        json!([{"_name": "app", "_password": "s3cret-Pass", "_host": "%",
                "_databases": [{"_name": "orders"}]}])
    };
    let databases = if restoring {
        json!([])
    } else {
        json!([{"_name": "orders", "_character_set": null, "_collate": null}])
    };
    serde_json::from_value(json!({
        "packages": null, "databases": databases, "memory_mb": 256, "users": users,
        "device_path": device, "mount_point": mount,
        "backup_info": backup_info,
        "config_contents": null, "root_password": null, "overrides": null,
        "cluster_config": null, "snapshot": null, "modules": null, "ds_version": "10.11"
    }))
    .expect("prepare args")
}

async fn mariadb_pool(inst: &TestInstance) -> sqlx::MySqlPool {
    let opts = sqlx::mysql::MySqlConnectOptions::new()
        .host(&inst.addr.to_string())
        .port(inst.config.port)
        .username("app")
        .password("s3cret-Pass")
        .database("orders");
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .expect("app connects")
}

/// `(rows, checksum of every row)` of table `t`.
async fn mariadb_summary(pool: &sqlx::MySqlPool) -> (i64, String) {
    sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(CRC32(CONCAT(id, ':', v))), 0) AS CHAR) FROM t",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_larger_than_its_free_disk_backs_up_and_restores() {
    if !can_run(&["mariadb-backup", "mbstream"]) {
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
        .prefix("trove-disk-backups-")
        .tempdir()
        .unwrap();
    let store_url = format!("file://{}", store_dir.path().display());

    let src = Guest::start(
        &transport,
        &conductor_topic,
        "mariadb",
        3306,
        Some(VOLUME_MIB),
    )
    .await;
    src.prepare(
        &recorder,
        mariadb_prepare_args(src.inst.device(), src.inst.mount(), Value::Null),
    )
    .await;
    let data_dir = src.inst.mount().join("data");
    let pool = mariadb_pool(&src.inst).await;
    sqlx::raw_sql(
        "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARBINARY(1000) NOT NULL) ENGINE=InnoDB",
    )
    .execute(&pool)
    .await
    .unwrap();
    // Random bytes: compression cannot make the backup small.
    let table = data_dir.join("orders/t.ibd");
    let mut batch = 0;
    while !filled_enough(disk_usage(&table), available(src.inst.mount())) {
        sqlx::query("INSERT INTO t (v) SELECT RANDOM_BYTES(900) FROM seq_1_to_10000")
            .execute(&pool)
            .await
            .unwrap();
        batch += 1;
        assert!(batch < 40, "the volume does not fill up");
    }
    let expected = mariadb_summary(&pool).await;
    let (data, free) = data_larger_than_free_space(&src.inst, &data_dir, store_dir.path());
    eprintln!(
        "mariadb: {} rows, data {} MiB, free {} MiB on a {VOLUME_MIB} MiB volume",
        expected.0,
        data / MIB,
        free / MIB
    );

    let id = uuid::Uuid::new_v4().to_string();
    let info = json!({"id": id, "name": "big", "description": null, "instance_id": src.id,
        "backup_type": "full", "checksum": null, "parent": null, "datastore": "mariadb",
        "datastore_version": "10.11", "storage_driver": "swift", "swift_container": null,
        "swift_url": store_url});
    let ((location, checksum), lowest) =
        backup_watching_free_space(&src, &recorder, info, &id, src.inst.mount()).await;
    // Nothing of the backup's size was staged on the volume: the free space never dropped
    // by more than the tool's and the server's own small files.
    assert!(
        lowest + 16 * MIB >= free,
        "the free space fell from {} MiB to {} MiB during the backup",
        free / MIB,
        lowest / MIB
    );
    let store = LocalStore::for_location(&location).unwrap();
    let head = store.verify(&location, Some(&checksum)).await.unwrap();
    assert_eq!(head.metadata["compression"], "zstd");
    let object = std::fs::metadata(
        store_dir
            .path()
            .join(format!("database_backups/{id}.xbstream.zst")),
    )
    .unwrap()
    .len();
    assert!(
        object > free,
        "the backup ({} MiB) is not larger than the volume's free space ({} MiB)",
        object / MIB,
        free / MIB
    );
    assert_eq!(mariadb_summary(&pool).await, expected, "the source changed");
    pool.close().await;

    // Restored on the ordinary disk: the same rows.
    let dst = Guest::start(&transport, &conductor_topic, "mariadb", 3306, None).await;
    let restore = json!({"id": id, "location": location, "checksum": checksum,
        "type": "mariabackup"});
    dst.prepare(
        &recorder,
        mariadb_prepare_args(None, dst.inst.mount(), restore),
    )
    .await;
    let pool2 = mariadb_pool(&dst.inst).await;
    assert_eq!(mariadb_summary(&pool2).await, expected);
    pool2.close().await;
    dst.stop().await;
    src.stop().await;
}

fn postgres_prepare_args(device: Option<String>, mount: &Path, backup_info: Value) -> PrepareArgs {
    let restoring = !backup_info.is_null();
    // Little WAL kept in pg_wal: the volume's room goes to the data (and the archive).
    let overrides = json!({"min_wal_size": "32MB", "max_wal_size": "64MB", "wal_keep_size": "0"});
    // A restore brings the source's databases and users.
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
        "packages": null, "databases": databases, "memory_mb": 256, "users": users,
        "device_path": device, "mount_point": mount,
        "backup_info": backup_info,
        "config_contents": null, "root_password": null, "overrides": overrides,
        "cluster_config": null, "snapshot": null, "modules": null, "ds_version": "15"
    }))
    .expect("prepare args")
}

async fn postgres_pool(inst: &TestInstance) -> sqlx::PgPool {
    let opts = sqlx::postgres::PgConnectOptions::new()
        .host(&inst.addr.to_string())
        .port(inst.config.port)
        .username("app")
        .password("s3cret-Pass")
        .database("orders");
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .expect("app connects")
}

/// `(rows, digest of every row)` of table `t` (sorting only the rows' digests: the volume
/// has no room for a sort of the table itself).
async fn postgres_summary(pool: &sqlx::PgPool) -> (i64, String) {
    sqlx::query_as(
        "SELECT count(*), coalesce(md5(string_agg(x, ',')), '') \
         FROM (SELECT id::text || ':' || md5(v) AS x FROM t ORDER BY id) AS r",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Size of the PostgreSQL volume: its WAL (kept and archived) shares the volume with the
/// data, so it needs more room than MariaDB's to hold a table larger than what stays free.
const PG_VOLUME_MIB: u64 = 512;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_larger_than_its_free_disk_backs_up_and_restores() {
    if !can_run(&[]) {
        return;
    }
    if !Path::new("/usr/lib/postgresql/15/bin/pg_basebackup").is_file() {
        eprintln!("skipped: PostgreSQL 15's pg_basebackup is not installed");
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
        .prefix("trove-disk-backups-")
        .tempdir()
        .unwrap();
    let store_url = format!("file://{}", store_dir.path().display());

    let src = Guest::start(
        &transport,
        &conductor_topic,
        "postgresql",
        5432,
        Some(PG_VOLUME_MIB),
    )
    .await;
    src.prepare(
        &recorder,
        postgres_prepare_args(src.inst.device(), src.inst.mount(), Value::Null),
    )
    .await;
    let pgdata = src.inst.mount().join("data/pgdata");
    let pool = postgres_pool(&src.inst).await;
    // The superuser, over the instance's socket, checkpoints so the server recycles its WAL.
    let superuser = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::postgres::PgConnectOptions::new()
                .host(&src.inst.mount().join("run").to_string_lossy())
                .port(5432)
                .username("postgres")
                .database("orders"),
        )
        .await
        .expect("the superuser connects over the socket");
    sqlx::raw_sql("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v BYTEA NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    // Random bytes: compression cannot make the backup small.
    let mut batch = 0;
    loop {
        let table: i64 = sqlx::query_scalar("SELECT pg_table_size('t')")
            .fetch_one(&superuser)
            .await
            .unwrap();
        let free = available(src.inst.mount());
        eprintln!(
            "batch {batch}: table {} MiB, free {} MiB, pg_wal {} MiB, archive {} MiB",
            table as u64 / MIB,
            free / MIB,
            disk_usage(&pgdata.join("pg_wal")) / MIB,
            disk_usage(&src.inst.mount().join("data/wal_archive")) / MIB
        );
        // The server needs room for new WAL segments (16 MiB each) and its archive copies.
        if table as u64 > free + 20 * MIB || free < 80 * MIB {
            break;
        }
        sqlx::query(
            "INSERT INTO t (v) SELECT (SELECT decode(string_agg(md5(random()::text || s.i::text), ''), 'hex') \
             FROM generate_series(1, 56) AS s(i) WHERE o.g > 0) FROM generate_series(1, 10000) AS o(g)",
        )
        .execute(&pool)
        .await
        .unwrap();
        // Hint bits and the visibility map set now (their WAL written and archived here),
        // so reading the table later writes nothing; then the server recycles its WAL.
        sqlx::query("VACUUM t").execute(&pool).await.unwrap();
        sqlx::query("CHECKPOINT").execute(&superuser).await.unwrap();
        batch += 1;
        assert!(batch < 60, "the volume does not fill up");
    }
    // The archiver catches up and the server drops the WAL it archived, so what the backup
    // does is all that changes the free space from here.
    let last: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())")
        .fetch_one(&superuser)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let archived: Option<String> =
            sqlx::query_scalar("SELECT last_archived_wal FROM pg_stat_archiver")
                .fetch_one(&superuser)
                .await
                .unwrap();
        if archived.is_some_and(|a| a >= last) {
            break;
        }
        assert!(Instant::now() < deadline, "the archiver is stuck");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sqlx::query("CHECKPOINT").execute(&superuser).await.unwrap();
    superuser.close().await;
    let expected = postgres_summary(&pool).await;
    let (data, free) = data_larger_than_free_space(&src.inst, &pgdata, store_dir.path());
    eprintln!(
        "postgresql: {} rows, data {} MiB, free {} MiB on a {PG_VOLUME_MIB} MiB volume",
        expected.0,
        data / MIB,
        free / MIB
    );

    let id = uuid::Uuid::new_v4().to_string();
    let info = json!({"id": id, "name": "big", "description": null, "instance_id": src.id,
        "backup_type": "full", "checksum": null, "parent": null, "datastore": "postgresql",
        "datastore_version": "15", "storage_driver": "swift", "swift_container": null,
        "swift_url": store_url});
    let ((location, checksum), lowest) =
        backup_watching_free_space(&src, &recorder, info, &id, src.inst.mount()).await;
    // Nothing of the backup's size was staged on the volume; the server's own WAL (new
    // segments and their archived copies, 16 MiB each) is all that may have taken room.
    eprintln!(
        "postgresql: lowest free {} MiB during the backup; pg_wal {} MiB, archive {} MiB after it",
        lowest / MIB,
        disk_usage(&pgdata.join("pg_wal")) / MIB,
        disk_usage(&src.inst.mount().join("data/wal_archive")) / MIB
    );
    assert!(
        lowest + 3 * 16 * MIB >= free,
        "the free space fell from {} MiB to {} MiB during the backup",
        free / MIB,
        lowest / MIB
    );
    let store = LocalStore::for_location(&location).unwrap();
    store.verify(&location, Some(&checksum)).await.unwrap();
    let object = std::fs::metadata(
        store_dir
            .path()
            .join(format!("database_backups/{id}.tar.zst")),
    )
    .unwrap()
    .len();
    assert!(
        object > free,
        "the backup ({} MiB) is not larger than the volume's free space ({} MiB)",
        object / MIB,
        free / MIB
    );
    assert_eq!(
        postgres_summary(&pool).await,
        expected,
        "the source changed"
    );
    pool.close().await;

    let dst = Guest::start(&transport, &conductor_topic, "postgresql", 5432, None).await;
    let restore = json!({"id": id, "location": location, "checksum": checksum,
        "type": "pg_basebackup"});
    dst.prepare(
        &recorder,
        postgres_prepare_args(None, dst.inst.mount(), restore),
    )
    .await;
    let pool2 = postgres_pool(&dst.inst).await;
    assert_eq!(postgres_summary(&pool2).await, expected);
    pool2.close().await;
    dst.stop().await;
    src.stop().await;
}
