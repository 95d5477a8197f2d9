//! netev: the command-line client. Parse, dispatch; each command is a module.

mod bus;
mod monitor;
mod prompt;
mod rules;
mod status;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use netev_dbus::Filter;
use netev_event::Op;

/// netev — see and control the network syscalls of every program.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The bus netevd serves on: system, session, or an address
    /// (unix:path=/run/netev/bus).
    #[arg(
        long,
        global = true,
        value_name = "BUS",
        default_value = "system",
        env = "NETEV_BUS"
    )]
    bus: bus::BusChoice,

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
        /// Read the status file in this run directory (netevd --run-dir)
        /// instead of asking the daemon over D-Bus.
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
    },
    /// Print live events (needs root or the netev group).
    Monitor {
        /// One JSON object per line (fields: docs/events.md).
        #[arg(long)]
        json: bool,
        /// Only this op (repeat for several).
        #[arg(long, value_name = "OP")]
        op: Vec<Op>,
        /// Only this executable (canonical path).
        #[arg(long, value_name = "PATH")]
        exe: Option<String>,
        /// Only this process.
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// Only this user id.
        #[arg(long, value_name = "UID")]
        uid: Option<u32>,
        /// Only this verdict: allow, deny or observe (repeat for several).
        #[arg(long, value_name = "VERDICT", value_parser = ["allow", "deny", "observe"])]
        verdict: Vec<String>,
    },
    /// List, add, remove, enable, disable, import and export rules; the default policy.
    Rules {
        #[command(subcommand)]
        command: rules::RulesCommand,
    },
    /// Answer netevd's prompts from this terminal, one key each (needs root or the netev group).
    Prompt {
        /// How far an answer reaches: exe (the program, any destination),
        /// exe+dest, exe+port, or exe+dest+port.
        #[arg(long, value_name = "SCOPE", default_value = "exe+dest+port", value_parser = prompt::SCOPES)]
        scope: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Rules { command } => rules::run(&cli.bus, command),
        Command::Prompt { scope } => prompt::run(&cli.bus, scope),
        Command::Status { json, run_dir } => status::run(&cli.bus, run_dir.as_deref(), json),
        Command::Monitor {
            json,
            op,
            exe,
            pid,
            uid,
            verdict,
        } => monitor::run(
            &cli.bus,
            monitor::Options {
                json,
                filter: Filter {
                    ops: op.iter().map(|o| o.name().to_string()).collect(),
                    exe,
                    pid,
                    uid,
                    verdicts: verdict,
                },
            },
        ),
    }
}
