//! netevd: captures every network syscall with eBPF and reports it.
//! Parse the flags, set up logging, run. The work is in `daemon`.

mod bus;
mod config;
mod daemon;
mod enrich;
mod export;
mod files;
mod metrics;
mod rules;
mod settings;
mod store;

use clap::CommandFactory;

pub use config::Args;
pub use settings::{PinDir, PrintFormat};

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
    if args.check_backend {
        return check_backend(&args);
    }
    init_logging(&args.log_level);
    files::private_umask();
    match daemon::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netevd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--check-backend`: what `netev doctor` reads (one `NAME: loads` or
/// `NAME: WHY NOT` line per backend, then `chosen: NAME` or `chosen: none`).
fn check_backend(args: &Args) -> std::process::ExitCode {
    use netev_bpf::BackendKind;
    let check = netev_bpf::check_backends(args.backend.0);
    for (kind, result) in [
        (BackendKind::BpfLsm, &check.lsm),
        (BackendKind::CgroupTracepoints, &check.cgroup),
    ] {
        match result {
            Ok(()) => println!("{}: loads", kind.name()),
            Err(why) => println!("{}: {why}", kind.name()),
        }
    }
    match check.chosen {
        Some(kind) => {
            println!("chosen: {}", kind.name());
            std::process::ExitCode::SUCCESS
        }
        None => {
            println!("chosen: none");
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
