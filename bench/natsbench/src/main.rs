//! Measures the NATS export on this machine, with private servers
//! (netev-testsupport): events/s from one Exporter into JetStream (publish
//! acked), the spool's write rate while the server is away, and events/s
//! through one `netev-sql --from` consumer into PostgreSQL. Prints one
//! line per figure; bench/nats.sh runs it in release mode.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use netev_event::{Event, Op, Verdict};
use netev_export::{ExportStats, Exporter, ExporterConfig};
use netev_testsupport::natsserver::NatsServer;
use netev_testsupport::pgserver::PgServer;

#[derive(Parser)]
struct Args {
    /// Events per measurement.
    #[arg(long, default_value = "200000")]
    events: u64,
    /// The netev-sql binary (the release build next to this one by default).
    #[arg(long)]
    netev_sql: Option<std::path::PathBuf>,
}

fn ev(pid: u32) -> Event {
    let mut e = Event::new(Op::Connect);
    e.pid = pid;
    e.tid = pid;
    e.uid = 1000;
    e.comm = "curl".into();
    e.exe = Some("/usr/bin/curl".into());
    e.cmdline = Some("curl https://example.org/".into());
    e.raddr = Some("192.0.2.7".parse().unwrap());
    e.rport = Some(443);
    e.verdict = Verdict::Allow;
    e.count = 1;
    e
}

fn wait(what: &str, s: &ExportStats, ok: impl Fn(&ExportStats) -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !ok(s) {
        if Instant::now() > deadline {
            bail!("{what}: not within 600 s (error {:?})", s.error());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let n = args.events;
    let mut nats = NatsServer::start().map_err(|e| anyhow::anyhow!("nats-server: {}", e.0))?;
    let spool = tempfile::tempdir()?;
    let mut cfg = ExporterConfig::new("bench-host", spool.path());
    cfg.queue = n as usize + 1;

    // 1: into JetStream, every batch acked
    let exp = Exporter::start(nats.url().parse()?, cfg.clone())?;
    let t = Instant::now();
    for pid in 0..n {
        exp.push(ev(pid as u32));
    }
    wait("export", exp.stats(), |s| s.exported.load(Relaxed) == n)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "exporter→jetstream: {n} events in {secs:.2} s: {:.0} events/s",
        n as f64 / secs
    );
    exp.stop();

    // 2: the server away: everything to the spool
    nats.stop(0);
    let exp = Exporter::start(nats.url().parse()?, cfg.clone())?;
    let t = Instant::now();
    for pid in 0..n {
        exp.push(ev(n as u32 + pid as u32));
    }
    wait("spool", exp.stats(), |s| s.spooled.load(Relaxed) == n)?;
    let secs = t.elapsed().as_secs_f64();
    let bytes = exp.stats().spool_bytes.load(Relaxed);
    println!(
        "spool (server away): {n} events in {secs:.2} s: {:.0} events/s, {:.1} MB/s ({bytes} bytes)",
        n as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    nats.restart(0);
    wait("drain", exp.stats(), |s| s.spooled.load(Relaxed) == 0)?;
    exp.stop();

    // 3: one netev-sql consumer from the stream (2n events) into PostgreSQL
    let pg = PgServer::start().map_err(|e| anyhow::anyhow!("PostgreSQL: {}", e.0))?;
    let db = pg.create_database("bench");
    drop(netev_store::open(&db)?);
    let bin = match args.netev_sql {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("netev-sql"),
    };
    let total = 2 * n;
    let t = Instant::now();
    let mut sql = Command::new(&bin)
        .args(["--from", &nats.url(), "--log-level", "error", &db])
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    loop {
        let rows: u64 = pg.psql("bench", "SELECT count(*) FROM events").parse()?;
        if rows >= total {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("netev-sql: {rows} of {total} rows after 600 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "jetstream→netev-sql→postgresql: {total} events in {secs:.2} s: {:.0} events/s",
        total as f64 / secs
    );
    // SAFETY: kill(2) on our own unreaped child.
    unsafe { libc::kill(sql.id() as i32, libc::SIGTERM) };
    sql.wait()?;
    Ok(())
}
