//! Issue 20, item 4: who a call is decided as cannot be borrowed. A bind
//! mount does not make one program another (exe by file, not by path);
//! TCP Fast Open is a connect; a call is not performed with the
//! supervisor's rights for a caller that has fewer (after `unshare -r`).
//! These need root (mounts, a port below 1024); each is skipped, with the
//! reason printed, otherwise — and a skip fails under CI=true.

use std::io::Read;
use std::net::TcpListener;
use std::process::Command;

use netev_event::{Op, Verdict};
use netev_rules::Action;

use super::{greeter, py, rules, supervise, ATTEMPT, PYTHON};

/// Whether the test can run; prints why not, and fails under CI.
fn root(what: &str) -> bool {
    // SAFETY: a plain syscall.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("skipped: {what} needs root");
    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "skip under CI");
    false
}

/// Two copies of python: the program an exe rule allows, and another
/// file (its own inode) to pass off as it. Both run the same script, so
/// only their identity tells them apart.
struct Programs {
    _dir: tempfile::TempDir,
    allowed: String,
    other: String,
}

fn programs() -> Programs {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let copy = |name: &str| {
        let p = base.join(name);
        std::fs::copy(PYTHON, &p).unwrap();
        p.to_str().unwrap().to_string()
    };
    Programs {
        allowed: copy("allowed"),
        other: copy("other"),
        _dir: dir,
    }
}

/// `sh -c SCRIPT` under `unshare ARGS`: a new mount namespace (and user
/// namespace with `-r`) in which the other file is bind-mounted over the
/// allowed path and run from it.
fn disguised(unshare: &str, p: &Programs, script: &str) -> Command {
    let mut c = Command::new("unshare");
    c.arg(unshare)
        .arg("sh")
        .arg("-c")
        .arg(r#"mount --bind "$1" "$2" && exec "$2" -c "$3""#);
    c.arg("sh").arg(&p.other).arg(&p.allowed).arg(script);
    c
}

#[test]
fn a_bind_mount_does_not_change_the_identity() {
    if !root("bind-mounting in a mount namespace") {
        return;
    }
    let p = programs();
    let port = greeter("127.0.0.1:0");
    let toml = format!(
        "[[rule]]\naction = \"allow\"\nops = [\"socket\"]\n\n\
         [[rule]]\naction = \"allow\"\nexe = \"{}\"\n",
        p.allowed
    );
    let script = format!("{ATTEMPT}\nattempt(socket.AF_INET, '127.0.0.1', {port})\n");

    // The genuine program at that path is allowed: the rule works.
    let mut genuine = Command::new(&p.allowed);
    genuine.arg("-c").arg(&script);
    let out = supervise(rules(&toml, Some(Action::Deny)), &mut genuine);
    assert_eq!(out.stdout.trim(), "ok hi", "{:?}", out.events);
    let ev = out.events_for(Op::Connect)[0];
    assert_eq!(ev.exe.as_deref(), Some(p.allowed.as_str()));
    assert_eq!((ev.verdict, ev.rule), (Verdict::Allow, Some(2)));

    // Another file mounted over that path reads as that path from
    // /proc/<pid>/exe, but is not that file: refused by the default, and
    // shown unverified. Once as real root in a new mount namespace (only
    // the file check can tell), once after `unshare -rm` (the user
    // namespace alone makes it unverified too).
    for unshare in ["-m", "-rm"] {
        let out = supervise(
            rules(&toml, Some(Action::Deny)),
            &mut disguised(unshare, &p, &script),
        );
        assert_eq!(
            out.stdout.trim(),
            "err 1",
            "unshare {unshare}: {:?}",
            out.events
        );
        let ev = out.events_for(Op::Connect)[0];
        assert_eq!(ev.exe, Some(format!("?{}", p.allowed)), "unshare {unshare}");
        assert_eq!((ev.verdict, ev.rule), (Verdict::Deny, None));
    }
}

/// Data sent by TCP Fast Open arrives: a listener that keeps what its one
/// connection sent.
fn receiver() -> (u16, std::thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut data = Vec::new();
        c.read_to_end(&mut data).unwrap();
        data
    });
    (port, got)
}

const FAST_OPEN: &str = r#"
import socket, sys
port = int(sys.argv[1])
def tfo(how):
    s = socket.socket()
    try:
        if how == "sendto":
            s.sendto(b"tfo", socket.MSG_FASTOPEN, ("127.0.0.1", port))
        elif how == "sendmsg":
            s.sendmsg([b"tfo"], [], socket.MSG_FASTOPEN, ("127.0.0.1", port))
        else:
            s.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT
            s.connect(("127.0.0.1", port))
            s.send(b"tfo")
        print(how, "ok", flush=True)
    except OSError as e:
        print(how, "err", e.errno, flush=True)
    finally:
        s.close()
