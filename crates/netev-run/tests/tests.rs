//! netev-run with real programs under supervision: python3 (the system one,
//! /usr/bin/python3, not a pyenv shim) and the crate's own test program.
//! None of these needs root, except those in the modules below that say
//! so (they are skipped without it).

/// Identity by file, TCP Fast Open as connect, calls not performed with
/// the supervisor's rights (issue 20).
mod identity;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netev_event::{Event, Op, Verdict};
use netev_rules::{Action, Policy, RuleSet};

const PYTHON: &str = "/usr/bin/python3";

fn rules(toml: &str, default: Option<Action>) -> RuleSet {
    let mut rules = netev_rules::file::parse("test.toml", toml, chrono::Utc::now(), &|_| None)
        .expect("rules parse");
    for (i, r) in rules.iter_mut().enumerate() {
        r.id = i as u32 + 1;
    }
    let mut policy = Policy::default();
    if let Some(a) = default {
        policy.default = [a; 7];
    }
    RuleSet::new(rules, policy)
}

struct Outcome {
    status: ExitStatus,
    stdout: String,
    events: Vec<Event>,
}

impl Outcome {
    fn events_for(&self, op: Op) -> Vec<&Event> {
        self.events.iter().filter(|e| e.op == op).collect()
    }
}

fn supervise_with(opts: netev_run::Options, cmd: &mut Command) -> Outcome {
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut opts = opts;
    let sink = Arc::clone(&events);
    opts.on_event = Arc::new(move |ev: &Event| sink.lock().unwrap().push(ev.clone()));
    let mut out = tempfile::tempfile().unwrap();
    cmd.stdout(out.try_clone().unwrap());
    // Without HOME, python looks its user up to find its user site; without
    // SHELL, bash does the same — and glibc first tries nscd over AF_UNIX
    // sockets, which would show as calls the tests did not make. CI runs
    // with a bare environment, so pin both.
    cmd.env("HOME", "/nonexistent").env("SHELL", "/bin/sh");
    let status = netev_run::run(cmd, opts).expect("supervise");
    let mut stdout = String::new();
    use std::io::Seek;
    out.rewind().unwrap();
    out.read_to_string(&mut stdout).unwrap();
    let events = events.lock().unwrap().clone();
    Outcome {
        status,
        stdout,
        events,
    }
}

fn supervise(rules: RuleSet, cmd: &mut Command) -> Outcome {
    supervise_with(netev_run::Options::new(rules), cmd)
}

fn py(script: &str) -> Command {
    let mut c = Command::new(PYTHON);
    c.arg("-c").arg(script);
    c
}

/// A Python function `attempt(family, addr, port)` printing `ok <data>` or
/// `err <errno>` for a TCP connect.
const ATTEMPT: &str = r#"
import socket, sys
def attempt(family, addr, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.connect((addr, port))
        print("ok", s.recv(16).decode(), flush=True)
    except OSError as e:
        print("err", e.errno, flush=True)
    finally:
        s.close()
"#;

/// A listener that answers every connection with "hi" until dropped.
fn greeter(addr: &str) -> u16 {
    let l = TcpListener::bind(addr).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(b"hi");
        }
    });
    port
}

