/*
 * pipeline.c — the pipeline's hand-offs (docs/ARCHITECTURE.md): the poster
 * that collects wake-ups, posting to the workers', the writer's and the
 * main loop's mailboxes with each one's policy when full, the deliver
 * stage (encode once, frame once, one event per thread), presence, and
 * what the writer delivers after its flush. Sequencing is sequence.c's,
 * the loading backlog backlog.c's.
 */
#include "pipeline.h"

#include "bcast_sample.h"
#include "buf.h"
#include "clock.h"
#include "fanout.h"
#include "hub.h"
#include "log.h"
#include "mailbox.h"
#include "pipeline_impl.h"
#include "writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void poster_init(nb_poster *p, nb_server *srv, nb_worker *self) {
    memset(p, 0, sizeof *p);
    p->srv = srv;
    p->self = self;
}

void poster_flush(nb_poster *p) {
    nb_server *srv = p->srv;
    uint64_t mask = p->wake;
    p->wake = 0;
    for (uint32_t i = 0; mask; i++, mask >>= 1)
        if ((mask & 1) && (!p->self || i != p->self->index))
            mailbox_wake(&srv->workers[i].mailbox);
    if (p->wake_writer)
        writer_wake(srv->writer);
    else if (p->nudge_writer)
        writer_nudge(srv->writer);
    if (p->wake_main)
        mailbox_wake(srv->main_mb);
    p->wake_writer = p->nudge_writer = p->wake_main = 0;
    if (p->self)
        p->self->drain(p->self);
}

nb_str pipe_str(const char *p, uint32_t len) {
    return (nb_str){p, len, 0};
}

nb_msg pipe_msg(uint32_t type, const nb_room *room) {
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = type;
    m.room = pipe_str(room->name, room->name_len);
    return m;
}

/* ts never goes backwards within a room. */
int64_t pipe_ts(nb_room *room) {
    int64_t now = clock_now_ms();
    if (now < room->last_ts)
        now = room->last_ts;
    room->last_ts = now;
    return now;
}

/* Mark room lost for worker w: its members there missed an event. */
void pipe_mark_lost(nb_server *srv, nb_room *room, uint32_t w) {
    atomic_store(&room->local[w].lost, 1);
    atomic_fetch_add(&srv->workers[w].lost_events, 1);
}

/*
 * A worker's mailbox is full: its members of this room would miss an
 * event. Never silently: the room is marked lost for that worker, which
 * closes its members of the room with 4000 ("reconnect") at its next drain
 * (worker.c), counted in nebula_mailbox_refused_total and logged there. A
 * reconnecting client asks with `since` and gets what it missed.
 */
static void post_deliver(nb_poster *p, uint32_t w, nb_room *room, nb_event *ev) {
    nb_server *srv = p->srv;
    if (mailbox_post(&srv->workers[w].mailbox, ev) < 0) {
        pipe_mark_lost(srv, room, w);
        metrics_add(srv->m.mailbox_refused, 1);
        event_release(ev);
        return;
    }
    p->wake |= UINT64_C(1) << w;
}

/*
 * A full writer or main mailbox, or a full room backlog: the caller
 * answers the sender (the message or join was not taken); here it is
 * counted, and logged at most once a second with how many were refused
 * since the last line, so a flood of refusals cannot flood the log.
 */
void pipe_refused(nb_server *srv, const char *what, const char *key) {
    static atomic_int_fast64_t last_ms;
    static atomic_uint since_last;
    metrics_add(srv->m.mailbox_refused, 1);
    atomic_fetch_add(&since_last, 1);
    int64_t now = clock_mono_ms();
    int64_t last = atomic_load(&last_ms);
    if (now - last < 1000 || !atomic_compare_exchange_strong(&last_ms, &last, now))
        return;
    log_warn("%s is full: %u event(s) refused since the last such line (raise [server] %s, "
             "or the machine cannot keep up)",
             what, atomic_exchange(&since_last, 0), key);
}

int pipe_post_writer(nb_poster *p, nb_event *ev) {
    if (mailbox_post(p->srv->writer_mb, ev) < 0) {
        pipe_refused(p->srv, "the store writer's mailbox", "writer_mailbox_events");
        return -1;
    }
    if (ev->type == NB_EV_APPEND)
        p->nudge_writer = 1; /* nobody waits for its flush: the writer may linger */
    else
        p->wake_writer = 1;
    return 0;
}

int pipe_post_main(nb_poster *p, nb_event *ev) {
    if (mailbox_post(p->srv->main_mb, ev) < 0) {
        pipe_refused(p->srv, "the main loop's mailbox", "main_mailbox_events");
        return -1;
    }
    p->wake_main = 1;
    return 0;
}

/* A room's first local member arrived, or its last left: (un)subscribe. */
void pipe_post_room(nb_poster *p, nb_room *room, uint32_t type) {
    nb_event ev = {.type = type, .room = room};
    room_ref(room);
    if (pipe_post_main(p, &ev) < 0) {
        room_unref(room);
        log_warn("broker: could not queue a %s of room %s (main mailbox full)",
                 type == NB_EV_SUBSCRIBE ? "subscribe" : "unsubscribe", room->name);
    }
}

