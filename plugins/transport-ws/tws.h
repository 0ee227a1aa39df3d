/*
 * tws.h — the transport-ws plugin's internal types, shared by its files:
 *
 *   plugin.c    descriptor, vtable, config, create/destroy, the timer
 *   listener.c  listening socket, accept loop, the spare-fd trick
 *   conn.c      connection life, outbound queue, flushing, timeouts
 *   request.c   HTTP requests on a connection: files, core endpoints, upgrade
 *   ws.c        WebSocket receive path (scanner + wslay), send, close
 *   http.c, handshake.c, static.c, frame.c   socket-free helpers (unit tested)
 *
 * Everything here runs on the instance's own loop thread, except
 * tws_frame_buf (frame.h), which the core may call from any thread.
 */
#ifndef TWS_H
#define TWS_H

#include "frame.h"

#include <ev.h>
#include <nebula/host.h>
#include <wslay/wslay.h>

/* Per-instance read buffer: every socket of the thread reads into it. */
#define TWS_RBUF_SIZE ((size_t)64 * 1024)
/* Clean wslay contexts kept for reuse by the next busy connection. */
#define TWS_WSLAY_POOL 8u
#define TWS_LISTEN_BACKLOG 4096
/* Buffers handed to one sendmsg(). */
#define TWS_IOV_MAX 64
/* Queued bytes beyond which output is written without waiting for the
 * loop iteration's end, and — if the socket is full — the connection is
 * no longer read (conn.c: tws_flush_early, update_events). */
#define TWS_QUEUE_SOFT ((int64_t)64 * 1024)
/* Queue slots inside the connection: a delivery to a connection with no
 * backlog (the common case) allocates nothing. A power of two. */
#define TWS_Q_INLINE 2u
/* The timeout walk over every connection is spread over this many ticks
 * (conn.c, tick_cb). */
#define TWS_SWEEP_SLICES 16u
/* A connection accepted into the descriptor reserve must finish its
 * request within this (listener.c). */
#define TWS_RESERVE_DEADLINE_MS 2000
/* The first allocation of a message's assembly buffer (ws.c). */
#define TWS_MSG_MIN_CAP 256u
/* How far the instance's assembly bytes must have fallen from their peak
 * since the last malloc_trim() for it to trim again, and how often at
 * most (ws.c, tws_maybe_trim). */
#define TWS_TRIM_AFTER_BYTES ((uint64_t)1024 * 1024)
#define TWS_TRIM_EVERY_MS 1000

typedef struct tws_config {
    uint64_t max_message_bytes;
    uint32_t max_header_bytes;
    uint32_t ping_interval_ms;
    uint32_t pong_timeout_ms;
    uint32_t close_timeout_ms;
    uint32_t handshake_timeout_ms;
    uint32_t message_timeout_ms;
    uint32_t control_frames_per_second;
    uint32_t fd_reserve;
} tws_config;

/* Connection states. */
#define TWS_HTTP 0u    /* reading a request head */
#define TWS_OPEN 1u    /* WebSocket open */
#define TWS_CLOSING 2u /* we sent a close frame; waiting for the peer's */
#define TWS_LINGER 3u  /* done: flush, shut down writing, wait for EOF */

/* Receive state, allocated only while a connection is inside a frame or a
 * fragmented message (see ws.c). */
typedef struct tws_rx {
    tws_scan scan;
    wslay_event_context_ptr ws; /* NULL until wslay has bytes to read */
    int64_t started_ms;         /* when the stream stopped being between messages */
    uint8_t *msg;               /* the data message being assembled (wslay does not buffer) */
    uint32_t msg_len, msg_cap;
    uint8_t in_data; /* the frame wslay is reading belongs to msg */
} tws_rx;

typedef struct tws tws;
typedef struct nb_conn nb_conn;

struct nb_conn {
    ev_io io; /* io.data = this conn; io.fd is the socket */
    tws *t;
    struct nb_session *session;              /* set from the upgrade until conn_closed */
    struct nb_conn *prev, *next;             /* every conn of the instance */
    struct nb_conn *dirty_prev, *dirty_next; /* queued output, not yet tried */
    nb_buf **q;                              /* ring of outbound buffers */
    uint32_t q_cap, q_head, q_len, q_off;    /* q_off: bytes of q[head] written */
    nb_buf *q_inline[TWS_Q_INLINE];          /* q while at most TWS_Q_INLINE wait */
    int64_t queued;                          /* bytes waiting in q */
    nb_buf *wtail;                           /* our own last buffer in q, may grow */
    tws_rx *rx;
    uint64_t reported; /* bytes last told to the core (tws_report_memory) */
    uint8_t *hbuf;     /* a request head that arrived in pieces */
    uint32_t hlen;
    int64_t last_rx_ms;    /* last bytes from the peer */
    int64_t last_ping_ms;  /* last ping we sent */
    int64_t deadline_ms;   /* HTTP, CLOSING, LINGER: when to give up */
    int64_t ctl_window_ms; /* start of the second control frames are counted in */
    uint32_t ctl_count;    /* pings and pongs received in that second */
    uint16_t close_code;   /* the close code we sent, once close_sent */
    uint16_t rx_fail;      /* a close code our own checks chose mid-read */
    uint8_t state;
    uint8_t dirty;
    uint8_t close_sent; /* a close frame is queued: nothing may follow it */
    uint8_t shut_wr;
    uint8_t want_write;
    uint8_t peer_eof;
    uint8_t in_message; /* inside host->conn_message with rx->msg */
    uint8_t reserved;   /* accepted on a reserve descriptor: HTTP endpoints only */
};

