/*
 * Unit tests of the codec-json plugin, loaded the way the core loads it:
 * dlopen() of the built module (path in argv[1]), the one exported entry,
 * create() with a host table of our own. Buffers are the core's (buf.c is
 * compiled in), so headroom and leaks are checked against the real thing.
 *
 * Inputs are copied into exact-size heap blocks without a NUL, so that
 * under ASan a read past the frame is caught.
 */
#include "buf.h"
#include "codec_fixture.h"

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
    /* The frame is gone once decode returns; the message must not need it. */
    free(copy);
    return rc;
}

static int32_t decode_s(const char *json, nb_msg *out, nb_decode_error *err) {
    return decode_n(json, (uint32_t)strlen(json), out, err);
}

/* Encode and check the buffer contract; returns the bytes NUL-terminated
 * (malloc'd) or NULL. */
static char *encode_s(const nb_msg *m, uint32_t *len_out) {
    nb_buf *b = NULL;
    if (vt->encode(inst, m, &b) != NB_OK || !b)
        return NULL;
    int ok =
        b->headroom >= NB_BUF_HEADROOM && buf_refcount(b) == 1 && b->struct_size == sizeof(nb_buf);
    /* Touch every byte the buffer claims, so ASan checks len and the rooms. */
    memset(b->data - b->headroom, 0xBB, b->headroom);
    char *s = malloc((size_t)b->len + 1);
    if (s) {
        memcpy(s, b->data, b->len);
        s[b->len] = '\0';
    }
    memset(b->data + b->len, 0xAA, b->tailroom);
    if (len_out)
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

static int msg_eq(const nb_msg *a, const nb_msg *b) {
    if (a->type != b->type || a->ts != b->ts || !str_eq(a->room, b->room) ||
        !str_eq(a->sender, b->sender) || !str_eq(a->content, b->content) || !str_eq(a->id, b->id) ||
        !str_eq(a->code, b->code) || a->seq != b->seq || a->flags != b->flags ||
        ((a->flags & NB_MSG_F_SINCE) && a->since != b->since) || !str_eq(a->epoch, b->epoch))
        return 0;
    if (!a->users || !b->users)
        return a->users == b->users;
    if (a->n_users != b->n_users)
        return 0;
    for (uint32_t i = 0; i < a->n_users; i++)
        if (!str_eq(a->users[i], b->users[i]))
            return 0;
    return 1;
}

/* decode(encode(m)) == m */
static int round_trip(const nb_msg *m) {
    uint32_t len = 0;
    char *json = encode_s(m, &len);
    if (!json)
        return 0;
    nb_msg back;
    nb_decode_error err;
    int ok = decode_n(json, len, &back, &err) == NB_OK && msg_eq(m, &back);
    if (!ok)
        fprintf(stderr, "\nround trip failed for %s (%s: %s)\n", json, err.code, err.reason);
    vt->release(inst, &back);
    free(json);
    return ok;
}

/* encode(m) is exactly `want` */
static int encodes_to(const nb_msg *m, const char *want) {
    char *got = encode_s(m, NULL);
    int ok = got && strcmp(got, want) == 0;
    if (!ok)
        fprintf(stderr, "\nencoded %s\n   want %s\n", got ? got : "(failed)", want);
    free(got);
    return ok;
}

/* decode fails with `code`, a reason fits its array, *out is untouched. */
static int fails_n(const void *data, uint32_t len, const char *code) {
    nb_msg m;
    nb_decode_error err;
    int32_t rc = decode_n(data, len, &m, &err);
    int ok = rc == NB_ERR_INVALID && strcmp(err.code, code) == 0 && err.reason[0] != '\0' &&
             memchr(err.reason, '\0', sizeof err.reason) != NULL && m.codec_data == NULL &&
             m.type == NB_MSG_NONE && m.room.ptr == NULL && m.users == NULL;
    if (!ok)
        fprintf(stderr, "\ninput %.*s: rc %d, code \"%s\" (want \"%s\"), reason \"%s\"\n",
                (int)(len > 200 ? 200 : len), (const char *)data, rc, err.code, code, err.reason);
    if (rc == NB_OK)
        vt->release(inst, &m);
    return ok;
}

static int fails(const char *json, const char *code) {
    return fails_n(json, (uint32_t)strlen(json), code);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_descriptor(void) {
    CU_ASSERT_EQUAL(desc->struct_size, sizeof(nb_plugin_desc));
    CU_ASSERT_EQUAL(desc->abi_major, NB_ABI_MAJOR);
    CU_ASSERT_EQUAL(desc->abi_minor, NB_ABI_MINOR);
    CU_ASSERT_STRING_EQUAL(desc->name, "codec-json");
    CU_ASSERT_PTR_NOT_NULL(desc->version);
    CU_ASSERT_PTR_NOT_NULL(desc->summary);
    CU_ASSERT_EQUAL(vt->struct_size, sizeof(nb_codec_vtable));
    CU_ASSERT_EQUAL(vt->frame_kind, NB_FRAME_TEXT);
    CU_ASSERT_STRING_EQUAL(vt->subprotocol, "nebula.json.v1");
    CU_ASSERT_PTR_NOT_NULL(vt->decode);
    CU_ASSERT_PTR_NOT_NULL(vt->release);
    CU_ASSERT_PTR_NOT_NULL(vt->encode);
    CU_ASSERT_STRING_EQUAL(last_log, ""); /* create() had nothing to complain about */
}

static void test_encode_exact(void) {
    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.room = S("general");
    m.sender = S("alice");
    m.content = S("Hi");
    m.id = S("1");
    m.ts = 1700000000000;
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"room\":\"general\",\"sender\":\"alice\","
                             "\"content\":\"Hi\",\"id\":\"1\",\"ts\":1700000000000}"));

    nb_str users[] = {S("alice"), S("bob")};
    nb_msg p = msg_of(NB_MSG_PRESENCE);
    p.room = S("r");
    p.users = users;
    p.n_users = 2;
    p.ts = 5;
    CU_ASSERT(encodes_to(&p, "{\"type\":\"presence\",\"room\":\"r\",\"users\":[\"alice\",\"bob\"],"
                             "\"ts\":5}"));

    nb_msg e = msg_of(NB_MSG_ERROR);
    e.room = S("dev");
    e.content = S("you are not in this room");
    e.code = S("not_joined");
    CU_ASSERT(encodes_to(&e, "{\"type\":\"error\",\"room\":\"dev\",\"content\":\"you are not in "
                             "this room\",\"code\":\"not_joined\"}"));

    nb_msg w = msg_of(NB_MSG_WELCOME);
    CU_ASSERT(encodes_to(&w, "{\"type\":\"welcome\"}"));
}

