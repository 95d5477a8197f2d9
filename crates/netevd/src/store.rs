//! The event store as netevd uses it: the writer thread started for
//! `--store` (parsed in `settings`), and a way to open the store for the
//! queries served over D-Bus.

use std::path::Path;
use std::sync::Arc;

use netev_store::writer::{Writer, WriterConfig};
use netev_store::Retention;
use tracing::{info, warn};

// The flag values live with the rest of the configuration; these names
// stay here for the code that has always found them here.
pub use crate::settings::StoreSpec;

/// The running store: the writer and how to open it for a query.
pub struct EventStore {
    pub writer: Writer,
    pub target: String,
}

impl EventStore {
    /// The target for logs and status, without a password.
    pub fn target_display(&self) -> String {
        netev_store::redact(&self.target)
    }
}

/// Starts the writer. A store that cannot be opened now (a damaged file, a
/// database that is down) does not stop capture or enforcement: the writer
/// keeps trying, events that do not fit its queue are counted as lost, and
/// the error shows in the log and `netev status`.
pub fn start(
    spec: &StoreSpec,
    state_dir: &Path,
    host: String,
    retention: Retention,
) -> Option<Arc<EventStore>> {
    let target = match spec {
        StoreSpec::None => return None,
        StoreSpec::Sqlite(None) => state_dir.join("netev.db").display().to_string(),
        StoreSpec::Sqlite(Some(p)) => p.display().to_string(),
        StoreSpec::Postgres(url) => url.clone(),
    };
    if !matches!(spec, StoreSpec::Postgres(_)) {
        // every user's command lines and destinations: root's alone, even
        // where an older netevd or another umask left the file readable
        for suffix in ["", "-wal", "-shm"] {
            let p = format!("{target}{suffix}");
            if let Err(e) = crate::files::make_private(Path::new(&p)) {
                warn!("{e:#}");
            }
        }
    }
    let first = match netev_store::open(&target) {
        Ok(s) => {
            info!(store = %s.describe(), "storing events");
            Some(s)
        }
        Err(e) => {
            warn!("cannot open the event store (capture and enforcement go on; events are counted as lost until it opens): {e}");
            None
        }
    };
    let mut cfg = WriterConfig::new(host);
    cfg.retention = retention;
    let reopen = target.clone();
    let writer = Writer::spawn(first, Box::new(move || netev_store::open(&reopen)), cfg);
    Some(Arc::new(EventStore { writer, target }))
}
