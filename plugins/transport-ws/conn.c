/*
 * conn.c — one TCP connection from accept to close: its outbound queue,
 * how the queue reaches the socket, and the timeouts.
 *
 * Output: whatever is sent to a connection (frames from the core, our own
 * control frames, HTTP responses) is appended, as reference-counted
 * buffers, to one ordered queue per connection. Nothing is written at
 * that moment: the connection is put on the instance's dirty list, and an
 * ev_prepare watcher — run once per loop iteration, just before the loop
 * waits — writes each dirty queue with one sendmsg() of up to TWS_IOV_MAX
 * buffers. A broadcast that reaches a connection ten times in one
 * iteration costs one system call. When the socket is full the queue waits
 * for EV_WRITE instead. Past TWS_QUEUE_SOFT bytes the queue is written at
 * once, and a connection whose socket is full is no longer read
 * (tws_flush_early, update_events).
 *
 * Timeouts: one repeating timer per instance walks the connections and
 * applies the handshake, heartbeat, close and linger deadlines; no
 * connection owns a timer. The walk is cut in TWS_SWEEP_SLICES pieces, one
 * per tick: at 10,000 connections a whole walk costs about a millisecond
 * of cache misses, and one callback that long would be in every message's
 * way that happens to arrive during it.
 */
#include "tws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int64_t tws_now_ms(const tws *t) {
    return (int64_t)(ev_now(t->loop) * 1000.0);
}

/* ---- lists ---------------------------------------------------------- */

static void dirty_add(nb_conn *c) {
    tws *t = c->t;
    /* A connection waiting for EV_WRITE is flushed by that event. */
    if (c->dirty || c->want_write)
        return;
    c->dirty = 1;
    c->dirty_prev = NULL;
    c->dirty_next = t->dirty;
    if (t->dirty)
        t->dirty->dirty_prev = c;
    t->dirty = c;
}

static void dirty_remove(nb_conn *c) {
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        c->t->dirty = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    c->dirty = 0;
    c->dirty_prev = c->dirty_next = NULL;
}

/*
 * Backpressure: while more than TWS_QUEUE_SOFT bytes wait for a full
 * socket, an open connection is not read. A client that floods without
 * reading what comes back (its own echoes, the room's traffic) is slowed
 * down by TCP instead of growing the queues of everyone in its rooms —
 * and the clients that do read stay below the core's max_queued_bytes.
 * Reading resumes as soon as the queue drains.
 */
static void update_events(nb_conn *c) {
    int paused = c->state == TWS_OPEN && c->want_write && c->queued >= TWS_QUEUE_SOFT;
    int ev = (c->peer_eof || paused ? 0 : EV_READ) | (c->want_write ? EV_WRITE : 0);
    if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == ev)
        return;
    ev_io_stop(c->t->loop, &c->io);
    if (ev) {
        ev_io_set(&c->io, c->io.fd, ev);
        ev_io_start(c->t->loop, &c->io);
    }
}

/* ---- life ----------------------------------------------------------- */

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

nb_conn *tws_conn_new(tws *t, int fd) {
    nb_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->t = t;
    c->state = TWS_HTTP;
    int64_t now = tws_now_ms(t);
    c->last_rx_ms = now;
    c->last_ping_ms = now;
    c->deadline_ms = now + t->cfg.handshake_timeout_ms;
    ev_io_init(&c->io, io_cb, fd, EV_READ);
    c->io.data = c;
    ev_io_start(t->loop, &c->io);
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    t->n_conns++;
    t->host->metric_add(t->m.sockets, 1);
    return c;
}

static void ring_release(nb_conn *c);

