/*
 * plugin.c — transport-ws: the descriptor, the vtable, the [transport-ws]
 * config section, and create/start/destroy. docs/TRANSPORT_WS.md
 * describes the behaviour and every key.
 */
#include "tws.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read an integer key and check its range; reports its own errors. */
static int cfg_int(tws *t, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out) {
    if (t->host->config_int(t->ctx, key, def, out) != NB_OK)
        return -1;
    if (*out < min || *out > max) {
        char why[128];
        snprintf(why, sizeof why, "must be between %lld and %lld", (long long)min, (long long)max);
        t->host->config_error(t->ctx, key, why);
        return -1;
    }
    return 0;
}

/* The core's [limits] max_message_bytes, when the core says (ABI 1.1). */
static uint32_t core_max_message(const nb_server_info *si) {
    if (!si || si->struct_size < offsetof(nb_server_info, max_message_bytes) + sizeof(uint32_t))
        return 0;
    return si->max_message_bytes;
}

/*
 * One message limit. A message longer than the core accepts would only be
 * assembled to be refused, so max_message_bytes defaults to the core's
 * [limits] max_message_bytes, may be set lower, and a larger value is a
 * config error. Every key is read even after a bad one, so all mistakes
 * are reported.
 */
static int read_config(tws *t) {
    int64_t v[9];
    int bad = 0, bad_ping, bad_pong;
    uint32_t core_max = core_max_message(t->info);
    int64_t max_def = core_max ? core_max : 65536;
    int bad_max = cfg_int(t, "max_message_bytes", max_def, 64, 1 << 30, &v[0]);
    bad |= bad_max;
    bad |= cfg_int(t, "max_header_bytes", 8192, 1024, 65536, &v[1]);
    bad |= bad_ping = cfg_int(t, "ping_interval_ms", 30000, 0, 86400000, &v[2]);
    bad |= bad_pong = cfg_int(t, "pong_timeout_ms", 60000, 0, 86400000, &v[3]);
    bad |= cfg_int(t, "close_timeout_ms", 3000, 10, 600000, &v[4]);
    bad |= cfg_int(t, "handshake_timeout_ms", 10000, 100, 600000, &v[5]);
    bad |= cfg_int(t, "message_timeout_ms", 15000, 100, 600000, &v[6]);
    bad |= cfg_int(t, "control_frames_per_second", 20, 1, 100000, &v[7]);
    bad |= cfg_int(t, "fd_reserve", 4, 1, 64, &v[8]);
    if (!bad_max && core_max && v[0] > core_max) {
        char why[160];
        snprintf(why, sizeof why,
                 "must not exceed [limits] max_message_bytes (%u): the core refuses longer "
                 "messages; leave it unset to use that value",
                 core_max);
        t->host->config_error(t->ctx, "max_message_bytes", why);
        bad = 1;
    }
    /* A client that answers every ping must never look dead. */
    if (!bad_ping && !bad_pong && v[2] && v[3] && v[3] <= v[2]) {
        t->host->config_error(t->ctx, "pong_timeout_ms",
                              "must be larger than ping_interval_ms (or 0 to disable)");
        bad = 1;
    }
    if (bad)
        return -1;
    tws_config *c = &t->cfg;
    c->max_message_bytes = (uint64_t)v[0];
    c->max_header_bytes = (uint32_t)v[1];
    c->ping_interval_ms = (uint32_t)v[2];
    c->pong_timeout_ms = (uint32_t)v[3];
    c->close_timeout_ms = (uint32_t)v[4];
    c->handshake_timeout_ms = (uint32_t)v[5];
    c->message_timeout_ms = (uint32_t)v[6];
    c->control_frames_per_second = (uint32_t)v[7];
    c->fd_reserve = (uint32_t)v[8];
    return 0;
}

static void init_metrics(tws *t) {
    const nb_host *h = t->host;
    struct nb_plugin_ctx *x = t->ctx;
    t->m.accepted = h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_connections_accepted_total",
                                  "TCP connections accepted by the WebSocket transport");
    t->m.refused = h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_connections_refused_total",
                                 "connections closed unserved: out of file descriptors");
    t->m.upgrades = h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_upgrades_total",
                                  "WebSocket handshakes completed (101 sent)");
    t->m.http_requests = h->metric_new(x, NB_METRIC_COUNTER, "nebula_http_requests_total",
                                       "plain HTTP requests answered (no upgrade)");
    t->m.protocol_errors =
        h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_protocol_errors_total",
                      "WebSocket connections failed for breaking RFC 6455 (1002, 1007, 1009)");
    t->m.heartbeat_timeouts =
        h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_heartbeat_timeouts_total",
                      "connections closed with 4001: silent beyond pong_timeout_ms");
    t->m.bytes_in = h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_received_bytes_total",
                                  "bytes read from client sockets");
    t->m.bytes_out = h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_sent_bytes_total",
                                   "bytes written to client sockets");
    t->m.sockets = h->metric_new(x, NB_METRIC_GAUGE, "nebula_ws_sockets",
                                 "client sockets open now (HTTP, WebSocket and closing)");
    t->m.too_large = h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_messages_too_large_total",
                                   "connections closed with 1009: message over max_message_bytes");
    t->m.control_flood =
        h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_control_flood_total",
                      "connections closed with 1008: over control_frames_per_second");
    t->m.message_timeouts =
        h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_message_timeouts_total",
                      "connections closed with 4002: message not completed in message_timeout_ms");
    t->m.reserve_served =
        h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_reserve_connections_total",
                      "connections accepted on a reserve descriptor at the open-files limit");
    t->m.assembly_bytes = h->metric_new(x, NB_METRIC_GAUGE, "nebula_ws_assembly_bytes",
                                        "bytes allocated for WebSocket messages being assembled");
    t->m.trims = h->metric_new(x, NB_METRIC_COUNTER, "nebula_ws_malloc_trims_total",
                               "malloc_trim() calls after assembly buffers were freed");
}

