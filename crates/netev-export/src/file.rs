//! `file:PATH`: newline JSON appended to a file, rotated by size (to be written).

use crate::{Batch, BatchMeta, ExportTarget, Output, Result};

pub(crate) struct JsonFile {}

impl JsonFile {
    pub(crate) fn new(_target: &ExportTarget) -> Result<JsonFile> {
        Err(crate::Error::Config("file: export not built yet".into()))
    }
}

impl Output for JsonFile {
    fn encode(&mut self, _batch: &Batch) -> Vec<u8> {
        unimplemented!()
    }
    fn deliver(&mut self, _meta: &BatchMeta, _payload: &[u8]) -> Result<()> {
        unimplemented!()
    }
}
