//! Who made a call, without re-reading /proc for every call.
//!
//! What decisions use is read fresh for every call: the thread's ids and
//! real uid/gid come from `PIDFD_GET_INFO` on a pidfd for the *thread*
//! (credentials are per thread; `setuid` in one thread shows at once), and
//! the executable is read from `/proc/<tid>/exe` whenever a rule names one
//! (and checked against the file the thread executes: [`proc::exe`]).
//! The thread's name is re-read from an open `/proc/<tid>/comm` (one
//! `pread`). What only describes the call — the executable when no rule
//! names one, the command line — is kept per process and dropped when the
//! process execs: the entry holds `/proc/<tgid>/mem`, which refers to the
//! address space it was opened on; after an exec that address space is
//! gone and reading it fails, so the entry is read again. See docs/run.md,
//! "What is cached".
//!
//! On kernels without thread pidfds (6.9) or `PIDFD_GET_INFO` (6.13),
//! everything is read from /proc for every call, as before.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use crate::proc::{self, Caller};
use crate::sys;

/// Cached threads and processes kept at most; when full, all are dropped
/// (dead ones are not noticed otherwise; a live one is simply re-read).
const MAX_THREADS: usize = 1024;
const MAX_PROCS: usize = 256;

/// A caller as identified for one call.
pub struct Who {
    pub caller: Caller,
    /// A pidfd for the calling thread (or its group on old kernels).
    pub pidfd: Arc<OwnedFd>,
    /// Whether `caller.exe` was read for this call (not taken from the
    /// cache).
    pub exe_fresh: bool,
    /// A process to remember once the call is known to be still waiting.
    commit: Option<(u32, Proc)>,
}

struct Thread {
    pidfd: Arc<OwnedFd>,
    comm: Option<File>,
}

struct Proc {
    /// `/proc/<pid>/mem` as opened: readable while that address space
    /// lives, so not after an exec.
    mem: File,
    exe: Option<String>,
    cmdline: Option<String>,
}

#[derive(Default)]
pub struct Callers {
    /// Set once the kernel has shown it lacks thread pidfds or
    /// `PIDFD_GET_INFO`.
    slow: bool,
    threads: HashMap<u32, Thread>,
    procs: HashMap<u32, Proc>,
}

enum Miss {
    Gone,
    Unsupported,
}

impl Callers {
    /// Identifies the thread `tid` whose call stopped at `ip`; `want_exe`:
    /// read the executable now (a rule names one). `None`: it is gone.
    /// Nothing read here is trusted before the notification is checked
    /// still valid (`SECCOMP_IOCTL_NOTIF_ID_VALID`), by the caller of this.
    pub fn identify(&mut self, tid: u32, ip: u64, want_exe: bool) -> Option<Who> {
        if !self.slow {
            match self.thread(tid) {
                Ok((pidfd, info, comm)) => {
                    let (exe, cmdline, exe_fresh, commit) =
                        self.process(info.tgid, tid, ip, want_exe);
                    return Some(Who {
                        caller: Caller {
                            tid,
                            tgid: info.tgid,
                            ppid: info.ppid,
                            uid: info.uid,
                            gid: info.gid,
                            comm,
                            exe,
                            cmdline,
                        },
                        pidfd,
                        exe_fresh,
                        commit,
                    });
                }
                Err(Miss::Gone) => return None,
                Err(Miss::Unsupported) => {
                    self.slow = true;
                    self.threads.clear();
                    self.procs.clear();
                }
            }
        }
        let caller = Caller::read(tid)?;
        let pidfd = sys::pidfd_open(tid, caller.tgid).ok()?;
        Some(Who {
            caller,
            pidfd: Arc::new(pidfd),
            exe_fresh: true,
            commit: None,
        })
    }

    /// Remembers what `identify` read about a new process; call only once
    /// the notification has been found valid after `identify`: then the
    /// call was waiting all along, so its process cannot have exec'd in
    /// between (an exec kills every other thread before it replaces the
    /// address space), and what was read belongs to the address space
    /// `mem` refers to.
    pub fn commit(&mut self, who: &mut Who) {
        if let Some((tgid, p)) = who.commit.take() {
            if self.procs.len() >= MAX_PROCS {
                self.procs.clear();
            }
            self.procs.insert(tgid, p);
        }
    }

    fn thread(&mut self, tid: u32) -> Result<(Arc<OwnedFd>, sys::PidInfo, String), Miss> {
        if let Some(t) = self.threads.get(&tid) {
            // The pidfd names one thread for good; while it answers, that
            // thread is alive, so it is the one numbered `tid` now.
            match sys::pidfd_info(&t.pidfd) {
                Ok(info) if info.tid == tid => {
                    return Ok((Arc::clone(&t.pidfd), info, comm(t.comm.as_ref())))
                }
                _ => {
                    self.threads.remove(&tid);
                }
            }
        }
        let pidfd = match sys::pidfd_open_thread(tid) {
            Ok(p) => p,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Err(Miss::Unsupported),
            Err(_) => return Err(Miss::Gone),
        };
        // Opened after the pidfd and before the check below: if the
        // thread is still there then, this is its comm.
        let comm_file = File::open(format!("/proc/{tid}/comm")).ok();
        let info = match sys::pidfd_info(&pidfd) {
            Ok(i) if i.tid == tid => i,
            Ok(_) => return Err(Miss::Gone),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(Miss::Gone),
            Err(_) => return Err(Miss::Unsupported),
        };
        let pidfd = Arc::new(pidfd);
        let comm = comm(comm_file.as_ref());
        if self.threads.len() >= MAX_THREADS {
            self.threads.clear();
        }
        self.threads.insert(
            tid,
            Thread {
                pidfd: Arc::clone(&pidfd),
                comm: comm_file,
            },
        );
        Ok((pidfd, info, comm))
    }

    /// (exe, cmdline, exe read now, entry to commit)
    #[allow(clippy::type_complexity)]
    fn process(
        &mut self,
        tgid: u32,
        tid: u32,
        ip: u64,
        want_exe: bool,
    ) -> (Option<String>, Option<String>, bool, Option<(u32, Proc)>) {
        if let Some(p) = self.procs.get(&tgid) {
            // The caller's code is mapped at `ip` in its address space: a
            // byte read there through `mem` means that space still lives.
            let mut b = [0u8; 1];
            if matches!(sys::pread(&p.mem, &mut b, ip), Ok(1)) {
                let exe = if want_exe {
                    proc::exe(tid)
                } else {
                    p.exe.clone()
                };
                return (exe, p.cmdline.clone(), want_exe, None);
            }
            self.procs.remove(&tgid);
        }
        // `mem` first: what is read next is of that address space or a
        // later one, and `commit` rules out a later one.
        let mem = File::open(format!("/proc/{tid}/mem")).ok();
        let exe = proc::exe(tid);
        let cmdline = proc::cmdline(tgid);
        let commit = mem.map(|mem| {
            (
                tgid,
                Proc {
                    mem,
                    exe: exe.clone(),
                    cmdline: cmdline.clone(),
                },
            )
        });
        (exe, cmdline, true, commit)
    }
}

/// The thread name from its open `/proc/<tid>/comm` (read again from the
/// start every time: a proc file regenerates on a read at offset 0).
fn comm(f: Option<&File>) -> String {
    let mut buf = [0u8; 64];
    match f.map(|f| sys::pread(f, &mut buf, 0)) {
        Some(Ok(n)) => {
            let s = &buf[..n];
            String::from_utf8_lossy(s.strip_suffix(b"\n").unwrap_or(s)).into_owned()
        }
        _ => String::new(),
    }
}
