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
