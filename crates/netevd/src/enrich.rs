//! Turning kernel records into events: who (exe, cmdline, user) and when.
//!
//! The kernel gives each event the inode of the process's executable, read at
//! the moment of the call, so attribution cannot race an exec. Here that inode
//! becomes a path: learned from exec records (while /proc/PID still exists, or
//! from the execve() path checked against the inode) and cached by inode, so
//! processes that are already gone are still named.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use netev_bpf::abi::{self, RawEvent, RawExec};
use netev_event::{Event, Family, Op, Proto, SockType, Verdict};

/// (kernel dev_t, inode) of an executable.
type AppId = (u32, u64);

/// Bound on cached processes; exit records normally keep it far smaller.
const MAX_PROCS: usize = 1 << 16;
const MAX_EXES: usize = 1 << 14;

#[derive(Debug, Clone)]
struct ProcInfo {
    app: AppId,
    cmdline: Option<Arc<str>>,
}

/// Caches and clock needed to turn records into events.
pub struct Enricher {
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, in ns.
    realtime_offset_ns: i128,
    exes: HashMap<AppId, Arc<str>>,
    procs: HashMap<u32, ProcInfo>,
    users: HashMap<u32, Option<Arc<str>>>,
}

impl Default for Enricher {
    fn default() -> Self {
        Self::new()
    }
}

impl Enricher {
    /// A fresh enricher; reads the clocks once.
    pub fn new() -> Enricher {
        Enricher {
            realtime_offset_ns: realtime_offset_ns(),
            exes: HashMap::new(),
            procs: HashMap::new(),
            users: HashMap::new(),
        }
    }

    /// Learns a process's new executable and command line.
    pub fn on_exec(&mut self, ex: &RawExec) {
        let pid = ex.hdr.pid;
        let app = (ex.app_dev, ex.app_ino);
        if !self.exes.contains_key(&app) {
            if let Some(path) = resolve_exe(pid, ex.app_ino, Some((&ex.filename(), ex.ppid))) {
                self.remember_exe(app, path);
            }
        }
        if self.procs.len() >= MAX_PROCS {
            self.procs.clear();
        }
        let cmdline = read_cmdline(pid, ex.app_ino);
        self.procs.insert(pid, ProcInfo { app, cmdline });
    }

    /// Forgets a process.
    pub fn on_exit(&mut self, pid: u32) {
        self.procs.remove(&pid);
    }

    fn remember_exe(&mut self, app: AppId, path: String) {
        if self.exes.len() >= MAX_EXES {
            self.exes.clear();
        }
        self.exes.insert(app, path.into());
    }