for how in sys.argv[2:]:
    tfo(how)
"#;

fn fast_open(toml: &str, port: u16, hows: &[&str]) -> super::Outcome {
    let mut c = Command::new(PYTHON);
    c.arg("-c").arg(FAST_OPEN).arg(port.to_string()).args(hows);
    supervise(rules(toml, None), &mut c)
}

#[test]
fn tcp_fast_open_is_a_connect() {
    // Fast Open's client side is on by default (net.ipv4.tcp_fastopen 1).
    let enabled = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_fastopen")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|v| v & 1 != 0);
    if !enabled {
        eprintln!("skipped: TCP Fast Open's client side is off (net.ipv4.tcp_fastopen)");
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "skip under CI");
        return;
    }
    let hows = ["sendto", "sendmsg", "fastopen-connect"];
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    let toml = format!("[[rule]]\naction = \"deny\"\nops = [\"connect\"]\nports = {port}\n");
    let out = fast_open(&toml, port, &hows);
    assert_eq!(
        out.stdout, "sendto err 1\nsendmsg err 1\nfastopen-connect err 1\n",
        "{:?}",
        out.events
    );
    let connects = out.events_for(Op::Connect);
    assert_eq!(connects.len(), 3, "{:?}", out.events);
    for ev in connects {
        assert_eq!((ev.verdict, ev.rule), (Verdict::Deny, Some(1)));
        assert_eq!(ev.rport, Some(port));
        assert_eq!(ev.raddr, Some("127.0.0.1".parse().unwrap()));
    }
    assert!(out.events_for(Op::Sendmsg).is_empty(), "{:?}", out.events);
    drop(closed);

    // Without the rule each one connects, and its data arrives.
    for how in hows {
        let (port, got) = receiver();
        let out = fast_open(&toml.replace("deny", "allow"), port, &[how]);
        assert_eq!(out.stdout, format!("{how} ok\n"));
        assert_eq!(got.join().unwrap(), b"tfo", "{how}");
        let ev = out.events_for(Op::Connect)[0];
        assert_eq!((ev.verdict, ev.rport), (Verdict::Allow, Some(port)));
    }
}

/// A port below 1024 that is free now.
fn free_privileged_port() -> Option<u16> {
    (600..1000).find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

#[test]
fn a_privileged_bind_is_not_lent_to_a_user_namespace() {
    if !root("binding a port below 1024") {
        return;
    }
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    let Some(port) = free_privileged_port().filter(|&p| p < start) else {
        eprintln!("skipped: no free port below ip_unprivileged_port_start ({start})");
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "skip under CI");
        return;
    };
    let script = format!(
        "import socket\ns = socket.socket()\ntry:\n    s.bind(('127.0.0.1', {port}))\n    \
         print('ok')\nexcept OSError as e:\n    print('err', e.errno)\n"
    );
    // Root in its own user namespace holds CAP_NET_BIND_SERVICE there, not
    // over this network namespace: the kernel refuses, and so must we.
    let mut in_ns = Command::new("unshare");
    in_ns.arg("-r").arg(PYTHON).arg("-c").arg(&script);
    let out = supervise(rules("", None), &mut in_ns);
    assert_eq!(out.stdout.trim(), "err 13", "{:?}", out.events);
    let ev = out.events_for(Op::Bind)[0];
    assert_eq!((ev.verdict, ev.lport), (Verdict::Allow, Some(port)));
    assert_eq!(ev.ret, None, "continued: the kernel ran it as the caller");

    // Real root outside a user namespace may: performed, and it works.
    let out = supervise(rules("", None), &mut py(&script));
    assert_eq!(out.stdout.trim(), "ok", "{:?}", out.events);
    assert_eq!(out.events_for(Op::Bind)[0].ret, Some(0));
}

/// `sendmmsg` through ctypes (Python has none): `udp PORT…` sends one
/// datagram `m<i>` to each port in one call; `tfo PORT` one TCP Fast Open
/// message. Prints the call's result, or `err <errno>`.
const SENDMMSG: &str = r#"
import ctypes, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
assert ctypes.sizeof(mmsghdr) == 64
how, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
s = socket.socket(type=socket.SOCK_DGRAM if how == "udp" else socket.SOCK_STREAM)
msgs, keep = (mmsghdr * len(ports))(), []
for i, port in enumerate(ports):
    name = ctypes.create_string_buffer(
        struct.pack("=HH4s8x", socket.AF_INET, socket.htons(port), socket.inet_aton("127.0.0.1")), 16)
    data = ctypes.create_string_buffer(b"m%d" % i, 2)
    iov = iovec(ctypes.cast(data, ctypes.c_void_p), 2)
    keep += [name, data, iov]
    msgs[i].hdr.name, msgs[i].hdr.namelen = ctypes.cast(name, ctypes.c_void_p), 16
    msgs[i].hdr.iov, msgs[i].hdr.iovlen = ctypes.pointer(iov), 1
