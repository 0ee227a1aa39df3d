/*
 * report.h — what the parent gathers from its workers, and the one JSON
 * summary it prints on stdout (docs/BENCH.md describes every field).
 */
#ifndef NEBULA_BENCH_REPORT_H
#define NEBULA_BENCH_REPORT_H

#include "bench.h"

#include <stdio.h>

typedef struct step_result {
    double rate_per_sender; /* msg/s of each sending connection */
    double window_s;        /* the measured window: --duration */
    uint64_t members;       /* connections open when the step began */
    uint64_t expected;      /* sum over measured sends of the room's members */
    step_report agg;        /* every worker's report, merged */
} step_result;

typedef struct run_result {
    connect_report conn;                 /* merged */
    uint64_t dropped;                    /* connections the server closed, whole run */
    long rss_before, rss_after, rss_end; /* server VmRSS in kB; -1: not sampled */
    step_result steps[BENCH_MAX_STEPS];
    int n_steps;
    int best_step;          /* S3: the highest delivered/s within the p99 limit; -1 */
    const char *stopped_by; /* why the steps ended: "rates", "p99_limit", ... */
    double ramp_s;          /* first connect() to last upgrade, over all workers */
    double wall_s;
    const char *status; /* "ok", "interrupted" or "error" */
    char error[256];
} run_result;

void step_merge(step_report *into, const step_report *from);
double step_delivered_per_s(const step_result *s);
int64_t step_lost(const step_result *s);
void report_print(FILE *out, const bench_params *p, const run_result *r);

#endif
