//! A bypass suite: the tricks a process can try to get a denied operation past the rules, each on the backend the run uses, each refused with EPERM and reported with its real destination.
//!
//! Every test runs on whichever backend the run asks for
//! (`NETEV_TEST_BACKEND`; the host runs cgroup, scripts/vm-matrix.sh runs
//! both on each kernel), each case with its own ports (476xx, 477xx). The
//! sockaddr edges share one netevd and one rules file, as do the program
//! identity cases (a netevd start costs half a minute under the matrix's
//! emulation); each case is still checked on its own and a failure names
//! it (`edge sendmmsg`, `exe replaced-by-mv`, …):
//!
//! - **AF_UNSPEC sendto**: a UDP `sendto` whose `sin_family` is AF_UNSPEC,
//!   which `udp_sendmsg` reads as AF_INET (`edge sendto-unspec`).
//! - **AF_UNSPEC bind**: `bind` of AF_UNSPEC + 0.0.0.0:P, which inet bind
//!   reads as AF_INET, on UDP and TCP (`edge bind-unspec`).
//! - **sendmmsg**: one call, two destinations; each message is decided
//!   (`edge sendmmsg`).
//! - **IPv4-mapped IPv6**: a dual-stack AF_INET6 socket's `sendto` and
//!   `connect` to `::ffff:127.0.0.1` under an IPv4 rule
//!   (`edge sendto-v4mapped`, `edge connect-v4mapped`).
//! - **The 32-bit entry**: socket + connect through `int $0x80` from a
//!   64-bit process (`edge compat-connect`).
//! - **ICMP echo** on a ping socket under a `proto = "icmp"` sendmsg rule
//!   (`edge icmp-echo`): decided at the send on LSM; refused at `socket()`
//!   on the cgroup backend, which has no hook on ICMP sends.
//! - **SCTP** connect (`edge sctp-connect`): decided at connect on LSM,
//!   refused at `socket()` on the cgroup backend.
//! - **A crashed daemon exempts nobody**: after `kill -9` the pinned
//!   programs keep enforcing, also for a new process that got the dead
//!   daemon's pid.
//! - **A timed rule expires in the kernel** while netevd is down.
//! - **Program identity** (`exe`): a program created after the rules were
//!   installed under `DIR/**` is refused at once; a symlink planted in a
//!   user-owned directory does not move a rule onto its target; a program
//!   replaced by `mv` under an exact rule is still covered; a `**` symlink
//!   loop and a 100k-file tree under `DIR/**/bin/*` do not stall netevd,
//!   and adding such a rule gives a clear error or warning.
//!
//! Some of these are what the kernel side is being changed to do; until
//! that lands they fail on the backend that does not do it yet.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use netev_tests::{
    ensure_user, root_or_skip, wait_bounded, workspace_bin, Daemon, OutputBounded, PrivateBus,
    Stopped, TestCgroup,
};
use serde_json::Value;

use crate::{check_each, load_bin, on_lsm};

/// A rules file in a directory of its own (removed on drop).
struct RulesFile {
    dir: tempfile::TempDir,
}

impl RulesFile {
    fn new(toml: &str) -> RulesFile {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("rules.toml"), toml).expect("writing the rules");
        RulesFile { dir }
    }

    fn path(&self) -> String {
        self.dir
            .path()
            .join("rules.toml")
            .to_str()
            .expect("utf-8")
            .to_string()
    }
}

/// One `deny` rule with these fields (TOML, one `key = value` a line).
fn deny(fields: &str) -> String {
    format!("[[rule]]\naction = \"deny\"\n{fields}\n")
}

fn events<'a>(stopped: &'a Stopped, facts: &Value, op: &str) -> Vec<&'a Value> {
    crate::ops(stopped, &facts["pid"], op)
}

/// Skips the rest of a test with a printed reason, except under `CI=true`,
/// where a skip is a failure (the harness's convention, as `root_or_skip`).
fn skip(test: &str, why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {why}; under CI=true a skip is a failure");
    }
    eprintln!("SKIP {test}: {why}");
}

/// Asserts that `ev` names the IPv4 destination 127.0.0.1:`port` as the
/// kernel acts on it.
fn assert_inet_dest(ev: &Value, port: u16) {
    assert_eq!(ev["family"], "inet", "what the kernel acts on: {ev}");
    assert_eq!(ev["raddr"], "127.0.0.1", "{ev}");
    assert_eq!(ev["rport"], port, "{ev}");
}

// ---- the sockaddr edges: one netevd, one rule (and ports) per edge ----

/// `edge sendto-unspec`: denied on this port, delivered on the next.
const UNSPEC_SEND: u16 = 47611;
/// `edge bind-unspec`.
const UNSPEC_BIND: u16 = 47621;
/// `edge sendmmsg`: this port allowed, the next one denied.
const MMSG: u16 = 47631;
/// `edge sendto-v4mapped`: denied on this port, delivered on the next.
const V4MAPPED_SEND: u16 = 47641;
/// `edge connect-v4mapped`: denied on this port, accepted on the next.
const V4MAPPED_CONNECT: u16 = 47651;
/// `edge compat-connect`.
const COMPAT: u16 = 47661;
/// `edge sctp-connect`.
const SCTP: u16 = 47671;

