// The records the BPF program (bpf/kernel_trace.bpf.c) writes into its ring buffer, and the per-task state it keeps.
// One header for both sides: the BPF program is compiled with `clang -target bpf`, Swift imports it through the
// CKernelTrace module, so the layouts cannot drift apart. It includes nothing (the BPF target has no libc headers):
// the integer types come from the compiler's predefined macros, and 64 bits are `long long` on both targets (Swift
// imports `long` as Int, not Int64). Every symbol is prefixed `kt_`/`KT_`.
#ifndef KERNEL_TRACE_EVENTS_H
#define KERNEL_TRACE_EVENTS_H

typedef __UINT8_TYPE__ kt_u8;
typedef __UINT16_TYPE__ kt_u16;
typedef __UINT32_TYPE__ kt_u32;
typedef unsigned long long kt_u64;
typedef __INT32_TYPE__ kt_s32;
typedef long long kt_s64;

#define KT_COMM_LEN 16
/// sockaddr bytes kept for connect/bind/sendto (sockaddr_un is 110 bytes).
#define KT_ADDR_MAX 128
/// Bytes kept of what a write/send moved or a read/recv received (the ptrace engine keeps as many), or of a socket
/// option's value.
#define KT_DATA_MAX 256
/// The Python hook's per-thread buffer (see SyscallTrace's PythonHook): "file:line statement", NUL-terminated.
#define KT_LINE_MAX 1024

enum kt_event_kind {
    KT_EVENT_CALL = 1,
    KT_EVENT_PACKET = 2,
    KT_EVENT_TASK = 3,
    KT_EVENT_NOTE = 4,
};

/// Every record starts so: what it is, its size in the ring (a call's is shorter than the struct when its line
/// is), and when it happened (bpf_ktime_get_ns: CLOCK_MONOTONIC; user space moves it to CLOCK_REALTIME).
struct kt_header {
    kt_u32 kind;
    kt_u32 size;
    kt_u64 time;
};

/// The task the record is about. `pid`/`tid` are in the tracer's pid namespace (what `ps` shows the user);
/// `kernel_pid`/`kernel_tid` in the initial one (what the kernel uses as keys). Equal outside containers.
struct kt_task_ids {
    kt_u32 pid;
    kt_u32 tid;
    kt_u32 kernel_pid;
    kt_u32 kernel_tid;
    char comm[KT_COMM_LEN];
};

/// A socket as `struct sock` says: the pointer identifies it to packets (skb->sk), the inode to /proc and to the
/// ptrace engine (`socket:[inode]`). Addresses in network order (IPv4 in the first 4 bytes), ports in host order.
struct kt_socket {
    kt_u64 sock;
    kt_u64 inode;
    kt_u16 family;
    kt_u16 type;
    kt_u16 protocol;
    kt_u8 state;
    kt_u8 pad;
    kt_u16 local_port;
    kt_u16 remote_port;
    kt_u8 local_addr[16];
    kt_u8 remote_addr[16];
    kt_u32 pad2;
};

/// Call flags.
enum {
    /// The thread died inside the call (or a signal interrupted it and it was not restarted): no real result.
    KT_CALL_UNFINISHED = 1,
    /// `socket` is filled in (the descriptor was a socket, or the call returned one).
    KT_CALL_HAS_SOCKET = 2,
};

/// One socket call of a traced thread, written at its exit. `args` are the six argument registers at entry.
/// What the program's memory held is copied with the address it was read at, so user space decodes the arguments
/// from these bytes as the ptrace engine decodes them from the program's memory (SyscallTrace's SyscallDecoder):
/// `addr` is the sockaddr of connect/bind/sendto, `data` the first bytes moved (write/sendto/read/recvfrom) or a
/// socket option's value, `words` socketpair's two descriptors or getsockopt's returned length. The Python line
/// follows the struct (`line_len` bytes).
struct kt_call {
    struct kt_header header;  // time: the call's end
    struct kt_task_ids task;
    kt_u64 id;  // one counter for every traced call, in the order calls entered the kernel
    kt_u64 start;
    kt_s64 ret;
    kt_u64 args[6];
    kt_s32 nr;
    kt_s32 fd;  // the descriptor argument (-1 for socket/socketpair)
    struct kt_socket socket;  // state and addresses as the call left them (for close: as it found them)
    kt_u8 state_before;
    kt_u8 flags;
    kt_u16 addr_len;
    kt_u16 data_len;
    kt_u16 line_len;
    kt_u32 data_total;  // bytes the call moved or the option's length: data may be shorter
    kt_u16 words_len;  // bytes of `words` read (0, 4 or 8)
    kt_u16 pad;
    kt_u64 addr_from;  // the user addresses `addr`, `data` and `words` were read at (0: nothing read)
    kt_u64 data_from;
    kt_u64 words_from;
    kt_s32 words[2];
    kt_u8 addr[KT_ADDR_MAX];
    kt_u8 data[KT_DATA_MAX];
};

/// A call record as it sits in the BPF program's scratch space; only `header.size` bytes reach the ring.
struct kt_call_event {
    struct kt_call call;
    char line[KT_LINE_MAX];
};

