// CSystem: the GNU and Linux-only calls and constants the whole package uses. Swift's Glibc module is built without
// _GNU_SOURCE, so it imports none of these; this target compiles with it and passes them through unchanged. Every
// symbol is prefixed `csys_`; what the tracer and the eBPF loader need beyond this is in their own shims.
#ifndef CSYSTEM_H
#define CSYSTEM_H

#include <sys/socket.h>
#include <sys/types.h>

/// `accept4(2)`: the new descriptor close-on-exec from birth.
int csys_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);
/// `pipe2(2)`.
int csys_pipe2(int fds[2], int flags);
/// `setns(2)`, `unshare(2)`: network namespaces for the lab.
int csys_setns(int fd, int type);
int csys_unshare(int flags);
/// `pidfd_open(2)` (no glibc wrapper in Debian 12; `syscall(2)` is variadic). `thread`: PIDFD_THREAD (Linux 6.9+).
int csys_pidfd_open(pid_t pid, int thread);
/// `pidfd_getfd(2)`: a duplicate, in this process, of descriptor `fd` of the process `pidfd` names.
int csys_pidfd_getfd(int pidfd, int fd);
/// `strerrordesc_np(3)`: the text of an errno value, from a constant table (thread-safe, no locale), or NULL.
const char *csys_errno_text(int error);

/// What a forked child needs to say why its exec failed without calling anything unsafe between fork and exec:
/// strerror translates through the locale and may allocate, so the texts are looked up before the fork, in
/// glibc's untranslated table (the words strerror gives in the C locale). Linux's errno values end below 256.
typedef struct csys_exec_report {
    const char *texts[256];
} csys_exec_report;

/// Fills `report`; call it before fork(2).
void csys_prepare_exec_report(csys_exec_report *report);

/// In the forked child: every signal unblocked, SIGINT, SIGTERM and SIGPIPE back to their defaults (the parent
/// may ignore or catch them; the program must not inherit that). Async-signal-safe.
void csys_child_default_signals(void);

/// In the forked child after execvpe(3) failed with `error`: writes "packetflow: cannot run FILE: TEXT" to stderr
/// and exits as a shell does, 127 for a command not found, 126 otherwise. Async-signal-safe.
__attribute__((noreturn)) void csys_exec_failed(const csys_exec_report *report, const char *file, int error);

/// Constants of <poll.h> and <sched.h> that need _GNU_SOURCE (Swift's Glibc does not define it).
extern const short csys_POLLRDHUP;
extern const int csys_CLONE_NEWNET;
/// <linux/netlink.h>'s protocols: routing (to bring a namespace's lo up) and socket diagnostics (sock_diag).
extern const int csys_NETLINK_ROUTE;
extern const int csys_NETLINK_SOCK_DIAG;

#endif
