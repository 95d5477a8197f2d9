//! The D-Bus connector: `org.netev.Daemon1` on the system bus (or another).
//!
//! Runs on its own thread with a single-threaded tokio runtime, split by job:
//! the interface (`iface`), who may call it (`access`), prompts (`prompts`)
//! and the event subscribers (`subscribers`); this module starts the thread
//! and moves events and signals. The capture loop reaches the bus only
//! through [`Bus`]: events through a bounded queue, prompts through a channel,
//! the status as a snapshot, and it never waits for the bus: when
//! subscribers cannot keep up the queue fills, the event is counted in
//! `bus_dropped`, and every subscriber learns how many it missed (`lost` in
//! its next `Events` signal). Capture and enforcement never slow down for the
//! bus.
//!
//! Filtering is done here, per subscriber, and each subscriber's batch is a
//! unicast signal (destination = its unique name): a client gets only what
//! it asked for, and a client that was refused gets nothing at all, whatever
//! match rules it adds.

// The submodules log under the target `netevd::bus`, as this module did
// before it was split: operators' filters and the tests match on it.
mod access;
mod iface;
mod polkit;
mod prompts;
mod subscribers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use futures_util::StreamExt;
use netev_dbus::{WireEvent, BATCH_INTERVAL_MS, BUS_NAME, INTERFACE, MAX_BATCH, OBJECT_PATH};
use netev_event::status::Status;
use netev_event::Event;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};
use zbus::names::{BusName, OwnedUniqueName};
use zbus::{fdo, Connection};

use crate::rules::RulesHandle;
use iface::DaemonIface;
use prompts::{Origin, Prompts};
use subscribers::{distribute, flush, forget, Subscriber};

/// Events waiting for the bus thread; beyond this they are counted as lost.
const QUEUE: usize = 16_384;
/// Most subscribers at once.
const MAX_SUBSCRIBERS: usize = 32;
/// How long a leaving daemon keeps sending backlogs to subscribers that
/// still acknowledge.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Events held for a subscriber that is out of credit, to ride out bursts;
/// beyond this its events are counted as lost (for it alone).
const BACKLOG: usize = 8 * MAX_BATCH;
/// Batches a subscriber may have unacknowledged (see `Ack`): what dbus-daemon
/// may hold for it, at most 8 x MAX_BATCH_BYTES = 512 KiB, so no subscriber
/// can make dbus-daemon stop reading from netevd (it charges undelivered
/// messages to their sender: 32 subscribers x 512 KiB stays well under its
/// 127 MiB default, and two stay under the tests' 2 MB quota).
pub const MAX_IN_FLIGHT: u32 = netev_dbus::MAX_IN_FLIGHT;
/// How often unanswered prompts are checked for their deadline.
const PROMPT_CHECK: Duration = Duration::from_secs(1);

pub use crate::settings::BusTarget;

/// Counters the capture loop and the bus thread both touch: atomics only.
#[derive(Default)]
struct Counters {
    /// Subscribers now (the capture loop skips building events without).
    subscribers: AtomicUsize,
    /// Events the queue to the bus thread had no room for.
    dropped: AtomicU64,
    /// Prompts waiting for an answer, and kernel prompts refused for room,
    /// as of the last prompt check (each second; GetStatus reads them
    /// exactly).
    prompts_pending: AtomicU64,
    prompts_refused: AtomicU64,
}

impl Counters {
    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What the bus thread's tasks (the interface's methods and the pump)
/// share. The capture loop holds none of it.
pub(crate) struct State {
    status: watch::Receiver<Status>,
    counters: Arc<Counters>,
    access_group: String,
    rules: RulesHandle,
    prompts: Mutex<Prompts>,
    subs: Mutex<HashMap<OwnedUniqueName, Subscriber>>,
    /// The event store queries are served from (`--store`), if any.
    store: Option<String>,
    control: mpsc::UnboundedSender<Control>,
}

impl State {
    /// Queues a signal for the pump to send.
    fn control(&self, c: Control) {
        let _ = self.control.send(c);
    }
}

