//! netev-load: network workloads with known answers.
//!
//! Scenarios (`tcp4`, `udp6`, `exec-race`…) do a few network calls and print
//! one JSON line saying exactly what they did (pid, ports), so a test can
//! check the events netevd reported against it. Loops (`loop tcp|bind|udp`)
//! repeat one pattern a fixed number of times and print ns per iteration,
//! for the benchmarks. `probe` runs single operations and prints how each
//! ended (see [`probe`]), to compare the kernel's verdicts with the rules'.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

mod edge;
mod probe;

#[derive(Parser)]
#[command(about = "Network workloads for netev's tests and benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// TCP over IPv4 loopback: listen, connect, accept, one byte each way.
    Tcp4,
    /// TCP over IPv6 loopback.
    Tcp6,
    /// UDP over IPv4 loopback: sendto then recvfrom.
    Udp4,
    /// UDP over IPv6 loopback.
    Udp6,
    /// Bind a UDP socket to 127.0.0.1:PORT.
    Bind { port: u16 },
    /// socket(AF_UNIX, SOCK_STREAM).
    Unix,
    /// One TCP connect to ADDR, then exit.
    Connect { addr: SocketAddr },
    /// N sendto() calls on one UDP socket to ADDR.
    Sendto { addr: SocketAddr, count: u64 },
    /// Connect to ADDR, then exec EXE with `connect ADDR` (EXE: a copy of this program).
    ExecRace { addr: SocketAddr, exe: PathBuf },
    /// Single operations, each on a fresh socket (OPS, or the lines of
    /// stdin): `socket tcp|udp inet|inet6`, `bind|connect tcp|udp ADDR PORT`,
    /// `sendto udp ADDR PORT`. Prints per op `ok` or `STEP ERRNO`
    /// (e.g. `socket EPERM`, `connect ECONNREFUSED`); not JSON.
    Probe {
        /// Switch to this uid (gid the same, no supplementary groups) first.
        #[arg(long)]
        uid: Option<u32>,
        ops: Vec<String>,
    },
    /// One of the operations only some backends see or refuse (listen,
    /// inbound by source, SCTP, AF_UNSPEC); prints how each step ended.
    Edge { what: edge::Edge, port: u16 },
    /// Repeat one pattern ITERATIONS times; print ns per iteration.
    Loop {
        mode: LoopMode,
        #[arg(long, default_value_t = 100_000)]
        iterations: u64,
        /// Pace to about this many iterations per second (default: flat out).
        #[arg(long)]
        rate: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LoopMode {
    /// socket + connect + accept + close, over IPv4 loopback.
    Tcp,
    /// socket + bind + listen + close.
    Bind,
    /// sendto() of 16 bytes to a bound UDP socket that never reads.
    Udp,
    /// connect() of one UDP socket, again and again: the cheapest hooked
    /// syscall, to measure how many events/s the daemon drains.
    UdpConnect,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Tcp4 => tcp((Ipv4Addr::LOCALHOST, 0).into()),
        Cmd::Tcp6 => tcp((Ipv6Addr::LOCALHOST, 0).into()),
        Cmd::Udp4 => udp((Ipv4Addr::LOCALHOST, 0).into()),
        Cmd::Udp6 => udp((Ipv6Addr::LOCALHOST, 0).into()),
        Cmd::Bind { port } => {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).context("bind")?;
            report(json!({"port": s.local_addr()?.port()}))
        }
        Cmd::Unix => {
            // SAFETY: plain syscalls on a descriptor we own.
            let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
            anyhow::ensure!(
                fd >= 0,
                "socket(AF_UNIX): {}",
                std::io::Error::last_os_error()
            );
            unsafe { libc::close(fd) };
            report(json!({"fd": fd}))
        }
        Cmd::Connect { addr } => {
            let s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
            report(json!({"lport": s.local_addr()?.port()}))
        }
        Cmd::Sendto { addr, count } => {
            let s = UdpSocket::bind(unspecified_like(addr)).context("bind")?;
            for _ in 0..count {
                s.send_to(b"netev", addr).context("sendto")?;
            }
            report(json!({"lport": s.local_addr()?.port(), "count": count}))
        }
        Cmd::ExecRace { addr, exe } => {
            let s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
            let lport = s.local_addr()?.port();
            drop(s);
            let _ = std::io::stdout().flush();
            // Same pid, new executable, connecting as soon as it starts.
            let err = std::process::Command::new(&exe)
                .arg("connect")
                .arg(addr.to_string())
                .env("NETEV_LOAD_FIRST_LPORT", lport.to_string())
                .exec();
            Err(err).with_context(|| format!("exec {}", exe.display()))
        }
        Cmd::Probe { uid, ops } => probe::probe(uid, ops),
        Cmd::Edge { what, port } => {
            let facts = edge::run(what, port)?;
            report(facts)
        }
        Cmd::Loop {
            mode,
            iterations,
            rate,
        } => run_loop(mode, iterations, rate.map(Pacer::new)),
    }
}

