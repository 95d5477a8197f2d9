/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * netev.h — the event ABI shared by the BPF programs and userspace.
 *
 * This is the one definition of every record that crosses the ring buffer
 * or sits in a rule table, and of every number userspace shares with the
 * programs. The Rust mirror (crates/netev-abi) is checked against the BTF
 * that clang emits for this file (crates/netev-bpf/src/abi_btf.rs): every
 * struct's size and field offsets, and every enumerator, by name. So a
 * change here that is not made there fails the tests instead of silently
 * garbling events or rules.
 *
 * Numbers are enumerators, not #defines: a #define never reaches the BTF.
 * Each enum is referenced by an abi_* global in netev.bpf.c, because clang
 * only emits BTF for types the object uses.
 */
#ifndef NETEV_H
#define NETEV_H

enum netev_len {
	NETEV_COMM_LEN = 16,  /* task comm, with its NUL */
	NETEV_PATH_LEN = 256, /* execve() path kept, with its NUL */
	NETEV_NAME_LEN = 256, /* a file name (NAME_MAX 255), with its NUL */
};

/* Record kinds: the first byte of every ring-buffer record. */
enum netev_kind {
	NETEV_KIND_NET = 1,  /* struct netev_event: one network operation */
	NETEV_KIND_EXEC = 2, /* struct netev_exec: a process exec'ed */
	NETEV_KIND_EXIT = 3, /* struct netev_hdr: a process (thread group) exited */
};

enum netev_op {
	NETEV_OP_SOCKET = 1,
	NETEV_OP_BIND = 2,
	NETEV_OP_LISTEN = 3,
	NETEV_OP_CONNECT = 4,
	NETEV_OP_ACCEPT = 5,
	NETEV_OP_SENDMSG = 6,
	NETEV_OP_RECVMSG = 7,
	NETEV_OPS = 7, /* ops are 1..NETEV_OPS */
};

enum netev_verdict {
	NETEV_VERDICT_ALLOW = 0,
	NETEV_VERDICT_DENY = 1,
	NETEV_VERDICT_OBSERVE = 2, /* the hook cannot enforce: it only saw the call */
};

/* What a rule (or the default policy) says. */
enum netev_action {
	NETEV_ACTION_ALLOW = 0,
	NETEV_ACTION_DENY = 1,
	NETEV_ACTION_ASK = 2, /* the ask fallback applies; the daemon asks a person */
};

/* netev_hdr.flags */
enum netev_flag {
	NETEV_F_HAS_RET = 0x01, /* ret holds the syscall's return value */
	NETEV_F_ASKED = 0x02,   /* the decision was "ask": verdict is the ask fallback */
	/* socket() refused because the backend cannot decide this socket's
	 * later calls (SCTP's bind/connect/send, ICMP and raw sends on the
	 * cgroup backend) and a rule or the default policy could refuse them */
	NETEV_F_GUARD = 0x04,
};

/* Linux's own numbers that records carry and the kind table sorts by: a BPF
 * program has no libc headers to take them from. */
enum netev_linux {
	AF_UNIX = 1,
	AF_INET = 2,
	AF_INET6 = 10,
	IPPROTO_ICMP = 1,
	IPPROTO_TCP = 6,
	IPPROTO_UDP = 17,
	IPPROTO_ICMPV6 = 58,
	IPPROTO_SCTP = 132,
	SOCK_STREAM = 1,
	SOCK_DGRAM = 2,
	SOCK_RAW = 3,
};

/*
 * Rule tables (written by userspace, read by every hook; see
 * crates/netev-rules/src/compile.rs for how rules become these).
 *
 * Two complete table sets ("slots") exist; rule_active names the one in use.
 * Userspace fills the other slot, then flips rule_active with one 4-byte
 * write, so a hook sees either the old rules or the new ones, never a mix.
 */

/* The kind table's index of a family (family_index() in netev.bpf.c). */
enum netev_kind_family {
	NETEV_KIND_FAMILY_INET = 0,
	NETEV_KIND_FAMILY_INET6 = 1,
	NETEV_KIND_FAMILY_UNIX = 2,
	NETEV_KIND_FAMILY_OTHER = 3,
	NETEV_KIND_FAMILIES = 4,
};

