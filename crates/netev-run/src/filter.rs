//! The seccomp filter, in classic BPF, written by hand.
//!
//! It runs on every syscall of the supervised tree, so it is short and only
//! compares numbers: the architecture, the syscall number and, for sendto,
//! whether a destination address was passed at all (a plain `send()` is
//! `sendto(fd, buf, len, flags, NULL, 0)` and must not pay for a round trip
//! to the supervisor), and for setns, which namespaces it joins.
//! Everything not listed is allowed in the kernel.

use libc::{sock_filter, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_USER_NOTIF};

// The filter admits x86-64 syscalls only and refuses x32's: elsewhere it
// would refuse every call (the architecture check) or need another one.
#[cfg(not(target_arch = "x86_64"))]
compile_error!(
    "netev-run is x86_64 only: porting it means the target's AUDIT_ARCH_* and its \
     compat entry points in program() (src/filter.rs), and the layout of struct mmsghdr \
     (MMSGHDR_SIZE in src/supervise.rs)"
);

/// `AUDIT_ARCH_X86_64` (EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE),
/// from linux/audit.h: the libc crate does not define it.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Set in the syscall number of x32 calls: they take other entry points.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The syscalls sent to the supervisor.
pub const NOTIFIED: [i64; 9] = [
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_connect,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_sendmsg,
    libc::SYS_sendmmsg,
];

/// Refused with ENOSYS: io_uring can create sockets, connect and send
/// without any syscall the filter sees. Programs that use it fall back to
/// plain syscalls when it is missing.
pub const REFUSED: [i64; 3] = [
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// The namespaces a supervised process may not join with `setns`: a
/// process forked in another pid namespace is reparented, when its parent
/// dies, within that namespace (to its init), not to netev run, and so
/// leaves the tree netevd refuses answers from (docs/run.md); a user
/// namespace is the way into one. `nstype` 0 (any type, the descriptor
/// says) is refused too.
const SETNS_REFUSED: u32 = (libc::CLONE_NEWPID | libc::CLONE_NEWUSER) as u32;

// offsets in struct seccomp_data
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG1_LO: u32 = 16 + 8;
const ARG4_LO: u32 = 16 + 4 * 8;
const ARG4_HI: u32 = ARG4_LO + 4;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// `SECCOMP_RET_ERRNO` with `errno`.
pub fn ret_errno(errno: i32) -> u32 {
    SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

/// The filter program.
pub fn program() -> Vec<sock_filter> {
    let enosys = ret_errno(libc::ENOSYS);
    let mut p = vec![
        // Another architecture (i386 through int 0x80 from a 64-bit
        // process) numbers its syscalls differently: refuse it all.
        stmt(LD_W_ABS, ARCH),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET_K, enosys),
        stmt(LD_W_ABS, NR),
        // x32 reaches the same socket code under other numbers.
        jump(JSET_K, X32_SYSCALL_BIT, 0, 1),
        stmt(RET_K, enosys),
    ];
    for nr in NOTIFIED {
        p.push(jump(JEQ_K, nr as u32, 0, 1));
        p.push(stmt(RET_K, SECCOMP_RET_USER_NOTIF));
    }
    for nr in REFUSED {
        p.push(jump(JEQ_K, nr as u32, 0, 1));
        p.push(stmt(RET_K, enosys));
    }
    // setns: refused (EPERM) into a pid or user namespace, or any.
    p.extend([
        jump(JEQ_K, libc::SYS_setns as u32, 0, 5),
        stmt(LD_W_ABS, ARG1_LO),
        jump(JEQ_K, 0, 2, 0),
        jump(JSET_K, SETNS_REFUSED, 1, 0),
        stmt(RET_K, SECCOMP_RET_ALLOW),
        stmt(RET_K, ret_errno(libc::EPERM)),
        stmt(LD_W_ABS, NR),
    ]);
    // sendto: only with a destination (args[4] != NULL).
    p.extend([
        jump(JEQ_K, libc::SYS_sendto as u32, 0, 5),
        stmt(LD_W_ABS, ARG4_LO),
        jump(JEQ_K, 0, 0, 2),
        stmt(LD_W_ABS, ARG4_HI),
        jump(JEQ_K, 0, 1, 0),
        stmt(RET_K, SECCOMP_RET_USER_NOTIF),
        stmt(RET_K, SECCOMP_RET_ALLOW),
    ]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the subset used above: enough to check the
    /// program's answers without installing it.
    fn eval(p: &[sock_filter], nr: u32, arch: u32, arg4: u64) -> u32 {
        eval_args(p, nr, arch, 0, arg4)
    }

    fn eval_args(p: &[sock_filter], nr: u32, arch: u32, arg1: u64, arg4: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        data[24..32].copy_from_slice(&arg1.to_ne_bytes());
        data[48..56].copy_from_slice(&arg4.to_ne_bytes());
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = &p[pc];
            match i.code {
                LD_W_ABS => {
                    let o = i.k as usize;
                    a = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
                    pc += 1;
                }
                JEQ_K => pc += 1 + usize::from(if a == i.k { i.jt } else { i.jf }),
                JSET_K => pc += 1 + usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                RET_K => return i.k,
                c => panic!("unexpected opcode {c}"),
            }
        }
    }

    #[test]
    fn filter_answers() {
        let p = program();
        let x86 = AUDIT_ARCH_X86_64;
        let nr = |n: i64| n as u32;
        assert_eq!(
            eval(&p, nr(libc::SYS_connect), x86, 0),
            SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(
            eval(&p, nr(libc::SYS_socket), x86, 0),
            SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(eval(&p, nr(libc::SYS_read), x86, 0), SECCOMP_RET_ALLOW);
        assert_eq!(eval(&p, nr(libc::SYS_sendto), x86, 0), SECCOMP_RET_ALLOW);
        assert_eq!(
            eval(&p, nr(libc::SYS_sendto), x86, 0x7fff_0000_1000),
            SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(
            eval(&p, nr(libc::SYS_sendto), x86, 1 << 40),
            SECCOMP_RET_USER_NOTIF
        );
        let enosys = ret_errno(libc::ENOSYS);
        assert_eq!(
            eval(&p, nr(libc::SYS_connect) | X32_SYSCALL_BIT, x86, 0),
            enosys
        );
        assert_eq!(eval(&p, 102, 0x4000_0003, 0), enosys, "i386 socketcall");
        assert_eq!(eval(&p, nr(libc::SYS_io_uring_setup), x86, 0), enosys);
        let setns = |nstype: i32| eval_args(&p, nr(libc::SYS_setns), x86, nstype as u64, 0);
        let eperm = ret_errno(libc::EPERM);
        assert_eq!(setns(libc::CLONE_NEWPID), eperm);
        assert_eq!(setns(libc::CLONE_NEWUSER), eperm);
        assert_eq!(setns(0), eperm, "any type");
        assert_eq!(
            setns(libc::CLONE_NEWNET | libc::CLONE_NEWPID),
            eperm,
            "a pidfd's set"
        );
        assert_eq!(setns(libc::CLONE_NEWNET), SECCOMP_RET_ALLOW);
        assert_eq!(setns(libc::CLONE_NEWNS), SECCOMP_RET_ALLOW);
        // after setns, the other rules still hold
        assert_eq!(
            eval(&p, nr(libc::SYS_sendto), x86, 0x7fff_0000_1000),
            SECCOMP_RET_USER_NOTIF
        );
        assert!(p.len() < 64);
    }
}
