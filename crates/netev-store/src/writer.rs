//! The writer: a thread that takes events from a bounded queue and writes
//! them in batches, so that a slow disk or a database that is away never
//! stalls whoever produces events (netevd's capture loop, netev-sql's bus
//! reader).
//!
//! Nothing is lost silently. Events that do not fit in the queue, and
//! batches that cannot be written (a full disk), are counted in `lost`, and
//! a [`Gap`] row records them in the store as soon as it takes writes again.
//! A database that went away (PostgreSQL restarting, network) is reconnected
//! with back-off while the batch in hand waits; meanwhile the queue fills and
//! overflow is counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use netev_event::Event;
use tracing::{info, warn};

use crate::{Error, Gap, Retention, Store};

/// How the writer batches and what it keeps.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The `host` column of every row.
    pub host: String,
    /// Most events per transaction.
    pub batch: usize,
    /// Longest an event waits for its batch to fill.
    pub max_delay: Duration,
    /// Events the queue holds while the store is slow or away.
    pub queue: usize,
    /// Retention, applied at start and then every `retention_every`.
    pub retention: Retention,
    /// How often retention runs.
    pub retention_every: Duration,
}

impl WriterConfig {
    /// Batches of 10 000 or 200 ms, a 256k-event queue, no retention.
    pub fn new(host: impl Into<String>) -> WriterConfig {
        WriterConfig {
            host: host.into(),
            batch: 10_000,
            max_delay: Duration::from_millis(200),
            queue: 1 << 18,
            retention: Retention::default(),
            retention_every: Duration::from_secs(60),
        }
    }
}

/// What the writer has done, for status and logs.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Events committed.
    pub written: AtomicU64,
    /// Events lost: queue overflow plus batches that could not be written.
    pub lost: AtomicU64,
    /// Events in the queue now.
    pub queued: AtomicU64,
    /// The last error, until a batch is written again.
    pub last_error: Mutex<Option<String>>,
}

impl WriterStats {
    fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().expect("writer stats lock") = e;
    }

    /// The last error, if the store is failing now.
    pub fn error(&self) -> Option<String> {
        self.last_error.lock().expect("writer stats lock").clone()
    }
}

/// Opens (or reopens) the store.
pub type Opener = Box<dyn FnMut() -> crate::Result<Box<dyn Store>> + Send>;

