/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The few kernel structs netev reads, declared with preserve_access_index so
 * that libbpf relocates every field access against the running kernel's BTF
 * (CO-RE). Only the fields used are declared; their order here is irrelevant.
 * This replaces a 3 MB generated vmlinux.h that would tie the build to the
 * build machine's kernel.
 */
#ifndef NETEV_KERNEL_TYPES_H
#define NETEV_KERNEL_TYPES_H

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* Only ever copied whole (16 bytes); the kernel's is a union of arrays. */
struct in6_addr___netev {
	__u8 bytes[16];
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr___netev skc_v6_daddr;
	struct in6_addr___netev skc_v6_rcv_saddr;
};

struct sock {
	struct sock_common __sk_common;
	__u16 sk_type;
	__u16 sk_protocol;
};

struct socket {
	struct sock *sk;
};

/* The BPF LSM hooks' arguments (netev_lsm.bpf.c). */
struct msghdr {
	void *msg_name;
	int msg_namelen;
	unsigned int msg_flags;
};

struct linux_binprm {
	const char *filename;
};

struct request_sock {
	struct sock_common __req_common;
};

struct super_block {
	__u32 s_dev;
};

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
};

/* The inode's change time moved twice: a timespec64 i_ctime until 6.6,
 * __i_ctime until 6.11, then i_ctime_sec and i_ctime_nsec. One flavour
 * each; CO-RE picks the one the running kernel has (inode_ctime_ns()). */
struct timespec64___netev {
	__s64 tv_sec;
	long tv_nsec;
};

struct inode___v61 {
	struct timespec64___netev i_ctime;
};

struct inode___v66 {
	struct timespec64___netev __i_ctime;
};

struct inode___v611 {
	__s64 i_ctime_sec;
	__u32 i_ctime_nsec;
};

struct qstr {
	const unsigned char *name;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
	struct super_block *d_sb;
};

struct path {
	struct dentry *dentry;
};

struct file {
	void *private_data;
	struct inode *f_inode;
	struct path f_path;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct mm_struct {
	struct file *exe_file;
};

/* The kernel's saved user registers (x86-64 names); the ___netev suffix
 * keeps it apart from the UAPI struct of the same name. syscall_regs()'s
 * callers in netev.bpf.c read the first syscall arguments from di, si, dx:
 * another architecture needs its own argument registers here (build.rs
 * stops a build for one; libbpf-cargo defines __TARGET_ARCH_*). */
#ifndef __TARGET_ARCH_x86
#error "pt_regs___netev has x86-64 register names: port it (and syscall_regs()'s callers) first"
#endif
struct pt_regs___netev {
	unsigned long di;
	unsigned long si;
	unsigned long dx;
};

struct task_struct {
	int pid;
	int tgid;
	__u64 start_boottime;
	struct task_struct *group_leader;
	struct task_struct *real_parent;
	struct mm_struct *mm;
	struct files_struct *files;
};

#pragma clang attribute pop

/* Tracepoint contexts, from /sys/kernel/tracing/events/.../format. */
struct tp_sys_exit {
	__u64 common;
	long id;
	long ret;
};

struct tp_sched_exec {
	__u64 common;
	__u32 filename_loc; /* __data_loc: offset in the low 16 bits */
	int pid;
	int old_pid;
};

#endif
