//! The configuration file, `/etc/netev/netev.toml` (docs/configuration.md).
//!
//! Every key has a command-line flag of the same meaning; a flag given on
//! the command line wins over the file, and the file wins over the built-in
//! default. Each value goes through the same parser as its flag, so the file
//! and the flags accept exactly the same things. Unknown keys and bad values
//! are errors naming the file, the line and the key: a typo in a security
//! tool's configuration must not silently fall back to a default.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use netev_event::Op;
use netev_rules::Action;
use toml_edit::{ImDocument, Item, Value};

use crate::bus::BusSpec;
use crate::store::{MaxAge, StoreSpec};
use crate::Args;

/// Where the file is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/netev/netev.toml";

/// A problem in the file, at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the file could not be read at all.
    pub line: usize,
    /// The dotted key (`store.max_rows`), empty for a syntax error.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.key.is_empty()) {
            (0, _) => write!(f, "{}: {}", self.file.display(), self.reason),
            (l, true) => write!(f, "{}:{l}: {}", self.file.display(), self.reason),
            (l, false) => write!(
                f,
                "{}:{l}: {}: {}",
                self.file.display(),
                self.key,
                self.reason
            ),
        }
    }
}

impl std::error::Error for Problem {}

/// What the file sets; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    pub cgroup: Option<PathBuf>,
    pub bus: Option<BusSpec>,
    pub access_group: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    pub coalesce: Option<bool>,
    pub ringbuf_size: Option<u32>,
    pub store: Option<StoreSpec>,
    pub store_max_age: Option<MaxAge>,
    pub store_max_rows: Option<u64>,
    pub host_name: Option<String>,
    pub prompt_timeout: Option<u64>,
    /// `policy.default` first (all ops), then per-op keys, in file order.
    pub policy: Vec<(PolicyKey, Action)>,
    pub ask_fallback: Option<Action>,
    pub rules_file: Option<PathBuf>,
    pub pin_dir: Option<crate::PinDir>,
}

/// What a `[policy]` action applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKey {
    All,
    Op(Op),
}

/// Every key the file may hold, for docs and tests: (table, key).
pub const KEYS: &[(&str, &str)] = &[
    ("", "cgroup"),
    ("", "bus"),
    ("", "access_group"),
    ("", "state_dir"),
    ("", "run_dir"),
    ("", "log_level"),
    ("", "pin_dir"),
    ("capture", "coalesce"),
    ("capture", "ringbuf_size"),
    ("store", "url"),
    ("store", "max_age"),
    ("store", "max_rows"),
    ("store", "host_name"),
    ("policy", "default"),
    ("policy", "socket"),
    ("policy", "bind"),
    ("policy", "listen"),
    ("policy", "connect"),
    ("policy", "accept"),
    ("policy", "sendmsg"),
    ("policy", "recvmsg"),
    ("policy", "ask_fallback"),
    ("policy", "prompt_timeout"),
    ("rules", "file"),
];

/// The keys that changed between `a` and `b` among those read only at
/// start (everything but the policy, the prompt timeout, the log level and
/// the rules file).
pub fn restart_only_changes(a: &Args, b: &Args) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            out.push(key)
        }
    };
    check(a.cgroup != b.cgroup, "cgroup");
    check(a.bus != b.bus, "bus");
    check(a.access_group != b.access_group, "access_group");
    check(a.state_dir != b.state_dir, "state_dir");
    check(a.run_dir != b.run_dir, "run_dir");
    check(a.pin_dir != b.pin_dir, "pin_dir");
    check(a.no_coalesce != b.no_coalesce, "capture.coalesce");
    check(a.ringbuf_size != b.ringbuf_size, "capture.ringbuf_size");
    check(a.store != b.store, "store.url");
    check(a.store_max_age != b.store_max_age, "store.max_age");
    check(a.store_max_rows != b.store_max_rows, "store.max_rows");
    check(a.host_name != b.host_name, "store.host_name");
    out
}

