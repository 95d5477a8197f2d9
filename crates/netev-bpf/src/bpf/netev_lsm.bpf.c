// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netev — capture of network operations, BPF LSM backend: where the kernel
 * runs BPF LSM programs (Debian's own kernels: `bpf` in the LSM list, no
 * lockdown), every operation is decided and can be refused at the LSM hook
 * the kernel calls for it, for every socket of the machine's tasks in the
 * target cgroup:
 *
 *   lsm/socket_create      socket(), all families (event: fexit/__sys_socket)
 *   lsm/socket_bind        bind(), inet; AF_UNSPEC read as the kernel reads it
 *   lsm/socket_listen      listen() (event: fexit/__sys_listen, with ret)
 *   lsm/socket_connect     connect(), inet, SCTP included
 *   lsm/socket_sendmsg     sendto()/sendmsg() with an address, inet (UDP,
 *                          ICMP, raw, SCTP); TCP Fast Open decided as connect
 *   lsm/inet_conn_request  a SYN reaching a listener: decided by the peer's
 *                          address, as accept (event: fexit/__sys_accept4, or
 *                          one of its own when the SYN is refused)
 *   cgroup/recvmsg4|6      datagrams' sources, observed (common.h)
 *
 * The decision of socket(), listen() and a SYN is carried to the fexit
 * programs of __sys_socket, __sys_listen and __sys_accept4 (at the end of
 * this file; common.h, NETEV_LSM), so that their events keep the return
 * value, as on the cgroup backend.
 */
#define NETEV_LSM 1
#include "common.h"
#include <bpf/bpf_tracing.h>

#define EPERM 1
#define AF_UNSPEC 0
#define SOCK_STREAM 1
#define TCP_CLOSE 7
#define MSG_FASTOPEN 0x20000000

/* The sockaddr forms the hooks read (the kernel's copy of the caller's
 * sockaddr, in a sockaddr_storage: reading 28 bytes is always in bounds). */
struct sa_any {
	__u16 family;
	__be16 port;
	union {
		__be32 addr4;
		struct {
			__be32 flowinfo;
			__u8 addr6[16];
		};
	};
	__u32 scope_id;
};

/* Listening sockets' owners, by socket: a SYN arrives in softirq context,
 * where the current task is whoever happened to run, so the listener's
 * process is recorded when it calls listen(). Removed when the socket is
 * freed (lsm/sk_free_security), so an address reused by another socket
 * never inherits an owner. */
struct owner {
	struct caller c;
	char comm[NETEV_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct owner);
} listeners SEC(".maps");

static __always_inline __u16 sk_family(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_family);
}

static __always_inline int inet(__u16 family)
{
	return family == AF_INET || family == AF_INET6;
}

/* Reads the sockaddr at `uaddr` into a query (and the event's address
 * fields, via addr/port). The kernel's inet paths read AF_UNSPEC as AF_INET
 * on an AF_INET socket (inet_bind with INADDR_ANY, udp_sendmsg, raw_sendmsg),
 * so the rules see it as such, and so does the event. Returns the family the
 * kernel will act on, or AF_UNSPEC if the sockaddr names no address. */
static __always_inline __u16 read_sockaddr(void *uaddr, __u16 sk_fam, __u8 *addr, __u16 *port)
{
	struct sa_any sa = {};

	if (!uaddr || bpf_probe_read_kernel(&sa, sizeof(sa), uaddr))
		return AF_UNSPEC;
	if (sa.family == AF_UNSPEC && sk_fam == AF_INET)
		sa.family = AF_INET;
	*port = bpf_ntohs(sa.port);
	if (sa.family == AF_INET) {
		__builtin_memcpy(addr, &sa.addr4, 4);
		return AF_INET;
	}
	if (sa.family == AF_INET6) {
		__builtin_memcpy(addr, sa.addr6, 16);
		return AF_INET6;
	}
	return AF_UNSPEC;
}

/* The query for an address of family `fam` on a socket of family `sk_fam`
 * (rules see the socket's family, as on the cgroup backend). */
static __always_inline void lsm_query(struct query *q, __u16 sk_fam, __u16 fam, const __u8 *addr,
				      __u16 port)
{
	query_addr(q, fam, addr, port);
	q->family = sk_fam;
}

