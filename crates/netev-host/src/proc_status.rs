//! `/proc/PID/status`: who a process (or thread) is.
//!
//! The ids are read from this file rather than from `stat()` of the /proc
//! directory, whose owner is the *effective* uid and changes with dumpable
//! settings; the file gives the real, effective, saved and file-system ids.

/// What netev reads of `/proc/PID/status`. A line that is missing or does
/// not parse leaves its field `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// `Name`: the command name (comm), at most 15 bytes.
    pub name: Option<String>,
    /// `Tgid`: the process (thread group) id.
    pub tgid: Option<u32>,
    /// `PPid`: the parent process id.
    pub ppid: Option<u32>,
    /// `Uid`: real, effective, saved and file-system uid.
    pub uids: Option<[u32; 4]>,
    /// `Gid`: real, effective, saved and file-system gid.
    pub gids: Option<[u32; 4]>,
    /// `Groups`: the supplementary groups.
    pub groups: Option<Vec<u32>>,
    /// `CapEff`: the effective capability set.
    pub cap_eff: Option<u64>,
}

impl ProcStatus {
    /// Reads `/proc/<pid>/status` (a thread id works too); `None` when the
    /// process is gone (or the file cannot be read).
    pub fn read(pid: u32) -> Option<ProcStatus> {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .map(|text| ProcStatus::parse(&text))
    }

    /// Parses the text of a status file.
    pub fn parse(text: &str) -> ProcStatus {
        let mut s = ProcStatus::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "Name" => s.name = Some(value.to_string()),
                "Tgid" => s.tgid = value.parse().ok(),
                "PPid" => s.ppid = value.parse().ok(),
                "Uid" => s.uids = four_ids(value),
                "Gid" => s.gids = four_ids(value),
                "Groups" => {
                    s.groups = value
                        .split_whitespace()
                        .map(|g| g.parse().ok())
                        .collect::<Option<Vec<u32>>>()
                }
                "CapEff" => s.cap_eff = u64::from_str_radix(value, 16).ok(),
                _ => {}
            }
        }
        s
    }

    /// The real uid: whose process it is.
    pub fn real_uid(&self) -> Option<u32> {
        self.uids.map(|u| u[0])
    }

    /// The real gid.
    pub fn real_gid(&self) -> Option<u32> {
        self.gids.map(|g| g[0])
    }
}

fn four_ids(value: &str) -> Option<[u32; 4]> {
    let mut ids = value.split_whitespace().map(|v| v.parse::<u32>().ok());
    let mut out = [0u32; 4];
    for slot in &mut out {
        *slot = ids.next()??;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Name:\tcurl worker\nUmask:\t0022\nState:\tS (sleeping)\n\
        Tgid:\t4242\nNgid:\t0\nPid:\t4243\nPPid:\t17\nTracerPid:\t0\n\
        Uid:\t1000\t0\t1001\t1002\nGid:\t100\t101\t102\t103\nFDSize:\t64\n\
        Groups:\t27 100 \nCapInh:\t0000000000000000\nCapEff:\t0000000000000400\n";

    #[test]
    fn reads_every_field_netev_uses() {
        let s = ProcStatus::parse(SAMPLE);
        assert_eq!(s.name.as_deref(), Some("curl worker"));
        assert_eq!(s.tgid, Some(4242));
        assert_eq!(s.ppid, Some(17));
        assert_eq!(s.uids, Some([1000, 0, 1001, 1002]));
        assert_eq!(s.real_uid(), Some(1000));
        assert_eq!(s.gids, Some([100, 101, 102, 103]));
        assert_eq!(s.real_gid(), Some(100));
        assert_eq!(s.groups, Some(vec![27, 100]));
        assert_eq!(ProcStatus::parse("Groups:\t\n").groups, Some(vec![]));
        assert_eq!(s.cap_eff, Some(1 << 10), "CAP_NET_BIND_SERVICE");
    }

    #[test]
    fn missing_or_broken_lines_leave_their_field_unknown() {
        let s = ProcStatus::parse("Name:\tx\nUid:\t1000\t0\nPPid:\tnope\nno colon here\n");
        assert_eq!(s.name.as_deref(), Some("x"));
        assert_eq!(s.uids, None, "a Uid line needs all four ids");
        assert_eq!(s.ppid, None);
        assert_eq!(s.tgid, None);
        assert_eq!(ProcStatus::parse(""), ProcStatus::default());
    }

    #[test]
    fn reads_this_process() {
        let me = ProcStatus::read(std::process::id()).unwrap();
        assert_eq!(me.tgid, Some(std::process::id()));
        assert_eq!(me.real_uid(), Some(nix::unistd::getuid().as_raw()));
        assert_eq!(me.ppid, Some(std::os::unix::process::parent_id()));
        assert_eq!(ProcStatus::read(u32::MAX), None);
    }
}

/// When a process started, in clock ticks since boot (`/proc/PID/stat`'s
/// 22nd field, `starttime`): with the pid, it names one process for as long
/// as the machine runs, where a pid alone is reused.
pub fn start_ticks(pid: u32) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_ticks(&stat).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat has no start time field"),
        )
    })
}

