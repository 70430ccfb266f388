//! `trove-api`: the Trove v1 REST API service
//! (`trove-api --config-file /etc/trove/trove.conf`).
//!
//! It connects to the control database and to RabbitMQ (casts to the taskmanager, calls
//! and casts to guest agents for databases, users and root), loads
//! the policy file (`[oslo_policy] policy_file`, relative to the first config file's
//! directory), authenticates as `[DEFAULT] auth_strategy` says (`keystone` with
//! `[keystone_authtoken]`, or `noauth` for local use), and listens on `bind_host:bind_port`
//! (8779) until SIGINT or SIGTERM, then finishes the requests in flight.
//!
//! With `noauth` anyone who can reach the port acts as any project, so the default address
//! `0.0.0.0` is narrowed to 127.0.0.1, and any other non-loopback address is used only with
//! a loud warning.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use trove_config::{Config, ConfigArgs};
use trove_rpc::{AmqpTransport, Transport};

/// Command line of trove-api.
#[derive(Parser)]
#[command(
    name = "trove-api",
    about = "Trove-rs API: the Trove v1 REST API",
    version
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    trove::exit_code("trove-api", run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let base_dir = cli
        .config
        .sources()
        .paths()?
        .first()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()));
    trove::run_service(&cli.config, |config| serve(config, base_dir))
}

async fn serve(config: Arc<Config>, base_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let address = trove::api_listen_address(&config);
    let db = trove::connect_db(&config).await?;
    let transport = AmqpTransport::connect_url(
        config.default.transport_url.expose_secret(),
        trove::amqp_options(&config, "trove-api"),
    )
    .await
    .context("connecting to the message broker ([DEFAULT] transport_url)")?;
    let flavors = trove::flavors::flavor_source(&config, &db).await?;
    let router = trove::api_router(
        config.clone(),
        db.clone(),
        Arc::new(transport.clone()) as Arc<dyn Transport>,
        flavors,
        base_dir.as_deref(),
    )?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    tracing::info!(%address, auth_strategy = %config.default.auth_strategy, "trove-api listening");
    let result = trove_api::serve(listener, router, trove::shutdown_signal())
        .await
        .context("serving HTTP");
    transport.shutdown().await;
    db.close().await;
    result
}
