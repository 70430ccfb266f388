//! PostgreSQL backups and restores through the guest agent, on real `postgres` servers: the
//! agent serves on the in-memory transport, a conductor stand-in records what the guest casts
//! to it (`update_backup`, heartbeats, notifications), and backups land in a `LocalStore`
//! directory. Needs root (service account, ownership of the restored files) and PostgreSQL
//! 15's tools; skipped with a printed reason otherwise.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    backup_info, ctx, incremental_info, init_logging, local_store, pg15_tools_installed,
    pg_app_pool, prepare_args, restore_info, running_as_root, Conductor, Datastore, Guest,
};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::io::AsyncReadExt;
use trove_backup::{BackupStore, LocalStore};

const DS: Datastore = Datastore::Postgres;
const PORT: u16 = 5432;

fn can_run() -> bool {
    running_as_root("backup tests need root (service account, restored file ownership)")
        && pg15_tools_installed(&["pg_basebackup", "pg_verifybackup"])
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

/// Prepares a new instance from a backup; returns it once healthy.
async fn restore(conductor: &Conductor, location: &str, checksum: &str) -> Guest {
    let g = Guest::start(conductor, DS).await;
    let restore = restore_info(DS, "x", location, checksum);
    g.prepare_healthy(prepare_args(DS, restore, false), Duration::from_secs(300))
        .await;
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
    let conductor = Conductor::start().await;
    let recorder = &conductor.recorder;
    let (store_dir, store_url) = local_store("trove-pg-backups-");

    let src = Guest::start_prepared(&conductor, DS).await;
    let pool = pg_app_pool(&src.inst.config).await;
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
    let (full_loc, full_sum) = src
        .take_backup(
            backup_info(DS, &full_id, &src.id, &store_url),
            &full_id,
            Duration::from_secs(300),
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
    let dst = restore(&conductor, &full_loc, &full_sum).await;
    let pool_d = pg_app_pool(&dst.inst.config).await;
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
    let (cf_loc, cf_sum) = dst
        .take_backup(
            backup_info(DS, &copy_full, &dst.id, &store_url),
            &copy_full,
            Duration::from_secs(300),
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
    let info = incremental_info(DS, &copy_inc, &dst.id, &store_url, &cf_loc, &cf_sum);
    let (ci_loc, ci_sum) = dst
        .take_backup(info, &copy_inc, Duration::from_secs(300))
        .await;
    dst.stop().await;
    let g = restore(&conductor, &ci_loc, &ci_sum).await;
    let p = pg_app_pool(&g.inst.config).await;
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
    let info = incremental_info(DS, &inc1_id, &src.id, &store_url, &full_loc, &full_sum);
    let (inc1_loc, inc1_sum) = src
        .take_backup(info, &inc1_id, Duration::from_secs(300))
        .await;
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
    let info = incremental_info(DS, &inc2_id, &src.id, &store_url, &inc1_loc, &inc1_sum);
    let (inc2_loc, inc2_sum) = src
        .take_backup(info, &inc2_id, Duration::from_secs(300))
        .await;

    // Each incremental restores, with its chain, to exactly the source's rows at its time.
    for (loc, sum, expected) in [
        (&inc1_loc, &inc1_sum, &at_inc1),
        (&inc2_loc, &inc2_sum, &at_inc2),
    ] {
        let g = restore(&conductor, loc, sum).await;
        let p = pg_app_pool(&g.inst.config).await;
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
    let info = incremental_info(DS, &lost_id, &src.id, &store_url, &inc2_loc, &inc2_sum);
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
        .create_backup(&ctx(), backup_info(DS, &refused_id, &src.id, &store_url))
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
    let bad = Guest::start(&conductor, DS).await;
    let restore_info = json!({"id": inc1_id, "location": inc1_loc, "checksum": inc1_sum});
    bad.api
        .prepare(&ctx(), prepare_args(DS, restore_info, false))
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
    let conductor = Conductor::start().await;
    let recorder = &conductor.recorder;
    let (_store_dir, store_url) = local_store("trove-pg-backups-");

    let src = Guest::start_prepared(&conductor, DS).await;
    let archive = src.inst.mount().join("data/wal_archive");
    let pool = pg_app_pool(&src.inst.config).await;
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
    let (full1_loc, full1_sum) = src
        .take_backup(
            backup_info(DS, &full1, &src.id, &store_url),
            &full1,
            Duration::from_secs(300),
        )
        .await;
    let store = LocalStore::for_location(&full1_loc).unwrap();
    let inc1 = uuid::Uuid::new_v4().to_string();
    let info = incremental_info(DS, &inc1, &src.id, &store_url, &full1_loc, &full1_sum);
    let (inc1_loc, inc1_sum) = src.take_backup(info, &inc1, Duration::from_secs(300)).await;
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
    let (full2_loc, full2_sum) = src
        .take_backup(
            backup_info(DS, &full2, &src.id, &store_url),
            &full2,
            Duration::from_secs(300),
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
    let info = incremental_info(DS, &stale, &src.id, &store_url, &inc1_loc, &inc1_sum);
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
    let info = incremental_info(DS, &inc2, &src.id, &store_url, &full2_loc, &full2_sum);
    let (inc2_loc, inc2_sum) = src.take_backup(info, &inc2, Duration::from_secs(300)).await;
    sqlx::query("INSERT INTO t (v) SELECT 'last ' || g FROM generate_series(1, 300) g")
        .execute(&pool)
        .await
        .unwrap();
    let expected = summary(&pool).await;
    let inc3 = uuid::Uuid::new_v4().to_string();
    let info = incremental_info(DS, &inc3, &src.id, &store_url, &inc2_loc, &inc2_sum);
    let (inc3_loc, inc3_sum) = src.take_backup(info, &inc3, Duration::from_secs(300)).await;
    pool.close().await;
    superuser.close().await;
    let g = restore(&conductor, &inc3_loc, &inc3_sum).await;
    let p = pg_app_pool(&g.inst.config).await;
    assert_eq!(summary(&p).await, expected, "restored from {inc3_loc}");
    p.close().await;
    g.stop().await;
    src.stop().await;
}
