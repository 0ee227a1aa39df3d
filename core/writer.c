#include "writer.h"

#include "buf.h"
#include "log.h"
#include "mailbox.h"
#include "pipeline.h"
#include "plugin_slot.h"
#include "room.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct nb_writer {
    nb_server *srv;
    struct ev_loop *loop;
    pthread_t thread;
    int thread_started;
    nb_mailbox mailbox;
    atomic_int stop_requested;
    atomic_int drain_requested; /* shutdown: tell the main loop once all is flushed */
    int drain_told;
    nb_loaded_plugin plugin;
    struct nb_plugin_ctx ctx;
    const nb_store_vtable *vt;
    int created;
    uint32_t flags;
    /* start() runs on the thread; its outcome comes back here */
    pthread_mutex_t start_lock;
    pthread_cond_t start_cond;
    int start_done;
    int start_rc;
    nb_event *held; /* FORWARDs of the batch, waiting for its flush */
    uint32_t n_held;
    uint32_t cap_held;
    int was_down;
    /* Lingering (store_linger_ms): woken for appends nobody waits for, the
     * thread leaves them in the mailbox for up to that long and posters do
     * not wake it meanwhile (writer_nudge); then one batch takes them all.
     * A FORWARD or a LOAD (writer_wake: `urgent`), a drain or a stop runs
     * the batch at once. The store sees what it always sees: appends and
     * one flush within one callback. */
    ev_timer linger;
    atomic_int lingering;
    atomic_int urgent;
};

nb_writer *writer_new(nb_server *srv, const char *name, const nb_host *host) {
    nb_writer *wr = calloc(1, sizeof *wr);
    if (!wr) {
        log_error("out of memory");
        return NULL;
    }
    wr->srv = srv;
    if (plugin_slot_load(srv, "store", name, NB_KIND_STORE, &wr->plugin) != 0) {
        free(wr);
        return NULL;
    }
    wr->vt = &wr->plugin.vt.store;
    wr->loop = ev_loop_new(EVFLAG_AUTO);
    if (!wr->loop) {
        log_error("cannot create the store writer's event loop");
        loader_close(&wr->plugin);
        free(wr);
        return NULL;
    }
    wr->ctx = (struct nb_plugin_ctx){.server = srv, .plugin = &wr->plugin, .loop = wr->loop};
    pthread_mutex_init(&wr->start_lock, NULL);
    pthread_cond_init(&wr->start_cond, NULL);
    atomic_init(&wr->stop_requested, 0);
    atomic_init(&wr->drain_requested, 0);
    int32_t rc = wr->plugin.desc.create(host, &wr->ctx, &wr->ctx.instance);
    if (rc != NB_OK || !wr->ctx.instance) {
        srv->plugin_failures++;
        log_error("%s: refused: create() failed with code %d (the plugin logs its reason, or "
                  "reports it with the config's mistakes)",
                  wr->plugin.path, (int)rc);
        writer_free(wr);
        return NULL;
    }
    wr->created = 1;
    return wr;
}

static void hold(nb_writer *wr, nb_event *ev) {
    if (wr->n_held == wr->cap_held) {
        uint32_t cap = wr->cap_held ? wr->cap_held * 2 : 256;
        nb_event *h = realloc(wr->held, cap * sizeof *h);
        if (!h) {
            /* Cannot hold it for the flush: deliver it as failed (its
             * sender hears store_unavailable; nothing is lost silently). */
            nb_poster p;
            poster_init(&p, wr->srv, NULL);
            pipeline_forward(wr->srv, &p, ev, 0);
            poster_flush(&p);
            return;
        }
        wr->held = h;
        wr->cap_held = cap;
    }
    wr->held[wr->n_held++] = *ev;
}

