//! What the front-end knows about netevd, worded for people: the connection
//! state with what to do about it, errors of calls, and the status page.

use netev_dbus::{WireStatus, BUS_NAME};

/// Where we stand with netevd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonState {
    /// Connecting to the bus for the first time.
    Connecting,
    /// The bus cannot be reached (no dbus-daemon there, or it refused us).
    BusUnreachable {
        /// The bus, for people.
        bus: String,
        /// What the connection attempt said.
        error: String,
    },
    /// We were connected and the bus went away; reconnecting.
    BusLost {
        /// The bus, for people.
        bus: String,
    },
    /// The bus is there but nobody serves netevd's name.
    NotRunning {
        /// The bus, for people.
        bus: String,
    },
    /// netevd runs but will not let us watch or answer.
    AccessDenied {
        /// netevd's own message (it names the user and the group).
        message: String,
    },
    /// netevd runs and we are a prompter.
    Running {
        /// netevd's version.
        version: String,
        /// Whether we got here after losing the bus or the daemon.
        regained: bool,
    },
}

impl DaemonState {
    /// Whether netevd can be used.
    pub fn running(&self) -> bool {
        matches!(self, DaemonState::Running { .. })
    }

    /// One line for the status banner and the tray's tooltip.
    pub fn headline(&self) -> String {
        match self {
            DaemonState::Connecting => "Connecting to netevd…".into(),
            DaemonState::BusUnreachable { bus, .. } => format!("Cannot reach {bus}"),
            DaemonState::BusLost { bus } => {
                format!("Lost the connection to {bus}; reconnecting…")
            }
            DaemonState::NotRunning { .. } => "netevd is not running".into(),
            DaemonState::AccessDenied { .. } => "Access to netevd denied".into(),
            DaemonState::Running {
                version,
                regained: false,
            } => format!("netevd {version} is running"),
            DaemonState::Running {
                version,
                regained: true,
            } => format!("netevd {version} is running (connection regained)"),
        }
    }

    /// What to do about it, if anything.
    pub fn advice(&self) -> Option<String> {
        match self {
            DaemonState::Connecting | DaemonState::Running { .. } => None,
            DaemonState::BusUnreachable { error, .. } => Some(format!(
                "{error}. Is dbus-daemon running? Start netev-gtk with --bus to pick another bus. Retrying every few seconds."
            )),
            DaemonState::BusLost { .. } => Some(
                "The bus went away (dbus-daemon stopped or restarted). Prompts and live events resume once it is back."
                    .into(),
            ),
            DaemonState::NotRunning { bus } => Some(format!(
                "Nobody owns {BUS_NAME} on {bus}. Start it with `sudo systemctl start netevd` or `sudo netevd`; this window notices when it comes up."
            )),
            DaemonState::AccessDenied { message } => Some(format!(
                "{message}\nWatching events and answering prompts needs root or membership of the group 'netev': `sudo usermod -aG netev $USER`, then log out and in again."
            )),
        }
    }

    /// The tray icon name (freedesktop icon theme) for this state.
    pub fn icon(&self, prompts_waiting: bool) -> &'static str {
        match self {
            DaemonState::Running { .. } if prompts_waiting => "dialog-question",
            DaemonState::Running { .. } => "security-high",
            DaemonState::Connecting => "content-loading",
            _ => "network-error",
        }
    }
}

/// The access-denied message to show. netevd's own refusal already names
/// the user and the group; a refusal by the bus policy (dbus-daemon's
/// "Rejected send message, … matched rules …") is technical, so it is
/// replaced by what it means.
pub fn access_denied_message(raw: &str, user: Option<&str>, uid: u32) -> String {
    if raw.starts_with("Rejected send message") {
        let who = match user {
            Some(u) => format!("{u} (uid {uid})"),
            None => format!("uid {uid}"),
        };
        format!(
            "the bus policy lets only root and members of the group 'netev' watch netevd or answer its prompts; {who} is neither"
        )
    } else {
        raw.to_string()
    }
}

