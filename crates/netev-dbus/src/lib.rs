//! netev's D-Bus protocol, as clients see it: the names, the typed wire
//! structs for events and status, the subscription filter, and a zbus proxy.
//! The CLI and the GUI use this crate and never compile the daemon.
//!
//! The protocol is documented in `docs/dbus.md`; the introspection XML in
//! `dist/dbus/org.netev.Daemon1.xml` is checked against the running daemon by
//! the end-to-end tests, and against [`Daemon1Proxy`] by this crate's tests.
//!
//! ```no_run
//! # async fn demo() -> zbus::Result<()> {
//! use futures_util::StreamExt;
//! use netev_dbus::{Daemon1Proxy, Filter};
//! let conn = zbus::Connection::system().await?;
//! let daemon = Daemon1Proxy::new(&conn).await?;
//! let mut events = daemon.receive_events().await?;
//! daemon.subscribe(Filter { ops: vec!["connect".into()], ..Filter::default() }.to_dict()).await?;
//! while let Some(signal) = events.next().await {
//!     for ev in signal.args()?.batch {
//!         println!("{} {}", ev.op, ev.exe);
//!     }
//!     daemon.ack(1).await?; // flow control: see docs/dbus.md
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod bus_choice;
mod encoded;
mod filter;
mod members;
#[cfg(test)]
mod proxy_check;
mod wire;

pub use bus_choice::BusChoice;
pub use encoded::{events_body, EncodedEvent, EVENTS_SIGNATURE};
pub use filter::{Filter, FilterError};
pub use wire::{WireError, WireEvent, WireHook, WireStatus};

use std::collections::HashMap;

use zbus::Variant as Value;

/// The daemon's well-known bus name. The `1` is the protocol's major
/// version: an incompatible change gets a new name, served beside this one.
pub const BUS_NAME: &str = "org.netev.Daemon1";
/// The daemon's object path.
pub const OBJECT_PATH: &str = "/org/netev/Daemon1";
/// The daemon's interface.
pub const INTERFACE: &str = "org.netev.Daemon1";

/// Most events in one `Events` signal.
pub const MAX_BATCH: usize = 1024;
/// Most bytes of events in one `Events` signal (a batch always carries at
/// least one event). With [`MAX_IN_FLIGHT`] this bounds what dbus-daemon holds
/// for one subscriber to ~512 KiB, whatever the events look like.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Longest an event waits in a batch before the batch is sent, in ms.
pub const BATCH_INTERVAL_MS: u64 = 50;
/// Batches a subscriber may have unacknowledged (see `Ack`).
pub const MAX_IN_FLIGHT: u32 = 8;

/// A prompt's origin (the Prompt signal's and WatchPrompts' `origin`): how
/// much of its event netevd vouches for.
pub mod origin {
    /// Decided "ask" in the kernel: all of the event is as netevd saw it.
    pub const KERNEL: &str = "kernel";
    /// A supervisor's `Ask`: the process (pid, uid, user, exe, command
    /// line) as netevd read it from /proc; the call is the asker's word.
    pub const ASK: &str = "ask";
    /// A privileged `Ask` about a process netevd could not read: all of the
    /// event is the asker's word.
    pub const ASK_UNVERIFIED: &str = "ask-unverified";
}

// The trait as zbus sees it, and (for the test in proxy_check.rs, which
// compares it with dist/dbus/org.netev.Daemon1.xml) the list of its members.
members::proxy_with_members! {
members: daemon1_members;
/// Client side of `org.netev.Daemon1`.
#[zbus::proxy(
    interface = "org.netev.Daemon1",
    default_service = "org.netev.Daemon1",
    default_path = "/org/netev/Daemon1"
)]
pub trait Daemon1 {
    /// Backend, hooks, counters, uptime, version. Allowed to everyone.
    fn get_status(&self) -> zbus::Result<WireStatus>;

    /// Stored events matching a filter (text pairs: since, until, exe, op,
    /// verdict, dest, port, host, limit), newest `limit` oldest first, with
    /// their host. Needs uid 0 or the access group.
    fn query_events(&self, filter: HashMap<&str, &str>) -> zbus::Result<Vec<(String, WireEvent)>>;

    /// The busiest exe/dest/port/user keys since a time, as (key, operations,
    /// events). Needs uid 0 or the access group.
    fn top_events(
        &self,
        by: &str,
        since: &str,
        limit: u32,
    ) -> zbus::Result<Vec<(String, u64, u64)>>;

