//! Per-guest RabbitMQ users through the management API: a guest's credentials work on
//! its own queues and the conductor topic, and are refused on another guest's queue and
//! on the taskmanager topic. Needs the `rabbitmq_management` plugin.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Map};
use trove_rpc::admin::{guest_username, GuestBrokerAccess};
use trove_rpc::api::{guest_topic, ConductorApi};
use trove_rpc::{
    AmqpOptions, AmqpTransport, BrokerAdmin, PlainSerializer, RpcEndpoint, Target, Transport,
    TransportUrl, Version,
};

async fn require_management() {
    let r = reqwest::Client::new()
        .get("http://127.0.0.1:15672/api/overview")
        .basic_auth("guest", Some("guest"))
        .send()
        .await;
    assert!(
        r.is_ok_and(|r| r.status().is_success()),
        "the RabbitMQ management API is not reachable on 127.0.0.1:15672: enable it with `rabbitmq-plugins enable rabbitmq_management`"
    );
}

#[tokio::test]
async fn guest_user_is_confined_to_its_own_queues() {
    let _lock = shared_broker_lock();
    require_management().await;
    let exchange = unique_exchange();
    let conductor_topic = unique_topic("conductor");
    let base = TransportUrl::parse(&rabbit_url()).unwrap();
    let admin = BrokerAdmin::from_transport_url(&base, &exchange, &conductor_topic);
    let controller_t = amqp(&exchange).await;
    let controller: Arc<dyn Transport> = Arc::new(controller_t.clone());
    let conductor = TestDispatcher::named("conductor");
    let hc = serve(
        &controller,
        Target::topic(&conductor_topic),
        conductor.clone(),
        None,
    )
    .await;

    let (a, b) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let GuestBrokerAccess::Dedicated(creds_a) = admin.guest_access(&a).await else {
        panic!("management access expected")
    };
    let creds_b = admin.create_guest_user(&b).await.unwrap();
    assert_eq!(creds_a.username, guest_username(&a));
    controller
        .declare_topic_queues(&guest_topic(&b), Some(&b))
        .await
        .unwrap();

    // Guest A with its own user.
    let guest_a = AmqpTransport::connect(
        creds_a.transport_url(&base),
        AmqpOptions::for_guest(&exchange, &a),
    )
    .await
    .expect("guest A logs in");
    assert!(guest_a
        .reply_queue()
        .starts_with(&format!("reply_guest_{a}_")));
    let ga: Arc<dyn Transport> = Arc::new(guest_a.clone());
    let agent = TestDispatcher::named("agent-a");
    let ha = serve(&ga, Target::server(guest_topic(&a), &a), agent, None).await;
    // The controller calls guest A; A's reply comes back through the default exchange.
    let who = client(&controller, &guest_topic(&a), None)
        .call(&ctx(), "whoami", Map::new(), Duration::from_secs(10))
        .await;
    assert_eq!(who.unwrap(), json!("agent-a"));
    // A may cast to the conductor.
    ConductorApi::new(ga.clone(), &conductor_topic, &a, None)
        .heartbeat(&ctx(), &a, "healthy")
        .await
        .unwrap();
    assert!(
        eventually(10, || conductor.seen_values("heartbeat", "instance_id")
            == vec![json!(a)])
        .await
    );

    // ...but not consume another guest's queue,
    let thief = RpcEndpoint::new(
        Version::new(1, 3),
        Arc::new(PlainSerializer),
        TestDispatcher::named("thief"),
    );
    let refused = ga
        .serve(&Target::server(guest_topic(&b), &b), Arc::new(thief))
        .await;
    let err = refused
        .err()
        .expect("consuming guest B's queue must be refused");
    assert!(
        is_access_refused(&err),
        "expected ACCESS_REFUSED, got {err}"
    );
    assert!(err.to_string().contains("ACCESS_REFUSED"), "{err}");
    // nor publish to the taskmanager topic.
    let err = client(&ga, "taskmanager", None)
        .cast(&ctx(), "delete_instance", Map::new())
        .await
        .unwrap_err();
    assert!(
        is_access_refused(&err),
        "expected ACCESS_REFUSED, got {err}"
    );

    // Deleting the instance deletes the user: its credentials stop working.
    ha.stop().await;
    guest_a.shutdown().await;
    admin.delete_guest_user(&a).await.unwrap();
    admin.delete_guest_user(&a).await.unwrap(); // idempotent
    let mut o = AmqpOptions::for_guest(&exchange, &a);
    o.connect_timeout = Duration::from_secs(5);
    assert!(
        AmqpTransport::connect(creds_a.transport_url(&base), o)
            .await
            .is_err(),
        "deleted user can no longer log in"
    );
    admin.delete_guest_user(&b).await.unwrap();
    let _ = creds_b;

    hc.stop().await;
    controller_t.shutdown().await;
    let ids = [
        guest_topic(&a),
        format!("{}.{a}", guest_topic(&a)),
        guest_topic(&b),
        format!("{}.{b}", guest_topic(&b)),
        conductor_topic,
    ];
    cleanup(&exchange, &ids).await;
}

#[tokio::test]
async fn falls_back_to_shared_credentials_without_management_access() {
    let unreachable = BrokerAdmin::new(
        "http://127.0.0.1:1",
        "guest",
        "guest",
        "/",
        "trove",
        "trove-conductor",
    );
    assert_eq!(
        unreachable.guest_access("x").await,
        GuestBrokerAccess::Shared
    );
    let _lock = shared_broker_lock();
    require_management().await;
    let denied = BrokerAdmin::new(
        "http://127.0.0.1:15672",
        "guest",
        "wrong-password",
        "/",
        "trove",
        "trove-conductor",
    );
    assert_eq!(denied.guest_access("x").await, GuestBrokerAccess::Shared);
}
