/*
 * codec_json.c — the JSON codec: subprotocol nebula.json.v1, text frames.
 *
 * decode parses with cJSON and points the nb_msg strings into the parse
 * tree, which the message keeps (codec_data) until release. encode does not
 * build a tree: it writes JSON straight into an nb_buf in one pass, because
 * it runs once per broadcast on the hot path.
 *
 * One instance serves every I/O thread. Nothing here is mutable after
 * create() and cJSON_InitHooks is never called, so calls need no locking.
 * (cJSON's parser does record its last error in a global for
 * cJSON_GetErrorPtr; we never read it and take the position from
 * return_parse_end instead.) docs/CODEC_JSON.md describes the mapping and
 * the error codes.
 */
#include <cjson/cJSON.h>
#include <nebula/codec.h>
#include <nebula/host.h>
#include <nebula/msg.h>
#include <nebula/plugin.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct codec_json {
    const nb_host *host;
    struct nb_plugin_ctx *ctx;
    uint32_t max_depth;    /* [codec-json] max_depth */
    uint32_t max_elements; /* [codec-json] max_elements */
} codec_json;

/* Structure limits' defaults: an envelope is one object of strings and
 * numbers, with one array ("users") in events; unknown members may hold
 * more, but never need thousands of values. */
#define JSON_MAX_DEPTH 8
#define JSON_MAX_ELEMENTS 1024

/* What decode hangs on nb_msg.codec_data: the tree the strings point into
 * and the users array, in one allocation. */
typedef struct decoded {
    cJSON *root;
    nb_str users[];
} decoded;

static const char *const type_names[NB_MSG_TYPE_COUNT] = NB_MSG_TYPE_NAMES;

/* The envelope's keys; decode looks each one up once per message. */
enum {
    F_TYPE,
    F_ROOM,
    F_SENDER,
    F_CONTENT,
    F_USERS,
    F_ID,
    F_TS,
    F_CODE,
    F_SEQ,
    F_SINCE,
    F_EPOCH,
    F_INCOMPLETE,
    F_COUNT
};
static const char *const field_names[F_COUNT] = {"type",  "room",  "sender", "content",
                                                 "users", "id",    "ts",     "code",
                                                 "seq",   "since", "epoch",  "incomplete"};

/* Integers up to 2^53 survive the trip through cJSON's double unchanged. */
#define TS_LIMIT 9007199254740992.0

/* ---- decode ------------------------------------------------------------ */

