//! netevd over D-Bus, on a tokio runtime of its own beside GTK's main loop.
//!
//! One task keeps the connection: it (re)connects to the bus, follows who
//! owns netevd's name, becomes a prompter, subscribes to events while the
//! console wants them, reads the status once a second, and sends every
//! change to the GTK side as an [`Update`]. Calls (add a rule, answer a
//! prompt, …) go through [`Client::call`], which runs them on the runtime
//! and hands back the result as a future GTK's main loop can await.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use netev_dbus::{Daemon1Proxy, Filter, WireEvent, WireStatus, BUS_NAME};
use tokio::sync::{mpsc, oneshot, watch};
use zbus::Connection;

use crate::state::{CallError, DaemonState};

/// How often the status (counters) is read while netevd runs.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How long to wait before trying an unreachable bus again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

pub use netev_dbus::BusChoice;

/// Connects to a bus.
pub async fn connect(bus: &BusChoice) -> zbus::Result<Connection> {
    bus.connect().await
}

/// What happened, for the GTK side.
#[derive(Debug, Clone)]
pub enum Update {
    /// The connection state changed.
    State(DaemonState),
    /// A fresh status (counters change every second).
    Status(WireStatus),
    /// A batch of live events, and how many were lost before it.
    Events(Vec<WireEvent>, u64),
    /// A prompt: new, or pending when we became a prompter.
    /// A prompt, and whether a supervisor asked it (`Ask`: its call is the
    /// asker's word, not something netevd saw).
    Prompt(u64, WireEvent, bool),
    /// A prompt was answered (by anyone) or expired.
    PromptClosed(u64, String),
    /// Rules changed: list them again.
    RulesChanged,
}

/// The handle GTK code uses: calls to netevd, and whether to subscribe.
#[derive(Clone)]
pub struct Client {
    rt: tokio::runtime::Handle,
    proxy: Arc<Mutex<Option<Daemon1Proxy<'static>>>>,
    subscribe: watch::Sender<bool>,
    bus: BusChoice,
}

impl Client {
    /// Starts the connection task on `rt`; updates arrive on the receiver.
    pub fn start(
        rt: tokio::runtime::Handle,
        bus: BusChoice,
    ) -> (Client, mpsc::UnboundedReceiver<Update>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribe, sub_rx) = watch::channel(false);
        let client = Client {
            rt: rt.clone(),
            proxy: Arc::new(Mutex::new(None)),
            subscribe,
            bus: bus.clone(),
        };
        let proxy = client.proxy.clone();
        rt.spawn(supervise(bus, tx, proxy, sub_rx));
        (client, rx)
    }

    /// The bus, for messages.
    pub fn bus(&self) -> &BusChoice {
        &self.bus
    }

    /// Whether live events are wanted (the console is open).
    pub fn set_subscribed(&self, on: bool) {
        self.subscribe.send_replace(on);
    }

    /// Runs `f` with the daemon's proxy on the bus runtime; the result can
    /// be awaited from any executor (GTK's main loop included).
    pub fn call<T, F, Fut>(&self, f: F) -> impl Future<Output = Result<T, CallError>> + 'static
    where
        T: Send + 'static,
        F: FnOnce(Daemon1Proxy<'static>) -> Fut + Send + 'static,
        Fut: Future<Output = zbus::Result<T>> + Send + 'static,
    {
        let proxy = self.proxy.lock().unwrap().clone();
        let (tx, rx) = oneshot::channel();
        let bus = self.bus.to_string();
        self.rt.spawn(async move {
            let r = match proxy {
                None => Err(CallError::NotConnected(format!(
                    "netevd is not reachable on {bus}"
                ))),
                Some(p) => f(p).await.map_err(CallError::from),
            };
            let _ = tx.send(r);
        });
        async move {
            rx.await
                .unwrap_or_else(|_| Err(CallError::Other("the bus task stopped".into())))
        }
    }
}

/// How a session with one bus connection ended.
enum Ended {
    /// The connection to the bus broke.
    BusLost,
}

