/*
 * host.c — the host API: each entry adapts a plugin's request to the core
 * function that serves it. The table is constant; a plugin instance is
 * identified by its nb_plugin_ctx.
 */
#include "host.h"

#include "brokerhost.h"
#include "buf.h"
#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "connection.h"
#include "endpoints.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "session_input.h"
#include "settings.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>

static const char *ctx_name(const struct nb_plugin_ctx *ctx) {
    return ctx && ctx->plugin && ctx->plugin->desc.name ? ctx->plugin->desc.name : "plugin";
}

static void host_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_msgv(level, ctx_name(ctx), fmt, ap);
    va_end(ap);
}

static void *host_alloc(uint64_t size) {
    return size > SIZE_MAX ? NULL : malloc((size_t)size);
}

static void host_free(void *p) {
    free(p);
}

static int32_t host_config_string(struct nb_plugin_ctx *ctx, const char *key, const char *def,
                                  const char **out) {
    return config_get_string(ctx->server->cfg, ctx_name(ctx), key, def, out) < 0 ? NB_ERR_CONFIG
                                                                                 : NB_OK;
}

static int32_t host_config_int(struct nb_plugin_ctx *ctx, const char *key, int64_t def,
                               int64_t *out) {
    return config_get_int(ctx->server->cfg, ctx_name(ctx), key, def, INT64_MIN, INT64_MAX, out) < 0
               ? NB_ERR_CONFIG
               : NB_OK;
}

static int32_t host_config_bool(struct nb_plugin_ctx *ctx, const char *key, int32_t def,
                                int32_t *out) {
    int v = def;
    int rc = config_get_bool(ctx->server->cfg, ctx_name(ctx), key, def, &v);
    *out = v;
    return rc < 0 ? NB_ERR_CONFIG : NB_OK;
}

static void host_config_error(struct nb_plugin_ctx *ctx, const char *key, const char *why) {
    config_error(ctx->server->cfg, ctx_name(ctx), key, "%s", why);
}

static int32_t host_config_strings(struct nb_plugin_ctx *ctx, const char *key,
                                   const char *const **out, uint32_t *n) {
    size_t count = 0;
    *out = NULL;
    int rc = config_get_string_array(ctx->server->cfg, ctx_name(ctx), key, out, &count);
    *n = (uint32_t)count;
    if (rc != 1) {
        *out = NULL;
        *n = 0;
    }
    return rc < 0 ? NB_ERR_CONFIG : NB_OK;
}

static int32_t host_config_path(struct nb_plugin_ctx *ctx, const char *key, const char *def,
                                const char **out) {
    const char *raw = def;
    if (config_get_string(ctx->server->cfg, ctx_name(ctx), key, def, &raw) < 0)
        return NB_ERR_CONFIG;
    *out = raw;
    if (!raw || !raw[0])
        return NB_OK;
    char path[PATH_MAX];
    settings_resolve(ctx->server->cfg, raw, path, sizeof path);
    if (!path[0]) {
        config_error(ctx->server->cfg, ctx_name(ctx), key, "the path is too long");
        return NB_ERR_CONFIG;
    }
    const char *kept = config_keep(ctx->server->cfg, path);
    if (!kept)
        return NB_ERR_NOMEM;
    *out = kept;
    return NB_OK;
}

static void *host_loop(struct nb_plugin_ctx *ctx) {
    if (ctx->worker)
        return ctx->worker->loop;
    return ctx->loop ? ctx->loop : ctx->server->main_loop;
}

static const nb_server_info *host_server_info(struct nb_plugin_ctx *ctx) {
    return ctx->worker ? &ctx->worker->info : &ctx->server->workers[0].info;
}

static int64_t host_now_ms(void) {
    return clock_now_ms();
}

static struct nb_metric *host_metric_new(struct nb_plugin_ctx *ctx, uint32_t type, const char *name,
                                         const char *help) {
    nb_metric *m = metrics_register(type, name, help);
    if (!m)
        log_msg(NB_LOG_WARN, ctx_name(ctx), "metric %s not registered (bad name or full)",
                name ? name : "(null)");
    return m;
}

static int32_t host_http_request(struct nb_plugin_ctx *ctx, const nb_http_request *req,
                                 nb_http_response *resp) {
    return endpoints_http_request(ctx->server, req, resp);
}

static void host_broker_deliver(struct nb_plugin_ctx *ctx, const nb_msg *msg) {
    pipeline_remote(ctx->server, msg);
}

static void host_broker_status(struct nb_plugin_ctx *ctx, uint32_t up, const char *why) {
    if (ctx->server->broker)
        brokerhost_status(ctx->server->broker, up, why);
}

static void host_broker_node(struct nb_plugin_ctx *ctx, const char *node_id, uint32_t alive) {
    if (ctx->server->broker)
        brokerhost_node(ctx->server->broker, node_id, alive);
}

static void host_local_counts(struct nb_plugin_ctx *ctx, uint32_t *connections, uint32_t *rooms) {
    cluster_local_counts(ctx->server, connections, rooms);
}

static void host_broker_node_counts(struct nb_plugin_ctx *ctx, const char *node_id,
                                    uint32_t connections, uint32_t rooms) {
    cluster_seen(ctx->server, node_id, connections, rooms);
}

static const nb_host table = {
    .struct_size = sizeof(nb_host),
    .abi_major = NB_ABI_MAJOR,
    .abi_minor = NB_ABI_MINOR,
    .log = host_log,
    .alloc = host_alloc,
    .free = host_free,
    .config_string = host_config_string,
    .config_int = host_config_int,
    .config_bool = host_config_bool,
    .config_error = host_config_error,
    .loop = host_loop,
    .server_info = host_server_info,
    .now_ms = host_now_ms,
    .buf_new = buf_new,
    .buf_ref = buf_ref,
    .buf_unref = buf_unref,
    .buf_reserve = buf_reserve,
    .metric_new = host_metric_new,
    .metric_add = metrics_add,
    .conn_open = session_open,
    .conn_established = session_established,
    .conn_message = session_message,
    .conn_closed = session_closed,
    .http_request = host_http_request,
    .broker_deliver = host_broker_deliver,
    .config_strings = host_config_strings,
    .config_path = host_config_path,
    .metric_set = metrics_set,
    .broker_status = host_broker_status,
    .broker_node = host_broker_node,
    .local_counts = host_local_counts,
    .broker_node_counts = host_broker_node_counts,
};

const nb_host *host_table(void) {
    return &table;
}