/* The kind table's index of a protocol (proto_index() in netev.bpf.c). */
enum netev_kind_proto {
	NETEV_KIND_PROTO_TCP = 0,
	NETEV_KIND_PROTO_UDP = 1,
	NETEV_KIND_PROTO_ICMP = 2,
	NETEV_KIND_PROTO_ICMPV6 = 3,
	NETEV_KIND_PROTO_OTHER = 4,
	NETEV_KIND_PROTOS = 5,
};

enum netev_table {
	NETEV_SLOTS = 2,            /* table sets: the active one and the one being filled */
	NETEV_RULE_WORDS = 32,      /* bitmap words: 2048 rules per slot */
	NETEV_MAX_RULES = NETEV_RULE_WORDS * 64,
	NETEV_MAX_CLASSES = 8192,   /* distinct bitmaps per slot */
	NETEV_KINDS = NETEV_OPS * NETEV_KIND_FAMILIES * NETEV_KIND_PROTOS,
	NETEV_KIND_TABLE = 256,     /* entries of netev_ruleset.kind (see there) */
	NETEV_PORTS = 65536,        /* entries of netev_port_classes */
	NETEV_ADDR4_BLOCKS = 65536, /* entries of netev_addr4_classes: IPv4 /16s */
	NETEV_ADDR4_TRIE = 0x8000,  /* in netev_addr4_classes: the trie decides */
	NETEV_DIR_DEPTH = 1024,     /* directories walked up from an executable */
	/* entries per slot of the hash and trie tables */
	NETEV_MAX_FILES = 16384,
	NETEV_MAX_DIRS = 16384,
	NETEV_MAX_UIDS = 4096,
	NETEV_MAX_ADDRS = 16384,
	/* socket() guards (cgroup backend), by family (inet, inet6) x what:
	 * SCTP, ICMP datagram, ICMPv6 datagram, raw */
	NETEV_GUARD_WHATS = 4,
	NETEV_GUARDS = 2 * NETEV_GUARD_WHATS,
};

struct netev_ruleset {
	__u32 words; /* bitmap words in use */
	__u16 exe_other; /* class of a program no rule names */
	__u16 uid_other; /* class of a uid no rule names */
	__u16 addr_none; /* class of an op without an address */
	__u16 port_none; /* class of an op without a port */
	__u8 default_action[8]; /* enum netev_action, by op - 1 */
	__u8 ask_fallback; /* NETEV_ACTION_ALLOW or _DENY */
	__u8 _pad[1];
	/* class of a program deeper than NETEV_DIR_DEPTH directories below
	 * anything found: the deny and ask rules of every directory rule */
	__u16 exe_too_deep;
	__u16 all; /* class of every rule */
	/* socket() guards (NETEV_GUARDS): the deny/ask rules, and the allow
	 * rules, that could apply to the later calls of such a socket; and
	 * whether the default policy of one of those calls is not allow */
	__u16 guard_deny[NETEV_GUARDS];
	__u16 guard_allow[NETEV_GUARDS];
	__u8 guard_default[NETEV_GUARDS];
	__u8 _pad2[2];
	/* class by kind = ((op - 1) * NETEV_KIND_FAMILIES + family index) *
	 * NETEV_KIND_PROTOS + protocol index; 256 entries so that a masked
	 * index needs no further proof for the verifier */
	__u16 kind[NETEV_KIND_TABLE];
};

struct netev_rule_bits {
	__u64 w[NETEV_RULE_WORDS];
};

struct netev_rule_meta {
	__u32 id;
	__u8 action; /* enum netev_action */
	__u8 once;   /* consumed by its first match (see once_state) */
	__u16 _pad;
	/* CLOCK_BOOTTIME (bpf_ktime_get_boot_ns) at which a timed rule stops
	 * matching, in the kernel, whether or not netevd is running; 0: never */
	__u64 expires_ns;
};

/* A directory (map "rule_dir"): its classes for an executable directly in
 * it and for one further below. Executables are matched by where they are:
 * the kernel walks up from mm->exe_file's dentry to its filesystem's root,
 * and the first directory found decides. */
struct netev_dir_key {
	__u64 ino;
	__u32 dev;
	__u32 slot;
};

struct netev_dir_classes {
	__u16 direct;
	__u16 deep;
};