static int32_t collect(void *user, const nb_msg *msg) {
    nb_history *h = user;
    nb_record *r = record_new(msg);
    if (!r)
        return NB_ERR_NOMEM;
    if ((h->n & (h->n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        nb_record **items = realloc(h->items, (h->n ? h->n * 2 : 1) * sizeof *items);
        if (!items) {
            record_unref(r);
            return NB_ERR_NOMEM;
        }
        h->items = items;
    }
    h->items[h->n++] = r;
    return NB_OK;
}

static void load(nb_writer *wr, nb_event *ev) {
    nb_server *srv = wr->srv;
    nb_room *room = ev->room;
    int was_since = (ev->flags & 1u) != 0;
    nb_store_query q = {.struct_size = sizeof q,
                        .max = was_since ? srv->settings.replay_messages
                                         : srv->settings.history_per_room,
                        .room = room->name,
                        .room_len = room->name_len,
                        .has_since = (uint32_t)was_since,
                        .since = ev->seq};
    nb_store_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    nb_history *h = calloc(1, sizeof *h);
    int32_t rc = h ? wr->vt->load(wr->ctx.instance, &q, &res, collect, h) : NB_ERR_NOMEM;
    if (rc != NB_OK) {
        log_error("store: loading the history of room %s failed (code %d)", room->name, (int)rc);
        metrics_add(srv->m.store_failures, 1);
    } else {
        snprintf(h->epoch, sizeof h->epoch, "%s", res.epoch ? res.epoch : "");
        if (was_since) {
            uint64_t first = h->n ? h->items[0]->seq : res.last_seq + 1;
            h->incomplete = first > ev->seq + 1 || (res.first_seq && res.first_seq > ev->seq + 1);
        }
    }
    pipeline_loaded(srv, room, rc == NB_OK, &res, h, was_since);
}

static void set_up(nb_writer *wr, int up) {
    nb_server *srv = wr->srv;
    if (atomic_exchange(&srv->store_up, up) == up)
        return;
    metrics_set(srv->m.store_up, up);
    if (up)
        log_info("store: flushes succeed again");
    else
        log_error("store: a flush failed; senders whose echo waits for the disk get "
                  "store_unavailable until one succeeds");
}

/* One batch: everything in the mailbox now, appended, one flush. */
static void run_batch(nb_writer *wr) {
    nb_server *srv = wr->srv;
    nb_event batch[128];
    uint32_t n;
    int appended = 0, failed = 0;
    while ((n = mailbox_take(&wr->mailbox, batch, 128)) > 0) {
        for (uint32_t i = 0; i < n; i++) {
            nb_event *ev = &batch[i];
            switch (ev->type) {
            case NB_EV_APPEND:
            case NB_EV_FORWARD:
                if (ev->rec && (ev->type == NB_EV_APPEND || ev->is_message)) {
                    nb_msg m;
                    record_msg(ev->rec, NB_MSG_MESSAGE, &m);
                    if (wr->vt->append(wr->ctx.instance, &m) != NB_OK)
                        failed = 1;
                    appended = 1;
                    metrics_add(srv->m.store_appends, 1);
                }
                if (ev->type == NB_EV_FORWARD) {
                    hold(wr, ev);
                    continue; /* owned by the held list now */
                }
                break;
            case NB_EV_LOAD:
                load(wr, ev);
                break;
            default:
                break;
            }
            event_release(ev);
        }
        if (wr->n_held >= 4096)
            break; /* a batch big enough: flush it before taking more */
    }
    if (appended) {
        uint32_t durable = 0;
        if (wr->vt->flush(wr->ctx.instance, &durable) != NB_OK)
            failed = 1;
        metrics_add(srv->m.store_flushes, 1);
        if (failed)
            metrics_add(srv->m.store_failures, 1);
        set_up(wr, !failed);
    }
    nb_poster p;
    poster_init(&p, srv, NULL);
    for (uint32_t i = 0; i < wr->n_held; i++)
        pipeline_forward(srv, &p, &wr->held[i], !failed);
    wr->n_held = 0;
    poster_flush(&p);
}

/* The linger is over: posters wake the thread again from here on (so
 * nothing posted after this waits), and the batch takes what gathered. */
static void on_linger(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    nb_writer *wr = t->data;
    atomic_store(&wr->lingering, 0);
    do
        run_batch(wr);
    while (mailbox_depth(&wr->mailbox) > 0);
}

void writer_nudge(nb_writer *wr) {
    if (!atomic_load(&wr->lingering))
        mailbox_wake(&wr->mailbox);
}

void writer_wake(nb_writer *wr) {
    atomic_store(&wr->urgent, 1);
    mailbox_wake(&wr->mailbox);
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents) {
    (void)revents;
    nb_writer *wr = a->data;
    /* Read before the drain: whatever was posted before the request is in
     * the mailbox by now, so it is flushed (and its echoes posted) below. */
    int drain = atomic_load(&wr->drain_requested);
    int urgent = atomic_exchange(&wr->urgent, 0) || drain || atomic_load(&wr->stop_requested);
    if (!urgent && wr->srv->settings.store_linger_ms > 0) {
        if (!ev_is_active(&wr->linger)) {
            atomic_store(&wr->lingering, 1);
            ev_timer_set(&wr->linger, wr->srv->settings.store_linger_ms / 1000.0, 0.);
            ev_timer_start(loop, &wr->linger);
        }
        return;
    }
    if (ev_is_active(&wr->linger)) {
        ev_timer_stop(loop, &wr->linger);
        atomic_store(&wr->lingering, 0);
    }
    do
        run_batch(wr);
    while (mailbox_depth(&wr->mailbox) > 0);
    if (drain && !wr->drain_told) {
        wr->drain_told = 1;
        context_store_drained(wr->srv);
    }
    if (atomic_load(&wr->stop_requested))
        ev_break(loop, EVBREAK_ALL);
}

static void *writer_main(void *arg) {
    nb_writer *wr = arg;
    uint32_t flags = 0;
    int32_t rc = wr->vt->start(wr->ctx.instance, &flags);
    pthread_mutex_lock(&wr->start_lock);
    wr->flags = flags;
    wr->start_rc = rc;
    wr->start_done = 1;
    pthread_cond_signal(&wr->start_cond);
    pthread_mutex_unlock(&wr->start_lock);
    if (rc != NB_OK)
        return NULL;
    ev_run(wr->loop, 0);
    run_batch(wr); /* what came after the last wake */
    wr->vt->stop(wr->ctx.instance);
    return NULL;
}

int writer_start(nb_writer *wr) {
    mailbox_init(&wr->mailbox, wr->loop, wr->srv->settings.writer_mailbox_events, on_wake, wr);
    mailbox_start(&wr->mailbox);
    ev_timer_init(&wr->linger, on_linger, 0., 0.);
    wr->linger.data = wr;
    wr->srv->writer_mb = &wr->mailbox;
    if (pthread_create(&wr->thread, NULL, writer_main, wr) != 0) {
        log_error("cannot start the store writer thread");
        return -1;
    }
    wr->thread_started = 1;
    pthread_mutex_lock(&wr->start_lock);
    while (!wr->start_done)
        pthread_cond_wait(&wr->start_cond, &wr->start_lock);
    int32_t rc = wr->start_rc;
    pthread_mutex_unlock(&wr->start_lock);
    if (rc != NB_OK) {
        pthread_join(wr->thread, NULL);
        wr->thread_started = 0;
        log_error("%s: start() failed with code %d; see the message above", wr->plugin.path,
                  (int)rc);
        return -1;
    }
    atomic_store(&wr->srv->store_up, 1);
    metrics_set(wr->srv->m.store_up, 1);
    log_info("store %s started%s", wr->plugin.desc.name,
             (wr->flags & NB_STORE_F_ACK_AFTER_FLUSH) ? ": echoes wait for the disk" : "");
    return 0;
}

void writer_request_drain(nb_writer *wr) {
    atomic_store(&wr->drain_requested, 1);
    mailbox_wake(&wr->mailbox);
}

void writer_stop(nb_writer *wr) {
    writer_stop_within(wr, UINT32_MAX);
}

int writer_stop_within(nb_writer *wr, uint32_t ms) {
    if (!wr || !wr->thread_started)
        return 0;
    atomic_store(&wr->stop_requested, 1);
    mailbox_wake(&wr->mailbox);
    if (ms == UINT32_MAX) {
        pthread_join(wr->thread, NULL);
    } else {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(ms / 1000);
        until.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(wr->thread, NULL, &until) != 0)
            return -1;
    }
    wr->thread_started = 0;
    return 0;
}

void writer_free(nb_writer *wr) {
    if (!wr)
        return;
    if (wr->created)
        wr->plugin.desc.destroy(wr->ctx.instance);
    if (wr->mailbox.loop)
        mailbox_free(&wr->mailbox);
    for (uint32_t i = 0; i < wr->n_held; i++)
        event_release(&wr->held[i]);
    free(wr->held);
    loader_close(&wr->plugin);
    if (wr->loop)
        ev_loop_destroy(wr->loop);
    pthread_mutex_destroy(&wr->start_lock);
    pthread_cond_destroy(&wr->start_cond);
    free(wr);
}

uint32_t writer_flags(const nb_writer *wr) {
    return wr->flags;
}
