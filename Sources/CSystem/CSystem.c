#define _GNU_SOURCE
#include "CSystem.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#define CSYS_PIDFD_THREAD O_EXCL

int csys_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    return accept4(fd, address, length, flags);
}

int csys_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int csys_setns(int fd, int type) { return setns(fd, type); }

int csys_unshare(int flags) { return unshare(flags); }

int csys_pidfd_open(pid_t pid, int thread) {
    return (int)syscall(SYS_pidfd_open, pid, thread ? CSYS_PIDFD_THREAD : 0);
}

int csys_pidfd_getfd(int pidfd, int fd) { return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0); }

const char *csys_errno_text(int error) { return strerrordesc_np(error); }

const short csys_POLLRDHUP = POLLRDHUP;
const int csys_TCP_INFO = TCP_INFO;
const int csys_TCP_QUICKACK = TCP_QUICKACK;
const int csys_WALL = __WALL;
const int csys_F_DUPFD_CLOEXEC = F_DUPFD_CLOEXEC;
const int csys_CLONE_NEWNET = CLONE_NEWNET;
