//! `netev run` as a user runs it: asked on its terminal (a pty), asked through netevd's prompters over D-Bus as an unprivileged user, answers saved to the rules file.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netev_tests::{
    ensure_user, root_or_skip, wait_bounded, wait_until, workspace_bin, Daemon, OutputBounded,
    PrivateBus, PublicBin, TestCgroup,
};

const PYTHON: &str = "/usr/bin/python3";

/// Two connects to one port; prints "ok hi" or "err ERRNO" for each.
fn two_connects(port: u16) -> String {
    format!(
        r#"
import socket
for _ in range(2):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", {port}))
        print("ok", s.recv(2).decode(), flush=True)
    except OSError as e:
        print("err", e.errno, flush=True)
    s.close()
"#
    )
}

/// A listener that answers every connection with "hi".
fn greeter() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(b"hi");
        }
    });
    port
}

/// A pseudo-terminal: the test types on `master`; the command gets the
/// other side as its controlling terminal (its /dev/tty).
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    seen: mpsc::Receiver<u8>,
    text: String,
}

impl Pty {
    fn new() -> Pty {
        let mut fds = [0; 2];
        // SAFETY: openpty fills two fds; names and settings are not asked.
        let r = unsafe {
            libc::openpty(
                &mut fds[0],
                &mut fds[1],
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh fds we own.
        let (master, slave): (OwnedFd, OwnedFd) = unsafe {
            use std::os::fd::FromRawFd;
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        let mut reader = std::fs::File::from(master.try_clone().unwrap());
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            let mut b = [0u8; 256];
            while let Ok(n @ 1..) = reader.read(&mut b) {
                for c in &b[..n] {
                    if tx.send(*c).is_err() {
                        return;
                    }
                }
            }
        });
        Pty {
            master,
            slave,
            seen,
            text: String::new(),
        }
    }

    /// `cmd` in a new session whose controlling terminal is this pty.
    fn attach(&self, cmd: &mut Command) {
        let slave = self.slave.as_raw_fd();
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Waits (bounded) until the terminal has shown `needle`; returns all
    /// it showed so far.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.text.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(c) => self.text.push(c as char),
                Err(_) => panic!(
                    "the terminal never showed {needle:?}; it showed:\n{}",
                    self.text
                ),
            }
        }
        std::mem::take(&mut self.text)
    }

    fn type_key(&self, k: u8) {
        let mut m = std::fs::File::from(self.master.try_clone().unwrap());
        m.write_all(&[k]).unwrap();
    }
}

