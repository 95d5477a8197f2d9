// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netev — capture of network operations, cgroup + tracepoint backend.
 *
 *   cgroup/sock_create            enforcement point for socket() (events come
 *                                 from the syscall tracepoints, which know ret)
 *   cgroup/bind4|6, connect4|6    enforceable, reported before the kernel acts
 *   cgroup/sendmsg4|6, recvmsg4|6 UDP with an address; coalesced per flow
 *   tracepoint syscalls socket, listen, accept, accept4 (enter+exit, observe)
 *   tracepoint sched exec/exit    process identity for userspace
 *
 * Records leave through one ring buffer with batched wake-ups: a wake-up per
 * record costs microseconds in a VM (a cross-CPU IPI), so the producer only
 * wakes the reader once wakeup_bytes are pending and the reader also polls on
 * a short timer. Every reservation failure is counted: loss is never silent.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "netev.h"
#include "kernel_types.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_TYPE_MASK 0xf
#define EAGAIN 11
#define EBADF 9
#define ENOTSOCK 88
#define CLOCK_MONOTONIC 1
#define NSEC_PER_SEC 1000000000ULL

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Settings, written by the loader before load. */
const volatile __u32 self_tgid = 0;       /* the daemon: never captured */
const volatile __u8 coalesce = 1;         /* fold repeated send/recv per flow */
const volatile __u64 wakeup_bytes = 16384; /* wake the reader past this backlog */

/* Referenced so that their BTF is emitted: the ABI test compares the Rust
 * mirror with these. */
struct netev_event abi_netev_event;
struct netev_exec abi_netev_exec;

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
 * event. An entry is only trusted while the task's mm is the one it was
 * read with: exec replaces the mm, and a reused pid comes with a new one. */
struct proc_ident {
	__u64 mm;
	__u64 app_ino;
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
	__u8 _pad[5];
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

static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		*v += n;
}

static __always_inline void *reserve(__u64 size)
{
	void *rec;

	count(NETEV_CNT_SEEN, 1);
	rec = bpf_ringbuf_reserve(&events, size, 0);
	if (!rec)
		count(NETEV_CNT_DROPPED, 1);
	return rec;
}