async fn supervise(
    bus: BusChoice,
    tx: mpsc::UnboundedSender<Update>,
    proxy_slot: Arc<Mutex<Option<Daemon1Proxy<'static>>>>,
    mut subscribe: watch::Receiver<bool>,
) {
    let send = |u: Update| {
        let _ = tx.send(u);
    };
    send(Update::State(DaemonState::Connecting));
    let mut had_bus = false;
    let mut had_daemon = false;
    loop {
        let conn = match connect(&bus).await {
            Ok(c) => c,
            Err(e) => {
                send(Update::State(if had_bus {
                    DaemonState::BusLost {
                        bus: bus.to_string(),
                    }
                } else {
                    DaemonState::BusUnreachable {
                        bus: bus.to_string(),
                        error: e.to_string(),
                    }
                }));
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        let regained = had_bus;
        had_bus = true;
        match with_connection(
            &bus,
            &conn,
            &send,
            &proxy_slot,
            &mut subscribe,
            regained,
            &mut had_daemon,
        )
        .await
        {
            Ended::BusLost => {
                *proxy_slot.lock().unwrap() = None;
                send(Update::State(DaemonState::BusLost {
                    bus: bus.to_string(),
                }));
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
}

/// Follows netevd on one bus connection until the connection breaks.
async fn with_connection(
    bus: &BusChoice,
    conn: &Connection,
    send: &impl Fn(Update),
    proxy_slot: &Arc<Mutex<Option<Daemon1Proxy<'static>>>>,
    subscribe: &mut watch::Receiver<bool>,
    mut regained: bool,
    had_daemon: &mut bool,
) -> Ended {
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return Ended::BusLost;
    };
    let Ok(mut owners) = dbus
        .receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
        .await
    else {
        return Ended::BusLost;
    };
    loop {
        let has_owner = match dbus
            .name_has_owner(BUS_NAME.try_into().expect("a valid bus name"))
            .await
        {
            Ok(b) => b,
            Err(_) => return Ended::BusLost,
        };
        if !has_owner {
            *proxy_slot.lock().unwrap() = None;
            send(Update::State(DaemonState::NotRunning {
                bus: bus.to_string(),
            }));
            // wait for someone to take the name
            loop {
                match owners.next().await {
                    None => return Ended::BusLost,
                    Some(sig) => {
                        if sig.args().map(|a| a.new_owner.is_some()).unwrap_or(false) {
                            break;
                        }
                    }
                }
            }
            regained |= *had_daemon;
            continue;
        }
        let outcome = with_daemon(conn, send, proxy_slot, subscribe, &mut owners, regained).await;
        *had_daemon = true;
        *proxy_slot.lock().unwrap() = None;
        match outcome {
            DaemonEnded::BusLost => return Ended::BusLost,
            DaemonEnded::Left => {
                regained = true;
            }
        }
    }
}

enum DaemonEnded {
    BusLost,
    Left,
}

/// One run of netevd: prompter, subscriber, status reader.
async fn with_daemon(
    conn: &Connection,
    send: &impl Fn(Update),
    proxy_slot: &Arc<Mutex<Option<Daemon1Proxy<'static>>>>,
    subscribe: &mut watch::Receiver<bool>,
    owners: &mut zbus::fdo::NameOwnerChangedStream,
    regained: bool,
) -> DaemonEnded {
    let proxy = match Daemon1Proxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
    {
        Ok(p) => p,
        Err(_) => return DaemonEnded::BusLost,
    };
    *proxy_slot.lock().unwrap() = Some(proxy.clone());
    // Listen before asking, so that nothing falls between the two.
    let (Ok(mut prompts), Ok(mut closed), Ok(mut events), Ok(mut changed)) = (
        proxy.receive_prompt().await,
        proxy.receive_prompt_closed().await,
        proxy.receive_events().await,
        proxy.receive_rules_changed().await,
    ) else {
        return DaemonEnded::BusLost;
    };
    let version = match proxy.get_status().await {
        Ok(s) => {
            let v = s.version.clone();
            send(Update::Status(s));
            v
        }
        Err(e) => match CallError::from(e) {
            CallError::NotRunning => return wait_owner_gone(owners).await,
            _ => String::from("?"),
        },
    };
    let mut denied = false;
    match proxy.watch_prompts().await {
        Ok(pending) => {
            send(Update::State(DaemonState::Running { version, regained }));
            send(Update::RulesChanged);
            for (id, ev, origin) in pending {
                send(Update::Prompt(id, ev, origin != netev_dbus::origin::KERNEL));
            }
        }
        Err(e) => match CallError::from(e) {
            CallError::AccessDenied(raw) => {
                denied = true;
                // SAFETY: getuid has no preconditions.
                let uid = unsafe { libc::getuid() };
                let message = crate::state::access_denied_message(
                    &raw,
                    crate::users::current_user().as_deref(),
                    uid,
                );
                send(Update::State(DaemonState::AccessDenied { message }));
            }
            CallError::NotRunning => return wait_owner_gone(owners).await,
            other => send(Update::State(DaemonState::AccessDenied {
                message: other.to_string(),
            })),
        },
    }
    let mut subscribed = false;
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let want = *subscribe.borrow_and_update() && !denied;
        if want != subscribed {
            let r = if want {
                proxy.subscribe(Filter::default().to_dict()).await
            } else {
                proxy.unsubscribe().await
            };
            if r.is_ok() {
                subscribed = want;
            }
        }
        tokio::select! {
            sig = prompts.next() => {
                let Some(sig) = sig else { return DaemonEnded::BusLost };
                if let Ok(a) = sig.args() {
                    let asked = a.origin != netev_dbus::origin::KERNEL;
                    send(Update::Prompt(a.id, a.event, asked));
                }
            }
            sig = closed.next() => {
                let Some(sig) = sig else { return DaemonEnded::BusLost };
                if let Ok(a) = sig.args() {
                    send(Update::PromptClosed(a.id, a.reason));
                }
            }
            sig = events.next() => {
                let Some(sig) = sig else { return DaemonEnded::BusLost };
                if let Ok(a) = sig.args() {
                    send(Update::Events(a.batch, a.lost));
                }
                // flow control: ready for the next batch
                let _ = proxy.ack(1).await;
            }
            sig = changed.next() => {
                if sig.is_none() { return DaemonEnded::BusLost }
                send(Update::RulesChanged);
            }
            _ = subscribe.changed() => {}
            _ = status_tick.tick() => {
                match proxy.get_status().await {
                    Ok(s) => send(Update::Status(s)),
                    Err(zbus::Error::InputOutput(_)) => return DaemonEnded::BusLost,
                    Err(_) => {}
                }
            }
            change = owners.next() => {
                match change {
                    None => return DaemonEnded::BusLost,
                    Some(sig) => {
                        // gone, or replaced by a new netevd: start over
                        if sig.args().is_ok() {
                            return DaemonEnded::Left;
                        }
                    }
                }
            }
        }
    }
}

async fn wait_owner_gone(owners: &mut zbus::fdo::NameOwnerChangedStream) -> DaemonEnded {
    match owners.next().await {
        None => DaemonEnded::BusLost,
        Some(_) => DaemonEnded::Left,
    }
}
