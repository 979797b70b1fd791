// CKernelTrace: the record layouts shared with the BPF program (KernelTraceEvents.h), and the few calls the eBPF
// engine's loader cannot make from Swift. Every symbol is prefixed `kt_`.
#ifndef CKERNELTRACE_H
#define CKERNELTRACE_H

#include <stddef.h>
#include <sys/types.h>

#include "KernelTraceEvents.h"

/// fork + exec for a launch that the BPF program must follow from its first instruction: the child unblocks every
/// signal and waits on a pipe until the parent has registered it (by pidfd) with the program, then execvpe()s.
/// `*release_fd` is the pipe's write end: write one byte to let the child run the command, or close it unwritten
/// to make the child exit with status 125 without running anything. Returns the child's pid or -1 (errno).
/// fork is not safe to call from Swift in a multithreaded process; between fork and exec only async-signal-safe
/// calls are made.
pid_t kt_spawn_gated(const char *file, char *const argv[], char *const envp[], int *release_fd);

/// An epoll set (close-on-exec), `fd` added to it for readability (`edge`: edge-triggered, reported once per
/// wake-up instead of as long as it is readable) or removed, and a wait that returns how many are ready (0 after
/// `timeout_ms`, -1 and errno on error). sys/epoll.h is not in Swift's Glibc module.
int kt_epoll_create(void);
int kt_epoll_add(int epfd, int fd, int edge);
int kt_epoll_remove(int epfd, int fd);
int kt_epoll_wait(int epfd, int timeout_ms);

/// Sends libbpf's messages (warnings, a refused program's verifier log) to a buffer instead of stderr: the loader
/// turns them into one line for the user. Thread-safe; the buffer keeps the last 64 KiB.
void kt_libbpf_capture_messages(void);
/// Copies the messages collected since the last call into `out` (NUL-terminated) and forgets them; returns the
/// length copied.
size_t kt_libbpf_take_messages(char *out, size_t size);

#endif
