//! netev's kernel ABI: the Rust mirror of `crates/netev-bpf/src/bpf/netev.h`.
//!
//! netev.h, next to the BPF programs, is the definition; this crate is its
//! one mirror, so that every crate that needs a number or a layout the C
//! side also knows (the loader, the rule compiler, the event model) takes
//! it from here instead of writing it again. Names are the C names without
//! `NETEV_` (`NETEV_OP_CONNECT` is [`OP_CONNECT`]); the per-CPU counters
//! are in [`counter`] (`NETEV_CNT_SEEN` is [`counter::SEEN`]).
//!
//! netev-bpf's tests (`src/abi_btf.rs` there) compare every constant here
//! by name with the enumerators in the BTF that clang emits for netev.h,
//! and every struct's size and field offsets with the BTF's, so a change
//! made on one side only fails a test instead of garbling events or rules.
//!
//! Pure data: no libbpf, no event model (netev-event depends on this crate,
//! not the other way round).
#![deny(missing_docs)]

mod record;
mod tables;

pub use record::{c_bytes, decode, AbiError, RawEvent, RawExec, RawHdr, Record};
pub use tables::{
    family_index, guard_index, kind_index, proto_index, RawAddrKey, RawDirClasses, RawDirKey,
    RawFileClasses, RawFileKey, RawRuleMeta, RawRuleset, RawUidKey,
};

/// Bytes of a task's command name, with its NUL (`NETEV_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Bytes of an execve() path a record keeps, with its NUL (`NETEV_PATH_LEN`).
pub const PATH_LEN: usize = 256;
/// Bytes of a file name in a rule key, with its NUL (`NETEV_NAME_LEN`;
/// NAME_MAX is 255).
pub const NAME_LEN: usize = 256;

/// Record kind (`enum netev_kind`, the first byte of every record): a
/// network operation, [`RawEvent`].
pub const KIND_NET: u8 = 1;
/// Record kind: a process exec'ed, [`RawExec`].
pub const KIND_EXEC: u8 = 2;
/// Record kind: a process (thread group) exited, a bare [`RawHdr`].
pub const KIND_EXIT: u8 = 3;

/// `enum netev_op`: socket().
pub const OP_SOCKET: u8 = 1;
/// `enum netev_op`: bind().
pub const OP_BIND: u8 = 2;
/// `enum netev_op`: listen().
pub const OP_LISTEN: u8 = 3;
/// `enum netev_op`: connect().
pub const OP_CONNECT: u8 = 4;
/// `enum netev_op`: accept(), accept4().
pub const OP_ACCEPT: u8 = 5;
/// `enum netev_op`: sendto(), sendmsg() with an address.
pub const OP_SENDMSG: u8 = 6;
/// `enum netev_op`: recvfrom(), recvmsg() asking for the peer.
pub const OP_RECVMSG: u8 = 7;
/// Number of ops: they are `1..=OPS` (`NETEV_OPS`).
pub const OPS: usize = 7;

/// `enum netev_verdict`: an enforcing hook let the call through.
pub const VERDICT_ALLOW: u8 = 0;
/// `enum netev_verdict`: an enforcing hook refused the call.
pub const VERDICT_DENY: u8 = 1;
/// `enum netev_verdict`: the hook cannot enforce; it only saw the call.
pub const VERDICT_OBSERVE: u8 = 2;

/// `enum netev_action`: what a rule or the default policy says: allow.
pub const ACTION_ALLOW: u8 = 0;
/// `enum netev_action`: deny.
pub const ACTION_DENY: u8 = 1;
/// `enum netev_action`: ask a person; the kernel applies the ask fallback.
pub const ACTION_ASK: u8 = 2;

/// `netev_hdr.flags` (`enum netev_flag`): `ret` holds the syscall's return value.
pub const F_HAS_RET: u8 = 0x01;
/// `netev_hdr.flags`: the decision was "ask"; the verdict is the ask fallback.
pub const F_ASKED: u8 = 0x02;
/// `netev_hdr.flags`: socket() was refused because the backend cannot
/// decide the socket's later calls and a rule or the default could refuse
/// them (SCTP, ICMP and raw sockets on the cgroup backend).
pub const F_GUARD: u8 = 0x04;

/// Index of each per-CPU counter in the `counters` map (`enum netev_counter`).
pub mod counter {
    /// Records the kernel tried to emit.
    pub const SEEN: u32 = 0;
    /// Records lost because the ring buffer was full.
    pub const DROPPED: u32 = 1;
    /// Hooked calls in scope, before coalescing.
    pub const CALLS: u32 = 2;
    /// Calls folded into a later record's `count`.
    pub const COALESCED: u32 = 3;
    /// Number of counters.
    pub const MAX: u32 = 4;
}

