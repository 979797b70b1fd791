// The kernel side of the eBPF trace engine: which task, which system call and which socket were behind each
// packet, read where the kernel makes the packet instead of inferred afterwards from its content.
//
// Compiled during `swift build` (Plugins/BPFProgram) with the toolchain's clang: `clang -target bpf -O2 -g`, CO-RE.
// No vmlinux.h: the few kernel structs used are declared in kernel_types.h with only the fields read, and
// `preserve_access_index` makes libbpf move each read to where this kernel's BTF (/sys/kernel/btf/vmlinux) has the
// field. The loader (Sources/KernelTrace) opens the object from memory and attaches every program.
//
// What it follows: tasks registered by user space (a task storage entry created through a pidfd) and everything
// they fork. Per thread it keeps the socket call in flight (entered at raw_syscalls:sys_enter, recorded at
// sys_exit); per CPU the softirq running (irq:softirq_entry/exit: the kernel's preempt count cannot be read from
// BPF here); at net:net_dev_queue it records each packet of a traced task, socket or endpoint with that context.
// Only stable tracepoints: kprobes and fentry are not available on every kernel that has BTF. Those whose
// arguments are read as typed pointers attach through tp_btf (sys_enter/exit, net_dev_queue, sched_process_fork);
// the others through raw_tp, which needs no BTF lookup of the tracepoint at load (libbpf and the kernel each find
// a tp_btf target by a linear scan of the kernel's BTF, a millisecond or two a program).
// tp_btf hands the program typed pointers (the skb, the task, the registers). Their scalar fields are read
// directly (a load instead of a bpf_probe_read_kernel call); pointer fields through BPF_CORE_READ. A direct load of
// a pointer field makes the verifier ask whether the result is trusted, by looking up "<struct>__safe_trusted" and
// its kin in the kernel's BTF by a linear scan, at every visit of the instruction: with the dozen such loads this
// program had, that was 60 % of the time packetflow took to load it (~40 ms); a helper call costs ~20 ns a packet.
//
// x86_64 only, like the ptrace engine: the syscall numbers and pt_regs fields are that architecture's.

#include "kernel_types.h"

char LICENSE[] SEC("license") = "GPL";  // bpf_probe_read_* are GPL-only helpers

// Set by the loader before load (read-only for the program, so the verifier prunes what is turned off).
const volatile struct kt_config kt_config = {};

// Read by the loader (the .bss map): counters, the next call id, the count of live forked processes.
struct kt_globals kt_globals = {};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4 << 20);  // the loader may resize it before load
} kt_events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct kt_task_state);
} kt_tasks SEC(".maps");

// The softirq each CPU is running, + 1 (0: none).
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} kt_softirq SEC(".maps");

// Sockets a traced call used (struct sock *): their packets are recorded whoever sends them. A pointer may be
// reused by a later socket; that only records a few more packets, never fewer.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u8);
} kt_sockets SEC(".maps");

// Local endpoints of traced sockets (a listener's, a client's after connect): packets to or from them are recorded
// even when an untraced peer or a softirq on another CPU sends them (the SYN/ACK of an untraced server).
struct kt_endpoint {
    __u8 addr[16];
    __u16 port;
    __u8 proto;
    __u8 family;  // 4, 6, or 0 for a wildcard address (any address, either family: a dual-stack listener)
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct kt_endpoint);
    __type(value, __u8);
} kt_endpoints SEC(".maps");

static __always_inline void count(int counter) {
    if (counter >= 0 && counter < KT_COUNTER_COUNT) __sync_fetch_and_add(&kt_globals.counters[counter], 1);
}

// Records wake the reader only when the ring is filling: a wake-up per record made the traced program about
// twice as slow; the reader drains on a short timer instead.
static __always_inline __u64 wakeup_flag(void) {
    return bpf_ringbuf_query(&kt_events, BPF_RB_AVAIL_DATA) > kt_config.wakeup_bytes ? BPF_RB_FORCE_WAKEUP
                                                                                       : BPF_RB_NO_WAKEUP;
}

