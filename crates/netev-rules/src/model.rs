//! What a rule is: the fields a person writes, and their meaning.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use netev_event::{Family, Op, Proto};
use serde::{Deserialize, Serialize};

use crate::RuleError;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let the operation through.
    Allow,
    /// Refuse it: the caller gets EPERM.
    Deny,
    /// Ask a person. The kernel applies the ask fallback at once; the answer
    /// becomes a rule for the next attempt.
    Ask,
}

impl Action {
    /// The name used in files, on the bus and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Ask => "ask",
        }
    }

    /// The ABI value (`enum netev_action` in netev.h).
    pub fn abi(self) -> u8 {
        match self {
            Action::Allow => netev_abi::ACTION_ALLOW,
            Action::Deny => netev_abi::ACTION_DENY,
            Action::Ask => netev_abi::ACTION_ASK,
        }
    }

    /// From the ABI value.
    pub fn from_abi(v: u8) -> Option<Action> {
        match v {
            netev_abi::ACTION_ALLOW => Some(Action::Allow),
            netev_abi::ACTION_DENY => Some(Action::Deny),
            netev_abi::ACTION_ASK => Some(Action::Ask),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Action, RuleError> {
        match s {
            "allow" => Ok(Action::Allow),
            "deny" => Ok(Action::Deny),
            "ask" => Ok(Action::Ask),
            _ => Err(RuleError::Invalid {
                field: "action",
                value: s.to_string(),
                reason: "expected allow, deny or ask".into(),
            }),
        }
    }
}

/// How long a rule lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Duration {
    /// Consumed by the first operation it decides.
    Once,
    /// Until this time (then it no longer matches and is removed).
    Until(DateTime<Utc>),
    /// Until netevd stops: not loaded again at the next start.
    UntilRestart,
    /// Until removed.
    Always,
}

impl Duration {
    /// Parses `once`, `always`, `until-restart`, a length from now (`30s`,
    /// `5m`, `1h`, `2d`, `1w`: netev-units' grammar, in whole seconds) or an
    /// RFC 3339 time (`2026-12-01T00:00:00Z`).
    pub fn parse(s: &str, now: DateTime<Utc>) -> Result<Duration, RuleError> {
        use netev_units::{LengthError, TimeUnit};
        let invalid = |reason: &str| RuleError::Invalid {
            field: "duration",
            value: s.to_string(),
            reason: reason.to_string(),
        };
        match s {
            "once" => return Ok(Duration::Once),
            "always" => return Ok(Duration::Always),
            "until-restart" => return Ok(Duration::UntilRestart),
            _ => {}
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Duration::Until(t.with_timezone(&Utc)));
        }
        let length = match netev_units::parse_length(s) {
            // rules live in whole seconds (the database and the export
            // keep an RFC 3339 time to the second)
            Ok(l) if l.unit == TimeUnit::Millisecond => {
                return Err(invalid("unknown unit: use s, m, h, d or w"))
            }
            Ok(l) => l,
            Err(LengthError::NoUnit(_)) => {
                return Err(invalid("a length needs a unit: s, m, h, d or w (e.g. 5m)"))
            }
            Err(LengthError::UnknownUnit(_)) => {
                return Err(invalid("unknown unit: use s, m, h, d or w"))
            }
            Err(LengthError::TooLong) => return Err(invalid("too long")),
            Err(LengthError::NotANumber) => return Err(invalid(
                "expected once, always, until-restart, a length such as 5m, or an RFC 3339 time",
            )),
        };
        let secs = length
            .duration()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .ok_or_else(|| invalid("too long"))?;
        if secs == 0 {
            return Err(invalid("a length must be more than zero"));
        }
        let len = chrono::Duration::try_seconds(secs).ok_or_else(|| invalid("too long"))?;
        now.checked_add_signed(len)
            .map(Duration::Until)
            .ok_or_else(|| invalid("too long"))
    }

    /// Whether a rule with this duration has stopped applying at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        matches!(self, Duration::Until(t) if *t <= now)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Duration::Once => f.write_str("once"),
            Duration::Until(t) => {
                f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
            Duration::UntilRestart => f.write_str("until-restart"),
            Duration::Always => f.write_str("always"),
        }
    }
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port in the range.
    pub lo: u16,
    /// Last port in the range (>= lo).
    pub hi: u16,
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

