/*
 * Unit tests of the codec-protobuf plugin, loaded the way the core loads it:
 * dlopen() of the built module (path in argv[1]), the one exported entry,
 * create() with a host table of our own. Buffers are the core's (buf.c is
 * compiled in), so headroom and leaks are checked against the real thing.
 *
 * Inputs are copied into exact-size heap blocks without a NUL, so that
 * under ASan a read past the frame is caught.
 */
#include "buf.h"
#include "codec_fixture.h"
#include "nebula.pb-c.h"

#include <CUnit/Basic.h>
#include <nebula/codec.h>
#include <nebula/host.h>
#include <nebula/msg.h>
#include <nebula/plugin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers --------------------------------------------------------------- */

#define S(lit) ((nb_str){(lit), (uint32_t)(sizeof(lit) - 1), 0})
#define B(lit) (lit), (uint32_t)(sizeof(lit) - 1) /* bytes of a literal, for fails_n */
#define EMPTY ((nb_str){"", 0, 0})

static nb_msg msg_of(uint32_t type) {
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = type;
    return m;
}

static int32_t decode_n(const void *data, uint32_t len, nb_msg *out, nb_decode_error *err) {
    *out = msg_of(NB_MSG_NONE);
    memset(err, 0, sizeof *err);
    err->struct_size = sizeof *err;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return NB_ERR_NOMEM;
    if (len)
        memcpy(copy, data, len);
    int32_t rc = vt->decode(inst, copy, len, out, err);
    free(copy); /* the message must not need the frame */
    return rc;
}

/* Encode and check the buffer contract; the bytes (malloc'd) or NULL. */
static uint8_t *encode_b(const nb_msg *m, uint32_t *len_out) {
    nb_buf *b = NULL;
    if (vt->encode(inst, m, &b) != NB_OK || !b)
        return NULL;
    int ok =
        b->headroom >= NB_BUF_HEADROOM && buf_refcount(b) == 1 && b->struct_size == sizeof(nb_buf);
    memset(b->data - b->headroom, 0xBB, b->headroom);
    uint8_t *s = malloc((size_t)b->len + 1);
    if (s)
        memcpy(s, b->data, b->len);
    memset(b->data + b->len, 0xAA, b->tailroom);
    *len_out = b->len;
    buf_unref(b);
    if (!ok) {
        free(s);
        return NULL;
    }
    return s;
}

