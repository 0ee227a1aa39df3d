/*
 * envelope.c — the bus speaks nebula.v1.Envelope (proto/nebula.proto),
 * whatever codecs the clients use: the encoder, the wire check and the
 * generated unpacker are codec-protobuf's own files, compiled into this
 * plugin too (meson.build), so both always agree with the .proto.
 */
#include "nebula.pb-c.h"
#include "pb.h"
#include "rb.h"

#include <string.h>

int32_t rb_encode(rb_broker *b, const nb_msg *msg, struct nb_buf **out) {
    nb_msg m = *msg;
    m.seq = 0; /* the publish script appends the room's seq and the time */
    m.ts = 0;
    m.epoch = (nb_str){NULL, 0, 0};
    m.flags = 0;
    m.users = NULL;
    m.n_users = 0;
    return pb_encode(b->host, &m, out);
}

static void *pb_alloc(void *data, size_t size) {
    const nb_host *host = data;
    return host->alloc(size ? size : 1);
}

static void pb_free(void *data, void *ptr) {
    const nb_host *host = data;
    host->free(ptr);
}

static nb_str str_of(const char *s) {
    return (nb_str){s, (uint32_t)strlen(s), 0}; /* pb_check refused NULs */
}

int32_t rb_decode(rb_broker *b, const uint8_t *data, uint32_t len, rb_decoded *out) {
    memset(out, 0, sizeof *out);
    nb_decode_error err;
    if (pb_check(data, len, &err) != NB_OK)
        return NB_ERR_INVALID;
    ProtobufCAllocator allocator = {pb_alloc, pb_free, (void *)b->host};
    Nebula__V1__Envelope *env = nebula__v1__envelope__unpack(&allocator, len, data);
    if (!env)
        return NB_ERR_INVALID;
    nb_msg *m = &out->msg;
    m->struct_size = sizeof *m;
    m->type = (uint32_t)env->type;
    if (env->has_room_case == NEBULA__V1__ENVELOPE__HAS_ROOM_ROOM)
        m->room = str_of(env->room);
    if (env->has_sender_case == NEBULA__V1__ENVELOPE__HAS_SENDER_SENDER)
        m->sender = str_of(env->sender);
    if (env->has_content_case == NEBULA__V1__ENVELOPE__HAS_CONTENT_CONTENT)
        m->content = str_of(env->content);
    if (env->has_id_case == NEBULA__V1__ENVELOPE__HAS_ID_ID)
        m->id = str_of(env->id);
    m->ts = env->ts;
    m->seq = env->seq;
    if (m->type == NB_MSG_PRESENCE) {
        /* one more than needed: an empty list is a list, not an absence */
        out->users = b->host->alloc((env->n_users + 1) * sizeof *out->users);
        if (!out->users) {
            nebula__v1__envelope__free_unpacked(env, &allocator);
            return NB_ERR_NOMEM;
        }
        for (size_t i = 0; i < env->n_users; i++)
            out->users[i] = str_of(env->users[i]);
        m->users = out->users;
        m->n_users = (uint32_t)env->n_users;
    }
    out->env = env;
    return NB_OK;
}

void rb_decoded_free(rb_broker *b, rb_decoded *d) {
    if (d->env) {
        ProtobufCAllocator allocator = {pb_alloc, pb_free, (void *)b->host};
        nebula__v1__envelope__free_unpacked(d->env, &allocator);
    }
    b->host->free(d->users);
    memset(d, 0, sizeof *d);
}
