/*
 * listener.c — the listening socket, the accept loop, and the descriptor
 * reserve.
 *
 * Every I/O thread's instance binds its own socket; with more than one
 * thread they share the address through SO_REUSEPORT and the kernel
 * spreads new connections over them.
 *
 * Out of file descriptors (EMFILE/ENFILE): the pending connection cannot
 * be accepted, the listening socket stays readable, and a level-triggered
 * loop would spin — or, worse, leave the connections waiting in this
 * thread's queue until the clients give up. So each instance keeps
 * `fd_reserve` descriptors open on /dev/null. At the limit one is closed,
 * a waiting connection is accepted into its slot, and:
 *   - while more than one reserve descriptor is left, that connection is
 *     served — as plain HTTP only, within TWS_RESERVE_DEADLINE_MS: the
 *     core's endpoints (/healthz, /readyz, /metrics) answer, anything else
 *     (an upgrade, a file) gets 503 — and its descriptor returns to the
 *     reserve when it closes;
 *   - the last one only refuses: the connection is closed at once (the
 *     client sees a reset, not a hang) and the descriptor reopened.
 * Descriptors are process-wide, so another thread's accept() could take
 * the slot between our close() and accept(): every descriptor this plugin
 * creates is made under one lock (tws_fd_lock). Code outside the plugin
 * may still take one; a reserve that is lost is reopened by the timer, and
 * an instance left with none pauses accepting for 100 ms at a time.
 * The condition is logged once a minute at most, with a count.
 */
#include "tws.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPTS_PER_EVENT 64
#define EMFILE_LOG_EVERY_MS 60000

static pthread_mutex_t fd_mu = PTHREAD_MUTEX_INITIALIZER;

void tws_fd_lock(void) {
    pthread_mutex_lock(&fd_mu);
}

void tws_fd_unlock(void) {
    pthread_mutex_unlock(&fd_mu);
}

static int open_spare(void) {
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Caller holds the lock. */
static void refill_locked(tws *t) {
    while (t->n_spare < t->cfg.fd_reserve) {
        int fd = open_spare();
        if (fd < 0)
            break;
        t->spare[t->n_spare++] = fd;
    }
}

void tws_fd_refill(tws *t) {
    if (t->n_spare >= t->cfg.fd_reserve || t->lfd < 0)
        return;
    tws_fd_lock();
    refill_locked(t);
    tws_fd_unlock();
}

void tws_fd_close(tws *t, nb_conn *c) {
    if (!c->reserved) {
        close(c->io.fd);
        return;
    }
    tws_fd_lock();
    close(c->io.fd);
    if (t->lfd >= 0)
        refill_locked(t);
    tws_fd_unlock();
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents);

static void log_exhausted(tws *t, int err) {
    int64_t now = tws_now_ms(t);
    if (t->emfile_logged_ms != 0 && now - t->emfile_logged_ms < EMFILE_LOG_EVERY_MS)
        return;
    struct rlimit rl;
    unsigned long long lim =
        getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0;
    t->host->log(t->ctx, NB_LOG_WARN,
                 "out of file descriptors (%s, open files limit %llu): refusing new "
                 "connections until some close; %" PRIu64 " refused so far",
                 err == ENFILE ? "ENFILE" : "EMFILE", lim, t->emfile_refused);
    t->emfile_logged_ms = now;
}

static void fd_exhausted(tws *t, int err) {
    uint64_t refused = 0, served = 0;
    int64_t now = tws_now_ms(t);
    uint32_t hs = t->cfg.handshake_timeout_ms;
    int64_t deadline = now + (hs < TWS_RESERVE_DEADLINE_MS ? hs : TWS_RESERVE_DEADLINE_MS);
    tws_fd_lock();
    for (int i = 0; i < ACCEPTS_PER_EVENT && t->n_spare > 0; i++) {
        int serve = t->n_spare > 1; /* the last one only refuses */
        close(t->spare[--t->n_spare]);
        int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0 && serve) {
            nb_conn *c = tws_conn_new(t, fd);
            if (c) {
                c->reserved = 1;
                c->deadline_ms = deadline;
                served++;
                continue;
            }
        }
        if (fd >= 0) {
            close(fd);
            refused++;
        }
        int sp = open_spare();
        if (sp >= 0)
            t->spare[t->n_spare++] = sp;
        if (fd < 0)
            break; /* nobody (left) waiting */
    }
    tws_fd_unlock();
    if (t->n_spare == 0) {
        /* No reserve left: give the loop a rest instead of spinning. */
        ev_io_stop(t->loop, &t->accept_w);
        ev_timer_stop(t->loop, &t->accept_pause);
        ev_timer_set(&t->accept_pause, 0.1, 0.);
        ev_timer_start(t->loop, &t->accept_pause);
    }
    if (served) {
        t->host->metric_add(t->m.accepted, (int64_t)served);
        t->host->metric_add(t->m.reserve_served, (int64_t)served);
    }
    /* accept() reports EMFILE before looking at the queue: at the limit
     * with nobody waiting, nothing was refused and nothing is logged. */
    if (!refused && !served)
        return;
    t->emfile_refused += refused;
    t->host->metric_add(t->m.refused, (int64_t)refused);
    log_exhausted(t, err);
}

