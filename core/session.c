/*
 * session.c — the chat protocol (docs/PROTOCOL.md) for one connection:
 * connect, join, leave, message, errors, and the abuse rules.
 */
#include "session.h"

#include "buf.h"
#include "clock.h"
#include "fanout.h"
#include "hub.h"
#include "log.h"
#include "worker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Errors are counted over this window for the max_errors rule. */
#define ERROR_WINDOW_MS 10000

static int64_t now_ms(void) {
    return clock_now_ms();
}

static nb_str str_of(const char *p, uint32_t len) {
    return (nb_str){p, len, 0};
}

static nb_str cstr(const char *p) {
    return str_of(p, (uint32_t)strlen(p));
}

static nb_msg msg_new(uint32_t type) {
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = type;
    return m;
}

/* ---- connection life ------------------------------------------------ */

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

int32_t session_open(struct nb_plugin_ctx *ctx, struct nb_conn *conn, const nb_open_request *req,
                     nb_open_reply *reply) {
    nb_server *srv = ctx->server;
    nb_worker *w = ctx->worker;
    if (atomic_load(&srv->draining)) {
        reply->http_status = 503;
        reply->reason = "server shutting down";
        return NB_OK;
    }
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
    nb_session *s = calloc(1, sizeof *s);
    if (!s) {
        reply->http_status = 503;
        reply->reason = "out of memory";
        return NB_OK;
    }
    s->worker = w;
    s->conn = conn;
    s->codec = codec;
    s->tokens_milli = (int64_t)srv->settings.burst * 1000;
    /* The bucket and the idle clock both start full at the opening. */
    s->tokens_at_ms = s->active_at_ms = clock_mono_ms();

    int n = query_param(req->query, "username", s->user, sizeof s->user);
    if (n == -1)
        refuse_later(s, "bad_username", "a username is required: /ws?username=NAME");
    else if (n < 0 || !name_valid(s->user, (size_t)n, NB_USERNAME_MAX))
        refuse_later(s, "bad_username", "a username is 1-32 characters of A-Z a-z 0-9 _ - .");
    else
        s->user_len = (uint32_t)n;
    char room[NB_ROOM_MAX + 1];
    n = query_param(req->query, "room", room, sizeof room);
    if (n == -2 || (n >= 0 && !name_valid(room, (size_t)n, NB_ROOM_MAX))) {
        refuse_later(s, "bad_room", "a room name is 1-64 characters of A-Z a-z 0-9 _ - .");
    } else if (n > 0) {
        if (!(s->first_room = malloc((size_t)n + 1))) {
            free(s);
            reply->http_status = 503;
            reply->reason = "out of memory";
            return NB_OK;
        }
        memcpy(s->first_room, room, (size_t)n + 1);
        s->first_room_len = (uint32_t)n;
    }

    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    else
        w->sessions_tail = s;
    w->sessions = s;
    w->n_sessions++;
    metrics_add(srv->m.connections, 1);
    metrics_add(srv->m.connections_total, 1);

    reply->session = s;
    reply->subprotocol = found == 2 ? srv->codecs[codec].vt->subprotocol : NULL;
    return NB_OK;
}

static void send_error(nb_session *s, const char *code, const char *reason, const nb_str *room);
static void do_join(nb_session *s, const char *room, uint32_t len, int on_connect);

void session_established(struct nb_session *s) {
    if (s->state != NB_SESSION_OPENING)
        return;
    s->state = NB_SESSION_OPEN;
    if (s->refuse_code) {
        send_error(s, s->refuse_code, s->refuse_reason, NULL);
        session_close(s, 4400, s->refuse_code);
        return;
    }
    nb_msg m = msg_new(NB_MSG_WELCOME);
    m.sender = str_of(s->user, s->user_len);
    m.ts = now_ms();
    fanout_send(s, &m);
    if (s->first_room_len)
        do_join(s, s->first_room, s->first_room_len, 1);
    free(s->first_room); /* needed only for that join */
    s->first_room = NULL;
    s->first_room_len = 0;
}

void session_close(nb_session *s, uint32_t code, const char *reason) {
    if (s->state == NB_SESSION_CLOSING)
        return;
    s->state = NB_SESSION_CLOSING;
    s->worker->server->tvt->close(s->conn, code, reason);
}

void session_member_moved(nb_session *s, uint32_t slot, uint32_t idx) {
    s->rooms[slot].member_idx = idx;
}

/* ---- rooms ----------------------------------------------------------
 *
 * The shared half of a room changes only under its shard lock, and every
 * event about the room (join, leave, presence, message) is posted to the
 * workers while that lock is held: all members see one order.
 */

