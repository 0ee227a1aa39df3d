/*
 * pipeline.h — the path of every room event (docs/ARCHITECTURE.md):
 *
 *   accept (session_input.c: decode, validate, rate limit)
 *     -> sequence: under the room's shard lock, the room's next seq (or the
 *        broker's, when a sequencing broker is up: the message goes to the
 *        broker first and is sequenced when it comes back)
 *     -> persist: an APPEND to the writer's mailbox; with a store whose
 *        echo waits for the disk, the whole event goes through the writer
 *        (FORWARD) and is delivered after the flush that covers it
 *     -> deliver: encoded once per codec in use in the room, framed once,
 *        posted to the mailbox of every worker with members there.
 *
 * Every event of a room is posted while its shard lock is held, and every
 * mailbox (and the writer) is first-in first-out: every member sees one
 * order of the room's events. A joiner becomes a member at its own join
 * event, a leaver stops at its own leave event (deliver.c), so history and
 * live traffic meet exactly there.
 *
 * A room whose history is loading (from the store or the broker) keeps its
 * events in a backlog and sequences them when the history has arrived.
 */
#ifndef NEBULA_CORE_PIPELINE_H
#define NEBULA_CORE_PIPELINE_H

#include "context.h"
#include "event.h"
#include "room.h"

#include <nebula/store.h>

/* Collects the wake-ups of one locked section; flush after unlocking. */
typedef struct nb_poster {
    nb_server *srv;
    nb_worker *self; /* the worker posting, or NULL (writer, main loop) */
    uint64_t wake;   /* workers to wake */
    int wake_writer;
    int nudge_writer; /* only APPENDs for the writer: writer_nudge */
    int wake_main;
    int presence_now;        /* send presence now even in a large room (the batch timer) */
    nb_bcast_sample *sample; /* a sampled message's deliveries carry it (bcast_sample.h) */
} nb_poster;

void poster_init(nb_poster *p, nb_server *srv, nb_worker *self);
/* Wake every mailbox posted to; a worker also delivers its own. */
void poster_flush(nb_poster *p);

/* A join request, from the joiner's worker. */
typedef struct nb_join_req {
    const char *room;
    uint32_t room_len;
    const char *user;
    uint32_t user_len;
    uint32_t codec;
    nb_sref who;
    uint32_t has_since;
    uint64_t since;
    nb_str epoch;        /* the client's epoch, or absent */
    uint32_t on_connect; /* the connect URL's room */
} nb_join_req;

#define NB_JOIN_OK 0
#define NB_JOIN_TAKEN 1 /* the username is in the room */
#define NB_JOIN_NOMEM 2
#define NB_JOIN_BUSY 3 /* a queue on the way is full */

/* Add the user to the room's shared half and sequence its join, posting
 * through p (a worker's poster; the caller flushes it once its own state
 * is ready for the join's delivery). On NB_JOIN_OK *room_out holds a
 * reference for the session. */
int pipeline_join(nb_poster *p, const nb_join_req *req, nb_room **room_out);

/* The user leaves room. who: the session, which stays a member until its
 * leave event; or no session (gen 0) when its connection is gone. */
void pipeline_leave(nb_worker *w, nb_room *room, const char *user, uint32_t user_len,
                    uint32_t codec, nb_sref who);

/* A chat message from `origin`. NULL, or the error code to answer with. */
const char *pipeline_message(nb_worker *w, nb_room *room, const char *user, uint32_t user_len,
                             const nb_str *content, nb_sref origin);

/* Main loop: the broker answered the claim of a join (j, posted by
 * pipeline_join) with status (broker.h, presence). */
void pipeline_claimed(nb_server *srv, nb_room *room, const nb_pending *j, int32_t status);

/* Main loop: the broker is up again; room (READY, with users) catches up
 * with what the bus has: set LOADING here, then pipeline_caught_up with
 * the broker's newest history. 0, or -1 when the room is not ready. */
int pipeline_catch_up_begin(nb_server *srv, nb_room *room);
void pipeline_caught_up(nb_server *srv, nb_room *room, int ok, const nb_store_result *res,
                        const nb_msg *msgs, uint32_t n);

/* Main loop: an event from the broker (host->broker_deliver). */
void pipeline_remote(nb_server *srv, const nb_msg *msg);

/* Writer thread or main loop: a LOAD of room finished. ok: res and hist
 * (owned, may be NULL) hold the result; was_since: the load served a
 * joiner's since (else it was the room's first load). */
void pipeline_loaded(nb_server *srv, nb_room *room, int ok, const nb_store_result *res,
                     nb_history *hist, int was_since);

/* Shard lock held: send the room's presence now. */
void pipeline_presence_locked(nb_poster *p, nb_room *room);

/* Writer thread, after a flush: deliver a FORWARD event (ok: the flush
 * covering it succeeded). Consumes ev. */
void pipeline_forward(nb_server *srv, nb_poster *p, nb_event *ev, int ok);
#endif
