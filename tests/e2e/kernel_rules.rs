//! The kernel decides like the matcher: random rule sets compiled into the BPF tables and random operations run in the test cgroup; EPERM exactly when `netev_rules` says deny, and each event names the rule the matcher picked.
//!
//! One capture (BPF loaded and attached once) serves every case;
//! `RuleTables::install` replaces the tables each time. A case runs four
//! workloads, `netev-load probe` as each of two copies of the binary (A and
//! B, so that rules can tell programs apart by inode) and each of two uids,
//! one after another. Each probe op opens a fresh socket, so the reference
//! asks the matcher about socket() first and, if that is allowed, about the
//! op itself, in the order the kernel sees them; `once` rules are consumed
//! in the reference in that same order.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use netev_bpf::{abi, Capture, CaptureConfig, Record, RuleTables};
use netev_event::{Family, Op, Proto};
use netev_rules::compile::{compile, ExeFile, ExeTargets};
use netev_rules::fields::rule_from_fields;
use netev_rules::{Action, Decision, ExeMatch, Policy, Query, Rule, RuleSet};
use netev_tests::{root_or_skip, TestCgroup};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use crate::load_bin;

/// Cases run by default (`PROPTEST_CASES` overrides).
const CASES: u32 = 256;
/// First of the ports operations and rules use.
const PORT: u16 = 47100;
/// The uids the workloads run as.
const UIDS: [u32; 2] = [0, 65534];
/// Addresses of IPv4 (`inet`) operations.
const V4: [&str; 4] = ["127.0.0.1", "127.1.2.3", "127.1.9.9", "127.200.0.1"];
/// Addresses of IPv6 (`inet6`, dual-stack) operations.
const V6: [&str; 4] = [
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:127.1.2.3",
    "::ffff:127.200.0.1",
];
/// Address conditions rules pick from.
const RULE_ADDRS: [&str; 12] = [
    "127.0.0.0/8",
    "127.0.0.1",
    "127.1.0.0/16",
    "127.1.2.3",
    "127.200.0.0/9",
    "0.0.0.0/0",
    "::1",
    "::/0",
    "::ffff:127.0.0.0/104",
    "::ffff:127.1.0.0/112",
    "::ffff:127.1.2.3",
    "::/1",
];

/// Which programs a rule names.
#[derive(Debug, Clone, Copy)]
enum ExeSel {
    /// Copy A.
    A,
    /// Copy B.
    B,
    /// A glob over both copies.
    Both,
    /// A program that never runs here.
    Elsewhere,
}

#[derive(Debug, Clone)]
struct RuleSpec {
    action: &'static str,
    ops: Option<Vec<&'static str>>,
    exe: Option<ExeSel>,
    user: Option<u32>,
    family: Option<&'static str>,
    proto: Option<&'static str>,
    addr: Option<&'static str>,
    ports: Option<(u16, u16)>,
    priority: i32,
    once: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Socket,
    Bind,
    Connect,
    Sendto,
}

#[derive(Debug, Clone)]
struct OpSpec {
    kind: Kind,
    udp: bool,
    /// An AF_INET6 (dual-stack) socket.
    v6: bool,
    /// Unused for `socket`. An IPv4 address with `v6`: a UDP connect or
    /// sendto given a plain sockaddr_in on an AF_INET6 socket.
    addr: &'static str,
    port: u16,
}

impl OpSpec {
    /// The `netev-load probe` line.
    fn line(&self) -> String {
        let proto = if self.udp { "udp" } else { "tcp" };
        let family = if self.v6 { "inet6" } else { "inet" };
        let (addr, port) = (self.addr, self.port);
        let v4_on_v6 = if self.v6 && !addr.contains(':') {
            " inet6"
        } else {
            ""
        };
        match self.kind {
            Kind::Socket => format!("socket {proto} {family}"),
            Kind::Bind => format!("bind {proto} {addr} {port}{v4_on_v6}"),
            Kind::Connect => format!("connect {proto} {addr} {port}{v4_on_v6}"),
            Kind::Sendto => format!("sendto udp {addr} {port}{v4_on_v6}"),
        }
    }