static __always_inline void current_ids(struct kt_task_ids *ids) {
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    ids->kernel_pid = pid_tgid >> 32;
    ids->kernel_tid = (__u32)pid_tgid;
    ids->pid = ids->kernel_pid;
    ids->tid = ids->kernel_tid;
    if (kt_config.translate_pids) {
        struct bpf_pidns_info ns = {};
        if (bpf_get_ns_current_pid_tgid(kt_config.pidns_dev, kt_config.pidns_ino, &ns, sizeof ns) == 0) {
            ids->pid = ns.tgid;
            ids->tid = ns.pid;
        } else {
            ids->pid = 0;  // not visible from the tracer's namespace
            ids->tid = 0;
        }
    }
    bpf_get_current_comm(ids->comm, sizeof ids->comm);
}

// The open file behind descriptor `fd` of the current task, or NULL: current->files->fdt->fd[fd].
static __always_inline struct file *file_of(struct task_struct *task, int fd) {
    if (fd < 0) return 0;
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    if (!fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds)) return 0;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *file = 0;
    bpf_probe_read_kernel(&file, sizeof file, &fds[fd]);
    return file;
}

// The socket a file is (its inode is a socket inode), or NULL.
static __always_inline struct sock *sock_of(struct file *file, __u64 *inode) {
    if (!file) return 0;
    struct inode *ino = BPF_CORE_READ(file, f_inode);
    if (!ino) return 0;
    unsigned short mode = BPF_CORE_READ(ino, i_mode);
    if ((mode & S_IFMT) != S_IFSOCK) return 0;
    *inode = BPF_CORE_READ(ino, i_ino);
    struct socket *socket = BPF_CORE_READ(file, private_data);
    return socket ? BPF_CORE_READ(socket, sk) : 0;
}

