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
    BUS_NAME, EVENTS_SIGNATURE, INTERFACE, MAX_BATCH, OBJECT_PATH,
};
use netev_event::status::Status;
use netev_event::Event;
use tokio::sync::{mpsc, oneshot};
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
/// may hold for it, ~2 MiB, so no subscriber can make dbus-daemon stop
/// reading from netevd (it charges undelivered messages to their sender:
/// 32 subscribers x 2 MiB stays well under its 127 MiB default).
pub const MAX_IN_FLIGHT: u32 = netev_dbus::MAX_IN_FLIGHT;

/// Which bus to serve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusTarget {
    /// The system bus.
    System,
    /// The session bus of the calling user.
    Session,
    /// A bus address (`unix:path=...`).
    Address(String),
}

/// `--bus`: a bus, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSpec(pub Option<BusTarget>);

impl std::str::FromStr for BusSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            Ok(BusSpec(None))
        } else {
            s.parse().map(|t| BusSpec(Some(t)))
        }
    }
}

impl std::str::FromStr for BusTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "system" => BusTarget::System,
            "session" => BusTarget::Session,
            a if a.contains(':') => {
                a.parse::<zbus::Address>()
                    .map_err(|e| format!("{a:?} is not a D-Bus address: {e}"))?;
                BusTarget::Address(a.to_string())
            }
            other => {
                return Err(format!(
                    "{other:?} is not a bus: use system, session, none, or an address such as unix:path=/run/netev/bus"
                ))
            }
        })
    }
}

impl BusTarget {
    fn describe(&self) -> String {
        match self {
            BusTarget::System => "the system bus".into(),
            BusTarget::Session => "the session bus".into(),
            BusTarget::Address(a) => format!("the bus at {a}"),
        }
    }

    fn builder(&self) -> zbus::connection::Builder<'static> {
        match self {
            BusTarget::System => zbus::connection::Builder::system(),
            BusTarget::Session => zbus::connection::Builder::session(),
            BusTarget::Address(a) => zbus::connection::Builder::address(
                a.parse::<zbus::Address>().expect("checked when parsed"),
            ),
        }
    }
}

/// State shared by the capture loop, the bus thread and the interface.
pub struct Shared {
    status: Mutex<Status>,
    subscribers: AtomicUsize,
    bus_dropped: AtomicU64,
    access_group: String,
}

impl Shared {
    pub fn new(status: Status, access_group: String) -> Arc<Shared> {
        Arc::new(Shared {
            status: Mutex::new(status),
            subscribers: AtomicUsize::new(0),
            bus_dropped: AtomicU64::new(0),
            access_group,
        })
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
    if let Err(e) = pump(&conn, &shared, &subs, rx, stop).await {
        warn!("D-Bus connector stopped: {e:#}");
    }
}

/// Moves events from the queue into per-subscriber batches and sends them.
async fn pump(
    conn: &Connection,
    shared: &Shared,
    subs: &Subscribers,
    mut rx: mpsc::Receiver<Event>,
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
            Some(change) = owners.next() => {
                let Ok(args) = change.args() else { continue };
                if args.new_owner().is_none() {
                    if let BusName::Unique(name) = args.name() {
                        forget(shared, subs, name);
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
                    s.batch.len() >= MAX_BATCH
                } else {
                    !s.batch.is_empty() || lost > 0
                };
                let credit = MAX_IN_FLIGHT.saturating_sub(s.in_flight);
                if !due || credit == 0 {
                    return None;
                }
                // Whole batches while credit lasts; the rest waits.
                let take = (credit as usize)
                    .saturating_mul(MAX_BATCH)
                    .min(s.batch.len());
                let rest = s.batch.split_off(take);
                let mut sending = std::mem::replace(&mut s.batch, rest);
                let mut chunks: Vec<Vec<EncodedEvent>> = Vec::new();
                while sending.len() > MAX_BATCH {
                    let tail = sending.split_off(MAX_BATCH);
                    chunks.push(std::mem::replace(&mut sending, tail));
                }
                // the last (or only) chunk; an empty one only reports `lost`
                chunks.push(sending);
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

struct DaemonIface {
    shared: Arc<Shared>,
    subs: Subscribers,
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
                dropped_seen: self.shared.bus_dropped(),
                in_flight: 0,
                lost: 0,
            },
        );
        self.shared.subscribers.store(subs.len(), Ordering::Relaxed);
        Ok(())
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
