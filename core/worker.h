/*
 * worker.h — an I/O worker: one thread, one libev loop, one transport
 * instance, the sessions whose connections that instance accepted, and
 * the worker's mailbox (mailbox.h) of room events posted by any thread.
 *
 * Sessions are named across threads by an nb_sref (event.h): a slot in
 * this worker's session table and a generation, so an event about a
 * session that has gone finds nothing instead of freed memory.
 */
#ifndef NEBULA_CORE_WORKER_H
#define NEBULA_CORE_WORKER_H

#include "event.h"
#include "mailbox.h"
#include "room.h"
#include "server.h"

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct nb_session_entry {
    nb_session *session; /* NULL when free */
    uint32_t gen;
    uint32_t next_free;
} nb_session_entry;

struct nb_worker {
    nb_server *server;
    uint32_t index;
    struct ev_loop *loop;
    pthread_t thread;
    int thread_started;
    atomic_int shutdown_requested;
    atomic_int stop_requested;
    atomic_uint lost_events; /* rooms marked lost for this worker (pipeline.c) */
    uint32_t lost_seen;
    int closing; /* this worker has begun closing its sessions */
    struct nb_plugin_ctx transport_ctx;
    int transport_created;
    nb_server_info info;
    nb_session *sessions;      /* every live session, most recently active first */
    nb_session *sessions_tail; /* the one active longest ago */
    uint32_t n_sessions;
    nb_mailbox mailbox;
    nb_session_entry *table; /* sessions by nb_sref slot */
    uint32_t table_cap;
    uint32_t free_head; /* first free slot + 1; 0 = none */
    uint32_t next_gen;
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

/* On w's thread: deliver everything in w's mailbox. */
void worker_drain(nb_worker *w);

/* Ask the worker (from any thread) to close its sessions for shutdown. */
void worker_request_shutdown(nb_worker *w);

/* Shard lock held, on w's thread: send room's presence from a timer, at
 * most once per [server] presence_interval_ms (a room larger than
 * presence_batch_above filling or emptying would otherwise send the whole
 * user list to every member on every join and leave). */
void worker_presence_later_locked(nb_worker *w, nb_room *room);

/* The session table (w's thread). */
int worker_session_register(nb_worker *w, nb_session *s, nb_sref *out);
void worker_session_unregister(nb_worker *w, const nb_sref *ref);
nb_session *worker_session_find(nb_worker *w, nb_sref ref);
#endif
