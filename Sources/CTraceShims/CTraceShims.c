#define _GNU_SOURCE
#include "CTraceShims.h"

#include <CSystem.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <unistd.h>

int ctrace_supported_architecture(void) {
#if defined(__x86_64__)
    return 1;
#else
    return 0;
#endif
}

long ctrace_ptrace(int request, pid_t pid, uintptr_t addr, uintptr_t data) {
    return ptrace((enum __ptrace_request)request, pid, (void *)addr, (void *)data);
}

int ctrace_get_regs(pid_t pid, ctrace_regs *out) {
#if defined(__x86_64__)
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, pid, NULL, &r) != 0) return -1;
    out->orig_rax = r.orig_rax;
    out->rdi = r.rdi;
    out->rsi = r.rsi;
    out->rdx = r.rdx;
    out->r10 = r.r10;
    out->r8 = r.r8;
    out->r9 = r.r9;
    out->rax = r.rax;
    return 0;
#else
    (void)pid; (void)out;
    errno = ENOSYS;
    return -1;
#endif
}

int ctrace_skip_syscall(pid_t pid, int64_t result) {
#if defined(__x86_64__)
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, pid, NULL, &r) != 0) return -1;
    r.orig_rax = (unsigned long long)-1;
    r.rax = (unsigned long long)result;
    return (int)ptrace(PTRACE_SETREGS, pid, NULL, &r);
#else
    (void)pid; (void)result;
    errno = ENOSYS;
    return -1;
#endif
}

// process_vm_readv/writev are the fast path, but a container's seccomp profile denies them without CAP_SYS_PTRACE
// (Docker's default: EPERM) and a kernel built without CONFIG_CROSS_MEMORY_ATTACH lacks them (ENOSYS). A tracer
// may always use /proc/PID/mem and, failing that, PTRACE_PEEKDATA/POKEDATA one word at a time. Once the fast
// path is refused it is not tried again.
static atomic_int cross_memory_refused = 0;

static int refused(int error) { return error == EPERM || error == ENOSYS || error == EACCES; }

static long proc_mem(pid_t pid, uintptr_t address, void *buffer, size_t length, int write) {
    char path[32];
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    int fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write ? pwrite(fd, buffer, length, (off_t)address) : pread(fd, buffer, length, (off_t)address);
    int e = errno;
    close(fd);
    errno = e;
    return (long)n;
}

static int peek(pid_t pid, uintptr_t at, long *word) {
    errno = 0;
    *word = ptrace(PTRACE_PEEKDATA, pid, (void *)at, NULL);
    return errno == 0 ? 0 : -1;
}

// Word by word from the aligned word holding `address`; a partial first or last word is read, patched and
// written back whole. Stops at the first word that cannot be reached and returns the bytes done (or -1).
static long ptrace_memory(pid_t pid, uintptr_t address, char *buffer, size_t length, int write) {
    size_t done = 0;
    while (done < length) {
        uintptr_t at = (address + done) & ~(uintptr_t)(sizeof(long) - 1);
        size_t offset = (size_t)(address + done - at);
        size_t take = sizeof(long) - offset < length - done ? sizeof(long) - offset : length - done;
        long word = 0;
        if ((!write || take < sizeof(long)) && peek(pid, at, &word) != 0) break;
        if (write) {
            memcpy((char *)&word + offset, buffer + done, take);
            if (ptrace(PTRACE_POKEDATA, pid, (void *)at, (void *)word) != 0) break;
        } else {
            memcpy(buffer + done, (char *)&word + offset, take);
        }
        done += take;
    }
    return done > 0 || length == 0 ? (long)done : -1;
}

static long access_memory(pid_t pid, uintptr_t address, void *buffer, size_t length, int write) {
    if (!atomic_load_explicit(&cross_memory_refused, memory_order_relaxed)) {
        struct iovec local = {buffer, length};
        struct iovec remote = {(void *)address, length};
        ssize_t n = write ? process_vm_writev(pid, &local, 1, &remote, 1, 0)
                          : process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n >= 0 || !refused(errno)) return (long)n;
        atomic_store_explicit(&cross_memory_refused, 1, memory_order_relaxed);
    }
    long n = proc_mem(pid, address, buffer, length, write);
    if (n >= 0) return n;
    return ptrace_memory(pid, address, buffer, length, write);
}

long ctrace_read_memory(pid_t pid, uintptr_t address, void *buffer, size_t length) {
    return access_memory(pid, address, buffer, length, 0);
}

enum { ctrace_max_calls = 48, ctrace_max_fds = 32, ctrace_max_insns = 8 + ctrace_max_calls + ctrace_max_fds };

