/*
 * codec_protobuf.c — the Protobuf codec: subprotocol nebula.proto.v1,
 * binary frames, one nebula.v1.Envelope (proto/nebula.proto) per message.
 *
 * decode first walks the wire itself (pb_check.c) to give every malformed
 * frame a precise error code, then unpacks with protobuf-c's generated
 * code, whose strings the nb_msg points into until release. encode writes
 * the bytes by hand (pb_encode.c). The C code is generated from the
 * .proto by protoc-c in the build (meson.build); docs/CODEC_PROTOBUF.md
 * describes the mapping and the error codes.
 *
 * One instance serves every I/O thread; nothing is mutable after create().
 */
#include "nebula.pb-c.h"
#include "pb.h"

#include <nebula/plugin.h>
#include <string.h>

typedef struct codec_pb {
    const nb_host *host;
    struct nb_plugin_ctx *ctx;
    uint32_t max_fields; /* [codec-protobuf] max_fields */
} codec_pb;

/* An envelope has a dozen fields; a presence event one per user. */
#define PB_MAX_FIELDS 1024

/* What decode hangs on nb_msg.codec_data. */
typedef struct decoded {
    Nebula__V1__Envelope *env;
    nb_str users[];
} decoded;

/* protobuf-c allocates through the host; a failed allocation is noted so
 * that out-of-memory is not reported as a malformed frame. */
typedef struct alloc_state {
    const nb_host *host;
    int failed;
} alloc_state;

static void *pb_alloc(void *data, size_t size) {
    alloc_state *a = data;
    void *p = a->host->alloc(size ? size : 1);
    if (!p)
        a->failed = 1;
    return p;
}

static void pb_free(void *data, void *ptr) {
    const alloc_state *a = data;
    a->host->free(ptr);
}

static nb_str str_of(const char *s) {
    /* pb_check refused NULs inside strings, so strlen is the wire length. */
    return (nb_str){s, (uint32_t)strlen(s), 0};
}

static int32_t pb_decode(void *instance, const uint8_t *data, uint32_t len, nb_msg *out,
                         nb_decode_error *err) {
    const codec_pb *cp = instance;
    if (pb_check(data, len, cp->max_fields, err) != NB_OK)
        return NB_ERR_INVALID;

    alloc_state as = {cp->host, 0};
    ProtobufCAllocator allocator = {pb_alloc, pb_free, &as};
    Nebula__V1__Envelope *env = nebula__v1__envelope__unpack(&allocator, len, data);
    if (!env) {
        if (as.failed) {
            pb_fail(err, "internal", "out of memory");
            return NB_ERR_NOMEM;
        }
        /* Not expected after pb_check; still an error frame, not a crash. */
        return pb_fail(err, "bad_message", "the message could not be decoded");
    }
    uint64_t n_users = env->n_users;
    decoded *h = cp->host->alloc(sizeof(decoded) + n_users * sizeof(nb_str));
    if (!h) {
        nebula__v1__envelope__free_unpacked(env, &allocator);
        pb_fail(err, "internal", "out of memory");
        return NB_ERR_NOMEM;
    }
    h->env = env;

    nb_msg m = *out;
    m.type = (uint32_t)env->type; /* 1..7, checked by pb_check */
    if (env->has_room_case == NEBULA__V1__ENVELOPE__HAS_ROOM_ROOM)
        m.room = str_of(env->room);
    if (env->has_sender_case == NEBULA__V1__ENVELOPE__HAS_SENDER_SENDER)
        m.sender = str_of(env->sender);
    if (env->has_content_case == NEBULA__V1__ENVELOPE__HAS_CONTENT_CONTENT)
        m.content = str_of(env->content);
    if (env->has_id_case == NEBULA__V1__ENVELOPE__HAS_ID_ID)
        m.id = str_of(env->id);
    if (env->has_code_case == NEBULA__V1__ENVELOPE__HAS_CODE_CODE)
        m.code = str_of(env->code);
    if (env->has_epoch_case == NEBULA__V1__ENVELOPE__HAS_EPOCH_EPOCH)
        m.epoch = str_of(env->epoch);
    if (env->has_since_case == NEBULA__V1__ENVELOPE__HAS_SINCE_SINCE) {
        m.since = env->since;
        m.flags |= NB_MSG_F_SINCE;
    }
    if (env->incomplete)
        m.flags |= NB_MSG_F_INCOMPLETE;
    m.ts = env->ts;
    m.seq = env->seq;
    if (n_users) {
        for (size_t i = 0; i < env->n_users; i++)
            h->users[i] = str_of(env->users[i]);
        m.users = h->users;
        m.n_users = (uint32_t)n_users;
    }
    m.codec_data = h;
    *out = m;
    return NB_OK;
}