nb_sref pipe_no_session(void) {
    return (nb_sref){0, 0, 0};
}

/*
 * Deliver stage, shard lock held: encode m once per codec in use (and
 * who's codec: a leaver is no longer counted), frame once, and post it —
 * to every worker with members (and to who's worker when the event
 * changes who's membership), or, when the store's echo
 * waits for the disk, to the writer, which delivers after its flush.
 * `persist` (a message record) is appended by the writer in that case.
 * Returns -1 only when the writer refused a message (the caller answers
 * its sender).
 */
int pipe_emit_locked(nb_poster *p, nb_room *room, const nb_msg *m, uint32_t op, nb_sref who,
                     uint32_t who_codec, nb_history *hist, nb_record *persist) {
    nb_server *srv = p->srv;
    nb_buf *frames[NB_MAX_CODECS] = {0};
    for (uint32_t c = 0; c < srv->n_codecs; c++)
        if (room->codec_members[c] || (op != NB_OP_NONE && c == who_codec))
            frames[c] = fanout_frame(srv, c, m);
    uint64_t targets = 0;
    for (uint32_t w = 0; w < srv->n_workers; w++)
        if (room->worker_members[w])
            targets |= UINT64_C(1) << w;
    if (op != NB_OP_NONE)
        targets |= UINT64_C(1) << who.worker;
    nb_record *joinrec = op == NB_OP_JOIN ? record_new(m) : NULL;
    /* A sampled message's deliveries carry its sample (bcast_sample.h). */
    nb_bcast_sample *sample = NULL;
    if (p->sample && op == NB_OP_NONE && m->type == NB_MSG_MESSAGE) {
        sample = p->sample;
        p->sample = NULL;
    }

    if (srv->durable) {
        nb_event ev = {.type = NB_EV_FORWARD,
                       .op = op,
                       .room = room,
                       .hist = hist,
                       .who = who,
                       .targets = targets,
                       .seq = m->seq};
        memcpy(ev.frames, frames, sizeof frames);
        ev.rec = persist ? persist : joinrec;
        ev.is_message = persist != NULL;
        bcast_sample_arm(sample, 1);
        ev.sample = sample;
        if (persist)
            record_ref(persist);
        room_ref(room);
        if (pipe_post_writer(p, &ev) < 0) {
            ev.rec = NULL;
            ev.hist = NULL;
            event_release(&ev);
            if (persist)
                record_unref(persist);
            record_unref(joinrec);
            history_free(hist);
            if (!persist) /* a membership event is lost to every member: say so */
                for (uint32_t w = 0; w < srv->n_workers; w++)
                    if (targets & (UINT64_C(1) << w))
                        pipe_mark_lost(srv, room, w);
            return persist ? -1 : 0;
        }
        if (persist)
            record_unref(joinrec);
        return 0;
    }
    bcast_sample_arm(sample, (uint32_t)__builtin_popcountll(targets));
    for (uint32_t w = 0; w < srv->n_workers; w++) {
        if (!(targets & (UINT64_C(1) << w)))
            continue;
        nb_event ev = {.type = NB_EV_DELIVER, .room = room, .seq = m->seq, .sample = sample};
        for (uint32_t c = 0; c < NB_MAX_CODECS; c++)
            if ((ev.frames[c] = frames[c]))
                buf_ref(frames[c]);
        room_ref(room);
        if (op != NB_OP_NONE && w == who.worker) {
            ev.op = op;
            ev.who = who;
            ev.rec = joinrec;
            ev.hist = hist;
            joinrec = NULL;
            hist = NULL;
        }
        post_deliver(p, w, room, &ev);
    }
    for (uint32_t c = 0; c < NB_MAX_CODECS; c++)
        buf_unref(frames[c]);
    record_unref(joinrec);
    history_free(hist);
    return 0;
}

/* Does a store or the broker hold history beyond the ring? */
int pipe_has_history(nb_server *srv) {
    return srv->writer || (srv->broker && context_broker_load(srv));
}

int pipe_post_load(nb_poster *p, nb_room *room, int has_since, uint64_t since) {
    nb_event ev = {.type = NB_EV_LOAD, .room = room, .seq = since, .flags = has_since ? 1u : 0u};
    room_ref(room);
    int rc = context_broker_load(p->srv) ? pipe_post_main(p, &ev) : pipe_post_writer(p, &ev);
    if (rc < 0)
        room_unref(room);
    return rc;
}

/* Shard lock held, on w's thread: send room's presence from w's timer
 * (worker.c), at most once per [server] presence_interval_ms — a room
 * larger than presence_batch_above filling or emptying would otherwise
 * send the whole user list to every member on every join and leave. */
