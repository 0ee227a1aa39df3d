#include "mailbox.h"

#include <stdlib.h>
#include <string.h>

void mailbox_init(nb_mailbox *mb, struct ev_loop *loop, uint32_t limit,
                  void (*cb)(struct ev_loop *, ev_async *, int), void *data) {
    memset(mb, 0, sizeof *mb);
    pthread_mutex_init(&mb->lock, NULL);
    mb->limit = limit ? limit : 1;
    mb->loop = loop;
    ev_async_init(&mb->wake, cb);
    mb->wake.data = data;
}

void mailbox_start(nb_mailbox *mb) {
    ev_async_start(mb->loop, &mb->wake);
    mb->started = 1;
}

void mailbox_free(nb_mailbox *mb) {
    if (!mb->loop)
        return;
    for (uint32_t i = 0; i < mb->count; i++)
        event_release(&mb->items[(mb->head + i) % mb->cap]);
    free(mb->items);
    if (mb->started)
        ev_async_stop(mb->loop, &mb->wake);
    pthread_mutex_destroy(&mb->lock);
    memset(mb, 0, sizeof *mb);
}

/* Double the ring (up to the limit), keeping its order. */
static int grow(nb_mailbox *mb) {
    uint32_t cap = mb->cap ? mb->cap * 2 : 64;
    if (cap > mb->limit)
        cap = mb->limit;
    nb_event *items = malloc((size_t)cap * sizeof *items);
    if (!items)
        return -1;
    for (uint32_t i = 0; i < mb->count; i++)
        items[i] = mb->items[(mb->head + i) % mb->cap];
    free(mb->items);
    mb->items = items;
    mb->cap = cap;
    mb->head = 0;
    return 0;
}

int mailbox_post(nb_mailbox *mb, nb_event *ev) {
    pthread_mutex_lock(&mb->lock);
    if (mb->count == mb->cap && (mb->cap >= mb->limit || grow(mb) < 0)) {
        mb->refused++;
        pthread_mutex_unlock(&mb->lock);
        return -1;
    }
    mb->items[(mb->head + mb->count++) % mb->cap] = *ev;
    pthread_mutex_unlock(&mb->lock);
    return 0;
}

void mailbox_wake(nb_mailbox *mb) {
    ev_async_send(mb->loop, &mb->wake);
}

int mailbox_send(nb_mailbox *mb, nb_event *ev) {
    if (mailbox_post(mb, ev) < 0)
        return -1;
    mailbox_wake(mb);
    return 0;
}

uint32_t mailbox_take(nb_mailbox *mb, nb_event *out, uint32_t max) {
    pthread_mutex_lock(&mb->lock);
    uint32_t n = mb->count < max ? mb->count : max;
    for (uint32_t i = 0; i < n; i++)
        out[i] = mb->items[(mb->head + i) % mb->cap];
    if (n) {
        mb->head = (mb->head + n) % mb->cap;
        mb->count -= n;
    }
    pthread_mutex_unlock(&mb->lock);
    return n;
}

uint32_t mailbox_depth(nb_mailbox *mb) {
    pthread_mutex_lock(&mb->lock);
    uint32_t n = mb->count;
    pthread_mutex_unlock(&mb->lock);
    return n;
}
