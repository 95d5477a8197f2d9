//! netev-storebench: the event store alone, for `bench/store.sh`.
//!
//! Every figure goes through the same `Store` calls netevd's writer and
//! `netev log|top --db` make, on realistic events (see [`events`]):
//!
//! - `insert`: batches of 10,000 events, timed call by call: the ceiling of
//!   what netevd could store.
//! - `fill`: N events spread evenly over the last hours, in time order and
//!   in batches (as a busy host's day arrives), so `event_counts` is filled
//!   too; the insert rate is reported per million rows as the table grows.
//! - `query`: `netev log --exe X --since 1h` and `netev top --by exe|dest
//!   --since 1h` as queries alone, on one open connection, without the
//!   command's start-up.
//! - `reference`: not our store but the reference case of
//!   `/work/shared/PLATFORM.md` (a 14-column row, 2 indexes, 10,000 rows
//!   per transaction, WAL, `synchronous = NORMAL`: ~330k rows/s there), to
//!   tell how fast this machine is from how heavy our rows are.
//!
//! Each measurement is one JSON line on standard output.

mod events;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use netev_store::{Filter, Store, TopBy};
use serde_json::json;

use events::{Generator, Shape};

#[derive(Parser)]
#[command(about = "The event store alone: insert rate, a large fill, query times")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Time `insert` of BATCHES batches of BATCH events into DB (a SQLite
    /// path or a PostgreSQL URL; created if missing).
    Insert {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        #[arg(long, default_value_t = 100)]
        batches: usize,
        /// Events per second the timestamps advance by (a live stream).
        #[arg(long, default_value_t = 300_000)]
        stream_rate: u64,
        #[arg(long, value_enum, default_value_t = Shape::Varied)]
        shape: Shape,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Insert ROWS events spread evenly over the SPAN_HOURS before now.
    Fill {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 24.0)]
        span_hours: f64,
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Report the insert rate every this many rows.
        #[arg(long, default_value_t = 1_000_000)]
        report_every: u64,
        #[arg(long, default_value_t = 2)]
        seed: u64,
    },
    /// Insert ROWS rows of PLATFORM.md's reference case into a new SQLite
    /// file DB.
    Reference {
        #[arg(long)]
        db: std::path::PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        rows: i64,
    },
    /// Time the queries behind `netev log --exe EXE --since SINCE` (for each
    /// EXE) and `netev top --by exe|dest --since SINCE`, REPEAT times each.
    Query {
        #[arg(long)]
        db: String,
        #[arg(long, required = true)]
        exe: Vec<String>,
        #[arg(long, default_value = "1h")]
        since: String,
        #[arg(long, default_value_t = 7)]
        repeat: usize,
    },
}

/// The `host` column of every row written here.
const HOST: &str = "bench-host";

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Insert {
            db,
            batch,
            batches,
            stream_rate,
            shape,
            seed,
        } => insert(&db, batch, batches, stream_rate, shape, seed),
        Cmd::Fill {
            db,
            rows,
            span_hours,
            batch,
            report_every,
            seed,
        } => fill(&db, rows, span_hours, batch, report_every, seed),
        Cmd::Reference { db, rows } => reference(&db, rows),
        Cmd::Query {
            db,
            exe,
            since,
            repeat,
        } => query(&db, &exe, &since, repeat),
    }
}

fn engine(db: &str) -> &'static str {
    if netev_store::is_postgres(db) {
        "postgres"
    } else {
        "sqlite"
    }
}

