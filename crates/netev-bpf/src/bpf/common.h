/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What both of netev's BPF objects share: the settings, the ring buffer and
 * counters, the rule tables and the one decide() every hook asks, process
 * identity, coalescing, and the programs both backends attach the same way
 * (the socket/listen/accept syscall-exit tracepoints, which report the
 * return value; the cgroup recvmsg hooks, which see a datagram's source
 * after it arrived; exec/exit tracking). Each object (netev.bpf.c: cgroup +
 * tracepoints; netev_lsm.bpf.c: BPF LSM) includes it once, so each has its
 * own instance of every map: only one backend runs at a time.
 *
 * With NETEV_LSM defined (the LSM object), the socket() and listen() exits
 * report the decision the LSM hook made and enforced for that call, carried
 * in socket_decisions by thread, and accept() reports the one made when the
 * connection's SYN arrived (syn_decisions).
 *
 * Records leave through one ring buffer with batched wake-ups: a wake-up per
 * record costs microseconds in a VM (a cross-CPU IPI), so the producer only
 * wakes the reader once wakeup_bytes are pending and the reader also polls on
 * a short timer. Every reservation failure is counted: loss is never silent.
 */
#ifndef NETEV_COMMON_H
#define NETEV_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "netev.h"
#include "kernel_types.h"

#define SOCK_TYPE_MASK 0xf
#define EAGAIN 11
#define EBADF 9
#define ENOTSOCK 88
#define CLOCK_MONOTONIC 1
#define NSEC_PER_SEC 1000000000ULL

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Settings, written by the loader before load. */
const volatile __u32 self_tgid = 0;       /* the daemon: never captured ... */
/* ... while it is the process that loaded us: its start time, in clock
 * ticks since boot (/proc/self/stat's starttime). A netevd killed with -9
 * leaves its programs pinned and enforcing; a new process that gets the
 * dead daemon's pid must not inherit its exemption. */
const volatile __u64 self_start_ticks = 0;
const volatile __u8 coalesce = 1;         /* fold repeated send/recv per flow */
const volatile __u64 wakeup_bytes = 16384; /* wake the reader past this backlog */

/* Referenced so that their BTF is emitted: the ABI test compares the Rust
 * mirror (crates/netev-abi) with these. No program reads them. */
struct netev_event abi_netev_event;
struct netev_exec abi_netev_exec;
struct netev_ruleset abi_netev_ruleset;
struct netev_rule_meta abi_netev_rule_meta;
struct netev_dir_key abi_netev_dir_key;
struct netev_dir_classes abi_netev_dir_classes;
struct netev_file_key abi_netev_file_key;
struct netev_file_classes abi_netev_file_classes;
struct netev_uid_key abi_netev_uid_key;
struct netev_addr_key abi_netev_addr_key;
enum netev_len abi_netev_len;
enum netev_kind abi_netev_kind;
enum netev_op abi_netev_op;
enum netev_verdict abi_netev_verdict;
enum netev_action abi_netev_action;
enum netev_flag abi_netev_flag;
enum netev_linux abi_netev_linux;
enum netev_kind_family abi_netev_kind_family;
enum netev_kind_proto abi_netev_kind_proto;
enum netev_table abi_netev_table;
enum netev_counter abi_netev_counter;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETEV_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* The cgroup the tracepoints are scoped to (the cgroup programs are scoped by
 * where they are attached). */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} target_cgroup SEC(".maps");

/* Process identity by tgid: the executable's inode, read from the task
 * (nine dependent kernel reads) once per process image instead of once per
 * event, and the rules' class of the executable, found by where it is (see
 * exe_class()) once per process image and rule set. An entry is only
 * trusted while the task's mm is the one it was read with: exec replaces
 * the mm, and a reused pid comes with a new one. */
struct proc_ident {
	__u64 mm;
	__u64 app_ino;
	__u64 exe_file; /* the struct file exec opened (a kernel address) */
	/* (rule_active + 1) << 16 | the executable's class, in one word so
	 * that a reader never pairs a class with another rule set's number;
	 * 0: not found yet */
	__u64 exe_class;
	__u32 app_dev;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct proc_ident);
} procs SEC(".maps");

/* Coalescing of repeated send/recv on one socket to one peer. */
struct flow_key {
	__u64 cookie;
	__u8 raddr[16];
	__u16 rport;
	__u8 op;
	__u8 verdict; /* a changed decision starts a new flow */
	__u32 rule_id;
};

struct flow_val {
	struct bpf_timer timer;
	__u64 pending; /* calls not yet reported */
	__u64 dead;    /* set once the timer retires the flow */
	struct netev_event tmpl;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} flows SEC(".maps");

/* A new flow's first value, built here rather than on the stack: the
 * hooks' frames plus decide()'s and its bpf_loop callback's must stay under
 * the verifier's 512-byte combined stack limit, which 6.1 counts
 * differently from later kernels. The same layout as struct flow_val, but
 * with plain words where the timer goes (a timer cannot live in a per-CPU
 * map, and the update does not copy the timer field anyway). */
struct flow_val_init {
	__u64 timer_space[2];
	__u64 pending;
	__u64 dead;
	struct netev_event tmpl;
};

_Static_assert(sizeof(struct flow_val_init) == sizeof(struct flow_val), "flow_val_init mirrors flow_val");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow_val_init);
} flow_scratch SEC(".maps");

/* --- rule tables (see netev.h) ---------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} rule_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETEV_SLOTS);
	__type(key, __u32);
	__type(value, struct netev_ruleset);
} rule_sets SEC(".maps");

/* slot * NETEV_MAX_CLASSES + class */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETEV_SLOTS * NETEV_MAX_CLASSES);
	__type(key, __u32);
	__type(value, struct netev_rule_bits);
} rule_bits SEC(".maps");

/* Per slot: the rules not yet used up (once rules leave it when consumed). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETEV_SLOTS);
	__type(key, __u32);
	__type(value, struct netev_rule_bits);
} rule_live SEC(".maps");

/* slot * NETEV_MAX_RULES + bit */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETEV_SLOTS * NETEV_MAX_RULES);
	__type(key, __u32);
	__type(value, struct netev_rule_meta);
} rule_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETEV_SLOTS * NETEV_MAX_DIRS);
	__type(key, struct netev_dir_key);
	__type(value, struct netev_dir_classes);
} rule_dir SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETEV_SLOTS * NETEV_MAX_FILES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* 272-byte keys: allocated as used */
	__type(key, struct netev_file_key);
	__type(value, struct netev_file_classes);
} rule_file SEC(".maps");

