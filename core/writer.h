/*
 * writer.h — the store's thread: its own libev loop and mailbox, the only
 * thread that calls the store plugin (store.h). It takes what the mailbox
 * holds as one batch — APPENDs, FORWARDs (events whose delivery waits for
 * the disk) and LOADs, in the order they were posted —, appends, loads,
 * then flushes once (group commit), then delivers the FORWARDs the flush
 * covered, or answers their senders with store_unavailable when it failed.
 */
#ifndef NEBULA_CORE_WRITER_H
#define NEBULA_CORE_WRITER_H

#include "context.h"

/* Load the store plugin named in [plugins] store and create it with the
 * host table (no data is touched: --check-config does this too). NULL
 * after logging why. */
nb_writer *writer_new(nb_server *srv, const char *name, const nb_host *host);
/* Start the mailbox (srv->writer_mb, which the pipeline posts to), the
 * thread and the store (start() on the thread); 0, or -1 after logging
 * why. */
int writer_start(nb_writer *wr);
/* Shutdown, from the main loop, once nothing new is posted: flush all that
 * was posted, deliver its echoes, then context_store_drained(). */
void writer_request_drain(nb_writer *wr);
/* Drain the mailbox, flush, stop the store and join the thread. */
void writer_stop(nb_writer *wr);
/* The same, waiting at most `ms` for the thread (UINT32_MAX: no limit);
 * -1 when it is still running then (the caller can only exit). */
int writer_stop_within(nb_writer *wr, uint32_t ms);
/* Destroy the instance and unload the plugin. */
void writer_free(nb_writer *wr);

/* Posters (the pipeline, any thread), after posting to srv->writer_mb:
 * writer_wake when something waits for the batch (a FORWARD, a LOAD): it
 * runs at once; writer_nudge when only APPENDs were posted: the writer
 * gathers them for up to [server] store_linger_ms before one flush, and a
 * nudge while it lingers costs nothing. */
void writer_wake(nb_writer *wr);
void writer_nudge(nb_writer *wr);

/* NB_STORE_F_* the store returned from start(). */
uint32_t writer_flags(const nb_writer *wr);
#endif