/// What the pump is told to do besides moving events; never dropped.
enum Control {
    /// The kernel path asked (an `ask` rule decided): raise a prompt about
    /// the event unless one about the same thing is pending.
    Raise(Event, Instant),
    /// A new prompt, to every prompter.
    Prompt(u64, Event, Origin),
    /// A pending prompt, to one new prompter (beyond WatchPrompts' reply).
    PromptTo(OwnedUniqueName, u64, Event, Origin),
    PromptClosed(u64, &'static str),
}

/// What the bus serves besides events.
pub struct BusConfig {
    /// Who may call the daemon besides root.
    pub access_group: String,
    /// The rules owner.
    pub rules: RulesHandle,
    /// The event store queries are served from, if any.
    pub store: Option<String>,
    /// The status at start.
    pub status: Status,
}

/// The capture loop's side of the bus.
pub struct Bus {
    tx: mpsc::Sender<Event>,
    counters: Arc<Counters>,
    control: mpsc::UnboundedSender<Control>,
    status: watch::Sender<Status>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bus {
    /// Connects, serves the interface and owns the name; returns once that
    /// worked, or why it did not.
    pub fn start(target: BusTarget, config: BusConfig) -> Result<Bus> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(config.status);
        let counters = Arc::new(Counters::default());
        let state = Arc::new(State {
            status: status_rx,
            counters: counters.clone(),
            access_group: config.access_group,
            rules: config.rules,
            prompts: Mutex::new(Prompts::default()),
            subs: Mutex::new(HashMap::new()),
            store: config.store,
            control: ctl_tx.clone(),
        });
        let thread = std::thread::Builder::new()
            .name("netevd-bus".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("starting the bus runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(serve(target, state, rx, ctl_rx, stop_rx, ready_tx));
            })
            .context("starting the bus thread")?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Bus {
                tx,
                counters,
                control: ctl_tx,
                status: status_tx,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(anyhow!("the bus thread exited during start-up")),
        }
    }