/* Where exe_class() builds a file key (272 bytes: too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netev_file_key);
} file_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETEV_SLOTS * NETEV_MAX_UIDS);
	__type(key, struct netev_uid_key);
	__type(value, __u16);
} rule_uid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NETEV_SLOTS * NETEV_MAX_ADDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct netev_addr_key));
	__uint(value_size, sizeof(__u16));
} rule_addr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETEV_SLOTS);
	__type(key, __u32);
	__type(value, struct netev_port_classes);
} rule_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETEV_SLOTS);
	__type(key, __u32);
	__type(value, struct netev_addr4_classes);
} rule_addr4 SEC(".maps");

/* once rules by id: 0 = unused, 1 = consumed. The compare-and-swap on it
 * lets exactly one operation through however many CPUs race for it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETEV_MAX_RULES);
	__type(key, __u32);
	__type(value, __u32);
} once_state SEC(".maps");

static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += n;
}

/* Reserves a record in the ring buffer, counting it as seen and, when
 * there is no room, as dropped; on failure runs `fail` (a return). A macro
 * so that the only NULL check of the reservation is the caller's own: 6.1's
 * verifier does not know that a record already checked is non-NULL, so a
 * second, redundant check (which clang leaves in when a helper returns the
 * pointer) sends it down a path that never submits ("Unreleased
 * reference"). */
#define RESERVE(rec, size, fail)                                                \
	do {                                                                    \
		count(NETEV_CNT_SEEN, 1);                                       \
		(rec) = bpf_ringbuf_reserve(&events, (size), 0);                \
		if (!(rec)) {                                                   \
			count(NETEV_CNT_DROPPED, 1);                            \
			fail;                                                   \
		}                                                               \
	} while (0)

