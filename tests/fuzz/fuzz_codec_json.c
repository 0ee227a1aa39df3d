/*
 * fuzz_codec_json.c — the codec-json plugin's decode on arbitrary bytes,
 * through its descriptor and vtable as the core drives it, with the core's
 * own buffers (core/buf.c). The plugin's source is compiled in, so that it
 * carries the fuzzer's coverage instrumentation; its one exported entry
 * point hands out the vtable exactly as after dlopen().
 *
 * Invariants: no crash, no leak, no read past the frame (libFuzzer's input
 * is a heap block of exactly its size). A failed decode leaves *out alone
 * and names a known error code. A decoded message encodes; the encoding
 * has the promised headroom and is valid UTF-8 (it goes out in a text
 * frame) and decodes again to the same message: same type, ts, seq, since,
 * flags and users presence, and the same strings, except that bytes which are not valid
 * UTF-8 come back as U+FFFD, one per byte, as the encoder documents.
 * Encoding that message again gives the same bytes.
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
    fuzz_codec_create("codec-json", &vt, &inst);
    return 0;
}

static nb_msg blank(void) {
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    return m;
}

static int32_t decode(const uint8_t *data, size_t len, nb_msg *out, nb_decode_error *err) {
    *out = blank();
    memset(err, 0, sizeof *err);
    err->struct_size = sizeof *err;
    nb_msg before = *out;
    int32_t rc = vt->decode(inst, data, (uint32_t)len, out, err);
    FUZZ_CHECK(rc == NB_OK || rc == NB_ERR_INVALID || rc == NB_ERR_NOMEM);
    if (rc != NB_OK) {
        FUZZ_CHECK(memcmp(&before, out, sizeof before) == 0);
        FUZZ_CHECK(memchr(err->code, 0, sizeof err->code) &&
                   memchr(err->reason, 0, sizeof err->reason));
        if (rc == NB_ERR_INVALID)
            FUZZ_CHECK(strcmp(err->code, "bad_json") == 0 || strcmp(err->code, "bad_field") == 0 ||
                       strcmp(err->code, "missing_field") == 0 ||
                       strcmp(err->code, "unknown_type") == 0 ||
                       strcmp(err->code, "too_complex") == 0);
        return rc;
    }
    FUZZ_CHECK(out->type > NB_MSG_NONE && out->type < NB_MSG_TYPE_COUNT);
    FUZZ_CHECK(out->codec_data != NULL);
    const nb_str *fields[] = {&out->room, &out->sender, &out->content,
                              &out->id,   &out->code,   &out->epoch};
    FUZZ_CHECK((out->flags & ~(NB_MSG_F_SINCE | NB_MSG_F_INCOMPLETE)) == 0);
    FUZZ_CHECK(out->seq <= (UINT64_C(1) << 53) && out->since <= (UINT64_C(1) << 53));
    if (!(out->flags & NB_MSG_F_SINCE))
        FUZZ_CHECK(out->since == 0);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i]->ptr)
            FUZZ_CHECK(strlen(fields[i]->ptr) == fields[i]->len); /* no NUL inside */
    if (!out->users)
        FUZZ_CHECK(out->n_users == 0);
    for (uint32_t i = 0; i < out->n_users; i++)
        FUZZ_CHECK(out->users[i].ptr && strlen(out->users[i].ptr) == out->users[i].len);
    return rc;
}

static nb_buf *encode(const nb_msg *m) {
    nb_buf *b = NULL;
    FUZZ_CHECK(vt->encode(inst, m, &b) == NB_OK && b != NULL);
    FUZZ_CHECK(b->headroom >= NB_BUF_HEADROOM);
    FUZZ_CHECK(fuzz_utf8_valid(b->data, b->len));
    return b;
}

/* s as the encoder sends it: each byte not part of a valid UTF-8 sequence
 * replaced by U+FFFD. */
static size_t sanitized(const nb_str *s, char *out) {
    static const char fffd[3] = {'\xEF', '\xBF', '\xBD'};
    size_t n = 0;
    for (uint32_t i = 0; i < s->len;) {
        size_t k = fuzz_utf8_seq((const uint8_t *)s->ptr + i, s->len - i);
        if (k) {
            memcpy(out + n, s->ptr + i, k);
            n += k;
            i += (uint32_t)k;
        } else {
            memcpy(out + n, fffd, sizeof fffd);
            n += sizeof fffd;
            i++;
        }
    }
    return n;
}

static void same_string(const nb_str *orig, const nb_str *back) {
    FUZZ_CHECK((orig->ptr == NULL) == (back->ptr == NULL));
    if (!orig->ptr)
        return;
    char *want = malloc((size_t)orig->len * 3 + 1);
    FUZZ_CHECK(want != NULL);
    size_t n = sanitized(orig, want);
    FUZZ_CHECK(back->len == n && memcmp(back->ptr, want, n) == 0);
    free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > UINT32_MAX)
        return 0;
    nb_msg m;
    nb_decode_error err;
    if (decode(data, size, &m, &err) != NB_OK)
        return 0;

    nb_buf *b1 = encode(&m);
    /* Decoded from a copy of exactly its size, like a frame. */
    uint8_t *frame = malloc(b1->len ? b1->len : 1);
    FUZZ_CHECK(frame != NULL);
    memcpy(frame, b1->data, b1->len);
    nb_msg again;
    FUZZ_CHECK(decode(frame, b1->len, &again, &err) == NB_OK);
    free(frame);
    FUZZ_CHECK(again.type == m.type);
    FUZZ_CHECK(again.ts == m.ts);
    FUZZ_CHECK(again.seq == m.seq && again.since == m.since && again.flags == m.flags);
    same_string(&m.room, &again.room);
    same_string(&m.sender, &again.sender);
    same_string(&m.content, &again.content);
    same_string(&m.id, &again.id);
    same_string(&m.code, &again.code);
    same_string(&m.epoch, &again.epoch);
    FUZZ_CHECK((m.users == NULL) == (again.users == NULL));
    FUZZ_CHECK(m.n_users == again.n_users);
    for (uint32_t i = 0; m.users && again.users && i < m.n_users; i++)
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
