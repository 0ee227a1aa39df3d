/*
 * log_repeat.c — the limit on repeated lines (log.h): a small open-
 * addressed table of slots keyed by the format string's address (each
 * call site has its own), each counting the lines of its current window.
 * Admitting or suppressing a line costs a few atomic operations and no
 * formatting, so a flood costs little; the text kept for the summary is
 * copied only for the few lines that are written.
 */
#include "log.h"
#include "log_impl.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SLOTS 256u
#define PROBES 8u

typedef struct repeat_slot {
    _Atomic(const char *) fmt; /* the key; NULL = free */
    atomic_llong window_start_ms;
    atomic_uint in_window; /* lines admitted or suppressed in this window */
    atomic_uint suppressed;
    atomic_uint level;
    atomic_flag busy; /* guards origin and last */
    char origin[32];
    char last[256];
} repeat_slot;

static repeat_slot slots[SLOTS];
static atomic_uint window_ms; /* 0 = no limit */

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void log_repeat_configure(uint32_t ms) {
    atomic_store(&window_ms, ms);
}

static repeat_slot *find(const char *fmt) {
    size_t h = ((uintptr_t)fmt >> 3) * 2654435761u;
    for (uint32_t i = 0; i < PROBES; i++) {
        repeat_slot *s = &slots[(h + i) % SLOTS];
        const char *k = atomic_load(&s->fmt);
        if (k == fmt)
            return s;
        if (!k) {
            const char *none = NULL;
            if (atomic_compare_exchange_strong(&s->fmt, &none, fmt) || none == fmt)
                return s;
        }
    }
    return NULL; /* the table is crowded here: this format is not limited */
}

static void lock_slot(repeat_slot *s) {
    while (atomic_flag_test_and_set_explicit(&s->busy, memory_order_acquire)) {
    }
}

static void unlock_slot(repeat_slot *s) {
    atomic_flag_clear_explicit(&s->busy, memory_order_release);
}

/* "<the last line> (N more like this in the last W s)", when N > 0. */
static void summarize(repeat_slot *s, uint32_t n, uint32_t window) {
    if (!n)
        return;
    char origin[sizeof s->origin], last[sizeof s->last];
    lock_slot(s);
    memcpy(origin, s->origin, sizeof origin);
    memcpy(last, s->last, sizeof last);
    unlock_slot(s);
    char line[LOG_LINE_MAX];
    size_t len =
        log_format_line(line, sizeof line, atomic_load(&s->level), origin, last, n, window);
    log_emit(line, len);
}

/* A new window starts now if the last one is over (by whoever sees it
 * first); the one that starts it reports the old window's count. */
static void roll(repeat_slot *s, int64_t now, uint32_t window, int force) {
    long long start = atomic_load(&s->window_start_ms);
    if (!force && now - start < window)
        return;
    if (!atomic_compare_exchange_strong(&s->window_start_ms, &start, now))
        return;
    atomic_store(&s->in_window, 0);
    summarize(s, atomic_exchange(&s->suppressed, 0), window);
}

int log_repeat_admit(const char *fmt, uint32_t level) {
    uint32_t window = atomic_load(&window_ms);
    if (!window)
        return 1;
    repeat_slot *s = find(fmt);
    if (!s)
        return 1;
    atomic_store(&s->level, level);
    roll(s, mono_ms(), window, 0);
    if (atomic_fetch_add(&s->in_window, 1) < NB_LOG_REPEAT_LINES)
        return 1;
    atomic_fetch_add(&s->suppressed, 1);
    return 0;
}

void log_repeat_note(const char *fmt, const char *origin, const char *msg) {
    if (!atomic_load(&window_ms))
        return;
    repeat_slot *s = find(fmt);
    if (!s)
        return;
    lock_slot(s);
    snprintf(s->origin, sizeof s->origin, "%s", origin);
    snprintf(s->last, sizeof s->last, "%s", msg);
    unlock_slot(s);
}

void log_repeat_sweep(int all) {
    uint32_t window = atomic_load(&window_ms);
    if (!window)
        return;
    int64_t now = mono_ms();
    for (uint32_t i = 0; i < SLOTS; i++)
        if (atomic_load(&slots[i].fmt) && atomic_load(&slots[i].suppressed))
            roll(&slots[i], now, window, all);
}
