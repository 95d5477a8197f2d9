//! `netev monitor`: live events from the daemon, in netevd's print formats.

use std::io::Write;
use std::process::ExitCode;

use futures_util::StreamExt;
use netev_dbus::Filter;
use netev_event::Event;

use crate::bus::{connect, explain, runtime, BusChoice, Failure};

pub struct Options {
    pub json: bool,
    pub filter: Filter,
}

pub fn run(bus: &BusChoice, opts: Options) -> ExitCode {
    match runtime().block_on(watch(bus, opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

async fn watch(bus: &BusChoice, opts: Options) -> Result<(), Failure> {
    let (_conn, daemon) = connect(bus).await?;
    // Listen before subscribing, or the first batch could be missed.
    let mut batches = daemon.receive_events().await.map_err(|e| explain(bus, e))?;
    let mut owner = daemon
        .inner()
        .receive_owner_changed()
        .await
        .map_err(|e| explain(bus, e))?;
    daemon
        .subscribe(opts.filter.to_dict())
        .await
        .map_err(|e| explain(bus, e))?;

    let stdout = std::io::stdout();
    loop {
        tokio::select! {
            batch = batches.next() => {
                let Some(signal) = batch else { break };
                let args = match signal.args() {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("netev: skipping a malformed Events signal: {e}");
                        continue;
                    }
                };
                if args.lost > 0 {
                    eprintln!("netev: {} events were not delivered (subscribers too slow; see `netev status`)", args.lost);
                }
                let mut out = stdout.lock();
                for wire in args.batch {
                    let ev = match Event::try_from(wire) {
                        Ok(ev) => ev,
                        Err(e) => {
                            eprintln!("netev: skipping an event: {e}");
                            continue;
                        }
                    };
                    let line = if opts.json { ev.to_json() } else { ev.to_text() };
                    if writeln!(out, "{line}").is_err() {
                        return Ok(()); // reader went away (e.g. `| head`)
                    }
                }
                if out.flush().is_err() {
                    return Ok(());
                }
            }
            change = owner.next() => {
                if matches!(change, Some(None) | None) {
                    return Err(Failure { code: 1, message: "netevd left the bus (stopped or crashed)".into() });
                }
            }
            _ = tokio::signal::ctrl_c() => {
                let _ = daemon.unsubscribe().await;
                return Ok(());
            }
        }
    }
    Err(Failure {
        code: 1,
        message: "the bus connection closed".into(),
    })
}
