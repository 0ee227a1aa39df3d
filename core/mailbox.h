/*
 * mailbox.h — one per event loop (each I/O worker, the main loop, the
 * store's writer thread): a bounded first-in first-out queue of typed
 * events (event.h) that any thread may post to, and an ev_async that wakes
 * the loop. The queue is a mutex-protected ring, which ThreadSanitizer can
 * see (libev's own fences it cannot; shared/STACK.md).
 *
 * Bounded: a mailbox holds at most `limit` events ([server]
 * worker_mailbox_events, writer_mailbox_events, main_mailbox_events in
 * docs/CONFIG.md). A post to a full mailbox is refused and the poster
 * applies the policy of that hand-off (pipeline.c); it is never a silent
 * drop. The ring grows by doubling up to the limit, so an idle mailbox
 * costs little.
 */
#ifndef NEBULA_CORE_MAILBOX_H
#define NEBULA_CORE_MAILBOX_H

#include "event.h"

#include <ev.h>
#include <pthread.h>
#include <stdint.h>

typedef struct nb_mailbox {
    pthread_mutex_t lock;
    nb_event *items; /* ring */
    uint32_t cap;
    uint32_t head;
    uint32_t count;
    uint32_t limit;
    uint64_t refused; /* posts refused since start */
    struct ev_loop *loop;
    ev_async wake;
    int started;
} nb_mailbox;

/* Set up, with cb (data in wake.data) run on loop's thread after a wake. */
void mailbox_init(nb_mailbox *mb, struct ev_loop *loop, uint32_t limit,
                  void (*cb)(struct ev_loop *, ev_async *, int), void *data);
/* Start the wake-up watcher on the loop (from the loop's thread, or before it runs). */
void mailbox_start(nb_mailbox *mb);
/* Release the events still queued, stop the watcher, free the ring. */
void mailbox_free(nb_mailbox *mb);

/* Move *ev into the mailbox: 0, and the mailbox owns it; -1 when full or
 * out of memory: the caller still owns it (and applies its policy). Does
 * not wake the loop (mailbox_wake does, after the poster's locks are
 * released). */
int mailbox_post(nb_mailbox *mb, nb_event *ev);
void mailbox_wake(nb_mailbox *mb);
/* Post and wake at once (posters that hold no lock). */
int mailbox_send(nb_mailbox *mb, nb_event *ev);

/* Take up to max events, oldest first; the caller owns them. */
uint32_t mailbox_take(nb_mailbox *mb, nb_event *out, uint32_t max);
uint32_t mailbox_depth(nb_mailbox *mb);
#endif