fn open(db: &str) -> Result<Box<dyn Store>> {
    netev_store::open(db).with_context(|| format!("opening {}", netev_store::redact(db)))
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn summary(xs: &[f64]) -> serde_json::Value {
    json!({
        "min": xs.iter().copied().fold(f64::INFINITY, f64::min),
        "median": median(xs),
        "max": xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

fn insert(
    db: &str,
    batch: usize,
    batches: usize,
    stream_rate: u64,
    shape: Shape,
    seed: u64,
) -> Result<()> {
    let mut store = open(db)?;
    // Ten distinct batches, reused with fresh timestamps: making a million
    // events would otherwise cost as much memory as the store itself.
    let mut gen = Generator::new(seed, shape);
    let mut pool: Vec<Vec<_>> = (0..10)
        .map(|_| (0..batch).map(|_| gen.event(Utc::now()).1).collect())
        .collect();
    let step = chrono::Duration::nanoseconds(1_000_000_000 / stream_rate.max(1) as i64);
    let mut ts = Utc::now();
    let mut per_batch = Vec::with_capacity(batches);
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    for i in 0..batches {
        let events = &mut pool[i % 10];
        for ev in events.iter_mut() {
            ev.ts = ts;
            ts += step;
        }
        let b0 = Instant::now();
        store.insert(HOST, events).context("inserting a batch")?;
        per_batch.push(b0.elapsed().as_secs_f64());
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    let rows = (batch * batches) as f64;
    println!(
        "{}",
        json!({
            "cmd": "insert",
            "engine": engine(db),
            "store": store.describe(),
            "shape": shape.to_possible_value().map(|v| v.get_name().to_string()),
            "batch": batch,
            "batches": batches,
            "rows": rows as u64,
            "secs": secs,
            "rows_per_s": rows / secs,
            "client_cpu_secs": cpu,
            "batch_secs": summary(&per_batch),
        })
    );
    Ok(())
}

fn fill(
    db: &str,
    rows: u64,
    span_hours: f64,
    batch: usize,
    report_every: u64,
    seed: u64,
) -> Result<()> {
    let mut store = open(db)?;
    let end = Utc::now();
    let span_ns = (span_hours * 3600e9) as i64;
    let start = end - chrono::Duration::nanoseconds(span_ns);
    let hour_ago = end - chrono::Duration::hours(1);
    let step = span_ns as f64 / rows as f64;
    let mut gen = Generator::new(seed, Shape::Varied);
    let mut last_hour = vec![0u64; events::exes().count()];
    let mut buf = Vec::with_capacity(batch);
    let (mut done, mut segment_rows, mut segment_secs, mut total_secs) = (0u64, 0u64, 0.0, 0.0);
    let cpu0 = cpu_time();
    while done < rows {
        buf.clear();
        let n = (rows - done).min(batch as u64);
        for i in done..done + n {
            let ts = start + chrono::Duration::nanoseconds((i as f64 * step) as i64);
            let (which, ev) = gen.event(ts);
            if ts >= hour_ago {
                last_hour[which] += 1;
            }
            buf.push(ev);
        }
        let t = Instant::now();
        store.insert(HOST, &buf).context("inserting a batch")?;
        let secs = t.elapsed().as_secs_f64();
        done += n;
        segment_rows += n;
        segment_secs += secs;
        total_secs += secs;
        if segment_rows >= report_every || done == rows {
            println!(
                "{}",
                json!({
                    "cmd": "fill-progress",
                    "engine": engine(db),
                    "rows_total": done,
                    "rows": segment_rows,
                    "insert_secs": segment_secs,
                    "rows_per_s": segment_rows as f64 / segment_secs,
                })
            );
            (segment_rows, segment_secs) = (0, 0.0);
        }
    }
    let counted = store.count().context("counting events")?;
    println!(
        "{}",
        json!({
            "cmd": "fill",
            "engine": engine(db),
            "store": store.describe(),
            "rows": rows,
            "rows_counted": counted,
            "first": rfc3339(start),
            "last": rfc3339(end),
            "insert_secs": total_secs,
            "rows_per_s": rows as f64 / total_secs,
            "cpu_secs": (cpu_time() - cpu0).as_secs_f64(),
            "last_hour_rows_per_exe": events::exes()
                .zip(&last_hour)
                .map(|(exe, n)| json!({"exe": exe, "rows": n}))
                .collect::<Vec<_>>(),
        })
    );
    Ok(())
}

fn reference(path: &std::path::Path, rows: i64) -> Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE e (id INTEGER PRIMARY KEY, ts INTEGER, pid INTEGER, uid INTEGER,
            comm TEXT, exe TEXT, op TEXT, family TEXT, proto TEXT, laddr TEXT, lport INTEGER,
            raddr TEXT, rport INTEGER, verdict TEXT, count INTEGER);
         CREATE INDEX e_ts ON e (ts);
         CREATE INDEX e_exe_ts ON e (exe, ts);",
    )?;
    let t = Instant::now();
    for batch in 0..(rows + 9_999) / 10_000 {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO e (ts, pid, uid, comm, exe, op, family, proto, laddr, lport, raddr,
                 rport, verdict, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for k in batch * 10_000..((batch + 1) * 10_000).min(rows) {
                stmt.execute(rusqlite::params![
                    k,
                    1000 + k % 7,
                    1000,
                    "curl",
                    format!("/usr/bin/app{}", k % 30),
                    "connect",
                    "inet",
                    "tcp",
                    "10.0.0.2",
                    40000 + k % 1000,
                    format!("93.184.{}.{}", k % 200, k % 250),
                    443,
                    "allow",
                    1
                ])?;
            }
        }
        tx.commit()?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"cmd": "reference", "engine": "sqlite", "rows": rows, "secs": secs, "rows_per_s": rows as f64 / secs})
    );
    Ok(())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn query(db: &str, exes: &[String], since: &str, repeat: usize) -> Result<()> {
    let t = Instant::now();
    let mut store = netev_store::open_for_queries(db)
        .with_context(|| format!("opening {}", netev_store::redact(db)))?;
    let open_secs = t.elapsed().as_secs_f64();
    let report = |what: String, rows: usize, secs: &[f64]| {
        println!(
            "{}",
            json!({
                "cmd": "query",
                "engine": engine(db),
                "query": what,
                "rows": rows,
                "open_secs": open_secs,
                "secs": secs,
                "median_secs": median(secs),
            })
        );
    };
    for exe in exes {
        let (mut secs, mut rows) = (Vec::new(), 0);
        for _ in 0..repeat {
            // As `netev log` builds it (its --limit default is 100).
            let filter = Filter::from_pairs(
                [("since", since), ("exe", exe.as_str()), ("limit", "100")],
                Utc::now(),
            )?;
            let t = Instant::now();
            rows = store.query(&filter)?.len();
            secs.push(t.elapsed().as_secs_f64());
        }
        report(format!("log --exe {exe} --since {since}"), rows, &secs);
    }
    for by in [TopBy::Exe, TopBy::Dest, TopBy::Port] {
        let (mut secs, mut rows) = (Vec::new(), 0);
        for _ in 0..repeat {
            let from = netev_store::query::parse_time(since, Utc::now())?;
            let t = Instant::now();
            // `netev top`'s --limit default is 10.
            rows = store.top(by, Some(from), 10)?.len();
            secs.push(t.elapsed().as_secs_f64());
        }
        report(
            format!("top --by {} --since {since}", by.name()),
            rows,
            &secs,
        );
    }
    Ok(())
}