static void presence_later_locked(nb_worker *w, nb_room *room) {
    const nb_settings *st = &w->server->settings;
    if (room->presence_pending)
        return; /* a worker will send it, with this change included */
    if (w->n_presence_due == w->cap_presence_due) {
        uint32_t cap = w->cap_presence_due ? w->cap_presence_due * 2 : 16;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        nb_room **due = realloc(w->presence_due, cap * sizeof *due);
        if (!due)
            return; /* no memory to batch: the next change sends it */
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

void pipeline_presence_locked(nb_poster *p, nb_room *room) {
    nb_server *srv = p->srv;
    if (context_broker_presence(srv))
        return; /* the broker sends the cluster's list */
    if (p->self && !p->presence_now && room->n_users > srv->settings.presence_batch_above) {
        presence_later_locked(p->self, room);
        return;
    }
    room->presence_pending = 0;
    nb_msg m = pipe_msg(NB_MSG_PRESENCE, room);
    m.ts = pipe_ts(room);
    m.seq = room->last_seq;
    nb_str empty;
    m.users = room_user_list(room, &m.n_users);
    if (!m.users)
        m.users = &empty; /* no users (or no memory): an empty list */
    pipe_emit_locked(p, room, &m, NB_OP_NONE, pipe_no_session(), 0, NULL, NULL);
    if (m.users != &empty)
        free((void *)m.users);
}

/* Tell the broker (up or down: it keeps this node's users for after an
 * outage) that user joined or left; no claim, nothing waits. */
void pipe_presence_hook(nb_poster *p, nb_room *room, const char *user, uint32_t len, uint32_t op) {
    if (!context_broker_claims(p->srv))
        return;
    nb_msg m = pipe_msg(NB_MSG_PRESENCE, room);
    m.sender = pipe_str(user, len);
    nb_event ev = {.type = NB_EV_PRESENCE, .op = op, .rec = record_new(&m)};
    if (!ev.rec || pipe_post_main(p, &ev) < 0) {
        record_unref(ev.rec);
        log_warn("room %s: the broker was not told that %.*s %s", room->name, (int)len, user,
                 op == NB_OP_JOIN ? "joined" : "left");
    }
}

/* An error for one session, through its worker's mailbox. */
void pipe_tell_session(nb_poster *p, nb_room *room, nb_sref who, uint32_t op, const char *code,
                       const char *reason) {
    if (!who.gen)
        return;
    nb_event ev = {.type = NB_EV_SESSION_ERROR,
                   .op = op,
                   .room = room,
                   .who = who,
                   .code = code,
                   .reason = reason};
    room_ref(room);
    if (mailbox_post(&p->srv->workers[who.worker].mailbox, &ev) < 0) {
        metrics_add(p->srv->m.mailbox_refused, 1);
        pipe_mark_lost(p->srv, room, who.worker);
        event_release(&ev);
        return;
    }
    p->wake |= UINT64_C(1) << who.worker;
}

/* ---- after the flush ---------------------------------------------------- */

void pipeline_forward(nb_server *srv, nb_poster *p, nb_event *ev, int ok) {
    nb_room *room = ev->room;
    hub_lock(srv->hub, room->hash);
    if (ev->is_message && !ok) {
        pipe_tell_session(p, room, ev->who, NB_OP_NONE, "store_unavailable",
                          "the message could not be stored and was not sent");
        hub_unlock(srv->hub, room->hash);
        event_release(ev);
        return;
    }
    if (ev->is_message)
        room_history_add(room, ev->rec);
    if (ev->hist && ev->hist->fill) {
        nb_history *h = room_history_snapshot(room, (int)ev->hist->has_since, ev->hist->since);
        if (h)
            h->incomplete |= ev->hist->incomplete;
        history_free(ev->hist);
        ev->hist = h;
    }
    hub_unlock(srv->hub, room->hash);
    nb_record *joinrec = NULL;
    if (!ev->is_message) {
        joinrec = ev->rec;
        ev->rec = NULL;
    }
    /* The sample passes from the FORWARD event to its deliveries. */
    bcast_sample_arm(ev->sample, (uint32_t)__builtin_popcountll(ev->targets));
    for (uint32_t w = 0; w < srv->n_workers; w++) {
        if (!(ev->targets & (UINT64_C(1) << w)))
            continue;
        nb_event d = {.type = NB_EV_DELIVER, .room = room, .seq = ev->seq, .sample = ev->sample};
        for (uint32_t c = 0; c < NB_MAX_CODECS; c++)
            if ((d.frames[c] = ev->frames[c]))
                buf_ref(ev->frames[c]);
        room_ref(room);
        if (ev->op != NB_OP_NONE && w == ev->who.worker) {
            d.op = ev->op;
            d.who = ev->who;
            d.rec = joinrec;
            d.hist = ev->hist;
            joinrec = NULL;
            ev->hist = NULL;
        }
        post_deliver(p, w, room, &d);
    }
    record_unref(joinrec);
    bcast_sample_release(ev->sample, 0);
    ev->sample = NULL;
    event_release(ev);
}