static __always_inline void local_addr(struct sock *sk, __u16 fam, struct netev_event *e)
{
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (fam == AF_INET)
		*(__u32 *)e->laddr = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	else
		bpf_core_read(e->laddr, sizeof(e->laddr), &sk->__sk_common.skc_v6_rcv_saddr);
}

/* bind and connect (and a Fast Open send): decide, report, and return the
 * hook's verdict. */
static __always_inline int lsm_addr_event(struct sock *sk, void *uaddr, __u8 op)
{
	struct netev_event *e;
	struct caller c;
	struct query q = { .op = op };
	struct decision d;
	__u8 addr[16] = {};
	__u16 port = 0, sk_fam, fam;

	/* 6.12's verifier knows sock->sk may be NULL, and says so */
	if (!sk || !tp_in_scope())
		return 0;
	sk_fam = sk_family(sk);
	if (!inet(sk_fam))
		return 0;
	fam = read_sockaddr(uaddr, sk_fam, addr, &port);
	/* connect(AF_UNSPEC) dissolves an association: there is no peer */
	if (fam == AF_UNSPEC)
		return 0;
	count(NETEV_CNT_CALLS, 1);
	get_caller(&c);
	q.proto = BPF_CORE_READ(sk, sk_protocol);
	lsm_query(&q, sk_fam, fam, addr, port);
	decide(&q, &c, &d);

	RESERVE(e, sizeof(*e), goto out);
	init_event(e, &c, op, &d, 1);
	e->family = fam;
	e->type = BPF_CORE_READ(sk, sk_type);
	e->protocol = q.proto;
	if (op == NETEV_OP_BIND) {
		__builtin_memcpy(e->laddr, addr, 16);
		e->lport = port;
	} else {
		__builtin_memcpy(e->raddr, addr, 16);
		e->rport = port;
		local_addr(sk, sk_fam, e);
	}
	if (d.applied == NETEV_ACTION_DENY) {
		e->ret = -EPERM;
		e->hdr.flags |= NETEV_F_HAS_RET;
	}
	submit(e);
out:
	return d.applied == NETEV_ACTION_DENY ? -EPERM : 0;
}

SEC("lsm/socket_create")
int BPF_PROG(netev_lsm_socket_create, int family, int type, int protocol, int kern, int ret)
{
	struct caller c;
	struct query q = { .op = NETEV_OP_SOCKET };
	struct decision d;

	if (ret)
		return ret;
	if (kern || !tp_in_scope())
		return 0;
	get_caller(&c);
	/* the protocol the kernel will choose for 0, as cgroup/sock_create
	 * sees it (it runs after the choice) */
	if (protocol == 0 && inet(family)) {
		if ((type & SOCK_TYPE_MASK) == SOCK_STREAM)
			protocol = IPPROTO_TCP;
		else if ((type & SOCK_TYPE_MASK) == 2 /* SOCK_DGRAM */)
			protocol = IPPROTO_UDP;
	}
	q.family = family;
	q.proto = protocol;
	decide(&q, &c, &d);
	d.op = NETEV_OP_SOCKET;
	bpf_map_update_elem(&socket_decisions, &c.pid_tgid, &d, BPF_ANY);
	return d.applied == NETEV_ACTION_DENY ? -EPERM : 0;
}

SEC("lsm/socket_bind")
int BPF_PROG(netev_lsm_socket_bind, struct socket *sock, void *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return lsm_addr_event(sock->sk, address, NETEV_OP_BIND);
}

SEC("lsm/socket_connect")
int BPF_PROG(netev_lsm_socket_connect, struct socket *sock, void *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	return lsm_addr_event(sock->sk, address, NETEV_OP_CONNECT);
}