/// The settings in force, one `key = value` per line, as `--check-config`
/// prints them.
pub fn describe(args: &Args) -> String {
    let or_default = |o: Option<String>, d: &str| o.unwrap_or_else(|| d.to_string());
    let age = match args.store_max_age.0 {
        None => "0".to_string(),
        Some(d) => format!("{}s", d.as_secs()),
    };
    let mut lines = vec![
        format!(
            "cgroup = {}",
            or_default(
                args.cgroup.as_ref().map(|p| p.display().to_string()),
                "(the cgroup v2 root)"
            )
        ),
        format!("bus = {}", args.bus),
        format!("access_group = {}", args.access_group),
        format!("state_dir = {}", args.state_dir.display()),
        format!("run_dir = {}", args.run_dir.display()),
        format!("log_level = {}", args.log_level),
        format!("pin_dir = {}", args.pin_dir),
        format!("capture.coalesce = {}", !args.no_coalesce),
        format!("capture.ringbuf_size = {}", args.ringbuf_size),
        format!("store.url = {}", args.store),
        format!("store.max_age = {age}"),
        format!("store.max_rows = {}", args.store_max_rows),
        format!(
            "store.host_name = {}",
            or_default(args.host_name.clone(), "(this machine's name)")
        ),
        format!("policy.prompt_timeout = {}", args.prompt_timeout),
    ];
    for (key, action) in &args.file.policy {
        let name = match key {
            PolicyKey::All => "default".to_string(),
            PolicyKey::Op(op) => op.name().to_string(),
        };
        lines.push(format!("policy.{name} = {}", action.name()));
    }
    if let Some(a) = args.file.ask_fallback {
        lines.push(format!("policy.ask_fallback = {}", a.name()));
    }
    if args.file.policy.is_empty() && args.file.ask_fallback.is_none() {
        lines.push("policy: as stored in the state dir (netev rules default)".into());
    }
    lines.push(format!(
        "rules.file = {}",
        or_default(
            args.rules_file.as_ref().map(|p| p.display().to_string()),
            "(none: the rules database in the state dir)"
        )
    ));
    lines.join("\n")
}

/// Reads the file. A missing file is fine when `required` is false (the
/// default path on a machine that has none): every setting keeps its
/// default.
pub fn load(path: &Path, required: bool) -> Result<FileSettings, Problem> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(FileSettings::default())
        }
        Err(e) => {
            return Err(Problem {
                file: path.into(),
                line: 0,
                key: String::new(),
                reason: format!("cannot read it: {e}"),
            })
        }
    };
    parse(path, &text)
}

/// Parses the text of a configuration file.
pub fn parse(path: &Path, text: &str) -> Result<FileSettings, Problem> {
    let at = |span: Option<std::ops::Range<usize>>, key: &str, reason: String| Problem {
        file: path.into(),
        line: span.map_or(1, |s| line_of(text, s.start)),
        key: key.into(),
        reason,
    };
    let doc = ImDocument::parse(text).map_err(|e| {
        let reason = e.message().trim().to_string();
        at(e.span(), "", format!("not valid TOML: {reason}"))
    })?;
    let mut out = FileSettings::default();
    for (name, item) in doc.as_table().iter() {
        match item {
            Item::Table(table) => {
                if !KEYS.iter().any(|(t, _)| *t == name) {
                    return Err(at(
                        doc.as_table().key(name).and_then(|k| k.span()),
                        name,
                        format!("unknown table; the tables are {}", table_names()),
                    ));
                }
                for (key, value) in table.iter() {
                    let dotted = format!("{name}.{key}");
                    let span = table.key(key).and_then(|k| k.span());
                    let Some(v) = value.as_value() else {
                        return Err(at(span, &dotted, "expected a value, not a table".into()));
                    };
                    set(&mut out, name, key, v).map_err(|reason| {
                        let span = if reason.starts_with("unknown key") {
                            span
                        } else {
                            v.span().or(span)
                        };
                        at(span, &dotted, reason)
                    })?;
                }
            }
            Item::Value(v) => {
                let span = doc.as_table().key(name).and_then(|k| k.span());
                set(&mut out, "", name, v).map_err(|reason| {
                    let span = if reason.starts_with("unknown key") {
                        span
                    } else {
                        v.span().or(span)
                    };
                    at(span, name, reason)
                })?;
            }
            _ => {
                let span = doc.as_table().key(name).and_then(|k| k.span());
                return Err(at(span, name, "arrays of tables are not used here".into()));
            }
        }
    }
    Ok(out)
}

fn table_names() -> String {
    let names: BTreeSet<&str> = KEYS
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| !t.is_empty())
        .collect();
    names
        .into_iter()
        .map(|t| format!("[{t}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn string(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected a string in quotes, found {}", v.type_name()))
}

fn path(v: &Value) -> Result<PathBuf, String> {
    let s = string(v)?;
    if !s.starts_with('/') {
        return Err(format!("{s:?} is not an absolute path"));
    }
    Ok(s.into())
}

fn integer(v: &Value) -> Result<u64, String> {
    let n = v
        .as_integer()
        .ok_or_else(|| format!("expected a whole number, found {}", v.type_name()))?;
    u64::try_from(n).map_err(|_| format!("{n} is negative"))
}

fn action(v: &Value) -> Result<Action, String> {
    string(v)?.parse::<Action>().map_err(|e| e.to_string())
}

