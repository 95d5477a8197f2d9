//! Where netevd pins its programs, so that they stay attached (and keep
//! enforcing) if netevd dies, and the next netevd takes them over:
//!
//! ```text
//! <pin_dir>/cgroup-<inode of the cgroup directory>/<attach point, / as :>
//! /sys/fs/bpf/netev/cgroup-1234/cgroup:connect4
//! ```
//!
//! netev-bpf pins there; `netev status` reads it while netevd is down.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// netevd's default `--pin-dir`.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/netev";

const CGROUP_PREFIX: &str = "cgroup-";

/// The directory of the programs pinned for the cgroup with this inode.
pub fn cgroup_dir(pin_dir: &Path, cgroup_inode: u64) -> PathBuf {
    pin_dir.join(format!("{CGROUP_PREFIX}{cgroup_inode}"))
}

/// The directory of the programs pinned for the cgroup directory `cgroup`
/// (its inode is read; nothing is created).
pub fn cgroup_dir_of(pin_dir: &Path, cgroup: &Path) -> io::Result<PathBuf> {
    Ok(cgroup_dir(pin_dir, std::fs::metadata(cgroup)?.ino()))
}

/// The file a link attached at `attach` (`cgroup/connect4`,
/// `syscalls/sys_exit_listen`…) is pinned as, in a cgroup's directory.
pub fn link_file(cgroup_dir: &Path, attach: &str) -> PathBuf {
    cgroup_dir.join(attach.replace('/', ":"))
}

/// The programs pinned for one cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedSet {
    /// The inode of the cgroup directory they are attached to.
    pub cgroup_inode: u64,
    /// Their directory.
    pub dir: PathBuf,
    /// How many are pinned there (0 for a directory left empty).
    pub programs: usize,
}

/// Every cgroup directory under `pin_dir`, with the number of programs
/// pinned in each. The error is reading `pin_dir` itself (`NotFound` when
/// nothing was ever pinned, `PermissionDenied` without root).
pub fn pinned_sets(pin_dir: &Path) -> io::Result<Vec<PinnedSet>> {
    let mut sets = Vec::new();
    for entry in std::fs::read_dir(pin_dir)?.flatten() {
        let name = entry.file_name();
        let Some(ino) = name
            .to_str()
            .and_then(|n| n.strip_prefix(CGROUP_PREFIX))
            .and_then(|i| i.parse::<u64>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let programs = std::fs::read_dir(&dir)
            .map(|d| d.flatten().count())
            .unwrap_or(0);
        sets.push(PinnedSet {
            cgroup_inode: ino,
            dir,
            programs,
        });
    }
    sets.sort_by_key(|s| s.cgroup_inode);
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_layout_and_lists_what_is_pinned() {
        let pins = tempfile::tempdir().unwrap();
        let cgroup = tempfile::tempdir().unwrap();
        let ino = std::fs::metadata(cgroup.path()).unwrap().ino();
        let dir = cgroup_dir_of(pins.path(), cgroup.path()).unwrap();
        assert_eq!(dir, pins.path().join(format!("cgroup-{ino}")));
        std::fs::create_dir(&dir).unwrap();
        let link = link_file(&dir, "cgroup/connect4");
        assert_eq!(link, dir.join("cgroup:connect4"));
        std::fs::write(&link, b"").unwrap();
        std::fs::write(link_file(&dir, "syscalls/sys_exit_listen"), b"").unwrap();
        std::fs::create_dir(cgroup_dir(pins.path(), 7)).unwrap();
        std::fs::create_dir(pins.path().join("not-ours")).unwrap();

        let sets = pinned_sets(pins.path()).unwrap();
        let mut want = vec![
            PinnedSet {
                cgroup_inode: 7,
                dir: pins.path().join("cgroup-7"),
                programs: 0,
            },
            PinnedSet {
                cgroup_inode: ino,
                dir,
                programs: 2,
            },
        ];
        want.sort_by_key(|s| s.cgroup_inode);
        assert_eq!(sets, want);
    }

    #[test]
    fn a_pin_dir_that_does_not_exist_is_not_found() {
        let err = pinned_sets(Path::new("/nonexistent/netev-pins")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(cgroup_dir_of(Path::new("/x"), Path::new("/nonexistent/cg")).is_err());
    }
}
