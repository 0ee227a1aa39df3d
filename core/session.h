/*
 * session.h — one client connection as the core sees it: who it is, which
 * codec it speaks, which rooms it is in, its rate-limit and error budget.
 * The transport drives it through the host table (transport.h describes
 * the order of calls). The concerns live in their own files:
 *   connection.c     a connection's life: open, established, closed
 *   session_input.c  one incoming frame: checks, decoding, dispatch
 *   membership.c     joining and leaving rooms
 *   abuse.c          rate limit, error budget, idle limit
 *   session.c        send, close, find by nb_sref, free
 */
#ifndef NEBULA_CORE_SESSION_H
#define NEBULA_CORE_SESSION_H

#include "context.h"
#include "names.h"
#include "room.h"
#include "sref.h"

#include <nebula/host.h>
#include <stdint.h>

#define NB_SESSION_OPENING 0u /* accepted, 101 not yet written */
#define NB_SESSION_OPEN 1u
#define NB_SESSION_CLOSING 2u /* the core asked the transport to close */

/* Kinds of session: a chat client, or the admin page's feed (admin.h). */
#define NB_SESSION_CHAT 0u
#define NB_SESSION_ADMIN 1u     /* accepted, not yet fed */
#define NB_SESSION_ADMIN_FED 2u /* established: gets the snapshots */

/* A room of the session (membership.c). */
#define NB_SLOT_JOINING 0u /* join sequenced, not yet delivered here */
#define NB_SLOT_ACTIVE 1u  /* a member */
#define NB_SLOT_LEAVING 2u /* leave sequenced; a member until it is delivered */

typedef struct nb_session_room {
    nb_room *room; /* one reference */
    uint16_t state;
    uint16_t has_member; /* in room->local[worker] */
} nb_session_room;

/* What the connect URL asked to join, kept until the opening's join. */
typedef struct nb_first_join {
    uint64_t since;
    uint32_t has_since;
    uint32_t len;
    char epoch[64];
    char room[NB_ROOM_MAX + 1];
} nb_first_join;

/* Every connection has one, idle ones too: keep it small (S1 in
 * docs/PERFORMANCE.md). What only the opening needs is on the heap. */
struct nb_session {
    nb_worker *worker;
    struct nb_conn *conn;
    uint32_t codec; /* index into server->codecs */
    uint32_t state;
    nb_sref ref; /* how other threads name this session */
    char user[NB_USERNAME_MAX + 1];
    uint32_t user_len;
    uint32_t kind;             /* NB_SESSION_CHAT or an admin feed's */
    nb_first_join *first;      /* the connect URL's room, until the joining; or NULL */
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
    int64_t bytes_milli;  /* byte bucket ([limits] bytes_per_second), thousandths */
    int64_t bytes_at_ms;
    uint64_t held;        /* what the transport holds for it (host->conn_memory) */
    struct nb_peer *peer; /* its address's limits (peers.h), or NULL */
    nb_session *prev;     /* the worker's list, in order of activity */
    nb_session *next;
};

/* Queue a framed buffer (takes its own reference) and apply the
 * slow-consumer rule. */
void session_send(nb_session *s, nb_buf *frame);
/* Encode msg in the session's codec and send it. */
void session_send_msg(nb_session *s, const nb_msg *msg);

/* Ask the transport to close (state CLOSING); conn_closed follows. */
void session_close(nb_session *s, uint32_t code, const char *reason);

/* Put a new session at the head of its worker's list (session_free takes
 * it out). */
void session_link(nb_worker *w, nb_session *s);

/* Free a session without telling anyone (shutdown, after the transport is
 * gone). */
void session_free(nb_session *s);

/* The session table of a worker (its thread): how other threads' events
 * name a session (sref.h). */
int session_register(nb_worker *w, nb_session *s, nb_sref *out);
void session_unregister(nb_worker *w, const nb_sref *ref);
nb_session *session_find(nb_worker *w, nb_sref ref);

/* Is one of the session's rooms marked lost for its worker (worker.c)? */
int session_in_lost_room(const nb_session *s);
void session_clear_lost(nb_session *s);

/* Close w's sessions idle for [limits] idle_timeout_ms (which is not 0) as
 * of now (clock_mono_ms). Returns the milliseconds until the next one
 * could be due. On w's thread. (abuse.c) */
int64_t session_close_idle(nb_worker *w, int64_t now_ms);
#endif
