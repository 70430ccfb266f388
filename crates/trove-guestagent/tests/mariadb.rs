//! MariaDB manager against real `mariadbd` processes, each on its own loopback address.

mod common;

use std::time::Instant;

use common::{df, Instance, NASTY_PASSWORD};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, Row};
use trove_guestagent::models::UserAttributes;
use trove_guestagent::{
    Database, DatastoreManager, GuestError, MariaDbManager, PrepareRequest, ServiceStatus, User,
};

const PORT: u16 = 3306;

async fn tenant(
    inst: &Instance,
    user: &str,
    password: &str,
    db: Option<&str>,
) -> Result<MySqlConnection, sqlx::Error> {
    let mut o = MySqlConnectOptions::new()
        .host(&inst.addr.to_string())
        .port(PORT)
        .username(user)
        .password(password);
    if let Some(d) = db {
        o = o.database(d);
    }
    o.connect().await
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
async fn mariadb_accounts_databases_and_root() {
    let t0 = Instant::now();
    let inst = Instance::new(PORT);
    let mgr = MariaDbManager::new(inst.config.clone());
    let dm: &dyn DatastoreManager = &mgr;
    assert_eq!(dm.status().await, ServiceStatus::New);
    dm.prepare(request()).await.expect("prepare");
    assert!(dm.is_prepared());
    assert_eq!(dm.status().await, ServiceStatus::Healthy);
    eprintln!("prepared in {:?}", t0.elapsed());

    // Credentials saved, private.
    use std::os::unix::fs::PermissionsExt;
    for f in ["conf.d/os_admin.cnf", "conf.d/root.cnf"] {
        let m = std::fs::metadata(inst.mount().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o600, "{f}");
    }

    // The tenant works over TCP with the created account.
    let mut c = tenant(&inst, "app", "s3cret-Pass", Some("orders"))
        .await
        .expect("tenant login");
    sqlx::raw_sql(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t VALUES (1, 'x')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let v: String = sqlx::query_scalar("SELECT v FROM t WHERE id = 1")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(v, "x");
    // ... but not in a database it was not granted.
    assert!(sqlx::raw_sql("CREATE TABLE reports.t (id INT)")
        .execute(&mut c)
        .await
        .is_err());
    c.close().await.unwrap();

    // Databases: listing hides system schemas, pages by name.
    dm.create_databases(vec![
        Database::new("a_db"),
        Database::new("my db@x"),
        Database::new("z-db"),
    ])
    .await
    .unwrap();
    let all = dm.list_databases(None, None, false).await.unwrap();
    let names: Vec<&str> = all.items.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["a_db", "my db@x", "orders", "reports", "z-db"]);
    assert_eq!(all.items[2].character_set.as_deref(), Some("utf8mb3"));
    let p1 = dm.list_databases(Some(2), None, false).await.unwrap();
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.next_marker.as_deref(), Some("my db@x"));
    let p2 = dm
        .list_databases(Some(2), p1.next_marker.clone(), false)
        .await
        .unwrap();
    assert_eq!(
        p2.items.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        vec!["orders", "reports"]
    );
    let p3 = dm
        .list_databases(Some(2), p2.next_marker.clone(), false)
        .await
        .unwrap();
    assert_eq!(p3.items.len(), 1);
    assert_eq!(p3.next_marker, None);
    let wire = serde_json::to_value(&p3).unwrap();
    assert_eq!(wire[0][0]["_name"], "z-db");
    assert!(wire[1].is_null());
    dm.delete_database(Database::new("z-db")).await.unwrap();
    assert!(matches!(
        dm.delete_database(Database::new("z-db")).await,
        Err(GuestError::NotFound(_))
    ));

    // Reserved and invalid names are refused and change nothing.
    let before = dm.list_databases(None, None, false).await.unwrap();
    for bad in [
        "mysql",
        "information_schema",
        "sys",
        "a;b",
        "x`y",
        "",
        " lead",
    ] {
        assert!(
            dm.create_databases(vec![Database::new("fine"), Database::new(bad)])
                .await
                .is_err(),
            "{bad}"
        );
    }
    assert!(matches!(
        dm.delete_database(Database::new("mysql")).await,
        Err(GuestError::Reserved(_))
    ));
    assert_eq!(dm.list_databases(None, None, false).await.unwrap(), before);
    for bad in [
        "root",
        "os_admin",
        "a'b",
        "x;y",
        "back\\slash",
        "waytoolongusername",
    ] {
        let r = dm
            .create_users(vec![User::new("fine", "pw"), User::new(bad, "pw")])
            .await;
        assert!(r.is_err(), "{bad}");
    }
    let mut bad_host = User::new("fine", "pw");
    bad_host.host = Some("x' OR '1".into());
    assert!(dm.create_users(vec![bad_host]).await.is_err());
    assert!(dm.get_user("fine", None).await.unwrap().is_none());

    // Users with passwords full of SQL metacharacters, paged listing with grants.
    let mut nasty = User::new("nasty", NASTY_PASSWORD);
    nasty.databases.push(Database::new("my db@x"));
    let mut local = User::new("lan", "lan-pw");
    local.host = Some("10.0.0.%".into());
    dm.create_users(vec![nasty, local, User::new("bob", "bob-pw")])
        .await
        .unwrap();
    assert!(matches!(
        dm.create_users(vec![User::new("bob", "x")]).await,
        Err(GuestError::AlreadyExists(_))
    ));
    let mut c = tenant(&inst, "nasty", NASTY_PASSWORD, Some("my db@x"))
        .await
        .expect("nasty password login");
    sqlx::raw_sql("CREATE TABLE n (i INT)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let users = dm.list_users(None, None, false).await.unwrap();
    let keys: Vec<String> = users.items.iter().map(User::key).collect();
    assert_eq!(keys, vec!["app@%", "bob@%", "lan@10.0.0.%", "nasty@%"]);
    assert_eq!(users.items[0].databases, vec![Database::new("orders")]);
    assert_eq!(users.items[3].databases, vec![Database::new("my db@x")]);
    let p1 = dm.list_users(Some(3), None, false).await.unwrap();
    assert_eq!(p1.next_marker.as_deref(), Some("lan@10.0.0.%"));
    let p2 = dm
        .list_users(Some(3), p1.next_marker.clone(), true)
        .await
        .unwrap();
    assert_eq!(
        p2.items.iter().map(User::key).collect::<Vec<_>>(),
        vec!["lan@10.0.0.%", "nasty@%"]
    );
    assert_eq!(p2.next_marker, None);

    // Grants: a_db (an underscore, a grant wildcard) is granted exactly.
    dm.grant_access("bob", None, vec!["a_db".into(), "reports".into()])
        .await
        .unwrap();
    assert_eq!(
        dm.list_access("bob", Some("%")).await.unwrap(),
        vec![Database::new("a_db"), Database::new("reports")]
    );
    let mut c = tenant(&inst, "bob", "bob-pw", Some("a_db")).await.unwrap();
    sqlx::raw_sql("CREATE TABLE g (i INT)")
        .execute(&mut c)
        .await
        .unwrap();
    assert!(sqlx::raw_sql("CREATE TABLE orders.g (i INT)")
        .execute(&mut c)
        .await
        .is_err());
    c.close().await.unwrap();
    dm.revoke_access("bob", None, "a_db").await.unwrap();
    assert!(matches!(
        dm.revoke_access("bob", None, "a_db").await,
        Err(GuestError::NotFound(_))
    ));
    assert_eq!(
        dm.list_access("bob", None).await.unwrap(),
        vec![Database::new("reports")]
    );
    let bob = dm.get_user("bob", None).await.unwrap().unwrap();
    assert_eq!(bob.databases, vec![Database::new("reports")]);

    // Password changes and renames.
    dm.change_passwords(vec![trove_guestagent::models::UserPassword {
        name: "bob".into(),
        host: None,
        password: NASTY_PASSWORD.into(),
    }])
    .await
    .unwrap();
    assert!(tenant(&inst, "bob", "bob-pw", None).await.is_err());
    tenant(&inst, "bob", NASTY_PASSWORD, None)
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
            password: Some("new'pw\\".into()),
        },
    )
    .await
    .unwrap();
    assert!(dm.get_user("bob", None).await.unwrap().is_none());
    tenant(&inst, "robert", "new'pw\\", None)
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
        dm.delete_user(User::new("root", "")).await,
        Err(GuestError::Reserved(_))
    ));

    // Root.
    assert!(!dm.is_root_enabled().await.unwrap());
    assert!(tenant(&inst, "root", "", None).await.is_err());
    let root = dm.enable_root(None).await.unwrap();
    assert_eq!(root.password.as_deref().map(str::len), Some(36));
    assert!(dm.is_root_enabled().await.unwrap());
    let mut c = tenant(&inst, "root", root.password.as_deref().unwrap(), None)
        .await
        .expect("root login");
    sqlx::raw_sql("CREATE DATABASE rootmade")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    dm.enable_root(Some(NASTY_PASSWORD.into())).await.unwrap();
    tenant(&inst, "root", NASTY_PASSWORD, None)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    dm.disable_root().await.unwrap();
    assert!(!dm.is_root_enabled().await.unwrap());
    assert!(tenant(&inst, "root", NASTY_PASSWORD, None).await.is_err());
    // Root stays hidden from listings.
    assert!(dm
        .list_users(None, None, false)
        .await
        .unwrap()
        .items
        .iter()
        .all(|u| u.name != "root"));

    // Overrides: written for the next start, applied at run time.
    let mut o = trove_guestagent::manager::Overrides::new();
    o.insert("max_connections".into(), 123.into());
    dm.update_overrides(o.clone(), false).await.unwrap();
    dm.apply_overrides(o).await.unwrap();
    let mut c = tenant(&inst, "app", "s3cret-Pass", None).await.unwrap();
    let row = sqlx::query("SELECT @@GLOBAL.max_connections")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(row.get::<u64, _>(0), 123);
    c.close().await.unwrap();

    // With NO_BACKSLASH_ESCAPES in the global sql_mode, passwords are still written right.
    let mut o = trove_guestagent::manager::Overrides::new();
    o.insert(
        "sql_mode".into(),
        "NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES".into(),
    );
    dm.apply_overrides(o).await.unwrap();
    let fresh = MariaDbManager::new(inst.config.clone());
    fresh
        .create_users(vec![User::new("slash", NASTY_PASSWORD)])
        .await
        .unwrap();
    tenant(&inst, "slash", NASTY_PASSWORD, None)
        .await
        .expect("login after sql_mode change")
        .close()
        .await
        .unwrap();
    dm.change_passwords(vec![trove_guestagent::models::UserPassword {
        name: "slash".into(),
        host: None,
        password: "a\\b'c".into(),
    }])
    .await
    .unwrap();
    tenant(&inst, "slash", "a\\b'c", None)
        .await
        .expect("login after change")
        .close()
        .await
        .unwrap();

    // File system statistics match df.
    let st = dm.get_filesystem_stats(None).await.unwrap();
    let (size, used) = df(inst.mount());
    assert_eq!(st.total_blocks * st.block_size, size);
    let used_gb = used as f64 / 1024f64.powi(3);
    assert!(
        (st.used - used_gb).abs() < 0.05,
        "used {} vs df {}",
        st.used,
        used_gb
    );
    assert_eq!(
        serde_json::to_value(&st).unwrap()["mgr_extra_info"],
        serde_json::json!({})
    );

    dm.stop().await.unwrap();
    eprintln!("total {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_lifecycle() {
    let t0 = Instant::now();
    let inst = Instance::new(PORT);
    let mgr = MariaDbManager::new(inst.config.clone());
    let mut req = request();
    req.root_password = Some(NASTY_PASSWORD.into());
    mgr.prepare(req).await.expect("prepare");
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    assert!(mgr.is_root_enabled().await.unwrap());
    tenant(&inst, "root", NASTY_PASSWORD, None)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();

    // A second prepare is refused and leaves the server alone.
    let pid = inst.server_pid().unwrap();
    assert!(matches!(
        mgr.prepare(request()).await,
        Err(GuestError::AlreadyPrepared(_))
    ));
    assert_eq!(inst.server_pid(), Some(pid));
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);

    // Crash.
    inst.kill_server_hard();
    assert_eq!(mgr.status().await, ServiceStatus::Crashed);
    assert!(matches!(
        mgr.list_databases(None, None, false).await,
        Err(GuestError::NotRunning)
    ));
    mgr.start().await.expect("start after crash");
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    let mut c = tenant(&inst, "app", "s3cret-Pass", Some("orders"))
        .await
        .unwrap();
    c.ping().await.unwrap();
    c.close().await.unwrap();

    // A frozen server is alive but does not answer: RUNNING, then HEALTHY again.
    inst.signal_server("STOP");
    assert_eq!(mgr.status().await, ServiceStatus::Running);
    inst.signal_server("CONT");
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);

    // Stop on purpose, start again, restart.
    mgr.stop().await.unwrap();
    assert_eq!(mgr.status().await, ServiceStatus::Shutdown);
    assert!(tenant(&inst, "app", "s3cret-Pass", None).await.is_err());
    mgr.start().await.unwrap();
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    let mut o = trove_guestagent::manager::Overrides::new();
    o.insert("max_connections".into(), 77.into());
    mgr.update_overrides(o, false).await.unwrap();
    let before = inst.server_pid().unwrap();
    mgr.restart().await.unwrap();
    let mut c = tenant(&inst, "root", NASTY_PASSWORD, None).await.unwrap();
    let n: u64 = sqlx::query_scalar("SELECT @@GLOBAL.max_connections")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 77, "user overrides apply after a restart");
    c.close().await.unwrap();
    mgr.update_overrides(Default::default(), true)
        .await
        .unwrap();
    assert!(!inst
        .mount()
        .join("etc/conf.d/20-user-overrides.cnf")
        .exists());
    assert_ne!(inst.server_pid().unwrap(), before);
    assert_eq!(mgr.status().await, ServiceStatus::Healthy);
    assert_eq!(
        mgr.list_databases(None, None, false)
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // New base configuration, applied by a restart.
    mgr.start_with_conf_changes("[mysqld]\nmax_connections = 55\n".into())
        .await
        .unwrap();
    let mut c = tenant(&inst, "root", NASTY_PASSWORD, None).await.unwrap();
    let n: u64 = sqlx::query_scalar("SELECT @@GLOBAL.max_connections")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 55);
    c.close().await.unwrap();

    // A new manager (an agent restart) finds the running server.
    drop(mgr);
    let again = MariaDbManager::new(inst.config.clone());
    assert_eq!(again.status().await, ServiceStatus::Healthy);
    again.stop().await.unwrap();
    assert_eq!(again.status().await, ServiceStatus::Shutdown);
    eprintln!("total {:?}", t0.elapsed());
}
