//! Replication end to end, for MariaDB (GTID) and PostgreSQL (streaming): the distributed
//! services over the real RabbitMQ, real `trove-guestagent` processes running real
//! database servers, driven by the real `openstack database` CLI and checked with the real
//! `mariadb` / `psql` clients.
//!
//! One scenario per datastore: a source with rows; two replicas made with
//! `instance create --replica-of --replica-count 2` have those rows and follow new ones,
//! and refuse writes; `instance promote` switches the source over (the old source follows
//! the new one); the new source is then killed (agent and server) and, once its heartbeat
//! has expired, `instance eject` fails over to the replica that has the most of it; the
//! last replica is detached and takes writes of its own. Deleting a source that still has
//! replicas is refused. Everything is deleted and nothing is left on the host.
//!
//! Needs root, RabbitMQ with the management plugin, MariaDB on 127.0.0.1:3306 (the control
//! database) and the client virtualenv, like the other end-to-end tests.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{agent_processes, Cluster, Options};
use common::{ip_of, mariadb, psql, quota_in_use, Tenant, PROJECT};
use serde_json::Value;

const ACTIVE: Duration = Duration::from_secs(240);

#[derive(Clone, Copy)]
enum Store {
    MariaDb,
    Postgres,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::MariaDb => "mariadb",
            Store::Postgres => "postgresql",
        }
    }

    /// Runs `sql` in database `app` as the tenant's user `app` on `host`.
    async fn sql(self, host: &str, sql: &str) -> Result<String, String> {
        match self {
            Store::MariaDb => mariadb(host, "app", "Secret123", "app", sql).await,
            Store::Postgres => psql(host, "app", "Secret123", "app", sql).await,
        }
    }

    /// The number of rows of `t` on `host` (None while the server does not answer).
    async fn count(self, host: &str) -> Option<i64> {
        self.sql(host, "SELECT count(*) FROM t")
            .await
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Inserts the values `from..=to` into `t` on `host`.
    async fn insert(self, host: &str, from: i64, to: i64) -> Result<String, String> {
        let values: Vec<String> = (from..=to).map(|i| format!("({i})")).collect();
        self.sql(host, &format!("INSERT INTO t VALUES {}", values.join(",")))
            .await
    }
}

/// Waits until `host` has `want` rows in `t`.
async fn wait_rows(store: Store, host: &str, want: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = store.count(host).await;
        if n == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} ({host}) has {n:?} rows, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `replica_of` of an instance as the CLI shows it (empty when none).
async fn replica_of(t: &Tenant, id: &str) -> String {
    let shown = t.osc_json(&["database", "instance", "show", id]).await;
    shown["replica_of"].as_str().unwrap_or_default().to_owned()
}

