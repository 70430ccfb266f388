//! PostgreSQL streaming replication through the manager, on real `postgres` servers run as
//! the service account, each on its own address in 127.2.12.x and its own port: a replica
//! prepared from a source's replication snapshot (a full backup in a local store), detach,
//! switchover (promote a replica, re-point the others, rewind the old source) and failover
//! (the source is gone; the most advanced replica takes over). Needs root and PostgreSQL 15's
//! tools; skipped with a printed reason otherwise.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_endpoint, init_logging, pg15_tools_installed, running_as_root, Instance};
use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use trove_backup::{LocalStore, Metadata};
use trove_guestagent::backup::{BackupJob, ParentInfo, RestoreInfo};
use trove_guestagent::manager::{ReplicaContext, ReplicaSnapshot};
use trove_guestagent::{
    Database, DatastoreManager, GuestError, PostgresManager, PrepareRequest, ServiceStatus, User,
};

const STRATEGY: &str = "PostgresqlReplicationStreaming";

fn can_run() -> bool {
    running_as_root("replication tests need root (service account, restored files)")
        && pg15_tools_installed(&["postgres", "pg_basebackup", "pg_verifybackup", "pg_rewind"])
}

struct Node {
    inst: Instance,
    mgr: PostgresManager,
}

impl Node {
    fn new() -> Self {
        Self::with_wait(Duration::from_secs(60))
    }

    /// A node whose waits (start, stop, streaming) end after `wait`.
    fn with_wait(wait: Duration) -> Self {
        let (ip, port) = free_endpoint([127, 2, 12], 20000..=59999);
        let mut inst = Instance::at(ip, port);
        inst.config.state_change_wait_time = wait;
        let mgr = PostgresManager::new(inst.config.clone());
        Node { inst, mgr }
    }

    fn dm(&self) -> &dyn DatastoreManager {
        &self.mgr
    }