    /// Whether anyone is subscribed (so the caller can skip building events).
    pub fn wants_events(&self) -> bool {
        self.counters.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Queues an event for the subscribers; never blocks.
    pub fn publish(&self, ev: Event) {
        if self.tx.try_send(ev).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the prompters about an operation an `ask` rule decided (the
    /// fallback already applied); one prompt per pending question, until
    /// `expires`.
    pub fn raise_prompt(&self, ev: Event, expires: Instant) {
        let _ = self.control.send(Control::Raise(ev, expires));
    }

    /// The status the bus serves from now on.
    pub fn set_status(&self, status: Status) {
        self.status.send_replace(status);
    }

    /// Events the bus queue had no room for.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped()
    }

    /// (pending, refused) prompts as of the last second.
    pub fn prompts(&self) -> (u64, u64) {
        (
            self.counters.prompts_pending.load(Ordering::Relaxed),
            self.counters.prompts_refused.load(Ordering::Relaxed),
        )
    }

    /// Events waiting in the queue to the bus thread now.
    pub fn queued(&self) -> u64 {
        (self.tx.max_capacity() - self.tx.capacity()) as u64
    }

    /// Flushes what is queued and leaves the bus.
    pub fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    target: BusTarget,
    state: Arc<State>,
    rx: mpsc::Receiver<Event>,
    ctl_rx: mpsc::UnboundedReceiver<Control>,
    stop: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<Result<()>>,
) {
    let iface = DaemonIface {
        state: state.clone(),
    };
    let conn = async {
        target
            .builder()
            .serve_at(OBJECT_PATH, iface)
            .name(BUS_NAME)
            .build()
            .await
            .map_err(|e| match e {
                zbus::Error::NameTaken => anyhow!(
                    "{BUS_NAME} is already owned on {}: another netevd is running",
                    target.describe()
                ),
                zbus::Error::InputOutput(io) => anyhow!(
                    "cannot connect to {}: {io} (is dbus-daemon running? pass --bus session, --bus ADDRESS or --bus none)",
                    target.describe()
                ),
                other => anyhow!(
                    "cannot serve {BUS_NAME} on {}: {other} (is the policy file dist/dbus/org.netev.Daemon1.conf installed?)",
                    target.describe()
                ),
            })
    }
    .await;
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    info!(bus = %target.describe(), name = BUS_NAME, "serving on D-Bus");
    let _ = ready.send(Ok(()));
    if let Err(e) = pump(&conn, &state, rx, ctl_rx, stop).await {
        warn!("D-Bus connector stopped: {e:#}");
    }
}

/// Moves events from the queue into per-subscriber batches and sends them.
async fn pump(
    conn: &Connection,
    state: &State,
    mut rx: mpsc::Receiver<Event>,
    mut ctl: mpsc::UnboundedReceiver<Control>,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let dbus = fdo::DBusProxy::new(conn).await?;
    let mut owners = dbus.receive_name_owner_changed().await?;
    let mut tick = tokio::time::interval(Duration::from_millis(BATCH_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prompt_check = tokio::time::interval(PROMPT_CHECK);
    prompt_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // RulesChanged is announced whenever the rules owner's generation moves.
    let mut rules = state.rules.watch();
    let mut announced = rules.borrow_and_update().generation;
    loop {
        tokio::select! {
            _ = &mut stop => {
                while let Ok(ev) = rx.try_recv() {
                    distribute(state, ev);
                }
                // Subscribers that keep acknowledging get their backlog, for
                // a while; one that stopped reading loses what it has no
                // credit for.
                let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
                loop {
                    flush(conn, state, false).await;
                    let waiting = state.subs.lock().expect("subscribers lock").values().any(|s| !s.batch.is_empty());
                    if !waiting || tokio::time::Instant::now() >= deadline {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            ev = rx.recv() => {
                let Some(ev) = ev else { return Ok(()) };
                distribute(state, ev);
                // take what else is queued in one go
                for _ in 0..MAX_BATCH {
                    match rx.try_recv() {
                        Ok(ev) => distribute(state, ev),
                        Err(_) => break,
                    }
                }
                flush(conn, state, true).await;
            }
            _ = tick.tick() => flush(conn, state, false).await,
            Some(c) = ctl.recv() => control(conn, state, c).await,
            _ = prompt_check.tick() => {
                let gone = {
                    let mut prompts = state.prompts.lock().expect("prompts lock");
                    let gone = prompts.expire(Instant::now());
                    let c = &state.counters;
                    c.prompts_pending.store(prompts.pending.len() as u64, Ordering::Relaxed);
                    c.prompts_refused.store(prompts.kernel_refused, Ordering::Relaxed);
                    gone
                };
                for id in gone {
                    control(conn, state, Control::PromptClosed(id, "expired")).await;
                }
            }
            Ok(()) = rules.changed() => {
                let generation = rules.borrow_and_update().generation;
                if generation != announced {
                    announced = generation;
                    rules_changed(conn).await;
                }
            }
            Some(change) = owners.next() => {
                let Ok(args) = change.args() else { continue };
                if args.new_owner().is_none() {
                    if let BusName::Unique(name) = args.name() {
                        forget(state, name);
                        let gone = OwnedUniqueName::from(name.to_owned());
                        let withdrawn = {
                            let mut prompts = state.prompts.lock().expect("prompts lock");
                            prompts.watchers.remove(&gone);
                            prompts.withdraw(|w| w.caller == gone)
                        };
                        for id in withdrawn {
                            control(conn, state, Control::PromptClosed(id, "withdrawn")).await;
                        }
                    }
                }
            }
        }
    }
}

/// Prompt signals go to the prompters alone (they name programs and
/// destinations).
async fn control(conn: &Connection, state: &State, c: Control) {
    let c = match c {
        Control::Raise(ev, expires) => {
            let (id, refused) = {
                let mut prompts = state.prompts.lock().expect("prompts lock");
                let before = prompts.kernel_refused;
                let id = prompts.raise(&ev, expires);
                let refused = prompts.kernel_refused;
                (id, (refused > before).then_some(refused))
            };
            if let Some(n) = refused {
                // the first, then every 1000th: a flood must not flood the log
                if n == 1 || n % 1000 == 0 {
                    warn!(
                        refused = n,
                        "too many prompts pending: an ask decided in the kernel raised no prompt \
                         (its fallback applied); see prompts_refused in `netev status`"
                    );
                }
            }
            let Some(id) = id else { return };
            info!(prompt = id, exe = ?ev.exe, op = ev.op.name(), "asking");
            Control::Prompt(id, ev, Origin::Kernel)
        }
        c => c,
    };
    let watchers: Vec<OwnedUniqueName> = match &c {
        Control::PromptTo(to, ..) => vec![to.clone()],
        _ => state
            .prompts
            .lock()
            .expect("prompts lock")
            .watchers
            .iter()
            .cloned()
            .collect(),
    };
    let res: zbus::Result<()> = match c {
        Control::Prompt(id, ev, origin) | Control::PromptTo(_, id, ev, origin) => {
            let wire = WireEvent::from(ev);
            for w in &watchers {
                let sent = conn
                    .emit_signal(
                        Some(BusName::Unique(w.as_ref())),
                        OBJECT_PATH,
                        INTERFACE,
                        "Prompt",
                        &(id, &wire, origin.name()),
                    )
                    .await;
                if let Err(e) = sent {
                    debug!(prompter = %w, "Prompt not sent: {e}");
                }
            }
            Ok(())
        }
        Control::PromptClosed(id, reason) => {
            for w in &watchers {
                let _ = conn
                    .emit_signal(
                        Some(BusName::Unique(w.as_ref())),
                        OBJECT_PATH,
                        INTERFACE,
                        "PromptClosed",
                        &(id, reason),
                    )
                    .await;
            }
            Ok(())
        }
        Control::Raise(..) => unreachable!("turned into a Prompt above"),
    };
    if let Err(e) = res {
        debug!("signal not sent: {e}");
    }
}

/// RulesChanged goes to everyone: it says nothing but "reload".
async fn rules_changed(conn: &Connection) {
    let sent = conn
        .emit_signal(
            None::<BusName<'_>>,
            OBJECT_PATH,
            INTERFACE,
            "RulesChanged",
            &(),
        )
        .await;
    if let Err(e) = sent {
        debug!("RulesChanged not sent: {e}");
    }
}
