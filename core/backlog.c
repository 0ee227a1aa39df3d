/*
 * backlog.c — a room whose history is loading (from the store or the
 * broker) keeps its events in a bounded backlog; when the history arrives
 * it is sequenced in order, or, when the load failed, answered.
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

/* ---- loading ------------------------------------------------------------ */

/* The room's first load failed: every event waiting fails with it. */
static void fail_backlog_locked(nb_poster *p, nb_room *room) {
    for (uint32_t i = 0; i < room->n_backlog; i++) {
        nb_pending *b = &room->backlog[i];
        if (b->kind == NB_PEND_JOIN) {
            room_remove_user(room, b->user, b->user_len, b->who.worker, b->codec);
            pipe_tell_session(p, room, b->who, NB_OP_JOIN, "store_unavailable",
                              "the room's history could not be loaded; try again");
        } else if (b->kind == NB_PEND_MESSAGE) {
            pipe_tell_session(p, room, b->who, NB_OP_NONE, "store_unavailable",
                              "the message was not sent: the room's history could not be loaded");
        } else if (b->kind == NB_PEND_LEAVE) {
            pipe_tell_session(p, room, b->who, NB_OP_LEAVE, NULL, NULL);
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
            if (pipe_commit_join_locked(p, room, b))
                continue; /* LOADING again: this join stays first */
            break;
        case NB_PEND_LEAVE:
            pipe_commit_leave_locked(p, room, b);
            break;
        case NB_PEND_MESSAGE:
            err = pipe_commit_message_locked(p, room, b->rec, 0, b->who);
            if (err)
                pipe_tell_session(p, room, b->who, NB_OP_NONE, err, "the message was not sent");
            break;
        default: { /* NB_PEND_REMOTE */
            uint64_t seq = pipe_remote_seq_locked(srv, room, b->rec->seq);
            if (seq != UINT64_MAX)
                pipe_commit_message_locked(p, room, b->rec, seq, pipe_no_session());
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
        if (context_broker_load(srv)) { /* the broker's own numbers */
            room->broker_seq = res->last_seq;
            snprintf(room->broker_epoch, sizeof room->broker_epoch, "%s",
                     res->epoch ? res->epoch : "");
        }
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
            pipe_post_room(&p, room, NB_EV_UNSUBSCRIBE);
        hub_remove_locked(srv->hub, room);
    }
    hub_unlock(srv->hub, room->hash);
    metrics_set(srv->m.rooms, hub_room_count(srv->hub));
    poster_flush(&p);
}

/* ---- catching up after the broker was down ------------------------------ */

int pipeline_catch_up_begin(nb_server *srv, nb_room *room) {
    hub_lock(srv->hub, room->hash);
    int ok = room->state == NB_ROOM_READY && room->n_users;
    if (ok)
        room->state = NB_ROOM_LOADING; /* events wait until the bus's history is in */
    hub_unlock(srv->hub, room->hash);
    return ok ? 0 : -1;
}

/*
 * The bus's newest history for a room that lived on while the broker was
 * down (or this node could not reach it). Messages this node missed are
 * delivered as live ones, in the broker's order: those after broker_seq
 * when the bus still has the same epoch; when its epoch changed (the bus
 * lost its data, or the room was first loaded from the store), the
 * broker's numbers start again and every message not already in the
 * room's ring (by id) is new here. What waited meanwhile follows.
 */
void pipeline_caught_up(nb_server *srv, nb_room *room, int ok, const nb_store_result *res,
                        const nb_msg *msgs, uint32_t n) {
    nb_poster p;
    poster_init(&p, srv, NULL);
    hub_lock(srv->hub, room->hash);
    if (ok && res) {
        const char *epoch = res->epoch ? res->epoch : "";
        int same = room->broker_epoch[0] && strcmp(epoch, room->broker_epoch) == 0;
        if (!same) {
            room->broker_seq = 0;
            snprintf(room->broker_epoch, sizeof room->broker_epoch, "%s", epoch);
        }
        uint32_t missed = 0;
        for (uint32_t i = 0; i < n; i++) {
            const nb_msg *m = &msgs[i];
            if (m->seq <= room->broker_seq || !m->sender.ptr || !m->content.ptr)
                continue;
            if (!same && m->id.ptr && room_history_has_id(room, m->id.ptr, m->id.len)) {
                room->broker_seq = m->seq; /* delivered here before */
                continue;
            }
            nb_record *rec = record_new(m);
            uint64_t seq = rec ? pipe_remote_seq_locked(srv, room, m->seq) : UINT64_MAX;
            if (seq != UINT64_MAX &&
                !pipe_commit_message_locked(&p, room, rec, seq, pipe_no_session()))
                missed++;
            record_unref(rec);
        }
        if (missed)
            log_info("room %s: %u message(s) from the bus caught up after the broker was back",
                     room->name, missed);
    } else {
        log_warn("room %s: could not catch up with the bus after the broker was back; "
                 "messages sent elsewhere meanwhile are missing here",
                 room->name);
    }
    room->state = NB_ROOM_READY;
    run_backlog_locked(&p, room);
    if (!room->n_users && room->state == NB_ROOM_READY && !room->n_backlog) {
        pipe_post_room(&p, room, NB_EV_UNSUBSCRIBE);
        hub_remove_locked(srv->hub, room);
    }
    hub_unlock(srv->hub, room->hash);
    metrics_set(srv->m.rooms, hub_room_count(srv->hub));
    poster_flush(&p);
}
