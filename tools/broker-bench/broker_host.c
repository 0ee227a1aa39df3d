/*
 * broker_host.c — the host table of broker_host.h. The plugin context a
 * node's instance gets is the node itself.
 */
#include "broker_host.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bh_node *node_of(struct nb_plugin_ctx *ctx) {
    return (bh_node *)(void *)ctx;
}

static void h_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void h_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...) {
    const bh_node *n = node_of(ctx);
    if (!n->bh->echo && level > NB_LOG_WARN)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    static const char *const names[] = {"?", "error", "warn", "info", "debug"};
    fprintf(stderr, "%s: %s: %s\n", n->id, names[level <= 4 ? level : 0], line);
}

static int32_t h_config_string(struct nb_plugin_ctx *ctx, const char *key, const char *def,
                               const char **out) {
    const char *v = ph_get(&node_of(ctx)->bh->cfg, key);
    *out = v ? v : def;
    return NB_OK;
}

static void h_config_error(struct nb_plugin_ctx *ctx, const char *key, const char *why) {
    h_log(ctx, NB_LOG_ERROR, "config: %s: %s", key, why);
}

static int32_t h_config_int(struct nb_plugin_ctx *ctx, const char *key, int64_t def, int64_t *out) {
    const char *v = ph_get(&node_of(ctx)->bh->cfg, key);
    *out = def;
    if (v && ph_parse_int(v, out) != 0) {
        h_config_error(ctx, key, "not an integer");
        return NB_ERR_CONFIG;
    }
    return NB_OK;
}

static int32_t h_config_bool(struct nb_plugin_ctx *ctx, const char *key, int32_t def,
                             int32_t *out) {
    const char *v = ph_get(&node_of(ctx)->bh->cfg, key);
    *out = def;
    if (v && ph_parse_bool(v, out) != 0) {
        h_config_error(ctx, key, "not true or false");
        return NB_ERR_CONFIG;
    }
    return NB_OK;
}

/* A list given as "a,b,c" (the bench's own spelling of urls = [...]). */
static int32_t h_config_strings(struct nb_plugin_ctx *ctx, const char *key, const char *const **out,
                                uint32_t *n) {
    static char copy[1024];
    static const char *items[64];
    const char *v = ph_get(&node_of(ctx)->bh->cfg, key);
    *out = NULL;
    *n = 0;
    if (!v)
        return NB_OK;
    snprintf(copy, sizeof copy, "%s", v);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && *n < 64; t = strtok_r(NULL, ",", &save))
        items[(*n)++] = t;
    *out = items;
    return NB_OK;
}

static void *h_loop(struct nb_plugin_ctx *ctx) {
    return node_of(ctx)->bh->loop;
}

static const nb_server_info *h_server_info(struct nb_plugin_ctx *ctx) {
    return &node_of(ctx)->info;
}

/* Buffers: one allocation, the reference count in front (one thread). */
typedef struct bh_buf {
    nb_buf pub;
    uint32_t refs;
    uint8_t mem[];
} bh_buf;

static nb_buf *h_buf_new(uint32_t headroom, uint32_t capacity) {
    bh_buf *b = malloc(sizeof *b + (size_t)headroom + capacity);
    if (!b)
        return NULL;
    b->pub = (nb_buf){.struct_size = sizeof(nb_buf),
                      .len = 0,
                      .data = b->mem + headroom,
                      .headroom = headroom,
                      .tailroom = capacity};
    b->refs = 1;
    return &b->pub;
}

static void h_buf_ref(nb_buf *buf) {
    ((bh_buf *)(void *)buf)->refs++;
}

static void h_buf_unref(nb_buf *buf) {
    bh_buf *b = (bh_buf *)(void *)buf;
    if (b && --b->refs == 0)
        free(b);
}

static char metric_token;
static struct nb_metric *h_metric_new(struct nb_plugin_ctx *ctx, uint32_t type, const char *name,
                                      const char *help) {
    (void)ctx;
    (void)type;
    (void)name;
    (void)help;
    return (struct nb_metric *)(void *)&metric_token;
}
static void h_metric_add(struct nb_metric *m, int64_t delta) {
    (void)m;
    (void)delta;
}

static void h_broker_deliver(struct nb_plugin_ctx *ctx, const nb_msg *msg) {
    bh_node *n = node_of(ctx);
    if (n->deliver)
        n->deliver(n, msg);
}

