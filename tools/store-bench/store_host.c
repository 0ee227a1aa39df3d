/*
 * store_host.c — the host table of store_host.h.
 */
#include "store_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static store_host *of(struct nb_plugin_ctx *ctx) {
    return (store_host *)(void *)ctx;
}

static void add_log(store_host *sh, const char *line) {
    size_t n = strlen(line);
    if (sh->log_len + n + 2 > sh->log_cap) {
        size_t cap = sh->log_cap ? sh->log_cap * 2 : 4096;
        while (cap < sh->log_len + n + 2)
            cap *= 2;
        char *p = realloc(sh->log, cap);
        if (!p)
            return;
        sh->log = p;
        sh->log_cap = cap;
    }
    memcpy(sh->log + sh->log_len, line, n);
    sh->log_len += n;
    sh->log[sh->log_len++] = '\n';
    sh->log[sh->log_len] = '\0';
}

static void h_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void h_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...) {
    store_host *sh = of(ctx);
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    add_log(sh, line);
    if (sh->echo) {
        static const char *const names[] = {"?", "error", "warn", "info", "debug"};
        fprintf(stderr, "%s: %s\n", names[level <= 4 ? level : 0], line);
    }
}

static int32_t h_config_string(struct nb_plugin_ctx *ctx, const char *key, const char *def,
                               const char **out) {
    const char *v = ph_get(&of(ctx)->cfg, key);
    *out = v ? v : def;
    return NB_OK;
}

static void h_config_error(struct nb_plugin_ctx *ctx, const char *key, const char *why) {
    h_log(ctx, NB_LOG_ERROR, "config: %s: %s", key, why);
}

static int32_t h_config_int(struct nb_plugin_ctx *ctx, const char *key, int64_t def, int64_t *out) {
    const char *v = ph_get(&of(ctx)->cfg, key);
    *out = def;
    if (v && ph_parse_int(v, out) != 0) {
        h_config_error(ctx, key, "not an integer");
        return NB_ERR_CONFIG;
    }
    return NB_OK;
}

static int32_t h_config_bool(struct nb_plugin_ctx *ctx, const char *key, int32_t def,
                             int32_t *out) {
    const char *v = ph_get(&of(ctx)->cfg, key);
    *out = def;
    if (v && ph_parse_bool(v, out) != 0) {
        h_config_error(ctx, key, "not true or false");
        return NB_ERR_CONFIG;
    }
    return NB_OK;
}

static void *h_loop(struct nb_plugin_ctx *ctx) {
    return of(ctx)->loop;
}

/* now_ms has no ctx: the offset for tests is process-wide. */
static int64_t clock_offset;
static int64_t h_now_ms(void) {
    return ph_now_real_ms() + clock_offset;
}

static char metric_token;
static struct nb_metric *h_metric_new(struct nb_plugin_ctx *ctx, uint32_t type, const char *name,
                                      const char *help) {
    return (struct nb_metric *)(void *)&metric_token;
}
static void h_metric_add(struct nb_metric *m, int64_t delta) {}
static void h_metric_set(struct nb_metric *m, int64_t value) {}

int sh_open(store_host *sh, const char *plugin_path, char *err, size_t errlen) {
    memset(sh, 0, sizeof *sh);
    sh->host = (nb_host){
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
        .now_ms = h_now_ms,
        .metric_new = h_metric_new,
        .metric_add = h_metric_add,
        .metric_set = h_metric_set,
        .config_path = h_config_string, /* paths are used as given */
    };
    sh->loop = ev_loop_new(EVFLAG_AUTO);
    if (!sh->loop) {
        snprintf(err, errlen, "no event loop");
        return -1;
    }
    sh->desc = ph_load(plugin_path, NB_KIND_STORE, "store", &sh->dl, err, errlen);
    if (!sh->desc)
        return -1;
    sh->vt = sh->desc->vtable;
    return 0;
}

int sh_set(store_host *sh, const char *key, const char *value) {
    return ph_set(&sh->cfg, key, value);
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

int sh_read_conf(store_host *sh, const char *file, const char *section, char *err, size_t errlen) {
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", file, strerror(errno));
        return -1;
    }
    char line[1200];
    int in = 0, lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *l = trim(line);
        if (!*l || *l == '#')
            continue;
        if (*l == '[') {
            char *e = strchr(l, ']');
            in = e && (size_t)(e - l - 1) == strlen(section) &&
                 !strncmp(l + 1, section, strlen(section));
            continue;
        }
        if (!in)
            continue;
        char *eq = strchr(l, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value", file, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *k = trim(l), *v = trim(eq + 1);
        if (*v == '"') { /* a quoted string: up to the closing quote */
            char *q = strchr(v + 1, '"');
            if (q)
                *q = '\0';
            v++;
        } else {
            char *hash = strchr(v, '#');
            if (hash)
                *hash = '\0';
            v = trim(v);
        }
        if (sh_set(sh, k, v) != 0) {
            snprintf(err, errlen, "%s:%d: too many keys", file, lineno);
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

int32_t sh_create(store_host *sh) {
    return sh->desc->create(&sh->host, (struct nb_plugin_ctx *)(void *)sh, &sh->inst);
}

void *sh_new_instance(store_host *sh) {
    void *inst = NULL;
    if (sh->desc->create(&sh->host, (struct nb_plugin_ctx *)(void *)sh, &inst) != NB_OK)
        return NULL;
    return inst;
}

void sh_destroy_instance(store_host *sh, void *inst) {
    if (inst)
        sh->desc->destroy(inst);
}

void sh_close(store_host *sh) {
    if (sh->inst)
        sh->desc->destroy(sh->inst);
    sh->inst = NULL;
    if (sh->dl)
        dlclose(sh->dl);
    if (sh->loop)
        ev_loop_destroy(sh->loop);
    free(sh->log);
    memset(sh, 0, sizeof *sh);
}

int sh_logged(const store_host *sh, const char *needle) {
    return sh->log && strstr(sh->log, needle) != NULL;
}

void sh_clock_offset(int64_t ms) {
    clock_offset = ms;
}

void sh_log_clear(store_host *sh) {
    sh->log_len = 0;
    if (sh->log)
        sh->log[0] = '\0';
}
