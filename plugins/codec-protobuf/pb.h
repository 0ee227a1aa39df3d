/*
 * pb.h — what the files of codec-protobuf share: the envelope's field
 * numbers (proto/nebula.proto; checked against the generated descriptor
 * when the plugin is created), the wire check and the encoder.
 */
#ifndef NEBULA_CODEC_PB_H
#define NEBULA_CODEC_PB_H

#include <nebula/buf.h>
#include <nebula/codec.h>
#include <nebula/host.h>
#include <nebula/msg.h>
#include <stdint.h>

/* Field numbers of nebula.v1.Envelope. */
enum {
    PB_TYPE = 1,
    PB_ROOM = 2,
    PB_SENDER = 3,
    PB_CONTENT = 4,
    PB_USERS = 5,
    PB_ID = 6,
    PB_TS = 7,
    PB_CODE = 8,
    PB_SEQ = 9,
    PB_SINCE = 10,
    PB_EPOCH = 11,
    PB_INCOMPLETE = 12,
    PB_FIELD_MAX = 12
};

/* Wire types (protobuf encoding). */
enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_SGROUP = 3, PB_EGROUP = 4, PB_I32 = 5 };

/* Envelope field names, indexed by field number; NULL for none. */
extern const char *const pb_field_names[PB_FIELD_MAX + 1];

/* The largest seq, since and |ts| the codec accepts: 2^53, as in JSON, so
 * that both codecs accept the same messages and JavaScript reads them
 * exactly. */
#define PB_INT_LIMIT (UINT64_C(1) << 53)

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes left) that
 * starts with a non-ASCII byte, or 0 (RFC 3629: no overlongs, surrogates
 * or code points above U+10FFFF). */
uint32_t pb_utf8_seq(const uint8_t *s, uint32_t n);

/*
 * Walk the top-level fields of an encoded Envelope before protobuf-c sees
 * it, so that every problem gets a precise error (protobuf-c only says
 * "no"). Structure — truncated or overlong varints, lengths past the end,
 * field number 0, groups, wire types 6 and 7 — is "bad_message". A known
 * field with the wrong wire type, a string that is not UTF-8 or holds a
 * NUL (the core's strings cannot), seq or since above 2^53, ts beyond
 * ±2^53 are "bad_field", reported only once the type is known to be
 * present and valid, as the JSON codec does. Unknown fields are skipped.
 * More than max_fields fields in all is "too_complex": protobuf-c makes an
 * allocation for every unknown field and every repeated entry, so a frame
 * of thousands of tiny fields would cost thousands of allocations.
 * Returns NB_OK or NB_ERR_INVALID with *err filled.
 */
int32_t pb_check(const uint8_t *p, uint32_t len, uint32_t max_fields, nb_decode_error *err);

/* Fill *err; returns NB_ERR_INVALID. */
int32_t pb_fail(nb_decode_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Encode msg as an Envelope into a new buffer with NB_BUF_HEADROOM. */
int32_t pb_encode(const nb_host *host, const nb_msg *msg, struct nb_buf **out);

#endif /* NEBULA_CODEC_PB_H */
