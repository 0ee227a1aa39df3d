/*
 * codec-bench — encode and decode cost of codec plugins, per message.
 *
 *   codec-bench PLUGIN.so [ITERATIONS [CASE encode|decode]]
 *
 * Loads the codec as the core does (dlopen, the one entry, create() with a
 * host table whose buffers are the core's), then times ITERATIONS encodes
 * and ITERATIONS decodes (+ release) of three typical messages: a chat
 * line as broadcast, a presence of 10 users, a client's send. Prints one
 * line per case: bytes on the wire and ns per encode / decode. CASE (0-2)
 * and an operation run only that loop, for callgrind: run it twice with
 * different ITERATIONS and divide the difference of the instruction
 * counts (docs/PERFORMANCE.md shows how).
 */
#include "buf.h"

#include <dlfcn.h>
#include <nebula/codec.h>
#include <nebula/host.h>
#include <nebula/msg.h>
#include <nebula/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void h_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...) {}
static void *h_alloc(uint64_t size) {
    return size > SIZE_MAX ? NULL : malloc((size_t)size);
}
static void h_free(void *p) {
    free(p);
}
static int32_t h_str(struct nb_plugin_ctx *c, const char *k, const char *d, const char **o) {
    *o = d;
    return NB_OK;
}
static int32_t h_int(struct nb_plugin_ctx *c, const char *k, int64_t d, int64_t *o) {
    *o = d;
    return NB_OK;
}
static int32_t h_bool(struct nb_plugin_ctx *c, const char *k, int32_t d, int32_t *o) {
    *o = d;
    return NB_OK;
}

static const nb_host host = {
    .struct_size = sizeof(nb_host),
    .abi_major = NB_ABI_MAJOR,
    .abi_minor = NB_ABI_MINOR,
    .log = h_log,
    .alloc = h_alloc,
    .free = h_free,
    .config_string = h_str,
    .config_int = h_int,
    .config_bool = h_bool,
    .buf_new = buf_new,
    .buf_ref = buf_ref,
    .buf_unref = buf_unref,
    .buf_reserve = buf_reserve,
};

#define S(lit) ((nb_str){(lit), (uint32_t)(sizeof(lit) - 1), 0})

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PLUGIN.so [ITERATIONS [CASE encode|decode]]\n", argv[0]);
        return 2;
    }
    long iters = argc > 2 ? strtol(argv[2], NULL, 10) : 1000000;
    if (iters < 1)
        iters = 1;
    int only = argc > 4 ? atoi(argv[3]) : -1;
    int do_encode = argc <= 4 || strcmp(argv[4], "encode") == 0;
    int do_decode = argc <= 4 || strcmp(argv[4], "decode") == 0;
    void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        fprintf(stderr, "%s\n", dlerror());
        return 2;
    }
    nb_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, NB_PLUGIN_ENTRY_SYMBOL);
    const nb_plugin_desc *desc = entry ? entry() : NULL;
    if (!desc || desc->kind != NB_KIND_CODEC) {
        fprintf(stderr, "%s: not a codec\n", argv[1]);
        return 2;
    }
    const nb_codec_vtable *vt = desc->vtable;
    static char ctx_token;
    void *inst = NULL;
    if (desc->create(&host, (struct nb_plugin_ctx *)(void *)&ctx_token, &inst) != NB_OK)
        return 2;

    static const nb_str users[] = {S("alice"), S("bob"),   S("carol"), S("dave"), S("erin"),
                                   S("frank"), S("grace"), S("heidi"), S("ivan"), S("judy")};
    nb_msg cases[3];
    memset(cases, 0, sizeof cases);
    for (int i = 0; i < 3; i++)
        cases[i].struct_size = sizeof(nb_msg);
    cases[0].type = NB_MSG_MESSAGE; /* as broadcast: 64 bytes of content */
    cases[0].room = S("general");
    cases[0].sender = S("alice");
    cases[0].content = S("The build is green again; the flaky test was a race in the fixture.");
    cases[0].id = S("1a226fdfa4a-1234");
    cases[0].seq = 1234;
    cases[0].ts = 1764400000000;
    cases[1].type = NB_MSG_PRESENCE;
    cases[1].room = S("general");
    cases[1].users = users;
    cases[1].n_users = 10;
    cases[1].seq = 1234;
    cases[1].ts = 1764400000000;
    cases[2].type = NB_MSG_MESSAGE; /* what a client sends */
    cases[2].room = S("general");
    cases[2].content = S("The build is green again; the flaky test was a race in the fixture.");
    static const char *const names[3] = {"message (broadcast)", "presence (10 users)",
                                         "message (client)"};

    for (int c = 0; c < 3; c++) {
        if (only >= 0 && c != only)
            continue;
        nb_buf *b = NULL;
        if (vt->encode(inst, &cases[c], &b) != NB_OK)
            return 1;
        uint32_t len = b->len;
        uint8_t *frame = malloc(len);
        if (frame)
            memcpy(frame, b->data, len);
        buf_unref(b);
        if (!frame)
            return 1;
        int failed = 0;

        double t0 = now_ns();
        for (long i = 0; i < iters && do_encode && !failed; i++) {
            failed = vt->encode(inst, &cases[c], &b) != NB_OK;
            if (!failed)
                buf_unref(b);
        }
        double t1 = now_ns();
        for (long i = 0; i < iters && do_decode && !failed; i++) {
            nb_msg m;
            memset(&m, 0, sizeof m);
            m.struct_size = sizeof m;
            nb_decode_error err;
            memset(&err, 0, sizeof err);
            err.struct_size = sizeof err;
            failed = vt->decode(inst, frame, len, &m, &err) != NB_OK;
            vt->release(inst, &m);
        }
        double t2 = now_ns();
        if (failed) {
            fprintf(stderr, "%s: %s failed\n", desc->name, names[c]);
            free(frame);
            return 1;
        }
        printf("%-16s %-22s %4u bytes  encode %7.1f ns  decode %7.1f ns\n", desc->name, names[c],
               len, (t1 - t0) / (double)iters, (t2 - t1) / (double)iters);
        free(frame);
    }
    desc->destroy(inst);
    dlclose(dl);
    return 0;
}
