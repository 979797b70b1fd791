#define _GNU_SOURCE
#include "CTraceShims.h"

#include <errno.h>
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

long ctrace_read_memory(pid_t pid, uintptr_t address, void *buffer, size_t length) {
    struct iovec local = {buffer, length};
    struct iovec remote = {(void *)address, length};
    return (long)process_vm_readv(pid, &local, 1, &remote, 1, 0);
}

int ctrace_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int ctrace_pidfd_getfd(int pidfd, int fd) { return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0); }

static int install_filter(const int *syscalls, int count) {
#if defined(__x86_64__)
    // [arch check] [load nr] [one JEQ per traced call] [ALLOW] [TRACE]
    enum { max_calls = 64 };
    if (count > max_calls) { errno = E2BIG; return -1; }
    struct sock_filter prog[4 + max_calls + 3];
    int n = 0;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    // Another architecture's call numbers mean something else: let them through untraced.
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 0; i < count; i++) {
        // Jump forward to the TRACE return, which sits after the remaining JEQs and the ALLOW.
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)syscalls[i],
                                                 (unsigned char)(count - i), 0);
    }
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);
    struct sock_fprog fprog = {(unsigned short)n, prog};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) == 0) return 0;
    // Without CAP_SYS_ADMIN the kernel insists on no_new_privs first.
    if (errno != EACCES) return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog);
#else
    (void)syscalls; (void)count;
    errno = ENOSYS;
    return -1;
#endif
}

pid_t ctrace_spawn_traced(const char *file, char *const argv[], char *const envp[], const int *syscalls,
                          int syscall_count) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    // Child: only async-signal-safe calls until exec.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) _exit(126);
    // The parent sets PTRACE_O_TRACESECCOMP while we are stopped; a RET_TRACE before that would fail with ENOSYS.
    raise(SIGSTOP);
    if (syscall_count > 0 && install_filter(syscalls, syscall_count) != 0) {
        static const char msg[] = "packetflow: cannot install the seccomp filter\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(126);
    }
    execvpe(file, argv, envp);
    int e = errno;
    static const char pre[] = "packetflow: cannot run ";
    (void)!write(2, pre, sizeof pre - 1);
    (void)!write(2, file, strlen(file));
    static const char post[] = ": ";
    (void)!write(2, post, sizeof post - 1);
    const char *why = strerror(e);
    (void)!write(2, why, strlen(why));
    (void)!write(2, "\n", 1);
    _exit(e == ENOENT ? 127 : 126);
}
