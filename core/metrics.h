/*
 * metrics.h — a small registry of counters, gauges and histograms,
 * rendered in the Prometheus text format (version 0.0.4) at /metrics.
 *
 * Updates are atomic and lock-free from any thread; registration (start-up,
 * a plugin's create) takes a lock. Metrics of one name with different
 * labels form one family (one # HELP / # TYPE); they are registered with
 * metrics_register_labeled. A "collected" gauge or counter has no stored
 * value: its function is called when /metrics is rendered (process
 * metrics, values another module already keeps).
 */
#ifndef NEBULA_CORE_METRICS_H
#define NEBULA_CORE_METRICS_H

#include <nebula/buf.h>
#include <stdint.h>

typedef struct nb_metric nb_metric;

/* Most buckets a histogram may have (besides +Inf). */
#define NB_METRICS_MAX_BUCKETS 24u

/* Register (or find, by name and labels) a metric; type is
 * NB_METRIC_COUNTER or NB_METRIC_GAUGE. NULL if the registry is full, the
 * name is invalid, or the name is taken by a metric of another type. */
nb_metric *metrics_register(uint32_t type, const char *name, const char *help);
/* The same, one member of a labeled family: labels is the text between
 * the braces, e.g. `code="bad_json"` (values already escaped). */
nb_metric *metrics_register_labeled(uint32_t type, const char *name, const char *labels,
                                    const char *help);
/* A histogram with n upper bounds (strictly increasing, finite; +Inf is
 * implicit). NULL for a bad name or bounds. */
nb_metric *metrics_register_histogram(const char *name, const char *help, const double *bounds,
                                      uint32_t n);
/* A gauge or counter whose value is fn(arg) at render time. */
nb_metric *metrics_register_collected(uint32_t type, const char *name, const char *labels,
                                      const char *help, double (*fn)(void *arg), void *arg);

void metrics_add(nb_metric *m, int64_t delta);
void metrics_set(nb_metric *m, int64_t value);
int64_t metrics_value(const nb_metric *m);
/* Record one observation in a histogram (no-op for other types). */
void metrics_observe(nb_metric *m, double value);

/* A histogram's state: cumulative counts per bound (the last is +Inf),
 * and the sum. Returns the number of buckets including +Inf (0 if m is
 * not a histogram). */
uint32_t metrics_histogram_read(const nb_metric *m, uint64_t *cumulative, double *bounds,
                                uint32_t cap, double *sum);

/* Render every metric; returns a new buffer or NULL. */
nb_buf *metrics_render(void);

/* Forget every metric (at shutdown, so leak checkers stay quiet). */
void metrics_reset(void);
#endif
