// CTraceShims: the few calls the tracer needs that Swift cannot make directly. Everything else (waitpid, kill,
// getsockname, readlink) is called from Swift. Every symbol is prefixed `ctrace_`.
#ifndef CTRACESHIMS_H
#define CTRACESHIMS_H

#include <stdint.h>
#include <sys/types.h>

/// The x86_64 registers the tracer reads at a system call stop, copied out of `struct user_regs_struct` so Swift
/// never sees the architecture-specific layout.
typedef struct ctrace_regs {
    uint64_t orig_rax;  // system call number
    uint64_t rdi, rsi, rdx, r10, r8, r9;  // arguments 1..6
    uint64_t rax;  // return value at the exit stop (-ENOSYS at the entry stop)
} ctrace_regs;

/// 1 when built for x86_64 (the only layout the tracer decodes), else 0.
int ctrace_supported_architecture(void);

/// `ptrace(2)` is variadic in glibc, which Swift cannot call.
long ctrace_ptrace(int request, pid_t pid, uintptr_t addr, uintptr_t data);

/// PTRACE_GETREGS into the portable struct; -1 with errno ENOSYS on other architectures.
int ctrace_get_regs(pid_t pid, ctrace_regs *out);

/// Turns the pending system call into "no call" (orig_rax = -1) returning `result`: used to swallow the Python
/// hook's note writes so they never reach a real descriptor.
int ctrace_skip_syscall(pid_t pid, int64_t result);

/// Reads a tracee's memory: `process_vm_readv(2)` (which needs _GNU_SOURCE, not defined by Swift's Glibc module),
/// or where a seccomp profile or the kernel refuses it, /proc/PID/mem, or PTRACE_PEEKDATA. Returns bytes read
/// (fewer when the range runs into unmapped memory) or -1.
long ctrace_read_memory(pid_t pid, uintptr_t address, void *buffer, size_t length);

/// A thread's whole register set (`struct user_regs_struct`), opaque to Swift, kept while a call is injected.
typedef struct ctrace_saved_regs {
    uint64_t words[32];
} ctrace_saved_regs;

/// At a syscall-exit-stop of `tid`: saves its registers into `saved`, writes a seccomp filter that traces the
/// `gated` calls when their first argument is one of `fds` below the thread's stack pointer, and rewinds the
/// thread onto its `syscall` instruction as seccomp(SECCOMP_SET_MODE_FILTER, TSYNC, filter). The tracer resumes
/// it with PTRACE_SYSCALL through the injected call's entry and exit stops, then puts `saved` back with
/// ctrace_restore_regs, so the program sees its original call's result. -1 with errno when it cannot be done
/// (the thread then continues untouched). BPF macros and the register layout are not usable from Swift.
int ctrace_inject_filter(pid_t tid, const int *gated, int gated_count, const int *fds, int fd_count,
                         ctrace_saved_regs *saved);
int ctrace_restore_regs(pid_t tid, const ctrace_saved_regs *saved);

/// `tgkill(2)`: Swift's Glibc module does not export glibc's wrapper. Sends `sig` to one thread.
int ctrace_tgkill(pid_t tgid, pid_t tid, int sig);

/// fork + exec for tracing: the child unblocks every signal (it may inherit a blocked mask), asks to be traced
/// (PTRACE_TRACEME), stops itself so the parent can set options, then installs a seccomp-bpf filter that returns
/// SECCOMP_RET_TRACE for `syscalls` and SECCOMP_RET_ALLOW for the rest (prctl and the BPF macros are not
/// callable from Swift), and execvp()s. `envp` replaces the environment. Returns the child's pid or -1 (errno).
/// The `gated` calls are traced only when their first argument is one of `fds` (the filter's other calls
/// always). When `syscall_count` is 0 no filter is installed (every call is then traced with PTRACE_SYSCALL).
pid_t ctrace_spawn_traced(const char *file, char *const argv[], char *const envp[], const int *syscalls,
                          int syscall_count, const int *gated, int gated_count, const int *fds, int fd_count);

#endif
