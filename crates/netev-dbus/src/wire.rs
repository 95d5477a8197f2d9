//! Typed D-Bus structs for events and status, and their conversions.
//!
//! D-Bus has no null: an absent string is `""`, an absent `ret` has
//! `has_ret = false`, an absent rule is `0`, an absent port is `0` beside an
//! empty address.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use netev_event::status::{Counters, Hook, Status};
use netev_event::{Event, Family, Op, Proto, SockType, Verdict};
use serde::{Deserialize, Serialize};
use zbus::zvariant::Type;

/// One event on the bus: the fields of the JSON event (docs/events.md).
/// D-Bus signature `(xuuuuusssssssssqsqbisuu)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct WireEvent {
    /// Nanoseconds since the Unix epoch (UTC).
    pub ts_ns: i64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// User name, "" if none.
    pub user: String,
    /// Task name.
    pub comm: String,
    /// Canonical executable path, "" if unknown.
    pub exe: String,
    /// Command line, "" if unknown.
    pub cmdline: String,
    /// `socket`, `bind`, …
    pub op: String,
    /// `inet`, `inet6`, `unix`, …
    pub family: String,
    /// `stream`, `dgram`, …
    pub sock_type: String,
    /// `tcp`, `udp`, …, "" if none.
    pub proto: String,
    /// Local address, "" if none.
    pub laddr: String,
    /// Local port (0 if `laddr` is "").
    pub lport: u16,
    /// Remote address, "" if none.
    pub raddr: String,
    /// Remote port (0 if `raddr` is "").
    pub rport: u16,
    /// Whether `ret` holds the syscall's return value.
    pub has_ret: bool,
    /// Syscall return value.
    pub ret: i32,
    /// `allow`, `deny`, `observe`.
    pub verdict: String,
    /// Rule id, 0 for none.
    pub rule: u32,
    /// Calls this event stands for.
    pub count: u32,
}

/// A field that does not decode back into an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event field {field} has an invalid value {value:?}")]
pub struct WireError {
    /// The field.
    pub field: &'static str,
    /// Its value.
    pub value: String,
}

fn text<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A unix socket's path (or `@`abstract name) travels in the address
/// string of its side (docs/dbus.md): `raddr` for connect and sendmsg,
/// `laddr` for bind and listen, with port 0.
fn unix_path_side(ev: &Event) -> (Option<&str>, Option<&str>) {
    match &ev.path {
        Some(p) if ev.family == Family::UNIX => {
            if matches!(ev.op, Op::Bind | Op::Listen) {
                (Some(p.as_str()), None)
            } else {
                (None, Some(p.as_str()))
            }
        }
        _ => (None, None),
    }
}

impl From<&Event> for WireEvent {
    fn from(ev: &Event) -> WireEvent {
        let (lpath, rpath) = unix_path_side(ev);
        WireEvent {
            ts_ns: ev.ts.timestamp_nanos_opt().unwrap_or(0),
            pid: ev.pid,
            tid: ev.tid,
            ppid: ev.ppid,
            uid: ev.uid,
            gid: ev.gid,
            user: ev.user.clone().unwrap_or_default(),
            comm: ev.comm.clone(),
            exe: ev.exe.clone().unwrap_or_default(),
            cmdline: ev.cmdline.clone().unwrap_or_default(),
            op: ev.op.name().to_string(),
            family: ev.family.name().into_owned(),
            sock_type: ev.sock_type.name().into_owned(),
            proto: text(ev.proto),
            laddr: lpath.map_or_else(|| text(ev.laddr), str::to_string),
            lport: ev.lport.unwrap_or(0),
            raddr: rpath.map_or_else(|| text(ev.raddr), str::to_string),
            rport: ev.rport.unwrap_or(0),
            has_ret: ev.ret.is_some(),
            ret: ev.ret.unwrap_or(0),
            verdict: ev.verdict.name().to_string(),
            rule: ev.rule.unwrap_or(0),
            count: ev.count,
        }
    }
}

impl From<Event> for WireEvent {
    /// Like `From<&Event>`, moving the strings instead of copying them.
    fn from(ev: Event) -> WireEvent {
        let mut w = WireEvent::from(&ev.clone_without_strings());
        match unix_path_side(&ev) {
            (Some(p), _) => w.laddr = p.to_string(),
            (_, Some(p)) => w.raddr = p.to_string(),
            _ => {}
        }
        w.user = ev.user.unwrap_or_default();
        w.comm = ev.comm;
        w.exe = ev.exe.unwrap_or_default();
        w.cmdline = ev.cmdline.unwrap_or_default();
        w
    }
}

