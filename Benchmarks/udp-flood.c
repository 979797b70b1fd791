/*
 * udp-flood: a bounded UDP sender for the capture benchmark (Benchmarks/bench-capture.sh).
 *
 *   udp-flood -p PORT [-a 127.0.0.1] [-s 64] [-n COUNT] [-t SECONDS] [-r RATE]
 *
 * Sends SIZE-byte datagrams to ADDR:PORT with one send(2) per datagram, as an ordinary program does, until COUNT
 * are sent or SECONDS have passed, whichever comes first: it always stops by itself. RATE (datagrams per second)
 * paces the sender; 0 sends as fast as one thread can. It binds a receiving socket on the port itself
 * (SO_REUSEPORT, so several senders can run at once) and never reads it: the kernel discards what does not fit,
 * and no ICMP port-unreachable is sent back to disturb the measurement.
 *
 * Prints one line: "sent N seconds S rate R" (R in datagrams per second, as achieved).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void) {
    fprintf(stderr, "usage: udp-flood -p PORT [-a ADDR] [-s SIZE] [-n COUNT] [-t SECONDS] [-r RATE]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *addr = "127.0.0.1";
    long port = 0, size = 64, count = 1000000, rate = 0;
    double seconds = 3;
    int opt;
    while ((opt = getopt(argc, argv, "a:p:s:n:t:r:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = strtol(optarg, NULL, 10); break;
        case 's': size = strtol(optarg, NULL, 10); break;
        case 'n': count = strtol(optarg, NULL, 10); break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 'r': rate = strtol(optarg, NULL, 10); break;
        default: usage();
        }
    }
    /* Both limits are required to be finite: the benchmark must end by itself. */
    if (port <= 0 || port > 65535 || size < 0 || size > 65000 || count <= 0 || seconds <= 0 || seconds > 600
        || rate < 0)
        usage();

    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (inet_pton(AF_INET, addr, &to.sin_addr) != 1) usage();

    int sink = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    if (sink < 0 || setsockopt(sink, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0
        || bind(sink, (struct sockaddr *)&to, sizeof to) < 0) {
        perror("udp-flood: sink");
        return 1;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&to, sizeof to) < 0) {
        perror("udp-flood: connect");
        return 1;
    }
    char *payload = calloc(1, (size_t)size + 1);
    memset(payload, 'x', (size_t)size);

    /* Paced: check the clock every `batch` datagrams and sleep until the batch's due time; a batch of 1/1000 s of
     * traffic keeps the rate even without a wake-up per datagram. */
    long batch = rate > 0 ? (rate / 1000 > 0 ? rate / 1000 : 1) : 256;
    long sent = 0;
    double start = now(), end = start + seconds, t = start;
    while (sent < count && t < end) {
        long n = batch < count - sent ? batch : count - sent;
        for (long i = 0; i < n; i++) {
            if (send(s, payload, (size_t)size, 0) < 0) {
                /* A full queue or a transient error: that datagram was not sent, and is not counted. */
                if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED) continue;
                perror("udp-flood: send");
                return 1;
            }
            sent++;
        }
        t = now();
        if (rate > 0) {
            double due = start + (double)sent / (double)rate;
            if (due > t) {
                struct timespec d = {.tv_sec = (time_t)(due - t), .tv_nsec = (long)((due - t - (time_t)(due - t)) * 1e9)};
                while (nanosleep(&d, &d) != 0 && errno == EINTR) {}
                t = now();
            }
        }
    }
    double elapsed = now() - start;
    printf("sent %ld seconds %.3f rate %.0f\n", sent, elapsed, (double)sent / elapsed);
    return 0;
}
