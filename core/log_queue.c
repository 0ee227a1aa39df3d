/*
 * log_queue.c — lines on their way to stderr: a ring of bytes under a
 * mutex, filled by any thread (a memcpy, never a write) and emptied by one
 * log thread, the only one that writes stderr while it runs. A full ring
 * drops the line and counts it; the thread writes the count once it has
 * caught up. The mutex is never held across a write().
 */
#include "log.h"
#include "log_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How often the thread wakes without lines, for the repeat summaries. */
#define SWEEP_EVERY_MS 1000
/* Bytes taken from the ring per write(). */
#define CHUNK ((size_t)64 * 1024)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static atomic_int queued_mode; /* a fast check; `running` under the lock decides */
static int running;
static int stopping;
static pthread_t thread;
static char *ring;
static size_t ring_cap, ring_head, ring_len;
static uint64_t dropped;

static void write_all(const char *p, size_t len) {
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* stderr is gone: nothing else can be done with the line */
        p += w;
        len -= (size_t)w;
    }
}

void log_emit(const char *line, size_t len) {
    if (atomic_load(&queued_mode)) {
        pthread_mutex_lock(&lock);
        if (running) {
            if (ring_len + len > ring_cap) {
                dropped++;
            } else {
                size_t tail = (ring_head + ring_len) % ring_cap;
                size_t first = len < ring_cap - tail ? len : ring_cap - tail;
                memcpy(ring + tail, line, first);
                memcpy(ring, line + first, len - first);
                if (ring_len == 0)
                    pthread_cond_signal(&wake);
                ring_len += len;
            }
            pthread_mutex_unlock(&lock);
            return;
        }
        pthread_mutex_unlock(&lock);
    }
    write_all(line, len); /* one write keeps lines whole when threads log at once */
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *log_thread(void *arg) {
    (void)arg;
    char *chunk = malloc(CHUNK);
    int64_t last_sweep = mono_ms();
    pthread_mutex_lock(&lock);
    for (;;) {
        if (ring_len == 0 && !dropped && !stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&wake, &lock, &until);
        }
        size_t n = 0;
        if (chunk) {
            n = ring_len < CHUNK ? ring_len : CHUNK;
            size_t first = n < ring_cap - ring_head ? n : ring_cap - ring_head;
            memcpy(chunk, ring + ring_head, first);
            memcpy(chunk + first, ring, n - first);
            ring_head = (ring_head + n) % ring_cap;
            ring_len -= n;
        }
        uint64_t lost = dropped;
        dropped = 0;
        int done = stopping && ring_len == 0;
        pthread_mutex_unlock(&lock);
        write_all(chunk, n);
        if (lost) {
            char msg[160], line[512];
            snprintf(msg, sizeof msg,
                     "%llu log line(s) dropped: stderr did not keep up (raise [server] "
                     "log_queue_bytes, or read the log faster)",
                     (unsigned long long)lost);
            write_all(line, log_format_line(line, sizeof line, 2, "core", msg, 0, 0));
        }
        int64_t now = mono_ms();
        if (now - last_sweep >= SWEEP_EVERY_MS && !done) {
            last_sweep = now;
            log_repeat_sweep(0); /* its lines come back through log_emit */
        }
        pthread_mutex_lock(&lock);
        if (done && ring_len == 0)
            break;
    }
    running = 0;
    pthread_mutex_unlock(&lock);
    free(chunk);
    return NULL;
}

int log_start(uint32_t queue_bytes, uint32_t repeat_window_ms) {
    log_repeat_configure(repeat_window_ms);
    pthread_mutex_lock(&lock);
    if (running) {
        pthread_mutex_unlock(&lock);
        return 0;
    }
    ring = malloc(queue_bytes);
    ring_cap = queue_bytes;
    ring_head = ring_len = 0;
    dropped = 0;
    stopping = 0;
    running = ring && pthread_create(&thread, NULL, log_thread, NULL) == 0;
    if (!running) {
        free(ring);
        ring = NULL;
    }
    atomic_store(&queued_mode, running);
    int ok = running;
    pthread_mutex_unlock(&lock);
    return ok ? 0 : -1;
}

void log_stop(void) {
    log_repeat_sweep(1); /* the counts of windows still open */
    pthread_mutex_lock(&lock);
    if (!running) {
        pthread_mutex_unlock(&lock);
        return;
    }
    stopping = 1;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
    pthread_mutex_lock(&lock);
    atomic_store(&queued_mode, 0);
    free(ring);
    ring = NULL;
    ring_cap = 0;
    pthread_mutex_unlock(&lock);
    log_repeat_configure(0);
}

void log_flush_before_exit(void) {
    pthread_mutex_lock(&lock);
    while (ring && ring_len) {
        size_t n = ring_len < ring_cap - ring_head ? ring_len : ring_cap - ring_head;
        write_all(ring + ring_head, n);
        ring_head = (ring_head + n) % ring_cap;
        ring_len -= n;
    }
    pthread_mutex_unlock(&lock);
}
