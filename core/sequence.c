/*
 * sequence.c — the sequence stage: under the room's shard lock, a join, a
 * leave or a message takes its place in the room's order (seq, ts, the
 * room's position), or waits in the backlog while the room's history
 * loads; with a sequencing broker, a message is published first and
 * sequenced when it comes back (pipeline_remote).
 */
#include "pipeline.h"

#include "buf.h"
#include "clock.h"
#include "fanout.h"
#include "hub.h"
#include "log.h"
#include "mailbox.h"
#include "pipeline_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sequence: joins ---------------------------------------------------- */

/* 1 when the join had to wait for a since-load (room now LOADING). */
int pipe_commit_join_locked(nb_poster *p, nb_room *room, const nb_pending *j) {
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
               pipe_has_history(srv)) {
        if (pipe_post_load(p, room, 1, j->since) == 0) {
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
    nb_msg m = pipe_msg(NB_MSG_JOIN, room);
    m.sender = pipe_str(j->user, j->user_len);
    m.ts = pipe_ts(room);
    m.seq = room->last_seq;
    pipe_emit_locked(p, room, &m, NB_OP_JOIN, j->who, j->codec, h, NULL);
    pipeline_presence_locked(p, room);
    if (!j->claimed) /* a claim registered the name already */
        pipe_presence_hook(p, room, j->user, j->user_len, NB_OP_JOIN);
    return 0;
}

void pipe_commit_leave_locked(nb_poster *p, nb_room *room, const nb_pending *l) {
    nb_msg m = pipe_msg(NB_MSG_LEAVE, room);
    m.sender = pipe_str(l->user, l->user_len);
    m.ts = pipe_ts(room);
    m.seq = room->last_seq;
    uint32_t op = l->who.gen ? NB_OP_LEAVE : NB_OP_NONE;
    if (op != NB_OP_NONE || room->n_users)
        pipe_emit_locked(p, room, &m, op, l->who, l->codec, NULL, NULL);
    if (room->n_users)
        pipeline_presence_locked(p, room);
    pipe_presence_hook(p, room, l->user, l->user_len, NB_OP_LEAVE);
}

/* ---- sequence: messages ------------------------------------------------- */

/* Sequence a message (rec: room, sender, content, id set) and send it on.
 * seq: the broker's (mapped by pipe_remote_seq_locked), or 0 for the room's
 * next. origin: the sender, told if the store refuses it. NULL or an error
 * code. */
const char *pipe_commit_message_locked(nb_poster *p, nb_room *room, const nb_record *in,
                                       uint64_t seq, nb_sref origin) {
    nb_server *srv = p->srv;
    nb_msg m;
    record_msg(in, NB_MSG_MESSAGE, &m);
    m.seq = seq ? seq : room->last_seq + 1;
    if (in->ts) { /* a broker's time (one clock for the cluster), never going back */
        m.ts = in->ts > room->last_ts ? in->ts : room->last_ts;
        room->last_ts = m.ts;
    } else {
        m.ts = pipe_ts(room);
    }
    nb_record *rec = record_new(&m);
    if (!rec)
        return "internal";
    if (srv->writer && !srv->durable) {
        nb_event ev = {.type = NB_EV_APPEND, .rec = rec};
        record_ref(rec);
        if (pipe_post_writer(p, &ev) < 0) {
            record_unref(rec);
            record_unref(rec);
            return "store_unavailable";
        }
    }
    if (pipe_emit_locked(p, room, &m, NB_OP_NONE, origin, 0, NULL, srv->durable ? rec : NULL) < 0) {
        record_unref(rec);
        return "store_unavailable";
    }
    room->last_seq = m.seq;
    if (!srv->durable)
        room_history_add(room, rec);
    if (context_broker_up(srv) && !context_broker_sequences(srv) && !seq) {
        nb_event ev = {.type = NB_EV_PUBLISH, .rec = rec};
        record_ref(rec);
        if (pipe_post_main(p, &ev) < 0)
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
    nb_msg m = pipe_msg(NB_MSG_MESSAGE, room);
    m.sender = pipe_str(user, user_len);
    m.content = *content;
    m.id = pipe_str(id, idlen);
    nb_record *rec = record_new(&m);
    if (!rec)
        return "internal";
    nb_poster p;
    poster_init(&p, srv, w);
    const char *err = NULL;
    if (context_broker_sequences(srv) && context_broker_up(srv)) {
        /* The broker decides the order: deliver when it comes back. */
        nb_event ev = {.type = NB_EV_PUBLISH, .rec = rec, .who = origin};
        if (pipe_post_main(&p, &ev) < 0) {
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
            pipe_refused(srv, "a room's backlog", "room_backlog_events");
            err = "busy";
        }
        rec = NULL;
    } else {
        err = pipe_commit_message_locked(&p, room, rec, 0, origin);
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
uint64_t pipe_remote_seq_locked(nb_server *srv, nb_room *room, uint64_t b) {
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
    j->on_connect = req->on_connect;
    if (req->epoch.ptr && req->epoch.len && req->epoch.len < sizeof j->epoch)
        memcpy(j->epoch, req->epoch.ptr, req->epoch.len);
}

/* Ask the broker to claim j's name in room (main mailbox); 0 or -1. */
static int post_claim(nb_poster *p, nb_room *room, const nb_pending *j) {
    nb_msg m = pipe_msg(NB_MSG_PRESENCE, room);
    m.sender = pipe_str(j->user, j->user_len);
    nb_event ev = {.type = NB_EV_PRESENCE, .op = NB_OP_JOIN, .room = room};
    ev.rec = record_new(&m);
    ev.pend = malloc(sizeof *ev.pend);
    room_ref(room);
    if (!ev.rec || !ev.pend || pipe_post_main(p, &ev) < 0) {
        event_release(&ev);
        return -1;
    }
    *ev.pend = *j;
    return 0;
}

static int same_session(nb_sref a, nb_sref b) {
    return a.gen == b.gen && a.slot == b.slot && a.worker == b.worker;
}

/* A join refused for its name: the joiner gets username_taken (closed when
 * it was the connect URL's room, as a local duplicate is). */
static void tell_taken(nb_poster *p, nb_room *room, const nb_pending *j) {
    nb_event ev = {.type = NB_EV_SESSION_ERROR,
                   .op = NB_OP_JOIN,
                   .room = room,
                   .who = j->who,
                   .code = "username_taken",
                   .reason = "this username is already in the room",
                   .flags = j->on_connect ? NB_EVF_CLOSE_TAKEN : 0};
    room_ref(room);
    if (mailbox_post(&p->srv->workers[j->who.worker].mailbox, &ev) < 0) {
        metrics_add(p->srv->m.mailbox_refused, 1);
        pipe_mark_lost(p->srv, room, j->who.worker);
        event_release(&ev);
        return;
    }
    p->wake |= UINT64_C(1) << j->who.worker;
}

void pipeline_claimed(nb_server *srv, nb_room *room, const nb_pending *j, int32_t status) {
    nb_poster p;
    poster_init(&p, srv, NULL);
    hub_lock(srv->hub, room->hash);
    nb_room_user *u = room_find_user(room, j->user, j->user_len);
    if (!u || !same_session(u->claim, j->who)) {
        /* The joiner left meanwhile; its leave gave the name back. */
    } else if (status == NB_ERR_TAKEN) {
        room_remove_user(room, j->user, j->user_len, j->who.worker, j->codec);
        tell_taken(&p, room, j);
        if (!room->n_users && room->state == NB_ROOM_READY) {
            pipe_post_room(&p, room, NB_EV_UNSUBSCRIBE);
            hub_remove_locked(srv->hub, room);
        }
    } else {
        u->claim = pipe_no_session();
        nb_pending jj = *j;
        jj.claimed = status == NB_OK;
        if (status != NB_OK)
            log_warn("room %s: the broker could not claim the name %s (code %d); the join goes "
                     "on with this node's check only",
                     room->name, j->user, (int)status);
        if (room->state == NB_ROOM_LOADING) {
            if (room_backlog_push(room, &jj, srv->settings.room_backlog_events) < 0) {
                room_remove_user(room, j->user, j->user_len, j->who.worker, j->codec);
                pipe_refused(srv, "a room's backlog", "room_backlog_events");
                pipe_tell_session(&p, room, j->who, NB_OP_JOIN, "busy",
                                  "the server is busy; try again");
            }
        } else if (pipe_commit_join_locked(&p, room, &jj)) {
            room_backlog_push(room, &jj, UINT32_MAX); /* first in the backlog */
        }
    }
    hub_unlock(srv->hub, room->hash);
    metrics_set(srv->m.rooms, hub_room_count(srv->hub));
    poster_flush(&p);
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
            pipe_post_room(p, room, NB_EV_SUBSCRIBE);
        if (pipe_has_history(srv)) {
            if (pipe_post_load(p, room, 0, 0) < 0)
                rc = NB_JOIN_BUSY;
            else
                room->state = NB_ROOM_LOADING;
        }
    }
    nb_pending j;
    pending_join(&j, req);
    if (rc == NB_JOIN_OK && context_broker_presence(srv)) {
        /* The name must be free across the cluster: the join waits for the
         * broker's claim (pipeline_claimed), holding the name here. */
        if (post_claim(p, room, &j) < 0)
            rc = NB_JOIN_BUSY;
        else
            room_find_user(room, req->user, req->user_len)->claim = req->who;
    } else if (rc == NB_JOIN_OK && room->state == NB_ROOM_LOADING) {
        if (room_backlog_push(room, &j, srv->settings.room_backlog_events) < 0) {
            pipe_refused(srv, "a room's backlog", "room_backlog_events");
            rc = NB_JOIN_BUSY;
        }
    } else if (rc == NB_JOIN_OK && pipe_commit_join_locked(p, room, &j)) {
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
    const nb_room_user *u = room_find_user(room, user, user_len);
    int claiming = u && u->claim.gen;
    room_remove_user(room, user, user_len, w->index, codec);
    nb_pending l = {.kind = NB_PEND_LEAVE, .who = who, .codec = codec};
    memcpy(l.user, user, user_len);
    l.user_len = user_len;
    if (atomic_load(&srv->draining)) {
        /* Shutting down: no one is told; the session just goes. */
    } else if (claiming) {
        /* It never joined (its claim is still out): nobody saw it, so no
         * leave event; the broker gets the name back after the claim. */
        pipe_presence_hook(&p, room, user, user_len, NB_OP_LEAVE);
        pipe_tell_session(&p, room, who, NB_OP_LEAVE, NULL, NULL);
    } else if (room->state == NB_ROOM_LOADING) {
        /* A full backlog must not keep a leaver a member: if it is full,
         * the leave is sequenced now (its members learn it from the next
         * presence). */
        if (room_backlog_push(room, &l, srv->settings.room_backlog_events) < 0)
            room_backlog_push(room, &l, UINT32_MAX);
    } else {
        pipe_commit_leave_locked(&p, room, &l);
    }
    if (!room->n_users && room->state == NB_ROOM_READY) {
        if (srv->broker)
            pipe_post_room(&p, room, NB_EV_UNSUBSCRIBE);
        hub_remove_locked(srv->hub, room); /* its history lives on in the store */
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
    } else if (msg->type == NB_MSG_PRESENCE ||
               ((msg->type == NB_MSG_JOIN || msg->type == NB_MSG_LEAVE) && msg->sender.ptr)) {
        /* the cluster's list, or another node's user joining or leaving */
        nb_msg m = *msg;
        m.seq = room->last_seq;
        m.ts = pipe_ts(room);
        pipe_emit_locked(&p, room, &m, NB_OP_NONE, pipe_no_session(), 0, NULL, NULL);
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
                    pipe_mark_lost(srv, room, w);
                pipe_refused(srv, "a room's backlog", "room_backlog_events");
            }
        } else {
            uint64_t seq = pipe_remote_seq_locked(srv, room, msg->seq);
            if (seq != UINT64_MAX &&
                pipe_commit_message_locked(&p, room, rec, seq, pipe_no_session()))
                for (uint32_t w = 0; w < srv->n_workers; w++)
                    pipe_mark_lost(srv, room, w);
            record_unref(rec);
        }
    }
    hub_unlock(srv->hub, hash);
    poster_flush(&p);
}
