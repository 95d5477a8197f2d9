//! The cgroup v2 hierarchy: finding it (never hard-coded: netev-host reads
//! /proc/mounts) and what BPF programs are attached to a cgroup of it.

use std::path::{Path, PathBuf};

use crate::Error;

/// The ids of the BPF programs attached to a cgroup at one of our cgroup
/// attach points (`"cgroup/connect4"`, …): whoever attached them. For
/// `netev status`/`doctor` and the tests that check nothing is attached
/// twice.
pub fn attached_programs(cgroup: &Path, attach: &str) -> Result<Vec<u32>, Error> {
    use libbpf_rs::libbpf_sys as sys;
    use std::os::fd::AsRawFd;
    let kind = match attach {
        "cgroup/sock_create" => sys::BPF_CGROUP_INET_SOCK_CREATE,
        "cgroup/bind4" => sys::BPF_CGROUP_INET4_BIND,
        "cgroup/bind6" => sys::BPF_CGROUP_INET6_BIND,
        "cgroup/connect4" => sys::BPF_CGROUP_INET4_CONNECT,
        "cgroup/connect6" => sys::BPF_CGROUP_INET6_CONNECT,
        "cgroup/sendmsg4" => sys::BPF_CGROUP_UDP4_SENDMSG,
        "cgroup/sendmsg6" => sys::BPF_CGROUP_UDP6_SENDMSG,
        "cgroup/recvmsg4" => sys::BPF_CGROUP_UDP4_RECVMSG,
        "cgroup/recvmsg6" => sys::BPF_CGROUP_UDP6_RECVMSG,
        other => {
            return Err(Error::Io {
                what: format!("querying {other}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a cgroup attach point of netev",
                ),
            })
        }
    };
    let dir = std::fs::File::open(cgroup).map_err(|e| Error::Io {
        what: format!("opening cgroup {}", cgroup.display()),
        source: e,
    })?;
    let mut ids = vec![0u32; 64];
    let mut count = ids.len() as u32;
    let mut flags = 0u32;
    // SAFETY: valid fd, and buffers of the sizes passed.
    let rc = unsafe {
        sys::bpf_prog_query(
            dir.as_raw_fd(),
            kind,
            0,
            &mut flags,
            ids.as_mut_ptr(),
            &mut count,
        )
    };
    if rc != 0 {
        return Err(Error::Io {
            what: format!("querying the programs on {attach} of {}", cgroup.display()),
            source: std::io::Error::last_os_error(),
        });
    }
    ids.truncate(count as usize);
    Ok(ids)
}

/// The mount point of the cgroup v2 (unified) hierarchy, from `/proc/mounts`
/// (read by [`netev_host::mounts::cgroup2_root`]).
pub fn cgroup2_root() -> Result<PathBuf, Error> {
    Ok(netev_host::mounts::cgroup2_root()?)
}

/// Checks that `dir` is a directory of the cgroup v2 hierarchy (see
/// [`netev_host::mounts::check_cgroup2_dir`]).
pub fn check_cgroup2_dir(dir: &Path) -> Result<(), Error> {
    Ok(netev_host::mounts::check_cgroup2_dir(dir)?)
}
