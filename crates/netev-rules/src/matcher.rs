//! Deciding: the first active rule in priority order that matches, else the
//! default policy for the op.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use netev_event::Op;

use crate::{Action, Duration, Query, Rule};
use netev_event::{Family, Proto};

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
/// Rules are first split by executable: exact paths each get a bucket, the
/// rest (globs, no exe) share one. Within a bucket a rule is filed under its
/// most selective condition: a single port, else its address prefix (one
/// hash table per prefix length in use), else a short "rest" list. A query
/// looks at its exe's bucket and the shared one, and in each at the port's
/// list, one list per prefix length and the rest: a handful of hash lookups
/// whatever the number of rules. Each list is in checking order; the answer
/// is the earliest rank that matches across them.
///
/// What stays linear: rules of one program (or of no program) with neither
/// a single port nor an address, e.g. 10 000 port-range rules for one exe.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    policy: Policy,
    by_exe: FastMap<Box<str>, Bucket>,
    any_exe: Bucket,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Clone, Default)]
struct Bucket {
    by_port: FastMap<u16, Vec<Entry>>,
    /// (prefix length, network → entries), longest prefix first.
    by_prefix: Vec<(u8, FastMap<u128, Vec<Entry>>)>,
    rest: Vec<Entry>,
}

/// A rule's conditions laid out for checking where the index keeps them, so
/// that a decision reads the lists it looked up and nothing else (at 100k
/// rules, a visit to each `Rule` would be a cache miss).
#[derive(Debug, Clone)]
struct Entry {
    rank: u32,
    id: u32,
    action: Action,
    /// A `once` rule: ask the caller whether it is still usable.
    once: bool,
    /// A glob exe: check the rule in full (exact exes are the bucket's key).
    glob: bool,
    /// One bit per op index; all set when the rule names none.
    ops: u8,
    uid: Option<u32>,
    family: Option<Family>,
    proto: Option<Proto>,
    /// Mapped network and prefix length.
    addr: Option<(u128, u8)>,
    ports: Option<(u16, u16)>,
}

impl Entry {
    fn new(rank: u32, rule: &Rule) -> Entry {
        let c = &rule.cond;
        Entry {
            rank,
            id: rule.id,
            action: rule.action,
            once: rule.duration == Duration::Once,
            // A glob exe or a unix path: the full check decides.
            glob: c.exe.as_ref().is_some_and(|e| e.is_glob()) || c.path.is_some(),
            ops: if c.ops.is_empty() {
                u8::MAX
            } else {
                c.ops.iter().fold(0, |m, op| m | 1 << op_index(*op))
            },
            uid: c.uid,
            family: c.family,
            proto: c.proto,
            addr: c.addr.as_ref().map(|n| {
                let (net, len) = crate::mapped_prefix(n);
                (u128::from(net), len)
            }),
            ports: c.ports.map(|r| (r.lo, r.hi)),
        }
    }

    /// `Conditions::matches`, but for the exe, which the bucket vouches for
    /// (or, for globs, the full check).
    #[inline]
    fn matches(&self, q: &Query<'_>, addr: Option<u128>, rules: &[Rule]) -> bool {
        if self.ops & (1 << op_index(q.op)) == 0
            || self.uid.is_some_and(|u| u != q.uid)
            || self.family.is_some_and(|f| f != q.family)
            || self.proto.is_some_and(|p| p != q.proto)
        {
            return false;
        }
        if let Some((net, len)) = self.addr {
            match addr {
                Some(a) if mask(a, len) == net => {}
                _ => return false,
            }
        }
        if let Some((lo, hi)) = self.ports {
            match q.port {
                Some(p) if lo <= p && p <= hi => {}
                _ => return false,
            }
        }
        !self.glob || rules[self.rank as usize].cond.matches(q)
    }
}

