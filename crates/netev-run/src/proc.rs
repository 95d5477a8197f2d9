//! Who made a call: read from `/proc/<tid>`, before the notification is
//! re-validated (so a pid reused meanwhile is caught by the ID check).

use std::os::fd::OwnedFd;

use crate::sys;

/// What /proc tells about the calling thread.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub tid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    /// Canonical path of the executable (`/proc/<tid>/exe`), marked with
    /// a leading `?` when it is not verified ([`exe`]).
    pub exe: Option<String>,
    pub cmdline: Option<String>,
}

const MAX_CMDLINE: usize = 4096;

impl Caller {
    /// Reads /proc/<tid>; `None` when the thread is gone.
    pub fn read(tid: u32) -> Option<Caller> {
        let status = netev_host::proc_status::ProcStatus::read(tid)?;
        let tgid = status.tgid.unwrap_or(tid);
        Some(Caller {
            tid,
            tgid,
            ppid: status.ppid.unwrap_or(0),
            uid: status.real_uid().unwrap_or(u32::MAX),
            gid: status.real_gid().unwrap_or(u32::MAX),
            comm: status.name.unwrap_or_default(),
            exe: exe(tid),
            cmdline: cmdline(tgid),
        })
    }
}

/// Canonical path of the executable of thread `tid` (`/proc/<tid>/exe`),
/// with a leading `?` when it is not verified: when that path, here, is
/// not the file the thread executes (another mount namespace, a bind
/// mount, a file since replaced or deleted), or when the thread is in
/// another user namespace than ours: there it may hold the capabilities
/// that let a process point its own executable record at any file
/// (`PR_SET_MM_MAP` with an `exe_fd` needs `CAP_CHECKPOINT_RESTORE` or
/// `CAP_SYS_ADMIN` in the process's own user namespace, which `unshare -r`
/// gives), and `/proc/<tid>/exe` would then name that file, both by path
/// and by inode. No exe rule matches a `?` name ([`verified_exe`]).
pub fn exe(tid: u32) -> Option<String> {
    let e = netev_host::proc_status::Exe::read(tid)?;
    Some(mark_exe(e.path, e.same_file && same_ns(tid, "user")))
}

/// The exe as events show it: `?` ahead of a path that is not verified
/// (the convention of unix socket names seen from another mount
/// namespace).
fn mark_exe(path: String, verified: bool) -> String {
    if verified {
        path
    } else {
        format!("?{path}")
    }
}

/// The exe a rule may match: only a verified one (an absolute path; a
/// `?` name is not).
pub fn verified_exe(exe: Option<&str>) -> Option<&str> {
    exe.filter(|e| e.starts_with('/'))
}

/// Whether thread `tid` is in the same `kind` namespace as this process.
pub fn same_ns(tid: u32, kind: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: String| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    matches!(
        (ino(format!("/proc/{tid}/ns/{kind}")), ino(format!("/proc/self/ns/{kind}"))),
        (Ok(a), Ok(b)) if a == b
    )
}

/// The command line of process `tgid`, arguments joined by spaces.
pub fn cmdline(tgid: u32) -> Option<String> {
    std::fs::read(format!("/proc/{tgid}/cmdline"))
        .ok()
        .map(|raw| {
            let raw = &raw[..raw.len().min(MAX_CMDLINE)];
            let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
            String::from_utf8_lossy(raw).replace('\0', " ")
        })
}

/// What the kernel checks a network call against besides the socket:
/// who makes it (ids, groups, capabilities, in which user namespace) and
/// under which security labels. A call the supervisor performs is checked
/// against the supervisor's; it is performed only where the caller's are
/// the same (docs/run.md, "Who a call is decided as"), else continued, so
/// that the kernel checks it against the caller's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    uids: [u32; 4],
    gids: [u32; 4],
    groups: Vec<u32>,
    cap_eff: u64,
    /// `attr/current` and the per-LSM `attr/<lsm>/current` files this
    /// kernel has (`None` where unreadable: no LSM with a label).
    labels: Vec<Option<Vec<u8>>>,
    /// (st_dev, inode) of `ns/user`.
    userns: (u64, u64),
    /// (The supervisor's only.) Whether a caller's groups can differ from
    /// ours: only if we hold `CAP_SETGID` in our permitted set (below).
    regroup: bool,
}

/// CAP_SETGID's bit in the capability sets.
const CAP_SETGID: u64 = 1 << 6;

/// The label files, read for both sides: the first names the label of
/// the LSM that owns `attr/current`; the others are the stacked LSMs'.
const LABELS: [&str; 4] = [
    "attr/current",
    "attr/apparmor/current",
    "attr/smack/current",
    "attr/selinux/current",
];

impl Context {
    /// The context of this thread (the supervisor's), now.
    pub fn own() -> Option<Context> {
        let mut c = Context::read_in("/proc/thread-self", |_| true)?;
        let (_, permitted) = sys::capget(0).ok()?;
        c.regroup = permitted & CAP_SETGID != 0;
        Some(c)
    }

