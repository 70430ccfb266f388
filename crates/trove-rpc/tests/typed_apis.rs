//! The typed APIs end to end: taskmanager (encrypted with the taskmanager key), guest
//! (per-instance key, timeouts, error mapping), conductor (guest-side tagging, host-side
//! key lookup). In memory, plus the guest->conductor path through RabbitMQ.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use serde_json::{json, Map, Value};
use trove_common::crypto;
use trove_rpc::api::*;
use trove_rpc::{
    ConductorHostSerializer, Dispatcher, InMemoryTransport, RemoteError, RpcContext, RpcEndpoint,
    SecureSerializer, StaticKeyLookup, Target, Transport, Version,
};

struct Recorder<T> {
    got: Mutex<Vec<(T, RpcContext)>>,
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Self {
            got: Mutex::new(Vec::new()),
        }
    }
}

struct Tm(Arc<Recorder<TaskManagerRequest>>);
#[async_trait]
impl Dispatcher for Tm {
    async fn dispatch(
        &self,
        ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        let req = TaskManagerRequest::decode(method, args)?;
        self.0.got.lock().unwrap().push((req, ctx));
        Ok(Value::Null)
    }
}

struct Guest;
#[async_trait]
impl Dispatcher for Guest {
    async fn dispatch(
        &self,
        _ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        match GuestRequest::decode(method, args)? {
            GuestRequest::ListDatabases { .. } => {
                Ok(json!([[{"_name": "db1", "_character_set": "utf8mb4", "_collate": null}], null]))
            }
            GuestRequest::IsRootEnabled {} => Ok(json!(true)),
            GuestRequest::RpcPing {} => Ok(json!(true)),
            GuestRequest::EnableRoot {} => Err(RemoteError::trove("BadRequest", "root is locked")),
            GuestRequest::Restart {} => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(Value::Null)
            }
            other => Err(RemoteError::no_such_method(&format!("{other:?}"))),
        }
    }
}

struct Cond(Arc<Recorder<ConductorRequest>>);
#[async_trait]
impl Dispatcher for Cond {
    async fn dispatch(
        &self,
        ctx: RpcContext,
        method: &str,
        args: Map<String, Value>,
    ) -> Result<Value, RemoteError> {
        let req = ConductorRequest::decode(method, args)?;
        self.0.got.lock().unwrap().push((req, ctx));
        Ok(Value::Null)
    }
}

#[tokio::test]
async fn taskmanager_api_encrypted() {
    let t: Arc<dyn Transport> = Arc::new(InMemoryTransport::new());
    let key = "bzH6y0SGmjuoY0FNSTptrhgieGXNDX6PIhvz";
    let rec = Arc::new(Recorder::default());
    let ep = RpcEndpoint::new(
        Version::new(1, 0),
        Arc::new(SecureSerializer::new(Some(key.into()))),
        Arc::new(Tm(rec.clone())),
    );
    let h = t
        .serve(&Target::server(TASKMANAGER_TOPIC, "0.0.0.0"), Arc::new(ep))
        .await
        .unwrap();
    let api = TaskManagerApi::new(t.clone(), TASKMANAGER_TOPIC, Some(key.into()));
    api.restart(&ctx(), "inst-1").await.unwrap();
    api.resize_volume(&ctx(), "inst-1", 10).await.unwrap();
    assert!(eventually(5, || rec.got.lock().unwrap().len() == 2).await);
    let got = rec.got.lock().unwrap().clone();
    assert_eq!(
        got[0].0,
        TaskManagerRequest::Restart {
            instance_id: "inst-1".into()
        }
    );
    assert_eq!(
        got[1].0,
        TaskManagerRequest::ResizeVolume {
            new_size: 10,
            instance_id: "inst-1".into()
        }
    );
    assert_eq!(got[0].1.user.as_deref(), Some("alice"));
    h.stop().await;
}

