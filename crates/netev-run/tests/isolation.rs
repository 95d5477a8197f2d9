//! What a supervised program can do to its supervisor (issue 20, item 3):
//! run as the same user, it must not reach the supervisor's descriptors
//! (the seccomp listener), memory or ptrace, and it must not answer its own
//! questions through its terminal. Each attack is also made against a
//! dumpable process of the same user, where it must succeed: that proves
//! the attack itself works and the refusal is the supervisor's doing.
//!
//! Run as root, the supervisor and the program run as `nobody` (root has
//! CAP_SYS_PTRACE, which no dumpable setting stops).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const PYTHON: &str = "/usr/bin/python3";
const NOBODY: u32 = 65534;

/// Runs as the test's user, or as nobody when that is root.
fn as_unprivileged(cmd: &mut Command) -> &mut Command {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } == 0 {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd.env_clear()
        .env("HOME", "/nonexistent")
        .env("SHELL", "/bin/sh")
        .env("PATH", "/usr/bin:/bin")
}

/// The attacker: each attack on the pid given, `NAME key=ok|errnoN …`.
const ATTACK: &str = r#"import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
def res(r):
    return "ok" if r >= 0 else "errno%d" % ctypes.get_errno()
def attack(name, pid):
    out = []
    try:
        pfd = os.pidfd_open(pid)
        r = libc.syscall(438, pfd, 0, 0)
        out.append("getfd=" + res(r))
        if r >= 0: os.close(r)
        os.close(pfd)
    except OSError as e:
        out.append("getfd=pidfd_open:errno%d" % e.errno)
    r = libc.ptrace(0x4206, pid, None, None)
    out.append("seize=" + res(r))
    if r >= 0:
        # a seized tracee is detached only while stopped
        libc.ptrace(0x4207, pid, None, None)
        os.waitpid(pid, 0x40000000)
        libc.ptrace(17, pid, None, None)
    r = libc.ptrace(16, pid, None, None)
    out.append("attach=" + res(r))
    if r >= 0:
        os.waitpid(pid, 0x40000000)
        libc.ptrace(17, pid, None, None)
    class iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    buf = ctypes.create_string_buffer(8)
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
    # The permission check comes before the copy: EPERM is refused,
    # EFAULT (nothing mapped at that address) is allowed.
    remote = iovec(0x10000, 8)
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    r = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    e = ctypes.get_errno()
    out.append("vm_readv=" + ("ok" if r >= 0 or e in (14,) else "errno%d" % e))
    try:
        with open("/proc/%d/mem" % pid, "rb"):
            out.append("mem=ok")
    except OSError as e:
        out.append("mem=errno%d" % e.errno)
    print(name, " ".join(out), flush=True)
attack("supervisor", os.getppid())
attack("sibling", int(sys.argv[1]))
try:
    with open("/proc/self/mem", "rb"): mem = "ok"
except OSError as e:
    mem = "errno%d" % e.errno
print("self dumpable=%d mem=%s" % (libc.prctl(3, 0, 0, 0, 0), mem), flush=True)
"#;

