//! `trove-aio`: the whole of Trove-rs in one process, for one machine: API (noauth on
//! 127.0.0.1:8779), taskmanager, conductor and a guest agent per instance, over an
//! in-memory transport, with a SQLite control database and the local compute driver
//! (instances are real MariaDB / PostgreSQL servers on loopback addresses of their own).
//!
//! `trove-aio` alone keeps everything under `./var/aio`; `--state-dir` moves it;
//! `--config-file` adds the operator's settings (any option not set there keeps the
//! all-in-one default). On first start it registers the datastores installed on the
//! machine and four flavors, then prints how to use it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use trove_config::ConfigArgs;

/// Command line of trove-aio.
#[derive(Parser)]
#[command(
    name = "trove-aio",
    about = "Trove-rs all-in-one: API, taskmanager, conductor and guest agents in one process",
    version
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    /// Where the control database, volumes and instance files live.
    #[arg(long, value_name = "DIR", default_value = "var/aio")]
    state_dir: PathBuf,
}

fn main() -> ExitCode {
    trove::exit_code("trove-aio", run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let loaded = trove_config::load(&cli.config.sources()).context("loading configuration")?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    std::fs::create_dir_all(&cli.state_dir)
        .with_context(|| format!("creating {}", cli.state_dir.display()))?;
    let state_dir = cli.state_dir.canonicalize()?;
    let mut config = loaded.config;
    trove::aio::apply_defaults(&mut config, &state_dir);
    trove::init_logging(config.default.debug);
    let config = Arc::new(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, state_dir))
}

async fn serve(config: Arc<trove_config::Config>, state_dir: PathBuf) -> anyhow::Result<()> {
    let aio = trove::aio::Aio::start(config.clone(), &state_dir).await?;
    let address = trove::api_listen_address(&config);
    let router = aio.router(config.clone())?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    let address = listener.local_addr()?;
    println!("{}", trove::aio::usage_text(address, &state_dir));
    let result = trove_api::serve(listener, router, trove::shutdown_signal())
        .await
        .context("serving HTTP");
    aio.stop().await;
    result
}
