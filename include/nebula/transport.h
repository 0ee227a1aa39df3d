/*
 * nebula/transport.h — the transport vtable (kind NB_KIND_TRANSPORT).
 *
 * A transport owns sockets and wire framing (HTTP, WebSocket). The core
 * creates ONE INSTANCE PER I/O THREAD; each instance runs on the libev loop
 * returned by host->loop(ctx) and must only be used from that thread. With
 * more than one I/O thread every instance listens on the same address with
 * SO_REUSEPORT (host->server_info says how many workers there are).
 *
 * Life of a connection, as seen by the core:
 *
 *   1. A WebSocket upgrade request arrives and passes the transport's own
 *      RFC 6455 checks. The transport calls host->conn_open(). The core
 *      either rejects it with an HTTP status, or accepts it, names the
 *      subprotocol to echo, and returns its session handle.
 *   2. The transport writes "101 Switching Protocols", then calls
 *      host->conn_established(session). From here on the core may call
 *      send() and close() for this conn.
 *   3. Each complete, valid data message (defragmented; text already checked
 *      as UTF-8) goes to host->conn_message(session, ...).
 *   4. When the connection is gone, for whatever reason, the transport calls
 *      host->conn_closed(session, code) exactly once; after it returns the
 *      core never uses the conn again and the transport frees it. This holds
 *      for every accepted conn, even one that never reached step 2.
 *
 * Plain HTTP requests go first to host->http_request() (the core answers
 * /healthz, /readyz, /metrics); whatever the core declines, the transport
 * may serve from host->server_info(ctx)->web_root.
 */
#ifndef NEBULA_TRANSPORT_H
#define NEBULA_TRANSPORT_H

#include <nebula/buf.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nb_conn; /* the transport's handle for one connection (opaque to the core) */

typedef struct nb_transport_vtable {
    uint32_t struct_size;
    uint32_t reserved;

    /* Bind and listen (host->server_info) and start accepting on the
     * instance's loop. Called once, before the loop's thread starts (so
     * every instance has bound before any runs). Returns NB_OK, or an
     * NB_ERR_* code after logging why (e.g. the address is in use). */
    int32_t (*start)(void *instance);

    /* Stop accepting new connections; existing ones go on. Idempotent. */
    void (*stop_accepting)(void *instance);

    /*
     * Turn a payload into a complete frame of `frame_kind` (NB_FRAME_TEXT
     * or NB_FRAME_BINARY, see codec.h). Consumes the caller's reference to
     * `payload` and returns a buffer holding one reference for the caller
     * (usually the same buffer, header written into its headroom), or NULL
     * when out of memory. Pure function of its inputs: may be called from
     * any thread. Server frames are unmasked, so one framed buffer serves
     * every recipient.
     */
    struct nb_buf *(*frame)(void *instance, uint32_t frame_kind, struct nb_buf *payload);

    /*
     * Queue a framed buffer for one connection; the transport takes its own
     * reference (host->buf_ref) and drops it once written. Returns the bytes
     * now queued for this connection (>= 0: the core's slow-consumer policy
     * reads it) or NB_ERR_CLOSED if the connection is closing.
     */
    int64_t (*send)(struct nb_conn *conn, struct nb_buf *frame);

    /*
     * Start the close handshake with `code` and `reason` (at most 123
     * bytes of UTF-8). Frames already queued are written first.
     * host->conn_closed() follows, possibly later.
     */
    void (*close)(struct nb_conn *conn, uint32_t code, const char *reason);
} nb_transport_vtable;

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_TRANSPORT_H */