/// Why a call to netevd failed, for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not connected to netevd at the moment.
    #[error("not connected to netevd: {0}")]
    NotConnected(String),
    /// netevd is not on the bus.
    #[error("netevd is not running (nobody owns {BUS_NAME}); start it with `sudo netevd`")]
    NotRunning,
    /// The caller may not do this.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// netevd refused what was asked (a wrong field, a gone prompt, …): its
    /// message says what.
    #[error("{0}")]
    Refused(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl From<zbus::Error> for CallError {
    fn from(e: zbus::Error) -> CallError {
        let by_name = |name: &str, msg: String| match name {
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner" => CallError::NotRunning,
            "org.freedesktop.DBus.Error.AccessDenied" => CallError::AccessDenied(msg),
            "org.freedesktop.DBus.Error.InvalidArgs" => CallError::Refused(msg),
            _ => CallError::Other(msg),
        };
        match e {
            zbus::Error::MethodError(name, msg, _) => {
                by_name(name.as_str(), msg.unwrap_or_default())
            }
            zbus::Error::FDO(fdo) => match *fdo {
                zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => {
                    CallError::NotRunning
                }
                zbus::fdo::Error::AccessDenied(m) => CallError::AccessDenied(m),
                zbus::fdo::Error::InvalidArgs(m) => CallError::Refused(m),
                other => CallError::Other(other.to_string()),
            },
            other => CallError::Other(other.to_string()),
        }
    }
}

/// The status page: (label, value) lines — backend, hooks by mode,
/// counters, losses.
pub fn status_lines(s: &WireStatus) -> Vec<(String, String)> {
    let c = |k: &str| s.counters.get(k).copied().unwrap_or(0);
    let hooks = |mode: &str| {
        let ops: Vec<&str> = s
            .hooks
            .iter()
            .filter(|h| h.mode == mode)
            .map(|h| h.op.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if ops.is_empty() {
            "none".to_string()
        } else {
            ops.join(", ")
        }
    };
    let mut out = vec![
        (
            "Daemon".into(),
            format!("netevd {} (pid {})", s.version, s.pid),
        ),
        ("Up".into(), uptime(s.uptime_secs)),
        ("Backend".into(), s.backend.clone()),
        ("Cgroup".into(), s.cgroup.clone()),
        ("Enforced".into(), hooks("enforce")),
        ("Observed only".into(), hooks("observe")),
        (
            "Events".into(),
            format!("{} events for {} calls", c("events"), c("calls")),
        ),
        (
            "Kernel records".into(),
            format!(
                "{} seen, {} delivered, {} dropped",
                c("seen"),
                c("delivered"),
                c("dropped")
            ),
        ),
        (
            "Lost on the way".into(),
            format!(
                "{} not published on the bus, {} not stored",
                c("bus_dropped"),
                c("store_lost")
            ),
        ),
        ("Stored".into(), c("stored").to_string()),
    ];
    for n in &s.notes {
        out.push(("Note".into(), n.clone()));
    }
    out
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netev_dbus::WireHook;
    use std::collections::HashMap;

    #[test]
    fn each_trouble_says_what_to_do() {
        let denied = DaemonState::AccessDenied {
            message: "watching prompts needs root or membership of the group 'netev'".into(),
        };
        assert!(denied.advice().unwrap().contains("usermod -aG netev"));
        let down = DaemonState::NotRunning {
            bus: "the system bus".into(),
        };
        assert!(down.advice().unwrap().contains("sudo netevd"));
        assert_eq!(down.icon(false), "network-error");
        let up = DaemonState::Running {
            version: "0.1.0".into(),
            regained: true,
        };
        assert_eq!(up.advice(), None);
        assert!(up.headline().contains("regained"));
        assert_eq!(up.icon(true), "dialog-question");
        assert_eq!(up.icon(false), "security-high");
    }

    #[test]
    fn a_refusal_by_the_bus_policy_is_said_plainly() {
        let raw = "Rejected send message, 1 matched rules; type=\"method_call\", sender=\":1.1\" (uid=999 …)";
        let m = access_denied_message(raw, Some("alice"), 999);
        assert!(
            m.contains("group 'netev'") && m.contains("alice (uid 999) is neither"),
            "{m}"
        );
        let own = "watching prompts needs root or membership of the group 'netev'; bob (uid 1001) is not a member";
        assert_eq!(access_denied_message(own, Some("alice"), 999), own);
    }

    #[test]
    fn bus_errors_become_call_errors_by_name() {
        let e = CallError::from(zbus::Error::FDO(Box::new(zbus::fdo::Error::AccessDenied(
            "adding rules needs root".into(),
        ))));
        assert_eq!(e.to_string(), "access denied: adding rules needs root");
        let e = CallError::from(zbus::Error::FDO(Box::new(
            zbus::fdo::Error::ServiceUnknown("x".into()),
        )));
        assert_eq!(e, CallError::NotRunning);
    }

    #[test]
    fn the_status_page_groups_hooks_by_mode() {
        let s = WireStatus {
            version: "0.1.0".into(),
            pid: 7,
            started: 0,
            uptime_secs: 3725,
            backend: "cgroup+tracepoints".into(),
            cgroup: "/sys/fs/cgroup".into(),
            coalesce: true,
            hooks: vec![
                WireHook {
                    op: "connect".into(),
                    attach: "cgroup/connect4".into(),
                    mode: "enforce".into(),
                },
                WireHook {
                    op: "connect".into(),
                    attach: "cgroup/connect6".into(),
                    mode: "enforce".into(),
                },
                WireHook {
                    op: "listen".into(),
                    attach: "syscalls/sys_exit_listen".into(),
                    mode: "observe".into(),
                },
            ],
            notes: vec!["bpf-lsm: unavailable".into()],
            counters: HashMap::from([("seen".into(), 10), ("dropped".into(), 2)]),
        };
        let lines = status_lines(&s);
        let get = |k: &str| lines.iter().find(|(l, _)| l == k).unwrap().1.clone();
        assert_eq!(get("Enforced"), "connect");
        assert_eq!(get("Observed only"), "listen");
        assert_eq!(get("Up"), "1h 2m");
        assert_eq!(get("Kernel records"), "10 seen, 0 delivered, 2 dropped");
        assert_eq!(get("Note"), "bpf-lsm: unavailable");
    }
}