    /// Starts (or replaces) this connection's subscription: from now on the
    /// daemon sends it `Events` signals with the events the filter accepts.
    /// Needs uid 0 or the access group.
    fn subscribe(&self, filter: HashMap<&str, Value<'_>>) -> zbus::Result<()>;

    /// Ends this connection's subscription.
    fn unsubscribe(&self) -> zbus::Result<()>;

    /// Acknowledges `batches` Events signals as handled. The daemon keeps at
    /// most [`MAX_IN_FLIGHT`] batches unacknowledged per subscriber; a client
    /// that does not acknowledge gets only `lost` counts after that.
    /// Sent without waiting for a reply, so acknowledging costs no round trip.
    #[zbus(no_reply)]
    fn ack(&self, batches: u32) -> zbus::Result<()>;

    /// A batch of events for this subscriber, in capture order, and how many
    /// events the daemon could not publish since the previous batch.
    #[zbus(signal)]
    fn events(&self, batch: Vec<WireEvent>, lost: u64) -> zbus::Result<()>;

    /// Every rule, in id order, as text fields (docs/rules.md).
    fn list_rules(&self) -> zbus::Result<Vec<HashMap<String, String>>>;

    /// Adds a rule given as text fields; returns its id once the kernel
    /// decides with it.
    #[zbus(allow_interactive_auth)]
    fn add_rule(&self, fields: HashMap<&str, &str>) -> zbus::Result<u32>;

    /// Changes the named fields of a rule (an empty value unsets a condition).
    #[zbus(allow_interactive_auth)]
    fn update_rule(&self, id: u32, fields: HashMap<&str, &str>) -> zbus::Result<()>;

    /// Removes a rule.
    #[zbus(allow_interactive_auth)]
    fn remove_rule(&self, id: u32) -> zbus::Result<()>;

    /// Enables or disables a rule.
    #[zbus(allow_interactive_auth)]
    fn set_enabled(&self, id: u32, enabled: bool) -> zbus::Result<()>;

    /// Sets the default action for an op, "all", or "ask-fallback".
    #[zbus(allow_interactive_auth)]
    fn set_default_policy(&self, op: &str, action: &str) -> zbus::Result<()>;

    /// The default action per op, and "ask-fallback".
    fn get_default_policy(&self) -> zbus::Result<HashMap<String, String>>;

    /// Adds the rules of a TOML rules file (all or nothing); returns how many.
    #[zbus(allow_interactive_auth)]
    fn import_rules(&self, name: &str, text: &str, replace: bool) -> zbus::Result<u32>;

    /// Every rule as a TOML rules file.
    fn export_rules(&self) -> zbus::Result<String>;

    /// Become a prompter: Prompt/PromptClosed signals come to this
    /// connection. Returns the oldest prompts pending now (at most 64; the
    /// others follow as Prompt signals), each with its origin.
    fn watch_prompts(&self) -> zbus::Result<Vec<(u64, WireEvent, String)>>;

    /// Answers a prompt with a rule; returns the rule's id.
    #[zbus(allow_interactive_auth)]
    fn answer_prompt(
        &self,
        id: u64,
        action: &str,
        duration: &str,
        scope: &str,
    ) -> zbus::Result<u32>;

    /// Raises a prompt about `event` (a process of the caller's own, unless
    /// the caller is root or in the access group) and waits for its answer:
    /// (action, duration, scope) as given to `AnswerPrompt`, or three empty
    /// strings when nobody answered within `timeout_ms`. `netev run` asks
    /// with it; the answer makes no rule in the daemon.
    fn ask(&self, event: &WireEvent, timeout_ms: u32) -> zbus::Result<(String, String, String)>;

    /// Rules or the default policy changed.
    #[zbus(signal)]
    fn rules_changed(&self) -> zbus::Result<()>;

    /// A question about an operation. `origin`: "kernel" (decided "ask" in
    /// the kernel, the fallback applied meanwhile; all of it as netevd saw
    /// it), "ask" (a supervisor's `Ask`: the process as netevd read it, the
    /// call the asker's word), "ask-unverified" (all of it the asker's word).
    #[zbus(signal)]
    fn prompt(&self, id: u64, event: WireEvent, origin: String) -> zbus::Result<()>;

    /// A prompt was answered or expired.
    #[zbus(signal)]
    fn prompt_closed(&self, id: u64, reason: String) -> zbus::Result<()>;

    /// Daemon version.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    /// Capture backend.
    #[zbus(property)]
    fn backend(&self) -> zbus::Result<String>;

    /// Counters (seen, delivered, dropped, …).
    #[zbus(property)]
    fn counters(&self) -> zbus::Result<HashMap<String, u64>>;

    /// Attached hooks: (op, attach point, enforce|observe).
    #[zbus(property)]
    fn hooks(&self) -> zbus::Result<Vec<WireHook>>;
}
}
