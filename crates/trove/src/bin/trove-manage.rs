//! `trove-manage`: the operator's command line for the control database, with Trove's
//! subcommands and arguments (`trove-manage --config-file /etc/trove/trove.conf db_sync`),
//! plus `genconfig`, which writes a commented sample trove.conf.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use trove_config::ConfigArgs;

/// Command line of trove-manage.
#[derive(Parser)]
#[command(name = "trove-manage", about = "Trove-rs operator commands", version)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: TopCommand,
}

#[derive(Subcommand)]
enum TopCommand {
    /// Write a sample trove.conf with every option, its type, default and help.
    #[command(name = "genconfig")]
    Genconfig {
        /// File to write; standard output when not given.
        #[arg(long = "output-file", value_name = "PATH")]
        output_file: Option<PathBuf>,
    },
    #[command(flatten)]
    Db(Box<trove_manage::Command>),
}

fn main() -> ExitCode {
    trove::exit_code("trove-manage", run(Cli::parse()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        TopCommand::Genconfig { output_file } => {
            let sample = trove_config::sample_config();
            match output_file {
                None => print!("{sample}"),
                Some(path) => std::fs::write(&path, sample)
                    .with_context(|| format!("writing {}", path.display()))?,
            }
            return Ok(());
        }
        TopCommand::Db(command) => *command,
    };
    let config = trove::load_config(&cli.config)?;
    trove::init_logging(config.default.debug);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let db = trove_db::Db::connect(config.database.connection.expose_secret())
            .await
            .context("connecting to the control database ([database] connection)")?;
        let output = trove_manage::run(&db, command).await?;
        if !output.is_empty() {
            println!("{}", output.trim_end());
        }
        Ok(())
    })
}