static void test_encode_headroom(void) {
    nb_msg m = msg_of(NB_MSG_JOIN);
    m.room = S("general");
    nb_buf *b = NULL;
    CU_ASSERT_EQUAL(vt->encode(inst, &m, &b), NB_OK);
    CU_ASSERT_PTR_NOT_NULL(b);
    if (!b)
        return;
    CU_ASSERT(b->headroom >= NB_BUF_HEADROOM);
    CU_ASSERT_EQUAL(b->len, strlen("{\"type\":\"join\",\"room\":\"general\"}"));
    CU_ASSERT_EQUAL(buf_refcount(b), 1);
    buf_unref(b);
}

static void test_round_trip_every_type(void) {
    static const nb_str users[] = {{"alice", 5, 0}, {"bob", 3, 0}, {"zoë", 4, 0}};
    nb_msg m;

    m = msg_of(NB_MSG_MESSAGE);
    m.room = S("general");
    m.sender = S("alice");
    m.content = S("Hello, world");
    m.id = S("42");
    m.ts = 1763880000000;
    CU_ASSERT(round_trip(&m));

    m = msg_of(NB_MSG_MESSAGE); /* what a client sends */
    m.room = S("general");
    m.content = S("Hi");
    CU_ASSERT(round_trip(&m));

    m = msg_of(NB_MSG_JOIN);
    m.room = S("dev");
    m.sender = S("bob");
    m.ts = 1;
    CU_ASSERT(round_trip(&m));

    m = msg_of(NB_MSG_LEAVE);
    m.room = S("dev");
    m.sender = S("bob");
    m.ts = 2;
    CU_ASSERT(round_trip(&m));

    m = msg_of(NB_MSG_PRESENCE);
    m.room = S("dev");
    m.users = users;
    m.n_users = 3;
    m.ts = 3;
    CU_ASSERT(round_trip(&m));

    m = msg_of(NB_MSG_HISTORY);
    m.room = S("general");
    m.sender = S("carol");
    m.content = S("earlier");
    m.id = S("7");
    m.ts = 1700000000000;
    CU_ASSERT(round_trip(&m));

    m = msg_of(NB_MSG_ERROR);
    m.code = S("bad_room");
    m.content = S("the room name is invalid");
    m.room = S("bad room!");
    CU_ASSERT(round_trip(&m));

    m = msg_of(NB_MSG_WELCOME);
    m.sender = S("alice");
    m.ts = 1700000000000;
    CU_ASSERT(round_trip(&m));
}

