//! netev's kernel side: BPF programs written in C (`src/bpf/`), the ABI
//! they share with userspace (`src/bpf/netev.h`, mirrored by the netev-abi
//! crate, re-exported here as [`abi`] and checked against the programs' BTF
//! in this crate's tests), and the loader that picks a capture backend,
//! attaches it and drains its ring buffer.
//!
//! Backends sit behind the [`Capture`] trait so that nothing above this crate
//! knows which one runs:
//!
//! * BPF LSM ([`BpfCapture::open_lsm`]) — LSM hooks on every operation, all
//!   enforceable; chosen where [`lsm::probe`] says the kernel runs LSM
//!   programs (Debian's own kernels; not a kernel in integrity lockdown).
//! * cgroup + tracepoints ([`BpfCapture::open`]) — cgroup-BPF hooks on a
//!   cgroup v2 directory (enforceable) and syscall tracepoints for
//!   listen/accept (observe only).
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
mod verifier;

pub use backend::{
    BackendChoice, BackendKind, Capture, CaptureConfig, HookInfo, HookMode, KernelCounters,
    RuleTables,
};
pub use cgroup_tp::{BpfCapture, CgroupCapture};
pub use netev_abi::Record;
use netev_host::security::LsmAvailability;

#[allow(missing_docs, clippy::all, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/netev.skel.rs"));
}

#[allow(missing_docs, clippy::all, unused_imports)]
mod skel_lsm {
    include!(concat!(env!("OUT_DIR"), "/netev_lsm.skel.rs"));
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
    /// The kernel refused a backend's programs: which kernel, which program
    /// and the verifier's last word on it (the whole log is printed above).
    #[error(
        "the {backend} backend does not load on kernel {kernel}: the kernel refused {} ({}): {source}",
        program.as_deref().map(|p| format!("program {p}")).unwrap_or_else(|| "the BPF object".into()),
        reason.as_deref().unwrap_or("libbpf printed no verifier log"),
    )]
    Refused {
        /// The backend's name.
        backend: &'static str,
        /// `uname -r`.
        kernel: String,
        /// The program the verifier refused, if libbpf said.
        program: Option<String>,
        /// The verifier's last line about it.
        reason: Option<String>,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// The backend asked for cannot run on this kernel.
    #[error("the {backend} backend cannot run here: {why}")]
    Unavailable {
        /// The backend's name.
        backend: &'static str,
        /// Why (with the fix where there is one).
        why: String,
    },
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

/// Opens the backend `config.backend` asks for. `auto`: BPF LSM where the
/// kernel runs LSM programs and the LSM object loads, else cgroup +
/// tracepoints; why is logged and kept in [`Capture::notes`] (the
/// "backend: " note, which `netev status` and `netev doctor` show).
pub fn open_capture(config: &CaptureConfig) -> Result<Box<dyn Capture>, Error> {
    let lsm = lsm::probe();
    let mut capture = match config.backend {
        BackendChoice::Cgroup => {
            let mut c = BpfCapture::open(config)?;
            c.add_note(format!(
                "{BACKEND_NOTE}cgroup+tracepoints, as asked (--backend cgroup)"
            ));
            c
        }
        BackendChoice::Lsm => {
            if let LsmAvailability::Unavailable(why) = &lsm {
                return Err(Error::Unavailable {
                    backend: BackendKind::BpfLsm.name(),
                    why: why.clone(),
                });
            }
            let mut c = BpfCapture::open_lsm(config)?;
            c.add_note(format!("{BACKEND_NOTE}bpf-lsm, as asked (--backend lsm)"));
            c
        }
        BackendChoice::Auto => match &lsm {
            LsmAvailability::Available => match BpfCapture::open_lsm(config) {
                Ok(mut c) => {
                    c.add_note(format!(
                        "{BACKEND_NOTE}bpf-lsm, chosen automatically: the kernel runs BPF LSM \
                         programs (every operation enforceable)"
                    ));
                    c
                }
                Err(e) => {
                    tracing::warn!(
                        "the BPF LSM backend did not load, using cgroup+tracepoints: {e}"
                    );
                    let mut c = BpfCapture::open(config)?;
                    c.add_note(format!(
                        "{BACKEND_NOTE}cgroup+tracepoints, chosen automatically: BPF LSM is \
                         available but its programs did not load ({e})"
                    ));
                    c
                }
            },
            LsmAvailability::Unavailable(why) => {
                let mut c = BpfCapture::open(config)?;
                c.add_note(format!(
                    "{BACKEND_NOTE}cgroup+tracepoints, chosen automatically: BPF LSM is \
                     unavailable ({why})"
                ));
                c
            }
        },
    };
    if capture.kind() == BackendKind::CgroupTracepoints {
        capture.add_note(format!(
            "cgroup+tracepoints cannot decide everything: {}",
            netev_event::status::CGROUP_GAPS
        ));
    }
    // `netev doctor` reads this note back (LsmAvailability::from_note).
    capture.add_note(lsm.note());
    Ok(Box::new(capture))
}

/// What `netevd --check-backend` found: for each backend, whether this
/// kernel loads its object (nothing attached), and which one `choice`
/// would run — the same rules as [`open_capture`].
#[derive(Debug)]
pub struct BackendCheck {
    /// BPF LSM: `Ok` if it loads, else why not.
    pub lsm: Result<(), String>,
    /// cgroup + tracepoints: `Ok` if it loads, else why not.
    pub cgroup: Result<(), String>,
    /// The backend `choice` would run; `None`: none can.
    pub chosen: Option<BackendKind>,
}

/// Loads each backend `choice` allows, attaching nothing.
pub fn check_backends(choice: BackendChoice) -> BackendCheck {
    let lsm = match (choice, lsm::probe()) {
        (BackendChoice::Cgroup, _) => Err("not asked for (--backend cgroup)".into()),
        (_, LsmAvailability::Unavailable(why)) => Err(format!("unavailable: {why}")),
        (_, LsmAvailability::Available) => {
            BpfCapture::check_loads(BackendKind::BpfLsm).map_err(|e| e.to_string())
        }
    };
    let cgroup = match choice {
        BackendChoice::Lsm => Err("not asked for (--backend lsm)".into()),
        _ => BpfCapture::check_loads(BackendKind::CgroupTracepoints).map_err(|e| e.to_string()),
    };
    let chosen = if lsm.is_ok() {
        Some(BackendKind::BpfLsm)
    } else if cgroup.is_ok() {
        Some(BackendKind::CgroupTracepoints)
    } else {
        None
    };
    BackendCheck {
        lsm,
        cgroup,
        chosen,
    }
}

/// How the note that says which backend runs, and why, starts.
pub const BACKEND_NOTE: &str = "backend: ";