static __always_inline void submit(void *rec)
{
	__u64 backlog = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	bpf_ringbuf_submit(rec, backlog >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline int is_self(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == self_tgid;
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

	if (exe) {
		out->app_ino = exe->f_inode->i_ino;
		out->app_dev = exe->f_inode->i_sb->s_dev;
	}
}

static __always_inline void identity(struct task_struct *task, __u32 tgid, struct netev_event *e)
{
	__u64 mm = (__u64)task->mm;
	struct proc_ident *cached = bpf_map_lookup_elem(&procs, &tgid);
	struct proc_ident fresh = {};

	if (cached && cached->mm == mm) {
		e->app_ino = cached->app_ino;
		e->app_dev = cached->app_dev;
		return;
	}
	fresh.mm = mm;
	read_identity(task, &fresh);
	e->app_ino = fresh.app_ino;
	e->app_dev = fresh.app_dev;
	bpf_map_update_elem(&procs, &tgid, &fresh, BPF_ANY);
}

static __always_inline void fill_task(struct netev_event *e, __u8 op, __u8 verdict)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();

	e->hdr.kind = NETEV_KIND_NET;
	e->hdr.op = op;
	e->hdr.verdict = verdict;
	e->hdr.pid = id >> 32;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->tid = (__u32)id;
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	e->count = 1;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->ppid = task->real_parent->tgid;
	identity(task, id >> 32, e);
}

static __always_inline struct netev_event *new_event(__u8 op, __u8 verdict)
{
	struct netev_event *e = reserve(sizeof(*e));

	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	fill_task(e, op, verdict);
	return e;
}

/* --- socket addresses from the cgroup sock_addr context --------------- */

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

static __always_inline void addr_event(struct bpf_sock_addr *ctx, __u8 op, int v6)
{
	struct netev_event *e;

	if (is_self())
		return;
	count(NETEV_CNT_CALLS, 1);
	e = new_event(op, NETEV_VERDICT_ALLOW);
	if (!e)
		return;
	e->family = ctx->user_family;
	e->type = ctx->type;
	e->protocol = ctx->protocol;
	if (op == NETEV_OP_BIND) {
		user_addr(ctx, v6, e->laddr, &e->lport);
	} else {
		user_addr(ctx, v6, e->raddr, &e->rport);
		sock_local_addr(ctx, v6, e);
	}
	submit(e);
}

/* --- coalescing -------------------------------------------------------- */

static __always_inline void report_flow(struct flow_val *v, __u64 n)
{
	struct netev_event *e = reserve(sizeof(*e));

	if (!e)
		return;
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

static __always_inline void flow_event(struct bpf_sock_addr *ctx, __u8 op, int v6)
{
	struct flow_key key = {};
	struct flow_val *v;
	struct netev_event *e;

	if (is_self())
		return;
	count(NETEV_CNT_CALLS, 1);
	if (coalesce) {
		key.cookie = bpf_get_socket_cookie(ctx);
		key.op = op;
		user_addr(ctx, v6, key.raddr, &key.rport);
		v = bpf_map_lookup_elem(&flows, &key);
		if (v) {
			__sync_fetch_and_add(&v->pending, 1);
			if (v->dead) {
				__u64 n = __sync_lock_test_and_set(&v->pending, 0);
				if (n)
					report_flow(v, n);
			} else {
				count(NETEV_CNT_COALESCED, 1);
			}
			return;
		}
	}

	e = new_event(op, op == NETEV_OP_RECVMSG ? NETEV_VERDICT_OBSERVE : NETEV_VERDICT_ALLOW);
	if (!e)
		return;
	e->family = ctx->user_family;
	e->type = ctx->type;
	e->protocol = ctx->protocol;
	user_addr(ctx, v6, e->raddr, &e->rport);
	sock_local_addr(ctx, v6, e);

	if (coalesce) {
		struct flow_val fresh = {};

		__builtin_memcpy(&fresh.tmpl, e, sizeof(*e));
		/* A full table just means this flow is not coalesced. */
		if (bpf_map_update_elem(&flows, &key, &fresh, BPF_NOEXIST) == 0) {
			v = bpf_map_lookup_elem(&flows, &key);
			if (v) {
				bpf_timer_init(&v->timer, &flows, CLOCK_MONOTONIC);
				bpf_timer_set_callback(&v->timer, flow_tick);
				bpf_timer_start(&v->timer, NSEC_PER_SEC, 0);
			}
		}
	}
	submit(e);
}

/* --- cgroup programs (enforcement points) ------------------------------ */

SEC("cgroup/sock_create")
int netev_sock_create(struct bpf_sock *ctx)
{
	return 1;
}

SEC("cgroup/bind4")
int netev_bind4(struct bpf_sock_addr *ctx)
{
	addr_event(ctx, NETEV_OP_BIND, 0);
	return 1;
}

SEC("cgroup/bind6")
int netev_bind6(struct bpf_sock_addr *ctx)
{
	addr_event(ctx, NETEV_OP_BIND, 1);
	return 1;
}

SEC("cgroup/connect4")
int netev_connect4(struct bpf_sock_addr *ctx)
{
	addr_event(ctx, NETEV_OP_CONNECT, 0);
	return 1;
}

SEC("cgroup/connect6")
int netev_connect6(struct bpf_sock_addr *ctx)
{
	addr_event(ctx, NETEV_OP_CONNECT, 1);
	return 1;
}

SEC("cgroup/sendmsg4")
int netev_sendmsg4(struct bpf_sock_addr *ctx)
{
	flow_event(ctx, NETEV_OP_SENDMSG, 0);
	return 1;
}

SEC("cgroup/sendmsg6")
int netev_sendmsg6(struct bpf_sock_addr *ctx)
{
	flow_event(ctx, NETEV_OP_SENDMSG, 1);
	return 1;
}

SEC("cgroup/recvmsg4")
int netev_recvmsg4(struct bpf_sock_addr *ctx)
{
	flow_event(ctx, NETEV_OP_RECVMSG, 0);
	return 1;
}

SEC("cgroup/recvmsg6")
int netev_recvmsg6(struct bpf_sock_addr *ctx)
{
	flow_event(ctx, NETEV_OP_RECVMSG, 1);
	return 1;
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

SEC("tracepoint/syscalls/sys_exit_socket")
int netev_exit_socket(struct tp_sys_exit *ctx)
{
	struct pt_regs___netev *regs;
	struct netev_event *e;
	int family;

	if (!tp_in_scope())
		return 0;
	count(NETEV_CNT_CALLS, 1);
	regs = syscall_regs(); /* socket(family, type, protocol) */
	family = BPF_CORE_READ(regs, di);
	/* inet sockets pass cgroup/sock_create, which can refuse them */
	e = new_event(NETEV_OP_SOCKET, family == AF_INET || family == AF_INET6 ? NETEV_VERDICT_ALLOW
										: NETEV_VERDICT_OBSERVE);
	if (!e)
		return 0;
	e->family = family;
	e->type = BPF_CORE_READ(regs, si) & SOCK_TYPE_MASK;
	e->protocol = BPF_CORE_READ(regs, dx);
	e->ret = ctx->ret;
	e->hdr.flags = NETEV_F_HAS_RET;
	if (ctx->ret >= 0 && e->protocol == 0 && (family == AF_INET || family == AF_INET6)) {
		/* the protocol the kernel chose when the caller passed 0 */
		struct sock *sk = sock_from_fd(ctx->ret);
		if (sk)
			e->protocol = BPF_CORE_READ(sk, sk_protocol);
	}
	submit(e);
	return 0;
}

static __always_inline int fd_exit(struct tp_sys_exit *ctx, __u8 op)
{
	struct netev_event *e;
	long ret = ctx->ret;

	/* A non-blocking accept with nothing queued did nothing worth a record. */
	if (op == NETEV_OP_ACCEPT && ret == -EAGAIN)
		return 0;
	if (!tp_in_scope())
		return 0;
	count(NETEV_CNT_CALLS, 1);
	e = new_event(op, NETEV_VERDICT_OBSERVE);
	if (!e)
		return 0;
	e->ret = ret;
	e->hdr.flags = NETEV_F_HAS_RET;
	if (op == NETEV_OP_ACCEPT && ret >= 0)
		fill_from_sock(e, sock_from_fd(ret), 1);
	else if (ret != -EBADF && ret != -ENOTSOCK)
		fill_from_sock(e, sock_from_fd(BPF_CORE_READ(syscall_regs(), di)), 0);
	submit(e);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_listen")
int netev_exit_listen(struct tp_sys_exit *ctx)
{
	return fd_exit(ctx, NETEV_OP_LISTEN);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int netev_exit_accept(struct tp_sys_exit *ctx)
{
	return fd_exit(ctx, NETEV_OP_ACCEPT);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int netev_exit_accept4(struct tp_sys_exit *ctx)
{
	return fd_exit(ctx, NETEV_OP_ACCEPT);
}

/* --- process identity -------------------------------------------------- */

SEC("tracepoint/sched/sched_process_exec")
int netev_exec(struct tp_sched_exec *ctx)
{
	struct task_struct *task;
	struct netev_exec *e;
	__u64 id, ugid;
	long n;

	if (!tp_in_scope())
		return 0;
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
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
	n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename),
				      (void *)ctx + (ctx->filename_loc & 0xffff));
	e->filename_len = n > 0 ? n : 0;
	submit(e);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int netev_exit(void *ctx)
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
	h = reserve(sizeof(*h));
	if (!h)
		return 0;
	h->kind = NETEV_KIND_EXIT;
	h->op = 0;
	h->verdict = 0;
	h->flags = 0;
	h->pid = id >> 32;
	h->ts_ns = bpf_ktime_get_ns();
	submit(h);
	return 0;
}