static __always_inline void submit(void *rec)
{
	__u64 backlog = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	bpf_ringbuf_submit(rec, backlog >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/* One aligned 8-byte store: a reader on another CPU sees the old word or
 * the new one, never half of each. */
#define WRITE_ONCE_U64(x, v) (*(volatile __u64 *)&(x) = (v))
#define READ_ONCE_U64(x) (*(volatile __u64 *)&(x))

static __always_inline int is_self(void)
{
	struct task_struct *leader;

	if ((bpf_get_current_pid_tgid() >> 32) != self_tgid)
		return 0;
	/* USER_HZ is 100 on every architecture /proc reports in */
	leader = bpf_get_current_task_btf()->group_leader;
	return leader->start_boottime / (NSEC_PER_SEC / 100) == self_start_ticks;
}

/* Tracepoints fire for the whole machine: keep the target cgroup only. */
static __always_inline int tp_in_scope(void)
{
	if (is_self())
		return 0;
	return bpf_current_task_under_cgroup(&target_cgroup, 0) == 1;
}

/* Reads through the BTF-typed task pointer are plain (fault-checked) loads,
 * several times cheaper here than bpf_probe_read_kernel() calls. */
static __always_inline void read_identity(struct task_struct *task, struct proc_ident *out)
{
	struct mm_struct *mm = task->mm;
	struct file *exe = mm ? mm->exe_file : NULL;

	out->exe_file = (__u64)exe;
	out->exe_class = 0;
	if (exe) {
		out->app_ino = exe->f_inode->i_ino;
		out->app_dev = exe->f_inode->i_sb->s_dev;
	}
}

/* Who is calling: read once per hook, used by the decision and the event. */
struct caller {
	__u64 pid_tgid;
	__u64 uid_gid;
	__u64 app_ino;
	__u64 mm;
	__u64 exe_file;
	__u64 exe_class; /* as in struct proc_ident */
	__u32 app_dev;
	__u32 ppid;
};

static __always_inline void get_caller(struct caller *c)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 mm = (__u64)task->mm;
	__u32 tgid;
	struct proc_ident *cached;
	struct proc_ident fresh = {};

	c->pid_tgid = bpf_get_current_pid_tgid();
	c->uid_gid = bpf_get_current_uid_gid();
	c->ppid = task->real_parent->tgid;
	c->mm = mm;
	tgid = c->pid_tgid >> 32;
	cached = bpf_map_lookup_elem(&procs, &tgid);
	if (cached && cached->mm == mm) {
		c->app_ino = cached->app_ino;
		c->app_dev = cached->app_dev;
		c->exe_file = cached->exe_file;
		c->exe_class = READ_ONCE_U64(cached->exe_class);
		return;
	}
	fresh.mm = mm;
	read_identity(task, &fresh);
	c->app_ino = fresh.app_ino;
	c->app_dev = fresh.app_dev;
	c->exe_file = fresh.exe_file;
	c->exe_class = 0;
	bpf_map_update_elem(&procs, &tgid, &fresh, BPF_ANY);
}

/* --- the executable's class: by where the file is ---------------------- */

struct dir_walk {
	__u64 dentry; /* the directory to look at next (a kernel address) */
	__u32 slot;
	__u16 class;
	__u8 found;
	__u8 end; /* reached the filesystem's root */
};

/* One directory up (a bpf_loop callback): the first directory with rules
 * decides, with its "direct" class for the executable's own directory and
 * its "deep" class further up. Reads go through bpf_probe_read_kernel (the
 * pointers are plain numbers in the callback's context). A mount point is
 * never crossed: the walk follows d_parent within the executable's own
 * filesystem, so a bind mount cannot make a file look as if it were
 * somewhere else (the rule compiler lists the root of every filesystem
 * mounted below a DIR/** rule instead). */
static int dir_step(__u32 i, struct dir_walk *w)
{
	struct dentry *d = (struct dentry *)w->dentry;
	struct netev_dir_key k = { .slot = w->slot };
	struct netev_dir_classes *dc;
	struct dentry *up;

	k.ino = BPF_CORE_READ(d, d_inode, i_ino);
	k.dev = BPF_CORE_READ(d, d_sb, s_dev);
	dc = bpf_map_lookup_elem(&rule_dir, &k);
	if (dc) {
		w->class = i == 0 ? dc->direct : dc->deep;
		w->found = 1;
		return 1;
	}
	up = BPF_CORE_READ(d, d_parent);
	if (!up || up == d) {
		w->end = 1;
		return 1;
	}
	w->dentry = (__u64)up;
	return 0;
}

/* An inode's change time in ns, whichever way this kernel keeps it. */
static __always_inline __u64 inode_ctime_ns(struct inode *inode)
{
	struct inode___v611 *v611 = (void *)inode;
	struct inode___v66 *v66 = (void *)inode;
	struct inode___v61 *v61 = (void *)inode;
	__s64 sec;
	__u64 nsec;

	if (bpf_core_field_exists(v611->i_ctime_sec)) {
		sec = BPF_CORE_READ(v611, i_ctime_sec);
		nsec = BPF_CORE_READ(v611, i_ctime_nsec);
	} else if (bpf_core_field_exists(v66->__i_ctime)) {
		sec = BPF_CORE_READ(v66, __i_ctime.tv_sec);
		nsec = BPF_CORE_READ(v66, __i_ctime.tv_nsec);
	} else {
		sec = BPF_CORE_READ(v61, i_ctime.tv_sec);
		nsec = BPF_CORE_READ(v61, i_ctime.tv_nsec);
	}
	return (__u64)sec * NSEC_PER_SEC + nsec;
}

/* The class of an executable in the rule tables of `slot`: its file by
 * directory and name, else the first directory with rules on the way up,
 * else "no rule names it"; a walk cut short by NETEV_DIR_DEPTH gets the
 * class that keeps every directory rule's deny and ask (fail closed). */
static __noinline __u32 exe_class_of(__u64 exe_file, __u32 slot, __u32 other, __u32 too_deep)
{
	struct file *f = (struct file *)exe_file;
	struct dentry *d, *dir;
	struct netev_file_key *fk;
	struct netev_file_classes *fc;
	struct dir_walk w = { .slot = slot };
	__u32 zero = 0;

	if (!f)
		return other;
	d = BPF_CORE_READ(f, f_path.dentry);
	dir = BPF_CORE_READ(d, d_parent);
	if (!d || !dir)
		return other;
	fk = bpf_map_lookup_elem(&file_scratch, &zero);
	if (!fk)
		return other;
	__builtin_memset(fk, 0, sizeof(*fk));
	fk->slot = slot;
	fk->ino = BPF_CORE_READ(dir, d_inode, i_ino);
	fk->dev = BPF_CORE_READ(dir, d_sb, s_dev);
	bpf_probe_read_kernel_str(fk->name, sizeof(fk->name), BPF_CORE_READ(d, d_name.name));
	fc = bpf_map_lookup_elem(&rule_file, fk);
	if (fc) {
		struct inode *inode;

		if (!fc->ino)
			return fc->class;
		inode = BPF_CORE_READ(f, f_inode);
		if (BPF_CORE_READ(inode, i_ino) == fc->ino && inode_ctime_ns(inode) == fc->ctime_ns)
			return fc->class;
		return fc->changed;
	}
	w.dentry = (__u64)dir;
	bpf_loop(NETEV_DIR_DEPTH, dir_step, &w, 0);
	if (w.found)
		return w.class;
	return w.end ? other : too_deep;
}

/* The caller's executable class for the rules in force (`gen`: the value
 * of rule_active they were read with), kept in its procs entry until the
 * rules change. */
static __always_inline __u32 exe_class(struct caller *c, __u32 gen, __u32 slot,
				       struct netev_ruleset *rs)
{
	struct proc_ident *p;
	__u64 tag = ((__u64)gen + 1) << 16;
	__u32 tgid, cls;

	if ((c->exe_class & ~0xffffULL) == tag)
		return c->exe_class & 0xffff;
	cls = exe_class_of(c->exe_file, slot, rs->exe_other, rs->exe_too_deep);
	c->exe_class = tag | (cls & 0xffff);
	tgid = c->pid_tgid >> 32;
	p = bpf_map_lookup_elem(&procs, &tgid);
	if (p && p->mm == c->mm)
		WRITE_ONCE_U64(p->exe_class, c->exe_class);
	return cls;
}

/* The outcome of the rules for one operation. */
struct decision {
	__u32 rule_id; /* 0: the default policy decided */
	__u8 action;   /* enum netev_action, as decided */
	__u8 applied;  /* NETEV_ACTION_ALLOW or _DENY: what happens now */
	__u8 op;       /* carried decisions: the op it was made for */
	__u8 flags;    /* NETEV_F_* for the event (NETEV_F_GUARD) */
};

/* What the rules are asked. */
struct query {
	__u8 op;
	__u8 family;
	__u8 proto;
	__u8 has_addr;
	__u8 has_port;
	__u16 port;
	__u8 addr[16]; /* IPv4 as ::ffff:a.b.c.d */
};

/* The kind table's indexes; netev-abi's family_index() and proto_index()
 * compute the same for the rule compiler. */
static __always_inline __u32 family_index(__u16 family)
{
	return family == AF_INET    ? NETEV_KIND_FAMILY_INET
	       : family == AF_INET6 ? NETEV_KIND_FAMILY_INET6
	       : family == AF_UNIX  ? NETEV_KIND_FAMILY_UNIX
				    : NETEV_KIND_FAMILY_OTHER;
}

static __always_inline __u32 proto_index(__u16 proto)
{
	switch (proto) {
	case IPPROTO_TCP: return NETEV_KIND_PROTO_TCP;
	case IPPROTO_UDP: return NETEV_KIND_PROTO_UDP;
	case IPPROTO_ICMP: return NETEV_KIND_PROTO_ICMP;
	case IPPROTO_ICMPV6: return NETEV_KIND_PROTO_ICMPV6;
	default: return NETEV_KIND_PROTO_OTHER;
	}
}

/* An index masked so that the mask survives the compiler: clang drops a
 * mask it can prove redundant after an earlier range check, and older
 * verifiers (6.1) lose that check's bounds across a 32-bit stack spill, so
 * they refuse the access ("unbounded memory access"). The asm makes the AND
 * the last thing done to the register before it is used. */
static __always_inline __u64 bounded(__u64 v, __u64 mask)
{
	asm volatile("%[v] &= %[m]" : [v] "+r"(v) : [m] "i"(mask));
	return v;
}

static __always_inline __u32 ctz64(__u64 m)
{
	__u32 n = 0;

	if (!(m & 0xffffffffULL)) { n += 32; m >>= 32; }
	if (!(m & 0xffff)) { n += 16; m >>= 16; }
	if (!(m & 0xff)) { n += 8; m >>= 8; }
	if (!(m & 0xf)) { n += 4; m >>= 4; }
	if (!(m & 0x3)) { n += 2; m >>= 2; }
	if (!(m & 0x1)) n += 1;
	return n;
}

static __always_inline struct netev_rule_bits *class_bits(__u32 slot, __u32 class)
{
	__u32 idx = slot * NETEV_MAX_CLASSES + bounded(class, NETEV_MAX_CLASSES - 1);

	return bpf_map_lookup_elem(&rule_bits, &idx);
}

struct scan {
	struct netev_rule_bits *b[6]; /* b[5]: the slot's live rules */
	__u64 now;   /* bpf_ktime_get_boot_ns(), for timed rules */
	__u32 words;
	__u32 slot;
	__u32 w;     /* the word being looked at */
	__u32 id;    /* out: the rule that matched (0: none) */
	__u8 action; /* out: its action */
	__u8 claim;  /* consume the once rule that matches (else only look) */
};

/* One step of the scan (a bpf_loop callback, so the verifier checks it once
 * instead of once per word): the first matching rule of word s->w, or on
 * to the next word. A rule that cannot be used any more is dropped from
 * "live" and the same word looked at again: a timed rule past its time (the
 * kernel expires it even while netevd is not running), or a once rule
 * another CPU consumed first (the compare-and-swap on once_state lets
 * exactly one operation through). So however many CPUs race for once
 * rules, an operation gets the next matching rule, never the default by
 * mistake: each step either moves on a word or drops a rule, so
 * NETEV_RULE_WORDS + NETEV_MAX_RULES steps always reach the end. */
static int scan_step(__u32 i, struct scan *s)
{
	struct netev_rule_bits *live = s->b[5];
	struct netev_rule_meta *meta;
	__u32 w = s->w, bit, idx, *used;
	__u64 m, one;

	if (w >= NETEV_RULE_WORDS || w >= s->words)
		return 1;
	if (!s->b[0] || !s->b[1] || !s->b[2] || !s->b[3] || !s->b[4] || !live)
		return 1;
	w = bounded(w, NETEV_RULE_WORDS - 1);
	m = s->b[0]->w[w] & s->b[1]->w[w] & s->b[2]->w[w] & s->b[3]->w[w] & s->b[4]->w[w] &
	    live->w[w];
	if (!m) {
		s->w++;
		return 0;
	}
	bit = w * 64 + ctz64(m);
	one = 1ULL << (bit & 63);
	idx = s->slot * NETEV_MAX_RULES + bounded(bit, NETEV_MAX_RULES - 1);
	meta = bpf_map_lookup_elem(&rule_meta, &idx);
	if (!meta)
		return 1;
	if (meta->expires_ns && s->now >= meta->expires_ns) {
		__sync_fetch_and_and(&live->w[w], ~one);
		return 0;
	}
	if (meta->once && s->claim) {
		used = bpf_map_lookup_elem(&once_state, &meta->id);
		__sync_fetch_and_and(&live->w[w], ~one);
		if (!used || __sync_val_compare_and_swap(used, 0, 1) != 0)
			return 0; /* consumed by another CPU: the next rule */
	}
	s->id = meta->id;
	s->action = meta->action;
	return 1;
}

#define SCAN_STEPS (NETEV_RULE_WORDS + NETEV_MAX_RULES)

/* The first live rule in checking order whose every condition holds: the
 * lowest bit set in the AND of one bitmap per condition dimension. Never
 * waits on userspace; costs a handful of map lookups and one pass over the
 * bitmap words in use. */
static __noinline int decide(struct query *q, struct caller *c, struct decision *out)
{
	__u32 zero = 0, slot, gen, kind, idx;
	__u32 *active;
	__u16 *cls;
	struct netev_ruleset *rs;
	struct netev_rule_bits *live;
	struct scan sc = {};
	__u32 c1, c2, c3, c4;

	out->rule_id = 0;
	out->action = NETEV_ACTION_ALLOW;
	out->applied = NETEV_ACTION_ALLOW;
	out->flags = 0;
	active = bpf_map_lookup_elem(&rule_active, &zero);
	/* a count of installs: its low bit is the slot in use */
	gen = active ? *active : 0;
	slot = gen & 1;
	rs = bpf_map_lookup_elem(&rule_sets, &slot);
	if (!rs)
		return 0;
	idx = (__u32)q->op - 1;
	if (idx >= NETEV_OPS)
		goto done;
	out->action = rs->default_action[bounded(idx, 7)];

	kind = (idx * NETEV_KIND_FAMILIES + family_index(q->family)) * NETEV_KIND_PROTOS +
	       proto_index(q->proto);
	if (kind >= NETEV_KINDS)
		goto done;
	c1 = exe_class(c, gen, slot, rs);
	{
		struct netev_uid_key uk = { .uid = (__u32)c->uid_gid, .slot = slot };
		cls = bpf_map_lookup_elem(&rule_uid, &uk);
		c2 = cls ? *cls : rs->uid_other;
	}
	c3 = rs->addr_none;
	if (q->has_addr) {
		struct netev_addr4_classes *a4 = 0;
		__u16 v = NETEV_ADDR4_TRIE;
		__u64 hi = 0;
		__u32 mid = 0;

		__builtin_memcpy(&hi, q->addr, 8);
		__builtin_memcpy(&mid, q->addr + 8, 4);
		if (hi == 0 && mid == bpf_htonl(0xffff))
			a4 = bpf_map_lookup_elem(&rule_addr4, &slot);
		if (a4)
			v = a4->class[bounded((__u32)q->addr[12] << 8 | q->addr[13], 0xffff)];
		if (!(v & NETEV_ADDR4_TRIE)) {
			c3 = v;
		} else {
			struct netev_addr_key ak = { .prefixlen = 8 + 128, .slot = slot };
			__builtin_memcpy(ak.addr, q->addr, 16);
			cls = bpf_map_lookup_elem(&rule_addr, &ak);
			if (cls)
				c3 = *cls;
		}
	}
	c4 = rs->port_none;
	if (q->has_port) {
		struct netev_port_classes *pc = bpf_map_lookup_elem(&rule_port, &slot);

		if (pc)
			c4 = pc->class[bounded(q->port, NETEV_PORTS - 1)];
	}
	sc.b[0] = class_bits(slot, rs->kind[bounded(kind, NETEV_KIND_TABLE - 1)]);
	sc.b[1] = class_bits(slot, c1);
	sc.b[2] = class_bits(slot, c2);
	sc.b[3] = class_bits(slot, c3);
	sc.b[4] = class_bits(slot, c4);
	sc.b[5] = live = bpf_map_lookup_elem(&rule_live, &slot);
	if (!sc.b[0] || !sc.b[1] || !sc.b[2] || !sc.b[3] || !sc.b[4] || !live)
		goto done;
	sc.words = rs->words;
	sc.slot = slot;
	sc.now = bpf_ktime_get_boot_ns();
	sc.claim = 1;
	bpf_loop(SCAN_STEPS, scan_step, &sc, 0);
	if (sc.id) {
		out->rule_id = sc.id;
		out->action = sc.action;
	}
	/* else no rule matches: the default decides */
done:
	out->applied = out->action == NETEV_ACTION_ASK ? rs->ask_fallback : out->action;
	return 0;
}

#ifndef NETEV_LSM
/* The cgroup backend's socket() guard (NETEV_F_GUARD). Its hooks never see
 * SCTP's bind, connect and sends, nor ICMP or raw sends, so a rule that
 * should refuse one of those would silently let it through. Instead such a
 * socket is refused at socket() when a deny or ask rule could apply to one
 * of its later calls for this caller (program and user; any address and
 * port), or when the default for one of them is not allow and no allow
 * rule could apply. Returns 1 to refuse, with the rule (0: the default). */
static __noinline int guard_refuses(struct caller *c, __u32 g, __u32 *rule_id)
{
	__u32 zero = 0, slot, gen, all;
	__u32 *active;
	__u16 *cls;
	struct netev_ruleset *rs;
	struct scan sc = {};
	__u32 c1, c2;

	*rule_id = 0;
	if (g >= NETEV_GUARDS)
		return 0;
	g = bounded(g, 7);
	active = bpf_map_lookup_elem(&rule_active, &zero);
	gen = active ? *active : 0;
	slot = gen & 1;
	rs = bpf_map_lookup_elem(&rule_sets, &slot);
	if (!rs)
		return 0;
	c1 = exe_class(c, gen, slot, rs);
	{
		struct netev_uid_key uk = { .uid = (__u32)c->uid_gid, .slot = slot };
		cls = bpf_map_lookup_elem(&rule_uid, &uk);
		c2 = cls ? *cls : rs->uid_other;
	}
	all = rs->all;
	sc.b[1] = class_bits(slot, c1);
	sc.b[2] = class_bits(slot, c2);
	sc.b[3] = class_bits(slot, all);
	sc.b[4] = sc.b[3];
	sc.b[5] = bpf_map_lookup_elem(&rule_live, &slot);
	sc.words = rs->words;
	sc.slot = slot;
	sc.now = bpf_ktime_get_boot_ns();

	sc.b[0] = class_bits(slot, rs->guard_deny[g]);
	bpf_loop(SCAN_STEPS, scan_step, &sc, 0);
	if (sc.id) {
		*rule_id = sc.id;
		return 1;
	}
	if (!rs->guard_default[g])
		return 0;
	sc.b[0] = class_bits(slot, rs->guard_allow[g]);
	sc.w = 0;
	bpf_loop(SCAN_STEPS, scan_step, &sc, 0);
	return sc.id == 0;
}

/* guard_index() in netev-abi: which guard a socket() needs, or -1. */
static __always_inline int guard_index(__u16 family, __u16 type, __u16 proto)
{
	int fam = family == AF_INET ? 0 : family == AF_INET6 ? 1 : -1;
	int what = proto == IPPROTO_SCTP			 ? 0
		   : type == SOCK_RAW				 ? 3
		   : type == SOCK_DGRAM && proto == IPPROTO_ICMP	 ? 1
		   : type == SOCK_DGRAM && proto == IPPROTO_ICMPV6 ? 2
								 : -1;

	if (fam < 0 || what < 0)
		return -1;
	return fam * NETEV_GUARD_WHATS + what;
}
#endif

static __always_inline void fill_task(struct netev_event *e, struct caller *c, __u8 op, __u8 verdict)
{
	e->hdr.kind = NETEV_KIND_NET;
	e->hdr.op = op;
	e->hdr.verdict = verdict;
	e->hdr.pid = c->pid_tgid >> 32;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->tid = (__u32)c->pid_tgid;
	e->uid = (__u32)c->uid_gid;
	e->gid = c->uid_gid >> 32;
	e->count = 1;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->ppid = c->ppid;
	e->app_ino = c->app_ino;
	e->app_dev = c->app_dev;
}

/* Fills a reserved record for a decided operation. enforced: the hook's
 * verdict is the decision's (else it only observes). */
static __always_inline void init_event(struct netev_event *e, struct caller *c, __u8 op,
				       struct decision *d, int enforced)
{
	__u8 verdict = !enforced ? NETEV_VERDICT_OBSERVE
		       : d->applied == NETEV_ACTION_DENY ? NETEV_VERDICT_DENY
							  : NETEV_VERDICT_ALLOW;

	__builtin_memset(e, 0, sizeof(*e));
	fill_task(e, c, op, verdict);
	e->rule_id = d->rule_id;
	e->hdr.flags |= d->flags;
	if (d->action == NETEV_ACTION_ASK)
		e->hdr.flags |= NETEV_F_ASKED;
}

static __always_inline void query_addr(struct query *q, __u16 family, const __u8 *addr, __u16 port)
{
	q->family = family;
	q->has_port = family == AF_INET || family == AF_INET6;
	q->has_addr = q->has_port;
	q->port = port;
	if (family == AF_INET) {
		__builtin_memset(q->addr, 0, 10);
		q->addr[10] = 0xff;
		q->addr[11] = 0xff;
		__builtin_memcpy(&q->addr[12], addr, 4);
	} else if (family == AF_INET6) {
		__builtin_memcpy(q->addr, addr, 16);
	}
}

/* --- socket addresses from the cgroup sock_addr context --------------- */

/* The family the kernel acts on at a sock_addr hook: the hook's own. The
 * caller's sa_family is not it: the *4 hooks run before the kernel checks
 * it, and the kernel reads AF_UNSPEC as AF_INET (a UDP sendto, a bind of
 * 0.0.0.0), so deciding on the caller's field would let such a call past
 * every address and port rule. (Any other family the kernel refuses after
 * the hook.) */
static __always_inline __u16 hook_family(int v6)
{
	return v6 ? AF_INET6 : AF_INET;
}

/* The query of a sock_addr hook. Rules see the socket's family (as socket()
 * and connect6 do): a dual-stack AF_INET6 socket that reaches an IPv4 peer
 * comes through the *4 hooks (sendmsg to ::ffff:a.b.c.d, a UDP connect given
 * a sockaddr_in); its peer is compared as ::ffff:a.b.c.d either way. */
static __always_inline void sock_addr_query(struct query *q, struct bpf_sock_addr *ctx, int v6,
					    const __u8 *addr, __u16 port)
{
	query_addr(q, hook_family(v6), addr, port);
	q->family = ctx->family;
}

/* v6 must be a constant: the verifier only allows the user_ip6 fields in
 * the *6 attach types, and user_ip4 in the *4 ones. */
static __always_inline void user_addr(struct bpf_sock_addr *ctx, int v6, __u8 *addr, __u16 *port)
{
	if (v6) {
		__u32 *a = (__u32 *)addr;
		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
	} else {
		*(__u32 *)addr = ctx->user_ip4;
	}
	*port = bpf_ntohs(ctx->user_port);
}

static __always_inline void sock_local_addr(struct bpf_sock_addr *ctx, int v6, struct netev_event *e)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return;
	if (v6) {
		__u32 *a = (__u32 *)e->laddr;
		a[0] = sk->src_ip6[0];
		a[1] = sk->src_ip6[1];
		a[2] = sk->src_ip6[2];
		a[3] = sk->src_ip6[3];
	} else {
		*(__u32 *)e->laddr = sk->src_ip4;
	}
	e->lport = sk->src_port;
}

