//! `netev-load edge`: the operations that only some backends can see or
//! refuse (BPF LSM: listen, a SYN by its source, SCTP, AF_UNSPEC sockaddrs),
//! each reporting exactly how it ended, as one JSON line.

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

fn socket(kind: i32, proto: i32) -> Result<i32> {
    // SAFETY: a plain syscall.
    let fd = unsafe { libc::socket(libc::AF_INET, kind, proto) };
    if fd < 0 {
        bail!("socket: {}", errno_name(errno()));
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
    })
}
