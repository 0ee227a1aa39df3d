/*
 * guard.h — the state of the limits that bound what hostile clients can
 * cost the server as a whole (docs/HARDENING.md): the memory budget
 * (budget.h), the history byte limits (room.h), the per-address limits
 * (peers.h), and their metrics. Set up once before the I/O threads start.
 *
 * The per-worker side is shed.c: a timer per I/O worker that publishes the
 * gauges and closes the largest holders when the budget is exceeded.
 */
#ifndef NEBULA_CORE_GUARD_H
#define NEBULA_CORE_GUARD_H

#include "budget.h"
#include "metrics.h"
#include "peers.h"
#include "room.h"

#include <stdint.h>

typedef struct nb_server nb_server;
typedef struct nb_worker nb_worker;

typedef struct nb_guard {
    nb_budget budget;
    nb_hist_limits hist;
    nb_peers *peers;
    uint64_t dropped_seen; /* hist.dropped already added to the counter (worker 0) */
    int64_t trim_peak;     /* budget use's highest since the last malloc_trim (worker 0) */
    int64_t trim_at_ms;
    nb_metric *budget_bytes, *budget_used, *budget_closed, *budget_refused;
    nb_metric *history_bytes, *history_dropped;
    nb_metric *addresses, *address_refused, *address_rate_limited;
    nb_metric *bytes_limited;
    nb_metric *trims;
} nb_guard;

/* Create the state from srv->settings and register the metrics; 0, or -1
 * when out of memory (logged). Before the hub creates any room. */
int guard_init(nb_server *srv);
void guard_free(nb_server *srv);

/* Start w's budget timer (on w's thread); stop it (worker_free). */
void shed_start(nb_worker *w);
void shed_stop(nb_worker *w);

/* The transport holds `bytes` for the session's connection now
 * (host->conn_memory). */
void shed_conn_memory(struct nb_session *s, uint64_t bytes);
#endif
