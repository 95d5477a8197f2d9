//! The exports as netevd runs them (`--export`, `[[export]]`): one
//! `netev_export::Exporter` each, fed by the capture loop, its spool in the
//! state directory, its counters in the status.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context, Result};
use netev_event::Event;
use netev_export::{ExportStats, ExportTarget, Exporter, ExporterConfig};
use sha2::{Digest, Sha256};
use tracing::info;

/// The running exports (the capture loop's).
#[derive(Default)]
pub struct Exports {
    running: Vec<Exporter>,
}

/// Their counters, readable while they run and after they stopped (the
/// status's).
#[derive(Default)]
pub struct ExportCounters {
    stats: Vec<(String, Arc<ExportStats>)>,
}

impl Exports {
    /// Starts one exporter per target. A target that cannot work (its
    /// spool directory unusable, a creds file that does not parse) stops
    /// netevd from starting: an export that was asked for is not dropped
    /// quietly. A receiver that is away is not an error: it is retried
    /// while events spool.
    pub fn start(
        targets: &[ExportTarget],
        state_dir: &Path,
        host: &str,
    ) -> Result<(Exports, ExportCounters)> {
        let mut running = Vec::new();
        let mut stats = Vec::new();
        for target in targets {
            let name = target.to_string();
            let cfg = ExporterConfig::new(host, spool_dir(state_dir, target));
            let spool = cfg.spool_dir.display().to_string();
            let exporter = Exporter::start(target.clone(), cfg)
                .with_context(|| format!("cannot start the export {name}"))?;
            info!(export = %name, spool = %spool, "exporting events");
            stats.push((name, exporter.stats().clone()));
            running.push(exporter);
        }
        Ok((Exports { running }, ExportCounters { stats }))
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Hands an event to every export (never waits: a full queue counts it
    /// as that export's loss).
    pub fn push(&self, ev: &Event) {
        if let Some((last, rest)) = self.running.split_last() {
            for e in rest {
                e.push(ev.clone());
            }
            last.push(ev.clone());
        }
    }

    /// Delivers (or spools) what is queued and stops every export.
    pub fn stop(&mut self) {
        for e in self.running.drain(..) {
            e.stop();
        }
    }
}

impl ExportCounters {
    /// (exported, lost, spooled) summed over the exports.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.stats.iter().fold((0, 0, 0), |(x, l, s), (_, st)| {
            (
                x + st.exported.load(Ordering::Relaxed),
                l + st.lost.load(Ordering::Relaxed),
                s + st.spooled.load(Ordering::Relaxed),
            )
        })
    }

    /// One status note per export: where it sends, or why it fails.
    pub fn notes(&self) -> Vec<String> {
        self.stats
            .iter()
            .map(|(name, st)| match st.error() {
                Some(e) => format!("export to {name} failing (events spool to disk): {e}"),
                None => format!("events exported to {name}"),
            })
            .collect()
    }
}

/// Each export's spool: named by its receiver and schema, so that a spool
/// is only ever drained to the receiver (and in the schema) it was written
/// for, whatever its other options become.
fn spool_dir(state_dir: &Path, target: &ExportTarget) -> std::path::PathBuf {
    let key = format!("{:?} {}", target.destination, target.format.name());
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    state_dir.join("spool").join(hex)
}