static int find_slot(const nb_session *s, const char *room, uint32_t len) {
    for (uint32_t i = 0; i < s->n_rooms; i++) {
        const nb_room *r = s->rooms[i].room;
        if (r->name_len == len && memcmp(r->name, room, len) == 0)
            return (int)i;
    }
    return -1;
}

static void update_room_gauge(nb_server *srv) {
    metrics_set(srv->m.rooms, hub_room_count(srv->hub));
}

static void do_join(nb_session *s, const char *name, uint32_t len, int on_connect) {
    nb_worker *w = s->worker;
    nb_server *srv = w->server;
    nb_str room_str = str_of(name, len);
    if (find_slot(s, name, len) >= 0) {
        send_error(s, "already_joined", "you are already in this room", &room_str);
        return;
    }
    if (s->n_rooms >= srv->settings.rooms_per_connection) {
        send_error(s, "too_many_rooms", "leave a room before joining another", &room_str);
        return;
    }
    if (s->n_rooms == s->cap_rooms) {
        uint32_t cap = s->cap_rooms ? s->cap_rooms * 2 : 2;
        nb_session_room *r = realloc(s->rooms, cap * sizeof *r);
        if (!r) {
            send_error(s, "internal", "out of memory", &room_str);
            return;
        }
        s->rooms = r;
        s->cap_rooms = cap;
    }
    uint32_t hash = hub_hash(name, len);
    hub_lock(srv->hub, hash);
    nb_room *room = hub_find_locked(srv->hub, name, len, hash);
    if (room && room_has_user(room, s->user, s->user_len)) {
        hub_unlock(srv->hub, hash);
        send_error(s, "username_taken", "this username is already in the room", &room_str);
        if (on_connect)
            session_close(s, 4409, "username taken");
        return;
    }
    if (!room)
        room = hub_get_locked(srv->hub, name, len, hash);
    int idx = -1;
    if (room && room_add_user(room, s->user, s->user_len, w->index, s->codec) == 0) {
        idx = room_local_add(room, w->index, s, s->n_rooms);
        if (idx < 0)
            room_remove_user(room, s->user, s->user_len, w->index, s->codec);
    }
    if (idx < 0) {
        if (room && !room->n_users)
            hub_remove_locked(srv->hub, room);
        hub_unlock(srv->hub, hash);
        send_error(s, "internal", "out of memory", &room_str);
        return;
    }
    s->rooms[s->n_rooms++] = (nb_session_room){.room = room, .member_idx = (uint32_t)idx};

    /* History goes straight to the joiner, before the join event below
     * (which reaches the joiner through the inbox, after the unlock). */
    for (uint32_t i = 0; i < room->hist_len; i++) {
        nb_msg h;
        room_history_get(room, i, &h);
        fanout_send(s, &h);
    }
    nb_msg j = msg_new(NB_MSG_JOIN);
    j.room = str_of(room->name, room->name_len);
    j.sender = str_of(s->user, s->user_len);
    j.ts = now_ms();
    fanout_post_locked(w, room, &j);
    worker_presence_locked(w, room);
    hub_unlock(srv->hub, hash);
    update_room_gauge(srv);
    worker_flush(w);
}

/* Take the session out of the room in `slot`; tell the others (and the
 * leaver, when it asked). */
static void do_leave(nb_session *s, uint32_t slot, int tell_leaver) {
    nb_worker *w = s->worker;
    nb_server *srv = w->server;
    nb_room *room = s->rooms[slot].room;
    room_local_remove(room, w->index, s->rooms[slot].member_idx);
    uint32_t last = s->n_rooms - 1;
    if (slot != last) {
        s->rooms[slot] = s->rooms[last];
        nb_room *moved = s->rooms[slot].room;
        moved->local[w->index].members[s->rooms[slot].member_idx].slot = slot;
    }
    s->n_rooms = last;

    char name[NB_ROOM_MAX + 1];
    uint32_t name_len = room->name_len;
    memcpy(name, room->name, name_len);
    uint32_t hash = room->hash;
    nb_msg m = msg_new(NB_MSG_LEAVE);
    m.room = str_of(name, name_len);
    m.sender = str_of(s->user, s->user_len);
    m.ts = now_ms();

    hub_lock(srv->hub, hash);
    room_remove_user(room, s->user, s->user_len, w->index, s->codec);
    if (room->n_users && !atomic_load(&srv->draining)) {
        fanout_post_locked(w, room, &m);
        worker_presence_locked(w, room);
    }
    if (!room->n_users)
        hub_remove_locked(srv->hub, room); /* may free it: not touched below */
    hub_unlock(srv->hub, hash);
    if (tell_leaver)
        fanout_send(s, &m);
    update_room_gauge(srv);
    worker_flush(w);
}

/* ---- incoming messages ---------------------------------------------- */

