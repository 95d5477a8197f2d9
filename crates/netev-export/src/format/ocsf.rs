//! OCSF Network Activity (class 4001): to be written (issue 19).

use netev_event::Event;

use crate::Gap;

pub fn write_event(_host: &str, _ev: &Event, _out: &mut Vec<u8>) {
    todo!("OCSF mapping")
}

pub fn write_gap(_gap: &Gap, _out: &mut Vec<u8>) {
    todo!("OCSF gap")
}
