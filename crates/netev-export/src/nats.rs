//! `nats://`: NATS JetStream (to be written).

use crate::{Batch, BatchMeta, ExportTarget, Output, Result};

pub(crate) struct Nats {}

impl Nats {
    pub(crate) fn new(_target: &ExportTarget, _host: &str) -> Result<Nats> {
        Err(crate::Error::Config("nats export not built yet".into()))
    }
}

impl Output for Nats {
    fn encode(&mut self, _batch: &Batch) -> Vec<u8> {
        unimplemented!()
    }
    fn deliver(&mut self, _meta: &BatchMeta, _payload: &[u8]) -> Result<()> {
        unimplemented!()
    }
}
