//! What `netev run` decides when the user's rules say nothing: which calls
//! a person is asked about, the unix sockets the C library uses on its own,
//! and the unix sockets through which a program would run something outside
//! supervision (docs/run.md, "Defaults").
//!
//! A person can judge a destination ("python3 wants to connect to
//! 10.1.2.3:443", "… to /run/user/1000/bus"), not a `socket()` call or the
//! C library asking nscd for a user name. So the default policy never asks
//! about `socket()`, `bind()` or `accept()` (whose peer is not known before
//! the call), and the built-in rules settle the C library's own sockets and
//! the known escapes before the default is reached.

use netev_event::Op;
use netev_rules::{Action, Policy, Rule, RuleError};

/// Rule ids of the built-in rules start after this (events name them as
/// `rule`; `netev run --builtin-rules` lists them).
pub const BUILTIN_ID_BASE: u32 = 1_000_000;

/// The built-ins rank below every rule a user writes (priority 0 unless
/// set) and every answer.
pub const BUILTIN_PRIORITY: i32 = -1_000_000;

/// The built-in rules, in the rules-file format of docs/rules.md (docs/run.md
/// shows this text; a test keeps the two the same).
pub const BUILTIN_RULES: &str = r#"# netev run's built-in rules: below every rule of yours (a rule of yours
# with the same conditions and the other action wins).

