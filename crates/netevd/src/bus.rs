//! The D-Bus connector: `org.netev.Daemon1` on the system bus (or another).
//!
//! Runs on its own thread with a single-threaded tokio runtime. The capture
//! loop hands it events through a bounded queue and never waits for it: when
//! subscribers cannot keep up the queue fills, the event is counted in
//! `bus_dropped`, and every subscriber learns how many it missed (`lost` in
//! its next `Events` signal). Capture and enforcement never slow down for the
//! bus.
//!
//! Filtering is done here, per subscriber, and each subscriber's batch is a
//! unicast signal (destination = its unique name): a client gets only what
//! it asked for, and a client that was refused gets nothing at all, whatever
//! match rules it adds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use futures_util::StreamExt;
use netev_dbus::{
    events_body, EncodedEvent, Filter, WireEvent, WireHook, WireStatus, BATCH_INTERVAL_MS,
    BUS_NAME, EVENTS_SIGNATURE, INTERFACE, MAX_BATCH, MAX_BATCH_BYTES, OBJECT_PATH,
};
use netev_event::status::Status;
use netev_event::Event;
use tokio::sync::{mpsc, oneshot};

use crate::rules::{rule_for_answer, user_name, ChangeError, Engine};
use tracing::{debug, info, warn};
use zbus::message::Header;
use zbus::names::{BusName, OwnedUniqueName, UniqueName};
use zbus::object_server::SignalEmitter;
use zbus::{fdo, Connection, OwnedVariant};

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

// `--bus` is parsed with the rest of the configuration; the names stay
// here for the code that has always found them here.
pub use crate::settings::BusTarget;

/// State shared by the capture loop, the bus thread and the interface.
pub struct Shared {
    status: Mutex<Status>,
    subscribers: AtomicUsize,
    bus_dropped: AtomicU64,
    access_group: String,
    pub rules: RulesHandle,
    pub prompts: Mutex<Prompts>,
    control: Mutex<Option<mpsc::UnboundedSender<Control>>>,
    /// The event store queries are served from (`--store`), if any.
    store: Option<String>,
}

/// The rule engine, and the generation the kernel has installed (with the
/// error of the last attempt, if it failed).
#[derive(Clone)]
pub struct RulesHandle {
    pub engine: Arc<Mutex<Engine>>,
    pub installed: tokio::sync::watch::Receiver<(u64, Option<String>)>,
}

/// Prompts raised and not yet answered, deduplicated by what they are about.
#[derive(Default)]
pub struct Prompts {
    next_id: u64,
    pending: HashMap<u64, (Event, std::time::Instant)>,
    by_key: HashMap<String, u64>,
    watchers: std::collections::HashSet<OwnedUniqueName>,
    /// Prompts raised by `Ask`: the callers waiting for the answer. Their
    /// answer makes no rule here (the asker decides with it).
    asks: HashMap<u64, Vec<Waiter>>,
}

/// A caller of `Ask` waiting for the answer to a prompt.
struct Waiter {
    caller: OwnedUniqueName,
    uid: u32,
    answer: oneshot::Sender<(String, String, String)>,
}

/// Most questions one unprivileged user may have pending through `Ask`.
const MAX_ASKS_PER_USER: usize = 32;
/// Longest an `Ask` waits.
const MAX_ASK_WAIT: Duration = Duration::from_secs(600);

impl Prompts {
    /// Records a prompt for `ev` unless one about the same thing is pending;
    /// returns its id if it is new.
    pub fn raise(&mut self, ev: &Event, expires: std::time::Instant) -> Option<u64> {
        let key = prompt_key(ev);
        if self.by_key.contains_key(&key) {
            return None;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.by_key.insert(key, id);
        self.pending.insert(id, (ev.clone(), expires));
        Some(id)
    }

    fn take(&mut self, id: u64) -> Option<Event> {
        let (ev, _) = self.pending.remove(&id)?;
        let key = if self.asks.remove(&id).is_some() {
            ask_key(&ev)
        } else {
            prompt_key(&ev)
        };
        self.by_key.remove(&key);
        Some(ev)
    }

    /// Joins the pending `Ask` prompt about the same thing as `ev`, or
    /// raises one; returns its id and whether it is new.
    fn ask(&mut self, ev: &Event, waiter: Waiter, expires: std::time::Instant) -> (u64, bool) {
        let key = ask_key(ev);
        if let Some(id) = self.by_key.get(&key).copied() {
            self.asks.entry(id).or_default().push(waiter);
            return (id, false);
        }
        self.next_id += 1;
        let id = self.next_id;
        self.by_key.insert(key, id);
        self.pending.insert(id, (ev.clone(), expires));
        self.asks.insert(id, vec![waiter]);
        (id, true)
    }

    /// Questions `uid` has pending through `Ask`.
    fn asks_of(&self, uid: u32) -> usize {
        self.asks
            .values()
            .flatten()
            .filter(|w| w.uid == uid)
            .count()
    }

    /// Forgets the waiters of a caller that left the bus (or gave up);
    /// returns the prompts nobody waits for any more, now closed.
    fn withdraw(&mut self, gone: impl Fn(&Waiter) -> bool) -> Vec<u64> {
        let mut empty = Vec::new();
        for (id, waiters) in self.asks.iter_mut() {
            waiters.retain(|w| !gone(w) && !w.answer.is_closed());
            if waiters.is_empty() {
                empty.push(*id);
            }
        }
        for id in &empty {
            self.take(*id);
        }
        empty
    }

    /// Removes prompts past their time; returns their ids.
    pub fn expire(&mut self, now: std::time::Instant) -> Vec<u64> {
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (_, t))| *t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.take(*id);
        }
        gone
    }
}

