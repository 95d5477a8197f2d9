//! netevd's configuration: the command line and the file
//! `/etc/netev/netev.toml` (docs/configuration.md), read into one struct,
//! [`Args`].
//!
//! Every key of the file but the `[policy]` actions has a flag of the same
//! meaning, and that flag's clap id is the key's dotted name
//! (`store.max_age`). The file is read first, and each value it sets becomes
//! the default of its flag: so a flag given on the command line wins, the
//! file wins over the built-in default, and the value in force went through
//! the flag's own parser whichever of the three it came from. The file's
//! values are also checked as the file is read, by that same parser, so
//! that unknown keys and bad values are errors naming the file, the line and
//! the key: a typo in a security tool's configuration must not silently
//! fall back to a default.
//!
//! The file is read by serde into `file::File`, one struct per table, so
//! a new key is a flag in [`Args`], a field in its table's struct, and a
//! line in [`Args::settings`] (what `--check-config` shows and a reload
//! compares). Nothing here knows the bus, the store, the rules or the daemon: the
//! values' types are in `settings`.

mod file;

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};
use netev_export::ExportTarget;

pub use file::{load, FileSettings, PolicyKey, Problem};

use crate::settings::{
    parse_size, Backend, BusSpec, MaxAge, MetricsAddr, PinDir, PrintFormat, StoreSpec,
};

/// Where the file is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/netev/netev.toml";

// The flags that are also keys of the file have the key's dotted name as
// their id (see the module's doc), and so an explicit `long`: clap would
// derive it from the id.
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

    /// Check which capture backend this kernel loads (each one's programs
    /// are loaded and verified, nothing is attached), print one line per
    /// backend and the one --backend would run, and exit (0 if one can, 1
    /// if none can). `netev doctor` runs it.
    #[arg(long)]
    pub check_backend: bool,

    /// cgroup v2 directory to attach to [default: the cgroup v2 root, from /proc/mounts].
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Print every event to standard output.
    #[arg(long, value_name = "FORMAT")]
    pub print: Option<PrintFormat>,

    /// Stay in the foreground (no daemonizing); logs go to standard error.
    #[arg(long)]
    pub foreground: bool,

    /// Capture backend: auto (BPF LSM where the kernel runs LSM programs,
    /// else cgroup), lsm (BPF LSM or fail), cgroup (cgroup-BPF hooks and
    /// syscall tracepoints). `netev status` says which runs and why.
    #[arg(
        id = "capture.backend",
        long = "backend",
        value_name = "BACKEND",
        default_value = "auto"
    )]
    pub backend: Backend,

    /// One event per send/recv call instead of one per flow per second.
    #[arg(id = "capture.coalesce", long = "no-coalesce")]
    pub no_coalesce: bool,

    /// Ring-buffer size in bytes: a power of two, at least 4096 (suffixes K, M).
    #[arg(id = "capture.ringbuf_size", long = "ringbuf-size", value_name = "BYTES",
          default_value = "8M", value_parser = parse_size)]
    pub ringbuf_size: u32,

    /// D-Bus to serve org.netev.Daemon1 on: system, session, none, or an
    /// address (unix:path=...).
    #[arg(long, value_name = "BUS", default_value = "system")]
    pub bus: BusSpec,

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
    #[arg(
        id = "policy.prompt_timeout",
        long = "prompt-timeout",
        value_name = "SECONDS",
        default_value = "60"
    )]
    pub prompt_timeout: u64,

    /// Where events are stored: sqlite (netev.db in the state dir),
    /// sqlite:/path/to/file.db, a PostgreSQL URL (postgres://user@host/db),
    /// or none.
    #[arg(
        id = "store.url",
        long = "store",
        value_name = "STORE",
        default_value = "sqlite"
    )]
    pub store: StoreSpec,

    /// Stored events older than this are deleted (30d, 12h, 90m; 0 keeps
    /// them).
    #[arg(
        id = "store.max_age",
        long = "store-max-age",
        value_name = "AGE",
        default_value = "30d"
    )]
    pub store_max_age: MaxAge,

    /// At most this many stored events; the oldest go first (0: no limit).
    #[arg(
        id = "store.max_rows",
        long = "store-max-rows",
        value_name = "N",
        default_value = "10000000"
    )]
    pub store_max_rows: u64,

    /// The host name stored with every event [default: this machine's].
    #[arg(id = "store.host_name", long = "host-name", value_name = "NAME")]
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
    #[arg(id = "rules.file", long = "rules-file", value_name = "FILE")]
    pub rules_file: Option<PathBuf>,

    /// Serve the counters `netev status` shows as OpenMetrics (Prometheus)
    /// text at http://ADDR:PORT/metrics: ADDR:PORT, a port alone (on
    /// 127.0.0.1), or off. Anyone who can connect can read them.
    #[arg(
        id = "metrics.listen",
        long = "metrics",
        value_name = "ADDR:PORT",
        default_value = "off"
    )]
    pub metrics: MetricsAddr,

    /// Send every event on as it is captured (docs/export.md):
    /// nats://HOST:PORT, syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT,
    /// syslog+udp://HOST:PORT or file:PATH, each with ?format=netev|ocsf
    /// and its options. Repeat for several. Given here, it replaces the
    /// file's [[export]] tables. Credentials go in a file (creds=PATH),
    /// never in the URL.
    #[arg(id = "export", long = "export", value_name = "URL")]
    pub export: Vec<ExportTarget>,

    /// The configuration file as read (for reloads).
    #[arg(skip)]
    pub file: FileSettings,

    /// The command line as given, parsed again on reload.
    #[arg(skip)]
    pub argv: Vec<OsString>,
}