/// Parses one value into its setting, with the flag's own parser.
fn set(out: &mut FileSettings, table: &str, key: &str, v: &Value) -> Result<(), String> {
    match (table, key) {
        ("", "cgroup") => out.cgroup = Some(path(v)?),
        ("", "bus") => out.bus = Some(string(v)?.parse()?),
        ("", "access_group") => out.access_group = Some(string(v)?.to_string()),
        ("", "state_dir") => out.state_dir = Some(path(v)?),
        ("", "run_dir") => out.run_dir = Some(path(v)?),
        ("", "pin_dir") => out.pin_dir = Some(string(v)?.parse()?),
        ("", "log_level") => {
            let s = string(v)?;
            tracing_subscriber::EnvFilter::try_new(s)
                .map_err(|e| format!("{s:?} is not a log level or filter: {e}"))?;
            out.log_level = Some(s.to_string());
        }
        ("capture", "coalesce") => {
            out.coalesce = Some(
                v.as_bool()
                    .ok_or_else(|| format!("expected true or false, found {}", v.type_name()))?,
            )
        }
        ("capture", "ringbuf_size") => {
            let text = match v.as_integer() {
                Some(n) => n.to_string(),
                None => string(v)?.to_string(),
            };
            out.ringbuf_size = Some(crate::parse_size(&text)?);
        }
        ("store", "url") => out.store = Some(string(v)?.parse::<StoreSpec>()?),
        ("store", "max_age") => {
            let text = match v.as_integer() {
                Some(0) => "0".to_string(),
                _ => string(v)?.to_string(),
            };
            out.store_max_age = Some(text.parse::<MaxAge>()?);
        }
        ("store", "max_rows") => out.store_max_rows = Some(integer(v)?),
        ("store", "host_name") => out.host_name = Some(string(v)?.to_string()),
        ("policy", "default") => out.policy.insert(0, (PolicyKey::All, action(v)?)),
        ("policy", "ask_fallback") => {
            let a = action(v)?;
            if a == Action::Ask {
                return Err("the ask fallback is what happens while asking: allow or deny".into());
            }
            out.ask_fallback = Some(a);
        }
        ("policy", "prompt_timeout") => {
            let n = integer(v)?;
            if n == 0 {
                return Err("0 seconds would expire every prompt at once".into());
            }
            out.prompt_timeout = Some(n);
        }
        ("policy", op) if op.parse::<Op>().is_ok() => {
            let op = op.parse::<Op>().expect("checked");
            out.policy.push((PolicyKey::Op(op), action(v)?));
        }
        ("rules", "file") => out.rules_file = Some(path(v)?),
        _ => {
            let known: Vec<&str> = KEYS
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(_, k)| *k)
                .collect();
            return Err(format!("unknown key; known here: {}", known.join(", ")));
        }
    }
    Ok(())
}