#[test]
fn allow_passes_and_the_connection_works_from_a_thread() {
    let port = greeter("127.0.0.1:0");
    let script = format!(
        "{ATTEMPT}\nimport threading\nt = threading.Thread(target=attempt, args=(socket.AF_INET, '127.0.0.1', {port}))\nt.start(); t.join()\n"
    );
    let out = supervise(rules("", None), &mut py(&script));
    assert!(out.status.success());
    assert_eq!(out.stdout.trim(), "ok hi");
    let c = out.events_for(Op::Connect);
    assert_eq!(c.len(), 1, "{:?}", out.events);
    let ev = c[0];
    assert_eq!(ev.verdict, Verdict::Allow);
    assert_eq!(ev.rport, Some(port));
    assert_eq!(ev.raddr, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(ev.ret, Some(0));
    assert_ne!(ev.pid, ev.tid, "the call came from a second thread");
    let python = std::fs::canonicalize(PYTHON).unwrap();
    assert_eq!(ev.exe.as_deref(), python.to_str());
    assert!(!out.events_for(Op::Socket).is_empty());
}

#[test]
fn deny_by_port() {
    let port = greeter("127.0.0.1:0");
    let toml = format!("[[rule]]\naction = \"deny\"\nops = [\"connect\"]\nports = {port}\n");
    let script = format!("{ATTEMPT}\nattempt(socket.AF_INET, '127.0.0.1', {port})\n");
    let out = supervise(rules(&toml, None), &mut py(&script));
    assert_eq!(out.stdout.trim(), "err 1");
    let ev = out.events_for(Op::Connect)[0];
    assert_eq!((ev.verdict, ev.rule), (Verdict::Deny, Some(1)));
    assert_eq!(ev.ret, Some(-libc::EPERM));
}

#[test]
fn deny_by_cidr_v4() {
    let port = greeter("0.0.0.0:0");
    let toml = "[[rule]]\naction = \"deny\"\naddr = \"127.0.0.2/32\"\n";
    let script = format!(
        "{ATTEMPT}\nattempt(socket.AF_INET, '127.0.0.2', {port})\nattempt(socket.AF_INET, '127.0.0.1', {port})\n"
    );
    let out = supervise(rules(toml, None), &mut py(&script));
    assert_eq!(out.stdout, "err 1\nok hi\n");
}

#[test]
fn deny_by_cidr_v6() {
    let Ok(l) = TcpListener::bind("[::]:0") else {
        eprintln!("skipped: no IPv6 here");
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "skip under CI");
        return;
    };
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(b"hi");
        }
    });
    let toml = "[[rule]]\naction = \"deny\"\nops = [\"connect\"]\naddr = \"::1/128\"\n";
    let script = format!(
        "{ATTEMPT}\nattempt(socket.AF_INET6, '::1', {port})\nattempt(socket.AF_INET, '127.0.0.1', {port})\n"
    );
    let out = supervise(rules(toml, None), &mut py(&script));
    assert_eq!(out.stdout, "err 1\nok hi\n");
    let denied = out.events_for(Op::Connect)[0];
    assert_eq!(denied.raddr, Some("::1".parse().unwrap()));
    assert_eq!(denied.verdict, Verdict::Deny);
}

#[test]
fn deny_by_exe() {
    let python = std::fs::canonicalize(PYTHON).unwrap();
    let toml = format!(
        "[[rule]]\naction = \"deny\"\nexe = \"{}\"\n",
        python.display()
    );
    let script = "import socket\ntry:\n    socket.socket()\n    print('ok')\nexcept OSError as e:\n    print('err', e.errno)\n";
    let out = supervise(rules(&toml, None), &mut py(script));
    assert_eq!(out.stdout.trim(), "err 1");
    // Another program's rule leaves python alone.
    let out = supervise(
        rules(
            "[[rule]]\naction = \"deny\"\nexe = \"/usr/bin/curl\"\n",
            None,
        ),
        &mut py(script),
    );
    assert_eq!(out.stdout.trim(), "ok");
}

#[test]
fn udp_sendto_denied_and_allowed() {
    let open = UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    closed.set_nonblocking(true).unwrap();
    let (p_open, p_closed) = (
        open.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    let toml = format!(
        "[[rule]]\naction = \"deny\"\nops = [\"sendmsg\"]\nproto = \"udp\"\nports = {p_closed}\n"
    );
    let script = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in ({p_closed}, {p_open}):
    try:
        print("sent", s.sendto(b"hello", ("127.0.0.1", port)))
    except OSError as e:
        print("err", e.errno)
for port in ({p_closed}, {p_open}):
    try:
        print("sent", s.sendmsg([b"he", b"llo"], [], 0, ("127.0.0.1", port)))
    except OSError as e:
        print("err", e.errno)
"#
    );
    let out = supervise(rules(&toml, None), &mut py(&script));
    assert_eq!(out.stdout, "err 1\nsent 5\nerr 1\nsent 5\n");
    let mut buf = [0u8; 16];
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(open.recv(&mut buf).unwrap(), 5);
    assert!(
        closed.recv(&mut buf).is_err(),
        "the denied datagram arrived"
    );
    let sends = out.events_for(Op::Sendmsg);
    assert_eq!(sends.len(), 4, "sendto ×2, sendmsg ×2: {sends:?}");
    let seen: Vec<(Verdict, Option<u16>)> = sends.iter().map(|e| (e.verdict, e.rport)).collect();
    let (deny, allow) = (
        (Verdict::Deny, Some(p_closed)),
        (Verdict::Allow, Some(p_open)),
    );
    assert_eq!(seen, [deny, allow, deny, allow]);
    assert_eq!(sends[0].rule, Some(1));
    assert_eq!(sends[1].ret, Some(5));
}