static void test_escapes(void) {
    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.content = S("q\"b\\s/\n\r\t\x01\x1f\x7f"
                  "end");
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"content\":\"q\\\"b\\\\s/\\n\\r\\t\\u0001"
                             "\\u001f\x7f"
                             "end\"}"));
    CU_ASSERT(round_trip(&m));

    /* Every ASCII byte but NUL survives the trip. */
    char all[127];
    for (int i = 0; i < 127; i++)
        all[i] = (char)(i + 1);
    m.content = (nb_str){all, sizeof all, 0};
    m.room = S("\"\\");
    m.sender = S("\b\f");
    CU_ASSERT(round_trip(&m));

    /* NUL is written as \u0000 (the decoder then refuses it: test_errors). */
    m = msg_of(NB_MSG_MESSAGE);
    m.content = (nb_str){"a\0b", 3, 0};
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"content\":\"a\\u0000b\"}"));

    /* Escapes on input, including the short forms we never write. */
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(
        decode_s("{\"type\":\"message\",\"content\":\"\\b\\f\\/\\u0041\\\\u0000\"}", &d, &err),
        NB_OK);
    CU_ASSERT(str_eq(d.content, S("\b\f/A\\u0000"))); /* an escaped backslash, then text */
    vt->release(inst, &d);
}

static void test_unicode(void) {
    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.room = S("général");
    m.sender = S("日本語");
    m.content = S("héllo 😀 \xe2\x80\xa8 \xef\xbf\xbf \xf4\x8f\xbf\xbf");
    CU_ASSERT(round_trip(&m));
    char *json = encode_s(&m, NULL);
    CU_ASSERT_PTR_NOT_NULL(json);
    if (!json)
        return;
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "héllo 😀")); /* kept as UTF-8, not escaped */
    CU_ASSERT_PTR_NULL(strstr(json, "\\u"));
    free(json);

    /* \u escapes, surrogate pairs included, decode to UTF-8. */
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(
        decode_s("{\"type\":\"message\",\"content\":\"\\u00e9\\u65E5\\ud83d\\ude00\"}", &d, &err),
        NB_OK);
    CU_ASSERT(str_eq(d.content, S("é日😀")));
    vt->release(inst, &d);
    CU_ASSERT(fails("{\"type\":\"message\",\"content\":\"\\ud800\"}", "bad_json"));
    CU_ASSERT(fails("{\"type\":\"message\",\"content\":\"\\udc00x\"}", "bad_json"));
    /* cJSON alone would read a bad \u escape as U+0000. */
    CU_ASSERT(fails("{\"type\":\"message\",\"content\":\"\\u12G4\"}", "bad_json"));
    CU_ASSERT(fails("{\"type\":\"message\",\"content\":\"\\ud83d\\uzzzz\"}", "bad_json"));
    CU_ASSERT(fails("{\"type\":\"message\",\"content\":\"\\u\"}", "bad_json"));
    CU_ASSERT(fails("{\"type\":\"message\",\"content\":\"\\u00e", "bad_json"));
}

static void test_invalid_utf8_replaced(void) {
    /* Text frames must be UTF-8: bytes that are not become U+FFFD, one each. */
    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.content = S("a\xff"
                  "b\xc3");
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"content\":\"a\xef\xbf\xbd"
                             "b\xef\xbf\xbd\"}"));
    m.content = S("\xed\xa0\x80"); /* a surrogate */
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"content\":\"\xef\xbf\xbd\xef\xbf\xbd"
                             "\xef\xbf\xbd\"}"));
    m.content = S("\xc0\xaf"); /* overlong '/' */
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"content\":\"\xef\xbf\xbd\xef\xbf\xbd\"}"));
    m.content = S("\xf4\x90\x80\x80"); /* above U+10FFFF */
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"content\":\"\xef\xbf\xbd\xef\xbf\xbd"
                             "\xef\xbf\xbd\xef\xbf\xbd\"}"));
    m.content = S("\xe6\x97"); /* cut short at the end */
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"content\":\"\xef\xbf\xbd\xef\xbf\xbd\"}"));
}

