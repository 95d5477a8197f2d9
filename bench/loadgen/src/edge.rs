//! `netev-load edge`: the operations that only some backends can see or
//! refuse (BPF LSM: listen, a SYN by its source, SCTP, AF_UNSPEC sockaddrs),
//! and the tricks a firewall must not be bypassed by (AF_UNSPEC binds,
//! sendmmsg, IPv4-mapped IPv6, the 32-bit syscall entry, ICMP echo), each
//! reporting exactly how it ended, as one JSON line.

use std::mem::size_of;
use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::probe::errno_name;

/// What `edge` does.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Edge {
    /// socket + bind 127.0.0.1:PORT + listen; reports how listen ended.
    Listen,
    /// A listener on 127.0.0.1:PORT; a non-blocking connect from
    /// 127.0.0.2 (the "denied" client), then a blocking one from 127.0.0.3
    /// (the "allowed" one), accepted. Reports the state of each client's
    /// connection once the allowed one is accepted, and whether anything
    /// else reached the accept queue.
    Inbound,
    /// socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) + connect to
    /// 127.0.0.1:PORT; reports how each step ended.
    SctpConnect,
    /// TCP Fast Open: sendto(MSG_FASTOPEN) to 127.0.0.1:PORT on an
    /// unconnected TCP socket, which opens the connection.
    FastOpen,
    /// sendto() on a UDP socket with a sockaddr_in whose family is
    /// AF_UNSPEC (0), to 127.0.0.1:PORT, which udp_sendmsg reads as AF_INET;
    /// reports how it ended and whether a socket bound there received it.
    SendtoUnspec,
    /// bind() of a UDP socket, then of a TCP socket, with a sockaddr_in
    /// whose family is AF_UNSPEC and address 0.0.0.0:PORT, which the
    /// kernel's inet bind reads as AF_INET; reports how each ended.
    #[value(name = "bind-unspec")]
    BindUnspec,
    /// One sendmmsg() call on one UDP socket with two messages, the first
    /// to 127.0.0.1:PORT, the second to 127.0.0.1:PORT+1; reports its
    /// return value, errno (if it failed) and which receiver got data.
    #[value(name = "sendmmsg")]
    Sendmmsg,
    /// sendto() on an AF_INET6 UDP socket (IPV6_V6ONLY off) to
    /// ::ffff:127.0.0.1:PORT; reports whether a socket bound on
    /// 127.0.0.1:PORT received it.
    #[value(name = "sendto-v4mapped")]
    SendtoV4mapped,
    /// connect() of an AF_INET6 TCP socket (IPV6_V6ONLY off) to
    /// ::ffff:127.0.0.1:PORT, where a listener on 127.0.0.1:PORT waits;
    /// reports whether the listener got the connection.
    #[value(name = "connect-v4mapped")]
    ConnectV4mapped,
    /// socket + connect to 127.0.0.1:PORT + close through the 32-bit entry
    /// (`int $0x80`, i386 syscall numbers) from this 64-bit process, the
    /// sockaddr in memory below 4 GiB (MAP_32BIT); a listener on
    /// 127.0.0.1:PORT. `compat` is "unsupported" where the kernel has no
    /// IA32 emulation (or this is not x86_64).
    #[value(name = "compat-connect")]
    CompatConnect,
    /// socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) (a ping socket) + sendto
    /// of an ICMP echo request to 127.0.0.1, sequence number PORT; reports
    /// each step and whether the reply came back.
    #[value(name = "icmp-echo")]
    IcmpEcho,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// "ok" or the errno's name.
fn outcome(rc: libc::c_int) -> String {
    if rc >= 0 {
        "ok".into()
    } else {
        errno_name(errno())
    }
}

/// The errno's name, with the few [`errno_name`] does not know that these
/// edges meet.
fn name(e: i32) -> String {
    match e {
        libc::ENOSYS => "ENOSYS".into(),
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT".into(),
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::EBADF => "EBADF".into(),
        libc::ENOTCONN => "ENOTCONN".into(),
        _ => errno_name(e),
    }
}

/// "ok" or the errno's name, for a call that returns -1 and sets errno.
fn outcome_of(rc: isize) -> String {
    if rc >= 0 {
        "ok".into()
    } else {
        name(errno())
    }
}

