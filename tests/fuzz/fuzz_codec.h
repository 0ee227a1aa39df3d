/*
 * fuzz_codec.h — what the codec fuzz targets share: a host table with the
 * core's own buffers (core/buf.c compiled in) and the codec created through
 * its descriptor, exactly as the core drives it after dlopen(). The
 * plugin's sources are compiled into the target, so its one exported entry
 * point is called directly.
 */
#ifndef NEBULA_FUZZ_CODEC_H
#define NEBULA_FUZZ_CODEC_H

#include "buf.h"

#include <nebula/codec.h>
#include <nebula/host.h>
#include <nebula/plugin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

const nb_plugin_desc *nebula_plugin_entry(void);

static void fuzz_codec_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...) {}
static void *fuzz_codec_alloc(uint64_t size) {
    return size > SIZE_MAX ? NULL : malloc((size_t)size);
}
static void fuzz_codec_free(void *p) {
    free(p);
}
/* Every config key at its default (the codecs' structure limits). */
static int32_t fuzz_codec_config_int(struct nb_plugin_ctx *ctx, const char *key, int64_t def,
                                     int64_t *out) {
    *out = def;
    return NB_OK;
}

static const nb_host fuzz_codec_host = {
    .struct_size = sizeof(nb_host),
    .abi_major = NB_ABI_MAJOR,
    .abi_minor = NB_ABI_MINOR,
    .log = fuzz_codec_log,
    .alloc = fuzz_codec_alloc,
    .free = fuzz_codec_free,
    .config_int = fuzz_codec_config_int,
    .buf_new = buf_new,
    .buf_ref = buf_ref,
    .buf_unref = buf_unref,
    .buf_reserve = buf_reserve,
};

/* Create the codec compiled into this target; abort (named) if it cannot. */
static void fuzz_codec_create(const char *name, const nb_codec_vtable **vt, void **inst) {
    const nb_plugin_desc *desc = nebula_plugin_entry();
    if (!desc || desc->kind != NB_KIND_CODEC || !desc->vtable) {
        fprintf(stderr, "%s: bad descriptor\n", name);
        abort();
    }
    *vt = desc->vtable;
    /* The codec only hands ctx back to the host; any distinct pointer will do. */
    static char ctx_token;
    if (desc->create(&fuzz_codec_host, (struct nb_plugin_ctx *)(void *)&ctx_token, inst) != NB_OK)
        abort();
}
#endif