fn unspecified_like(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

fn report(mut facts: serde_json::Value) -> Result<()> {
    facts["pid"] = json!(std::process::id());
    println!("{facts}");
    Ok(())
}

fn tcp(bind: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(bind).context("bind+listen")?;
    let server = listener.local_addr()?;
    let mut client = TcpStream::connect(server).context("connect")?;
    let (mut conn, peer) = listener.accept().context("accept")?;
    client.write_all(b"x")?;
    let mut b = [0u8; 1];
    conn.read_exact(&mut b)?;
    report(json!({
        "server_port": server.port(),
        "client_port": peer.port(),
        "addr": server.ip().to_string(),
    }))
}

fn udp(bind: SocketAddr) -> Result<()> {
    let receiver = UdpSocket::bind(bind).context("bind receiver")?;
    let sender = UdpSocket::bind(bind).context("bind sender")?;
    let to = receiver.local_addr()?;
    sender.send_to(b"netev", to).context("sendto")?;
    let mut buf = [0u8; 16];
    let (_, from) = receiver.recv_from(&mut buf).context("recvfrom")?;
    report(json!({
        "recv_port": to.port(),
        "send_port": from.port(),
        "addr": to.ip().to_string(),
    }))
}

/// Sleeps every 1000 iterations so that the loop keeps to a rate.
struct Pacer {
    rate: u64,
    start: Instant,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer {
            rate: rate.max(1),
            start: Instant::now(),
        }
    }

    fn pace(&self, done: u64) {
        if done % 1000 == 0 {
            let due = std::time::Duration::from_secs_f64(done as f64 / self.rate as f64);
            if let Some(ahead) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
}

fn run_loop(mode: LoopMode, iterations: u64, pacer: Option<Pacer>) -> Result<()> {
    let pace = |i: u64| {
        if let Some(p) = &pacer {
            p.pace(i)
        }
    };
    let start;
    match mode {
        LoopMode::Tcp => {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let addr = listener.local_addr()?;
            start = Instant::now();
            for _ in 0..iterations {
                let c = TcpStream::connect(addr)?;
                let (s, _) = listener.accept()?;
                // RST instead of FIN/TIME_WAIT so ports don't run out.
                set_linger_zero(&c)?;
                drop(c);
                drop(s);
            }
        }
        LoopMode::Bind => {
            start = Instant::now();
            for _ in 0..iterations {
                let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
                drop(l);
            }
        }
        LoopMode::Udp => {
            let sink = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            let to = sink.local_addr()?;
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            start = Instant::now();
            for i in 0..iterations {
                s.send_to(&[0u8; 16], to)?;
                pace(i);
            }
        }
        LoopMode::UdpConnect => {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            let to: SocketAddr = (Ipv4Addr::LOCALHOST, 9).into();
            start = Instant::now();
            for i in 0..iterations {
                s.connect(to)?;
                pace(i);
            }
        }
    }
    let elapsed = start.elapsed();
    report(json!({
        "iterations": iterations,
        "secs": elapsed.as_secs_f64(),
        "ns_per_op": elapsed.as_nanos() as f64 / iterations as f64,
    }))
}

fn set_linger_zero(s: &TcpStream) -> Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a correctly sized struct on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    anyhow::ensure!(rc == 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    Ok(())
}