    /// The event for a network record, or None if the record is malformed
    /// (see [`is_well_formed`]).
    pub fn event(&mut self, raw: &RawEvent) -> Option<Event> {
        let op = Op::from_abi(raw.hdr.op)?;
        let verdict = Verdict::from_abi(raw.hdr.verdict)?;
        let pid = raw.hdr.pid;
        let app = (raw.app_dev, raw.app_ino);

        let exe = match self.exes.get(&app) {
            Some(p) => Some(p.clone()),
            None => {
                let found = resolve_exe(pid, raw.app_ino, None);
                if let Some(p) = &found {
                    self.remember_exe(app, p.clone());
                }
                found.map(Arc::from)
            }
        };
        let cmdline = match self.procs.get(&pid) {
            Some(info) if info.app == app => info.cmdline.clone(),
            _ => {
                let cmdline = read_cmdline(pid, raw.app_ino);
                if cmdline.is_some() {
                    if self.procs.len() >= MAX_PROCS {
                        self.procs.clear();
                    }
                    self.procs.insert(
                        pid,
                        ProcInfo {
                            app,
                            cmdline: cmdline.clone(),
                        },
                    );
                }
                cmdline
            }
        };
        let user = self.user(raw.uid);

        let family = Family(raw.family);
        let mut ev = Event::new(op);
        ev.ts = self.wall_clock(raw.hdr.ts_ns);
        ev.pid = pid;
        ev.tid = raw.tid;
        ev.ppid = raw.ppid;
        ev.uid = raw.uid;
        ev.gid = raw.gid;
        ev.user = user.map(|u| u.to_string());
        ev.comm = String::from_utf8_lossy(abi::c_bytes(&raw.comm)).into_owned();
        ev.exe = exe.map(|e| e.to_string());
        ev.cmdline = cmdline.map(|c| c.to_string());
        ev.family = family;
        ev.sock_type = SockType(raw.sock_type);
        ev.proto = (raw.protocol != 0).then_some(Proto(raw.protocol));
        if family.is_ip() {
            let has_remote = !matches!(op, Op::Socket | Op::Bind | Op::Listen);
            let has_local = op != Op::Socket;
            if has_local {
                ev.laddr = Some(ip(family, &raw.laddr));
                ev.lport = Some(raw.lport);
            }
            if has_remote {
                ev.raddr = Some(ip(family, &raw.raddr));
                ev.rport = Some(raw.rport);
            }
        }
        ev.ret = (raw.hdr.flags & abi::F_HAS_RET != 0).then_some(raw.ret);
        ev.verdict = verdict;
        ev.rule = (raw.rule_id != 0).then_some(raw.rule_id);
        ev.count = raw.count.max(1);
        ev.guard = raw.hdr.flags & abi::F_GUARD != 0;
        Some(ev)
    }

    fn user(&mut self, uid: u32) -> Option<Arc<str>> {
        self.users
            .entry(uid)
            .or_insert_with(|| netev_host::users::user_name(uid).map(Arc::from))
            .clone()
    }

    fn wall_clock(&self, mono_ns: u64) -> DateTime<Utc> {
        let ns = mono_ns as i128 + self.realtime_offset_ns;
        DateTime::from_timestamp_nanos(ns.clamp(0, i64::MAX as i128) as i64)
    }
}

/// Whether a network record names a known op and verdict: what
/// [`Enricher::event`] needs, checked without doing the enrichment.
pub fn is_well_formed(raw: &RawEvent) -> bool {
    Op::from_abi(raw.hdr.op).is_some() && Verdict::from_abi(raw.hdr.verdict).is_some()
}

