/*
 * plugin.c — store-sqlite's descriptor and config: message history in a
 * SQLite database (WAL mode), one transaction per batch of the core's
 * writer. create() reads and checks the [store-sqlite] keys and touches no
 * file (it also runs for --check-config); start() opens the database.
 */
#include "sq.h"

#include <stddef.h>
#include <string.h>

/* Rooms the age limit visits per second; a round over all rooms takes
 * rooms / this many seconds, and load() filters by age meanwhile. */
#define AGE_ROOMS_PER_TICK 256

static int32_t bad(const nb_host *host, struct nb_plugin_ctx *ctx, sq_store *s, const char *key,
                   const char *why) {
    host->config_error(ctx, key, why);
    host->free(s);
    return NB_ERR_CONFIG;
}

static int32_t sq_create(const nb_host *host, struct nb_plugin_ctx *ctx, void **instance) {
    if (host->abi_minor < 1 || host->struct_size < offsetof(nb_host, metric_set)) {
        host->log(ctx, NB_LOG_ERROR, "needs a core with plugin ABI 1.1 or newer");
        return NB_ERR_CONFIG;
    }
    sq_store *s = host->alloc(sizeof *s);
    if (!s)
        return NB_ERR_NOMEM;
    memset(s, 0, sizeof *s);
    s->host = host;
    s->ctx = ctx;
    s->lock_fd = -1;
    s->age_rooms_per_tick = AGE_ROOMS_PER_TICK;
    const char *fsync = NULL;
    if (host->config_path(ctx, "path", "data/nebula.db", &s->path) != NB_OK ||
        host->config_string(ctx, "fsync", "everysec", &fsync) != NB_OK ||
        host->config_int(ctx, "retention_messages", 10000, &s->retention_messages) != NB_OK ||
        host->config_int(ctx, "retention_seconds", 0, &s->retention_seconds) != NB_OK ||
        host->config_int(ctx, "busy_timeout_ms", 2000, &s->busy_timeout_ms) != NB_OK ||
        host->config_int(ctx, "cache_mib", 16, &s->cache_mib) != NB_OK ||
        host->config_int(ctx, "checkpoint_pages", 10000, &s->checkpoint_pages) != NB_OK) {
        host->free(s);
        return NB_ERR_CONFIG;
    }
    if (!s->path || !s->path[0])
        return bad(host, ctx, s, "path", "must name the database file, e.g. \"data/nebula.db\"");
    if (strcmp(fsync, "always") == 0)
        s->fsync = SQ_FSYNC_ALWAYS;
    else if (strcmp(fsync, "everysec") == 0)
        s->fsync = SQ_FSYNC_EVERYSEC;
    else if (strcmp(fsync, "no") == 0)
        s->fsync = SQ_FSYNC_NO;
    else
        return bad(host, ctx, s, "fsync", "expected \"always\", \"everysec\" or \"no\"");
    if (s->retention_messages < 0 || s->retention_messages > 1000000000)
        return bad(host, ctx, s, "retention_messages", "must be 0 (no count limit) .. 1000000000");
    if (s->retention_seconds < 0 || s->retention_seconds > INT64_C(3153600000))
        return bad(host, ctx, s, "retention_seconds",
                   "must be 0 (no age limit) .. 3153600000 (100 years)");
    if (s->busy_timeout_ms < 0 || s->busy_timeout_ms > 600000)
        return bad(host, ctx, s, "busy_timeout_ms", "must be 0 .. 600000");
    if (s->cache_mib < 1 || s->cache_mib > 65536)
        return bad(host, ctx, s, "cache_mib", "must be 1 .. 65536 (MiB)");
    if (s->checkpoint_pages < 100 || s->checkpoint_pages > 10000000)
        return bad(host, ctx, s, "checkpoint_pages", "must be 100 .. 10000000 (WAL pages)");
    *instance = s;
    return NB_OK;
}

static void sq_destroy(void *instance) {
    sq_store *s = instance;
    sq_stop(s); /* a no-op when stop() already ran (or start() never did) */
    s->host->free(s);
}

static const nb_store_vtable vt = {
    .struct_size = sizeof(nb_store_vtable),
    .start = sq_start,
    .stop = sq_stop,
    .append = sq_append,
    .flush = sq_flush,
    .load = sq_load,
};

static const nb_plugin_desc desc = {
    NB_PLUGIN_HEADER(NB_KIND_STORE),
    .name = "store-sqlite",
    .version = "1.0.0",
    .summary = "message history in a SQLite database (WAL, one transaction per batch)",
    .create = sq_create,
    .destroy = sq_destroy,
    .vtable = &vt,
};

NB_PLUGIN_DECLARE(desc)