static void pb_release(void *instance, nb_msg *msg) {
    const codec_pb *cp = instance;
    if (!msg || !msg->codec_data)
        return;
    decoded *h = msg->codec_data;
    alloc_state as = {cp->host, 0};
    ProtobufCAllocator allocator = {pb_alloc, pb_free, &as};
    nebula__v1__envelope__free_unpacked(h->env, &allocator);
    cp->host->free(h);
    /* Everything below pointed into what was just freed. */
    msg->codec_data = NULL;
    msg->room = msg->sender = msg->content = msg->id = msg->code = msg->epoch =
        (nb_str){NULL, 0, 0};
    msg->users = NULL;
    msg->n_users = 0;
}

static int32_t pb_encode_msg(void *instance, const nb_msg *msg, struct nb_buf **out) {
    const codec_pb *cp = instance;
    return pb_encode(cp->host, msg, out);
}

/* The hand-written encoder and check use pb.h's field numbers: make sure
 * they are the generated descriptor's, i.e. the .proto's. */
static const char *descriptor_mismatch(void) {
    const ProtobufCMessageDescriptor *d = &nebula__v1__envelope__descriptor;
    for (unsigned f = 1; f <= PB_FIELD_MAX; f++) {
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field_by_name(d, pb_field_names[f]);
        if (!fd || fd->id != f)
            return pb_field_names[f];
    }
    return d->n_fields == PB_FIELD_MAX ? NULL : "(field count)";
}

static int32_t pb_create(const nb_host *host, struct nb_plugin_ctx *ctx, void **instance) {
    /* The wire format is fixed by nebula.proto.v1; the one key bounds what
     * a message may cost to unpack. */
    int64_t max_fields = PB_MAX_FIELDS;
    if (host->config_int(ctx, "max_fields", PB_MAX_FIELDS, &max_fields) != NB_OK)
        return NB_ERR_CONFIG;
    if (max_fields < 16 || max_fields > 1000000) {
        host->config_error(ctx, "max_fields", "must be from 16 to 1000000");
        return NB_ERR_CONFIG;
    }
    const char *bad = descriptor_mismatch();
    if (bad) {
        host->log(ctx, NB_LOG_ERROR, "field %s differs between pb.h and nebula.proto", bad);
        return NB_ERR;
    }
    codec_pb *cp = host->alloc(sizeof *cp);
    if (!cp) {
        host->log(ctx, NB_LOG_ERROR, "out of memory");
        return NB_ERR_NOMEM;
    }
    cp->host = host;
    cp->ctx = ctx;
    cp->max_fields = (uint32_t)max_fields;
    *instance = cp;
    return NB_OK;
}

static void pb_destroy(void *instance) {
    codec_pb *cp = instance;
    if (cp)
        cp->host->free(cp);
}

static const nb_codec_vtable pb_vtable = {
    .struct_size = (uint32_t)sizeof(nb_codec_vtable),
    .frame_kind = NB_FRAME_BINARY,
    .subprotocol = "nebula.proto.v1",
    .decode = pb_decode,
    .release = pb_release,
    .encode = pb_encode_msg,
};

static const nb_plugin_desc pb_desc = {
    NB_PLUGIN_HEADER(NB_KIND_CODEC),
    .name = "codec-protobuf",
    .version = "1.1.0",
    .summary = "Protobuf envelopes in binary frames (nebula.proto.v1), unpacked with protobuf-c",
    .create = pb_create,
    .destroy = pb_destroy,
    .vtable = &pb_vtable,
};

NB_PLUGIN_DECLARE(pb_desc)