fn fields(line: &str) -> std::collections::BTreeMap<String, String> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A child that tries `pidfd_getfd`, `ptrace` (SEIZE and ATTACH),
/// `process_vm_readv` and `/proc/<pid>/mem` on its supervisor fails with
/// EPERM/EACCES; the same calls on a dumpable process of the same user
/// work; the program itself stays dumpable.
#[test]
fn the_program_cannot_reach_into_its_supervisor() {
    if let Ok(scope) = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        if scope.trim() != "0" {
            // Yama would refuse the control attack on the sibling: the
            // check would prove nothing.
            eprintln!("skipped: Yama ptrace_scope is {} (needs 0)", scope.trim());
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "skip under CI");
            return;
        }
    }
    let mut sibling = as_unprivileged(&mut Command::new("/bin/sleep"))
        .arg("120")
        .spawn()
        .unwrap();
    let prog = env!("CARGO_BIN_EXE_netev-run-testprog");
    let out = as_unprivileged(&mut Command::new(prog))
        .args(["supervise", "1", "--", PYTHON, "-c", ATTACK])
        .arg(sibling.id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let _ = sibling.kill();
    let _ = sibling.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = BufReader::new(out.stdout.as_slice())
        .lines()
        .map(|l| l.unwrap())
        .collect();
    let line = |name: &str| {
        let l = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in {stdout}"));
        fields(l)
    };
    let sup = line("supervisor");
    let sib = line("sibling");
    let eperm = format!("errno{}", libc::EPERM);
    let eacces = format!("errno{}", libc::EACCES);
    for k in ["getfd", "seize", "attach", "vm_readv"] {
        assert_eq!(sup[k], eperm, "{k} on the supervisor: {stdout}");
        assert_eq!(sib[k], "ok", "{k} on the sibling: {stdout}");
    }
    assert_eq!(sup["mem"], eacces, "/proc/<supervisor>/mem: {stdout}");
    assert_eq!(sib["mem"], "ok", "/proc/<sibling>/mem: {stdout}");
    // The program's own /proc is the usual one: exec made it dumpable.
    let me = line("self");
    assert_eq!(me["dumpable"], "1", "{stdout}");
    assert_eq!(me["mem"], "ok", "{stdout}");
}

/// `netev`, built next to this test (`cargo build -p netev` first).
fn netev_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|d| d.parent()).unwrap().join("netev");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p netev)",
        path.display()
    );
    path
}

/// A pty pair for the test to be the person's terminal on.
fn pty() -> (std::fs::File, std::fs::File, String) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain calls on a master we open here.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let path = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_string_lossy()
            .into_owned();
        let s = libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        assert!(s >= 0);
        if libc::getuid() == 0 {
            // a terminal belongs to the person logged in on it
            assert_eq!(libc::fchown(s, NOBODY, NOBODY), 0);
        }
        (
            std::fs::File::from_raw_fd(m),
            std::fs::File::from_raw_fd(s),
            path,
        )
    }
}

/// The forger: TIOCSTI of `y` and `a` on its own terminal, terminal
/// queries on it (DSR, DA, an OSC colour query), TIOCSTI on the real
/// terminal opened by its path and a colour query written there directly;
/// then the connect that is asked about. Prints `RESULT` and what each
/// attempt gave, and what it finds on its own input.
const FORGER: &str = r#"
import fcntl, os, socket, sys, termios, tty
real, port = sys.argv[1], int(sys.argv[2])
saved = termios.tcgetattr(0)
tty.setraw(0)
r = []
for c in b"ya":
    try:
        fcntl.ioctl(0, termios.TIOCSTI, bytes([c])); r.append("sti=ok")
    except OSError as e:
        r.append("sti=errno%d" % e.errno)
os.write(1, b"\x1b[5n\x1b[>c\x1b]10;?\x07")
try:
    fd = os.open(real, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"y"); r.append("realsti=ok")
    except OSError as e:
        r.append("realsti=errno%d" % e.errno)
    os.write(fd, b"\x1b]11;?\x07")
    os.close(fd)
except OSError as e:
    r.append("realopen=errno%d" % e.errno)
s = socket.socket()
try:
    s.connect(("127.0.0.1", port)); res = "connected"
except OSError as e:
    res = "err%d" % e.errno
os.set_blocking(0, False)
try:
    got = os.read(0, 100)
except BlockingIOError:
    got = b""
termios.tcsetattr(0, termios.TCSANOW, saved)
print("RESULT", res, " ".join(r), "stdin=" + got.decode(), flush=True)
"#;

