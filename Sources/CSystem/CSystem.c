#define _GNU_SOURCE
#include "CSystem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
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

void csys_prepare_exec_report(csys_exec_report *report) {
    for (int e = 0; e < 256; e++) report->texts[e] = strerrordesc_np(e);
}

void csys_child_default_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
}

static void write_text(const char *text) { (void)!write(2, text, strlen(text)); }

static void write_decimal(int n) {
    char digits[12];
    int at = (int)sizeof digits;
    unsigned v = n < 0 ? 0u - (unsigned)n : (unsigned)n;
    do digits[--at] = (char)('0' + v % 10); while ((v /= 10) != 0);
    if (n < 0) digits[--at] = '-';
    (void)!write(2, digits + at, sizeof digits - (size_t)at);
}

void csys_exec_failed(const csys_exec_report *report, const char *file, int error) {
    write_text("packetflow: cannot run ");
    write_text(file);
    write_text(": ");
    const char *why = error >= 0 && error < 256 ? report->texts[error] : NULL;
    if (why) {
        write_text(why);
    } else {
        write_text("Unknown error ");
        write_decimal(error);
    }
    write_text("\n");
    _exit(error == ENOENT ? 127 : 126);
}

const short csys_POLLRDHUP = POLLRDHUP;
const int csys_CLONE_NEWNET = CLONE_NEWNET;
const int csys_NETLINK_ROUTE = NETLINK_ROUTE;
const int csys_NETLINK_SOCK_DIAG = NETLINK_SOCK_DIAG;