struct tws {
    const nb_host *host;
    struct nb_plugin_ctx *ctx;
    struct ev_loop *loop;
    const nb_server_info *info;
    tws_config cfg;
    char *web_root; /* realpath of info->web_root, or NULL: no files */
    int started;

    /* listener.c */
    int lfd;
    int *spare;       /* the descriptor reserve: /dev/null, cfg.fd_reserve of them */
    uint32_t n_spare; /* open now */
    ev_io accept_w;
    ev_timer accept_pause;
    int64_t emfile_logged_ms;
    uint64_t emfile_refused;

    /* conn.c */
    ev_prepare flush_w;
    ev_timer tick_w;
    nb_conn *conns;
    nb_conn *dirty;
    nb_conn *sweep;      /* the next connection the timeout walk checks */
    uint32_t sweep_left; /* slices left in the walk's round; 0: start one */
    uint64_t n_conns;
    uint8_t *rbuf;
    nb_buf *ping; /* one shared empty ping frame */

    /* request.c: NUL-terminated copies for the host calls */
    char *scratch;
    size_t scratch_len;

    /* ws.c: what the wslay recv callback serves, and for whom */
    nb_conn *cur;
    const uint8_t *feed[2];
    size_t feed_len[2];
    wslay_event_context_ptr pool[TWS_WSLAY_POOL];
    uint32_t n_pool;
    /* host->conn_memory (ABI 1.2), or NULL with an older core */
    void (*conn_memory)(struct nb_session *session, uint64_t bytes);
    uint64_t asm_held; /* bytes of this instance's assembly buffers */
    uint64_t asm_peak; /* their highest since the last malloc_trim */
    int64_t last_trim_ms;

    struct {
        struct nb_metric *accepted, *refused, *upgrades, *http_requests, *protocol_errors,
            *heartbeat_timeouts, *bytes_in, *bytes_out, *sockets, *too_large, *control_flood,
            *message_timeouts, *reserve_served, *assembly_bytes, *trims;
    } m;
};

/* ---- conn.c */
int64_t tws_now_ms(const tws *t);
nb_conn *tws_conn_new(tws *t, int fd);
/* Close the socket and free everything; never calls conn_closed. */
void tws_conn_destroy(nb_conn *c);
/* Tell the core the connection is over (once; a no-op without a session). */
void tws_conn_detach(nb_conn *c, uint32_t code);
/* Queue a buffer; takes over the caller's reference. 0 or -1 (no memory:
 * the reference is dropped). */
int tws_queue(nb_conn *c, nb_buf *b);
/* Queue a copy of bytes (small: control frames, HTTP heads). 0 or -1. */
int tws_queue_copy(nb_conn *c, const void *data, size_t len);
/* Write now if much is queued (from inside send(); never destroys). */
void tws_flush_early(nb_conn *c);
/* Nothing more to receive: flush what is queued, then close. */
void tws_conn_linger(nb_conn *c);
void tws_conn_start(tws *t);
void tws_conn_stop(tws *t);
void tws_conn_free_all(tws *t);

/* ---- request.c: a readable socket in TWS_HTTP. -1: destroy the conn. */
int tws_http_readable(tws *t, nb_conn *c);

/* ---- ws.c */
/* Bytes from the peer of an open or closing WebSocket. -1: destroy. */
int tws_ws_input(tws *t, nb_conn *c, const uint8_t *p, size_t n);
/* Queue a close frame (first one only) and note the code. 0 or -1. */
int tws_ws_queue_close(nb_conn *c, uint32_t code, const char *reason);
/* Free the receive state (the wslay context back to the pool if clean). */
void tws_ws_release(nb_conn *c);
void tws_ws_pool_free(tws *t);
int64_t tws_ws_send(struct nb_conn *c, nb_buf *frame);
void tws_ws_close(struct nb_conn *c, uint32_t code, const char *reason);

/* Tell the core what this connection holds now (assembly buffer and
 * output queue) when it moved by TWS_REPORT_STEP or more, or to 0. */
void tws_report_memory(nb_conn *c);
#define TWS_REPORT_STEP 4096u

/* Give back the heap after assembly buffers were freed (glibc only). */
void tws_maybe_trim(tws *t);

/* ---- listener.c */
int tws_listen_start(tws *t);
void tws_listen_stop(tws *t);
/* Every descriptor the transport creates (accept, static files) is made
 * under this process-wide lock, so that the moment a reserve descriptor
 * is closed to make room, no other thread of ours takes the slot. */
void tws_fd_lock(void);
void tws_fd_unlock(void);
/* Close a connection's socket; one on a reserve descriptor goes back to
 * the reserve. */
void tws_fd_close(tws *t, nb_conn *c);
/* Reopen reserve descriptors lost to other code's open() (from the tick). */
void tws_fd_refill(tws *t);

#endif
