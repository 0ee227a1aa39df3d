/*
 * fuzz_codec_protobuf.c — the codec-protobuf plugin's decode on arbitrary
 * bytes, through its descriptor and vtable as the core drives it, with the
 * core's own buffers. The plugin's sources (and the code protoc-c
 * generated) are compiled in, so they carry the fuzzer's instrumentation.
 *
 * Invariants: no crash, no leak, no read past the frame. A failed decode
 * leaves *out alone and names a known code; the wire check and protobuf-c
 * never disagree (a frame the check passes, protobuf-c unpacks). A decoded
 * message has a valid type, UTF-8 strings without NULs, and integers in
 * range; it encodes, and the encoding decodes to the same message and
 * encodes again to the same bytes (the round trip).
 */
#include "buf.h"
#include "fuzz.h"
#include "fuzz_codec.h"

#include <nebula/codec.h>
#include <nebula/host.h>
#include <nebula/msg.h>
#include <nebula/plugin.h>
#include <string.h>

static const nb_codec_vtable *vt;
static void *inst;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_codec_create("codec-protobuf", &vt, &inst);
    return 0;
}

static void valid_string(const nb_str *s) {
    if (!s->ptr)
        return;
    FUZZ_CHECK(strlen(s->ptr) == s->len); /* NUL-terminated, no NUL inside */
    FUZZ_CHECK(fuzz_utf8_valid((const uint8_t *)s->ptr, s->len));
}

static int32_t decode(const uint8_t *data, size_t len, nb_msg *out) {
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    nb_decode_error err;
    memset(&err, 0, sizeof err);
    err.struct_size = sizeof err;
    nb_msg before = *out;
    /* An exact-size copy, so that ASan sees a read past the frame. */
    uint8_t *frame = malloc(len ? len : 1);
    FUZZ_CHECK(frame != NULL);
    memcpy(frame, data, len);
    int32_t rc = vt->decode(inst, frame, (uint32_t)len, out, &err);
    free(frame);
    FUZZ_CHECK(rc == NB_OK || rc == NB_ERR_INVALID || rc == NB_ERR_NOMEM);
    if (rc != NB_OK) {
        FUZZ_CHECK(memcmp(&before, out, sizeof before) == 0);
        FUZZ_CHECK(memchr(err.code, 0, sizeof err.code) &&
                   memchr(err.reason, 0, sizeof err.reason));
        if (rc == NB_ERR_INVALID) {
            FUZZ_CHECK(strcmp(err.code, "bad_message") == 0 || strcmp(err.code, "bad_field") == 0 ||
                       strcmp(err.code, "missing_field") == 0 ||
                       strcmp(err.code, "unknown_type") == 0 ||
                       strcmp(err.code, "too_complex") == 0);
            /* The fallback when protobuf-c refuses what the check passed. */
            FUZZ_CHECK(strcmp(err.reason, "the message could not be decoded") != 0);
        }
        return rc;
    }
    FUZZ_CHECK(out->type > NB_MSG_NONE && out->type < NB_MSG_TYPE_COUNT);
    FUZZ_CHECK(out->codec_data != NULL);
    FUZZ_CHECK((out->flags & ~(NB_MSG_F_SINCE | NB_MSG_F_INCOMPLETE)) == 0);
    FUZZ_CHECK(out->seq <= (UINT64_C(1) << 53) && out->since <= (UINT64_C(1) << 53));
    FUZZ_CHECK(out->ts <= (INT64_C(1) << 53) && out->ts >= -(INT64_C(1) << 53));
    if (!(out->flags & NB_MSG_F_SINCE))
        FUZZ_CHECK(out->since == 0);
    const nb_str *fields[] = {&out->room, &out->sender, &out->content,
                              &out->id,   &out->code,   &out->epoch};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        valid_string(fields[i]);
    FUZZ_CHECK((out->users == NULL) == (out->n_users == 0));
    for (uint32_t i = 0; i < out->n_users; i++) {
        FUZZ_CHECK(out->users[i].ptr != NULL);
        valid_string(&out->users[i]);
    }
    return rc;
}

static nb_buf *encode(const nb_msg *m) {
    nb_buf *b = NULL;
    FUZZ_CHECK(vt->encode(inst, m, &b) == NB_OK && b != NULL);
    FUZZ_CHECK(b->headroom >= NB_BUF_HEADROOM);
    return b;
}

static void same_string(const nb_str *a, const nb_str *b) {
    FUZZ_CHECK((a->ptr == NULL) == (b->ptr == NULL));
    if (!a->ptr || !b->ptr)
        return;
    FUZZ_CHECK(a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > UINT32_MAX)
        return 0;
    nb_msg m;
    if (decode(data, size, &m) != NB_OK)
        return 0;

    nb_buf *b1 = encode(&m);
    nb_msg again;
    FUZZ_CHECK(decode(b1->data, b1->len, &again) == NB_OK);
    FUZZ_CHECK(again.type == m.type && again.ts == m.ts && again.seq == m.seq &&
               again.since == m.since && again.flags == m.flags);
    same_string(&m.room, &again.room);
    same_string(&m.sender, &again.sender);
    same_string(&m.content, &again.content);
    same_string(&m.id, &again.id);
    same_string(&m.code, &again.code);
    same_string(&m.epoch, &again.epoch);
    FUZZ_CHECK(m.n_users == again.n_users);
    for (uint32_t i = 0; i < m.n_users; i++)
        same_string(&m.users[i], &again.users[i]);

    nb_buf *b2 = encode(&again);
    FUZZ_CHECK(b2->len == b1->len && memcmp(b2->data, b1->data, b1->len) == 0);
    buf_unref(b1);
    buf_unref(b2);
    vt->release(inst, &again);
    vt->release(inst, &m);
    FUZZ_CHECK(m.codec_data == NULL && m.room.ptr == NULL && m.epoch.ptr == NULL &&
               m.users == NULL);
    return 0;
}
