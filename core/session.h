/*
 * session.h — one client connection as the core sees it: who it is, which
 * codec it speaks, which rooms it is in, its rate-limit and error budget.
 * The transport drives it through the host table (transport.h describes
 * the order of calls); the protocol rules live in session.c.
 */
#ifndef NEBULA_CORE_SESSION_H
#define NEBULA_CORE_SESSION_H

#include "names.h"
#include "room.h"
#include "server.h"

#include <nebula/host.h>
#include <stdint.h>

#define NB_SESSION_OPENING 0u /* accepted, 101 not yet written */
#define NB_SESSION_OPEN 1u
#define NB_SESSION_CLOSING 2u /* the core asked the transport to close */

typedef struct nb_session_room {
    nb_room *room;
    uint32_t member_idx; /* index in room->members */
} nb_session_room;

/* Every connection has one, idle ones too: keep it small (S1 in
 * docs/PERFORMANCE.md). What only the opening needs is on the heap. */
struct nb_session {
    nb_worker *worker;
    struct nb_conn *conn;
    uint32_t codec; /* index into server->codecs */
    uint32_t state;
    char user[NB_USERNAME_MAX + 1];
    uint32_t user_len;
    char *first_room; /* the connect URL's room, until the joining; or NULL */
    uint32_t first_room_len;
    const char *refuse_code;   /* set when the connect URL was bad... */
    const char *refuse_reason; /* ...and why; both static strings */
    nb_session_room *rooms;
    uint32_t n_rooms;
    uint32_t cap_rooms;
    /* Instants below are clock_mono_ms(): a wall-clock step must not
     * refill a bucket, reset an error window or close an idle connection. */
    int64_t tokens_milli; /* token bucket, in thousandths of a message */
    int64_t tokens_at_ms; /* when the bucket was last refilled */
    uint32_t errors;      /* errors in the current window */
    int64_t errors_since_ms;
    int64_t active_at_ms; /* the last activity (idle limit) */
    nb_session *prev;     /* the worker's list, in order of activity */
    nb_session *next;
};

/* Host entry points (host.h). */
int32_t session_open(struct nb_plugin_ctx *ctx, struct nb_conn *conn, const nb_open_request *req,
                     nb_open_reply *reply);
void session_established(struct nb_session *s);
void session_message(struct nb_session *s, uint32_t frame_kind, const uint8_t *data, uint32_t len);
void session_closed(struct nb_session *s, uint32_t code);

/* A room moved this session's member entry to index idx. */
void session_member_moved(nb_session *s, uint32_t slot, uint32_t idx);

/* Ask the transport to close (state CLOSING); conn_closed follows. */
void session_close(nb_session *s, uint32_t code, const char *reason);

/* Free a session without telling anyone (shutdown, after the transport is
 * gone). */
void session_free(nb_session *s);

/* Token bucket: 1 if a message may pass at now_ms (clock_mono_ms), and
 * takes a token. rate is messages per second (0 = unlimited), burst the
 * bucket size. */
int session_take_token(nb_session *s, uint32_t rate, uint32_t burst, int64_t now_ms);

/* Close w's sessions idle for [limits] idle_timeout_ms (which is not 0) as
 * of now (clock_mono_ms). Returns the milliseconds until the next one
 * could be due. On w's thread. */
int64_t session_close_idle(nb_worker *w, int64_t now_ms);
#endif
