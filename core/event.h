/*
 * event.h — what travels between threads: typed events in bounded
 * mailboxes (mailbox.h). Every cross-thread hand-off in the core is one of
 * these; nothing else is shared but the rooms' shared halves (under their
 * shard locks) and atomics. docs/ARCHITECTURE.md draws the paths.
 */
#ifndef NEBULA_CORE_EVENT_H
#define NEBULA_CORE_EVENT_H

#include "record.h"
#include "settings.h"
#include "sref.h"

#include <nebula/buf.h>
#include <stdint.h>

typedef struct nb_room nb_room;
typedef struct nb_pending nb_pending;

/* Event types. */
#define NB_EV_DELIVER 1u       /* worker: a room event's frames (op below) */
#define NB_EV_SESSION_ERROR 2u /* worker: an error frame for `who` (code, reason) */
#define NB_EV_APPEND 3u        /* writer: persist rec */
#define NB_EV_FORWARD 4u       /* writer: deliver to `targets` after the flush (rec: append) */
#define NB_EV_LOAD 5u          /* writer or main: load room's history (room LOADING) */
#define NB_EV_PUBLISH 6u       /* main: publish rec to the broker (origin who) */
#define NB_EV_SUBSCRIBE 7u     /* main: subscribe to room */
#define NB_EV_UNSUBSCRIBE 8u   /* main: unsubscribe from room (name in rec) */
#define NB_EV_PRESENCE 9u      /* main: tell the broker who joined (op JOIN) or left (LEAVE) */

/* NB_EV_DELIVER ops: what happens to `who` at this point of the room's
 * order, on who's own worker. */
#define NB_OP_NONE 0u
#define NB_OP_JOIN 1u  /* who becomes a member here: hist, then its own join event */
#define NB_OP_LEAVE 2u /* who stops being a member after this event */

/* NB_EV_SESSION_ERROR flags. */
#define NB_EVF_CLOSE_TAKEN 1u /* close the session: its connect room's name is taken */

typedef struct nb_event {
    uint32_t type;
    uint32_t op;
    nb_room *room;                 /* one reference, or NULL */
    nb_buf *frames[NB_MAX_CODECS]; /* one reference each, per codec slot; NULL = none */
    nb_record *rec;                /* one reference, or NULL */
    nb_history *hist;              /* owned, or NULL */
    nb_sref who;
    uint64_t targets; /* NB_EV_FORWARD: bit w = deliver to worker w */
    uint64_t seq;     /* DELIVER/FORWARD: the room's position; LOAD: since */
    uint32_t flags;   /* LOAD: 1 = since is set */
    uint32_t is_message;
    const char *code;   /* NB_EV_SESSION_ERROR: static strings */
    const char *reason; /* (also NB_EV_PRESENCE: the user name, owned by rec) */
    nb_pending *pend;   /* NB_EV_PRESENCE: a join waiting for its claim (owned), or NULL */
} nb_event;

/* Drop every reference the event holds and free what it owns. */
void event_release(nb_event *ev);
#endif
