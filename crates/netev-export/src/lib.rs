//! netev's exports: events sent on, as they are captured, to a NATS
//! JetStream stream, a syslog receiver or a JSON file (docs/export.md,
//! docs/fleet.md).
//!
//! Each export is an [`Exporter`]: a thread of its own fed by a bounded
//! queue, so that a slow or absent receiver never stalls netevd's capture.
//! The thread batches events, encodes each batch once (in netev's schema
//! or OCSF) and hands it to its [`Output`]. Nothing is lost silently:
//! - a batch the output cannot take (the server is away, the disk is full)
//!   goes to the export's disk spool ([`spool`]), and the spool drains,
//!   oldest first, when the output takes batches again; while the spool
//!   holds anything, new batches queue behind it, so order is kept;
//! - events that do not fit the queue or the spool are counted as `lost`
//!   and a gap record ([`Body::Gap`]) says so in the stream itself, ahead
//!   of the next batch delivered.
//!
//! Every batch carries an id (`HOST:INSTANCE:SEQ`) that a receiver can
//! deduplicate on: JetStream does (its `Nats-Msg-Id`), and netev-sql's
//! consumer records the ids it committed.

pub mod format;
pub mod spool;
pub mod target;

mod file;
pub mod nats;
mod syslog;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use netev_event::Event;
use tracing::{info, warn};

pub use target::{Destination, ExportTarget, Format, SyslogTransport, TargetError};

/// What went wrong in an export.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The receiver refused or did not answer.
    #[error("{0}")]
    Delivery(String),
    /// A setting that cannot work (a creds file that does not parse).
    #[error("{0}")]
    Config(String),
    /// The spool is at its size limit.
    #[error("the spool is full ({max} bytes): raise spool_max or bring the receiver back")]
    SpoolFull { max: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// Events lost before they could be exported, as recorded in the stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    /// The host that lost them.
    pub host: String,
    /// When the loss was recorded.
    pub ts: DateTime<Utc>,
    /// How many events.
    pub lost: u64,
    /// Why.
    pub reason: String,
}

/// What one batch holds.
#[derive(Debug, Clone)]
pub enum Body {
    Events(Vec<Event>),
    Gap(Gap),
}

/// One batch, as the exporter thread hands it to its output for encoding.
#[derive(Debug, Clone)]
pub struct Batch {
    pub meta: BatchMeta,
    pub body: Body,
}

/// What travels with an encoded batch (and is kept with it in the spool).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchMeta {
    /// `HOST:INSTANCE:SEQ`: unique per batch, the same on every retry.
    pub id: String,
    pub host: String,
    /// Events in it (0 for a gap record).
    pub events: u64,
    /// A gap record: how many events it says were lost.
    pub gap: Option<u64>,
}

/// One kind of receiver. `encode` runs once per batch; `deliver` may run
/// many times for the same bytes (retries, the spool draining) and must
/// return only when the receiver has them (NATS: the stream's ack).
pub(crate) trait Output: Send {
    fn encode(&mut self, batch: &Batch) -> Vec<u8>;
    fn deliver(&mut self, meta: &BatchMeta, payload: &[u8]) -> Result<()>;
}

/// What an export has done, for `netev status`, metrics and logs.
#[derive(Debug, Default)]
pub struct ExportStats {
    /// Events the receiver has.
    pub exported: AtomicU64,
    /// Events lost: they fit neither the queue nor the spool.
    pub lost: AtomicU64,
    /// Events waiting in the spool now.
    pub spooled: AtomicU64,
    /// Bytes the spool holds now.
    pub spool_bytes: AtomicU64,
    /// Events in the queue now.
    pub queued: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ExportStats {
    fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().expect("export stats lock") = e;
    }

    /// The last error, while the export is failing.
    pub fn error(&self) -> Option<String> {
        self.last_error.lock().expect("export stats lock").clone()
    }
}

/// How an exporter batches and where it spools.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// The `host` of every event and batch id.
    pub host: String,
    /// Where this export's spool lives (created, mode 0700).
    pub spool_dir: PathBuf,
    /// Most events per batch.
    pub batch: usize,
    /// Longest an event waits for its batch to fill.
    pub max_delay: Duration,
    /// Events the queue holds.
    pub queue: usize,
}