// The rule tables (`enum netev_table`; netev.h, "rule tables").

/// Complete table sets: userspace fills the one not in use, then switches.
pub const SLOTS: usize = 2;
/// 64-bit words per rule bitmap.
pub const RULE_WORDS: usize = 32;
/// Rules one table set holds.
pub const MAX_RULES: usize = RULE_WORDS * 64;
/// Distinct bitmaps ("classes") one table set holds.
pub const MAX_CLASSES: usize = 8192;
/// Entries of the kind table in use: op × family index × protocol index.
pub const KINDS: usize = OPS * KIND_FAMILIES * KIND_PROTOS;
/// Entries the kind table has (`netev_ruleset.kind`): a power of two, so
/// that a masked index needs no further proof for the verifier.
pub const KIND_TABLE: usize = 256;
/// Entries of `struct netev_port_classes`: one per port.
pub const PORTS: usize = 65536;
/// Entries of `struct netev_addr4_classes`: one per IPv4 /16.
pub const ADDR4_BLOCKS: usize = 65536;
/// In `struct netev_addr4_classes`: a longer prefix splits this /16, so the
/// address trie decides.
pub const ADDR4_TRIE: u16 = 0x8000;
/// Directories the kernel walks up from an executable looking for a
/// directory rule (`NETEV_DIR_DEPTH`).
pub const DIR_DEPTH: usize = 1024;
/// Files (exact exe paths) one table set holds (`NETEV_MAX_FILES`).
pub const MAX_FILES: usize = 16384;
/// Directories one table set holds (`NETEV_MAX_DIRS`).
pub const MAX_DIRS: usize = 16384;
/// Users one table set holds (`NETEV_MAX_UIDS`).
pub const MAX_UIDS: usize = 4096;
/// Address prefixes one table set holds (`NETEV_MAX_ADDRS`).
pub const MAX_ADDRS: usize = 16384;
/// socket() guards per family (`NETEV_GUARD_WHATS`): SCTP, ICMP datagram,
/// ICMPv6 datagram, raw ([`guard_index`]).
pub const GUARD_WHATS: usize = 4;
/// socket() guards (`NETEV_GUARDS`): inet and inet6 × [`GUARD_WHATS`].
pub const GUARDS: usize = 2 * GUARD_WHATS;

/// Family index in the kind table (`enum netev_kind_family`): AF_INET.
pub const KIND_FAMILY_INET: usize = 0;
/// Family index: AF_INET6.
pub const KIND_FAMILY_INET6: usize = 1;
/// Family index: AF_UNIX.
pub const KIND_FAMILY_UNIX: usize = 2;
/// Family index: any other family.
pub const KIND_FAMILY_OTHER: usize = 3;
/// Families the kind table tells apart.
pub const KIND_FAMILIES: usize = 4;

/// Protocol index in the kind table (`enum netev_kind_proto`): IPPROTO_TCP.
pub const KIND_PROTO_TCP: usize = 0;
/// Protocol index: IPPROTO_UDP.
pub const KIND_PROTO_UDP: usize = 1;
/// Protocol index: IPPROTO_ICMP.
pub const KIND_PROTO_ICMP: usize = 2;
/// Protocol index: IPPROTO_ICMPV6.
pub const KIND_PROTO_ICMPV6: usize = 3;
/// Protocol index: any other protocol.
pub const KIND_PROTO_OTHER: usize = 4;
/// Protocols the kind table tells apart.
pub const KIND_PROTOS: usize = 5;

// Linux's own numbers that records carry and the kind table sorts by
// (`enum netev_linux`): the BPF side has no libc headers to take them from.

/// `AF_UNIX`.
pub const AF_UNIX: u16 = 1;
/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `IPPROTO_ICMP`.
pub const IPPROTO_ICMP: u16 = 1;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u16 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u16 = 17;
/// `IPPROTO_ICMPV6`.
pub const IPPROTO_ICMPV6: u16 = 58;
/// `IPPROTO_SCTP`.
pub const IPPROTO_SCTP: u16 = 132;
/// `SOCK_STREAM`.
pub const SOCK_STREAM: u16 = 1;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: u16 = 2;
/// `SOCK_RAW`.
pub const SOCK_RAW: u16 = 3;

const _: () = assert!(KINDS <= KIND_TABLE && KIND_TABLE.is_power_of_two());
const _: () = assert!(MAX_CLASSES.is_power_of_two() && RULE_WORDS.is_power_of_two());
