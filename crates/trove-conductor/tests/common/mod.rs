//! Helpers and scenarios shared by the in-memory and the RabbitMQ test binaries: fixtures
//! (instances with and without RPC keys), waiting for the conductor to finish messages, and
//! scenarios written once against any transport and any database backend.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use trove_common::crypto::{encrypt_instance_key, generate_random_key};
use trove_conductor::{ConductorServer, ConductorStats};
use trove_config::Config;
use trove_db::{new_id, Backup, Db, Instance, ServiceStatus};
use trove_rpc::api::{ConductorApi, ConductorRequest};
use trove_rpc::{RpcContext, Transport};

/// `inst_rpc_key_encr_key` of the test configuration (Trove's default).
pub const MASTER_KEY: &str = "emYjgHFqfXNB1NGehAFIUeoyw4V4XwWHEaKP";

/// Sends the conductor's logs to the test output (shown with `--nocapture`).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// A configuration whose conductor consumes `topic`.
pub fn config(topic: &str) -> Config {
    init_logging();
    let mut c = Config::default();
    c.default.conductor_queue = topic.to_owned();
    c.default.inst_rpc_key_encr_key = MASTER_KEY.into();
    c
}

/// A unique topic name.
pub fn unique_topic() -> String {
    format!("trove-conductor-test-{}", uuid::Uuid::new_v4().simple())
}

/// Creates an instance (with a fresh RPC key when `keyed`) and its NEW service status.
/// Returns the id and the plaintext key.
pub async fn add_instance(db: &Db, keyed: bool) -> (String, Option<String>) {
    let id = new_id();
    let key = keyed.then(generate_random_key);
    db.instance_create(&Instance {
        id: id.clone(),
        name: Some("conductor-test".into()),
        tenant_id: Some("project-1".into()),
        encrypted_key: key.as_deref().map(|k| encrypt_instance_key(k, MASTER_KEY)),
        ..Default::default()
    })
    .await
    .expect("create instance");
    db.service_status_create(&id, ServiceStatus::New)
        .await
        .expect("create service status");
    (id, key)
}

/// Creates a NEW backup of `instance_id`.
pub async fn add_backup(db: &Db, instance_id: &str) -> String {
    let id = new_id();
    db.backup_create(&Backup {
        id: id.clone(),
        name: "b1".into(),
        state: "NEW".into(),
        instance_id: Some(instance_id.to_owned()),
        tenant_id: Some("project-1".into()),
        ..Default::default()
    })
    .await
    .expect("create backup");
    id
}

/// Sum of the stats of several servers.
pub fn total(servers: &[&ConductorServer]) -> ConductorStats {
    servers
        .iter()
        .fold(ConductorStats::default(), |mut acc, s| {
            let x = s.conductor().stats();
            acc.received += x.received;
            acc.applied += x.applied;
            acc.stale += x.stale;
            acc.ignored += x.ignored;
            acc.rejected += x.rejected;
            acc.failed += x.failed;
            acc
        })
}

