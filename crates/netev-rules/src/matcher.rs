//! Deciding: the first active rule in priority order that matches, else the
//! default policy for the op.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use netev_event::Op;

use crate::{Action, Query, Rule};

/// What to do when no rule matches, per op, and what the kernel does while a
/// person is being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Action per op, indexed like [`Op::ALL`].
    pub default: [Action; 7],
    /// Applied at once when a rule or the default says `ask` (allow or deny).
    pub ask_fallback: Action,
}

impl Default for Policy {
    /// Allow everything not covered by a rule (a fresh install must not break
    /// the machine); deny while asking.
    fn default() -> Policy {
        Policy {
            default: [Action::Allow; 7],
            ask_fallback: Action::Deny,
        }
    }
}

impl Policy {
    /// The default action for `op`.
    pub fn for_op(&self, op: Op) -> Action {
        self.default[op_index(op)]
    }

    /// Sets the default action for `op`.
    pub fn set(&mut self, op: Op, action: Action) {
        self.default[op_index(op)] = action;
    }
}

pub(crate) fn op_index(op: Op) -> usize {
    Op::ALL.iter().position(|o| *o == op).unwrap_or(0)
}

/// The outcome for one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The matching rule's action, or the default's.
    pub action: Action,
    /// The matching rule's id; `None` when the default decided.
    pub rule: Option<u32>,
}

impl Decision {
    /// What is applied at once: `ask` becomes the ask fallback.
    pub fn applied(&self, policy: &Policy) -> Action {
        match self.action {
            Action::Ask => policy.ask_fallback,
            a => a,
        }
    }
}

/// Rules put in checking order, with an index so that a decision looks at
/// the few rules that can match instead of all of them.
///
/// Rules are bucketed by exact executable path and by single port; a query
/// merges (in rank order) the four buckets it can fall in: its exe and its
/// port, its exe and any port, any exe and its port, any exe and any port.
/// Globs, port ranges and unset fields land in the "any" buckets and are
/// checked in full there.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    policy: Policy,
    by_exe: HashMap<Box<str>, PortBuckets>,
    any_exe: PortBuckets,
}

#[derive(Debug, Clone, Default)]
struct PortBuckets {
    by_port: HashMap<u16, Vec<u32>>,
    any_port: Vec<u32>,
}

static EMPTY: Vec<u32> = Vec::new();

impl PortBuckets {
    fn lists(&self, port: Option<u16>) -> [&[u32]; 2] {
        let exact = port.and_then(|p| self.by_port.get(&p)).unwrap_or(&EMPTY);
        [exact, &self.any_port]
    }
}

impl RuleSet {
    /// Indexes the rules that are enabled (expiry is the caller's business:
    /// see [`RuleSet::active_at`]).
    pub fn new(mut rules: Vec<Rule>, policy: Policy) -> RuleSet {
        rules.retain(|r| r.enabled);
        rules.sort_by_key(Rule::rank_key);
        let mut set = RuleSet {
            rules,
            policy,
            ..RuleSet::default()
        };
        for (rank, rule) in set.rules.iter().enumerate() {
            let buckets = match &rule.cond.exe {
                Some(exe) if !exe.is_glob() => set.by_exe.entry(exe.as_str().into()).or_default(),
                _ => &mut set.any_exe,
            };
            match rule.cond.ports {
                Some(r) if r.lo == r.hi => {
                    buckets.by_port.entry(r.lo).or_default().push(rank as u32)
                }
                _ => buckets.any_port.push(rank as u32),
            }
        }
        set
    }

    /// The rules of `rules` that take part in decisions at `now`.
    pub fn active_at(rules: &[Rule], now: DateTime<Utc>, policy: Policy) -> RuleSet {
        RuleSet::new(
            rules.iter().filter(|r| r.active(now)).cloned().collect(),
            policy,
        )
    }

    /// The rules in checking order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The default policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The first matching rule's decision, or the default's.
    pub fn decide(&self, q: &Query<'_>) -> Decision {
        self.first_match(q, |_| true)
    }

