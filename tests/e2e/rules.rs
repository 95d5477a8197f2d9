//! Rules enforced in the kernel: deny/allow/ask, priorities, conditions, durations, persistence, prompts, access.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use netev_tests::OutputBounded;
use netev_tests::{
    ensure_user, root_or_skip, wait_until, workspace_bin, Daemon, PrivateBus, PublicBin, TestCgroup,
};
use serde_json::{json, Value};

/// A workload: performs each op on a fresh socket, prints one result per op
/// ("ok" or the errno name) as a JSON list.
pub(crate) const PROBE: &str = r#"
import errno, json, socket, sys
out = []
for op, proto, addr, port in json.loads(sys.argv[1]):
    fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
    typ = socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM
    try:
        s = socket.socket(fam, typ)
        s.settimeout(5)
        if op == 'connect':
            s.connect((addr, port))
        elif op == 'sendto':
            s.sendto(b'x', (addr, port))
        elif op == 'bind':
            s.bind((addr, port))
        s.close()
        out.append('ok')
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
"#;

/// Debian's python3 (not a pyenv shim that may come first in PATH): rules
/// below name its path.
pub(crate) const PYTHON: &str = "/usr/bin/python3";

/// A netevd on a private system-like bus, attached to a test cgroup (also
/// used by the surface suite).
pub(crate) struct Setup {
    pub(crate) bus: PrivateBus,
    pub(crate) cg: TestCgroup,
    pub(crate) daemon: Daemon,
}

pub(crate) fn start(name: &str, extra: &[&str]) -> Setup {
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new(name);
    let mut args = vec!["--bus", bus.address()];
    args.extend_from_slice(extra);
    let daemon = Daemon::start(&cg, &args);
    Setup { bus, cg, daemon }
}

impl Setup {
    pub(crate) fn netev(&self, args: &[&str]) -> Output {
        Command::new(workspace_bin("netev"))
            .args(["--bus", self.bus.address()])
            .args(args)
            .output_bounded()
    }

