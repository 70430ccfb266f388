//! MariaDB GTID replication through the manager, on real `mariadbd` processes on
//! 127.2.11.x: a replica prepared from its source's snapshot follows it read-only and can be
//! detached; switchover and failover of a source with two replicas. Needs root (service
//! account, restored file ownership) and `mariadb-backup`; skipped with a printed reason
//! otherwise.

mod common;

use std::time::{Duration, Instant};

use common::{
    free_endpoint, init_logging, programs_installed, running_as_root, Conductor, Datastore, Guest,
    Instance, APP_PASSWORD,
};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection};
use trove_guestagent::backup::{BackupInfo, BackupJob, RestoreInfo};
use trove_guestagent::manager::{ReplicaContext, ReplicaSnapshot};
use trove_guestagent::{Database, DatastoreManager, MariaDbManager, PrepareRequest, User};

fn can_run() -> bool {
    running_as_root("replication tests need root (service account, restored file ownership)")
        && programs_installed(&["mariadb-backup", "mbstream"])
}

/// An instance on a free 127.2.11.x address and port.
fn instance() -> Instance {
    let (ip, port) = free_endpoint([127, 2, 11], 20000..=39999);
    Instance::at(ip, port)
}

struct Node {
    inst: Instance,
    mgr: MariaDbManager,
}

impl Node {
    fn new() -> Node {
        let inst = instance();
        let mgr = MariaDbManager::new(inst.config.clone());
        Node { inst, mgr }
    }

    fn dm(&self) -> &dyn DatastoreManager {
        &self.mgr
    }

    async fn app(&self) -> MySqlConnection {
        self.login("app", APP_PASSWORD).await.expect("app logs in")
    }

    async fn login(&self, user: &str, password: &str) -> Result<MySqlConnection, sqlx::Error> {
        MySqlConnectOptions::new()
            .host(&self.inst.addr.to_string())
            .port(self.inst.config.port)
            .username(user)
            .password(password)
            .database("orders")
            .connect()
            .await
    }

    async fn count(&self) -> i64 {
        let mut c = self.app().await;
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        n
    }

    async fn insert(&self, v: &str) -> Result<(), sqlx::Error> {
        let mut c = self.app().await;
        let r = sqlx::query("INSERT INTO t (v) VALUES (?)")
            .bind(v)
            .execute(&mut c)
            .await
            .map(|_| ());
        c.close().await.unwrap();
        r
    }

