/*
 * core_metrics.h — the core's own metrics (docs/OPERATIONS.md, "Metrics"):
 * the seeds' names (nebula_connected_clients, nebula_messages_total,
 * nebula_errors_total{code}, nebula_broadcast_duration_seconds, ...), the
 * core's counters beside them, the build and the process metrics. Store
 * and broker metrics are registered once those are loaded.
 */
#ifndef NEBULA_CORE_CORE_METRICS_H
#define NEBULA_CORE_CORE_METRICS_H

#include "context.h"

/* Register every core metric; the error codes' counters all start at 0. */
void core_metrics_init(nb_server *srv);
/* The store's and the broker's, when the server has them. */
void core_metrics_init_plugins(nb_server *srv);

/* One error frame with `code` sent (an unknown code counts as "other"). */
void core_metrics_error(nb_server *srv, const char *code);

/* Process figures, read from /proc (0 when unreadable). */
typedef struct nb_process_stats {
    double resident_bytes;
    double threads;
    double open_fds; /* -1 when it could not be counted (e.g. at the fd limit) */
    double max_fds;
    double cpu_seconds;
    double start_time_seconds; /* Unix time */
} nb_process_stats;
void core_metrics_process(nb_process_stats *out);
#endif
