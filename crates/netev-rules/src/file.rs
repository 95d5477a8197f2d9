//! Rules files (TOML): import and export. See docs/rules.md.
//!
//! ```toml
//! [[rule]]
//! action = "deny"
//! ops = ["connect", "sendmsg"]
//! exe = "/usr/bin/curl"
//! addr = "10.0.0.0/8"
//! ports = "80-443"
//! ```
//!
//! A file is checked whole before anything is used: the first problem is
//! reported with its line, and nothing of the file applies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::fields::{apply_field, FIELDS};
use crate::{Action, Conditions, Rule, RuleError};

/// A rule as read: every key and value with where it stands in the text,
/// so that a problem found after reading (by [`apply_field`]) is reported
/// at the line of its key, wherever that is: a `[[rule]]` table, an inline
/// table `rule = [{ ... }]`, or after a multi-line string.
type RawRule = std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

/// Parses a rules file. `path` names it in errors.
pub fn parse(
    path: &str,
    text: &str,
    now: DateTime<Utc>,
    lookup_user: &dyn Fn(&str) -> Option<u32>,
) -> Result<Vec<Rule>, RuleError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let at = |offset: usize, reason: String| RuleError::File {
        path: path.to_string(),
        line: line_of(offset),
        reason,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        at(offset, e.message().to_string())
    })?;
    let mut rules = Vec::with_capacity(raw.rule.len());
    for entry in raw.rule {
        let start = entry.span().start;
        let mut rule = Rule::new(Action::Deny, Conditions::default());
        let mut action = None;
        // in key order, as a toml::Table would give them (Spanned orders by
        // its value alone)
        for (key, value) in entry.get_ref() {
            let key_at = key.span().start;
            let key = key.get_ref();
            if !FIELDS.contains(&key.as_str()) {
                return Err(at(key_at, RuleError::UnknownField(key.clone()).to_string()));
            }
            let text_value = match (key.as_str(), value.get_ref()) {
                (_, toml::Value::String(s)) => s.clone(),
                ("ops", toml::Value::Array(ops)) => {
                    let mut names = Vec::new();
                    for op in ops {
                        match op.as_str() {
                            Some(s) => names.push(s.to_string()),
                            None => {
                                return Err(at(key_at, "ops: expected a list of op names".into()))
                            }
                        }
                    }
                    names.join(",")
                }
                ("ports" | "user" | "priority", toml::Value::Integer(n)) => n.to_string(),
                ("enabled", toml::Value::Boolean(b)) => b.to_string(),
                _ => {
                    return Err(at(
                        key_at,
                        format!("{key}: expected {}", expected_type(key)),
                    ))
                }
            };
            apply_field(&mut rule, &mut action, key, &text_value, now, lookup_user)
                .map_err(|e| at(key_at, e.to_string()))?;
        }
        rule.action = action.ok_or_else(|| at(start, RuleError::Missing("action").to_string()))?;
        rule.validate().map_err(|e| at(start, e.to_string()))?;
        rules.push(rule);
    }
    Ok(rules)
}

fn expected_type(key: &str) -> &'static str {
    match key {
        "ops" => "a list of op names, e.g. [\"connect\"]",
        "ports" => "a port number or a range string such as \"8000-8080\"",
        "user" => "a user name or a uid",
        "priority" => "a whole number",
        "enabled" => "true or false",
        _ => "a string",
    }
}

#[derive(Serialize)]
struct OutFile {
    rule: Vec<OutRule>,
}

#[derive(Serialize)]
struct OutRule {
    action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ops: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe_changed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proto: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ports: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    duration: String,
    priority: i32,
    enabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    comment: String,
}

