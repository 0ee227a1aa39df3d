/*
 * nodes.c — node membership. Every heartbeat_ms each node runs the beat
 * script on every instance that is up: it refreshes its own key
 * (nebula:node:<id> = "connections rooms", expiring after node_ttl_ms),
 * reaps every node whose key has expired (its users leave their rooms
 * and the corrected lists are published), and gets the live nodes back.
 * So a node that dies leaves the presence lists at most node_ttl_ms +
 * heartbeat_ms after its last beat. The core hears of nodes appearing and
 * expiring (host->broker_node) and of their counts (/cluster).
 */
#include "rb.h"

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int has_host_counts(const rb_broker *b) {
    return b->host->struct_size >= offsetof(nb_host, broker_node_counts) + sizeof(void *);
}

static int in_list(char (*list)[RB_NODE_MAX], uint32_t n, const char *id) {
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(list[i], id) == 0)
            return 1;
    return 0;
}

static int push(char (**list)[RB_NODE_MAX], uint32_t *n, uint32_t *cap, const char *id) {
    if (*n == *cap) {
        uint32_t c = *cap ? *cap * 2 : 8;
        char(*l)[RB_NODE_MAX] = realloc(*list, c * sizeof *l);
        if (!l)
            return -1;
        *list = l;
        *cap = c;
    }
    snprintf((*list)[*n], RB_NODE_MAX, "%s", id);
    (*n)++;
    return 0;
}

/* Tell the core about nodes that appeared on, or vanished from, every
 * instance that is up. */
static void reconcile(rb_broker *b) {
    for (uint32_t i = 0; i < b->n_links; i++) {
        const rb_link *l = &b->links[i];
        for (uint32_t k = 0; k < l->n_seen; k++)
            if (strcmp(l->seen[k], b->node_id) != 0 && !in_list(b->alive, b->n_alive, l->seen[k]) &&
                push(&b->alive, &b->n_alive, &b->cap_alive, l->seen[k]) == 0)
                b->host->broker_node(b->ctx, l->seen[k], 1);
    }
    for (uint32_t a = 0; a < b->n_alive;) {
        int seen = 0;
        for (uint32_t i = 0; i < b->n_links && !seen; i++)
            seen = in_list(b->links[i].seen, b->links[i].n_seen, b->alive[a]);
        if (seen) {
            a++;
            continue;
        }
        char gone[RB_NODE_MAX];
        memcpy(gone, b->alive[a], sizeof gone);
        memcpy(b->alive[a], b->alive[--b->n_alive], sizeof gone);
        b->host->broker_node(b->ctx, gone, 0);
    }
}

static void on_beat(rb_link *l, redisReply *reply, void *user) {
    rb_broker *b = user;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            b->host->log(b->ctx, NB_LOG_WARN, "redis %s: heartbeat script failed: %s", l->shown,
                         reply->str);
        return;
    }
    l->n_seen = 0;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *id = reply->element[i], *counts = reply->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || counts->type != REDIS_REPLY_STRING ||
            id->len >= RB_NODE_MAX)
            continue;
        push(&l->seen, &l->n_seen, &l->cap_seen, id->str);
        unsigned conns = 0, rooms = 0;
        if (sscanf(counts->str, "%u %u", &conns, &rooms) == 2 && has_host_counts(b))
            b->host->broker_node_counts(b->ctx, id->str, conns, rooms);
    }
    reconcile(b);
}

void rb_nodes_beat(rb_broker *b) {
    uint32_t conns = 0, rooms = 0;
    if (has_host_counts(b))
        b->host->local_counts(b->ctx, &conns, &rooms);
    char counts[32], ttl[24];
    int nc = snprintf(counts, sizeof counts, "%u %u", conns, rooms);
    int nt = snprintf(ttl, sizeof ttl, "%lld", (long long)b->node_ttl_ms);
    const char *args[3] = {b->node_id, counts, ttl};
    size_t lens[3] = {strlen(b->node_id), (size_t)nc, (size_t)nt};
    for (uint32_t i = 0; i < b->n_links; i++)
        if (b->links[i].up)
            rb_script_call(&b->links[i], RB_SCRIPT_BEAT, 0, 3, args, lens, on_beat, b);
}

void rb_nodes_link_down(rb_broker *b, rb_link *l) {
    l->n_seen = 0; /* what it said is no longer known */
    reconcile(b);
}

/*
 * At stop, withdraw this node at once (its key and its users) rather than
 * leave its users listed until the key expires. The main loop will not
 * run again for the async connections, so this is one short blocking
 * exchange per instance, bounded by stop_timeout_ms.
 */
void rb_nodes_leave(rb_broker *b) {
    for (uint32_t i = 0; i < b->n_links; i++) {
        const rb_link *l = &b->links[i];
        if (!l->up)
            continue;
        struct timeval tv = {(time_t)(b->stop_timeout_ms / 1000),
                             (suseconds_t)(b->stop_timeout_ms % 1000) * 1000};
        redisContext *c = redisConnectWithTimeout(l->addr, l->url.port, tv);
        if (!c || c->err) {
            redisFree(c);
            continue;
        }
        redisSetTimeout(c, tv);
        redisReply *r = NULL;
        if (l->url.password[0])
            r = l->url.user[0] ? redisCommand(c, "AUTH %s %s", l->url.user, l->url.password)
                               : redisCommand(c, "AUTH %s", l->url.password);
        freeReplyObject(r);
        r = l->url.db ? redisCommand(c, "SELECT %d", l->url.db) : NULL;
        freeReplyObject(r);
        r = redisCommand(c, "EVAL %s 0 %s", rb_script_text(RB_SCRIPT_LEAVE), b->node_id);
        if (!r || r->type == REDIS_REPLY_ERROR)
            b->host->log(b->ctx, NB_LOG_WARN,
                         "redis %s: could not withdraw this node (%s); its users expire "
                         "with its key",
                         l->shown, r ? r->str : c->errstr);
        freeReplyObject(r);
        redisFree(c);
    }
}

void rb_nodes_free(rb_broker *b) {
    free(b->alive);
    b->alive = NULL;
    b->n_alive = b->cap_alive = 0;
}
