/*
 * plugin.c — broker-redis: several Nebula nodes, one chat, with Redis as
 * the bus (docs/BROKER_REDIS.md). It sequences each room across the
 * cluster (a Lua script: INCR the room's seq, XADD to its capped stream,
 * PUBLISH, atomically), keeps cluster-wide presence with unique names,
 * serves history from the streams, and tracks the live nodes.
 *
 * [broker-redis] keys (docs/CONFIG.md):
 *   url = "redis://127.0.0.1:6379"   or urls = ["redis://a", ...]: rooms are
 *                                     spread over the instances (rooms.c)
 *   connect_timeout_ms = 2000, command_timeout_ms = 3000
 *   heartbeat_ms = 1000, node_ttl_ms = 5000
 *   reconnect_min_ms = 100, reconnect_max_ms = 5000
 *   stream_max_len = 1000            messages kept per room (MAXLEN ~)
 *   max_pending = 10000              commands in flight per instance
 *   publish_batch = 256              messages per publish call (batch.c)
 *   publish_batch_bytes = 1048576    bytes of messages per publish call
 *   stop_timeout_ms = 500
 */
#include "rb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_URL "redis://127.0.0.1:6379"
#define MAX_URLS 64

uint64_t rb_random(rb_broker *b) { /* xorshift64*: jitter and epochs, not secrets */
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * UINT64_C(2685821657736338717);
}

void rb_new_epoch(rb_broker *b, char *out, size_t cap) {
    snprintf(out, cap, "r%llx-%08llx", (unsigned long long)b->host->now_ms(),
             (unsigned long long)(rb_random(b) & 0xffffffffu));
}

void rb_update_status(rb_broker *b, const char *why) {
    uint32_t up = 0;
    for (uint32_t i = 0; i < b->n_links && !up; i++)
        up = (uint32_t)b->links[i].up;
    if ((int)up == b->up || b->stopping)
        return;
    b->up = (int)up;
    char text[200];
    if (up)
        snprintf(text, sizeof text, "redis reachable (%u instance%s)", b->n_links,
                 b->n_links == 1 ? "" : "s");
    else
        snprintf(text, sizeof text, "no redis instance reachable%s%s", why ? ": " : "",
                 why ? why : "");
    b->host->broker_status(b->ctx, up, text);
}

/* ---- config ------------------------------------------------------------- */

static int read_int(rb_broker *b, const char *key, int64_t def, int64_t min, int64_t max,
                    int64_t *out) {
    if (b->host->config_int(b->ctx, key, def, out) != NB_OK)
        return -1;
    if (*out < min || *out > max) {
        char why[96];
        snprintf(why, sizeof why, "must be from %lld to %lld", (long long)min, (long long)max);
        b->host->config_error(b->ctx, key, why);
        return -1;
    }
    return 0;
}

