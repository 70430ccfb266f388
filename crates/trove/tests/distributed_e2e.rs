//! End to end in the distributed mode: `trove-api`, `trove-taskmanager` and
//! `trove-conductor` as separate processes over the real RabbitMQ, with MariaDB as the
//! control database; each instance's guest agent is its own `trove-guestagent` process
//! with its own RabbitMQ user. Driven by the real `openstack database` CLI.
//!
//! Needs root, RabbitMQ with the management plugin, MariaDB on 127.0.0.1:3306 and the client
//! virtualenv; the project's test command provides all of them.

mod common;

use std::time::Duration;

use common::cluster::{agent_processes, rabbit_user_exists, Cluster, Options};
use common::{assert_nothing_left, ip_of, mariadb, processes_mentioning};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_processes_over_rabbitmq_build_and_delete_an_instance() {
    if !common::is_root() {
        eprintln!("skipped: needs root for loop devices and mounts");
        return;
    }
    let _broker = trove_rpc::testing::broker_lock_shared().unwrap();
    let (cluster, t) = Cluster::start(&Options::new("127.2.2.1")).await;
    let (_, ds) = t.get("datastores/mariadb").await;
    let version = ds["datastore"]["versions"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    let created = t
        .osc_json(&[
            "database",
            "instance",
            "create",
            "dist1",
            "--flavor",
            "1",
            "--size",
            "1",
            "--datastore",
            "mariadb",
            "--datastore-version",
            &version,
            "--databases",
            "app",
            "--users",
            "app:Secret123",
        ])
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let inst = cluster.wait_active(&t, &id, Duration::from_secs(180)).await;
    let ip = ip_of(&inst);
    mariadb(
        &ip,
        "app",
        "Secret123",
        "app",
        "CREATE TABLE t (x INT); INSERT INTO t VALUES (1)",
    )
    .await
    .expect("app writes");

    // The guest agent is its own process, connected as its own RabbitMQ user.
    assert_eq!(
        agent_processes(&id).len(),
        1,
        "{:?}",
        processes_mentioning(&id)
    );
    let user = format!("guest-{id}");
    assert!(rabbit_user_exists(&user).await, "no RabbitMQ user {user}");
    let guest_conf = std::fs::read_to_string(
        cluster
            .state_dir()
            .join("instances")
            .join(&id)
            .join("conf.d/trove-guestagent.conf"),
    )
    .unwrap();
    assert!(
        guest_conf.contains("debug = true"),
        "operator's guest config copied"
    );
    let loaded = trove_config::Config::from_ini_str("trove-guestagent.conf", &guest_conf)
        .unwrap()
        .config;
    let url = trove_rpc::TransportUrl::parse(loaded.default.transport_url.expose_secret()).unwrap();
    assert_eq!(url.hosts[0].username, user, "{guest_conf}");
    assert_ne!(
        url.hosts[0].password, "guest",
        "the shared credentials reached the guest"
    );

    // A restart of the taskmanager does not touch the running instance.
    let mut cluster = cluster;
    cluster.stop("taskmanager");
    cluster.spawn("taskmanager", env!("CARGO_BIN_EXE_trove-taskmanager"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(agent_processes(&id).len(), 1);

    t.osc_ok(&["database", "instance", "restart", "dist1"])
        .await;
    t.wait_status(&id, "ACTIVE", Duration::from_secs(120)).await;
    let got = mariadb(&ip, "app", "Secret123", "app", "SELECT x FROM t")
        .await
        .unwrap();
    assert_eq!(got.trim(), "1");

    t.osc_ok(&["database", "instance", "delete", "dist1"]).await;
    t.wait_gone(&id, Duration::from_secs(120)).await;
    assert_nothing_left(&cluster.state_dir(), &id, &ip);
    assert!(
        !rabbit_user_exists(&user).await,
        "RabbitMQ user {user} left behind"
    );
    assert!(cluster.log("taskmanager").contains("instance deleted"));
}