/// How an IPv4-mapped peer of a dual-stack AF_INET6 socket is reported:
/// `family` is the socket's, `inet6` (docs/rules.md: "a dual-stack `inet6`
/// socket talking to an IPv4 peer is `inet6`"), and the address is the one
/// it reaches the peer as, `::ffff:a.b.c.d` (docs/events.md: `raddr` is
/// the remote IP address as the socket has it).
fn assert_v4mapped_dest(ev: &Value, port: u16) {
    assert_eq!(ev["family"], "inet6", "the socket's family: {ev}");
    assert_eq!(ev["raddr"], "::ffff:127.0.0.1", "{ev}");
    assert_eq!(ev["rport"], port, "{ev}");
}

/// An IPv4 address rule for sends and connects (not binds: the workload's
/// own receiver binds 127.0.0.1:P, which an ops-less address rule would
/// refuse too).
fn v4_addr_rule(port: u16) -> String {
    deny(&format!(
        "ops = [\"connect\", \"sendmsg\"]\naddr = \"127.0.0.1\"\nports = {port}"
    ))
}

/// Every edge's rule, each on its own ports (the ICMP one on ICMP alone):
/// no edge's workload touches another's rule.
fn edge_rules() -> String {
    [
        deny(&format!("ops = [\"sendmsg\"]\nports = {UNSPEC_SEND}")),
        deny(&format!("ops = [\"bind\"]\nports = {UNSPEC_BIND}")),
        deny(&format!("ops = [\"sendmsg\"]\nports = {}", MMSG + 1)),
        v4_addr_rule(V4MAPPED_SEND),
        v4_addr_rule(V4MAPPED_CONNECT),
        deny(&format!("ops = \"connect\"\nports = {COMPAT}")),
        deny("ops = [\"sendmsg\"]\nproto = \"icmp\""),
        deny(&format!("ops = [\"connect\"]\nports = {SCTP}")),
    ]
    .concat()
}

/// `edge sendto-unspec` on the denied port, then on the next one.
fn check_unspec_sendto(stopped: &Stopped, denied: &Value, other: &Value) {
    let port = UNSPEC_SEND;
    let facts = denied;
    assert_eq!(facts["sendto"], "EPERM", "{facts}");
    assert_eq!(facts["received"], false, "{facts}");
    let sends = events(stopped, facts, "sendmsg");
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["verdict"], "deny", "{}", sends[0]);
    assert_inet_dest(sends[0], port);

    // the same rule, another port: delivered
    let facts = other;
    assert_eq!(facts["sendto"], "ok", "{facts}");
    assert_eq!(facts["received"], true, "{facts}");
    let sends = events(stopped, facts, "sendmsg");
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["verdict"], "allow", "{}", sends[0]);
    assert_inet_dest(sends[0], port + 1);
}

/// `edge bind-unspec`: refused and reported as inet.
fn check_unspec_bind(stopped: &Stopped, facts: &Value) {
    let port = UNSPEC_BIND;
    assert_eq!(facts["udp_bind"], "EPERM", "{facts}");
    assert_eq!(facts["tcp_bind"], "EPERM", "{facts}");
    let binds = events(stopped, facts, "bind");
    assert_eq!(binds.len(), 2, "one per socket: {binds:#?}");
    for (ev, proto) in binds.iter().zip(["udp", "tcp"]) {
        assert_eq!(ev["verdict"], "deny", "{ev}");
        assert_eq!(ev["family"], "inet", "what the kernel acts on: {ev}");
        assert_eq!(ev["proto"], proto, "{ev}");
        assert_eq!(ev["laddr"], "0.0.0.0", "{ev}");
        assert_eq!(ev["lport"], port, "{ev}");
    }
}

/// `edge sendmmsg`: decided message by message.
fn check_sendmmsg(stopped: &Stopped, facts: &Value) {
    let port = MMSG;
    assert_eq!(
        facts["receivers"],
        serde_json::json!(["ok", "ok"]),
        "{facts}"
    );
    assert_eq!(
        facts["sendmmsg"], 1,
        "the first message sent, the second refused: {facts}"
    );
    assert_eq!(
        facts["received"],
        serde_json::json!([true, false]),
        "{facts}"
    );
    let sends = events(stopped, facts, "sendmsg");
    assert_eq!(sends.len(), 2, "one per message: {sends:#?}");
    assert_eq!(sends[0]["verdict"], "allow", "{}", sends[0]);
    assert_inet_dest(sends[0], port);
    assert_eq!(sends[1]["verdict"], "deny", "{}", sends[1]);
    assert_inet_dest(sends[1], port + 1);
}