    /// What the matcher is asked about the op itself (None for `socket`,
    /// which is only the socket() every op starts with).
    fn op(&self) -> Option<Op> {
        match self.kind {
            Kind::Socket => None,
            Kind::Bind => Some(Op::Bind),
            Kind::Connect => Some(Op::Connect),
            Kind::Sendto => Some(Op::Sendmsg),
        }
    }

    fn family(&self) -> Family {
        if self.v6 {
            Family::INET6
        } else {
            Family::INET
        }
    }

    fn proto(&self) -> Proto {
        if self.udp {
            Proto::UDP
        } else {
            Proto::TCP
        }
    }
}

#[derive(Debug, Clone)]
struct Case {
    rules: Vec<RuleSpec>,
    /// Default action for socket, bind, connect, sendmsg.
    defaults: [Action; 4],
    ask_fallback: Action,
    /// Ops of the workloads (A, uid 0), (A, 65534), (B, 0), (B, 65534), run in that order.
    workloads: [Vec<OpSpec>; 4],
}

fn arb_action(allow: u32, deny: u32, ask: u32) -> impl Strategy<Value = Action> {
    prop_oneof![
        allow => Just(Action::Allow),
        deny => Just(Action::Deny),
        ask => Just(Action::Ask),
    ]
}

fn arb_rule() -> impl Strategy<Value = RuleSpec> {
    let ports = prop_oneof![
        6 => (0u16..40, 0u16..12).prop_map(|(a, n)| (PORT + a, PORT + a + n)),
        1 => Just((0, 0)),
        1 => Just((0, 65535)),
        1 => (0u16..40).prop_map(|a| (1, PORT + a)),
    ];
    (
        prop_oneof![Just("allow"), Just("deny"), Just("ask")],
        prop::option::of(prop::sample::subsequence(
            vec!["socket", "bind", "connect", "sendmsg"],
            1..3,
        )),
        prop::option::of(prop::sample::select(vec![
            ExeSel::A,
            ExeSel::B,
            ExeSel::Both,
            ExeSel::Elsewhere,
        ])),
        prop::option::of(prop::sample::select(vec![0u32, 65534, 1000])),
        prop::option::of(prop::sample::select(vec!["inet", "inet6"])),
        prop::option::of(prop::sample::select(vec!["tcp", "udp"])),
        prop::option::of(prop::sample::select(RULE_ADDRS.to_vec())),
        prop::option::of(ports),
        (-2i32..3, prop::bool::weighted(0.25)),
    )
        .prop_map(
            |(action, ops, exe, user, family, proto, addr, ports, (priority, once))| RuleSpec {
                action,
                ops,
                exe,
                user,
                family,
                proto,
                addr,
                ports,
                priority,
                once,
            },
        )
}

fn arb_op() -> impl Strategy<Value = OpSpec> {
    (
        prop::sample::select(vec![Kind::Socket, Kind::Bind, Kind::Connect, Kind::Sendto]),
        any::<bool>(),
        // inet, inet6, or an inet6 socket given an IPv4 sockaddr
        prop_oneof![3 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8)],
        0usize..4,
        prop_oneof![6 => 0u16..48, 1 => Just(u16::MAX)],
    )
        .prop_map(|(kind, udp, fam, a, p)| {
            let udp = udp || kind == Kind::Sendto;
            // Linux takes a sockaddr_in on an AF_INET6 socket only for UDP
            // connect and sendto
            let v4_on_v6 = fam == 2 && udp && matches!(kind, Kind::Connect | Kind::Sendto);
            let v6 = fam == 1 || v4_on_v6;
            (
                kind,
                udp,
                v6,
                if v6 && !v4_on_v6 { V6[a] } else { V4[a] },
                p,
            )
        })
        .prop_map(|(kind, udp, v6, addr, p)| OpSpec {
            kind,
            udp,
            v6,
            addr,
            // bind to port 0 (the kernel picks one) now and then; connect
            // and sendto to port 0 are refused before any hook runs
            port: match (p, kind) {
                (u16::MAX, Kind::Bind) => 0,
                (u16::MAX, _) => PORT,
                (p, _) => PORT + p,
            },
        })
}

