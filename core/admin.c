#include "admin.h"

#include "abuse.h"
#include "admin_snapshot.h"
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "names.h"
#include "session.h"

#include <nebula/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nb_admin_worker {
    ev_timer tick;
    uint32_t n_feeds; /* admin sessions open on this worker */
    nb_admin_window window;
};

/* Compare without returning early, so the time taken says nothing about
 * how much of a guess was right. */
static int same_secret(const char *a, size_t alen, const char *b, size_t blen) {
    unsigned diff = alen != blen;
    for (size_t i = 0; i < alen && i < blen; i++)
        diff |= (unsigned)(a[i] ^ b[i]);
    return diff == 0;
}

uint32_t admin_check_token(const nb_server *srv, const char *query) {
    const char *token = srv->settings.admin_token;
    if (!token[0])
        return 404;
    char given[NB_ADMIN_TOKEN_MAX + 2];
    int n = query_param(query, "token", given, sizeof given);
    if (n == -1 || n == 0)
        return 401;
    if (n < 0 || !same_secret(given, (size_t)n, token, strlen(token)))
        return 403;
    return 0;
}

/* Build the snapshot once, frame it once, queue it to every feed here. */
static void push(nb_worker *w) {
    nb_server *srv = w->server;
    nb_buf *json = admin_snapshot(srv, &w->admin->window);
    if (!json)
        return;
    nb_buf *frame = srv->tvt->frame(w->transport_ctx.instance, NB_FRAME_TEXT, json);
    if (!frame)
        return;
    int64_t now = clock_mono_ms();
    for (nb_session *s = w->sessions, *next; s; s = next) {
        next = s->next; /* touching moves s to the head */
        if (s->kind == NB_SESSION_ADMIN_FED && s->state == NB_SESSION_OPEN) {
            session_touch(s, now); /* a page that is fed is not idle */
            session_send(s, frame);
        }
    }
    buf_unref(frame);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    push(t->data);
}

int32_t admin_open(nb_worker *w, struct nb_conn *conn, const nb_open_request *req,
                   nb_open_reply *reply) {
    uint32_t status = admin_check_token(w->server, req->query);
    if (status) {
        reply->http_status = status;
        reply->reason = status == 404   ? "not found: the admin dashboard is off ([admin] token)"
                        : status == 401 ? "the admin feed needs ?token="
                                        : "wrong admin token";
        return NB_OK;
    }
    if (!w->admin) {
        w->admin = calloc(1, sizeof *w->admin);
        if (!w->admin) {
            reply->http_status = 503;
            reply->reason = "out of memory";
            return NB_OK;
        }
        ev_timer_init(&w->admin->tick, on_tick, NB_ADMIN_INTERVAL_MS / 1000.0,
                      NB_ADMIN_INTERVAL_MS / 1000.0);
        w->admin->tick.data = w;
    }
    nb_session *s = calloc(1, sizeof *s);
    if (!s) {
        reply->http_status = 503;
        reply->reason = "out of memory";
        return NB_OK;
    }
    s->worker = w;
    s->conn = conn;
    s->kind = NB_SESSION_ADMIN;
    s->active_at_ms = clock_mono_ms();
    snprintf(s->user, sizeof s->user, "(admin)");
    s->user_len = (uint32_t)strlen(s->user);
    session_link(w, s);
    reply->session = s;
    reply->subprotocol = NULL;
    log_info("admin feed opened from %s", req->peer ? req->peer : "?");
    return NB_OK;
}

void admin_established(nb_session *s) {
    nb_worker *w = s->worker;
    s->state = NB_SESSION_OPEN;
    s->kind = NB_SESSION_ADMIN_FED;
    if (w->admin->n_feeds++ == 0)
        ev_timer_start(w->loop, &w->admin->tick);
    push(w); /* the page shows figures at once, not after a second */
}

void admin_closed(nb_session *s) {
    nb_worker *w = s->worker;
    if (s->kind == NB_SESSION_ADMIN_FED && --w->admin->n_feeds == 0)
        ev_timer_stop(w->loop, &w->admin->tick);
    s->state = NB_SESSION_CLOSING;
    session_free(s);
    if (w->closing && w->n_sessions == 0)
        context_worker_drained(w->server);
}

void admin_worker_free(nb_worker *w) {
    if (!w->admin)
        return;
    ev_timer_stop(w->loop, &w->admin->tick);
    free(w->admin);
    w->admin = NULL;
}
