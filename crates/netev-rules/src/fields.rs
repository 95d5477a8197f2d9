//! Rules as `name = value` text fields: the one form that the command line,
//! the D-Bus API (`a{ss}`), the rules file and the GTK dialog all parse.

use chrono::{DateTime, Utc};

use crate::model::{parse_addr, parse_family, parse_op, parse_proto};
use crate::{
    Action, Conditions, Duration, ExeHash, ExeMatch, PathMatch, PortRange, Rule, RuleError,
};

/// Fields a rule can be written with.
pub const FIELDS: [&str; 15] = [
    "action",
    "ops",
    "exe",
    "exe_hash",
    "exe_changed",
    "user",
    "family",
    "proto",
    "addr",
    "ports",
    "path",
    "duration",
    "priority",
    "enabled",
    "comment",
];

/// Fields that are only ever output (the daemon keeps them).
pub const READ_ONLY_FIELDS: [&str; 5] = ["id", "hits", "last_hit", "created", "user_name"];

/// Longest comment kept, in bytes.
pub const MAX_COMMENT: usize = 1024;

/// Builds a rule from text fields. `user` is a uid or a user name, resolved
/// with `lookup_user`. Read-only fields are ignored so that a listed rule can
/// be fed back. Fields with an empty value are unset.
pub fn rule_from_fields<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    now: DateTime<Utc>,
    lookup_user: &dyn Fn(&str) -> Option<u32>,
) -> Result<Rule, RuleError> {
    let mut action = None;
    let mut rule = Rule::new(Action::Deny, Conditions::default());
    for (name, value) in fields {
        apply_field(&mut rule, &mut action, name, value, now, lookup_user)?;
    }
    rule.action = action.ok_or(RuleError::Missing("action"))?;
    rule.validate()?;
    Ok(rule)
}

/// Sets one field on `rule` (as in [`rule_from_fields`]); for updates.
pub fn apply_field(
    rule: &mut Rule,
    action: &mut Option<Action>,
    name: &str,
    value: &str,
    now: DateTime<Utc>,
    lookup_user: &dyn Fn(&str) -> Option<u32>,
) -> Result<(), RuleError> {
    let value = if name == "comment" {
        value
    } else {
        value.trim()
    };
    let set = !value.is_empty();
    let c = &mut rule.cond;
    match name {
        "action" => *action = Some(value.parse()?),
        "ops" => {
            c.ops.clear();
            for op in value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "any")
            {
                let op = parse_op(op)?;
                if !c.ops.contains(&op) {
                    c.ops.push(op);
                }
            }
        }
        "exe" => c.exe = set.then(|| value.parse::<ExeMatch>()).transpose()?,
        "exe_hash" => c.exe_hash = set.then(|| value.parse::<ExeHash>()).transpose()?,
        "exe_changed" => {
            c.exe_changed = match value {
                "" => None,
                "ask" => Some(Action::Ask),
                "deny" => Some(Action::Deny),
                _ => {
                    return Err(RuleError::Invalid {
                        field: "exe_changed",
                        value: value.to_string(),
                        reason: "expected ask or deny (what a changed binary at exe gets)".into(),
                    })
                }
            }
        }
        "user" => {
            c.uid = if !set || value == "any" {
                None
            } else if let Ok(uid) = value.parse::<u32>() {
                Some(uid)
            } else {
                Some(lookup_user(value).ok_or_else(|| RuleError::Invalid {
                    field: "user",
                    value: value.to_string(),
                    reason: "no such user (give a user name or a numeric uid)".into(),
                })?)
            }
        }
        "family" => {
            c.family = (set && value != "any")
                .then(|| parse_family(value))
                .transpose()?
        }
        "proto" => {
            c.proto = (set && value != "any")
                .then(|| parse_proto(value))
                .transpose()?
        }
        "addr" => {
            c.addr = (set && value != "any")
                .then(|| parse_addr(value))
                .transpose()?
        }
        "ports" => {
            c.ports = (set && value != "any")
                .then(|| value.parse::<PortRange>())
                .transpose()?
        }
        "path" => {
            c.path = (set && value != "any")
                .then(|| value.parse::<PathMatch>())
                .transpose()?
        }
        "duration" => {
            rule.duration = if set {
                Duration::parse(value, now)?
            } else {
                Duration::Always
            }
        }
        "priority" => {
            rule.priority = if set {
                value.parse().map_err(|_| RuleError::Invalid {
                    field: "priority",
                    value: value.to_string(),
                    reason: "expected a whole number (higher is checked first)".into(),
                })?
            } else {
                0
            }
        }
        "enabled" => {
            rule.enabled = match value {
                "true" | "yes" | "1" | "" => true,
                "false" | "no" | "0" => false,
                _ => {
                    return Err(RuleError::Invalid {
                        field: "enabled",
                        value: value.to_string(),
                        reason: "expected true or false".into(),
                    })
                }
            }
        }
        "comment" => {
            if value.len() > MAX_COMMENT {
                return Err(RuleError::Invalid {
                    field: "comment",
                    value: format!("{}…", value.chars().take(40).collect::<String>()),
                    reason: format!("longer than {MAX_COMMENT} bytes"),
                });
            }
            rule.comment = value.to_string();
        }
        ro if READ_ONLY_FIELDS.contains(&ro) => {}
        other => return Err(RuleError::UnknownField(other.to_string())),
    }
    Ok(())
}

