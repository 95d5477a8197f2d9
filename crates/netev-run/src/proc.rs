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
        let dir = format!("/proc/{tid}");
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let mut c = Caller {
            tid,
            tgid: tid,
            ..Caller::default()
        };
        for line in status.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let first = || value.split_whitespace().next().and_then(|v| v.parse().ok());
            match key {
                "Name" => c.comm = value.to_string(),
                "Tgid" => c.tgid = first().unwrap_or(tid),
                "PPid" => c.ppid = first().unwrap_or(0),
                "Uid" => c.uid = first().unwrap_or(u32::MAX),
                "Gid" => c.gid = first().unwrap_or(u32::MAX),
                _ => {}
            }
        }
        c.exe = exe(tid);
        c.cmdline = cmdline(c.tgid);
        Some(c)
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
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// The lowest port an unprivileged process may bind.
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// The name of user `uid`, from the password database.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: pwd and buf are valid for getpwuid_r to fill; the result
    // points into them.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let r = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out);
        if r != 0 || out.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}
