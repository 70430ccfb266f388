//! Glue shared by the service binaries: logging set-up and configuration loading.
//!
//! Every binary parses its flags with clap (flattening [`trove_config::ConfigArgs`]), calls
//! [`init_logging`] and [`load_config`] once, and passes the resulting configuration down.
//! Nothing deeper in the code reads files or the environment for settings.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use trove_api::guest::RpcGuestClients;
use trove_api::policy::Enforcer;
use trove_api::taskmanager::{RpcTaskManager, TaskManagerClient};
use trove_config::{Config, ConfigArgs};
use trove_rpc::api::taskmanager::TaskManagerApi;
use trove_rpc::Transport;

pub mod aio;
pub mod flavors;
pub mod images;
pub mod local;

/// Starts logging to standard error. `RUST_LOG` refines the filter; without it the level is
/// `info` for Trove-rs crates (`debug` when `debug` is set) and `warn` for everything else.
pub fn init_logging(debug: bool) {
    let default = if debug {
        "warn,trove=debug"
    } else {
        "warn,trove=info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A second initialisation (tests calling a binary's entry point twice) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Loads the configuration named by the command line. Warnings (unknown or deprecated
/// options) are printed to standard error, since logging is configured from the loaded
/// file and so starts after it; an invalid value is an error naming the file, group and
/// option.
pub fn load_config(args: &ConfigArgs) -> anyhow::Result<Arc<Config>> {
    let loaded = trove_config::load(&args.sources()).context("loading configuration")?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(Arc::new(loaded.config))
}

/// The body of a service binary: loads the configuration the command line names, starts
/// logging, builds the multi-threaded runtime and runs `serve` on it.
pub fn run_service<F, Fut>(args: &ConfigArgs, serve: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Config>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let config = load_config(args)?;
    init_logging(config.default.debug);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

/// Connects to the control database, retrying as `[database] max_retries` (-1: forever)
/// and `retry_interval` say while it is unreachable.
pub async fn connect_db(config: &Config) -> anyhow::Result<trove_db::Db> {
    let url = config.database.connection.expose_secret();
    let max_retries = config.database.max_retries;
    let interval = std::time::Duration::from_secs(config.database.retry_interval.max(0) as u64);
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

/// AMQP settings from `[DEFAULT] control_exchange` and `[oslo_messaging_rabbit]`;
/// `service` names the connection in RabbitMQ's management views.
pub fn amqp_options(config: &Config, service: &str) -> trove_rpc::AmqpOptions {
    let rabbit = &config.oslo_messaging_rabbit;
    let secs = |s: i64| std::time::Duration::from_secs(s.max(0) as u64);
    let mut opts = trove_rpc::AmqpOptions::with_exchange(config.default.control_exchange.clone());
    opts.retry_interval = secs(rabbit.rabbit_retry_interval);
    opts.retry_backoff = secs(rabbit.rabbit_retry_backoff);
    opts.interval_max = secs(rabbit.rabbit_interval_max);
    opts.heartbeat = u16::try_from(rabbit.heartbeat_timeout_threshold.max(0)).unwrap_or(u16::MAX);
    if rabbit.rabbit_qos_prefetch_count > 0 {
        opts.prefetch_count = u16::try_from(rabbit.rabbit_qos_prefetch_count).unwrap_or(u16::MAX);
    }
    opts.connection_name = Some(format!("{service}@{}", config.default.host));
    opts
}

/// Completes on SIGINT or SIGTERM: the signal for a graceful stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
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
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

/// The exit status of a binary: success, or the error with its causes on standard error,
/// prefixed with the program's name (`trove-api: loading configuration: ...`).
pub fn exit_code(program: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The address the API listens on: `bind_host:bind_port`, except that with
/// `auth_strategy = noauth` (anyone who reaches the port acts as any project) the default
/// `0.0.0.0` is narrowed to 127.0.0.1, and any other non-loopback address is used only with
/// a loud warning.
pub fn api_listen_address(config: &Config) -> SocketAddr {
    let host: IpAddr = config.default.bind_host;
    let port = config.default.bind_port;
    if config.default.auth_strategy != "noauth" || host.is_loopback() {
        return SocketAddr::new(host, port);
    }
    if host.is_unspecified() {
        tracing::warn!(
            "auth_strategy = noauth: listening on 127.0.0.1 only; set bind_host to a specific \
             address to expose an unauthenticated API"
        );
        return SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    }
    tracing::warn!(
        "!!! auth_strategy = noauth and bind_host = {host}: the API is reachable from the \
         network WITHOUT authentication; any caller can act as any project !!!"
    );
    SocketAddr::new(host, port)
}

/// The API's router: policy (`[oslo_policy] policy_file`, relative to `base_dir`),
/// authentication (`auth_strategy`), taskmanager casts and guest calls over `transport`,
/// flavors from `flavors` (see [`flavors::flavor_source`]), images checked in Glance with
/// the OpenStack driver (see [`images::image_check`]).
pub fn api_router(
    config: Arc<Config>,
    db: trove_db::Db,
    transport: Arc<dyn Transport>,
    flavors: Arc<dyn trove_api::flavors::FlavorSource>,
    base_dir: Option<&Path>,
) -> anyhow::Result<axum::Router> {
    let policy_file = Path::new(&config.oslo_policy.policy_file);
    let enforcer = Enforcer::load(policy_file, base_dir)
        .with_context(|| format!("loading the policy file {}", policy_file.display()))?;
    let authenticator = trove_api::auth::authenticator_from_config(&config)
        .map_err(anyhow::Error::msg)
        .context("setting up authentication")?;
    let taskmanager: Arc<dyn TaskManagerClient> =
        Arc::new(RpcTaskManager::new(TaskManagerApi::new(
            transport.clone(),
            &config.default.taskmanager_queue,
            trove_taskmanager::taskmanager_key(&config),
        )));
    let router = trove_api::ApiApp::builder(
        config.clone(),
        db,
        Arc::new(enforcer),
        authenticator,
        Some(taskmanager),
    )
    .guests(Arc::new(RpcGuestClients::from_config(transport, &config)))
    .flavors(flavors)
    .build();
    // The datastore-version handlers check images where there is an image service.
    Ok(match images::image_check(&config) {
        Some(check) => router.layer(axum::Extension(check)),
        None => router,
    })
}