/// The `starttime` of a `/proc/PID/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last ')'.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // fields 3.. follow; starttime is field 22
    rest.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

/// One process for as long as the machine runs: its pid and its start
/// time ([`start_ticks`]). A pid alone may name another process later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcId {
    /// The pid (in this pid namespace).
    pub pid: u32,
    /// Its start time, in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcId {
    /// Process `pid` as it is now; `None` if it is gone.
    pub fn of(pid: u32) -> Option<ProcId> {
        Some(ProcId {
            pid,
            start_ticks: start_ticks(pid).ok()?,
        })
    }
}

/// Why [`ancestor_among`] could not tell.
#[derive(Debug, thiserror::Error)]
pub enum AncestryError {
    /// The process itself is gone (or /proc cannot be read).
    #[error("process {0} is gone, or its /proc/{0}/stat cannot be read")]
    Gone(u32),
    /// Its line of parents kept changing while it was read, or is longer
    /// than any real one.
    #[error("the parents of process {0} kept changing while they were read, or are too many")]
    Unsettled(u32),
}

/// Which of `roots` is `pid` itself or one of its ancestors (parent,
/// parent's parent… up to pid 1), if any.
///
/// Each step reads one `/proc/PID/stat` line, which gives a process's
/// parent and start time together. A parent that started *after* its child
/// is not its parent: the real one exited and its pid was reused between
/// the two readings; the child (reparented meanwhile) is read again.
/// Orphans are reparented to the nearest subreaper, else to pid 1, so a
/// tree that must stay one (a supervisor's) needs its root to be a
/// subreaper (`PR_SET_CHILD_SUBREAPER`).
pub fn ancestor_among(pid: u32, roots: &[ProcId]) -> Result<Option<ProcId>, AncestryError> {
    // Deeper lines of parents are not told apart (refused by callers
    // that must know): real ones are a few dozen long.
    const MOST_STEPS: usize = 1 << 12;
    const MOST_ATTEMPTS: usize = 64;
    'attempt: for _ in 0..MOST_ATTEMPTS {
        let (mut ppid, start) = parent_and_start(pid).ok_or(AncestryError::Gone(pid))?;
        let mut me = ProcId {
            pid,
            start_ticks: start,
        };
        for _ in 0..MOST_STEPS {
            if roots.contains(&me) {
                return Ok(Some(me));
            }
            if ppid == 0 {
                // pid 1 (or the kernel's kthreadd): the top
                return Ok(None);
            }
            let parent = parent_and_start(ppid);
            // The child read again still names that parent: a pid cannot be
            // reused while a live child names it as its parent, so `parent`
            // is the real one, whatever the start times' granularity.
            let still = parent_and_start(me.pid);
            match parent {
                Some((grand, parent_start))
                    if parent_start <= me.start_ticks && still == Some((ppid, me.start_ticks)) =>
                {
                    me = ProcId {
                        pid: ppid,
                        start_ticks: parent_start,
                    };
                    ppid = grand;
                }
                // gone, or a newer process with its pid: the line changed
                // under us (a reparenting); read it again from the start
                _ => continue 'attempt,
            }
        }
        // a line longer than any real one
        return Err(AncestryError::Unsettled(pid));
    }
    Err(AncestryError::Unsettled(pid))
}