/* An IPv4 address (first 4 bytes) as ::ffff:a.b.c.d. */
static __always_inline void mapped4(__u8 *addr)
{
	__u32 a4 = *(__u32 *)addr;

	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	*(__u32 *)&addr[12] = a4;
}

/* A *4 hook run for a dual-stack AF_INET6 socket (udpv6_sendmsg hands a
 * v4-mapped destination to udp_sendmsg): the event says what the caller
 * has, an inet6 socket and ::ffff:a.b.c.d, as its connect() would. */
static __always_inline void report_as_socket_family(struct bpf_sock_addr *ctx, int v6,
						    struct netev_event *e)
{
	if (v6 || ctx->family != AF_INET6)
		return;
	e->family = AF_INET6;
	mapped4(e->laddr);
	mapped4(e->raddr);
}

/* bind and connect: decide, report, and return the verdict (1 = go on). */
static __always_inline int addr_event(struct bpf_sock_addr *ctx, __u8 op, int v6)
{
	struct netev_event *e;
	struct caller c;
	struct query q = { .op = op, .proto = ctx->protocol };
	struct decision d;
	__u8 addr[16] = {};
	__u16 port;

	if (is_self())
		return 1;
	count(NETEV_CNT_CALLS, 1);
	get_caller(&c);
	user_addr(ctx, v6, addr, &port);
	sock_addr_query(&q, ctx, v6, addr, port);
	decide(&q, &c, &d);

	RESERVE(e, sizeof(*e), goto out);
	init_event(e, &c, op, &d, 1);
	e->family = hook_family(v6);
	e->type = ctx->type;
	e->protocol = ctx->protocol;
	if (op == NETEV_OP_BIND) {
		__builtin_memcpy(e->laddr, addr, 16);
		e->lport = port;
	} else {
		__builtin_memcpy(e->raddr, addr, 16);
		e->rport = port;
		sock_local_addr(ctx, v6, e);
	}
	report_as_socket_family(ctx, v6, e);
	submit(e);
out:
	return d.applied == NETEV_ACTION_DENY ? 0 : 1;
}

