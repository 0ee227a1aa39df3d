/*
 * nebula/broker.h — the broker vtable (kind NB_KIND_BROKER): carries room
 * traffic between the nodes of a cluster. (Reshaped in ABI 1.1; no broker
 * could be loaded before, so nothing built for 1.0 breaks.)
 *
 * Threads. One broker instance per process, on the core's main loop
 * (host->loop(ctx)); the core calls every function below on that loop's
 * thread, and the broker calls the host's broker_* functions and every
 * completion on it too. Nothing here may block: name resolution and
 * connecting are asynchronous.
 *
 * Sequencing. A broker that returns NB_BROKER_F_SEQUENCES from start()
 * decides the order of each room across the cluster: it assigns every
 * published message its room's next seq, and the core delivers a message —
 * on every node, the origin included — only when it comes back through
 * host->broker_deliver() with that seq. A broker without the flag only
 * relays: each node orders what it delivers by itself.
 *
 * Status. The broker tells the core whether it can reach its bus with
 * host->broker_status(); the core starts with the broker "down" until told
 * otherwise, shows it in /readyz and nebula_broker_up, and while it is down
 * serves each room's local members alone (sequencing locally, publishing
 * nothing). docs/PLUGIN_ABI.md has the full contract;
 * tests/fixtures/broker_loopback.c is a complete example.
 */
#ifndef NEBULA_BROKER_H
#define NEBULA_BROKER_H

#include <nebula/msg.h>
#include <nebula/store.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Flags start() returns through *flags. */
#define NB_BROKER_F_SEQUENCES 0x1u /* the broker assigns seq; see above */
#define NB_BROKER_F_PRESENCE 0x2u  /* presence() keeps cluster-wide user lists */
#define NB_BROKER_F_HISTORY 0x4u   /* load() serves history */

/* Completion of subscribe() or publish(): called exactly once, on the main
 * loop, possibly before the call returns. `seq` is the position a
 * sequencing broker gave a published message (0 otherwise). */
typedef void (*nb_broker_done_fn)(void *user, int32_t status, uint64_t seq);

/* Completion of load(): exactly once, on the main loop. msgs[0..n) are
 * oldest first and, like res, valid only during the call. */
typedef void (*nb_broker_loaded_fn)(void *user, int32_t status, const nb_store_result *res,
                                    const nb_msg *msgs, uint32_t n);

typedef struct nb_broker_vtable {
    uint32_t struct_size;
    uint32_t reserved;

    /* Begin connecting (asynchronously) and set *flags (NB_BROKER_F_*).
     * NB_OK, or an NB_ERR_* code after logging why: the server then
     * refuses to start. Report reachability with host->broker_status. */
    int32_t (*start)(void *instance, uint32_t *flags);

    /* Leave the cluster (withdraw this node's presence and liveness) and
     * close connections. Called once, while the main loop still runs;
     * completions still pending must be called (with NB_ERR_CLOSED) before
     * it returns or never. */
    void (*stop)(void *instance);

    /* Receive `room`'s events from now on. done(user, NB_OK, 0) once the
     * subscription is in effect: every event published after that moment
     * reaches host->broker_deliver. On failure done gets an NB_ERR_* code
     * and the core retries after the next "up". */
    int32_t (*subscribe)(void *instance, const char *room, uint32_t room_len,
                         nb_broker_done_fn done, void *user);
    int32_t (*unsubscribe)(void *instance, const char *room, uint32_t room_len);

    /* Send a room event (a message; join and leave go through presence())
     * to every node subscribed to msg->room. The broker serialises msg
     * before returning. done reports the outcome (and the seq). */
    int32_t (*publish)(void *instance, const nb_msg *msg, nb_broker_done_fn done, void *user);

    /* Optional: used only when start() set NB_BROKER_F_PRESENCE. Cluster
     * presence: a user of this node joined (joined = 1) or left (0) a room.
     * While the broker is up it sends the room's cluster-wide user list
     * back as an NB_MSG_PRESENCE through host->broker_deliver, and the
     * core sends no presence of its own; other nodes' users joining and
     * leaving come the same way, as NB_MSG_JOIN / NB_MSG_LEAVE with sender
     * set (this node's own the core announces itself).
     *
     * A join with `done` set is a claim: a username is unique per room
     * across the cluster, so the core's join waits (the joiner is not in
     * the room yet) until done(user, status, 0): NB_OK, the name is this
     * node's; NB_ERR_TAKEN, another node holds it (the joiner gets
     * username_taken); any other code, the bus failed and the join goes
     * on with local uniqueness only. The core claims only while the
     * broker is up. done == NULL is a notification the broker records
     * without refusing (a join while it was down; every leave): it keeps
     * this node's users, to register them again after an outage. */
    int32_t (*presence)(void *instance, const char *room, uint32_t room_len, const char *user,
                        uint32_t user_len, uint32_t joined, nb_broker_done_fn done,
                        void *done_user);

    /* Optional: used only when start() set NB_BROKER_F_HISTORY (and while
     * the broker is up); otherwise the store, or memory, serves history.
     * History as the cluster has it: same query and result as
     * nb_store_vtable.load, answered asynchronously through done. */
    int32_t (*load)(void *instance, const nb_store_query *q, nb_broker_loaded_fn done, void *user);
} nb_broker_vtable;

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_BROKER_H */