impl FromStr for PortRange {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<PortRange, RuleError> {
        let invalid = |reason: &str| RuleError::Invalid {
            field: "ports",
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let num = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| invalid("expected a port (0-65535) or a range such as 8000-8080"))
        };
        let (lo, hi) = match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let p = num(s)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(invalid(
                "the first port of a range must not be above the last",
            ));
        }
        Ok(PortRange { lo, hi })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// Which executables a rule is about: an absolute path, or a glob over
/// absolute paths (`/usr/bin/*`, `/opt/**/bin/*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExeMatch {
    text: String,
    /// Compiled once: matching is on every decision's path.
    glob: Option<glob::Pattern>,
}

impl ExeMatch {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has glob characters.
    pub fn is_glob(&self) -> bool {
        self.glob.is_some()
    }

    /// The directory form the kernel matches without expanding anything:
    /// `DIR/**` (or `DIR/**/*`) gives `(DIR, true)`, `DIR/*` gives
    /// `(DIR, false)`, with DIR free of glob characters (`/**` is `/`).
    /// `None` for an exact path or any other glob, which is expanded when
    /// the rules are installed.
    pub fn directory_form(&self) -> Option<(&str, bool)> {
        self.glob.as_ref()?;
        let t = &self.text;
        let (dir, deep) = t
            .strip_suffix("/**/*")
            .map(|d| (d, true))
            .or_else(|| t.strip_suffix("/**").map(|d| (d, true)))
            .or_else(|| t.strip_suffix("/*").map(|d| (d, false)))?;
        if dir.contains(['*', '?', '[']) {
            return None;
        }
        Some((if dir.is_empty() { "/" } else { dir }, deep))
    }

    /// A glob the kernel cannot match as a directory: expanded against the
    /// filesystem when the rules are installed, so files created later are
    /// not covered until the next install.
    pub fn is_expanded(&self) -> bool {
        self.is_glob() && self.directory_form().is_none()
    }

    /// Whether `path` (an absolute, canonical path) matches.
    pub fn matches(&self, path: &str) -> bool {
        glob_matches(&self.text, self.glob.as_ref(), path)
    }
}

/// `*` stays within one path component; `**` crosses them.
pub(crate) const GLOB_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// The glob of an `exe` or `path` pattern (None for an exact name).
fn compile_glob(
    s: &str,
    invalid: impl Fn(String) -> RuleError,
) -> Result<Option<glob::Pattern>, RuleError> {
    if s.contains('\0') {
        return Err(invalid("must not contain a NUL byte".into()));
    }
    if !s.contains(['*', '?', '[']) {
        return Ok(None);
    }
    glob::Pattern::new(s)
        .map(Some)
        .map_err(|e| invalid(format!("bad glob: {e}")))
}

/// Whether `name` matches an `exe` or `path` pattern: its glob, or the text
/// exactly.
fn glob_matches(text: &str, glob: Option<&glob::Pattern>, name: &str) -> bool {
    match glob {
        Some(p) => p.matches_with(name, GLOB_OPTIONS),
        None => text == name,
    }
}

impl FromStr for ExeMatch {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<ExeMatch, RuleError> {
        let invalid = |reason: String| RuleError::Invalid {
            field: "exe",
            value: s.to_string(),
            reason,
        };
        if !s.starts_with('/') {
            return Err(invalid(
                "must be an absolute path such as /usr/bin/curl".into(),
            ));
        }
        let glob = compile_glob(s, invalid)?;
        Ok(ExeMatch {
            text: s.to_string(),
            glob,
        })
    }
}

impl fmt::Display for ExeMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which unix sockets a rule is about: an absolute path or a glob over
/// paths (`/run/user/*/bus`, `/tmp/tmux-*/**`), or an abstract name written
/// `@` and the name (`@/tmp/.X11-unix/X0`; globs work there too). Matched
/// against the address a call names (connect, sendmsg, bind), as netev run
/// reads it: a relative path made absolute with the caller's working
/// directory, `.` and `..` and repeated slashes folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathMatch {
    text: String,
    glob: Option<glob::Pattern>,
}

impl PathMatch {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (as in [`Query::path`]) matches.
    pub fn matches(&self, path: &str) -> bool {
        glob_matches(&self.text, self.glob.as_ref(), path)
    }
}

