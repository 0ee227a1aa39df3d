/*
 * store_host.c — see store_host.h.
 */
#include "store_host.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *plugin_path;
const nb_store_vtable *vt;
struct ev_loop *sh_loop;
int64_t sh_now_offset_ms;

static void *dl;
static const nb_plugin_desc *desc;

#define MAX_KEYS 16
static struct {
    char key[64];
    char value[512];
} keys[MAX_KEYS];
static int n_keys;

static char logbuf[65536];
static size_t loglen;

static void t_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void t_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (getenv("STORE_TEST_VERBOSE"))
        fprintf(stderr, "[plugin] %s\n", line);
    int n = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s\n", line);
    if (n > 0 && (size_t)n < sizeof logbuf - loglen)
        loglen += (size_t)n;
}

const char *sh_log(void) {
    return logbuf;
}

void sh_log_clear(void) {
    loglen = 0;
    logbuf[0] = '\0';
}

static int find(const char *key) {
    for (int i = 0; i < n_keys; i++)
        if (strcmp(keys[i].key, key) == 0)
            return i;
    return -1;
}

static const char *lookup(const char *key) {
    int i = find(key);
    return i < 0 ? NULL : keys[i].value;
}

void sh_config_reset(void) {
    n_keys = 0;
}

void sh_config(const char *key, const char *value) {
    for (int i = 0; i < n_keys; i++) {
        if (strcmp(keys[i].key, key) == 0) {
            snprintf(keys[i].value, sizeof keys[i].value, "%s", value);
            return;
        }
    }
    if (n_keys < MAX_KEYS) {
        snprintf(keys[n_keys].key, sizeof keys[n_keys].key, "%s", key);
        snprintf(keys[n_keys].value, sizeof keys[n_keys].value, "%s", value);
        n_keys++;
    }
}

static void *t_alloc(uint64_t size) {
    return size > SIZE_MAX ? NULL : malloc((size_t)size);
}

static void t_free(void *p) {
    free(p);
}

/* Strings are written quoted, as in a config file; the quotes are dropped. */
static int32_t t_config_string(struct nb_plugin_ctx *ctx, const char *key, const char *def,
                               const char **out) {
    int slot = find(key);
    if (slot < 0) {
        *out = def;
        return NB_OK;
    }
    const char *v = keys[slot].value;
    static char unquoted[MAX_KEYS][512];
    size_t len = strlen(v);
    if (len < 2 || v[0] != '"' || v[len - 1] != '"') {
        t_log(ctx, NB_LOG_ERROR, "config: %s: expected a string", key);
        return NB_ERR_CONFIG;
    }
    snprintf(unquoted[slot], sizeof unquoted[slot], "%.*s", (int)(len - 2), v + 1);
    *out = unquoted[slot];
    return NB_OK;
}

static int32_t t_config_int(struct nb_plugin_ctx *ctx, const char *key, int64_t def, int64_t *out) {
    const char *v = lookup(key);
    if (!v) {
        *out = def;
        return NB_OK;
    }
    char *end;
    *out = strtoll(v, &end, 10);
    if (*end) {
        t_log(ctx, NB_LOG_ERROR, "config: %s: expected an integer", key);
        return NB_ERR_CONFIG;
    }
    return NB_OK;
}

static int32_t t_config_bool(struct nb_plugin_ctx *ctx, const char *key, int32_t def,
                             int32_t *out) {
    const char *v = lookup(key);
    *out = v ? strcmp(v, "true") == 0 : def;
    return NB_OK;
}

static void t_config_error(struct nb_plugin_ctx *ctx, const char *key, const char *why) {
    t_log(ctx, NB_LOG_ERROR, "config: %s: %s", key, why);
}

/* Paths in these tests are absolute (a temp dir), or relative to the
 * working directory as with built-in defaults. */
static int32_t t_config_path(struct nb_plugin_ctx *ctx, const char *key, const char *def,
                             const char **out) {
    return t_config_string(ctx, key, def, out);
}

static void *t_loop(struct nb_plugin_ctx *ctx) {
    return sh_loop;
}

static int64_t t_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + sh_now_offset_ms;
}

struct nb_metric {
    int64_t value;
};
static struct nb_metric metrics[8];
static int n_metrics;

static struct nb_metric *t_metric_new(struct nb_plugin_ctx *ctx, uint32_t type, const char *name,
                                      const char *help) {
    return n_metrics < 8 ? &metrics[n_metrics++] : &metrics[7];
}

static void t_metric_add(struct nb_metric *m, int64_t d) {
    m->value += d;
}

static void t_metric_set(struct nb_metric *m, int64_t v) {
    m->value = v;
}

static const nb_host host = {
    .struct_size = sizeof(nb_host),
    .abi_major = NB_ABI_MAJOR,
    .abi_minor = NB_ABI_MINOR,
    .log = t_log,
    .alloc = t_alloc,
    .free = t_free,
    .config_string = t_config_string,
    .config_int = t_config_int,
    .config_bool = t_config_bool,
    .config_error = t_config_error,
    .loop = t_loop,
    .now_ms = t_now_ms,
    .metric_new = t_metric_new,
    .metric_add = t_metric_add,
    .config_path = t_config_path,
    .metric_set = t_metric_set,
};

int sh_load(void) {
    sh_loop = ev_loop_new(EVFLAG_AUTO);
    dl = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "dlopen %s: %s\n", plugin_path, dlerror());
        return -1;
    }
    nb_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, NB_PLUGIN_ENTRY_SYMBOL);
    if (!entry)
        return -1;
    desc = entry();
    if (!desc || desc->kind != NB_KIND_STORE || !desc->vtable)
        return -1;
    vt = desc->vtable;
    return 0;
}

void sh_unload(void) {
    if (dl)
        dlclose(dl);
    dl = NULL;
    if (sh_loop)
        ev_loop_destroy(sh_loop);
    sh_loop = NULL;
}

void *sh_create(void) {
    static char ctx_token;
    void *inst = NULL;
    if (desc->create(&host, (struct nb_plugin_ctx *)(void *)&ctx_token, &inst) != NB_OK)
        return NULL;
    return inst;
}

void sh_destroy(void *inst) {
    if (inst)
        desc->destroy(inst);
}