    /// Runs `netev ARGS`, which must succeed; returns its stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.netev(args);
        assert!(
            out.status.success(),
            "netev {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn rules(&self) -> Vec<Value> {
        self.ok(&["rules", "list", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Runs the probe in the test cgroup (as `user` if given).
    fn probe(&self, user: Option<&str>, ops: Value) -> Vec<String> {
        self.probe_with(PYTHON, user, ops)
    }

    /// Runs `program` (a python3) with the probe in the test cgroup, as
    /// `user` if given: one result per op.
    pub(crate) fn probe_with(&self, program: &str, user: Option<&str>, ops: Value) -> Vec<String> {
        let mut cmd = match user {
            Some(u) => {
                let mut c = self.cg.command("runuser");
                c.args(["-u", u, "--", program]);
                c
            }
            None => self.cg.command(program),
        };
        let out = cmd.args(["-c", PROBE, &ops.to_string()]).output_bounded();
        assert!(
            out.status.success(),
            "probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Runs the probe in `cg` as root: one result per op.
pub(crate) fn probe_in(cg: &TestCgroup, ops: &Value) -> Vec<String> {
    let out = cg
        .command(PYTHON)
        .args(["-c", PROBE, &ops.to_string()])
        .output_bounded();
    assert!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn connect(addr: &str, port: u16) -> Value {
    json!(["connect", "tcp", addr, port])
}

/// A port nothing listens on: allowed connects get ECONNREFUSED.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_deny_rule_refuses_connect_with_eperm_and_other_ports_still_work() {
    if !root_or_skip("a_deny_rule_refuses_connect_with_eperm_and_other_ports_still_work") {
        return;
    }
    let s = start("rules-deny", &[]);
    let port = free_port();
    let id = s.ok(&[
        "rules",
        "add",
        "deny",
        "--op",
        "connect",
        "--addr",
        "127.0.0.1",
        "--port",
        &port.to_string(),
    ]);
    let id: u64 = id.trim().parse().unwrap();
    let got = s.probe(
        None,
        json!([
            connect("127.0.0.1", port),
            connect("127.0.0.1", port + 1),
            connect("::ffff:127.0.0.1", port)
        ]),
    );
    assert_eq!(
        got,
        ["EPERM", "ECONNREFUSED", "EPERM"],
        "IPv4-mapped IPv6 is the same address"
    );
    wait_until("the hit counted", || s.rules()[0]["hits"] == json!(2));
    let stopped = s.daemon.stop();
    let denied: Vec<&Value> = stopped
        .events
        .iter()
        .filter(|e| e["op"] == "connect" && e["verdict"] == "deny")
        .collect();
    assert_eq!(denied.len(), 2, "{denied:#?}");
    assert!(denied.iter().all(|e| e["rule"] == json!(id)));
    let allowed: Vec<&Value> = stopped
        .events
        .iter()
        .filter(|e| e["op"] == "connect" && e["verdict"] == "allow")
        .collect();
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["rule"], Value::Null);
}

#[test]
fn priority_exe_glob_uid_cidr_and_port_ranges_decide_in_the_kernel() {
    if !root_or_skip("priority_exe_glob_uid_cidr_and_port_ranges_decide_in_the_kernel") {
        return;
    }
    let s = start("rules-conditions", &[]);
    s.ok(&[
        "rules",
        "add",
        "deny",
        "--op",
        "connect",
        "--addr",
        "127.0.0.0/8",
        "--port",
        "20000-20999",
    ]);
    // a later rule wins by priority; python3's real path is /usr/bin/python3.N
    s.ok(&[
        "rules",
        "add",
        "allow",
        "--op",
        "connect",
        "--exe",
        "/usr/bin/python3*",
        "--port",
        "20500",
        "--priority",
        "10",
    ]);
    s.ok(&[
        "rules",
        "add",
        "deny",
        "--exe",
        "/usr/bin/perl*",
        "--op",
        "connect",
    ]);
    s.ok(&[
        "rules", "add", "deny", "--op", "connect", "--user", "nobody", "--addr", "::1/128",
    ]);
    s.ok(&[
        "rules",
        "add",
        "deny",
        "--op",
        "sendmsg",
        "--proto",
        "udp",
        "--addr",
        "127.0.0.2",
        "--port",
        "9999",
    ]);
    let got = s.probe(
        None,
        json!([
            connect("127.0.0.1", 20500),
            connect("127.0.0.1", 20600),
            connect("127.0.0.9", 20999),
            connect("127.0.0.1", 21000),
            connect("::1", 20600),
            ["sendto", "udp", "127.0.0.2", 9999],
            ["sendto", "udp", "127.0.0.2", 9998],
            ["sendto", "udp", "127.0.0.3", 9999],
        ]),
    );
    assert_eq!(
        got,
        [
            "ECONNREFUSED",
            "EPERM",
            "EPERM",
            "ECONNREFUSED",
            "ECONNREFUSED",
            "EPERM",
            "ok",
            "ok"
        ]
    );
    let as_nobody = s.probe(
        Some("nobody"),
        json!([connect("::1", 20600), connect("127.0.0.1", 21000)]),
    );
    assert_eq!(
        as_nobody,
        ["EPERM", "ECONNREFUSED"],
        "the uid rule covers nobody only"
    );
    s.daemon.stop();
}

#[test]
fn a_once_rule_lets_exactly_one_through_and_is_then_removed() {
    if !root_or_skip("a_once_rule_lets_exactly_one_through_and_is_then_removed") {
        return;
    }
    let s = start("rules-once", &[]);
    s.ok(&["rules", "default", "connect", "deny"]);
    let port = free_port();
    s.ok(&[
        "rules",
        "add",
        "allow",
        "--op",
        "connect",
        "--port",
        &port.to_string(),
        "--duration",
        "once",
    ]);
    let got = s.probe(
        None,
        json!([
            connect("127.0.0.1", port),
            connect("127.0.0.1", port),
            connect("127.0.0.1", port)
        ]),
    );
    assert_eq!(got, ["ECONNREFUSED", "EPERM", "EPERM"]);
    wait_until("the used-up rule removed", || s.rules().is_empty());
    s.daemon.stop();
}

#[test]
fn a_timed_rule_expires() {
    if !root_or_skip("a_timed_rule_expires") {
        return;
    }
    let s = start("rules-timed", &[]);
    let port = free_port();
    s.ok(&[
        "rules",
        "add",
        "deny",
        "--op",
        "connect",
        "--port",
        &port.to_string(),
        "--duration",
        // long enough for the probe to run before it ends on a slow machine
        // (the kernel matrix's emulated VMs take seconds to start one)
        "15s",
    ]);
    assert_eq!(
        s.probe(None, json!([connect("127.0.0.1", port)])),
        ["EPERM"]
    );
    wait_until("the rule to expire", || s.rules().is_empty());
    assert_eq!(
        s.probe(None, json!([connect("127.0.0.1", port)])),
        ["ECONNREFUSED"]
    );
    s.daemon.stop();
}

#[test]
fn rules_survive_a_daemon_restart_but_until_restart_ones_do_not() {
    if !root_or_skip("rules_survive_a_daemon_restart_but_until_restart_ones_do_not") {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let port = free_port();
    let s = start("rules-restart", &["--state-dir", state_dir]);
    s.ok(&[
        "rules",
        "add",
        "deny",
        "--op",
        "connect",
        "--port",
        &port.to_string(),
        "--comment",
        "kept",
    ]);
    s.ok(&[
        "rules",
        "add",
        "deny",
        "--op",
        "connect",
        "--port",
        &(port + 1).to_string(),
        "--duration",
        "until-restart",
    ]);
    s.ok(&["rules", "default", "bind", "deny"]);
    let Setup { bus, cg, daemon } = s;
    daemon.stop();

    let daemon = Daemon::start(&cg, &["--bus", bus.address(), "--state-dir", state_dir]);
    let s = Setup { bus, cg, daemon };
    let rules = s.rules();
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0]["comment"], "kept");
    let got = s.probe(
        None,
        json!([
            connect("127.0.0.1", port),
            connect("127.0.0.1", port + 1),
            ["bind", "tcp", "127.0.0.1", 0]
        ]),
    );
    assert_eq!(got, ["EPERM", "ECONNREFUSED", "EPERM"]);
    s.daemon.stop();
}

#[test]
fn ask_raises_one_prompt_and_the_terminal_answer_decides_the_next_attempt() {
    if !root_or_skip("ask_raises_one_prompt_and_the_terminal_answer_decides_the_next_attempt") {
        return;
    }
    let s = start("rules-ask", &[]);
    let port = free_port();
    s.ok(&[
        "rules",
        "add",
        "ask",
        "--op",
        "connect",
        "--port",
        &port.to_string(),
    ]);
    let mut prompter = Command::new(workspace_bin("netev"))
        .args(["--bus", s.bus.address(), "prompt", "--scope", "exe+port"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(prompter.stdout.take().unwrap());
    // the ask fallback (deny) applies at once; the prompt reaches the
    // prompter by signal, or in WatchPrompts' list if it registers later
    assert_eq!(
        s.probe(None, json!([connect("127.0.0.1", port)])),
        ["EPERM"]
    );
    wait_until("the prompt", || {
        netev_tests::log_count(&s.daemon, "asking") >= 1
    });
    assert_eq!(
        s.probe(None, json!([connect("127.0.0.1", port)])),
        ["EPERM"]
    );
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.contains("python3") && line.contains(&format!("connect tcp 127.0.0.1:{port}")),
        "{line}"
    );
    assert_eq!(
        netev_tests::log_count(&s.daemon, "asking"),
        1,
        "deduplicated"
    );
    prompter.stdin.as_mut().unwrap().write_all(b"a").unwrap();
    let mut answer = String::new();
    out.read_line(&mut answer).unwrap();
    assert!(answer.contains("allow always (rule"), "{answer:?}");
    assert_eq!(
        s.probe(None, json!([connect("127.0.0.1", port)])),
        ["ECONNREFUSED"]
    );
    let rules = s.rules();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[1]["action"], "allow");
    assert_eq!(rules[1]["ports"], port.to_string());
    assert!(rules[1]["exe"]
        .as_str()
        .unwrap()
        .starts_with("/usr/bin/python3"));
    let _ = prompter.kill();
    let _ = prompter.wait();
    s.daemon.stop();
}

#[test]
fn a_malformed_rules_file_is_refused_at_its_line_and_nothing_is_applied() {
    if !root_or_skip("a_malformed_rules_file_is_refused_at_its_line_and_nothing_is_applied") {
        return;
    }
    let s = start("rules-import", &[]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[[rule]]\naction = \"deny\"\nops = [\"connect\"]\nports = \"1-1023\"\n\n[[rule]]\naction = \"allow\"\nexe = \"/usr/bin/*\"\n").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[rule]]\naction = \"deny\"\n\n[[rule]]\naction = \"deny\"\naddr = \"10.0.0.0/33\"\n",
    )
    .unwrap();
    let out = s.netev(&["rules", "import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:6:") && err.contains("addr"), "{err}");
    assert!(s.rules().is_empty(), "nothing of the bad file applied");
    assert_eq!(
        s.ok(&["rules", "import", good.to_str().unwrap()]).trim(),
        "2 rules imported"
    );
    let exported = s.ok(&["rules", "export"]);
    assert!(exported.contains("ports = \"1-1023\""), "{exported}");
    let out = s.netev(&["rules", "add", "deny", "--port", "99999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0-65535"));
    let out = s.netev(&["rules", "add", "deny", "--op", "listen"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    if crate::on_lsm() {
        // listen is enforced there: nothing to warn about
        assert!(!err.contains("can only observe"), "{err}");
        let out = s.netev(&["rules", "add", "deny", "--op", "recvmsg"]);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("can only observe recvmsg"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(err.contains("can only observe listen"), "{err}");
    }
    s.daemon.stop();
}

#[test]
fn an_unprivileged_caller_cannot_change_rules() {
    if !root_or_skip("an_unprivileged_caller_cannot_change_rules") {
        return;
    }
    let s = start("rules-access", &[]);
    ensure_user("netev-outsider", &[]);
    let netev = PublicBin::copy("netev");
    let out = netev
        .as_user("netev-outsider")
        .args(["--bus", s.bus.address(), "rules", "add", "allow"])
        .output_bounded();
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = netev
        .as_user("netev-outsider")
        .args(["--bus", s.bus.address(), "rules", "list"])
        .output_bounded();
    assert_eq!(out.status.code(), Some(77));
    assert!(s.rules().is_empty());
    s.daemon.stop();
}
