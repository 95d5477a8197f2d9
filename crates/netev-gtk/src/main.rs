//! netev-gtk: tray item, prompts as notifications, the "Create a rule"
//! dialog and the "Security console". Parse, then hand over to `app`.

use std::path::PathBuf;

use clap::Parser;
use netev_gtk::app::{self, Options};
use netev_gtk::bus::BusChoice;

/// netev's desktop front-end (see docs/gtk.md).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The bus netevd serves on: system, session, or an address
    /// (unix:path=/run/netev/bus).
    #[arg(long, value_name = "BUS", default_value = "system", env = "NETEV_BUS")]
    bus: BusChoice,
    /// How long a rule made by Allow or Deny in a notification lives:
    /// once, 5m, 1h, until-restart, always, …
    #[arg(long, value_name = "DURATION", default_value = "always")]
    duration: String,
    /// What such a rule names besides the program and the op.
    #[arg(long, value_name = "SCOPE", default_value = "exe+dest+port",
          value_parser = netev_rules::fields::ANSWER_SCOPES)]
    scope: String,
    /// Do not put an item in the tray (the console opens instead).
    #[arg(long)]
    no_tray: bool,
    /// Open the Security console at start.
    #[arg(long)]
    console: bool,
    /// Write what the app shows (state, prompts, the console's rules) to
    /// this file as JSON on every change; for tests and scripts.
    #[arg(long, value_name = "PATH")]
    state_file: Option<PathBuf>,
    /// Also export the console's actions that change something
    /// (import-rules, delete-rules, set-rule-enabled, pause-prompts) on the
    /// session bus, where every process of your user can activate them;
    /// for tests and scripts (docs/gtk.md).
    #[arg(long)]
    export_change_actions: bool,
}

fn main() -> std::process::ExitCode {
    if let Some(code) = netev_clidoc::generate_if_asked(<Cli as clap::CommandFactory>::command, "1")
    {
        return code;
    }
    let cli = Cli::parse();
    // Non-dumpable: another process of this user (a program it answers
    // about, under netev run) could otherwise ptrace it or take its bus
    // connection (`pidfd_getfd`) and answer in its name.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if let Err(e) = netev_rules::Duration::parse(&cli.duration, chrono::Utc::now()) {
        eprintln!("netev-gtk: --duration: {e}");
        return std::process::ExitCode::from(2);
    }
    let code = app::run(Options {
        bus: cli.bus,
        duration: cli.duration,
        scope: cli.scope,
        no_tray: cli.no_tray,
        console: cli.console,
        state_file: cli.state_file,
        export_change_actions: cli.export_change_actions,
    });
    std::process::ExitCode::from(code.get() as u8)
}