/* --- coalescing -------------------------------------------------------- */

static __always_inline void report_flow(struct flow_val *v, __u64 n)
{
	struct netev_event *e;

	RESERVE(e, sizeof(*e), return);
	__builtin_memcpy(e, &v->tmpl, sizeof(*e));
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->count = n > 0xffffffff ? 0xffffffff : n;
	submit(e);
}

/* Once a second per flow: report what was folded, or retire an idle flow.
 * Retiring marks the flow dead before the last drain, and a caller that
 * added to a dead flow drains it itself, so no call goes uncounted. */
static int flow_tick(void *map, struct flow_key *key, struct flow_val *v)
{
	__u64 n = __sync_lock_test_and_set(&v->pending, 0);

	if (n) {
		report_flow(v, n);
		bpf_timer_start(&v->timer, NSEC_PER_SEC, 0);
		return 0;
	}
	__sync_lock_test_and_set(&v->dead, 1);
	n = __sync_lock_test_and_set(&v->pending, 0);
	if (n)
		report_flow(v, n);
	bpf_map_delete_elem(&flows, key);
	return 0;
}

/* Counts a call into its flow's record if the flow is already being
 * coalesced; 0 if there is no such flow (the caller reports the call and
 * starts one). A flow its timer has retired is drained here, so no call
 * goes uncounted. */
