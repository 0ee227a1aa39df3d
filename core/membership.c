/*
 * membership.c — a session's rooms.
 *
 * A join or leave is decided on the session's worker (pipeline_join,
 * pipeline_leave sequence it under the room's shard lock) but takes effect
 * when the room's order reaches it on this worker (deliver.c): a joiner
 * becomes a local member at its own join event — after its history, and
 * before anything sequenced later — and a leaver stops after its own leave
 * event. So a joiner never gets a message twice (once in history, once
 * live) nor misses one in between, and a leaver gets everything sequenced
 * before its leave and nothing after.
 */
#include "membership.h"

#include "abuse.h"
#include "closecodes.h"
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

int membership_find(const nb_session *s, const char *room, uint32_t len) {
    for (uint32_t i = 0; i < s->n_rooms; i++) {
        const nb_room *r = s->rooms[i].room;
        if (s->rooms[i].state != NB_SLOT_LEAVING && r->name_len == len &&
            memcmp(r->name, room, len) == 0)
            return (int)i;
    }
    return -1;
}

static uint32_t rooms_held(const nb_session *s) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n_rooms; i++)
        n += s->rooms[i].state != NB_SLOT_LEAVING;
    return n;
}

static void remove_slot(nb_session *s, uint32_t slot) {
    room_unref(s->rooms[slot].room);
    s->rooms[slot] = s->rooms[--s->n_rooms];
}

void membership_join(nb_session *s, const char *name, uint32_t len, const nb_msg *req,
                     int on_connect) {
    nb_worker *w = s->worker;
    nb_server *srv = w->server;
    nb_str room_str = {name, len, 0};
    if (membership_find(s, name, len) >= 0) {
        session_error(s, "already_joined", "you are already in this room", &room_str);
        return;
    }
    if (rooms_held(s) >= srv->settings.rooms_per_connection) {
        session_error(s, "too_many_rooms", "leave a room before joining another", &room_str);
        return;
    }
    if (s->n_rooms == s->cap_rooms) {
        uint32_t cap = s->cap_rooms ? s->cap_rooms * 2 : 2;
        nb_session_room *r = realloc(s->rooms, cap * sizeof *r);
        if (!r) {
            session_error(s, "internal", "out of memory", &room_str);
            return;
        }
        s->rooms = r;
        s->cap_rooms = cap;
    }
    nb_join_req jr = {.room = name,
                      .room_len = len,
                      .user = s->user,
                      .user_len = s->user_len,
                      .codec = s->codec,
                      .who = s->ref,
                      .on_connect = (uint32_t)on_connect};
    if (req && (req->flags & NB_MSG_F_SINCE)) {
        jr.has_since = 1;
        jr.since = req->since;
        jr.epoch = req->epoch;
    } else if (!req && s->first && s->first->has_since) {
        jr.has_since = 1;
        jr.since = s->first->since;
        jr.epoch = (nb_str){s->first->epoch, (uint32_t)strlen(s->first->epoch), 0};
    }
    nb_poster p;
    poster_init(&p, srv, w);
    nb_room *room = NULL;
    int rc = pipeline_join(&p, &jr, &room);
    if (rc == NB_JOIN_OK) /* before the flush, which may deliver the join at once */
        s->rooms[s->n_rooms++] = (nb_session_room){.room = room, .state = NB_SLOT_JOINING};
    poster_flush(&p);
    if (rc == NB_JOIN_TAKEN) {
        session_error(s, "username_taken", "this username is already in the room", &room_str);
        if (on_connect)
            session_close(s, NB_CLOSE_NAME_TAKEN, "username taken");
    } else if (rc == NB_JOIN_NOMEM) {
        session_error(s, "internal", "out of memory", &room_str);
    } else if (rc == NB_JOIN_BUSY) {
        session_error_frame(s, "busy", "the server is busy; try again", &room_str);
    }
}

void membership_leave(nb_session *s, uint32_t slot) {
    nb_session_room *r = &s->rooms[slot];
    r->state = NB_SLOT_LEAVING; /* a member until the leave is delivered */
    pipeline_leave(s->worker, r->room, s->user, s->user_len, s->codec, s->ref);
}

void membership_leave_all(nb_session *s) {
    nb_worker *w = s->worker;
    nb_sref gone = {0, 0, 0};
    while (s->n_rooms) {
        nb_session_room *r = &s->rooms[s->n_rooms - 1];
        nb_room *room = r->room;
        if (r->has_member)
            room_local_remove(room, w->index, s);
        uint32_t state = r->state;
        s->n_rooms--;
        if (state != NB_SLOT_LEAVING)
            pipeline_leave(w, room, s->user, s->user_len, s->codec, gone);
        room_unref(room);
    }
}

static int slot_of(const nb_session *s, const nb_room *room, uint32_t state, int has_member) {
    for (uint32_t i = 0; i < s->n_rooms; i++)
        if (s->rooms[i].room == room && s->rooms[i].state == state &&
            s->rooms[i].has_member == has_member)
            return (int)i;
    return -1;
}

void membership_joined(nb_session *s, nb_room *room, const nb_record *join, nb_history *hist) {
    int slot = slot_of(s, room, NB_SLOT_JOINING, 0);
    if (slot < 0)
        slot = slot_of(s, room, NB_SLOT_LEAVING, 0); /* left before the join got here */
    if (slot < 0 || s->state != NB_SESSION_OPEN)
        return;
    nb_msg m;
    for (uint32_t i = 0; hist && i < hist->n; i++) {
        record_msg(hist->items[i], NB_MSG_HISTORY, &m);
        session_send_msg(s, &m);
    }
    if (join) {
        /* The joiner's own join event: where its history ends, and the
         * room's epoch (docs/PROTOCOL.md). */
        record_msg(join, NB_MSG_JOIN, &m);
        m.content = (nb_str){NULL, 0, 0};
        m.id = (nb_str){NULL, 0, 0};
        if (hist && hist->epoch[0])
            m.epoch = (nb_str){hist->epoch, (uint32_t)strlen(hist->epoch), 0};
        if (hist && hist->incomplete)
            m.flags |= NB_MSG_F_INCOMPLETE;
        session_send_msg(s, &m);
    }
    if (room_local_add(room, s->worker->index, s) < 0) {
        session_close(s, 1011, "out of memory");
        return;
    }
    s->rooms[slot].has_member = 1;
    if (s->rooms[slot].state == NB_SLOT_JOINING)
        s->rooms[slot].state = NB_SLOT_ACTIVE;
}

void membership_left(nb_session *s, nb_room *room) {
    int slot = slot_of(s, room, NB_SLOT_LEAVING, 1);
    if (slot < 0)
        slot = slot_of(s, room, NB_SLOT_LEAVING, 0);
    if (slot < 0)
        return;
    if (s->rooms[slot].has_member)
        room_local_remove(room, s->worker->index, s);
    remove_slot(s, (uint32_t)slot);
}

void membership_failed(nb_session *s, nb_room *room) {
    int slot = slot_of(s, room, NB_SLOT_JOINING, 0);
    if (slot < 0)
        slot = slot_of(s, room, NB_SLOT_LEAVING, 0);
    if (slot >= 0)
        remove_slot(s, (uint32_t)slot);
}