/// The text fields of a rule, read-only ones included; unset conditions are
/// left out. `user_name` names a uid for people.
pub fn rule_to_fields(
    rule: &Rule,
    user_name: &dyn Fn(u32) -> Option<String>,
) -> Vec<(String, String)> {
    let c = &rule.cond;
    let mut out = vec![
        ("id".to_string(), rule.id.to_string()),
        ("action".to_string(), rule.action.name().to_string()),
    ];
    let mut put = |k: &str, v: String| out.push((k.to_string(), v));
    if !c.ops.is_empty() {
        put(
            "ops",
            c.ops.iter().map(|o| o.name()).collect::<Vec<_>>().join(","),
        );
    }
    if let Some(e) = &c.exe {
        put("exe", e.to_string());
    }
    if let Some(h) = &c.exe_hash {
        put("exe_hash", h.to_string());
    }
    if let Some(a) = c.exe_changed {
        put("exe_changed", a.name().to_string());
    }
    if let Some(uid) = c.uid {
        put("user", uid.to_string());
        if let Some(name) = user_name(uid) {
            put("user_name", name);
        }
    }
    if let Some(f) = c.family {
        put("family", f.to_string());
    }
    if let Some(p) = c.proto {
        put("proto", p.to_string());
    }
    if let Some(a) = &c.addr {
        put("addr", a.to_string());
    }
    if let Some(p) = &c.ports {
        put("ports", p.to_string());
    }
    if let Some(p) = &c.path {
        put("path", p.to_string());
    }
    put("duration", rule.duration.to_string());
    put("priority", rule.priority.to_string());
    put("enabled", rule.enabled.to_string());
    if !rule.comment.is_empty() {
        put("comment", rule.comment.clone());
    }
    put("hits", rule.hits.to_string());
    if let Some(t) = rule.last_hit {
        put(
            "last_hit",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    put(
        "created",
        rule.created
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    out
}

/// Reads a rule back from [`rule_to_fields`] output, read-only fields included.
pub fn rule_from_listing<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
) -> Result<Rule, RuleError> {
    let mut rule = rule_from_fields(fields.clone(), Utc::now(), &|_| None)?;
    for (k, v) in fields {
        let time = || {
            DateTime::parse_from_rfc3339(v)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        match k {
            "id" => rule.id = v.parse().unwrap_or(0),
            "hits" => rule.hits = v.parse().unwrap_or(0),
            "last_hit" => rule.last_hit = time(),
            "created" => rule.created = time().unwrap_or(rule.created),
            _ => {}
        }
    }
    Ok(rule)
}

/// The scopes an answer to a prompt may take (`AnswerPrompt`, `netev
/// prompt --scope`, netev-gtk): what of the event the rule names besides its
/// op, program and user. Each may end in [`ANY_USER`].
pub const ANSWER_SCOPES: [&str; 4] = ["exe", "exe+dest", "exe+port", "exe+dest+port"];

/// The suffix that widens an answer from the user whose process asked to
/// every user (`exe+dest+any-user`): only ever asked for explicitly.
pub const ANY_USER: &str = "+any-user";

/// Every scope string an answer may carry: [`ANSWER_SCOPES`], then each
/// widened with [`ANY_USER`] (a test checks the two lists agree).
pub const ANSWER_SCOPES_ANY_USER: [&str; 8] = [
    "exe",
    "exe+dest",
    "exe+port",
    "exe+dest+port",
    "exe+any-user",
    "exe+dest+any-user",
    "exe+port+any-user",
    "exe+dest+port+any-user",
];

/// The rule an answer to a prompt about `ev` makes: the event's op,
/// program and user (the uid of the process that asked, unless the scope
/// ends in [`ANY_USER`]), and per `scope` (`exe`, `exe+dest`, `exe+port`,
/// `exe+dest+port`) its address and/or port on the op's side. netevd's
/// `AnswerPrompt` and `netev run` both build their rules with it.
pub fn rule_for_answer(
    ev: &netev_event::Event,
    action: Action,
    duration: &str,
    scope: &str,
    now: DateTime<Utc>,
) -> Result<Rule, RuleError> {
    let exe = ev.exe.as_deref().ok_or_else(|| RuleError::Conflict(
        "the program of this prompt is unknown (it exited before it could be named): no rule can name it".into(),
    ))?;
    let remote = crate::op_uses_remote(ev.op);
    let (addr, port) = if remote {
        (ev.raddr, ev.rport)
    } else {
        (ev.laddr, ev.lport)
    };
    let (scope, any_user) = match scope.strip_suffix(ANY_USER) {
        Some(narrow) => (narrow, true),
        None => (scope, false),
    };
    let mut f: Vec<(&str, String)> = vec![
        ("action", action.name().to_string()),
        ("ops", ev.op.name().to_string()),
        ("exe", exe.to_string()),
        ("duration", duration.to_string()),
    ];
    if !any_user {
        // An answer speaks for the user whose process asked, never for
        // the others on the machine (whose own rules it would outrank).
        f.push(("user", ev.uid.to_string()));
    }
    // A unix socket's destination is its path (or abstract name), written
    // as a pattern that matches exactly that name.
    let path_s = ev
        .path
        .as_deref()
        .filter(|_| ev.family == netev_event::Family::UNIX)
        .map(glob::Pattern::escape);
    if path_s.is_some() {
        f.push(("family", "unix".to_string()));
    }
    let addr_s = addr.map(|a| a.to_string());
    let port_s = port.map(|p| p.to_string());
    let need = |what: &str, v: &Option<String>| {
        v.clone().ok_or_else(|| {
            RuleError::Conflict(format!(
                "this {} has no {what} to scope the rule to",
                ev.op.name()
            ))
        })
    };
    match scope {
        "exe" => {}
        "exe+dest" | "exe+dest+port" if path_s.is_some() => {
            f.push(("path", path_s.clone().unwrap_or_default()))
        }
        "exe+dest" => f.push(("addr", need("address", &addr_s)?)),
        "exe+port" => f.push(("ports", need("port", &port_s)?)),
        "exe+dest+port" => {
            f.push(("addr", need("address", &addr_s)?));
            f.push(("ports", need("port", &port_s)?));
        }
        other => {
            return Err(RuleError::Invalid {
                field: "scope",
                value: other.into(),
                reason: format!(
                    "expected exe, exe+dest, exe+port or exe+dest+port, optionally followed by {ANY_USER}"
                ),
            })
        }
    }
    f.push((
        "comment",
        format!("answer to a prompt for {} (pid {})", exe, ev.pid),
    ));
    rule_from_fields(f.iter().map(|(k, v)| (*k, v.as_str())), now, &|_| None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_event::{Family, Op, Proto};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn parse(f: &[(&str, &str)]) -> Result<Rule, RuleError> {
        rule_from_fields(f.iter().copied(), now(), &|n| {
            (n == "alice").then_some(1000)
        })
    }

    #[test]
    fn every_field_parses() {
        let r = parse(&[
            ("action", "deny"),
            ("ops", "connect, sendmsg"),
            ("exe", "/usr/bin/*"),
            ("user", "alice"),
            ("family", "inet"),
            ("proto", "udp"),
            ("addr", "10.1.2.3/8"),
            ("ports", "53-60"),
            ("duration", "5m"),
            ("priority", "-3"),
            ("enabled", "false"),
            ("comment", "no DNS"),
        ])
        .unwrap();
        assert_eq!(r.action, Action::Deny);
        assert_eq!(r.cond.ops, vec![Op::Connect, Op::Sendmsg]);
        assert!(r.cond.exe.as_ref().unwrap().is_glob());
        assert_eq!(r.cond.uid, Some(1000));
        assert_eq!(r.cond.family, Some(Family::INET));
        assert_eq!(r.cond.proto, Some(Proto::UDP));
        assert_eq!(
            r.cond.addr.unwrap().to_string(),
            "10.0.0.0/8",
            "host bits dropped"
        );
        assert_eq!(r.cond.ports, Some(PortRange { lo: 53, hi: 60 }));
        assert_eq!(
            r.duration,
            Duration::Until(now() + chrono::Duration::minutes(5))
        );
        assert_eq!(r.priority, -3);
        assert!(!r.enabled);
        assert_eq!(r.comment, "no DNS");
    }

    #[test]
    fn bad_values_say_what_was_wrong() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("ops", "connect")], "missing field \"action\""),
            (&[("action", "drop")], "expected allow, deny or ask"),
            (
                &[("action", "deny"), ("ops", "conect")],
                "expected socket, bind",
            ),
            (&[("action", "deny"), ("exe", "curl")], "absolute path"),
            (&[("action", "deny"), ("exe", "/usr/[bin")], "bad glob"),
            (&[("action", "deny"), ("user", "mallory")], "no such user"),
            (
                &[("action", "deny"), ("addr", "10.0.0.300")],
                "IP address or CIDR",
            ),
            (
                &[("action", "deny"), ("addr", "10.0.0.0/33")],
                "IP address or CIDR",
            ),
            (&[("action", "deny"), ("ports", "70000")], "0-65535"),
            (
                &[("action", "deny"), ("ports", "90-80")],
                "must not be above",
            ),
            (
                &[("action", "deny"), ("duration", "5 minutes")],
                "unknown unit",
            ),
            (&[("action", "deny"), ("duration", "0m")], "more than zero"),
            (
                &[("action", "deny"), ("duration", "soon")],
                "expected once, always",
            ),
            (&[("action", "deny"), ("priority", "high")], "whole number"),
            (
                &[("action", "deny"), ("family", "ipx")],
                "inet, inet6 or unix",
            ),
            (&[("action", "deny"), ("proto", "sctp")], "tcp, udp"),
            (
                &[("action", "deny"), ("colour", "red")],
                "unknown field \"colour\"",
            ),
            (
                &[("action", "deny"), ("family", "unix"), ("addr", "::1")],
                "cannot have an address",
            ),
            (
                &[
                    ("action", "deny"),
                    ("family", "inet"),
                    ("addr", "fe80::/10"),
                ],
                "IPv6 address",
            ),
            (
                &[("action", "deny"), ("ops", "socket"), ("ports", "80")],
                "could never match",
            ),
        ];
        for (fields, want) in cases {
            let err = parse(fields).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{fields:?}: {err:?} should contain {want:?}"
            );
        }
    }

    #[test]
    fn the_widened_scopes_are_the_scopes_plus_any_user() {
        let want: Vec<String> = ANSWER_SCOPES
            .iter()
            .map(|s| s.to_string())
            .chain(ANSWER_SCOPES.iter().map(|s| format!("{s}{ANY_USER}")))
            .collect();
        assert_eq!(ANSWER_SCOPES_ANY_USER.to_vec(), want);
    }

    #[test]
    fn listing_round_trips() {
        let mut r = parse(&[
            ("action", "ask"),
            ("exe", "/usr/bin/curl"),
            ("addr", "2001:db8::/32"),
            ("ports", "443"),
            ("duration", "2026-12-01T00:00:00Z"),
            ("comment", "quote \" and newline \n"),
        ])
        .unwrap();
        r.id = 7;
        r.hits = 3;
        r.created = now();
        r.last_hit = Some(now());
        let fields = rule_to_fields(&r, &|_| None);
        let back = rule_from_listing(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(back, r);
    }

    const HASH: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn content_fields_round_trip() {
        let mut r = parse(&[
            ("action", "allow"),
            ("exe", "/usr/bin/curl"),
            ("exe_hash", HASH),
            ("exe_changed", "ask"),
        ])
        .unwrap();
        assert_eq!(r.cond.exe_hash.unwrap().to_string(), HASH);
        assert_eq!(r.cond.exe_changed, Some(Action::Ask));
        r.created = now();
        let fields = rule_to_fields(&r, &|_| None);
        assert!(fields.contains(&("exe_hash".into(), HASH.into())));
        assert!(fields.contains(&("exe_changed".into(), "ask".into())));
        let back = rule_from_listing(fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(back, r);
        // deny too; empty values unset them
        let d = parse(&[
            ("action", "allow"),
            ("exe", "/usr/bin/curl"),
            ("exe_hash", HASH),
            ("exe_changed", "deny"),
        ])
        .unwrap();
        assert_eq!(d.cond.exe_changed, Some(Action::Deny));
        let u = parse(&[
            ("action", "allow"),
            ("exe", "/usr/bin/curl"),
            ("exe_hash", ""),
            ("exe_changed", " "),
        ])
        .unwrap();
        assert_eq!((u.cond.exe_hash, u.cond.exe_changed), (None, None));
        let fields = rule_to_fields(&u, &|_| None);
        assert!(!fields.iter().any(|(k, _)| k.starts_with("exe_")));
    }

    #[test]
    fn content_fields_are_checked() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("action", "allow"), ("exe", "/x"), ("exe_hash", "deadbeef")],
                "expected sha256: and 64 hex digits",
            ),
            (
                &[
                    ("action", "allow"),
                    ("exe", "/x"),
                    ("exe_hash", &HASH.replace("sha256:", "md5:")),
                ],
                "expected sha256:",
            ),
            (
                &[
                    ("action", "allow"),
                    ("exe", "/x"),
                    ("exe_hash", &HASH[..70]),
                ],
                "64 hex digits",
            ),
            (
                &[
                    ("action", "allow"),
                    ("exe", "/x"),
                    ("exe_hash", &HASH.replace('9', "g")),
                ],
                "64 hex digits",
            ),
            (
                &[
                    ("action", "allow"),
                    ("exe", "/x"),
                    ("exe_hash", HASH),
                    ("exe_changed", "allow"),
                ],
                "exe_changed = \"allow\": expected ask or deny",
            ),
            (
                &[
                    ("action", "allow"),
                    ("exe", "/x"),
                    ("exe_hash", HASH),
                    ("exe_changed", "maybe"),
                ],
                "expected ask or deny",
            ),
            (
                &[("action", "allow"), ("exe", "/x"), ("exe_changed", "ask")],
                "exe_changed needs exe_hash",
            ),
            (
                &[
                    ("action", "allow"),
                    ("exe", "/usr/bin/*"),
                    ("exe_hash", HASH),
                ],
                "exe_hash needs an exact exe path",
            ),
            (
                &[("action", "allow"), ("exe_hash", HASH)],
                "exe_hash needs an exact exe path",
            ),
        ];
        for (fields, want) in cases {
            let err = parse(fields).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{fields:?}: {err:?} should contain {want:?}"
            );
        }
    }
}