static __always_inline void describe(struct sock *sk, struct kt_socket *out) {
    out->family = BPF_CORE_READ(sk, __sk_common.skc_family);
    out->state = BPF_CORE_READ(sk, __sk_common.skc_state);
    out->type = BPF_CORE_READ(sk, sk_type);
    out->protocol = BPF_CORE_READ(sk, sk_protocol);
    // The local port as getsockname(2) gives it (as the ptrace engine reads it): skc_num is the port's hash
    // entry, which a refused connect releases, while the socket keeps its port until it is bound or connected again.
    if (out->family == AF_INET) {
        out->local_port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
        out->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
        __be32 local = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
        __be32 remote = BPF_CORE_READ(sk, __sk_common.skc_daddr);
        __builtin_memset(out->local_addr, 0, 16);
        __builtin_memset(out->remote_addr, 0, 16);
        __builtin_memcpy(out->local_addr, &local, 4);
        __builtin_memcpy(out->remote_addr, &remote, 4);
    } else if (out->family == AF_INET6) {
        out->local_port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
        out->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
        bpf_core_read(out->local_addr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
        bpf_core_read(out->remote_addr, 16, &sk->__sk_common.skc_v6_daddr);
    }
}

static __always_inline int is_zero(const __u8 *a, int n) {
    for (int i = 0; i < n; i++)
        if (a[i]) return 0;
    return 1;
}

// A traced socket's local endpoint, so packets to and from it are recorded whoever builds them. Global, as
// kt_emit_call: verified once per program, not at each use.
__attribute__((noinline)) int kt_remember_endpoint(const struct kt_socket *s) {
    if (!s || s->local_port == 0 || (s->protocol != IPPROTO_TCP && s->protocol != IPPROTO_UDP)) return 0;
    struct kt_endpoint key = {};
    key.port = s->local_port;
    key.proto = s->protocol;
    if (s->family == AF_INET) {
        key.family = 4;
        __builtin_memcpy(key.addr, s->local_addr, 4);
        if (is_zero(key.addr, 4)) key.family = 0;
    } else if (s->family == AF_INET6) {
        key.family = 6;
        __builtin_memcpy(key.addr, s->local_addr, 16);
        if (is_zero(key.addr, 16)) {
            key.family = 0;
        } else if (is_zero(key.addr, 10) && key.addr[10] == 0xff && key.addr[11] == 0xff) {
            // ::ffff:a.b.c.d: an IPv4 connection on an IPv6 socket; its packets are IPv4.
            key.family = 4;
            __builtin_memcpy(key.addr, &s->local_addr[12], 4);
            __builtin_memset(&key.addr[4], 0, 12);
        }
    } else {
        return 0;
    }
    __u8 one = 1;
    if (!bpf_map_lookup_elem(&kt_endpoints, &key)) bpf_map_update_elem(&kt_endpoints, &key, &one, BPF_ANY);
    return 0;
}

static __always_inline void remember_socket(__u64 sock) {
    __u8 one = 1;
    if (sock && !bpf_map_lookup_elem(&kt_sockets, &sock)) bpf_map_update_elem(&kt_sockets, &sock, &one, BPF_ANY);
}

static __always_inline int is_restart(long ret) { return ret == -512 || ret == -513 || ret == -514 || ret == -516; }

// The calls recorded when their first argument is a socket descriptor.
static __always_inline int takes_socket_fd(long nr) {
    switch (nr) {
    case NR_read: case NR_write: case NR_close: case NR_readv: case NR_writev: case NR_dup: case NR_dup2:
    case NR_sendfile: case NR_connect: case NR_accept: case NR_sendto: case NR_recvfrom: case NR_sendmsg:
    case NR_recvmsg: case NR_shutdown: case NR_bind: case NR_listen: case NR_setsockopt: case NR_getsockopt:
    case NR_fcntl: case NR_accept4: case NR_dup3: case NR_recvmmsg: case NR_sendmmsg:
        return 1;
    default:
        return 0;
    }
}

static __always_inline __u32 clamp(__u64 n, __u32 max) { return n > max ? max : (__u32)n; }

// Writes the call in flight of `st` to the ring (ret: its result; flags: KT_CALL_*) and ends it.
//
// A global function (not static, not inlined): the verifier checks it once per program, with `st` as any memory
// of its size, instead of once more at each of its call sites (two in sys_exit, one in sys_enter, one in
// sched_process_exit), which had most of the instructions it walks and most of the time loading takes.
__attribute__((noinline)) int kt_emit_call(struct kt_task_state *st, long ret, __u8 flags) {
    if (!st) return 0;
    struct kt_call_event *ev = bpf_ringbuf_reserve(&kt_events, sizeof *ev, 0);
    if (!ev) {
        count(KT_LOST_CALLS);
        st->last_call_id = st->call_id;
        st->call_id = 0;
        st->restarting = 0;
        return 0;
    }
    struct kt_call *c = &ev->call;
    struct task_struct *task = bpf_get_current_task_btf();
    c->header.kind = KT_EVENT_CALL;
    c->header.time = bpf_ktime_get_ns();
    current_ids(&c->task);
    c->id = st->call_id;
    c->start = st->start;
    c->ret = ret;
    for (int i = 0; i < 6; i++) c->args[i] = st->args[i];
    c->nr = st->nr;
    c->fd = st->fd;
    c->state_before = st->state_before;
    c->flags = flags;
    c->addr_len = 0;
    c->data_len = 0;
    c->line_len = 0;
    c->data_total = 0;
    c->words_len = 0;
    c->addr_from = 0;
    c->data_from = 0;
    c->words_from = 0;
    c->socket = st->socket;
    int ok = ret >= 0 && !(flags & KT_CALL_UNFINISHED);

    // The socket as the call left it: a new descriptor's (socket, accept), or the argument's, whose addresses
    // and state the call may have changed. After close only the state: the socket lives on while TCP finishes
    // the connection, but its ports may already be released; one closed for good reads TCP_CLOSE until its memory
    // is reused, which the kernel does not do within the microseconds between the close and this read.
    struct sock *sk = 0;
    __u64 inode = 0;
    int fresh = 0;
    if (ok && (st->nr == NR_socket || st->nr == NR_accept || st->nr == NR_accept4)) {
        sk = sock_of(file_of(task, (int)ret), &inode);
        fresh = sk != 0;
        if (sk) {
            __builtin_memset(&c->socket, 0, sizeof c->socket);
            c->socket.sock = (__u64)sk;
            c->socket.inode = inode;
            flags |= KT_CALL_HAS_SOCKET;
        }
    } else if (st->has_socket && st->nr != NR_close) {
        sk = (struct sock *)st->socket.sock;
    }
    if (sk) {
        describe(sk, &c->socket);
        if (fresh) remember_socket((__u64)sk);  // the argument's was remembered at the entry
        kt_remember_endpoint(&c->socket);
    } else if (st->has_socket && st->nr == NR_close) {
        struct sock *closed = (struct sock *)st->socket.sock;  // apart: CO-RE must not relocate our own struct
        c->socket.state = BPF_CORE_READ(closed, __sk_common.skc_state);
    }
    if (st->has_socket) flags |= KT_CALL_HAS_SOCKET;
    c->flags = flags;

    // The program's memory that SyscallDecoder reads for this call, copied with where it was read: the address,
    // the first bytes moved, the option's value, socketpair's descriptors or getsockopt's length.
    __u64 addr = 0, addr_len = 0, data = 0, data_len = 0, words = 0, words_len = 0;
    switch (st->nr) {
    case NR_connect:
    case NR_bind:
        addr = st->args[1];
        addr_len = st->args[2];
        break;
    case NR_sendto:
        addr = st->args[4];
        addr_len = st->args[5];
        data = st->args[1];
        data_len = ok ? (__u64)ret : st->args[2];
        c->data_total = (__u32)data_len;
        break;
    case NR_write:
        data = st->args[1];
        data_len = ok ? (__u64)ret : st->args[2];
        c->data_total = (__u32)data_len;
        break;
    case NR_read:
    case NR_recvfrom:
        if (ok) {
            data = st->args[1];
            data_len = (__u64)ret;
            c->data_total = (__u32)ret;
        }
        break;
    case NR_setsockopt:
        if (ok) {
            data = st->args[3];
            data_len = (__u32)st->args[4];
            c->data_total = (__u32)data_len;
        }
        break;
    case NR_getsockopt:
        if (ok && st->args[4]) {
            __u32 len = 0;
            if (bpf_probe_read_user(&len, sizeof len, (void *)st->args[4]) == 0) {
                c->words[0] = (kt_s32)len;
                c->words_len = 4;
                c->words_from = st->args[4];
                data = st->args[3];
                data_len = len;
                c->data_total = len;
            } else {
                count(KT_UNREADABLE_USER);
            }
        }
        break;
    case NR_socketpair:
        if (ok) {
            words = st->args[3];
            words_len = 8;
        }
        break;
    }
    if (addr && addr_len) {
        __u32 n = clamp(addr_len, KT_ADDR_MAX);
        if (bpf_probe_read_user(c->addr, n, (void *)addr) == 0) {
            c->addr_len = n;
            c->addr_from = addr;
        } else {
            count(KT_UNREADABLE_USER);
        }
    }
    if (data && data_len) {
        __u32 n = clamp(data_len, KT_DATA_MAX);
        if (bpf_probe_read_user(c->data, n, (void *)data) == 0) {
            c->data_len = n;
            c->data_from = data;
        } else {
            count(KT_UNREADABLE_USER);
        }
    }
    if (words) {
        if (bpf_probe_read_user(c->words, sizeof c->words, (void *)words) == 0) {
            c->words_len = words_len;
            c->words_from = words;
        } else {
            count(KT_UNREADABLE_USER);
        }
    }
    // The line of the Python method making the call (the hook's buffer for this thread; empty outside methods).
    c->header.size = sizeof(struct kt_call);
    if (st->note_addr) {
        long n = bpf_probe_read_user_str(ev->line, sizeof ev->line, (void *)st->note_addr);
        if (n > 1) {
            c->line_len = (__u16)(n - 1);
            c->header.size = sizeof(struct kt_call) + (__u32)(n - 1);
        } else if (n < 0) {
            count(KT_UNREADABLE_USER);
        }
    }
    st->last_call_id = st->call_id;
    st->call_id = 0;
    st->restarting = 0;
    bpf_ringbuf_submit(ev, wakeup_flag());
    return 0;
}

// A write of the Python hook to its note descriptor: "PFA <address>" announces this thread's line buffer (kept
// here, read at each call); other notes go to user space in order with the calls.
static __always_inline void hook_note(struct kt_task_state *st, struct pt_regs *regs) {
    const char *buf = (const char *)regs->si;
    __u64 len = regs->dx;
    char head[28] = {};
    if (bpf_probe_read_user(head, sizeof head, buf) != 0 && bpf_probe_read_user(head, clamp(len, 27), buf) != 0) {
        count(KT_UNREADABLE_USER);
        return;
    }
    if (head[0] == 'P' && head[1] == 'F' && head[2] == 'A' && head[3] == ' ') {
        __u64 address = 0;
        for (int i = 4; i < 24 && i < (int)len; i++) {
            char d = head[i];
            if (d < '0' || d > '9') break;
            address = address * 10 + (d - '0');
        }
        st->note_addr = address;
        return;
    }
    struct kt_note_event *ev = bpf_ringbuf_reserve(&kt_events, sizeof *ev, 0);
    if (!ev) {
        count(KT_LOST_NOTES);
        return;
    }
    ev->header.kind = KT_EVENT_NOTE;
    ev->header.size = sizeof *ev;
    ev->header.time = bpf_ktime_get_ns();
    current_ids(&ev->task);
    __u32 n = clamp(len, KT_LINE_MAX);
    ev->len = 0;
    if (n && bpf_probe_read_user(ev->text, n, buf) == 0) ev->len = n;
    bpf_ringbuf_submit(ev, wakeup_flag());
}

// Starts recording system call `nr` of the current thread (the registers as it entered) when it is one the engine
// records: socket(2), socketpair(2), or a call on a socket descriptor. `start`: when it entered the kernel.
static __always_inline void begin_call(
    struct kt_task_state *st, struct task_struct *task, struct pt_regs *regs, long nr, __u64 start) {
    int fd = (int)regs->di;
    struct sock *sk = 0;
    __u64 inode = 0;
    if (nr == NR_socket || nr == NR_socketpair) {
        fd = -1;
    } else if (takes_socket_fd(nr)) {
        if (nr == NR_fcntl) {
            long cmd = (long)regs->si;
            if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) return;  // only these change the descriptor table
        }
        sk = sock_of(file_of(task, fd), &inode);
        if (!sk) return;  // a file, pipe or terminal: not recorded
    } else {
        return;
    }
    if (st->call_id && st->restarting) {
        // The previous socket call returned a restart code (a signal interrupted it): the kernel runs the same
        // call again, or the program saw EINTR and makes it again (Python does): one call, from the first attempt,
        // as the ptrace engine records it. Any other socket call means the program saw EINTR. The calls between
        // (rt_sigreturn, the handler's own) are not socket calls and change nothing.
        if (nr == st->nr && fd == st->fd) {
            st->restarting = 0;
            return;
        }
        kt_emit_call(st, -EINTR, KT_CALL_UNFINISHED);
    }
    st->call_id = __sync_fetch_and_add(&kt_globals.next_call_id, 1) + 1;
    st->start = start;
    st->nr = (int)nr;
    st->fd = fd;
    st->args[0] = regs->di;
    st->args[1] = regs->si;
    st->args[2] = regs->dx;
    st->args[3] = regs->r10;
    st->args[4] = regs->r8;
    st->args[5] = regs->r9;
    __builtin_memset(&st->socket, 0, sizeof st->socket);
    st->has_socket = sk != 0;
    st->state_before = 0;
    st->restarting = 0;
    if (sk) {
        st->socket.sock = (__u64)sk;
        st->socket.inode = inode;
        if (nr == NR_close) {
            describe(sk, &st->socket);  // its ports may be released by the time close returns
            st->state_before = st->socket.state;
        } else {
            st->state_before = BPF_CORE_READ(sk, __sk_common.skc_state);  // the rest is read at the exit
        }
        // Before the call runs: its packets (connect's SYN) name the socket, and the peer's answer its endpoint.
        remember_socket((__u64)sk);
    }
}