fn arb_case() -> impl Strategy<Value = Case> {
    let ops = || prop::collection::vec(arb_op(), 1..7);
    (
        prop::collection::vec(arb_rule(), 0..10),
        [
            arb_action(6, 1, 1),
            arb_action(6, 1, 1),
            arb_action(4, 2, 1),
            arb_action(6, 1, 1),
        ],
        arb_action(1, 3, 0),
        [ops(), ops(), ops(), ops()],
    )
        .prop_map(|(rules, defaults, ask_fallback, workloads)| Case {
            rules,
            defaults,
            ask_fallback,
            workloads,
        })
}

/// What stays from case to case: the cgroup, the attached capture, the two
/// copies of the probe.
struct Env {
    cg: TestCgroup,
    capture: Box<dyn Capture>,
    /// The capture's rule tables (written as netevd's rules owner does).
    tables: Box<dyn RuleTables>,
    /// Canonical paths of copies A and B.
    exes: [PathBuf; 2],
    /// Kernel identities of copies A and B.
    ids: [ExeFile; 2],
    /// Rule ids are never reused (the kernel keeps `once` state by id).
    next_id: u32,
    stats: Stats,
}

/// What the cases covered, to show that they were not all trivial.
#[derive(Debug, Default)]
struct Stats {
    cases: u32,
    rules: u32,
    ops: u32,
    /// Decisions (socket() and the op) made by a rule, not the default.
    by_rule: u32,
    socket_eperm: u32,
    op_eperm: u32,
    once_used: u32,
}

impl Env {
    fn exe_pattern(&self, sel: ExeSel) -> String {
        match sel {
            ExeSel::A => self.exes[0].display().to_string(),
            ExeSel::B => self.exes[1].display().to_string(),
            ExeSel::Both => format!("{}/probe-*", self.exes[0].parent().unwrap().display()),
            ExeSel::Elsewhere => "/usr/lib/netev-test/not-run-here".into(),
        }
    }

    /// The resolver the daemon would use, over the programs of this test:
    /// each copy the pattern matches, by directory and name.
    fn resolve(&self, m: &ExeMatch) -> ExeTargets {
        ExeTargets {
            files: (0..2)
                .filter(|i| m.matches(&self.exes[*i].display().to_string()))
                .map(|i| self.ids[i].clone())
                .collect(),
            ..ExeTargets::default()
        }
    }

    fn rule(&mut self, s: &RuleSpec) -> Option<Rule> {
        let mut f: Vec<(&str, String)> = vec![
            ("action", s.action.into()),
            ("priority", s.priority.to_string()),
        ];
        if let Some(ops) = &s.ops {
            f.push(("ops", ops.join(",")));
        }
        if let Some(e) = s.exe {
            f.push(("exe", self.exe_pattern(e)));
        }
        if let Some(u) = s.user {
            f.push(("user", u.to_string()));
        }
        if let Some(v) = s.family {
            f.push(("family", v.into()));
        }
        if let Some(v) = s.proto {
            f.push(("proto", v.into()));
        }
        if let Some(v) = s.addr {
            f.push(("addr", v.into()));
        }
        if let Some((lo, hi)) = s.ports {
            f.push(("ports", format!("{lo}-{hi}")));
        }
        if s.once {
            f.push(("duration", "once".into()));
        }
        // combinations the rule model refuses (an inet rule with an IPv6
        // address...) are left out, as the daemon would refuse them
        let mut r = rule_from_fields(
            f.iter().map(|(k, v)| (*k, v.as_str())),
            chrono::Utc::now(),
            &|_| None,
        )
        .ok()?;
        self.next_id += 1;
        r.id = self.next_id;
        Some(r)
    }

    /// Network records of `pid` so far: (op, verdict, rule id, asked).
    fn drain(&mut self, pid: u32) -> Vec<(u8, u8, u32, bool)> {
        let mut got = Vec::new();
        self.capture
            .poll(Duration::ZERO, &mut |r| {
                if let Record::Net(e) = r {
                    if e.hdr.pid == pid {
                        got.push((
                            e.hdr.op,
                            e.hdr.verdict,
                            e.rule_id,
                            e.hdr.flags & abi::F_ASKED != 0,
                        ));
                    }
                }
            })
            .expect("polling the ring buffer");
        got
    }

