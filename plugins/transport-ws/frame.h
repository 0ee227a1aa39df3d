/*
 * frame.h — RFC 6455 helpers that need no socket: the server frame header,
 * UTF-8 and close-code validation, and the receive-side frame scanner.
 *
 * The scanner walks the client's byte stream frame by frame, ahead of
 * wslay. It exists for three reasons:
 *   - wslay 1.1.1 answers some header errors (control frame over 125 bytes
 *     or fragmented, non-minimal length) with a close frame that carries no
 *     status code; RFC 6455 wants 1002, so the scanner rejects those
 *     headers before wslay sees them;
 *   - close frames are handled here, not by wslay: wslay lets a 1-byte
 *     close payload through, answers a bad reason with 1007 (we answer
 *     1002, as Autobahn expects) and refuses 1012-1014;
 *   - wslay compares a message with max_recv_msg_length only once payload
 *     bytes arrive; the scanner refuses (1009) as soon as a header
 *     announces too much, so nothing waits for a payload never accepted;
 *   - it counts pings and pongs against a budget the caller sets
 *     (ctl_limited, ctl_left) and refuses (1008) the first one beyond it,
 *     before wslay queues a pong for it;
 *   - it knows when the stream sits between messages, so the connection
 *     can give its wslay context back and stay small while idle.
 */
#ifndef TWS_FRAME_H
#define TWS_FRAME_H

#include <nebula/codec.h>
#include <nebula/host.h>
#include <stddef.h>
#include <stdint.h>

#define TWS_OP_CONT 0x0u
#define TWS_OP_TEXT 0x1u
#define TWS_OP_BINARY 0x2u
#define TWS_OP_CLOSE 0x8u
#define TWS_OP_PING 0x9u
#define TWS_OP_PONG 0xAu

/* Largest server frame header: 2 bytes + 64-bit length, never a mask. */
#define TWS_FRAME_HEADER_MAX 10u
/* Largest control payload, and the close reason that fits beside a code. */
#define TWS_CONTROL_MAX 125u
#define TWS_CLOSE_REASON_MAX 123u

/* Write the header of an unmasked, final frame; returns its length. */
size_t tws_frame_header(uint8_t *out, uint32_t opcode, uint64_t payload_len);

/*
 * Frame `payload` as a complete message of `frame_kind` (NB_FRAME_TEXT or
 * NB_FRAME_BINARY): the header goes into the headroom when it fits, else
 * into a new buffer. Consumes the caller's reference; returns one, or NULL
 * (out of memory, unknown kind). Thread-safe: it touches only `payload`.
 */
nb_buf *tws_frame_buf(const nb_host *host, uint32_t frame_kind, nb_buf *payload);

/* 1 if p[0..n) is well-formed UTF-8 (no overlongs, no surrogates, nothing
 * above U+10FFFF), else 0. */
int tws_utf8_valid(const uint8_t *p, size_t n);

/* 1 if a peer may send `code` in a close frame (RFC 6455 7.4 and the IANA
 * registry): 1000-1003, 1007-1014 and 3000-4999. */
int tws_close_code_valid(uint32_t code);

/* Build a close payload (code, then the reason cut to 123 bytes at a
 * character boundary) into out[TWS_CONTROL_MAX]; returns its length. */
size_t tws_close_payload(uint8_t *out, uint32_t code, const char *reason);

/* ---- the receive scanner ---------------------------------------------- */

#define TWS_SCAN_MORE 0  /* all input examined; frames may continue later */
#define TWS_SCAN_CLOSE 1 /* a whole close frame arrived: ctl[0..ctl_len) */
#define TWS_SCAN_ERROR 2 /* refused: close with error_code (1002, 1008 or 1009) */

typedef struct tws_scan {
    uint64_t max_message;         /* longest data message (0: no limit) */
    uint64_t msg_len;             /* the current data message's length so far */
    uint64_t remaining;           /* payload bytes of the current frame still to come */
    const char *error;            /* why, after TWS_SCAN_ERROR */
    uint32_t error_code;          /* the close code to answer it with */
    uint32_t ctl_left;            /* with ctl_limited: pings and pongs still allowed */
    uint8_t ctl_limited;          /* 0: control frames are not counted */
    uint8_t hdr[14];              /* the header being collected */
    uint8_t hdr_len;              /* bytes of it so far; 0 between frames */
    uint8_t in_payload;           /* inside a frame's payload */
    uint8_t capturing;            /* that payload is a close frame's */
    uint8_t frag_open;            /* a fragmented data message is under way */
    uint8_t mask[4];              /* the close frame's masking key */
    uint8_t ctl_len;              /* close payload bytes captured */
    uint8_t ctl[TWS_CONTROL_MAX]; /* the close payload, unmasked */
} tws_scan;

typedef struct tws_scan_result {
    int status;      /* TWS_SCAN_* */
    size_t consumed; /* input bytes examined */
    /* What wslay may read, in order: prefix (header bytes that arrived in
     * earlier input), then input[0..pass_end). Only when `pass` was set. */
    uint8_t prefix[14];
    size_t prefix_len;
    size_t pass_end;
} tws_scan_result;

/*
 * Scan in[0..n). With `pass`, every frame except close frames is handed on
 * (prefix + pass_end); without it frames are only skipped, looking for the
 * peer's close frame. Stops after a close frame or an error.
 */
void tws_scan_run(tws_scan *s, const uint8_t *in, size_t n, int pass, tws_scan_result *r);

/* 1 when the stream is between messages: nothing partial to remember. */
int tws_scan_idle(const tws_scan *s);

#endif