/// The parent (field 4) and start time (field 22) of one `/proc/PID/stat`
/// reading.
fn parent_and_start(pid: u32) -> Option<(u32, u64)> {
    parse_parent_and_start(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_parent_and_start(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // fields 3.. follow: state, then ppid
    let ppid = fields.nth(4 - 3)?.parse().ok()?;
    let start = fields.nth(22 - 4 - 1)?.parse().ok()?;
    Some((ppid, start))
}

/// Most bytes of a command line netev keeps (the rest is cut).
pub const MAX_CMDLINE: usize = 4096;

/// NUL-separated argv (`/proc/PID/cmdline`) as space-separated text, cut at
/// [`MAX_CMDLINE`] bytes.
pub fn cmdline_text(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(MAX_CMDLINE)];
    let trimmed = raw.strip_suffix(&[0]).unwrap_or(raw);
    String::from_utf8_lossy(trimmed).replace('\0', " ")
}

/// A process's executable: the path `/proc/PID/exe` reads, and whether
/// that path names, in this process's view of the files, the very file the
/// process executes.
///
/// The path alone proves nothing: the kernel writes it from the mount the
/// file was executed through, so a bind mount in another mount namespace
/// (`unshare -rm`, then `mount --bind other /usr/bin/curl`) makes any
/// binary read as `/usr/bin/curl`. netevd matches programs by the file
/// (the kernel's device and inode of the executable); here the path is
/// accepted only if opening it here reaches that same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exe {
    /// What `/proc/PID/exe` reads (` (deleted)` included, if so).
    pub path: String,
    /// The path, opened here, is the file the process executes (same
    /// `st_dev` and inode), and the path is canonical here.
    pub same_file: bool,
}

impl Exe {
    /// Reads the executable of process (or thread) `pid`; `None` when it
    /// is gone or not ours to inspect.
    pub fn read(pid: u32) -> Option<Exe> {
        use std::os::unix::fs::MetadataExt;
        let link = format!("/proc/{pid}/exe");
        // stat() follows the magic link to the process's own file, not to
        // whatever its path names now: a path swapped after the readlink
        // below is compared against the file, never against itself.
        let running = std::fs::metadata(&link).ok().map(|m| (m.dev(), m.ino()));
        let path = std::fs::read_link(&link).ok()?;
        let same_file = running.is_some() && file_named(&path) == running;
        Some(Exe {
            path: path.to_string_lossy().into_owned(),
            same_file,
        })
    }
}

/// (st_dev, inode) of the file `path` names here, if `path` is also its
/// canonical name (no symlink in it: a rule names files by canonical path).
/// One open: the identity and the name checked are of one file.
fn file_named(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let name = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ok()?;
    let md = f.metadata().ok()?;
    (name == path).then(|| (md.dev(), md.ino()))
}

/// Who a live process is, read from /proc by netevd itself (never taken
/// from what anyone says about it): one consistent reading, made while the
/// process kept one start time, so a pid reused meanwhile is noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// The pid.
    pub pid: u32,
    /// Its start time ([`start_ticks`]).
    pub start_ticks: u64,
    /// Its executable (`/proc/PID/exe`), if readable.
    pub exe: Option<String>,
    /// Its command name.
    pub comm: String,
    /// Its command line, if it has one.
    pub cmdline: Option<String>,
    /// Its parent.
    pub ppid: u32,
    /// Its real uid.
    pub uid: u32,
    /// Its real gid.
    pub gid: u32,
}

impl Process {
    /// Reads process `pid`; `None` if it is gone, or was replaced by
    /// another process with the same pid while being read.
    pub fn read(pid: u32) -> Option<Process> {
        let start = start_ticks(pid).ok()?;
        let status = ProcStatus::read(pid)?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .filter(|raw| !raw.is_empty())
            .map(|raw| cmdline_text(&raw));
        if start_ticks(pid).ok()? != start {
            return None;
        }
        Some(Process {
            pid,
            start_ticks: start,
            exe,
            comm: status.name.clone().unwrap_or_default(),
            cmdline,
            ppid: status.ppid.unwrap_or(0),
            uid: status.real_uid()?,
            gid: status.real_gid()?,
        })
    }
}

