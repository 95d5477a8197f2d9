//! Facts about the host that several netev programs read, each written
//! once: the daemon, the CLI (`netev doctor`, `netev status`, `netev run`),
//! the supervisor and the desktop front-end all ask this crate.
//!
//! It reads; it does not load BPF programs (no libbpf here, so that the
//! CLI and the GUI do not build the loader) and it mounts nothing: what
//! netevd mounts when the machine did not stays in netev-bpf.
//!
//! * [`mounts`]: /proc/mounts, the cgroup v2 hierarchy, tracefs, bpffs.
//! * [`security`]: securityfs, the active LSM list and the lockdown mode,
//!   and what they say about BPF LSM.
//! * [`proc_status`]: `/proc/PID/status` (ids, parent, capabilities), start
//!   times and a process's line of parents.
//! * [`users`]: users and groups from the system's user database.
//! * [`pins`]: where netevd pins its programs, per cgroup.
#![deny(missing_docs)]

pub mod mounts;
pub mod pins;
pub mod proc_status;
pub mod security;
pub mod users;

use std::path::PathBuf;

/// What can go wrong while reading the host.
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
    /// No cgroup v2 hierarchy is mounted.
    #[error(
        "no cgroup v2 hierarchy is mounted (none in /proc/mounts); mount one with \
         `mount -t cgroup2 none /sys/fs/cgroup/unified` or pass --cgroup"
    )]
    NoCgroup2,
    /// The path is not a cgroup v2 directory.
    #[error("{0} is not a cgroup v2 directory (it has no cgroup.controllers); pass a directory under the cgroup2 mount")]
    NotCgroup2(PathBuf),
}

/// The running kernel's release (`uname -r`), for messages that say which
/// kernel refused something; "unknown" if the kernel does not say.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
