//! Finding the cgroup v2 hierarchy: never hard-coded, read from /proc/mounts.

use std::path::{Path, PathBuf};

use crate::Error;

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