/// `edge sendto-v4mapped`: refused by an IPv4 rule; the next port delivered.
fn check_v4mapped_sendto(stopped: &Stopped, denied: &Value, other: &Value) {
    let port = V4MAPPED_SEND;
    let facts = denied;
    assert_eq!(facts["receiver"], "ok", "{facts}");
    assert_eq!(facts["sendto"], "EPERM", "{facts}");
    assert_eq!(facts["received"], false, "{facts}");
    let sends = events(stopped, facts, "sendmsg");
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["verdict"], "deny", "{}", sends[0]);
    assert_v4mapped_dest(sends[0], port);

    let facts = other;
    assert_eq!(facts["sendto"], "ok", "{facts}");
    assert_eq!(facts["received"], true, "{facts}");
    let sends = events(stopped, facts, "sendmsg");
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["verdict"], "allow", "{}", sends[0]);
    assert_v4mapped_dest(sends[0], port + 1);
}

/// `edge connect-v4mapped`: refused by an IPv4 rule; the next port accepted.
fn check_v4mapped_connect(stopped: &Stopped, denied: &Value, other: &Value) {
    let port = V4MAPPED_CONNECT;
    let facts = denied;
    assert_eq!(facts["listener"], "ok", "{facts}");
    assert_eq!(facts["connect"], "EPERM", "{facts}");
    assert_eq!(facts["accepted"], false, "{facts}");
    let connects = events(stopped, facts, "connect");
    assert_eq!(connects.len(), 1, "{connects:#?}");
    assert_eq!(connects[0]["verdict"], "deny", "{}", connects[0]);
    assert_v4mapped_dest(connects[0], port);

    let facts = other;
    assert_eq!(facts["connect"], "ok", "{facts}");
    assert_eq!(facts["accepted"], true, "{facts}");
    let connects = events(stopped, facts, "connect");
    assert_eq!(connects.len(), 1, "{connects:#?}");
    assert_eq!(connects[0]["verdict"], "allow", "{}", connects[0]);
    assert_v4mapped_dest(connects[0], port + 1);
}

/// `edge compat-connect`: a connect through the 32-bit entry is refused.
fn check_compat_connect(test: &str, stopped: &Stopped, facts: &Value) {
    let port = COMPAT;
    if facts["compat"] == "unsupported" {
        return skip(
            test,
            &format!("the kernel has no IA32 emulation (int $0x80): {facts}"),
        );
    }
    assert_eq!(facts["listener"], "ok", "{facts}");
    assert_eq!(facts["socket"], "ok", "{facts}");
    // both backends decide connect in the kernel, whatever the entry point
    assert_eq!(facts["connect"], "EPERM", "{facts}");
    assert_eq!(facts["accepted"], false, "{facts}");
    let connects = events(stopped, facts, "connect");
    assert_eq!(connects.len(), 1, "{connects:#?}");
    assert_eq!(connects[0]["verdict"], "deny", "{}", connects[0]);
    assert_inet_dest(connects[0], port);
}

/// `net.ipv4.ping_group_range` widened to include gid 0 (ping sockets are
/// refused with EACCES, before any hook, to groups outside it; Debian's
/// systemd opens it to all, a bare kernel to none), restored on drop.
struct PingGroupRange {
    old: Option<String>,
}

const PING_RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

impl PingGroupRange {
    fn include_root() -> PingGroupRange {
        let old = std::fs::read_to_string(PING_RANGE).expect(PING_RANGE);
        let bounds: Vec<i64> = old
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let (low, high) = match bounds[..] {
            [low, high] => (low, high),
            _ => panic!("{PING_RANGE}: {old:?}"),
        };
        if low <= 0 && 0 <= high {
            return PingGroupRange { old: None };
        }
        std::fs::write(PING_RANGE, format!("0 {}", high.max(0)))
            .expect("widening ping_group_range");
        PingGroupRange {
            old: Some(old.trim().to_string()),
        }
    }
}

impl Drop for PingGroupRange {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            if let Err(e) = std::fs::write(PING_RANGE, old) {
                eprintln!("warning: restoring {PING_RANGE} to {old:?}: {e}");
            }
        }
    }
}

/// `edge icmp-echo` under a `proto = "icmp"` sendmsg rule: refused where
/// the backend can decide it (the send on LSM, socket() on cgroup).
fn check_icmp_echo(stopped: &Stopped, facts: &Value) {
    if on_lsm() {
        assert_eq!(facts["socket"], "ok", "{facts}");
        assert_eq!(facts["sendto"], "EPERM", "{facts}");
        assert_eq!(facts["reply"], false, "{facts}");
        let sends = events(stopped, facts, "sendmsg");
        assert_eq!(sends.len(), 1, "{sends:#?}");
        assert_eq!(sends[0]["verdict"], "deny", "{}", sends[0]);
        assert_eq!(sends[0]["proto"], "icmp", "{}", sends[0]);
        assert_eq!(sends[0]["family"], "inet", "{}", sends[0]);
        assert_eq!(sends[0]["raddr"], "127.0.0.1", "{}", sends[0]);
    } else {
        // no hook on ICMP sends: an op the backend cannot decide is refused
        // at socket() when a deny rule could apply to it
        assert_eq!(facts["socket"], "EPERM", "{facts}");
        let sockets = events(stopped, facts, "socket");
        assert_eq!(sockets.len(), 1, "{sockets:#?}");
        assert_eq!(sockets[0]["verdict"], "deny", "{}", sockets[0]);
        assert_eq!(sockets[0]["proto"], "icmp", "{}", sockets[0]);
        assert_eq!(sockets[0]["ret"], -1, "{}", sockets[0]);
    }
}