    /// The context of thread `tid` (`pidfd` names it) now, to compare
    /// with `like`, the supervisor's; `None` if it cannot be read in full
    /// (the thread is gone). Label files `like` could not read (LSMs this
    /// kernel does not run) are not read.
    ///
    /// Read per call, so cheaply where it can be: ids from
    /// `PIDFD_GET_INFO`, capabilities from `capget`. The groups are ours
    /// unless the caller could change them: `setgroups` needs `CAP_SETGID`
    /// in our user namespace, and a caller there has no capability we did
    /// not have (we forked it; under `no_new_privs` an exec grants none),
    /// so without it in our permitted set its groups are the ones it was
    /// forked with, ours. (A caller in another user namespace differs in
    /// that already.) Otherwise, and on kernels without `PIDFD_GET_INFO`,
    /// all is read from `/proc/<tid>/status`.
    pub fn of(tid: u32, pidfd: &OwnedFd, like: &Context) -> Option<Context> {
        use std::os::unix::fs::MetadataExt;
        let dir = format!("/proc/{tid}");
        let label = |i: usize| like.labels[i].is_some();
        let info = sys::pidfd_info(pidfd).ok().filter(|i| i.tid == tid);
        let Some(info) = info.filter(|_| !like.regroup) else {
            return Context::read_in(&dir, label);
        };
        let (cap_eff, _) = sys::capget(tid).ok()?;
        let ns = std::fs::metadata(format!("{dir}/ns/user")).ok()?;
        Some(Context {
            uids: info.uids,
            gids: info.gids,
            groups: like.groups.clone(),
            cap_eff,
            labels: labels(&dir, label),
            userns: (ns.dev(), ns.ino()),
            regroup: false,
        })
    }

    fn read_in(dir: &str, label: impl Fn(usize) -> bool) -> Option<Context> {
        use std::os::unix::fs::MetadataExt;
        let text = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let s = netev_host::proc_status::ProcStatus::parse(&text);
        let ns = std::fs::metadata(format!("{dir}/ns/user")).ok()?;
        Some(Context {
            uids: s.uids?,
            gids: s.gids?,
            groups: s.groups?,
            cap_eff: s.cap_eff?,
            labels: labels(dir, label),
            userns: (ns.dev(), ns.ino()),
            regroup: false,
        })
    }

    /// What differs from `other`, for a person (first difference only);
    /// `None`: the kernel would check a call by either the same way.
    pub fn differs(&self, other: &Context) -> Option<&'static str> {
        if self.userns != other.userns {
            Some("user namespace")
        } else if self.uids != other.uids {
            Some("uids")
        } else if self.gids != other.gids {
            Some("gids")
        } else if self.groups != other.groups {
            Some("supplementary groups")
        } else if self.cap_eff != other.cap_eff {
            Some("capabilities")
        } else if self.labels != other.labels {
            Some("security label")
        } else {
            None
        }
    }
}

/// The name of user `uid`, from the user database (netev-host's lookup,
/// which a large directory entry does not defeat).
pub use netev_host::users::user_name;

/// The label files `label` selects, read from `/proc/<…>` directory `dir`.
fn labels(dir: &str, label: impl Fn(usize) -> bool) -> Vec<Option<Vec<u8>>> {
    LABELS
        .iter()
        .enumerate()
        .map(|(i, f)| {
            label(i)
                .then(|| std::fs::read(format!("{dir}/{f}")).ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exe_is_marked_unless_verified_and_only_verified_ones_match() {
        assert_eq!(mark_exe("/usr/bin/curl".into(), true), "/usr/bin/curl");
        assert_eq!(mark_exe("/usr/bin/curl".into(), false), "?/usr/bin/curl");
        assert_eq!(verified_exe(Some("/usr/bin/curl")), Some("/usr/bin/curl"));
        assert_eq!(verified_exe(Some("?/usr/bin/curl")), None);
        assert_eq!(verified_exe(None), None);
        // This process runs its own file in its own namespaces.
        let me = exe(std::process::id()).unwrap();
        assert_eq!(
            std::path::Path::new(&me),
            std::fs::canonicalize("/proc/self/exe").unwrap()
        );
    }

    #[test]
    fn context_differs_in_each_part() {
        let me = Context::own().unwrap();
        assert_eq!(me.differs(&me), None);
        // SAFETY: a plain syscall.
        let tid = unsafe { libc::gettid() } as u32;
        let pidfd = sys::pidfd_open_thread(tid).unwrap();
        let mine = Context::of(tid, &pidfd, &me).unwrap();
        assert_eq!(me.differs(&mine), None, "{me:?} {mine:?}");
        // As an unprivileged supervisor reads it (no CAP_SETGID: groups
        // cannot differ, ids by pidfd, caps by capget).
        let unprivileged = Context {
            regroup: false,
            ..me.clone()
        };
        let mine = Context::of(tid, &pidfd, &unprivileged).unwrap();
        // The fast reading (ids by pidfd, caps by capget) and the full one
        // (/proc/<tid>/status) agree.
        let full = Context::read_in(&format!("/proc/{tid}"), |i| me.labels[i].is_some()).unwrap();
        assert_eq!(mine.differs(&full), None, "{mine:?} {full:?}");
        assert_eq!(
            (mine.uids, mine.gids, mine.cap_eff),
            (full.uids, full.gids, full.cap_eff)
        );
        let change = |f: &dyn Fn(&mut Context)| {
            let mut c = me.clone();
            f(&mut c);
            me.differs(&c)
        };
        assert_eq!(change(&|c| c.userns.1 += 1), Some("user namespace"));
        assert_eq!(change(&|c| c.uids[1] ^= 1), Some("uids"));
        assert_eq!(change(&|c| c.gids[3] ^= 1), Some("gids"));
        assert_eq!(
            change(&|c| c.groups.push(4242)),
            Some("supplementary groups")
        );
        assert_eq!(change(&|c| c.cap_eff ^= 1 << 10), Some("capabilities"));
        assert_eq!(
            change(&|c| c.labels[0] = Some(b"confined".to_vec())),
            Some("security label")
        );
        assert_eq!(Context::read_in("/proc/4294967295", |_| true), None);
    }
}
