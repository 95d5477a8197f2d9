//! What is stored and asked: rows, filters, top keys, retention, gaps.

use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use netev_event::{Event, Family, Op, Proto, SockType, Verdict};

use crate::{Error, Result};

/// One stored event and the host it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Row id, increasing in insertion order.
    pub id: i64,
    /// The host that captured it.
    pub host: String,
    /// The event.
    pub event: Event,
}

impl Row {
    /// The event's JSON object with `host` added (one line, no newline).
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(&self.event).expect("events serialize");
        v["host"] = self.host.clone().into();
        netev_event::display::to_json(&v)
    }
}

/// Which events `netev log` wants; unset fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Events at or after.
    pub since: Option<DateTime<Utc>>,
    /// Events before.
    pub until: Option<DateTime<Utc>>,
    /// Executable path, exactly.
    pub exe: Option<String>,
    /// Operation.
    pub op: Option<Op>,
    /// Verdict.
    pub verdict: Option<Verdict>,
    /// Remote address inside this network (IPv4 also matches IPv4-mapped IPv6).
    pub dest: Option<IpNet>,
    /// Remote port.
    pub port: Option<u16>,
    /// Host.
    pub host: Option<String>,
    /// Most rows returned (newest first); 0 means the default, 100.
    pub limit: u32,
}

impl Filter {
    /// The limit actually applied.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => 100,
            n => n.min(1_000_000),
        }
    }
}

/// What `netev top` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopBy {
    /// Executable path.
    Exe,
    /// Remote address.
    Dest,
    /// Remote port.
    Port,
    /// User (name, else uid).
    User,
}

impl TopBy {
    /// Every grouping.
    pub const ALL: [TopBy; 4] = [TopBy::Exe, TopBy::Dest, TopBy::Port, TopBy::User];

    /// Its name on the command line and in the database.
    pub fn name(self) -> &'static str {
        match self {
            TopBy::Exe => "exe",
            TopBy::Dest => "dest",
            TopBy::Port => "port",
            TopBy::User => "user",
        }
    }

    /// The key of `ev` in this grouping; `None` when it has none (no exe, no
    /// remote side).
    pub fn key(self, ev: &Event) -> Option<String> {
        match self {
            TopBy::Exe => ev.exe.clone(),
            TopBy::Dest => ev.raddr.map(|a| a.to_string()),
            TopBy::Port => ev.rport.map(|p| p.to_string()),
            TopBy::User => Some(ev.user.clone().unwrap_or_else(|| ev.uid.to_string())),
        }
    }
}

impl FromStr for TopBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<TopBy> {
        TopBy::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "cannot group by {s:?}: expected exe, dest, port or user"
                ))
            })
    }
}

/// One line of `netev top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopRow {
    /// The exe, destination, port or user.
    pub key: String,
    /// Operations (coalesced events count every call they stand for).
    pub ops: u64,
    /// Events.
    pub events: u64,
}

/// `netev top` summed on the client: the per-minute counts of the window,
/// added up per key in a hash table. SQLite can only group by sorting, and
/// for a key with thousands of values a minute (`dest`, `port`) sorting
/// every row of the window cost several times what reading them does.
#[derive(Debug, Default)]
pub(crate) struct TopSums {
    sums: std::collections::HashMap<String, (u64, u64)>,
}

impl TopSums {
    /// Adds one bucket's counts for `key`.
    pub(crate) fn add(&mut self, key: &str, ops: u64, events: u64) {
        match self.sums.get_mut(key) {
            Some(s) => {
                s.0 = s.0.saturating_add(ops);
                s.1 = s.1.saturating_add(events);
            }
            None => {
                self.sums.insert(key.to_owned(), (ops, events));
            }
        }
    }