static void test_empty_vs_absent(void) {
    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.room = EMPTY;
    m.content = EMPTY;
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"room\":\"\",\"content\":\"\"}"));
    CU_ASSERT(round_trip(&m));

    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(decode_s("{\"type\":\"message\",\"room\":\"\"}", &d, &err), NB_OK);
    CU_ASSERT_PTR_NOT_NULL(d.room.ptr);
    CU_ASSERT_EQUAL(d.room.len, 0);
    CU_ASSERT_PTR_NULL(d.content.ptr);
    CU_ASSERT_PTR_NULL(d.sender.ptr);
    CU_ASSERT_PTR_NULL(d.id.ptr);
    CU_ASSERT_PTR_NULL(d.code.ptr);
    CU_ASSERT_PTR_NULL(d.users);
    CU_ASSERT_EQUAL(d.ts, 0);
    vt->release(inst, &d);

    /* An empty presence list is still a list. */
    nb_msg p = msg_of(NB_MSG_PRESENCE);
    p.room = S("r");
    p.users = (const nb_str *)&p; /* any non-NULL pointer: n_users is 0 */
    CU_ASSERT(encodes_to(&p, "{\"type\":\"presence\",\"room\":\"r\",\"users\":[]}"));
    CU_ASSERT_EQUAL_FATAL(decode_s("{\"type\":\"presence\",\"users\":[]}", &d, &err), NB_OK);
    CU_ASSERT_PTR_NOT_NULL(d.users);
    CU_ASSERT_EQUAL(d.n_users, 0);
    vt->release(inst, &d);

    /* ts 0 means absent: not written, and read back as 0. */
    m = msg_of(NB_MSG_JOIN);
    m.ts = 0;
    CU_ASSERT(encodes_to(&m, "{\"type\":\"join\"}"));
    CU_ASSERT_EQUAL_FATAL(decode_s("{\"type\":\"join\",\"ts\":0}", &d, &err), NB_OK);
    CU_ASSERT_EQUAL(d.ts, 0);
    vt->release(inst, &d);
}

static void test_users(void) {
    static const nb_str users[] = {{"", 0, 0}, {"a,b", 3, 0}, {"\"q\"", 3, 0}, {"ünï", 5, 0}};
    nb_msg m = msg_of(NB_MSG_PRESENCE);
    m.room = S("general");
    m.users = users;
    m.n_users = 4;
    m.ts = 1700000000001;
    CU_ASSERT(round_trip(&m));

    char big_names[1000][8];
    nb_str big[1000];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(big_names[i], sizeof big_names[i], "u%04d", i);
        big[i] = (nb_str){big_names[i], (uint32_t)n, 0};
    }
    m.users = big;
    m.n_users = 1000;
    CU_ASSERT(round_trip(&m));

    /* A NULL name in the list is written as "" rather than crashing. */
    static const nb_str holes[] = {{NULL, 0, 0}, {"x", 1, 0}};
    nb_msg h = msg_of(NB_MSG_PRESENCE);
    h.users = holes;
    h.n_users = 2;
    CU_ASSERT(encodes_to(&h, "{\"type\":\"presence\",\"users\":[\"\",\"x\"]}"));
}

static void test_ts(void) {
    static const int64_t good[] = {1,
                                   -1,
                                   1700000000000,
                                   4102444800000, /* 2100 */
                                   9007199254740992,
                                   -9007199254740992};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        nb_msg m = msg_of(NB_MSG_WELCOME);
        m.ts = good[i];
        CU_ASSERT(round_trip(&m));
    }
    nb_msg m = msg_of(NB_MSG_WELCOME);
    m.ts = INT64_MAX;
    CU_ASSERT(encodes_to(&m, "{\"type\":\"welcome\",\"ts\":9223372036854775807}"));
    m.ts = INT64_MIN;
    CU_ASSERT(encodes_to(&m, "{\"type\":\"welcome\",\"ts\":-9223372036854775808}"));

    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(decode_s("{\"type\":\"welcome\",\"ts\":1.7e12}", &d, &err), NB_OK);
    CU_ASSERT_EQUAL(d.ts, 1700000000000);
    vt->release(inst, &d);
    CU_ASSERT_EQUAL_FATAL(decode_s("{\"type\":\"welcome\",\"ts\":-0}", &d, &err), NB_OK);
    CU_ASSERT_EQUAL(d.ts, 0);
    vt->release(inst, &d);
}

