//! What every capture backend offers, whichever runs.

use std::path::PathBuf;
use std::time::Duration;

use netev_rules::compile::KernelTables;

use crate::{Error, Record};

/// Which backend captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// BPF LSM hooks: every op seen and enforceable.
    BpfLsm,
    /// cgroup-BPF hooks + syscall tracepoints.
    CgroupTracepoints,
}

impl BackendKind {
    /// Stable name used in status output.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::BpfLsm => "bpf-lsm",
            BackendKind::CgroupTracepoints => "cgroup+tracepoints",
        }
    }
}

/// Which backend to open (`--backend`, the config's `backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// BPF LSM where the kernel allows it, else cgroup + tracepoints.
    #[default]
    Auto,
    /// BPF LSM, or fail.
    Lsm,
    /// cgroup + tracepoints.
    Cgroup,
}

impl BackendChoice {
    /// The spellings `--backend` and the config accept.
    pub const NAMES: [&'static str; 3] = ["auto", "lsm", "cgroup"];

    /// Parses one of [`BackendChoice::NAMES`].
    pub fn parse(s: &str) -> Option<BackendChoice> {
        match s {
            "auto" => Some(BackendChoice::Auto),
            "lsm" => Some(BackendChoice::Lsm),
            "cgroup" => Some(BackendChoice::Cgroup),
            _ => None,
        }
    }

    /// Its spelling.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Lsm => "lsm",
            BackendChoice::Cgroup => "cgroup",
        }
    }
}

/// Whether a hook can refuse the operation or only sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookMode {
    /// Can refuse (the caller gets EPERM).
    Enforce,
    /// Sees the call; cannot refuse it.
    Observe,
}

impl HookMode {
    /// Stable name used in status output.
    pub fn name(self) -> &'static str {
        match self {
            HookMode::Enforce => "enforce",
            HookMode::Observe => "observe",
        }
    }
}

/// One attached hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookInfo {
    /// The operation(s) it reports, e.g. `connect`.
    pub op: &'static str,
    /// Where it is attached, e.g. `cgroup/connect4`.
    pub attach: &'static str,
    /// Enforce or observe.
    pub mode: HookMode,
}

/// The kernel's counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Records the kernel tried to emit.
    pub seen: u64,
    /// Records lost because the ring buffer was full.
    pub dropped: u64,
    /// Hooked calls in scope, before coalescing.
    pub calls: u64,
    /// Calls folded into a later record's count.
    pub coalesced: u64,
}

/// Settings for opening a backend.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// cgroup v2 directory to attach to; tracepoints report only tasks in it.
    pub cgroup: PathBuf,
    /// Ring-buffer size in bytes (power of two, multiple of the page size).
    pub ringbuf_bytes: u32,
    /// Wake the reader once this many bytes are pending.
    pub wakeup_bytes: u64,
    /// Fold repeated send/recv per flow into one record a second.
    pub coalesce: bool,
    /// Process never captured (the daemon itself).
    pub exclude_tgid: u32,
    /// bpffs directory to pin the links under (one subdirectory per
    /// cgroup), so that a crashed daemon's programs keep enforcing until the
    /// next one replaces them; `None`: not pinned, a crash detaches them.
    pub pin_dir: Option<PathBuf>,
    /// Which backend to open.
    pub backend: BackendChoice,
}

impl CaptureConfig {
    /// Defaults for a cgroup: 8 MiB ring buffer, 16 KiB wake-up batch,
    /// coalescing on, the calling process excluded.
    pub fn new(cgroup: PathBuf) -> Self {
        CaptureConfig {
            cgroup,
            ringbuf_bytes: 8 << 20,
            wakeup_bytes: 16 << 10,
            coalesce: true,
            exclude_tgid: std::process::id(),
            pin_dir: None,
            backend: BackendChoice::Auto,
        }
    }
}

/// A loaded, attached capture backend.
///
/// Dropping it detaches every hook it attached.
pub trait Capture {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// The hooks attached, with their mode.
    fn hooks(&self) -> &[HookInfo];
    /// Why better backends were not chosen, and similar facts for status.
    fn notes(&self) -> &[String];
    /// The kernel's counters.
    fn counters(&self) -> Result<KernelCounters, Error>;
    /// Waits up to `timeout` for records and hands each to `sink`.
    /// Returns the number of records handled.
    fn poll(&mut self, timeout: Duration, sink: &mut dyn FnMut(Record)) -> Result<usize, Error>;
    /// The kernel's rule tables, to be written by whoever owns the rules
    /// (a thread of its own in netevd): the capture itself only drains.
    /// There is one set of tables per object, so this works once; later
    /// calls fail. Until the first install, a previous netevd's pinned
    /// programs (if this capture took them over) keep enforcing.
    fn rule_tables(&mut self) -> Result<Box<dyn RuleTables>, Error>;
    /// Detaches every hook but keeps the ring buffer readable, then waits (at
    /// most `grace`) for records still in flight (coalesced counts flushed
    /// by the kernel's per-flow timers), handing them to `sink`.
    fn detach_and_drain(
        &mut self,
        grace: Duration,
        sink: &mut dyn FnMut(Record),
    ) -> Result<usize, Error>;
}

/// The rules every hook decides with, as the kernel holds them.
///
/// `Send`: it holds map handles of its own, not a borrow of the capture.
pub trait RuleTables: Send {
    /// Makes `tables` the rules every hook decides with, atomically: each
    /// operation is decided by the old rules or the new ones, never a mix.
    fn install(&mut self, tables: &KernelTables) -> Result<(), Error>;
    /// Ids of `once` rules the kernel has used up (to remove them).
    fn consumed_once(&self) -> Result<Vec<u32>, Error>;
}