    /// Every key with its sums.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.sums.iter().map(|(k, &(o, n))| (k.as_str(), o, n))
    }

    /// The `limit` busiest keys (at least one), most operations first,
    /// ties by key — the order `ORDER BY SUM(ops) DESC, key` gives.
    pub(crate) fn top(self, limit: u32) -> Vec<TopRow> {
        let mut rows: Vec<TopRow> = self
            .sums
            .into_iter()
            .map(|(key, (ops, events))| TopRow { key, ops, events })
            .collect();
        let order = |a: &TopRow, b: &TopRow| b.ops.cmp(&a.ops).then_with(|| a.key.cmp(&b.key));
        let n = (limit.max(1) as usize).min(rows.len());
        if n < rows.len() {
            rows.select_nth_unstable_by(n, order);
            rows.truncate(n);
        }
        rows.sort_unstable_by(order);
        rows
    }
}

/// How much the store keeps; enforced in the background.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Events older than this are deleted.
    pub max_age: Option<std::time::Duration>,
    /// Beyond this many events the oldest are deleted.
    pub max_rows: Option<u64>,
}

/// Events lost on the way to the store, recorded where they would have been.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The host that lost them.
    pub host: String,
    /// When the loss was recorded.
    pub ts: DateTime<Utc>,
    /// How many events.
    pub lost: u64,
    /// Why (the error).
    pub reason: String,
}

/// The minute bucket `event_counts` uses for a time.
pub fn minute(ts: DateTime<Utc>) -> i64 {
    ts.timestamp().div_euclid(60)
}

/// The 16-byte key of an address: IPv6, IPv4 as IPv4-mapped IPv6, so that
/// both families order together and a CIDR is one byte range.
pub fn addr_key(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The first and last keys of a network (see [`addr_key`]).
pub fn net_range(net: &IpNet) -> ([u8; 16], [u8; 16]) {
    (addr_key(net.network()), addr_key(net.broadcast()))
}

/// An event in storage form: the columns of `events` (see [`crate::schema`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    pub host: String,
    pub ts_ns: i64,
    pub pid: i64,
    pub tid: i64,
    pub ppid: i64,
    pub uid: i64,
    pub gid: i64,
    pub user: Option<String>,
    pub comm: String,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub op: &'static str,
    pub family: String,
    pub sock_type: String,
    pub proto: Option<String>,
    pub laddr: Option<String>,
    pub lport: Option<i32>,
    pub raddr: Option<String>,
    pub rport: Option<i32>,
    pub raddr_key: Option<Vec<u8>>,
    pub ret: Option<i32>,
    pub verdict: &'static str,
    pub rule: Option<i64>,
    pub count: i64,
}

impl Columns {
    /// Storage form of `ev` from `host`.
    pub fn new(host: &str, ev: &Event) -> Columns {
        Columns {
            host: host.to_string(),
            ts_ns: ev.ts.timestamp_nanos_opt().unwrap_or(0),
            pid: ev.pid.into(),
            tid: ev.tid.into(),
            ppid: ev.ppid.into(),
            uid: ev.uid.into(),
            gid: ev.gid.into(),
            user: ev.user.clone(),
            comm: ev.comm.clone(),
            exe: ev.exe.clone(),
            cmdline: ev.cmdline.clone(),
            op: ev.op.name(),
            family: ev.family.name().into_owned(),
            sock_type: ev.sock_type.name().into_owned(),
            proto: ev.proto.map(|p| p.name().into_owned()),
            laddr: ev.laddr.map(|a| a.to_string()),
            lport: ev.lport.map(i32::from),
            raddr: ev.raddr.map(|a| a.to_string()),
            rport: ev.rport.map(i32::from),
            raddr_key: ev.raddr.map(|a| addr_key(a).to_vec()),
            ret: ev.ret,
            verdict: ev.verdict.name(),
            rule: ev.rule.map(i64::from),
            count: ev.count.into(),
        }
    }
}

/// Decodes stored columns (read back as owned strings) into a row; a value
/// that does not decode names its row and column.
pub struct Stored {
    pub id: i64,
    pub host: String,
    pub ts_ns: i64,
    pub pid: i64,
    pub tid: i64,
    pub ppid: i64,
    pub uid: i64,
    pub gid: i64,
    pub user: Option<String>,
    pub comm: String,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub op: String,
    pub family: String,
    pub sock_type: String,
    pub proto: Option<String>,
    pub laddr: Option<String>,
    pub lport: Option<i32>,
    pub raddr: Option<String>,
    pub rport: Option<i32>,
    pub ret: Option<i32>,
    pub verdict: String,
    pub rule: Option<i64>,
    pub count: i64,
}

