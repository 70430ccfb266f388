//! `trove-guestagent`: the agent of one database instance
//! (`trove-guestagent --config-dir /etc/trove/conf.d`).
//!
//! It reads the injected `guest_info.conf` and `trove-guestagent.conf` (any `--config-file`
//! and `--config-dir` given), refuses to start without `[DEFAULT] guest_id` or with a
//! `datastore_manager` it cannot run, connects to RabbitMQ (`[DEFAULT] transport_url`,
//! `control_exchange`, with the restricted options of a guest's broker user), serves
//! `guestagent.<guest_id>` and reports to the conductor until SIGINT or SIGTERM. Stopping the
//! agent leaves the database running. Everything else is in `trove_guestagent::agent`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use trove_config::ConfigArgs;

/// Command line of trove-guestagent.
#[derive(Parser)]
#[command(
    name = "trove-guestagent",
    about = "Trove-rs guest agent: runs and administers the database of one instance",
    version
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    trove::exit_code("trove-guestagent", run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    trove::run_service(&cli.config, |config| async move {
        trove_guestagent::run(&config, trove::shutdown_signal())
            .await
            .context("running the guest agent")
    })
}
