#include "worker.h"

#include "buf.h"
#include "clock.h"
#include "fanout.h"
#include "hub.h"
#include "log.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

static void drain(nb_worker *w);

static void begin_closing(nb_worker *w) {
    if (w->closing)
        return;
    w->closing = 1;
    nb_server *srv = w->server;
    ev_timer_stop(w->loop, &w->idle_timer); /* every session closes with 1001 now */
    srv->tvt->stop_accepting(w->transport_ctx.instance);
    for (nb_session *s = w->sessions; s; s = s->next)
        session_close(s, 1001, "server shutting down");
    if (w->n_sessions == 0)
        server_worker_drained(srv);
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents) {
    (void)revents;
    nb_worker *w = a->data;
    if (atomic_load(&w->stop_requested)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    drain(w);
    if (atomic_load(&w->shutdown_requested))
        begin_closing(w);
}

/* The batched presence of every room this worker queued: one list per
 * room, as it is now. */
static void on_presence_timer(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    nb_worker *w = t->data;
    nb_hub *hub = w->server->hub;
    uint32_t n = w->n_presence_due;
    w->n_presence_due = 0;
    for (uint32_t i = 0; i < n; i++) {
        nb_room *room = w->presence_due[i];
        hub_lock(hub, room->hash);
        room->presence_pending = 0;
        if (room->n_users && !atomic_load(&w->server->draining))
            fanout_presence_locked(w, room);
        hub_unlock(hub, room->hash);
        room_unref(room);
    }
    worker_flush(w);
}

/* Close the sessions idle too long (session.c), then sleep until the one
 * active longest ago would be. */
static void on_idle_timer(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)revents;
    nb_worker *w = t->data;
    int64_t next_ms = session_close_idle(w, clock_mono_ms());
    ev_timer_set(t, next_ms / 1000.0, 0);
    ev_timer_start(loop, t);
}

void worker_presence_locked(nb_worker *w, nb_room *room) {
    const nb_settings *st = &w->server->settings;
    if (room->n_users <= st->presence_batch_above) {
        fanout_presence_locked(w, room);
        return;
    }
    if (room->presence_pending)
        return; /* a worker will send it, with this change included */
    if (w->n_presence_due == w->cap_presence_due) {
        uint32_t cap = w->cap_presence_due ? w->cap_presence_due * 2 : 16;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        nb_room **due = realloc(w->presence_due, cap * sizeof *due);
        if (!due) {
            fanout_presence_locked(w, room); /* no memory to batch: send now */
            return;
        }
        w->presence_due = due;
        w->cap_presence_due = cap;
    }
    room->presence_pending = 1;
    room_ref(room);
    w->presence_due[w->n_presence_due++] = room;
    if (!ev_is_active(&w->presence_timer)) {
        ev_timer_set(&w->presence_timer, st->presence_interval_ms / 1000.0, 0);
        ev_timer_start(w->loop, &w->presence_timer);
    }
}

int worker_init(nb_worker *w, nb_server *srv, uint32_t index) {
    memset(w, 0, sizeof *w);
    w->server = srv;
    w->index = index;
    w->loop = ev_loop_new(EVFLAG_AUTO);
    if (!w->loop)
        return -1;
    pthread_mutex_init(&w->inbox.lock, NULL);
    atomic_init(&w->shutdown_requested, 0);
    atomic_init(&w->stop_requested, 0);
    ev_async_init(&w->wake, on_wake);
    w->wake.data = w;
    ev_async_start(w->loop, &w->wake);
    ev_timer_init(&w->presence_timer, on_presence_timer, 0, 0);
    w->presence_timer.data = w;
    ev_timer_init(&w->idle_timer, on_idle_timer, 0, 0);
    w->idle_timer.data = w;
    return 0;
}

static void *worker_main(void *arg) {
    nb_worker *w = arg;
    uint32_t idle_ms = w->server->settings.idle_timeout_ms;
    if (idle_ms) { /* on the loop's own thread, the only one that touches it */
        ev_timer_set(&w->idle_timer, idle_ms / 1000.0, 0);
        ev_timer_start(w->loop, &w->idle_timer);
    }
    ev_run(w->loop, 0);
    return NULL;
}