impl Stored {
    /// The row, or which column is bad.
    pub fn decode(self) -> Result<Row> {
        let id = self.id;
        let bad = |column: &'static str, value: &dyn std::fmt::Display| Error::BadRow {
            id,
            column,
            value: value.to_string(),
        };
        let int = |column: &'static str, v: i64| u32::try_from(v).map_err(|_| bad(column, &v));
        let port = |column: &'static str, v: Option<i32>| {
            v.map(|p| u16::try_from(p).map_err(|_| bad(column, &p)))
                .transpose()
        };
        let addr = |column: &'static str, v: Option<String>| {
            v.map(|s| s.parse::<IpAddr>().map_err(|_| bad(column, &s)))
                .transpose()
        };
        let op: Op = self.op.parse().map_err(|_| bad("op", &self.op))?;
        let mut ev = Event::new(op);
        ev.ts = DateTime::<Utc>::from_timestamp_nanos(self.ts_ns);
        ev.pid = int("pid", self.pid)?;
        ev.tid = int("tid", self.tid)?;
        ev.ppid = int("ppid", self.ppid)?;
        ev.uid = int("uid", self.uid)?;
        ev.gid = int("gid", self.gid)?;
        ev.user = self.user;
        ev.comm = self.comm;
        ev.exe = self.exe;
        ev.cmdline = self.cmdline;
        ev.family = Family::from_name(&self.family).ok_or_else(|| bad("family", &self.family))?;
        ev.sock_type =
            SockType::from_name(&self.sock_type).ok_or_else(|| bad("type", &self.sock_type))?;
        ev.proto = match self.proto {
            Some(p) => Some(Proto::from_name(&p).ok_or_else(|| bad("proto", &p))?),
            None => None,
        };
        ev.laddr = addr("laddr", self.laddr)?;
        ev.lport = port("lport", self.lport)?;
        ev.raddr = addr("raddr", self.raddr)?;
        ev.rport = port("rport", self.rport)?;
        ev.ret = self.ret;
        ev.verdict = self
            .verdict
            .parse()
            .map_err(|_| bad("verdict", &self.verdict))?;
        ev.rule = self
            .rule
            .map(|r| u32::try_from(r).map_err(|_| bad("rule", &r)))
            .transpose()?;
        ev.count = int("count", self.count)?;
        Ok(Row {
            id,
            host: self.host,
            event: ev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, ops: u64, events: u64) -> TopRow {
        TopRow {
            key: key.into(),
            ops,
            events,
        }
    }

    #[test]
    fn top_sums_per_key_and_orders_by_operations_then_key() {
        let mut t = TopSums::default();
        for (k, o, e) in [
            ("10.0.0.2", 5, 1),
            ("10.0.0.1", 1, 1),
            ("10.0.0.3", 2, 2),
            ("10.0.0.2", 1, 1),
            ("10.0.0.1", 5, 1),
            ("10.0.0.4", 1, 1),
        ] {
            t.add(k, o, e);
        }
        assert_eq!(
            t.top(3),
            vec![
                row("10.0.0.1", 6, 2),
                row("10.0.0.2", 6, 2),
                row("10.0.0.3", 2, 2)
            ]
        );
    }

    #[test]
    fn top_with_fewer_keys_than_the_limit_gives_them_all_and_limit_zero_gives_one() {
        let mut t = TopSums::default();
        t.add("b", 1, 1);
        t.add("a", 1, 1);
        assert_eq!(t.top(10), vec![row("a", 1, 1), row("b", 1, 1)]);
        let mut t = TopSums::default();
        t.add("b", 1, 1);
        t.add("a", 2, 1);
        assert_eq!(t.top(0), vec![row("a", 2, 1)]);
        assert_eq!(TopSums::default().top(5), vec![]);
    }
}
