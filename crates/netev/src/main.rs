//! netev: the command-line client. Parse, dispatch; each command is a module.

mod bus;
mod doctor;
mod log;
mod monitor;
mod prompt;
mod rules;
mod run;
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
        /// Where netevd pins its programs (netevd --pin-dir): read when the
        /// daemon is down to say whether anything is still enforced.
        #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/netev")]
        pin_dir: PathBuf,
    },
    /// Check what this machine offers netev and what is wrong: one line per
    /// check (ok, warn, FAIL) with the fix; exit 1 if anything failed.
    Doctor {
        /// netevd's state directory (netevd --state-dir).
        #[arg(long, value_name = "DIR", default_value = "/var/lib/netev")]
        state_dir: PathBuf,
        /// netevd's configuration file.
        #[arg(long, value_name = "FILE", default_value = "/etc/netev/netev.toml")]
        config: PathBuf,
        /// The group allowed to talk to netevd (netevd --access-group).
        #[arg(long, value_name = "GROUP", default_value = "netev")]
        group: String,
        /// One JSON object per check.
        #[arg(long)]
        json: bool,
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
    /// Stored events, newest last (needs root or the netev group, or read
    /// access to the database with --db).
    Log {
        /// Events at or after: an age (15m, 1h, 2d) or a time
        /// (2026-11-26T10:00:00Z, 2026-11-26 10:00 UTC).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Events before (same forms as --since).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only this executable (canonical path).
        #[arg(long, value_name = "PATH")]
        exe: Option<String>,
        /// Only this op.
        #[arg(long, value_name = "OP")]
        op: Option<Op>,
        /// Only this verdict: allow, deny or observe.
        #[arg(long, value_name = "VERDICT", value_parser = ["allow", "deny", "observe"])]
        verdict: Option<String>,
        /// Only remote addresses in this network (10.0.0.0/8, 2001:db8::/32,
        /// or one address); an IPv4 network also matches IPv4-mapped IPv6.
        #[arg(long, value_name = "CIDR")]
        dest: Option<String>,
        /// Only this remote port.
        #[arg(long, value_name = "PORT")]
        port: Option<u16>,
        /// Only events from this host (databases several hosts write to).
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        /// The newest N events.
        #[arg(long, value_name = "N", default_value = "100")]
        limit: u32,
        /// One JSON object per line (the event's fields plus host).
        #[arg(long)]
        json: bool,
        /// Read this database instead of asking the daemon: a SQLite file
        /// (/var/lib/netev/netev.db) or a PostgreSQL URL.
        #[arg(long, value_name = "PATH|URL")]
        db: Option<String>,
    },
    /// The busiest programs, destinations, ports or users in the stored events.
    Top {
        /// What to count by: exe, dest, port or user.
        #[arg(long, value_name = "KEY", default_value = "exe")]
        by: netev_store::TopBy,
        /// Since an age (1h, 2d) or a time; counted by minute.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// How many lines.
        #[arg(long, value_name = "N", default_value = "10")]
        limit: u32,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Read this database instead of asking the daemon (see `log --db`).
        #[arg(long, value_name = "PATH|URL")]
        db: Option<String>,
    },
    /// Answer netevd's prompts from this terminal, one key each (needs root or the netev group).
    Prompt {
        /// How far an answer reaches: exe (the program, any destination),
        /// exe+dest, exe+port, or exe+dest+port, for the user whose process
        /// asked; append +any-user (exe+dest+any-user) to answer for every user.
        #[arg(long, value_name = "SCOPE", default_value = "exe+dest+port",
              value_parser = netev_rules::fields::ANSWER_SCOPES_ANY_USER)]
        scope: String,
    },
    /// Run a program so that each of its network syscalls (and its
    /// children's) waits for a verdict; no daemon or root needed (docs/run.md).
    Run {
        /// Rules file (TOML, docs/rules.md).
        #[arg(long, value_name = "FILE")]
        rules: Option<String>,
        /// What happens when no rule matches a connection, a datagram
        /// sent to an address or a listen: allow, deny or ask. socket() is
        /// allowed (a socket is decided where it goes); bind and accept
        /// are allowed under ask, refused under deny. The built-in rules
        /// (--builtin-rules) apply first.
        #[arg(long, value_name = "ACTION")]
        default: Option<netev_rules::Action>,
        /// Print the built-in rules (the C library's own unix sockets, and
        /// the ways out of supervision that are refused) and exit.
        #[arg(long, exclusive = true)]
        builtin_rules: bool,
        /// How long to wait for an answer to ask; then the ask fallback (deny).
        #[arg(long, value_name = "TIME", default_value = "30s", value_parser = run::parse_timeout)]
        timeout: std::time::Duration,
        /// Every decided call as one JSON object per line on stderr.
        #[arg(long, conflicts_with = "log")]
        json: bool,
        /// Append every decided call as JSON lines to this file.
        #[arg(long, value_name = "FILE")]
        log: Option<String>,
        /// How far a rule made by a terminal answer (this run, always)
        /// reaches: exe, exe+dest, exe+port or exe+dest+port.
        #[arg(long, value_name = "SCOPE", default_value = "exe+dest+port",
              value_parser = netev_rules::fields::ANSWER_SCOPES)]
        scope: String,
        /// The program and its arguments.
        #[arg(
            last = true,
            required_unless_present = "builtin_rules",
            value_name = "CMD"
        )]
        cmd: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    if let Some(code) = netev_clidoc::generate_if_asked(<Cli as clap::CommandFactory>::command, "1")
    {
        return code;
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Rules { command } => rules::run(&cli.bus, command),
        Command::Prompt { scope } => prompt::run(&cli.bus, scope),
        Command::Doctor {
            state_dir,
            config,
            group,
            json,
        } => doctor::run(
            &cli.bus,
            doctor::Options {
                state_dir,
                config,
                group,
                json,
            },
        ),
        Command::Status {
            json,
            run_dir,
            pin_dir,
        } => status::run(&cli.bus, run_dir.as_deref(), &pin_dir, json),
        Command::Run {
            builtin_rules: true,
            ..
        } => {
            print!("{}", netev_run::defaults::BUILTIN_RULES);
            std::process::ExitCode::SUCCESS
        }
        Command::Run {
            builtin_rules: false,
            rules,
            default,
            timeout,
            json,
            log,
            scope,
            cmd,
        } => run::run(run::Options {
            rules,
            default,
            timeout,
            json,
            log,
            scope,
            bus: cli.bus,
            cmd,
        }),
        Command::Log {
            since,
            until,
            exe,
            op,
            verdict,
            dest,
            port,
            host,
            limit,
            json,
            db,
        } => {
            let mut pairs: Vec<(&'static str, String)> = Vec::new();
            let mut put = |k: &'static str, v: Option<String>| {
                if let Some(v) = v {
                    pairs.push((k, v));
                }
            };
            put("since", since);
            put("until", until);
            put("exe", exe);
            put("op", op.map(|o| o.name().to_string()));
            put("verdict", verdict);
            put("dest", dest);
            put("port", port.map(|p| p.to_string()));
            put("host", host);
            put("limit", Some(limit.to_string()));
            log::log(&cli.bus, log::LogOptions { pairs, json, db })
        }
        Command::Top {
            by,
            since,
            limit,
            json,
            db,
        } => log::top(
            &cli.bus,
            log::TopOptions {
                by,
                since,
                limit,
                json,
                db,
            },
        ),
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
