/*
 * pb_check.c — the wire check that runs before protobuf-c unpacks a frame
 * (pb.h says what it reports). It reads only within [p, p + len), never
 * allocates, and is linear in len.
 */
#include "pb.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *const pb_field_names[PB_FIELD_MAX + 1] = {
    NULL, "type", "room", "sender", "content", "users",     "id",
    "ts", "code", "seq",  "since",  "epoch",   "incomplete"};

static const char *const wire_names[8] = {"a varint",      "a 64-bit value", "length-delimited",
                                          "a group start", "a group end",    "a 32-bit value",
                                          "wire type 6",   "wire type 7"};

int32_t pb_fail(nb_decode_error *err, const char *code, const char *fmt, ...) {
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

static int is_cont(uint8_t c) {
    return (c & 0xC0) == 0x80;
}

uint32_t pb_utf8_seq(const uint8_t *s, uint32_t n) {
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

/* A varint of at most `max` bytes at *pos; 0 when it runs past the end or
 * past `max` bytes (10 for a value: 64 bits). */
static int read_varint(const uint8_t *p, uint32_t len, uint32_t *pos, uint32_t max, uint64_t *out) {
    uint64_t v = 0;
    for (uint32_t i = 0; i < max; i++) {
        if (*pos >= len)
            return 0;
        uint8_t b = p[(*pos)++];
        if (i == 9 && b > 1)
            return 0; /* the 10th byte holds only bit 63 */
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* Why a string is refused, or NULL: not UTF-8, or a NUL inside. */
static const char *string_problem(const uint8_t *s, uint32_t n) {
    for (uint32_t i = 0; i < n;) {
        if (s[i] == 0)
            return "contains a NUL byte";
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t k = pb_utf8_seq(s + i, n - i);
        if (!k)
            return "is not valid UTF-8";
        i += k;
    }
    return NULL;
}

static int expected_wire(uint64_t field) {
    switch (field) {
    case PB_TYPE:
    case PB_TS:
    case PB_SEQ:
    case PB_SINCE:
    case PB_INCOMPLETE:
        return PB_VARINT;
    default:
        return PB_LEN; /* the strings and users */
    }
}

/* What the walk learns, for the checks after it. */
typedef struct walk {
    int type_seen;
    int type_wire_bad;
    uint64_t type; /* the last one wins, as in every Protobuf parser */
    nb_decode_error field_err;
    int field_bad; /* field_err holds the first bad_field */
} walk;

/* A known field's value (the wire type already matches). */
static void check_value(walk *w, uint64_t field, uint64_t v, const uint8_t *s, uint32_t n) {
    if (w->field_bad)
        return;
    const char *name = pb_field_names[field];
    if (field == PB_TS) {
        int64_t ts = (int64_t)v;
        if (ts > (int64_t)PB_INT_LIMIT || ts < -(int64_t)PB_INT_LIMIT)
            w->field_bad = pb_fail(&w->field_err, "bad_field",
                                   "\"ts\" must be an integer between -2^53 and 2^53") != 0;
    } else if (field == PB_SEQ || field == PB_SINCE) {
        if (v > PB_INT_LIMIT)
            w->field_bad = pb_fail(&w->field_err, "bad_field",
                                   "\"%s\" must be an integer between 0 and 2^53", name) != 0;
    } else if (expected_wire(field) == PB_LEN) {
        const char *why = string_problem(s, n);
        if (why)
            w->field_bad = pb_fail(&w->field_err, "bad_field", "\"%s\" %s", name, why) != 0;
    }
}

int32_t pb_check(const uint8_t *p, uint32_t len, uint32_t max_fields, nb_decode_error *err) {
    walk w;
    memset(&w, 0, sizeof w);
    uint32_t pos = 0;
    uint32_t fields = 0;
    while (pos < len) {
        if (++fields > max_fields)
            return pb_fail(err, "too_complex", "the message has more than %u fields", max_fields);
        uint32_t at = pos;
        uint64_t tag, v = 0;
        /* A tag is a 32-bit varint, at most 5 bytes (protobuf-c refuses a
         * longer one even when it only pads with zero bits). */
        if (!read_varint(p, len, &pos, 5, &tag) || tag > UINT32_MAX)
            return pb_fail(err, "bad_message", "truncated or overlong field tag at byte %u", at);
        uint64_t field = tag >> 3;
        int wire = (int)(tag & 7);
        if (field == 0)
            return pb_fail(err, "bad_message", "field number 0 at byte %u", at);
        const uint8_t *s = NULL;
        uint32_t n = 0;
        switch (wire) {
        case PB_VARINT:
            if (!read_varint(p, len, &pos, 10, &v))
                return pb_fail(err, "bad_message", "truncated or overlong varint at byte %u", pos);
            break;
        case PB_I64:
        case PB_I32: {
            uint32_t size = wire == PB_I64 ? 8 : 4;
            if (len - pos < size)
                return pb_fail(err, "bad_message", "field %u at byte %u runs past the end",
                               (unsigned)field, at);
            pos += size;
            break;
        }
        case PB_LEN:
            /* A length is a 32-bit varint too: at most 5 bytes, as for a
             * tag (protobuf-c refuses a longer one, zero padding or not). */
            if (!read_varint(p, len, &pos, 5, &v))
                return pb_fail(err, "bad_message", "truncated or overlong length at byte %u", pos);
            if (v > len - pos)
                return pb_fail(err, "bad_message",
                               "field %u at byte %u: length %llu runs past the end",
                               (unsigned)field, at, (unsigned long long)v);
            s = p + pos;
            n = (uint32_t)v;
            pos += n;
            break;
        default:
            return pb_fail(err, "bad_message", "field %u at byte %u is %s, which is not supported",
                           (unsigned)field, at, wire_names[wire]);
        }
        if (field > PB_FIELD_MAX)
            continue; /* unknown (or reserved for later): skipped */
        if (wire != expected_wire(field)) {
            if (field == PB_TYPE) {
                w.type_wire_bad = 1;
            } else if (!w.field_bad) {
                w.field_bad = pb_fail(&w.field_err, "bad_field", "\"%s\" must be %s, not %s",
                                      pb_field_names[field], wire_names[expected_wire(field)],
                                      wire_names[wire]) != 0;
            }
            continue;
        }
        if (field == PB_TYPE) {
            w.type_seen = 1;
            w.type = v;
        } else {
            check_value(&w, field, v, s, n);
        }
    }

    if (w.type_wire_bad)
        return pb_fail(err, "bad_field", "\"type\" must be a varint (the Type enum)");
    if (!w.type_seen || w.type == 0)
        return pb_fail(err, "missing_field", "the \"type\" field is missing");
    if (w.type >= NB_MSG_TYPE_COUNT)
        return pb_fail(err, "unknown_type", "\"type\" is not a known message type");
    if (w.field_bad) {
        if (err) {
            memcpy(err->code, w.field_err.code, sizeof err->code);
            memcpy(err->reason, w.field_err.reason, sizeof err->reason);
        }
        return NB_ERR_INVALID;
    }
    return NB_OK;
}