static int32_t fail(nb_decode_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int32_t fail(nb_decode_error *err, const char *code, const char *fmt, ...) {
    if (err) {
        snprintf(err->code, sizeof err->code, "%s", code);
        va_list ap;
        va_start(ap, fmt);
        /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
        vsnprintf(err->reason, sizeof err->reason, fmt, ap);
        va_end(ap);
    }
    return NB_ERR_INVALID;
}

static int is_json_space(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Four hex digits at p (n bytes left) into *out; 0 if they are not. */
static int hex4(const uint8_t *p, uint32_t n, uint32_t *out) {
    uint32_t v = 0;
    if (n < 4)
        return 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (uint32_t)((c | 0x20) - 'a' + 10);
        else
            return 0;
        v = v << 4 | d;
    }
    *out = v;
    return 1;
}

/*
 * cJSON is more lenient than JSON: it takes every byte <= 0x20 as
 * whitespace, copies raw control bytes into strings, reads a \u escape
 * with bad hex digits as U+0000, and decodes U+0000 into a NUL that
 * silently cuts the C string short (so a key "type\u0000x" would match
 * "type"). This pass runs before the parser: raw control bytes and bad \u
 * escapes are bad_json at once; the first \u0000 inside a string is
 * remembered in *nul_at and reported as bad_field once the input is known
 * to be JSON.
 *
 * The same pass bounds the parser's work before it starts (docs/
 * HARDENING.md): cJSON builds a node of ~64 bytes, one allocation, for
 * every value, so a 64 KB frame of "[0,0,0,...]" costs 32,000 allocations
 * where a 64 KB string costs one. Nesting deeper than max_depth and more
 * than max_elements values (counted by their openers and separators
 * outside strings) are too_complex, refused without building anything.
 */
static int32_t prescan(const codec_json *cj, const uint8_t *p, uint32_t len, uint32_t *nul_at,
                       nb_decode_error *err) {
    int in_string = 0;
    uint32_t depth = 0;
    uint32_t elements = 1;
    *nul_at = UINT32_MAX;
    for (uint32_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (!in_string && (c == '{' || c == '[')) {
            if (++depth > cj->max_depth)
                return fail(err, "too_complex", "the message nests deeper than %u levels",
                            cj->max_depth);
        } else if (!in_string && (c == '}' || c == ']')) {
            if (depth)
                depth--;
        } else if (!in_string && (c == ',' || c == ':')) {
            /* "a":1 is one member; count values by separators */
            if (c == ',' && ++elements > cj->max_elements)
                return fail(err, "too_complex", "the message has more than %u values",
                            cj->max_elements);
        } else if (c == '"') {
            in_string = !in_string;
        } else if (c == '\\' && in_string) {
            if (i + 1 < len && p[i + 1] == 'u') {
                uint32_t code;
                if (!hex4(p + i + 2, len - i - 2, &code))
                    return fail(err, "bad_json", "not valid JSON: bad \\u escape at byte %u", i);
                if (code == 0 && *nul_at == UINT32_MAX)
                    *nul_at = i;
                i += 5;
            } else {
                i++; /* an escaped byte never ends the string */
            }
        } else if (c < 0x20 && (in_string || !is_json_space(c))) {
            return fail(err, "bad_json", "not valid JSON: raw control character 0x%02x at byte %u",
                        c, i);
        }
    }
    return NB_OK;
}

static const char *json_kind(const cJSON *v) {
    if (cJSON_IsObject(v))
        return "an object";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    return "null";
}

static int field_index(const char *key) {
    for (int i = 0; i < F_COUNT; i++)
        if (strcmp(key, field_names[i]) == 0)
            return i;
    return -1;
}

/* Point *dst at a string field; absent stays {NULL, 0}. */
static int32_t take_string(const cJSON *v, int field, nb_str *dst, nb_decode_error *err) {
    if (!v)
        return NB_OK;
    if (!cJSON_IsString(v))
        return fail(err, "bad_field", "\"%s\" must be a string, not %s", field_names[field],
                    json_kind(v));
    dst->ptr = v->valuestring;
    dst->len = (uint32_t)strlen(v->valuestring);
    return NB_OK;
}

static int32_t take_ts(const cJSON *v, int64_t *dst, nb_decode_error *err) {
    if (!v)
        return NB_OK;
    if (!cJSON_IsNumber(v))
        return fail(err, "bad_field", "\"ts\" must be a number, not %s", json_kind(v));
    double d = v->valuedouble;
    /* The range test comes first so the cast below is defined (it also
     * rejects the infinity cJSON makes of 1e999). */
    if (!(d >= -TS_LIMIT && d <= TS_LIMIT) || (double)(int64_t)d != d)
        return fail(err, "bad_field", "\"ts\" must be an integer between -2^53 and 2^53");
    *dst = (int64_t)d;
    return NB_OK;
}

/* seq and since: an integer in [0, 2^53]; absent leaves *dst alone and
 * *present 0. */
static int32_t take_count(const cJSON *v, int field, uint64_t *dst, int *present,
                          nb_decode_error *err) {
    *present = 0;
    if (!v)
        return NB_OK;
    if (!cJSON_IsNumber(v))
        return fail(err, "bad_field", "\"%s\" must be a number, not %s", field_names[field],
                    json_kind(v));
    double d = v->valuedouble;
    /* Range first, so that the cast is defined (see take_ts). */
    if (!(d >= 0 && d <= TS_LIMIT) || (double)(uint64_t)d != d)
        return fail(err, "bad_field", "\"%s\" must be an integer between 0 and 2^53",
                    field_names[field]);
    *dst = (uint64_t)d;
    *present = 1;
    return NB_OK;
}

static int32_t take_flag(const cJSON *v, int field, uint32_t bit, uint32_t *flags,
                         nb_decode_error *err) {
    if (!v)
        return NB_OK;
    if (!cJSON_IsBool(v))
        return fail(err, "bad_field", "\"%s\" must be a boolean, not %s", field_names[field],
                    json_kind(v));
    if (cJSON_IsTrue(v))
        *flags |= bit;
    return NB_OK;
}

/* Check "users" and count its names; filled in once the holder exists. */
static int32_t check_users(const cJSON *v, uint32_t *n, nb_decode_error *err) {
    *n = 0;
    if (!v)
        return NB_OK;
    if (!cJSON_IsArray(v))
        return fail(err, "bad_field", "\"users\" must be an array of strings, not %s",
                    json_kind(v));
    for (const cJSON *u = v->child; u; u = u->next, (*n)++)
        if (!cJSON_IsString(u))
            return fail(err, "bad_field", "\"users\"[%u] must be a string, not %s", *n,
                        json_kind(u));
    return NB_OK;
}

/* Map a parsed object onto m, all but the users list: *users is its
 * (checked) node, or NULL when absent, and *n_users its length. */
static int32_t map_object(const cJSON *root, nb_msg *m, const cJSON **users, uint32_t *n_users,
                          nb_decode_error *err) {
    const cJSON *f[F_COUNT] = {0};
    /*
     * Duplicate keys: parsers disagree on which one wins (cJSON's lookup
     * takes the first, JavaScript the last), so a message that means
     * different things to different readers is refused. Unknown keys are
     * skipped, duplicated or not.
     */
    for (const cJSON *it = root->child; it; it = it->next) {
        int k = field_index(it->string);
        if (k < 0)
            continue;
        if (f[k])
            return fail(err, "bad_json", "duplicate key \"%s\"", field_names[k]);
        f[k] = it;
    }

    const cJSON *t = f[F_TYPE];
    if (!t)
        return fail(err, "missing_field", "the \"type\" field is missing");
    if (!cJSON_IsString(t))
        return fail(err, "bad_field", "\"type\" must be a string, not %s", json_kind(t));
    for (uint32_t i = 1; i < NB_MSG_TYPE_COUNT && m->type == NB_MSG_NONE; i++)
        if (strcmp(t->valuestring, type_names[i]) == 0)
            m->type = i;
    if (m->type == NB_MSG_NONE)
        return fail(err, "unknown_type", "\"type\" is not a known message type");

    if (take_string(f[F_ROOM], F_ROOM, &m->room, err) != NB_OK ||
        take_string(f[F_SENDER], F_SENDER, &m->sender, err) != NB_OK ||
        take_string(f[F_CONTENT], F_CONTENT, &m->content, err) != NB_OK ||
        take_string(f[F_ID], F_ID, &m->id, err) != NB_OK ||
        take_string(f[F_CODE], F_CODE, &m->code, err) != NB_OK ||
        take_string(f[F_EPOCH], F_EPOCH, &m->epoch, err) != NB_OK ||
        take_ts(f[F_TS], &m->ts, err) != NB_OK || check_users(f[F_USERS], n_users, err) != NB_OK)
        return NB_ERR_INVALID;
    int has_seq, has_since;
    if (take_count(f[F_SEQ], F_SEQ, &m->seq, &has_seq, err) != NB_OK ||
        take_count(f[F_SINCE], F_SINCE, &m->since, &has_since, err) != NB_OK ||
        take_flag(f[F_INCOMPLETE], F_INCOMPLETE, NB_MSG_F_INCOMPLETE, &m->flags, err) != NB_OK)
        return NB_ERR_INVALID;
    if (has_since)
        m->flags |= NB_MSG_F_SINCE;
    *users = f[F_USERS];
    return NB_OK;
}

static int32_t json_decode(void *instance, const uint8_t *data, uint32_t len, nb_msg *out,
                           nb_decode_error *err) {
    const codec_json *cj = instance;
    if (len == 0)
        return fail(err, "bad_json", "not valid JSON: the message is empty");
    uint32_t nul_at;
    if (prescan(cj, data, len, &nul_at, err) != NB_OK)
        return NB_ERR_INVALID;

    /*
     * require_null_terminated is left off: in cJSON 1.7.15 it demands a NUL
     * inside `len`, which a frame does not have. The same rule (nothing but
     * whitespace after the value) is checked by hand below, and it is
     * stricter, since cJSON's own skip also passes control bytes.
     */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)data, len, &end, 0);
    if (!root) {
        /* cJSON also fails this way when out of memory; it cannot say which. */
        size_t at = end ? (size_t)(end - (const char *)data) : 0;
        return fail(err, "bad_json", "not valid JSON (error near byte %zu)", at);
    }
    for (size_t i = (size_t)(end - (const char *)data); i < len; i++)
        if (!is_json_space(data[i])) {
            cJSON_Delete(root);
            return fail(err, "bad_json",
                        "not valid JSON: unexpected data after the value at byte %zu", i);
        }
    if (!cJSON_IsObject(root)) {
        const char *kind = json_kind(root);
        cJSON_Delete(root);
        return fail(err, "bad_json", "the message is %s, not a JSON object", kind);
    }
    if (nul_at != UINT32_MAX) {
        cJSON_Delete(root);
        return fail(err, "bad_field", "strings may not contain \\u0000 (byte %u)", nul_at);
    }

    /* Fill a copy so that *out stays untouched on failure. */
    nb_msg m = *out;
    m.type = NB_MSG_NONE;
    const cJSON *users = NULL;
    uint32_t n_users = 0;
    if (map_object(root, &m, &users, &n_users, err) != NB_OK) {
        cJSON_Delete(root);
        return NB_ERR_INVALID;
    }
    decoded *h = cj->host->alloc(sizeof(decoded) + (uint64_t)n_users * sizeof(nb_str));
    if (!h) {
        cJSON_Delete(root);
        fail(err, "internal", "out of memory");
        return NB_ERR_NOMEM;
    }
    h->root = root;
    if (users) {
        uint32_t i = 0;
        for (const cJSON *u = users->child; u; u = u->next, i++)
            h->users[i] = (nb_str){u->valuestring, (uint32_t)strlen(u->valuestring), 0};
        m.users = h->users; /* non-NULL even for [], so empty stays distinct from absent */
        m.n_users = n_users;
    }
    m.codec_data = h;
    *out = m;
    return NB_OK;
}