fn mask(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

impl Bucket {
    fn file(&mut self, entry: Entry) {
        if let Some((lo, _)) = entry.ports.filter(|(lo, hi)| lo == hi) {
            self.by_port.entry(lo).or_default().push(entry);
        } else if let Some((net, len)) = entry.addr {
            let level = match self.by_prefix.iter().position(|(l, _)| *l == len) {
                Some(i) => i,
                None => {
                    self.by_prefix.push((len, FastMap::default()));
                    self.by_prefix.sort_by_key(|(l, _)| std::cmp::Reverse(*l));
                    self.by_prefix
                        .iter()
                        .position(|(l, _)| *l == len)
                        .expect("just added")
                }
            };
            self.by_prefix[level].1.entry(net).or_default().push(entry);
        } else {
            self.rest.push(entry);
        }
    }

    /// The earliest entry ranked before `best` in this bucket that `hit`
    /// accepts.
    fn first<'a>(
        &'a self,
        q: &Query<'_>,
        addr: Option<u128>,
        mut best: Option<&'a Entry>,
        hit: &impl Fn(&Entry) -> bool,
    ) -> Option<&'a Entry> {
        let mut scan = |list: &'a [Entry]| {
            let before = best.map_or(u32::MAX, |b| b.rank);
            if let Some(e) = list.iter().take_while(|e| e.rank < before).find(|e| hit(e)) {
                best = Some(e);
            }
        };
        // An op without a port or an address can only match rules without
        // one: those are all in `rest`.
        if let Some(list) = q
            .port
            .filter(|_| !self.by_port.is_empty())
            .and_then(|p| self.by_port.get(&p))
        {
            scan(list);
        }
        if let Some(addr) = addr {
            for (len, nets) in &self.by_prefix {
                if let Some(list) = nets.get(&mask(addr, *len)) {
                    scan(list);
                }
            }
        }
        if !self.rest.is_empty() {
            scan(&self.rest);
        }
        best
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
            let bucket = match &rule.cond.exe {
                Some(exe) if !exe.is_glob() => set.by_exe.entry(exe.as_str().into()).or_default(),
                _ => &mut set.any_exe,
            };
            bucket.file(Entry::new(rank as u32, rule));
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

    /// As [`RuleSet::decide`], skipping `once` rules for which `usable` is
    /// false (consumed already).
    pub fn first_match(&self, q: &Query<'_>, usable: impl Fn(&Rule) -> bool) -> Decision {
        let addr = q.addr.map(|a| u128::from(crate::mapped_addr(a)));
        let hit = |e: &Entry| {
            e.matches(q, addr, &self.rules) && (!e.once || usable(&self.rules[e.rank as usize]))
        };
        let mut best = None;
        if let Some(bucket) = q
            .exe
            .filter(|_| !self.by_exe.is_empty())
            .and_then(|e| self.by_exe.get(e))
        {
            best = bucket.first(q, addr, best, &hit);
        }
        best = self.any_exe.first(q, addr, best, &hit);
        match best {
            Some(e) => Decision {
                action: e.action,
                rule: Some(e.id),
            },
            None => Decision {
                action: self.policy.for_op(q.op),
                rule: None,
            },
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
            path: None,
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
    fn an_answer_to_alices_prompt_does_not_let_mallory_through() {
        let (alice, mallory) = (1000, 1001);
        let mut asked = netev_event::Event::new(Op::Connect);
        asked.uid = alice;
        asked.exe = Some("/usr/bin/curl".into());
        asked.raddr = Some("192.0.2.7".parse().unwrap());
        asked.rport = Some(443);
        let mut rules = vec![
            rule(1, &[("action", "deny"), ("user", "1001")]),
            rule(2, &[("action", "ask")]),
        ];
        let mut answer = crate::fields::rule_for_answer(
            &asked,
            Action::Allow,
            "always",
            "exe+dest+port",
            Utc::now(),
        )
        .unwrap();
        answer.id = 3;
        crate::lifecycle::rank_answer(&mut answer, Some(&rules[1]));
        assert_eq!(answer.cond.uid, Some(alice), "the answer names the asker");
        rules.push(answer);
        let set = RuleSet::new(rules, Policy::default());
        let as_user = |uid| {
            let mut q = connect("/usr/bin/curl", "192.0.2.7", 443);
            q.uid = uid;
            set.decide(&q)
        };
        assert_eq!(as_user(alice).rule, Some(3), "alice's answer covers alice");
        assert_eq!(
            as_user(mallory),
            Decision {
                action: Action::Deny,
                rule: Some(1)
            },
            "mallory stays denied"
        );
        // widened only when asked for
        let wide = crate::fields::rule_for_answer(
            &asked,
            Action::Allow,
            "always",
            "exe+dest+port+any-user",
            Utc::now(),
        )
        .unwrap();
        assert_eq!(wide.cond.uid, None);
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
            path: None,
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
                rule(1, &[("action", "allow"), ("duration", "once")]),
                rule(2, &[("action", "deny")]),
            ],
            Policy::default(),
        );
        let q = connect("/x", "1.2.3.4", 1);
        assert_eq!(set.first_match(&q, |_| true).rule, Some(1));
        assert_eq!(set.first_match(&q, |r| r.id != 1).rule, Some(2));
        // only once rules are asked about
        assert_eq!(set.first_match(&q, |_| false).rule, Some(2));
    }
}