void tws_conn_destroy(nb_conn *c) {
    tws *t = c->t;
    ev_io_stop(t->loop, &c->io);
    tws_fd_close(t, c);
    dirty_remove(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    t->n_conns--;
    if (t->sweep == c)
        t->sweep = c->next;
    for (uint32_t i = 0; i < c->q_len; i++)
        t->host->buf_unref(c->q[(c->q_head + i) & (c->q_cap - 1)]);
    ring_release(c);
    tws_ws_release(c);
    free(c->hbuf);
    t->host->metric_add(t->m.sockets, -1);
    free(c);
}

void tws_conn_detach(nb_conn *c, uint32_t code) {
    struct nb_session *s = c->session;
    if (!s)
        return;
    c->session = NULL;
    c->t->host->conn_closed(s, code);
}

/* The socket failed or the peer vanished. */
static void broken(nb_conn *c) {
    tws_conn_detach(c, c->close_sent ? c->close_code : 1006);
    tws_conn_destroy(c);
}

void tws_conn_linger(nb_conn *c) {
    c->state = TWS_LINGER;
    c->deadline_ms = tws_now_ms(c->t) + c->t->cfg.close_timeout_ms;
    tws_ws_release(c);
    dirty_add(c); /* the flush shuts down writing once the queue is empty */
}

/* ---- the queue ------------------------------------------------------ */

static void ring_release(nb_conn *c) {
    if (c->q != c->q_inline)
        free(c->q);
    c->q = NULL;
    c->q_cap = 0;
    c->q_head = 0;
}

static int ring_push(nb_conn *c, nb_buf *b) {
    if (c->q_cap == 0) {
        c->q = c->q_inline;
        c->q_cap = TWS_Q_INLINE;
        c->q_head = 0;
    } else if (c->q_len == c->q_cap) {
        uint32_t cap = c->q_cap * 4;
        nb_buf **q = malloc(cap * sizeof(nb_buf *));
        if (!q)
            return -1;
        for (uint32_t i = 0; i < c->q_len; i++)
            q[i] = c->q[(c->q_head + i) & (c->q_cap - 1)];
        if (c->q != c->q_inline)
            free(c->q);
        c->q = q;
        c->q_cap = cap;
        c->q_head = 0;
    }
    c->q[(c->q_head + c->q_len++) & (c->q_cap - 1)] = b;
    return 0;
}

/*
 * The core's memory budget counts what each connection makes us hold: the
 * message being assembled and the output waiting for the socket. Reported
 * in steps so that a busy connection does not call on every write.
 */
void tws_report_memory(nb_conn *c) {
    tws *t = c->t;
    if (!t->conn_memory || !c->session)
        return;
    uint64_t held = (uint64_t)(c->queued > 0 ? c->queued : 0) + (c->rx ? c->rx->msg_cap : 0);
    uint64_t diff = held > c->reported ? held - c->reported : c->reported - held;
    if (diff >= TWS_REPORT_STEP || (held == 0 && c->reported != 0)) {
        c->reported = held;
        t->conn_memory(c->session, held);
    }
}

int tws_queue(nb_conn *c, nb_buf *b) {
    if (ring_push(c, b) != 0) {
        c->t->host->buf_unref(b);
        return -1;
    }
    c->queued += b->len;
    c->wtail = NULL;
    dirty_add(c);
    tws_report_memory(c);
    if (c->want_write)
        update_events(c); /* may pause reading */
    return 0;
}

int tws_queue_copy(nb_conn *c, const void *data, size_t len) {
    const nb_host *h = c->t->host;
    nb_buf *b = c->wtail;
    /* wslay hands over a control frame in two pieces (header, payload):
     * both land in one small buffer. */
    if (!b || b->tailroom < len) {
        if (len > UINT32_MAX - 256)
            return -1;
        b = h->buf_new(0, (uint32_t)(len < 256 ? 256 : len));
        if (!b)
            return -1;
        if (ring_push(c, b) != 0) {
            h->buf_unref(b);
            return -1;
        }
        c->wtail = b;
    }
    memcpy(b->data + b->len, data, len);
    b->len += (uint32_t)len;
    b->tailroom -= (uint32_t)len;
    c->queued += (int64_t)len;
    dirty_add(c);
    return 0;
}

/* Drop `n` written bytes from the front of the queue. */
static void consume(nb_conn *c, size_t n) {
    const nb_host *h = c->t->host;
    while (c->q_len) {
        nb_buf *b = c->q[c->q_head];
        size_t left = b->len - c->q_off;
        if (n < left) {
            c->q_off += (uint32_t)n;
            c->queued -= (int64_t)n;
            return;
        }
        n -= left;
        c->queued -= (int64_t)left;
        c->q_off = 0;
        c->q_head = (c->q_head + 1) & (c->q_cap - 1);
        c->q_len--;
        if (b == c->wtail)
            c->wtail = NULL;
        h->buf_unref(b);
    }
}

/* Write as much of the queue as the socket takes. 0, or -1 on a socket
 * error; sets want_write when the socket is full. */
static int write_queue(nb_conn *c) {
    tws *t = c->t;
    int was_full = c->want_write;
    while (c->q_len) {
        struct iovec iov[TWS_IOV_MAX];
        int n = 0;
        size_t total = 0;
        for (uint32_t i = 0; i < c->q_len && n < TWS_IOV_MAX; i++) {
            nb_buf *b = c->q[(c->q_head + i) & (c->q_cap - 1)];
            uint32_t off = i == 0 ? c->q_off : 0;
            iov[n].iov_base = b->data + off;
            iov[n].iov_len = b->len - off;
            total += iov[n].iov_len;
            n++;
        }
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)n;
        ssize_t w = sendmsg(c->io.fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        t->host->metric_add(t->m.bytes_out, w);
        consume(c, (size_t)w);
        tws_report_memory(c);
        /* A full socket taking bytes again means the peer reads: alive,
         * even while backpressure keeps us from reading its pongs. */
        if (was_full && w > 0)
            c->last_rx_ms = tws_now_ms(t);
        if (c->state == TWS_LINGER) /* progress: a slow reader is not cut off */
            c->deadline_ms = tws_now_ms(t) + t->cfg.close_timeout_ms;
        if ((size_t)w < total)
            break;
    }
    c->want_write = c->q_len > 0;
    return 0;
}

/* Write what the queue holds. 0, or -1 when the connection is finished
 * (socket error, or a lingering peer that has gone). */
static int flush(nb_conn *c) {
    if (write_queue(c) != 0)
        return -1;
    if (c->q_len == 0) {
        ring_release(c);
        if (c->state == TWS_LINGER) {
            if (c->peer_eof)
                return -1;
            if (!c->shut_wr) {
                /* FIN after the last byte; the peer's EOF then ends it. */
                shutdown(c->io.fd, SHUT_WR);
                c->shut_wr = 1;
            }
        }
    }
    update_events(c);
    return 0;
}

/*
 * Coalescing has a limit. A thread draining a burst of broadcasts queues
 * them all within one loop iteration; waiting for its end could pile up
 * megabytes here, which the core would read as a slow consumer. So once
 * TWS_QUEUE_SOFT bytes wait and the socket is not known to be full, they
 * are written at once. This runs inside the core's send(): an error is
 * left for the regular flush, which may then end the connection.
 */
void tws_flush_early(nb_conn *c) {
    if (c->queued < TWS_QUEUE_SOFT || c->want_write)
        return;
    if (write_queue(c) == 0 && c->want_write)
        update_events(c);
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents) {
    (void)loop;
    (void)revents;
    tws *t = w->data;
    /* Pop before flushing: a flush may destroy the conn, and the core's
     * conn_closed may queue output for others (they join the list). */
    while (t->dirty) {
        nb_conn *c = t->dirty;
        dirty_remove(c);
        if (flush(c) < 0)
            broken(c);
    }
}

/* ---- reading -------------------------------------------------------- */

static int read_ws(tws *t, nb_conn *c) {
    ssize_t n = read(c->io.fd, t->rbuf, TWS_RBUF_SIZE);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    if (n == 0) {
        if (c->state == TWS_LINGER && c->q_len) {
            /* The peer is done sending; finish writing to it. */
            c->peer_eof = 1;
            update_events(c);
            return 0;
        }
        return -1;
    }
    t->host->metric_add(t->m.bytes_in, n);
    c->last_rx_ms = tws_now_ms(t);
    if (c->state == TWS_LINGER)
        return 0; /* nothing more is listened to */
    return tws_ws_input(t, c, t->rbuf, (size_t)n);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) {
    (void)loop;
    nb_conn *c = w->data;
    tws *t = c->t;
    if (revents & EV_WRITE) {
        if (flush(c) < 0) {
            broken(c);
            return;
        }
    }
    if (revents & EV_READ) {
        int rc = c->state == TWS_HTTP ? tws_http_readable(t, c) : read_ws(t, c);
        if (rc < 0)
            broken(c);
    }
}

/* ---- timeouts ------------------------------------------------------- */

/*
 * Heartbeat: a connection silent for ping_interval_ms gets a ping (at most
 * one per interval); one silent for pong_timeout_ms — no data, no pong —
 * is presumed dead: the core hears conn_closed(4001) at once, and a close
 * frame goes out on the chance that the peer still reads.
 */
static void heartbeat(tws *t, nb_conn *c, int64_t now) {
    const tws_config *cfg = &t->cfg;
    int64_t silent = now - c->last_rx_ms;
    if (cfg->pong_timeout_ms && silent >= cfg->pong_timeout_ms) {
        t->host->metric_add(t->m.heartbeat_timeouts, 1);
        tws_ws_queue_close(c, 4001, "heartbeat timeout");
        tws_conn_detach(c, 4001);
        tws_conn_linger(c);
        return;
    }
    if (cfg->ping_interval_ms && silent >= cfg->ping_interval_ms &&
        now - c->last_ping_ms >= cfg->ping_interval_ms && !c->close_sent) {
        t->host->buf_ref(t->ping);
        if (tws_queue(c, t->ping) == 0)
            c->last_ping_ms = now;
    }
}

/*
 * A message must be complete within message_timeout_ms of the moment the
 * stream left a message boundary (the first byte of a frame header): a
 * client that starts a message and trickles it, or never finishes it
 * while answering pings, holds its assembly buffer and wslay context
 * only that long. It is closed with 4002, a "reconnect" code: an honest
 * client on a very slow link may try again.
 */
static void message_deadline(tws *t, nb_conn *c, int64_t now) {
    const tws_config *cfg = &t->cfg;
    if (!cfg->message_timeout_ms || !c->rx || c->close_sent ||
        now - c->rx->started_ms < cfg->message_timeout_ms)
        return;
    t->host->metric_add(t->m.message_timeouts, 1);
    t->host->log(t->ctx, NB_LOG_DEBUG, "closing a connection with 4002: message not completed");
    tws_ws_queue_close(c, 4002, "message not completed in time");
    tws_conn_detach(c, 4002);
    tws_conn_linger(c);
}

/* One slice of the walk: the next n_conns / TWS_SWEEP_SLICES connections
 * (rounded up) from where the last tick stopped. A connection opened during
 * a round is at the head, and waits for the next round. */
static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents) {
    (void)loop;
    (void)revents;
    tws *t = w->data;
    int64_t now = tws_now_ms(t);
    tws_fd_refill(t);
    tws_maybe_trim(t);
    if (!t->sweep_left) {
        t->sweep = t->conns;
        t->sweep_left = TWS_SWEEP_SLICES;
    }
    uint64_t budget = (t->n_conns + TWS_SWEEP_SLICES - 1) / TWS_SWEEP_SLICES;
    if (--t->sweep_left == 0)
        budget = UINT64_MAX; /* the round's last slice finishes it */
    for (nb_conn *c = t->sweep; c && budget; c = t->sweep, budget--) {
        t->sweep = c->next; /* only c itself may be destroyed below */
        switch (c->state) {
        case TWS_HTTP:
            if (now >= c->deadline_ms)
                tws_conn_destroy(c); /* no complete request in time */
            break;
        case TWS_OPEN:
            heartbeat(t, c, now);
            if (c->state == TWS_OPEN)
                message_deadline(t, c, now);
            break;
        case TWS_CLOSING:
            if (now >= c->deadline_ms) { /* the peer never answered our close */
                tws_conn_detach(c, c->close_code);
                tws_conn_destroy(c);
            }
            break;
        default:
            if (now >= c->deadline_ms)
                tws_conn_destroy(c);
            break;
        }
    }
}