impl Args {
    /// The command line, then the configuration file where the command line
    /// said nothing.
    pub fn from_command_line() -> Result<Args, Problem> {
        Args::from_argv(std::env::args_os().collect())
    }

    /// [`Args::from_command_line`] for a given command line.
    pub fn from_argv(argv: Vec<OsString>) -> Result<Args, Problem> {
        // The command line alone first: --help, --version and bad flags end
        // here, and --config says which file to read.
        let given = Args::parse_or_exit(Args::command(), &argv);
        let file = load(&given.config_path(), given.config.is_some())?;
        let mut args = Args::with_file(&argv, file);
        args.argv = argv;
        Ok(args)
    }

    /// The command line with `file`'s values as the flags' defaults.
    fn with_file<I: Into<OsString> + Clone>(argv: &[I], file: FileSettings) -> Args {
        let cmd = file
            .flag_defaults()
            .into_iter()
            .fold(Args::command(), |cmd, (id, text)| {
                cmd.mut_arg(id, |a| a.default_value(text))
            });
        let mut args = Args::parse_or_exit(cmd, argv);
        if args.export.is_empty() {
            args.export = file.file.export.iter().map(|e| e.0.clone()).collect();
        }
        args.file = file;
        args
    }

    fn parse_or_exit<I: Into<OsString> + Clone>(cmd: clap::Command, argv: &[I]) -> Args {
        let m = cmd
            .try_get_matches_from(argv.iter().cloned())
            .unwrap_or_else(|e| e.exit());
        Args::from_arg_matches(&m).unwrap_or_else(|e| e.exit())
    }

    /// The configuration file in use.
    pub fn config_path(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(|| DEFAULT_PATH.into())
    }

    /// The same command line with the configuration file read again
    /// (SIGHUP): the flags given keep winning, the rest comes from the file
    /// as it is now or from the defaults.
    pub fn reloaded(&self) -> Result<Args, Problem> {
        Args::from_argv(self.argv.clone())
    }