    /// `postgres` over the instance's socket, in `db`.
    async fn connect(&self, db: &str) -> PgConnection {
        PgConnectOptions::new()
            .host(&self.mgr.layout().run_dir.to_string_lossy())
            .port(self.inst.config.port)
            .username("postgres")
            .database(db)
            .connect()
            .await
            .expect("connect")
    }

    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        let mut c = self.connect("shop").await;
        let r = sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ());
        let _ = c.close().await;
        r
    }

    async fn count(&self) -> i64 {
        let mut c = self.connect("shop").await;
        let n = sqlx::query_scalar("SELECT count(*) FROM items")
            .fetch_one(&mut c)
            .await
            .expect("count");
        let _ = c.close().await;
        n
    }

    async fn has_item(&self, name: &str) -> bool {
        let mut c = self.connect("shop").await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE name = $1")
            .bind(name)
            .fetch_one(&mut c)
            .await
            .expect("query");
        let _ = c.close().await;
        n > 0
    }

    async fn wait_item(&self, name: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.has_item(name).await {
            assert!(
                Instant::now() < deadline,
                "{name} did not reach {}:{} in {within:?}",
                self.inst.addr,
                self.inst.config.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn in_recovery(&self) -> bool {
        let mut c = self.connect("postgres").await;
        let r = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut c)
            .await
            .unwrap();
        let _ = c.close().await;
        r
    }

    /// The source's address and port the WAL receiver streams from, if it streams.
    async fn streaming_from(&self) -> Option<(String, i32)> {
        let mut c = self.connect("postgres").await;
        let r: Option<(String, String, i32)> =
            sqlx::query_as("SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver")
                .fetch_optional(&mut c)
                .await
                .unwrap();
        let _ = c.close().await;
        r.filter(|(s, _, _)| s == "streaming")
            .map(|(_, h, p)| (h, p))
    }
}

/// A prepared source with database `shop`, table `items` (100 rows) and a tenant user.
async fn source() -> Node {
    let n = Node::new();
    let mut app = User::new("app", "s3cret-Pass");
    app.databases.push(Database::new("shop"));
    n.dm()
        .prepare(PrepareRequest {
            memory_mb: 256,
            databases: vec![Database::new("shop")],
            users: vec![app],
            ..Default::default()
        })
        .await
        .expect("prepare source");
    n.exec(
        "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL); \
         INSERT INTO items (name) SELECT 'item-' || g FROM generate_series(1, 100) g",
    )
    .await
    .unwrap();
    n
}

/// The replication snapshot of `src` (its context, then a full backup into `store`), as
/// `get_replication_snapshot` makes it, and the backup to restore.
async fn snapshot(src: &Node, store: &std::path::Path) -> (ReplicaSnapshot, RestoreInfo) {
    snapshot_on(src, store, None).await
}

/// [`snapshot`], incremental on `parent` when given.
async fn snapshot_on(
    src: &Node,
    store: &std::path::Path,
    parent: Option<&RestoreInfo>,
) -> (ReplicaSnapshot, RestoreInfo) {
    let ctx = src.dm().replica_context().await.expect("replica context");
    let id = format!("snap-{}", rand::thread_rng().gen::<u32>());
    let mut metadata = Metadata::new();
    metadata.insert("datastore".into(), "postgresql".into());
    metadata.insert("datastore_version".into(), "15".into());
    let job = BackupJob {
        id: id.clone(),
        store: Arc::new(LocalStore::new(store).unwrap()),
        container: "snapshots".into(),
        metadata,
        parent: parent.map(|p| ParentInfo {
            location: p.location.clone(),
            checksum: p.checksum.clone(),
        }),
    };
    let stored = src.dm().create_backup(&job).await.expect("snapshot backup");
    let snap = ReplicaSnapshot {
        dataset: serde_json::json!({"datastore_manager": "postgresql", "snapshot_id": id}),
        replication_strategy: src.dm().replication_strategy().map(str::to_owned),
        master: ctx.master,
        replica_conf: ctx.replica_conf,
    };
    let restore = RestoreInfo {
        id: Some(id),
        location: stored.location,
        checksum: Some(stored.checksum),
        kind: None,
    };
    (snap, restore)
}

/// A replica prepared from `snap`; the databases and users the request names are not
/// created (a replica has the source's).
async fn replica(snap: &ReplicaSnapshot, restore: &RestoreInfo) -> Node {
    let n = Node::new();
    n.dm()
        .prepare(PrepareRequest {
            memory_mb: 256,
            backup_info: Some(restore.clone()),
            snapshot: Some(snap.clone()),
            databases: vec![Database::new("extra")],
            users: vec![User::new("late", "l4te-Pass")],
            ..Default::default()
        })
        .await
        .expect("prepare replica");
    n
}

fn assert_read_only(r: Result<(), sqlx::Error>, what: &str) {
    let e = r.expect_err(what).to_string();
    assert!(e.contains("read-only"), "{what}: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_from_snapshot_follows_refuses_writes_and_detaches() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = tempfile::tempdir().unwrap();
    let src = source().await;
    assert_eq!(src.dm().replication_strategy(), Some(STRATEGY));

    // The replication account is the same on every call and hidden from tenants.
    let c1 = src.dm().replica_context().await.unwrap();
    let c2 = src.dm().replica_context().await.unwrap();
    assert_eq!(c1, c2);
    let user = c1.replica_conf.replication_user.clone().unwrap();
    assert_eq!(user.name, "replicator");
    assert!(user.password.len() >= 16);
    assert_eq!(c1.master.host, src.inst.addr.to_string());
    assert_eq!(c1.master.port, src.inst.config.port);
    let kept = src
        .mgr
        .layout()
        .mount
        .join(".guestagent/replication_user.json");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let users = src.dm().list_users(None, None, false).await.unwrap();
    let names: Vec<&str> = users.items.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, vec!["app"]);
    assert!(matches!(
        src.dm()
            .create_users(vec![User::new("replicator", "x-Pass-1")])
            .await,
        Err(GuestError::Reserved(_))
    ));
    assert!(src.dm().get_user("replicator", None).await.is_err());

    let (snap, restore) = snapshot(&src, store.path()).await;
    // Written after the snapshot: reaches the replica through streaming only.
    src.exec("INSERT INTO items (name) VALUES ('after-snapshot')")
        .await
        .unwrap();
    let rep = replica(&snap, &restore).await;
    assert_eq!(rep.dm().status().await, ServiceStatus::Healthy);
    assert!(rep.in_recovery().await);
    assert_eq!(
        rep.streaming_from().await,
        Some((src.inst.addr.to_string(), i32::from(src.inst.config.port)))
    );
    rep.wait_item("after-snapshot", Duration::from_secs(30))
        .await;
    assert_eq!(rep.count().await, 101);
    // The tenant's user came with the data; the replication account stays hidden.
    let users = rep.dm().list_users(None, None, false).await.unwrap();
    assert_eq!(users.items.len(), 1, "{:?}", users.items);
    assert_eq!(users.items[0].name, "app");
    let dbs = rep.dm().list_databases(None, None, false).await.unwrap();
    let dbs: Vec<&str> = dbs.items.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(dbs, vec!["shop"]);

    // New writes on the source reach the replica; the replica refuses writes.
    src.exec("INSERT INTO items (name) VALUES ('live-1')")
        .await
        .unwrap();
    let lsn = src.dm().get_latest_txn_id().await.unwrap();
    assert!(lsn.contains('/'), "{lsn}");
    rep.dm().wait_for_txn(&lsn).await.expect("wait_for_txn");
    assert!(rep.has_item("live-1").await);
    assert_read_only(
        rep.exec("INSERT INTO items (name) VALUES ('on-replica')")
            .await,
        "a replica takes a write",
    );
    let (sysid_src, _) = src.dm().get_last_txn().await.unwrap();
    let (sysid_rep, at) = rep.dm().get_last_txn().await.unwrap();
    assert_eq!(sysid_src, sysid_rep);
    assert!(at > 0);
    assert!(matches!(
        rep.dm().wait_for_txn("nonsense").await,
        Err(GuestError::InvalidValue(_))
    ));
    // A replica hands out no context (no cascading).
    assert!(rep.dm().replica_context().await.is_err());
    // A replica survives a restart as a replica.
    rep.dm().restart().await.unwrap();
    assert!(rep.in_recovery().await);
    src.exec("INSERT INTO items (name) VALUES ('live-2')")
        .await
        .unwrap();
    rep.wait_item("live-2", Duration::from_secs(30)).await;
    rep.dm().make_read_only(true).await.unwrap();

    // Detach: writable, no longer following, and it stays so across a restart.
    let r = rep.dm().detach_replica(false).await.unwrap();
    assert_eq!(r, serde_json::json!({"replication_user": null}));
    assert!(!rep.in_recovery().await);
    rep.exec("INSERT INTO items (name) VALUES ('on-detached')")
        .await
        .expect("a detached replica takes writes");
    src.exec("INSERT INTO items (name) VALUES ('after-detach')")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!rep.has_item("after-detach").await);
    rep.dm().restart().await.unwrap();
    assert!(!rep.in_recovery().await);
    assert!(rep.streaming_from().await.is_none());
    rep.exec("INSERT INTO items (name) VALUES ('after-restart')")
        .await
        .unwrap();
    assert!(!src.has_item("on-detached").await);
    // The detach is idempotent.
    rep.dm().detach_replica(false).await.unwrap();
}

