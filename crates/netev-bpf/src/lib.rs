//! netev's kernel side: BPF programs written in C (`src/bpf/`), the ABI
//! they share with userspace (`src/bpf/netev.h`, mirrored by the netev-abi
//! crate, re-exported here as [`abi`] and checked against the programs' BTF
//! in this crate's tests), and the loader that picks a capture backend,
//! attaches it and drains its ring buffer.
//!
//! Backends sit behind the [`Capture`] trait so that nothing above this crate
//! knows which one runs:
//!
//! * BPF LSM — probed first ([`lsm::probe`]) and reported by `netev status`;
//!   the LSM backend itself is not built yet (our machines refuse LSM
//!   programs, so it could not be tested), so the probe only explains.
//! * cgroup + tracepoints ([`CgroupCapture`]) — cgroup-BPF hooks on a cgroup
//!   v2 directory (enforceable) and syscall tracepoints for listen/accept
//!   (observe only).
//!
//! ```no_run
//! use netev_bpf::{open_capture, CaptureConfig, Record};
//! # fn main() -> Result<(), netev_bpf::Error> {
//! let mut capture = open_capture(&CaptureConfig::new(netev_bpf::cgroup::cgroup2_root()?))?;
//! capture.poll(std::time::Duration::from_millis(10), &mut |record| {
//!     if let Record::Net(ev) = record {
//!         println!("op {} from pid {}", ev.hdr.op, ev.hdr.pid);
//!     }
//! })?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

/// The kernel ABI (the netev-abi crate), where callers of this crate have
/// always found it.
pub use netev_abi as abi;
#[cfg(test)]
mod abi_btf;
mod backend;
pub mod cgroup;
mod cgroup_tp;
pub mod lsm;
pub mod rules;

pub use backend::{
    BackendKind, Capture, CaptureConfig, HookInfo, HookMode, KernelCounters, RuleTables,
};
pub use cgroup_tp::CgroupCapture;
pub use netev_abi::Record;

#[allow(missing_docs, clippy::all, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/netev.skel.rs"));
}

/// What can go wrong while loading, attaching or draining.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The host is not as capture needs it (no cgroup v2, not a cgroup
    /// directory…): netev-host's error, which says what to do.
    #[error(transparent)]
    Host(#[from] netev_host::Error),
    /// libbpf refused something.
    #[error("{what}: {source}")]
    Bpf {
        /// What was being done.
        what: String,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// Not allowed to load BPF programs.
    #[error("loading BPF programs needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN): {0}")]
    Permission(String),
    /// A record that does not match the ABI.
    #[error(transparent)]
    Abi(#[from] netev_abi::AbiError),
    /// Rules that do not fit the kernel's tables.
    #[error("{0}")]
    Rules(String),
}

impl Error {
    pub(crate) fn bpf(what: impl Into<String>, source: libbpf_rs::Error) -> Self {
        Error::Bpf {
            what: what.into(),
            source,
        }
    }
}

/// Probes the backends in order of preference and returns the first that
/// loads and attaches. Why a better backend was not used is logged and kept
/// in [`Capture::notes`].
pub fn open_capture(config: &CaptureConfig) -> Result<Box<dyn Capture>, Error> {
    let lsm = lsm::probe();
    let mut capture = CgroupCapture::open(config)?;
    // `netev doctor` reads this note back (LsmAvailability::from_note).
    capture.add_note(lsm.note());
    Ok(Box::new(capture))
}