    fn check(&mut self, case: &Case) -> Result<(), TestCaseError> {
        self.stats.cases += 1;
        let rules: Vec<Rule> = case.rules.iter().filter_map(|s| self.rule(s)).collect();
        self.stats.rules += rules.len() as u32;
        let mut policy = Policy {
            ask_fallback: case.ask_fallback,
            ..Policy::default()
        };
        for (op, a) in [Op::Socket, Op::Bind, Op::Connect, Op::Sendmsg]
            .into_iter()
            .zip(case.defaults)
        {
            policy.set(op, a);
        }
        let set = RuleSet::new(rules, policy);
        let tables =
            compile(set.rules(), set.policy(), &mut |m| self.resolve(m)).expect("compiling rules");
        self.tables
            .install(&tables)
            .expect("installing rules into the kernel");

        let once: HashSet<u32> = set
            .rules()
            .iter()
            .filter(|r| r.duration == netev_rules::Duration::Once)
            .map(|r| r.id)
            .collect();
        let mut consumed = HashSet::new();
        let mut decide = |q: &Query<'_>| -> Decision {
            let d = set.first_match(q, |r| !consumed.contains(&r.id));
            if let Some(id) = d.rule.filter(|id| once.contains(id)) {
                consumed.insert(id);
            }
            d
        };
        let programs = format!(
            "programs: A = {}, B = {}",
            self.exes[0].display(),
            self.exes[1].display()
        );
        let describe = |extra: &str| -> String {
            let mut s = format!("{extra}\nrules in checking order:\n");
            for r in set.rules() {
                let _ = writeln!(
                    s,
                    "  #{} priority {}{}: {}",
                    r.id,
                    r.priority,
                    if r.duration == netev_rules::Duration::Once {
                        " once"
                    } else {
                        ""
                    },
                    r.summary()
                );
            }
            let _ = write!(
                s,
                "defaults socket/bind/connect/sendmsg: {:?}, ask fallback {:?}\n{programs}",
                case.defaults, case.ask_fallback,
            );
            s
        };

        for (w, ops) in case.workloads.iter().enumerate() {
            let (exe_i, uid) = (w / 2, UIDS[w % 2]);
            let exe = self.exes[exe_i].display().to_string();
            let lines: Vec<String> = ops.iter().map(OpSpec::line).collect();
            let child = self
                .cg
                .command(&self.exes[exe_i])
                .arg("probe")
                .arg("--uid")
                .arg(uid.to_string())
                .args(&lines)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting netev-load probe");
            let pid = child.id();
            let out = child.wait_with_output().expect("waiting for netev-load");
            assert!(
                out.status.success(),
                "netev-load probe {lines:?}: {}",
                out.status
            );
            let text = String::from_utf8(out.stdout).expect("UTF-8");
            let results: Vec<&str> = text.lines().collect();
            assert_eq!(results.len(), ops.len(), "one result per op: {text:?}");
            let events = self.drain(pid);

            let who = format!("workload {} (uid {uid})", ["A", "B"][exe_i]);
            let mut want_events = Vec::new();
            for (i, (op, got)) in ops.iter().zip(&results).enumerate() {
                let mut q = Query {
                    op: Op::Socket,
                    family: op.family(),
                    proto: op.proto(),
                    exe: Some(&exe),
                    uid,
                    addr: None,
                    port: None,
                    path: None,
                };
                let mut steps = vec![(Op::Socket, decide(&q))];
                if let Some(o) = op.op() {
                    if steps[0].1.applied(set.policy()) != Action::Deny {
                        q.op = o;
                        q.addr = Some(op.addr.parse::<IpAddr>().unwrap());
                        q.port = Some(op.port);
                        steps.push((o, decide(&q)));
                    }
                }
                let (last_op, last) = *steps.last().unwrap();
                let denied = last.applied(set.policy()) == Action::Deny;
                let expect = if !denied {
                    "not EPERM".to_string()
                } else if last_op == Op::Socket {
                    "socket EPERM".to_string()
                } else {
                    format!("{} EPERM", op.line().split(' ').next().unwrap())
                };
                let kernel_denied = got.ends_with(" EPERM");
                self.stats.ops += 1;
                self.stats.by_rule += steps.iter().filter(|(_, d)| d.rule.is_some()).count() as u32;
                if kernel_denied {
                    if got.starts_with("socket ") {
                        self.stats.socket_eperm += 1;
                    } else {
                        self.stats.op_eperm += 1;
                    }
                }
                let agree = if denied {
                    *got == expect
                } else {
                    !kernel_denied
                };
                prop_assert!(
                    agree,
                    "{}",
                    describe(&format!(
                        "{who}, op #{i} `{}`: kernel: `{got}`, matcher: {expect} \
                         (decisions: {steps:?})\nall ops of the workload: {lines:?}\n\
                         kernel results: {results:?}",
                        op.line()
                    ))
                );
                for (o, d) in steps {
                    want_events.push((
                        op_abi(o),
                        u8::from(d.applied(set.policy()) == Action::Deny),
                        d.rule.unwrap_or(0),
                        d.action == Action::Ask,
                    ));
                }
            }
            prop_assert_eq!(
                &events,
                &want_events,
                "{}",
                describe(&format!(
                    "{who}: kernel records (op, verdict, rule, asked) differ from the matcher's \
                     decisions\nops: {lines:?}\nresults: {results:?}"
                ))
            );
        }