/* An error frame, counted in the metrics but not against max_errors. */
static void error_frame(nb_session *s, const char *code, const char *reason, const nb_str *room) {
    metrics_add(s->worker->server->m.protocol_errors, 1);
    nb_msg m = msg_new(NB_MSG_ERROR);
    m.code = cstr(code);
    m.content = cstr(reason);
    if (room && room->ptr)
        m.room = *room;
    m.ts = now_ms();
    fanout_send(s, &m);
}

/*
 * Abuse: every error frame the client caused counts; more than [limits]
 * max_errors within ERROR_WINDOW_MS closes the connection with 4429 ("do
 * not reconnect"). A client that makes an honest mistake now and then is
 * never affected.
 */
static void send_error(nb_session *s, const char *code, const char *reason, const nb_str *room) {
    nb_server *srv = s->worker->server;
    error_frame(s, code, reason, room);
    int64_t now = clock_mono_ms();
    if (now - s->errors_since_ms > ERROR_WINDOW_MS) {
        s->errors_since_ms = now;
        s->errors = 0;
    }
    if (++s->errors > srv->settings.max_errors && s->state == NB_SESSION_OPEN) {
        log_info("closing %.*s: more than %u errors in %d s", (int)s->user_len, s->user,
                 srv->settings.max_errors, ERROR_WINDOW_MS / 1000);
        session_close(s, 4429, "too many errors");
    }
}

/*
 * Rate limit: a token bucket per connection, refilled lazily from the
 * elapsed time when a message arrives (no timer per connection). Checked
 * on the raw frame, before decoding, so a flood costs almost nothing.
 */
int session_take_token(nb_session *s, uint32_t rate, uint32_t burst, int64_t now) {
    if (rate == 0)
        return 1;
    int64_t cap = (int64_t)burst * 1000;
    int64_t elapsed = now - s->tokens_at_ms;
    if (elapsed > 0) {
        s->tokens_milli += elapsed * rate;
        if (s->tokens_milli > cap)
            s->tokens_milli = cap;
        s->tokens_at_ms = now;
    }
    if (s->tokens_milli < 1000)
        return 0;
    s->tokens_milli -= 1000;
    return 1;
}

static int need_room(nb_session *s, const nb_msg *m) {
    if (!m->room.ptr) {
        send_error(s, "missing_field", "this message needs a \"room\"", NULL);
        return 0;
    }
    if (!name_valid(m->room.ptr, m->room.len, NB_ROOM_MAX)) {
        send_error(s, "bad_room", "a room name is 1-64 characters of A-Z a-z 0-9 _ - .", NULL);
        return 0;
    }
    return 1;
}

static void on_chat(nb_session *s, const nb_msg *in) {
    nb_server *srv = s->worker->server;
    if (!need_room(s, in))
        return;
    if (!in->content.ptr) {
        send_error(s, "missing_field", "a message needs \"content\"", &in->room);
        return;
    }
    int slot = find_slot(s, in->room.ptr, in->room.len);
    if (slot < 0) {
        send_error(s, "not_joined", "join the room before sending to it", &in->room);
        return;
    }
    nb_room *room = s->rooms[slot].room;
    char id[48];
    uint64_t seq = atomic_fetch_add_explicit(&srv->next_id, 1, memory_order_relaxed) + 1;
    int idlen = snprintf(id, sizeof id, "%" PRIx64 "-%" PRIu64, srv->id_epoch, seq);
    nb_msg m = msg_new(NB_MSG_MESSAGE);
    m.room = str_of(room->name, room->name_len);
    m.sender = str_of(s->user, s->user_len);
    m.content = in->content;
    m.id = str_of(id, (uint32_t)idlen);
    m.ts = now_ms();
    hub_lock(srv->hub, room->hash);
    room_history_add(room, &m);
    fanout_post_locked(s->worker, room, &m);
    hub_unlock(srv->hub, room->hash);
    worker_flush(s->worker);
}

/*
 * Idle limit: with [limits] idle_timeout_ms set, a connection that sends no
 * message, join or leave for that long (counted from its opening) gets the
 * error idle_timeout and is closed with 4408 ("do not reconnect"). Frames
 * refused before decoding or that fail to decode do not count, nor do
 * pings and pongs: sending garbage must not keep a connection alive.
 *
 * O(1) per message: each worker keeps its sessions in order of activity,
 * the latest at the head, and activity moves a session there. One timer
 * per worker (worker.c) looks only at the tail, the session active longest
 * ago: it closes from the tail while the tail is due, then sleeps until the
 * new tail is. With the limit at 0 no timer runs and nothing moves.
 */