static int32_t rb_create(const nb_host *host, struct nb_plugin_ctx *ctx, void **instance) {
    rb_broker *b = calloc(1, sizeof *b);
    if (!b) {
        host->log(ctx, NB_LOG_ERROR, "out of memory");
        return NB_ERR_NOMEM;
    }
    b->host = host;
    b->ctx = ctx;
    const char *url = NULL;
    const char *const *urls = NULL;
    uint32_t n_urls = 0;
    /* Every key is read and checked, so one run reports every mistake. */
    int bad = host->config_string(ctx, "url", NULL, &url) != NB_OK;
    bad |= host->config_strings(ctx, "urls", &urls, &n_urls) != NB_OK;
    bad |= read_int(b, "connect_timeout_ms", 2000, 10, 600000, &b->connect_timeout_ms);
    bad |= read_int(b, "command_timeout_ms", 3000, 10, 600000, &b->command_timeout_ms);
    bad |= read_int(b, "heartbeat_ms", 1000, 50, 600000, &b->heartbeat_ms);
    bad |= read_int(b, "node_ttl_ms", 5000, 100, 3600000, &b->node_ttl_ms);
    bad |= read_int(b, "reconnect_min_ms", 100, 1, 600000, &b->reconnect_min_ms);
    bad |= read_int(b, "reconnect_max_ms", 5000, 1, 3600000, &b->reconnect_max_ms);
    bad |= read_int(b, "stream_max_len", 1000, 1, 100000000, &b->stream_max_len);
    bad |= read_int(b, "max_pending", 10000, 1, 10000000, &b->max_pending);
    bad |= read_int(b, "stop_timeout_ms", 500, 0, 60000, &b->stop_timeout_ms);
    bad |= read_int(b, "publish_batch", 256, 1, RB_BATCH_MAX, &b->publish_batch);
    bad |= read_int(b, "publish_batch_bytes", 1048576, 1024, 67108864, &b->publish_batch_bytes);
    int ints_bad = bad;
    if (url && n_urls) {
        host->config_error(ctx, "urls", "give url or urls, not both");
        bad = 1;
    }
    if (n_urls > MAX_URLS) {
        host->config_error(ctx, "urls", "at most 64 instances");
        bad = 1;
    }
    if (!ints_bad && b->node_ttl_ms < 2 * b->heartbeat_ms) {
        host->config_error(ctx, "node_ttl_ms", "must be at least twice heartbeat_ms");
        bad = 1;
    }
    if (!ints_bad && b->reconnect_max_ms < b->reconnect_min_ms) {
        host->config_error(ctx, "reconnect_max_ms", "must not be below reconnect_min_ms");
        bad = 1;
    }
    if (n_urls == 0 && !url)
        url = DEFAULT_URL;
    uint32_t n = n_urls ? n_urls : 1;
    if (n_urls > MAX_URLS)
        n = 0;
    if (n && !(b->links = calloc(n, sizeof *b->links))) {
        host->log(ctx, NB_LOG_ERROR, "out of memory");
        bad = 1;
        n = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        const char *why = NULL;
        if (rb_link_init(&b->links[i], b, i, n_urls ? urls[i] : url, &why) < 0) {
            char text[160]; /* not the URL itself: it may hold a password */
            if (n_urls)
                snprintf(text, sizeof text, "entry %u: %s", i + 1, why);
            else
                snprintf(text, sizeof text, "%s", why);
            host->config_error(ctx, n_urls ? "urls" : "url", text);
            bad = 1;
            break;
        }
        b->n_links++;
        for (uint32_t k = 0; k < i; k++)
            if (strcmp(b->links[k].shown, b->links[i].shown) == 0) {
                host->config_error(ctx, "urls", "the same instance is listed twice");
                bad = 1;
            }
    }
    if (bad) {
        for (uint32_t i = 0; i < b->n_links; i++)
            rb_link_free(&b->links[i]);
        free(b->links);
        free(b);
        return NB_ERR_CONFIG;
    }
    *instance = b;
    return NB_OK;
}

static void rb_destroy(void *instance) {
    rb_broker *b = instance;
    rb_rooms_free(b);
    rb_nodes_free(b);
    for (uint32_t i = 0; i < b->n_links; i++)
        rb_link_free(&b->links[i]);
    free(b->links);
    free(b->buckets);
    free(b);
}

/* ---- start, the tick, stop ---------------------------------------------- */

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)revents;
    rb_broker *b = t->data;
    for (uint32_t i = 0; i < b->n_links; i++)
        rb_link_check(&b->links[i]);
    if (ev_now(loop) >= b->next_beat) {
        b->next_beat = ev_now(loop) + (double)b->heartbeat_ms / 1000.0;
        rb_nodes_beat(b);
    }
}

