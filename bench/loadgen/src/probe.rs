//! `netev-load probe`: single network operations, each on a fresh socket,
//! reporting only how each ended, so that a test can compare the kernel's
//! verdicts with the rules' (tests/e2e/kernel_rules.rs).
//!
//! An operation is one line:
//!
//! ```text
//! socket  tcp|udp inet|inet6
//! bind    tcp|udp ADDR PORT
//! connect tcp|udp ADDR PORT
//! sendto  udp     ADDR PORT
//! ```
//!
//! The socket's family follows ADDR (an IPv6 address, `::ffff:a.b.c.d`
//! included, means an AF_INET6 socket, dual-stack), unless a last word
//! `inet6` after an IPv4 ADDR asks for a dual-stack AF_INET6 socket given a
//! plain `sockaddr_in` (which Linux takes for UDP connect and sendto). The
//! protocol argument of socket() is 0, so the kernel picks it. For each operation one line is
//! printed: `ok`, or the failing step and its errno, e.g. `socket EPERM`
//! (socket() itself was refused) or `connect ECONNREFUSED`.

use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

/// What one line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Socket,
    Bind,
    Connect,
    Sendto,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Socket => "socket",
            Kind::Bind => "bind",
            Kind::Connect => "connect",
            Kind::Sendto => "sendto",
        }
    }
}

/// One parsed operation.
#[derive(Debug, Clone, Copy)]
struct Probe {
    kind: Kind,
    udp: bool,
    v6: bool,
    /// None for `socket`.
    addr: Option<SocketAddr>,
}

fn parse(line: &str) -> Result<Probe> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let usage =
        "expected `socket tcp|udp inet|inet6` or `bind|connect|sendto tcp|udp ADDR PORT [inet6]`";
    let (&op, rest) = words.split_first().context(usage)?;
    let kind = match op {
        "socket" => Kind::Socket,
        "bind" => Kind::Bind,
        "connect" => Kind::Connect,
        "sendto" => Kind::Sendto,
        _ => bail!("unknown operation {op:?}: {usage}"),
    };
    let udp = match rest.first() {
        Some(&"tcp") => false,
        Some(&"udp") => true,
        _ => bail!("{line:?}: {usage}"),
    };
    if kind == Kind::Sendto && !udp {
        bail!("{line:?}: sendto is for udp only");
    }
    match (kind, &rest[1..]) {
        (Kind::Socket, [family]) => {
            let v6 = match *family {
                "inet" => false,
                "inet6" => true,
                _ => bail!("{line:?}: family is inet or inet6"),
            };
            Ok(Probe {
                kind,
                udp,
                v6,
                addr: None,
            })
        }
        (Kind::Socket, _) => bail!("{line:?}: {usage}"),
        (_, [addr, port, family @ ..]) if family.len() <= 1 => {
            let ip: IpAddr = addr
                .parse()
                .with_context(|| format!("{line:?}: bad address"))?;
            let port: u16 = port
                .parse()
                .with_context(|| format!("{line:?}: bad port"))?;
            let v6 = match family {
                [] => ip.is_ipv6(),
                ["inet6"] if ip.is_ipv4() => true,
                _ => {
                    bail!("{line:?}: the only socket family to give is inet6, with an IPv4 address")
                }
            };
            Ok(Probe {
                kind,
                udp,
                v6,
                addr: Some(SocketAddr::new(ip, port)),
            })
        }
        _ => bail!("{line:?}: {usage}"),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Errno names for the errors these operations can end with; others as a number.
pub(crate) fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::EAGAIN => "EAGAIN",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENOBUFS => "ENOBUFS",
        _ => return format!("errno{e}"),
    };
    name.to_string()
}

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, value: &T) -> Result<()> {
    // SAFETY: `value` is a live, correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    anyhow::ensure!(
        rc == 0,
        "setsockopt({level}, {name}): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// `addr` as a sockaddr for the kernel.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Runs one operation; on failure, the step that failed and its errno.
fn run(p: &Probe) -> Result<Result<(), (&'static str, i32)>> {
    let family = if p.v6 { libc::AF_INET6 } else { libc::AF_INET };
    let ty = if p.udp {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_STREAM
    };
    // SAFETY: plain syscall; the descriptor is owned right below.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Ok(Err(("socket", errno())));
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if p.v6 {
        // dual-stack whatever the sysctl says: ::ffff:a.b.c.d must work
        setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &0i32)?;
    }
    // a TCP connect never hangs the test (loopback answers at once anyway)
    let timeout = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &timeout)?;
    let Some(addr) = p.addr else {
        return Ok(Ok(()));
    };
    let (ss, len) = sockaddr(addr);
    let sa = (&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
    let raw = fd.as_raw_fd();
    // SAFETY: `sa` points to `len` valid bytes of a sockaddr; the buffer is static.
    let rc = unsafe {
        match p.kind {
            Kind::Bind => libc::bind(raw, sa, len),
            Kind::Connect => libc::connect(raw, sa, len),
            Kind::Sendto => {
                libc::sendto(raw, b"netev".as_ptr().cast(), 5, 0, sa, len).min(0) as libc::c_int
            }
            Kind::Socket => 0,
        }
    };
    if rc < 0 {
        return Ok(Err((p.kind.name(), errno())));
    }
    Ok(Ok(()))
}

/// Drops root for good: no supplementary groups, gid and uid = `uid`.
fn become_user(uid: u32) -> Result<()> {
    // SAFETY: plain credential syscalls.
    unsafe {
        anyhow::ensure!(
            libc::setgroups(0, std::ptr::null()) == 0,
            "setgroups: {}",
            std::io::Error::last_os_error()
        );
        anyhow::ensure!(
            libc::setgid(uid) == 0,
            "setgid({uid}): {}",
            std::io::Error::last_os_error()
        );
        anyhow::ensure!(
            libc::setuid(uid) == 0,
            "setuid({uid}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Runs `ops` (or, if empty, the lines of stdin) and prints one result line each.
pub fn probe(uid: Option<u32>, ops: Vec<String>) -> Result<()> {
    if let Some(uid) = uid {
        become_user(uid)?;
    }
    let lines = if ops.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<Vec<_>, _>>()
            .context("reading stdin")?
    } else {
        ops
    };
    let mut out = std::io::stdout().lock();
    for line in lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        let p = parse(line)?;
        match run(&p).with_context(|| format!("{line:?}"))? {
            Ok(()) => writeln!(out, "ok")?,
            Err((step, e)) => writeln!(out, "{step} {}", errno_name(e))?,
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_forms() {
        let p = parse("socket udp inet6").unwrap();
        assert_eq!(
            (p.kind, p.udp, p.v6, p.addr),
            (Kind::Socket, true, true, None)
        );
        let p = parse("connect tcp ::ffff:127.0.0.1 80").unwrap();
        assert_eq!((p.kind, p.udp, p.v6), (Kind::Connect, false, true));
        assert_eq!(p.addr, Some("[::ffff:127.0.0.1]:80".parse().unwrap()));
        assert!(!parse("bind udp 127.0.0.1 0").unwrap().v6);
        let p = parse("sendto udp 127.0.0.1 9 inet6").unwrap();
        assert_eq!((p.v6, p.addr), (true, Some("127.0.0.1:9".parse().unwrap())));
        assert!(parse("sendto udp ::1 9 inet6").is_err());
        assert!(parse("sendto udp 127.0.0.1 9 inet").is_err());
        assert!(parse("sendto tcp 127.0.0.1 1").is_err());
        assert!(parse("socket tcp").is_err());
        assert!(parse("listen tcp 127.0.0.1 1").is_err());
    }
}
