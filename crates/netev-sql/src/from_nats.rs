//! `netev-sql --from nats://…`: reads the batches netevd's exports publish
//! to a JetStream stream (docs/fleet.md) and writes them into the database.
//!
//! A durable pull consumer (`--consumer NAME`): every netev-sql with the
//! same name shares it, each message going to one of them (a work queue).
//! Each message (one exported batch) is written in one transaction together
//! with its batch id (`Store::insert_batch`); a message whose id is already
//! stored writes nothing. The message is acknowledged only after the commit,
//! so a netev-sql killed at any point loses nothing (the stream redelivers
//! what was not acknowledged) and duplicates nothing (the id is stored).
//!
//! A malformed message is recorded as a gap with the reason, terminated
//! (never redelivered) and logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use async_nats::jetstream::{self, consumer, AckKind};
use chrono::Utc;
use futures_util::StreamExt;
use netev_event::Event;
use netev_export::nats::{headers, ACK_TIMEOUT};
use netev_export::{Destination, ExportTarget, Format};
use netev_store::{Gap, Store};
use tracing::{info, warn};

/// Messages asked for at once.
const FETCH: usize = 64;
/// How long a fetch waits for messages before asking again (and looking at
/// the stop flag).
const FETCH_WAIT: Duration = Duration::from_secs(1);
/// How long the stream waits for an ack before redelivering.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Parses `--from`: a `nats://` target in netev's own format.
pub fn parse_target(url: &str) -> Result<ExportTarget> {
    let target: ExportTarget = url.parse().context("--from")?;
    if !matches!(target.destination, Destination::Nats { .. }) {
        bail!("--from {url}: netev-sql reads a NATS stream: give nats://HOST:PORT[,HOST:PORT…]");
    }
    if target.format == Format::Ocsf {
        bail!(
            "--from {url}: netev-sql reads netev's own format; a stream of OCSF events is for \
             other consumers (drop format=ocsf, or export a second stream in netev's format)"
        );
    }
    Ok(target)
}

/// One decoded message.
struct Decoded {
    host: String,
    id: String,
    events: Vec<Event>,
    gap: Option<Gap>,
}

