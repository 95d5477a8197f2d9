//! What is mounted where: read from /proc/mounts, never hard-coded (the
//! cgroup v2 hierarchy sits at /sys/fs/cgroup on most machines and at
//! /sys/fs/cgroup/unified on hybrid ones).

use std::path::{Path, PathBuf};

use crate::Error;

/// Where the kernel's tracing file system is mounted when the machine did
/// (and where netevd mounts it when it did not).
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// The usual mount point of bpffs, where programs are pinned.
pub const BPFFS: &str = "/sys/fs/bpf";

/// One line of /proc/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What is mounted (a device, or a name such as `cgroup2`).
    pub source: String,
    /// Where, with /proc/mounts' octal escapes undone.
    pub target: PathBuf,
    /// The file system type (`cgroup2`, `bpf`, `tracefs`…).
    pub fstype: String,
}

/// The lines of a /proc/mounts text; malformed lines are skipped.
pub fn parse(mounts: &str) -> Vec<Mount> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (source, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            Some(Mount {
                source: unescape_mount_path(source),
                target: PathBuf::from(unescape_mount_path(target)),
                fstype: fstype.to_string(),
            })
        })
        .collect()
}

/// The text of /proc/mounts.
pub fn read_proc_mounts() -> Result<String, Error> {
    std::fs::read_to_string("/proc/mounts").map_err(|e| Error::Io {
        what: "reading /proc/mounts".into(),
        source: e,
    })
}

/// The mount point of the cgroup v2 (unified) hierarchy, from `/proc/mounts`.
pub fn cgroup2_root() -> Result<PathBuf, Error> {
    cgroup2_root_in(&read_proc_mounts()?).ok_or(Error::NoCgroup2)
}

/// The first `cgroup2` mount point listed in a /proc/mounts text.
pub fn cgroup2_root_in(mounts: &str) -> Option<PathBuf> {
    parse(mounts)
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.target)
}

/// Whether a /proc/mounts text has a file system of type `fstype` mounted
/// at `target`.
pub fn mounted_at(mounts: &str, target: &Path, fstype: &str) -> bool {
    parse(mounts)
        .iter()
        .any(|m| m.target == target && m.fstype == fstype)
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

/// Whether the syscall and sched tracepoints can be seen: tracefs mounted
/// at its own place, or under debugfs where older setups have it. An
/// unprivileged user may not see either even when it is mounted.
pub fn tracefs_events_visible() -> bool {
    Path::new(TRACEFS).join("events").exists()
        || Path::new("/sys/kernel/debug/tracing/events").exists()
}

/// Whether `path` is on a bpf file system (statfs' magic number, so a
/// directory below the mount point counts too).
pub fn on_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
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

    #[test]
    fn a_file_system_is_mounted_at_a_place_only_with_its_type() {
        let mounts = "bpf /sys/fs/bpf bpf rw 0 0\nnodev /sys/kernel/tracing tracefs rw 0 0\n\
                      short line\n";
        assert!(mounted_at(mounts, Path::new(BPFFS), "bpf"));
        assert!(mounted_at(mounts, Path::new(TRACEFS), "tracefs"));
        assert!(!mounted_at(mounts, Path::new(BPFFS), "tracefs"));
        assert!(!mounted_at(mounts, Path::new("/sys/fs/bpf/netev"), "bpf"));
        assert_eq!(parse(mounts).len(), 2, "the malformed line is skipped");
    }

    #[test]
    fn this_machine_has_a_cgroup2_directory_at_its_root_and_proc_is_not_bpffs() {
        // Every machine netev runs on (and every CI) has cgroup v2 mounted.
        let root = cgroup2_root().unwrap();
        check_cgroup2_dir(&root).unwrap();
        assert!(matches!(
            check_cgroup2_dir(Path::new("/proc")),
            Err(Error::NotCgroup2(_))
        ));
        assert!(!on_bpffs(Path::new("/proc")));
    }
}
