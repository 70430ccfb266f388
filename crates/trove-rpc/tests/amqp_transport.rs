//! The transport contract and wire-format checks against the real RabbitMQ on this host.
//! Every test uses its own control exchange and topics, and deletes them at the end.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::{
    BasicGetArguments, BasicPublishArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::BasicProperties;
use common::*;
use serde_json::{json, Map, Value};
use trove_common::crypto;
use trove_rpc::message::{decode_envelope, encode_envelope};
use trove_rpc::{Target, Transport};

async fn run<F, Fut>(f: F)
where
    F: FnOnce(Arc<dyn Transport>) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let _lock = shared_broker_lock();
    let exchange = unique_exchange();
    let t = amqp(&exchange).await;
    let queues = within(120, f(Arc::new(t.clone()))).await;
    t.shutdown().await;
    cleanup(&exchange, &queues).await;
}

#[tokio::test]
async fn call_and_cast() {
    run(contract_call_cast).await;
}

#[tokio::test]
async fn remote_errors() {
    run(contract_remote_errors).await;
}

#[tokio::test]
async fn call_without_server_times_out() {
    run(contract_timeout).await;
}

#[tokio::test]
async fn competing_consumers_share_work() {
    run(contract_competing).await;
}

#[tokio::test]
async fn encryption() {
    run(contract_encryption).await;
}

#[tokio::test]
async fn cast_queued_before_server_starts() {
    run(contract_queued_before_server).await;
}

#[tokio::test]
async fn graceful_stop_finishes_in_flight() {
    run(contract_graceful_stop).await;
}

