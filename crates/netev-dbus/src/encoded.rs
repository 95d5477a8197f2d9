//! Events serialized once and shared by every subscriber's batch.
//!
//! Each struct in the `Events` array starts 8-aligned, so its D-Bus encoding
//! does not depend on where in the array it sits: the daemon serializes an
//! event once, however many subscribers receive it, and builds each batch's
//! body by concatenation. The test below checks the result byte for byte
//! against zbus's own serialization of the same signal body.

use std::sync::Arc;

use zbus::wire::serialized::Context;
use zbus::wire::{to_bytes, NATIVE_ENDIAN};

use crate::WireEvent;

/// The body signature of the `Events` signal.
pub const EVENTS_SIGNATURE: &str = "a(xuuuuusssssssssqsqbisuu)t";

/// One event's D-Bus encoding (native byte order), cheap to share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent(Arc<[u8]>);

impl EncodedEvent {
    /// Serializes one event.
    pub fn new(ev: &WireEvent) -> zbus::Result<EncodedEvent> {
        let data = to_bytes(Context::new(NATIVE_ENDIAN, 0), ev)?;
        Ok(EncodedEvent(Arc::from(data.bytes())))
    }

    /// Bytes it takes in a batch (with its alignment padding).
    pub fn wire_len(&self) -> usize {
        self.0.len().next_multiple_of(8)
    }
}

fn pad8(buf: &mut Vec<u8>) {
    buf.resize(buf.len().next_multiple_of(8), 0);
}

/// The body of `Events(batch, lost)`, native byte order, for a message body
/// (which D-Bus always starts 8-aligned).
pub fn events_body(batch: &[EncodedEvent], lost: u64) -> Vec<u8> {
    let payload: usize = batch.iter().map(|e| e.0.len().next_multiple_of(8)).sum();
    let mut buf = Vec::with_capacity(16 + payload);
    buf.extend_from_slice(&[0; 4]); // array length, filled in below
    pad8(&mut buf); // elements are structs: 8-aligned, even when there are none
    let start = buf.len();
    for (i, e) in batch.iter().enumerate() {
        if i > 0 {
            pad8(&mut buf);
        }
        buf.extend_from_slice(&e.0);
    }
    let len = u32::try_from(buf.len() - start).expect("a batch is far below 4 GiB");
    buf[..4].copy_from_slice(&len.to_ne_bytes());
    pad8(&mut buf);
    buf.extend_from_slice(&lost.to_ne_bytes());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_event::{Event, Family, Op, SockType};

    fn event(i: u32, exe: &str) -> WireEvent {
        let mut ev = Event::new(Op::Connect);
        ev.pid = i;
        ev.exe = Some(exe.into()); // odd lengths exercise the padding
        ev.family = Family::INET;
        ev.sock_type = SockType::STREAM;
        ev.raddr = Some("10.0.0.1".parse().unwrap());
        ev.rport = Some(443);
        WireEvent::from(&ev)
    }

    fn zbus_body(batch: &[WireEvent], lost: u64) -> Vec<u8> {
        to_bytes(Context::new(NATIVE_ENDIAN, 0), &(batch.to_vec(), lost))
            .unwrap()
            .bytes()
            .to_vec()
    }

    #[test]
    fn concatenated_body_equals_zbus_serialization() {
        for n in [0usize, 1, 2, 7] {
            let batch: Vec<WireEvent> = (0..n as u32)
                .map(|i| event(i, &"/x".repeat(i as usize + 1)))
                .collect();
            let encoded: Vec<EncodedEvent> = batch
                .iter()
                .map(|e| EncodedEvent::new(e).unwrap())
                .collect();
            assert_eq!(
                events_body(&encoded, 42),
                zbus_body(&batch, 42),
                "batch of {n}"
            );
        }
    }
}
