#include "pipeline.h"

#include "buf.h"
#include "clock.h"
#include "fanout.h"
#include "hub.h"
#include "log.h"
#include "mailbox.h"

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
        mailbox_wake(srv->writer_mb);
    if (p->wake_main)
        mailbox_wake(srv->main_mb);
    p->wake_writer = p->wake_main = 0;
    if (p->self)
        p->self->drain(p->self);
}

static nb_str str_of(const char *p, uint32_t len) {
    return (nb_str){p, len, 0};
}

static nb_msg msg_new(uint32_t type, const nb_room *room) {
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = type;
    m.room = str_of(room->name, room->name_len);
    return m;
}

/* ts never goes backwards within a room. */
static int64_t room_ts(nb_room *room) {
    int64_t now = clock_now_ms();
    if (now < room->last_ts)
        now = room->last_ts;
    room->last_ts = now;
    return now;
}

/* Mark room lost for worker w: its members there missed an event. */
static void mark_lost(nb_server *srv, nb_room *room, uint32_t w) {
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
        mark_lost(srv, room, w);
        metrics_add(srv->m.mailbox_refused, 1);
        event_release(ev);
        return;
    }
    p->wake |= UINT64_C(1) << w;
}

static int post_writer(nb_poster *p, nb_event *ev) {
    if (mailbox_post(p->srv->writer_mb, ev) < 0) {
        metrics_add(p->srv->m.mailbox_refused, 1);
        return -1;
    }
    p->wake_writer = 1;
    return 0;
}

static int post_main(nb_poster *p, nb_event *ev) {
    if (mailbox_post(p->srv->main_mb, ev) < 0) {
        metrics_add(p->srv->m.mailbox_refused, 1);
        return -1;
    }
    p->wake_main = 1;
    return 0;
}

/* A room's first local member arrived, or its last left: (un)subscribe. */
static void post_room(nb_poster *p, nb_room *room, uint32_t type) {
    nb_event ev = {.type = type, .room = room};
    room_ref(room);
    if (post_main(p, &ev) < 0) {
        room_unref(room);
        log_warn("broker: could not queue a %s of room %s (main mailbox full)",
                 type == NB_EV_SUBSCRIBE ? "subscribe" : "unsubscribe", room->name);
    }
}