fn netev_run(bus: &str, rules: &std::path::Path, timeout: &str, script: &str) -> Command {
    let mut cmd = Command::new(workspace_bin("netev"));
    cmd.args(["--bus", bus, "run", "--rules"])
        .arg(rules)
        .args(["--timeout", timeout, "--", PYTHON, "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn finish(mut child: Child, what: &str) -> (String, String) {
    let st = wait_bounded(&mut child, what);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(st.success(), "{what}: {st}; stderr:\n{err}");
    (out, err)
}

const ASK_CONNECT: &str = "[[rule]]\naction = \"ask\"\nops = [\"connect\"]\n";

/// No daemon on this bus: `netev run` asks on its terminal.
const NO_BUS: &str = "unix:path=/nonexistent/netev-test-bus";

#[test]
fn netev_run_asks_on_the_terminal_and_always_is_saved_to_the_rules_file() {
    let port = greeter();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, ASK_CONNECT).unwrap();

    let mut pty = Pty::new();
    let mut cmd = netev_run(NO_BUS, &rules, "60s", &two_connects(port));
    pty.attach(&mut cmd);
    let child = cmd.spawn().unwrap();
    let shown = pty.wait_for("always");
    assert!(
        shown.contains(&format!("127.0.0.1:{port}")) && shown.contains("connect"),
        "{shown}"
    );
    pty.type_key(b'a');
    pty.wait_for("allowed always");
    let (out, _) = finish(child, "netev run (answered on the terminal)");
    assert_eq!(out, "ok hi\nok hi\n", "the second connect was not asked");

    // The rules file now allows it: the next run asks nothing.
    let saved = std::fs::read_to_string(&rules).unwrap();
    assert!(saved.contains(&format!("ports = \"{port}\"")), "{saved}");
    let parsed = netev_rules::file::parse(
        "rules.toml",
        &saved,
        chrono::Utc::now(),
        &netev_host::users::uid_of,
    )
    .unwrap();
    // an answer speaks for the user whose program asked
    assert!(saved.contains("user = \"root\""), "{saved}");
    assert_eq!(parsed.len(), 2, "{saved}");
    let out = netev_run(NO_BUS, &rules, "60s", &two_connects(port)).output_bounded();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok hi\nok hi\n");
}

#[test]
fn netev_run_unanswered_on_the_terminal_applies_the_fallback_at_the_timeout() {
    let port = greeter();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, ASK_CONNECT).unwrap();
    let mut pty = Pty::new();
    let mut cmd = netev_run(NO_BUS, &rules, "300ms", &two_connects(port));
    pty.attach(&mut cmd);
    let child = cmd.spawn().unwrap();
    pty.wait_for("no answer");
    pty.wait_for("no answer");
    let (out, _) = finish(child, "netev run (unanswered)");
    assert_eq!(out, format!("err {}\nerr {}\n", libc::EPERM, libc::EPERM));
}

