/*
 * worker.c — one worker process: ramps its connections up at its share of
 * the connect rate, runs the steps the parent orders (open-loop sends on a
 * fixed schedule, counting what comes back), reports over the control
 * socket, and closes everything when told to.
 *
 * Sends are paced by one timer walking the senders sorted by phase, instead
 * of one libev timer per connection: O(1) per send, and a late loop catches
 * up in order rather than bunching every timer at once.
 */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAMP_TICK 0.002    /* s between ramp steps */
#define QUIT_GRACE 2.0     /* s to let the server close after our close frame */
#define SEND_BUDGET 4096   /* sends per timer callback before yielding to reads */
#define MAX_ERRORS_SHOWN 5 /* per worker; the counters carry the rest */

void worker_log(worker *w, const char *fmt, ...) {
    if (w->errors_printed > MAX_ERRORS_SHOWN)
        return;
    if (w->errors_printed++ == MAX_ERRORS_SHOWN) {
        fprintf(stderr, "nebula-bench: worker %d: further errors not shown\n", w->index);
        return;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "nebula-bench: worker %d: %s\n", w->index, line);
}

static void report(worker *w, uint32_t type, const void *a, size_t alen, const void *b, size_t blen,
                   const void *c, size_t clen) {
    if (ipc_send(w->ctl_fd, type, a, alen, b, blen, c, clen) != 0) {
        /* the parent is gone: nobody is left to report to */
        fprintf(stderr, "nebula-bench: worker %d: lost the parent\n", w->index);
        ev_break(w->loop, EVBREAK_ALL);
    }
}

/* ---- ramp-up --------------------------------------------------------- */

static void inflight_remove(worker *w, conn *c) {
    uint32_t i = c->inflight_idx;
    if (i >= w->n_inflight || w->inflight[i] != (uint32_t)(c - w->conns))
        return;
    uint32_t last = w->inflight[--w->n_inflight];
    w->inflight[i] = last;
    w->conns[last].inflight_idx = i;
}

static void ramp_finish(worker *w) {
    w->ramp_done = true;
    ev_timer_stop(w->loop, &w->ramp_timer);
    report(w, MSG_CONNECTED, &w->cr, sizeof w->cr, NULL, 0, NULL, 0);
}

static void ramp_cb(struct ev_loop *loop, ev_timer *t, int revents) {
    worker *w = ev_userdata(loop);
    uint64_t now = now_ns();
    const bench_params *p = w->p;

    /* attempts that took too long */
    uint64_t limit = (uint64_t)(p->connect_timeout * 1e9);
    for (uint32_t i = w->n_inflight; i-- > 0;) {
        conn *c = &w->conns[w->inflight[i]];
        if (now - c->t0 > limit) {
            client_abort(w, c);
            worker_conn_failed(w, c,
                               c->state == C_CONNECTING ? "connect timeout" : "upgrade timeout");
        }
    }

    double rate = p->connect_rate / p->processes;
    uint64_t allowed = (uint64_t)((double)(now - w->ramp_t0) * rate / 1e9) + 1;
    while (w->n_inflight < (uint32_t)p->inflight && w->started < allowed &&
           (w->n_retry || w->next_start < w->n)) {
        uint32_t k = w->n_retry ? w->retry[--w->n_retry] : w->next_start++;
        conn *c = &w->conns[k];
        w->started++;
        if (!w->cr.t_first)
            w->cr.t_first = now;
        c->inflight_idx = w->n_inflight;
        w->inflight[w->n_inflight++] = k;
        int e = client_start(w, c);
        if (e < 0) {
            worker_conn_failed(w, c, strerror(-e));
        }
    }
    if (w->next_start == w->n && !w->n_retry && !w->n_inflight)
        ramp_finish(w);
    (void)t;
    (void)revents;
}

void worker_conn_open(worker *w, conn *c) {
    uint64_t now = now_ns();
    inflight_remove(w, c);
    w->cr.ok++;
    hist_add(&w->cr.connect, now - c->t0);
    w->cr.t_last = now;
    w->open_count++;
}

void worker_conn_failed(worker *w, conn *c, const char *why) {
    inflight_remove(w, c);
    w->cr.attempt_failures++;
    c->attempts++;
    worker_log(w, "u%u: connection attempt %u failed: %s", c->id, (unsigned)c->attempts, why);
    if (c->attempts <= w->p->retries && !w->quitting && !w->ramp_done) {
        c->state = C_IDLE;
        w->retry[w->n_retry++] = (uint32_t)(c - w->conns);
    } else {
        c->state = C_DONE;
        w->cr.failed++;
    }
}