#[tokio::test]
async fn separate_client_and_server_processes_share_the_broker() {
    let _lock = shared_broker_lock();
    let exchange = unique_exchange();
    let (a, b) = (amqp(&exchange).await, amqp(&exchange).await);
    let server_side: Arc<dyn Transport> = Arc::new(a.clone());
    let client_side: Arc<dyn Transport> = Arc::new(b.clone());
    let topic = unique_topic("two_conns");
    let d = TestDispatcher::named("s");
    let h = serve(&server_side, Target::topic(&topic), d, None).await;
    let r = client(&client_side, &topic, None)
        .call(
            &ctx(),
            "add",
            args(json!({"a": 1, "b": 2})),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(r.unwrap(), json!(3));
    h.stop().await;
    a.shutdown().await;
    b.shutdown().await;
    cleanup(&exchange, &[topic]).await;
}

/// Binds a spy queue to `routing_key` so a copy of every message can be read raw.
async fn spy(
    exchange: &str,
    routing_key: &str,
) -> (
    amqprs::connection::Connection,
    amqprs::channel::Channel,
    String,
) {
    let conn = raw_connection().await.unwrap();
    let ch = conn.open_channel(None).await.unwrap();
    let name = unique_topic("spy");
    ch.queue_declare(QueueDeclareArguments::new(&name))
        .await
        .unwrap();
    ch.queue_bind(QueueBindArguments::new(&name, exchange, routing_key))
        .await
        .unwrap();
    (conn, ch, name)
}

async fn get_raw(ch: &amqprs::channel::Channel, q: &str) -> (BasicProperties, Vec<u8>) {
    for _ in 0..100 {
        let mut a = BasicGetArguments::new(q);
        a.no_ack(true);
        if let Some((_, props, body)) = ch.basic_get(a.finish()).await.unwrap() {
            return (props, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no message arrived in spy queue {q}");
}

#[tokio::test]
async fn wire_format_and_encrypted_traffic_is_ciphertext() {
    let _lock = shared_broker_lock();
    let exchange = unique_exchange();
    let at = amqp(&exchange).await;
    let t: Arc<dyn Transport> = Arc::new(at.clone());
    let topic = unique_topic("wire");
    t.declare_topic_queues(&topic, None).await.unwrap();
    let (conn, ch, spyq) = spy(&exchange, &topic).await;
    let key = "per-instance-key-0123456789abcdef";

    // A clear cast: oslo's envelope, properties, flattened context.
    client(&t, &topic, None)
        .cast(&ctx(), "record", args(json!({"n": 7})))
        .await
        .unwrap();
    let (props, body) = get_raw(&ch, &spyq).await;
    assert_eq!(
        props.content_type().map(String::as_str),
        Some("application/json")
    );
    assert_eq!(props.content_encoding().map(String::as_str), Some("utf-8"));
    assert_eq!(props.delivery_mode(), Some(2));
    assert_eq!(props.expiration(), None, "casts carry no expiration");
    let outer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(outer.as_object().unwrap().len(), 2);
    assert_eq!(outer["oslo.version"], json!("2.0"));
    let inner: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
    assert_eq!(inner["method"], json!("record"));
    assert_eq!(inner["args"], json!({"n": 7}));
    assert_eq!(inner["version"], json!("1.0"));
    assert_eq!(inner["_context_user"], json!("alice"));
    assert_eq!(inner["_unique_id"].as_str().unwrap().len(), 32);
    assert!(inner.get("_msg_id").is_none());

    // An encrypted call (nobody answers): ciphertext only, expiration = timeout.
    let c = client(&t, &topic, Some(key));
    let call = tokio::spawn(async move {
        c.call(
            &ctx(),
            "echo",
            args(json!({"password": "hunter2-secret"})),
            Duration::from_millis(3000),
        )
        .await
    });
    let (props, body) = get_raw(&ch, &spyq).await;
    assert!(call.await.unwrap().unwrap_err().is_timeout());
    assert_eq!(props.expiration().map(String::as_str), Some("3000"));
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(!text.contains("hunter2"), "argument in clear on the wire");
    assert!(
        !text.contains("tok-secret") && !text.contains("alice"),
        "context in clear on the wire"
    );
    let inner = decode_envelope(&body).unwrap();
    assert_eq!(inner["method"], json!("echo"), "method stays in clear");
    assert!(inner["_reply_q"].as_str().unwrap().starts_with("reply_"));
    assert_eq!(inner["_timeout"], Value::Null);
    let enc = inner["args"]["password"].as_str().unwrap();
    assert_eq!(crypto::decrypt(key, enc).unwrap(), b"\"hunter2-secret\"");
    let ctx_enc = inner["_context_context"].as_str().unwrap();
    let ctx_plain: Value = serde_json::from_slice(&crypto::decrypt(key, ctx_enc).unwrap()).unwrap();
    assert_eq!(ctx_plain["auth_token"], json!("tok-secret"));
    assert!(inner.keys().filter(|k| k.starts_with("_context_")).count() == 1);

    let _ = ch.close().await;
    let _ = conn.close().await;
    at.shutdown().await;
    cleanup(&exchange, &[topic, spyq]).await;
}

#[tokio::test]
async fn duplicates_are_dropped_and_bare_messages_accepted() {
    let _lock = shared_broker_lock();
    let exchange = unique_exchange();
    let at = amqp(&exchange).await;
    let t: Arc<dyn Transport> = Arc::new(at.clone());
    let topic = unique_topic("dup");
    let d = TestDispatcher::named("s");
    let h = serve(&t, Target::topic(&topic), d.clone(), None).await;
    let conn = raw_connection().await.unwrap();
    let ch = conn.open_channel(None).await.unwrap();
    let mut msg = Map::new();
    msg.insert("method".into(), json!("record"));
    msg.insert("args".into(), json!({"n": 1}));
    msg.insert(
        "_unique_id".into(),
        json!("0123456789abcdef0123456789abcdef"),
    );
    for _ in 0..3 {
        ch.basic_publish(
            BasicProperties::default(),
            encode_envelope(&msg),
            BasicPublishArguments::new(&exchange, &topic),
        )
        .await
        .unwrap();
    }
    // A pre-2.0 bare message with another id.
    msg.insert(
        "_unique_id".into(),
        json!("ffffffffffffffffffffffffffffffff"),
    );
    msg.insert("args".into(), json!({"n": 2}));
    ch.basic_publish(
        BasicProperties::default(),
        serde_json::to_vec(&msg).unwrap(),
        BasicPublishArguments::new(&exchange, &topic),
    )
    .await
    .unwrap();
    assert!(eventually(10, || d.calls.load(Ordering::SeqCst) == 2).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(d.seen_values("record", "n"), vec![json!(1), json!(2)]);
    h.stop().await;
    let _ = ch.close().await;
    let _ = conn.close().await;
    at.shutdown().await;
    cleanup(&exchange, &[topic]).await;
}

#[tokio::test]
async fn unreachable_broker_is_a_clear_error() {
    let mut o = trove_rpc::AmqpOptions::with_exchange("x");
    o.connect_timeout = Duration::from_secs(2);
    let e = trove_rpc::AmqpTransport::connect_url("rabbit://guest:guest@127.0.0.1:1/", o)
        .await
        .err()
        .expect("must fail");
    assert!(matches!(e, trove_rpc::RpcError::Unavailable(_)), "{e}");
}
