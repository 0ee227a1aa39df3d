/*
 * nebula/store.h — the store vtable (kind NB_KIND_STORE): message history
 * that survives a restart. (Reshaped in ABI 1.1; no store could be loaded
 * before, so nothing built for 1.0 breaks.)
 *
 * Threads. The core runs a store on ONE writer thread of its own, with its
 * own libev loop (host->loop(ctx) answers it), never on an I/O thread, so a
 * slow disk never delays a broadcast. Every function below except create()
 * and destroy() is called on that thread; a store needs no locking of its
 * own. create() runs on the main thread, also for `nebula --check-config`:
 * it reads and checks its config keys and touches NO data (no file opened,
 * created or repaired). start() opens the data; stop() closes it.
 *
 * Order. append() receives a room's chat messages in the room's order
 * (seq strictly increasing within a room; rooms interleave). The core
 * batches (group commit): a run of append() calls, then one flush(). load()
 * runs in the same sequence of calls, so it must see every record appended
 * before it, flushed or not.
 *
 * Durability. flush() reports through *durable whether the batch reached
 * stable storage. A store whose policy is "the echo waits for the disk"
 * (fsync = always) sets NB_STORE_F_ACK_AFTER_FLUSH in the flags returned
 * by start(): the core then delivers a room's events only after the flush
 * that covers them succeeded, so a sender's own echo means "on disk".
 * Without the flag, delivery does not wait for the writer.
 *
 * Failure. An append() or flush() that fails returns an NB_ERR_* code after
 * logging why. The core answers the senders of the failed batch with the
 * error `store_unavailable` when it held their echo, counts
 * nebula_store_failures_total, shows the store as down in /readyz until a
 * flush succeeds again, and never crashes. docs/PLUGIN_ABI.md has the
 * full contract; tests/fixtures/store_memory.c is a complete example.
 */
#ifndef NEBULA_STORE_H
#define NEBULA_STORE_H

#include <nebula/msg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Flags start() returns through *flags. */
#define NB_STORE_F_ACK_AFTER_FLUSH 0x1u /* deliver only after a successful flush */

/* A history query: the messages of one room, oldest first. */
typedef struct nb_store_query {
    uint32_t struct_size;
    uint32_t max; /* at most this many: the NEWEST `max` that match */
    const char *room;
    uint32_t room_len;
    uint32_t has_since; /* 1: only messages with seq > since; 0: any */
    uint64_t since;
} nb_store_query;

/* What load() reports besides the messages it visits. Zeroed on entry. */
typedef struct nb_store_result {
    uint32_t struct_size;
    uint32_t reserved;
    uint64_t last_seq;  /* the room's highest stored seq; 0 = the store knows no message of it */
    uint64_t first_seq; /* the oldest seq still stored for the room (retention); 0 = none */
    const char *epoch;  /* the store's history epoch (NUL-terminated, static or owned by the
                           instance): seq values compare only within one epoch. NULL = "" */
} nb_store_result;

/* Receives stored messages oldest first; return NB_OK to go on, anything
 * else to stop early. `msg` and its strings are valid only during the
 * call (the core copies what it keeps). */
typedef int32_t (*nb_store_visit_fn)(void *user, const nb_msg *msg);

typedef struct nb_store_vtable {
    uint32_t struct_size;
    uint32_t reserved;

    /* Open (create, repair) the data; on the writer thread. Returns NB_OK
     * and sets *flags (NB_STORE_F_*), or an NB_ERR_* code after logging
     * why: the server then refuses to start. */
    int32_t (*start)(void *instance, uint32_t *flags);

    /* Flush what is pending and close the data; on the writer thread, once,
     * after the last flush(). */
    void (*stop)(void *instance);

    /* Persist one chat message (type NB_MSG_MESSAGE; room, sender,
     * content, id, ts and seq are set). May buffer; durable after the next
     * successful flush() that reports *durable = 1. */
    int32_t (*append)(void *instance, const nb_msg *msg);

    /* End of a batch: write what append() buffered, and sync as the
     * store's policy says. *durable = 1 when everything appended so far is
     * on stable storage (0: written, not yet synced, e.g. fsync = everysec;
     * a later flush will say 1). */
    int32_t (*flush)(void *instance, uint32_t *durable);

    /* Visit the messages matching q (oldest first) and fill *res. A room
     * the store never saw is NB_OK with nothing visited and last_seq 0. */
    int32_t (*load)(void *instance, const nb_store_query *q, nb_store_result *res,
                    nb_store_visit_fn visit, void *user);
} nb_store_vtable;

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_STORE_H */