SEC("tp_btf/sys_enter")
int kt_sys_enter(unsigned long long *ctx) {
    struct task_struct *task = bpf_get_current_task_btf();
    struct kt_task_state *st = bpf_task_storage_get(&kt_tasks, task, 0, 0);
    if (!st) return 0;  // the common case: a task nobody traces
    struct pt_regs *regs = (struct pt_regs *)ctx[0];
    long nr = (long)ctx[1];
    st->joining = 0;  // an entry seen: every exit from now on has its entry
    if (kt_config.has_note_fd && nr == NR_write && (int)regs->di == kt_config.note_fd) {
        hook_note(st, regs);
        return 0;
    }
    begin_call(st, task, regs, nr, bpf_ktime_get_ns());
    return 0;
}

SEC("tp_btf/sys_exit")
int kt_sys_exit(unsigned long long *ctx) {
    struct task_struct *task = bpf_get_current_task_btf();
    struct kt_task_state *st = bpf_task_storage_get(&kt_tasks, task, 0, 0);
    if (!st) return 0;
    if (st->joining) {
        // Registered (attach) while inside this call, which entered before anyone watched: recorded from the
        // registers, which still hold its number and arguments, as having started at the registration.
        st->joining = 0;
        struct pt_regs *regs = (struct pt_regs *)ctx[0];
        if (!st->call_id) begin_call(st, task, regs, (long)regs->orig_ax, st->start);
    }
    if (!st->call_id || st->restarting) return 0;
    long ret = (long)ctx[1];
    if (is_restart(ret)) {
        st->restarting = 1;  // kept in flight: see begin_call
        return 0;
    }
    kt_emit_call(st, ret, 0);
    return 0;
}

