//! netev-gtk: the desktop front-end of netev. It talks to netevd only over
//! D-Bus (`netev-dbus`), checks rules with the daemon's own rule crate
//! (`netev-rules`), and shows:
//!
//! - a tray item (StatusNotifierItem) whose icon says whether netevd runs,
//!   whether prompts wait, or whether it cannot be reached;
//! - each prompt as a desktop notification with Allow / Deny / Process…;
//! - the "Create a rule" dialog, pre-filled from an event or a prompt;
//! - the "Security console": rules, live events with a chart, status.
//!
//! The logic that does not need a display lives in plain modules (`form`,
//! `prompts`, `rules_model`, `events_model`, `state`) and is unit-tested
//! without GTK; the widgets (`dialog`, `console`, `chart`) are tested with
//! `#[gtk::test]` under Xvfb; `bus`, `notify` and `tray` are the D-Bus
//! sides, and `app` ties them together.
#![deny(missing_docs)]

pub mod app;
pub mod bus;
pub mod chart;
pub mod console;
pub mod dialog;
pub mod events_model;
pub mod form;
pub mod notify;
pub mod prompts;
pub mod rules_model;
pub mod state;
pub mod tray;
pub mod users;

/// Sample events for tests.
#[doc(hidden)]
pub mod testing {
    use netev_dbus::WireEvent;

    /// A `connect` of /usr/bin/curl (pid 4242, alice) to 192.0.2.7:8080/tcp, denied by rule 3.
    pub fn connect_event() -> WireEvent {
        WireEvent {
            ts_ns: 1_700_000_000_000_000_000,
            pid: 4242,
            tid: 4242,
            ppid: 1,
            uid: 1000,
            gid: 1000,
            user: "alice".into(),
            comm: "curl".into(),
            exe: "/usr/bin/curl".into(),
            cmdline: "curl http://192.0.2.7:8080/".into(),
            op: "connect".into(),
            family: "inet".into(),
            sock_type: "stream".into(),
            proto: "tcp".into(),
            laddr: "0.0.0.0".into(),
            lport: 0,
            raddr: "192.0.2.7".into(),
            rport: 8080,
            has_ret: false,
            ret: 0,
            verdict: "deny".into(),
            rule: 3,
            count: 1,
        }
    }
}