/// Whether this kernel has SCTP (built in, or a module it loads on the
/// first socket()): None if so, else why not. Tried outside the test
/// cgroup, so no rule decides it.
fn sctp_missing() -> Option<String> {
    // SAFETY: plain syscalls on a descriptor we own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP) };
    if fd >= 0 {
        unsafe { libc::close(fd) };
        return None;
    }
    let e = std::io::Error::last_os_error();
    Some(format!(
        "the kernel has no SCTP: socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP): {e}"
    ))
}

/// Runs a command to completion (bounded), with its pid.
fn run_with_pid(mut cmd: Command) -> (u32, Output) {
    let mut child = cmd
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the workload");
    let pid = child.id();
    wait_bounded(&mut child, "the workload");
    // exited: a few lines each, which fit in the pipes, read now
    let out = child.wait_with_output().expect("the workload's output");
    (pid, out)
}

/// `edge sctp-connect` (run by [`run_with_pid`]: on cgroup it fails at
/// socket()): refused where the backend can decide it.
fn check_sctp_connect(stopped: &Stopped, pid: u32, out: &Output) {
    let port = SCTP;
    let said = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = Value::from(pid);
    if on_lsm() {
        assert!(out.status.success(), "{said}{err}");
        let facts: Value = serde_json::from_str(said.trim()).expect("JSON");
        assert_eq!(facts["connect"], "EPERM", "{facts}");
        let connects = crate::ops(stopped, &pid, "connect");
        assert_eq!(connects.len(), 1, "{connects:#?}");
        assert_eq!(connects[0]["verdict"], "deny", "{}", connects[0]);
        assert_inet_dest(connects[0], port);
    } else {
        // the cgroup address hooks never see SCTP: refused at socket()
        assert!(
            !out.status.success() && err.contains("socket: EPERM"),
            "socket() must be refused: exit {}, {said}{err}",
            out.status
        );
        let sockets = crate::ops(stopped, &pid, "socket");
        assert_eq!(sockets.len(), 1, "{sockets:#?}");
        assert_eq!(sockets[0]["verdict"], "deny", "{}", sockets[0]);
        assert_eq!(sockets[0]["ret"], -1, "{}", sockets[0]);
    }
}

/// Every sockaddr edge under one netevd (the run's backend) with one rules
/// file, each edge on ports of its own, each workload a process of its own
/// (its events told apart by pid); each edge is checked as when it had a
/// netevd to itself, and a failure names it (`edge sendto-unspec`, …).
#[test]
fn the_sockaddr_edges_are_refused_and_reported_with_their_real_destinations() {
    let test = "the_sockaddr_edges_are_refused_and_reported_with_their_real_destinations";
    if !root_or_skip(test) {
        return;
    }
    let _range = PingGroupRange::include_root();
    let sctp = sctp_missing();
    if let Some(why) = &sctp {
        // Not a skip: a kernel that cannot make an SCTP socket cannot be
        // walked around with one (no rule is in force here, so the
        // refusal is the kernel's own). The matrix's Debian kernels have
        // SCTP and run the SCTP edge.
        assert!(
            why.contains("not supported"),
            "edge sctp-connect: SCTP refused for another reason than missing support: {why}"
        );
        eprintln!("{test}: {why}: no SCTP edge to walk around on this kernel");
    }
    let rules = RulesFile::new(&edge_rules());
    let cg = TestCgroup::new("bypass-edges");
    let daemon = Daemon::start(&cg, &["--rules-file", &rules.path()]);
    let run = |what: &str, port: u16| cg.run_json(&load_bin(), &["edge", what, &port.to_string()]);
    let unspec_send = run("sendto-unspec", UNSPEC_SEND);
    let unspec_send_ok = run("sendto-unspec", UNSPEC_SEND + 1);
    let unspec_bind = run("bind-unspec", UNSPEC_BIND);
    let mmsg = run("sendmmsg", MMSG);
    let v4_send = run("sendto-v4mapped", V4MAPPED_SEND);
    let v4_send_ok = run("sendto-v4mapped", V4MAPPED_SEND + 1);
    let v4_connect = run("connect-v4mapped", V4MAPPED_CONNECT);
    let v4_connect_ok = run("connect-v4mapped", V4MAPPED_CONNECT + 1);
    let compat = run("compat-connect", COMPAT);
    let icmp = run("icmp-echo", 1);
    let sctp_run = sctp.is_none().then(|| {
        let mut cmd = cg.command(load_bin());
        cmd.args(["edge", "sctp-connect", &SCTP.to_string()]);
        run_with_pid(cmd)
    });
    let stopped = daemon.stop();
    assert!(stopped.success, "{}", stopped.log);
    let s = &stopped;
    let mut checks: Vec<(String, Box<dyn FnOnce() + '_>)> = vec![
        (
            format!("edge sendto-unspec (AF_UNSPEC sendto, ports {UNSPEC_SEND}/+1)"),
            Box::new(|| check_unspec_sendto(s, &unspec_send, &unspec_send_ok)),
        ),
        (
            format!("edge bind-unspec (AF_UNSPEC bind, port {UNSPEC_BIND})"),
            Box::new(|| check_unspec_bind(s, &unspec_bind)),
        ),
        (
            format!("edge sendmmsg (ports {MMSG}/+1)"),
            Box::new(|| check_sendmmsg(s, &mmsg)),
        ),
        (
            format!("edge sendto-v4mapped (ports {V4MAPPED_SEND}/+1)"),
            Box::new(|| check_v4mapped_sendto(s, &v4_send, &v4_send_ok)),
        ),
        (
            format!("edge connect-v4mapped (ports {V4MAPPED_CONNECT}/+1)"),
            Box::new(|| check_v4mapped_connect(s, &v4_connect, &v4_connect_ok)),
        ),
        (
            format!("edge compat-connect (the 32-bit entry, port {COMPAT})"),
            Box::new(|| check_compat_connect(test, s, &compat)),
        ),
        (
            "edge icmp-echo".to_string(),
            Box::new(|| check_icmp_echo(s, &icmp)),
        ),
    ];
    if let Some((pid, out)) = &sctp_run {
        checks.push((
            format!("edge sctp-connect (port {SCTP})"),
            Box::new(move || check_sctp_connect(s, *pid, out)),
        ));
    }
    check_each(checks);
}