    async fn has(&self, v: &str) -> bool {
        let mut c = self.app().await;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE v = ?")
            .bind(v)
            .fetch_one(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        n > 0
    }

    /// Waits until the row `v` is there.
    async fn wait_row(&self, v: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.has(v).await {
            assert!(
                Instant::now() < deadline,
                "row {v:?} did not reach {} in {within:?}",
                self.inst.addr
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's `read_only` as the server reports it.
    async fn read_only(&self) -> bool {
        let mut c = self.app().await;
        let v: i64 = sqlx::query_scalar("SELECT @@GLOBAL.read_only + 0")
            .fetch_one(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        v == 1
    }

    fn replication_cnf(&self) -> String {
        std::fs::read_to_string(
            self.inst
                .mount()
                .join("etc/conf.d/50-system-replication.cnf"),
        )
        .unwrap()
    }

    fn server_id(&self) -> String {
        self.replication_cnf()
            .lines()
            .find_map(|l| l.strip_prefix("server_id = "))
            .expect("server_id")
            .to_owned()
    }
}

fn source_request() -> PrepareRequest {
    let mut app = User::new("app", APP_PASSWORD);
    app.databases.push(Database::new("orders"));
    PrepareRequest {
        memory_mb: 512,
        databases: vec![Database::new("orders")],
        users: vec![app],
        ..Default::default()
    }
}

/// A prepared source with table `orders.t` and `rows` rows.
async fn source(rows: usize) -> Node {
    let src = Node::new();
    src.dm()
        .prepare(source_request())
        .await
        .expect("source prepared");
    let mut c = src.app().await;
    sqlx::raw_sql(
        "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB",
    )
    .execute(&mut c)
    .await
    .unwrap();
    for chunk in 0..rows.div_ceil(100) {
        let values: Vec<String> = (0..100.min(rows - chunk * 100))
            .map(|i| format!("('initial {chunk}-{i}')"))
            .collect();
        sqlx::raw_sql(&format!("INSERT INTO t (v) VALUES {}", values.join(",")))
            .execute(&mut c)
            .await
            .unwrap();
    }
    c.close().await.unwrap();
    src
}

/// The replication snapshot of `src`, as `get_replication_snapshot` builds it: the replica
/// context first, then a full backup into the local store at `store`.
async fn snapshot(src: &Node, store: &std::path::Path) -> (ReplicaSnapshot, RestoreInfo) {
    let ctx = src.dm().replica_context().await.expect("replica context");
    let id = uuid::Uuid::new_v4().to_string();
    let info: BackupInfo = serde_json::from_value(serde_json::json!({
        "id": id, "instance_id": "source", "backup_type": "full", "datastore": "mariadb",
        "datastore_version": "10.11", "swift_url": format!("file://{}", store.display())
    }))
    .unwrap();
    let job = BackupJob::from_info(&info).unwrap();
    let obj = src.dm().create_backup(&job).await.expect("snapshot backup");
    let snapshot: ReplicaSnapshot = serde_json::from_value(serde_json::json!({
        "dataset": {"datastore_manager": "mariadb", "snapshot_id": id},
        "replication_strategy": src.dm().replication_strategy(),
        "master": ctx.master,
        "replica_conf": ctx.replica_conf,
        "config": "[mysqld]\n",
    }))
    .unwrap();
    let restore = RestoreInfo {
        id: Some(id),
        location: obj.location,
        checksum: Some(obj.checksum),
        kind: Some("InnoBackupEx".into()),
    };
    (snapshot, restore)
}

async fn replica(snapshot: &ReplicaSnapshot, restore: &RestoreInfo) -> Node {
    let r = Node::new();
    r.dm()
        .prepare(PrepareRequest {
            memory_mb: 512,
            backup_info: Some(restore.clone()),
            snapshot: Some(snapshot.clone()),
            ..Default::default()
        })
        .await
        .expect("replica prepared");
    r
}

/// A local directory store for the replication snapshots.
fn snapshot_store() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("trove-repl-store-")
        .tempdir()
        .unwrap()
}

fn is_read_only_refusal(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.code().as_deref() == Some("HY000") && d.message().contains("read-only"))
}

/// Source with rows -> snapshot -> replica has them and follows new writes, refuses tenant
/// writes, keeps following over a restart; detached it is writable and stops following.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_from_snapshot_follows_then_detaches() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = snapshot_store();
    let src = source(1000).await;
    assert_eq!(
        src.dm().replication_strategy(),
        Some("MariaDBGTIDReplication")
    );
    assert!(src.replication_cnf().contains("log_bin = mariadb-bin"));

    // The replication account: created once, saved privately, hidden from tenants.
    let ctx1 = src.dm().replica_context().await.unwrap();
    let ctx2 = src.dm().replica_context().await.unwrap();
    assert_eq!(ctx1, ctx2);
    let user = ctx1.replica_conf.replication_user.clone().unwrap();
    assert!(
        user.name.starts_with("slave_") && user.name.len() == 14,
        "{}",
        user.name
    );
    assert_eq!(user.password.len(), 16);
    assert_eq!(ctx1.master.host, src.inst.addr.to_string());
    assert_eq!(ctx1.master.port, src.inst.config.port);
    assert_eq!(ctx1.replica_conf.log_position, serde_json::json!({}));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(src.inst.mount().join("conf.d/replication.cnf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let users = src.dm().list_users(None, None, false).await.unwrap();
    let names: Vec<&str> = users.items.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, vec!["app"]);
    assert!(matches!(
        src.dm().get_user(&user.name, Some("%")).await,
        Err(trove_guestagent::GuestError::Reserved(_))
    ));
    assert!(src
        .dm()
        .create_users(vec![User::new("slave_0badcafe", "pw")])
        .await
        .is_err());

    let (snap, restore) = snapshot(&src, store.path()).await;
    assert_eq!(snap.context(), ctx1);
    // Written after the snapshot: the replica gets it from the binary log.
    src.insert("after snapshot").await.unwrap();

    let rep = replica(&snap, &restore).await;
    assert_ne!(rep.server_id(), src.server_id());
    assert!(rep.replication_cnf().contains("read_only = ON"));
    rep.wait_row("after snapshot", Duration::from_secs(30))
        .await;
    assert_eq!(rep.count().await, 1001);
    // Tenant accounts and databases came from the source.
    let names: Vec<String> = rep
        .dm()
        .list_users(None, None, false)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, vec!["app"]);

    // The replication settings are live on both servers.
    for n in [&src, &rep] {
        let mut c = n.app().await;
        let (strict, slave_updates, format): (i64, i64, String) = sqlx::query_as(
            "SELECT @@GLOBAL.gtid_strict_mode + 0, @@GLOBAL.log_slave_updates + 0, \
             CAST(@@GLOBAL.binlog_format AS CHAR)",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!((strict, slave_updates, format.as_str()), (1, 1, "ROW"));
        c.close().await.unwrap();
    }
    // A replica cannot serve as a source.
    assert!(matches!(
        rep.dm().replica_context().await,
        Err(trove_guestagent::GuestError::InvalidValue(_))
    ));
    // Accounts and databases are the source's business while following it.
    for r in [
        rep.dm()
            .create_users(vec![User::new("local", "pw-local-1")])
            .await,
        rep.dm()
            .create_databases(vec![Database::new("local")])
            .await,
        rep.dm().enable_root(None).await.map(|_| ()),
    ] {
        assert!(
            matches!(r, Err(trove_guestagent::GuestError::InvalidValue(ref m)) if m.contains("replica")),
            "{r:?}"
        );
    }

    // New writes flow; the tenant cannot write on the replica.
    src.insert("live 1").await.unwrap();
    rep.wait_row("live 1", Duration::from_secs(30)).await;
    assert!(rep.read_only().await);
    let e = rep.insert("on replica").await.unwrap_err();
    assert!(is_read_only_refusal(&e), "{e}");

    // Positions: the replica reports its source and catches up to its latest GTID.
    let latest = src.dm().get_latest_txn_id().await.unwrap();
    assert!(
        latest.starts_with(&format!("0-{}-", src.server_id())),
        "{latest}"
    );
    rep.dm().wait_for_txn(&latest).await.unwrap();
    let (source_id, last) = rep.dm().get_last_txn().await.unwrap();
    assert_eq!(source_id, src.server_id());
    let seq: i64 = latest.rsplit('-').next().unwrap().parse().unwrap();
    assert_eq!(last, seq);
    // A malformed position is refused at once.
    assert!(rep.dm().wait_for_txn("0-1-x").await.is_err());

    // Over a restart: still read-only, still following.
    rep.dm().restart().await.unwrap();
    assert!(rep.read_only().await);
    src.insert("after replica restart").await.unwrap();
    rep.wait_row("after replica restart", Duration::from_secs(60))
        .await;

    // Detach: writable, no longer following; the source's account is dropped here.
    let out = rep.dm().detach_replica(false).await.unwrap();
    assert_eq!(out, serde_json::json!({"replication_user": user.name}));
    assert!(!rep.read_only().await);
    assert!(rep.replication_cnf().contains("read_only = OFF"));
    rep.insert("on detached").await.unwrap();
    rep.dm()
        .create_databases(vec![Database::new("local")])
        .await
        .unwrap();
    src.insert("after detach").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!rep.has("after detach").await);
    assert!(!src.has("on detached").await);
    assert!(rep.dm().get_last_txn().await.is_err());
    rep.dm().restart().await.unwrap();
    assert!(!rep.read_only().await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!rep.has("after detach").await);
}

async fn source_with_two_replicas(store: &std::path::Path) -> (Node, Node, Node) {
    let src = source(200).await;
    let (snap, restore) = snapshot(&src, store).await;
    let (r1, r2) = tokio::join!(replica(&snap, &restore), replica(&snap, &restore));
    src.insert("before promotion").await.unwrap();
    r1.wait_row("before promotion", Duration::from_secs(30))
        .await;
    r2.wait_row("before promotion", Duration::from_secs(30))
        .await;
    (src, r1, r2)
}

/// Switchover in the taskmanager's order: the candidate becomes the source, the other
/// replica and the old source follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchover_to_a_replica() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = snapshot_store();
    let (old, cand, other) = source_with_two_replicas(store.path()).await;
    old.insert("last on old source").await.unwrap();

    old.dm().make_read_only(true).await.unwrap();
    assert!(old.insert("refused").await.is_err());
    let txn = old.dm().get_latest_txn_id().await.unwrap();
    cand.dm().wait_for_txn(&txn).await.unwrap();
    assert!(cand.has("last on old source").await);
    let detached = cand.dm().detach_replica(true).await.unwrap();
    assert!(detached["replication_user"].is_string());
    cand.dm().enable_as_master().await.unwrap();
    cand.dm().make_read_only(false).await.unwrap();
    let ctx: ReplicaContext = cand.dm().replica_context().await.unwrap();
    assert_eq!(ctx.master.host, cand.inst.addr.to_string());
    other.dm().detach_replica(true).await.unwrap();
    other.dm().attach_replica(&ctx, true).await.unwrap();
    old.dm().attach_replica(&ctx, false).await.unwrap();
    old.dm().demote_replication_master().await.unwrap();

    cand.insert("on new source").await.unwrap();
    other
        .wait_row("on new source", Duration::from_secs(30))
        .await;
    old.wait_row("on new source", Duration::from_secs(30)).await;
    for n in [&old, &other] {
        assert!(n.read_only().await);
        assert!(n.insert("refused").await.is_err());
        let (source_id, _) = n.dm().get_last_txn().await.unwrap();
        assert_eq!(source_id, cand.server_id());
    }
    assert!(!cand.read_only().await);
    let txn = cand.dm().get_latest_txn_id().await.unwrap();
    old.dm().wait_for_txn(&txn).await.unwrap();
    other.dm().wait_for_txn(&txn).await.unwrap();
    assert_eq!(old.count().await, cand.count().await);
    assert_eq!(other.count().await, cand.count().await);
}

/// Failover: the source dies; both replicas name the same source, the most advanced one is
/// promoted and the other follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_after_the_source_dies() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = snapshot_store();
    let (src, r1, r2) = source_with_two_replicas(store.path()).await;
    // r2 stops applying for a while: r1 has more of the source's changes when it dies.
    {
        let mut c = MySqlConnectOptions::new()
            .socket(r2.inst.mount().join("run/mysqld.sock"))
            .username("root")
            .password(&root_password(&r2))
            .connect()
            .await
            .expect("root on r2");
        sqlx::raw_sql("STOP SLAVE SQL_THREAD")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    src.insert("only on r1").await.unwrap();
    r1.wait_row("only on r1", Duration::from_secs(30)).await;
    src.inst.kill_server_hard();

    let (id1, txn1) = r1.dm().get_last_txn().await.unwrap();
    let (id2, txn2) = r2.dm().get_last_txn().await.unwrap();
    assert_eq!(id1, id2);
    assert_eq!(id1, src.server_id());
    assert!(txn1 > txn2, "{txn1} vs {txn2}");
    let (cand, other) = if txn1 >= txn2 { (&r1, &r2) } else { (&r2, &r1) };

    cand.dm().detach_replica(true).await.unwrap();
    cand.dm().enable_as_master().await.unwrap();
    cand.dm().make_read_only(false).await.unwrap();
    let ctx = cand.dm().replica_context().await.unwrap();
    other.dm().detach_replica(true).await.unwrap();
    other.dm().attach_replica(&ctx, true).await.unwrap();

    cand.insert("after failover").await.unwrap();
    other
        .wait_row("after failover", Duration::from_secs(30))
        .await;
    assert!(other.has("only on r1").await);
    let (id, _) = other.dm().get_last_txn().await.unwrap();
    assert_eq!(id, cand.server_id());
    assert_eq!(other.count().await, cand.count().await);
}

fn root_password(n: &Node) -> String {
    let text = std::fs::read_to_string(n.inst.mount().join("conf.d/root.cnf")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap()
        .to_owned()
}

/// An agent on the conductor stand-in's broker for a new node.
async fn start_guest(conductor: &Conductor) -> Guest<Node> {
    let node = Node::new();
    let config = node.inst.config.clone();
    Guest::start_on(
        conductor,
        Datastore::MariaDb,
        config,
        node,
        trove_rpc::api::GuestTimeouts::default(),
    )
    .await
}

fn prepare_args(
    backup_info: serde_json::Value,
    snapshot: serde_json::Value,
    with_tenant: bool,
) -> trove_rpc::api::PrepareArgs {
    let mut args = common::prepare_args(Datastore::MariaDb, backup_info, with_tenant);
    args.snapshot = Some(snapshot).filter(|s| !s.is_null());
    args
}

/// Through the guest API as the taskmanager drives it: `get_replication_snapshot` on the
/// source (backup reported to the conductor), then `prepare` of a new guest with the
/// snapshot and the snapshot backup; the replica follows, and `get_last_txn` answers in
/// Trove's `[source, number]` shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_created_through_the_guest_api() {
    if !can_run() {
        return;
    }
    init_logging();
    use trove_rpc::api::GuestRequest;
    use trove_rpc::RpcContext;
    let ctx = RpcContext::new_internal;
    let conductor = Conductor::start().await;
    let recorder = &conductor.recorder;
    let store = snapshot_store();

    let src = start_guest(&conductor).await;
    src.prepare_healthy(
        prepare_args(serde_json::Value::Null, serde_json::Value::Null, true),
        Duration::from_secs(120),
    )
    .await;
    let mut c = src.inst.app().await;
    sqlx::raw_sql(
        "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(100)); \
         INSERT INTO t (v) VALUES ('one'), ('two')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    c.close().await.unwrap();

    let snapshot_id = uuid::Uuid::new_v4().to_string();
    let snapshot = src
        .api
        .send(
            &ctx(),
            GuestRequest::GetReplicationSnapshot {
                snapshot_info: serde_json::json!({
                    "id": snapshot_id, "name": "Replication snapshot", "description": null,
                    "instance_id": src.id, "backup_type": "full", "checksum": null,
                    "parent": null, "datastore": "mariadb", "datastore_version": "10.11",
                    "storage_driver": "swift", "swift_container": null,
                    "swift_url": format!("file://{}", store.path().display())
                }),
                replica_source_config: Some("[mysqld]\n".into()),
            },
        )
        .await
        .expect("replication snapshot");
    assert_eq!(snapshot["replication_strategy"], "MariaDBGTIDReplication");
    assert_eq!(snapshot["dataset"]["snapshot_id"], snapshot_id.as_str());
    assert_eq!(snapshot["master"]["host"], src.inst.inst.addr.to_string());
    assert_eq!(snapshot["master"]["port"], src.inst.inst.config.port);
    let user = snapshot["replica_conf"]["replication_user"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(user.starts_with("slave_"), "{snapshot}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let found = recorder
            .calls("update_backup")
            .into_iter()
            .find(|a| a["backup_id"] == snapshot_id.as_str() && a["state"] == "COMPLETED");
        if let Some(d) = found {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "snapshot backup not reported COMPLETED"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The context answered over RPC is the snapshot's.
    let context = src
        .api
        .send(&ctx(), GuestRequest::GetReplicaContext {})
        .await
        .unwrap();
    assert_eq!(context["master"], snapshot["master"]);
    assert_eq!(context["replica_conf"], snapshot["replica_conf"]);

    let mut with_config = snapshot.clone();
    with_config["config"] = serde_json::json!("[mysqld]\n");
    let rep = start_guest(&conductor).await;
    rep.prepare_healthy(
        prepare_args(
            serde_json::json!({"id": snapshot_id, "location": done["location"],
                                   "checksum": done["checksum"], "type": "InnoBackupEx"}),
            with_config,
            false,
        ),
        Duration::from_secs(240),
    )
    .await;
    assert_eq!(rep.inst.count().await, 2);
    src.inst.insert("three").await.unwrap();
    rep.inst.wait_row("three", Duration::from_secs(30)).await;
    assert!(rep.inst.insert("refused").await.is_err());
    let last = rep
        .api
        .send(&ctx(), GuestRequest::GetLastTxn {})
        .await
        .unwrap();
    assert_eq!(last[0], src.inst.server_id().as_str());
    assert!(last[1].as_i64().is_some_and(|n| n > 0), "{last}");
    let latest = src
        .api
        .send(&ctx(), GuestRequest::GetLatestTxnId {})
        .await
        .unwrap();
    rep.api
        .send(&ctx(), GuestRequest::WaitForTxn { txn: latest })
        .await
        .unwrap();
    let detached = rep
        .api
        .send(
            &ctx(),
            GuestRequest::DetachReplica {
                for_failover: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(detached, serde_json::json!({"replication_user": user}));
    rep.inst.insert("writable").await.unwrap();
    rep.stop().await;
    src.stop().await;
}

/// A server whose history the source does not have cannot follow it: the attach fails at
/// once with the server's replication error instead of waiting for the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attaching_to_an_unrelated_source_fails_with_the_server_error() {
    if !can_run() {
        return;
    }
    init_logging();
    let (a, b) = tokio::join!(source(10), source(10));
    let ctx = a.dm().replica_context().await.unwrap();
    let t0 = Instant::now();
    let e = b.dm().attach_replica(&ctx, false).await.unwrap_err();
    let text = e.to_string();
    eprintln!("attach refused: {text}");
    assert!(text.contains("Last_IO_Error"), "{text}");
    assert!(!text.contains(&ctx.replica_conf.replication_user.unwrap().password));
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    // Refused requests change nothing on the source.
    let mut bad = a.dm().replica_context().await.unwrap();
    bad.replica_conf.replication_user = None;
    assert!(matches!(
        b.dm().attach_replica(&bad, false).await,
        Err(trove_guestagent::GuestError::InvalidValue(_))
    ));
}