# Ways out of supervision: a connection to one of these runs a command
# that netev run does not supervise (systemd-run --user, D-Bus activation,
# an ssh control master or agent, a tmux or screen server). Refused unless
# a rule of yours allows them.
[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/run/user/*/bus"
comment = "the user's D-Bus session bus"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/run/user/*/systemd/**"
comment = "the user's systemd manager"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/run/systemd/private"
comment = "the system's systemd manager"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/home/*/.ssh/**"
comment = "ssh control sockets"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/root/.ssh/**"
comment = "ssh control sockets"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/tmp/ssh-*/**"
comment = "ssh agents and control sockets"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/run/user/*/openssh_agent"
comment = "ssh agents"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/run/user/*/keyring/ssh"
comment = "ssh agents"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/run/user/*/gcr/ssh"
comment = "ssh agents"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/run/user/*/gnupg/S.gpg-agent.ssh"
comment = "ssh agents"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/tmp/tmux-*/**"
comment = "tmux servers"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "/run/screen/**"
comment = "screen sessions"

[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
path = "@/tmp/dbus-*"
comment = "a D-Bus session bus on an abstract socket"

# What the C library and the system's own clients use by themselves: user
# and host lookups, the system bus, the journal.
[[rule]]
action = "allow"
ops = ["socket"]
family = "unix"
comment = "unix sockets are decided by their path"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/run/nscd/socket"
comment = "nscd (user, group and host lookups)"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/var/run/nscd/socket"
comment = "nscd (user, group and host lookups)"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/run/systemd/resolve/io.systemd.Resolve"
comment = "systemd-resolved (host lookups)"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/run/systemd/userdb/*"
comment = "systemd-userdb (user and group lookups)"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/run/dbus/system_bus_socket"
comment = "the D-Bus system bus"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/var/run/dbus/system_bus_socket"
comment = "the D-Bus system bus"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/run/systemd/journal/socket"
comment = "the journal"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/run/systemd/journal/stdout"
comment = "the journal"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/run/systemd/journal/dev-log"
comment = "the journal"

[[rule]]
action = "allow"
ops = ["connect", "sendmsg"]
path = "/dev/log"
comment = "syslog"
"#;

/// The built-in rules, with their ids ([`BUILTIN_ID_BASE`] + position) and
/// priority. `session_bus` is `$DBUS_SESSION_BUS_ADDRESS`: a session bus
/// somewhere else than `/run/user/UID/bus` is refused too.
pub fn builtin_rules(session_bus: Option<&str>) -> Result<Vec<Rule>, RuleError> {
    let mut text = BUILTIN_RULES.to_string();
    for path in session_bus.map(session_bus_paths).unwrap_or_default() {
        text.push_str(&format!(
            "\n[[rule]]\naction = \"deny\"\nops = [\"connect\", \"sendmsg\"]\npath = {}\n\
             comment = \"the D-Bus session bus ($DBUS_SESSION_BUS_ADDRESS)\"\n",
            toml_string(&glob::Pattern::escape(&path))
        ));
    }
    let mut rules = netev_rules::file::parse(
        "netev run's built-in rules",
        &text,
        chrono::Utc::now(),
        &|_| None,
    )?;
    for (i, r) in rules.iter_mut().enumerate() {
        r.id = BUILTIN_ID_BASE + 1 + i as u32;
        r.priority = BUILTIN_PRIORITY;
    }
    Ok(rules)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The socket paths and abstract names a D-Bus address names
/// (`unix:path=/run/user/1000/bus`, `unix:abstract=/tmp/dbus-x,guid=…`,
/// several separated by `;`), as rules name them.
pub fn session_bus_paths(address: &str) -> Vec<String> {
    address
        .split(';')
        .filter_map(|a| a.strip_prefix("unix:"))
        .flat_map(|kv| kv.split(','))
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let v = unescape_dbus(v)?;
            match k {
                "path" if v.starts_with('/') => Some(v),
                "abstract" => Some(format!("@{v}")),
                _ => None,
            }
        })
        .collect()
}

/// D-Bus addresses escape bytes as `%XX`.
fn unescape_dbus(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The default policy for `--default ACTION`: ACTION for what a socket
/// does to a destination (connect, sends with an address, listen), while
/// `socket()` is allowed (what it can reach is decided at its
/// destination), and `bind()` and `accept()` are not asked about: under
/// `ask` they are allowed (a listener is asked about at `listen`; an
/// accepted peer is not known before the call), under `deny` refused.
pub fn policy(default: Action) -> Policy {
    let mut p = Policy::default();
    for op in Op::ALL {
        let a = match (op, default) {
            (Op::Socket, _) => Action::Allow,
            (Op::Bind | Op::Accept | Op::Recvmsg, Action::Ask) => Action::Allow,
            (_, a) => a,
        };
        p.set(op, a);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_event::{Family, Proto};
    use netev_rules::{Query, RuleSet};

    fn decide(set: &RuleSet, op: Op, path: &str) -> (Action, Option<u32>) {
        let q = Query {
            op,
            family: Family::UNIX,
            proto: Proto(0),
            exe: Some("/usr/bin/curl"),
            uid: 1000,
            addr: None,
            port: None,
            path: Some(path),
        };
        let d = set.decide(&q);
        (d.action, d.rule)
    }

    #[test]
    fn escapes_are_refused_and_the_c_library_is_let_through_whatever_the_default() {
        let rules = builtin_rules(Some(
            "unix:abstract=/tmp/dbus-Xq7,guid=1;unix:path=/tmp/my%20bus",
        ))
        .unwrap();
        for default in [Action::Allow, Action::Ask, Action::Deny] {
            let set = RuleSet::new(rules.clone(), policy(default));
            for p in [
                "/run/user/1000/bus",
                "/run/user/0/systemd/private",
                "/home/al/.ssh/cm-al@host:22",
                "/tmp/ssh-XXXXabc/agent.123",
                "/run/user/1000/gnupg/S.gpg-agent.ssh",
                "/tmp/tmux-1000/default",
                "/run/screen/S-al/123.pts-0.host",
                "@/tmp/dbus-Xq7",
                "/tmp/my bus",
            ] {
                assert_eq!(
                    decide(&set, Op::Connect, p).0,
                    Action::Deny,
                    "{p} under {default:?}"
                );
                assert_eq!(decide(&set, Op::Sendmsg, p).0, Action::Deny, "{p}");
            }
            for p in [
                "/var/run/nscd/socket",
                "/run/nscd/socket",
                "/run/systemd/resolve/io.systemd.Resolve",
                "/run/systemd/userdb/io.systemd.DynamicUser",
                "/run/dbus/system_bus_socket",
                "/run/systemd/journal/socket",
                "/dev/log",
            ] {
                let (a, rule) = decide(&set, Op::Connect, p);
                assert_eq!(a, Action::Allow, "{p} under {default:?}");
                assert!(rule.unwrap() > BUILTIN_ID_BASE);
            }
            // Anything else: the default.
            assert_eq!(decide(&set, Op::Connect, "/tmp/.X11-unix/X0").0, default);
            assert_eq!(decide(&set, Op::Connect, "/run/user/1000/busy").0, default);
        }
    }

    #[test]
    fn a_users_rule_outranks_the_builtins() {
        let mut mine = netev_rules::fields::rule_from_fields(
            [("action", "allow"), ("path", "/run/user/*/bus")],
            chrono::Utc::now(),
            &|_| None,
        )
        .unwrap();
        mine.id = 1;
        let mut rules = builtin_rules(None).unwrap();
        rules.push(mine);
        let set = RuleSet::new(rules, policy(Action::Deny));
        assert_eq!(
            decide(&set, Op::Connect, "/run/user/1000/bus"),
            (Action::Allow, Some(1))
        );
    }

    #[test]
    fn only_destinations_are_asked_about() {
        let p = policy(Action::Ask);
        assert_eq!(p.for_op(Op::Socket), Action::Allow);
        assert_eq!(p.for_op(Op::Bind), Action::Allow);
        assert_eq!(p.for_op(Op::Accept), Action::Allow);
        for op in [Op::Connect, Op::Sendmsg, Op::Listen] {
            assert_eq!(p.for_op(op), Action::Ask);
        }
        let d = policy(Action::Deny);
        assert_eq!(d.for_op(Op::Socket), Action::Allow);
        assert_eq!(d.for_op(Op::Bind), Action::Deny);
        assert_eq!(d.for_op(Op::Connect), Action::Deny);
        assert_eq!(policy(Action::Allow), {
            let mut a = Policy::default();
            a.set(Op::Socket, Action::Allow);
            a
        });
    }

    #[test]
    fn docs_run_md_shows_these_rules() {
        let doc = include_str!("../../../docs/run.md");
        assert!(
            doc.contains(BUILTIN_RULES),
            "docs/run.md's Defaults section is the text of BUILTIN_RULES"
        );
    }

    #[test]
    fn dbus_addresses() {
        assert_eq!(
            session_bus_paths("unix:path=/run/user/1000/bus"),
            ["/run/user/1000/bus"]
        );
        assert_eq!(
            session_bus_paths("tcp:host=x,port=1;unix:abstract=/tmp/dbus-a%2cb,guid=9"),
            ["@/tmp/dbus-a,b"]
        );
        assert!(session_bus_paths("unix:path=%zz").is_empty());
        assert!(session_bus_paths("unix:path=relative").is_empty());
    }
}
