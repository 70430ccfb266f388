//! `trove-genconfig`: writes the commented sample trove.conf (every group and option with
//! its type, default and help), as oslo-config-generator does for Trove.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Command line of trove-genconfig.
#[derive(Parser)]
#[command(
    name = "trove-genconfig",
    about = "Write a sample trove.conf listing every option with its type, default and help"
)]
struct Args {
    /// File to write; standard output when not given.
    #[arg(long = "output-file", value_name = "PATH")]
    output_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let sample = trove_config::sample_config();
    match args.output_file {
        None => {
            print!("{sample}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(&path, sample) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("trove-genconfig: {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}