static void json_release(void *instance, nb_msg *msg) {
    const codec_json *cj = instance;
    if (!msg || !msg->codec_data)
        return;
    decoded *h = msg->codec_data;
    cJSON_Delete(h->root);
    cj->host->free(h);
    /* Everything below pointed into what was just freed. */
    msg->codec_data = NULL;
    msg->room = msg->sender = msg->content = msg->id = msg->code = msg->epoch =
        (nb_str){NULL, 0, 0};
    msg->users = NULL;
    msg->n_users = 0;
}

/* ---- encode ------------------------------------------------------------ */

/* Output cursor over an nb_buf; buf->len and tailroom are brought up to
 * date only when the buffer must grow, and once at the end. */
typedef struct writer {
    const nb_host *host;
    nb_buf *buf;
    uint8_t *p;
    uint8_t *end;
} writer;

static void sync_len(writer *w) {
    uint32_t used = (uint32_t)(w->p - w->buf->data);
    w->buf->tailroom -= used - w->buf->len;
    w->buf->len = used;
}

static int grow(writer *w, uint32_t need) {
    sync_len(w);
    if (w->host->buf_reserve(&w->buf, need) != NB_OK)
        return -1;
    w->p = w->buf->data + w->buf->len;
    w->end = w->p + w->buf->tailroom;
    return 0;
}