impl FromStr for PathMatch {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<PathMatch, RuleError> {
        let invalid = |reason: String| RuleError::Invalid {
            field: "path",
            value: s.to_string(),
            reason,
        };
        if !s.starts_with('/') && !s.starts_with('@') {
            return Err(invalid(
                "must be an absolute unix socket path such as /run/user/*/bus, \
                 or @ and an abstract name"
                    .into(),
            ));
        }
        let glob = compile_glob(s, invalid)?;
        Ok(PathMatch {
            text: s.to_string(),
            glob,
        })
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Address families a rule can name.
pub const RULE_FAMILIES: [Family; 3] = [Family::INET, Family::INET6, Family::UNIX];
/// Protocols a rule can name.
pub const RULE_PROTOS: [Proto; 4] = [Proto::TCP, Proto::UDP, Proto::ICMP, Proto::ICMPV6];

/// Parses a family a rule may name.
pub fn parse_family(s: &str) -> Result<Family, RuleError> {
    Family::from_name(s)
        .filter(|f| RULE_FAMILIES.contains(f))
        .ok_or_else(|| RuleError::Invalid {
            field: "family",
            value: s.to_string(),
            reason: "expected inet, inet6 or unix".into(),
        })
}

/// Parses a protocol a rule may name.
pub fn parse_proto(s: &str) -> Result<Proto, RuleError> {
    Proto::from_name(s)
        .filter(|p| RULE_PROTOS.contains(p))
        .ok_or_else(|| RuleError::Invalid {
            field: "proto",
            value: s.to_string(),
            reason: "expected tcp, udp, icmp or icmpv6".into(),
        })
}

/// Parses an op name.
pub fn parse_op(s: &str) -> Result<Op, RuleError> {
    Op::ALL
        .into_iter()
        .find(|op| op.name() == s)
        .ok_or_else(|| RuleError::Invalid {
            field: "ops",
            value: s.to_string(),
            reason: "expected socket, bind, listen, connect, accept, sendmsg or recvmsg".into(),
        })
}

/// Parses an address or CIDR: `10.0.0.0/8`, `::1`, `fe80::/10`.
pub fn parse_addr(s: &str) -> Result<IpNet, RuleError> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| RuleError::Invalid {
            field: "addr",
            value: s.to_string(),
            reason: "expected an IP address or CIDR such as 10.0.0.0/8 or fe80::/10".into(),
        })
}

/// An IP network as the matcher and the kernel compare it: IPv4 as
/// IPv4-mapped IPv6, so that `127.0.0.1` also covers a dual-stack socket's
/// `::ffff:127.0.0.1`.
pub fn mapped_prefix(net: &IpNet) -> (Ipv6Addr, u8) {
    match net {
        IpNet::V4(n) => (n.network().to_ipv6_mapped(), 96 + n.prefix_len()),
        IpNet::V6(n) => (n.network(), n.prefix_len()),
    }
}

/// An address as the matcher compares it (see [`mapped_prefix`]).
pub fn mapped_addr(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Whether the mapped prefix `(net, len)` contains `addr`.
pub fn prefix_contains(net: Ipv6Addr, len: u8, addr: Ipv6Addr) -> bool {
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(len));
    (u128::from(net) & mask) == (u128::from(addr) & mask)
}

/// The conditions of a rule. An empty condition matches anything; a rule with
/// an address or port condition never matches an operation without one
/// (socket(), or a unix socket).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Conditions {
    /// Ops the rule covers; empty = every op.
    pub ops: Vec<Op>,
    /// The program.
    pub exe: Option<ExeMatch>,
    /// The user id of the calling process.
    pub uid: Option<u32>,
    /// Socket address family.
    pub family: Option<Family>,
    /// IP protocol.
    pub proto: Option<Proto>,
    /// Remote address for connect/sendmsg/accept/recvmsg, local for bind/listen.
    pub addr: Option<IpNet>,
    /// Port on the same side as `addr`.
    pub ports: Option<PortRange>,
    /// A unix socket's path or abstract name, on the same side as `addr`
    /// (netev run only: netevd does not see unix addresses and refuses
    /// such rules).
    pub path: Option<PathMatch>,
    /// The executable's content: the rule matches only while the file at
    /// `exe` (an exact path) has this SHA-256.
    pub exe_hash: Option<ExeHash>,
    /// What a changed binary at `exe` gets instead (`ask` or `deny`); unset:
    /// the rule just does not match it, and the next rule or the default
    /// decides.
    pub exe_changed: Option<Action>,
}

