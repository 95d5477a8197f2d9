//! netev-sql: subscribes to netevd's events on D-Bus, as any third-party
//! tool would, and writes them into a database: a SQLite file, or a
//! PostgreSQL database that many hosts' netev-sql write into (docs/fleet.md).
//!
//! It never slows netevd down: events go into a bounded queue that a writer
//! thread drains in batches; what does not fit, and what netevd could not
//! deliver, is counted and recorded in the database's `gaps` table.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use futures_util::StreamExt;
use netev_dbus::{Daemon1Proxy, Filter};
use netev_event::{Event, Op};
use netev_store::writer::{Writer, WriterConfig};
use tracing::{info, warn};

mod from_nats;

/// netev-sql — write netevd's live events into a SQL database.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// The database: a SQLite file path, or a PostgreSQL URL
    /// (postgres://user@host/db) or connection string. One that holds a
    /// password belongs in NETEV_SQL_DATABASE, not on the command line
    /// (which every user can read, and netevd records in its events).
    #[arg(
        value_name = "DATABASE",
        env = "NETEV_SQL_DATABASE",
        hide_env_values = true
    )]
    database: String,

    /// Read the events from a NATS JetStream stream that netevd's exports
    /// publish to (nats://HOST:PORT[,HOST:PORT…][?creds=PATH&ca=PATH&stream=NAME&subject=PREFIX])
    /// instead of from netevd on D-Bus. The rows take the publishing host's
    /// name; --host, --op and --verdict do not apply.
    #[arg(long, value_name = "URL")]
    from: Option<String>,

    /// The durable consumer's name (with --from): netev-sql processes with
    /// the same name share the stream's messages.
    #[arg(long, value_name = "NAME", default_value = "netev-sql")]
    consumer: String,

    /// The bus netevd serves on: system, session, or an address.
    #[arg(long, value_name = "BUS", default_value = "system", env = "NETEV_BUS")]
    bus: String,

    /// The host name stored with every event [default: this machine's].
    #[arg(long, value_name = "NAME")]
    host: Option<String>,

    /// Only this op (repeat for several).
    #[arg(long, value_name = "OP")]
    op: Vec<Op>,

    /// Only this verdict: allow, deny or observe (repeat for several).
    #[arg(long, value_name = "VERDICT", value_parser = ["allow", "deny", "observe"])]
    verdict: Vec<String>,

    /// Most events per transaction.
    #[arg(long, value_name = "N", default_value = "10000")]
    batch: usize,

    /// Log level (error, warn, info, debug); RUST_LOG overrides.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
}

/// SIGTERM or SIGINT seen: set from the start, so that a stop request that
/// comes while netev-sql is still opening the database is not fatal.
static STOP: std::sync::LazyLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::LazyLock::new(Default::default);

fn main() -> ExitCode {
    if let Some(code) =
        netev_clidoc::generate_if_asked(<Args as clap::CommandFactory>::command, "1")
    {
        return code;
    }
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, STOP.clone()) {
            eprintln!("netev-sql: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    }
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netev-sql: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    if let Some(url) = &args.from {
        let target = from_nats::parse_target(url)?;
        let mut store = netev_store::open(&args.database)
            .with_context(|| format!("opening {}", netev_store::redact(&args.database)))?;
        info!(store = %store.describe(), from = %target, consumer = %args.consumer, "writing events");
        return from_nats::run(&target, &args.consumer, store.as_mut(), &STOP);
    }
    let host = match &args.host {
        Some(h) => h.clone(),
        None => nix::unistd::gethostname()
            .context("reading the host name (give one with --host)")?
            .into_string()
            .map_err(|_| anyhow::anyhow!("the host name is not UTF-8: give one with --host"))?,
    };
    // Opened here so that a wrong URL or a damaged file is an error at
    // start; later outages are the writer's to ride out.
    let store = netev_store::open(&args.database)
        .with_context(|| format!("opening {}", netev_store::redact(&args.database)))?;
    info!(store = %store.describe(), %host, "writing events");
    let target = args.database.clone();
    let mut cfg = WriterConfig::new(host);
    cfg.batch = args.batch.max(1);
    let writer = Writer::spawn(
        Some(store),
        Box::new(move || netev_store::open(&target)),
        cfg,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let res = rt.block_on(follow(&args, &writer));
    let stats = writer.stop();
    info!(
        written = stats.written.load(Ordering::Relaxed),
        lost = stats.lost.load(Ordering::Relaxed),
        "stopped"
    );
    res
}

async fn connect(bus: &str) -> Result<zbus::Connection> {
    let conn = match bus {
        "system" => zbus::Connection::system().await,
        "session" => zbus::Connection::session().await,
        a => {
            let addr: zbus::Address = a.parse().with_context(|| {
                format!("{a:?} is not a bus: use system, session or an address")
            })?;
            zbus::connection::Builder::address(addr).build().await
        }
    };
    conn.with_context(|| format!("cannot connect to the bus {bus}"))
}

/// Follows netevd for as long as we run: when it leaves the bus (restart,
/// upgrade) we wait for it to come back and subscribe again.
async fn follow(args: &Args, writer: &Writer) -> Result<()> {
    let conn = connect(&args.bus).await?;
    let daemon = Daemon1Proxy::new(&conn).await?;
    let mut batches = daemon.receive_events().await?;
    let mut owner = daemon.inner().receive_owner_changed().await?;
    let filter = Filter {
        ops: args.op.iter().map(|o| o.name().to_string()).collect(),
        verdicts: args.verdict.clone(),
        ..Filter::default()
    };
    let mut subscribed = subscribe(&daemon, &filter).await?;
    // Checked once a tenth of a second: STOP is set by the handlers
    // installed at start.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        tokio::select! {
            batch = batches.next() => {
                let Some(signal) = batch else { anyhow::bail!("the bus connection closed") };
                match signal.args() {
                    Ok(a) => {
                        if a.lost > 0 {
                            warn!(lost = a.lost, "netevd could not deliver some events to us");
                            writer.stats().lost.fetch_add(a.lost, Ordering::Relaxed);
                        }
                        for wire in a.batch {
                            match Event::try_from(wire) {
                                Ok(ev) => writer.push(ev),
                                Err(e) => warn!("skipping an event: {e}"),
                            }
                        }
                    }
                    Err(e) => warn!("skipping a malformed Events signal: {e}"),
                }
                let _ = daemon.ack(1).await;
            }
            change = owner.next() => {
                match change {
                    Some(Some(_)) if !subscribed => {
                        info!("netevd is back on the bus; subscribing again");
                        subscribed = subscribe(&daemon, &filter).await?;
                    }
                    Some(Some(_)) => {}
                    Some(None) => {
                        warn!("netevd left the bus; waiting for it to come back");
                        subscribed = false;
                    }
                    None => anyhow::bail!("the bus connection closed"),
                }
            }
            _ = tick.tick() => {}
        }
    }
    if subscribed {
        let _ = tokio::time::timeout(Duration::from_secs(1), daemon.unsubscribe()).await;
    }
    Ok(())
}

async fn subscribe(daemon: &Daemon1Proxy<'_>, filter: &Filter) -> Result<bool> {
    match daemon.subscribe(filter.to_dict()).await {
        Ok(()) => Ok(true),
        Err(zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
        {
            warn!("netevd is not running; waiting for it to start");
            Ok(false)
        }
        Err(e) => Err(e)
            .context("subscribing to netevd's events (netev-sql needs root or the netev group)"),
    }
}
