//! The daemon's status as it publishes it (`netev status` reads it back).
//!
//! Written by netevd to `<run-dir>/status.json` once a second; the D-Bus
//! `GetStatus` call will return the same data.

/// What the cgroup+tracepoints backend cannot decide or report, said in the
/// status notes and by `netev doctor` (docs/rules.md, "Which operations can
/// be refused", has the whole table).
pub const CGROUP_GAPS: &str = "listen, accept and recvmsg are observed, not enforced; SCTP, ICMP \
    and raw sockets are decided at socket() (refused when a rule could refuse their later calls); \
    unix sockets are observed; 32-bit socket, listen and accept calls are decided but not reported \
    (docs/rules.md)";

use serde::{Deserialize, Serialize};

/// One attached hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Operation it reports (`connect`, `exec`…).
    pub op: String,
    /// Attach point (`cgroup/connect4`, `syscalls/sys_exit_listen`…).
    pub attach: String,
    /// `enforce` or `observe`.
    pub mode: String,
}

/// Counters since the daemon started. Records are what crosses the ring
/// buffer (network events plus exec/exit records); once drained,
/// `seen = delivered + dropped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Records the kernel tried to emit.
    pub seen: u64,
    /// Records read by the daemon.
    pub delivered: u64,
    /// Records lost because the ring buffer was full.
    pub dropped: u64,
    /// Hooked network calls, before coalescing.
    pub calls: u64,
    /// Calls folded into another event's `count`.
    pub coalesced: u64,
    /// Network events produced.
    pub events: u64,
    /// Events not published on the bus because subscribers could not keep
    /// up (the bus queue was full); capture itself is not affected.
    #[serde(default)]
    pub bus_dropped: u64,
    /// Events committed to the event store.
    #[serde(default)]
    pub stored: u64,
    /// Events the store lost: its queue was full (the store was slow or
    /// away) or a batch could not be written (a full disk); each loss is
    /// also recorded in the store's `gaps` table once it takes writes.
    #[serde(default)]
    pub store_lost: u64,
    /// Events every `--export` receiver has (summed over the exports).
    #[serde(default)]
    pub exported: u64,
    /// Events an export lost: they fit neither its queue nor its disk
    /// spool; each loss is also sent on as a gap record (docs/export.md).
    #[serde(default)]
    pub export_lost: u64,
    /// Events waiting in the exports' disk spools now (their receivers are
    /// away or slow); not a loss.
    #[serde(default)]
    pub export_spooled: u64,
}

/// The daemon's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Daemon version.
    pub version: String,
    /// Daemon pid.
    pub pid: u32,
    /// Start time, RFC 3339.
    pub started: String,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Capture backend (`bpf-lsm`, `cgroup+tracepoints`).
    pub backend: String,
    /// cgroup the hooks are attached to.
    pub cgroup: String,
    /// Whether repeated send/recv are coalesced.
    pub coalesce: bool,
    /// The hooks.
    pub hooks: Vec<Hook>,
    /// Facts about backend choice (why BPF LSM is not used…).
    pub notes: Vec<String>,
    /// Counters.
    pub counters: Counters,
}
