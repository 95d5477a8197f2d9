//! Test program for netev-run's tests (not installed with netev).
//!
//! `testprog race ADDR ALLOWED_PORT DENIED_PORT ROUNDS`: the TOCTOU attacker.
//!   One thread flips the port of a shared sockaddr between the allowed and
//!   the denied port as fast as it can while the main thread connects with
//!   that very sockaddr, ROUNDS times. Prints
//!   `connected=N refused=N reached_denied=N` (reached_denied from
//!   getpeername after a successful connect).
//! `testprog connect-loop N` / `udp-connect-loop N` / `bind-loop N` /
//!   `syscall-loop N`: benchmark loops (bench/run.sh): N × (socket +
//!   connect to an in-process loopback listener + close with a reset),
//!   N × (UDP socket + connect to 127.0.0.1 + close), N × (socket + bind to
//!   127.0.0.1:0 + close), or N × getppid(); prints `ns_per_op=…`.
//! `testprog supervise DENIED_PORT -- CMD ARGS…`: runs CMD under the
//!   supervisor with one rule (deny connect to DENIED_PORT), events as JSON
//!   lines on stderr. Used to kill a supervisor under a running child.

use std::net::Ipv4Addr;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("race") if args.len() == 5 => race(
            args[1].parse().expect("ADDR"),
            args[2].parse().expect("ALLOWED_PORT"),
            args[3].parse().expect("DENIED_PORT"),
            args[4].parse().expect("ROUNDS"),
        ),
        Some("connect-loop") if args.len() == 2 => connect_loop(args[1].parse().expect("N")),
        Some("udp-connect-loop") if args.len() == 2 => {
            udp_connect_loop(args[1].parse().expect("N"))
        }
        Some("syscall-loop") if args.len() == 2 => syscall_loop(args[1].parse().expect("N")),
        Some("bind-loop") if args.len() == 2 => bind_loop(args[1].parse().expect("N")),
        Some("supervise") if args.len() >= 4 && args[2] == "--" => {
            supervise(args[1].parse().expect("DENIED_PORT"), &args[3..])
        }
        _ => {
            eprintln!("usage: testprog race ADDR ALLOWED DENIED ROUNDS | supervise DENIED -- CMD…");
            ExitCode::from(2)
        }
    }
}

/// A sockaddr_in both threads touch through raw pointers, as a racing
/// attacker would: the port field is rewritten while connect() is pending.
struct Shared(std::cell::UnsafeCell<libc::sockaddr_in>);
// SAFETY: the data race on the port is the point of the test; both
// threads only do volatile 16-bit accesses to it.
unsafe impl Sync for Shared {}

fn race(addr: Ipv4Addr, allowed: u16, denied: u16, rounds: u32) -> ExitCode {
    let sa = Arc::new(Shared(std::cell::UnsafeCell::new(libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: allowed.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    })));
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (sa, stop) = (Arc::clone(&sa), Arc::clone(&stop));
        std::thread::spawn(move || {
            let port = unsafe { std::ptr::addr_of_mut!((*sa.0.get()).sin_port) };
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                flip = !flip;
                let p = if flip { denied } else { allowed };
                // SAFETY: an aligned u16 inside a live struct.
                unsafe { std::ptr::write_volatile(port, p.to_be()) };
            }
        })
    };
    let (mut connected, mut refused, mut reached_denied) = (0u32, 0u32, 0u32);
    for _ in 0..rounds {
        // SAFETY: plain socket calls on our own fds and the shared struct.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let r = libc::connect(
                fd,
                sa.0.get() as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
            if r == 0 {
                connected += 1;
                let mut peer: libc::sockaddr_in = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
                libc::getpeername(fd, (&mut peer as *mut libc::sockaddr_in).cast(), &mut len);
                if u16::from_be(peer.sin_port) == denied {
                    reached_denied += 1;
                }
            } else {
                refused += 1;
            }
            libc::close(fd);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    println!("connected={connected} refused={refused} reached_denied={reached_denied}");
    ExitCode::SUCCESS
}

fn supervise(denied: u16, cmd: &[String]) -> ExitCode {
    let port = denied.to_string();
    let mut rule = netev_rules::fields::rule_from_fields(
        [
            ("action", "deny"),
            ("ops", "connect"),
            ("ports", port.as_str()),
        ],
        chrono::Utc::now(),
        &|_| None,
    )
    .expect("rule");
    rule.id = 1;
    let mut opts = netev_run::Options::new(netev_rules::RuleSet::new(
        vec![rule],
        netev_rules::Policy::default(),
    ));
    opts.on_event = Arc::new(|ev| eprintln!("{}", ev.to_json()));
    match netev_run::run(Command::new(&cmd[0]).args(&cmd[1..]), opts) {
        Ok(s) => ExitCode::from(s.code().unwrap_or(1) as u8),
        Err(e) => {
            eprintln!("testprog: {e}");
            ExitCode::from(1)
        }
    }
}

fn report(n: u64, start: std::time::Instant) -> ExitCode {
    let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
    println!("ns_per_op={ns:.1}");
    ExitCode::SUCCESS
}

fn connect_loop(n: u64) -> ExitCode {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || for _c in l.incoming() {});
    let start = std::time::Instant::now();
    for _ in 0..n {
        let s = std::net::TcpStream::connect(addr).expect("connect");
        // Closed with a reset: no TIME_WAIT left behind on either side, so
        // the ephemeral ports never run out and every round costs the same.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid linger struct for our own socket.
        let r = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as u32,
            )
        };
        assert_eq!(r, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
        drop(s);
    }
    report(n, start)
}

fn udp_connect_loop(n: u64) -> ExitCode {
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = peer.local_addr().expect("addr").port();
    socket_call_loop(n, libc::SOCK_DGRAM, port, "connect", libc::connect)
}

fn bind_loop(n: u64) -> ExitCode {
    socket_call_loop(n, libc::SOCK_STREAM, 0, "bind", libc::bind)
}

/// `n` times: a socket of type `ty`, `call` (connect or bind) on it with
/// 127.0.0.1:`port`, close.
fn socket_call_loop(
    n: u64,
    ty: libc::c_int,
    port: u16,
    name: &str,
    call: unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int,
) -> ExitCode {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    let start = std::time::Instant::now();
    for _ in 0..n {
        // SAFETY: plain socket calls on our own fd and a local sockaddr.
        unsafe {
            let fd = libc::socket(libc::AF_INET, ty, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let r = call(
                fd,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
            assert_eq!(r, 0, "{name}: {}", std::io::Error::last_os_error());
            libc::close(fd);
        }
    }
    report(n, start)
}

fn syscall_loop(n: u64) -> ExitCode {
    let start = std::time::Instant::now();
    for _ in 0..n {
        // SAFETY: no arguments.
        std::hint::black_box(unsafe { libc::getppid() });
    }
    report(n, start)
}
