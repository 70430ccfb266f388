//! PostgreSQL manager against real `postgres` processes run as the service account, each on
//! its own loopback address.

mod common;

use std::time::{Duration, Instant};

use common::{df, Instance, NASTY_PASSWORD};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use trove_guestagent::models::{UserAttributes, UserPassword};
use trove_guestagent::{
    Database, DatastoreManager, GuestError, PostgresManager, PrepareRequest, ServiceStatus, User,
};

const PORT: u16 = 5432;

async fn tenant(
    inst: &Instance,
    user: &str,
    password: &str,
    db: &str,
) -> Result<PgConnection, sqlx::Error> {
    PgConnectOptions::new()
        .host(&inst.addr.to_string())
        .port(PORT)
        .username(user)
        .password(password)
        .database(db)
        .connect()
        .await
}

fn request() -> PrepareRequest {
    let mut app = User::new("app", "s3cret-Pass");
    app.databases.push(Database::new("orders"));
    PrepareRequest {
        memory_mb: 512,
        databases: vec![Database::new("orders"), Database::new("reports")],
        users: vec![app],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_accounts_databases_and_root() {
    let t0 = Instant::now();
    let inst = Instance::new(PORT);
    let mgr = PostgresManager::new(inst.config.clone());
    let dm: &dyn DatastoreManager = &mgr;
    assert_eq!(dm.status().await, ServiceStatus::New);
    dm.prepare(request()).await.expect("prepare");
    assert_eq!(dm.status().await, ServiceStatus::Healthy);
    eprintln!("prepared in {:?}", t0.elapsed());

    // The server runs as the service account, not root.
    let pid = inst.server_pid().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(1).unwrap() == inst.config.service_user.uid.to_string()
    );

    // The tenant works over TCP.
    let mut c = tenant(&inst, "app", "s3cret-Pass", "orders")
        .await
        .expect("tenant login");
    sqlx::raw_sql("CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'x')")
        .execute(&mut c)
        .await
        .unwrap();
    let v: String = sqlx::query_scalar("SELECT v FROM t WHERE id = 1")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(v, "x");
    c.close().await.unwrap();
    // Not postgres over TCP, and not a database without a grant... (CONNECT is public in
    // PostgreSQL, CREATE is not).
    assert!(tenant(&inst, "postgres", "", "postgres").await.is_err());
    let mut c = tenant(&inst, "app", "s3cret-Pass", "reports")
        .await
        .unwrap();
    assert!(sqlx::raw_sql("CREATE SCHEMA s")
        .execute(&mut c)
        .await
        .is_err());
    c.close().await.unwrap();

    // Databases, with names that need quoting.
    let odd = "we\"ird; DROP DATABASE orders; --";
    dm.create_databases(vec![
        Database::new("a_db"),
        Database::new(odd),
        Database::new("z-db"),
    ])
    .await
    .unwrap();
    let all = dm.list_databases(None, None, false).await.unwrap();
    let names: Vec<&str> = all.items.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["a_db", "orders", "reports", odd, "z-db"]);
    assert_eq!(all.items[0].character_set.as_deref(), Some("UTF8"));
    let p1 = dm.list_databases(Some(2), None, false).await.unwrap();
    assert_eq!(p1.next_marker.as_deref(), Some("orders"));
    let p2 = dm
        .list_databases(Some(2), p1.next_marker.clone(), false)
        .await
        .unwrap();
    assert_eq!(
        p2.items.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        vec!["reports", odd]
    );
    let p3 = dm
        .list_databases(Some(2), p2.next_marker.clone(), false)
        .await
        .unwrap();
    assert_eq!(p3.items.len(), 1);
    assert_eq!(p3.next_marker, None);
    dm.delete_database(Database::new("z-db")).await.unwrap();
    assert!(matches!(
        dm.delete_database(Database::new("z-db")).await,
        Err(GuestError::NotFound(_))
    ));

    // Reserved and invalid names change nothing.
    let before = dm.list_databases(None, None, false).await.unwrap();
    for bad in [
        "postgres",
        "template0",
        "template1",
        "os_admin",
        "",
        &"x".repeat(64),
        "tab\there",
    ] {
        assert!(
            dm.create_databases(vec![Database::new("fine"), Database::new(bad)])
                .await
                .is_err(),
            "{bad:?}"
        );
    }
    assert!(matches!(
        dm.delete_database(Database::new("postgres")).await,
        Err(GuestError::Reserved(_))
    ));
    assert_eq!(dm.list_databases(None, None, false).await.unwrap(), before);
    for bad in ["postgres", "os_admin", "root", "", "---"] {
        assert!(
            dm.create_users(vec![User::new("fine", "pw"), User::new(bad, "pw")])
                .await
                .is_err(),
            "{bad}"
        );
    }
    let mut hosted = User::new("fine", "pw");
    hosted.host = Some("10.0.0.1".into());
    assert!(dm.create_users(vec![hosted]).await.is_err());
    assert!(dm.get_user("fine", None).await.unwrap().is_none());

    // Users with nasty passwords and names, grants.
    let odd_user = "Mr \"O'Neil\"; --";
    let mut nasty = User::new(odd_user, NASTY_PASSWORD);
    nasty.databases.push(Database::new(odd));
    dm.create_users(vec![nasty, User::new("bob", "bob-pw")])
        .await
        .unwrap();
    assert!(matches!(
        dm.create_users(vec![User::new("bob", "x")]).await,
        Err(GuestError::AlreadyExists(_))
    ));
    let mut c = tenant(&inst, odd_user, NASTY_PASSWORD, odd)
        .await
        .expect("odd user login");
    sqlx::raw_sql("CREATE TABLE n (i INT); INSERT INTO n VALUES (1)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let users = dm.list_users(None, None, false).await.unwrap();
    let keys: Vec<String> = users.items.iter().map(User::key).collect();
    assert_eq!(
        keys,
        vec![format!("{odd_user}@%"), "app@%".into(), "bob@%".into()]
    );
    assert_eq!(users.items[0].databases, vec![Database::new(odd)]);
    assert_eq!(users.items[1].databases, vec![Database::new("orders")]);
    let p1 = dm.list_users(Some(2), None, false).await.unwrap();
    assert_eq!(p1.next_marker.as_deref(), Some("app@%"));
    let p2 = dm
        .list_users(Some(2), p1.next_marker.clone(), false)
        .await
        .unwrap();
    assert_eq!(
        p2.items.iter().map(User::key).collect::<Vec<_>>(),
        vec!["bob@%"]
    );

    dm.grant_access("bob", None, vec!["a_db".into(), "reports".into()])
        .await
        .unwrap();
    assert_eq!(
        dm.list_access("bob", None).await.unwrap(),
        vec![Database::new("a_db"), Database::new("reports")]
    );
    let mut c = tenant(&inst, "bob", "bob-pw", "a_db").await.unwrap();
    sqlx::raw_sql("CREATE TABLE g (i INT)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    dm.revoke_access("bob", None, "reports").await.unwrap();
    assert!(matches!(
        dm.revoke_access("bob", None, "reports").await,
        Err(GuestError::NotFound(_))
    ));
    assert_eq!(
        dm.get_user("bob", None).await.unwrap().unwrap().databases,
        vec![Database::new("a_db")]
    );

    // Passwords and renames; deleting a user that owns a table.
    dm.change_passwords(vec![UserPassword {
        name: "bob".into(),
        host: None,
        password: NASTY_PASSWORD.into(),
    }])
    .await
    .unwrap();
    assert!(tenant(&inst, "bob", "bob-pw", "a_db").await.is_err());
    tenant(&inst, "bob", NASTY_PASSWORD, "a_db")
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    dm.update_attributes(
        "bob",
        None,
        UserAttributes {
            name: Some("robert".into()),
            host: None,
            password: Some("n'p\\".into()),
        },
    )
    .await
    .unwrap();
    assert!(dm.get_user("bob", None).await.unwrap().is_none());
    tenant(&inst, "robert", "n'p\\", "a_db")
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    dm.delete_user(User::new("robert", "")).await.unwrap();
    assert!(matches!(
        dm.delete_user(User::new("robert", "")).await,
        Err(GuestError::NotFound(_))
    ));
    assert!(matches!(
        dm.delete_user(User::new("postgres", "")).await,
        Err(GuestError::Reserved(_))
    ));

    // Root.
    assert!(!dm.is_root_enabled().await.unwrap());
    let root = dm.enable_root(None).await.unwrap();
    assert!(dm.is_root_enabled().await.unwrap());
    let mut c = tenant(&inst, "root", root.password.as_deref().unwrap(), "postgres")
        .await
        .expect("root login");
    sqlx::raw_sql("CREATE DATABASE rootmade")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    dm.enable_root(Some(NASTY_PASSWORD.into())).await.unwrap();
    tenant(&inst, "root", NASTY_PASSWORD, "postgres")
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    dm.disable_root().await.unwrap();
    assert!(!dm.is_root_enabled().await.unwrap());
    assert!(tenant(&inst, "root", NASTY_PASSWORD, "postgres")
        .await
        .is_err());
    assert!(dm
        .list_users(None, None, false)
        .await
        .unwrap()
        .items
        .iter()
        .all(|u| u.name != "root"));

    // Overrides applied by reload.
    let mut o = trove_guestagent::manager::Overrides::new();
    o.insert("work_mem".into(), "7MB".into());
    dm.apply_overrides(o).await.unwrap();
    let mut seen = String::new();
    for _ in 0..50 {
        let mut c = tenant(&inst, "app", "s3cret-Pass", "orders").await.unwrap();
        seen = sqlx::query_scalar("SHOW work_mem")
            .fetch_one(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        if seen == "7MB" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "7MB");

    // File system statistics.
    let st = dm.get_filesystem_stats(None).await.unwrap();
    let (size, used) = df(inst.mount());
    assert_eq!(st.total_blocks * st.block_size, size);
    assert!((st.used - used as f64 / 1024f64.powi(3)).abs() < 0.05);
    assert!(st.mgr_extra_info["wal_size"].as_u64().unwrap() > 0);

    dm.stop().await.unwrap();
    eprintln!("total {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lifecycle() {
    let t0 = Instant::now();
    let inst = Instance::new(PORT);
    let mgr = PostgresManager::new(inst.config.clone());
    // A prepare refused by validation starts nothing and reports FAILED; it may be retried.
    let mut bad = request();
    bad.users.push(User::new("postgres", "pw"));
    assert!(matches!(
        mgr.prepare(bad).await,
        Err(GuestError::Reserved(_))
    ));
    assert_eq!(mgr.status().await, ServiceStatus::Failed);
    assert!(inst.server_pid().is_none());
    let mut req = request();
    req.root_password = Some(NASTY_PASSWORD.into());
    req.config_contents = Some("max_connections = 42\nshared_buffers = 32MB\n".into());
    req.overrides.insert("work_mem".into(), "5MB".into());
    mgr.prepare(req).await.expect("prepare");
    let mut c = tenant(&inst, "root", NASTY_PASSWORD, "postgres")
        .await
        .unwrap();
    let mc: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let wm: String = sqlx::query_scalar("SHOW work_mem")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(
        (mc.as_str(), wm.as_str()),
        ("42", "5MB"),
        "config_contents and overrides used"
    );
    c.close().await.unwrap();
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    tenant(&inst, "root", NASTY_PASSWORD, "postgres")
        .await
        .unwrap()
        .close()
        .await
        .unwrap();

    let pid = inst.server_pid().unwrap();
    assert!(matches!(
        mgr.prepare(request()).await,
        Err(GuestError::AlreadyPrepared(_))
    ));
    assert_eq!(inst.server_pid(), Some(pid));
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);

    inst.kill_server_hard();
    assert_eq!(mgr.status().await, ServiceStatus::Crashed);
    mgr.start().await.expect("start after crash");
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    tenant(&inst, "app", "s3cret-Pass", "orders")
        .await
        .unwrap()
        .close()
        .await
        .unwrap();

    // A frozen server is alive but does not answer: RUNNING, then HEALTHY again.
    inst.signal_server("STOP");
    assert_eq!(mgr.status().await, ServiceStatus::Running);
    inst.signal_server("CONT");
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);

    // A tenant connection stays open while stopping: fast shutdown does not wait for it.
    let idle = tenant(&inst, "app", "s3cret-Pass", "orders").await.unwrap();
    mgr.stop().await.unwrap();
    drop(idle);
    assert_eq!(mgr.status().await, ServiceStatus::Shutdown);
    assert!(tenant(&inst, "app", "s3cret-Pass", "orders").await.is_err());
    mgr.start().await.unwrap();
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    mgr.restart().await.unwrap();
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    assert_eq!(
        mgr.list_databases(None, None, false)
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    mgr.stop().await.unwrap();
    mgr.start_with_conf_changes("max_connections = 33\n".into())
        .await
        .unwrap();
    let mut c = tenant(&inst, "root", NASTY_PASSWORD, "postgres")
        .await
        .unwrap();
    let mc: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(mc, "33");
    c.close().await.unwrap();

    drop(mgr);
    let again = PostgresManager::new(inst.config.clone());
    assert_eq!(again.status().await, ServiceStatus::Healthy);
    again.stop().await.unwrap();
    assert_eq!(again.status().await, ServiceStatus::Shutdown);
    eprintln!("total {:?}", t0.elapsed());
}