fn sockaddr(ip: Ipv4Addr, port: u16, family: i32) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: family as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const LEN: libc::socklen_t = size_of::<libc::sockaddr_in>() as libc::socklen_t;
const LEN6: libc::socklen_t = size_of::<libc::sockaddr_in6>() as libc::socklen_t;

/// ::ffff:a.b.c.d:port, as an AF_INET6 sockaddr.
fn sockaddr_v4mapped(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: port.to_be(),
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: ip.to_ipv6_mapped().octets(),
        },
        sin6_scope_id: 0,
    }
}

/// An AF_INET6 socket that also reaches IPv4 peers (IPV6_V6ONLY off).
fn dual_stack_socket(kind: i32) -> Result<i32> {
    // SAFETY: a plain syscall.
    let fd = unsafe { libc::socket(libc::AF_INET6, kind, 0) };
    if fd < 0 {
        bail!("socket(AF_INET6): {}", name(errno()));
    }
    let off: libc::c_int = 0;
    // SAFETY: off outlives the call; the size is its own.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&off as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        bail!("IPV6_V6ONLY off: {}", name(errno()));
    }
    Ok(fd)
}

/// A non-blocking UDP socket bound on ip:port, or how binding it failed
/// (a rule may cover the receiver's bind too: that is reported, not fatal).
fn receiver(ip: Ipv4Addr, port: u16) -> Result<(Option<i32>, String)> {
    let fd = socket(libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
    let rc = bind(fd, ip, port);
    let said = outcome(rc);
    Ok(((rc == 0).then_some(fd), said))
}

/// A TCP listener on ip:port (non-blocking accept), or how setting it up
/// failed.
fn listener(ip: Ipv4Addr, port: u16) -> Result<(Option<i32>, String)> {
    let fd = socket(libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0)?;
    let one: libc::c_int = 1;
    // SAFETY: plain syscalls on our descriptor; one outlives the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let rc = bind(fd, ip, port);
    if rc < 0 {
        return Ok((None, format!("bind {}", outcome(rc))));
    }
    // SAFETY: as above.
    let rc = unsafe { libc::listen(fd, 8) };
    if rc < 0 {
        return Ok((None, format!("listen {}", outcome(rc))));
    }
    Ok((Some(fd), "ok".into()))
}

/// Whether a datagram is queued on the (non-blocking) receiver. Loopback
/// delivery is synchronous: a datagram that was sent is queued by the time
/// sendto returns.
fn received(rx: Option<i32>) -> bool {
    let Some(rx) = rx else { return false };
    let mut buf = [0u8; 64];
    // SAFETY: buf is 64 bytes.
    let got = unsafe { libc::recv(rx, buf.as_mut_ptr().cast(), buf.len(), 0) };
    got > 0
}

/// Whether a connection waits in the (non-blocking) listener's queue: on
/// loopback the handshake is done before connect returns.
fn accepted(l: Option<i32>) -> bool {
    let Some(l) = l else { return false };
    // SAFETY: null address buffers are allowed.
    let fd = unsafe { libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut()) };
    fd >= 0
}

fn socket(kind: i32, proto: i32) -> Result<i32> {
    // SAFETY: a plain syscall.
    let fd = unsafe { libc::socket(libc::AF_INET, kind, proto) };
    if fd < 0 {
        bail!("socket: {}", name(errno()));
    }
    Ok(fd)
}

fn bind(fd: i32, ip: Ipv4Addr, port: u16) -> libc::c_int {
    let sa = sockaddr(ip, port, libc::AF_INET);
    // SAFETY: sa outlives the call; LEN is its size.
    unsafe { libc::bind(fd, &sa as *const _ as *const libc::sockaddr, LEN) }
}

fn connect(fd: i32, ip: Ipv4Addr, port: u16) -> libc::c_int {
    let sa = sockaddr(ip, port, libc::AF_INET);
    // SAFETY: as in bind.
    unsafe { libc::connect(fd, &sa as *const _ as *const libc::sockaddr, LEN) }
}

/// The TCP state of a socket (tcp_states.h: 1 established, 2 SYN-sent…).
fn tcp_state(fd: i32) -> &'static str {
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: info is len bytes; the kernel writes at most that.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return "unknown";
    }
    match info[0] {
        1 => "established",
        2 => "syn-sent",
        7 => "close",
        _ => "other",
    }
}

