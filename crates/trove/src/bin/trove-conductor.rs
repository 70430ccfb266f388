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
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use trove_config::{Config, ConfigArgs};
use trove_rpc::{AmqpOptions, AmqpTransport, Transport};

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
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("trove-conductor: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = trove::load_config(&cli.config)?;
    trove::init_logging(config.default.debug);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Arc<Config>) -> anyhow::Result<()> {
    let db = connect_db(&config).await?;
    let opts = amqp_options(&config);
    let url = config.default.transport_url.expose_secret();
    let transport = AmqpTransport::connect_url(url, opts)
        .await
        .context("connecting to the message broker ([DEFAULT] transport_url)")?;
    let result = trove_conductor::run(
        &config,
        db.clone(),
        Arc::new(transport.clone()) as Arc<dyn Transport>,
        shutdown_signal(),
    )
    .await
    .context("serving the conductor topic");
    transport.shutdown().await;
    db.close().await;
    result
}

/// Connects to the control database, retrying as `[database] max_retries` (-1: forever)
/// and `retry_interval` say.
async fn connect_db(config: &Config) -> anyhow::Result<trove_db::Db> {
    let url = config.database.connection.expose_secret();
    let max_retries = config.database.max_retries;
    let interval = Duration::from_secs(config.database.retry_interval.max(0) as u64);
    let mut attempt: i64 = 0;
    loop {
        match trove_db::Db::connect(url).await {
            Ok(db) => return Ok(db),
            Err(e) if e.is_unavailable() && (max_retries < 0 || attempt < max_retries) => {
                attempt += 1;
                tracing::warn!(
                    attempt,
                    "control database unreachable ({e}); retrying in {} s",
                    interval.as_secs()
                );
                tokio::time::sleep(interval).await;
            }
            Err(e) => {
                return Err(e).context("connecting to the control database ([database] connection)")
            }
        }
    }
}

/// AMQP settings from `[DEFAULT] control_exchange` and `[oslo_messaging_rabbit]`.
fn amqp_options(config: &Config) -> AmqpOptions {
    let rabbit = &config.oslo_messaging_rabbit;
    let secs = |s: i64| Duration::from_secs(s.max(0) as u64);
    let mut opts = AmqpOptions::with_exchange(config.default.control_exchange.clone());
    opts.retry_interval = secs(rabbit.rabbit_retry_interval);
    opts.retry_backoff = secs(rabbit.rabbit_retry_backoff);
    opts.interval_max = secs(rabbit.rabbit_interval_max);
    opts.heartbeat = u16::try_from(rabbit.heartbeat_timeout_threshold.max(0)).unwrap_or(u16::MAX);
    if rabbit.rabbit_qos_prefetch_count > 0 {
        opts.prefetch_count = u16::try_from(rabbit.rabbit_qos_prefetch_count).unwrap_or(u16::MAX);
    }
    opts.connection_name = Some(format!("trove-conductor@{}", config.default.host));
    opts
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
