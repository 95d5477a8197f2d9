//! The rule tables' records (netev.h, "rule tables") and the kind index.
//!
//! The map-writing code lives in netev-bpf (`rules.rs`); the compiler that
//! fills these in netev-rules (`compile.rs`).

use bytemuck::{Pod, Zeroable};

use crate::{
    AF_INET, AF_INET6, AF_UNIX, GUARDS, GUARD_WHATS, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP,
    IPPROTO_TCP, IPPROTO_UDP, KIND_FAMILIES, KIND_FAMILY_INET, KIND_FAMILY_INET6,
    KIND_FAMILY_OTHER, KIND_FAMILY_UNIX, KIND_PROTOS, KIND_PROTO_ICMP, KIND_PROTO_ICMPV6,
    KIND_PROTO_OTHER, KIND_PROTO_TCP, KIND_PROTO_UDP, KIND_TABLE, NAME_LEN, OPS, SOCK_DGRAM,
    SOCK_RAW,
};

/// `struct netev_ruleset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawRuleset {
    /// Bitmap words in use.
    pub words: u32,
    /// Class of a program no rule names.
    pub exe_other: u16,
    /// Class of a uid no rule names.
    pub uid_other: u16,
    /// Class of an op without an address.
    pub addr_none: u16,
    /// Class of an op without a port.
    pub port_none: u16,
    /// `enum netev_action` by op - 1 (one spare byte keeps the layout).
    pub default_action: [u8; 8],
    /// Applied when the decision is ask.
    pub ask_fallback: u8,
    /// Padding.
    pub _pad: [u8; 1],
    /// Class of a program deeper than [`crate::DIR_DEPTH`] directories
    /// below anything found.
    pub exe_too_deep: u16,
    /// Class of every rule.
    pub all: u16,
    /// socket() guards ([`guard_index`]): deny/ask rules that could apply
    /// to the socket's later calls.
    pub guard_deny: [u16; GUARDS],
    /// ... and allow rules that could.
    pub guard_allow: [u16; GUARDS],
    /// ... and whether a later call's default is not allow.
    pub guard_default: [u8; GUARDS],
    /// Padding.
    pub _pad2: [u8; 2],
    /// Class by kind ([`kind_index`]).
    pub kind: [u16; KIND_TABLE],
}

/// `struct netev_rule_meta`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawRuleMeta {
    /// Rule id.
    pub id: u32,
    /// `enum netev_action`.
    pub action: u8,
    /// Consumed by its first match.
    pub once: u8,
    /// Padding.
    pub _pad: u16,
    /// CLOCK_BOOTTIME ns at which the rule stops matching; 0: never.
    pub expires_ns: u64,
}

/// `struct netev_dir_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawDirKey {
    /// The directory's inode.
    pub ino: u64,
    /// Kernel dev_t.
    pub dev: u32,
    /// Slot.
    pub slot: u32,
}

/// `struct netev_dir_classes`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawDirClasses {
    /// Class of an executable directly in the directory.
    pub direct: u16,
    /// Class of one further below.
    pub deep: u16,
}

/// `struct netev_file_classes`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawFileClasses {
    /// Class while the executable is the pinned version (or always, when
    /// `ino` is 0).
    pub class: u16,
    /// Class of any other version.
    pub changed: u16,
    /// Padding.
    pub _pad: u32,
    /// The pinned version's inode; 0: none.
    pub ino: u64,
    /// Its change time, ns.
    pub ctime_ns: u64,
}

/// `struct netev_file_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawFileKey {
    /// The directory's inode.
    pub ino: u64,
    /// Kernel dev_t of the directory.
    pub dev: u32,
    /// Slot.
    pub slot: u32,
    /// The file's name, NUL-padded.
    pub name: [u8; NAME_LEN],
}

/// `struct netev_uid_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawUidKey {
    /// uid.
    pub uid: u32,
    /// Slot.
    pub slot: u32,
}

/// `struct netev_addr_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RawAddrKey {
    /// 8 + prefix length.
    pub prefixlen: u32,
    /// Slot.
    pub slot: u8,
    /// IPv6 (IPv4 mapped).
    pub addr: [u8; 16],
    /// Padding.
    pub _pad: [u8; 3],
}

const _: () = assert!(std::mem::size_of::<RawRuleset>() == 28 + 5 * GUARDS + 2 * KIND_TABLE);

/// Index of a socket's guard ([`crate::GUARDS`]), as `guard_index()` in
/// netev.bpf.c computes it: `None` for a socket whose calls the cgroup
/// backend decides (TCP, UDP) or a family it has no guard for.
pub const fn guard_index(af: u16, sock_type: u16, proto: u16) -> Option<usize> {
    let fam = match af {
        AF_INET => 0,
        AF_INET6 => 1,
        _ => return None,
    };
    let what = if proto == IPPROTO_SCTP {
        0
    } else if sock_type == SOCK_RAW {
        3
    } else if sock_type == SOCK_DGRAM && proto == IPPROTO_ICMP {
        1
    } else if sock_type == SOCK_DGRAM && proto == IPPROTO_ICMPV6 {
        2
    } else {
        return None;
    };
    Some(fam * GUARD_WHATS + what)
}

/// Index of a socket family (`AF_*`) in the kind table, as
/// `family_index()` in netev.bpf.c computes it.
pub const fn family_index(af: u16) -> usize {
    match af {
        AF_INET => KIND_FAMILY_INET,
        AF_INET6 => KIND_FAMILY_INET6,
        AF_UNIX => KIND_FAMILY_UNIX,
        _ => KIND_FAMILY_OTHER,
    }
}

/// Index of an IP protocol (`IPPROTO_*`) in the kind table, as
/// `proto_index()` in netev.bpf.c computes it.
pub const fn proto_index(proto: u16) -> usize {
    match proto {
        IPPROTO_TCP => KIND_PROTO_TCP,
        IPPROTO_UDP => KIND_PROTO_UDP,
        IPPROTO_ICMP => KIND_PROTO_ICMP,
        IPPROTO_ICMPV6 => KIND_PROTO_ICMPV6,
        _ => KIND_PROTO_OTHER,
    }
}

/// Index in the kind table of an op number (`enum netev_op`), family and
/// protocol, as `decide()` in netev.bpf.c computes it; `None` for a number
/// that is no op (the kernel then lets the default decide).
pub const fn kind_index(op: u8, af: u16, proto: u16) -> Option<usize> {
    let idx = (op as usize).wrapping_sub(1);
    if idx >= OPS {
        return None;
    }
    Some((idx * KIND_FAMILIES + family_index(af)) * KIND_PROTOS + proto_index(proto))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KINDS, OP_RECVMSG, OP_SOCKET};

    #[test]
    fn kind_indexes_cover_the_table_once() {
        let afs = [AF_INET, AF_INET6, AF_UNIX, 0];
        let protos = [IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, 0];
        let mut seen = [false; KINDS];
        for op in OP_SOCKET..=OP_RECVMSG {
            for af in afs {
                for proto in protos {
                    let i = kind_index(op, af, proto).unwrap();
                    assert!(!seen[i], "op {op} af {af} proto {proto}");
                    seen[i] = true;
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(kind_index(0, AF_INET, IPPROTO_TCP), None);
        assert_eq!(kind_index(OP_RECVMSG + 1, AF_INET, IPPROTO_TCP), None);
        assert_eq!(family_index(16), KIND_FAMILY_OTHER);
        assert_eq!(proto_index(132), KIND_PROTO_OTHER);
    }
}