pub fn run(edge: Edge, port: u16) -> Result<Value> {
    let lo = Ipv4Addr::LOCALHOST;
    Ok(match edge {
        Edge::Listen => {
            let fd = socket(libc::SOCK_STREAM, 0)?;
            let bound = outcome(bind(fd, lo, port));
            // SAFETY: a plain syscall on our descriptor.
            let listened = outcome(unsafe { libc::listen(fd, 8) });
            json!({"bind": bound, "listen": listened})
        }
        Edge::Inbound => {
            let l = socket(libc::SOCK_STREAM, 0)?;
            let one: libc::c_int = 1;
            // SAFETY: plain syscalls on our descriptors.
            unsafe {
                libc::setsockopt(
                    l,
                    libc::SOL_SOCKET,
                    libc::SO_REUSEADDR,
                    (&one as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            if bind(l, lo, port) < 0 || unsafe { libc::listen(l, 8) } < 0 {
                bail!("listener: {}", errno_name(errno()));
            }
            let denied = socket(libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0)?;
            let denied_bind = outcome(bind(denied, Ipv4Addr::new(127, 0, 0, 2), 0));
            // On loopback the SYN is handled before connect returns: the
            // listener has decided by the time we go on.
            let denied_connect = outcome(connect(denied, lo, port));
            let allowed = socket(libc::SOCK_STREAM, 0)?;
            let allowed_bind = outcome(bind(allowed, Ipv4Addr::new(127, 0, 0, 3), 0));
            let allowed_connect = outcome(connect(allowed, lo, port));
            // SAFETY: null address buffers are allowed.
            let accepted = unsafe { libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut()) };
            let first = outcome(accepted);
            let mut peer = sockaddr(Ipv4Addr::UNSPECIFIED, 0, 0);
            let mut plen = LEN;
            if accepted >= 0 {
                // SAFETY: peer is plen bytes.
                unsafe {
                    libc::getpeername(
                        accepted,
                        (&mut peer as *mut libc::sockaddr_in).cast(),
                        &mut plen,
                    )
                };
            }
            // anything else queued?
            // SAFETY: as above.
            let more = unsafe {
                // the listener itself non-blocking: accept4's flag is the
                // new socket's
                libc::fcntl(l, libc::F_SETFL, libc::O_NONBLOCK);
                libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut())
            };
            let more = outcome(more);
            json!({
                "denied": {"bind": denied_bind, "connect": denied_connect, "state": tcp_state(denied)},
                "allowed": {"bind": allowed_bind, "connect": allowed_connect, "state": tcp_state(allowed)},
                "accept": first,
                "accepted_peer": Ipv4Addr::from(u32::from_be(peer.sin_addr.s_addr)).to_string(),
                "accept_again": more,
            })
        }
        Edge::SctpConnect => {
            let fd = socket(libc::SOCK_STREAM, libc::IPPROTO_SCTP)?;
            json!({"connect": outcome(connect(fd, lo, port))})
        }
        Edge::FastOpen => {
            let fd = socket(libc::SOCK_STREAM, 0)?;
            let sa = sockaddr(lo, port, libc::AF_INET);
            // SAFETY: sa outlives the call.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    b"netev".as_ptr().cast(),
                    5,
                    libc::MSG_FASTOPEN,
                    (&sa as *const libc::sockaddr_in).cast(),
                    LEN,
                )
            };
            json!({"sendto": outcome(sent as libc::c_int)})
        }
        Edge::SendtoUnspec => {
            let rx = socket(libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
            if bind(rx, lo, port) < 0 {
                bail!("binding the receiver: {}", errno_name(errno()));
            }
            let tx = socket(libc::SOCK_DGRAM, 0)?;
            let sa = sockaddr(lo, port, libc::AF_UNSPEC);
            // SAFETY: sa outlives the call.
            let sent = unsafe {
                libc::sendto(
                    tx,
                    b"netev".as_ptr().cast(),
                    5,
                    0,
                    (&sa as *const libc::sockaddr_in).cast(),
                    LEN,
                )
            };
            let sent = outcome(sent as libc::c_int);
            let mut buf = [0u8; 16];
            // SAFETY: buf is 16 bytes. Loopback delivery is synchronous:
            // a datagram that was sent is queued by now.
            let got = unsafe { libc::recv(rx, buf.as_mut_ptr().cast(), buf.len(), 0) };
            json!({"sendto": sent, "received": got > 0})
        }
        Edge::BindUnspec => {
            let sa = sockaddr(Ipv4Addr::UNSPECIFIED, port, libc::AF_UNSPEC);
            let mut said = serde_json::Map::new();
            for (key, kind) in [
                ("udp_bind", libc::SOCK_DGRAM),
                ("tcp_bind", libc::SOCK_STREAM),
            ] {
                let fd = socket(kind, 0)?;
                // SAFETY: sa outlives the call; LEN is its size.
                let rc = unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), LEN) };
                said.insert(key.into(), outcome(rc).into());
            }
            Value::Object(said)
        }
        Edge::Sendmmsg => {
            let Some(second) = port.checked_add(1) else {
                bail!("sendmmsg sends to PORT and PORT+1: PORT must be below 65535");
            };
            let (rx1, rx1_said) = receiver(lo, port)?;
            let (rx2, rx2_said) = receiver(lo, second)?;
            let tx = socket(libc::SOCK_DGRAM, 0)?;
            let mut payload = *b"netev";
            let mut names = [
                sockaddr(lo, port, libc::AF_INET),
                sockaddr(lo, second, libc::AF_INET),
            ];
            let mut iov = [libc::iovec {
                iov_base: payload.as_mut_ptr().cast(),
                iov_len: payload.len(),
            }; 2];
            // SAFETY: an all-zero mmsghdr is a valid empty one.
            let mut msgs: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
            for (i, m) in msgs.iter_mut().enumerate() {
                m.msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_in).cast();
                m.msg_hdr.msg_namelen = LEN;
                m.msg_hdr.msg_iov = &mut iov[i];
                m.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: msgs, names, iov and payload outlive the call.
            let rc = unsafe { libc::sendmmsg(tx, msgs.as_mut_ptr(), 2, 0) };
            let err = (rc < 0).then(|| name(errno()));
            json!({
                "sendmmsg": rc,
                "errno": err,
                "receivers": [rx1_said, rx2_said],
                "received": [received(rx1), received(rx2)],
            })
        }
        Edge::SendtoV4mapped => {
            let (rx, rx_said) = receiver(lo, port)?;
            let tx = dual_stack_socket(libc::SOCK_DGRAM)?;
            let sa = sockaddr_v4mapped(lo, port);
            // SAFETY: sa outlives the call; LEN6 is its size.
            let sent = unsafe {
                libc::sendto(
                    tx,
                    b"netev".as_ptr().cast(),
                    5,
                    0,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    LEN6,
                )
            };
            json!({"receiver": rx_said, "sendto": outcome_of(sent), "received": received(rx)})
        }
        Edge::ConnectV4mapped => {
            let (l, l_said) = listener(lo, port)?;
            let c = dual_stack_socket(libc::SOCK_STREAM)?;
            let sa = sockaddr_v4mapped(lo, port);
            // SAFETY: as above.
            let rc = unsafe { libc::connect(c, (&sa as *const libc::sockaddr_in6).cast(), LEN6) };
            json!({"listener": l_said, "connect": outcome(rc), "accepted": accepted(l)})
        }
        Edge::CompatConnect => {
            let (l, l_said) = listener(lo, port)?;
            let mut facts = compat::connect(lo, port)?;
            facts["listener"] = l_said.into();
            facts["accepted"] = accepted(l).into();
            facts
        }
        Edge::IcmpEcho => {
            // SAFETY: a plain syscall.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP) };
            if fd < 0 {
                return Ok(json!({"socket": name(errno()), "sendto": null, "reply": false}));
            }
            // echo request: type 8, code 0; the kernel fills in the
            // identifier (the socket's) and the checksum
            let seq = port.to_be_bytes();
            let packet = [
                8, 0, 0, 0, 0, 0, seq[0], seq[1], b'n', b'e', b't', b'e', b'v',
            ];
            let sa = sockaddr(lo, 0, libc::AF_INET);
            // SAFETY: packet and sa outlive the call.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (&sa as *const libc::sockaddr_in).cast(),
                    LEN,
                )
            };
            let mut reply = false;
            if sent >= 0 {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd; then buf is 64 bytes.
                reply = unsafe {
                    libc::poll(&mut pfd, 1, 2000) == 1 && {
                        let mut buf = [0u8; 64];
                        let got = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                        // an echo reply (type 0)
                        got > 0 && buf[0] == 0
                    }
                };
            }
            json!({"socket": "ok", "sendto": outcome_of(sent), "reply": reply})
        }
    })
}