/// Writes rules as a rules file that [`parse`] reads back to the same rules
/// (bookkeeping such as ids and hit counts is not part of a rules file).
pub fn export(rules: &[Rule], user_name: &dyn Fn(u32) -> Option<String>) -> String {
    let out = OutFile {
        rule: rules
            .iter()
            .map(|r| {
                let c = &r.cond;
                OutRule {
                    action: r.action.to_string(),
                    ops: c.ops.iter().map(|o| o.name().to_string()).collect(),
                    exe: c.exe.as_ref().map(|e| e.to_string()),
                    exe_hash: c.exe_hash.map(|h| h.to_string()),
                    exe_changed: c.exe_changed.map(|a| a.name().to_string()),
                    user: c.uid.map(|u| user_name(u).unwrap_or_else(|| u.to_string())),
                    family: c.family.map(|f| f.to_string()),
                    proto: c.proto.map(|p| p.to_string()),
                    addr: c.addr.map(|a| a.to_string()),
                    ports: c.ports.map(|p| p.to_string()),
                    path: c.path.as_ref().map(|p| p.to_string()),
                    duration: r.duration.to_string(),
                    priority: r.priority,
                    enabled: r.enabled,
                    comment: r.comment.clone(),
                }
            })
            .collect(),
    };
    let body = toml::to_string(&out).unwrap_or_default();
    format!("# netev rules: see docs/rules.md\n\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn load(text: &str) -> Result<Vec<Rule>, RuleError> {
        parse("rules.toml", text, now(), &|n| {
            (n == "alice").then_some(1000)
        })
    }

    #[test]
    fn reads_rules_and_round_trips() {
        let text = r#"
[[rule]]
action = "deny"
ops = ["connect", "sendmsg"]
exe = "/usr/bin/curl"
user = "alice"
addr = "10.0.0.0/8"
ports = "80-443"
comment = "no \"intranet\"\nfor curl; '; DROP TABLE rules; --"

[[rule]]
action = "allow"
ports = 53
proto = "udp"
priority = 10
enabled = false
duration = "2027-01-01T00:00:00Z"
"#;
        let rules = load(text).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].cond.uid, Some(1000));
        assert_eq!(rules[1].priority, 10);
        let again = load(&export(&rules, &|u| (u == 1000).then(|| "alice".into()))).unwrap();
        let strip = |rs: Vec<Rule>| {
            rs.into_iter()
                .map(|mut r| {
                    r.created = now();
                    r
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(again), strip(rules));
    }

    #[test]
    fn problems_are_reported_at_their_line() {
        let cases = [
            (
                "[[rule]]\naction = \"deny\"\nports = \"99999\"\n",
                3,
                "0-65535",
            ),
            (
                "[[rule]]\naction = \"deny\"\n\n[[rule]]\nops = [\"connect\"]\n",
                4,
                "missing field \"action\"",
            ),
            (
                "[[rule]]\naction = \"deny\"\ncolour = \"red\"\n",
                3,
                "unknown field \"colour\"",
            ),
            (
                "[[rule]]\naction = \"deny\"\naddr = 10\n",
                3,
                "addr: expected a string",
            ),
            ("[[rule]]\naction = \"deny\"\nexe = \"/x\n", 3, ""),
            ("[[rules]]\naction = \"deny\"\n", 1, "unknown field `rules`"),
            (
                "[[rule]]\naction = \"deny\"\nuser = \"mallory\"\n",
                3,
                "no such user",
            ),
            // an inline table: every key on the line of its own, wherever
            // the scan for `key =` would have looked
            (
                "rule = [\n  { action = \"deny\" },\n  { action = \"deny\", ports = \"99999\" },\n]\n",
                3,
                "0-65535",
            ),
            (
                "rule = [{ action = \"deny\", colour = \"red\" }]\n",
                1,
                "unknown field \"colour\"",
            ),
            // a quoted key
            (
                "[[rule]]\naction = \"deny\"\n\"ports\" = \"99999\"\n",
                3,
                "0-65535",
            ),
            // a multi-line string whose text has a line that looks like a key
            (
                "[[rule]]\naction = \"deny\"\ncomment = \"\"\"\nports = 1\n\"\"\"\nports = \"99999\"\n",
                6,
                "0-65535",
            ),
            (
                "[[rule]]\ncomment = '''\naddr = 1\n'''\naction = \"deny\"\naddr = 10\n",
                6,
                "addr: expected a string",
            ),
        ];
        for (text, line, want) in cases {
            match load(text) {
                Err(RuleError::File {
                    line: l, reason, ..
                }) => {
                    assert_eq!(l, line, "{text:?}: {reason}");
                    assert!(reason.contains(want), "{text:?}: {reason:?} lacks {want:?}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_rule_may_last_weeks() {
        let rules = load("[[rule]]\naction = \"deny\"\nduration = \"1w\"\n").unwrap();
        assert_eq!(
            rules[0].duration,
            crate::Duration::Until(now() + chrono::Duration::days(7))
        );
        let e = load("[[rule]]\naction = \"deny\"\nduration = \"500ms\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown unit"), "{e}");
    }

    #[test]
    fn content_fields_are_read_and_exported() {
        let hash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let text = format!(
            "[[rule]]\naction = \"allow\"\nexe = \"/usr/bin/curl\"\nexe_hash = \"{hash}\"\nexe_changed = \"ask\"\n"
        );
        let rules = load(&text).unwrap();
        assert_eq!(rules[0].cond.exe_hash.unwrap().to_string(), hash);
        assert_eq!(rules[0].cond.exe_changed, Some(Action::Ask));
        let out = export(&rules, &|_| None);
        assert!(out.contains(&format!("exe_hash = \"{hash}\"")), "{out}");
        assert!(out.contains("exe_changed = \"ask\""), "{out}");
        let mut again = load(&out).unwrap();
        again[0].created = rules[0].created;
        assert_eq!(again, rules);
        let bad = "[[rule]]\naction = \"allow\"\nexe = \"/x\"\nexe_hash = \"sha256:00\"\n";
        match load(bad) {
            Err(RuleError::File {
                line: 4, reason, ..
            }) => {
                assert!(reason.contains("64 hex digits"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let clash = "[[rule]]\naction = \"allow\"\nexe = \"/x\"\nexe_changed = \"deny\"\n";
        let e = load(clash).unwrap_err().to_string();
        assert!(e.contains("exe_changed needs exe_hash"), "{e}");
    }
}
