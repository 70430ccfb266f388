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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use trove_api::guest::RpcGuestClients;
use trove_api::policy::Enforcer;
use trove_api::taskmanager::{RpcTaskManager, TaskManagerClient};
use trove_config::{Config, ConfigArgs};
use trove_rpc::api::taskmanager::TaskManagerApi;
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
    let config = trove::load_config(&cli.config)?;
    trove::init_logging(config.default.debug);
    let base_dir = cli
        .config
        .sources()
        .paths()?
        .first()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, base_dir))
}

/// The address to listen on; see the module doc for the `noauth` rule.
fn listen_address(config: &Config) -> anyhow::Result<SocketAddr> {
    let host: IpAddr = config.default.bind_host;
    let port = config.default.bind_port;
    if config.default.auth_strategy != "noauth" || host.is_loopback() {
        return Ok(SocketAddr::new(host, port));
    }
    if host.is_unspecified() {
        tracing::warn!(
            "auth_strategy = noauth: listening on 127.0.0.1 only; set bind_host to a specific \
             address to expose an unauthenticated API"
        );
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    tracing::warn!(
        "!!! auth_strategy = noauth and bind_host = {host}: the API is reachable from the \
         network WITHOUT authentication; any caller can act as any project !!!"
    );
    Ok(SocketAddr::new(host, port))
}

async fn serve(config: Arc<Config>, base_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let address = listen_address(&config)?;
    let db = trove::connect_db(&config).await?;
    let policy_file = std::path::Path::new(&config.oslo_policy.policy_file);
    let enforcer = Enforcer::load(policy_file, base_dir.as_deref())
        .with_context(|| format!("loading the policy file {}", policy_file.display()))?;
    let authenticator = trove_api::auth::authenticator_from_config(&config)
        .map_err(anyhow::Error::msg)
        .context("setting up authentication")?;
    let transport = AmqpTransport::connect_url(
        config.default.transport_url.expose_secret(),
        trove::amqp_options(&config, "trove-api"),
    )
    .await
    .context("connecting to the message broker ([DEFAULT] transport_url)")?;
    let taskmanager_key = config.default.enable_secure_rpc_messaging.then(|| {
        config
            .default
            .taskmanager_rpc_encr_key
            .expose_secret()
            .to_string()
    });
    let taskmanager: Arc<dyn TaskManagerClient> =
        Arc::new(RpcTaskManager::new(TaskManagerApi::new(
            Arc::new(transport.clone()) as Arc<dyn Transport>,
            &config.default.taskmanager_queue,
            taskmanager_key,
        )));
    let router = trove_api::ApiApp::builder(
        config.clone(),
        db.clone(),
        Arc::new(enforcer),
        authenticator,
        Some(taskmanager),
    )
    .guests(Arc::new(RpcGuestClients::from_config(
        Arc::new(transport.clone()) as Arc<dyn Transport>,
        &config,
    )))
    .build();
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