static void quit_finish(worker *w);

void worker_conn_closed(worker *w, conn *c, const char *why) {
    w->open_count--;
    if (!c->we_closed && !w->quitting) {
        w->dropped_total++;
        if (w->in_step)
            w->sr.dropped++;
        worker_log(w, "u%u: connection lost: %s", c->id, why);
    }
    if (w->quitting && w->quit_armed && --w->closing_left == 0)
        quit_finish(w);
}

/* ---- steps ------------------------------------------------------------ */

static void sched_cb(struct ev_loop *loop, ev_timer *t, int revents) {
    worker *w = ev_userdata(loop);
    uint64_t now = now_ns();
    const cmd_step *st = &w->step;
    for (int budget = SEND_BUDGET; budget > 0; budget--) {
        if (w->cursor == w->n_sched) {
            w->cursor = 0;
            w->cycle++;
        }
        uint64_t due = st->t_start + w->cycle * w->period_ns + w->phase[w->cursor];
        if (due >= st->m_end)
            return; /* the window is over: no more sends this step */
        if (due > now) {
            ev_now_update(loop);
            ev_timer_set(t, (double)(due - now) / 1e9, 0.);
            ev_timer_start(loop, t);
            return;
        }
        conn *c = &w->conns[w->sched[w->cursor++]];
        uint64_t ts = client_send_chat(w, c);
        if (!ts) {
            w->sr.skipped++;
            continue;
        }
        w->sent_total++;
        hist_add(&w->sr.lag, ts > due ? ts - due : 0);
        if (ts >= st->m_start && ts < st->m_end) {
            w->sr.sent++;
            w->sends[c->room]++;
        } else {
            w->sr.sent_warmup++;
        }
        now = ts;
    }
    /* a backlog of due sends: let the loop read, then continue */
    ev_timer_set(t, 0., 0.);
    ev_timer_start(loop, t);
    (void)revents;
}

static void drain_cb(struct ev_loop *loop, ev_timer *t, int revents) {
    worker *w = ev_userdata(loop);
    ev_timer_stop(loop, &w->sched_timer);
    w->in_step = false;
    size_t rooms = (size_t)w->p->rooms;
    report(w, MSG_STEP, &w->sr, sizeof w->sr, w->members, rooms * sizeof *w->members, w->sends,
           rooms * sizeof *w->sends);
    (void)t;
    (void)revents;
}

typedef struct phase_entry {
    uint64_t phase;
    uint32_t idx;
} phase_entry;

static int by_phase(const void *a, const void *b) {
    const phase_entry *x = a, *y = b;
    return x->phase < y->phase ? -1 : x->phase > y->phase;
}

static void begin_step(worker *w, const cmd_step *cmd) {
    const bench_params *p = w->p;
    w->step = *cmd;
    memset(&w->sr, 0, sizeof w->sr);
    hist_reset(&w->sr.latency);
    hist_reset(&w->sr.at_socket);
    hist_reset(&w->sr.lag);
    memset(w->members, 0, (size_t)p->rooms * sizeof *w->members);
    memset(w->sends, 0, (size_t)p->rooms * sizeof *w->sends);

    w->n_sched = 0;
    w->period_ns = cmd->rate_per_sender > 0 ? (uint64_t)(1e9 / cmd->rate_per_sender) : 0;
    phase_entry *pe = w->period_ns ? malloc((size_t)w->n * sizeof *pe) : NULL;
    for (uint32_t k = 0; k < w->n; k++) {
        conn *c = &w->conns[k];
        if (c->state != C_OPEN)
            continue;
        w->members[c->room]++;
        if (c->sender && pe) {
            /* first send at a random point of the first period */
            pe[w->n_sched].phase = bench_rand(&w->rng) % w->period_ns;
            pe[w->n_sched].idx = k;
            w->n_sched++;
        }
    }
    w->sr.senders = w->n_sched;
    if (pe) {
        qsort(pe, w->n_sched, sizeof *pe, by_phase);
        for (uint32_t i = 0; i < w->n_sched; i++) {
            w->sched[i] = pe[i].idx;
            w->phase[i] = pe[i].phase;
        }
        free(pe);
    }
    w->cursor = 0;
    w->cycle = 0;
    w->in_step = true;

    uint64_t now = now_ns();
    ev_now_update(w->loop);
    if (w->n_sched) {
        ev_timer_set(&w->sched_timer, cmd->t_start > now ? (double)(cmd->t_start - now) / 1e9 : 0.,
                     0.);
        ev_timer_start(w->loop, &w->sched_timer);
    }
    ev_timer_set(&w->drain_timer, cmd->t_drain > now ? (double)(cmd->t_drain - now) / 1e9 : 0., 0.);
    ev_timer_start(w->loop, &w->drain_timer);
}