impl ExporterConfig {
    pub fn new(host: impl Into<String>, spool_dir: impl Into<PathBuf>) -> ExporterConfig {
        ExporterConfig {
            host: host.into(),
            spool_dir: spool_dir.into(),
            batch: 1000,
            max_delay: Duration::from_millis(200),
            queue: 1 << 16,
        }
    }
}

/// The producer's side of one export.
pub struct Exporter {
    target: ExportTarget,
    tx: Option<SyncSender<Event>>,
    stats: Arc<ExportStats>,
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The longest `stop` waits for a receiver that is away: what is left
/// stays in the spool for the next start.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

impl Exporter {
    /// Opens the spool and starts the thread. Fails only for what cannot
    /// get better by waiting (an unusable spool directory, a creds file that
    /// does not parse); a receiver that is away is retried.
    pub fn start(target: ExportTarget, cfg: ExporterConfig) -> Result<Exporter> {
        let spool = spool::Spool::open(&cfg.spool_dir, target.options.spool_max)?;
        let output: Box<dyn Output> = match &target.destination {
            Destination::Nats { .. } => Box::new(nats::Nats::new(&target, &cfg.host)?),
            Destination::Syslog { .. } => Box::new(syslog::Syslog::new(&target, &cfg.host)?),
            Destination::File { .. } => Box::new(file::JsonFile::new(&target)?),
        };
        let (tx, rx) = mpsc::sync_channel(cfg.queue);
        let stats = Arc::new(ExportStats::default());
        stats.spooled.store(spool.events(), Ordering::Relaxed);
        stats.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            name: target.to_string(),
            cfg,
            output,
            spool,
            stats: stats.clone(),
            stopping: stopping.clone(),
            seq: 0,
            instance: instance_id(),
            gap_recorded: 0,
            retry_at: None,
            backoff: Duration::from_millis(100),
        };
        let thread = std::thread::Builder::new()
            .name("netev-export".into())
            .spawn(move || worker.run(rx))
            .map_err(io_err("starting the export thread"))?;
        Ok(Exporter {
            target,
            tx: Some(tx),
            stats,
            stopping,
            thread: Some(thread),
        })
    }

