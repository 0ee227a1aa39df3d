/*
 * nebula/broker.h — the broker vtable (kind NB_KIND_BROKER): carries room
 * traffic between nodes of a cluster.
 *
 * One broker instance per process, running on the core's main loop
 * (host->loop(ctx)); every function here is called on that loop's thread.
 * Messages that arrive from other nodes are handed to the core with
 * host->broker_deliver() on the same thread. A broker must drop the
 * messages its own node published (it knows its node id from
 * host->server_info(ctx)->node_id).
 */
#ifndef NEBULA_BROKER_H
#define NEBULA_BROKER_H

#include <nebula/msg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_broker_vtable {
    uint32_t struct_size;
    uint32_t reserved;

    /* Start connecting (asynchronously). NB_OK or an NB_ERR_* code. */
    int32_t (*start)(void *instance);

    /* Receive traffic of `room` from now on / no longer. */
    int32_t (*subscribe)(void *instance, const char *room, uint32_t room_len);
    int32_t (*unsubscribe)(void *instance, const char *room, uint32_t room_len);

    /* Send a room event (message, join, leave, presence) to the other
     * nodes. The broker serialises msg itself before returning. */
    int32_t (*publish)(void *instance, const nb_msg *msg);
} nb_broker_vtable;

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_BROKER_H */
