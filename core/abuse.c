/*
 * abuse.c — rate limit, error budget and idle limit for one connection.
 */
#include "abuse.h"

#include "clock.h"
#include "closecodes.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

/* Errors are counted over this window for the max_errors rule. */
#define ERROR_WINDOW_MS 10000

void session_error_frame(nb_session *s, const char *code, const char *reason, const nb_str *room) {
    metrics_add(s->worker->server->m.protocol_errors, 1);
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = NB_MSG_ERROR;
    m.code = (nb_str){code, (uint32_t)strlen(code), 0};
    m.content = (nb_str){reason, (uint32_t)strlen(reason), 0};
    if (room && room->ptr)
        m.room = *room;
    m.ts = clock_now_ms();
    session_send_msg(s, &m);
}

/*
 * Abuse: every error frame the client caused counts; more than [limits]
 * max_errors within ERROR_WINDOW_MS closes the connection with 4429 ("do
 * not reconnect"). A client that makes an honest mistake now and then is
 * never affected.
 */
void session_error(nb_session *s, const char *code, const char *reason, const nb_str *room) {
    nb_server *srv = s->worker->server;
    session_error_frame(s, code, reason, room);
    int64_t now = clock_mono_ms();
    if (now - s->errors_since_ms > ERROR_WINDOW_MS) {
        s->errors_since_ms = now;
        s->errors = 0;
    }
    if (++s->errors > srv->settings.max_errors && s->state == NB_SESSION_OPEN) {
        log_info("closing %.*s: more than %u errors in %d s", (int)s->user_len, s->user,
                 srv->settings.max_errors, ERROR_WINDOW_MS / 1000);
        session_close(s, NB_CLOSE_ABUSE, "too many errors");
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

/*
 * Bytes per second: a second bucket, in bytes, beside the message bucket.
 * Messages are cheap to count but not to handle when they are large, and
 * a join costs what its history replay sends: both draw on the same
 * bucket. A message must fit in what is there; a replay is charged after
 * it was sent and may leave the bucket in debt, which refuses the next
 * join (and message) until it is paid back. So one connection pulls at
 * most bytes_burst + bytes_per_second x t, plus one replay.
 */
static void refill_bytes(nb_session *s, int64_t now) {
    const nb_settings *st = &s->worker->server->settings;
    int64_t cap = (int64_t)st->bytes_burst * 1000;
    int64_t elapsed = now - s->bytes_at_ms;
    if (elapsed > 0) {
        s->bytes_milli += elapsed * st->bytes_per_second;
        if (s->bytes_milli > cap)
            s->bytes_milli = cap;
        s->bytes_at_ms = now;
    }
}

int session_take_bytes(nb_session *s, uint32_t len, int64_t now) {
    if (s->worker->server->settings.bytes_per_second == 0)
        return 1;
    refill_bytes(s, now);
    if (s->bytes_milli < (int64_t)len * 1000)
        return 0;
    s->bytes_milli -= (int64_t)len * 1000;
    return 1;
}

void session_charge_bytes(nb_session *s, uint64_t len, int64_t now) {
    if (s->worker->server->settings.bytes_per_second == 0)
        return;
    refill_bytes(s, now);
    s->bytes_milli -= (int64_t)len * 1000;
}

int session_bytes_owed(nb_session *s, int64_t now) {
    if (s->worker->server->settings.bytes_per_second == 0)
        return 0;
    refill_bytes(s, now);
    return s->bytes_milli < 0;
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
void session_touch(nb_session *s, int64_t now) {
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
    session_error_frame(s, "idle_timeout", reason, NULL);
    metrics_add(srv->m.idle_timeouts, 1);
    /* Debug, not info: lurkers timing out is routine where the limit is on. */
    log_debug("closing %.*s: %s", (int)s->user_len, s->user, reason);
    session_close(s, NB_CLOSE_IDLE, "idle timeout");
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
        session_touch(s, now);
    }
    return s ? s->active_at_ms + limit - now : limit;
}
