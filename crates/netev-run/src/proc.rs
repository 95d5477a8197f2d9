//! Who made a call: read from /proc/<tid>, before the notification is
//! re-validated (so a pid reused meanwhile is caught by the ID check).

/// What /proc tells about the calling thread.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub tid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    /// Canonical path of the executable (`/proc/<tid>/exe`).
    pub exe: Option<String>,
    pub cmdline: Option<String>,
}

/// CAP_NET_BIND_SERVICE's bit in the capability sets.
pub const CAP_NET_BIND_SERVICE: u64 = 1 << 10;

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

/// Canonical path of the executable of thread `tid` (`/proc/<tid>/exe`).
pub fn exe(tid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{tid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
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

/// The effective capabilities of thread `tid` now (`CapEff`), 0 if unknown.
pub fn cap_eff(tid: u32) -> u64 {
    netev_host::proc_status::ProcStatus::read(tid)
        .and_then(|s| s.cap_eff)
        .unwrap_or(0)
}

/// The lowest port an unprivileged process may bind.
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// The name of user `uid`, from the user database (netev-host's lookup,
/// which a large directory entry does not defeat).
pub use netev_host::users::user_name;