SEC("raw_tp/softirq_entry")
int kt_softirq_entry(unsigned long long *ctx) {
    __u32 zero = 0;
    __u32 *vec = bpf_map_lookup_elem(&kt_softirq, &zero);
    if (vec) *vec = (__u32)ctx[0] + 1;
    return 0;
}

SEC("raw_tp/softirq_exit")
int kt_softirq_exit(unsigned long long *ctx) {
    __u32 zero = 0;
    __u32 *vec = bpf_map_lookup_elem(&kt_softirq, &zero);
    if (vec) *vec = 0;
    return 0;
}

static __always_inline int endpoint_known(const __u8 *addr, int family, __u16 port, __u8 proto) {
    struct kt_endpoint key = {};
    key.port = port;
    key.proto = proto;
    key.family = family;
    __builtin_memcpy(key.addr, addr, 16);
    if (bpf_map_lookup_elem(&kt_endpoints, &key)) return 1;
    __builtin_memset(key.addr, 0, 16);
    key.family = 0;
    return bpf_map_lookup_elem(&kt_endpoints, &key) != 0;
}

// Reads the IP and TCP/UDP headers of an outgoing packet into `p`. Locally built packets have their headers in
// the linear part, at skb->head + skb->network_header (`nh`); `data` is skb->data. Global, as kt_emit_call, so
// the verifier walks its branches once, not again along each path of net_dev_queue (the skb's fields come in as
// numbers: a global function cannot take the typed pointer).
__attribute__((noinline)) int kt_read_headers(struct kt_packet *p, __u64 head, __u64 data, __u32 nh) {
    if (!p || !head || nh == 0xffff) return 0;
    __u8 ip[40];
    __u32 l4 = 0;
    __u32 l3_payload = 0;
    // What follows the network header in the skb, for packets whose IP length field is 0 (BIG TCP).
    __u32 beyond_nh = p->skb_len - (__u32)(head + nh - data);
    if (p->ether_type == ETH_P_IP) {
        if (bpf_probe_read_kernel(ip, 20, (void *)(head + nh)) != 0 || ip[0] >> 4 != 4) {
            count(KT_UNREADABLE_HEADERS);
            return 0;
        }
        __u32 ihl = (ip[0] & 0xf) * 4;
        __u32 total = (__u32)ip[2] << 8 | ip[3];
        if (total == 0) total = beyond_nh;
        p->ip_id = (__u16)ip[4] << 8 | ip[5];
        p->ip_proto = ip[9];
        __builtin_memcpy(p->saddr, &ip[12], 4);
        __builtin_memcpy(p->daddr, &ip[16], 4);
        p->flags |= KT_PACKET_IP;
        if ((((__u16)ip[6] << 8 | ip[7]) & 0x1fff) != 0 || ihl < 20 || total < ihl) return 0;  // a later fragment
        l4 = nh + ihl;
        l3_payload = total - ihl;
    } else if (p->ether_type == ETH_P_IPV6) {
        if (bpf_probe_read_kernel(ip, 40, (void *)(head + nh)) != 0 || ip[0] >> 4 != 6) {
            count(KT_UNREADABLE_HEADERS);
            return 0;
        }
        __u32 payload = (__u32)ip[4] << 8 | ip[5];
        if (payload == 0 && beyond_nh > 40) payload = beyond_nh - 40;
        p->ip_proto = ip[6];  // extension headers are not followed: such packets are keyed without ports
        __builtin_memcpy(p->saddr, &ip[8], 16);
        __builtin_memcpy(p->daddr, &ip[24], 16);
        p->flags |= KT_PACKET_IP;
        l4 = nh + 40;
        l3_payload = payload;
    } else {
        return 0;
    }
    __u8 t[20];
    if (p->ip_proto == IPPROTO_TCP) {
        if (bpf_probe_read_kernel(t, 20, (void *)(head + l4)) != 0) {
            count(KT_UNREADABLE_HEADERS);
            return 0;
        }
        __u32 doff = (t[12] >> 4) * 4;
        p->sport = (__u16)t[0] << 8 | t[1];
        p->dport = (__u16)t[2] << 8 | t[3];
        p->seq = (__u32)t[4] << 24 | (__u32)t[5] << 16 | (__u32)t[6] << 8 | t[7];
        p->ack = (__u32)t[8] << 24 | (__u32)t[9] << 16 | (__u32)t[10] << 8 | t[11];
        p->tcp_flags = t[13];
        p->window = (__u16)t[14] << 8 | t[15];
        p->payload_len = l3_payload > doff ? l3_payload - doff : 0;
        p->flags |= KT_PACKET_TRANSPORT;
    } else if (p->ip_proto == IPPROTO_UDP) {
        if (bpf_probe_read_kernel(t, 8, (void *)(head + l4)) != 0) {
            count(KT_UNREADABLE_HEADERS);
            return 0;
        }
        p->sport = (__u16)t[0] << 8 | t[1];
        p->dport = (__u16)t[2] << 8 | t[3];
        p->payload_len = l3_payload > 8 ? l3_payload - 8 : 0;
        p->flags |= KT_PACKET_TRANSPORT;
    } else {
        p->payload_len = l3_payload;
    }
    return 0;
}