/// Same program, user, op, protocol and destination: one prompt.
fn prompt_key(ev: &Event) -> String {
    let (addr, port) = if netev_rules::op_uses_remote(ev.op) {
        (ev.raddr, ev.rport)
    } else {
        (ev.laddr, ev.lport)
    };
    format!(
        "{:?}|{}|{}|{:?}|{:?}|{:?}",
        ev.exe,
        ev.uid,
        ev.op.name(),
        ev.proto,
        addr,
        port
    )
}

/// `Ask` prompts are deduplicated among themselves, apart from the
/// kernel's: answering one decides the asking program's calls, not a rule.
fn ask_key(ev: &Event) -> String {
    format!("ask|{}|{}", ev.pid, prompt_key(ev))
}

/// Messages from the capture loop that must not be dropped.
pub enum Control {
    Prompt(u64, Event),
    PromptClosed(u64, &'static str),
    RulesChanged,
}

impl Shared {
    pub fn new(
        status: Status,
        access_group: String,
        rules: RulesHandle,
        store: Option<String>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            store,
            status: Mutex::new(status),
            subscribers: AtomicUsize::new(0),
            bus_dropped: AtomicU64::new(0),
            access_group,
            rules,
            prompts: Mutex::new(Prompts::default()),
            control: Mutex::new(None),
        })
    }

    /// Sends a control message to the bus thread (if it runs).
    pub fn control(&self, c: Control) {
        if let Some(tx) = &*self.control.lock().expect("control lock") {
            let _ = tx.send(c);
        }
    }

    /// Waits until the kernel decides with rule generation `generation`.
    async fn installed(&self, generation: u64) -> fdo::Result<()> {
        let mut rx = self.rules.installed.clone();
        let res = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|(g, _)| *g >= generation),
        )
        .await;
        match res {
            Ok(Ok(state)) => match &state.1 {
                Some(e) => Err(fdo::Error::Failed(format!(
                    "the rules were stored but the kernel refused them: {e}"
                ))),
                None => Ok(()),
            },
            _ => Err(fdo::Error::Failed(
                "the capture loop did not install the new rules within 10 s".into(),
            )),
        }
    }

    pub fn set_status(&self, status: Status) {
        *self.status.lock().expect("status lock") = status;
    }

    pub fn bus_dropped(&self) -> u64 {
        self.bus_dropped.load(Ordering::Relaxed)
    }
}

struct Subscriber {
    filter: Filter,
    /// Serialized once, shared with the other subscribers that want them.
    batch: Vec<EncodedEvent>,
    /// The wire size of `batch`.
    batch_bytes: usize,
    /// `bus_dropped` when this subscriber's last batch went out.
    dropped_seen: u64,
    /// Batches sent and not yet acknowledged.
    in_flight: u32,
    /// Events this subscriber missed because it had too much in flight.
    lost: u64,
}

type Subscribers = Arc<Mutex<HashMap<OwnedUniqueName, Subscriber>>>;

