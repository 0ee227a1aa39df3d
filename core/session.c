/*
 * session.c — what the other modules do to one session: send to it (and
 * the slow-consumer rule), close it, find it by nb_sref, free it.
 */
#include "session.h"

#include "buf.h"
#include "closecodes.h"
#include "fanout.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

void session_close(nb_session *s, uint32_t code, const char *reason) {
    if (s->state == NB_SESSION_CLOSING)
        return;
    s->state = NB_SESSION_CLOSING;
    s->worker->server->tvt->close(s->conn, code, reason);
}

/*
 * Slow consumers: the transport reports how many bytes wait for this
 * connection. Past [limits] max_queued_bytes the client is not keeping up;
 * it is closed with 4000 ("reconnect" class) so that its backlog never
 * grows without bound and never holds up the others, who are served from
 * the same buffers.
 */
void session_send(nb_session *s, nb_buf *frame) {
    nb_server *srv = s->worker->server;
    int64_t queued = srv->tvt->send(s->conn, frame);
    if (queued < 0)
        return;
    metrics_add(srv->m.deliveries, 1);
    if ((uint64_t)queued > srv->settings.max_queued_bytes && s->state == NB_SESSION_OPEN) {
        metrics_add(srv->m.slow_consumers, 1);
        log_info("closing %.*s: %lld bytes queued, over max_queued_bytes (slow consumer)",
                 (int)s->user_len, s->user, (long long)queued);
        session_close(s, NB_CLOSE_SLOW_CONSUMER, "slow consumer");
    }
}

void session_send_msg(nb_session *s, const nb_msg *msg) {
    nb_buf *frame = fanout_frame(s->worker->server, s->codec, msg);
    if (!frame)
        return;
    session_send(s, frame);
    buf_unref(frame);
}

/* ---- the session table: sessions by nb_sref ---------------------------- */

int session_register(nb_worker *w, nb_session *s, nb_sref *out) {
    if (!w->free_head) {
        uint32_t cap = w->table_cap ? w->table_cap * 2 : 64;
        nb_session_entry *t = realloc(w->table, cap * sizeof *t);
        if (!t)
            return -1;
        for (uint32_t i = w->table_cap; i < cap; i++)
            t[i] = (nb_session_entry){NULL, 0, i + 1 < cap ? i + 2 : 0};
        w->table = t;
        w->free_head = w->table_cap + 1;
        w->table_cap = cap;
    }
    uint32_t slot = w->free_head - 1;
    nb_session_entry *e = &w->table[slot];
    w->free_head = e->next_free;
    if (++w->next_gen == 0)
        w->next_gen = 1; /* 0 means "no session" */
    e->session = s;
    e->gen = w->next_gen;
    *out = (nb_sref){w->index, slot, e->gen};
    return 0;
}

void session_unregister(nb_worker *w, const nb_sref *ref) {
    if (!ref->gen || ref->slot >= w->table_cap || w->table[ref->slot].gen != ref->gen)
        return;
    nb_session_entry *e = &w->table[ref->slot];
    e->session = NULL;
    e->gen = 0;
    e->next_free = w->free_head;
    w->free_head = ref->slot + 1;
}

nb_session *session_find(nb_worker *w, nb_sref ref) {
    if (!ref.gen || ref.worker != w->index || ref.slot >= w->table_cap ||
        w->table[ref.slot].gen != ref.gen)
        return NULL;
    return w->table[ref.slot].session;
}

int session_in_lost_room(const nb_session *s) {
    for (uint32_t i = 0; i < s->n_rooms; i++)
        if (atomic_load(&s->rooms[i].room->local[s->worker->index].lost))
            return 1;
    return 0;
}

void session_clear_lost(nb_session *s) {
    for (uint32_t i = 0; i < s->n_rooms; i++)
        atomic_store(&s->rooms[i].room->local[s->worker->index].lost, 0);
}

void session_link(nb_worker *w, nb_session *s) {
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    else
        w->sessions_tail = s;
    w->sessions = s;
    w->n_sessions++;
}

void session_free(nb_session *s) {
    nb_worker *w = s->worker;
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        w->sessions_tail = s->prev;
    w->n_sessions--;
    if (s->kind == NB_SESSION_CHAT)
        metrics_add(w->server->m.connections, -1);
    if (s->held)
        atomic_fetch_sub_explicit(&w->server->guard.budget.held[w->index], (int64_t)s->held,
                                  memory_order_relaxed);
    peers_release(w->server->guard.peers, s->peer);
    session_unregister(w, &s->ref);
    for (uint32_t i = 0; i < s->n_rooms; i++)
        room_unref(s->rooms[i].room);
    free(s->first);
    free(s->rooms);
    free(s);
}
