/*
 * nebula/store.h — the store vtable (kind NB_KIND_STORE): message history
 * that survives a restart.
 *
 * The core calls a store from ONE dedicated writer thread of its own, never
 * from an I/O thread, so a slow disk never delays a broadcast; a store
 * needs no locking of its own. The core batches: append() may be called
 * many times, then flush() once when the batch is done (commit, fsync
 * policy). load() runs on the same thread, at start-up and when a room
 * without cached history is joined.
 */
#ifndef NEBULA_STORE_H
#define NEBULA_STORE_H

#include <nebula/msg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Receives stored messages oldest first; return NB_OK to go on, anything
 * else to stop early. `msg` is valid only during the call. */
typedef int32_t (*nb_store_visit_fn)(void *user, const nb_msg *msg);

typedef struct nb_store_vtable {
    uint32_t struct_size;
    uint32_t reserved;

    /* Persist one chat message (type NB_MSG_MESSAGE, every field set by the
     * server). Durable after the next successful flush(). */
    int32_t (*append)(void *instance, const nb_msg *msg);

    /* Make everything appended so far durable. */
    int32_t (*flush)(void *instance);

    /* Visit the last `max` messages of `room` (room_len bytes), oldest
     * first. */
    int32_t (*load)(void *instance, const char *room, uint32_t room_len, uint32_t max,
                    nb_store_visit_fn visit, void *user);
} nb_store_vtable;

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_STORE_H */
