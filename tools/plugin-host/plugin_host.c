/*
 * plugin_host.c — see plugin_host.h.
 */
#include "plugin_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ph_set(ph_config *c, const char *key, const char *value) {
    for (uint32_t i = 0; i < c->n; i++)
        if (strcmp(c->keys[i], key) == 0) {
            snprintf(c->vals[i], sizeof c->vals[i], "%s", value);
            return 0;
        }
    if (c->n == PH_MAX_KEYS)
        return -1;
    snprintf(c->keys[c->n], sizeof c->keys[0], "%s", key);
    snprintf(c->vals[c->n], sizeof c->vals[0], "%s", value);
    c->n++;
    return 0;
}

const char *ph_get(const ph_config *c, const char *key) {
    for (uint32_t i = 0; i < c->n; i++)
        if (strcmp(c->keys[i], key) == 0)
            return c->vals[i];
    return NULL;
}

int ph_parse_int(const char *v, int64_t *out) {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return -1;
    *out = n;
    return 0;
}

int ph_parse_bool(const char *v, int32_t *out) {
    if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
        return -1;
    *out = strcmp(v, "true") == 0;
    return 0;
}

const nb_plugin_desc *ph_load(const char *path, uint32_t kind, const char *kind_name, void **dl,
                              char *err, size_t errlen) {
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*dl) {
        snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
        return NULL;
    }
    nb_plugin_entry_fn entry;
    *(void **)&entry = dlsym(*dl, NB_PLUGIN_ENTRY_SYMBOL);
    const nb_plugin_desc *desc = entry ? entry() : NULL;
    if (!desc || desc->kind != kind || !desc->vtable) {
        snprintf(err, errlen, "%s is not a %s plugin", path, kind_name);
        return NULL;
    }
    return desc;
}

void *ph_alloc(uint64_t size) {
    return size > SIZE_MAX ? NULL : malloc((size_t)size);
}

void ph_free(void *p) {
    free(p);
}

int64_t ph_now_real_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