flags = socket.MSG_FASTOPEN if how == "tfo" else 0
r = libc.sendmmsg(s.fileno(), msgs, len(ports), flags)
print(r if r >= 0 else "err %d" % ctypes.get_errno(), flush=True)
"#;

fn sendmmsg(toml: &str, unshare: bool, how: &str, ports: &[u16]) -> super::Outcome {
    let mut c = if unshare {
        let mut c = Command::new("unshare");
        c.arg("-r").arg(PYTHON);
        c
    } else {
        Command::new(PYTHON)
    };
    c.arg("-c").arg(SENDMMSG).arg(how);
    c.args(ports.iter().map(u16::to_string));
    supervise(rules(toml, None), &mut c)
}

/// What arrived at a UDP socket so far (loopback delivers before the send
/// returns: nothing to wait for).
fn datagrams(s: &std::net::UdpSocket) -> Vec<Vec<u8>> {
    s.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while let Ok(n) = s.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

#[test]
fn sendmmsg_fast_open_is_a_connect() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    let toml = format!("[[rule]]\naction = \"deny\"\nops = [\"connect\"]\nports = {port}\n");
    let out = sendmmsg(&toml, false, "tfo", &[port]);
    assert_eq!(out.stdout.trim(), "err 1", "{:?}", out.events);
    let ev = out.events_for(Op::Connect)[0];
    assert_eq!((ev.verdict, ev.rport), (Verdict::Deny, Some(port)));
}

/// A continued `sendmmsg` (the caller is in a user namespace of its own)
/// is decided on every message's address before the kernel sends any:
/// one refused address refuses the call. Performed, the batch ends there
/// and the allowed message before it is sent.
#[test]
fn a_continued_sendmmsg_is_decided_on_every_address() {
    if !root("unshare -r as a test's own user") {
        return;
    }
    let (open, denied) = (
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let (p_open, p_denied) = (
        open.local_addr().unwrap().port(),
        denied.local_addr().unwrap().port(),
    );
    let toml = format!("[[rule]]\naction = \"deny\"\nops = [\"sendmsg\"]\nports = {p_denied}\n");

    let out = sendmmsg(&toml, true, "udp", &[p_open, p_denied]);
    assert_eq!(out.stdout.trim(), "err 1", "{:?}", out.events);
    let ev = out.events_for(Op::Sendmsg)[0];
    assert_eq!((ev.verdict, ev.rport), (Verdict::Deny, Some(p_denied)));
    assert!(datagrams(&open).is_empty());
    assert!(datagrams(&denied).is_empty());

    let out = sendmmsg(&toml, false, "udp", &[p_open, p_denied]);
    assert_eq!(out.stdout.trim(), "1", "{:?}", out.events);
    assert_eq!(datagrams(&open), [b"m0".to_vec()]);
    assert!(datagrams(&denied).is_empty());

    // All allowed, continued: the kernel sends both.
    let out = sendmmsg("", true, "udp", &[p_open, p_denied]);
    assert_eq!(out.stdout.trim(), "2", "{:?}", out.events);
    assert_eq!(datagrams(&open), [b"m0".to_vec()]);
    assert_eq!(datagrams(&denied), [b"m1".to_vec()]);
}

/// A thread with other credentials than the supervisor's (a raw
/// `setresuid` in that thread alone) has its calls continued, so the
/// kernel checks them as that thread's; the thread that kept the
/// supervisor's has them performed.
#[test]
fn a_thread_with_other_credentials_is_continued_not_performed() {
    if !root("changing a thread's uid") {
        return;
    }
    let port = greeter("127.0.0.1:0");
    let script = format!(
        "{ATTEMPT}\nimport ctypes, threading\nlibc = ctypes.CDLL(None, use_errno=True)\n\
         def other():\n    assert libc.syscall(117, 65534, 65534, 65534) == 0  # SYS_setresuid\n    \
         attempt(socket.AF_INET, '127.0.0.1', {port})\n\
         t = threading.Thread(target=other)\nt.start(); t.join()\n\
         attempt(socket.AF_INET, '127.0.0.1', {port})\n"
    );
    let out = supervise(rules("", None), &mut py(&script));
    assert_eq!(out.stdout, "ok hi\nok hi\n", "{:?}", out.events);
    let c = out.events_for(Op::Connect);
    assert_eq!((c[0].uid, c[0].ret), (65534, None), "continued");
    assert_eq!((c[1].uid, c[1].ret), (0, Some(0)), "performed");
}