impl TryFrom<WireEvent> for Event {
    type Error = WireError;

    fn try_from(w: WireEvent) -> Result<Event, WireError> {
        let bad = |field: &'static str, value: &str| WireError {
            field,
            value: value.to_string(),
        };
        let op: Op = w.op.parse().map_err(|_| bad("op", &w.op))?;
        let verdict = match w.verdict.as_str() {
            "allow" => Verdict::Allow,
            "deny" => Verdict::Deny,
            "observe" => Verdict::Observe,
            other => return Err(bad("verdict", other)),
        };
        let addr = |field: &'static str, s: &str| -> Result<Option<IpAddr>, WireError> {
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse().map(Some).map_err(|_| bad(field, s))
            }
        };
        let family = Family::from_name(&w.family).ok_or_else(|| bad("family", &w.family))?;
        let mut ev = Event::new(op);
        let (laddr, raddr) = if family == Family::UNIX {
            // The path is on one side; an empty string is no address.
            ev.path = [&w.raddr, &w.laddr]
                .into_iter()
                .find(|s| !s.is_empty())
                .cloned();
            (None, None)
        } else {
            (addr("laddr", &w.laddr)?, addr("raddr", &w.raddr)?)
        };
        ev.ts = DateTime::<Utc>::from_timestamp_nanos(w.ts_ns);
        ev.pid = w.pid;
        ev.tid = w.tid;
        ev.ppid = w.ppid;
        ev.uid = w.uid;
        ev.gid = w.gid;
        ev.family = family;
        ev.sock_type =
            SockType::from_name(&w.sock_type).ok_or_else(|| bad("sock_type", &w.sock_type))?;
        ev.proto = if w.proto.is_empty() {
            None
        } else {
            Some(Proto::from_name(&w.proto).ok_or_else(|| bad("proto", &w.proto))?)
        };
        ev.lport = laddr.map(|_| w.lport);
        ev.rport = raddr.map(|_| w.rport);
        ev.laddr = laddr;
        ev.raddr = raddr;
        ev.user = opt(w.user);
        ev.comm = w.comm;
        ev.exe = opt(w.exe);
        ev.cmdline = opt(w.cmdline);
        ev.ret = w.has_ret.then_some(w.ret);
        ev.verdict = verdict;
        ev.rule = (w.rule != 0).then_some(w.rule);
        ev.count = w.count;
        Ok(ev)
    }
}

/// One hook, D-Bus signature `(sss)`: op, attach point, mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct WireHook {
    /// Operation reported.
    pub op: String,
    /// Attach point.
    pub attach: String,
    /// `enforce` or `observe`.
    pub mode: String,
}

/// The daemon's status, D-Bus signature `(suxtssba(sss)asa{st})`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct WireStatus {
    /// Daemon version.
    pub version: String,
    /// Daemon pid.
    pub pid: u32,
    /// Start time, seconds since the Unix epoch.
    pub started: i64,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Capture backend.
    pub backend: String,
    /// cgroup attached to.
    pub cgroup: String,
    /// Coalescing on.
    pub coalesce: bool,
    /// Hooks.
    pub hooks: Vec<WireHook>,
    /// Facts about backend choice.
    pub notes: Vec<String>,
    /// Counters by name (see docs/dbus.md); new names may appear.
    pub counters: HashMap<String, u64>,
}

impl From<&Status> for WireStatus {
    fn from(s: &Status) -> WireStatus {
        let c = &s.counters;
        WireStatus {
            version: s.version.clone(),
            pid: s.pid,
            started: DateTime::parse_from_rfc3339(&s.started)
                .map(|t| t.timestamp())
                .unwrap_or(0),
            uptime_secs: s.uptime_secs,
            backend: s.backend.clone(),
            cgroup: s.cgroup.clone(),
            coalesce: s.coalesce,
            hooks: s
                .hooks
                .iter()
                .map(|h| WireHook {
                    op: h.op.clone(),
                    attach: h.attach.clone(),
                    mode: h.mode.clone(),
                })
                .collect(),
            notes: s.notes.clone(),
            counters: HashMap::from([
                ("seen".to_string(), c.seen),
                ("delivered".to_string(), c.delivered),
                ("dropped".to_string(), c.dropped),
                ("calls".to_string(), c.calls),
                ("coalesced".to_string(), c.coalesced),
                ("events".to_string(), c.events),
                ("bus_dropped".to_string(), c.bus_dropped),
                ("stored".to_string(), c.stored),
                ("store_lost".to_string(), c.store_lost),
                ("exported".to_string(), c.exported),
                ("export_lost".to_string(), c.export_lost),
                ("export_spooled".to_string(), c.export_spooled),
            ]),
        }
    }
}