static void h_broker_status(struct nb_plugin_ctx *ctx, uint32_t up, const char *why) {
    bh_node *n = node_of(ctx);
    n->up = up != 0;
    if (!up)
        h_log(ctx, NB_LOG_WARN, "broker down: %s", why ? why : "");
}

static void h_broker_node(struct nb_plugin_ctx *ctx, const char *node_id, uint32_t alive) {
    (void)ctx;
    (void)node_id;
    (void)alive;
}

static void h_local_counts(struct nb_plugin_ctx *ctx, uint32_t *connections, uint32_t *rooms) {
    (void)ctx;
    *connections = 0;
    *rooms = 0;
}

static void h_node_counts(struct nb_plugin_ctx *ctx, const char *node_id, uint32_t connections,
                          uint32_t rooms) {
    (void)ctx;
    (void)node_id;
    (void)connections;
    (void)rooms;
}

int bh_open(broker_host *bh, const char *plugin_path, char *err, size_t errlen) {
    memset(bh, 0, sizeof *bh);
    bh->host = (nb_host){
        .struct_size = sizeof(nb_host),
        .abi_major = NB_ABI_MAJOR,
        .abi_minor = NB_ABI_MINOR,
        .log = h_log,
        .alloc = ph_alloc,
        .free = ph_free,
        .config_string = h_config_string,
        .config_int = h_config_int,
        .config_bool = h_config_bool,
        .config_error = h_config_error,
        .loop = h_loop,
        .server_info = h_server_info,
        .now_ms = ph_now_real_ms,
        .buf_new = h_buf_new,
        .buf_ref = h_buf_ref,
        .buf_unref = h_buf_unref,
        .metric_new = h_metric_new,
        .metric_add = h_metric_add,
        .broker_deliver = h_broker_deliver,
        .config_strings = h_config_strings,
        .config_path = h_config_string, /* paths are used as given */
        .broker_status = h_broker_status,
        .broker_node = h_broker_node,
        .local_counts = h_local_counts,
        .broker_node_counts = h_node_counts,
    };
    bh->loop = ev_loop_new(EVFLAG_AUTO);
    if (!bh->loop) {
        snprintf(err, errlen, "no event loop");
        return -1;
    }
    bh->desc = ph_load(plugin_path, NB_KIND_BROKER, "broker", &bh->dl, err, errlen);
    if (!bh->desc)
        return -1;
    bh->vt = bh->desc->vtable;
    return 0;
}

int bh_set(broker_host *bh, const char *key, const char *value) {
    return ph_set(&bh->cfg, key, value);
}

int32_t bh_node_start(broker_host *bh, bh_node *n, const char *id, bh_deliver_fn deliver,
                      void *user) {
    memset(n, 0, sizeof *n);
    n->bh = bh;
    snprintf(n->id, sizeof n->id, "%s", id);
    n->info = (nb_server_info){.struct_size = sizeof(nb_server_info),
                               .worker_count = 1,
                               .listen_host = "127.0.0.1",
                               .node_id = n->id,
                               .ws_path = "/ws"};
    n->deliver = deliver;
    n->user = user;
    int32_t rc = bh->desc->create(&bh->host, (struct nb_plugin_ctx *)(void *)n, &n->inst);
    if (rc != NB_OK)
        return rc;
    uint32_t flags = 0;
    rc = bh->vt->start(n->inst, &flags);
    n->started = rc == NB_OK;
    return rc;
}

void bh_node_stop(bh_node *n) {
    if (!n->inst)
        return;
    if (n->started)
        n->bh->vt->stop(n->inst);
    n->bh->desc->destroy(n->inst);
    n->inst = NULL;
    n->started = 0;
}

void bh_close(broker_host *bh) {
    if (bh->dl)
        dlclose(bh->dl);
    if (bh->loop)
        ev_loop_destroy(bh->loop);
    memset(bh, 0, sizeof *bh);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    *(int *)t->data = 1;
}

int bh_run_until(broker_host *bh, const int *flag, double timeout_s) {
    int expired = 0;
    ev_timer deadline;
    ev_timer_init(&deadline, on_deadline, timeout_s, 0);
    deadline.data = &expired;
    ev_timer_start(bh->loop, &deadline);
    while (!*flag && !expired)
        ev_run(bh->loop, EVRUN_ONCE);
    ev_timer_stop(bh->loop, &deadline);
    return *flag ? 0 : -1;
}