/// A SHA-256 of an executable's content, written `sha256:` and 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExeHash(pub [u8; 32]);

impl FromStr for ExeHash {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<ExeHash, RuleError> {
        let invalid = || RuleError::Invalid {
            field: "exe_hash",
            value: s.to_string(),
            reason: "expected sha256: and 64 hex digits (`sha256sum FILE` prints them)".into(),
        };
        let hex = s.strip_prefix("sha256:").ok_or_else(invalid)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        Ok(ExeHash(out))
    }
}

impl fmt::Display for ExeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A rule as stored: conditions, action and bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Stable id, never reused (0 until stored).
    pub id: u32,
    /// What happens on a match.
    pub action: Action,
    /// What it matches.
    pub cond: Conditions,
    /// How long it lives.
    pub duration: Duration,
    /// Higher is checked first; ties go to the older rule (lower id).
    pub priority: i32,
    /// Disabled rules are kept but never match.
    pub enabled: bool,
    /// Free text for people.
    pub comment: String,
    /// Operations it decided.
    pub hits: u64,
    /// When it last decided one.
    pub last_hit: Option<DateTime<Utc>>,
    /// When it was made.
    pub created: DateTime<Utc>,
}

impl Rule {
    /// A new, enabled rule that lives until removed.
    pub fn new(action: Action, cond: Conditions) -> Rule {
        Rule {
            id: 0,
            action,
            cond,
            duration: Duration::Always,
            priority: 0,
            enabled: true,
            comment: String::new(),
            hits: 0,
            last_hit: None,
            created: Utc::now(),
        }
    }

    /// Whether the rule takes part in decisions at `now`.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.enabled && !self.duration.expired(now)
    }

    /// Checks the combination of fields (each field was checked when parsed).
    pub fn validate(&self) -> Result<(), RuleError> {
        let c = &self.cond;
        let clash = |reason: &str| Err(RuleError::Conflict(reason.to_string()));
        if let Some(addr) = &c.addr {
            match (c.family, addr) {
                (Some(Family::UNIX), _) => {
                    return clash("a unix socket rule cannot have an address")
                }
                (Some(Family::INET6), IpNet::V4(_)) => {
                    // allowed: a dual-stack IPv6 socket reaches IPv4 peers as ::ffff:a.b.c.d
                }
                (Some(Family::INET), IpNet::V6(n)) if n.network().to_ipv4_mapped().is_none() => {
                    return clash("an inet (IPv4) rule cannot have an IPv6 address")
                }
                _ => {}
            }
        }
        if c.family == Some(Family::UNIX) && (c.ports.is_some() || c.proto.is_some()) {
            return clash("a unix socket rule cannot have ports or an IP protocol");
        }
        if c.path.is_some() {
            if c.family.is_some_and(|f| f != Family::UNIX) {
                return clash("path is a unix socket's address: family must be unix or unset");
            }
            if c.addr.is_some() || c.ports.is_some() || c.proto.is_some() {
                return clash(
                    "a rule on a unix socket path cannot have an address, ports or an IP protocol",
                );
            }
            if c.ops
                .iter()
                .any(|op| !matches!(op, Op::Bind | Op::Connect | Op::Sendmsg))
            {
                return clash(
                    "a path names the address of bind, connect or sendmsg: other ops have none",
                );
            }
        }
        if c.ops == [Op::Socket] && (c.addr.is_some() || c.ports.is_some()) {
            return clash("socket() has no address or port: such a rule could never match");
        }
        if c.exe_hash.is_some() && c.exe.as_ref().is_none_or(|e| e.is_glob()) {
            return clash("exe_hash needs an exact exe path: the file whose content it names");
        }
        if let Some(a) = c.exe_changed {
            if c.exe_hash.is_none() {
                return clash("exe_changed needs exe_hash: what changed is the file's content");
            }
            if a == Action::Allow {
                return clash(
                    "exe_changed is ask or deny: a changed binary is never allowed by it",
                );
            }
        }
        Ok(())
    }

    /// Sort key: the order in which rules are checked.
    pub fn rank_key(&self) -> (std::cmp::Reverse<i32>, u32) {
        (std::cmp::Reverse(self.priority), self.id)
    }

    /// A one-line summary for people: `deny connect exe=/usr/bin/curl addr=10.0.0.0/8`.
    pub fn summary(&self) -> String {
        let c = &self.cond;
        let mut s = self.action.name().to_string();
        if c.ops.is_empty() {
            s.push_str(" any-op");
        } else {
            s.push(' ');
            s.push_str(&c.ops.iter().map(|o| o.name()).collect::<Vec<_>>().join(","));
        }
        if let Some(e) = &c.exe {
            s.push_str(&format!(" exe={e}"));
        }
        if let Some(u) = c.uid {
            s.push_str(&format!(" uid={u}"));
        }
        if let Some(f) = c.family {
            s.push_str(&format!(" family={f}"));
        }
        if let Some(p) = c.proto {
            s.push_str(&format!(" proto={p}"));
        }
        if let Some(a) = &c.addr {
            s.push_str(&format!(" addr={a}"));
        }
        if let Some(p) = &c.ports {
            s.push_str(&format!(" ports={p}"));
        }
        if let Some(p) = &c.path {
            s.push_str(&format!(" path={p}"));
        }
        s
    }
}