/* ABI 1.1: seq, since, epoch and incomplete. */
static void test_order_fields(void) {
    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.room = S("general");
    m.sender = S("alice");
    m.content = S("Hi");
    m.id = S("1");
    m.seq = 17;
    m.ts = 1700000000000;
    CU_ASSERT(encodes_to(&m, "{\"type\":\"message\",\"room\":\"general\",\"sender\":\"alice\","
                             "\"content\":\"Hi\",\"id\":\"1\",\"seq\":17,\"ts\":1700000000000}"));
    CU_ASSERT(round_trip(&m));

    nb_msg j = msg_of(NB_MSG_JOIN); /* the joiner's own join event */
    j.room = S("general");
    j.sender = S("bob");
    j.seq = 40;
    j.epoch = S("e1");
    j.flags = NB_MSG_F_INCOMPLETE;
    CU_ASSERT(encodes_to(&j, "{\"type\":\"join\",\"room\":\"general\",\"sender\":\"bob\","
                             "\"seq\":40,\"epoch\":\"e1\",\"incomplete\":true}"));
    CU_ASSERT(round_trip(&j));

    nb_msg c = msg_of(NB_MSG_JOIN); /* a client's join with since = 0 */
    c.room = S("general");
    c.flags = NB_MSG_F_SINCE;
    c.epoch = EMPTY;
    CU_ASSERT(encodes_to(&c, "{\"type\":\"join\",\"room\":\"general\",\"since\":0,"
                             "\"epoch\":\"\"}"));
    CU_ASSERT(round_trip(&c));
    c.since = 9007199254740992; /* 2^53 */
    c.seq = 9007199254740992;
    CU_ASSERT(round_trip(&c));

    /* since without the flag is not sent; neither is a zero seq. */
    nb_msg n = msg_of(NB_MSG_JOIN);
    n.since = 5;
    CU_ASSERT(encodes_to(&n, "{\"type\":\"join\"}"));

    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(decode_s("{\"type\":\"join\",\"since\":12,\"seq\":0,"
                                   "\"incomplete\":false,\"epoch\":\"x\"}",
                                   &d, &err),
                          NB_OK);
    CU_ASSERT_EQUAL(d.since, 12);
    CU_ASSERT_EQUAL(d.seq, 0);
    CU_ASSERT_EQUAL(d.flags, NB_MSG_F_SINCE);
    CU_ASSERT(str_eq(d.epoch, S("x")));
    vt->release(inst, &d);
    CU_ASSERT_PTR_NULL(d.epoch.ptr);
    CU_ASSERT_EQUAL_FATAL(
        decode_s("{\"type\":\"join\",\"since\":1.2e3,\"incomplete\":true}", &d, &err), NB_OK);
    CU_ASSERT_EQUAL(d.since, 1200);
    CU_ASSERT_EQUAL(d.flags, NB_MSG_F_SINCE | NB_MSG_F_INCOMPLETE);
    CU_ASSERT_PTR_NULL(d.epoch.ptr);
    vt->release(inst, &d);
    CU_ASSERT_EQUAL_FATAL(decode_s("{\"type\":\"join\"}", &d, &err), NB_OK);
    CU_ASSERT_EQUAL(d.flags, 0);
    CU_ASSERT_EQUAL(d.seq, 0);
    vt->release(inst, &d);
}

