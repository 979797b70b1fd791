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

/// Constants of <poll.h>, <netinet/tcp.h>, <sys/wait.h>, <fcntl.h> and <sched.h> that need _GNU_SOURCE.
extern const short csys_POLLRDHUP;
extern const int csys_TCP_INFO;
extern const int csys_TCP_QUICKACK;
extern const int csys_WALL;
extern const int csys_F_DUPFD_CLOEXEC;
extern const int csys_CLONE_NEWNET;

#endif
