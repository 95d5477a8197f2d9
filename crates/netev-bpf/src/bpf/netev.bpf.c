// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netev — capture of network operations, cgroup + tracepoint backend: what
 * runs where BPF LSM cannot (the host kernel in integrity lockdown).
 *
 *   cgroup/sock_create            enforcement point for socket() (events come
 *                                 from the syscall tracepoints, which know ret)
 *   cgroup/bind4|6, connect4|6    enforceable, reported before the kernel acts
 *   cgroup/sendmsg4|6, recvmsg4|6 UDP with an address; coalesced per flow
 *   tracepoint syscalls socket, listen, accept, accept4 (exit, observe)
 *   tracepoint sched exec/exit    process identity for userspace
 *
 * Everything but the cgroup enforcement points is in common.h, shared with
 * the LSM backend (netev_lsm.bpf.c).
 */
#include "common.h"

/* --- cgroup programs (enforcement points) ------------------------------ */


SEC("cgroup/sock_create")
int netev_sock_create(struct bpf_sock *ctx)
{
	struct caller c;
	struct query q = { .op = NETEV_OP_SOCKET };
	struct decision d;
	__u32 guard_rule;
	int g;

	if (is_self())
		return 1;
	get_caller(&c);
	q.family = ctx->family;
	q.proto = ctx->protocol;
	decide(&q, &c, &d);
	g = guard_index(ctx->family, ctx->type, ctx->protocol);
	if (g >= 0 && d.applied != NETEV_ACTION_DENY && guard_refuses(&c, g, &guard_rule)) {
		d.rule_id = guard_rule;
		d.action = NETEV_ACTION_DENY;
		d.applied = NETEV_ACTION_DENY;
		d.flags = NETEV_F_GUARD;
	}
	bpf_map_update_elem(&socket_decisions, &c.pid_tgid, &d, BPF_ANY);
	return d.applied == NETEV_ACTION_DENY ? 0 : 1;
}

SEC("cgroup/bind4")
int netev_bind4(struct bpf_sock_addr *ctx)
{
	return addr_event(ctx, NETEV_OP_BIND, 0);
}

SEC("cgroup/bind6")
int netev_bind6(struct bpf_sock_addr *ctx)
{
	return addr_event(ctx, NETEV_OP_BIND, 1);
}

SEC("cgroup/connect4")
int netev_connect4(struct bpf_sock_addr *ctx)
{
	return addr_event(ctx, NETEV_OP_CONNECT, 0);
}

SEC("cgroup/connect6")
int netev_connect6(struct bpf_sock_addr *ctx)
{
	return addr_event(ctx, NETEV_OP_CONNECT, 1);
}

SEC("cgroup/sendmsg4")
int netev_sendmsg4(struct bpf_sock_addr *ctx)
{
	return flow_event(ctx, NETEV_OP_SENDMSG, 0);
}

SEC("cgroup/sendmsg6")
int netev_sendmsg6(struct bpf_sock_addr *ctx)
{
	return flow_event(ctx, NETEV_OP_SENDMSG, 1);
}
