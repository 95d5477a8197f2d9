//! netevd: captures every network syscall with eBPF and reports it.
//! Parse the flags, set up logging, run. The work is in `daemon`.

mod access;
mod bus;
mod config;
mod daemon;
mod enrich;
mod rules;
mod store;

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

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
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about = None)]
pub struct Args {
    /// Configuration file (docs/configuration.md); flags given here win over
    /// it [default: /etc/netev/netev.toml, if it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the configuration file and the flags, print the settings in
    /// force, and exit (0 if valid, 2 if not) without starting.
    #[arg(long)]
    pub check_config: bool,

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

    /// bpffs directory where the attached programs are pinned, so that they
    /// keep enforcing the rules if netevd dies (the next netevd replaces
    /// them); "none": not pinned, a crash leaves nothing enforced.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/netev")]
    pub pin_dir: PinDir,

    /// A TOML rules file (docs/rules.md) that replaces the stored rules at
    /// start and on every SIGHUP: the file is the source of truth.
    #[arg(long, value_name = "FILE")]
    pub rules_file: Option<PathBuf>,

    /// The configuration file as read (for reloads).
    #[arg(skip)]
    pub file: config::FileSettings,

    /// The command line as given, parsed again on reload.
    #[arg(skip)]
    pub argv: Vec<std::ffi::OsString>,
}

/// The ids of the flags given on the command line (not defaults).
pub fn given_on_command_line(m: &ArgMatches) -> BTreeSet<String> {
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

impl Args {
    /// The command line, then the configuration file where the command line
    /// said nothing.
    fn from_command_line() -> Result<Args, config::Problem> {
        Args::from_argv(std::env::args_os().collect())
    }

    fn from_argv(argv: Vec<std::ffi::OsString>) -> Result<Args, config::Problem> {
        let m = Args::command()
            .try_get_matches_from(&argv)
            .unwrap_or_else(|e| e.exit());
        let mut args = Args::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
        let file = config::load(&args.config_path(), args.config.is_some())?;
        file.apply(&mut args, &given_on_command_line(&m));
        args.file = file;
        args.argv = argv;
        Ok(args)
    }

    /// The configuration file in use.
    pub fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| config::DEFAULT_PATH.into())
    }

    /// The same command line with the configuration file read again
    /// (SIGHUP): the flags given keep winning, the rest comes from the file
    /// as it is now or from the defaults.
    pub fn reloaded(&self) -> Result<Args, config::Problem> {
        Args::from_argv(self.argv.clone())
    }
}

/// `--pin-dir`: a directory on bpffs, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinDir(pub Option<PathBuf>);

impl std::str::FromStr for PinDir {
    type Err = String;
    fn from_str(s: &str) -> Result<PinDir, String> {
        match s {
            "none" => Ok(PinDir(None)),
            p if p.starts_with('/') => Ok(PinDir(Some(p.into()))),
            _ => Err(format!(
                "{s:?} is not an absolute path on bpffs (such as /sys/fs/bpf/netev) or none"
            )),
        }
    }
}

impl std::fmt::Display for PinDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("none"),
            Some(p) => write!(f, "{}", p.display()),
        }
    }
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

/// Changes the log filter of the running daemon (SIGHUP).
pub fn set_log_level(level: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .map_err(|e| format!("{level:?} is not a log level or filter: {e}"))?;
    match LOG_FILTER.get() {
        Some(set) => set(filter),
        None => Ok(()),
    }
}

type SetFilter = Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync>;
static LOG_FILTER: std::sync::OnceLock<SetFilter> = std::sync::OnceLock::new();

/// Whether standard error is systemd's journal stream (set up by systemd
/// for a service): then logs go to journald with their fields.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::File::open("/proc/self/fd/2").and_then(|f| f.metadata()) else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

fn init_logging(level: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let journald = if stderr_is_journal() {
        tracing_journald::layer().ok()
    } else {
        None
    };
    let fmt = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(fmt)
        .init();
    let _ = LOG_FILTER.set(Box::new(move |f| {
        handle.reload(f).map_err(|e| e.to_string())
    }));
}

fn main() -> std::process::ExitCode {
    if let Some(code) = netev_clidoc::generate_if_asked(Args::command, "8") {
        return code;
    }
    let args = match Args::from_command_line() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netevd: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    if args.check_config {
        return check_config(&args);
    }
    init_logging(&args.log_level);
    match daemon::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netevd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--check-config`: the file parsed (else `main` has already said why) and
/// the settings in force printed, for an admin to read.
fn check_config(args: &Args) -> std::process::ExitCode {
    let path = args.config_path();
    if let Some(f) = &args.rules_file {
        if let Err(e) = rules::read_rules_file(f) {
            eprintln!("netevd: {e:#}");
            return std::process::ExitCode::from(2);
        }
    }
    if path.exists() {
        println!("{}: ok", path.display());
    } else {
        println!("{}: not present, built-in defaults", path.display());
    }
    println!("{}", config::describe(args));
    std::process::ExitCode::SUCCESS
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