static nb_sref no_session(void) {
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
static int emit_locked(nb_poster *p, nb_room *room, const nb_msg *m, uint32_t op, nb_sref who,
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
        if (persist)
            record_ref(persist);
        room_ref(room);
        if (post_writer(p, &ev) < 0) {
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
                        mark_lost(srv, room, w);
            return persist ? -1 : 0;
        }
        if (persist)
            record_unref(joinrec);
        return 0;
    }
    for (uint32_t w = 0; w < srv->n_workers; w++) {
        if (!(targets & (UINT64_C(1) << w)))
            continue;
        nb_event ev = {.type = NB_EV_DELIVER, .room = room, .seq = m->seq};
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
static int has_history_source(nb_server *srv) {
    return srv->writer || (srv->broker && context_broker_load(srv));
}

static int post_load(nb_poster *p, nb_room *room, int has_since, uint64_t since) {
    nb_event ev = {.type = NB_EV_LOAD, .room = room, .seq = since, .flags = has_since ? 1u : 0u};
    room_ref(room);
    int rc = context_broker_load(p->srv) ? post_main(p, &ev) : post_writer(p, &ev);
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
    nb_msg m = msg_new(NB_MSG_PRESENCE, room);
    m.ts = room_ts(room);
    m.seq = room->last_seq;
    nb_str empty;
    m.users = room_user_list(room, &m.n_users);
    if (!m.users)
        m.users = &empty; /* no users (or no memory): an empty list */
    emit_locked(p, room, &m, NB_OP_NONE, no_session(), 0, NULL, NULL);
    if (m.users != &empty)
        free((void *)m.users);
}

static void presence_hook(nb_poster *p, nb_room *room, const char *user, uint32_t len,
                          uint32_t op) {
    if (!context_broker_presence(p->srv))
        return;
    nb_msg m = msg_new(NB_MSG_PRESENCE, room);
    m.sender = str_of(user, len);
    nb_event ev = {.type = NB_EV_PRESENCE, .op = op, .rec = record_new(&m)};
    if (!ev.rec || post_main(p, &ev) < 0) {
        record_unref(ev.rec);
        log_warn("room %s: the broker was not told that %.*s %s", room->name, (int)len, user,
                 op == NB_OP_JOIN ? "joined" : "left");
    }
}

/* ---- sequence: joins ---------------------------------------------------- */

/* 1 when the join had to wait for a since-load (room now LOADING). */
static int commit_join_locked(nb_poster *p, nb_room *room, const nb_pending *j) {
    nb_server *srv = p->srv;
    int has_since = (int)j->has_since;
    int epoch_differs = j->epoch[0] && strcmp(j->epoch, room->epoch) != 0;
    if (epoch_differs)
        has_since = 0; /* seq values of another epoch mean nothing here */
    nb_history *h = NULL;
    if (room->loaded) {
        h = room->loaded;
        room->loaded = NULL;
    } else if (has_since && j->since < room->hist_floor && j->since <= room->last_seq &&
               has_history_source(srv)) {
        if (post_load(p, room, 1, j->since) == 0) {
            room->state = NB_ROOM_LOADING;
            return 1;
        }
        /* no load possible: the ring, marked incomplete (below) */
    }
    if (!h) {
        if (srv->durable) {
            h = calloc(1, sizeof *h); /* filled from the ring after the flush */
            if (h) {
                h->fill = 1;
                h->has_since = (uint32_t)has_since;
                h->since = j->since;
            }
        } else {
            h = room_history_snapshot(room, has_since, j->since);
        }
    }
    if (h && epoch_differs)
        h->incomplete = 1;
    nb_msg m = msg_new(NB_MSG_JOIN, room);
    m.sender = str_of(j->user, j->user_len);
    m.ts = room_ts(room);
    m.seq = room->last_seq;
    emit_locked(p, room, &m, NB_OP_JOIN, j->who, j->codec, h, NULL);
    pipeline_presence_locked(p, room);
    presence_hook(p, room, j->user, j->user_len, NB_OP_JOIN);
    return 0;
}

static void commit_leave_locked(nb_poster *p, nb_room *room, const nb_pending *l) {
    nb_msg m = msg_new(NB_MSG_LEAVE, room);
    m.sender = str_of(l->user, l->user_len);
    m.ts = room_ts(room);
    m.seq = room->last_seq;
    uint32_t op = l->who.gen ? NB_OP_LEAVE : NB_OP_NONE;
    if (op != NB_OP_NONE || room->n_users)
        emit_locked(p, room, &m, op, l->who, l->codec, NULL, NULL);
    if (room->n_users)
        pipeline_presence_locked(p, room);
    presence_hook(p, room, l->user, l->user_len, NB_OP_LEAVE);
}

/* ---- sequence: messages ------------------------------------------------- */

/* An error for one session, through its worker's mailbox. */
static void tell_session(nb_poster *p, nb_room *room, nb_sref who, uint32_t op, const char *code,
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
        mark_lost(p->srv, room, who.worker);
        event_release(&ev);
        return;
    }
    p->wake |= UINT64_C(1) << who.worker;
}

/* Sequence a message (rec: room, sender, content, id set) and send it on.
 * seq: the broker's (mapped by remote_seq_locked), or 0 for the room's
 * next. origin: the sender, told if the store refuses it. NULL or an error
 * code. */
static const char *commit_message_locked(nb_poster *p, nb_room *room, const nb_record *in,
                                         uint64_t seq, nb_sref origin) {
    nb_server *srv = p->srv;
    nb_msg m;
    record_msg(in, NB_MSG_MESSAGE, &m);
    m.seq = seq ? seq : room->last_seq + 1;
    m.ts = room_ts(room);
    nb_record *rec = record_new(&m);
    if (!rec)
        return "internal";
    if (srv->writer && !srv->durable) {
        nb_event ev = {.type = NB_EV_APPEND, .rec = rec};
        record_ref(rec);
        if (post_writer(p, &ev) < 0) {
            record_unref(rec);
            record_unref(rec);
            return "store_unavailable";
        }
    }
    if (emit_locked(p, room, &m, NB_OP_NONE, origin, 0, NULL, srv->durable ? rec : NULL) < 0) {
        record_unref(rec);
        return "store_unavailable";
    }
    room->last_seq = m.seq;
    if (!srv->durable)
        room_history_add(room, rec);
    if (context_broker_up(srv) && !context_broker_sequences(srv) && !seq) {
        nb_event ev = {.type = NB_EV_PUBLISH, .rec = rec};
        record_ref(rec);
        if (post_main(p, &ev) < 0)
            record_unref(rec); /* counted; local members have it */
    }
    record_unref(rec);
    return NULL;
}

static void next_id(nb_server *srv, char *out, size_t outlen, uint32_t *len) {
    uint64_t n = atomic_fetch_add_explicit(&srv->next_id, 1, memory_order_relaxed) + 1;
    int k =
        snprintf(out, outlen, "%s-%" PRIx64 "-%" PRIx64, srv->settings.node_id, srv->id_epoch, n);
    *len = k < 0 ? 0 : (uint32_t)((size_t)k < outlen ? (size_t)k : outlen - 1);
}

const char *pipeline_message(nb_worker *w, nb_room *room, const char *user, uint32_t user_len,
                             const nb_str *content, nb_sref origin) {
    nb_server *srv = w->server;
    char id[200];
    uint32_t idlen;
    next_id(srv, id, sizeof id, &idlen);
    nb_msg m = msg_new(NB_MSG_MESSAGE, room);
    m.sender = str_of(user, user_len);
    m.content = *content;
    m.id = str_of(id, idlen);
    nb_record *rec = record_new(&m);
    if (!rec)
        return "internal";
    nb_poster p;
    poster_init(&p, srv, w);
    const char *err = NULL;
    if (context_broker_sequences(srv) && context_broker_up(srv)) {
        /* The broker decides the order: deliver when it comes back. */
        nb_event ev = {.type = NB_EV_PUBLISH, .rec = rec, .who = origin};
        if (post_main(&p, &ev) < 0) {
            record_unref(rec);
            err = "broker_unavailable";
        }
        poster_flush(&p);
        return err;
    }
    hub_lock(srv->hub, room->hash);
    if (room->state == NB_ROOM_LOADING) {
        nb_pending pend = {.kind = NB_PEND_MESSAGE, .rec = rec, .who = origin};
        if (room_backlog_push(room, &pend, srv->settings.room_backlog_events) < 0) {
            record_unref(rec);
            err = "busy";
        }
        rec = NULL;
    } else {
        err = commit_message_locked(&p, room, rec, 0, origin);
    }
    hub_unlock(srv->hub, room->hash);
    record_unref(rec);
    poster_flush(&p);
    return err;
}

/*
 * The seq of a message a sequencing broker gave back (b), in the room's
 * order; UINT64_MAX for one already delivered (b at or below the last the
 * broker gave). While the broker was down the room was sequenced locally,
 * so the broker's numbers may have fallen behind the room's: they are then
 * shifted past it, and the room's epoch changes with the shift, so that a
 * client's `since` from before is known not to mean the same any more.
 * A relaying broker's messages just take the room's next seq (0).
 */
static uint64_t remote_seq_locked(nb_server *srv, nb_room *room, uint64_t b) {
    if (!context_broker_sequences(srv))
        return 0;
    if (b <= room->broker_seq)
        return UINT64_MAX;
    room->broker_seq = b;
    if (b + room->seq_offset <= room->last_seq) {
        room->seq_offset = room->last_seq + 1 - b;
        size_t n = strcspn(room->epoch, "+");
        snprintf(room->epoch + n, sizeof room->epoch - n, "+%" PRIx64, room->seq_offset);
        log_info("room %s: the broker's order resumes after local sequencing; new epoch %s",
                 room->name, room->epoch);
    }
    return b + room->seq_offset;
}

/* ---- membership --------------------------------------------------------- */

static void pending_join(nb_pending *j, const nb_join_req *req) {
    memset(j, 0, sizeof *j);
    j->kind = NB_PEND_JOIN;
    j->who = req->who;
    j->has_since = req->has_since;
    j->since = req->since;
    memcpy(j->user, req->user, req->user_len);
    j->user_len = req->user_len;
    j->codec = req->codec;
    if (req->epoch.ptr && req->epoch.len && req->epoch.len < sizeof j->epoch)
        memcpy(j->epoch, req->epoch.ptr, req->epoch.len);
}

static void room_init_epoch(nb_server *srv, nb_room *room) {
    snprintf(room->epoch, sizeof room->epoch, "%s", srv->epoch);
}

int pipeline_join(nb_poster *p, const nb_join_req *req, nb_room **room_out) {
    nb_worker *w = p->self;
    nb_server *srv = p->srv;
    uint32_t hash = hub_hash(req->room, req->room_len);
    int rc = NB_JOIN_OK;
    hub_lock(srv->hub, hash);
    nb_room *room = hub_find_locked(srv->hub, req->room, req->room_len, hash);
    int created = 0;
    if (room && room_has_user(room, req->user, req->user_len)) {
        hub_unlock(srv->hub, hash);
        return NB_JOIN_TAKEN;
    }
    if (!room) {
        room = hub_get_locked(srv->hub, req->room, req->room_len, hash);
        created = room != NULL;
    }
    if (!room || room_add_user(room, req->user, req->user_len, w->index, req->codec) < 0) {
        if (room && !room->n_users)
            hub_remove_locked(srv->hub, room);
        hub_unlock(srv->hub, hash);
        return NB_JOIN_NOMEM;
    }
    if (created) {
        room_init_epoch(srv, room);
        if (srv->broker)
            post_room(p, room, NB_EV_SUBSCRIBE);
        if (has_history_source(srv)) {
            if (post_load(p, room, 0, 0) < 0)
                rc = NB_JOIN_BUSY;
            else
                room->state = NB_ROOM_LOADING;
        }
    }
    nb_pending j;
    pending_join(&j, req);
    if (rc == NB_JOIN_OK && room->state == NB_ROOM_LOADING) {
        if (room_backlog_push(room, &j, srv->settings.room_backlog_events) < 0)
            rc = NB_JOIN_BUSY;
    } else if (rc == NB_JOIN_OK && commit_join_locked(p, room, &j)) {
        room_backlog_push(room, &j, UINT32_MAX); /* first in the backlog */
    }
    if (rc != NB_JOIN_OK) {
        room_remove_user(room, req->user, req->user_len, w->index, req->codec);
        if (!room->n_users && room->state == NB_ROOM_READY)
            hub_remove_locked(srv->hub, room);
        hub_unlock(srv->hub, hash);
        return rc;
    }
    room_ref(room);
    *room_out = room;
    hub_unlock(srv->hub, hash);
    metrics_set(srv->m.rooms, hub_room_count(srv->hub));
    return NB_JOIN_OK;
}

void pipeline_leave(nb_worker *w, nb_room *room, const char *user, uint32_t user_len,
                    uint32_t codec, nb_sref who) {
    nb_server *srv = w->server;
    nb_poster p;
    poster_init(&p, srv, w);
    hub_lock(srv->hub, room->hash);
    room_remove_user(room, user, user_len, w->index, codec);
    nb_pending l = {.kind = NB_PEND_LEAVE, .who = who, .codec = codec};
    memcpy(l.user, user, user_len);
    l.user_len = user_len;
    if (atomic_load(&srv->draining)) {
        /* Shutting down: no one is told; the session just goes. */
    } else if (room->state == NB_ROOM_LOADING) {
        /* A full backlog must not keep a leaver a member: if it is full,
         * the leave is sequenced now (its members learn it from the next
         * presence). */
        if (room_backlog_push(room, &l, srv->settings.room_backlog_events) < 0)
            room_backlog_push(room, &l, UINT32_MAX);
    } else {
        commit_leave_locked(&p, room, &l);
    }
    if (!room->n_users && room->state == NB_ROOM_READY) {
        if (srv->broker)
            post_room(&p, room, NB_EV_UNSUBSCRIBE);
        hub_remove_locked(srv->hub, room); /* its history lives on in the store */
    }
    hub_unlock(srv->hub, room->hash);
    metrics_set(srv->m.rooms, hub_room_count(srv->hub));
    poster_flush(&p);
}

/* ---- loading ------------------------------------------------------------ */

/* The room's first load failed: every event waiting fails with it. */
static void fail_backlog_locked(nb_poster *p, nb_room *room) {
    for (uint32_t i = 0; i < room->n_backlog; i++) {
        nb_pending *b = &room->backlog[i];
        if (b->kind == NB_PEND_JOIN) {
            room_remove_user(room, b->user, b->user_len, b->who.worker, b->codec);
            tell_session(p, room, b->who, NB_OP_JOIN, "store_unavailable",
                         "the room's history could not be loaded; try again");
        } else if (b->kind == NB_PEND_MESSAGE) {
            tell_session(p, room, b->who, NB_OP_NONE, "store_unavailable",
                         "the message was not sent: the room's history could not be loaded");
        } else if (b->kind == NB_PEND_LEAVE) {
            tell_session(p, room, b->who, NB_OP_LEAVE, NULL, NULL);
        }
        record_unref(b->rec);
    }
    room->n_backlog = 0;
}

/* Sequence the backlog in order until it is empty or a join needs a load. */
static void run_backlog_locked(nb_poster *p, nb_room *room) {
    nb_server *srv = p->srv;
    uint32_t i = 0;
    while (i < room->n_backlog && room->state == NB_ROOM_READY) {
        nb_pending *b = &room->backlog[i];
        const char *err = NULL;
        switch (b->kind) {
        case NB_PEND_JOIN:
            if (commit_join_locked(p, room, b))
                continue; /* LOADING again: this join stays first */
            break;
        case NB_PEND_LEAVE:
            commit_leave_locked(p, room, b);
            break;
        case NB_PEND_MESSAGE:
            err = commit_message_locked(p, room, b->rec, 0, b->who);
            if (err)
                tell_session(p, room, b->who, NB_OP_NONE, err, "the message was not sent");
            break;
        default: { /* NB_PEND_REMOTE */
            uint64_t seq = remote_seq_locked(srv, room, b->rec->seq);
            if (seq != UINT64_MAX)
                commit_message_locked(p, room, b->rec, seq, no_session());
            break;
        }
        }
        record_unref(b->rec);
        i++;
    }
    memmove(room->backlog, room->backlog + i, (room->n_backlog - i) * sizeof *room->backlog);
    room->n_backlog -= i;
}

void pipeline_loaded(nb_server *srv, nb_room *room, int ok, const nb_store_result *res,
                     nb_history *hist, int was_since) {
    nb_poster p;
    poster_init(&p, srv, NULL);
    hub_lock(srv->hub, room->hash);
    if (was_since) {
        if (!ok) {
            history_free(hist);
            hist = room_history_snapshot(room, 0, 0);
            if (hist)
                hist->incomplete = 1;
        }
        history_free(room->loaded);
        room->loaded = hist;
        room->state = NB_ROOM_READY;
    } else if (ok) {
        if (res->last_seq > room->last_seq)
            room->last_seq = res->last_seq;
        if (context_broker_load(srv)) /* the broker's own numbers */
            room->broker_seq = res->last_seq;
        if (res->epoch && res->epoch[0])
            snprintf(room->epoch, sizeof room->epoch, "%s", res->epoch);
        for (uint32_t i = 0; hist && i < hist->n; i++)
            room_history_add(room, hist->items[i]);
        room->hist_floor = hist && hist->n ? hist->items[0]->seq - 1 : room->last_seq;
        history_free(hist);
        room->state = NB_ROOM_READY;
    } else {
        history_free(hist);
        metrics_add(srv->m.store_failures, 1);
        log_error("room %s: its history could not be loaded; its joins and messages fail with "
                  "store_unavailable",
                  room->name);
        fail_backlog_locked(&p, room);
        room->state = NB_ROOM_READY;
    }
    run_backlog_locked(&p, room);
    if (!room->n_users && room->state == NB_ROOM_READY && !room->n_backlog) {
        if (srv->broker)
            post_room(&p, room, NB_EV_UNSUBSCRIBE);
        hub_remove_locked(srv->hub, room);
    }
    hub_unlock(srv->hub, room->hash);
    metrics_set(srv->m.rooms, hub_room_count(srv->hub));
    poster_flush(&p);
}

/* ---- from the broker ---------------------------------------------------- */

void pipeline_remote(nb_server *srv, const nb_msg *msg) {
    if (!msg || !msg->room.ptr || !name_valid(msg->room.ptr, msg->room.len, NB_ROOM_MAX))
        return;
    uint32_t hash = hub_hash(msg->room.ptr, msg->room.len);
    nb_poster p;
    poster_init(&p, srv, NULL);
    hub_lock(srv->hub, hash);
    nb_room *room = hub_find_locked(srv->hub, msg->room.ptr, msg->room.len, hash);
    int sequences = context_broker_sequences(srv);
    if (!room) {
        /* no member here */
    } else if (msg->type == NB_MSG_PRESENCE) {
        nb_msg m = *msg;
        m.seq = room->last_seq;
        m.ts = room_ts(room);
        emit_locked(&p, room, &m, NB_OP_NONE, no_session(), 0, NULL, NULL);
    } else if (msg->type == NB_MSG_MESSAGE && msg->sender.ptr && msg->content.ptr &&
               (!sequences || msg->seq > room->broker_seq || room->state == NB_ROOM_LOADING)) {
        nb_record *rec = record_new(msg);
        if (!rec) {
            log_error("room %s: out of memory taking a message from the broker", room->name);
        } else if (room->state == NB_ROOM_LOADING) {
            nb_pending pend = {.kind = NB_PEND_REMOTE, .rec = rec};
            if (room_backlog_push(room, &pend, srv->settings.room_backlog_events) < 0) {
                record_unref(rec);
                for (uint32_t w = 0; w < srv->n_workers; w++)
                    mark_lost(srv, room, w);
                metrics_add(srv->m.mailbox_refused, 1);
            }
        } else {
            uint64_t seq = remote_seq_locked(srv, room, msg->seq);
            if (seq != UINT64_MAX && commit_message_locked(&p, room, rec, seq, no_session()))
                for (uint32_t w = 0; w < srv->n_workers; w++)
                    mark_lost(srv, room, w);
            record_unref(rec);
        }
    }
    hub_unlock(srv->hub, hash);
    poster_flush(&p);
}

/* ---- after the flush ---------------------------------------------------- */

void pipeline_forward(nb_server *srv, nb_poster *p, nb_event *ev, int ok) {
    nb_room *room = ev->room;
    hub_lock(srv->hub, room->hash);
    if (ev->is_message && !ok) {
        tell_session(p, room, ev->who, NB_OP_NONE, "store_unavailable",
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
    for (uint32_t w = 0; w < srv->n_workers; w++) {
        if (!(ev->targets & (UINT64_C(1) << w)))
            continue;
        nb_event d = {.type = NB_EV_DELIVER, .room = room, .seq = ev->seq};
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
    event_release(ev);
}