static __always_inline int join_flow(struct flow_key *key)
{
	struct flow_val *v = bpf_map_lookup_elem(&flows, key);

	if (!v)
		return 0;
	__sync_fetch_and_add(&v->pending, 1);
	if (v->dead) {
		__u64 n = __sync_lock_test_and_set(&v->pending, 0);
		if (n)
			report_flow(v, n);
	} else {
		count(NETEV_CNT_COALESCED, 1);
	}
	return 1;
}

/* Starts coalescing a new flow whose first record is `e` (a full table
 * just means this flow is not coalesced). */
static __always_inline void start_flow(struct flow_key *key, struct netev_event *e)
{
	__u32 zero = 0;
	struct flow_val_init *fresh = bpf_map_lookup_elem(&flow_scratch, &zero);
	struct flow_val *v;

	if (!fresh)
		return;
	__builtin_memset(fresh, 0, sizeof(*fresh));
	__builtin_memcpy(&fresh->tmpl, e, sizeof(*e));
	if (bpf_map_update_elem(&flows, key, fresh, BPF_NOEXIST) != 0)
		return;
	v = bpf_map_lookup_elem(&flows, key);
	if (v) {
		bpf_timer_init(&v->timer, &flows, CLOCK_MONOTONIC);
		bpf_timer_set_callback(&v->timer, flow_tick);
		bpf_timer_start(&v->timer, NSEC_PER_SEC, 0);
	}
}