    /// Queues an event; never waits. A full queue counts it as lost.
    pub fn push(&self, ev: Event) {
        let Some(tx) = &self.tx else { return };
        // counted before it is sent: the thread may take it at once
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn target(&self) -> &ExportTarget {
        &self.target
    }

    pub fn stats(&self) -> &Arc<ExportStats> {
        &self.stats
    }

    /// Delivers or spools what is queued and stops.
    pub fn stop(mut self) -> Arc<ExportStats> {
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

impl Drop for Exporter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Unique to this start of this process: batch ids of a restarted netevd
/// never repeat the last one's (its spool keeps its own ids).
fn instance_id() -> String {
    let now = Utc::now();
    format!(
        "{}{:09}-{}",
        now.timestamp(),
        now.timestamp_subsec_nanos(),
        std::process::id()
    )
}

struct Worker {
    name: String,
    cfg: ExporterConfig,
    output: Box<dyn Output>,
    spool: spool::Spool,
    stats: Arc<ExportStats>,
    stopping: Arc<AtomicBool>,
    seq: u64,
    instance: String,
    /// Lost events already recorded by gap records.
    gap_recorded: u64,
    /// While the output fails: when to try the spool's head again.
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<Event>) {
        let mut batch: Vec<Event> = Vec::with_capacity(self.cfg.batch);
        let mut first_at: Option<Instant> = None;
        let mut closed = false;
        let mut stop_deadline: Option<Instant> = None;
        loop {
            // take events until the batch is full, old enough, or the queue closes
            let wait = match first_at {
                Some(t) => self.cfg.max_delay.saturating_sub(t.elapsed()),
                None => self.cfg.max_delay,
            };
            let wait = match self.retry_at {
                Some(r) => wait.min(r.saturating_duration_since(Instant::now())),
                None => wait,
            };
            if !closed {
                match rx.recv_timeout(wait) {
                    Ok(ev) => {
                        self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                        first_at.get_or_insert_with(Instant::now);
                        batch.push(ev);
                        while batch.len() < self.cfg.batch {
                            match rx.try_recv() {
                                Ok(ev) => {
                                    self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                                    batch.push(ev)
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => closed = true,
                }
            }
            let full = batch.len() >= self.cfg.batch;
            let old = first_at.is_some_and(|t| t.elapsed() >= self.cfg.max_delay);
            if !batch.is_empty() && (full || old || closed) {
                let events = std::mem::replace(&mut batch, Vec::with_capacity(self.cfg.batch));
                first_at = None;
                self.send_events(events);
            }
            self.drain_spool();
            if closed {
                let deadline = *stop_deadline.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                if self.spool.is_empty() || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50).min(self.backoff));
            }
        }
        self.record_pending_gap();
        if !self.spool.is_empty() {
            warn!(
                export = %self.name,
                events = self.spool.events(),
                "the receiver is away; the spooled events are sent at the next start"
            );
        }
    }

    fn next_meta(&mut self, events: u64, gap: Option<u64>) -> BatchMeta {
        self.seq += 1;
        BatchMeta {
            id: format!("{}:{}:{}", self.cfg.host, self.instance, self.seq),
            host: self.cfg.host.clone(),
            events,
            gap,
        }
    }

    fn send_events(&mut self, events: Vec<Event>) {
        // lost events are recorded ahead of what comes after them
        self.record_pending_gap();
        let n = events.len() as u64;
        let batch = Batch {
            meta: self.next_meta(n, None),
            body: Body::Events(events),
        };
        if !self.send(batch) {
            self.stats.lost.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Puts the lost events not yet recorded into a gap record.
    fn record_pending_gap(&mut self) {
        let lost = self.stats.lost.load(Ordering::Relaxed);
        if lost <= self.gap_recorded {
            return;
        }
        let new = lost - self.gap_recorded;
        let gap = Gap {
            host: self.cfg.host.clone(),
            ts: Utc::now(),
            lost: new,
            reason: "the export's queue or spool was full".into(),
        };
        let batch = Batch {
            meta: self.next_meta(0, Some(new)),
            body: Body::Gap(gap),
        };
        if self.send(batch) {
            self.gap_recorded += new;
        }
    }

    /// Delivers a batch now, or spools it; false if neither worked.
    fn send(&mut self, batch: Batch) -> bool {
        let payload = self.output.encode(&batch);
        let meta = batch.meta;
        if self.spool.is_empty() && self.retry_at.is_none() {
            match self.output.deliver(&meta, &payload) {
                Ok(()) => {
                    self.delivered(&meta);
                    return true;
                }
                Err(e) => self.failing(e),
            }
        }
        match self.spool.push(&meta, &payload) {
            Ok(()) => {
                self.stats.spooled.fetch_add(meta.events, Ordering::Relaxed);
                self.stats
                    .spool_bytes
                    .store(self.spool.bytes(), Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.stats.set_error(Some(e.to_string()));
                false
            }
        }
    }

    fn drain_spool(&mut self) {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.retry_at = None;
        loop {
            let (meta, payload) = match self.spool.front() {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(e) => {
                    // an unreadable spool record: counted, skipped
                    warn!(export = %self.name, "{e}");
                    self.spool_skip_damaged();
                    continue;
                }
            };
            match self.output.deliver(&meta, &payload) {
                Ok(()) => {
                    if let Err(e) = self.spool.pop_front() {
                        warn!(export = %self.name, "{e}");
                    }
                    self.stats
                        .spooled
                        .store(self.spool.events(), Ordering::Relaxed);
                    self.stats
                        .spool_bytes
                        .store(self.spool.bytes(), Ordering::Relaxed);
                    self.delivered(&meta);
                }
                Err(e) => {
                    self.failing(e);
                    return;
                }
            }
            if self.stopping.load(Ordering::Relaxed) && self.retry_at.is_some() {
                return;
            }
        }
    }

    fn spool_skip_damaged(&mut self) {
        match self.spool.pop_front() {
            Ok(()) => {}
            Err(e) => warn!(export = %self.name, "{e}"),
        }
    }

    fn delivered(&mut self, meta: &BatchMeta) {
        self.stats
            .exported
            .fetch_add(meta.events, Ordering::Relaxed);
        if self.backoff > Duration::from_millis(100) {
            info!(export = %self.name, "exporting again");
        }
        self.backoff = Duration::from_millis(100);
        self.stats.set_error(None);
    }

    fn failing(&mut self, e: Error) {
        if self.stats.error().is_none() {
            warn!(export = %self.name, "cannot export (events spool to disk until it works again): {e}");
        }
        self.stats.set_error(Some(e.to_string()));
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
    }
}
