#include "worker.h"

#include "abuse.h"
#include "buf.h"
#include "clock.h"
#include "closecodes.h"
#include "deliver.h"
#include "hub.h"
#include "log.h"
#include "pipeline.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

/* Shutdown, first step: no new connection, no new message (a client
 * that sends one hears shutting_down); what was taken goes on. */
static void begin_quiet(nb_worker *w) {
    if (w->quiet)
        return;
    w->quiet = 1;
    w->server->tvt->stop_accepting(w->transport_ctx.instance);
    context_worker_quiet(w->server);
}

/* Shutdown, last step: the store has flushed what was taken and its
 * echoes were posted here before the main loop asked for this, so one
 * more drain queues them ahead of the close frames. A node of a cluster
 * closes with 1012 (its clients reconnect, to another node if they can). */
static void begin_closing(nb_worker *w) {
    if (w->closing)
        return;
    w->closing = 1;
    nb_server *srv = w->server;
    worker_drain(w);
    ev_timer_stop(w->loop, &w->idle_timer); /* every session closes now */
    uint32_t code = srv->broker ? NB_CLOSE_RESTART : NB_CLOSE_GOING_AWAY;
    const char *why = srv->broker ? "server restarting" : "server shutting down";
    for (nb_session *s = w->sessions; s; s = s->next)
        session_close(s, code, why);
    if (w->n_sessions == 0)
        context_worker_drained(srv);
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents) {
    (void)revents;
    nb_worker *w = a->data;
    if (atomic_load(&w->stop_requested)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    int step = atomic_load(&w->shutdown_requested);
    worker_drain(w);
    if (step >= 1)
        begin_quiet(w);
    if (step >= 2)
        begin_closing(w);
}

/* The batched presence of every room this worker queued: one list per
 * room, as it is now. */
static void on_presence_timer(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    nb_worker *w = t->data;
    nb_hub *hub = w->server->hub;
    nb_poster p;
    poster_init(&p, w->server, w);
    uint32_t n = w->n_presence_due;
    w->n_presence_due = 0;
    for (uint32_t i = 0; i < n; i++) {
        nb_room *room = w->presence_due[i];
        hub_lock(hub, room->hash);
        room->presence_pending = 0;
        if (room->n_users && !atomic_load(&w->server->draining)) {
            p.presence_now = 1; /* this is the batch: send it whatever the size */
            pipeline_presence_locked(&p, room);
        }
        hub_unlock(hub, room->hash);
        room_unref(room);
    }
    poster_flush(&p);
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

int worker_init(nb_worker *w, nb_server *srv, uint32_t index) {
    memset(w, 0, sizeof *w);
    w->server = srv;
    w->index = index;
    w->loop = ev_loop_new(EVFLAG_AUTO);
    if (!w->loop)
        return -1;
    atomic_init(&w->shutdown_requested, 0);
    atomic_init(&w->stop_requested, 0);
    atomic_init(&w->lost_events, 0);
    mailbox_init(&w->mailbox, w->loop, srv->settings.worker_mailbox_events, on_wake, w);
    w->drain = worker_drain;
    mailbox_start(&w->mailbox);
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
    shed_start(w);
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
    mailbox_wake(&w->mailbox);
    pthread_join(w->thread, NULL);
    w->thread_started = 0;
}

void worker_request_quiet(nb_worker *w) {
    atomic_store(&w->shutdown_requested, 1);
    mailbox_wake(&w->mailbox);
}

void worker_request_shutdown(nb_worker *w) {
    atomic_store(&w->shutdown_requested, 2);
    mailbox_wake(&w->mailbox);
}

void worker_free(nb_worker *w) {
    if (!w->loop)
        return;
    mailbox_free(&w->mailbox);
    for (uint32_t i = 0; i < w->n_presence_due; i++)
        room_unref(w->presence_due[i]);
    free(w->presence_due);
    free(w->table);
    ev_timer_stop(w->loop, &w->presence_timer);
    ev_timer_stop(w->loop, &w->idle_timer);
    shed_stop(w);
    ev_loop_destroy(w->loop);
    w->loop = NULL;
}

/* ---- the mailbox ------------------------------------------------------- */

/*
 * A poster could not queue an event for this worker (its mailbox was full)
 * and marked the room lost here (pipeline.c). Its members on this worker
 * would have a hole in the room's order, so they are closed with 4000
 * ("reconnect"); a client that reconnects with `since` gets what it
 * missed. Rare by design: only a worker far behind fills its mailbox.
 */
static void close_lost_members(nb_worker *w) {
    uint32_t closed = 0;
    for (nb_session *s = w->sessions; s; s = s->next)
        if (session_in_lost_room(s) && s->state == NB_SESSION_OPEN) {
            session_close(s, NB_CLOSE_SLOW_CONSUMER, "events were lost: reconnect");
            closed++;
        }
    for (nb_session *s = w->sessions; s; s = s->next)
        session_clear_lost(s);
    log_warn("I/O thread %u fell behind: room events could not be queued for it (mailbox full); "
             "%u connection(s) closed with 4000 to reconnect",
             w->index, closed);
}

void worker_drain(nb_worker *w) {
    nb_event batch[64];
    uint32_t n;
    while ((n = mailbox_take(&w->mailbox, batch, 64)) > 0) {
        for (uint32_t i = 0; i < n; i++) {
            nb_event *ev = &batch[i];
            if (ev->type == NB_EV_DELIVER)
                deliver_event(w, ev);
            else if (ev->type == NB_EV_SESSION_ERROR)
                deliver_session_error(w, ev);
            event_release(ev);
        }
    }
    uint32_t lost = atomic_load(&w->lost_events);
    if (lost != w->lost_seen) {
        w->lost_seen = lost;
        close_lost_members(w);
    }
}