impl FileSettings {
    /// Puts the file's values into `args` wherever the command line did
    /// not set them (`from_cli` names the flags it set, by their clap ids).
    pub fn apply(&self, args: &mut Args, from_cli: &BTreeSet<String>) {
        let cli = |id: &str| from_cli.contains(id);
        macro_rules! take {
            ($field:ident) => {
                if !cli(stringify!($field)) {
                    if let Some(v) = &self.$field {
                        args.$field = v.clone().into();
                    }
                }
            };
        }
        take!(bus);
        take!(access_group);
        take!(state_dir);
        take!(run_dir);
        take!(log_level);
        take!(ringbuf_size);
        take!(store);
        take!(store_max_age);
        take!(store_max_rows);
        take!(prompt_timeout);
        take!(pin_dir);
        if !cli("cgroup") && self.cgroup.is_some() {
            args.cgroup = self.cgroup.clone();
        }
        if !cli("host_name") && self.host_name.is_some() {
            args.host_name = self.host_name.clone();
        }
        if !cli("rules_file") && self.rules_file.is_some() {
            args.rules_file = self.rules_file.clone();
        }
        if !cli("no_coalesce") {
            if let Some(c) = self.coalesce {
                args.no_coalesce = !c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<FileSettings, Problem> {
        parse(Path::new("/etc/netev/netev.toml"), text)
    }

    /// The shipped file: every key, with its default, some commented out.
    const SHIPPED: &str = include_str!("../../../dist/netev.toml");

    #[test]
    fn every_documented_key_parses() {
        assert!(parse_str(SHIPPED).is_ok());
        // and with every commented-out key line in force
        let every: String = SHIPPED
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if KEYS
                        .iter()
                        .any(|(_, k)| rest.starts_with(&format!("{k} ="))) =>
                {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let s = parse_str(&every).unwrap();
        assert_eq!(s.cgroup, Some("/sys/fs/cgroup".into()));
        assert_eq!(s.host_name.as_deref(), Some("web-1"));
        assert_eq!(s.rules_file, Some("/etc/netev/rules.toml".into()));
        assert_eq!(s.bus, Some("system".parse().unwrap()));
        assert_eq!(s.access_group.as_deref(), Some("netev"));
        assert_eq!(s.state_dir, Some("/var/lib/netev".into()));
        assert_eq!(s.run_dir, Some("/run/netev".into()));
        assert_eq!(s.log_level.as_deref(), Some("info"));
        assert_eq!(s.coalesce, Some(true));
        assert_eq!(s.ringbuf_size, Some(8 << 20));
        assert_eq!(s.store, Some(StoreSpec::Sqlite(None)));
        assert_eq!(s.store_max_rows, Some(10_000_000));
        assert!(s.store_max_age.is_some());
        assert_eq!(s.prompt_timeout, Some(60));
        assert_eq!(s.ask_fallback, Some(Action::Deny));
        assert_eq!(s.policy.len(), 8, "default plus the seven ops");
        assert_eq!(s.policy[0], (PolicyKey::All, Action::Allow));
        // every key in KEYS appears in the shipped file
        for (t, k) in KEYS {
            let line = format!("{k} =");
            assert!(
                every.lines().any(|l| l.starts_with(&line))
                    && (t.is_empty() || every.contains(&format!("[{t}]"))),
                "dist/netev.toml lacks {t}.{k}"
            );
        }
        let doc = include_str!("../../../docs/configuration.md");
        for (t, k) in KEYS {
            let dotted = if t.is_empty() {
                k.to_string()
            } else {
                format!("{t}.{k}")
            };
            assert!(doc.contains(&format!("`{dotted}`")), "docs lack `{dotted}`");
        }
    }

    #[test]
    fn an_empty_or_missing_file_sets_nothing() {
        assert_eq!(parse_str("").unwrap(), FileSettings::default());
        let missing = Path::new("/nonexistent/netev.toml");
        assert_eq!(load(missing, false).unwrap(), FileSettings::default());
        let e = load(missing, true).unwrap_err().to_string();
        assert!(
            e.starts_with("/nonexistent/netev.toml: cannot read it"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "bus = \"system\"\nstat_dir = \"/var/lib/netev\"\n",
                "/etc/netev/netev.toml:2: stat_dir: unknown key",
            ),
            (
                "[store]\nurl = \"sqlite\"\nmax_rows = -5\n",
                "/etc/netev/netev.toml:3: store.max_rows: -5 is negative",
            ),
            (
                "[store]\n\nurl = \"mysql://x\"\n",
                "/etc/netev/netev.toml:3: store.url: \"mysql://x\" is not a store",
            ),
            (
                "[capture]\nringbuf_size = \"3000\"\n",
                "/etc/netev/netev.toml:2: capture.ringbuf_size: 3000 is not a power of two",
            ),
            (
                "[capture]\ncoalesce = \"yes\"\n",
                "/etc/netev/netev.toml:2: capture.coalesce: expected true or false",
            ),
            (
                "[policy]\nconnect = \"maybe\"\n",
                "/etc/netev/netev.toml:2: policy.connect: ",
            ),
            (
                "[policy]\nask_fallback = \"ask\"\n",
                "/etc/netev/netev.toml:2: policy.ask_fallback: the ask fallback",
            ),
            (
                "[polcy]\nconnect = \"deny\"\n",
                "/etc/netev/netev.toml:1: polcy: unknown table",
            ),
            (
                "state_dir = \"var/lib\"\n",
                "/etc/netev/netev.toml:1: state_dir: \"var/lib\" is not an absolute path",
            ),
            ("bus = \n", "/etc/netev/netev.toml:1: not valid TOML"),
            (
                "log_level = \"info,,=[\"\n",
                "/etc/netev/netev.toml:1: log_level: ",
            ),
        ];
        for (text, want) in cases {
            let got = parse_str(text).unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        use clap::{CommandFactory, FromArgMatches};
        let m = Args::command()
            .try_get_matches_from(["netevd", "--state-dir", "/srv/netev"])
            .unwrap();
        let mut args = Args::from_arg_matches(&m).unwrap();
        let file = parse_str(
            "state_dir = \"/var/lib/other\"\nrun_dir = \"/run/other\"\n[capture]\ncoalesce = false\n",
        )
        .unwrap();
        file.apply(&mut args, &crate::given_on_command_line(&m));
        assert_eq!(args.state_dir, PathBuf::from("/srv/netev"));
        assert_eq!(args.run_dir, PathBuf::from("/run/other"));
        assert!(args.no_coalesce);
    }
}
