/*
** contrib/host.c -- a minimal program embedding the olpcidx library.
** MIT licence, see LICENSE.
**
** It shows the whole contract of olpcidx.h on one TCP connection, with its
** own socket and poll() loop and nothing of the daemon (olpcidx.c section
** 18): the library does no I/O and reads no clock, so the host
**
**   - moves bytes: what it reads goes to olpcidx_feed(), what
**     olpcidx_pending() holds is written and acknowledged with
**     olpcidx_sent();
**   - reads only while olpcidx_wants_input() says so (back-pressure);
**   - calls olpcidx_tick() with a monotonic clock and sleeps in poll() no
**     longer than the wait it returns;
**   - ends cleanly with olpcidx_close(), flushing what it queued.
**
** Nothing is persisted (config.storage is NULL) and there is no
** reconnection: on a lost stream it exits; a real host would reconnect
** unless olpcidx_is_fatal() says the server refused the configuration.
**
** Build: make olpcidx-host    (or: cc -I. contrib/host.c olpcidx.o)
** Usage: olpcidx-host [--once | --seconds N] host port domain secret
**   --once        exit as soon as the server accepted the handshake
**   --seconds N   stay online N seconds, then close the stream
**   otherwise     serve until SIGINT or SIGTERM
** Prints "online as DOMAIN" once the handshake succeeded.  Exit status:
** 0 closed as asked, 1 connection or stream lost, 2 usage, 3 refused by
** the server (wrong secret or domain).
*/
#define _POSIX_C_SOURCE 200112L     /* getaddrinfo, poll, sigaction */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "olpcidx.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* The clock handed to olpcidx_connect and olpcidx_tick: monotonic ms. */
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The library's log sink: one line per call, without newline. */
static void log_line(void *ud, int level, const char *msg)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    (void)ud;
    fprintf(stderr, "olpcidx-host: %s: %s\n",
            level >= 0 && level <= OLPCIDX_LOG_DEBUG ? names[level] : "?",
            msg);
}

/* A TCP connection to host:port: a blocking connect, kept short here (a
** real host would connect without blocking), then non-blocking I/O so that
** a slow server never stalls the loop.  Returns the socket or -1. */
static int dial(const char *host, const char *port)
{
    struct addrinfo hints, *res, *ai;
    int fd = -1, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
        fprintf(stderr, "olpcidx-host: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "olpcidx-host: cannot connect to %s:%s: %s\n",
                host, port, strerror(errno));
    else
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Writes what the library queued (after olpcidx_close or a stream error,
** the closing tags), for at most 2 s. */
static void flush(olpcidx *x, int fd)
{
    uint64_t end = now_ms() + 2000;
    struct pollfd p;
    const void *buf;
    size_t n;
    ssize_t w;

    p.fd = fd;
    p.events = POLLOUT;
    while ((n = olpcidx_pending(x, &buf)) > 0 && now_ms() < end)
        if (poll(&p, 1, 100) > 0) {
            if ((w = write(fd, buf, n)) > 0)
                olpcidx_sent(x, (size_t)w);
            else if (errno != EAGAIN && errno != EINTR)
                break;
        }
}

static int usage(void)
{
    fprintf(stderr, "usage: olpcidx-host [--once | --seconds N] "
            "host port domain secret\n");
    return 2;
}

int main(int argc, char **argv)
{
    olpcidx_config cfg;
    olpcidx *x;
    struct sigaction sa;
    struct pollfd p;
    char buf[16384];
    const void *out;
    uint64_t deadline = 0;
    long seconds = -1;          /* -1: until a signal; 0: --once */
    int i = 1, fd, rc, wait = 0, online = 0, closing = 0;
    ssize_t r;
    size_t n;

    for (; i < argc && argv[i][0] == '-'; i++)
        if (strcmp(argv[i], "--once") == 0)
            seconds = 0;
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atol(argv[++i]);
        else
            return usage();
    if (argc - i != 4 || seconds < -1)
        return usage();

    /* SIGPIPE off: a write to a closed socket is an error, not death.  No
    ** SA_RESTART, so that a signal interrupts poll() at once. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    olpcidx_config_init(&cfg);          /* every limit at its default */
    cfg.jid = argv[i + 2];
    cfg.secret = argv[i + 3];
    cfg.log = log_line;
    cfg.log_level = OLPCIDX_LOG_INFO;
    cfg.hash_seed = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
    if ((rc = olpcidx_new(&x, &cfg)) != OLPCIDX_OK) {
        fprintf(stderr, "olpcidx-host: %s\n", olpcidx_strerror(rc));
        return 2;
    }
    if ((fd = dial(argv[i], argv[i + 1])) < 0) {
        olpcidx_free(x);
        return 1;
    }

    rc = olpcidx_connect(x, now_ms());  /* queues the stream header */
    while (rc == OLPCIDX_OK) {
        if (!online && olpcidx_online(x)) {
            online = 1;
            printf("online as %s\n", cfg.jid);
            fflush(stdout);
            deadline = now_ms() + (uint64_t)seconds * 1000;
        }
        if (!closing && (stop || (online && seconds >= 0
                                  && now_ms() >= deadline))) {
            closing = 1;                /* queues </stream:stream> */
            rc = olpcidx_close(x);
            break;
        }
        if (online && seconds >= 0) {   /* wake up for the deadline too */
            uint64_t left = deadline - now_ms();
            if (left < (uint64_t)wait)
                wait = (int)left;
        }
        /* Back-pressure: do not read while the output queue is long. */
        p.fd = fd;
        p.events = (short)((olpcidx_wants_input(x) ? POLLIN : 0)
                           | (olpcidx_pending(x, &out) > 0 ? POLLOUT : 0));
        if (poll(&p, 1, wait) < 0) {
            if (errno == EINTR)
                continue;               /* a signal: stop is looked at */
            break;
        }
        if ((p.revents & (POLLIN | POLLHUP | POLLERR))
            && olpcidx_wants_input(x)) {
            r = read(fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
                fprintf(stderr, "olpcidx-host: connection lost\n");
                break;
            }
            if (r > 0 && (rc = olpcidx_feed(x, buf, (size_t)r)) < 0)
                break;                  /* stream over */
        }
        if ((p.revents & POLLOUT) && (n = olpcidx_pending(x, &out)) > 0) {
            r = write(fd, out, n);
            if (r > 0)
                olpcidx_sent(x, (size_t)r);
            else if (r < 0 && errno != EINTR && errno != EAGAIN)
                break;
        }
        rc = olpcidx_tick(x, now_ms(), &wait);  /* after the input */
    }
    flush(x, fd);           /* </stream:stream>, or the stream error */
    close(fd);
    olpcidx_free(x);

    if (closing && rc == OLPCIDX_OK) {
        fprintf(stderr, "olpcidx-host: closed\n");
        return 0;
    }
    if (rc < 0)
        fprintf(stderr, "olpcidx-host: %s\n", olpcidx_strerror(rc));
    return rc < 0 && olpcidx_is_fatal(rc) ? 3 : 1;
}