/// The capture loop's side of the bus.
pub struct Bus {
    tx: mpsc::Sender<Event>,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bus {
    /// Connects, serves the interface and owns the name; returns once that
    /// worked, or why it did not.
    pub fn start(target: BusTarget, shared: Arc<Shared>) -> Result<Bus> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_shared = shared.clone();
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
                rt.block_on(serve(target, thread_shared, rx, stop_rx, ready_tx));
            })
            .context("starting the bus thread")?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Bus {
                tx,
                shared,
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
        self.shared.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Queues an event for the subscribers; never blocks.
    pub fn publish(&self, ev: Event) {
        if self.tx.try_send(ev).is_err() {
            self.shared.bus_dropped.fetch_add(1, Ordering::Relaxed);
        }
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
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Event>,
    stop: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<Result<()>>,
) {
    let subs: Subscribers = Arc::default();
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    *shared.control.lock().expect("control lock") = Some(ctl_tx);
    let iface = DaemonIface {
        shared: shared.clone(),
        subs: subs.clone(),
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
    if let Err(e) = pump(&conn, &shared, &subs, rx, ctl_rx, stop).await {
        warn!("D-Bus connector stopped: {e:#}");
    }
}

/// Moves events from the queue into per-subscriber batches and sends them.
async fn pump(
    conn: &Connection,
    shared: &Shared,
    subs: &Subscribers,
    mut rx: mpsc::Receiver<Event>,
    mut ctl: mpsc::UnboundedReceiver<Control>,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let dbus = fdo::DBusProxy::new(conn).await?;
    let mut owners = dbus.receive_name_owner_changed().await?;
    let mut tick = tokio::time::interval(Duration::from_millis(BATCH_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => {
                while let Ok(ev) = rx.try_recv() {
                    distribute(subs, ev);
                }
                // Subscribers that keep acknowledging get their backlog, for
                // a while; one that stopped reading loses what it has no
                // credit for.
                let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
                loop {
                    flush(conn, shared, subs, false).await;
                    let waiting = subs.lock().expect("subscribers lock").values().any(|s| !s.batch.is_empty());
                    if !waiting || tokio::time::Instant::now() >= deadline {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            ev = rx.recv() => {
                let Some(ev) = ev else { return Ok(()) };
                distribute(subs, ev);
                // take what else is queued in one go
                for _ in 0..MAX_BATCH {
                    match rx.try_recv() {
                        Ok(ev) => distribute(subs, ev),
                        Err(_) => break,
                    }
                }
                flush(conn, shared, subs, true).await;
            }
            _ = tick.tick() => flush(conn, shared, subs, false).await,
            Some(c) = ctl.recv() => control(conn, shared, c).await,
            Some(change) = owners.next() => {
                let Ok(args) = change.args() else { continue };
                if args.new_owner().is_none() {
                    if let BusName::Unique(name) = args.name() {
                        forget(shared, subs, name);
                        let gone = OwnedUniqueName::from(name.to_owned());
                        let withdrawn = {
                            let mut prompts = shared.prompts.lock().expect("prompts lock");
                            prompts.watchers.remove(&gone);
                            prompts.withdraw(|w| w.caller == gone)
                        };
                        for id in withdrawn {
                            control(conn, shared, Control::PromptClosed(id, "withdrawn")).await;
                        }
                    }
                }
            }
        }
    }
}

fn distribute(subs: &Subscribers, ev: Event) {
    let mut subs = subs.lock().expect("subscribers lock");
    let matching: Vec<&mut Subscriber> = subs
        .values_mut()
        .filter(|s| s.filter.matches(&ev))
        .filter_map(|s| {
            // A subscriber that is behind loses events, alone.
            if s.batch.len() >= BACKLOG {
                s.lost += 1;
                None
            } else {
                Some(s)
            }
        })
        .collect();
    if matching.is_empty() {
        return;
    }
    // Serialized once for all of them.
    let encoded = match EncodedEvent::new(&WireEvent::from(ev)) {
        Ok(e) => e,
        Err(e) => {
            warn!("cannot serialize an event for D-Bus: {e}");
            return;
        }
    };
    for sub in matching {
        sub.batch_bytes += encoded.wire_len();
        sub.batch.push(encoded.clone());
    }
}

/// Sends batches to subscribers with credit: all non-empty ones, or with
/// `full_only` those holding at least MAX_BATCH events. Never more than a
/// subscriber's credit, even when the daemon is leaving: a subscriber that
/// stopped reading must not be able to wedge netevd (dbus-daemon stops
/// reading from a sender whose undelivered messages exceed its quota).
async fn flush(conn: &Connection, shared: &Shared, subs: &Subscribers, full_only: bool) {
    let dropped_now = shared.bus_dropped();
    type Ready = (OwnedUniqueName, Vec<Vec<EncodedEvent>>, u64);
    let ready: Vec<Ready> = {
        let mut subs = subs.lock().expect("subscribers lock");
        subs.iter_mut()
            .filter_map(|(name, s)| {
                let lost = dropped_now - s.dropped_seen + s.lost;
                let due = if full_only {
                    s.batch.len() >= MAX_BATCH || s.batch_bytes >= MAX_BATCH_BYTES
                } else {
                    !s.batch.is_empty() || lost > 0
                };
                let credit = MAX_IN_FLIGHT.saturating_sub(s.in_flight);
                if !due || credit == 0 {
                    return None;
                }
                // Whole batches while credit lasts; the rest waits.
                let (chunks, rest) = split_batches(std::mem::take(&mut s.batch), credit as usize);
                s.batch_bytes = rest.iter().map(EncodedEvent::wire_len).sum();
                s.batch = rest;
                s.in_flight = s.in_flight.saturating_add(chunks.len() as u32);
                s.dropped_seen = dropped_now;
                s.lost = 0;
                Some((name.clone(), chunks, lost))
            })
            .collect()
    };
    for (name, chunks, lost) in ready {
        // `lost` goes with the first batch.
        for (i, chunk) in chunks.into_iter().enumerate() {
            let lost = if i == 0 { lost } else { 0 };
            let body = events_body(&chunk, lost);
            // SAFETY: the body is a valid encoding of EVENTS_SIGNATURE (see
            // netev-dbus's encoded.rs and its byte-for-byte test).
            let msg = unsafe {
                zbus::Message::signal(OBJECT_PATH, INTERFACE, "Events")
                    .destination(BusName::Unique(name.as_ref()))
                    .build_raw_body(&body, EVENTS_SIGNATURE, Vec::new())
            };
            let sent = match msg {
                Ok(msg) => conn.send(&msg).await,
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                debug!(subscriber = %name, "Events not sent: {e}");
            }
        }
    }
}

/// Cuts events into at most `max` batches of at most MAX_BATCH events and
/// MAX_BATCH_BYTES (or one event, however big); returns them and what did
/// not fit. No events give one empty batch, which carries only `lost`.
fn split_batches(
    events: Vec<EncodedEvent>,
    max: usize,
) -> (Vec<Vec<EncodedEvent>>, Vec<EncodedEvent>) {
    let mut chunks: Vec<Vec<EncodedEvent>> = vec![Vec::new()];
    let mut bytes = 0;
    let mut events = events.into_iter();
    for ev in events.by_ref() {
        let last = chunks.last().expect("never empty");
        if !last.is_empty() && (last.len() >= MAX_BATCH || bytes + ev.wire_len() > MAX_BATCH_BYTES)
        {
            if chunks.len() >= max {
                let mut rest = vec![ev];
                rest.extend(events);
                return (chunks, rest);
            }
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += ev.wire_len();
        chunks.last_mut().expect("never empty").push(ev);
    }
    (chunks, Vec::new())
}

/// Prompt signals go to the prompters alone (they name programs and
/// destinations); RulesChanged to everyone (it says nothing but "reload").
async fn control(conn: &Connection, shared: &Shared, c: Control) {
    let watchers: Vec<OwnedUniqueName> = shared
        .prompts
        .lock()
        .expect("prompts lock")
        .watchers
        .iter()
        .cloned()
        .collect();
    let res = match c {
        Control::Prompt(id, ev) => {
            let wire = WireEvent::from(ev);
            for w in &watchers {
                let sent = conn
                    .emit_signal(
                        Some(BusName::Unique(w.as_ref())),
                        OBJECT_PATH,
                        INTERFACE,
                        "Prompt",
                        &(id, &wire),
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
        Control::RulesChanged => {
            conn.emit_signal(
                None::<BusName<'_>>,
                OBJECT_PATH,
                INTERFACE,
                "RulesChanged",
                &(),
            )
            .await
        }
    };
    if let Err(e) = res {
        debug!("signal not sent: {e}");
    }
}

fn change_error(e: ChangeError) -> fdo::Error {
    match e {
        ChangeError::Store(_) => fdo::Error::Failed(e.to_string()),
        _ => fdo::Error::InvalidArgs(e.to_string()),
    }
}

fn listing(rule: &netev_rules::Rule) -> HashMap<String, String> {
    netev_rules::fields::rule_to_fields(rule, &user_name)
        .into_iter()
        .collect()
}

fn forget(shared: &Shared, subs: &Subscribers, name: &UniqueName<'_>) {
    let mut subs = subs.lock().expect("subscribers lock");
    if subs
        .remove(&OwnedUniqueName::from(name.to_owned()))
        .is_some()
    {
        shared.subscribers.store(subs.len(), Ordering::Relaxed);
        info!(subscriber = %name, "subscriber left");
    }
}

/// Checks that the caller is root or in the access group.
async fn authorize(
    shared: &Shared,
    conn: &Connection,
    hdr: &Header<'_>,
    what: &str,
) -> fdo::Result<()> {
    let sender = hdr.sender().ok_or_else(|| {
        fdo::Error::AccessDenied("a call without a sender is not accepted".into())
    })?;
    let dbus = fdo::DBusProxy::new(conn).await?;
    let uid = dbus
        .get_connection_unix_user(BusName::Unique(sender.clone()))
        .await?;
    if uid == 0 {
        return Ok(());
    }
    let group = &shared.access_group;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten();
    let member = user
        .as_ref()
        .is_some_and(|u| crate::access::is_member(u, group));
    if member {
        return Ok(());
    }
    let name = user.map(|u| u.name).unwrap_or_else(|| format!("uid {uid}"));
    Err(fdo::Error::AccessDenied(format!(
        "{what} needs root or membership of the group '{group}'; {name} (uid {uid}) is not a member. \
         Add it with `usermod -aG {group} {name}` and log in again."
    )))
}

/// An unprivileged caller may ask only about its own processes: the event
/// must name the caller's uid and a live process whose real uid that is.
fn own_process(uid: u32, ev: &Event) -> fdo::Result<()> {
    let refuse = |why: String| {
        Err(fdo::Error::AccessDenied(format!(
            "asking about pid {} needs root or membership of the access group, or the process \
             must be your own: {why}",
            ev.pid
        )))
    };
    if ev.uid != uid {
        return refuse(format!("the event names uid {}, you are uid {uid}", ev.uid));
    }
    let status = match std::fs::read_to_string(format!("/proc/{}/status", ev.pid)) {
        Ok(s) => s,
        Err(_) => return refuse("no such process".into()),
    };
    let real = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u32>().ok());
    match real {
        Some(r) if r == uid => Ok(()),
        Some(r) => refuse(format!("it runs as uid {r}")),
        None => refuse("its owner cannot be read".into()),
    }
}

struct DaemonIface {
    shared: Arc<Shared>,
    subs: Subscribers,
}

impl DaemonIface {
    /// After a change: wait for the kernel (which announces RulesChanged).
    async fn changed(&self, generation: u64) -> fdo::Result<()> {
        self.shared.installed(generation).await
    }
}

impl DaemonIface {
    /// Runs a query on a read connection of its own, off the bus thread.
    async fn with_store<T: Send + 'static>(
        &self,
        q: impl FnOnce(&mut dyn netev_store::Store) -> netev_store::Result<T> + Send + 'static,
    ) -> fdo::Result<T> {
        let Some(target) = self.shared.store.clone() else {
            return Err(fdo::Error::NotSupported(
                "netevd stores no events (started with --store none)".into(),
            ));
        };
        // A thread of its own, outside any runtime: the PostgreSQL engine
        // blocks on a runtime of its own.
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let res = netev_store::open_for_queries(&target).and_then(|mut s| q(s.as_mut()));
            let _ = tx.send(res);
        });
        rx.await
            .map_err(|_| fdo::Error::Failed("the query thread died".into()))?
            .map_err(|e| fdo::Error::Failed(format!("the event store: {e}")))
    }
}

#[zbus::interface(name = "org.netev.Daemon1")]
impl DaemonIface {
    /// Backend, hooks, counters, uptime, version. Allowed to everyone.
    async fn get_status(&self) -> WireStatus {
        WireStatus::from(&*self.shared.status.lock().expect("status lock"))
    }

    /// Starts or replaces the caller's subscription.
    async fn subscribe(
        &self,
        filter: HashMap<String, OwnedVariant>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        authorize(&self.shared, conn, &hdr, "subscribing to events").await?;
        let filter =
            Filter::from_dict(filter).map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let sender = hdr.sender().expect("authorized callers have a sender");
        let mut subs = self.subs.lock().expect("subscribers lock");
        let key = OwnedUniqueName::from(sender.to_owned());
        if !subs.contains_key(&key) && subs.len() >= MAX_SUBSCRIBERS {
            return Err(fdo::Error::LimitsExceeded(format!(
                "netevd serves at most {MAX_SUBSCRIBERS} subscribers"
            )));
        }
        info!(subscriber = %sender, ?filter, "subscribed");
        subs.insert(
            key,
            Subscriber {
                filter,
                batch: Vec::new(),
                batch_bytes: 0,
                dropped_seen: self.shared.bus_dropped(),
                in_flight: 0,
                lost: 0,
            },
        );
        self.shared.subscribers.store(subs.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Stored events matching `filter` (text pairs: since, until, exe, op,
    /// verdict, dest, port, host, limit), the newest `limit` (default 100),
    /// oldest first, each with the host that captured it.
    async fn query_events(
        &self,
        filter: HashMap<String, String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<(String, WireEvent)>> {
        authorize(&self.shared, conn, &hdr, "querying stored events").await?;
        let filter = netev_store::Filter::from_pairs(
            filter.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            chrono::Utc::now(),
        )
        .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let rows = self.with_store(move |s| s.query(&filter)).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.host, WireEvent::from(r.event)))
            .collect())
    }

    /// The busiest exes, destinations, ports or users (`by`) since `since`
    /// (an age such as 1h, or a time; empty: all stored), as (key,
    /// operations, events), busiest first, at most `limit` (0: 10).
    async fn top_events(
        &self,
        by: String,
        since: String,
        limit: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<(String, u64, u64)>> {
        authorize(&self.shared, conn, &hdr, "querying stored events").await?;
        let invalid = |e: netev_store::Error| fdo::Error::InvalidArgs(e.to_string());
        let by: netev_store::TopBy = by.parse().map_err(invalid)?;
        let since = if since.is_empty() {
            None
        } else {
            Some(netev_store::query::parse_time(&since, chrono::Utc::now()).map_err(invalid)?)
        };
        let limit = if limit == 0 { 10 } else { limit.min(10_000) };
        let rows = self.with_store(move |s| s.top(by, since, limit)).await?;
        Ok(rows.into_iter().map(|r| (r.key, r.ops, r.events)).collect())
    }

    /// Ends the caller's subscription.
    async fn unsubscribe(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        authorize(&self.shared, conn, &hdr, "unsubscribing").await?;
        if let Some(sender) = hdr.sender() {
            forget(&self.shared, &self.subs, sender);
        }
        Ok(())
    }

    /// Acknowledges `batches` Events signals as handled. A subscriber may
    /// have at most MAX_IN_FLIGHT (8) batches unacknowledged; beyond that its
    /// events are counted in the next batch's `lost` instead of queued.
    /// Only a current subscriber may call it (it was checked at Subscribe).
    async fn ack(&self, batches: u32, #[zbus(header)] hdr: Header<'_>) -> fdo::Result<()> {
        let sender = hdr.sender().ok_or_else(|| {
            fdo::Error::AccessDenied("a call without a sender is not accepted".into())
        })?;
        let mut subs = self.subs.lock().expect("subscribers lock");
        match subs.get_mut(&OwnedUniqueName::from(sender.to_owned())) {
            Some(sub) => {
                sub.in_flight = sub.in_flight.saturating_sub(batches);
                Ok(())
            }
            None => Err(fdo::Error::AccessDenied(
                "Ack is for subscribers: call Subscribe first".into(),
            )),
        }
    }

    /// Every rule, in id order, as text fields (docs/rules.md).
    async fn list_rules(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<HashMap<String, String>>> {
        authorize(&self.shared, conn, &hdr, "listing rules").await?;
        let engine = self.shared.rules.engine.lock().expect("engine lock");
        Ok(engine.rules().iter().map(listing).collect())
    }

    /// Adds a rule given as text fields; returns its id once the kernel
    /// decides with it.
    async fn add_rule(
        &self,
        fields: HashMap<String, String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<u32> {
        authorize(&self.shared, conn, &hdr, "adding rules").await?;
        let rule = netev_rules::fields::rule_from_fields(
            fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            chrono::Utc::now(),
            &crate::rules::lookup_user,
        )
        .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let (id, generation) = {
            let mut engine = self.shared.rules.engine.lock().expect("engine lock");
            (engine.add(rule).map_err(change_error)?, engine.generation)
        };
        self.changed(generation).await?;
        info!(rule = id, "rule added");
        Ok(id)
    }

    /// Changes the named fields of a rule (an empty value unsets a condition).
    async fn update_rule(
        &self,
        id: u32,
        fields: HashMap<String, String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        authorize(&self.shared, conn, &hdr, "changing rules").await?;
        let fields: Vec<(String, String)> = fields.into_iter().collect();
        let generation = {
            let mut engine = self.shared.rules.engine.lock().expect("engine lock");
            engine.update(id, &fields).map_err(change_error)?;
            engine.generation
        };
        self.changed(generation).await
    }

    /// Removes a rule.
    async fn remove_rule(
        &self,
        id: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        authorize(&self.shared, conn, &hdr, "removing rules").await?;
        let generation = {
            let mut engine = self.shared.rules.engine.lock().expect("engine lock");
            engine.remove(&[id]).map_err(change_error)?;
            engine.generation
        };
        self.changed(generation).await
    }

    /// Enables or disables a rule (disabled rules are kept but never match).
    async fn set_enabled(
        &self,
        id: u32,
        enabled: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        authorize(&self.shared, conn, &hdr, "enabling or disabling rules").await?;
        let generation = {
            let mut engine = self.shared.rules.engine.lock().expect("engine lock");
            engine.set_enabled(id, enabled).map_err(change_error)?;
            engine.generation
        };
        self.changed(generation).await
    }

    /// Sets what happens when no rule matches: op is an op name, "all", or
    /// "ask-fallback" (what the kernel does while a person is asked).
    async fn set_default_policy(
        &self,
        op: String,
        action: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        authorize(&self.shared, conn, &hdr, "changing the default policy").await?;
        let generation = {
            let mut engine = self.shared.rules.engine.lock().expect("engine lock");
            engine.set_default(&op, &action).map_err(change_error)?;
            engine.generation
        };
        self.changed(generation).await
    }

    /// The default action per op, and "ask-fallback".
    async fn get_default_policy(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<HashMap<String, String>> {
        authorize(&self.shared, conn, &hdr, "reading the default policy").await?;
        let engine = self.shared.rules.engine.lock().expect("engine lock");
        let p = engine.policy();
        let mut out: HashMap<String, String> = netev_event::Op::ALL
            .iter()
            .map(|op| (op.name().to_string(), p.for_op(*op).name().to_string()))
            .collect();
        out.insert("ask-fallback".into(), p.ask_fallback.name().into());
        Ok(out)
    }

    /// Adds the rules of a rules file (TOML text; `name` names it in errors),
    /// replacing all rules if `replace`. All or nothing; returns how many.
    async fn import_rules(
        &self,
        name: String,
        text: String,
        replace: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<u32> {
        authorize(&self.shared, conn, &hdr, "importing rules").await?;
        let rules =
            netev_rules::file::parse(&name, &text, chrono::Utc::now(), &crate::rules::lookup_user)
                .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let (n, generation) = {
            let mut engine = self.shared.rules.engine.lock().expect("engine lock");
            (
                engine.add_many(rules, replace).map_err(change_error)?,
                engine.generation,
            )
        };
        self.changed(generation).await?;
        info!(rules = n, replace, "rules imported from {name}");
        Ok(n as u32)
    }

    /// Every rule as a rules file (TOML).
    async fn export_rules(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        authorize(&self.shared, conn, &hdr, "exporting rules").await?;
        let engine = self.shared.rules.engine.lock().expect("engine lock");
        Ok(netev_rules::file::export(engine.rules(), &user_name))
    }

    /// Makes the caller a prompter: it gets Prompt and PromptClosed signals
    /// (unicast) until it leaves the bus. Returns the prompts now pending.
    async fn watch_prompts(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<Vec<(u64, WireEvent)>> {
        authorize(&self.shared, conn, &hdr, "answering prompts").await?;
        let sender = hdr.sender().expect("authorized callers have a sender");
        let mut prompts = self.shared.prompts.lock().expect("prompts lock");
        prompts
            .watchers
            .insert(OwnedUniqueName::from(sender.to_owned()));
        let mut pending: Vec<(u64, WireEvent)> = prompts
            .pending
            .iter()
            .map(|(id, (ev, _))| (*id, WireEvent::from(ev)))
            .collect();
        pending.sort_by_key(|(id, _)| *id);
        Ok(pending)
    }

    /// Answers a prompt: makes a rule (action allow|deny; duration once, 5m,
    /// until-restart, always…; scope exe, exe+dest, exe+port, exe+dest+port)
    /// and returns its id once the kernel decides with it.
    async fn answer_prompt(
        &self,
        id: u64,
        action: String,
        duration: String,
        scope: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<u32> {
        authorize(&self.shared, conn, &hdr, "answering prompts").await?;
        let action: netev_rules::Action = action
            .parse()
            .map_err(|e: netev_rules::RuleError| fdo::Error::InvalidArgs(e.to_string()))?;
        if action == netev_rules::Action::Ask {
            return Err(fdo::Error::InvalidArgs("answer allow or deny".into()));
        }
        let (ev, asked) = {
            let prompts = self.shared.prompts.lock().expect("prompts lock");
            let ev = prompts.pending.get(&id).map(|(ev, _)| ev.clone());
            (ev, prompts.asks.contains_key(&id))
        };
        let ev = ev.ok_or_else(|| {
            fdo::Error::InvalidArgs(format!("no pending prompt {id} (answered or expired)"))
        })?;
        if asked {
            // Checked as a rule would be, so that a wrong answer is refused
            // here and not in the asker.
            rule_for_answer(&ev, action, &duration, &scope)
                .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
            let waiters = {
                let mut prompts = self.shared.prompts.lock().expect("prompts lock");
                let waiters = prompts.asks.remove(&id).unwrap_or_default();
                prompts.asks.insert(id, Vec::new());
                prompts.take(id);
                waiters
            };
            for w in waiters {
                let _ = w
                    .answer
                    .send((action.name().into(), duration.clone(), scope.clone()));
            }
            self.shared.control(Control::PromptClosed(id, "answered"));
            info!(prompt = id, "ask answered");
            return Ok(0);
        }
        let mut rule = rule_for_answer(&ev, action, &duration, &scope)
            .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let (rule_id, generation) = {
            let mut engine = self.shared.rules.engine.lock().expect("engine lock");
            // the answer goes before the rule that asked (the default
            // policy is below every rule anyway)
            if let Some(asking) = ev
                .rule
                .and_then(|id| engine.rules().iter().find(|r| r.id == id))
            {
                rule.priority = asking.priority.saturating_add(1);
            }
            (engine.add(rule).map_err(change_error)?, engine.generation)
        };
        self.shared.prompts.lock().expect("prompts lock").take(id);
        self.shared.control(Control::PromptClosed(id, "answered"));
        self.changed(generation).await?;
        info!(prompt = id, rule = rule_id, "prompt answered");
        Ok(rule_id)
    }

    /// Raises a prompt about `event` for the prompters (the usual `Prompt`
    /// signal) and returns the answer (action, duration, scope) when one
    /// answers it with `AnswerPrompt`, or ("", "", "") when nobody did
    /// within `timeout_ms`. Used by `netev run`, whose program waits.
    async fn ask(
        &self,
        event: WireEvent,
        timeout_ms: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<(String, String, String)> {
        let ev = Event::try_from(event)
            .map_err(|e| fdo::Error::InvalidArgs(format!("the event: {e}")))?;
        let sender = hdr
            .sender()
            .ok_or_else(|| {
                fdo::Error::AccessDenied("a call without a sender is not accepted".into())
            })?
            .to_owned();
        let uid = fdo::DBusProxy::new(conn)
            .await?
            .get_connection_unix_user(BusName::Unique(sender.clone()))
            .await?;
        let privileged = authorize(&self.shared, conn, &hdr, "asking").await.is_ok();
        if !privileged {
            own_process(uid, &ev)?;
        }
        let wait = Duration::from_millis(timeout_ms.into()).min(MAX_ASK_WAIT);
        let (tx, rx) = oneshot::channel();
        let (id, new) = {
            let mut prompts = self.shared.prompts.lock().expect("prompts lock");
            if !privileged && prompts.asks_of(uid) >= MAX_ASKS_PER_USER {
                return Err(fdo::Error::LimitsExceeded(format!(
                    "uid {uid} already has {MAX_ASKS_PER_USER} questions pending"
                )));
            }
            let waiter = Waiter {
                caller: OwnedUniqueName::from(sender),
                uid,
                answer: tx,
            };
            prompts.ask(&ev, waiter, std::time::Instant::now() + wait)
        };
        if new {
            info!(prompt = id, exe = ?ev.exe, op = ev.op.name(), uid, "asked");
            self.shared.control(Control::Prompt(id, ev));
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            // expired (by the daemon's clock) or withdrawn
            Ok(Err(_)) => Ok(Default::default()),
            Err(_) => {
                // Our own deadline: stop waiting; if nobody else waits, the
                // prompt is over.
                let closed = {
                    let mut prompts = self.shared.prompts.lock().expect("prompts lock");
                    let mine = prompts.asks.get_mut(&id);
                    let empty = mine.is_some_and(|w| {
                        w.retain(|w| !w.answer.is_closed());
                        w.is_empty()
                    });
                    if empty {
                        prompts.take(id);
                    }
                    empty
                };
                if closed {
                    self.shared.control(Control::PromptClosed(id, "expired"));
                }
                Ok(Default::default())
            }
        }
    }

    /// Rules or the default policy changed: reload them.
    #[zbus(signal)]
    async fn rules_changed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    /// A rule or the default said "ask" for this operation (the ask fallback
    /// was applied). Unicast to prompters (WatchPrompts).
    #[zbus(signal)]
    async fn prompt(emitter: &SignalEmitter<'_>, id: u64, event: WireEvent) -> zbus::Result<()>;

    /// A prompt was answered (by anyone) or expired.
    #[zbus(signal)]
    async fn prompt_closed(
        emitter: &SignalEmitter<'_>,
        id: u64,
        reason: String,
    ) -> zbus::Result<()>;

    /// A batch of events for one subscriber (unicast).
    #[zbus(signal)]
    async fn events(
        emitter: &SignalEmitter<'_>,
        batch: Vec<WireEvent>,
        lost: u64,
    ) -> zbus::Result<()>;

    /// Daemon version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// Capture backend.
    #[zbus(property(emits_changed_signal = "const"))]
    fn backend(&self) -> String {
        self.shared
            .status
            .lock()
            .expect("status lock")
            .backend
            .clone()
    }

    /// Attached hooks: (op, attach point, enforce|observe).
    #[zbus(property(emits_changed_signal = "const"))]
    fn hooks(&self) -> Vec<WireHook> {
        WireStatus::from(&*self.shared.status.lock().expect("status lock")).hooks
    }

    /// Counters by name; read on demand (no change signals: they change all the time).
    #[zbus(property(emits_changed_signal = "false"))]
    fn counters(&self) -> HashMap<String, u64> {
        WireStatus::from(&*self.shared.status.lock().expect("status lock")).counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_event::Op;

    fn encoded(exe_len: usize) -> EncodedEvent {
        let mut ev = Event::new(Op::Connect);
        ev.exe = Some("x".repeat(exe_len));
        EncodedEvent::new(&WireEvent::from(&ev)).unwrap()
    }

    #[test]
    fn batches_are_bounded_in_events_and_bytes_and_by_credit() {
        for (exe_len, credit) in [(0, 8), (10, 8), (2000, 3), (200, 1)] {
            let (chunks, rest) =
                split_batches((0..2500).map(|_| encoded(exe_len)).collect(), credit);
            assert!(chunks.len() <= credit);
            for c in &chunks {
                let bytes: usize = c.iter().map(EncodedEvent::wire_len).sum();
                assert!(
                    c.len() <= MAX_BATCH && bytes <= MAX_BATCH_BYTES,
                    "{} events, {bytes} bytes",
                    c.len()
                );
                assert!(!c.is_empty());
            }
            let sent: usize = chunks.iter().map(Vec::len).sum();
            assert_eq!(sent + rest.len(), 2500, "nothing lost in the split");
            if !rest.is_empty() {
                assert_eq!(chunks.len(), credit, "fills the credit before holding back");
            }
        }
        // an event bigger than a batch still goes, alone
        let (chunks, rest) = split_batches(vec![encoded(MAX_BATCH_BYTES)], 1);
        assert_eq!((chunks.len(), chunks[0].len(), rest.len()), (1, 1, 0));
        // nothing to send still gives one (empty) batch, to carry `lost`
        let (chunks, _) = split_batches(Vec::new(), 8);
        assert_eq!(chunks, [Vec::<EncodedEvent>::new()]);
    }
}