/* A file by directory and name (map "rule_file"), found before any
 * directory: exact exe paths, which keep naming a binary replaced under the
 * same name. */
struct netev_file_key {
	__u64 ino; /* the directory's */
	__u32 dev;
	__u32 slot;
	char name[NETEV_NAME_LEN]; /* NUL-padded */
};

/* A file's classes (the value of "rule_file"). With rules that pin the
 * file's content (exe_hash), `class` holds while the executable is the
 * version they were checked against — that inode, that change time — and
 * `changed` for any other (a binary replaced by mv or a package upgrade,
 * or written in place): the kernel tells them apart at the call, without
 * waiting for userspace to notice. ino 0: nothing pinned, `class` holds. */
struct netev_file_classes {
	__u16 class;
	__u16 changed;
	__u32 _pad;
	__u64 ino;
	__u64 ctime_ns;
};

struct netev_uid_key {
	__u32 uid;
	__u32 slot;
};

/* LPM key: the slot is the first byte of the data, so prefixlen counts it. */
struct netev_addr_key {
	__u32 prefixlen; /* 8 + address prefix length */
	__u8 slot;
	__u8 addr[16]; /* IPv6, IPv4 as ::ffff:a.b.c.d */
	__u8 _pad[3];
};

/* The class of every port (array map "rule_port", one element per slot):
 * one indexed load where a trie walk cost ~100 ns per decision. */
struct netev_port_classes {
	__u16 class[NETEV_PORTS];
};

/* The class of every IPv4 address by /16 (array map "rule_addr4", one
 * element per slot), or NETEV_ADDR4_TRIE where a longer prefix splits the
 * /16 and the trie decides: most addresses skip the trie walk. */
struct netev_addr4_classes {
	__u16 class[NETEV_ADDR4_BLOCKS];
};

/* Per-CPU counters (array map "counters"), see docs/events.md. */
enum netev_counter {
	NETEV_CNT_SEEN = 0,      /* records the kernel tried to emit */
	NETEV_CNT_DROPPED = 1,   /* ... of which the ring buffer had no room for */
	NETEV_CNT_CALLS = 2,     /* hooked calls in scope (before coalescing) */
	NETEV_CNT_COALESCED = 3, /* calls folded into a later record's count */
	NETEV_CNT_MAX = 4,
};

struct netev_hdr {
	__u8 kind;    /* enum netev_kind */
	__u8 op;      /* enum netev_op (NET only) */
	__u8 verdict; /* enum netev_verdict (NET only) */
	__u8 flags;   /* NETEV_F_* */
	__u32 pid;    /* thread group id, what userspace calls the pid */
	__u64 ts_ns;  /* CLOCK_MONOTONIC, bpf_ktime_get_ns() */
};

struct netev_event {
	struct netev_hdr hdr;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	/* The process's identity: the inode of its executable (mm->exe_file),
	 * read in the kernel at the time of the call, so it cannot race exec. */
	__u64 app_ino;
	__u32 app_dev; /* kernel dev_t (MAJOR << 20 | MINOR) */
	__u32 count;   /* calls this record stands for (coalescing), >= 1 */
	__s32 ret;     /* valid if hdr.flags & NETEV_F_HAS_RET */
	__u32 rule_id; /* 0: no rule */
	__u16 family;  /* AF_* */
	__u16 type;    /* SOCK_* without the NONBLOCK/CLOEXEC flags */
	__u16 protocol; /* IPPROTO_* (0 if the kernel chose the default) */
	__u16 lport;   /* host byte order */
	__u16 rport;   /* host byte order */
	__u16 _pad0;
	__u8 laddr[16]; /* IPv4 in the first 4 bytes, or IPv6 */
	__u8 raddr[16];
	char comm[NETEV_COMM_LEN];
	__u32 _pad1;
};

struct netev_exec {
	struct netev_hdr hdr;
	__u32 ppid;
	__u32 uid;
	__u64 app_ino;
	__u32 app_dev;
	__u32 filename_len; /* bytes of filename used, including the NUL */
	char comm[NETEV_COMM_LEN];
	char filename[NETEV_PATH_LEN]; /* as passed to execve(), maybe relative */
};

#endif /* NETEV_H */