static void test_ignored_and_whitespace(void) {
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(decode_s(" \t\r\n{ \"type\" : \"message\" ,\n\"extra\":{\"a\":[1,2,{"
                                   "\"b\":null}]},\"extra\":1,\"Room\":\"x\",\"content\":\"c\" }"
                                   " \n\r\t",
                                   &d, &err),
                          NB_OK);
    CU_ASSERT_EQUAL(d.type, NB_MSG_MESSAGE);
    CU_ASSERT_PTR_NULL(d.room.ptr); /* keys are case-sensitive */
    CU_ASSERT(str_eq(d.content, S("c")));
    vt->release(inst, &d);

    /* sender, id and ts from a client are decoded; the core ignores them. */
    CU_ASSERT_EQUAL_FATAL(decode_s("{\"type\":\"message\",\"sender\":\"mallory\",\"id\":\"x\","
                                   "\"ts\":5,\"code\":\"c\",\"users\":[\"u\"]}",
                                   &d, &err),
                          NB_OK);
    CU_ASSERT(str_eq(d.sender, S("mallory")));
    CU_ASSERT(str_eq(d.id, S("x")));
    CU_ASSERT(str_eq(d.code, S("c")));
    CU_ASSERT_EQUAL(d.ts, 5);
    CU_ASSERT_EQUAL(d.n_users, 1);
    vt->release(inst, &d);

    /* Nesting within max_depth (8, the envelope being the first level)
     * is fine in an unknown field. */
    char deep[2 * 7 + 64];
    int n = snprintf(deep, sizeof deep, "{\"type\":\"join\",\"x\":");
    for (int i = 0; i < 7; i++)
        deep[n++] = '[';
    for (int i = 0; i < 7; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    CU_ASSERT_EQUAL(decode_n(deep, (uint32_t)n, &d, &err), NB_OK);
    vt->release(inst, &d);
}

/* head, depth '[', depth ']', tail; NUL-terminated, malloc'd. */
static char *nested(const char *head, size_t depth, const char *tail) {
    size_t hl = strlen(head), tl = strlen(tail);
    char *s = malloc(hl + 2 * depth + tl + 1);
    if (!s)
        return NULL;
    char *p = s;
    for (size_t i = 0; i < hl; i++)
        *p++ = head[i];
    for (size_t i = 0; i < depth; i++)
        *p++ = '[';
    for (size_t i = 0; i < depth; i++)
        *p++ = ']';
    for (size_t i = 0; i <= tl; i++)
        *p++ = tail[i];
    return s;
}

static void test_bad_json(void) {
    static const char *const cases[] = {
        "",
        " ",
        "{",
        "}",
        "{\"type\":\"join\"",
        "{\"type\":\"jo",
        "{\"type\":",
        "{\"type\":\"join\",}",
        "{\"type\":\"join\"}x",
        "{\"type\":\"join\"} {}",
        "{\"type\":\"join\"}}",
        "{\"type\":'join'}",
        "{type:\"join\"}",
        "{\"type\":\"join\" \"room\":\"a\"}",
        "[{\"type\":\"join\"}]",
        "[1,2]",
        "42",
        "-1.5e3",
        "\"join\"",
        "null",
        "true",
        "{\"type\":\"join\",\"type\":\"leave\"}",             /* duplicate known key */
        "{\"type\":\"join\",\"room\":\"a\",\"room\":\"b\"}",  /* even the same type */
        "{\"type\":\"join\",\"users\":[],\"users\":[]}",      /* and the same value */
        "{\"type\":\"message\",\"content\":\"line\nbreak\"}", /* raw control in a string */
        "{\"type\":\"message\",\"content\":\"tab\there\"}",   /* raw tab in a string */
        "{\x01\"type\":\"join\"}",                            /* control byte as space */
        "{\"type\":\"join\"}\x0c",                            /* form feed is not space */
        "{\"type\":\"message\",\"content\":\"x\\q\"}",        /* bad escape */
        "{\"type\":\"message\",\"content\":\"x\\",            /* ends on a backslash */
        "{\"type\":\"message\",\"content\":\"\\u12\"}",       /* short \u */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CU_ASSERT(fails(cases[i], "bad_json"));

    /* Raw NUL bytes: cJSON would read them as whitespace or end of string. */
    static const char nul_in_string[] = "{\"type\":\"join\",\"room\":\"a\0b\"}";
    CU_ASSERT(fails_n(nul_in_string, sizeof nul_in_string - 1, "bad_json"));
    static const char nul_after[] = "{\"type\":\"join\"}\0garbage";
    CU_ASSERT(fails_n(nul_after, sizeof nul_after - 1, "bad_json"));
    static const char nul_before[] = "\0{\"type\":\"join\"}";
    CU_ASSERT(fails_n(nul_before, sizeof nul_before - 1, "bad_json"));

    /* Nesting past cJSON's limit (1000), at the top and inside a field:
     * refused by max_depth before the parser runs. */
    char *s = nested("", 5000, "");
    CU_ASSERT(s && fails(s, "too_complex"));
    free(s);
    s = nested("{\"type\":\"join\",\"x\":", 2000, "}");
    CU_ASSERT(s && fails(s, "too_complex"));
    free(s);

    /* The reason says where. */
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL(decode_s("{\"type\":\"join\"}x", &d, &err), NB_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.reason, "byte 15"));
    CU_ASSERT_EQUAL(decode_s("[1]", &d, &err), NB_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.reason, "array"));
}

/* max_depth (8) and max_elements (1024), counted outside strings only. */
static void test_too_complex(void) {
    char *s = nested("{\"type\":\"join\",\"x\":", 8, "}"); /* 9 levels */
    CU_ASSERT(s && fails(s, "too_complex"));
    free(s);
    /* 1024 values in all pass; one more does not. */
    size_t cap = 16 + 2 * 1100 + 64;
    char *a = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    for (int extra = 0; extra < 2; extra++) {
        /* the type member, then 1023 (or 1024) array values */
        int n = snprintf(a, cap, "{\"type\":\"join\",\"x\":[");
        for (int i = 0; i < 1022 + extra; i++)
            n += snprintf(a + n, cap - (size_t)n, "0,");
        n += snprintf(a + n, cap - (size_t)n, "0]}");
        nb_msg d;
        nb_decode_error err;
        int32_t rc = decode_s(a, &d, &err);
        if (extra == 0) {
            CU_ASSERT_EQUAL(rc, NB_OK);
            if (rc == NB_OK)
                vt->release(inst, &d);
        } else {
            CU_ASSERT_EQUAL(rc, NB_ERR_INVALID);
            CU_ASSERT_STRING_EQUAL(err.code, "too_complex");
        }
    }
    free(a);
    /* Brackets and commas inside a string cost nothing and count nothing. */
    static const char quoted[] = "{\"type\":\"message\",\"content\":\"[[[[[[[[[[,,,,]]]]\"}";
    CU_ASSERT_FALSE(fails(quoted, "too_complex"));
}

