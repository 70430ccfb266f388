//! The conductor through a real RabbitMQ (oslo.messaging wire format, per-test exchange and
//! topic) on SQLite, MariaDB and PostgreSQL (`TROVE_TEST_BACKENDS` narrows the list).
//! Every test holds trove-rpc's shared broker lock. The broker URL is
//! `TROVE_TEST_RABBIT_URL` (default `rabbit://guest:guest@127.0.0.1:5672/`).

mod common;

use std::sync::Arc;

use common::*;
use trove_db::testing::{backends, TestDb};
use trove_rpc::{AmqpOptions, AmqpTransport, Transport};

fn rabbit_url() -> String {
    std::env::var("TROVE_TEST_RABBIT_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into())
}

fn unique_exchange() -> String {
    format!("trove_conductor_test_{}", uuid::Uuid::new_v4().simple())
}

async fn connect(exchange: &str) -> AmqpTransport {
    AmqpTransport::connect_url(&rabbit_url(), AmqpOptions::with_exchange(exchange))
        .await
        .expect("connect to RabbitMQ (is it running on 127.0.0.1:5672?)")
}

/// Deletes the test's queues and closes the connections.
async fn cleanup(topic: &str, transports: &[&AmqpTransport]) {
    let cfg = config(topic);
    let server = cfg.default.host.to_string();
    let _ = transports[0]
        .delete_topic_queues(topic, Some(&server))
        .await;
    for t in transports {
        t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conductor_methods_ordering_and_trust_through_rabbitmq() {
    let _lock = trove_rpc::testing::broker_lock_shared().expect("broker lock");
    for backend in backends() {
        let t = TestDb::new(backend).await;
        let exchange = unique_exchange();
        let topic = unique_topic();
        let server = connect(&exchange).await;
        let guest = connect(&exchange).await;
        single_conductor_scenario(t.db(), &server, Arc::new(guest.clone()), &topic).await;
        cleanup(&topic, &[&server, &guest]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_conductors_share_a_topic_through_rabbitmq() {
    let _lock = trove_rpc::testing::broker_lock_shared().expect("broker lock");
    for backend in backends() {
        let t = TestDb::new(backend).await;
        let exchange = unique_exchange();
        let topic = unique_topic();
        let c1 = connect(&exchange).await;
        let c2 = connect(&exchange).await;
        let guest = connect(&exchange).await;
        two_conductors_scenario(t.db(), &c1, &c2, Arc::new(guest.clone()), &topic).await;
        cleanup(&topic, &[&c1, &c2, &guest]).await;
    }
}