static void pause_cb(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)revents;
    tws *t = w->data;
    tws_fd_refill(t);
    if (t->lfd >= 0)
        ev_io_start(loop, &t->accept_w);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents) {
    (void)loop;
    (void)revents;
    tws *t = w->data;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        tws_fd_lock();
        int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int err = errno;
        tws_fd_unlock();
        if (fd < 0) {
            if (err == EINTR || err == ECONNABORTED || err == EPROTO)
                continue;
            if (err == EMFILE || err == ENFILE)
                fd_exhausted(t, err);
            else if (err != EAGAIN && err != EWOULDBLOCK)
                t->host->log(t->ctx, NB_LOG_WARN, "accept: %s", strerror(err));
            return;
        }
        /* Chat frames are small and we coalesce writes ourselves. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!tws_conn_new(t, fd)) {
            close(fd);
            continue;
        }
        t->host->metric_add(t->m.accepted, 1);
    }
}

/*
 * SO_REUSEPORT would also let this process share the port with another
 * nebula already listening there, each silently getting part of the
 * traffic. So the first thread first binds once without it: if anyone
 * listens on the address, that fails with "Address already in use".
 */
static int port_taken(const struct addrinfo *ai, int *err) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return 0; /* the real attempt will report it */
    int one = 1;
    int taken = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
                bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EADDRINUSE;
    if (taken)
        *err = errno;
    close(fd);
    return taken;
}

static int bind_one(const struct addrinfo *ai, int reuseport, int first, int *err) {
    if (reuseport && first && port_taken(ai, err))
        return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, TWS_LISTEN_BACKLOG) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

int tws_listen_start(tws *t) {
    const nb_server_info *si = t->info;
    const char *host = si->listen_host && *si->listen_host ? si->listen_host : NULL;
    char port[16];
    snprintf(port, sizeof port, "%u", si->listen_port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    const char *shown = host ? host : "*";
    int v6 = strchr(shown, ':') != NULL;
    if (gai != 0) {
        t->host->log(t->ctx, NB_LOG_ERROR, "cannot listen on %s%s%s:%u: %s", v6 ? "[" : "", shown,
                     v6 ? "]" : "", si->listen_port, gai_strerror(gai));
        return NB_ERR_IO;
    }
    int err = 0;
    int fd = -1;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = bind_one(ai, si->worker_count > 1, si->worker_index == 0, &err);
    freeaddrinfo(res);
    if (fd < 0) {
        /* The usual cause is another server (or another nebula) on the
         * port: say how to choose another one. */
        t->host->log(t->ctx, NB_LOG_ERROR, "cannot listen on %s%s%s:%u: %s%s", v6 ? "[" : "", shown,
                     v6 ? "]" : "", si->listen_port, strerror(err),
                     err == EADDRINUSE
                         ? " (another program listens there; pick another address with "
                           "--listen HOST:PORT or [server] listen, e.g. "
                           "make run ARGS=\"--listen 127.0.0.1:8081\")"
                         : "");
        return NB_ERR_IO;
    }
    t->lfd = fd;
    tws_fd_refill(t);
    ev_io_init(&t->accept_w, accept_cb, fd, EV_READ);
    t->accept_w.data = t;
    ev_timer_init(&t->accept_pause, pause_cb, 0.1, 0.);
    t->accept_pause.data = t;
    ev_io_start(t->loop, &t->accept_w);
    if (si->worker_index == 0) {
        /* The bound port: the config may have asked for port 0. */
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        socklen_t sl = sizeof ss;
        unsigned bound = si->listen_port;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
        t->host->log(t->ctx, NB_LOG_INFO, "listening on http://%s%s%s:%u", v6 ? "[" : "",
                     host ? host : "0.0.0.0", v6 ? "]" : "", bound);
    }
    return NB_OK;
}

void tws_listen_stop(tws *t) {
    if (t->lfd < 0)
        return;
    ev_io_stop(t->loop, &t->accept_w);
    ev_timer_stop(t->loop, &t->accept_pause);
    close(t->lfd);
    t->lfd = -1;
    tws_fd_lock();
    while (t->n_spare)
        close(t->spare[--t->n_spare]);
    tws_fd_unlock();
}