static inline int ensure(writer *w, uint32_t need) {
    return (size_t)(w->end - w->p) >= need ? 0 : grow(w, need);
}

static int put(writer *w, const void *s, uint32_t n) {
    if (ensure(w, n) < 0)
        return -1;
    memcpy(w->p, s, n);
    w->p += n;
    return 0;
}

#define PUT_LIT(w, lit) put((w), (lit), (uint32_t)(sizeof(lit) - 1))

static int is_cont(uint8_t c) {
    return (c & 0xC0) == 0x80;
}

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes left) that
 * starts with a non-ASCII byte, or 0: no overlongs, no surrogates, nothing
 * above U+10FFFF (RFC 3629). */
static uint32_t utf8_seq(const uint8_t *s, uint32_t n) {
    uint8_t c = s[0];
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && is_cont(s[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || !is_cont(s[1]) || !is_cont(s[2]))
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || !is_cont(s[1]) || !is_cont(s[2]) || !is_cont(s[3]))
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
            return 0;
        return 4;
    }
    return 0;
}

/*
 * A quoted JSON string. Runs of bytes that need nothing are copied in one
 * go. Control bytes become \n, \r, \t or \u00XX. Valid UTF-8 passes
 * through as is; a byte that is not part of valid UTF-8 becomes U+FFFD,
 * because the frame is a text frame and a browser closes the connection
 * on invalid UTF-8 (such bytes can come from a binary codec's clients).
 */
