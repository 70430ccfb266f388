//! `trove-conductor`: the service that writes guest heartbeats, backup progress, root
//! reports and guest failures to the control database
//! (`trove-conductor --config-file /etc/trove/trove.conf`).
//!
//! It connects to the control database (`[database] connection`, retried as
//! `max_retries`/`retry_interval` say) and to RabbitMQ (`[DEFAULT] transport_url`,
//! `control_exchange`, `[oslo_messaging_rabbit]` retry and heartbeat settings), then serves
//! `conductor_queue` until SIGINT or SIGTERM, and stops gracefully: no new messages, the
//! ones in flight finish. One process handles up to 64 messages at once;
//! `trove_conductor_workers` is not used (start more processes, on any hosts, to scale:
//! they share the topic queue).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use trove_config::{Config, ConfigArgs};
use trove_rpc::{AmqpTransport, Transport};

/// Command line of trove-conductor.
#[derive(Parser)]
#[command(
    name = "trove-conductor",
    about = "Trove-rs conductor: stores guest status reports",
    version
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    trove::exit_code("trove-conductor", run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    trove::run_service(&cli.config, serve)
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let db = trove::connect_db(&config).await?;
    let opts = trove::amqp_options(&config, "trove-conductor");
    let url = config.default.transport_url.expose_secret();
    let transport = AmqpTransport::connect_url(url, opts)
        .await
        .context("connecting to the message broker ([DEFAULT] transport_url)")?;
    let result = trove_conductor::run(
        &config,
        db.clone(),
        Arc::new(transport.clone()) as Arc<dyn Transport>,
        trove::shutdown_signal(),
    )
    .await
    .context("serving the conductor topic");
    transport.shutdown().await;
    db.close().await;
    result
}
