//! Backups and restores through the guest agent, on real `mariadbd` servers: the agent serves
//! on the in-memory transport, a conductor stand-in records what the guest casts to it
//! (`update_backup`, heartbeats, notifications), and backups land in a `LocalStore`
//! directory. Needs root (service account, ownership of the restored files) and the
//! `mariadb-backup` package; skipped with a printed reason otherwise.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    backup_info, ctx, incremental_info, init_logging, local_store, mariadb_app_pool, prepare_args,
    programs_installed, restore_info, running_as_root, Conductor, Datastore, Guest,
};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use trove_backup::{BackupStore, LocalStore};

const DS: Datastore = Datastore::MariaDb;

fn can_run() -> bool {
    running_as_root("backup tests need root (service account, restored file ownership)")
        && programs_installed(&["mariadb-backup", "mbstream"])
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
    let conductor = Conductor::start().await;
    let recorder = &conductor.recorder;
    let (store_dir, store_url) = local_store("trove-backups-");

    // Source instance with rows.
    let src = Guest::start_prepared(&conductor, DS).await;
    let pool = mariadb_app_pool(&src.inst.config).await;
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
        .create_backup(&ctx(), backup_info(DS, &backup_id, &src.id, &store_url))
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
    let dst = Guest::start(&conductor, DS).await;
    let restore = restore_info(DS, &backup_id, &location, &checksum);
    dst.prepare_healthy(prepare_args(DS, restore, true), Duration::from_secs(300))
        .await;
    let pool2 = mariadb_app_pool(&dst.inst.config).await;
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
    let inc_info = incremental_info(DS, &inc_id, &src.id, &store_url, &location, &checksum);
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
    let dst2 = Guest::start(&conductor, DS).await;
    let restore = restore_info(DS, &inc_id, &inc_location, &inc_checksum);
    dst2.prepare_healthy(prepare_args(DS, restore, true), Duration::from_secs(300))
        .await;
    let pool3 = mariadb_app_pool(&dst2.inst.config).await;
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
    let bad = Guest::start(&conductor, DS).await;
    let restore = json!({"id": backup_id, "location": location, "checksum": checksum});
    bad.api
        .prepare(&ctx(), prepare_args(DS, restore, true))
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
    let conductor = Conductor::start().await;
    let recorder = &conductor.recorder;
    let (store_dir, store_url) = local_store("trove-backups-");
    let g = Guest::start(&conductor, DS).await;

    // Not prepared yet: refused at once, reported FAILED.
    let id0 = uuid::Uuid::new_v4().to_string();
    let e = g
        .api
        .create_backup(&ctx(), backup_info(DS, &id0, &g.id, &store_url))
        .await;
    // A cast: the refusal travels by update_backup, not by the cast's result.
    assert!(e.is_ok(), "{e:?}");
    let u = recorder
        .wait_backup_done(&id0, Duration::from_secs(10))
        .await;
    assert_eq!(u.last().unwrap()["state"], "FAILED");

    g.prepare_healthy(
        prepare_args(DS, Value::Null, true),
        Duration::from_secs(120),
    )
    .await;

    // No store URL, and a Swift URL this agent cannot write to.
    for (url, words) in [
        (Value::Null, "swift_url"),
        (json!("https://swift.example/v1/AUTH_t"), "local directory"),
    ] {
        let id = uuid::Uuid::new_v4().to_string();
        let mut info = backup_info(DS, &id, &g.id, "");
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
        .create_backup(&ctx(), backup_info(DS, &a, &g.id, &store_url))
        .await
        .unwrap();
    g.api
        .create_backup(&ctx(), backup_info(DS, &b, &g.id, &store_url))
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
        .create_backup(&ctx(), backup_info(DS, &id, &g.id, &store_url))
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

    let conductor = Conductor::start().await;
    let recorder = &conductor.recorder;
    let (_store_dir, store_url) = local_store("trove-backups-");

    let src = Guest::start_prepared(&conductor, DS).await;
    let pool = mariadb_app_pool(&src.inst.config).await;
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
        .create_backup(&ctx(), backup_info(DS, &backup_id, &src.id, &store_url))
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

    let restore = restore_info(DS, &backup_id, &location, &checksum);
    // Without the key: refused, no server started.
    trove_backup::encrypt::set_process_key(None);
    let nokey = Guest::start(&conductor, DS).await;
    nokey
        .api
        .prepare(&ctx(), prepare_args(DS, restore.clone(), true))
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
    let dst = Guest::start(&conductor, DS).await;
    dst.prepare_healthy(prepare_args(DS, restore, true), Duration::from_secs(300))
        .await;
    let pool = mariadb_app_pool(&dst.inst.config).await;
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
