/*
 * stats.c — the log-linear histogram of stats.h.
 *
 * Bucket layout: value v with highest set bit m. For m <= SUB_BITS the
 * bucket is v itself; otherwise the top SUB_BITS+1 bits of v pick one of
 * 2^SUB_BITS buckets in group m - SUB_BITS + 1. Adding is a clz and a shift:
 * cheap enough for every delivery at a million per second.
 */
#include "stats.h"

#include <string.h>

#define SUB_COUNT (1u << HIST_SUB_BITS)

void hist_reset(hist *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v) {
    if (v < 2ull * SUB_COUNT)
        return (unsigned)v;
    unsigned m = 63u - (unsigned)__builtin_clzll(v);
    if (m >= HIST_MAX_BITS)
        return HIST_BUCKETS - 1;
    unsigned shift = m - HIST_SUB_BITS;
    return ((shift + 1u) << HIST_SUB_BITS) + (unsigned)((v >> shift) - SUB_COUNT);
}

/* The largest value that lands in bucket i. */
static uint64_t bucket_top(unsigned i) {
    unsigned group = i >> HIST_SUB_BITS;
    if (group <= 1)
        return i;
    unsigned shift = group - 1u;
    uint64_t low = ((uint64_t)(i & (SUB_COUNT - 1u)) | SUB_COUNT) << shift;
    return low + ((uint64_t)1 << shift) - 1u;
}

void hist_add(hist *h, uint64_t v) {
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(hist *into, const hist *from) {
    if (from->count == 0)
        return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t hist_quantile(const hist *h, double q) {
    if (h->count == 0)
        return 0;
    if (q <= 0.0)
        return h->min;
    /* rank of the sample wanted, 1-based: ceil(q * count) */
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top > h->max ? h->max : top;
        }
    }
    return h->max;
}