#[tokio::test]
async fn guest_api_calls_timeouts_and_errors() {
    let t: Arc<dyn Transport> = Arc::new(InMemoryTransport::new());
    let id = "8f0e7c1a-1111-2222-3333-444455556666";
    let key = crypto::generate_random_key();
    let ep = RpcEndpoint::new(
        Version::new(1, 3),
        Arc::new(SecureSerializer::new(Some(key.clone()))),
        Arc::new(Guest),
    );
    let h = t
        .serve(&Target::server(guest_topic(id), id), Arc::new(ep))
        .await
        .unwrap();
    let timeouts = GuestTimeouts {
        low: Duration::from_secs(5),
        high: Duration::from_millis(500),
        snapshot: Duration::from_secs(5),
    };
    let g = GuestApi::new(
        t.clone(),
        id,
        Some(key.clone()),
        timeouts,
        Version::new(1, 3),
    );
    let (dbs, marker) = g.list_databases(&ctx(), None, None, false).await.unwrap();
    assert_eq!(dbs[0].name, "db1");
    assert_eq!(marker, None);
    assert!(g.is_root_enabled(&ctx()).await.unwrap());
    let e = g.enable_root(&ctx()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "An error occurred communicating with the guest: root is locked."
    );
    let e = g.restart(&ctx()).await.unwrap_err();
    assert!(
        matches!(e, GuestError::Timeout(_)),
        "high timeout applies to restart: {e}"
    );
    assert_eq!(
        e.to_string(),
        "Timeout trying to connect to the Guest Agent."
    );
    // Another guest's key cannot talk to this guest.
    let other = GuestApi::new(
        t.clone(),
        id,
        Some(crypto::generate_random_key()),
        timeouts,
        Version::new(1, 3),
    );
    assert!(
        matches!(other.rpc_ping(&ctx()).await.unwrap_err(), GuestError::Remote(r) if r.class == "DecryptionError")
    );
    h.stop().await;
}

#[tokio::test]
async fn guest_prepare_is_queued_before_the_agent_starts() {
    let mem = InMemoryTransport::new();
    let t: Arc<dyn Transport> = Arc::new(mem.clone());
    let id = "inst-prep";
    let g = GuestApi::new(
        t.clone(),
        id,
        None,
        GuestTimeouts::default(),
        Version::new(1, 3),
    );
    let prepare = PrepareArgs {
        packages: None,
        databases: vec![],
        memory_mb: 512,
        users: vec![],
        device_path: Some("/dev/vdb".into()),
        mount_point: Some("/var/lib/mysql".into()),
        backup_info: None,
        config_contents: Some("[mysqld]".into()),
        root_password: None,
        overrides: None,
        cluster_config: None,
        snapshot: None,
        modules: None,
        ds_version: Some("10.11".into()),
    };
    g.prepare(&ctx(), prepare).await.unwrap();
    assert_eq!(mem.pending(&guest_topic(id)), 1);
}

async fn conductor_round_trip(t: Arc<dyn Transport>, topic: &str) {
    let id = "inst-42";
    let key = crypto::generate_random_key();
    let rec = Arc::new(Recorder::default());
    let lookup = StaticKeyLookup::new([(id.to_string(), key.clone())]);
    let ep = RpcEndpoint::new(
        Version::new(1, 0),
        Arc::new(ConductorHostSerializer::new(Arc::new(lookup))),
        Arc::new(Cond(rec.clone())),
    );
    let h = t
        .serve(&Target::server(topic, "0.0.0.0"), Arc::new(ep))
        .await
        .unwrap();
    let guest_side = ConductorApi::new(t.clone(), topic, id, Some(key));
    guest_side.heartbeat(&ctx(), id, "healthy").await.unwrap();
    let fields = UpdateBackupFields {
        state: Some("COMPLETED".into()),
        size: Some(0.5),
        ..Default::default()
    };
    guest_side
        .update_backup(&ctx(), id, "bk-1", fields)
        .await
        .unwrap();
    // The taskmanager's clear casts pass through the same server.
    ConductorApi::new(t.clone(), topic, "controller", None)
        .report_root(&ctx(), id)
        .await
        .unwrap();
    // A guest with the wrong key is rejected.
    ConductorApi::new(t.clone(), topic, id, Some("wrong".into()))
        .heartbeat(&ctx(), id, "crashed")
        .await
        .unwrap();
    assert!(eventually(10, || rec.got.lock().unwrap().len() >= 3).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rec.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    match &got[0].0 {
        ConductorRequest::Heartbeat {
            instance_id,
            payload,
            sent,
        } => {
            assert_eq!(instance_id, id);
            assert_eq!(payload, &json!({"service_status": "healthy"}));
            assert!(sent.unwrap() > 1.7e9);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        got[0].1.instance_id.as_deref(),
        Some(id),
        "context tagged by csz-instance-id"
    );
    assert!(
        matches!(&got[1].0, ConductorRequest::UpdateBackup { fields, .. } if fields.state.as_deref() == Some("COMPLETED"))
    );
    assert!(matches!(&got[2].0, ConductorRequest::ReportRoot { .. }));
    h.stop().await;
}

#[tokio::test]
async fn conductor_api_in_memory() {
    conductor_round_trip(Arc::new(InMemoryTransport::new()), CONDUCTOR_TOPIC).await;
}

#[tokio::test]
async fn conductor_api_through_rabbitmq() {
    let _lock = shared_broker_lock();
    let exchange = unique_exchange();
    let t = amqp(&exchange).await;
    let topic = unique_topic("conductor");
    conductor_round_trip(Arc::new(t.clone()), &topic).await;
    t.shutdown().await;
    cleanup(&exchange, &[topic.clone(), format!("{topic}.0.0.0.0")]).await;
}
