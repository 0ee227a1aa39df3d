/*
 * worker.h — an I/O worker: one thread, one libev loop, one transport
 * instance, the sessions whose connections that instance accepted, and
 * the worker's mailbox (mailbox.h) of room events posted by any thread.
 *
 * The worker's data is context.h's; this is the code of its thread: the
 * loop, the mailbox's drain, the presence and idle timers, and closing its
 * sessions at shutdown.
 */
#ifndef NEBULA_CORE_WORKER_H
#define NEBULA_CORE_WORKER_H

#include "context.h"

int worker_init(nb_worker *w, nb_server *srv, uint32_t index);
/* Run the loop on a new thread. 0 or -1. */
int worker_start_thread(nb_worker *w);
/* Ask the loop to end, and join the thread. */
void worker_stop_and_join(nb_worker *w);
void worker_free(nb_worker *w);

/* On w's thread: deliver everything in w's mailbox (also w->drain). */
void worker_drain(nb_worker *w);

/* Shutdown, from any thread: first stop taking connections and messages
 * (the worker reports it with context_worker_quiet), later close every
 * session (each gone: context_worker_drained). */
void worker_request_quiet(nb_worker *w);
void worker_request_shutdown(nb_worker *w);
#endif