/// What the rules are asked about: one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    /// The operation.
    pub op: Op,
    /// Socket family.
    pub family: Family,
    /// IP protocol (as resolved by the kernel).
    pub proto: Proto,
    /// Canonical path of the caller's executable, if known.
    pub exe: Option<&'a str>,
    /// The caller's uid.
    pub uid: u32,
    /// The address on the side the op is about (see [`Conditions::addr`]).
    pub addr: Option<IpAddr>,
    /// The port on that side.
    pub port: Option<u16>,
    /// A unix socket's path or `@`abstract name on that side, if the call
    /// names one.
    pub path: Option<&'a str>,
}

impl Conditions {
    /// Whether these conditions hold for `q`.
    pub fn matches(&self, q: &Query<'_>) -> bool {
        if !self.ops.is_empty() && !self.ops.contains(&q.op) {
            return false;
        }
        // A query names a path, not a content: a rule pinned to a content
        // is decided in the kernel only (netevd), never matched here (netev
        // run does not read binaries), which is the safe side for an allow.
        if self.exe_hash.is_some() {
            return false;
        }
        if let Some(f) = self.family {
            if f != q.family {
                return false;
            }
        }
        if let Some(p) = self.proto {
            if p != q.proto {
                return false;
            }
        }
        if let Some(uid) = self.uid {
            if uid != q.uid {
                return false;
            }
        }
        if let Some(exe) = &self.exe {
            match q.exe {
                Some(path) if exe.matches(path) => {}
                _ => return false,
            }
        }
        if let Some(net) = &self.addr {
            let Some(addr) = q.addr else { return false };
            let (n, len) = mapped_prefix(net);
            if !prefix_contains(n, len, mapped_addr(addr)) {
                return false;
            }
        }
        if let Some(range) = &self.ports {
            match q.port {
                Some(p) if range.contains(p) => {}
                _ => return false,
            }
        }
        if let Some(path) = &self.path {
            match q.path {
                Some(p) if path.matches(p) => {}
                _ => return false,
            }
        }
        true
    }
}

/// The side of the socket an op's address condition is about.
pub fn op_uses_remote(op: Op) -> bool {
    !matches!(op, Op::Bind | Op::Listen)
}

#[cfg(test)]
mod exe_form_tests {
    use super::ExeMatch;

    #[test]
    fn directory_forms_are_told_from_expanded_globs() {
        let form = |s: &str| {
            let m = s.parse::<ExeMatch>().unwrap();
            m.directory_form().map(|(d, deep)| (d.to_string(), deep))
        };
        assert_eq!(form("/home/**"), Some(("/home".into(), true)));
        assert_eq!(form("/home/**/*"), Some(("/home".into(), true)));
        assert_eq!(form("/usr/bin/*"), Some(("/usr/bin".into(), false)));
        assert_eq!(form("/**"), Some(("/".into(), true)));
        assert_eq!(form("/usr/bin/curl"), None);
        assert_eq!(form("/opt/*/bin/*"), None);
        assert_eq!(form("/usr/bin/python3*"), None);
        assert!("/opt/**/bin/*".parse::<ExeMatch>().unwrap().is_expanded());
        assert!(!"/opt/**".parse::<ExeMatch>().unwrap().is_expanded());
        assert!(!"/opt/x".parse::<ExeMatch>().unwrap().is_expanded());
    }
}
