//! Fast tests: the in-memory transport and SQLite. The same scenarios run through RabbitMQ
//! on every backend in `rabbitmq.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use trove_db::testing::TestDb;
use trove_db::{Backend, ServiceStatus};
use trove_rpc::api::{ConductorApi, UpdateBackupFields};
use trove_rpc::{InMemoryTransport, Transport};

#[tokio::test]
async fn conductor_methods_ordering_and_trust() {
    let t = TestDb::new(Backend::Sqlite).await;
    let transport = InMemoryTransport::new();
    single_conductor_scenario(
        t.db(),
        &transport,
        Arc::new(transport.clone()),
        &unique_topic(),
    )
    .await;
}

#[tokio::test]
async fn two_conductors_share_a_topic() {
    let t = TestDb::new(Backend::Sqlite).await;
    let transport = InMemoryTransport::new();
    two_conductors_scenario(
        t.db(),
        &transport,
        &transport,
        Arc::new(transport.clone()),
        &unique_topic(),
    )
    .await;
}

#[tokio::test]
async fn run_serves_until_shutdown() {
    let t = TestDb::new(Backend::Sqlite).await;
    let transport = InMemoryTransport::new();
    let topic = unique_topic();
    let cfg = config(&topic);
    let (id, key) = add_instance(t.db(), true).await;
    // Keep casts sent before the server subscribes.
    transport.declare_topic_queues(&topic, None).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_transport: Arc<dyn Transport> = Arc::new(transport.clone());
    let db = t.db().clone();
    let task = tokio::spawn(async move {
        trove_conductor::run(&cfg, db, server_transport, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let api = ConductorApi::new(Arc::new(transport.clone()), &topic, &id, key);
    api.heartbeat(&guest_ctx(), &id, "healthy").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.db().service_status_get(&id).await.unwrap().status() != Some(ServiceStatus::Healthy) {
        assert!(
            std::time::Instant::now() < deadline,
            "heartbeat not applied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run returns after shutdown")
        .unwrap()
        .expect("run ends without error");
    // After the stop, messages wait in the queue for the next conductor.
    api.heartbeat(&guest_ctx(), &id, "shutdown").await.unwrap();
    assert_eq!(transport.pending(&topic), 1);
}

#[tokio::test]
async fn concurrent_heartbeats_of_one_instance_end_in_the_newest_status() {
    let t = TestDb::new(Backend::Sqlite).await;
    let transport = InMemoryTransport::new();
    let topic = unique_topic();
    let server = trove_conductor::start(&config(&topic), t.db().clone(), &transport)
        .await
        .unwrap();
    let (id, key) = add_instance(t.db(), true).await;
    let api = ConductorApi::new(Arc::new(transport.clone()), &topic, &id, key);
    // 40 heartbeats in a scrambled order; the newest one says "healthy", all others
    // "shutdown". They are handled concurrently, yet the newest must win.
    let base = 1_764_000_000.0_f64;
    let count = 40u64;
    for i in 0..count {
        let k = (i * 17) % count; // a permutation of 0..count
        let status = if k == count - 1 {
            "healthy"
        } else {
            "shutdown"
        };
        api.cast(
            &guest_ctx(),
            &heartbeat(&id, status, base + k as f64 / 1000.0),
        )
        .await
        .unwrap();
    }
    let s = wait_received(&[&server], count).await;
    assert_eq!(s.applied + s.stale, count, "{s:?}");
    assert_eq!(
        t.db().service_status_get(&id).await.unwrap().status(),
        Some(ServiceStatus::Healthy)
    );
    assert_eq!(
        t.db().conductor_last_seen(&id, "heartbeat").await.unwrap(),
        Some(base + (count - 1) as f64 / 1000.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn failed_backup_keeps_the_reason_for_the_tenant() {
    let t = TestDb::new(Backend::Sqlite).await;
    let db = t.db();
    let transport = InMemoryTransport::new();
    let topic = unique_topic();
    let server = trove_conductor::start(&config(&topic), db.clone(), &transport)
        .await
        .expect("start conductor");
    let (id, key) = add_instance(db, true).await;
    let bk = add_backup(db, &id).await;
    let api = ConductorApi::new(Arc::new(transport.clone()), &topic, &id, key);
    let building = UpdateBackupFields {
        state: Some("BUILDING".into()),
        ..Default::default()
    };
    api.update_backup(&guest_ctx(), &id, &bk, building)
        .await
        .unwrap();
    wait_received(&[&server], 1).await;
    let row = db.backup_get(&bk).await.unwrap();
    assert_eq!((row.state.as_str(), row.fault_message), ("BUILDING", None));
    // Each cast is stamped later than the one before (the stale filter).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let reason = "The backup failed: mariadb-backup exited with status 1: Access denied.";
    let failed = UpdateBackupFields {
        state: Some("FAILED".into()),
        success: Some(false),
        fault_message: Some(reason.into()),
        ..Default::default()
    };
    api.update_backup(&guest_ctx(), &id, &bk, failed)
        .await
        .unwrap();
    let s = wait_received(&[&server], 2).await;
    assert_eq!(s.applied, 2, "{s:?}");
    let row = db.backup_get(&bk).await.unwrap();
    assert_eq!(row.state, "FAILED");
    assert_eq!(row.fault_message.as_deref(), Some(reason));
    server.stop().await;
}
