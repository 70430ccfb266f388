//! End to end in the all-in-one mode: `trove-aio`'s services in this process (SQLite, the
//! in-memory transport, the local driver with real loop-mounted volumes and loopback
//! addresses, in-process guest agents running real `mariadbd` / `postgres` servers), driven
//! by the real `openstack database` CLI, checked with the real `mariadb` / `psql` clients.
//!
//! Needs root (loop devices, mounts, PostgreSQL's service user) and the client virtualenv
//! (`scripts/client-venv.sh`); the project's test command provides both.

mod common;

use std::path::Path;
use std::time::Duration;

use common::aio::start;
use common::{assert_nothing_left, ip_of, mariadb, psql};

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(240);

fn filesystem_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_instance_from_create_to_delete() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let run = start("127.2.0.1").await;
    let t = &run.tenant;

    let created = run
        .create(
            "db1",
            "mariadb",
            &["--databases", "app", "--users", "app:Secret123"],
        )
        .await;
    assert_eq!(created["status"], "BUILD", "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let inst = t.wait_status(&id, "ACTIVE", ACTIVE_TIMEOUT).await;
    assert_eq!(inst["operating_status"], "HEALTHY", "{inst}");
    let ip = ip_of(&inst);
    assert!(ip.starts_with("127.2.0."), "{inst}");
    // Show carries the guest's view of the volume.
    let used = inst["volume"]["used"]
        .as_f64()
        .unwrap_or_else(|| panic!("{inst}"));
    assert!(used > 0.0 && used < 1.0, "{inst}");
    assert!(inst["volume"]["used_percent"].as_f64().is_some(), "{inst}");
    assert_eq!(run.quota_in_use("instances").await, 1);

    // A tenant connects to ip:3306 as the user it asked for and writes a table.
    mariadb(
        &ip,
        "app",
        "Secret123",
        "app",
        "CREATE TABLE t (x INT); INSERT INTO t VALUES (42);",
    )
    .await
    .expect("app writes");
    let got = mariadb(&ip, "app", "Secret123", "app", "SELECT x FROM t")
        .await
        .unwrap();
    assert_eq!(got.trim(), "42");
    // The data lives on the instance's own mounted volume.
    let data = run.local_state.join("instances").join(&id).join("data");
    assert_eq!(
        common::mounts_under(&data).len(),
        1,
        "volume not mounted at {}",
        data.display()
    );
    let one_gb = filesystem_bytes(&data);
    assert!(one_gb > 800_000_000 && one_gb < 1_100_000_000, "{one_gb}");

    // Databases, users and root through the CLI show up in the server.
    t.osc_ok(&["database", "db", "create", "db1", "reports"])
        .await;
    t.osc_ok(&[
        "database",
        "user",
        "create",
        "db1",
        "bob",
        "Passw0rd1",
        "--databases",
        "reports",
    ])
    .await;
    let root = t.osc_json(&["database", "root", "enable", "db1"]).await;
    let root_pw = root["password"]
        .as_str()
        .unwrap_or_else(|| panic!("{root}"))
        .to_owned();
    let dbs = mariadb(&ip, "root", &root_pw, "", "SHOW DATABASES")
        .await
        .expect("root logs in");
    assert!(
        dbs.lines().any(|l| l == "reports") && dbs.lines().any(|l| l == "app"),
        "{dbs}"
    );
    mariadb(&ip, "bob", "Passw0rd1", "reports", "CREATE TABLE r (y INT)")
        .await
        .expect("bob writes in reports");

    // Restart.
    t.osc_ok(&["database", "instance", "restart", "db1"]).await;
    t.wait_status(&id, "ACTIVE", ACTIVE_TIMEOUT).await;
    let got = mariadb(&ip, "app", "Secret123", "app", "SELECT x FROM t")
        .await
        .unwrap();
    assert_eq!(got.trim(), "42", "data survives a restart");

    // Resize the volume: the filesystem grows online.
    t.osc_ok(&["database", "instance", "resize", "volume", "db1", "2"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let inst = t.wait_status(&id, "ACTIVE", ACTIVE_TIMEOUT).await;
    assert_eq!(inst["volume"]["size"], 2, "{inst}");
    let two_gb = filesystem_bytes(&data);
    assert!(two_gb > one_gb + 900_000_000, "{one_gb} -> {two_gb}");

    // Resize the flavor: the server restarts sized for 1024 MB.
    t.osc_ok(&["database", "instance", "resize", "flavor", "db1", "2"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let inst = t.wait_status(&id, "ACTIVE", ACTIVE_TIMEOUT).await;
    assert_eq!(inst["flavor"]["id"], "2", "{inst}");
    let pool = mariadb(
        &ip,
        "root",
        &root_pw,
        "",
        "SELECT @@innodb_buffer_pool_size",
    )
    .await
    .unwrap();
    assert_eq!(pool.trim(), (512u64 * 1024 * 1024).to_string());
    let got = mariadb(&ip, "app", "Secret123", "app", "SELECT x FROM t")
        .await
        .unwrap();
    assert_eq!(got.trim(), "42", "data survives a resize");

    // Delete: nothing left, quota free.
    t.osc_ok(&["database", "instance", "delete", "db1"]).await;
    t.wait_gone(&id, Duration::from_secs(120)).await;
    assert_nothing_left(&run.local_state, &id, &ip);
    assert!(mariadb(&ip, "app", "Secret123", "app", "SELECT 1")
        .await
        .is_err());
    assert_eq!(run.quota_in_use("instances").await, 0);
    assert_eq!(run.quota_in_use("volumes").await, 0);
    run.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_instance_from_create_to_delete() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let run = start("127.2.1.1").await;
    let t = &run.tenant;

    let created = run
        .create(
            "pg1",
            "postgresql",
            &["--databases", "app", "--users", "app:Secret123"],
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let inst = t.wait_status(&id, "ACTIVE", ACTIVE_TIMEOUT).await;
    assert_eq!(inst["operating_status"], "HEALTHY", "{inst}");
    let ip = ip_of(&inst);

    psql(
        &ip,
        "app",
        "Secret123",
        "app",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (7);",
    )
    .await
    .expect("app writes");
    assert_eq!(
        psql(&ip, "app", "Secret123", "app", "SELECT x FROM t")
            .await
            .unwrap()
            .trim(),
        "7"
    );
    let data = run.local_state.join("instances").join(&id).join("data");
    assert_eq!(common::mounts_under(&data).len(), 1);

    t.osc_ok(&["database", "db", "create", "pg1", "reports"])
        .await;
    t.osc_ok(&[
        "database",
        "user",
        "create",
        "pg1",
        "bob",
        "Passw0rd1",
        "--databases",
        "reports",
    ])
    .await;
    psql(&ip, "bob", "Passw0rd1", "reports", "SELECT 1")
        .await
        .expect("bob connects to reports");
    let root = t.osc_json(&["database", "root", "enable", "pg1"]).await;
    let root_pw = root["password"].as_str().unwrap().to_owned();
    let root_user = root["name"].as_str().unwrap_or("root").to_owned();
    let dbs = psql(
        &ip,
        &root_user,
        &root_pw,
        "postgres",
        "SELECT datname FROM pg_database",
    )
    .await
    .expect("root logs in");
    assert!(dbs.lines().any(|l| l == "reports"), "{dbs}");

    t.osc_ok(&["database", "instance", "restart", "pg1"]).await;
    t.wait_status(&id, "ACTIVE", ACTIVE_TIMEOUT).await;

    let before = filesystem_bytes(&data);
    t.osc_ok(&["database", "instance", "resize", "volume", "pg1", "2"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let inst = t.wait_status(&id, "ACTIVE", ACTIVE_TIMEOUT).await;
    assert_eq!(inst["volume"]["size"], 2, "{inst}");
    assert!(filesystem_bytes(&data) > before + 900_000_000);

    t.osc_ok(&["database", "instance", "resize", "flavor", "pg1", "2"])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let inst = t.wait_status(&id, "ACTIVE", ACTIVE_TIMEOUT).await;
    assert_eq!(inst["flavor"]["id"], "2", "{inst}");
    let sb = psql(&ip, &root_user, &root_pw, "postgres", "SHOW shared_buffers")
        .await
        .unwrap();
    assert_eq!(sb.trim(), "256MB");
    assert_eq!(
        psql(&ip, "app", "Secret123", "app", "SELECT x FROM t")
            .await
            .unwrap()
            .trim(),
        "7"
    );

    t.osc_ok(&["database", "instance", "delete", "pg1"]).await;
    t.wait_gone(&id, Duration::from_secs(120)).await;
    assert_nothing_left(&run.local_state, &id, &ip);
    assert_eq!(run.quota_in_use("instances").await, 0);
    run.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_backup_and_restore_through_the_cli() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    if std::process::Command::new("mariadb-backup")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("mariadb-backup is not installed (scripts/ensure-services.sh installs it)");
    }
    let run = start("127.2.3.1").await;
    let t = &run.tenant;
    let created = run
        .create(
            "src",
            "mariadb",
            &["--databases", "app", "--users", "app:Secret123"],
        )
        .await;
    let src = created["id"].as_str().unwrap().to_owned();
    let inst = t.wait_status(&src, "ACTIVE", ACTIVE_TIMEOUT).await;
    let ip = ip_of(&inst);
    mariadb(
        &ip,
        "app",
        "Secret123",
        "app",
        "CREATE TABLE t (x INT); INSERT INTO t VALUES (1),(2),(3);",
    )
    .await
    .expect("app writes");

    let backup = t
        .osc_json(&["database", "backup", "create", "b1", "-i", "src"])
        .await;
    let bid = backup["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{backup}"))
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, b) = t.get(&format!("backups/{bid}")).await;
        match b["backup"]["status"].as_str() {
            Some("COMPLETED") => break,
            Some("FAILED") => panic!("backup failed: {b}"),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup not COMPLETED: {b}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    t.wait_status(&src, "ACTIVE", ACTIVE_TIMEOUT).await;

    let restored = run.create("copy", "mariadb", &["--backup", &bid]).await;
    let copy = restored["id"].as_str().unwrap().to_owned();
    let inst = t.wait_status(&copy, "ACTIVE", ACTIVE_TIMEOUT).await;
    let copy_ip = ip_of(&inst);
    assert_ne!(copy_ip, ip);
    let rows = mariadb(
        &copy_ip,
        "app",
        "Secret123",
        "app",
        "SELECT COUNT(*) FROM t",
    )
    .await
    .expect("the backup's user and data are in the copy");
    assert_eq!(rows.trim(), "3");

    t.osc_ok(&["database", "backup", "delete", &bid]).await;
    t.osc_ok(&["database", "instance", "delete", "copy"]).await;
    t.osc_ok(&["database", "instance", "delete", "src"]).await;
    t.wait_gone(&copy, Duration::from_secs(120)).await;
    t.wait_gone(&src, Duration::from_secs(120)).await;
    assert_nothing_left(&run.local_state, &src, &ip);
    assert_nothing_left(&run.local_state, &copy, &copy_ip);
    let (_, list) = t.get("backups").await;
    assert_eq!(list["backups"].as_array().map(Vec::len), Some(0), "{list}");
    run.shutdown().await;
}