SEC("lsm/socket_listen")
int BPF_PROG(netev_lsm_socket_listen, struct socket *sock, int backlog, int ret)
{
	struct sock *sk = sock->sk;
	struct caller c;
	struct query q = { .op = NETEV_OP_LISTEN };
	struct decision d;
	__u16 fam;

	if (ret)
		return ret;
	if (!sk || !tp_in_scope())
		return 0;
	get_caller(&c);
	fam = sk_family(sk);
	q.family = fam;
	q.proto = BPF_CORE_READ(sk, sk_protocol);
	if (inet(fam)) {
		struct netev_event local = {};

		local_addr(sk, fam, &local);
		query_addr(&q, fam, local.laddr, local.lport);
	}
	decide(&q, &c, &d);
	d.op = NETEV_OP_LISTEN;
	bpf_map_update_elem(&socket_decisions, &c.pid_tgid, &d, BPF_ANY);
	if (d.applied == NETEV_ACTION_DENY)
		return -EPERM;
	if (inet(fam)) {
		struct owner o = { .c = c };
		__u64 key = (__u64)sk;

		bpf_get_current_comm(o.comm, sizeof(o.comm));
		bpf_map_update_elem(&listeners, &key, &o, BPF_ANY);
	}
	return 0;
}

SEC("lsm/sk_free_security")
int BPF_PROG(netev_lsm_sk_free, struct sock *sk)
{
	__u64 key = (__u64)sk;

	bpf_map_delete_elem(&listeners, &key);
	return 0;
}

/* A SYN on a listener of ours: decided as the owner's accept of that peer,
 * before the connection exists. Refused, the SYN is dropped (the client's
 * connect times out, as behind a dropping firewall) and reported here, since
 * no accept() will report it. */
SEC("lsm/inet_conn_request")
int BPF_PROG(netev_lsm_conn_request, struct sock *sk, void *skb, struct request_sock *req,
	     int ret)
{
	struct netev_event *e;
	struct owner *o;
	struct query q = { .op = NETEV_OP_ACCEPT, .proto = IPPROTO_TCP };
	struct decision d;
	struct syn_key k = {};
	__u64 key = (__u64)sk;
	__u16 fam;
	__u8 laddr[16] = {};

	if (ret)
		return ret;
	o = bpf_map_lookup_elem(&listeners, &key);
	if (!o)
		return 0;
	count(NETEV_CNT_CALLS, 1);
	fam = BPF_CORE_READ(req, __req_common.skc_family);
	k.rport = bpf_ntohs(BPF_CORE_READ(req, __req_common.skc_dport));
	k.lport = BPF_CORE_READ(req, __req_common.skc_num);
	if (fam == AF_INET) {
		__u32 a = BPF_CORE_READ(req, __req_common.skc_daddr);

		k.raddr[10] = 0xff;
		k.raddr[11] = 0xff;
		__builtin_memcpy(&k.raddr[12], &a, 4);
		a = BPF_CORE_READ(req, __req_common.skc_rcv_saddr);
		__builtin_memcpy(laddr, &a, 4);
	} else {
		bpf_core_read(k.raddr, sizeof(k.raddr), &req->__req_common.skc_v6_daddr);
		bpf_core_read(laddr, sizeof(laddr), &req->__req_common.skc_v6_rcv_saddr);
	}
	q.family = sk_family(sk);
	q.has_addr = 1;
	q.has_port = 1;
	q.port = k.rport;
	__builtin_memcpy(q.addr, k.raddr, 16);
	decide(&q, &o->c, &d);
	if (d.applied != NETEV_ACTION_DENY) {
		d.op = NETEV_OP_ACCEPT;
		bpf_map_update_elem(&syn_decisions, &k, &d, BPF_ANY);
		return 0;
	}
	RESERVE(e, sizeof(*e), return -EPERM);
	init_event(e, &o->c, NETEV_OP_ACCEPT, &d, 1);
	/* the owner's, not the interrupted task's */
	__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	e->family = fam;
	e->type = SOCK_STREAM;
	e->protocol = IPPROTO_TCP;
	if (fam == AF_INET)
		__builtin_memcpy(e->raddr, &k.raddr[12], 4);
	else
		__builtin_memcpy(e->raddr, k.raddr, 16);
	e->rport = k.rport;
	__builtin_memcpy(e->laddr, laddr, 16);
	e->lport = k.lport;
	e->ret = -EPERM;
	e->hdr.flags |= NETEV_F_HAS_RET;
	submit(e);
	return -EPERM;
}

/* A send with an address: decided (and coalesced per flow) as on the
 * cgroup backend's sendmsg hooks, but for every inet protocol the kernel
 * sends datagrams with. */
