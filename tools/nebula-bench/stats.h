/*
 * stats.h — a log-linear latency histogram (HDR-like): fixed memory, values
 * in nanoseconds, relative error below 1/128, merged by adding buckets so
 * that worker processes can ship theirs to the parent as plain bytes.
 */
#ifndef NEBULA_BENCH_STATS_H
#define NEBULA_BENCH_STATS_H

#include <stdint.h>

/* Values below 2^(SUB_BITS+1) are exact; above, each power of two is split
 * into 2^SUB_BITS buckets. 2^44 ns (about 4.9 hours) is the ceiling. */
#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 44
#define HIST_BUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) << HIST_SUB_BITS)

typedef struct hist {
    uint64_t count;
    uint64_t sum; /* for the mean; wraps only after ~584 years of latency */
    uint64_t min;
    uint64_t max;
    uint64_t b[HIST_BUCKETS];
} hist;

void hist_reset(hist *h);
void hist_add(hist *h, uint64_t v);
void hist_merge(hist *into, const hist *from);
/* The value at quantile q (0..1): the top of the bucket holding it, clamped
 * to the exact maximum, so a percentile never under-reports. 0 if empty. */
uint64_t hist_quantile(const hist *h, double q);

#endif
