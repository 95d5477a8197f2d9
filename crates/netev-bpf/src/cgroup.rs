//! Finding the cgroup v2 hierarchy: never hard-coded, read from /proc/mounts.

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

/// The mount point of the cgroup v2 (unified) hierarchy, from `/proc/mounts`.
pub fn cgroup2_root() -> Result<PathBuf, Error> {
    let mounts = std::fs::read_to_string("/proc/mounts").map_err(|e| Error::Io {
        what: "reading /proc/mounts".into(),
        source: e,
    })?;
    cgroup2_root_in(&mounts).ok_or(Error::NoCgroup2)
}

/// The first `cgroup2` mount point listed in a /proc/mounts text.
pub fn cgroup2_root_in(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_dev, dir, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount_path(dir)))
    })
}

/// /proc/mounts escapes space, tab, newline and backslash as octal `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks that `dir` is a directory of the cgroup v2 hierarchy.
pub fn check_cgroup2_dir(dir: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::Io {
        what: format!("cgroup directory {}", dir.display()),
        source: e,
    })?;
    if !meta.is_dir() || !dir.join("cgroup.procs").exists() {
        return Err(Error::NotCgroup2(dir.to_path_buf()));
    }
    // A v1 hierarchy has cgroup.procs too; only v2 has cgroup.controllers.
    if !dir.join("cgroup.controllers").exists() {
        return Err(Error::NotCgroup2(dir.to_path_buf()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_unified_mount_among_v1_mounts() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_root_in(mounts),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn no_cgroup2_mount() {
        assert_eq!(cgroup2_root_in("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn unescapes_octal_in_mount_paths() {
        let mounts = "cgroup2 /mnt/with\\040space cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup2_root_in(mounts),
            Some(PathBuf::from("/mnt/with space"))
        );
    }
}