/// Source and two replicas of it, with `live-0` everywhere.
async fn replication_set(store: &std::path::Path) -> (Node, Node, Node) {
    let src = source().await;
    let (snap, restore) = snapshot(&src, store).await;
    let r1 = replica(&snap, &restore).await;
    let r2 = replica(&snap, &restore).await;
    src.exec("INSERT INTO items (name) VALUES ('live-0')")
        .await
        .unwrap();
    r1.wait_item("live-0", Duration::from_secs(30)).await;
    r2.wait_item("live-0", Duration::from_secs(30)).await;
    (src, r1, r2)
}

fn context_user_password(ctx: &ReplicaContext) -> String {
    ctx.replica_conf
        .replication_user
        .as_ref()
        .unwrap()
        .password
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_promotes_a_replica_and_rewinds_the_old_source() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = tempfile::tempdir().unwrap();
    let (src, cand, other) = replication_set(store.path()).await;
    let src_ctx = src.dm().replica_context().await.unwrap();

    // The task manager's order (promote to replica source).
    src.exec("INSERT INTO items (name) VALUES ('before-switch')")
        .await
        .unwrap();
    src.dm().make_read_only(true).await.unwrap();
    assert_read_only(
        src.exec("INSERT INTO items (name) VALUES ('read-only')")
            .await,
        "a source made read-only takes a write",
    );
    let latest = src.dm().get_latest_txn_id().await.unwrap();
    cand.dm().wait_for_txn(&latest).await.unwrap();
    assert!(cand.has_item("before-switch").await);
    cand.dm().detach_replica(true).await.unwrap();
    // Detached for a promotion: promoted by enable_as_master, not before.
    assert!(cand.in_recovery().await);
    cand.dm().enable_as_master().await.unwrap();
    assert!(!cand.in_recovery().await);
    cand.dm().make_read_only(false).await.unwrap();
    let ctx = cand.dm().replica_context().await.unwrap();
    assert_eq!(ctx.master.host, cand.inst.addr.to_string());
    // The account came with the data: the same one serves the whole set.
    assert_eq!(context_user_password(&ctx), context_user_password(&src_ctx));

    other.dm().detach_replica(true).await.unwrap();
    other.dm().attach_replica(&ctx, true).await.unwrap();
    assert_eq!(
        other.streaming_from().await,
        Some((cand.inst.addr.to_string(), i32::from(cand.inst.config.port)))
    );

    // The old source follows the candidate (its own WAL after the promotion, at least its
    // shutdown checkpoint, is rewound away), then is demoted (nothing left to do).
    src.dm().attach_replica(&ctx, false).await.unwrap();
    src.dm().demote_replication_master().await.unwrap();
    assert!(src.in_recovery().await);
    assert!(!src
        .inst
        .mount()
        .join(".guestagent/replication_attach_writable")
        .exists());
    assert_eq!(
        src.streaming_from().await,
        Some((cand.inst.addr.to_string(), i32::from(cand.inst.config.port)))
    );
    assert_eq!(src.dm().status().await, ServiceStatus::Healthy);

    cand.exec("INSERT INTO items (name) VALUES ('after-switch')")
        .await
        .expect("the new source takes writes");
    other
        .wait_item("after-switch", Duration::from_secs(30))
        .await;
    src.wait_item("after-switch", Duration::from_secs(30)).await;
    assert_read_only(
        src.exec("INSERT INTO items (name) VALUES ('old-source')")
            .await,
        "the old source takes a write",
    );
    assert_read_only(
        other
            .exec("INSERT INTO items (name) VALUES ('other')")
            .await,
        "the other replica takes a write",
    );
    let latest = cand.dm().get_latest_txn_id().await.unwrap();
    src.dm().wait_for_txn(&latest).await.unwrap();
    other.dm().wait_for_txn(&latest).await.unwrap();
    let (a, _) = src.dm().get_last_txn().await.unwrap();
    let (b, _) = other.dm().get_last_txn().await.unwrap();
    let (c, _) = cand.dm().get_last_txn().await.unwrap();
    assert!(a == b && b == c);
    assert_eq!(src.count().await, cand.count().await);

    // The old source, now a replica, survives a restart as one.
    src.dm().restart().await.unwrap();
    assert!(src.in_recovery().await);
    cand.exec("INSERT INTO items (name) VALUES ('after-restart')")
        .await
        .unwrap();
    src.wait_item("after-restart", Duration::from_secs(30))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_promotes_the_most_advanced_replica() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = tempfile::tempdir().unwrap();
    let (src, r1, r2) = replication_set(store.path()).await;
    src.exec("INSERT INTO items (name) SELECT 'bulk-' || g FROM generate_series(1, 500) g")
        .await
        .unwrap();
    let latest = src.dm().get_latest_txn_id().await.unwrap();
    r1.dm().wait_for_txn(&latest).await.unwrap();
    r2.dm().wait_for_txn(&latest).await.unwrap();

    // The source is gone.
    src.inst.kill_server_hard();
    let (u1, t1) = r1.dm().get_last_txn().await.unwrap();
    let (u2, t2) = r2.dm().get_last_txn().await.unwrap();
    assert_eq!(u1, u2, "both replicas follow the same cluster");
    assert!(t1 > 0 && t2 > 0);
    let (cand, other) = if t1 >= t2 { (&r1, &r2) } else { (&r2, &r1) };

    cand.dm().detach_replica(true).await.unwrap();
    cand.dm().enable_as_master().await.unwrap();
    cand.dm().make_read_only(false).await.unwrap();
    let ctx = cand.dm().replica_context().await.unwrap();
    other.dm().attach_replica(&ctx, true).await.unwrap();
    assert_eq!(
        other.streaming_from().await,
        Some((cand.inst.addr.to_string(), i32::from(cand.inst.config.port)))
    );
    cand.exec("INSERT INTO items (name) VALUES ('after-failover')")
        .await
        .unwrap();
    other
        .wait_item("after-failover", Duration::from_secs(30))
        .await;
    assert_eq!(other.count().await, 602);
    assert_read_only(
        other.exec("INSERT INTO items (name) VALUES ('x')").await,
        "the other replica takes a write",
    );

    // The old source comes back (it crashed): it is rewound and follows the new one.
    src.dm().attach_replica(&ctx, true).await.unwrap();
    assert!(src.in_recovery().await);
    src.wait_item("after-failover", Duration::from_secs(30))
        .await;
    assert_eq!(src.count().await, 602);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_prepare_fails_clearly_when_the_source_is_unreachable() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = tempfile::tempdir().unwrap();
    let src = source().await;
    let (mut snap, restore) = snapshot(&src, store.path()).await;
    // A wrong password: the replica restores and starts but can never stream.
    snap.replica_conf
        .replication_user
        .as_mut()
        .unwrap()
        .password = "wrong-password".into();
    let n = Node::with_wait(Duration::from_secs(20));
    let t0 = Instant::now();
    let r = n
        .dm()
        .prepare(PrepareRequest {
            memory_mb: 256,
            backup_info: Some(restore.clone()),
            snapshot: Some(snap.clone()),
            ..Default::default()
        })
        .await;
    let e = r
        .expect_err("a replica that cannot stream is not prepared")
        .to_string();
    assert!(e.contains("not streaming from"), "{e}");
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    assert_eq!(n.dm().status().await, ServiceStatus::Failed);
    assert!(!n.dm().is_prepared());

    // A snapshot of another strategy is refused before anything is done.
    let m = Node::new();
    snap.replication_strategy = Some("MariaDBGTIDReplication".into());
    let e = m
        .dm()
        .prepare(PrepareRequest {
            memory_mb: 256,
            backup_info: Some(restore),
            snapshot: Some(snap),
            ..Default::default()
        })
        .await
        .expect_err("another strategy");
    assert!(e.to_string().contains("MariaDBGTIDReplication"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_source_pg_rewind_cannot_handle_is_reseeded() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = tempfile::tempdir().unwrap();
    let src = source().await;
    // The source ran without wal_log_hints (and has no data checksums): pg_rewind refuses
    // its data directory.
    let mut o = trove_guestagent::manager::Overrides::new();
    o.insert("wal_log_hints".into(), false.into());
    src.dm().update_overrides(o, false).await.unwrap();
    src.dm().restart().await.unwrap();
    let (snap, restore) = snapshot(&src, store.path()).await;
    let cand = replica(&snap, &restore).await;
    src.exec("INSERT INTO items (name) VALUES ('live-0')")
        .await
        .unwrap();
    let latest = src.dm().get_latest_txn_id().await.unwrap();
    cand.dm().wait_for_txn(&latest).await.unwrap();
    cand.dm().detach_replica(true).await.unwrap();
    cand.dm().enable_as_master().await.unwrap();
    let ctx = cand.dm().replica_context().await.unwrap();
    // The old source wrote after the promotion: it diverged.
    src.exec("INSERT INTO items (name) VALUES ('lost-on-old-source')")
        .await
        .unwrap();
    src.dm().demote_replication_master().await.unwrap();
    assert_read_only(
        src.exec("INSERT INTO items (name) VALUES ('demoted')")
            .await,
        "a demoted source takes a write",
    );
    src.dm().attach_replica(&ctx, true).await.unwrap();
    assert!(src.in_recovery().await);
    assert!(!src.has_item("lost-on-old-source").await);
    cand.exec("INSERT INTO items (name) VALUES ('after-reseed')")
        .await
        .unwrap();
    src.wait_item("after-reseed", Duration::from_secs(30)).await;
    assert_eq!(src.count().await, cand.count().await);
    assert!(!src.mgr.layout().data_root.join("pgdata.reseed").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_promoted_on_their_own_are_reseeded_when_attached() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = tempfile::tempdir().unwrap();
    let (_src, r1, r2) = replication_set(store.path()).await;
    // Both detached (promoted) from the same source: each starts its own timeline with the
    // same number, and each takes writes of its own.
    r1.dm().detach_replica(false).await.unwrap();
    r2.dm().detach_replica(false).await.unwrap();
    assert!(!r1.in_recovery().await && !r2.in_recovery().await);
    r1.exec("INSERT INTO items (name) VALUES ('only-r1')")
        .await
        .unwrap();
    r2.exec("INSERT INTO items (name) SELECT 'only-r2-' || g FROM generate_series(1, 200) g")
        .await
        .unwrap();
    r1.dm().enable_as_master().await.unwrap();
    let ctx = r1.dm().replica_context().await.unwrap();
    r2.dm().attach_replica(&ctx, true).await.unwrap();
    assert!(r2.in_recovery().await);
    assert_eq!(
        r2.streaming_from().await,
        Some((r1.inst.addr.to_string(), i32::from(r1.inst.config.port)))
    );
    assert!(r2.has_item("only-r1").await);
    assert!(!r2.has_item("only-r2-1").await);
    r1.exec("INSERT INTO items (name) VALUES ('after-attach')")
        .await
        .unwrap();
    r2.wait_item("after-attach", Duration::from_secs(30)).await;
    assert_eq!(r2.count().await, r1.count().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_from_an_incremental_snapshot_replays_its_wal_then_streams() {
    if !can_run() {
        return;
    }
    init_logging();
    let store = tempfile::tempdir().unwrap();
    let src = source().await;
    // The source's last backup is the parent of the replication snapshot.
    let (_, full) = snapshot(&src, store.path()).await;
    for i in 0..3 {
        src.exec(&format!(
            "INSERT INTO items (name) SELECT 'between-{i}-' || g FROM generate_series(1, 300) g; \
             SELECT pg_switch_wal()"
        ))
        .await
        .unwrap();
    }
    let (snap, inc) = snapshot_on(&src, store.path(), Some(&full)).await;
    src.exec("INSERT INTO items (name) VALUES ('after-snapshot')")
        .await
        .unwrap();
    let rep = replica(&snap, &inc).await;
    rep.wait_item("after-snapshot", Duration::from_secs(30))
        .await;
    assert_eq!(rep.count().await, src.count().await);
    assert!(rep.in_recovery().await);
    // The incremental's WAL came from the restored objects, and is gone once streaming.
    let log = std::fs::read_to_string(rep.inst.mount().join("log/server.log")).unwrap();
    assert!(log.contains("restored log file"), "{log}");
    assert!(!rep.inst.mount().join("data/restore_wal").exists());
    assert!(!rep.inst.mount().join("etc/conf.d/05-restore.conf").exists());
    // Restarted, it still follows.
    rep.dm().restart().await.unwrap();
    src.exec("INSERT INTO items (name) VALUES ('after-restart')")
        .await
        .unwrap();
    rep.wait_item("after-restart", Duration::from_secs(30))
        .await;
}