/// Packet flags.
enum {
    /// The current task is traced.
    KT_PACKET_TRACED = 1,
    /// The current task is exiting (descriptors closed by exit: FIN or RST at exit).
    KT_PACKET_EXITING = 2,
    /// The IP header was read (addresses are valid).
    KT_PACKET_IP = 4,
    /// The TCP or UDP header was read (ports, and for TCP seq/ack/flags/window).
    KT_PACKET_TRANSPORT = 8,
};

/// One packet at `net:net_dev_queue` (where libpcap's taps also see outgoing packets), with who was running:
/// the current task (in a softirq, the task it interrupted), the softirq if any, the traced call in flight.
/// The key fields join it with the same packet in a capture: addresses, ports, seq, ack, flags, payload length.
struct kt_packet {
    struct kt_header header;
    struct kt_task_ids task;
    kt_u64 sock;  // skb->sk
    kt_u64 inode;  // its socket's inode when it is a full socket with one (0 for request and timewait socks)
    kt_u64 call_id;  // the traced call the current task is in (0: none)
    kt_u64 call_sock;  // that call's socket
    kt_u64 last_call_id;  // the current task's last finished traced call
    kt_s32 syscall;  // the system call the current task is in (-1: none known)
    kt_u32 ifindex;
    kt_u32 skb_len;
    kt_u32 payload_len;
    kt_u32 seq;
    kt_u32 ack;
    kt_u16 ether_type;  // host order: 0x0800, 0x86dd, ...
    kt_u16 sport;
    kt_u16 dport;
    kt_u16 window;
    kt_u16 ip_id;
    kt_u8 ip_proto;
    kt_u8 tcp_flags;
    kt_u8 softirq;  // the softirq running on this CPU + 1 (NET_RX = 3 + 1, TIMER = 1 + 1); 0: none
    kt_u8 sock_state;
    kt_u8 flags;
    kt_u8 pad;
    kt_u8 saddr[16];
    kt_u8 daddr[16];
};

enum kt_task_what {
    KT_TASK_FORK = 1,
    KT_TASK_EXEC = 2,
    KT_TASK_EXIT = 3,
};

/// A traced task forked (`child_*` is the new task, kernel ids), exec'd, or exited (`exit_code` as wait(2) encodes
/// it, `group_dead` when it was the process's last thread).
struct kt_task_event {
    struct kt_header header;
    struct kt_task_ids task;
    kt_u32 what;
    kt_u32 child_kernel_tid;
    kt_u32 child_kernel_pid;
    kt_s32 exit_code;
    kt_u8 group_dead;
    kt_u8 pad[7];
};

/// A note the Python hook wrote without ctypes ("PFN1 file:line" before a socket method, "PFN0" after).
struct kt_note_event {
    struct kt_header header;
    struct kt_task_ids task;
    kt_u32 len;
    kt_u32 pad;
    char text[KT_LINE_MAX];
};

/// Set before load (the program's read-only data): what to recognise and how to name pids.
struct kt_config {
    /// The Python hook's note descriptor (a negative number never open); `has_note_fd` 0 turns notes off.
    kt_s32 note_fd;
    kt_u32 has_note_fd;
    /// dev and inode of the tracer's pid namespace (/proc/self/ns/pid); `translate_pids` 0 when it is the initial
    /// one, so the ids need no translation.
    kt_u64 pidns_dev;
    kt_u64 pidns_ino;
    kt_u32 translate_pids;
    /// Ring buffer bytes pending above which a record wakes the reader (below, it drains on its timer).
    kt_u32 wakeup_bytes;
};

/// Counters the program keeps (its .bss); nothing it drops goes unreported.
enum kt_counter {
    KT_LOST_CALLS = 0,  // ring buffer full
    KT_LOST_PACKETS,
    KT_LOST_TASKS,
    KT_LOST_NOTES,
    KT_UNREADABLE_HEADERS,  // a packet whose headers could not be read
    KT_UNREADABLE_USER,  // user memory (data, address, line) that could not be read
    KT_COUNTER_COUNT,
};

/// The program's writable globals (its .bss map, read by the loader at the end of a run).
struct kt_globals {
    kt_u64 next_call_id;
    /// Processes forked by traced tasks and not yet gone (the launched or attached one is not counted: the loader
    /// watches it itself).
    kt_s64 live_processes;
    kt_u64 counters[KT_COUNTER_COUNT];
};

/// What the program keeps per traced task (a task storage map: it goes away with the task). User space
/// registers a task by creating this with a pidfd as the key; the program creates it for forked children.
struct kt_task_state {
    kt_u64 call_id;  // the call in flight, 0 when none
    kt_u64 start;
    kt_u64 args[6];
    kt_s32 nr;
    kt_s32 fd;
    struct kt_socket socket;
    kt_u8 state_before;
    kt_u8 has_socket;
    /// The call returned a restart code (a signal interrupted it): kept in flight in case the kernel restarts it.
    kt_u8 restarting;
    /// A process counted in the program's live-process count (forked while traced), on its group leader.
    kt_u8 counted;
    /// Registered while it may be inside a call (attach): the first system call exit seen, with no entry seen
    /// before it, is that call's, and is recorded from the registers as it ends (`start`: when it was registered).
    kt_u8 joining;
    kt_u8 pad[3];
    kt_u64 last_call_id;
    /// Where this thread's Python hook keeps its current line (announced with a "PFA <address>" note).
    kt_u64 note_addr;
};

#endif
