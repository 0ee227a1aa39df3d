/*
 * codec_fixture.c — what the codecs' unit tests share: a host table of
 * our own (buffers are the core's, buf.c compiled in) and the codec
 * plugin loaded the way the core loads it: dlopen() of the built module,
 * the one exported entry, create().
 */
#include "codec_fixture.h"

#include "buf.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the host side -------------------------------------------------------- */

char last_log[512];

static void t_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void t_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
    vsnprintf(last_log, sizeof last_log, fmt, ap);
    va_end(ap);
}

static void *t_alloc(uint64_t size) {
    return size > SIZE_MAX ? NULL : malloc((size_t)size);
}
static void t_free(void *p) {
    free(p);
}

static int32_t t_config_string(struct nb_plugin_ctx *ctx, const char *key, const char *def,
                               const char **out) {
    *out = def;
    return NB_OK;
}

static int32_t t_config_int(struct nb_plugin_ctx *ctx, const char *key, int64_t def, int64_t *out) {
    *out = def;
    return NB_OK;
}

static int32_t t_config_bool(struct nb_plugin_ctx *ctx, const char *key, int32_t def,
                             int32_t *out) {
    *out = def;
    return NB_OK;
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
    .buf_new = buf_new,
    .buf_ref = buf_ref,
    .buf_unref = buf_unref,
    .buf_reserve = buf_reserve,
};

/* ---- the plugin ------------------------------------------------------------ */

const char *plugin_path;
static void *dl;
const nb_plugin_desc *desc;
const nb_codec_vtable *vt;
void *inst;

int suite_init(void) {
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
    if (!desc || desc->kind != NB_KIND_CODEC || !desc->vtable)
        return -1;
    vt = desc->vtable;
    /* The codec only hands ctx back to the host; any distinct pointer will do. */
    static char ctx_token;
    return desc->create(&host, (struct nb_plugin_ctx *)(void *)&ctx_token, &inst) == NB_OK ? 0 : -1;
}

int suite_clean(void) {
    if (desc && inst)
        desc->destroy(inst);
    if (dl)
        dlclose(dl);
    return 0;
}
