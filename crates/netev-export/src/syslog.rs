//! `syslog+…://`: RFC 5424 syslog (to be written).

use crate::{Batch, BatchMeta, ExportTarget, Output, Result};

pub(crate) struct Syslog {}

impl Syslog {
    pub(crate) fn new(_target: &ExportTarget, _host: &str) -> Result<Syslog> {
        Err(crate::Error::Config("syslog export not built yet".into()))
    }
}

impl Output for Syslog {
    fn encode(&mut self, _batch: &Batch) -> Vec<u8> {
        unimplemented!()
    }
    fn deliver(&mut self, _meta: &BatchMeta, _payload: &[u8]) -> Result<()> {
        unimplemented!()
    }
}
