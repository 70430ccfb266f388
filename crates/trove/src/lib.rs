//! Glue shared by the service binaries: logging set-up and configuration loading.
//!
//! Every binary parses its flags with clap (flattening [`trove_config::ConfigArgs`]), calls
//! [`init_logging`] and [`load_config`] once, and passes the resulting configuration down.
//! Nothing deeper in the code reads files or the environment for settings.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use trove_config::{Config, ConfigArgs};

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
