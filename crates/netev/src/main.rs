//! netev: the command-line client. Parse, dispatch; each command is a module.

mod status;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// netev — see and control the network syscalls of every program.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the daemon's backend, hooks (enforce or observe) and counters.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
        /// The daemon's run directory (netevd --run-dir).
        #[arg(long, value_name = "DIR", default_value = "/run/netev")]
        run_dir: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Status { json, run_dir } => status::run(&run_dir, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netev: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
