/*
 * codec_upper.c — an example third-party Nebula plugin, built out of tree
 * (see Makefile and README.md next to it).
 *
 * "codec-upper" speaks subprotocol example.upper.v1: the same JSON envelope
 * as nebula.json.v1, except that it shouts — every `content` it encodes is
 * upper-cased (ASCII letters only, so UTF-8 text stays valid). A client of
 * this codec and a client of codec-json can share a room: the core encodes
 * each broadcast once per codec, so each sees its own rendering.
 *
 * To stay short, the decoder reads flat JSON objects only: string values,
 * plus numbers, true, false and null for keys it ignores. Nested values
 * are refused with bad_json. It depends on nothing but the Nebula headers.
 *
 * Config, in the [codec-upper] section of nebula.conf:
 *     upper_sender = true    # shout the sender's name too (default false)
 */
#include <nebula/nebula.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct upper {
    const nb_host *host;
    int32_t upper_sender;
} upper;

static const char *const type_names[] = NB_MSG_TYPE_NAMES;

/* ---- decode: a flat JSON object into an nb_msg -------------------------- */

typedef struct parser {
    const uint8_t *p, *end;
    char *out; /* unescaped strings go here; never longer than the input */
} parser;

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const uint8_t *s, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* Read a JSON string at ps->p (the opening quote) into ps->out. Escapes
 * never produce more bytes than they take, so the output block, as large
 * as the input, always has room. */
static int read_string(parser *ps, nb_str *s) {
    if (ps->p >= ps->end || *ps->p != '"')
        return -1;
    ps->p++;
    char *start = ps->out;
    while (ps->p < ps->end && *ps->p != '"') {
        uint8_t c = *ps->p++;
        if (c < 0x20)
            return -1; /* raw control characters are not JSON */
        if (c != '\\') {
            *ps->out++ = (char)c;
            continue;
        }
        if (ps->p >= ps->end)
            return -1;
        c = *ps->p++;
        int simple = c == '"' || c == '\\' || c == '/' ? c
                     : c == 'b'                        ? '\b'
                     : c == 'f'                        ? '\f'
                     : c == 'n'                        ? '\n'
                     : c == 'r'                        ? '\r'
                     : c == 't'                        ? '\t'
                                                       : 0;
        if (simple) {
            *ps->out++ = (char)simple;
            continue;
        }
        uint32_t u, lo;
        if (c != 'u' || ps->end - ps->p < 4 || hex4(ps->p, &u) < 0)
            return -1;
        ps->p += 4;
        if (u >= 0xD800 && u < 0xDC00) { /* a surrogate pair: \uD83D\uDE00 */
            if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                hex4(ps->p + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                return -1;
            ps->p += 6;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        } else if ((u >= 0xDC00 && u <= 0xDFFF) || u == 0) {
            return -1; /* a lone low surrogate, or NUL, which C strings cannot carry */
        }
        if (u < 0x80) {
            *ps->out++ = (char)u;
        } else if (u < 0x800) {
            *ps->out++ = (char)(0xC0 | u >> 6);
            *ps->out++ = (char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            *ps->out++ = (char)(0xE0 | u >> 12);
            *ps->out++ = (char)(0x80 | (u >> 6 & 0x3F));
            *ps->out++ = (char)(0x80 | (u & 0x3F));
        } else {
            *ps->out++ = (char)(0xF0 | u >> 18);
            *ps->out++ = (char)(0x80 | (u >> 12 & 0x3F));
            *ps->out++ = (char)(0x80 | (u >> 6 & 0x3F));
            *ps->out++ = (char)(0x80 | (u & 0x3F));
        }
    }
    if (ps->p >= ps->end)
        return -1;
    ps->p++; /* closing quote */
    *s = (nb_str){start, (uint32_t)(ps->out - start), 0};
    return 0;
}

/* Skip the value of a key we ignore: a number, true, false or null. Loose
 * on purpose (an example need not validate what it throws away). */
static int skip_scalar(parser *ps) {
    const uint8_t *start = ps->p;
    while (ps->p < ps->end && *ps->p && strchr("+-.0123456789eEtruefalsn", *ps->p))
        ps->p++;
    return ps->p > start ? 0 : -1;
}

static int32_t fail(nb_decode_error *err, const char *code, const char *reason) {
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->reason, sizeof err->reason, "%s", reason);
    return NB_ERR_INVALID;
}

static int32_t parse(parser *ps, nb_msg *out, nb_decode_error *err) {
    nb_str type = {0}, *field = NULL;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p++ != '{')
        return fail(err, "bad_json", "expected a JSON object");
    skip_ws(ps);
    int first = 1;
    while (ps->p < ps->end && *ps->p != '}') {
        nb_str key, val;
        if (!first && *ps->p++ != ',')
            return fail(err, "bad_json", "expected ',' or '}'");
        first = 0;
        skip_ws(ps);
        if (read_string(ps, &key) < 0)
            return fail(err, "bad_json", "expected a key in double quotes");
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p++ != ':')
            return fail(err, "bad_json", "expected ':' after a key");
        skip_ws(ps);
        field = key.len == 4 && memcmp(key.ptr, "type", 4) == 0      ? &type
                : key.len == 4 && memcmp(key.ptr, "room", 4) == 0    ? &out->room
                : key.len == 7 && memcmp(key.ptr, "content", 7) == 0 ? &out->content
                                                                     : NULL;
        if (ps->p < ps->end && *ps->p == '"') {
            if (read_string(ps, &val) < 0)
                return fail(err, "bad_json", "bad string");
            if (field && field->ptr)
                return fail(err, "bad_json", "a key appears twice");
            if (field)
                *field = val;
        } else if (field) {
            return fail(err, "bad_field", "type, room and content must be strings");
        } else if (skip_scalar(ps) < 0) {
            return fail(err, "bad_json", "this codec reads flat objects only");
        }
        skip_ws(ps);
    }
    if (ps->p >= ps->end)
        return fail(err, "bad_json", "unterminated object");
    ps->p++;
    skip_ws(ps);
    if (ps->p != ps->end)
        return fail(err, "bad_json", "data after the object");
    if (!type.ptr)
        return fail(err, "missing_field", "no \"type\"");
    for (uint32_t i = 1; i < NB_MSG_TYPE_COUNT; i++)
        if (strlen(type_names[i]) == type.len && memcmp(type_names[i], type.ptr, type.len) == 0)
            out->type = i;
    if (out->type == NB_MSG_NONE)
        return fail(err, "unknown_type", "unknown \"type\"");
    return NB_OK;
}