static int put_string(writer *w, const char *str, uint32_t n) {
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)str;
    if (!s)
        n = 0; /* a NULL entry of a users list: the only sane output is "" */
    if (PUT_LIT(w, "\"") < 0)
        return -1;
    uint32_t i = 0;
    while (i < n) {
        uint32_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i && put(w, s + i, run - i) < 0)
            return -1;
        if (run == n)
            break;
        uint8_t c = s[run];
        if (ensure(w, 6) < 0)
            return -1;
        if (c >= 0x80) {
            uint32_t k = utf8_seq(s + run, n - run);
            if (k) {
                memcpy(w->p, s + run, k);
                w->p += k;
                i = run + k;
            } else {
                memcpy(w->p, "\xEF\xBF\xBD", 3);
                w->p += 3;
                i = run + 1;
            }
            continue;
        }
        *w->p++ = '\\';
        if (c == '"' || c == '\\') {
            *w->p++ = c;
        } else if (c == '\n') {
            *w->p++ = 'n';
        } else if (c == '\r') {
            *w->p++ = 'r';
        } else if (c == '\t') {
            *w->p++ = 't';
        } else {
            memcpy(w->p, "u00", 3);
            w->p[3] = (uint8_t)hex[c >> 4];
            w->p[4] = (uint8_t)hex[c & 15];
            w->p += 5;
        }
        i = run + 1;
    }
    return PUT_LIT(w, "\"");
}

/* A key and its string value, when the field is present. */
static int put_field(writer *w, const char *key_lit, uint32_t key_len, nb_str v) {
    if (!v.ptr)
        return 0;
    if (put(w, key_lit, key_len) < 0)
        return -1;
    return put_string(w, v.ptr, v.len);
}

#define PUT_FIELD(w, lit, v) put_field((w), (lit), (uint32_t)(sizeof(lit) - 1), (v))

static int put_uint64(writer *w, uint64_t u) {
    char tmp[20];
    uint32_t n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return put(w, tmp + sizeof tmp - n, n);
}

static int put_int64(writer *w, int64_t v) {
    if (v < 0 && PUT_LIT(w, "-") < 0)
        return -1;
    /* Negate in unsigned arithmetic so INT64_MIN is fine too. */
    return put_uint64(w, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

static uint64_t estimate(const nb_msg *msg) {
    /* Keys, quotes and ts; strings counted once, plus a little for escapes,
     * so a typical message is written without growing. */
    const nb_str *fields[] = {&msg->room, &msg->sender, &msg->content,
                              &msg->id,   &msg->code,   &msg->epoch};
    uint64_t est = 192;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i]->ptr)
            est += fields[i]->len;
    if (msg->users)
        for (uint32_t i = 0; i < msg->n_users; i++)
            est += (uint64_t)msg->users[i].len + 3;
    return est + est / 16;
}

