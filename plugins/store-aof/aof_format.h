/*
 * aof_format.h — the store-aof file format, shared by the plugin and
 * tools/nebula-store: the one place that knows how bytes on disk look.
 * Pure functions over memory (no I/O, no allocation), so the decoder can
 * be fuzzed over arbitrary bytes.
 *
 * File = header, then records, all integers little-endian:
 *
 *   header (40 bytes)
 *     0  magic "NEBULAOF"          8
 *     8  format version (1)        u32
 *    12  header size (40)          u32
 *    16  epoch, 16 hex chars       16
 *    32  reserved (0)              u32
 *    36  CRC32C of bytes 0..35     u32
 *
 *   record
 *     0  body length L             u32   (AOF_BODY_MIN..AOF_BODY_MAX)
 *     4  CRC32C of the body        u32
 *     8  CRC32C of bytes 0..7      u32   (a damaged length is caught here,
 *                                         before it is trusted)
 *    12  body                      L bytes:
 *          kind        u32   1 = message, 2 = room mark (last seq only)
 *          seq         u64
 *          ts          i64   ms since the Unix epoch (0 in a mark)
 *          room_len    u32
 *          id_len      u32
 *          sender_len  u32
 *          content_len u32
 *          room, id, sender, content bytes
 *
 * CRC32C is the Castagnoli polynomial (as iSCSI, ext4, RocksDB use), with
 * the SSE4.2 instruction when the CPU has it.
 */
#ifndef NEBULA_AOF_FORMAT_H
#define NEBULA_AOF_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define AOF_MAGIC "NEBULAOF"
#define AOF_VERSION 1u
#define AOF_HEADER_SIZE 40u
#define AOF_EPOCH_LEN 16u
#define AOF_PREFIX_SIZE 12u
#define AOF_BODY_FIXED 36u
#define AOF_BODY_MIN AOF_BODY_FIXED
#define AOF_BODY_MAX ((uint64_t)64 * 1024 * 1024) /* larger is treated as damage */

#define AOF_KIND_MESSAGE 1u
#define AOF_KIND_MARK 2u /* a room's last seq, when compaction kept none of its messages */

/* One decoded record; the byte fields point into the decoded buffer. */
typedef struct aof_record {
    uint32_t kind;
    uint64_t seq;
    int64_t ts;
    const uint8_t *room, *id, *sender, *content;
    uint32_t room_len, id_len, sender_len, content_len;
} aof_record;

uint32_t aof_crc32c(uint32_t crc, const void *data, size_t len);

/* Header: encode into 40 bytes; check returns 0 or a static reason. */
void aof_header_encode(uint8_t out[AOF_HEADER_SIZE], const char epoch[AOF_EPOCH_LEN]);
const char *aof_header_check(const uint8_t *data, size_t size, char epoch_out[AOF_EPOCH_LEN + 1]);

/* The encoded size of a record (prefix + body), or 0 when it is too big. */
uint64_t aof_record_size(const aof_record *r);
/* Encode r into out, which has aof_record_size(r) bytes. */
void aof_record_encode(const aof_record *r, uint8_t *out);

/* Outcome of decoding the record at the start of a byte range. */
typedef enum aof_decode_rc {
    AOF_OK = 0,
    AOF_SHORT,      /* the range ends inside the record (a torn write at the end) */
    AOF_BAD_PREFIX, /* length field damaged (its CRC fails, or out of range) */
    AOF_BAD_BODY,   /* body CRC fails */
    AOF_BAD_FIELDS, /* CRCs good, but the fields do not add up (or unknown kind) */
} aof_decode_rc;

/* Decode the record at data[0..size); on AOF_OK fills *r and *len (its
 * whole size, prefix included). */
aof_decode_rc aof_record_decode(const uint8_t *data, size_t size, aof_record *r, uint64_t *len);
const char *aof_decode_reason(aof_decode_rc rc);

/* Scan records from `off` to the end. visit() is called for every good
 * record in order (return nonzero to stop: the scan ends there with
 * AOF_OK). Returns AOF_OK when the records end exactly at `size`, else the
 * reason the record at *bad_off failed. */
typedef int (*aof_visit_fn)(void *user, const aof_record *r, uint64_t off, uint64_t len);
aof_decode_rc aof_scan(const uint8_t *data, uint64_t size, uint64_t off, aof_visit_fn visit,
                       void *user, uint64_t *bad_off);

/* Tail or middle: the offset of the first complete, valid record that
 * starts at any byte after bad_off, or 0 when there is none (the damage is
 * the tail: cutting at bad_off loses nothing that was valid). */
uint64_t aof_find_valid_after(const uint8_t *data, uint64_t size, uint64_t bad_off);

#endif /* NEBULA_AOF_FORMAT_H */
