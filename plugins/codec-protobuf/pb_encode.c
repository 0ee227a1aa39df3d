/*
 * pb_encode.c — nb_msg to nebula.v1.Envelope bytes, written by hand.
 *
 * The encoder runs once per broadcast per codec in use, on the hot path.
 * protobuf-c's packer wants NUL-terminated strings, which nb_msg does not
 * have, so it would need a copy of every string; instead the exact size is
 * computed first and the fields are written straight into one nb_buf, in
 * field-number order (the order protobuf-c and every other packer use, so
 * the bytes are the canonical encoding). The unit tests check the output
 * against protobuf-c's unpacker and packer.
 */
#include "pb.h"

#include <string.h>

static const uint8_t replacement[3] = {0xEF, 0xBF, 0xBD}; /* U+FFFD */

static uint32_t varint_size(uint64_t v) {
    uint32_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* The string's size on the wire: each byte that is not part of valid
 * UTF-8 becomes U+FFFD (proto3 strings are UTF-8, and a client's decoder
 * may refuse anything else). Every decoder of ours already refuses such
 * bytes, so this is a guard, and its fast path is a plain scan. */
static uint64_t clean_size(const uint8_t *s, uint32_t n) {
    uint64_t out = 0;
    for (uint32_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            i++;
            out++;
            continue;
        }
        uint32_t k = pb_utf8_seq(s + i, n - i);
        out += k ? k : sizeof replacement;
        i += k ? k : 1;
    }
    return out;
}

static uint8_t *put_clean(uint8_t *p, const uint8_t *s, uint32_t n, uint64_t clean) {
    if (clean == n) {
        memcpy(p, s, n);
        return p + n;
    }
    for (uint32_t i = 0; i < n;) {
        uint32_t k = s[i] < 0x80 ? 1 : pb_utf8_seq(s + i, n - i);
        if (k) {
            memcpy(p, s + i, k);
            p += k;
            i += k;
        } else {
            memcpy(p, replacement, sizeof replacement);
            p += sizeof replacement;
            i++;
        }
    }
    return p;
}

/* Every field number is below 16, so every tag is one byte. */
#define TAG(field, wire) ((uint8_t)((field) << 3 | (wire)))

/* The strings of the envelope in field-number order (users apart). */
typedef struct str_field {
    uint32_t field;
    const nb_str *s;
    uint64_t clean;
} str_field;

static uint64_t string_size(const nb_str *s, uint64_t *clean) {
    *clean = clean_size((const uint8_t *)s->ptr, s->len);
    return 1 + varint_size(*clean) + *clean;
}

static uint8_t *put_string(uint8_t *p, uint32_t field, const nb_str *s, uint64_t clean) {
    *p++ = TAG(field, PB_LEN);
    p = put_varint(p, clean);
    return put_clean(p, (const uint8_t *)s->ptr, s->len, clean);
}

int32_t pb_encode(const nb_host *host, const nb_msg *msg, struct nb_buf **out) {
    *out = NULL;
    if (msg->type == NB_MSG_NONE || msg->type >= NB_MSG_TYPE_COUNT)
        return NB_ERR_INVALID;
    str_field head[] = {
        {PB_ROOM, &msg->room, 0}, {PB_SENDER, &msg->sender, 0}, {PB_CONTENT, &msg->content, 0}};
    str_field tail[] = {{PB_ID, &msg->id, 0}, {PB_CODE, &msg->code, 0}, {PB_EPOCH, &msg->epoch, 0}};
    int since = (msg->flags & NB_MSG_F_SINCE) != 0;
    int incomplete = (msg->flags & NB_MSG_F_INCOMPLETE) != 0;

    uint64_t size = 1 + varint_size(msg->type);
    for (size_t i = 0; i < 3; i++) {
        if (head[i].s->ptr)
            size += string_size(head[i].s, &head[i].clean);
        if (tail[i].s->ptr)
            size += string_size(tail[i].s, &tail[i].clean);
    }
    if (msg->users)
        for (uint32_t i = 0; i < msg->n_users; i++) {
            uint64_t clean;
            size += string_size(&msg->users[i], &clean); /* a NULL entry is "" */
        }
    if (msg->ts != 0)
        size += 1 + varint_size((uint64_t)msg->ts);
    if (msg->seq != 0)
        size += 1 + varint_size(msg->seq);
    if (since)
        size += 1 + varint_size(msg->since);
    if (incomplete)
        size += 2;
    if (size > UINT32_MAX - NB_BUF_HEADROOM)
        return NB_ERR_NOMEM;

    nb_buf *b = host->buf_new(NB_BUF_HEADROOM, (uint32_t)size);
    if (!b)
        return NB_ERR_NOMEM;
    uint8_t *p = b->data + b->len;
    *p++ = TAG(PB_TYPE, PB_VARINT);
    p = put_varint(p, msg->type);
    for (size_t i = 0; i < 3; i++)
        if (head[i].s->ptr)
            p = put_string(p, head[i].field, head[i].s, head[i].clean);
    if (msg->users)
        for (uint32_t i = 0; i < msg->n_users; i++) {
            const nb_str *u = &msg->users[i];
            nb_str empty = {"", 0, 0};
            if (!u->ptr)
                u = &empty;
            p = put_string(p, PB_USERS, u, clean_size((const uint8_t *)u->ptr, u->len));
        }
    if (tail[0].s->ptr)
        p = put_string(p, PB_ID, tail[0].s, tail[0].clean);
    if (msg->ts != 0) {
        *p++ = TAG(PB_TS, PB_VARINT);
        p = put_varint(p, (uint64_t)msg->ts); /* int64: two's complement, 10 bytes if < 0 */
    }
    if (tail[1].s->ptr)
        p = put_string(p, PB_CODE, tail[1].s, tail[1].clean);
    if (msg->seq != 0) {
        *p++ = TAG(PB_SEQ, PB_VARINT);
        p = put_varint(p, msg->seq);
    }
    if (since) {
        *p++ = TAG(PB_SINCE, PB_VARINT);
        p = put_varint(p, msg->since);
    }
    if (tail[2].s->ptr)
        p = put_string(p, PB_EPOCH, tail[2].s, tail[2].clean);
    if (incomplete) {
        *p++ = TAG(PB_INCOMPLETE, PB_VARINT);
        *p++ = 1;
    }
    uint32_t used = (uint32_t)(p - (b->data + b->len));
    b->len += used;
    b->tailroom -= used;
    *out = b;
    return NB_OK;
}