int worker_start_thread(nb_worker *w) {
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return -1;
    w->thread_started = 1;
    return 0;
}

void worker_stop_and_join(nb_worker *w) {
    if (!w->thread_started)
        return;
    atomic_store(&w->stop_requested, 1);
    ev_async_send(w->loop, &w->wake);
    pthread_join(w->thread, NULL);
    w->thread_started = 0;
}

void worker_request_shutdown(nb_worker *w) {
    atomic_store(&w->shutdown_requested, 1);
    ev_async_send(w->loop, &w->wake);
}

static void release(nb_delivery *d) {
    for (uint32_t c = 0; c < NB_MAX_CODECS; c++)
        buf_unref(d->frames[c]);
    room_unref(d->room);
}

void worker_free(nb_worker *w) {
    if (!w->loop)
        return;
    for (uint32_t i = 0; i < w->inbox.count; i++)
        release(&w->inbox.items[(w->inbox.head + i) % w->inbox.cap]);
    free(w->inbox.items);
    free(w->scratch);
    for (uint32_t i = 0; i < w->n_presence_due; i++)
        room_unref(w->presence_due[i]);
    free(w->presence_due);
    ev_timer_stop(w->loop, &w->presence_timer);
    ev_timer_stop(w->loop, &w->idle_timer);
    pthread_mutex_destroy(&w->inbox.lock);
    ev_async_stop(w->loop, &w->wake);
    ev_loop_destroy(w->loop);
    w->loop = NULL;
}

/* Grow a ring to hold one more item, keeping its order. */
static int inbox_grow(nb_inbox *in) {
    uint32_t cap = in->cap ? in->cap * 2 : 64;
    nb_delivery *items = malloc(cap * sizeof *items);
    if (!items)
        return -1;
    for (uint32_t i = 0; in->cap && i < in->count; i++)
        items[i] = in->items[(in->head + i) % in->cap];
    free(in->items);
    in->items = items;
    in->cap = cap;
    in->head = 0;
    return 0;
}

void worker_post(nb_worker *from, nb_worker *to, nb_room *room, nb_buf *const *frames) {
    nb_delivery d = {.room = room};
    for (uint32_t c = 0; c < NB_MAX_CODECS; c++) {
        d.frames[c] = frames[c];
        if (frames[c])
            buf_ref(frames[c]);
    }
    room_ref(room);
    pthread_mutex_lock(&to->inbox.lock);
    if (to->inbox.count == to->inbox.cap && inbox_grow(&to->inbox) < 0) {
        pthread_mutex_unlock(&to->inbox.lock);
        log_error("out of memory queueing a delivery for worker %u", to->index);
        release(&d);
        return;
    }
    to->inbox.items[(to->inbox.head + to->inbox.count++) % to->inbox.cap] = d;
    pthread_mutex_unlock(&to->inbox.lock);
    if (to != from)
        from->wake_mask |= UINT64_C(1) << to->index;
}

/* Deliver everything in the inbox to this worker's members of each room. */
static void drain(nb_worker *w) {
    pthread_mutex_lock(&w->inbox.lock);
    uint32_t n = w->inbox.count;
    if (n > w->scratch_cap) {
        nb_delivery *s = realloc(w->scratch, n * sizeof *s);
        if (!s) {
            n = w->scratch_cap; /* deliver what fits now; the rest next time */
        } else {
            w->scratch = s;
            w->scratch_cap = n;
        }
    }
    for (uint32_t i = 0; i < n; i++)
        w->scratch[i] = w->inbox.items[(w->inbox.head + i) % w->inbox.cap];
    if (n) {
        w->inbox.head = (w->inbox.head + n) % w->inbox.cap;
        w->inbox.count -= n;
    }
    pthread_mutex_unlock(&w->inbox.lock);
    for (uint32_t i = 0; i < n; i++) {
        nb_delivery *d = &w->scratch[i];
        fanout_local(w, d->room, d->frames);
        release(d);
    }
}

void worker_flush(nb_worker *w) {
    nb_server *srv = w->server;
    uint64_t mask = w->wake_mask;
    w->wake_mask = 0;
    for (uint32_t i = 0; mask; i++, mask >>= 1)
        if (mask & 1)
            ev_async_send(srv->workers[i].loop, &srv->workers[i].wake);
    drain(w);
}