/// `replicas` of an instance as the CLI shows it.
async fn replicas(t: &Tenant, id: &str) -> Vec<String> {
    let shown = t.osc_json(&["database", "instance", "show", id]).await;
    let mut r: Vec<String> = shown["replicas"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    r.sort();
    r
}

/// Waits until each instance is ACTIVE with no task (PROMOTE, EJECT, DETACH passed).
async fn wait_all_active(c: &Cluster, t: &Tenant, ids: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for id in ids {
        out.push(c.wait_active(t, id, ACTIVE).await);
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn scenario(store: Store, first_address: &str) {
    let _broker = trove_rpc::testing::broker_lock_shared().unwrap();
    let mut opts = Options::new(first_address);
    opts.report_interval = 2;
    opts.extra_default = "agent_heartbeat_expiry = 8\n".into();
    let (cluster, t) = Cluster::start(&opts).await;
    let state = cluster.state_dir();
    let (_, ds) = t.get(&format!("datastores/{}", store.name())).await;
    let version = ds["datastore"]["versions"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no version: {ds}"))
        .to_owned();

    // The source, with rows.
    let created = t
        .osc_json(&[
            "database",
            "instance",
            "create",
            "src",
            "--flavor",
            "1",
            "--size",
            "1",
            "--datastore",
            store.name(),
            "--datastore-version",
            &version,
            "--databases",
            "app",
            "--users",
            "app:Secret123",
        ])
        .await;
    let src = created["id"].as_str().unwrap().to_owned();
    let src_ip = ip_of(&cluster.wait_active(&t, &src, ACTIVE).await);
    store
        .sql(&src_ip, "CREATE TABLE t (x INT PRIMARY KEY)")
        .await
        .expect("create table");
    store.insert(&src_ip, 1, 3).await.expect("insert");

    // Two replicas.
    let first = t
        .osc_json(&[
            "database",
            "instance",
            "create",
            "rep",
            "--replica-of",
            "src",
            "--replica-count",
            "2",
        ])
        .await;
    assert_eq!(first["name"], "rep-1", "{first}");
    assert_eq!(first["replica_of"], src.as_str(), "{first}");
    let (_, list) = t.get("instances").await;
    let id_of = |name: &str| -> String {
        list["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (r1, r2) = (id_of("rep-1"), id_of("rep-2"));
    let shown = wait_all_active(&cluster, &t, &[&r1, &r2]).await;
    let (r1_ip, r2_ip) = (ip_of(&shown[0]), ip_of(&shown[1]));
    // The replication snapshot served its purpose and is gone.
    let (_, backups) = t.get("backups").await;
    assert_eq!(backups["backups"], serde_json::json!([]), "{backups}");

    // They have the rows, follow new ones, refuse writes.
    for ip in [&r1_ip, &r2_ip] {
        wait_rows(store, ip, 3, "replica after create").await;
    }
    store.insert(&src_ip, 4, 5).await.expect("insert on source");
    for ip in [&r1_ip, &r2_ip] {
        wait_rows(store, ip, 5, "replica following").await;
    }
    let refused = store.insert(&r1_ip, 100, 100).await;
    assert!(refused.is_err(), "a replica took a write: {refused:?}");
    assert_eq!(
        replicas(&t, &src).await,
        sorted(vec![r1.clone(), r2.clone()])
    );
    assert_eq!(replica_of(&t, &r1).await, src);
    // A source with replicas cannot be deleted.
    let (ok, out) = t.osc(&["database", "instance", "delete", "src"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("Detach replicas before deleting replica source"),
        "{out}"
    );

    // Switchover to rep-1: the old source and rep-2 follow it.
    t.osc_ok(&["database", "instance", "promote", "rep-1"])
        .await;
    wait_all_active(&cluster, &t, &[&src, &r1, &r2]).await;
    assert_eq!(replica_of(&t, &r1).await, "");
    assert_eq!(replica_of(&t, &src).await, r1);
    assert_eq!(replica_of(&t, &r2).await, r1);
    assert_eq!(
        replicas(&t, &r1).await,
        sorted(vec![src.clone(), r2.clone()])
    );
    store
        .insert(&r1_ip, 6, 7)
        .await
        .expect("insert on the new source");
    for ip in [&src_ip, &r2_ip] {
        wait_rows(store, ip, 7, "following the new source").await;
    }
    let refused = store.insert(&src_ip, 100, 100).await;
    assert!(refused.is_err(), "the old source took a write: {refused:?}");

    // Failover: rep-1 dies (agent and server); once its heartbeat has expired, eject.
    let eject_early = t.osc(&["database", "instance", "eject", "rep-1"]).await;
    assert!(!eject_early.0, "ejected a live source: {}", eject_early.1);
    assert!(
        eject_early.1.contains("current heartbeat"),
        "{}",
        eject_early.1
    );
    for line in common::processes_mentioning(&r1) {
        let pid = line.split(':').next().unwrap_or_default().trim().to_owned();
        let _ = Command::new("kill").args(["-9", &pid]).status();
    }
    assert!(agent_processes(&r1).is_empty());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let inst = t.instance(&r1).await.unwrap();
        if inst["operating_status"] == "ERROR" {
            break;
        }
        assert!(Instant::now() < deadline, "heartbeat never expired: {inst}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    t.osc_ok(&["database", "instance", "eject", "rep-1"]).await;
    // The survivors settle: one is the source, the other follows it.
    let deadline = Instant::now() + ACTIVE;
    loop {
        let a = t.instance(&src).await.unwrap();
        let b = t.instance(&r2).await.unwrap();
        let d = t.instance(&r1).await.unwrap();
        if a["status"] == "ACTIVE" && b["status"] == "ACTIVE" && d["status"] != "EJECT" {
            break;
        }
        assert!(
            a["status"] != "ERROR" && b["status"] != "ERROR",
            "ejection failed: {a} {b}\n{}",
            cluster.logs(&r2)
        );
        assert!(
            Instant::now() < deadline,
            "ejection never ended: {a} {b} {d}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (new_source, follower, new_ip, follower_ip) = if replica_of(&t, &src).await.is_empty() {
        (src.clone(), r2.clone(), src_ip.clone(), r2_ip.clone())
    } else {
        (r2.clone(), src.clone(), r2_ip.clone(), src_ip.clone())
    };
    assert_eq!(replica_of(&t, &follower).await, new_source);
    assert_eq!(replicas(&t, &new_source).await, vec![follower.clone()]);
    assert!(replicas(&t, &r1).await.is_empty());
    wait_rows(store, &new_ip, 7, "new source after failover").await;
    store
        .insert(&new_ip, 8, 8)
        .await
        .expect("insert after failover");
    wait_rows(store, &follower_ip, 8, "following after failover").await;

    // Detach: the follower becomes standalone and takes writes of its own.
    t.osc_ok(&["database", "instance", "detach", &follower])
        .await;
    wait_all_active(&cluster, &t, &[&follower]).await;
    assert_eq!(replica_of(&t, &follower).await, "");
    assert!(replicas(&t, &new_source).await.is_empty());
    store
        .insert(&follower_ip, 9, 9)
        .await
        .expect("the detached replica takes writes");
    store
        .insert(&new_ip, 10, 10)
        .await
        .expect("insert on source");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.count(&follower_ip).await, Some(9), "still following");
    assert_eq!(store.count(&new_ip).await, Some(9));

    // Everything goes, and nothing is left.
    for id in [&src, &r1, &r2] {
        t.osc_ok(&["database", "instance", "delete", id]).await;
    }
    for id in [&src, &r1, &r2] {
        t.wait_gone(id, Duration::from_secs(90)).await;
        common::wait_no_trace(&state, id, Duration::from_secs(15)).await;
    }
    assert_eq!(quota_in_use(&t, PROJECT, "instances").await, 0);
    assert_eq!(quota_in_use(&t, PROJECT, "volumes").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_replicas_switchover_failover_and_detach() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    scenario(Store::MariaDb, "127.2.15.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_replicas_switchover_failover_and_detach() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    scenario(Store::Postgres, "127.2.16.1").await;
}