/* sendmsg (enforced) and recvmsg (observed): returns the verdict. */
static __always_inline int flow_event(struct bpf_sock_addr *ctx, __u8 op, int v6)
{
	struct flow_key key = {};
	struct netev_event *e;
	struct caller c;
	struct query q = { .op = op, .proto = ctx->protocol };
	struct decision d;
	int enforced = op == NETEV_OP_SENDMSG;
	int ret;

	if (is_self())
		return 1;
	count(NETEV_CNT_CALLS, 1);
	get_caller(&c);
	user_addr(ctx, v6, key.raddr, &key.rport);
	sock_addr_query(&q, ctx, v6, key.raddr, key.rport);
	decide(&q, &c, &d);
	ret = enforced && d.applied == NETEV_ACTION_DENY ? 0 : 1;
	if (coalesce) {
		key.cookie = bpf_get_socket_cookie(ctx);
		key.op = op;
		key.verdict = ret;
		key.rule_id = d.rule_id;
		if (join_flow(&key))
			return ret;
	}

	RESERVE(e, sizeof(*e), return ret);
	init_event(e, &c, op, &d, enforced);
	e->family = hook_family(v6);
	e->type = ctx->type;
	e->protocol = ctx->protocol;
	__builtin_memcpy(e->raddr, key.raddr, 16);
	e->rport = key.rport;
	sock_local_addr(ctx, v6, e);
	report_as_socket_family(ctx, v6, e);

	if (coalesce)
		start_flow(&key, e);
	submit(e);
	return ret;
}

/* socket()'s decision, from cgroup/sock_create to the sys_exit_socket event
 * (which knows the return value), by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct decision);
} socket_decisions SEC(".maps");

/* --- recvmsg (observed on every backend: the cgroup hook runs after the
 * datagram arrived, so it knows its source) ---------------------------- */

SEC("cgroup/recvmsg4")
int netev_recvmsg4(struct bpf_sock_addr *ctx)
{
	return flow_event(ctx, NETEV_OP_RECVMSG, 0);
}

SEC("cgroup/recvmsg6")
int netev_recvmsg6(struct bpf_sock_addr *ctx)
{
	return flow_event(ctx, NETEV_OP_RECVMSG, 1);
}

/* --- syscall tracepoints (socket, listen, accept) ---------------------- */