static int32_t upper_decode(void *instance, const uint8_t *data, uint32_t len, nb_msg *out,
                            nb_decode_error *err) {
    const upper *u = instance;
    /* One block holds every unescaped string; the message owns it until
     * release(), as codec.h asks. */
    char *strings = u->host->alloc(len ? len : 1);
    if (!strings)
        return fail(err, "internal", "out of memory");
    parser ps = {data, data + len, strings};
    int32_t rc = parse(&ps, out, err);
    if (rc != NB_OK) {
        u->host->free(strings);
        memset(out, 0, sizeof *out);
        out->struct_size = sizeof *out;
        return rc;
    }
    out->codec_data = strings;
    return NB_OK;
}

static void upper_release(void *instance, nb_msg *msg) {
    const upper *u = instance;
    u->host->free(msg->codec_data);
    msg->codec_data = NULL;
}

/* ---- encode: nb_msg into JSON, shouting -------------------------------- */

typedef struct writer {
    const nb_host *host;
    struct nb_buf *buf;
    int failed;
} writer;

static void put(writer *w, const void *bytes, uint32_t n) {
    if (w->failed || w->host->buf_reserve(&w->buf, n) != NB_OK) {
        w->failed = 1;
        return;
    }
    memcpy(w->buf->data + w->buf->len, bytes, n);
    w->buf->len += n;
    w->buf->tailroom -= n;
}