    /// The settings in force, in the order `--check-config` shows them.
    fn settings(&self) -> Vec<Setting> {
        let path = |p: &Option<PathBuf>, none: &str| match p {
            Some(p) => p.display().to_string(),
            None => none.to_string(),
        };
        let mut out = vec![
            Setting::at_start(
                "cgroup",
                &self.cgroup,
                path(&self.cgroup, "(the cgroup v2 root)"),
            ),
            Setting::at_start("bus", &self.bus, &self.bus),
            Setting::at_start("access_group", &self.access_group, &self.access_group),
            Setting::at_start("state_dir", &self.state_dir, self.state_dir.display()),
            Setting::at_start("run_dir", &self.run_dir, self.run_dir.display()),
            Setting::reloaded("log_level", &self.log_level, &self.log_level),
            Setting::at_start("pin_dir", &self.pin_dir, &self.pin_dir),
            Setting::at_start("capture.backend", &self.backend, self.backend),
            Setting::at_start("capture.coalesce", &self.no_coalesce, !self.no_coalesce),
            Setting::at_start(
                "capture.ringbuf_size",
                &self.ringbuf_size,
                self.ringbuf_size,
            ),
            Setting::at_start("store.url", &self.store, &self.store),
            Setting::at_start("store.max_age", &self.store_max_age, self.store_max_age),
            Setting::at_start("store.max_rows", &self.store_max_rows, self.store_max_rows),
            Setting::at_start(
                "store.host_name",
                &self.host_name,
                self.host_name.as_deref().unwrap_or("(this machine's name)"),
            ),
            Setting::at_start("metrics.listen", &self.metrics, self.metrics),
            Setting::at_start(
                "export",
                &self.export,
                match self.export.len() {
                    0 => "(none)".to_string(),
                    _ => self
                        .export
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                },
            ),
            Setting::reloaded(
                "policy.prompt_timeout",
                &self.prompt_timeout,
                self.prompt_timeout,
            ),
        ];
        for (key, action) in &self.file.policy {
            let name = match key {
                PolicyKey::All => "default",
                PolicyKey::Op(op) => op.name(),
            };
            out.push(Setting::reloaded(
                format!("policy.{name}"),
                action,
                action.name(),
            ));
        }
        if let Some(a) = self.file.ask_fallback {
            out.push(Setting::reloaded("policy.ask_fallback", &a, a.name()));
        }
        if self.file.policy.is_empty() && self.file.ask_fallback.is_none() {
            out.push(Setting {
                key: "policy".into(),
                line: "policy: as stored in the state dir (netev rules default)".into(),
                value: String::new(),
                reloaded: true,
            });
        }
        out.push(Setting::reloaded(
            "rules.file",
            &self.rules_file,
            path(
                &self.rules_file,
                "(none: the rules database in the state dir)",
            ),
        ));
        out
    }
}

/// One setting in force: how `--check-config` shows it, and what a reload
/// compares.
struct Setting {
    key: String,
    line: String,
    /// The value in full (`Debug`: a database password included), compared
    /// on reload and never shown.
    value: String,
    /// Whether a reload applies it (else it waits for a restart).
    reloaded: bool,
}

impl Setting {
    fn new(
        key: impl Into<String>,
        value: &dyn fmt::Debug,
        shown: impl fmt::Display,
        reloaded: bool,
    ) -> Setting {
        let key = key.into();
        Setting {
            line: format!("{key} = {shown}"),
            key,
            value: format!("{value:?}"),
            reloaded,
        }
    }

    fn at_start(key: impl Into<String>, value: &dyn fmt::Debug, shown: impl fmt::Display) -> Self {
        Setting::new(key, value, shown, false)
    }

    fn reloaded(key: impl Into<String>, value: &dyn fmt::Debug, shown: impl fmt::Display) -> Self {
        Setting::new(key, value, shown, true)
    }
}

/// The keys that changed between `a` and `b` among those read only at
/// start (everything but the policy, the prompt timeout, the log level and
/// the rules file).
pub fn restart_only_changes(a: &Args, b: &Args) -> Vec<String> {
    let before = a.settings();
    b.settings()
        .into_iter()
        .filter(|now| !now.reloaded)
        .filter(|now| {
            before
                .iter()
                .find(|was| was.key == now.key)
                .is_none_or(|was| was.value != now.value)
        })
        .map(|s| s.key)
        .collect()
}