/// A program that writes forged answers to its terminal does not answer
/// its own question: `netev run --default ask` on a terminal (a pty the
/// test holds the master of, as a terminal emulator would), a program
/// that TIOCSTIs `y`/`a`, sends terminal queries, and has the "terminal"
/// answer with reports full of `y`, `a` and `d`. The question stays open
/// until the test types `n`; the connect is refused and no rule is added.
#[test]
fn forged_answers_on_the_terminal_do_not_answer_the_question() {
    use std::io::{Read, Write};
    let netev = netev_bin();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let original = "# the forger's rules\n";
    std::fs::write(&rules, original).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        // writable by the supervisor (nobody when run as root): an
        // "always" answer would be appended here
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&rules, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let (mut master, slave, slave_path) = pty();
    let mut cmd = Command::new(&netev);
    as_unprivileged(&mut cmd)
        .args([
            "--bus",
            "unix:path=/nonexistent/netev-test-bus",
            "run",
            "--rules",
        ])
        .arg(&rules)
        .args([
            "--default",
            "ask",
            "--timeout",
            "120s",
            "--",
            PYTHON,
            "-c",
            FORGER,
        ])
        .arg(&slave_path)
        .arg(port.to_string())
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: setsid and ioctl in the child: netev's controlling terminal
    // is the test's pty, as a shell's child's would be.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut netev_proc = cmd.spawn().unwrap();
    // no slave left open here: the master reads EOF when netev is done
    drop(cmd);
    drop(slave);

    // The "terminal": collects what is shown, and answers colour queries
    // with a report full of answer letters.
    let seen = std::sync::Arc::new((
        std::sync::Mutex::new(Vec::<u8>::new()),
        std::sync::Condvar::new(),
    ));
    let reader = {
        let seen = std::sync::Arc::clone(&seen);
        let mut rd = master.try_clone().unwrap();
        let mut wr = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut answered = 0;
            loop {
                let n = match rd.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (lock, cv) = &*seen;
                let mut s = lock.lock().unwrap();
                s.extend_from_slice(&buf[..n]);
                let queries = s.windows(6).filter(|w| w == b"\x1b]11;?").count();
                while answered < queries {
                    let _ = wr.write_all(b"\x1b]11;rgb:yyyy/aaaa/dddd\x1b\\");
                    answered += 1;
                }
                cv.notify_all();
            }
        })
    };
    let contains = |s: &[u8], pat: &str| s.windows(pat.len()).any(|w| w == pat.as_bytes());
    let wait_for = |pat: &str| {
        let (lock, cv) = &*seen;
        let (s, timeout) = cv
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(30), |s| {
                !contains(s, pat)
            })
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "no {pat:?} on the terminal: {:?}",
            String::from_utf8_lossy(&s)
        );
    };
    wait_for("allow: y this run");
    // A report arriving while the question is shown (as a slow terminal's
    // answer would), and a bracketed paste: neither is a key.
    master
        .write_all(b"\x1b]11;rgb:yyyy/aaaa/dddd\x1b\\\x1b[200~y\x1b[201~\x1b[?1;2c")
        .unwrap();
    // Only "n" is typed.
    master.write_all(b"n").unwrap();
    wait_for("RESULT");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = netev_proc.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = netev_proc.kill();
            panic!("netev run did not end");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(master);
    let _ = reader.join();
    let shown = String::from_utf8_lossy(&seen.0.lock().unwrap()).into_owned();
    assert!(status.success(), "{status}: {shown:?}");
    assert!(shown.contains("denied for this run"), "{shown:?}");
    let result = shown
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r.trim().to_string()))
        .unwrap();
    let f = fields(&format!("x {result}"));
    // refused: the person said n
    assert!(result.starts_with("err1 "), "{result}");
    // TIOCSTI worked, on the program's own terminal: the keys are its own
    assert_eq!(f["sti"], "ok", "{result}");
    assert_eq!(f["stdin"], "ya", "{result}");
    // ... and not on the real one
    assert_eq!(f["realsti"], format!("errno{}", libc::EPERM), "{result}");
    // the queries on its own terminal never reached the real one
    for q in ["\x1b[5n", "\x1b[>c", "\x1b]10;?"] {
        assert!(!shown.contains(q), "{q:?} reached the terminal: {shown:?}");
    }
    // exactly one question: none was answered behind the person's back
    assert_eq!(shown.matches("allow: y this run").count(), 1, "{shown:?}");
    assert_eq!(std::fs::read_to_string(&rules).unwrap(), original);
}