#[cfg(test)]
mod start_tests {
    use super::*;

    #[test]
    fn exe_is_the_same_file_only_under_its_own_canonical_path() {
        let me = Exe::read(std::process::id()).unwrap();
        assert!(me.same_file, "{me:?}");
        assert_eq!(
            std::path::Path::new(&me.path),
            std::fs::canonicalize("/proc/self/exe").unwrap()
        );
        let own = std::path::Path::new(&me.path);
        assert!(file_named(own).is_some());
        // A symlink to the file is not followed (a rule names files by
        // canonical path): what it names is the link itself.
        let dir = tempfile::tempdir().unwrap();
        let link = std::fs::canonicalize(dir.path()).unwrap().join("link");
        std::os::unix::fs::symlink(own, &link).unwrap();
        assert_ne!(file_named(&link), file_named(own));
        // A name with a symlinked directory in it is not canonical.
        let dirlink = std::fs::canonicalize(dir.path()).unwrap().join("dir");
        std::os::unix::fs::symlink(own.parent().unwrap(), &dirlink).unwrap();
        assert_eq!(file_named(&dirlink.join(own.file_name().unwrap())), None);
        // Another file with a name of its own is another file.
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").unwrap();
        let other = std::fs::canonicalize(&other).unwrap();
        assert_ne!(file_named(&other), file_named(own));
        assert_eq!(Exe::read(u32::MAX), None);
    }

    #[test]
    fn start_time_is_read_past_a_hostile_command_name() {
        let line = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 1000 10";
        assert_eq!(parse_start_ticks(line), Some(777));
        assert_eq!(parse_start_ticks("42 (x"), None);
        let me = start_ticks(std::process::id()).unwrap();
        assert!(me > 0);
        assert_eq!(start_ticks(std::process::id()).unwrap(), me);
    }

    #[test]
    fn parent_and_start_are_read_past_a_hostile_command_name() {
        let line = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 1000 10";
        assert_eq!(parse_parent_and_start(line), Some((1, 777)));
        assert_eq!(parse_parent_and_start("42 (x) S 1"), None);
    }

    #[test]
    fn a_process_descends_from_its_parents_and_not_from_its_children() {
        let me = ProcId::of(std::process::id()).unwrap();
        let parent = ProcId::of(std::os::unix::process::parent_id()).unwrap();
        let init = ProcId::of(1).unwrap();
        assert_eq!(ancestor_among(me.pid, &[me]).unwrap(), Some(me));
        assert_eq!(ancestor_among(me.pid, &[parent]).unwrap(), Some(parent));
        assert_eq!(ancestor_among(me.pid, &[init]).unwrap(), Some(init));
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let kid = ProcId::of(child.id()).unwrap();
        assert_eq!(ancestor_among(child.id(), &[me]).unwrap(), Some(me));
        assert_eq!(ancestor_among(me.pid, &[kid]).unwrap(), None);
        // the same pid with another start time is another process
        let reused = ProcId {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert_eq!(ancestor_among(child.id(), &[reused]).unwrap(), None);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(matches!(
            ancestor_among(kid.pid, &[me]),
            Err(AncestryError::Gone(_))
        ));
    }

    #[test]
    fn reads_this_process_in_one_reading() {
        let me = Process::read(std::process::id()).unwrap();
        assert_eq!(me.uid, nix::unistd::getuid().as_raw());
        assert_eq!(me.start_ticks, start_ticks(std::process::id()).unwrap());
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(me.exe.as_deref(), exe.to_str());
        assert!(me.cmdline.is_some());
        assert_eq!(Process::read(u32::MAX), None);
        assert_eq!(cmdline_text(b"curl\0-s\0http://x/\0"), "curl -s http://x/");
        assert_eq!(cmdline_text(&[b'a'; 9000]).len(), MAX_CMDLINE);
    }
}