static int str_eq(nb_str a, nb_str b) {
    if (!a.ptr || !b.ptr)
        return a.ptr == b.ptr;
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* Equal as the Protobuf wire can tell: an empty users list is no list. */
static int msg_eq(const nb_msg *a, const nb_msg *b) {
    if (a->type != b->type || a->ts != b->ts || !str_eq(a->room, b->room) ||
        !str_eq(a->sender, b->sender) || !str_eq(a->content, b->content) || !str_eq(a->id, b->id) ||
        !str_eq(a->code, b->code) || a->seq != b->seq || a->flags != b->flags ||
        ((a->flags & NB_MSG_F_SINCE) && a->since != b->since) || !str_eq(a->epoch, b->epoch))
        return 0;
    uint32_t na = a->users ? a->n_users : 0, nbu = b->users ? b->n_users : 0;
    if (na != nbu || (b->users == NULL) != (nbu == 0))
        return 0;
    for (uint32_t i = 0; i < na; i++)
        if (!str_eq(a->users[i], b->users[i]))
            return 0;
    return 1;
}

static int round_trip(const nb_msg *m) {
    uint32_t len = 0;
    uint8_t *bytes = encode_b(m, &len);
    if (!bytes)
        return 0;
    nb_msg back;
    nb_decode_error err;
    int ok = decode_n(bytes, len, &back, &err) == NB_OK && msg_eq(m, &back);
    if (!ok)
        fprintf(stderr, "\nround trip failed (%s: %s)\n", err.code, err.reason);
    vt->release(inst, &back);
    free(bytes);
    return ok;
}

static int encodes_to(const nb_msg *m, const void *want, uint32_t want_len) {
    uint32_t len = 0;
    uint8_t *got = encode_b(m, &len);
    int ok = got && len == want_len && memcmp(got, want, len) == 0;
    if (!ok && got) {
        fprintf(stderr, "\nencoded");
        for (uint32_t i = 0; i < len; i++)
            fprintf(stderr, " %02x", got[i]);
        fprintf(stderr, "\n");
    }
    free(got);
    return ok;
}

/* decode fails with `code`, a reason is set, *out is untouched. */
static int fails_n(const void *data, uint32_t len, const char *code) {
    nb_msg m;
    nb_decode_error err;
    int32_t rc = decode_n(data, len, &m, &err);
    int ok = rc == NB_ERR_INVALID && strcmp(err.code, code) == 0 && err.reason[0] != '\0' &&
             memchr(err.reason, '\0', sizeof err.reason) != NULL && m.codec_data == NULL &&
             m.type == NB_MSG_NONE && m.room.ptr == NULL && m.users == NULL;
    if (!ok) {
        fprintf(stderr, "\ninput");
        for (uint32_t i = 0; i < len && i < 40; i++)
            fprintf(stderr, " %02x", ((const uint8_t *)data)[i]);
        fprintf(stderr, ": rc %d, code \"%s\" (want \"%s\"), reason \"%s\"\n", rc, err.code, code,
                err.reason);
    }
    if (rc == NB_OK)
        vt->release(inst, &m);
    return ok;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_descriptor(void) {
    CU_ASSERT_EQUAL(desc->abi_major, NB_ABI_MAJOR);
    CU_ASSERT_EQUAL(desc->abi_minor, NB_ABI_MINOR);
    CU_ASSERT_STRING_EQUAL(desc->name, "codec-protobuf");
    CU_ASSERT_EQUAL(vt->struct_size, sizeof(nb_codec_vtable));
    CU_ASSERT_EQUAL(vt->frame_kind, NB_FRAME_BINARY);
    CU_ASSERT_STRING_EQUAL(vt->subprotocol, "nebula.proto.v1");
    CU_ASSERT_STRING_EQUAL(last_log, "");
}

static void test_encode_exact(void) {
    nb_msg j = msg_of(NB_MSG_JOIN);
    j.room = S("r");
    CU_ASSERT(encodes_to(&j, B("\x08\x02\x12\x01r")));

    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.room = S("g");
    m.sender = S("al");
    m.content = EMPTY; /* present and empty: on the wire */
    m.id = S("1");
    m.ts = 300;
    m.seq = 17;
    CU_ASSERT(encodes_to(&m, B("\x08\x01\x12\x01g\x1a\x02"
                               "al\x22\x00\x32\x01"
                               "1\x38\xac\x02\x48\x11")));

    static const nb_str users[] = {{"a", 1, 0}, {"bc", 2, 0}};
    nb_msg p = msg_of(NB_MSG_PRESENCE);
    p.users = users;
    p.n_users = 2;
    CU_ASSERT(encodes_to(&p, B("\x08\x04\x2a\x01"
                               "a\x2a\x02"
                               "bc")));

    nb_msg c = msg_of(NB_MSG_JOIN); /* since 0 is present; incomplete is a bool */
    c.flags = NB_MSG_F_SINCE | NB_MSG_F_INCOMPLETE;
    c.epoch = S("e");
    c.since = 5;
    CU_ASSERT(encodes_to(&c, B("\x08\x02\x50\x05\x5a\x01"
                               "e\x60\x01")));
    c.since = 0;
    c.flags = NB_MSG_F_SINCE;
    CU_ASSERT(encodes_to(&c, B("\x08\x02\x50\x00\x5a\x01"
                               "e")));

    nb_msg w = msg_of(NB_MSG_WELCOME);
    w.ts = -1;   /* int64: ten bytes */
    w.since = 9; /* no flag: not sent */
    CU_ASSERT(encodes_to(&w, B("\x08\x07\x38\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")));
}

static void test_round_trip(void) {
    static const nb_str users[] = {{"alice", 5, 0}, {"bob", 3, 0}, {"zoë", 4, 0}};
    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.room = S("general");
    m.sender = S("alice");
    m.content = S("Hello, world \xF0\x9F\x98\x80");
    m.id = S("42");
    m.ts = 1763880000000;
    m.seq = 9007199254740992; /* 2^53 */
    CU_ASSERT(round_trip(&m));
    for (uint32_t t = NB_MSG_MESSAGE; t < NB_MSG_TYPE_COUNT; t++) {
        nb_msg e = msg_of(t);
        e.room = EMPTY;
        e.content = EMPTY;
        e.users = users;
        e.n_users = 3;
        e.ts = -9007199254740992;
        e.code = S("bad_room");
        e.epoch = S("ep");
        e.flags = NB_MSG_F_SINCE | NB_MSG_F_INCOMPLETE;
        CU_ASSERT(round_trip(&e));
        e.flags = NB_MSG_F_SINCE;
        e.since = 9007199254740992;
        CU_ASSERT(round_trip(&e));
    }
    /* Empty and absent stay distinct for strings. */
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(decode_n(B("\x08\x01\x22\x00"), &d, &err), NB_OK);
    CU_ASSERT_PTR_NOT_NULL(d.content.ptr);
    CU_ASSERT_EQUAL(d.content.len, 0);
    CU_ASSERT_PTR_NULL(d.room.ptr);
    CU_ASSERT_PTR_NULL(d.users);
    CU_ASSERT_EQUAL(d.flags, 0);
    vt->release(inst, &d);
}

/* Our bytes are protobuf-c's bytes, and protobuf-c reads ours. */
static void test_matches_protobuf_c(void) {
    char *users[] = {"a", "b"};
    Nebula__V1__Envelope env = NEBULA__V1__ENVELOPE__INIT;
    env.type = NEBULA__V1__TYPE__TYPE_HISTORY;
    env.has_room_case = NEBULA__V1__ENVELOPE__HAS_ROOM_ROOM;
    env.room = "general";
    env.has_content_case = NEBULA__V1__ENVELOPE__HAS_CONTENT_CONTENT;
    env.content = "";
    env.n_users = 2;
    env.users = users;
    env.has_id_case = NEBULA__V1__ENVELOPE__HAS_ID_ID;
    env.id = "7";
    env.ts = -5;
    env.seq = 123456789;
    env.has_since_case = NEBULA__V1__ENVELOPE__HAS_SINCE_SINCE;
    env.since = 0;
    env.has_epoch_case = NEBULA__V1__ENVELOPE__HAS_EPOCH_EPOCH;
    env.epoch = "x";
    env.incomplete = 1;
    size_t n = nebula__v1__envelope__get_packed_size(&env);
    uint8_t *want = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    CU_ASSERT_EQUAL(nebula__v1__envelope__pack(&env, want), n);

    static const nb_str us[] = {{"a", 1, 0}, {"b", 1, 0}};
    nb_msg m = msg_of(NB_MSG_HISTORY);
    m.room = S("general");
    m.content = EMPTY;
    m.users = us;
    m.n_users = 2;
    m.id = S("7");
    m.ts = -5;
    m.seq = 123456789;
    m.flags = NB_MSG_F_SINCE | NB_MSG_F_INCOMPLETE;
    m.epoch = S("x");
    CU_ASSERT(encodes_to(&m, want, (uint32_t)n));

    uint32_t len = 0;
    uint8_t *ours = encode_b(&m, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ours);
    Nebula__V1__Envelope *back = nebula__v1__envelope__unpack(NULL, len, ours);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_EQUAL(back->type, NEBULA__V1__TYPE__TYPE_HISTORY);
    CU_ASSERT_STRING_EQUAL(back->room, "general");
    CU_ASSERT_EQUAL(back->has_sender_case, NEBULA__V1__ENVELOPE__HAS_SENDER__NOT_SET);
    CU_ASSERT_EQUAL(back->n_users, 2);
    CU_ASSERT_EQUAL(back->has_since_case, NEBULA__V1__ENVELOPE__HAS_SINCE_SINCE);
    CU_ASSERT_EQUAL(back->seq, 123456789);
    CU_ASSERT(back->incomplete);
    nebula__v1__envelope__free_unpacked(back, NULL);
    free(ours);
    free(want);
}

static void test_bad_message(void) {
    CU_ASSERT(fails_n(B("\x08"), "bad_message"));     /* varint cut */
    CU_ASSERT(fails_n(B("\x08\x80"), "bad_message")); /* varint cut */
    CU_ASSERT(fails_n(B("\x88"), "bad_message"));     /* tag cut */
    CU_ASSERT(fails_n(B("\x08\x01\x38\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"), "bad_message"));
    CU_ASSERT(fails_n(B("\x08\x01\x38\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"),
                      "bad_message"));                                    /* 11-byte varint */
    CU_ASSERT(fails_n(B("\x80\x80\x80\x80\x80\x01\x00"), "bad_message")); /* tag > 32 bits */
    CU_ASSERT(fails_n(B("\x08\x04\x80\x80\x88\x80\x80\x00\x01"), "bad_message")); /* 6-byte tag */
    /* a length of 6 bytes, though its value (0) is small: protobuf-c refuses it */
    CU_ASSERT(fails_n(B("\x08\x01\x12\x00\x22\x80\x80\x80\x80\x80\x00"), "bad_message"));
    CU_ASSERT(fails_n(B("\x08\x01\x12\x05"
                        "ab"),
                      "bad_message")); /* length past the end */
    CU_ASSERT(fails_n(B("\x08\x01\x12\xff\xff\xff\xff\x0f"), "bad_message"));
    CU_ASSERT(fails_n(B("\x08\x01\x12"), "bad_message"));
    CU_ASSERT(fails_n(B("\x00\x01"), "bad_message"));                 /* field 0 */
    CU_ASSERT(fails_n(B("\x08\x01\x6b\x6c"), "bad_message"));         /* group */
    CU_ASSERT(fails_n(B("\x08\x01\x6c"), "bad_message"));             /* end group */
    CU_ASSERT(fails_n(B("\x08\x01\x6e"), "bad_message"));             /* wire type 6 */
    CU_ASSERT(fails_n(B("\x08\x01\x6f"), "bad_message"));             /* wire type 7 */
    CU_ASSERT(fails_n(B("\x08\x01\x6d\x01\x02\x03"), "bad_message")); /* fixed32 cut */
    CU_ASSERT(fails_n(B("\x08\x01\x69\x01\x02\x03\x04\x05\x06\x07"), "bad_message"));
    /* Structure is checked before anything else. */
    CU_ASSERT(fails_n(B("\x10\x01\x12\x05"), "bad_message"));
    CU_ASSERT(fails_n(B("\x12\x01\xff\x08"), "bad_message"));
}

static void test_bad_field(void) {
    CU_ASSERT(fails_n(B("\x0a\x01\x01"), "bad_field"));                 /* type not a varint */
    CU_ASSERT(fails_n(B("\x08\x02\x10\x01"), "bad_field"));             /* room as varint */
    CU_ASSERT(fails_n(B("\x08\x02\x15\x01\x02\x03\x04"), "bad_field")); /* room as fixed32 */
    CU_ASSERT(fails_n(B("\x08\x01\x3a\x01"
                        "1"),
                      "bad_field"));                        /* ts as a string */
    CU_ASSERT(fails_n(B("\x08\x04\x28\x01"), "bad_field")); /* users as varint */
    CU_ASSERT(fails_n(B("\x08\x02\x61\x01\x02\x03\x04\x05\x06\x07\x08"), "bad_field"));
    CU_ASSERT(fails_n(B("\x08\x01\x22\x01\xff"), "bad_field"));         /* not UTF-8 */
    CU_ASSERT(fails_n(B("\x08\x01\x22\x02\xc0\x80"), "bad_field"));     /* overlong NUL */
    CU_ASSERT(fails_n(B("\x08\x01\x22\x03\xed\xa0\x80"), "bad_field")); /* surrogate */
    CU_ASSERT(fails_n(B("\x08\x01\x22\x03"
                        "a\x00"
                        "b"),
                      "bad_field")); /* NUL */
    CU_ASSERT(fails_n(B("\x08\x04\x2a\x01"
                        "a\x2a\x01\xfe"),
                      "bad_field"));                            /* a user name */
    CU_ASSERT(fails_n(B("\x08\x02\x5a\x01\x80"), "bad_field")); /* epoch */
    CU_ASSERT(fails_n(B("\x08\x01\x48\x81\x80\x80\x80\x80\x80\x80\x10"), "bad_field")); /* 2^53+1 */
    CU_ASSERT(fails_n(B("\x08\x02\x50\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), "bad_field"));
    CU_ASSERT(fails_n(B("\x08\x07\x38\x81\x80\x80\x80\x80\x80\x80\x10"), "bad_field")); /* ts */
    CU_ASSERT(fails_n(B("\x08\x07\x38\xff\xff\xff\xff\xff\xff\xff\xef\xff\x01"),
                      "bad_field")); /* -2^53-1 */
    /* The type is looked at before the other fields. */
    CU_ASSERT(fails_n(B("\x10\x01"), "missing_field"));
    CU_ASSERT(fails_n(B("\x08\x09\x10\x01"), "unknown_type"));
}

static void test_missing_and_unknown(void) {
    CU_ASSERT(fails_n("", 0, "missing_field"));
    CU_ASSERT(fails_n(B("\x08\x00"), "missing_field"));
    CU_ASSERT(fails_n(B("\x12\x01r"), "missing_field"));
    CU_ASSERT(fails_n(B("\x08\x08"), "unknown_type"));
    CU_ASSERT(fails_n(B("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), "unknown_type")); /* -1 */
    CU_ASSERT(fails_n(B("\x08\x82\x80\x80\x80\x10"), "unknown_type")); /* 2 + 2^32 */
    /* The last type wins, as in every Protobuf parser. */
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(decode_n(B("\x08\x09\x08\x03"), &d, &err), NB_OK);
    CU_ASSERT_EQUAL(d.type, NB_MSG_LEAVE);
    vt->release(inst, &d);
}

static void test_unknown_fields_skipped(void) {
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(decode_n(B("\x68\x05"                                 /* 13: varint */
                                     "\x08\x01"                                 /* type */
                                     "\x72\x02\xff\xfe"                         /* 14: bytes */
                                     "\x7d\x01\x02\x03\x04"                     /* 15: fixed32 */
                                     "\xa1\x06\x01\x02\x03\x04\x05\x06\x07\x08" /* 100: fixed64 */
                                     "\x22\x02Hi"),
                                   &d, &err),
                          NB_OK);
    CU_ASSERT_EQUAL(d.type, NB_MSG_MESSAGE);
    CU_ASSERT(str_eq(d.content, S("Hi")));
    vt->release(inst, &d);
}

/* A long repeated field: 1023 empty user names (with the type, the 1024
 * fields max_fields allows; one more is too_complex), and one 64 KiB
 * name. */
static void test_large_repeated(void) {
    uint32_t n = 1024, len = 2 + 2 * n;
    uint8_t *p = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p[0] = 0x08;
    p[1] = 0x04;
    for (uint32_t i = 0; i < n; i++) {
        p[2 + 2 * i] = 0x2a;
        p[3 + 2 * i] = 0x00;
    }
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT(fails_n(p, len, "too_complex"));
    CU_ASSERT_EQUAL(decode_n(p, len - 2, &d, &err), NB_OK);
    CU_ASSERT_EQUAL(d.n_users, n - 1);
    vt->release(inst, &d);
    CU_ASSERT(fails_n(p, len - 3, "bad_message")); /* the last one cut */
    free(p);

    uint32_t big = 65536;
    uint8_t *q = malloc(big + 6);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    memcpy(q, "\x08\x04\x2a\x80\x80\x04", 6);
    memset(q + 6, 'u', big);
    CU_ASSERT_EQUAL(decode_n(q, big + 6, &d, &err), NB_OK);
    CU_ASSERT_EQUAL(d.n_users, 1);
    CU_ASSERT_EQUAL(d.users[0].len, big);
    CU_ASSERT(round_trip(&d));
    vt->release(inst, &d);
    q[6 + big / 2] = 0xff;
    CU_ASSERT(fails_n(q, big + 6, "bad_field"));
    free(q);
}

static void test_invalid_utf8_replaced(void) {
    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.content = (nb_str){"a\xff"
                         "b\xe2\x82",
                         5, 0};
    CU_ASSERT(encodes_to(&m, B("\x08\x01\x22\x0b"
                               "a\xef\xbf\xbd"
                               "b\xef\xbf\xbd\xef\xbf\xbd")));
}

static void test_encode_refuses(void) {
    nb_msg m = msg_of(NB_MSG_NONE);
    nb_buf *b = (nb_buf *)&m;
    CU_ASSERT_EQUAL(vt->encode(inst, &m, &b), NB_ERR_INVALID);
    CU_ASSERT_PTR_NULL(b);
    m.type = NB_MSG_TYPE_COUNT;
    CU_ASSERT_EQUAL(vt->encode(inst, &m, &b), NB_ERR_INVALID);
}

static void test_release(void) {
    nb_msg z = msg_of(NB_MSG_NONE);
    vt->release(inst, &z);
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(decode_n(B("\x08\x04\x2a\x01"
                                     "a\x5a\x00"),
                                   &d, &err),
                          NB_OK);
    CU_ASSERT_PTR_NOT_NULL(d.epoch.ptr);
    vt->release(inst, &d);
    CU_ASSERT_PTR_NULL(d.codec_data);
    CU_ASSERT_PTR_NULL(d.users);
    CU_ASSERT_PTR_NULL(d.epoch.ptr);
    vt->release(inst, &d);
}

static void test_no_leaks(void) {
    CU_ASSERT_EQUAL(buf_live_count(), 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH/codec-protobuf.so\n", argv[0]);
        return 2;
    }
    plugin_path = argv[1];
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("codec-protobuf", suite_init, suite_clean);
    if (!s)
        return 2;
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"descriptor", test_descriptor},
        {"encode exact bytes", test_encode_exact},
        {"round trip", test_round_trip},
        {"same bytes as protobuf-c", test_matches_protobuf_c},
        {"bad_message", test_bad_message},
        {"bad_field", test_bad_field},
        {"missing_field and unknown_type", test_missing_and_unknown},
        {"unknown fields skipped", test_unknown_fields_skipped},
        {"long repeated field", test_large_repeated},
        {"invalid UTF-8 replaced", test_invalid_utf8_replaced},
        {"encode refuses bad types", test_encode_refuses},
        {"release", test_release},
        {"no leaks", test_no_leaks},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return failed || ran == 0 ? 1 : 0;
}