#[test]
fn children_and_grandchildren_are_covered() {
    let port = greeter("127.0.0.1:0");
    let toml = format!("[[rule]]\naction = \"deny\"\nops = [\"connect\"]\nports = {port}\n");
    let leaf = format!("{ATTEMPT}\nattempt(socket.AF_INET, '127.0.0.1', {port})\n");
    let middle = format!(
        "import subprocess, sys\nsubprocess.run([sys.executable, '-c', {leaf:?}], check=True)\n"
    );
    let top = format!(
        "import os, subprocess, sys\nprint('top', os.getpid(), flush=True)\nsubprocess.run([sys.executable, '-c', {middle:?}], check=True)\n"
    );
    let out = supervise(rules(&toml, None), &mut py(&top));
    assert!(out.status.success());
    let mut lines = out.stdout.lines();
    let top_pid: u32 = lines
        .next()
        .unwrap()
        .strip_prefix("top ")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(lines.next(), Some("err 1"));
    let ev = out.events_for(Op::Connect)[0];
    assert_eq!(ev.verdict, Verdict::Deny);
    // the call came from the grandchild: neither the child nor its child
    assert_ne!(ev.pid, top_pid);
    assert_ne!(ev.ppid, top_pid, "a grandchild, not a child");
}

#[test]
fn nonblocking_connect_gets_einprogress_then_completes() {
    let port = greeter("127.0.0.1:0");
    let script = format!(
        r#"
import socket, select
s = socket.socket()
s.setblocking(False)
print(s.connect_ex(("127.0.0.1", {port})))
select.select([], [s], [], 5)
print(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
select.select([s], [], [], 5)
print(s.recv(16).decode())
"#
    );
    let out = supervise(rules("", None), &mut py(&script));
    assert_eq!(out.stdout, format!("{}\n0\nhi\n", libc::EINPROGRESS));
    let ev = out.events_for(Op::Connect)[0];
    assert_eq!(ev.ret, Some(-libc::EINPROGRESS));
}

#[test]
fn toctou_race_cannot_reach_the_denied_port() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, pd) = (
        allowed.local_addr().unwrap().port(),
        denied.local_addr().unwrap().port(),
    );
    std::thread::spawn(move || for _c in allowed.incoming() {});
    let reached = Arc::new(AtomicUsize::new(0));
    {
        let reached = Arc::clone(&reached);
        std::thread::spawn(move || {
            for _c in denied.incoming() {
                reached.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let prog = env!("CARGO_BIN_EXE_netev-run-testprog");
    let race = |cmd: &mut Command| {
        cmd.args(["race", "127.0.0.1", &pa.to_string(), &pd.to_string(), "400"]);
    };

    // Unsupervised, the race does reach both ports: the test can see it.
    let mut bare = Command::new(prog);
    race(&mut bare);
    let bare = String::from_utf8(bare.output().unwrap().stdout).unwrap();
    assert!(!bare.contains("reached_denied=0"), "{bare}");
    std::thread::sleep(Duration::from_millis(200));
    let before = reached.load(Ordering::SeqCst);
    assert!(before > 0);

    let toml = format!("[[rule]]\naction = \"deny\"\nops = [\"connect\"]\nports = {pd}\n");
    let mut cmd = Command::new(prog);
    race(&mut cmd);
    let out = supervise(rules(&toml, None), &mut cmd);
    let line = out.stdout.trim();
    assert!(line.contains("reached_denied=0"), "{line}");
    assert!(!line.contains(" refused=0"), "the rule never fired: {line}");
    assert!(
        !line.contains("connected=0 "),
        "nothing was allowed: {line}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        reached.load(Ordering::SeqCst),
        before,
        "a connection reached the denied port"
    );
}

/// An asker that answers from a table: connect to a port → an answer, or
/// no answer at all (it then waits until the question is withdrawn).
struct Table {
    answers: Vec<(Option<u16>, Option<netev_run::Answer>)>,
    asked: Mutex<Vec<Event>>,
}

impl Table {
    fn new(answers: Vec<(Option<u16>, Option<netev_run::Answer>)>) -> Arc<Table> {
        Arc::new(Table {
            answers,
            asked: Mutex::new(Vec::new()),
        })
    }
}

impl netev_run::Asker for Table {
    fn ask(&self, q: &netev_run::Question) -> Option<netev_run::Answer> {
        self.asked.lock().unwrap().push(q.event.clone());
        match self.answers.iter().find(|(p, _)| *p == q.event.rport) {
            Some((_, Some(a))) => Some(a.clone()),
            _ => {
                while !q.withdrawn() && !q.left().is_zero() {
                    std::thread::sleep(Duration::from_millis(20));
                }
                None
            }
        }
    }
}

fn answer(action: Action, reach: netev_run::Reach) -> Option<netev_run::Answer> {
    Some(netev_run::Answer {
        action,
        reach,
        scope: "exe+dest+port".into(),
    })
}

const ASK_CONNECT: &str = "[[rule]]\naction = \"ask\"\nops = [\"connect\"]\n";

#[test]
fn ask_waits_for_the_answer_and_times_out_to_the_default() {
    let port = greeter("127.0.0.1:0");
    let asker = Table::new(vec![(
        Some(port),
        answer(Action::Allow, netev_run::Reach::Once),
    )]);
    let mut opts = netev_run::Options::new(rules(ASK_CONNECT, None));
    opts.asker = Some(asker.clone());
    opts.ask_timeout = Duration::from_millis(700);
    // port 9 (discard) is never answered: the ask fallback (deny) applies
    let script = format!(
        "{ATTEMPT}\nattempt(socket.AF_INET, '127.0.0.1', {port})\nattempt(socket.AF_INET, '127.0.0.1', 9)\n"
    );
    let start = Instant::now();
    let out = supervise_with(opts, &mut py(&script));
    assert_eq!(out.stdout, "ok hi\nerr 1\n");
    assert!(start.elapsed() >= Duration::from_millis(700), "it waited");
    let c = out.events_for(Op::Connect);
    assert_eq!(
        (c[0].verdict, c[1].verdict),
        (Verdict::Allow, Verdict::Deny)
    );
    assert_eq!(
        (c[0].rule, c[1].rule),
        (Some(1), Some(1)),
        "the rule that asked"
    );
    assert_eq!(asker.asked.lock().unwrap().len(), 2);
}

#[test]
fn answers_become_rules_once_this_run_and_always() {
    let (p_once, p_run, p_always) = (
        greeter("127.0.0.1:0"),
        greeter("127.0.0.1:0"),
        greeter("127.0.0.1:0"),
    );
    let asker = Table::new(vec![
        (Some(p_once), answer(Action::Allow, netev_run::Reach::Once)),
        (
            Some(p_run),
            answer(Action::Deny, netev_run::Reach::Run { until: None }),
        ),
        (
            Some(p_always),
            answer(Action::Allow, netev_run::Reach::Always),
        ),
    ]);
    let saved = Arc::new(Mutex::new(Vec::new()));
    let mut opts = netev_run::Options::new(rules(ASK_CONNECT, None));
    opts.asker = Some(asker.clone());
    let sink = Arc::clone(&saved);
    opts.on_always = Some(Arc::new(move |r: &netev_rules::Rule| {
        sink.lock().unwrap().push(r.clone());
        Ok(())
    }));
    let mut script = ATTEMPT.to_string();
    for p in [p_once, p_run, p_always] {
        script += &format!("attempt(socket.AF_INET, '127.0.0.1', {p})\n");
        script += &format!("attempt(socket.AF_INET, '127.0.0.1', {p})\n");
    }
    let out = supervise_with(opts, &mut py(&script));
    assert_eq!(out.stdout, "ok hi\nok hi\nerr 1\nerr 1\nok hi\nok hi\n");
    // `once` asks again; `this run` and `always` answer the second attempt
    let asked: Vec<Option<u16>> = asker
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.rport)
        .collect();
    assert_eq!(
        asked,
        [Some(p_once), Some(p_once), Some(p_run), Some(p_always)]
    );
    let c = out.events_for(Op::Connect);
    assert_eq!(c.len(), 6);
    assert_eq!(c[3].rule, Some(2), "decided by the rule the answer made");
    assert_eq!(c[5].rule, Some(3));
    let saved = saved.lock().unwrap();
    assert_eq!(saved.len(), 1, "only `always` is saved");
    let text = netev_rules::file::export(&saved, &|_| None);
    let python = std::fs::canonicalize(PYTHON).unwrap();
    assert!(text.contains(&format!("ports = \"{p_always}\"")), "{text}");
    assert!(
        text.contains(&format!("exe = \"{}\"", python.display())),
        "{text}"
    );
    assert!(text.contains("addr = \"127.0.0.1/32\""), "{text}");
}

#[test]
fn a_child_that_exits_mid_decision_withdraws_the_question() {
    let port = greeter("127.0.0.1:0");
    // Never answered; the child is killed while it waits.
    let asker = Table::new(vec![]);
    let mut opts = netev_run::Options::new(rules(ASK_CONNECT, None));
    opts.asker = Some(asker.clone());
    opts.ask_timeout = Duration::from_secs(60);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    opts.on_event = Arc::new(move |ev: &Event| sink.lock().unwrap().push(ev.clone()));
    let script = format!("{ATTEMPT}\nattempt(socket.AF_INET, '127.0.0.1', {port})\n");
    let child = netev_run::Supervised::spawn(&mut py(&script), opts).unwrap();
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait());
    let deadline = Instant::now() + Duration::from_secs(20);
    while asker.asked.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the supervised child, which is not reaped yet.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let start = Instant::now();
    while !waiter.is_finished() {
        assert!(start.elapsed() < Duration::from_secs(20), "netev-run hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = waiter.join().unwrap().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(
        events.lock().unwrap().iter().all(|e| e.op != Op::Connect),
        "nothing was decided for a call nobody waits for"
    );
}

#[test]
fn fork_bomb_of_200_connects_all_decided() {
    let allowed = greeter("127.0.0.1:0");
    let denied = greeter("127.0.0.1:0");
    let toml = format!("[[rule]]\naction = \"deny\"\nops = [\"connect\"]\nports = {denied}\n");
    // Each child reports through its exit status (200 writers on one
    // stdout would interleave): 0 connected, 1 EPERM, 2 anything else.
    let script = format!(
        r#"
import collections, os, socket
pids = []
for i in range(200):
    pid = os.fork()
    if pid == 0:
        s = socket.socket()
        try:
            s.connect(('127.0.0.1', {allowed} if i % 2 == 0 else {denied}))
            os._exit(0 if s.recv(2) == b'hi' else 2)
        except PermissionError:
            os._exit(1)
        except OSError:
            os._exit(2)
    pids.append(pid)
codes = collections.Counter(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids)
print(sorted(codes.items()))
"#
    );
    let out = supervise(rules(&toml, None), &mut py(&script));
    assert!(out.status.success());
    assert_eq!(out.stdout.trim(), "[(0, 100), (1, 100)]");
    let c = out.events_for(Op::Connect);
    assert_eq!(c.len(), 200);
    let pids: std::collections::HashSet<u32> = c.iter().map(|e| e.pid).collect();
    assert_eq!(pids.len(), 200, "one connect per child");
    assert_eq!(c.iter().filter(|e| e.verdict == Verdict::Deny).count(), 100);
}

#[test]
fn bind_and_listen_are_decided_and_performed() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let toml = format!("[[rule]]\naction = \"deny\"\nops = [\"bind\"]\nports = {port}\n");
    let script = format!(
        r#"
import socket
s = socket.socket()
try:
    s.bind(("127.0.0.1", {port}))
except OSError as e:
    print("err", e.errno)
s.bind(("127.0.0.1", 0))
s.listen(5)
c = socket.create_connection(s.getsockname())
a, _ = s.accept()
print("listening", s.getsockname()[1] != 0)
"#
    );
    let out = supervise(rules(&toml, None), &mut py(&script));
    assert_eq!(out.stdout, "err 1\nlistening True\n");
    let l = out.events_for(Op::Listen)[0];
    assert_eq!(l.verdict, Verdict::Allow);
    assert!(l.lport.is_some_and(|p| p != 0));
    assert_eq!(out.events_for(Op::Accept).len(), 1);
}

#[test]
fn killed_supervisor_gives_errors_not_hangs() {
    let prog = env!("CARGO_BIN_EXE_netev-run-testprog");
    let script = "import socket, sys\nprint('ready', flush=True)\nsys.stdin.readline()\ntry:\n    socket.socket()\n    print('ok', flush=True)\nexcept OSError as e:\n    print('err', e.errno, flush=True)\n";
    let mut sup = Command::new(prog)
        .args(["supervise", "1", "--", PYTHON, "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = sup.stdin.take().unwrap();
    let mut lines = BufReader::new(sup.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    sup.kill().unwrap();
    sup.wait().unwrap();
    stdin.write_all(b"go\n").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(lines.next().map(|l| l.unwrap()));
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the child hangs");
    assert_eq!(line.as_deref(), Some("err 38"), "ENOSYS");
}

#[test]
fn exit_status_passes_through() {
    let out = supervise(rules("", None), &mut py("import sys; sys.exit(7)"));
    assert_eq!(out.status.code(), Some(7));
}

/// What the supervisor keeps per process (exe, cmdline) must follow an
/// exec, to another program and to the same one with other arguments.
#[test]
fn identity_follows_exec() {
    let port = greeter("127.0.0.1:0");
    let bash = std::fs::canonicalize("/bin/bash").unwrap();
    let python = std::fs::canonicalize(PYTHON).unwrap();
    let second = format!(
        "import os, socket; socket.socket(); os.execv('/bin/bash', ['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/{port}'])"
    );
    let first = format!(
        "import os, socket; socket.socket(); os.execv('{PYTHON}', ['python3', '-c', \"{second}\"])"
    );
    let out = supervise(rules("", None), &mut py(&first));
    assert!(out.status.success(), "{:?}", out.status);
    let sockets = out.events_for(Op::Socket);
    assert_eq!(sockets.len(), 3, "{sockets:?}");
    let pid = sockets[0].pid;
    assert!(
        out.events.iter().all(|e| e.pid == pid),
        "one process throughout"
    );
    assert_eq!(
        sockets[0].cmdline.as_deref(),
        Some(format!("{PYTHON} -c {first}").as_str())
    );
    assert_eq!(sockets[0].exe.as_deref(), python.to_str());
    assert_eq!(
        sockets[1].cmdline.as_deref(),
        Some(format!("python3 -c {second}").as_str()),
        "same program, new arguments"
    );
    assert_eq!(sockets[1].exe.as_deref(), python.to_str());
    let connect = out.events_for(Op::Connect)[0];
    assert_eq!(connect.exe.as_deref(), bash.to_str());
    assert_eq!(connect.comm, "bash");
    assert_eq!(sockets[2].exe.as_deref(), bash.to_str());
    assert_eq!(connect.rport, Some(port));
}

/// Credentials are per thread: a thread that changes its uid by itself
/// (the raw syscall, not glibc's process-wide setresuid) is decided on
/// its new uid at once, and the thread that did not change keeps its own.
/// Needs root to change uids; skipped otherwise.
#[test]
fn uid_is_read_per_thread_and_per_call() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let toml = "[[rule]]\naction = \"deny\"\nuser = \"65534\"\n";
    let script = r#"
import ctypes, socket, threading
libc = ctypes.CDLL(None, use_errno=True)
def attempt(who):
    try:
        socket.socket().close()
        print(who, "ok", flush=True)
    except OSError as e:
        print(who, "err", e.errno, flush=True)
def thread():
    attempt("before")
    assert libc.syscall(117, 65534, 65534, 65534) == 0  # SYS_setresuid
    attempt("after")
t = threading.Thread(target=thread)
t.start(); t.join()
attempt("main")
"#;
    let out = supervise(rules(toml, None), &mut py(script));
    assert_eq!(out.stdout, "before ok\nafter err 1\nmain ok\n");
    let uids: Vec<u32> = out.events_for(Op::Socket).iter().map(|e| e.uid).collect();
    assert_eq!(uids, [0, 65534, 0]);
}

/// The default policy and built-in rules of `netev run` (netev_run::defaults).
fn defaults(toml: &str, default: Action, session_bus: Option<&str>) -> RuleSet {
    let mut set = netev_rules::file::parse("test.toml", toml, chrono::Utc::now(), &|_| None)
        .expect("rules parse");
    for (i, r) in set.iter_mut().enumerate() {
        r.id = i as u32 + 1;
    }
    set.extend(netev_run::defaults::builtin_rules(session_bus).unwrap());
    RuleSet::new(set, netev_run::defaults::policy(default))
}

/// Answers allow for the rest of the run, and counts the questions.
struct Counting(Mutex<Vec<String>>);

impl netev_run::Asker for Counting {
    fn ask(&self, q: &netev_run::Question) -> Option<netev_run::Answer> {
        self.0.lock().unwrap().push(q.to_text());
        answer(Action::Allow, netev_run::Reach::Run { until: None })
    }
}

#[test]
fn curl_under_default_ask_is_asked_one_question_about_its_destination() {
    let port = greeter("127.0.0.1:0");
    let asker = Arc::new(Counting(Mutex::new(Vec::new())));
    let mut opts = netev_run::Options::new(defaults("", Action::Ask, None));
    opts.asker = Some(asker.clone());
    // As a user runs it: the environment as it is (curl looks its user up
    // and resolves names through the C library's own sockets), twice, so
    // that the second connection is covered by the first answer.
    let url = format!("http://127.0.0.1:{port}/");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "--max-time", "5", &url, &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    netev_run::run(&mut cmd, opts).expect("supervise");
    let asked = asker.0.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "one question: {asked:#?}");
    assert!(
        asked[0].contains("connect ask") && asked[0].contains(&format!("-> 127.0.0.1:{port}")),
        "the question is the connect, shown pending as ask: {}",
        asked[0]
    );
}

/// Python: `uconnect(path)` prints `ok` or `err ERRNO` for a unix stream
/// connect to `path` (relative paths from the working directory).
const UCONNECT: &str = r#"
import socket
def uconnect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        print("ok", flush=True)
    except OSError as e:
        print("err", e.errno, flush=True)
    finally:
        s.close()
"#;

#[test]
fn unix_connects_are_decided_by_path_and_the_session_bus_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let _listeners: Vec<_> = ["bus", "private", "open"]
        .iter()
        .map(|n| std::os::unix::net::UnixListener::bind(dir.path().join(n)).unwrap())
        .collect();
    // A session bus where $DBUS_SESSION_BUS_ADDRESS says; a rule of the
    // user's on another path.
    let bus = format!("unix:path={d}/bus");
    let toml = format!("[[rule]]\naction = \"deny\"\nops = [\"connect\"]\npath = \"{d}/priv*\"\n");
    let script = format!(
        "{UCONNECT}\nimport os\nos.chdir({d:?})\nuconnect('{d}/bus')\nuconnect('./sub/../private')\nuconnect('open')\nuconnect('{d}/link/bus')\n"
    );
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    // As /var/run is /run: a way to the bus through a symlinked directory.
    std::os::unix::fs::symlink(&d, dir.path().join("link")).unwrap();
    let out = supervise(defaults(&toml, Action::Allow, Some(&bus)), &mut py(&script));
    assert_eq!(out.stdout, "err 1\nerr 1\nok\nerr 1\n");
    let c = out.events_for(Op::Connect);
    let paths: Vec<_> = c.iter().map(|e| e.path.clone().unwrap()).collect();
    assert_eq!(
        paths,
        [
            format!("{d}/bus"),
            format!("{d}/private"),
            format!("{d}/open"),
            format!("{d}/bus")
        ],
        "relative names and symlinked directories are shown and matched as the path they reach"
    );
    assert!(
        c[0].rule.unwrap() > netev_run::defaults::BUILTIN_ID_BASE,
        "a built-in refused the bus"
    );
    assert_eq!(c[1].rule, Some(1), "the user's path rule");
    assert!(
        c[0].to_text().contains(&format!("-> {d}/bus")),
        "{}",
        c[0].to_text()
    );

    // The user can let it through: their rule outranks the built-in.
    let allow = format!("[[rule]]\naction = \"allow\"\npath = \"{d}/bus\"\n");
    let out = supervise(
        defaults(&allow, Action::Deny, Some(&bus)),
        &mut py(&format!(
            "{UCONNECT}\nuconnect('{d}/bus')\nuconnect('{d}/open')\n"
        )),
    );
    assert_eq!(
        out.stdout, "ok\nerr 1\n",
        "allowed by the rule, the rest by --default deny"
    );
}