SEC("tp_btf/net_dev_queue")
int kt_net_dev_queue(unsigned long long *ctx) {
    struct sk_buff *skb = (struct sk_buff *)ctx[0];
    struct task_struct *task = bpf_get_current_task_btf();
    struct kt_task_state *st = bpf_task_storage_get(&kt_tasks, task, 0, 0);
    struct kt_packet p = {};
    struct sock *sk = BPF_CORE_READ(skb, sk);
    __u64 sock = (__u64)sk;
    p.skb_len = skb->len;
    p.ether_type = bpf_ntohs(skb->protocol);
    // head and data through a helper: loaded directly they are pointers, which a global function cannot take.
    kt_read_headers(&p, (__u64)BPF_CORE_READ(skb, head), (__u64)BPF_CORE_READ(skb, data), skb->network_header);

    int own = sock && bpf_map_lookup_elem(&kt_sockets, &sock);
    int wanted = st || own;
    if (!wanted && (p.flags & KT_PACKET_TRANSPORT)) {
        int family = p.ether_type == ETH_P_IP ? 4 : 6;
        wanted = endpoint_known(p.saddr, family, p.sport, p.ip_proto) ||
                 endpoint_known(p.daddr, family, p.dport, p.ip_proto);
    }
    if (!wanted) return 0;
    if (own && (p.flags & KT_PACKET_TRANSPORT) && (p.ip_proto == IPPROTO_TCP || p.ip_proto == IPPROTO_UDP)) {
        // The local end of a traced socket seen on the wire (a client's port is chosen at connect or first send).
        struct kt_socket s = {};
        s.family = p.ether_type == ETH_P_IP ? AF_INET : AF_INET6;
        s.protocol = p.ip_proto;
        s.local_port = p.sport;
        __builtin_memcpy(s.local_addr, p.saddr, 16);
        kt_remember_endpoint(&s);
    }

    p.header.kind = KT_EVENT_PACKET;
    p.header.size = sizeof p;
    p.header.time = bpf_ktime_get_ns();
    current_ids(&p.task);
    p.sock = sock;
    if (sk) {
        p.sock_state = BPF_CORE_READ(sk, __sk_common.skc_state);
        // Request and timewait socks (TCP_NEW_SYN_RECV, TCP_TIME_WAIT) are not full sockets: no sk_socket.
        if (p.sock_state != 12 && p.sock_state != 6) p.inode = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
    }
    p.ifindex = BPF_CORE_READ(skb, dev, ifindex);
    __u32 zero = 0;
    __u32 *vec = bpf_map_lookup_elem(&kt_softirq, &zero);
    p.softirq = vec ? (__u8)*vec : 0;
    p.syscall = -1;
    if (st) {
        p.flags |= KT_PACKET_TRACED;
        // A call interrupted by a signal, kept in case it is restarted, is not running now.
        p.call_id = st->restarting ? 0 : st->call_id;
        p.call_sock = p.call_id ? st->socket.sock : 0;
        p.last_call_id = st->last_call_id;
        if (!p.softirq) {
            // Outside a recorded call: which system call was it (exit_group for a FIN at exit, a file read...)?
            struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
            if (regs) p.syscall = (int)regs->orig_ax;
        }
    }
    if (task->flags & PF_EXITING) p.flags |= KT_PACKET_EXITING;
    struct kt_packet *out = bpf_ringbuf_reserve(&kt_events, sizeof *out, 0);
    if (!out) {
        count(KT_LOST_PACKETS);
        return 0;
    }
    __builtin_memcpy(out, &p, sizeof p);
    bpf_ringbuf_submit(out, wakeup_flag());
    return 0;
}