static void test_bad_field(void) {
    static const char *const cases[] = {
        "{\"type\":5}",
        "{\"type\":null}",
        "{\"type\":[\"join\"]}",
        "{\"type\":{}}",
        "{\"type\":true}",
        "{\"type\":\"join\",\"room\":5}",
        "{\"type\":\"join\",\"room\":true}",
        "{\"type\":\"join\",\"room\":null}",
        "{\"type\":\"message\",\"content\":{}}",
        "{\"type\":\"message\",\"content\":[\"Hi\"]}",
        "{\"type\":\"message\",\"sender\":[]}",
        "{\"type\":\"message\",\"id\":1}",
        "{\"type\":\"error\",\"code\":false}",
        "{\"type\":\"welcome\",\"ts\":\"1700000000000\"}",
        "{\"type\":\"welcome\",\"ts\":null}",
        "{\"type\":\"welcome\",\"ts\":1.5}",
        "{\"type\":\"welcome\",\"ts\":1e999}",
        "{\"type\":\"welcome\",\"ts\":-1e999}",
        "{\"type\":\"welcome\",\"ts\":9007199254740994}",
        "{\"type\":\"welcome\",\"ts\":1e19}",
        "{\"type\":\"presence\",\"users\":\"alice\"}",
        "{\"type\":\"presence\",\"users\":{}}",
        "{\"type\":\"presence\",\"users\":null}",
        "{\"type\":\"presence\",\"users\":[1]}",
        "{\"type\":\"presence\",\"users\":[\"a\",null]}",
        "{\"type\":\"presence\",\"users\":[[\"a\"]]}",
        "{\"type\":\"message\",\"seq\":\"1\"}",
        "{\"type\":\"message\",\"seq\":-1}",
        "{\"type\":\"message\",\"seq\":1.5}",
        "{\"type\":\"message\",\"seq\":9007199254740994}",
        "{\"type\":\"message\",\"seq\":1e999}",
        "{\"type\":\"message\",\"seq\":null}",
        "{\"type\":\"join\",\"since\":\"0\"}",
        "{\"type\":\"join\",\"since\":-1}",
        "{\"type\":\"join\",\"since\":0.5}",
        "{\"type\":\"join\",\"since\":true}",
        "{\"type\":\"join\",\"since\":null}",
        "{\"type\":\"join\",\"since\":1e19}",
        "{\"type\":\"join\",\"epoch\":1}",
        "{\"type\":\"join\",\"epoch\":null}",
        "{\"type\":\"join\",\"epoch\":\"a\\u0000\"}",
        "{\"type\":\"join\",\"incomplete\":1}",
        "{\"type\":\"join\",\"incomplete\":\"true\"}",
        "{\"type\":\"join\",\"incomplete\":null}",
        /* \u0000 anywhere in a string: value, key, or the type itself */
        "{\"type\":\"message\",\"content\":\"a\\u0000b\"}",
        "{\"type\":\"message\",\"room\":\"general\\u0000\"}",
        "{\"type\":\"join\",\"users\":[\"\\u0000\"]}",
        "{\"ty\\u0000pe\":\"join\",\"type\":\"leave\"}",
        "{\"type\":\"join\\u0000x\"}",
        "{\"type\":\"join\",\"ignored\":\"\\u0000\"}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CU_ASSERT(fails(cases[i], "bad_field"));
}

static void test_missing_and_unknown(void) {
    static const char *const missing[] = {
        "{}",
        "{\"room\":\"a\"}",
        "{\"Type\":\"join\"}",
        "{\"content\":\"x\",\"users\":[]}",
        "{\"room\":5}", /* the type is looked at first */
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        CU_ASSERT(fails(missing[i], "missing_field"));

    static const char *const unknown[] = {
        "{\"type\":\"\"}",      "{\"type\":\"JOIN\"}",
        "{\"type\":\"bogus\"}", "{\"type\":\" join\"}",
        "{\"type\":\"none\"}",  "{\"type\":\"messages\"}",
        "{\"type\":\"mess\"}",  "{\"type\":\"bogus\",\"room\":5}",
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CU_ASSERT(fails(unknown[i], "unknown_type"));

    /* The name is compared after unescaping. */
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL(decode_s("{\"type\":\"\\u006aoin\"}", &d, &err), NB_OK);
    CU_ASSERT_EQUAL(d.type, NB_MSG_JOIN);
    vt->release(inst, &d);
}

static void test_large_message(void) {
    /* Mostly escapes, so the first estimate is far too small and the
     * buffer must grow several times. */
    uint32_t n = 200000;
    char *big = malloc(n);
    CU_ASSERT_PTR_NOT_NULL(big);
    if (!big)
        return;
    for (uint32_t i = 0; i < n; i++)
        big[i] = "a\"\n\x01\\"[i % 5];
    nb_msg m = msg_of(NB_MSG_MESSAGE);
    m.room = S("general");
    m.content = (nb_str){big, n, 0};
    CU_ASSERT(round_trip(&m));
    free(big);
}

static void test_encode_refuses(void) {
    int64_t live = buf_live_count();
    nb_msg m = msg_of(NB_MSG_NONE);
    nb_buf *b = (nb_buf *)&m;
    CU_ASSERT_EQUAL(vt->encode(inst, &m, &b), NB_ERR_INVALID);
    CU_ASSERT_PTR_NULL(b);
    m.type = NB_MSG_TYPE_COUNT;
    CU_ASSERT_EQUAL(vt->encode(inst, &m, &b), NB_ERR_INVALID);
    CU_ASSERT_EQUAL(buf_live_count(), live);
}

static void test_release(void) {
    nb_msg z = msg_of(NB_MSG_NONE);
    vt->release(inst, &z); /* a zeroed message */
    nb_msg d;
    nb_decode_error err;
    CU_ASSERT_EQUAL_FATAL(decode_s("{\"type\":\"presence\",\"users\":[\"a\"]}", &d, &err), NB_OK);
    CU_ASSERT_PTR_NOT_NULL(d.codec_data);
    vt->release(inst, &d);
    CU_ASSERT_PTR_NULL(d.codec_data);
    CU_ASSERT_PTR_NULL(d.users);
    vt->release(inst, &d); /* twice is harmless */
}

/* One instance, many threads, as with several I/O threads. The threads
 * report through their struct: CUnit's asserts are not thread-safe. */
typedef struct hammer_arg {
    unsigned id;
    int failed;
} hammer_arg;

static void *hammer(void *arg) {
    hammer_arg *a = arg;
    char content[32];
    for (int i = 0; i < 2000 && !a->failed; i++) {
        int n = snprintf(content, sizeof content, "t%u \"%d\"", a->id, i);
        nb_msg m = msg_of(NB_MSG_MESSAGE);
        m.room = S("general");
        m.content = (nb_str){content, (uint32_t)n, 0};
        m.ts = i + 1;
        a->failed = !round_trip(&m) || !fails("{\"type\":5}", "bad_field");
    }
    return NULL;
}

static void test_threads(void) {
    pthread_t t[4];
    hammer_arg args[4];
    unsigned started = 0;
    for (unsigned i = 0; i < 4; i++) {
        args[i] = (hammer_arg){i, 0};
        if (pthread_create(&t[i], NULL, hammer, &args[i]) == 0)
            started++;
        else
            break;
    }
    CU_ASSERT_EQUAL(started, 4);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(args[i].failed, 0);
    }
}

static void test_no_leaks(void) {
    CU_ASSERT_EQUAL(buf_live_count(), 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH/codec-json.so\n", argv[0]);
        return 2;
    }
    plugin_path = argv[1];
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("codec-json", suite_init, suite_clean);
    if (!s)
        return 2;
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"descriptor", test_descriptor},
        {"encode exact bytes", test_encode_exact},
        {"encode headroom", test_encode_headroom},
        {"round trip of every type", test_round_trip_every_type},
        {"escapes", test_escapes},
        {"unicode", test_unicode},
        {"invalid UTF-8 replaced", test_invalid_utf8_replaced},
        {"empty vs absent", test_empty_vs_absent},
        {"users", test_users},
        {"ts", test_ts},
        {"seq, since, epoch, incomplete", test_order_fields},
        {"ignored fields and whitespace", test_ignored_and_whitespace},
        {"bad_json", test_bad_json},
        {"bad_field", test_bad_field},
        {"too_complex", test_too_complex},
        {"missing_field and unknown_type", test_missing_and_unknown},
        {"large message", test_large_message},
        {"encode refuses bad types", test_encode_refuses},
        {"release", test_release},
        {"threads", test_threads},
        {"no leaks", test_no_leaks},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    /* A suite whose init failed runs nothing: count that as a failure. */
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return failed || ran == 0 ? 1 : 0;
}
