//! Thin, checked wrappers over the syscalls the supervisor makes. Every
//! `unsafe` block of the crate but the child's setup lives here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitStatus;

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (linux/seccomp.h, 6.6+): wake the
/// supervisor, and then the child, on the current CPU. Defined here: the
/// libc crate does not have it.
pub const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
/// `PIDFD_THREAD` (= O_EXCL, 6.9+): a pidfd for one thread, not its group.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Makes this process non-dumpable (`PR_SET_DUMPABLE 0`): from then on
/// only a process with `CAP_SYS_PTRACE` can ptrace it, take its
/// descriptors (`pidfd_getfd`), read or write its memory
/// (`process_vm_readv`, `/proc/<pid>/mem`) or read most of its /proc
/// files, whatever its uid. Process-wide, and there is no going back while
/// the listener lives in this process.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } as libc::c_long).map(|_| ())
}

/// Makes this process the subreaper of its descendants
/// (`PR_SET_CHILD_SUBREAPER`): an orphan among them is reparented here,
/// not to pid 1. Process-wide.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } as libc::c_long)
        .map(|_| ())
}

/// Reaps every child of this process until it has none: `main`'s status
/// goes to `tx` when it is reaped; the others (orphans adopted as their
/// subreaper) are reaped and forgotten. A zombie keeps its seccomp filter
/// until it is reaped, so an adopted one nobody reaps would keep the
/// supervisor serving forever.
pub fn reap_children(main: u32, tx: std::sync::mpsc::Sender<io::Result<ExitStatus>>) {
    use std::os::unix::process::ExitStatusExt;
    let mut main_reaped = false;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status it returns.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if !main_reaped {
                let _ = tx.send(Err(e));
            }
            return;
        }
        if pid as u32 == main {
            main_reaped = true;
            let _ = tx.send(Ok(ExitStatus::from_raw(status)));
        }
    }
}

/// A pidfd for process `pid` (flags 0: the process, not a thread).
pub fn pidfd_open_process(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall returning a new fd.
    let r = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// SIGKILL to the process `pidfd` names: never to another one that took
/// its pid after it was reaped.
pub fn pidfd_kill(pidfd: &OwnedFd) -> io::Result<()> {
    // SAFETY: a plain syscall; no siginfo.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(|_| ())
}

/// The errno of an error (EIO when it has none).
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Sets flags on the listener (`SECCOMP_IOCTL_NOTIF_SET_FLAGS`).
pub fn notif_set_flags(listener: &OwnedFd, flags: u64) -> io::Result<()> {
    // SAFETY: the ioctl takes the flags by value.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            flags,
        )
    };
    check(r.into()).map(drop)
}

/// Receives one notification. `ENOENT`: the caller went away before it was
/// read (its wait was interrupted); try again.
pub fn notif_recv(listener: &OwnedFd) -> io::Result<libc::seccomp_notif> {
    // SAFETY: the kernel requires a zeroed struct and fills it.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut n as *mut libc::seccomp_notif,
        )
    };
    check(r.into()).map(|_| n)
}

/// Whether notification `id` is still waiting for its answer (so the pid it
/// names is still that caller, and memory read from it was its memory).
pub fn notif_id_valid(listener: &OwnedFd, id: u64) -> bool {
    // SAFETY: the ioctl reads a u64 through the pointer.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id as *const u64,
        )
    };
    r == 0
}

/// The answer to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Let the kernel run the syscall as the caller made it.
    Continue,
    /// Return this value without running it.
    Value(i64),
    /// Fail with this errno without running it.
    Error(i32),
}

impl Reply {
    /// A syscall-style result: `Ok(value)` or `Err(errno)`.
    pub fn from_result(r: Result<i64, i32>) -> Reply {
        match r {
            Ok(v) => Reply::Value(v),
            Err(e) => Reply::Error(e),
        }
    }
}

/// Sends the answer. An answer to a caller that went away (`ENOENT`) is
/// not an error: it simply has nobody to go to.
pub fn notif_send(listener: &OwnedFd, id: u64, reply: Reply) -> io::Result<()> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: 0,
    };
    match reply {
        Reply::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        Reply::Value(v) => resp.val = v,
        Reply::Error(e) => resp.error = -e,
    }
    // SAFETY: the ioctl reads the response struct.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    };
    match check(r.into()) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A pidfd for thread `tid` (its own fd table, in case it unshared it);
