/*
 * cluster.c — the table behind GET /cluster. The broker updates it on the
 * main loop; the endpoint reads it on an I/O thread: one mutex. Bounded:
 * at most CLUSTER_MAX_NODES other nodes are kept (a larger cluster shows
 * the first ones, and says how many it left out).
 */
#include "cluster.h"

#include "buf.h"
#include "hub.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLUSTER_MAX_NODES 1024
#define CLUSTER_ID_MAX 128

typedef struct cluster_node {
    char id[CLUSTER_ID_MAX];
    uint32_t connections;
    uint32_t rooms;
} cluster_node;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cluster_node *nodes;
static uint32_t n_nodes, cap_nodes, left_out;

void cluster_local_counts(nb_server *srv, uint32_t *connections, uint32_t *rooms) {
    int64_t c = metrics_value(srv->m.connections);
    *connections = c < 0 ? 0 : (uint32_t)c;
    *rooms = srv->hub ? hub_room_count(srv->hub) : 0;
}

static int find_locked(const char *id) {
    for (uint32_t i = 0; i < n_nodes; i++)
        if (strcmp(nodes[i].id, id) == 0)
            return (int)i;
    return -1;
}

void cluster_seen(nb_server *srv, const char *node_id, uint32_t connections, uint32_t rooms) {
    if (!node_id || strlen(node_id) >= CLUSTER_ID_MAX ||
        strcmp(node_id, srv->settings.node_id) == 0)
        return;
    pthread_mutex_lock(&lock);
    int i = find_locked(node_id);
    if (i < 0 && n_nodes == cap_nodes && cap_nodes < CLUSTER_MAX_NODES) {
        uint32_t cap = cap_nodes ? cap_nodes * 2 : 8;
        cluster_node *n = realloc(nodes, cap * sizeof *n);
        if (n) {
            nodes = n;
            cap_nodes = cap;
        }
    }
    if (i < 0 && n_nodes < cap_nodes) {
        i = (int)n_nodes++;
        snprintf(nodes[i].id, sizeof nodes[i].id, "%s", node_id);
    } else if (i < 0) {
        left_out++;
    }
    if (i >= 0) {
        nodes[i].connections = connections;
        nodes[i].rooms = rooms;
    }
    pthread_mutex_unlock(&lock);
}

void cluster_forget(nb_server *srv, const char *node_id) {
    (void)srv;
    pthread_mutex_lock(&lock);
    int i = find_locked(node_id);
    if (i >= 0)
        nodes[i] = nodes[--n_nodes];
    pthread_mutex_unlock(&lock);
}

void cluster_reset(void) {
    pthread_mutex_lock(&lock);
    free(nodes);
    nodes = NULL;
    n_nodes = cap_nodes = left_out = 0;
    pthread_mutex_unlock(&lock);
}

/* Node ids come from the bus: escape what JSON needs. */
static void put_string(nb_buf **b, const char *s) {
    buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            buf_append(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            buf_append(b, esc, 6);
        } else {
            buf_append(b, s, 1);
        }
    }
    buf_append(b, "\"", 1);
}

static void put_node(nb_buf **b, const char *id, uint32_t conns, uint32_t rooms, int self) {
    char tail[96];
    buf_append(b, "{\"id\":", 6);
    put_string(b, id);
    int n = snprintf(tail, sizeof tail, ",\"self\":%s,\"connections\":%u,\"rooms\":%u}",
                     self ? "true" : "false", conns, rooms);
    buf_append(b, tail, (uint32_t)n);
}

static void put_peer(void *user, const char *id, uint32_t conns, uint32_t rooms) {
    nb_buf **b = user;
    buf_append(b, ",", 1);
    put_node(b, id, conns, rooms, 0);
}

static int cmp_nodes(const void *a, const void *b) {
    return strcmp(((const cluster_node *)a)->id, ((const cluster_node *)b)->id);
}

void cluster_each_peer(void (*fn)(void *user, const char *id, uint32_t connections, uint32_t rooms),
                       void *user) {
    pthread_mutex_lock(&lock);
    if (n_nodes) /* qsort wants a pointer even for nothing */
        qsort(nodes, n_nodes, sizeof *nodes, cmp_nodes);
    for (uint32_t i = 0; i < n_nodes; i++)
        fn(user, nodes[i].id, nodes[i].connections, nodes[i].rooms);
    pthread_mutex_unlock(&lock);
}

nb_buf *cluster_render(nb_server *srv) {
    nb_buf *b = buf_new(0, 256);
    if (!b)
        return NULL;
    uint32_t conns, rooms;
    cluster_local_counts(srv, &conns, &rooms);
    const char *broker = !srv->broker ? "none" : context_broker_up(srv) ? "up" : "down";
    buf_append(&b, "{\"node\":", 8);
    put_string(&b, srv->settings.node_id);
    buf_append(&b, ",\"broker\":", 10);
    put_string(&b, broker);
    buf_append(&b, ",\"nodes\":[", 10);
    put_node(&b, srv->settings.node_id, conns, rooms, 1);
    cluster_each_peer(put_peer, &b);
    pthread_mutex_lock(&lock);
    uint32_t left = left_out;
    pthread_mutex_unlock(&lock);
    char tail[64];
    int n = snprintf(tail, sizeof tail, "],\"left_out\":%u}\n", left);
    buf_append(&b, tail, (uint32_t)n);
    return b;
}
