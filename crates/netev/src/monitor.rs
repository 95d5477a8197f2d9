//! `netev monitor`: live events from the daemon, in netevd's print formats.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use netev_dbus::{Events, Filter};
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

    loop {
        tokio::select! {
            batch = batches.next() => {
                let Some(signal) = batch else { break };
                if print_batch(&signal, opts.json).is_err() {
                    return Ok(()); // the reader went away (e.g. `| head`)
                }
                // Flow control: the daemon sends more once we say we are done.
                if let Err(e) = daemon.ack(1).await {
                    return Err(explain(bus, e));
                }
            }
            change = owner.next() => {
                if matches!(change, Some(None) | None) {
                    // Batches sent before the daemon left arrived before this
                    // notice, but on another stream: print them first.
                    while let Ok(Some(signal)) =
                        tokio::time::timeout(Duration::from_millis(200), batches.next()).await
                    {
                        if print_batch(&signal, opts.json).is_err() {
                            return Ok(());
                        }
                    }
                    return Err(Failure {
                        code: 1,
                        message: "netevd left the bus (stopped or crashed)".into(),
                    });
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

/// Prints one `Events` batch; an error means stdout is gone.
fn print_batch(signal: &Events, json: bool) -> std::io::Result<()> {
    let args = match signal.args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("netev: skipping a malformed Events signal: {e}");
            return Ok(());
        }
    };
    if args.lost > 0 {
        eprintln!(
            "netev: {} events were not delivered (subscribers too slow; see `netev status`)",
            args.lost
        );
    }
    // One write per batch, not per line (stdout is line-buffered).
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    for wire in args.batch {
        match Event::try_from(wire) {
            Ok(ev) => {
                let line = if json { ev.to_json() } else { ev.to_text() };
                writeln!(out, "{line}")?;
            }
            Err(e) => eprintln!("netev: skipping an event: {e}"),
        }
    }
    out.flush()
}