/* ---- quitting -------------------------------------------------------- */

static void quit_finish(worker *w) {
    ev_timer_stop(w->loop, &w->quit_timer);
    for (uint32_t k = 0; k < w->n; k++)
        if (w->conns[k].io.fd >= 0)
            client_abort(w, &w->conns[k]);
    progress_report pr = {
        .ok = w->cr.ok,
        .failed = w->cr.failed,
        .attempt_failures = w->cr.attempt_failures,
        .dropped = w->dropped_total,
        .sent = w->sent_total,
        .delivered = w->delivered_total,
    };
    report(w, MSG_BYE, &pr, sizeof pr, NULL, 0, NULL, 0);
    ev_break(w->loop, EVBREAK_ALL);
}

static void quit_timer_cb(struct ev_loop *loop, ev_timer *t, int revents) {
    worker *w = ev_userdata(loop);
    if (w->closing_left)
        fprintf(stderr, "nebula-bench: worker %d: %u connections did not close in %.0f s\n",
                w->index, w->closing_left, QUIT_GRACE);
    quit_finish(w);
    (void)t;
    (void)revents;
}

/* Close frames to every open connection; whoever is still there after
 * QUIT_GRACE is reset. The server closing first keeps TIME_WAIT on its
 * side, not on our source ports. */
static void begin_quit(worker *w) {
    w->quitting = true;
    ev_timer_stop(w->loop, &w->ramp_timer);
    ev_timer_stop(w->loop, &w->sched_timer);
    ev_timer_stop(w->loop, &w->drain_timer);
    ev_timer_stop(w->loop, &w->progress_timer);
    w->in_step = false;
    for (uint32_t k = 0; k < w->n; k++) {
        conn *c = &w->conns[k];
        if (c->state == C_OPEN)
            client_close_gracefully(w, c);
        else if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
            client_abort(w, c);
    }
    w->closing_left = 0;
    for (uint32_t k = 0; k < w->n; k++)
        if (w->conns[k].state == C_CLOSING)
            w->closing_left++;
    w->quit_armed = true;
    if (!w->closing_left) {
        quit_finish(w);
        return;
    }
    ev_timer_set(&w->quit_timer, QUIT_GRACE, 0.);
    ev_timer_start(w->loop, &w->quit_timer);
}

/* ---- control socket and progress ---------------------------------------- */

static void ctl_cb(struct ev_loop *loop, ev_io *io, int revents) {
    worker *w = ev_userdata(loop);
    msg_hdr h;
    cmd_step cmd;
    if (ipc_read_all(io->fd, &h, sizeof h) != 0) {
        /* the parent died: stop at once */
        ev_io_stop(loop, io);
        w->quitting = true;
        quit_finish(w);
        return;
    }
    if (h.type == CMD_STEP && h.len == sizeof cmd && ipc_read_all(io->fd, &cmd, sizeof cmd) == 0) {
        if (!w->quitting)
            begin_step(w, &cmd);
    } else if (h.type == CMD_QUIT && h.len == 0) {
        ev_io_stop(loop, io);
        begin_quit(w);
    } else {
        fprintf(stderr, "nebula-bench: worker %d: bad control message %u\n", w->index, h.type);
        ev_io_stop(loop, io);
        w->quitting = true;
        quit_finish(w);
    }
    (void)revents;
}

static void progress_cb(struct ev_loop *loop, ev_timer *t, int revents) {
    worker *w = ev_userdata(loop);
    progress_report pr = {
        .ok = w->cr.ok,
        .failed = w->cr.failed,
        .attempt_failures = w->cr.attempt_failures,
        .dropped = w->dropped_total,
        .sent = w->sent_total,
        .delivered = w->delivered_total,
    };
    report(w, MSG_PROGRESS, &pr, sizeof pr, NULL, 0, NULL, 0);
    (void)t;
    (void)revents;
}

/* ---- setup ------------------------------------------------------------ */