void tws_conn_start(tws *t) {
    const tws_config *cfg = &t->cfg;
    uint32_t m = cfg->close_timeout_ms < cfg->handshake_timeout_ms ? cfg->close_timeout_ms
                                                                   : cfg->handshake_timeout_ms;
    if (cfg->ping_interval_ms && cfg->ping_interval_ms < m)
        m = cfg->ping_interval_ms;
    if (cfg->pong_timeout_ms && cfg->pong_timeout_ms < m)
        m = cfg->pong_timeout_ms;
    if (cfg->message_timeout_ms && cfg->message_timeout_ms < m)
        m = cfg->message_timeout_ms;
    /* A whole round takes a quarter of the shortest deadline: timeouts
     * fire at most 25% late. */
    double round = m / 4000.0;
    round = round < 0.01 ? 0.01 : round > 1.0 ? 1.0 : round;
    double every = round / TWS_SWEEP_SLICES;
    ev_timer_init(&t->tick_w, tick_cb, every, every);
    t->tick_w.data = t;
    ev_timer_start(t->loop, &t->tick_w);
    ev_prepare_init(&t->flush_w, prepare_cb);
    t->flush_w.data = t;
    ev_prepare_start(t->loop, &t->flush_w);
}

void tws_conn_stop(tws *t) {
    ev_timer_stop(t->loop, &t->tick_w);
    ev_prepare_stop(t->loop, &t->flush_w);
}

void tws_conn_free_all(tws *t) {
    nb_conn *next;
    for (nb_conn *c = t->conns; c; c = next) {
        next = c->next;
        tws_conn_destroy(c);
    }
}