static __always_inline void emit_task(__u32 what, struct task_struct *child, int exit_code, int group_dead) {
    struct kt_task_event *ev = bpf_ringbuf_reserve(&kt_events, sizeof *ev, 0);
    if (!ev) {
        count(KT_LOST_TASKS);
        return;
    }
    __builtin_memset(ev, 0, sizeof *ev);
    ev->header.kind = KT_EVENT_TASK;
    ev->header.size = sizeof *ev;
    ev->header.time = bpf_ktime_get_ns();
    current_ids(&ev->task);
    ev->what = what;
    if (child) {
        ev->child_kernel_tid = BPF_CORE_READ(child, pid);
        ev->child_kernel_pid = BPF_CORE_READ(child, tgid);
    }
    ev->exit_code = exit_code;
    ev->group_dead = group_dead;
    bpf_ringbuf_submit(ev, wakeup_flag());
}

// Children of traced tasks are traced: before the child first runs (the tracepoint comes before it is woken).
SEC("tp_btf/sched_process_fork")
int kt_sched_process_fork(unsigned long long *ctx) {
    struct task_struct *parent = (struct task_struct *)ctx[0];
    struct task_struct *child = (struct task_struct *)ctx[1];
    struct kt_task_state *ps = bpf_task_storage_get(&kt_tasks, parent, 0, 0);
    if (!ps) return 0;
    struct kt_task_state *cs = bpf_task_storage_get(&kt_tasks, child, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!cs) {
        count(KT_LOST_TASKS);
        return 0;
    }
    if (BPF_CORE_READ(child, pid) == BPF_CORE_READ(child, tgid)) {
        // A new process: its thread is a copy of the forking one, the hook's buffer included (a new thread gets
        // its own buffer, announced at its first socket method).
        cs->note_addr = ps->note_addr;
        cs->counted = 1;
        __sync_fetch_and_add(&kt_globals.live_processes, 1);
    }
    emit_task(KT_TASK_FORK, child, 0, 0);
    return 0;
}