/// for its thread group `tgid` on kernels without PIDFD_THREAD.
pub fn pidfd_open(tid: u32, tgid: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscalls returning a new fd.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, tid as libc::pid_t, PIDFD_THREAD) };
    let r = match check(r) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            check(unsafe { libc::syscall(libc::SYS_pidfd_open, tgid as libc::pid_t, 0) })?
        }
        other => other?,
    };
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// A duplicate of the caller's descriptor `fd` (`pidfd_getfd`): the same
/// open file, so the socket the caller would use.
pub fn pidfd_getfd(pidfd: &OwnedFd, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: returns a new fd (close-on-exec) or an error.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    let r = check(r)?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Reads `len` bytes at `addr` in process `pid`. A short read is `EFAULT`,
/// as the syscall itself would have failed.
pub fn read_mem(pid: u32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` covers `buf`; the kernel checks `remote`.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != len {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(buf)
}

/// Reads the caller's scattered buffers (`iovs`: (address, length)) into one.
pub fn read_iovs(pid: u32, iovs: &[(u64, usize)]) -> io::Result<Vec<u8>> {
    let total: usize = iovs.iter().map(|(_, l)| *l).sum();
    let mut buf = vec![0u8; total];
    let mut off = 0;
    // process_vm_readv takes at most IOV_MAX remote pieces at a time.
    for chunk in iovs.chunks(1024) {
        let len: usize = chunk.iter().map(|(_, l)| *l).sum();
        if len == 0 {
            continue;
        }
        let remote: Vec<libc::iovec> = chunk
            .iter()
            .map(|(a, l)| libc::iovec {
                iov_base: *a as *mut libc::c_void,
                iov_len: *l,
            })
            .collect();
        let local = libc::iovec {
            iov_base: buf[off..].as_mut_ptr().cast(),
            iov_len: len,
        };
        // SAFETY: `local` covers the rest of `buf`; the kernel checks `remote`.
        let n = unsafe {
            libc::process_vm_readv(
                pid as libc::pid_t,
                &local,
                1,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != len {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        off += len;
    }
    Ok(buf)
}

/// Writes `data` at `addr` in process `pid`.
pub fn write_mem(pid: u32, addr: u64, data: &[u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` covers `data` (only read); the kernel checks `remote`.
    let n = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != data.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// An integer socket option at `SOL_SOCKET`.
pub fn sockopt_int(fd: &OwnedFd, opt: i32) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for the kernel to write.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    check(r.into()).map(|_| v)
}

/// The socket's local address as raw sockaddr bytes.
pub fn sockname(fd: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: ss and len are valid for the kernel to write.
    let r = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    check(r.into())?;
    // SAFETY: sockaddr_storage is plain bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&ss as *const libc::sockaddr_storage).cast::<u8>(),
            (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>()),
        )
    };
    Ok(bytes.to_vec())
}

/// Whether the open file is in non-blocking mode (shared by the caller's
/// descriptor and our duplicate: it is one open file).
pub fn is_nonblocking(fd: &OwnedFd) -> bool {
    // SAFETY: F_GETFL has no pointer argument.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

fn result(r: libc::c_long) -> Result<i64, i32> {
    if r < 0 {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r)
    }
}

/// connect(2) on our duplicate with our copy of the address.
pub fn connect(fd: &OwnedFd, addr: &[u8]) -> Result<i64, i32> {
    // SAFETY: addr is a valid buffer of its length.
    result(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    } as libc::c_long)
}

/// bind(2) on our duplicate with our copy of the address.
pub fn bind(fd: &OwnedFd, addr: &[u8]) -> Result<i64, i32> {
    // SAFETY: addr is a valid buffer of its length.
    result(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    } as libc::c_long)
}

/// listen(2) on our duplicate.
pub fn listen(fd: &OwnedFd, backlog: i32) -> Result<i64, i32> {
    // SAFETY: no pointers.
    result(unsafe { libc::listen(fd.as_raw_fd(), backlog) } as libc::c_long)
}