static int32_t rb_start(void *instance, uint32_t *flags) {
    rb_broker *b = instance;
    b->loop = b->host->loop(b->ctx);
    b->node_id = b->host->server_info(b->ctx)->node_id;
    if (!b->node_id || !b->node_id[0] || strlen(b->node_id) >= RB_NODE_MAX ||
        strchr(b->node_id, '\n')) {
        b->host->log(b->ctx, NB_LOG_ERROR, "[server] node_id must be 1-127 bytes, one line");
        return NB_ERR_CONFIG;
    }
    b->rng = (uint64_t)b->host->now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)b;
    if (!b->rng)
        b->rng = 1;
    b->n_buckets = 1024;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    b->buckets = calloc(b->n_buckets, sizeof *b->buckets);
    if (!b->buckets) {
        b->host->log(b->ctx, NB_LOG_ERROR, "out of memory");
        return NB_ERR_NOMEM;
    }
    rb_scripts_init();
    b->m_publishes =
        b->host->metric_new(b->ctx, NB_METRIC_COUNTER, "nebula_broker_redis_publishes_total",
                            "Messages sequenced and published through Redis");
    b->m_reconnects =
        b->host->metric_new(b->ctx, NB_METRIC_COUNTER, "nebula_broker_redis_connects_total",
                            "Times a Redis instance became reachable");
    for (uint32_t i = 0; i < b->n_links; i++)
        rb_link_start(&b->links[i]);
    rb_batch_start(b);
    double tick = (double)(b->heartbeat_ms < 250 ? b->heartbeat_ms : 250) / 1000.0;
    ev_timer_init(&b->tick, on_tick, tick, tick);
    b->tick.data = b;
    ev_timer_start(b->loop, &b->tick);
    b->started = 1;
    b->host->log(b->ctx, NB_LOG_INFO, "node %s, %u redis instance%s, first %s", b->node_id,
                 b->n_links, b->n_links == 1 ? "" : "s", b->links[0].shown);
    *flags = NB_BROKER_F_SEQUENCES | NB_BROKER_F_PRESENCE | NB_BROKER_F_HISTORY;
    return NB_OK;
}

static void rb_stop(void *instance) {
    rb_broker *b = instance;
    if (!b->started)
        return;
    rb_nodes_leave(b);
    b->stopping = 1;
    ev_timer_stop(b->loop, &b->tick);
    for (uint32_t i = 0; i < b->n_links; i++)
        rb_link_stop(&b->links[i]); /* answers what is in flight */
    rb_batch_stop(b);               /* then what was collected after it */
    rb_rooms_free(b);
    b->started = 0;
}

/* ---- publish -------------------------------------------------------------- */

/* The message goes into its instance's batch (batch.c), sent with the
 * others of this loop turn as one script call. */
static int32_t rb_publish(void *instance, const nb_msg *msg, nb_broker_done_fn done, void *user) {
    rb_broker *b = instance;
    if (!msg->room.ptr || msg->room.len == 0 || msg->room.len > RB_ROOM_MAX) {
        done(user, NB_ERR_INVALID, 0);
        return NB_OK;
    }
    rb_link *l = &b->links[rb_room_link(b, msg->room.ptr, msg->room.len)];
    struct nb_buf *env = NULL;
    int32_t rc = rb_encode(b, msg, &env);
    if (rc != NB_OK) {
        done(user, rc, 0);
        return NB_OK;
    }
    rb_batch_add(l, msg->room.ptr, msg->room.len, env->data, env->len, done, user);
    b->host->buf_unref(env);
    return NB_OK;
}

/* ---- the vtable ------------------------------------------------------------ */

static int32_t vt_subscribe(void *instance, const char *room, uint32_t len, nb_broker_done_fn done,
                            void *user) {
    return rb_subscribe(instance, room, len, done, user);
}

static int32_t vt_unsubscribe(void *instance, const char *room, uint32_t len) {
    return rb_unsubscribe(instance, room, len);
}

static int32_t vt_presence(void *instance, const char *room, uint32_t len, const char *user,
                           uint32_t user_len, uint32_t joined, nb_broker_done_fn done,
                           void *done_user) {
    return rb_presence(instance, room, len, user, user_len, joined, done, done_user);
}

static int32_t vt_load(void *instance, const nb_store_query *q, nb_broker_loaded_fn done,
                       void *user) {
    return rb_load_history(instance, q, done, user);
}

static const nb_broker_vtable rb_vtable = {
    .struct_size = sizeof(nb_broker_vtable),
    .start = rb_start,
    .stop = rb_stop,
    .subscribe = vt_subscribe,
    .unsubscribe = vt_unsubscribe,
    .publish = rb_publish,
    .presence = vt_presence,
    .load = vt_load,
};

static const nb_plugin_desc rb_desc = {
    NB_PLUGIN_HEADER(NB_KIND_BROKER),
    .name = "broker-redis",
    .version = "1.0.0",
    .summary = "Redis as the cluster bus: one order per room, cluster presence and history",
    .create = rb_create,
    .destroy = rb_destroy,
    .vtable = &rb_vtable,
};

NB_PLUGIN_DECLARE(rb_desc)