SEC("raw_tp/sched_process_exec")
int kt_sched_process_exec(unsigned long long *ctx) {
    struct task_struct *task = bpf_get_current_task_btf();
    struct kt_task_state *st = bpf_task_storage_get(&kt_tasks, task, 0, 0);
    if (!st) return 0;
    st->note_addr = 0;  // a new program: the old buffer address means nothing now
    emit_task(KT_TASK_EXEC, 0, 0, 0);
    return 0;
}

SEC("raw_tp/sched_process_exit")
int kt_sched_process_exit(unsigned long long *ctx) {
    struct task_struct *task = bpf_get_current_task_btf();
    struct kt_task_state *st = bpf_task_storage_get(&kt_tasks, task, 0, 0);
    if (!st) return 0;
    if (st->call_id) kt_emit_call(st, -EINTR, KT_CALL_UNFINISHED);  // died inside a call: kept, with no result
    // The tracepoint runs after the thread left the group's live count: 0 means the whole process is gone.
    int group_dead = BPF_CORE_READ(task, signal, live.counter) == 0;
    if (group_dead) {
        struct task_struct *leader = task->group_leader;  // a direct read: the verifier trusts it (RCU)
        struct kt_task_state *ls = leader ? bpf_task_storage_get(&kt_tasks, leader, 0, 0) : 0;
        if (ls && ls->counted) {
            ls->counted = 0;
            __sync_fetch_and_sub(&kt_globals.live_processes, 1);
        }
    }
    emit_task(KT_TASK_EXIT, 0, BPF_CORE_READ(task, exit_code), group_dead);
    return 0;
}
