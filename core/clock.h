/*
 * clock.h — the server's notions of "now": wall clock for message
 * timestamps, a monotonic clock for deadlines.
 */
#ifndef NEBULA_CORE_CLOCK_H
#define NEBULA_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (the protocol's `ts`). */
static inline int64_t clock_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds from an arbitrary start; never jumps when the wall clock is
 * set, so a deadline measured with it neither fires early nor late. */
static inline int64_t clock_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
#endif
