#include "fanout.h"

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "session.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>

nb_buf *fanout_frame(nb_worker *w, uint32_t c, const nb_msg *msg) {
    nb_server *srv = w->server;
    nb_codec_slot *slot = &srv->codecs[c];
    nb_buf *payload = NULL;
    if (slot->vt->encode(slot->ctx.instance, msg, &payload) != NB_OK || !payload) {
        log_error("%s could not encode a message of type %u", slot->plugin.desc.name, msg->type);
        return NULL;
    }
    return srv->tvt->frame(w->transport_ctx.instance, slot->vt->frame_kind, payload);
}

/*
 * Slow consumers: the transport reports how many bytes wait for this
 * connection. Past [limits] max_queued_bytes the client is not keeping up;
 * it is closed with 4000 ("reconnect" class) so that its backlog never
 * grows without bound and never holds up the others, who are served from
 * the same buffers.
 */
void fanout_deliver(nb_session *s, nb_buf *frame) {
    nb_server *srv = s->worker->server;
    int64_t queued = srv->tvt->send(s->conn, frame);
    if (queued < 0)
        return;
    metrics_add(srv->m.deliveries, 1);
    if ((uint64_t)queued > srv->settings.max_queued_bytes && s->state == NB_SESSION_OPEN) {
        metrics_add(srv->m.slow_consumers, 1);
        log_info("closing %.*s: %lld bytes queued, over max_queued_bytes (slow consumer)",
                 (int)s->user_len, s->user, (long long)queued);
        session_close(s, 4000, "slow consumer");
    }
}

void fanout_send(nb_session *s, const nb_msg *msg) {
    nb_buf *frame = fanout_frame(s->worker, s->codec, msg);
    if (!frame)
        return;
    fanout_deliver(s, frame);
    buf_unref(frame);
}

void fanout_post_locked(nb_worker *self, nb_room *room, const nb_msg *msg) {
    nb_server *srv = self->server;
    nb_buf *frames[NB_MAX_CODECS] = {0};
    int any = 0;
    for (uint32_t c = 0; c < srv->n_codecs; c++)
        if (room->codec_members[c]) {
            frames[c] = fanout_frame(self, c, msg);
            any |= frames[c] != NULL;
        }
    if (any)
        for (uint32_t w = 0; w < srv->n_workers; w++)
            if (room->worker_members[w])
                worker_post(self, &srv->workers[w], room, frames);
    for (uint32_t c = 0; c < srv->n_codecs; c++)
        buf_unref(frames[c]);
}

void fanout_presence_locked(nb_worker *self, nb_room *room) {
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = NB_MSG_PRESENCE;
    m.room = (nb_str){room->name, room->name_len, 0};
    m.ts = clock_now_ms();
    nb_str empty;
    m.users = room_user_list(room, &m.n_users);
    if (!m.users)
        m.users = &empty; /* no users (or no memory): an empty list */
    fanout_post_locked(self, room, &m);
    if (m.users != &empty)
        free((void *)m.users);
}

void fanout_local(nb_worker *w, nb_room *room, nb_buf *const *frames) {
    nb_room_local *l = &room->local[w->index];
    /* Index loop: a delivery may close a session, but closing never
     * removes a member synchronously (conn_closed comes later). */
    for (uint32_t i = 0; i < l->n_members; i++) {
        nb_session *s = l->members[i].session;
        if (s->state == NB_SESSION_OPEN && frames[s->codec])
            fanout_deliver(s, frames[s->codec]);
    }
}
