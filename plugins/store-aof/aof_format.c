/*
 * aof_format.c — encode, decode and checksum store-aof records
 * (aof_format.h describes the layout). No I/O: the plugin and
 * tools/nebula-store hand in bytes (a mapped file, a write buffer).
 */
#include "aof_format.h"

#include <pthread.h>
#include <string.h>

/* ---- CRC32C --------------------------------------------------------------- */

#define CRC32C_POLY 0x82F63B78u /* Castagnoli, bit-reflected */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[i] = c;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t crc_soft(uint32_t crc, const uint8_t *p, size_t len) {
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
/* The SSE4.2 crc32 instruction computes exactly this polynomial, 8 bytes
 * a step: about 20 times the table's speed, which is what makes scanning
 * a large file at start-up cheap. */
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p,
                                                            size_t len) {
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t aof_crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc_sse42(crc, data, len);
#endif
    return ~crc_soft(crc, data, len);
}

/* ---- little-endian fields -------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) {
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- header ---------------------------------------------------------------- */

void aof_header_encode(uint8_t out[AOF_HEADER_SIZE], const char epoch[AOF_EPOCH_LEN]) {
    static const uint8_t magic[8] = {'N', 'E', 'B', 'U', 'L', 'A', 'O', 'F'};
    memcpy(out, magic, sizeof magic);
    put32(out + 8, AOF_VERSION);
    put32(out + 12, AOF_HEADER_SIZE);
    memcpy(out + 16, epoch, AOF_EPOCH_LEN);
    put32(out + 32, 0);
    put32(out + 36, aof_crc32c(0, out, 36));
}

const char *aof_header_check(const uint8_t *data, size_t size, char epoch_out[AOF_EPOCH_LEN + 1]) {
    if (size < 8 || memcmp(data, AOF_MAGIC, 8) != 0)
        return "not a store-aof file (no NEBULAOF magic at offset 0)";
    if (size < AOF_HEADER_SIZE)
        return "the file header is cut short";
    if (get32(data + 36) != aof_crc32c(0, data, 36))
        return "the file header is damaged (its checksum fails)";
    if (get32(data + 8) != AOF_VERSION)
        return "unknown format version (written by a newer store-aof?)";
    if (get32(data + 12) != AOF_HEADER_SIZE)
        return "unexpected header size";
    for (uint32_t i = 0; i < AOF_EPOCH_LEN; i++) {
        char c = (char)data[16 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return "the epoch in the header is not 16 hex digits";
        epoch_out[i] = c;
    }
    epoch_out[AOF_EPOCH_LEN] = '\0';
    return NULL;
}

/* ---- records --------------------------------------------------------------- */

uint64_t aof_record_size(const aof_record *r) {
    uint64_t body = (uint64_t)AOF_BODY_FIXED + r->room_len + r->id_len + r->sender_len +
                    (uint64_t)r->content_len;
    return body > AOF_BODY_MAX ? 0 : AOF_PREFIX_SIZE + body;
}

static uint8_t *put_bytes(uint8_t *p, const uint8_t *src, uint32_t len) {
    if (len)
        memcpy(p, src, len);
    return p + len;
}

void aof_record_encode(const aof_record *r, uint8_t *out) {
    uint32_t body_len = (uint32_t)(aof_record_size(r) - AOF_PREFIX_SIZE);
    uint8_t *b = out + AOF_PREFIX_SIZE;
    put32(b, r->kind);
    put64(b + 4, r->seq);
    put64(b + 12, (uint64_t)r->ts);
    put32(b + 20, r->room_len);
    put32(b + 24, r->id_len);
    put32(b + 28, r->sender_len);
    put32(b + 32, r->content_len);
    uint8_t *p = b + AOF_BODY_FIXED;
    p = put_bytes(p, r->room, r->room_len);
    p = put_bytes(p, r->id, r->id_len);
    p = put_bytes(p, r->sender, r->sender_len);
    put_bytes(p, r->content, r->content_len);
    put32(out, body_len);
    put32(out + 4, aof_crc32c(0, b, body_len));
    put32(out + 8, aof_crc32c(0, out, 8));
}

aof_decode_rc aof_record_decode(const uint8_t *data, size_t size, aof_record *r, uint64_t *len) {
    if (size < AOF_PREFIX_SIZE)
        return AOF_SHORT;
    if (get32(data + 8) != aof_crc32c(0, data, 8))
        return AOF_BAD_PREFIX;
    uint32_t body_len = get32(data);
    if (body_len < AOF_BODY_MIN || body_len > AOF_BODY_MAX)
        return AOF_BAD_PREFIX;
    if (size - AOF_PREFIX_SIZE < body_len)
        return AOF_SHORT;
    const uint8_t *b = data + AOF_PREFIX_SIZE;
    if (get32(data + 4) != aof_crc32c(0, b, body_len))
        return AOF_BAD_BODY;
    r->kind = get32(b);
    r->seq = get64(b + 4);
    r->ts = (int64_t)get64(b + 12);
    r->room_len = get32(b + 20);
    r->id_len = get32(b + 24);
    r->sender_len = get32(b + 28);
    r->content_len = get32(b + 32);
    uint64_t want = (uint64_t)AOF_BODY_FIXED + r->room_len + r->id_len + r->sender_len +
                    (uint64_t)r->content_len;
    if (want != body_len || (r->kind != AOF_KIND_MESSAGE && r->kind != AOF_KIND_MARK) ||
        r->room_len == 0 || r->seq == 0)
        return AOF_BAD_FIELDS;
    r->room = b + AOF_BODY_FIXED;
    r->id = r->room + r->room_len;
    r->sender = r->id + r->id_len;
    r->content = r->sender + r->sender_len;
    *len = AOF_PREFIX_SIZE + (uint64_t)body_len;
    return AOF_OK;
}

const char *aof_decode_reason(aof_decode_rc rc) {
    switch (rc) {
    case AOF_OK:
        return "ok";
    case AOF_SHORT:
        return "record cut short (torn write)";
    case AOF_BAD_PREFIX:
        return "damaged length field (prefix checksum fails)";
    case AOF_BAD_BODY:
        return "damaged record (body checksum fails)";
    case AOF_BAD_FIELDS:
        return "malformed record (fields do not add up)";
    }
    return "unknown";
}

aof_decode_rc aof_scan(const uint8_t *data, uint64_t size, uint64_t off, aof_visit_fn visit,
                       void *user, uint64_t *bad_off) {
    while (off < size) {
        aof_record r;
        uint64_t len = 0;
        aof_decode_rc rc = aof_record_decode(data + off, (size_t)(size - off), &r, &len);
        if (rc != AOF_OK) {
            *bad_off = off;
            return rc;
        }
        if (visit && visit(user, &r, off, len))
            return AOF_OK;
        off += len;
    }
    *bad_off = size;
    return AOF_OK;
}

uint64_t aof_find_valid_after(const uint8_t *data, uint64_t size, uint64_t bad_off) {
    for (uint64_t off = bad_off + 1; off + AOF_PREFIX_SIZE <= size; off++) {
        aof_record r;
        uint64_t len;
        if (aof_record_decode(data + off, (size_t)(size - off), &r, &len) == AOF_OK)
            return off;
    }
    return 0;
}
