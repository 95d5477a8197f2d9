//! Subscribers of the event stream: each one's filter, batch and credit;
//! events serialized once for all who want them; batches cut to the bus's
//! limits and sent unicast.

use std::sync::atomic::Ordering;

use netev_dbus::{
    events_body, EncodedEvent, Filter, WireEvent, EVENTS_SIGNATURE, INTERFACE, MAX_BATCH,
    MAX_BATCH_BYTES, OBJECT_PATH,
};
use netev_event::Event;
use tracing::{debug, info, warn};
use zbus::names::{BusName, OwnedUniqueName, UniqueName};
use zbus::Connection;

use super::{State, BACKLOG, MAX_IN_FLIGHT};

pub(crate) struct Subscriber {
    pub(crate) filter: Filter,
    /// Serialized once, shared with the other subscribers that want them.
    pub(crate) batch: Vec<EncodedEvent>,
    /// The wire size of `batch`.
    pub(crate) batch_bytes: usize,
    /// `bus_dropped` when this subscriber's last batch went out.
    pub(crate) dropped_seen: u64,
    /// Batches sent and not yet acknowledged.
    pub(crate) in_flight: u32,
    /// Events this subscriber missed because it had too much in flight.
    pub(crate) lost: u64,
}

impl Subscriber {
    /// A new subscriber, counting losses from `dropped_now` on.
    pub(crate) fn new(filter: Filter, dropped_now: u64) -> Subscriber {
        Subscriber {
            filter,
            batch: Vec::new(),
            batch_bytes: 0,
            dropped_seen: dropped_now,
            in_flight: 0,
            lost: 0,
        }
    }
}

/// Adds an event to the batch of every subscriber whose filter wants it.
pub(crate) fn distribute(state: &State, ev: Event) {
    let mut subs = state.subs.lock().expect("subscribers lock");
    let matching: Vec<&mut Subscriber> = subs
        .values_mut()
        .filter(|s| s.filter.matches(&ev))
        .filter_map(|s| {
            // A subscriber that is behind loses events, alone.
            if s.batch.len() >= BACKLOG {
                s.lost += 1;
                None
            } else {
                Some(s)
            }
        })
        .collect();
    if matching.is_empty() {
        return;
    }
    // Serialized once for all of them.
    let encoded = match EncodedEvent::new(&WireEvent::from(ev)) {
        Ok(e) => e,
        Err(e) => {
            warn!(target: "netevd::bus", "cannot serialize an event for D-Bus: {e}");
            return;
        }
    };
    for sub in matching {
        sub.batch_bytes += encoded.wire_len();
        sub.batch.push(encoded.clone());
    }
}

/// Sends batches to subscribers with credit: all non-empty ones, or with
/// `full_only` those holding at least MAX_BATCH events. Never more than a
/// subscriber's credit, even when the daemon is leaving: a subscriber that
/// stopped reading must not be able to wedge netevd (dbus-daemon stops
/// reading from a sender whose undelivered messages exceed its quota).
pub(crate) async fn flush(conn: &Connection, state: &State, full_only: bool) {
    let dropped_now = state.counters.dropped();
    type Ready = (OwnedUniqueName, Vec<Vec<EncodedEvent>>, u64);
    let ready: Vec<Ready> = {
        let mut subs = state.subs.lock().expect("subscribers lock");
        subs.iter_mut()
            .filter_map(|(name, s)| {
                let lost = dropped_now - s.dropped_seen + s.lost;
                let due = if full_only {
                    s.batch.len() >= MAX_BATCH || s.batch_bytes >= MAX_BATCH_BYTES
                } else {
                    !s.batch.is_empty() || lost > 0
                };
                let credit = MAX_IN_FLIGHT.saturating_sub(s.in_flight);
                if !due || credit == 0 {
                    return None;
                }
                // Whole batches while credit lasts; the rest waits.
                let (chunks, rest) = split_batches(std::mem::take(&mut s.batch), credit as usize);
                s.batch_bytes = rest.iter().map(EncodedEvent::wire_len).sum();
                s.batch = rest;
                s.in_flight = s.in_flight.saturating_add(chunks.len() as u32);
                s.dropped_seen = dropped_now;
                s.lost = 0;
                Some((name.clone(), chunks, lost))
            })
            .collect()
    };
    for (name, chunks, lost) in ready {
        // `lost` goes with the first batch.
        for (i, chunk) in chunks.into_iter().enumerate() {
            let lost = if i == 0 { lost } else { 0 };
            let body = events_body(&chunk, lost);
            // SAFETY: the body is a valid encoding of EVENTS_SIGNATURE (see
            // netev-dbus's encoded.rs and its byte-for-byte test).
            let msg = unsafe {
                zbus::Message::signal(OBJECT_PATH, INTERFACE, "Events")
                    .destination(BusName::Unique(name.as_ref()))
                    .build_raw_body(&body, EVENTS_SIGNATURE, Vec::new())
            };
            let sent = match msg {
                Ok(msg) => conn.send(&msg).await,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                debug!(target: "netevd::bus", subscriber = %name, "Events not sent: {e}");
            }
        }
    }
}