/// A message as copied from the caller: data, optional address, control.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub name: Option<Vec<u8>>,
    pub data: Vec<u8>,
    pub control: Vec<u8>,
}

/// sendmsg(2) of our copy of a message on our duplicate.
pub fn sendmsg(fd: &OwnedFd, m: &Message, flags: i32) -> Result<i64, i32> {
    let mut iov = libc::iovec {
        iov_base: m.data.as_ptr() as *mut libc::c_void,
        iov_len: m.data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(name) = &m.name {
        hdr.msg_name = name.as_ptr() as *mut libc::c_void;
        hdr.msg_namelen = name.len() as libc::socklen_t;
    }
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if !m.control.is_empty() {
        hdr.msg_control = m.control.as_ptr() as *mut libc::c_void;
        hdr.msg_controllen = m.control.len();
    }
    // SAFETY: hdr points to live buffers.
    result(unsafe { libc::sendmsg(fd.as_raw_fd(), &hdr, flags) } as libc::c_long)
}

/// What `PIDFD_GET_INFO` tells about a thread: ids and real credentials,
/// read at the time of the call (credentials are per thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidInfo {
    pub tid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Real, effective, saved and filesystem uids and gids, in the order
    /// of `/proc/<tid>/status`.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
}

/// `struct pidfd_info` (linux/pidfd.h, 6.13+), its first version (64 bytes).
#[repr(C)]
#[derive(Default)]
#[allow(dead_code)] // filled by the kernel; only some fields are read
struct RawPidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

/// `PIDFD_GET_INFO` = `_IOWR(0xFF, 11, struct pidfd_info)`.
const PIDFD_GET_INFO: libc::c_ulong =
    (3 << 30) | ((std::mem::size_of::<RawPidfdInfo>() as libc::c_ulong) << 16) | (0xFF << 8) | 11;
const PIDFD_INFO_PID: u64 = 1;
const PIDFD_INFO_CREDS: u64 = 2;

/// The thread's ids and credentials now (`PIDFD_GET_INFO`). `ESRCH`: the
/// thread is gone; `ENOTTY`/`EINVAL`: a kernel without it (before 6.13).
pub fn pidfd_info(pidfd: &OwnedFd) -> io::Result<PidInfo> {
    let mut info = RawPidfdInfo {
        mask: PIDFD_INFO_PID | PIDFD_INFO_CREDS,
        ..RawPidfdInfo::default()
    };
    // SAFETY: the kernel writes at most the size encoded in the request.
    let r = unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO,
            &mut info as *mut RawPidfdInfo,
        )
    };
    check(r.into())?;
    if info.mask & (PIDFD_INFO_PID | PIDFD_INFO_CREDS) != PIDFD_INFO_PID | PIDFD_INFO_CREDS {
        return Err(io::Error::from_raw_os_error(libc::ENOTTY));
    }
    Ok(PidInfo {
        tid: info.pid,
        tgid: info.tgid,
        ppid: info.ppid,
        uid: info.ruid,
        gid: info.rgid,
        uids: [info.ruid, info.euid, info.suid, info.fsuid],
        gids: [info.rgid, info.egid, info.sgid, info.fsgid],
    })
}

/// A pidfd for thread `tid` only (`PIDFD_THREAD`); `EINVAL` on kernels
/// without thread pidfds (before 6.9).
pub fn pidfd_open_thread(tid: u32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall returning a new fd.
    let r =
        check(unsafe { libc::syscall(libc::SYS_pidfd_open, tid as libc::pid_t, PIDFD_THREAD) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// pread(2) into `buf` at `offset`: the count read.
pub fn pread(fd: &impl AsRawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    let r = unsafe {
        libc::pread(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            offset as libc::off_t,
        )
    };
    check(r as libc::c_long).map(|n| n as usize)
}

/// (effective, permitted) capabilities of thread `tid` (0: this thread),
/// by `capget(2)`: one syscall, where `/proc/<tid>/status` costs far more.
pub fn capget(tid: u32) -> io::Result<(u64, u64)> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut hdr = Header {
        version: VERSION_3,
        pid: tid as i32,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a version-3 header and the two data structs it implies.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    check(r)?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}