#if defined(__x86_64__)
// [arch check] [load nr] [JEQ per always-traced call -> TRACE] [JEQ per gated call -> CHECK] [ALLOW]
// CHECK: [load low word of args[0]] [JEQ per fd -> TRACE] [ALLOW]   TRACE: [RET TRACE]
// Stacked seccomp filters all run and the most restrictive answer wins (TRACE beats ALLOW), so a filter added
// later can only add traced calls: that is how descriptors become traced once they turn out to be sockets.
static int build_filter(struct sock_filter *prog, const int *always, int always_count, const int *gated,
                        int gated_count, const int *fds, int fd_count) {
    if (always_count < 0 || gated_count < 0 || fd_count < 0 || always_count + gated_count > ctrace_max_calls ||
        fd_count > ctrace_max_fds) {
        errno = E2BIG;
        return -1;
    }
    if (fd_count == 0) gated_count = 0;
    int check = 4 + always_count + gated_count + 1;  // index of the CHECK block
    int trace = gated_count > 0 ? check + 1 + fd_count + 1 : check;  // index of RET TRACE
    int n = 0;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    // Another architecture's call numbers mean something else: let them through untraced.
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 0; i < always_count; i++, n++)
        prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)always[i],
                                               (unsigned char)(trace - n - 1), 0);
    for (int i = 0; i < gated_count; i++, n++)
        prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)gated[i],
                                               (unsigned char)(check - n - 1), 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    if (gated_count > 0) {
        // Descriptors are ints: the low 32 bits of args[0] (little-endian) are the whole number, -4242 included.
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
        for (int i = 0; i < fd_count; i++, n++)
            prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)fds[i],
                                                   (unsigned char)(trace - n - 1), 0);
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);
    return n;
}
#endif

static int install_filter(const int *always, int always_count, const int *gated, int gated_count, const int *fds,
                          int fd_count) {
#if defined(__x86_64__)
    struct sock_filter prog[ctrace_max_insns];
    int n = build_filter(prog, always, always_count, gated, gated_count, fds, fd_count);
    if (n < 0) return -1;
    struct sock_fprog fprog = {(unsigned short)n, prog};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) == 0) return 0;
    // Without CAP_SYS_ADMIN the kernel insists on no_new_privs first (which also lets the tracer add filters later).
    if (errno != EACCES) return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog);
#else
    (void)always; (void)always_count; (void)gated; (void)gated_count; (void)fds; (void)fd_count;
    errno = ENOSYS;
    return -1;
#endif
}

#if defined(__x86_64__)
_Static_assert(sizeof(struct user_regs_struct) <= sizeof(ctrace_saved_regs), "ctrace_saved_regs too small");
#endif

int ctrace_inject_filter(pid_t tid, const int *gated, int gated_count, const int *fds, int fd_count,
                         ctrace_saved_regs *saved) {
#if defined(__x86_64__)
    struct user_regs_struct r;
    if (ptrace(PTRACE_GETREGS, tid, NULL, &r) != 0) return -1;
    // The instruction before rip must be `syscall` (0f 05): it is executed again, now as seccomp(2).
    unsigned char insn[2];
    if (access_memory(tid, (uintptr_t)(r.rip - 2), insn, 2, 0) != 2 || insn[0] != 0x0f || insn[1] != 0x05) {
        errno = ENOEXEC;
        return -1;
    }
    struct {
        struct sock_fprog fprog;
        struct sock_filter prog[ctrace_max_insns];
    } image;
    int n = build_filter(image.prog, NULL, 0, gated, gated_count, fds, fd_count);
    if (n < 0) return -1;
    // Below the 128-byte red zone of the interrupted code, 16-byte aligned; nothing of the program lives there.
    uintptr_t at = ((uintptr_t)r.rsp - 128 - sizeof image) & ~(uintptr_t)15;
    image.fprog.len = (unsigned short)n;
    image.fprog.filter = (struct sock_filter *)(at + offsetof(__typeof__(image), prog));
    size_t size = offsetof(__typeof__(image), prog) + (size_t)n * sizeof(struct sock_filter);
    if (access_memory(tid, at, &image, size, 1) != (long)size) return -1;
    memcpy(saved, &r, sizeof r);
    struct user_regs_struct call = r;
    call.rip -= 2;
    call.rax = SYS_seccomp;
    call.orig_rax = SYS_seccomp;
    call.rdi = SECCOMP_SET_MODE_FILTER;
    call.rsi = SECCOMP_FILTER_FLAG_TSYNC;  // every thread of the process shares the descriptor table
    call.rdx = at;
    return (int)ptrace(PTRACE_SETREGS, tid, NULL, &call);
#else
    (void)tid; (void)gated; (void)gated_count; (void)fds; (void)fd_count; (void)saved;
    errno = ENOSYS;
    return -1;
#endif
}

int ctrace_restore_regs(pid_t tid, const ctrace_saved_regs *saved) {
#if defined(__x86_64__)
    struct user_regs_struct r;
    memcpy(&r, saved, sizeof r);
    return (int)ptrace(PTRACE_SETREGS, tid, NULL, &r);
#else
    (void)tid; (void)saved;
    errno = ENOSYS;
    return -1;
#endif
}

pid_t ctrace_spawn_traced(const char *file, char *const argv[], char *const envp[], const int *syscalls,
                          int syscall_count, const int *gated, int gated_count, const int *fds, int fd_count) {
    csys_exec_report report;
    csys_prepare_exec_report(&report);
    pid_t pid = fork();
    if (pid != 0) return pid;
    // Child: only async-signal-safe calls until exec.
    csys_child_default_signals();
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) _exit(126);
    // The parent sets PTRACE_O_TRACESECCOMP while we are stopped; a RET_TRACE before that would fail with ENOSYS.
    raise(SIGSTOP);
    if (syscall_count > 0 && install_filter(syscalls, syscall_count, gated, gated_count, fds, fd_count) != 0) {
        static const char msg[] = "packetflow: cannot install the seccomp filter\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(126);
    }
    execvpe(file, argv, envp);
    csys_exec_failed(&report, file, errno);
}

int ctrace_tgkill(pid_t tgid, pid_t tid, int sig) { return (int)syscall(SYS_tgkill, tgid, tid, sig); }