/// Cuts events into at most `max` batches of at most MAX_BATCH events and
/// MAX_BATCH_BYTES (or one event, however big); returns them and what did
/// not fit. No events give one empty batch, which carries only `lost`.
fn split_batches(
    events: Vec<EncodedEvent>,
    max: usize,
) -> (Vec<Vec<EncodedEvent>>, Vec<EncodedEvent>) {
    let mut chunks: Vec<Vec<EncodedEvent>> = vec![Vec::new()];
    let mut bytes = 0;
    let mut events = events.into_iter();
    for ev in events.by_ref() {
        let last = chunks.last().expect("never empty");
        if !last.is_empty() && (last.len() >= MAX_BATCH || bytes + ev.wire_len() > MAX_BATCH_BYTES)
        {
            if chunks.len() >= max {
                let mut rest = vec![ev];
                rest.extend(events);
                return (chunks, rest);
            }
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += ev.wire_len();
        chunks.last_mut().expect("never empty").push(ev);
    }
    (chunks, Vec::new())
}

/// Ends the subscription of `name` (it left, or unsubscribed).
pub(crate) fn forget(state: &State, name: &UniqueName<'_>) {
    let mut subs = state.subs.lock().expect("subscribers lock");
    if subs
        .remove(&OwnedUniqueName::from(name.to_owned()))
        .is_some()
    {
        state
            .counters
            .subscribers
            .store(subs.len(), Ordering::Relaxed);
        info!(target: "netevd::bus", subscriber = %name, "subscriber left");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_dbus::{EncodedEvent, WireEvent, MAX_BATCH, MAX_BATCH_BYTES};
    use netev_event::Op;

    fn encoded(exe_len: usize) -> EncodedEvent {
        let mut ev = Event::new(Op::Connect);
        ev.exe = Some("x".repeat(exe_len));
        EncodedEvent::new(&WireEvent::from(&ev)).unwrap()
    }

    #[test]
    fn batches_are_bounded_in_events_and_bytes_and_by_credit() {
        for (exe_len, credit) in [(0, 8), (10, 8), (2000, 3), (200, 1)] {
            let (chunks, rest) =
                split_batches((0..2500).map(|_| encoded(exe_len)).collect(), credit);
            assert!(chunks.len() <= credit);
            for c in &chunks {
                let bytes: usize = c.iter().map(EncodedEvent::wire_len).sum();
                assert!(
                    c.len() <= MAX_BATCH && bytes <= MAX_BATCH_BYTES,
                    "{} events, {bytes} bytes",
                    c.len()
                );
                assert!(!c.is_empty());
            }
            let sent: usize = chunks.iter().map(Vec::len).sum();
            assert_eq!(sent + rest.len(), 2500, "nothing lost in the split");
            if !rest.is_empty() {
                assert_eq!(chunks.len(), credit, "fills the credit before holding back");
            }
        }
        // an event bigger than a batch still goes, alone
        let (chunks, rest) = split_batches(vec![encoded(MAX_BATCH_BYTES)], 1);
        assert_eq!((chunks.len(), chunks[0].len(), rest.len()), (1, 1, 0));
        // nothing to send still gives one (empty) batch, to carry `lost`
        let (chunks, _) = split_batches(Vec::new(), 8);
        assert_eq!(chunks, [Vec::<EncodedEvent>::new()]);
    }
}