fn ip(family: Family, bytes: &[u8; 16]) -> IpAddr {
    if family == Family::INET {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

fn realtime_offset_ns() -> i128 {
    use nix::time::{clock_gettime, ClockId};
    let ns = |c| {
        clock_gettime(c)
            .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
            .unwrap_or(0)
    };
    // Bracket the realtime read to keep the offset's error to one read.
    let m1 = ns(ClockId::CLOCK_MONOTONIC);
    let r = ns(ClockId::CLOCK_REALTIME);
    let m2 = ns(ClockId::CLOCK_MONOTONIC);
    r - (m1 + m2) / 2
}

/// The canonical path of the executable with inode `ino` that `pid` runs (or
/// ran: `hint` is the execve() path and the parent's pid, used when
/// /proc/PID is already gone).
/// Only a path whose inode matches is accepted: a process that exec'ed again,
/// or a pid that was reused, must not lend its path to an older event.
fn resolve_exe(pid: u32, ino: u64, hint: Option<(&str, u32)>) -> Option<String> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if let Ok(target) = std::fs::read_link(proc_dir.join("exe")) {
        // /proc/PID/exe opens the running binary even if it was replaced.
        if inode_of(&proc_dir.join("exe")) == Some(ino) {
            return Some(target.to_string_lossy().into_owned());
        }
    }
    let (path, ppid) = hint?;
    let candidates: Vec<PathBuf> = if Path::new(path).is_absolute() {
        vec![PathBuf::from(path)]
    } else {
        // A relative execve() path is relative to the caller's cwd; if the
        // process is gone, its parent usually forked it from the same one.
        [pid, ppid]
            .iter()
            .filter_map(|p| std::fs::read_link(format!("/proc/{p}/cwd")).ok())
            .map(|cwd| cwd.join(path))
            .collect()
    };
    candidates.into_iter().find_map(|c| {
        let canonical = std::fs::canonicalize(c).ok()?;
        (inode_of(&canonical) == Some(ino)).then(|| canonical.to_string_lossy().into_owned())
    })
}

fn inode_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The command line of `pid`, if it still runs the executable `ino`.
fn read_cmdline(pid: u32, ino: u64) -> Option<Arc<str>> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let raw = std::fs::read(dir.join("cmdline")).ok()?;
    // Re-check after reading: the process may have exec'ed meanwhile.
    if inode_of(&dir.join("exe")) != Some(ino) {
        return None;
    }
    Some(netev_host::proc_status::cmdline_text(&raw).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_own_executable() {
        let me = std::fs::canonicalize("/proc/self/exe").unwrap();
        let ino = inode_of(&me).unwrap();
        let got = resolve_exe(std::process::id(), ino, None).unwrap();
        assert_eq!(PathBuf::from(got), me);
        // a wrong inode is never accepted, even for a live process
        assert_eq!(resolve_exe(std::process::id(), ino + 1, None), None);
    }

    #[test]
    fn resolves_gone_process_from_exec_path() {
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        let ino = inode_of(&sh).unwrap();
        // pid 0 has no /proc entry: only the hint can name it
        assert_eq!(
            resolve_exe(u32::MAX, ino, Some(("/bin/sh", u32::MAX))).map(PathBuf::from),
            Some(sh.clone())
        );
        // relative to the parent's cwd (here: this process, cwd = crate dir)
        let rel = pathdiff_to(&sh);
        assert_eq!(
            resolve_exe(u32::MAX, ino, Some((&rel, std::process::id()))).map(PathBuf::from),
            Some(sh)
        );
    }

    /// `path` spelled relative to this process's cwd.
    fn pathdiff_to(path: &Path) -> String {
        let cwd = std::env::current_dir().unwrap();
        let ups = cwd.components().count() - 1;
        format!(
            "{}{}",
            "../".repeat(ups),
            path.strip_prefix("/").unwrap().display()
        )
    }

    #[test]
    fn event_addresses_follow_the_op() {
        let mut en = Enricher::new();
        let mut raw: RawEvent = bytemuck_zeroed();
        raw.hdr.kind = abi::KIND_NET;
        raw.hdr.op = 2; // bind
        raw.family = 2;
        raw.sock_type = 2;
        raw.protocol = 17;
        raw.laddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        raw.lport = 5353;
        raw.count = 1;
        let ev = en.event(&raw).unwrap();
        assert_eq!(ev.op, Op::Bind);
        assert_eq!(ev.laddr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ev.lport, Some(5353));
        assert_eq!(ev.raddr, None);
        assert_eq!(ev.proto, Some(Proto::UDP));
        assert_eq!(ev.ret, None);
        raw.hdr.op = 99;
        assert!(en.event(&raw).is_none());
    }

    fn bytemuck_zeroed() -> RawEvent {
        // RawEvent is Pod: all-zero is a valid value.
        unsafe { std::mem::zeroed() }
    }
}

/// Fuzzing on stable Rust: ring-buffer samples of any bytes, decoded and
/// turned into events as the capture loop does, then printed: an event,
/// nothing, or an error, never a panic. `NETEV_FUZZ_CASES` sets the cases.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("NETEV_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4096)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_sample_is_an_event_or_nothing(
            mut bytes in proptest::collection::vec(any::<u8>(), std::mem::size_of::<RawEvent>()..std::mem::size_of::<RawEvent>() + 8)
        ) {
            bytes[0] = netev_bpf::abi::KIND_NET;
            let mut enricher = Enricher::new();
            if let Ok(abi::Record::Net(raw)) = abi::decode(&bytes) {
                if is_well_formed(&raw) {
                    if let Some(ev) = enricher.event(&raw) {
                        let _ = ev.to_json();
                        let _ = ev.to_text();
                    }
                }
            }
        }
    }
}
