/*
 * cluster.h — the nodes of the cluster as this node sees them, for
 * GET /cluster: this node with its own counts, and every other live node
 * with the counts of its latest heartbeat, as the broker reports them
 * (host->broker_node_counts, host->broker_node).
 */
#ifndef NEBULA_CORE_CLUSTER_H
#define NEBULA_CORE_CLUSTER_H

#include "context.h"

#include <nebula/buf.h>

/* This node's live connections and rooms. */
void cluster_local_counts(nb_server *srv, uint32_t *connections, uint32_t *rooms);
/* Main loop: a node's heartbeat was seen / the node expired. */
void cluster_seen(nb_server *srv, const char *node_id, uint32_t connections, uint32_t rooms);
void cluster_forget(nb_server *srv, const char *node_id);
/* Any thread: the JSON body of GET /cluster (one reference), or NULL. */
nb_buf *cluster_render(nb_server *srv);
/* Call fn for every other live node the broker reported (sorted by id),
 * under the table's lock: fn must not call back into cluster_*. */
void cluster_each_peer(void (*fn)(void *user, const char *id, uint32_t connections, uint32_t rooms),
                       void *user);
/* At exit: forget every node. */
void cluster_reset(void);
#endif