/// A test's own pin directory for a daemon it kills, removed (and with it
/// the programs still pinned there, so that they detach) on every exit
/// path, as in lifecycle.rs.
struct PinDir(PathBuf);

impl PinDir {
    fn new(what: &str) -> PinDir {
        PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/netev-test-{what}-{}",
            std::process::id()
        )))
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8")
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A listener on 127.0.0.1:`port` in the test process (outside the test
/// cgroup: no rule decides it), so that an allowed connect succeeds.
fn listen(port: u16) -> TcpListener {
    TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("listening on 127.0.0.1:{port}: {e}"))
}

/// `netev-load probe connect tcp 127.0.0.1 PORT` run by `program` (a copy
/// of netev-load, or netev-load itself) in `cg`: "ok" or "connect EPERM"…
fn probe_connect(cg: &TestCgroup, program: &Path, port: u16) -> String {
    let out = cg
        .command(program)
        .args(["probe", &format!("connect tcp 127.0.0.1 {port}")])
        .output_bounded();
    assert!(
        out.status.success(),
        "{} probe: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Spawns the connect probe in `cg` as process `pid` (`ns_last_pid` set to
/// pid-1 before each fork; other processes may take it first, so a few
/// tries); its output, or None if the pid never came.
fn probe_connect_as_pid(cg: &TestCgroup, pid: u32, port: u16) -> Option<String> {
    const LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";
    for _ in 0..50 {
        std::fs::write(LAST_PID, (pid - 1).to_string()).expect(LAST_PID);
        let mut cmd = cg.command(load_bin());
        cmd.args(["probe", &format!("connect tcp 127.0.0.1 {port}")]);
        let (got, out) = run_with_pid(cmd);
        if got != pid {
            continue;
        }
        assert!(
            out.status.success(),
            "probe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    None
}

#[test]
fn a_crashed_daemon_exempts_nobody() {
    if !root_or_skip("a_crashed_daemon_exempts_nobody") {
        return;
    }
    let port = 47681;
    let _listener = listen(port);
    let rules = RulesFile::new(&deny(&format!("ops = \"connect\"\nports = {port}")));
    let cg = TestCgroup::new("bypass-crash-pid");
    // declared after the cgroup: dropped (unpinned) before it is removed
    let pins = PinDir::new("bypass-crash");
    let mut daemon = Daemon::start(
        &cg,
        &["--rules-file", &rules.path(), "--pin-dir", pins.arg()],
    );
    let dead = daemon.pid();
    assert_eq!(probe_connect(&cg, &load_bin(), port), "connect EPERM");
    daemon.crash();
    assert_eq!(
        probe_connect(&cg, &load_bin(), port),
        "connect EPERM",
        "the pinned programs keep enforcing"
    );
    let said = probe_connect_as_pid(&cg, dead, port)
        .unwrap_or_else(|| panic!("no process got the dead daemon's pid {dead} in 50 tries"));
    assert_eq!(
        said, "connect EPERM",
        "a process that has the dead daemon's pid {dead} is not netevd: nothing exempts it"
    );
}

#[test]
fn a_timed_rule_expires_in_the_kernel_while_netevd_is_down() {
    if !root_or_skip("a_timed_rule_expires_in_the_kernel_while_netevd_is_down") {
        return;
    }
    let port = 47691;
    // long enough that a slow VM is still inside it when it checks the
    // refusal; the rule is added once netevd runs, so its start (15 s in
    // a TCG VM) does not eat into it
    let life = Duration::from_secs(20);
    let _listener = listen(port);
    let bus = PrivateBus::system_like();
    let state = tempfile::tempdir().expect("temp dir");
    let cg = TestCgroup::new("bypass-timed");
    let pins = PinDir::new("bypass-timed");
    let mut daemon = Daemon::start(
        &cg,
        &[
            "--bus",
            bus.address(),
            "--state-dir",
            state.path().to_str().expect("utf-8"),
            "--pin-dir",
            pins.arg(),
        ],
    );
    let port_s = port.to_string();
    let secs = format!("{}s", life.as_secs());
    let added = Instant::now();
    let out = netev(
        &bus,
        &[
            "rules",
            "add",
            "deny",
            "--op",
            "connect",
            "--port",
            &port_s,
            "--duration",
            &secs,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.crash();
    let first = probe_connect(&cg, &load_bin(), port);
    assert_eq!(
        first,
        "connect EPERM",
        "refused while the rule lives ({:?} after adding it, it lives {life:?})",
        added.elapsed()
    );
    // past its time the kernel itself stops applying it: netevd is down
    let deadline = added + life + Duration::from_secs(60);
    let mut last = first;
    while last != "ok" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        last = probe_connect(&cg, &load_bin(), port);
    }
    assert_eq!(
        last,
        "ok",
        "{:?} after adding a rule that lives {life:?}, netevd down",
        added.elapsed()
    );
}

// ---- program identity (exe) ----

/// Copies a program to `dst` (mode 0755) and waits until it can be run: a
/// child another test thread forked while the copy was open for writing
/// holds that descriptor until it execs (ETXTBSY), as PublicBin does.
fn copy_program(src: &Path, dst: &Path) {
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).expect("creating the program's directory");
    }
    std::fs::copy(src, dst).unwrap_or_else(|e| panic!("copying to {}: {e}", dst.display()));
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match Command::new(dst).arg("--help").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("running the copy {}: {e}", dst.display()),
            Ok(_) => break,
        }
    }
}

/// A directory for programs (0755: runnable by the user tests).
fn program_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// `exe = "PATTERN"` deny rule for connects to `port`.
fn exe_rule(pattern: &str, port: u16) -> String {
    deny(&format!(
        "ops = \"connect\"\nexe = \"{pattern}\"\nports = {port}"
    ))
}

/// The `sha256:…` of a file, as `sha256sum` prints it.
fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output_bounded();
    assert!(out.status.success(), "sha256sum {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    format!(
        "sha256:{}",
        text.split_whitespace().next().expect("a digest")
    )
}

