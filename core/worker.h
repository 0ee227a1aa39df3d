/*
 * worker.h — an I/O worker: one thread, one libev loop, one transport
 * instance, the sessions whose connections that instance accepted, and an
 * inbox of deliveries posted by other workers.
 *
 * Cross-thread hand-off (docs/ARCHITECTURE.md): a worker that fans a room
 * event out posts one delivery (the room and its framed buffers, each
 * reference-counted) into the inbox of every worker that has members in
 * the room, itself included, while it holds the room's shard lock. So
 * every worker sees a room's events in the same order. The inbox is a
 * mutex-protected ring (TSan sees the hand-off); ev_async wakes the loop.
 */
#ifndef NEBULA_CORE_WORKER_H
#define NEBULA_CORE_WORKER_H

#include "room.h"
#include "server.h"

#include <ev.h>
#include <nebula/buf.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct nb_delivery {
    nb_room *room;
    nb_buf *frames[NB_MAX_CODECS]; /* per codec slot; NULL if none in use */
} nb_delivery;

typedef struct nb_inbox {
    pthread_mutex_t lock;
    nb_delivery *items; /* ring */
    uint32_t cap;
    uint32_t head;
    uint32_t count;
} nb_inbox;

struct nb_worker {
    nb_server *server;
    uint32_t index;
    struct ev_loop *loop;
    pthread_t thread;
    int thread_started;
    ev_async wake;
    atomic_int shutdown_requested;
    atomic_int stop_requested;
    int closing; /* this worker has begun closing its sessions */
    struct nb_plugin_ctx transport_ctx;
    int transport_created;
    nb_server_info info;
    nb_session *sessions;      /* every live session, most recently active first */
    nb_session *sessions_tail; /* the one active longest ago */
    uint32_t n_sessions;
    nb_inbox inbox;
    nb_delivery *scratch; /* drained items, reused */
    uint32_t scratch_cap;
    uint64_t wake_mask;     /* other workers to wake after the current post */
    nb_room **presence_due; /* rooms whose batched presence this worker sends */
    uint32_t n_presence_due;
    uint32_t cap_presence_due;
    ev_timer presence_timer;
    ev_timer idle_timer; /* [limits] idle_timeout_ms; never started when 0 */
};

int worker_init(nb_worker *w, nb_server *srv, uint32_t index);
/* Run the loop on a new thread. 0 or -1. */
int worker_start_thread(nb_worker *w);
/* Ask the loop to end, and join the thread. */
void worker_stop_and_join(nb_worker *w);
void worker_free(nb_worker *w);

/* Post a delivery to `to` (takes references to room and frames). Marks
 * `from` to wake `to` later (worker_flush). Needs the room's shard lock. */
void worker_post(nb_worker *from, nb_worker *to, nb_room *room, nb_buf *const *frames);
/* Wake the workers posted to and deliver this worker's own inbox. Call
 * after releasing the shard lock. */
void worker_flush(nb_worker *w);

/* Ask the worker (from any thread) to close its sessions for shutdown. */
void worker_request_shutdown(nb_worker *w);

/* Shard lock held, on w's thread: send room's presence now, or, in a room
 * larger than [server] presence_batch_above, at most once per
 * presence_interval_ms (a room filling or emptying would otherwise send
 * the whole user list to every member on every join and leave). */
void worker_presence_locked(nb_worker *w, nb_room *room);
#endif
