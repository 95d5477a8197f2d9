//! netevd: captures every network syscall with eBPF and reports it.
//! Parse the flags, set up logging, run. The work is in `daemon`.

mod access;
mod bus;
mod daemon;
mod enrich;
mod rules;
mod rulestore;
mod store;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// How `--print` writes events to standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrintFormat {
    /// One JSON object per line (fields in docs/events.md).
    Json,
    /// One human-readable line per event.
    Text,
}

/// netev daemon: captures network syscalls (socket, bind, listen, connect,
/// accept, send/recv) of every process in a cgroup with eBPF.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// cgroup v2 directory to attach to [default: the cgroup v2 root, from /proc/mounts].
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Print every event to standard output.
    #[arg(long, value_name = "FORMAT")]
    pub print: Option<PrintFormat>,

    /// Stay in the foreground (no daemonizing); logs go to standard error.
    #[arg(long)]
    pub foreground: bool,

    /// One event per send/recv call instead of one per flow per second.
    #[arg(long)]
    pub no_coalesce: bool,

    /// Ring-buffer size in bytes: a power of two, at least 4096 (suffixes K, M).
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = parse_size)]
    pub ringbuf_size: u32,

    /// D-Bus to serve org.netev.Daemon1 on: system, session, none, or an
    /// address (unix:path=...).
    #[arg(long, value_name = "BUS", default_value = "system")]
    pub bus: bus::BusSpec,

    /// Group whose members may subscribe to events and call the daemon
    /// (besides root).
    #[arg(long, value_name = "GROUP", default_value = "netev")]
    pub access_group: String,

    /// Directory for the status file that `netev status` reads.
    #[arg(long, value_name = "DIR", default_value = "/run/netev")]
    pub run_dir: PathBuf,

    /// Directory for the rules database (rules.db).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/netev")]
    pub state_dir: PathBuf,

    /// Seconds an unanswered prompt waits before it expires (the ask
    /// fallback has already been applied; a later attempt asks again).
    #[arg(long, value_name = "SECONDS", default_value = "60")]
    pub prompt_timeout: u64,

    /// Where events are stored: sqlite (netev.db in the state dir),
    /// sqlite:/path/to/file.db, a PostgreSQL URL (postgres://user@host/db),
    /// or none.
    #[arg(long, value_name = "STORE", default_value = "sqlite")]
    pub store: store::StoreSpec,

    /// Stored events older than this are deleted (30d, 12h, 90m; 0 keeps
    /// them).
    #[arg(long, value_name = "AGE", default_value = "30d")]
    pub store_max_age: store::MaxAge,

    /// At most this many stored events; the oldest go first (0: no limit).
    #[arg(long, value_name = "N", default_value = "10000000")]
    pub store_max_rows: u64,

    /// The host name stored with every event [default: this machine's].
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,

    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
}

fn parse_size(s: &str) -> Result<u32, String> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1u64 << 20),
        _ => (s, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 65536, 512K, 16M)"))?;
    let bytes = n * mult;
    if bytes < 4096 || !bytes.is_power_of_two() || bytes > (1 << 30) {
        return Err(format!(
            "{s} is not a power of two between 4K and 1024M (the kernel requires it)"
        ));
    }
    Ok(bytes as u32)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match daemon::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netevd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("3000").unwrap_err().contains("power of two"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
    }
}