        let kernel_consumed: BTreeSet<u32> = self
            .tables
            .consumed_once()
            .expect("reading once state")
            .into_iter()
            .collect();
        let want: BTreeSet<u32> = consumed.into_iter().collect();
        self.stats.once_used += want.len() as u32;
        prop_assert_eq!(
            kernel_consumed,
            want,
            "{}",
            describe("once rules used up: kernel vs matcher")
        );
        Ok(())
    }
}

/// `enum netev_op`.
fn op_abi(op: Op) -> u8 {
    Op::ALL.iter().position(|o| *o == op).unwrap() as u8 + 1
}

/// Copies the probe program to `dir/name`, readable and runnable by anyone.
fn copy_probe(dir: &Path, name: &str) -> (PathBuf, ExeFile) {
    let dst = dir.join(name);
    std::fs::copy(load_bin(), &dst).expect("copying netev-load");
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let dst = std::fs::canonicalize(&dst).expect("canonical path");
    let parent = dst.parent().expect("a directory");
    let md = std::fs::metadata(parent).expect("stat");
    let dev = md.dev();
    // the kernel's dev_t: MAJOR << 20 | MINOR
    let kdev = (libc::major(dev) << 20) | libc::minor(dev);
    let file = ExeFile {
        dir: (kdev, md.ino()),
        dir_path: parent.display().to_string(),
        name: name.as_bytes().to_vec(),
        content: None,
    };
    (dst, file)
}

#[test]
fn kernel_verdicts_equal_the_matcher() {
    if !root_or_skip("kernel_verdicts_equal_the_matcher") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (a, id_a) = copy_probe(dir.path(), "probe-a");
    let (b, id_b) = copy_probe(dir.path(), "probe-b");
    let cg = TestCgroup::new("kernel-rules");
    let mut capture = crate::open_test_capture(&CaptureConfig::new(cg.path().to_path_buf()));
    let tables = capture.rule_tables().expect("the rule tables");
    let env = RefCell::new(Env {
        cg,
        capture,
        tables,
        exes: [a, b],
        ids: [id_a, id_b],
        next_id: 0,
        stats: Stats::default(),
    });

    let config = Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: None,
        max_shrink_iters: 400,
        ..Config::default()
    };
    let start = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&arb_case(), |case| env.borrow_mut().check(&case));
    let env = env.into_inner();
    eprintln!(
        "kernel_rules: in {:.1?} (shrinking included): {:?}",
        start.elapsed(),
        env.stats
    );
    drop(env);
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, case)) => {
            panic!("the kernel disagrees with the matcher:\n{why}\nminimal case: {case:#?}")
        }
        Err(e) => panic!("{e}"),
    }
}