static void put_lit(writer *w, const char *s) {
    put(w, s, (uint32_t)strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if it is not one. */
static uint32_t utf8_len(const uint8_t *s, uint32_t left) {
    uint32_t n = s[0] >= 0xF5 ? 0 : s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (n == 0 || n > left)
        return 0;
    for (uint32_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (n == 3 && s[0] == 0xED && s[1] >= 0xA0) ||
        (n == 4 && s[0] == 0xF0 && s[1] < 0x90) || (n == 4 && s[0] == 0xF4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate or beyond U+10FFFF */
    return n;
}

/* A JSON string. Invalid UTF-8 becomes U+FFFD so the text frame is valid
 * whatever codec the text came from. */
static void put_string(writer *w, nb_str s, int shout) {
    const uint8_t *b = (const uint8_t *)s.ptr;
    put_lit(w, "\"");
    for (uint32_t i = 0; i < s.len && !w->failed;) {
        uint8_t c = b[i];
        if (c >= 0x80) {
            uint32_t n = utf8_len(b + i, s.len - i);
            if (n)
                put(w, b + i, n);
            else
                put_lit(w, "\xEF\xBF\xBD");
            i += n ? n : 1;
            continue;
        }
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(w, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(w, esc, 6);
        } else {
            esc[0] = (char)(shout && c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
            put(w, esc, 1);
        }
        i++;
    }
    put_lit(w, "\"");
}

static void put_field(writer *w, const char *key, nb_str v, int shout) {
    if (!v.ptr)
        return;
    put_lit(w, key);
    put_string(w, v, shout);
}

static int32_t upper_encode(void *instance, const nb_msg *msg, struct nb_buf **out) {
    const upper *u = instance;
    *out = NULL;
    if (msg->type == NB_MSG_NONE || msg->type >= NB_MSG_TYPE_COUNT)
        return NB_ERR_INVALID;
    writer w = {u->host, u->host->buf_new(NB_BUF_HEADROOM, 256), 0};
    if (!w.buf)
        return NB_ERR_NOMEM;
    put_lit(&w, "{\"type\":\"");
    put_lit(&w, type_names[msg->type]);
    put_lit(&w, "\"");
    put_field(&w, ",\"room\":", msg->room, 0);
    put_field(&w, ",\"sender\":", msg->sender, u->upper_sender);
    put_field(&w, ",\"content\":", msg->content, 1);
    if (msg->users) {
        put_lit(&w, ",\"users\":[");
        for (uint32_t i = 0; i < msg->n_users; i++) {
            if (i)
                put_lit(&w, ",");
            put_string(&w, msg->users[i], u->upper_sender);
        }
        put_lit(&w, "]");
    }
    put_field(&w, ",\"id\":", msg->id, 0);
    if (msg->ts) {
        char ts[32];
        snprintf(ts, sizeof ts, ",\"ts\":%" PRId64, msg->ts);
        put_lit(&w, ts);
    }
    put_field(&w, ",\"code\":", msg->code, 0);
    put_lit(&w, "}");
    if (w.failed) {
        u->host->buf_unref(w.buf);
        return NB_ERR_NOMEM;
    }
    *out = w.buf;
    return NB_OK;
}

/* ---- the plugin --------------------------------------------------------- */

static int32_t upper_create(const nb_host *host, struct nb_plugin_ctx *ctx, void **instance) {
    upper *u = host->alloc(sizeof *u);
    if (!u) {
        host->log(ctx, NB_LOG_ERROR, "out of memory");
        return NB_ERR_NOMEM;
    }
    u->host = host;
    /* Read every key we support, so the host can report the others. */
    if (host->config_bool(ctx, "upper_sender", 0, &u->upper_sender) != NB_OK) {
        host->free(u);
        return NB_ERR_CONFIG; /* the host has logged file:line and why */
    }
    *instance = u;
    return NB_OK;
}

static void upper_destroy(void *instance) {
    upper *u = instance;
    if (u)
        u->host->free(u);
}

static const nb_codec_vtable upper_vtable = {
    .struct_size = (uint32_t)sizeof(nb_codec_vtable),
    .frame_kind = NB_FRAME_TEXT,
    .subprotocol = "example.upper.v1",
    .decode = upper_decode,
    .release = upper_release,
    .encode = upper_encode,
};

static const nb_plugin_desc upper_desc = {
    NB_PLUGIN_HEADER(NB_KIND_CODEC),
    .name = "codec-upper",
    .version = "1.0.0",
    .summary = "example: JSON envelopes with upper-cased content (example.upper.v1)",
    .create = upper_create,
    .destroy = upper_destroy,
    .vtable = &upper_vtable,
};

NB_PLUGIN_DECLARE(upper_desc)