/// `exe late-glob`: a program created after install under `DIR/**`.
const EXE_LATE: u16 = 47701;
/// `exe planted-symlink`: a symlink planted in a user-owned directory.
const EXE_SYMLINK: u16 = 47711;
/// `exe replaced-by-mv`: a program replaced by `mv` under an exact rule.
const EXE_MV: u16 = 47721;
/// `exe changed-binary`: a changed binary under a content-pinned allow.
const EXE_HASH: u16 = 47751;

/// Program identity (`exe`) under one netevd (the run's backend) with one
/// rules file: each case has its own directory of programs and its own
/// port (and listener), so that no case's rule can decide another's
/// connect; each is set up as when it had a netevd to itself (the files
/// a rule names exist before netevd installs the rules, the later changes
/// happen under it), checked as then, and a failure names it
/// (`exe late-glob`, …).
///
/// - late-glob: a program created after the rules were installed, two
///   levels under `DIR/**`, is refused at once; a program outside it not.
/// - planted-symlink: a user plants `DIR/link -> prog-elsewhere` before
///   `DIR/*` is installed; the link's target does not become covered.
/// - replaced-by-mv: a new file renamed over the exact name a rule names
///   (an upgrade's way) is still covered.
/// - changed-binary: a program allowed while it has the pinned content
///   (`exe_hash`, `exe_changed = "ask"`) is asked about (the ask fallback,
///   deny, applies at once) once other content is renamed over it.
#[test]
fn program_identity_is_not_walked_around_by_new_linked_or_replaced_files() {
    if !root_or_skip("program_identity_is_not_walked_around_by_new_linked_or_replaced_files") {
        return;
    }
    let _listeners: Vec<TcpListener> = [EXE_LATE, EXE_SYMLINK, EXE_MV, EXE_HASH]
        .into_iter()
        .map(listen)
        .collect();

    // late-glob: the directory only; its program comes after the install
    let late_dir = program_dir();
    let late_root = late_dir.path().canonicalize().expect("canonical");

    // planted-symlink
    let user = "netev-bypass";
    ensure_user(user, &[]);
    let owned_dir = program_dir();
    let owned = owned_dir.path().canonicalize().expect("canonical");
    let other_dir = program_dir();
    let other = other_dir
        .path()
        .canonicalize()
        .expect("canonical")
        .join("prog");
    copy_program(&load_bin(), &other);
    let own = owned.join("own");
    copy_program(&load_bin(), &own);
    let chown = Command::new("chown")
        .args(["-R", user])
        .arg(&owned)
        .status()
        .expect("chown");
    assert!(chown.success());
    // the user plants DIR/link -> a program the rule does not name
    let link = owned.join("link");
    let ln = Command::new("runuser")
        .args(["-u", user, "--", "ln", "-s"])
        .arg(&other)
        .arg(&link)
        .output_bounded();
    assert!(
        ln.status.success(),
        "exe planted-symlink: {}",
        String::from_utf8_lossy(&ln.stderr)
    );

    // replaced-by-mv
    let mv_dir = program_dir();
    let mv_root = mv_dir.path().canonicalize().expect("canonical");
    let mv_prog = mv_root.join("prog");
    copy_program(&load_bin(), &mv_prog);

    // changed-binary: allowed while it is this content; a changed binary
    // is asked about (the ask fallback, deny, applies at once); the
    // default allows
    let hash_dir = program_dir();
    let hash_root = hash_dir.path().canonicalize().expect("canonical");
    let hash_prog = hash_root.join("prog");
    copy_program(&load_bin(), &hash_prog);

    // installed with every file above in place (the symlink too)
    let rules = RulesFile::new(
        &[
            exe_rule(&format!("{}/**", late_root.display()), EXE_LATE),
            exe_rule(&format!("{}/*", owned.display()), EXE_SYMLINK),
            exe_rule(&mv_prog.display().to_string(), EXE_MV),
            format!(
                "[[rule]]\naction = \"allow\"\nops = \"connect\"\nports = {EXE_HASH}\n\
                 exe = \"{}\"\nexe_hash = \"{}\"\nexe_changed = \"ask\"\n",
                hash_prog.display(),
                sha256_of(&hash_prog)
            ),
        ]
        .concat(),
    );
    let cg = TestCgroup::new("bypass-exe");
    let daemon = Daemon::start(&cg, &["--rules-file", &rules.path()]);

    // late-glob: created after netevd installed the rules, two levels down
    let late = late_root.join("sub/deeper/late-load");
    copy_program(&load_bin(), &late);
    let late_got = probe_connect(&cg, &late, EXE_LATE);
    let late_elsewhere = probe_connect(&cg, &load_bin(), EXE_LATE);

    // planted-symlink
    let own_said = probe_connect(&cg, &own, EXE_SYMLINK);
    let other_said = probe_connect(&cg, &other, EXE_SYMLINK);
    // exec resolves the link: the process runs `other`, which is not in DIR
    let link_said = probe_connect(&cg, &link, EXE_SYMLINK);

    // replaced-by-mv: an upgrade's way, a new file (a new inode) renamed
    // over the old name
    let mv_before = probe_connect(&cg, &mv_prog, EXE_MV);
    let new = mv_root.join(".prog.new");
    copy_program(&load_bin(), &new);
    std::fs::rename(&new, &mv_prog).expect("mv");
    let mv_after = probe_connect(&cg, &mv_prog, EXE_MV);

    // changed-binary: an update, other content (a byte appended to the
    // ELF still runs) renamed over the name
    let pinned = probe_connect(&cg, &hash_prog, EXE_HASH);
    let new = hash_root.join(".prog.new");
    copy_program(&load_bin(), &new);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&new)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"\0"))
        .expect("changing the copy");
    std::fs::rename(&new, &hash_prog).expect("mv");
    let changed = probe_connect(&cg, &hash_prog, EXE_HASH);

    let stopped = daemon.stop();
    assert!(stopped.success, "{}", stopped.log);
    let checks: Vec<(String, Box<dyn FnOnce() + '_>)> = vec![
        (
            format!("exe late-glob (port {EXE_LATE})"),
            Box::new(|| {
                assert_eq!(
                    late_got,
                    "connect EPERM",
                    "{} is under the glob",
                    late.display()
                );
                assert_eq!(late_elsewhere, "ok", "a program outside it is not");
            }),
        ),
        (
            format!("exe planted-symlink (port {EXE_SYMLINK})"),
            Box::new(|| {
                assert_eq!(own_said, "connect EPERM", "a file in DIR is covered");
                assert_eq!(
                    other_said,
                    "ok",
                    "the link's target {} did not become covered",
                    other.display()
                );
                assert_eq!(
                    link_said,
                    "ok",
                    "run through the link it is still {}, outside DIR",
                    other.display()
                );
            }),
        ),
        (
            format!("exe replaced-by-mv (port {EXE_MV})"),
            Box::new(|| {
                assert_eq!(mv_before, "connect EPERM", "the rule covers the program");
                assert_eq!(mv_after, "connect EPERM", "and the file now under its name");
            }),
        ),
        (
            format!("exe changed-binary (port {EXE_HASH})"),
            Box::new(|| {
                assert_eq!(pinned, "ok", "the pinned content is allowed");
                assert_eq!(
                    changed, "connect EPERM",
                    "a changed binary is asked about (fallback deny)"
                );
                let connects: Vec<&Value> = stopped
                    .events
                    .iter()
                    .filter(|e| e["op"] == "connect" && e["rport"] == EXE_HASH)
                    .collect();
                assert_eq!(connects.len(), 2, "{connects:#?}");
                assert_eq!(connects[0]["verdict"], "allow", "{}", connects[0]);
                assert!(
                    connects[0]["rule"].is_u64(),
                    "the pinned rule decided: {}",
                    connects[0]
                );
                assert_eq!(connects[1]["verdict"], "deny", "{}", connects[1]);
                assert_eq!(
                    connects[1]["rule"], connects[0]["rule"],
                    "the same rule, asking"
                );
            }),
        ),
    ];
    check_each(checks);
}

