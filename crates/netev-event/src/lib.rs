//! The decoded network event — what netevd prints, publishes and stores —
//! and its two printed forms: one JSON object per line, and one text line.
//!
//! Field names and values are a public contract (`docs/events.md`).
//!
//! ```
//! use netev_event::{Event, Op, Family, Verdict};
//! let mut ev = Event::new(Op::Connect);
//! ev.family = Family::INET;
//! ev.raddr = Some("127.0.0.1".parse().unwrap());
//! ev.rport = Some(8080);
//! let json = ev.to_json();
//! assert!(json.contains(r#""op":"connect""#));
//! assert_eq!(ev.verdict, Verdict::Allow);
//! ```
#![deny(missing_docs)]

pub mod display;
mod names;
mod text;

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use names::{Family, Proto, SockType};
pub use text::endpoint;

/// The network operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// socket()
    Socket,
    /// bind()
    Bind,
    /// listen()
    Listen,
    /// connect()
    Connect,
    /// accept(), accept4()
    Accept,
    /// sendto(), sendmsg() with an address
    Sendmsg,
    /// recvfrom(), recvmsg() asking for the peer address
    Recvmsg,
}

impl Op {
    /// Every op, in ABI order.
    pub const ALL: [Op; netev_abi::OPS] = [
        Op::Socket,
        Op::Bind,
        Op::Listen,
        Op::Connect,
        Op::Accept,
        Op::Sendmsg,
        Op::Recvmsg,
    ];

    /// From the ABI's `enum netev_op`.
    pub fn from_abi(v: u8) -> Option<Op> {
        use netev_abi::*;
        match v {
            OP_SOCKET => Some(Op::Socket),
            OP_BIND => Some(Op::Bind),
            OP_LISTEN => Some(Op::Listen),
            OP_CONNECT => Some(Op::Connect),
            OP_ACCEPT => Some(Op::Accept),
            OP_SENDMSG => Some(Op::Sendmsg),
            OP_RECVMSG => Some(Op::Recvmsg),
            _ => None,
        }
    }

    /// The ABI's `enum netev_op` number.
    pub fn abi(self) -> u8 {
        use netev_abi::*;
        match self {
            Op::Socket => OP_SOCKET,
            Op::Bind => OP_BIND,
            Op::Listen => OP_LISTEN,
            Op::Connect => OP_CONNECT,
            Op::Accept => OP_ACCEPT,
            Op::Sendmsg => OP_SENDMSG,
            Op::Recvmsg => OP_RECVMSG,
        }
    }

    /// The name used in JSON, text and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Op::Socket => "socket",
            Op::Bind => "bind",
            Op::Listen => "listen",
            Op::Connect => "connect",
            Op::Accept => "accept",
            Op::Sendmsg => "sendmsg",
            Op::Recvmsg => "recvmsg",
        }
    }
}

impl std::str::FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Op, String> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown op {s:?}; expected one of: {}",
                    Op::ALL.map(Op::name).join(", ")
                )
            })
    }
}

/// What happened to the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// An enforcing hook let it through.
    Allow,
    /// An enforcing hook refused it (EPERM).
    Deny,
    /// The hook can only see the call, not refuse it.
    Observe,
}

impl Verdict {
    /// From the ABI's `enum netev_verdict`.
    pub fn from_abi(v: u8) -> Option<Verdict> {
        match v {
            netev_abi::VERDICT_ALLOW => Some(Verdict::Allow),
            netev_abi::VERDICT_DENY => Some(Verdict::Deny),
            netev_abi::VERDICT_OBSERVE => Some(Verdict::Observe),
            _ => None,
        }
    }

    /// Every verdict.
    pub const ALL: [Verdict; 3] = [Verdict::Allow, Verdict::Deny, Verdict::Observe];

    /// The name used in JSON and text.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Observe => "observe",
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Verdict, String> {
        Verdict::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown verdict {s:?}: expected allow, deny or observe"))
    }
}