/// Waits until the servers together finished `n` messages; panics after 30 s.
pub async fn wait_received(servers: &[&ConductorServer], n: u64) -> ConductorStats {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = total(servers);
        if t.received >= n {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "conductor finished {} of {n} messages in 30 s: {t:?}",
            t.received
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A heartbeat request with an explicit `sent`.
pub fn heartbeat(instance_id: &str, status: &str, sent: f64) -> ConductorRequest {
    ConductorRequest::Heartbeat {
        instance_id: instance_id.to_owned(),
        payload: json!({ "service_status": status }),
        sent: Some(sent),
    }
}

/// The guest's (empty) context.
pub fn guest_ctx() -> RpcContext {
    RpcContext::default()
}

async fn status(db: &Db, id: &str) -> ServiceStatus {
    db.service_status_get(id)
        .await
        .expect("service status")
        .status()
        .expect("known status")
}

/// Everything one conductor does, through `guest` (the guests' transport) to a conductor
/// served on `server_transport`, on `db`.
pub async fn single_conductor_scenario(
    db: &Db,
    server_transport: &dyn Transport,
    guest: Arc<dyn Transport>,
    topic: &str,
) {
    let cfg = config(topic);
    let server = trove_conductor::start(&cfg, db.clone(), server_transport)
        .await
        .expect("start conductor");
    let servers = [&server];
    let (a, ka) = add_instance(db, true).await;
    let (b, _kb) = add_instance(db, true).await;
    let (c, _) = add_instance(db, false).await;
    let api_a = ConductorApi::new(guest.clone(), topic, &a, ka.clone());
    let mut n = 0u64;
    let base = 1_764_000_000.123_456_f64;

    // A heartbeat changes the row and stamps updated_at.
    let before = db.service_status_get(&a).await.unwrap();
    api_a
        .cast(&guest_ctx(), &heartbeat(&a, "healthy", base))
        .await
        .unwrap();
    n += 1;
    let s = wait_received(&servers, n).await;
    assert_eq!(s.applied, 1, "{s:?}");
    let row = db.service_status_get(&a).await.unwrap();
    assert_eq!(row.status(), Some(ServiceStatus::Healthy));
    assert_eq!(row.status_description, "healthy");
    assert!(row.updated_at >= before.updated_at);
    assert_eq!(
        db.conductor_last_seen(&a, "heartbeat").await.unwrap(),
        Some(base)
    );

    // Out of order (older) and replayed (equal sent): dropped.
    api_a
        .cast(&guest_ctx(), &heartbeat(&a, "shutdown", base - 1.0))
        .await
        .unwrap();
    api_a
        .cast(&guest_ctx(), &heartbeat(&a, "crashed", base))
        .await
        .unwrap();
    n += 2;
    let s = wait_received(&servers, n).await;
    assert_eq!(s.stale, 2, "{s:?}");
    assert_eq!(status(db, &a).await, ServiceStatus::Healthy);
    // One microsecond newer is accepted.
    api_a
        .cast(&guest_ctx(), &heartbeat(&a, "shutdown", base + 0.000_001))
        .await
        .unwrap();
    n += 1;
    wait_received(&servers, n).await;
    assert_eq!(status(db, &a).await, ServiceStatus::Shutdown);

    // Encrypted with another instance's key: B tagged but A's key, then A's key and tag
    // reporting about B. Both rejected; B unchanged.
    let forged_tag = ConductorApi::new(guest.clone(), topic, &b, ka.clone());
    forged_tag
        .cast(&guest_ctx(), &heartbeat(&b, "healthy", base))
        .await
        .unwrap();
    api_a
        .cast(&guest_ctx(), &heartbeat(&b, "healthy", base))
        .await
        .unwrap();
    // Clear text about an instance that has a key: rejected too.
    let clear_b = ConductorApi::new(guest.clone(), topic, &b, None);
    clear_b
        .cast(&guest_ctx(), &heartbeat(&b, "healthy", base))
        .await
        .unwrap();
    // A clear context cannot claim to come from the instance (only a decrypted tag can).
    let claims_b = RpcContext {
        instance_id: Some(b.clone()),
        ..Default::default()
    };
    clear_b
        .cast(&claims_b, &heartbeat(&b, "healthy", base))
        .await
        .unwrap();
    n += 4;
    let s = wait_received(&servers, n).await;
    assert_eq!(s.rejected, 4, "{s:?}");
    assert_eq!(status(db, &b).await, ServiceStatus::New);
    assert_eq!(db.conductor_last_seen(&b, "heartbeat").await.unwrap(), None);

    // An instance without key (NULL encrypted_key) talks in clear; an encrypted message
    // claiming to be from it is rejected.
    let clear_c = ConductorApi::new(guest.clone(), topic, &c, None);
    clear_c
        .cast(&guest_ctx(), &heartbeat(&c, "running", base))
        .await
        .unwrap();
    n += 1;
    wait_received(&servers, n).await;
    assert_eq!(status(db, &c).await, ServiceStatus::Running);
    let tagged_c = ConductorApi::new(guest.clone(), topic, &c, Some(generate_random_key()));
    tagged_c
        .cast(&guest_ctx(), &heartbeat(&c, "shutdown", base + 10.0))
        .await
        .unwrap();
    n += 1;
    let s = wait_received(&servers, n).await;
    assert_eq!(s.rejected, 5, "{s:?}");
    assert_eq!(status(db, &c).await, ServiceStatus::Running);

    // A heartbeat without a status only stamps updated_at (the liveness signal).
    db.service_status_update(&c, ServiceStatus::Running)
        .await
        .unwrap();
    let before = db.service_status_get(&c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    clear_c
        .cast(
            &guest_ctx(),
            &ConductorRequest::Heartbeat {
                instance_id: c.clone(),
                payload: json!({}),
                sent: Some(base + 5.0),
            },
        )
        .await
        .unwrap();
    n += 1;
    wait_received(&servers, n).await;
    let after = db.service_status_get(&c).await.unwrap();
    assert_eq!(after.status(), Some(ServiceStatus::Running));
    assert!(after.updated_at > before.updated_at, "{before:?} {after:?}");

    // An unknown description is an error and writes nothing (not even the last seen).
    clear_c
        .cast(&guest_ctx(), &heartbeat(&c, "sleepy", base + 20.0))
        .await
        .unwrap();
    n += 1;
    let s = wait_received(&servers, n).await;
    assert_eq!(s.failed, 1, "{s:?}");
    assert_eq!(status(db, &c).await, ServiceStatus::Running);
    assert_eq!(
        db.conductor_last_seen(&c, "heartbeat").await.unwrap(),
        Some(base + 5.0)
    );

    // RESTART_REQUIRED is not overwritten by a heartbeat.
    db.service_status_update(&a, ServiceStatus::RestartRequired)
        .await
        .unwrap();
    api_a
        .cast(&guest_ctx(), &heartbeat(&a, "healthy", base + 100.0))
        .await
        .unwrap();
    n += 1;
    let s = wait_received(&servers, n).await;
    assert_eq!(s.ignored, 1, "{s:?}");
    assert_eq!(status(db, &a).await, ServiceStatus::RestartRequired);

    // update_backup: applied, then a stale update dropped, then a newer one applied.
    let bk = add_backup(db, &a).await;
    let upd = |sent: f64, fields: serde_json::Value| {
        let mut args = json!({"instance_id": a, "backup_id": bk, "sent": sent});
        args.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value::<ConductorRequest>(json!({"method": "update_backup", "args": args}))
            .unwrap()
    };
    api_a
        .cast(&guest_ctx(), &upd(base, json!({"state": "BUILDING"})))
        .await
        .unwrap();
    n += 1;
    wait_received(&servers, n).await;
    assert_eq!(db.backup_get(&bk).await.unwrap().state, "BUILDING");
    api_a
        .cast(
            &guest_ctx(),
            &upd(base - 5.0, json!({"state": "FAILED", "size": 9.0})),
        )
        .await
        .unwrap();
    n += 1;
    let s = wait_received(&servers, n).await;
    assert_eq!(s.stale, 3, "{s:?}");
    let got = db.backup_get(&bk).await.unwrap();
    assert_eq!((got.state.as_str(), got.size), ("BUILDING", None));
    api_a
        .cast(
            &guest_ctx(),
            &upd(
                base + 1.0,
                json!({"state": "COMPLETED", "size": 0.25, "checksum": "0123456789abcdef0123456789abcdef",
                       "location": "http://swift/c/o.xbstream.gz.enc", "backup_type": "full", "success": true}),
            ),
        )
        .await
        .unwrap();
    n += 1;
    wait_received(&servers, n).await;
    let got = db.backup_get(&bk).await.unwrap();
    assert_eq!(got.state, "COMPLETED");
    assert_eq!(got.size, Some(0.25));
    assert_eq!(
        got.checksum.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(got.backup_type.as_deref(), Some("full"));
    // A's guest cannot update C's backup.
    let other = add_backup(db, &c).await;
    let steal = serde_json::from_value::<ConductorRequest>(json!({"method": "update_backup",
        "args": {"instance_id": a, "backup_id": other, "sent": base + 2.0, "state": "FAILED"}}))
    .unwrap();
    api_a.cast(&guest_ctx(), &steal).await.unwrap();
    n += 1;
    let s = wait_received(&servers, n).await;
    assert_eq!(s.ignored, 2, "{s:?}");
    assert_eq!(db.backup_get(&other).await.unwrap().state, "NEW");

    // report_root is idempotent.
    let user_ctx = RpcContext {
        user: Some("user-1".into()),
        ..Default::default()
    };
    api_a.report_root(&user_ctx, &a).await.unwrap();
    n += 1;
    wait_received(&servers, n).await;
    let first = db.root_history_get(&a).await.unwrap().expect("root row");
    assert!(first.is_live());
    assert_eq!(first.user.as_deref(), Some("user-1"));
    api_a.report_root(&user_ctx, &a).await.unwrap();
    n += 1;
    let s = wait_received(&servers, n).await;
    assert_eq!(s.ignored, 3, "{s:?}");
    assert_eq!(db.root_history_get(&a).await.unwrap(), Some(first));

    // notify_exc_info records the fault, then refreshes the same row.
    let exc = |message: String| ConductorRequest::NotifyExcInfo {
        serialized_notification: json!({"instance_id": a,
            "notification_classname": "trove.common.notification.DBaaSInstanceCreate"}),
        message,
        exception: json!([
            "Traceback (most recent call last):\n",
            "  boom\n",
            "RuntimeError: x\n"
        ]),
    };
    api_a
        .cast(&guest_ctx(), &exc("e".repeat(300)))
        .await
        .unwrap();
    n += 1;
    wait_received(&servers, n).await;
    let fault = db.instance_fault_get(&a).await.unwrap().expect("fault");
    assert_eq!(fault.message, "e".repeat(255));
    assert_eq!(
        fault.details,
        "Traceback (most recent call last):\n  boom\nRuntimeError: x"
    );
    api_a
        .cast(&guest_ctx(), &exc("second failure".into()))
        .await
        .unwrap();
    // notify_end only logs.
    api_a
        .cast(
            &guest_ctx(),
            &ConductorRequest::NotifyEnd {
                serialized_notification: json!({"instance_id": a,
                    "notification_classname": "trove.common.notification.DBaaSInstanceCreate"}),
                notification_args: json!({}),
            },
        )
        .await
        .unwrap();
    n += 2;
    wait_received(&servers, n).await;
    let again = db.instance_fault_get(&a).await.unwrap().expect("fault");
    assert_eq!(again.id, fault.id);
    assert_eq!(again.message, "second failure");

    let s = server.conductor().stats();
    assert_eq!(
        s,
        ConductorStats {
            received: n,
            applied: 10,
            stale: 3,
            ignored: 3,
            rejected: 5,
            failed: 1
        }
    );
    server.stop().await;
}

/// Two conductors on one topic: both take messages, every message is handled by exactly one
/// of them, and a replay of everything applies nothing (the stale filter is shared).
pub async fn two_conductors_scenario(
    db: &Db,
    transport_1: &dyn Transport,
    transport_2: &dyn Transport,
    guest: Arc<dyn Transport>,
    topic: &str,
) {
    let cfg = config(topic);
    let s1 = trove_conductor::start(&cfg, db.clone(), transport_1)
        .await
        .expect("start conductor 1");
    let s2 = trove_conductor::start(&cfg, db.clone(), transport_2)
        .await
        .expect("start conductor 2");
    let servers = [&s1, &s2];
    const INSTANCES: usize = 6;
    const PER_INSTANCE: usize = 8;
    let statuses = ["running", "healthy", "shutdown", "crashed"];
    let mut guests = Vec::new();
    for _ in 0..INSTANCES {
        let (id, key) = add_instance(db, true).await;
        guests.push((ConductorApi::new(guest.clone(), topic, &id, key), id));
    }
    let base = 1_764_000_000.5_f64;
    let mut sent_all = Vec::new();
    for k in 0..PER_INSTANCE {
        for (api, id) in &guests {
            let req = heartbeat(id, statuses[k % statuses.len()], base + k as f64);
            api.cast(&guest_ctx(), &req).await.unwrap();
            sent_all.push((k, req));
        }
    }
    let total_msgs = (INSTANCES * PER_INSTANCE) as u64;
    let t = wait_received(&servers, total_msgs).await;
    assert_eq!(t.applied + t.stale, total_msgs, "{t:?}");
    assert_eq!((t.rejected, t.failed, t.ignored), (0, 0, 0), "{t:?}");
    let (r1, r2) = (
        s1.conductor().stats().received,
        s2.conductor().stats().received,
    );
    assert!(
        r1 > 0 && r2 > 0,
        "both conductors make progress: {r1} and {r2}"
    );
    for (_, id) in &guests {
        assert_eq!(
            db.conductor_last_seen(id, "heartbeat").await.unwrap(),
            Some(base + (PER_INSTANCE - 1) as f64)
        );
    }
    // Replay everything: nothing is applied a second time, by either conductor.
    let applied_before = t.applied;
    for (api, id) in &guests {
        for (_, req) in sent_all.iter().filter(|(_, r)| match r {
            ConductorRequest::Heartbeat { instance_id, .. } => instance_id == id,
            _ => false,
        }) {
            api.cast(&guest_ctx(), req).await.unwrap();
        }
    }
    let t = wait_received(&servers, 2 * total_msgs).await;
    assert_eq!(t.applied, applied_before, "{t:?}");
    assert_eq!(t.stale, 2 * total_msgs - applied_before, "{t:?}");
    // Nothing is delivered twice: the count stays put.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(total(&servers).received, 2 * total_msgs);
    // A final, newest heartbeat per instance decides the status.
    for (api, id) in &guests {
        api.cast(&guest_ctx(), &heartbeat(id, "healthy", base + 1000.0))
            .await
            .unwrap();
    }
    wait_received(&servers, 2 * total_msgs + INSTANCES as u64).await;
    for (_, id) in &guests {
        assert_eq!(status(db, id).await, ServiceStatus::Healthy);
    }
    s1.stop().await;
    s2.stop().await;
}
