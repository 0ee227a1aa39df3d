/*
 * connection.c — the life of one connection as the transport reports it
 * (transport.h): opening (the connect URL, the codec), the welcome and the
 * connect URL's join, and the end (its rooms left, the session freed).
 */
#include "connection.h"

#include "abuse.h"
#include "admin.h"
#include "clock.h"
#include "closecodes.h"
#include "membership.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

static uint32_t pick_codec(const nb_server *srv, const nb_open_request *req, int *found) {
    *found = req->n_subprotocols == 0;
    for (uint32_t i = 0; i < req->n_subprotocols; i++)
        for (uint32_t c = 0; c < srv->n_codecs; c++)
            if (strcmp(req->subprotocols[i], srv->codecs[c].vt->subprotocol) == 0) {
                *found = 2;
                return c;
            }
    return 0;
}

static void refuse_later(nb_session *s, const char *code, const char *reason) {
    if (s->refuse_code)
        return;
    s->refuse_code = code;
    s->refuse_reason = reason;
}

/* ?since=N (and &epoch=E) in the connect URL: the initial join's since. */
static void read_since(nb_session *s, const char *query, nb_first_join *f) {
    char v[24];
    int n = query_param(query, "since", v, sizeof v);
    if (n == -1)
        return;
    char *end = NULL;
    unsigned long long since = n > 0 && v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
    if (n <= 0 || !end || *end || since > (1ULL << 53)) {
        refuse_later(s, "bad_field", "since must be an integer from 0 to 2^53");
        return;
    }
    f->since = since;
    f->has_since = 1;
    if (query_param(query, "epoch", f->epoch, sizeof f->epoch) < -1)
        refuse_later(s, "bad_field", "epoch is at most 63 bytes");
}

int32_t session_open(struct nb_plugin_ctx *ctx, struct nb_conn *conn, const nb_open_request *req,
                     nb_open_reply *reply) {
    nb_server *srv = ctx->server;
    nb_worker *w = ctx->worker;
    if (atomic_load(&srv->draining)) {
        reply->http_status = 503;
        reply->reason = "server shutting down";
        return NB_OK;
    }
    if (strcmp(req->path, NB_ADMIN_FEED_PATH) == 0)
        return admin_open(w, conn, req, reply);
    if (strcmp(req->path, w->info.ws_path) != 0) {
        reply->http_status = 404;
        reply->reason = "not found: WebSocket connections go to /ws";
        return NB_OK;
    }
    int found;
    uint32_t codec = pick_codec(srv, req, &found);
    if (!found) {
        reply->http_status = 400;
        reply->reason = "none of the offered subprotocols is served here";
        return NB_OK;
    }
    /* Near the memory budget a new connection is large work refused. */
    if (budget_near(&srv->guard.budget)) {
        metrics_add(srv->guard.budget_refused, 1);
        reply->http_status = 503;
        reply->reason = "server busy: memory budget nearly used; try again later";
        return NB_OK;
    }
    nb_peer *peer = NULL;
    if (peers_acquire(srv->guard.peers, req->peer, &peer) < 0) {
        metrics_add(srv->guard.address_refused, 1);
        reply->http_status = 429;
        reply->reason = "too many connections from your address";
        return NB_OK;
    }
    nb_session *s = calloc(1, sizeof *s);
    if (!s || session_register(w, s, &s->ref) < 0) {
        peers_release(srv->guard.peers, peer);
        free(s);
        reply->http_status = 503;
        reply->reason = "out of memory";
        return NB_OK;
    }
    s->worker = w;
    s->conn = conn;
    s->codec = codec;
    s->peer = peer;
    s->tokens_milli = (int64_t)srv->settings.burst * 1000;
    s->bytes_milli = (int64_t)srv->settings.bytes_burst * 1000;
    /* The buckets and the idle clock all start full at the opening. */
    s->tokens_at_ms = s->bytes_at_ms = s->active_at_ms = clock_mono_ms();

    int n = query_param(req->query, "username", s->user, sizeof s->user);
    if (n == -1)
        refuse_later(s, "bad_username", "a username is required: /ws?username=NAME");
    else if (n < 0 || !name_valid(s->user, (size_t)n, NB_USERNAME_MAX))
        refuse_later(s, "bad_username", "a username is 1-32 characters of A-Z a-z 0-9 _ - .");
    else
        s->user_len = (uint32_t)n;
    nb_first_join f;
    memset(&f, 0, sizeof f);
    n = query_param(req->query, "room", f.room, sizeof f.room);
    if (n == -2 || (n >= 0 && !name_valid(f.room, (size_t)n, NB_ROOM_MAX))) {
        refuse_later(s, "bad_room", "a room name is 1-64 characters of A-Z a-z 0-9 _ - .");
    } else if (n > 0) {
        f.len = (uint32_t)n;
        read_since(s, req->query, &f);
        if (!(s->first = malloc(sizeof f))) {
            peers_release(srv->guard.peers, peer);
            session_unregister(w, &s->ref);
            free(s);
            reply->http_status = 503;
            reply->reason = "out of memory";
            return NB_OK;
        }
        *s->first = f;
    }

    session_link(w, s);
    metrics_add(srv->m.connections, 1);
    metrics_add(srv->m.connections_total, 1);

    reply->session = s;
    reply->subprotocol = found == 2 ? srv->codecs[codec].vt->subprotocol : NULL;
    return NB_OK;
}

void session_established(struct nb_session *s) {
    if (s->state != NB_SESSION_OPENING)
        return;
    if (s->kind != NB_SESSION_CHAT) {
        admin_established(s);
        return;
    }
    s->state = NB_SESSION_OPEN;
    if (s->refuse_code) {
        session_error(s, s->refuse_code, s->refuse_reason, NULL);
        session_close(s, NB_CLOSE_BAD_NAME, s->refuse_code);
        return;
    }
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = NB_MSG_WELCOME;
    m.sender = (nb_str){s->user, s->user_len, 0};
    m.ts = clock_now_ms();
    session_send_msg(s, &m);
    if (s->first)
        membership_join(s, s->first->room, s->first->len, NULL, 1);
    free(s->first); /* needed only for that join */
    s->first = NULL;
}

void session_closed(struct nb_session *s, uint32_t code) {
    (void)code;
    if (s->kind != NB_SESSION_CHAT) {
        admin_closed(s);
        return;
    }
    nb_worker *w = s->worker;
    s->state = NB_SESSION_CLOSING;
    /* Events still on their way about this session find nothing now. */
    session_unregister(w, &s->ref);
    s->ref.gen = 0;
    membership_leave_all(s);
    session_free(s);
    if (w->closing && w->n_sessions == 0)
        context_worker_drained(w->server);
}