static int32_t json_encode(void *instance, const nb_msg *msg, struct nb_buf **out) {
    const codec_json *cj = instance;
    *out = NULL;
    if (msg->type == NB_MSG_NONE || msg->type >= NB_MSG_TYPE_COUNT)
        return NB_ERR_INVALID;
    uint64_t est = estimate(msg);
    if (est > UINT32_MAX - NB_BUF_HEADROOM)
        return NB_ERR_NOMEM;
    writer w = {cj->host, cj->host->buf_new(NB_BUF_HEADROOM, (uint32_t)est), NULL, NULL};
    if (!w.buf)
        return NB_ERR_NOMEM;
    w.p = w.buf->data + w.buf->len;
    w.end = w.p + w.buf->tailroom;

    const char *type = type_names[msg->type];
    int bad = PUT_LIT(&w, "{\"type\":\"") < 0 || put(&w, type, (uint32_t)strlen(type)) < 0 ||
              PUT_LIT(&w, "\"") < 0 || PUT_FIELD(&w, ",\"room\":", msg->room) < 0 ||
              PUT_FIELD(&w, ",\"sender\":", msg->sender) < 0 ||
              PUT_FIELD(&w, ",\"content\":", msg->content) < 0;
    if (!bad && msg->users) {
        bad = PUT_LIT(&w, ",\"users\":[") < 0;
        for (uint32_t i = 0; !bad && i < msg->n_users; i++)
            bad = (i > 0 && PUT_LIT(&w, ",") < 0) ||
                  put_string(&w, msg->users[i].ptr, msg->users[i].len) < 0;
        bad = bad || PUT_LIT(&w, "]") < 0;
    }
    bad = bad || PUT_FIELD(&w, ",\"id\":", msg->id) < 0;
    if (!bad && msg->seq != 0)
        bad = PUT_LIT(&w, ",\"seq\":") < 0 || put_uint64(&w, msg->seq) < 0;
    if (!bad && msg->ts != 0)
        bad = PUT_LIT(&w, ",\"ts\":") < 0 || put_int64(&w, msg->ts) < 0;
    bad = bad || PUT_FIELD(&w, ",\"code\":", msg->code) < 0;
    if (!bad && (msg->flags & NB_MSG_F_SINCE))
        bad = PUT_LIT(&w, ",\"since\":") < 0 || put_uint64(&w, msg->since) < 0;
    bad = bad || PUT_FIELD(&w, ",\"epoch\":", msg->epoch) < 0;
    if (!bad && (msg->flags & NB_MSG_F_INCOMPLETE))
        bad = PUT_LIT(&w, ",\"incomplete\":true") < 0;
    bad = bad || PUT_LIT(&w, "}") < 0;
    if (bad) {
        cj->host->buf_unref(w.buf);
        return NB_ERR_NOMEM;
    }
    sync_len(&w);
    *out = w.buf;
    return NB_OK;
}

/* ---- plugin ------------------------------------------------------------ */

static int32_t json_create(const nb_host *host, struct nb_plugin_ctx *ctx, void **instance) {
    /* The wire format is fixed by nebula.json.v1; the keys bound only what
     * one message may cost to parse. */
    int64_t depth = JSON_MAX_DEPTH;
    int64_t elements = JSON_MAX_ELEMENTS;
    if (host->config_int(ctx, "max_depth", JSON_MAX_DEPTH, &depth) != NB_OK ||
        host->config_int(ctx, "max_elements", JSON_MAX_ELEMENTS, &elements) != NB_OK)
        return NB_ERR_CONFIG;
    if (depth < 1 || depth > 1000) { /* cJSON's own nesting limit is 1000 */
        host->config_error(ctx, "max_depth", "must be from 1 to 1000");
        return NB_ERR_CONFIG;
    }
    if (elements < 16 || elements > 1000000) {
        host->config_error(ctx, "max_elements", "must be from 16 to 1000000");
        return NB_ERR_CONFIG;
    }
    codec_json *cj = host->alloc(sizeof *cj);
    if (!cj) {
        host->log(ctx, NB_LOG_ERROR, "out of memory");
        return NB_ERR_NOMEM;
    }
    cj->host = host;
    cj->ctx = ctx;
    cj->max_depth = (uint32_t)depth;
    cj->max_elements = (uint32_t)elements;
    *instance = cj;
    return NB_OK;
}

static void json_destroy(void *instance) {
    codec_json *cj = instance;
    if (cj)
        cj->host->free(cj);
}

static const nb_codec_vtable json_vtable = {
    .struct_size = (uint32_t)sizeof(nb_codec_vtable),
    .frame_kind = NB_FRAME_TEXT,
    .subprotocol = "nebula.json.v1",
    .decode = json_decode,
    .release = json_release,
    .encode = json_encode,
};

static const nb_plugin_desc json_desc = {
    NB_PLUGIN_HEADER(NB_KIND_CODEC),
    .name = "codec-json",
    .version = "1.1.0",
    .summary = "JSON envelopes in text frames (nebula.json.v1), parsed with cJSON",
    .create = json_create,
    .destroy = json_destroy,
    .vtable = &json_vtable,
};

NB_PLUGIN_DECLARE(json_desc)