#[test]
fn netev_run_asks_netevds_prompters_over_dbus_as_an_unprivileged_user() {
    if !root_or_skip("netev_run_asks_netevds_prompters_over_dbus_as_an_unprivileged_user") {
        return;
    }
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new("run-ask");
    let daemon = Daemon::start(&cg, &["--bus", bus.address()]);
    let user = "netev-run-user";
    ensure_user(user, &[]);
    let port = greeter();

    let mut prompter = Command::new(workspace_bin("netev"))
        .args(["--bus", bus.address(), "prompt", "--scope", "exe+port"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    {
        let mut out = prompter.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut b = [0u8; 512];
            while let Ok(n @ 1..) = out.read(&mut b) {
                if lines_tx
                    .send(String::from_utf8_lossy(&b[..n]).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    let mut shown = String::new();
    let mut wait_shown = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !shown.contains(needle) {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(s) => shown.push_str(&s),
                Err(_) => panic!("the prompter never showed {needle:?}:\n{shown}"),
            }
        }
        std::mem::take(&mut shown)
    };

    let dir = tempfile::tempdir().unwrap();
    // the user must read it; `always` answers are not given here
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, ASK_CONNECT).unwrap();
    let netev = PublicBin::copy("netev");
    let run = netev
        .as_user(user)
        .args(["--bus", bus.address(), "run", "--rules"])
        .arg(&rules)
        .args(["--timeout", "60s", "--", PYTHON, "-c", &two_connects(port)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let prompt = wait_shown("> ");
    assert!(
        prompt.contains("python3") && prompt.contains(&format!("connect tcp 127.0.0.1:{port}")),
        "{prompt}"
    );
    assert!(prompt.contains(user), "the asking user is named: {prompt}");
    // r: allow until restart = for the rest of this run
    prompter.stdin.as_mut().unwrap().write_all(b"r").unwrap();
    let answered = wait_shown("\n");
    assert!(
        answered.contains("allow until-restart (answered to the program that asked)"),
        "{answered:?}"
    );
    let (out, err) = finish(run, "netev run as a user, asked over D-Bus");
    assert_eq!(out, "ok hi\nok hi\n", "stderr: {err}");
    assert!(
        !err.contains("asking here"),
        "it fell back to the terminal: {err}"
    );
    assert_eq!(
        netev_tests::log_count(&daemon, "bus: asked"),
        1,
        "one prompt"
    );
    // the answer made no rule in the daemon
    let listed = Command::new(workspace_bin("netev"))
        .args(["--bus", bus.address(), "rules", "list", "--json"])
        .output_bounded();
    assert!(listed.status.success());
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "");

    // Asking about someone else's process is refused, by the daemon.
    let forged = Command::new("runuser")
        .args([
            "-u",
            user,
            "--",
            "gdbus",
            "call",
            "--address",
            bus.address(),
        ])
        .args([
            "--dest",
            "org.netev.Daemon1",
            "--object-path",
            "/org/netev/Daemon1",
            "--method",
            "org.netev.Daemon1.Ask",
            "(int64 0, uint32 1, uint32 1, uint32 0, uint32 0, uint32 0, '', 'init', \
             '/sbin/init', '', 'connect', 'inet', 'stream', 'tcp', '', uint16 0, '127.0.0.1', \
             uint16 80, false, 0, 'deny', uint32 0, uint32 1)",
            "uint32 1000",
        ])
        .output_bounded();
    let err = String::from_utf8_lossy(&forged.stderr);
    assert!(!forged.status.success());
    assert!(err.contains("must be your own"), "{err}");

    let _ = prompter.kill();
    let _ = prompter.wait();
    wait_until("no stray prompts", || {
        netev_tests::log_count(&daemon, "bus: asked") == 1
    });
    daemon.stop();
}

/// The supervised program of `ask_answered_by_the_asking_tree_is_refused`:
/// a child connects (and waits for the question's answer); the program
/// finds the prompt with WatchPrompts and tries AnswerPrompt itself, then
/// from a daemonized grandchild (double fork and setsid: its parent is
/// gone); tries to join another pid namespace (argv[3]'s); prints what
/// each got, then `tree done`, then the connect's result once someone
/// outside answers.
const ANSWER_OWN_QUESTION: &str = r#"
import os, re, socket, subprocess, sys, time
bus, port = sys.argv[1], int(sys.argv[2])
def gdbus(method, *args):
    return subprocess.run(["gdbus", "call", "--address", bus, "--dest", "org.netev.Daemon1",
        "--object-path", "/org/netev/Daemon1", "--method", "org.netev.Daemon1." + method,
        *args], capture_output=True, text=True)
asker = os.fork()
if asker == 0:
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        print("connect ok", s.recv(2).decode(), flush=True)
    except OSError as e:
        print("connect err", e.errno, flush=True)
    os._exit(0)
prompt = None
while prompt is None:
    m = re.search(r"uint64 (\d+)", gdbus("WatchPrompts").stdout)
    if m:
        prompt = m.group(1)
    else:
        time.sleep(0.05)
def answer(who):
    r = gdbus("AnswerPrompt", prompt, "allow", "until-restart", "exe")
    said = (r.stdout + r.stderr).replace("\n", " ")
    print(who, "answered" if r.returncode == 0 else "refused", said, flush=True)
answer("program")
done_r, done_w = os.pipe()
middle = os.fork()
if middle == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(done_r)
        while os.getppid() == middle:
            time.sleep(0.01)
        print("daemon ppid", os.getppid(), flush=True)
        answer("daemon")
        os._exit(0)
    os._exit(0)
os.close(done_w)
os.waitpid(middle, 0)
os.read(done_r, 1)
# Out of the tree through another pid namespace: a process forked there is
# reparented within it (to its init), not to netev run.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
ns = os.open("/proc/%s/ns/pid" % sys.argv[3], os.O_RDONLY)
for nstype in (0x20000000, 0):
    r = libc.setns(ns, nstype)
    print("setns", nstype, "ok" if r == 0 else "errno %d" % ctypes.get_errno(), flush=True)
print("tree done", flush=True)
os.waitpid(asker, 0)
"#;

/// `gdbus call` of netevd's method `method` with `args`, on `bus`.
fn daemon_call(bus: &str, method: &str, args: &[&str]) -> std::process::Output {
    Command::new("gdbus")
        .args(["call", "--address", bus, "--dest", "org.netev.Daemon1"])
        .args(["--object-path", "/org/netev/Daemon1"])
        .arg("--method")
        .arg(format!("org.netev.Daemon1.{method}"))
        .args(args)
        .output_bounded()
}

/// A supervised program cannot answer its own question over D-Bus, not
/// even as root, and neither can a process it started — a daemonized one
/// included (netev run keeps its program's tree below itself); an answer
/// from outside the tree is taken.
#[test]
fn ask_answered_by_the_asking_tree_is_refused() {
    if !root_or_skip("ask_answered_by_the_asking_tree_is_refused") {
        return;
    }
    let bus = PrivateBus::system_like();
    let cg = TestCgroup::new("run-own-answer");
    let daemon = Daemon::start(&cg, &["--bus", bus.address()]);
    let port = greeter();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let socket = bus
        .address()
        .strip_prefix("unix:path=")
        .and_then(|a| a.split(',').next())
        .expect("a unix:path bus address")
        .to_string();
    std::fs::write(
        &rules,
        format!(
            "[[rule]]\naction = \"allow\"\nops = [\"connect\"]\npath = \"{socket}\"\n\n{ASK_CONNECT}"
        ),
    )
    .unwrap();
    // A pid namespace outside the tree, whose init is `sleep`.
    let mut outside = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "sleep", "300"])
        .spawn()
        .unwrap();
    let unshare = outside.id();
    let mut ns_init = String::new();
    wait_until("unshare forked its sleep", || {
        ns_init = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default()
            .trim()
            .to_string();
        !ns_init.is_empty()
    });
    let mut run = Command::new(workspace_bin("netev"))
        .args(["--bus", bus.address(), "run", "--rules"])
        .arg(&rules)
        .args(["--timeout", "120s", "--", PYTHON, "-c", ANSWER_OWN_QUESTION])
        .arg(bus.address())
        .arg(port.to_string())
        .arg(&ns_init)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let supervisor = run.id();
    let (tx, lines) = mpsc::channel::<String>();
    let out = run.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut line_starting = |prefix: &str| -> String {
        loop {
            match lines.recv_timeout(Duration::from_secs(120)) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(l) => seen.push(l),
                Err(_) => panic!("the program never printed {prefix:?}; it printed {seen:?}"),
            }
        }
    };
    let own = line_starting("program ");
    assert!(
        own.starts_with("program refused") && own.contains("cannot answer its own questions"),
        "{own}"
    );
    let ppid = line_starting("daemon ppid ");
    assert_eq!(
        ppid,
        format!("daemon ppid {supervisor}"),
        "the daemonized process is reparented to netev run"
    );
    let daemonized = line_starting("daemon ");
    assert!(
        daemonized.starts_with("daemon refused") && daemonized.contains("one it started"),
        "{daemonized}"
    );
    let eperm = format!("errno {}", libc::EPERM);
    assert_eq!(
        line_starting("setns "),
        format!("setns 536870912 {eperm}"),
        "joining a pid namespace is refused"
    );
    assert_eq!(line_starting("setns "), format!("setns 0 {eperm}"));
    line_starting("tree done");
    let _ = outside.kill();
    let _ = outside.wait();
    // Still pending: the answer from outside the tree is taken.
    let listed = daemon_call(bus.address(), "WatchPrompts", &[]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let id = listed
        .split("uint64 ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap_or_else(|| panic!("no prompt pending: {listed}"))
        .to_string();
    let answered = daemon_call(
        bus.address(),
        "AnswerPrompt",
        &[id.as_str(), "allow", "until-restart", "exe"],
    );
    assert!(
        answered.status.success(),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );
    assert_eq!(line_starting("connect "), "connect ok hi");
    let st = wait_bounded(&mut run, "netev run");
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(st.success(), "{st}: {err}");
    assert_eq!(
        netev_tests::log_count(&daemon, "bus: asked"),
        1,
        "one question: {err}"
    );
    daemon.stop();
}
