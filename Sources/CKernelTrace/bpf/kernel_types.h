// The kernel as kernel_trace.bpf.c reads it: the integer types and helper headers libbpf expects, the uapi and
// kernel constants used, the few kernel structs with only the fields read (CO-RE: `preserve_access_index` lets
// libbpf move each read to where this kernel's BTF has the field, so no generated vmlinux.h is needed), and the
// x86_64 system call numbers. Included once, by the program; not a header of the C target (bpf/ is excluded).
#ifndef KT_KERNEL_TYPES_H
#define KT_KERNEL_TYPES_H

#include "KernelTraceEvents.h"

// What bpf_helper_defs.h expects from linux/types.h, which the BPF target cannot include (no multiarch headers).
typedef kt_u8 __u8;
typedef kt_u16 __u16;
typedef kt_u32 __u32;
typedef kt_u64 __u64;
typedef __INT8_TYPE__ __s8;
typedef __INT16_TYPE__ __s16;
typedef kt_s32 __s32;
typedef kt_s64 __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// The uapi constants used (linux/bpf.h), as vmlinux.h would give them.
enum {
    BPF_MAP_TYPE_PERCPU_ARRAY = 6,
    BPF_MAP_TYPE_LRU_HASH = 9,
    BPF_MAP_TYPE_RINGBUF = 27,
    BPF_MAP_TYPE_TASK_STORAGE = 29,
};
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_F_NO_PREALLOC 1
#define BPF_LOCAL_STORAGE_GET_F_CREATE 1
#define BPF_RB_NO_WAKEUP 1
#define BPF_RB_FORCE_WAKEUP 2
#define BPF_RB_AVAIL_DATA 0

struct bpf_pidns_info {
    __u32 pid;
    __u32 tgid;
};

// The kernel structs, only the fields read (CO-RE finds each by name in the running kernel's BTF).
#define CORE __attribute__((preserve_access_index))

struct pt_regs {
    unsigned long di, si, dx, r10, r8, r9, orig_ax;
} CORE;

struct inode {
    unsigned short i_mode;
    unsigned long i_ino;
} CORE;

struct file {
    void *private_data;
    struct inode *f_inode;
} CORE;

struct fdtable {
    unsigned int max_fds;
    struct file **fd;
} CORE;

struct files_struct {
    struct fdtable *fdt;
} CORE;

struct in6_addr {
    __u8 bytes[16];
};

struct sock_common {
    __be32 skc_daddr;
    __be32 skc_rcv_saddr;
    __be16 skc_dport;
    __u16 skc_num;
    unsigned short skc_family;
    volatile unsigned char skc_state;
    struct in6_addr skc_v6_daddr;
    struct in6_addr skc_v6_rcv_saddr;
} CORE;

struct socket;

struct sock {
    struct sock_common __sk_common;
    struct socket *sk_socket;
    __u16 sk_type;
    __u16 sk_protocol;
} CORE;

struct socket {
    struct sock *sk;
    struct file *file;
} CORE;

// An IPv4 or IPv6 socket starts with its struct sock; its source port as getsockname(2) shows it.
struct inet_sock {
    struct sock sk;
    __be16 inet_sport;
} CORE;

struct net_device {
    int ifindex;
} CORE;

struct sk_buff {
    struct sock *sk;
    struct net_device *dev;
    unsigned int len;
    unsigned char *head;
    unsigned char *data;
    __u16 network_header;
    __be16 protocol;
} CORE;

typedef struct {
    int counter;
} atomic_t;

struct signal_struct {
    atomic_t live;
} CORE;

struct task_struct {
    unsigned int flags;
    int pid;
    int tgid;
    int exit_code;
    struct task_struct *group_leader;
    struct files_struct *files;
    struct signal_struct *signal;
} CORE;

#define PF_EXITING 0x4
#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define EINTR 4

// x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl): the socket calls SyscallTrace decodes.
enum {
    NR_read = 0,
    NR_write = 1,
    NR_close = 3,
    NR_readv = 19,
    NR_writev = 20,
    NR_dup = 32,
    NR_dup2 = 33,
    NR_sendfile = 40,
    NR_socket = 41,
    NR_connect = 42,
    NR_accept = 43,
    NR_sendto = 44,
    NR_recvfrom = 45,
    NR_sendmsg = 46,
    NR_recvmsg = 47,
    NR_shutdown = 48,
    NR_bind = 49,
    NR_listen = 50,
    NR_socketpair = 53,
    NR_setsockopt = 54,
    NR_getsockopt = 55,
    NR_fcntl = 72,
    NR_accept4 = 288,
    NR_dup3 = 292,
    NR_recvmmsg = 299,
    NR_sendmmsg = 307,
};

#define F_DUPFD 0
#define F_DUPFD_CLOEXEC 1030

#endif
