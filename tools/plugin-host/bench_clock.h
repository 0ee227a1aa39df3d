/*
 * bench_clock.h — what the tools' benches (store-bench, broker-bench)
 * measure with: a monotonic clock, the process's CPU time, and
 * percentiles of a sorted array of samples.
 */
#ifndef NEBULA_BENCH_CLOCK_H
#define NEBULA_BENCH_CLOCK_H

#include <stddef.h>

/* Milliseconds on CLOCK_MONOTONIC. */
double bench_now_ms(void);
/* CPU time of the process (user + system) in ms: on a busy machine the
 * wall clock measures the other processes too. */
double bench_cpu_ms(void);
/* Sort n samples in place, ascending. */
void bench_sort(double *v, size_t n);
/* The p-th quantile (0..1) of n sorted samples, nearest rank; 0 when n = 0. */
double bench_pct(const double *v, size_t n, double p);

#endif /* NEBULA_BENCH_CLOCK_H */
