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

mod common;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    backup_info, free_endpoint, init_logging, local_store, mariadb_app_pool, pg15_tools_installed,
    pg_app_pool, prepare_args, programs_installed, restore_info, running_as_root, stop_server,
    Conductor, Datastore, Guest,
};
use serde_json::{json, Value};
use trove_backup::{BackupStore, LocalStore};
use trove_guestagent::manager::ManagerConfig;
use trove_guestagent::process::{ServiceUser, DEFAULT_SERVICE_UID, DEFAULT_SERVICE_USER};
use trove_guestagent::volume;
use trove_rpc::api::{GuestTimeouts, PrepareArgs};

use common::loopdev::{sh, LoopDevice, MIB};

/// Size of the source's volume.
const VOLUME_MIB: u64 = 256;

/// Root, loop devices and the programs the test needs; prints why not otherwise.
fn can_run(tools: &[&str]) -> bool {
    running_as_root("needs root (loop devices, mount, service account)")
        && programs_installed(&["losetup", "mkfs.ext4", "mount", "umount", "du"])
        && programs_installed(tools)
}

/// A free address 127.2.13.x where `port` can be bound now.
fn free_address(port: u16) -> Ipv4Addr {
    free_endpoint([127, 2, 13], port..=port).0
}

/// An instance directory (mount point `<dir>/mnt`), optionally with its own volume.
/// Dropping it kills the server, then unmounts and detaches the volume, then removes the
/// directory (fields drop in this order).
struct TestInstance {
    config: ManagerConfig,
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
        let lo = volume_mib.map(|mib| {
            let mut lo = LoopDevice::new(mib);
            lo.unmount_on_drop(&mount);
            lo
        });
        TestInstance {
            config,
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
        stop_server(
            &self.mount().join("run/server.pid"),
            Duration::from_secs(10),
        );
        drop(self.lo.take());
        drop(self.dir.take());
    }
}

/// An agent of `ds` for a new instance listening on `ds`'s port, on its own volume of
/// `volume_mib` MiB when given.
async fn start_guest(
    conductor: &Conductor,
    ds: Datastore,
    volume_mib: Option<u64>,
) -> Guest<TestInstance> {
    let inst = TestInstance::new(ds.port(), volume_mib);
    let config = inst.config.clone();
    let timeouts = GuestTimeouts {
        low: Duration::from_secs(60),
        high: Duration::from_secs(300),
        snapshot: Duration::from_secs(300),
    };
    Guest::start_on(conductor, ds, config, inst, timeouts).await
}

/// `prepare` with the volume's device and mount point, 256 MiB of memory and `overrides`.
fn volume_prepare_args(
    ds: Datastore,
    device: Option<String>,
    mount: &Path,
    backup_info: Value,
    overrides: Option<Value>,
) -> PrepareArgs {
    let restoring = !backup_info.is_null();
    let mut args = prepare_args(ds, backup_info, !restoring);
    args.memory_mb = 256;
    args.device_path = device;
    args.mount_point = Some(mount.to_string_lossy().into_owned());
    args.overrides = overrides;
    args
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

/// Takes a full backup (named `big`) of `g`'s `ds` instance into `store_url`; returns its
/// id, `(location, checksum)` once COMPLETED, and the lowest free space seen on `g`'s volume
/// while it ran.
async fn backup_watching_free_space(
    g: &Guest<TestInstance>,
    ds: Datastore,
    store_url: &str,
) -> (String, (String, String), u64) {
    let id = uuid::Uuid::new_v4().to_string();
    let mut info = backup_info(ds, &id, &g.id, store_url);
    info["name"] = json!("big");
    let watch = FreeSpaceWatch::start(g.inst.mount());
    let stored = g.take_backup(info, &id, Duration::from_secs(600)).await;
    (id, stored, watch.finish().await)
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
    let conductor = Conductor::start().await;
    let (store_dir, store_url) = local_store("trove-disk-backups-");

    let src = start_guest(&conductor, Datastore::MariaDb, Some(VOLUME_MIB)).await;
    src.prepare_healthy(
        volume_prepare_args(
            Datastore::MariaDb,
            src.inst.device(),
            src.inst.mount(),
            Value::Null,
            None,
        ),
        Duration::from_secs(300),
    )
    .await;
    let data_dir = src.inst.mount().join("data");
    let pool = mariadb_app_pool(&src.inst.config).await;
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

    let (id, (location, checksum), lowest) =
        backup_watching_free_space(&src, Datastore::MariaDb, &store_url).await;
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
    let dst = start_guest(&conductor, Datastore::MariaDb, None).await;
    let restore = restore_info(Datastore::MariaDb, &id, &location, &checksum);
    dst.prepare_healthy(
        volume_prepare_args(Datastore::MariaDb, None, dst.inst.mount(), restore, None),
        Duration::from_secs(300),
    )
    .await;
    let pool2 = mariadb_app_pool(&dst.inst.config).await;
    assert_eq!(mariadb_summary(&pool2).await, expected);
    pool2.close().await;
    dst.stop().await;
    src.stop().await;
}

/// Little WAL kept in pg_wal: the volume's room goes to the data (and the archive).
fn postgres_overrides() -> Option<Value> {
    Some(json!({"min_wal_size": "32MB", "max_wal_size": "64MB", "wal_keep_size": "0"}))
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
    if !can_run(&[]) || !pg15_tools_installed(&["pg_basebackup"]) {
        return;
    }
    init_logging();
    let conductor = Conductor::start().await;
    let (store_dir, store_url) = local_store("trove-disk-backups-");

    let src = start_guest(&conductor, Datastore::Postgres, Some(PG_VOLUME_MIB)).await;
    src.prepare_healthy(
        volume_prepare_args(
            Datastore::Postgres,
            src.inst.device(),
            src.inst.mount(),
            Value::Null,
            postgres_overrides(),
        ),
        Duration::from_secs(300),
    )
    .await;
    let pgdata = src.inst.mount().join("data/pgdata");
    let pool = pg_app_pool(&src.inst.config).await;
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

    let (id, (location, checksum), lowest) =
        backup_watching_free_space(&src, Datastore::Postgres, &store_url).await;
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

    let dst = start_guest(&conductor, Datastore::Postgres, None).await;
    let restore = restore_info(Datastore::Postgres, &id, &location, &checksum);
    dst.prepare_healthy(
        volume_prepare_args(
            Datastore::Postgres,
            None,
            dst.inst.mount(),
            restore,
            postgres_overrides(),
        ),
        Duration::from_secs(300),
    )
    .await;
    let pool2 = pg_app_pool(&dst.inst.config).await;
    assert_eq!(postgres_summary(&pool2).await, expected);
    pool2.close().await;
    dst.stop().await;
    src.stop().await;
}