static __always_inline struct sock *sock_from_fd(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	struct socket *sock;

	if (fd < 0 || fd >= max_fds)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

static __always_inline void fill_from_sock(struct netev_event *e, struct sock *sk, int peer)
{
	if (!sk)
		return;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->type = BPF_CORE_READ(sk, sk_type);
	e->protocol = BPF_CORE_READ(sk, sk_protocol);
	if (e->family == AF_INET) {
		*(__u32 *)e->laddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		if (peer) {
			*(__u32 *)e->raddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
			e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		}
	} else if (e->family == AF_INET6) {
		bpf_core_read(e->laddr, sizeof(e->laddr), &sk->__sk_common.skc_v6_rcv_saddr);
		e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		if (peer) {
			bpf_core_read(e->raddr, sizeof(e->raddr), &sk->__sk_common.skc_v6_daddr);
			e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		}
	}
}

/* The socket(), listen() and accept() hooks run at syscall exit only, so
 * that the event carries the return value; the arguments are read back from
 * the registers saved at syscall entry. (One tracepoint per call instead of
 * an enter/exit pair and a map to carry the arguments between them: each
 * tracepoint hit costs about a microsecond on our VMs.) */
static __always_inline struct pt_regs___netev *syscall_regs(void)
{
	return (struct pt_regs___netev *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/* Decides an observed operation from what its event already holds (for the
 * rule id and the ask flag: the verdict stays "observe"). */
static __always_inline void decide_observed(struct netev_event *e, struct caller *c, int remote)
{
	struct query q = { .op = e->hdr.op, .proto = e->protocol };
	struct decision d;

	if (remote)
		query_addr(&q, e->family, e->raddr, e->rport);
	else
		query_addr(&q, e->family, e->laddr, e->lport);
	decide(&q, c, &d);
	e->rule_id = d.rule_id;
	if (d.action == NETEV_ACTION_ASK)
		e->hdr.flags |= NETEV_F_ASKED;
}

/* socket()'s event, at its return: from the syscall-exit tracepoint (cgroup
 * backend) or an fexit of __sys_socket (LSM backend). */
static __always_inline int socket_exit(long ret, int family, int type, int protocol)
{
	struct netev_event *e;
	struct decision taken = {}, *d;
	struct caller c;
	int decided;

	if (!tp_in_scope())
		return 0;
	count(NETEV_CNT_CALLS, 1);
	get_caller(&c);
	/* inet sockets passed cgroup/sock_create, which decided (and maybe refused) */
	d = bpf_map_lookup_elem(&socket_decisions, &c.pid_tgid);
	/* Copied out, not pointed at by a select between two stack slots:
	 * clang turns such a pointer's field offsets into ORs, which the
	 * verifier refuses on pointers. */
	decided = d != NULL;
	if (d) {
		taken = *d;
		bpf_map_delete_elem(&socket_decisions, &c.pid_tgid);
	}
	RESERVE(e, sizeof(*e), return 0);
	init_event(e, &c, NETEV_OP_SOCKET, &taken, decided);
	e->family = family;
	e->type = type & SOCK_TYPE_MASK;
	e->protocol = protocol;
	e->ret = ret;
	e->hdr.flags |= NETEV_F_HAS_RET;
	if (ret >= 0 && e->protocol == 0 && (family == AF_INET || family == AF_INET6)) {
		/* the protocol the kernel chose when the caller passed 0 */
		struct sock *sk = sock_from_fd(ret);
		if (sk)
			e->protocol = BPF_CORE_READ(sk, sk_protocol);
	}
	if (!decided)
		decide_observed(e, &c, 0);
	submit(e);
	return 0;
}

#ifdef NETEV_LSM
/* Where the LSM backend's accept() exit finds the decision made when the
 * connection's SYN reached the listener (inet_conn_request): by the
 * connection's addresses, which the accepted socket still has. */
struct syn_key {
	__u8 raddr[16];
	__u16 rport;
	__u16 lport;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syn_key);
	__type(value, struct decision);
} syn_decisions SEC(".maps");
#endif

/* listen()'s and accept()'s events, at their return. fd: the syscall's fd
 * argument (only read when ret is not the accepted socket). */
static __always_inline int fd_exit(long ret, long fd, __u8 op)
{
	struct netev_event *e;
	struct decision taken = {};
	struct caller c;
	int decided = 0;

	/* A non-blocking accept with nothing queued did nothing worth a record. */
	if (op == NETEV_OP_ACCEPT && ret == -EAGAIN)
		return 0;
	if (!tp_in_scope())
		return 0;
	count(NETEV_CNT_CALLS, 1);
	get_caller(&c);
#ifdef NETEV_LSM
	if (op == NETEV_OP_LISTEN) {
		struct decision *d = bpf_map_lookup_elem(&socket_decisions, &c.pid_tgid);

		if (d && d->op == op) {
			taken = *d;
			decided = 1;
			bpf_map_delete_elem(&socket_decisions, &c.pid_tgid);
		}
	}
#endif
	RESERVE(e, sizeof(*e), return 0);
	init_event(e, &c, op, &taken, decided);
	e->ret = ret;
	e->hdr.flags |= NETEV_F_HAS_RET;
	if (op == NETEV_OP_ACCEPT && ret >= 0)
		fill_from_sock(e, sock_from_fd(ret), 1);
	else if (ret != -EBADF && ret != -ENOTSOCK)
		fill_from_sock(e, sock_from_fd(fd), 0);
#ifdef NETEV_LSM
	if (op == NETEV_OP_ACCEPT && ret >= 0) {
		struct syn_key k = { .rport = e->rport, .lport = e->lport };
		struct decision *d;

		if (e->family == AF_INET) {
			k.raddr[10] = 0xff;
			k.raddr[11] = 0xff;
			__builtin_memcpy(&k.raddr[12], e->raddr, 4);
		} else {
			__builtin_memcpy(k.raddr, e->raddr, 16);
		}
		d = bpf_map_lookup_elem(&syn_decisions, &k);
		if (d) {
			e->hdr.verdict = d->applied == NETEV_ACTION_DENY ? NETEV_VERDICT_DENY
									 : NETEV_VERDICT_ALLOW;
			e->rule_id = d->rule_id;
			if (d->action == NETEV_ACTION_ASK)
				e->hdr.flags |= NETEV_F_ASKED;
			decided = 1;
			bpf_map_delete_elem(&syn_decisions, &k);
		}
	}
#endif
	if (!decided)
		decide_observed(e, &c, op == NETEV_OP_ACCEPT);
	submit(e);
	return 0;
}

#ifndef NETEV_LSM
SEC("tracepoint/syscalls/sys_exit_socket")
int netev_exit_socket(struct tp_sys_exit *ctx)
{
	struct pt_regs___netev *regs = syscall_regs(); /* socket(family, type, protocol) */

	return socket_exit(ctx->ret, BPF_CORE_READ(regs, di), BPF_CORE_READ(regs, si),
			   BPF_CORE_READ(regs, dx));
}

/* The fd argument, read back only when the event needs it. */
static __always_inline long tp_fd(struct tp_sys_exit *ctx, __u8 op)
{
	if (op == NETEV_OP_ACCEPT && ctx->ret >= 0)
		return -1;
	return BPF_CORE_READ(syscall_regs(), di);
}

SEC("tracepoint/syscalls/sys_exit_listen")
int netev_exit_listen(struct tp_sys_exit *ctx)
{
	return fd_exit(ctx->ret, tp_fd(ctx, NETEV_OP_LISTEN), NETEV_OP_LISTEN);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int netev_exit_accept(struct tp_sys_exit *ctx)
{
	return fd_exit(ctx->ret, tp_fd(ctx, NETEV_OP_ACCEPT), NETEV_OP_ACCEPT);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int netev_exit_accept4(struct tp_sys_exit *ctx)
{
	return fd_exit(ctx->ret, tp_fd(ctx, NETEV_OP_ACCEPT), NETEV_OP_ACCEPT);
}
#endif

/* --- process identity -------------------------------------------------- */

/* An exec's record; filename: the kernel's copy of the path execve() was
 * given. */
static __always_inline int exec_event(const void *filename)
{
	struct task_struct *task;
	struct netev_exec *e;
	__u64 id, ugid;
	long n;

	if (!tp_in_scope())
		return 0;
	RESERVE(e, sizeof(*e), return 0);
	task = bpf_get_current_task_btf();
	id = bpf_get_current_pid_tgid();
	ugid = bpf_get_current_uid_gid();
	e->hdr.kind = NETEV_KIND_EXEC;
	e->hdr.op = 0;
	e->hdr.verdict = 0;
	e->hdr.flags = 0;
	e->hdr.pid = id >> 32;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->ppid = task->real_parent->tgid;
	e->uid = (__u32)ugid;
	{
		struct proc_ident fresh = { .mm = (__u64)task->mm };
		__u32 tgid = id >> 32;

		read_identity(task, &fresh);
		e->app_ino = fresh.app_ino;
		e->app_dev = fresh.app_dev;
		bpf_map_update_elem(&procs, &tgid, &fresh, BPF_ANY);
	}
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);
	e->filename_len = n > 0 ? n : 0;
	submit(e);
	return 0;
}

static __always_inline int exit_event(void)
{
	struct netev_hdr *h;
	__u64 id = bpf_get_current_pid_tgid();

	__u32 tgid = id >> 32;

	/* one record per process, not per thread */
	if ((__u32)id != tgid)
		return 0;
	bpf_map_delete_elem(&procs, &tgid);
	if (!tp_in_scope())
		return 0;
	RESERVE(h, sizeof(*h), return 0);
	h->kind = NETEV_KIND_EXIT;
	h->op = 0;
	h->verdict = 0;
	h->flags = 0;
	h->pid = id >> 32;
	h->ts_ns = bpf_ktime_get_ns();
	submit(h);
	return 0;
}

#ifndef NETEV_LSM
SEC("tracepoint/sched/sched_process_exec")
int netev_exec(struct tp_sched_exec *ctx)
{
	return exec_event((void *)ctx + (ctx->filename_loc & 0xffff));
}

SEC("tracepoint/sched/sched_process_exit")
int netev_exit(void *ctx)
{
	return exit_event();
}
#endif

#endif /* NETEV_COMMON_H */
