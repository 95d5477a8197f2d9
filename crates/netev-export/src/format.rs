//! How one event (or gap) is written in each schema. netev's own schema is
//! netev-event's JSON (docs/events.md); OCSF lives in `ocsf`.

use netev_event::Event;

use crate::{Format, Gap};

pub mod ocsf;

/// One event as one line of JSON (no newline) in `format`.
pub fn event_json(format: Format, host: &str, ev: &Event, out: &mut Vec<u8>) {
    match format {
        Format::Netev => {
            netev_event::display::write_json(&mut *out, ev).expect("writing JSON into memory")
        }
        Format::Ocsf => ocsf::write_event(host, ev, out),
    }
}

/// A gap record as one line of JSON: `{"gap":{…}}` in netev's schema.
pub fn gap_json(format: Format, gap: &Gap, out: &mut Vec<u8>) {
    match format {
        Format::Netev => {
            netev_event::display::write_json(&mut *out, &serde_json::json!({ "gap": gap }))
                .expect("writing JSON into memory")
        }
        Format::Ocsf => ocsf::write_gap(gap, out),
    }
}
