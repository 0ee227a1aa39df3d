/*
 * admin_snapshot.h — the admin feed's JSON snapshot of this node (and of
 * the cluster, as far as this node knows it). One object:
 *
 *   {"ts": ms, "node": {"id", "version", "abi", "started", "uptime_s"},
 *    "connections", "rooms", "threads", "messages_total",
 *    "message_rate" (per second, or null), "errors_total",
 *    "p99_broadcast_ms" (or null), "broadcast_samples",
 *    "rss_bytes", "open_fds", "max_fds",
 *    "store": {"plugin", "up"}, "broker": {"plugin", "up", "other_nodes"},
 *    "cluster": {"source", "nodes": [{"id", "self", "connections", "rooms",
 *                                     "message_rate"}]}}
 *
 * Rates and p99 are over the last NB_ADMIN_WINDOW snapshots of the caller's
 * window (one per worker feeding a page); without a window they are null.
 */
#ifndef NEBULA_CORE_ADMIN_SNAPSHOT_H
#define NEBULA_CORE_ADMIN_SNAPSHOT_H

#include "context.h"
#include "metrics.h"

/* Snapshots a window spans (at one a second: ten seconds). */
#define NB_ADMIN_WINDOW 10u

typedef struct nb_admin_point {
    int64_t mono_ms;
    int64_t messages;
    uint64_t buckets[NB_METRICS_MAX_BUCKETS + 1]; /* cumulative */
} nb_admin_point;

typedef struct nb_admin_window {
    nb_admin_point points[NB_ADMIN_WINDOW];
    uint32_t n;    /* points kept, up to NB_ADMIN_WINDOW */
    uint32_t next; /* where the next one goes */
} nb_admin_window;

/* A new buffer (headroom for a frame header) holding the snapshot, or
 * NULL when out of memory. window may be NULL; when given, the snapshot
 * taken now is added to it. */
nb_buf *admin_snapshot(nb_server *srv, nb_admin_window *window);
#endif
