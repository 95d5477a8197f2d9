//! Starting the child under the filter and getting its listener.
//!
//! Between fork and exec the child makes only async-signal-safe syscalls:
//! `prctl(PR_SET_DUMPABLE, 1)`, `prctl(PR_SET_NO_NEW_PRIVS)`,
//! `seccomp(SET_MODE_FILTER, NEW_LISTENER)`, then it tells the parent its
//! pid and the listener's fd number through a pipe and waits for a byte
//! back before it execs.
//!
//! The supervisor is non-dumpable (lib.rs, `Supervised::spawn`), and a
//! fork inherits that: the child makes itself dumpable again so that its
//! parent, of the same uid but without `CAP_SYS_PTRACE`, may take its
//! listener. Its exec then sets dumpable as for any exec (dumpable for a
//! readable program run without a uid change), so the program's own /proc
//! and ptrace rules are the usual ones.
//!
//! Why not SCM_RIGHTS: once the filter is installed, the child's own
//! `sendmsg` is one of the watched syscalls, and the only one who could
//! answer it is the parent, which does not have the listener yet: the child
//! would wait forever. So the parent takes the fd with `pidfd_getfd` (it is
//! the child's parent, which ptrace access allows) while the child waits on
//! a `read`, which the filter does not watch. The listener is close-on-exec:
//! the program that runs after exec never holds it (holding it, it could
//! answer its own notifications).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use crate::{filter, sys};

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Spawns `cmd` under the filter; returns the child and the listener.
pub fn spawn(cmd: &mut Command) -> io::Result<(Child, OwnedFd)> {
    let program = filter::program();
    let (info_r, info_w) = pipe()?;
    let (ack_r, ack_w) = pipe()?;
    let (info_wfd, ack_rfd) = (info_w.as_raw_fd(), ack_r.as_raw_fd());
    // Raw addresses: the closure runs in the forked copy of this address
    // space, where `program` still lives (spawn returns after exec).
    let filter_ptr = program.as_ptr() as usize;
    let filter_len = program.len() as u16;

    // SAFETY: the closure makes only async-signal-safe syscalls and does
    // not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            let prog = libc::sock_fprog {
                len: filter_len,
                filter: filter_ptr as *mut libc::sock_filter,
            };
            let fd = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &prog as *const libc::sock_fprog,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let msg = [libc::getpid(), fd as i32];
            let n = libc::write(info_wfd, msg.as_ptr().cast(), std::mem::size_of_val(&msg));
            if n != std::mem::size_of_val(&msg) as isize {
                return Err(io::Error::last_os_error());
            }
            let mut b = 0u8;
            loop {
                let n = libc::read(ack_rfd, (&mut b as *mut u8).cast(), 1);
                if n == 1 {
                    break;
                }
                let e = io::Error::last_os_error();
                if n < 0 && e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(if n == 0 {
                    io::Error::from_raw_os_error(libc::EPIPE)
                } else {
                    e
                });
            }
            libc::close(fd as i32);
            Ok(())
        });
    }

    // std's spawn() returns only once the child has exec'ed, and the child
    // execs only once we took its listener: take it on another thread.
    let taker = std::thread::spawn(move || -> io::Result<OwnedFd> {
        let mut msg = [0i32; 2];
        let want = std::mem::size_of_val(&msg);
        // SAFETY: msg is valid for `want` bytes.
        let n = unsafe { libc::read(info_r.as_raw_fd(), msg.as_mut_ptr().cast(), want) };
        if n != want as isize {
            return Err(io::Error::other(
                "the child did not install the seccomp filter",
            ));
        }
        let (pid, fd) = (msg[0] as u32, msg[1]);
        let pidfd = sys::pidfd_open(pid, pid)?;
        let listener = sys::pidfd_getfd(&pidfd, fd)?;
        // SAFETY: one byte from a valid buffer.
        unsafe { libc::write(ack_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        Ok(listener)
    });
    let spawned = cmd.spawn();
    // Our copies of the child's ends: closing them lets the taker see EOF
    // if the child failed before writing.
    drop(info_w);
    drop(ack_r);
    let taken = taker
        .join()
        .map_err(|_| io::Error::other("listener thread panicked"))?;
    drop(program);
    let mut child = spawned?;
    match taken {
        Ok(listener) => Ok((child, listener)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}