    /// As [`RuleSet::decide`], skipping rules for which `usable` is false
    /// (`once` rules already consumed).
    pub fn first_match(&self, q: &Query<'_>, usable: impl Fn(&Rule) -> bool) -> Decision {
        let exe_buckets = q.exe.and_then(|e| self.by_exe.get(e));
        let [a, b] = exe_buckets.map_or([&EMPTY[..], &EMPTY[..]], |bk| bk.lists(q.port));
        let [c, d] = self.any_exe.lists(q.port);
        let mut lists = [a, b, c, d];
        // repeatedly take the smallest rank at the head of the four sorted lists
        while let Some((which, rank)) = lists
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.first().map(|r| (i, *r)))
            .min_by_key(|(_, r)| *r)
        {
            lists[which] = &lists[which][1..];
            let rule = &self.rules[rank as usize];
            if rule.cond.matches(q) && usable(rule) {
                return Decision {
                    action: rule.action,
                    rule: Some(rule.id),
                };
            }
        }
        Decision {
            action: self.policy.for_op(q.op),
            rule: None,
        }
    }

    /// The obviously-correct decision: every rule in order. The index must
    /// always agree with it (property-tested).
    pub fn decide_linear(&self, q: &Query<'_>) -> Decision {
        self.rules
            .iter()
            .find(|r| r.cond.matches(q))
            .map(|r| Decision {
                action: r.action,
                rule: Some(r.id),
            })
            .unwrap_or(Decision {
                action: self.policy.for_op(q.op),
                rule: None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::rule_from_fields;
    use netev_event::{Family, Proto};

    fn rule(id: u32, f: &[(&str, &str)]) -> Rule {
        let mut r = rule_from_fields(f.iter().copied(), Utc::now(), &|_| None).unwrap();
        r.id = id;
        r
    }

    fn connect<'a>(exe: &'a str, addr: &str, port: u16) -> Query<'a> {
        Query {
            op: Op::Connect,
            family: if addr.contains(':') {
                Family::INET6
            } else {
                Family::INET
            },
            proto: Proto::TCP,
            exe: Some(exe),
            uid: 1000,
            addr: Some(addr.parse().unwrap()),
            port: Some(port),
        }
    }

    #[test]
    fn first_match_in_priority_then_age_order() {
        let set = RuleSet::new(
            vec![
                rule(1, &[("action", "deny"), ("ports", "80")]),
                rule(
                    2,
                    &[
                        ("action", "allow"),
                        ("ports", "80"),
                        ("exe", "/usr/bin/curl"),
                    ],
                ),
                rule(
                    3,
                    &[("action", "ask"), ("priority", "5"), ("addr", "10.0.0.0/8")],
                ),
            ],
            Policy::default(),
        );
        let d = |q| set.decide(&q);
        assert_eq!(
            d(connect("/usr/bin/curl", "1.1.1.1", 80)).rule,
            Some(1),
            "older first"
        );
        assert_eq!(
            d(connect("/usr/bin/curl", "10.0.0.1", 80)).rule,
            Some(3),
            "priority first"
        );
        assert_eq!(
            d(connect("/usr/bin/curl", "1.1.1.1", 81)),
            Decision {
                action: Action::Allow,
                rule: None
            }
        );
    }

    #[test]
    fn ipv4_rule_covers_mapped_ipv6() {
        let set = RuleSet::new(
            vec![rule(1, &[("action", "deny"), ("addr", "127.0.0.1")])],
            Policy::default(),
        );
        assert_eq!(
            set.decide(&connect("/x", "::ffff:127.0.0.1", 1)).rule,
            Some(1)
        );
        assert_eq!(set.decide(&connect("/x", "::1", 1)).rule, None);
    }

    #[test]
    fn address_and_port_rules_skip_ops_without_them() {
        let set = RuleSet::new(
            vec![
                rule(1, &[("action", "deny"), ("ports", "0-65535")]),
                rule(2, &[("action", "ask")]),
            ],
            Policy::default(),
        );
        let q = Query {
            op: Op::Socket,
            family: Family::INET,
            proto: Proto::TCP,
            exe: None,
            uid: 0,
            addr: None,
            port: None,
        };
        assert_eq!(set.decide(&q).rule, Some(2));
    }

    #[test]
    fn globs_users_families_and_defaults() {
        let mut policy = Policy::default();
        policy.set(Op::Bind, Action::Deny);
        let set = RuleSet::new(
            vec![
                rule(
                    1,
                    &[
                        ("action", "allow"),
                        ("exe", "/opt/*/bin/srv"),
                        ("ops", "bind"),
                    ],
                ),
                rule(
                    2,
                    &[("action", "deny"), ("user", "1000"), ("family", "inet6")],
                ),
                rule(3, &[("action", "deny"), ("enabled", "false")]),
            ],
            policy,
        );
        let mut q = connect("/opt/a/bin/srv", "::1", 8080);
        q.op = Op::Bind;
        assert_eq!(set.decide(&q).rule, Some(1));
        q.exe = Some("/opt/a/b/bin/srv");
        assert_eq!(set.decide(&q).rule, Some(2), "* does not cross /");
        q.uid = 0;
        assert_eq!(
            set.decide(&q),
            Decision {
                action: Action::Deny,
                rule: None
            }
        );
        q.op = Op::Connect;
        assert_eq!(
            set.decide(&q),
            Decision {
                action: Action::Allow,
                rule: None
            }
        );
    }

    #[test]
    fn once_rules_can_be_skipped() {
        let set = RuleSet::new(
            vec![
                rule(1, &[("action", "allow")]),
                rule(2, &[("action", "deny")]),
            ],
            Policy::default(),
        );
        let q = connect("/x", "1.2.3.4", 1);
        assert_eq!(set.first_match(&q, |r| r.id != 1).rule, Some(2));
    }
}