static void touch(nb_session *s, int64_t now) {
    nb_worker *w = s->worker;
    s->active_at_ms = now;
    if (w->sessions == s)
        return;
    s->prev->next = s->next; /* not the head, so it has a prev */
    if (s->next)
        s->next->prev = s->prev;
    else
        w->sessions_tail = s->prev;
    s->prev = NULL;
    s->next = w->sessions;
    w->sessions->prev = s;
    w->sessions = s;
}

static void close_idle(nb_session *s, uint32_t limit_ms) {
    nb_server *srv = s->worker->server;
    char reason[96];
    snprintf(reason, sizeof reason, "no message for %g s: closed for inactivity",
             limit_ms / 1000.0);
    error_frame(s, "idle_timeout", reason, NULL);
    metrics_add(srv->m.idle_timeouts, 1);
    /* Debug, not info: lurkers timing out is routine where the limit is on. */
    log_debug("closing %.*s: %s", (int)s->user_len, s->user, reason);
    session_close(s, 4408, "idle timeout");
}

int64_t session_close_idle(nb_worker *w, int64_t now) {
    uint32_t limit = w->server->settings.idle_timeout_ms;
    nb_session *s;
    while ((s = w->sessions_tail) && now - s->active_at_ms >= limit) {
        if (s->state == NB_SESSION_OPEN)
            close_idle(s, limit);
        /* Closed here, closing already, or not open yet: it leaves the
         * tail either way, so the loop ends. One still in the list after
         * another period comes back here; session_close acts only once. */
        touch(s, now);
    }
    return s ? s->active_at_ms + limit - now : limit;
}

void session_message(struct nb_session *s, uint32_t frame_kind, const uint8_t *data, uint32_t len) {
    nb_server *srv = s->worker->server;
    if (s->state != NB_SESSION_OPEN)
        return;
    metrics_add(srv->m.messages_received, 1);
    const nb_settings *st = &srv->settings;
    int64_t now = clock_mono_ms(); /* for the rate limit and the idle limit */
    if (!session_take_token(s, st->messages_per_second, st->burst, now)) {
        metrics_add(srv->m.rate_limited, 1);
        send_error(s, "rate_limited", "slow down: too many messages per second", NULL);
        return;
    }
    if (len > st->max_message_bytes) {
        send_error(s, "too_large", "the message is larger than max_message_bytes", NULL);
        return;
    }
    nb_codec_slot *codec = &srv->codecs[s->codec];
    if (frame_kind != codec->vt->frame_kind) {
        send_error(s, "bad_encoding",
                   frame_kind == NB_FRAME_BINARY ? "binary frame sent to a text codec"
                                                 : "text frame sent to a binary codec",
                   NULL);
        return;
    }
    nb_msg in = msg_new(NB_MSG_NONE);
    nb_decode_error err;
    memset(&err, 0, sizeof err);
    err.struct_size = sizeof err;
    if (codec->vt->decode(codec->ctx.instance, data, len, &in, &err) != NB_OK) {
        err.code[sizeof err.code - 1] = '\0';
        err.reason[sizeof err.reason - 1] = '\0';
        send_error(s, err.code[0] ? err.code : "bad_json",
                   err.reason[0] ? err.reason : "the message could not be decoded", NULL);
        return;
    }
    /* Activity for the idle limit: a client type, even one refused below. */
    if (st->idle_timeout_ms &&
        (in.type == NB_MSG_MESSAGE || in.type == NB_MSG_JOIN || in.type == NB_MSG_LEAVE))
        touch(s, now);
    switch (in.type) {
    case NB_MSG_MESSAGE:
        on_chat(s, &in);
        break;
    case NB_MSG_JOIN:
        if (need_room(s, &in))
            do_join(s, in.room.ptr, in.room.len, 0);
        break;
    case NB_MSG_LEAVE:
        if (need_room(s, &in)) {
            int slot = find_slot(s, in.room.ptr, in.room.len);
            if (slot < 0)
                send_error(s, "not_joined", "you are not in this room", &in.room);
            else
                do_leave(s, (uint32_t)slot, 1);
        }
        break;
    default:
        send_error(s, "unknown_type", "clients may send only message, join and leave", NULL);
        break;
    }
    codec->vt->release(codec->ctx.instance, &in);
}

/* ---- end ---------------------------------------------------------------- */

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
    metrics_add(w->server->m.connections, -1);
    free(s->first_room);
    free(s->rooms);
    free(s);
}

void session_closed(struct nb_session *s, uint32_t code) {
    (void)code;
    s->state = NB_SESSION_CLOSING;
    while (s->n_rooms)
        do_leave(s, s->n_rooms - 1, 0);
    nb_worker *w = s->worker;
    session_free(s);
    if (w->closing && w->n_sessions == 0)
        server_worker_drained(w->server);
}