/// Runs until `stop` is set.
pub fn run(
    target: &ExportTarget,
    name: &str,
    store: &mut dyn Store,
    stop: &AtomicBool,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let subject = format!("{}.>", target.options.subject);
    let consumer = loop {
        match rt.block_on(setup(target, name, &subject)) {
            Ok(c) => break c,
            Err(e) if is_config(&e) => return Err(e),
            Err(e) => {
                warn!("{e:#}; trying again");
                if wait_or_stop(stop, Duration::from_secs(1)) {
                    return Ok(());
                }
            }
        }
    };
    info!(stream = %target.options.stream, consumer = name, %subject, "reading the stream");
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let batch = rt.block_on(async {
            let mut msgs = Vec::new();
            let mut stream = consumer
                .fetch()
                .max_messages(FETCH)
                .expires(FETCH_WAIT)
                .messages()
                .await
                .context("asking the stream for messages")?;
            while let Some(m) = tokio::time::timeout(FETCH_WAIT + ACK_TIMEOUT, stream.next())
                .await
                .ok()
                .flatten()
            {
                match m {
                    Ok(m) => msgs.push(m),
                    Err(e) => {
                        if msgs.is_empty() {
                            return Err(anyhow::anyhow!("reading from the stream: {e}"));
                        }
                        break;
                    }
                }
            }
            Ok::<_, anyhow::Error>(msgs)
        });
        let msgs = match batch {
            Ok(m) => {
                backoff = Duration::from_millis(100);
                m
            }
            Err(e) => {
                warn!("{e:#}; trying again in {backoff:?}");
                if wait_or_stop(stop, backoff) {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        for msg in msgs {
            match decode(&msg) {
                Ok(d) => {
                    if !write(store, &d, stop) {
                        return Ok(()); // stopping: not acked, redelivered later
                    }
                    if let Err(e) = rt.block_on(msg.ack()) {
                        // stored; the redelivery will be recognized by its id
                        warn!(id = %d.id, "acknowledging: {e}");
                    }
                }
                Err((host, id, lost, why)) => {
                    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
                    let reason = format!(
                        "netev-sql: message {seq} on {} is malformed: {why}",
                        msg.subject
                    );
                    warn!("{reason}; recorded as a gap, not delivered again");
                    let gap = Gap {
                        host: host.clone(),
                        ts: Utc::now(),
                        lost,
                        reason,
                    };
                    let d = Decoded {
                        host,
                        id: id.unwrap_or_else(|| format!("nats:{}:{seq}", target.options.stream)),
                        events: Vec::new(),
                        gap: Some(gap),
                    };
                    if !write(store, &d, stop) {
                        return Ok(());
                    }
                    if let Err(e) = rt.block_on(msg.ack_with(AckKind::Term)) {
                        warn!(id = %d.id, "terminating a malformed message: {e}");
                    }
                }
            }
        }
    }
    Ok(())
}

fn is_config(e: &anyhow::Error) -> bool {
    e.downcast_ref::<netev_export::Error>()
        .is_some_and(|e| matches!(e, netev_export::Error::Config(_)))
}

async fn setup(
    target: &ExportTarget,
    name: &str,
    subject: &str,
) -> Result<consumer::Consumer<consumer::pull::Config>> {
    let opts = netev_export::nats::connect_options(target, "netev-sql").await?;
    let servers = netev_export::nats::server_addrs(target)?;
    let client = tokio::time::timeout(Duration::from_secs(10), opts.connect(servers))
        .await
        .context("connecting to NATS timed out")?
        .context("connecting to NATS")?;
    let mut js = jetstream::new(client);
    js.set_timeout(ACK_TIMEOUT);
    let stream = js
        .get_or_create_stream(netev_export::nats::stream_config(
            &target.options.stream,
            &target.options.subject,
        ))
        .await
        .with_context(|| format!("finding stream {}", target.options.stream))?;
    stream
        .get_or_create_consumer(
            name,
            consumer::pull::Config {
                durable_name: Some(name.into()),
                filter_subject: subject.into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("making the durable consumer {name}"))
}

type Malformed = (String, Option<String>, u64, String);

fn decode(msg: &jetstream::Message) -> Result<Decoded, Malformed> {
    let header = |name: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let host = header(headers::HOST).unwrap_or_default();
    let id = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .map(|v| v.as_str().to_string());
    let count: u64 = header(headers::EVENTS)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let bad = |why: String| {
        (
            if host.is_empty() {
                "unknown".into()
            } else {
                host.clone()
            },
            id.clone(),
            count,
            why,
        )
    };
    if host.is_empty() {
        return Err(bad(format!("no {} header", headers::HOST)));
    }
    let Some(id) = id.clone() else {
        return Err(bad("no Nats-Msg-Id header (the batch id)".into()));
    };
    if let Some(f) = header(headers::FORMAT).filter(|f| f != "netev") {
        return Err(bad(format!("format {f:?}: netev-sql reads netev's own")));
    }
    let text = std::str::from_utf8(&msg.payload).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    let mut events = Vec::new();
    let mut gap = None;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        if line.starts_with("{\"gap\"") {
            #[derive(serde::Deserialize)]
            struct GapLine {
                gap: netev_export::Gap,
            }
            let g: GapLine = serde_json::from_str(line).map_err(|e| {
                bad(format!(
                    "line {}: a gap record that does not parse: {e}",
                    i + 1
                ))
            })?;
            gap = Some(Gap {
                host: g.gap.host,
                ts: g.gap.ts,
                lost: g.gap.lost,
                reason: g.gap.reason,
            });
        } else {
            events.push(
                serde_json::from_str(line)
                    .map_err(|e| bad(format!("line {}: not an event: {e}", i + 1)))?,
            );
        }
    }
    if events.len() as u64 != count {
        return Err(bad(format!(
            "{} events, but {} says {count}",
            events.len(),
            headers::EVENTS
        )));
    }
    Ok(Decoded {
        host,
        id,
        events,
        gap,
    })
}

/// Writes until it works (the database may be away); false if asked to
/// stop first.
fn write(store: &mut dyn Store, d: &Decoded, stop: &AtomicBool) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.insert_batch(&d.host, &d.id, &d.events, d.gap.as_ref()) {
            Ok(true) => return true,
            Ok(false) => {
                info!(id = %d.id, "batch already stored (delivered again); skipped");
                return true;
            }
            Err(e) => {
                warn!(id = %d.id, "writing a batch: {e}; trying again in {backoff:?}");
                if wait_or_stop(stop, backoff) {
                    return false;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Sleeps `d` in small steps; true if `stop` was set meanwhile.
fn wait_or_stop(stop: &AtomicBool, d: Duration) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(d));
    }
    stop.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocsf_and_other_kinds_are_refused_with_what_to_do() {
        let e = parse_target("nats://127.0.0.1:4222?format=ocsf").unwrap_err();
        assert!(format!("{e:#}").contains("netev's own format"), "{e:#}");
        let e = parse_target("syslog+tcp://127.0.0.1:514").unwrap_err();
        assert!(format!("{e:#}").contains("reads a NATS stream"), "{e:#}");
        parse_target("nats://127.0.0.1:4222?stream=S&subject=a.b").unwrap();
    }
}
