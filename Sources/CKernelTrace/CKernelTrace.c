#define _GNU_SOURCE
#include "CKernelTrace.h"

#include <CSystem.h>

#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

// The Swift side decodes these records by their C layout; the BPF side writes them. A change in one struct that
// breaks the other shows here at compile time.
_Static_assert(sizeof(struct kt_header) == 16, "kt_header");
_Static_assert(sizeof(struct kt_socket) % 8 == 0, "kt_socket is copied whole between task state and records");
_Static_assert(offsetof(struct kt_call_event, line) == sizeof(struct kt_call), "the line follows the call record");
_Static_assert(sizeof(struct kt_config) == 32, "kt_config is the program's whole .rodata");

pid_t kt_spawn_gated(const char *file, char *const argv[], char *const envp[], int *release_fd) {
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) != 0) return -1;
    csys_exec_report report;
    csys_prepare_exec_report(&report);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(gate[0]);
        close(gate[1]);
        errno = e;
        return -1;
    }
    if (pid > 0) {
        close(gate[0]);
        *release_fd = gate[1];
        return pid;
    }
    // Child: only async-signal-safe calls until exec.
    close(gate[1]);
    csys_child_default_signals();
    char go = 0;
    ssize_t n;
    do {
        n = read(gate[0], &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125);  // the tracer could not register us: run nothing untraced
    execvpe(file, argv, envp);
    csys_exec_failed(&report, file, errno);
}


int kt_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int kt_epoll_add(int epfd, int fd, int edge) {
    struct epoll_event event = {.events = EPOLLIN | (edge ? EPOLLET : 0), .data.fd = fd};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int kt_epoll_remove(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int kt_epoll_wait(int epfd, int timeout_ms) {
    struct epoll_event events[4];
    return epoll_wait(epfd, events, 4, timeout_ms);
}

// libbpf's print callback takes a va_list, which Swift cannot format.
static pthread_mutex_t messages_lock = PTHREAD_MUTEX_INITIALIZER;
static char messages[65536];
static size_t messages_length;

static int collect(enum libbpf_print_level level, const char *format, va_list args) {
    if (level == LIBBPF_DEBUG) return 0;
    char line[4096];
    int n = vsnprintf(line, sizeof line, format, args);
    if (n <= 0) return 0;
    size_t length = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    pthread_mutex_lock(&messages_lock);
    if (messages_length + length >= sizeof messages) {
        // Keep the end: a verifier log's last lines say why a program was refused.
        size_t drop = messages_length + length - sizeof messages + 1;
        if (drop > messages_length) drop = messages_length;
        memmove(messages, messages + drop, messages_length - drop);
        messages_length -= drop;
    }
    if (length < sizeof messages) {
        memcpy(messages + messages_length, line, length);
        messages_length += length;
    }
    pthread_mutex_unlock(&messages_lock);
    return n;
}

void kt_libbpf_capture_messages(void) { libbpf_set_print(collect); }

size_t kt_libbpf_take_messages(char *out, size_t size) {
    if (size == 0) return 0;
    pthread_mutex_lock(&messages_lock);
    size_t n = messages_length < size - 1 ? messages_length : size - 1;
    memcpy(out, messages + messages_length - n, n);
    out[n] = 0;
    messages_length = 0;
    pthread_mutex_unlock(&messages_lock);
    return n;
}
