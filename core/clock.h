/*
 * clock.h — the server's notion of "now" for message timestamps: wall
 * clock, milliseconds since the Unix epoch (the protocol's `ts`).
 */
#ifndef NEBULA_CORE_CLOCK_H
#define NEBULA_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
#endif