/// netevd with a private bus (and `extra`), the state kept in `state` so
/// that a second one starts with the first one's rules.
fn bus_daemon(cg: &TestCgroup, bus: &PrivateBus, state: &Path) -> Daemon {
    Daemon::start(
        cg,
        &[
            "--bus",
            bus.address(),
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
    )
}

/// `netev --bus ADDR ARGS`, bounded.
fn netev(bus: &PrivateBus, args: &[&str]) -> Output {
    Command::new(workspace_bin("netev"))
        .args(["--bus", bus.address()])
        .args(args)
        .output_bounded()
}

/// netevd answers over the bus: `netev status` and `netev rules list`.
fn assert_answers(bus: &PrivateBus, when: &str) {
    for args in [&["status", "--json"][..], &["rules", "list", "--json"][..]] {
        let out = netev(bus, args);
        assert!(
            out.status.success(),
            "netev {args:?} {when}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Adding `deny connect exe=PATTERN` over a tree (at `root`) built to make
/// expanding it hard: the add returns (within the harness's bounds) with an
/// error or a warning that names the tree (the pattern, or a path in it),
/// netevd keeps answering, and a netevd started with the rule stored starts
/// and answers.
fn a_hard_glob_does_not_stall_netevd(name: &str, root: &Path, pattern: &str, port: u16) {
    let bus = PrivateBus::system_like();
    let state = tempfile::tempdir().expect("temp dir");
    let cg = TestCgroup::new(name);
    let daemon = bus_daemon(&cg, &bus, state.path());
    assert_answers(&bus, "before the rule");
    let port = port.to_string();
    let started = Instant::now();
    let out = netev(
        &bus,
        &[
            "rules", "add", "deny", "--op", "connect", "--exe", pattern, "--port", &port,
        ],
    );
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "netev rules add --exe {pattern}: exit {}, {took:?}: {err}",
        out.status
    );
    assert_answers(&bus, "after adding the rule");
    let stopped = daemon.stop();
    assert!(stopped.success, "{}", stopped.log);
    if out.status.success() {
        // the rule is stored: installed again at start
        let daemon = bus_daemon(&cg, &bus, state.path());
        assert_answers(&bus, "started with the rule stored");
        let listed =
            String::from_utf8_lossy(&netev(&bus, &["rules", "list", "--json"]).stdout).into_owned();
        assert!(listed.contains(pattern), "{listed}");
        assert!(daemon.stop().success);
    }
    // not stalled; and the person adding it was told
    assert!(
        err.contains(&root.display().to_string()),
        "a clear error or warning, naming the pattern or a path under it (exit {}, {took:?}): {err:?}",
        out.status
    );
    if out.status.success() {
        assert!(err.contains("warning"), "added, so with a warning: {err}");
    }
}

#[test]
fn a_deep_glob_over_a_symlink_loop_does_not_stall_netevd() {
    if !root_or_skip("a_deep_glob_over_a_symlink_loop_does_not_stall_netevd") {
        return;
    }
    let dir = program_dir();
    let root = dir.path().canonicalize().expect("canonical");
    copy_program(&load_bin(), &root.join("a/bin/prog"));
    // a/b/up -> a, and a/b/self -> .: `**` that follows links never ends
    std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    std::os::unix::fs::symlink(root.join("a"), root.join("a/b/up")).expect("symlink");
    std::os::unix::fs::symlink(".", root.join("a/b/self")).expect("symlink");
    let pattern = format!("{}/**/bin/*", root.display());
    a_hard_glob_does_not_stall_netevd("bypass-glob-loop", &root, &pattern, 47731);
}

#[test]
fn a_deep_glob_over_a_100k_file_tree_does_not_stall_netevd() {
    if !root_or_skip("a_deep_glob_over_a_100k_file_tree_does_not_stall_netevd") {
        return;
    }
    let dir = program_dir();
    let root = dir.path().canonicalize().expect("canonical");
    // 1000 directories of 100 files, every 100th with a bin/ of its own
    for d in 0..1000 {
        let sub = root.join(format!("d{d:04}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for f in 0..100 {
            std::fs::File::create(sub.join(format!("f{f:02}"))).expect("creating a file");
        }
        if d % 100 == 0 {
            copy_program(&load_bin(), &sub.join("bin/prog"));
        }
    }
    let pattern = format!("{}/**/bin/*", root.display());
    a_hard_glob_does_not_stall_netevd("bypass-glob-100k", &root, &pattern, 47741);
}