/// The 32-bit syscall entry (`int $0x80`) from a 64-bit process.
#[cfg(target_arch = "x86_64")]
mod compat {
    use std::net::Ipv4Addr;

    use anyhow::{bail, Result};
    use serde_json::{json, Value};

    use super::{name, sockaddr, LEN};

    // i386 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl)
    const NR_GETPID: u32 = 20;
    const NR_CLOSE: u32 = 6;
    const NR_SOCKET: u32 = 359;
    const NR_CONNECT: u32 = 362;

    /// One i386 syscall through `int $0x80`: what the kernel returned
    /// (-errno on failure). Pointers in the arguments must be below 4 GiB.
    ///
    /// # Safety
    /// The arguments must be valid for the syscall.
    unsafe fn syscall3(nr: u32, a: u32, b: u32, c: u32) -> i32 {
        let ret: i32;
        // rbx cannot be an asm operand (LLVM reserves it): swap the first
        // argument in and out. The entry preserves every register but eax;
        // kernels before 4.17 zeroed r8-r11, so they are clobbers.
        // SAFETY: the caller's.
        unsafe {
            std::arch::asm!(
                "xchg {a}, rbx",
                "int 0x80",
                "xchg {a}, rbx",
                a = inout(reg) u64::from(a) => _,
                inlateout("eax") nr => ret,
                in("ecx") b,
                in("edx") c,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// Whether the kernel takes `int $0x80` (IA32 emulation): tried in a
    /// child, since a kernel without it kills the caller (SIGSEGV) rather
    /// than returning -ENOSYS, where it is only disabled at boot.
    fn supported() -> bool {
        // SAFETY: this process has one thread; the child only makes
        // syscalls and exits.
        unsafe {
            let pid = libc::fork();
            if pid < 0 {
                return false;
            }
            if pid == 0 {
                let got = syscall3(NR_GETPID, 0, 0, 0);
                libc::_exit(if got == libc::getpid() { 0 } else { 1 });
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0) == pid
                && libc::WIFEXITED(status)
                && libc::WEXITSTATUS(status) == 0
        }
    }

    fn outcome(ret: i32) -> String {
        if ret >= 0 {
            "ok".into()
        } else {
            name(-ret)
        }
    }

    /// socket + connect to ip:port + close, all through `int $0x80`.
    pub fn connect(ip: Ipv4Addr, port: u16) -> Result<Value> {
        if !supported() {
            return Ok(json!({"compat": "unsupported"}));
        }
        // SAFETY: a fresh anonymous mapping, below 2 GiB (MAP_32BIT).
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            bail!("mmap(MAP_32BIT): {}", std::io::Error::last_os_error());
        }
        let at = page as usize;
        if at > u32::MAX as usize - 4096 {
            bail!("MAP_32BIT gave {at:#x}, above 4 GiB");
        }
        // SAFETY: the page is ours, writable, and large enough.
        unsafe {
            page.cast::<libc::sockaddr_in>()
                .write(sockaddr(ip, port, libc::AF_INET))
        };
        // SAFETY: plain syscalls; the sockaddr lives in the mapping.
        let fd = unsafe { syscall3(NR_SOCKET, libc::AF_INET as u32, libc::SOCK_STREAM as u32, 0) };
        if fd == -libc::ENOSYS {
            return Ok(json!({"compat": "unsupported", "socket": "ENOSYS"}));
        }
        if fd < 0 {
            return Ok(json!({"compat": "ok", "socket": outcome(fd), "connect": null}));
        }
        // SAFETY: as above.
        let connected = unsafe { syscall3(NR_CONNECT, fd as u32, at as u32, LEN) };
        // SAFETY: our descriptor.
        let closed = unsafe { syscall3(NR_CLOSE, fd as u32, 0, 0) };
        Ok(json!({
            "compat": "ok",
            "socket": "ok",
            "connect": outcome(connected),
            "close": outcome(closed),
        }))
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod compat {
    use std::net::Ipv4Addr;

    use anyhow::Result;
    use serde_json::{json, Value};

    pub fn connect(_: Ipv4Addr, _: u16) -> Result<Value> {
        Ok(json!({"compat": "unsupported"}))
    }
}