static int32_t tws_create(const nb_host *host, struct nb_plugin_ctx *ctx, void **instance) {
    tws *t = calloc(1, sizeof *t);
    if (!t) {
        host->log(ctx, NB_LOG_ERROR, "out of memory");
        return NB_ERR_NOMEM;
    }
    t->host = host;
    t->ctx = ctx;
    if (host->struct_size >= offsetof(nb_host, conn_memory) + sizeof host->conn_memory)
        t->conn_memory = host->conn_memory;
    t->lfd = -1;
    t->info = host->server_info(ctx);
    if (read_config(t) != 0) {
        free(t);
        return NB_ERR_CONFIG;
    }
    t->loop = host->loop(ctx);
    t->rbuf = malloc(TWS_RBUF_SIZE);
    t->spare = malloc(t->cfg.fd_reserve * sizeof *t->spare);
    /* Strings copied out of one request head never outgrow the head. */
    t->scratch_len = t->cfg.max_header_bytes + 64u;
    t->scratch = malloc(t->scratch_len);
    if (!t->rbuf || !t->scratch || !t->spare || !t->info || !t->loop) {
        host->log(ctx, NB_LOG_ERROR, "out of memory");
        free(t->spare);
        free(t->rbuf);
        free(t->scratch);
        free(t);
        return NB_ERR_NOMEM;
    }
    if (t->info->web_root && *t->info->web_root)
        t->web_root = realpath(t->info->web_root, NULL);
    init_metrics(t);
    *instance = t;
    return NB_OK;
}

static int32_t tws_start(void *instance) {
    tws *t = instance;
    if (t->started)
        return NB_OK;
    t->ping = t->host->buf_new(0, 2);
    if (!t->ping) {
        t->host->log(t->ctx, NB_LOG_ERROR, "out of memory");
        return NB_ERR_NOMEM;
    }
    tws_frame_header(t->ping->data, TWS_OP_PING, 0);
    t->ping->len = 2;
    t->ping->tailroom -= 2;
    if (tws_listen_start(t) != NB_OK)
        return NB_ERR_IO;
    tws_conn_start(t);
    t->started = 1;
    if (t->info->worker_index == 0 && t->info->web_root && *t->info->web_root && !t->web_root)
        t->host->log(t->ctx, NB_LOG_WARN, "web_root %s cannot be opened: no files are served",
                     t->info->web_root);
    return NB_OK;
}

static void tws_stop_accepting(void *instance) {
    tws_listen_stop(instance);
}

static void tws_destroy(void *instance) {
    tws *t = instance;
    if (!t)
        return;
    tws_listen_stop(t);
    if (t->started) {
        tws_conn_free_all(t); /* without conn_closed: the core frees its sessions */
        tws_conn_stop(t);
    }
    tws_ws_pool_free(t);
    if (t->ping)
        t->host->buf_unref(t->ping);
    free(t->web_root);
    free(t->spare);
    free(t->rbuf);
    free(t->scratch);
    free(t);
}

static nb_buf *tws_frame(void *instance, uint32_t frame_kind, nb_buf *payload) {
    const tws *t = instance;
    return tws_frame_buf(t->host, frame_kind, payload);
}

static const nb_transport_vtable vtable = {
    .struct_size = sizeof(nb_transport_vtable),
    .start = tws_start,
    .stop_accepting = tws_stop_accepting,
    .frame = tws_frame,
    .send = tws_ws_send,
    .close = tws_ws_close,
};

static const nb_plugin_desc desc = {
    NB_PLUGIN_HEADER(NB_KIND_TRANSPORT),
    .name = "transport-ws",
    .version = "1.0.0",
    .summary = "WebSocket (RFC 6455) and HTTP/1.1 over TCP: libev, wslay, static files",
    .create = tws_create,
    .destroy = tws_destroy,
    .vtable = &vtable,
};

NB_PLUGIN_DECLARE(desc)
