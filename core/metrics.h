/*
 * metrics.h — a small registry of counters and gauges, rendered in the
 * Prometheus text format at /metrics. Updates are atomic and lock-free;
 * registration (start-up) takes a lock.
 */
#ifndef NEBULA_CORE_METRICS_H
#define NEBULA_CORE_METRICS_H

#include <nebula/buf.h>
#include <stdint.h>

typedef struct nb_metric nb_metric;

/* Register (or find, by name) a metric; type is NB_METRIC_COUNTER or
 * NB_METRIC_GAUGE. NULL if the registry is full or the name is invalid. */
nb_metric *metrics_register(uint32_t type, const char *name, const char *help);
void metrics_add(nb_metric *m, int64_t delta);
void metrics_set(nb_metric *m, int64_t value);
int64_t metrics_value(const nb_metric *m);

/* Render every metric; returns a new buffer or NULL. */
nb_buf *metrics_render(void);

/* Forget every metric (at shutdown, so leak checkers stay quiet). */
void metrics_reset(void);
#endif