static __always_inline int lsm_send(struct sock *sk, __u16 sk_fam, __u16 fam, __u8 *raddr,
				    __u16 rport)
{
	struct flow_key key = {};
	struct netev_event *e;
	struct caller c;
	struct query q = { .op = NETEV_OP_SENDMSG };
	struct decision d;
	int deny;

	count(NETEV_CNT_CALLS, 1);
	get_caller(&c);
	q.proto = BPF_CORE_READ(sk, sk_protocol);
	lsm_query(&q, sk_fam, fam, raddr, rport);
	decide(&q, &c, &d);
	deny = d.applied == NETEV_ACTION_DENY;
	__builtin_memcpy(key.raddr, raddr, 16);
	key.rport = rport;
	if (coalesce) {
		key.cookie = bpf_get_socket_cookie(sk);
		key.op = NETEV_OP_SENDMSG;
		key.verdict = !deny;
		key.rule_id = d.rule_id;
		if (join_flow(&key))
			return deny ? -EPERM : 0;
	}
	RESERVE(e, sizeof(*e), return deny ? -EPERM : 0);
	init_event(e, &c, NETEV_OP_SENDMSG, &d, 1);
	e->family = fam;
	e->type = BPF_CORE_READ(sk, sk_type);
	e->protocol = q.proto;
	__builtin_memcpy(e->raddr, raddr, 16);
	e->rport = rport;
	local_addr(sk, sk_fam, e);
	if (coalesce)
		start_flow(&key, e);
	submit(e);
	return deny ? -EPERM : 0;
}

SEC("lsm/socket_sendmsg")
int BPF_PROG(netev_lsm_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	struct sock *sk;
	void *name;
	__u16 sk_fam, fam, rport = 0;
	__u8 raddr[16] = {};

	if (ret)
		return ret;
	name = BPF_CORE_READ(msg, msg_name);
	/* a connected send: its peer was decided at connect */
	if (!name || BPF_CORE_READ(msg, msg_namelen) < 2)
		return 0;
	sk = sock->sk;
	if (!sk)
		return 0;
	sk_fam = sk_family(sk);
	if (!inet(sk_fam) || !tp_in_scope())
		return 0;
	if (BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP) {
		/* TCP ignores a send's address, except Fast Open on an
		 * unconnected socket: that send is the connect */
		if ((BPF_CORE_READ(msg, msg_flags) & MSG_FASTOPEN) &&
		    BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_CLOSE)
			return lsm_addr_event(sk, name, NETEV_OP_CONNECT);
		return 0;
	}
	fam = read_sockaddr(name, sk_fam, raddr, &rport);
	if (fam == AF_UNSPEC)
		return 0;
	return lsm_send(sk, sk_fam, fam, raddr, rport);
}

/* --- the events of socket(), listen(), accept() and exec/exit ---------
 *
 * At the functions' return (fexit) and on raw tracepoints (tp_btf), not on
 * the syscall tracepoints the cgroup backend uses: those are perf events,
 * which Debian's kernels (kernel.perf_event_paranoid = 3, a Debian patch)
 * open only for CAP_SYS_ADMIN, a capability netevd's unit does not have;
 * fexit and tp_btf attach through bpf() with CAP_BPF and CAP_PERFMON. */

SEC("fexit/__sys_socket")
int BPF_PROG(netev_fx_socket, int family, int type, int protocol, int ret)
{
	return socket_exit(ret, family, type, protocol);
}

SEC("fexit/__sys_listen")
int BPF_PROG(netev_fx_listen, int fd, int backlog, int ret)
{
	return fd_exit(ret, fd, NETEV_OP_LISTEN);
}

/* accept() and accept4() both */
SEC("fexit/__sys_accept4")
int BPF_PROG(netev_fx_accept4, int fd, void *upeer, void *upeer_len, int flags, int ret)
{
	return fd_exit(ret, fd, NETEV_OP_ACCEPT);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(netev_tp_exec, struct task_struct *p, int old_pid, struct linux_binprm *bprm)
{
	return exec_event(BPF_CORE_READ(bprm, filename));
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(netev_tp_exit, struct task_struct *p)
{
	return exit_event();
}