/// One network operation by one process, enriched with who did it.
///
/// Its JSON form (docs/events.md) reads back into the same event
/// (`serde_json::from_str`): a consumer of an export (netev-sql `--from`)
/// decodes what [`Event::to_json`] wrote. Fields a newer netev adds are
/// ignored by an older reader; `path` and `guard` may be absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time of the call, RFC 3339 with nanoseconds.
    #[serde(serialize_with = "ser_ts", deserialize_with = "de_ts")]
    pub ts: DateTime<Utc>,
    /// Process id (thread group id).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// User name for `uid`, if it has one.
    pub user: Option<String>,
    /// The kernel's task name (16 bytes at most, set by the process itself).
    pub comm: String,
    /// Canonical executable path (symlinks resolved), if known.
    pub exe: Option<String>,
    /// Command line, arguments separated by spaces, if still readable.
    pub cmdline: Option<String>,
    /// The operation.
    pub op: Op,
    /// Address family.
    pub family: Family,
    /// Socket type.
    #[serde(rename = "type")]
    pub sock_type: SockType,
    /// Protocol, if the family has one.
    pub proto: Option<Proto>,
    /// Local address.
    pub laddr: Option<IpAddr>,
    /// Local port.
    pub lport: Option<u16>,
    /// Remote address.
    pub raddr: Option<IpAddr>,
    /// Remote port.
    pub rport: Option<u16>,
    /// A unix socket's address: a path (`/run/dbus/system_bus_socket`,
    /// made absolute with the caller's working directory) or an abstract
    /// name (`@` and the name, bytes outside printable text escaped as
    /// `\xNN`); the remote side for connect/sendmsg, the local side for
    /// bind. Only `netev run` sees them; printed only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The syscall's return value, when the hook runs after the call.
    pub ret: Option<i32>,
    /// What happened to the call.
    pub verdict: Verdict,
    /// The rule that decided, if any.
    pub rule: Option<u32>,
    /// How many identical calls this event stands for (coalescing); 1 for one call.
    pub count: u32,
    /// `socket()` refused by the cgroup backend's socket guard: the backend
    /// cannot decide this socket's later calls and a rule or the default
    /// could refuse them (docs/rules.md). Printed only when set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard: bool,
}

fn ser_ts<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

fn de_ts<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| serde::de::Error::custom(format!("ts {s:?}: {e} (expected RFC 3339)")))
}

impl Event {
    /// An event with everything but the op zero or unknown.
    pub fn new(op: Op) -> Event {
        Event {
            ts: DateTime::<Utc>::UNIX_EPOCH,
            pid: 0,
            tid: 0,
            ppid: 0,
            uid: 0,
            gid: 0,
            user: None,
            comm: String::new(),
            exe: None,
            cmdline: None,
            op,
            family: Family(0),
            sock_type: SockType(0),
            proto: None,
            laddr: None,
            lport: None,
            raddr: None,
            rport: None,
            path: None,
            ret: None,
            verdict: Verdict::Allow,
            rule: None,
            count: 1,
            guard: false,
        }
    }

    /// A copy with the heap-allocated strings left empty (cheap to make).
    pub fn clone_without_strings(&self) -> Event {
        Event {
            user: None,
            comm: String::new(),
            exe: None,
            cmdline: None,
            path: None,
            ..*self
        }
    }

    /// One JSON object, no trailing newline.
    pub fn to_json(&self) -> String {
        display::to_json(self)
    }

    /// One line of text (no newline), control characters escaped.
    pub fn to_text(&self) -> String {
        text::format(self, self.verdict.name())
    }

    /// The line of a call waiting for a person's answer: `ask` where the
    /// verdict goes (it has none yet).
    pub fn to_text_asking(&self) -> String {
        text::format(self, "ask")
    }
}

pub mod status;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_and_verdicts_have_the_abi_numbers() {
        for op in Op::ALL {
            assert_eq!(Op::from_abi(op.abi()), Some(op));
        }
        assert_eq!(Op::Socket.abi(), 1);
        assert_eq!(Op::Recvmsg.abi(), 7);
        assert_eq!(Verdict::from_abi(0), Some(Verdict::Allow));
        assert_eq!(Verdict::from_abi(1), Some(Verdict::Deny));
        assert_eq!(Verdict::from_abi(2), Some(Verdict::Observe));
        assert_eq!(Verdict::from_abi(3), None);
    }
}
