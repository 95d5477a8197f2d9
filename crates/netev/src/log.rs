//! `netev log` and `netev top`: stored events, from the daemon over D-Bus
//! (whichever store it uses) or, with `--db`, from a database directly
//! (when the daemon is not running, or for another host's database).

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use netev_event::Event;
use netev_store::{Filter, Row, TopBy, TopRow};

use crate::bus::{connect, explain, runtime, BusChoice, Failure};

/// Exit code for a bad filter or an unusable database.
const EXIT_USAGE: u8 = 2;

pub struct LogOptions {
    pub pairs: Vec<(&'static str, String)>,
    pub json: bool,
    pub db: Option<String>,
}

pub fn log(bus: &BusChoice, opts: LogOptions) -> ExitCode {
    let rows = match &opts.db {
        Some(db) => from_db(db, &opts.pairs),
        None => runtime().block_on(from_daemon(bus, &opts.pairs)),
    };
    let rows = match rows {
        Ok(r) => r,
        Err(f) => return f.exit(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for r in rows {
        let line = if opts.json {
            r.to_json()
        } else {
            format!(
                "{} {}",
                netev_event::display::escape(&r.host).replace(' ', "\\x20"),
                r.event.to_text()
            )
        };
        if writeln!(out, "{line}").is_err() {
            return ExitCode::SUCCESS; // the reader went away
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure {
        code: EXIT_USAGE,
        message: e.to_string(),
    }
}

fn from_db(db: &str, pairs: &[(&'static str, String)]) -> Result<Vec<Row>, Failure> {
    let filter = Filter::from_pairs(
        pairs.iter().map(|(k, v)| (*k, v.as_str())),
        chrono::Utc::now(),
    )
    .map_err(usage)?;
    let mut store = netev_store::open_for_queries(db).map_err(usage)?;
    store.query(&filter).map_err(usage)
}

async fn from_daemon(
    bus: &BusChoice,
    pairs: &[(&'static str, String)],
) -> Result<Vec<Row>, Failure> {
    // Checked here too, so that a typo is reported the same way with or
    // without --db.
    Filter::from_pairs(
        pairs.iter().map(|(k, v)| (*k, v.as_str())),
        chrono::Utc::now(),
    )
    .map_err(usage)?;
    let (_conn, daemon) = connect(bus).await?;
    let filter: HashMap<&str, &str> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rows = daemon
        .query_events(filter)
        .await
        .map_err(|e| explain(bus, e))?;
    rows.into_iter()
        .enumerate()
        .map(|(i, (host, wire))| {
            let event = Event::try_from(wire).map_err(|e| Failure {
                code: 1,
                message: format!("netevd sent a malformed event: {e}"),
            })?;
            Ok(Row {
                id: i as i64,
                host,
                event,
            })
        })
        .collect()
}

pub struct TopOptions {
    pub by: TopBy,
    pub since: Option<String>,
    pub limit: u32,
    pub json: bool,
    pub db: Option<String>,
}

pub fn top(bus: &BusChoice, opts: TopOptions) -> ExitCode {
    let rows = match &opts.db {
        Some(db) => top_from_db(db, &opts),
        None => runtime().block_on(top_from_daemon(bus, &opts)),
    };
    let rows = match rows {
        Ok(r) => r,
        Err(f) => return f.exit(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !opts.json {
        let _ = writeln!(
            out,
            "{:>12} {:>10}  {}",
            "OPERATIONS",
            "EVENTS",
            opts.by.name().to_uppercase()
        );
    }
    for r in rows {
        let line = if opts.json {
            netev_event::display::to_json(
                &serde_json::json!({ opts.by.name(): r.key, "ops": r.ops, "events": r.events }),
            )
        } else {
            // keys are stored strings (programs, users, destinations)
            let key = netev_event::display::escape(&r.key);
            format!("{:>12} {:>10}  {key}", r.ops, r.events)
        };
        if writeln!(out, "{line}").is_err() {
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

fn top_from_db(db: &str, opts: &TopOptions) -> Result<Vec<TopRow>, Failure> {
    let since = opts
        .since
        .as_deref()
        .map(|s| netev_store::query::parse_time(s, chrono::Utc::now()))
        .transpose()
        .map_err(usage)?;
    let mut store = netev_store::open_for_queries(db).map_err(usage)?;
    store.top(opts.by, since, opts.limit).map_err(usage)
}

async fn top_from_daemon(bus: &BusChoice, opts: &TopOptions) -> Result<Vec<TopRow>, Failure> {
    if let Some(s) = &opts.since {
        netev_store::query::parse_time(s, chrono::Utc::now()).map_err(usage)?;
    }
    let (_conn, daemon) = connect(bus).await?;
    let rows = daemon
        .top_events(
            opts.by.name(),
            opts.since.as_deref().unwrap_or(""),
            opts.limit,
        )
        .await
        .map_err(|e| explain(bus, e))?;
    Ok(rows
        .into_iter()
        .map(|(key, ops, events)| TopRow { key, ops, events })
        .collect())
}