impl From<WireStatus> for Status {
    fn from(w: WireStatus) -> Status {
        let get = |k: &str| w.counters.get(k).copied().unwrap_or(0);
        Status {
            version: w.version.clone(),
            pid: w.pid,
            started: DateTime::<Utc>::from_timestamp(w.started, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            uptime_secs: w.uptime_secs,
            backend: w.backend.clone(),
            cgroup: w.cgroup.clone(),
            coalesce: w.coalesce,
            hooks: w
                .hooks
                .iter()
                .map(|h| Hook {
                    op: h.op.clone(),
                    attach: h.attach.clone(),
                    mode: h.mode.clone(),
                })
                .collect(),
            notes: w.notes.clone(),
            counters: Counters {
                seen: get("seen"),
                delivered: get("delivered"),
                dropped: get("dropped"),
                calls: get("calls"),
                coalesced: get("coalesced"),
                events: get("events"),
                bus_dropped: get("bus_dropped"),
                stored: get("stored"),
                store_lost: get("store_lost"),
                exported: get("exported"),
                export_lost: get("export_lost"),
                export_spooled: get("export_spooled"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut ev = Event::new(Op::Accept);
        ev.ts = "2026-11-25T10:00:00.123456789Z".parse().unwrap();
        ev.pid = 10;
        ev.tid = 11;
        ev.ppid = 1;
        ev.uid = 1000;
        ev.gid = 1000;
        ev.user = Some("alice".into());
        ev.comm = "nginx\n".into();
        ev.exe = Some("/usr/sbin/nginx".into());
        ev.family = Family::INET6;
        ev.sock_type = SockType::STREAM;
        ev.proto = Some(Proto::TCP);
        ev.laddr = Some("::1".parse().unwrap());
        ev.lport = Some(80);
        ev.raddr = Some("::1".parse().unwrap());
        ev.rport = Some(0);
        ev.ret = Some(0);
        ev.verdict = Verdict::Observe;
        ev.count = 3;
        ev
    }

    #[test]
    fn events_round_trip_including_absent_fields() {
        let ev = sample();
        assert_eq!(Event::try_from(WireEvent::from(&ev)).unwrap(), ev);
        let mut bare = Event::new(Op::Socket);
        bare.family = Family::UNIX;
        bare.sock_type = SockType::DGRAM;
        let back = Event::try_from(WireEvent::from(&bare)).unwrap();
        assert_eq!(back, bare);
        assert_eq!(
            (back.laddr, back.lport, back.ret, back.user),
            (None, None, None, None)
        );
    }

    #[test]
    fn unix_paths_travel_on_their_side_and_come_back() {
        for (op, path, side) in [
            (Op::Connect, "/run/user/1000/bus", "raddr"),
            (Op::Sendmsg, "@/tmp/.X11-unix/X0", "raddr"),
            (Op::Bind, "/tmp/app.sock", "laddr"),
            (Op::Listen, "?/tmp/other-ns.sock", "laddr"),
        ] {
            let mut ev = Event::new(op);
            ev.family = Family::UNIX;
            ev.sock_type = SockType::STREAM;
            ev.path = Some(path.into());
            let w = WireEvent::from(&ev);
            let (on, off) = if side == "raddr" {
                (&w.raddr, &w.laddr)
            } else {
                (&w.laddr, &w.raddr)
            };
            assert_eq!((on.as_str(), off.as_str()), (path, ""), "{op:?}");
            assert_eq!(WireEvent::from(ev.clone()), w, "{op:?}");
            assert_eq!(Event::try_from(w).unwrap(), ev, "{op:?}");
        }
    }

    #[test]
    fn moving_and_copying_conversions_agree() {
        let ev = sample();
        assert_eq!(WireEvent::from(ev.clone()), WireEvent::from(&ev));
    }

    #[test]
    fn malformed_wire_events_are_rejected_by_field() {
        let mut w = WireEvent::from(&sample());
        w.op = "frobnicate".into();
        assert_eq!(Event::try_from(w).unwrap_err().field, "op");
        let mut w = WireEvent::from(&sample());
        w.raddr = "not-an-ip".into();
        assert_eq!(Event::try_from(w).unwrap_err().field, "raddr");
    }

    #[test]
    fn signature_is_stable() {
        assert_eq!(
            WireEvent::SIGNATURE.to_string(),
            "(xuuuuusssssssssqsqbisuu)"
        );
        assert_eq!(WireStatus::SIGNATURE.to_string(), "(suxtssba(sss)asa{st})");
    }
}
