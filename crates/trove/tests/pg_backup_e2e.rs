//! PostgreSQL backups end to end in the all-in-one mode: `trove-aio`'s services in this
//! process (SQLite, the in-memory transport, the local driver with real loop-mounted volumes
//! and loopback addresses, in-process guest agents running real `postgres` servers), driven
//! by the real `openstack database` CLI, checked with the real `psql` client.
//!
//! Needs root (loop devices, mounts, PostgreSQL's service user) and the client virtualenv
//! (`scripts/client-venv.sh`); the project's test command provides both.

mod common;

use std::time::Duration;

use common::aio::start;
use common::{assert_nothing_left, ip_of, psql, Tenant};

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(240);

/// Waits until backup `id` is COMPLETED (a FAILED one fails the test).
async fn wait_backup(t: &Tenant, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let (_, b) = t.get(&format!("backups/{id}")).await;
        match b["backup"]["status"].as_str() {
            Some("COMPLETED") => return b["backup"].clone(),
            Some("FAILED") => panic!("backup failed: {b}"),
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup not COMPLETED: {b}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A full and an incremental backup of a PostgreSQL instance through the CLI, each restored
/// with `--backup` into a new instance that has the rows of its time, the tenant's user and
/// password; deletes leave nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_backup_and_restore_through_the_cli() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let run = start("127.2.5.1").await;
    let t = &run.tenant;
    let created = run
        .create(
            "src",
            "postgresql",
            &["--databases", "app", "--users", "app:Secret123"],
        )
        .await;
    let src = created["id"].as_str().unwrap().to_owned();
    let inst = t.wait_status(&src, "ACTIVE", ACTIVE_TIMEOUT).await;
    let ip = ip_of(&inst);
    psql(
        &ip,
        "app",
        "Secret123",
        "app",
        "CREATE TABLE t (x INT); INSERT INTO t SELECT generate_series(1, 3);",
    )
    .await
    .expect("app writes");

    let backup = t
        .osc_json(&["database", "backup", "create", "b1", "-i", "src"])
        .await;
    let full = backup["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{backup}"))
        .to_owned();
    let b = wait_backup(t, &full).await;
    assert!(
        b["locationRef"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!("{full}.tar.zst"))),
        "{b}"
    );
    t.wait_status(&src, "ACTIVE", ACTIVE_TIMEOUT).await;

    psql(
        &ip,
        "app",
        "Secret123",
        "app",
        "INSERT INTO t VALUES (4), (5);",
    )
    .await
    .expect("app writes again");
    let inc = t
        .osc_json(&[
            "database",
            "backup",
            "create",
            "b2",
            "-i",
            "src",
            "--incremental",
        ])
        .await;
    let inc = inc["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{inc}"))
        .to_owned();
    let b = wait_backup(t, &inc).await;
    assert_eq!(b["parent_id"].as_str(), Some(full.as_str()), "{b}");
    t.wait_status(&src, "ACTIVE", ACTIVE_TIMEOUT).await;

    let mut ips = Vec::new();
    for (name, bid, expected) in [("copy1", &full, "3|6"), ("copy2", &inc, "5|15")] {
        let restored = run.create(name, "postgresql", &["--backup", bid]).await;
        let copy = restored["id"].as_str().unwrap().to_owned();
        let inst = t.wait_status(&copy, "ACTIVE", ACTIVE_TIMEOUT).await;
        let copy_ip = ip_of(&inst);
        assert_ne!(copy_ip, ip);
        let rows = psql(
            &copy_ip,
            "app",
            "Secret123",
            "app",
            "SELECT count(*) || '|' || sum(x) FROM t",
        )
        .await
        .expect("the backup's user and data are in the copy");
        assert_eq!(rows.trim(), expected, "{name} from {bid}");
        ips.push((copy, copy_ip));
    }

    t.osc_ok(&["database", "backup", "delete", &inc]).await;
    t.osc_ok(&["database", "backup", "delete", &full]).await;
    for (name, _) in [("copy1", 0), ("copy2", 1)] {
        t.osc_ok(&["database", "instance", "delete", name]).await;
    }
    t.osc_ok(&["database", "instance", "delete", "src"]).await;
    for (copy, copy_ip) in &ips {
        t.wait_gone(copy, Duration::from_secs(120)).await;
        assert_nothing_left(&run.local_state, copy, copy_ip);
    }
    t.wait_gone(&src, Duration::from_secs(120)).await;
    assert_nothing_left(&run.local_state, &src, &ip);
    let (_, list) = t.get("backups").await;
    assert_eq!(list["backups"].as_array().map(Vec::len), Some(0), "{list}");
    run.shutdown().await;
}