/// The settings in force, one `key = value` per line, as `--check-config`
/// prints them.
pub fn describe(args: &Args) -> String {
    let lines: Vec<String> = args.settings().into_iter().map(|s| s.line).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use file::{keys, parse, File};
    use std::path::Path;

    fn parse_str(text: &str) -> Result<FileSettings, Problem> {
        parse(Path::new("/etc/netev/netev.toml"), text)
    }

    #[test]
    fn every_value_the_file_sets_reaches_its_flag() {
        let s = parse_str(&file::tests::shipped_with_every_key()).unwrap();
        let args = Args::with_file(&["netevd"], s);
        assert_eq!(args.cgroup, Some("/sys/fs/cgroup".into()));
        assert_eq!(args.host_name.as_deref(), Some("web-1"));
        assert_eq!(args.rules_file, Some("/etc/netev/rules.toml".into()));
        assert_eq!(args.metrics.to_string(), "127.0.0.1:9477");
        assert_eq!(args.export.len(), 2);
        // --export replaces the file's [[export]] tables
        let s = parse_str(&file::tests::shipped_with_every_key()).unwrap();
        let args = Args::with_file(&["netevd", "--export", "syslog+udp://[::1]:514"], s);
        let t: Vec<String> = args.export.iter().map(ToString::to_string).collect();
        assert_eq!(t, ["syslog+udp://[::1]:514?format=netev"]);
    }

    #[test]
    fn the_keys_are_read_from_the_file_structs() {
        let k = keys();
        assert_eq!(k.len(), 35, "{k:?}");
        assert_eq!(k[0], ("", "cgroup"));
        assert!(k.contains(&("capture", "ringbuf_size")));
        assert!(k.contains(&("capture", "backend")));
        assert!(k.contains(&("store", "max_age")));
        assert!(k.contains(&("policy", "recvmsg")));
        assert!(k.contains(&("rules", "file")));
        assert!(k.contains(&("metrics", "listen")));
        // every table is a field of the file
        for (t, _) in file::TABLES {
            assert!(file::keys_of::<File>().contains(&t), "{t}");
        }
        // every key but the policy actions is a flag's id; an [[export]]
        // table is one --export URL (its keys are the URL's options)
        let cmd = Args::command();
        assert!(cmd.get_arguments().any(|a| a.get_id() == "export"));
        for (t, k) in k.into_iter().filter(|(t, _)| *t != "export") {
            let dotted = if t.is_empty() {
                k.to_string()
            } else {
                format!("{t}.{k}")
            };
            let has_flag = cmd.get_arguments().any(|a| a.get_id() == dotted.as_str());
            let action = t == "policy" && k != "prompt_timeout";
            assert_eq!(has_flag, !action, "{dotted}");
        }
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let file = parse_str(
            "state_dir = \"/var/lib/other\"\nrun_dir = \"/run/other\"\n[capture]\ncoalesce = false\n",
        )
        .unwrap();
        let args = Args::with_file(&["netevd", "--state-dir", "/srv/netev"], file);
        assert_eq!(args.state_dir, PathBuf::from("/srv/netev"));
        assert_eq!(args.run_dir, PathBuf::from("/run/other"));
        assert!(args.no_coalesce);
    }

    #[test]
    fn the_file_wins_over_the_defaults_and_a_restart_only_change_is_named() {
        let file = parse_str(
            "[capture]\nringbuf_size = \"64K\"\n[store]\nurl = \"postgres://u:s3cr3t@db/netev\"\nmax_age = 0\n[policy]\nprompt_timeout = 5\n",
        )
        .unwrap();
        let a = Args::with_file(&["netevd"], file);
        assert_eq!(a.ringbuf_size, 64 << 10);
        assert_eq!(a.store_max_age, MaxAge(None));
        assert_eq!(a.prompt_timeout, 5);
        let said = describe(&a);
        assert!(said.contains("\ncapture.ringbuf_size = 65536\n"), "{said}");
        assert!(said.contains("\nstore.max_age = 0\n"), "{said}");
        assert!(!said.contains("s3cr3t"), "no password: {said}");
        let b = Args::with_file(
            &["netevd", "--prompt-timeout", "9", "--log-level", "debug"],
            parse_str("[store]\nurl = \"postgres://u:two@db/netev\"\n").unwrap(),
        );
        assert_eq!(
            restart_only_changes(&a, &b),
            ["capture.ringbuf_size", "store.url", "store.max_age"]
        );
        assert!(restart_only_changes(&b, &b.clone()).is_empty());
    }
}
