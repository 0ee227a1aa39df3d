/*
 * shed.c — the memory budget on each I/O worker (guard.h, budget.h): what
 * the transport reports it holds per connection, the gauges, and shedding.
 */
#include "guard.h"

#include "clock.h"
#include "closecodes.h"
#include "context.h"
#include "log.h"
#include "session.h"

#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define SHED_TICK_S 0.1
/* After a reported growth over the budget, shed in the next loop turn,
 * but not more often than this: the timer catches the rest. */
#define SHED_AT_MOST_EVERY_MS 10
/* A connection holding this much is closed as soon as it grows past the
 * budget (honest connections hold a few KiB between messages). */
#define SHED_LARGE_HOLDER ((uint64_t)16 * 1024)

typedef struct holder {
    nb_session *s;
    uint64_t held;
} holder;

static int by_held_desc(const void *a, const void *b) {
    uint64_t x = ((const holder *)a)->held;
    uint64_t y = ((const holder *)b)->held;
    return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * Shedding: over the budget, each worker closes its own largest holders
 * (what the transport holds for them: a message being assembled, unread
 * output) with 4003 ("reconnect" class: the server is short of memory,
 * not the client at fault for sure) until its share of the excess, plus a
 * sixteenth of the budget so that it does not shed again at once, is on
 * its way out. Connections already closing count as on their way out:
 * their memory goes when the transport lets them go. The honest majority
 * holds little, so they are the last to go.
 */
static void shed(nb_worker *w) {
    nb_server *srv = w->server;
    nb_guard *g = &srv->guard;
    int64_t used = budget_used(&g->budget);
    if ((uint64_t)used <= g->budget.limit)
        return;
    int64_t goal = used - (int64_t)(g->budget.limit - g->budget.limit / 16);
    int64_t share = goal / (int64_t)srv->n_workers + 1;
    holder *h = malloc((size_t)w->n_sessions * sizeof *h + 1);
    uint32_t n = 0;
    for (nb_session *s = w->sessions; s; s = s->next) {
        if (s->state == NB_SESSION_CLOSING)
            share -= (int64_t)s->held;
        else if (s->held && h && s->state == NB_SESSION_OPEN)
            h[n++] = (holder){s, s->held};
    }
    if (share > 0 && n) {
        qsort(h, n, sizeof *h, by_held_desc);
        uint32_t closed = 0;
        for (uint32_t i = 0; i < n && share > 0; i++) {
            share -= (int64_t)h[i].held;
            session_close(h[i].s, NB_CLOSE_MEMORY, "server memory budget exceeded");
            closed++;
        }
        metrics_add(g->budget_closed, closed);
        /* At most a line a second per thread: an attack must not flood the log. */
        static _Thread_local int64_t logged_at = 0;
        static _Thread_local uint32_t unlogged = 0;
        unlogged += closed;
        int64_t now = clock_mono_ms();
        if (!logged_at || now - logged_at >= 1000) {
            log_warn("memory budget: %lld of %llu bytes in use; closed %u of the largest "
                     "holders (4003) since the last report",
                     (long long)used, (unsigned long long)g->budget.limit, unlogged);
            logged_at = now;
            unlogged = 0;
        }
    }
    free(h);
}

/*
 * A connection that grows past the budget while holding a large amount
 * itself is closed at once: many connections read in one loop turn would
 * otherwise all grow before any shedding runs. (Closing from inside the
 * transport's read or send is what the transport allows: it only queues
 * the close frame.) The rest of the shedding, which looks at every
 * connection, runs in a loop turn of its own.
 */
void shed_conn_memory(struct nb_session *s, uint64_t bytes) {
    nb_worker *w = s->worker;
    nb_guard *g = &w->server->guard;
    int64_t delta = (int64_t)bytes - (int64_t)s->held;
    s->held = bytes;
    atomic_fetch_add_explicit(&g->budget.held[w->index], delta, memory_order_relaxed);
    if (delta <= 0 || !budget_over(&g->budget))
        return;
    if (s->held >= SHED_LARGE_HOLDER && s->state == NB_SESSION_OPEN) {
        session_close(s, NB_CLOSE_MEMORY, "server memory budget exceeded");
        metrics_add(g->budget_closed, 1);
    }
    int64_t now = clock_mono_ms();
    if (now - w->shed_at_ms >= SHED_AT_MOST_EVERY_MS) {
        w->shed_at_ms = now;
        ev_feed_event(w->loop, &w->shed_timer, EV_TIMER);
    }
}

/* Give the heap back after a spike of what the budget counts (history
 * freed with its rooms, output queues drained): glibc keeps freed memory
 * of small and middle-sized blocks, so RSS would stay at the peak (the
 * transport does the same for its assembly buffers). A trim walks the
 * whole heap, ~1.2 ms per MB it returns, so it runs only once use has
 * fallen TRIM_STEP below its peak, and at most once a second. */
#define TRIM_STEP (INT64_C(8) << 20)
#define TRIM_EVERY_MS 1000

static void maybe_trim(nb_guard *g, int64_t used) {
    if (used > g->trim_peak)
        g->trim_peak = used;
    int64_t now = clock_mono_ms();
    if (g->trim_peak - used < TRIM_STEP || now - g->trim_at_ms < TRIM_EVERY_MS)
        return;
    g->trim_at_ms = now;
    g->trim_peak = used;
#ifdef __GLIBC__
    malloc_trim(0);
    metrics_add(g->trims, 1);
#endif
}

/* Worker 0 publishes the process's gauges, and trims. */
static void publish(nb_server *srv) {
    nb_guard *g = &srv->guard;
    int64_t used = budget_used(&g->budget);
    metrics_set(g->budget_used, used);
    maybe_trim(g, used);
    metrics_set(g->history_bytes, atomic_load(&g->budget.history));
    metrics_set(g->addresses, peers_count(g->peers));
    uint64_t dropped = atomic_load(&g->hist.dropped);
    metrics_add(g->history_dropped, (int64_t)(dropped - g->dropped_seen));
    g->dropped_seen = dropped;
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    nb_worker *w = t->data;
    if (w->index == 0)
        publish(w->server);
    w->shed_at_ms = clock_mono_ms();
    shed(w);
}

void shed_start(nb_worker *w) {
    ev_timer_init(&w->shed_timer, on_tick, SHED_TICK_S, SHED_TICK_S);
    w->shed_timer.data = w;
    ev_timer_start(w->loop, &w->shed_timer);
}

void shed_stop(nb_worker *w) {
    ev_timer_stop(w->loop, &w->shed_timer);
}