/// The producer's side.
pub struct Writer {
    tx: Option<SyncSender<Event>>,
    stats: Arc<WriterStats>,
    // set before the queue closes: a thread holding a full batch for a
    // store that is away would otherwise never look at the queue again
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread with the store if it could be opened, and
    /// the opener it uses to (re)connect.
    pub fn spawn(first: Option<Box<dyn Store>>, open: Opener, cfg: WriterConfig) -> Writer {
        let (tx, rx) = mpsc::sync_channel(cfg.queue);
        let stats = Arc::new(WriterStats::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let (thread_stats, thread_stopping) = (stats.clone(), stopping.clone());
        let thread = std::thread::Builder::new()
            .name("netev-store".into())
            .spawn(move || run(first, open, cfg, rx, &thread_stats, &thread_stopping))
            .expect("spawning the store writer thread");
        Writer {
            tx: Some(tx),
            stats,
            stopping,
            thread: Some(thread),
        }
    }

    /// Queues an event; never waits. A full queue counts it as lost.
    pub fn push(&self, ev: Event) {
        let Some(tx) = &self.tx else { return };
        // counted before it is sent: the writer may take it at once
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// Writes what is queued and stops (giving up on a store that stays
    /// away for more than [`STOP_GRACE`]: what is left is counted as lost).
    pub fn stop(mut self) -> Arc<WriterStats> {
        self.finish();
        self.stats.clone()
    }

    fn finish(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether an error means "the store is away, try again" rather than "this
/// batch cannot be written".
fn retry_later(e: &Error) -> bool {
    match e {
        Error::Sqlite { source, .. } => matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ),
        _ => e.connection_lost(),
    }
}

/// How long a stopping writer keeps trying a store that is away.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Counts the batch in hand and whatever is still queued as lost, for a
/// writer that stops while the store stays away.
fn give_up(batch: &[Event], rx: &mpsc::Receiver<Event>, stats: &WriterStats) {
    let queued = rx.try_iter().count() as u64;
    stats.queued.fetch_sub(queued, Ordering::Relaxed);
    let n = batch.len() as u64 + queued;
    stats.lost.fetch_add(n, Ordering::Relaxed);
    warn!(lost = n, "stopping with the store still unreachable");
}

fn run(
    mut store: Option<Box<dyn Store>>,
    mut open: Opener,
    cfg: WriterConfig,
    rx: mpsc::Receiver<Event>,
    stats: &WriterStats,
    stopping: &AtomicBool,
) {
    let mut batch: Vec<Event> = Vec::with_capacity(cfg.batch);
    let mut closed = false;
    let mut backoff = Duration::from_millis(100);
    let mut next_retention = Instant::now();
    // the lost total already recorded as gaps, and why the rest was lost
    let mut recorded: u64 = 0;
    let mut why = String::new();
    let mut stop_deadline: Option<Instant> = None;
    loop {
        // fill the batch
        if !closed {
            let deadline = Instant::now() + cfg.max_delay;
            while batch.len() < cfg.batch {
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(ev) => {
                        stats.queued.fetch_sub(1, Ordering::Relaxed);
                        batch.push(ev)
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if (closed || stopping.load(Ordering::SeqCst)) && stop_deadline.is_none() {
            stop_deadline = Some(Instant::now() + STOP_GRACE);
        }
        if store.is_none() {
            match open() {
                Ok(s) => {
                    info!(store = %s.describe(), "store reachable again");
                    store = Some(s);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    let msg = e.to_string();
                    if stats.error().as_deref() != Some(msg.as_str()) {
                        warn!("store unreachable, retrying: {msg}");
                    }
                    stats.set_error(Some(msg));
                    if stop_deadline.is_some_and(|d| Instant::now() >= d) {
                        // the batch in hand and whatever is still queued
                        give_up(&batch, &rx, stats);
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        let s = store.as_mut().expect("opened above");
        if !batch.is_empty() {
            match s.insert(&cfg.host, &batch) {
                Ok(()) => {
                    stats
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    if stats.error().is_some() {
                        info!("store writes work again");
                        stats.set_error(None);
                    }
                }
                Err(e) if retry_later(&e) => {
                    warn!("store away ({e}); reconnecting");
                    stats.set_error(Some(e.to_string()));
                    store = None;
                    if stop_deadline.is_some_and(|d| Instant::now() >= d) {
                        give_up(&batch, &rx, stats);
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(e) => {
                    // this batch cannot be written (full disk…): count it,
                    // go on with the next one
                    let n = batch.len() as u64;
                    warn!(lost = n, "cannot write events to the store: {e}");
                    stats.lost.fetch_add(n, Ordering::Relaxed);
                    stats.set_error(Some(e.to_string()));
                    why = e.to_string();
                    batch.clear();
                }
            }
        }
        // record losses as a gap once the store takes writes
        let lost_total = stats.lost.load(Ordering::Relaxed);
        if lost_total > recorded && stats.error().is_none() {
            let n = lost_total - recorded;
            let gap = Gap {
                host: cfg.host.clone(),
                ts: Utc::now(),
                lost: n,
                reason: if why.is_empty() {
                    "the store's queue was full (the store could not keep up or was away)".into()
                } else {
                    std::mem::take(&mut why)
                },
            };
            if s.record_gap(&gap).is_ok() {
                recorded = lost_total;
            }
        }
        if next_retention <= Instant::now() {
            next_retention = Instant::now() + cfg.retention_every;
            if cfg.retention != Retention::default() {
                match s.retain(&cfg.retention, Utc::now()) {
                    Ok(0) => {}
                    Ok(n) => info!(deleted = n, "retention"),
                    Err(e) => warn!("retention failed: {e}"),
                }
            }
        }
        if closed && batch.is_empty() {
            // everything queued was taken before `closed`
            return;
        }
    }
}