static bool is_sender(const bench_params *p, uint64_t i) {
    /* exactly `senders` of the connections, spread evenly over the ids */
    uint64_t n = (uint64_t)p->connections, k = (uint64_t)p->senders;
    return (i + 1) * k / n > i * k / n;
}

static void worker_free(worker *w) {
    if (w->conns)
        for (uint32_t k = 0; k < w->n; k++)
            if (w->conns[k].io.fd >= 0)
                client_abort(w, &w->conns[k]);
    free(w->conns);
    free(w->retry);
    free(w->inflight);
    free(w->members);
    free(w->sends);
    free(w->sched);
    free(w->phase);
    free(w->rbuf);
    free(w->sbuf);
    if (w->loop)
        ev_loop_destroy(w->loop);
    free(w);
}

int worker_main(const bench_params *p, int index, int ctl_fd) {
    /* Ctrl-C reaches the whole process group: the parent decides. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    worker *w = calloc(1, sizeof *w);
    if (!w)
        return 2;
    w->p = p;
    w->index = index;
    w->ctl_fd = ctl_fd;
    w->rng = (p->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(index + 1))) | 1;
    long P = p->processes;
    w->n = (uint32_t)((p->connections - index + P - 1) / P);
    size_t rooms = (size_t)p->rooms;
    w->conns = calloc(w->n ? w->n : 1, sizeof *w->conns);
    w->retry = calloc(w->n ? w->n : 1, sizeof *w->retry);
    w->inflight = calloc(w->n ? w->n : 1, sizeof *w->inflight);
    w->sched = calloc(w->n ? w->n : 1, sizeof *w->sched);
    w->phase = calloc(w->n ? w->n : 1, sizeof *w->phase);
    w->members = calloc(rooms, sizeof *w->members);
    w->sends = calloc(rooms, sizeof *w->sends);
    w->sbuf_cap = 14 + 256 + sizeof p->room_prefix + (size_t)p->content_bytes;
    w->sbuf = malloc(w->sbuf_cap);
    w->loop = ev_loop_new(EVFLAG_AUTO);
    if (!w->conns || !w->retry || !w->inflight || !w->sched || !w->phase || !w->members ||
        !w->sends || !w->sbuf || !w->loop) {
        fprintf(stderr, "nebula-bench: worker %d: out of memory\n", index);
        worker_free(w);
        return 2;
    }
    ev_set_userdata(w->loop, w);
    hist_reset(&w->cr.connect);
    hist_reset(&w->sr.latency);
    hist_reset(&w->sr.at_socket);
    hist_reset(&w->sr.lag);

    for (int t = 0; t < p->n_targets; t++) {
        w->dst[t].sin_family = AF_INET;
        w->dst[t].sin_addr = p->targets[t].addr;
        w->dst[t].sin_port = htons(p->targets[t].port);
    }
    w->src.sin_family = AF_INET;
    w->src.sin_addr.s_addr = htonl(ntohl(p->src_base.s_addr) + (uint32_t)index);
    for (uint32_t k = 0; k < w->n; k++) {
        conn *c = &w->conns[k];
        uint64_t id = (uint64_t)index + (uint64_t)k * (uint64_t)P;
        c->id = (uint32_t)id;
        c->room = (uint32_t)(id / (uint64_t)p->room_size);
        c->sender = is_sender(p, id);
        c->target = (uint8_t)bench_conn_target(p, c->id, c->room);
        c->io.fd = -1;
    }

    ev_io_init(&w->ctl_io, ctl_cb, ctl_fd, EV_READ);
    ev_io_start(w->loop, &w->ctl_io);
    ev_timer_init(&w->ramp_timer, ramp_cb, 0., RAMP_TICK);
    ev_timer_init(&w->progress_timer, progress_cb, 1., 1.);
    ev_timer_init(&w->sched_timer, sched_cb, 0., 0.);
    ev_timer_init(&w->drain_timer, drain_cb, 0., 0.);
    ev_timer_init(&w->quit_timer, quit_timer_cb, 0., 0.);
    ev_timer_start(w->loop, &w->progress_timer);
    w->ramp_t0 = now_ns();
    if (w->n) {
        ev_timer_start(w->loop, &w->ramp_timer);
    } else {
        w->ramp_done = true;
        report(w, MSG_CONNECTED, &w->cr, sizeof w->cr, NULL, 0, NULL, 0);
    }

    ev_run(w->loop, 0);
    worker_free(w);
    return 0;
}
