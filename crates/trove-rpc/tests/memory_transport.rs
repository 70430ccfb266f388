//! The transport contract against the in-memory transport.

mod common;

use std::sync::Arc;

use common::*;
use trove_rpc::{InMemoryTransport, Transport};

fn t() -> Arc<dyn Transport> {
    Arc::new(InMemoryTransport::new())
}

#[tokio::test]
async fn call_and_cast() {
    contract_call_cast(t()).await;
}

#[tokio::test]
async fn remote_errors() {
    contract_remote_errors(t()).await;
}

#[tokio::test]
async fn call_without_server_times_out() {
    contract_timeout(t()).await;
}

#[tokio::test]
async fn competing_consumers_share_work() {
    contract_competing(t()).await;
}

#[tokio::test]
async fn encryption() {
    contract_encryption(t()).await;
}

#[tokio::test]
async fn cast_queued_before_server_starts() {
    contract_queued_before_server(t()).await;
}

#[tokio::test]
async fn graceful_stop_finishes_in_flight() {
    contract_graceful_stop(t()).await;
}
