/*
 * nebula/buf.h — reference-counted byte buffers shared across the boundary.
 *
 * A broadcast is encoded once per codec and framed once; every recipient's
 * outbound queue then holds a reference to the same nb_buf. Buffers are
 * allocated by the host (host->buf_new) with free space before `data`
 * (headroom) so a transport can prepend its frame header in place, without
 * copying the payload.
 *
 * Rules:
 *   - Only the host allocates and frees buffers. Take a reference with
 *     host->buf_ref, drop it with host->buf_unref; the last unref frees.
 *   - Reference counting is atomic: a buffer may be shared between I/O
 *     threads. Its bytes must not change once a second reference exists.
 *   - `data` may move backwards into the headroom (a transport writing its
 *     frame header there), or the buffer be reallocated (buf_reserve),
 *     only while the caller holds the one and only reference.
 */
#ifndef NEBULA_BUF_H
#define NEBULA_BUF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Headroom that covers the largest WebSocket server frame header (2+8). */
#define NB_BUF_HEADROOM 16u

typedef struct nb_buf {
    uint32_t struct_size; /* sizeof(nb_buf) */
    uint32_t len;         /* bytes of payload at data[0..len) */
    uint8_t *data;        /* payload start */
    uint32_t headroom;    /* bytes free before data */
    uint32_t tailroom;    /* bytes free after data + len */
} nb_buf;

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_BUF_H */
