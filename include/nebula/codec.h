/*
 * nebula/codec.h — the codec vtable (kind NB_KIND_CODEC).
 *
 * A codec turns bytes into an nb_msg and back. A connection chooses its
 * codec with the Sec-WebSocket-Protocol header (`subprotocol` below); the
 * first codec in the config's `codecs` list serves clients that ask for
 * none. One codec instance serves every I/O thread: decode, encode and
 * release must be thread-safe (no shared mutable state without locking).
 *
 * Division of labour: the codec checks syntax and field types; the core
 * checks meaning (which fields a type requires, names, membership), so that
 * every codec reports the same semantic errors.
 */
#ifndef NEBULA_CODEC_H
#define NEBULA_CODEC_H

#include <nebula/buf.h>
#include <nebula/msg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Frame kinds a codec produces and accepts (nb_codec_vtable.frame_kind). */
#define NB_FRAME_TEXT 1u   /* WebSocket opcode 0x1; payload must be UTF-8 */
#define NB_FRAME_BINARY 2u /* WebSocket opcode 0x2 */

/*
 * Why decode failed: a stable machine code (see docs/PROTOCOL.md, e.g.
 * "bad_json", "bad_field", "missing_field", "unknown_type") and a human
 * reason. The codec writes NUL-terminated text into these fixed arrays;
 * "bad_message" is the codec-neutral code for input it cannot decode.
 */
typedef struct nb_decode_error {
    uint32_t struct_size;
    uint32_t reserved;
    char code[32];
    char reason[160];
} nb_decode_error;

typedef struct nb_codec_vtable {
    uint32_t struct_size;
    uint32_t frame_kind;     /* NB_FRAME_TEXT or NB_FRAME_BINARY */
    const char *subprotocol; /* e.g. "nebula.json.v1" */

    /*
     * Decode one complete message. On NB_OK, *out is filled; its strings
     * stay valid until release(instance, out). On NB_ERR_INVALID, *err says
     * why and nothing needs releasing. `out` arrives zeroed with struct_size
     * set.
     */
    int32_t (*decode)(void *instance, const uint8_t *data, uint32_t len, nb_msg *out,
                      nb_decode_error *err);

    /* Free what decode attached to msg (codec_data). Safe on a zeroed msg. */
    void (*release)(void *instance, nb_msg *msg);

    /*
     * Encode msg into a new buffer from host->buf_new with at least
     * NB_BUF_HEADROOM bytes of headroom. On NB_OK *out holds one reference
     * that the caller owns.
     */
    int32_t (*encode)(void *instance, const nb_msg *msg, struct nb_buf **out);
} nb_codec_vtable;

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_CODEC_H */
