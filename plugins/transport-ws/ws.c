/*
 * ws.c — the WebSocket side of a connection: receive (frame scanner, then
 * wslay), send, close.
 *
 * Memory of an idle connection. A wslay event context carries two 4 KiB
 * buffers (its frame reader's input buffer and its fragment output
 * buffer), so connections do not own one. Bytes are read into the
 * instance's (thread's) 64 KiB buffer; the scanner (frame.h) walks them
 * and wslay reads them through its recv callback. While a connection is
 * inside a frame or a fragmented message it holds a tws_rx (the scanner's
 * state, ~180 bytes) and a wslay context; as soon as the stream is between
 * messages both go back — the context, still clean, to a small per-thread
 * pool for the next busy connection. An idle connection holds neither.
 *
 * Memory of a message being assembled. wslay runs without buffering
 * (wslay_event_config_set_no_buffering): left to itself it would allocate
 * the whole length a frame header declares, and ~96 bytes of bookkeeping
 * per fragment. Instead its chunk callback appends the unmasked payload to
 * one buffer per connection (tws_rx.msg) that doubles as bytes arrive, up
 * to max_message_bytes, which the scanner enforces over all fragments. So
 * the memory of an unfinished message is at most what the peer really
 * sent, times two, and never more than max_message_bytes, however it is
 * fragmented; message_timeout_ms bounds how long it may be held
 * (conn.c). The buffer is freed with the receive state at the next message
 * boundary, and tws_maybe_trim gives the heap back after a spike.
 *
 * Output never goes through wslay's queue (wslay_event_queue_msg copies
 * the payload for every call): frames from the core are queued as they
 * are, by reference. The only frames wslay writes are its pongs and the
 * close frames for errors it finds; its send callback appends them to the
 * same ordered queue, whole, so they can never land inside another frame.
 * Our own close frames (core's close(), errors found by the scanner,
 * replies to the peer's close) are built here.
 */
#include "tws.h"

#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* ---- wslay callbacks: user_data is the instance, t->cur the conn ---- */

static ssize_t recv_cb(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags,
                       void *user) {
    (void)flags;
    tws *t = user;
    size_t n = 0;
    for (int i = 0; i < 2 && n < len; i++) {
        size_t take = t->feed_len[i] < len - n ? t->feed_len[i] : len - n;
        if (take) {
            memcpy(buf + n, t->feed[i], take);
            t->feed[i] += take;
            t->feed_len[i] -= take;
            n += take;
        }
    }
    if (n == 0) {
        wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags,
                       void *user) {
    (void)flags;
    tws *t = user;
    nb_conn *c = t->cur;
    /* After our close frame nothing may follow (RFC 6455 5.5.1): a pong
     * wslay still owes is dropped. */
    if (c->close_sent)
        return (ssize_t)len;
    if (tws_queue_copy(c, data, len) != 0) {
        wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void frame_start_cb(wslay_event_context_ptr ws,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user) {
    (void)ws;
    tws *t = user;
    /* wslay refuses an orphan continuation before calling this. */
    t->cur->rx->in_data = arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME ||
                          arg->opcode == WSLAY_CONTINUATION_FRAME;
}

/* Grow the assembly buffer to hold `need` bytes: doubling, never past
 * max_message_bytes (the scanner has already refused anything longer). */
static int msg_reserve(tws *t, tws_rx *rx, uint64_t need) {
    if (need <= rx->msg_cap)
        return 0;
    uint64_t max = t->cfg.max_message_bytes;
    uint64_t cap = rx->msg_cap ? rx->msg_cap : TWS_MSG_MIN_CAP;
    while (cap < need)
        cap *= 2;
    if (cap > max)
        cap = need > max ? need : max;
    if (cap > UINT32_MAX)
        return -1;
    uint8_t *m = realloc(rx->msg, (size_t)cap);
    if (!m)
        return -1;
    t->host->metric_add(t->m.assembly_bytes, (int64_t)(cap - rx->msg_cap));
    t->asm_held += cap - rx->msg_cap;
    if (t->asm_held > t->asm_peak)
        t->asm_peak = t->asm_held;
    rx->msg = m;
    rx->msg_cap = (uint32_t)cap;
    return 0;
}

static void chunk_cb(wslay_event_context_ptr ws,
                     const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user) {
    tws *t = user;
    nb_conn *c = t->cur;
    tws_rx *rx = c->rx;
    if (!rx->in_data || !arg->data_length || c->rx_fail || c->state != TWS_OPEN)
        return; /* a closing connection assembles nothing (drop_message) */
    if (msg_reserve(t, rx, (uint64_t)rx->msg_len + arg->data_length) != 0) {
        c->rx_fail = 1011;
        wslay_event_shutdown_read(ws);
        return;
    }
    memcpy(rx->msg + rx->msg_len, arg->data, arg->data_length);
    rx->msg_len += (uint32_t)arg->data_length;
    tws_report_memory(c);
}

static void msg_cb(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user) {
    tws *t = user;
    nb_conn *c = t->cur;
    uint32_t kind;
    if (arg->opcode == WSLAY_TEXT_FRAME)
        kind = NB_FRAME_TEXT;
    else if (arg->opcode == WSLAY_BINARY_FRAME)
        kind = NB_FRAME_BINARY;
    else
        return; /* ping (wslay queued the pong) or pong: the read itself was the sign of life */
    tws_rx *rx = c->rx;
    const uint8_t *msg = rx->msg ? rx->msg : (const uint8_t *)"";
    uint32_t len = rx->msg_len;
    rx->msg_len = 0; /* the buffer serves the next message */
    /* After a close (ours or the core's) data is no longer delivered. */
    if (c->state != TWS_OPEN || !c->session || c->rx_fail)
        return;
    /* wslay checks UTF-8 as bytes arrive; checking the whole message again
     * costs little and does not depend on it. */
    if (kind == NB_FRAME_TEXT && !tws_utf8_valid(msg, len)) {
        c->rx_fail = 1007;
        wslay_event_shutdown_read(ws);
        return;
    }
    c->in_message = 1; /* msg must outlive the call, whatever the core does */
    t->host->conn_message(c->session, kind, msg, len);
    c->in_message = 0;
}

/*
 * glibc keeps freed memory in its arenas: after a spike of large or
 * unfinished messages, RSS would stay at the peak. So once the assembly
 * buffers held by this instance have fallen TWS_TRIM_AFTER_BYTES below
 * their peak since the last trim, the free pages are given back — at most
 * once per TWS_TRIM_EVERY_MS. It is keyed on the fall from a peak, not on
 * bytes freed, because malloc_trim walks the whole heap (~1.3 ms per
 * 100 MB, plus ~1.2 ms per MB it releases): steady traffic of small
 * messages frees a lot over time but never builds a peak to give back.
 */
void tws_maybe_trim(tws *t) {
#ifdef __GLIBC__
    if (t->asm_peak - t->asm_held < TWS_TRIM_AFTER_BYTES)
        return;
    int64_t now = tws_now_ms(t);
    if (now - t->last_trim_ms < TWS_TRIM_EVERY_MS)
        return;
    t->asm_peak = t->asm_held;
    t->last_trim_ms = now;
    malloc_trim(0);
    t->host->metric_add(t->m.trims, 1);
#else
    (void)t;
#endif
}

/* ---- the context pool ----------------------------------------------- */

static wslay_event_context_ptr ws_take(tws *t) {
    if (t->n_pool)
        return t->pool[--t->n_pool];
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_msg_recv_callback = msg_cb,
        .on_frame_recv_start_callback = frame_start_cb,
        .on_frame_recv_chunk_callback = chunk_cb,
    };
    wslay_event_context_ptr ws = NULL;
    if (wslay_event_context_server_init(&ws, &callbacks, t) != 0)
        return NULL;
    wslay_event_config_set_max_recv_msg_length(ws, t->cfg.max_message_bytes);
    wslay_event_config_set_no_buffering(ws, 1); /* data is assembled in tws_rx.msg */
    return ws;
}

/* A context between messages, with nothing queued and no close seen,
 * holds no trace of its last connection: it can serve the next one. */
static void ws_give(tws *t, wslay_event_context_ptr ws, int between_messages) {
    if (between_messages && t->n_pool < TWS_WSLAY_POOL && wslay_event_get_read_enabled(ws) &&
        wslay_event_get_write_enabled(ws) && !wslay_event_want_write(ws) &&
        !wslay_event_get_close_received(ws) && !wslay_event_get_close_sent(ws) &&
        wslay_event_get_queued_msg_count(ws) == 0)
        t->pool[t->n_pool++] = ws;
    else
        wslay_event_context_free(ws);
}

void tws_ws_pool_free(tws *t) {
    while (t->n_pool)
        wslay_event_context_free(t->pool[--t->n_pool]);
}

/* A closing connection will deliver no more messages: the one being
 * assembled is let go now rather than when the connection ends, which may
 * be close_timeout_ms later (the memory budget closes the largest holders
 * and counts on getting their memory back). */
static void drop_message(nb_conn *c) {
    tws_rx *rx = c->rx;
    if (!rx || !rx->msg || c->in_message) /* then the end of the read drops it */
        return;
    tws *t = c->t;
    t->host->metric_add(t->m.assembly_bytes, -(int64_t)rx->msg_cap);
    t->asm_held -= rx->msg_cap;
    free(rx->msg);
    rx->msg = NULL;
    rx->msg_cap = rx->msg_len = 0;
    tws_report_memory(c);
}

void tws_ws_release(nb_conn *c) {
    tws_rx *rx = c->rx;
    if (!rx)
        return;
    tws *t = c->t;
    if (rx->ws)
        ws_give(t, rx->ws, tws_scan_idle(&rx->scan));
    if (rx->msg) {
        t->host->metric_add(t->m.assembly_bytes, -(int64_t)rx->msg_cap);
        t->asm_held -= rx->msg_cap;
        free(rx->msg);
    }
    free(rx);
    c->rx = NULL;
}

/* ---- closing -------------------------------------------------------- */

int tws_ws_queue_close(nb_conn *c, uint32_t code, const char *reason) {
    if (c->close_sent)
        return 0;
    c->close_sent = 1;
    c->close_code = (uint16_t)code;
    uint8_t frame[2 + TWS_CONTROL_MAX];
    /* 1005 means "no status": it is sent as an empty close frame. */
    size_t pl = code == 1005 ? 0 : tws_close_payload(frame + 2, code, reason);
    frame[0] = 0x80u | TWS_OP_CLOSE;
    frame[1] = (uint8_t)pl;
    return tws_queue_copy(c, frame, 2 + pl);
}

/* Fail the connection (RFC 6455 7.1.7): close frame, tell the core, and
 * stop listening. */
static int fail(nb_conn *c, uint32_t code, const char *why) {
    tws *t = c->t;
    if (code != 1011)
        t->host->metric_add(t->m.protocol_errors, 1);
    if (code == 1008)
        t->host->metric_add(t->m.control_flood, 1);
    else if (code == 1009)
        t->host->metric_add(t->m.too_large, 1);
    t->host->log(t->ctx, NB_LOG_DEBUG, "closing a connection with %u: %s", code, why);
    tws_ws_queue_close(c, code, why);
    tws_conn_detach(c, c->close_code);
    tws_conn_linger(c);
    return 0;
}

/* The peer's close frame, whole, in the scanner. */
static int peer_close(nb_conn *c) {
    const tws_scan *s = &c->rx->scan;
    uint32_t code = 1005;
    if (s->ctl_len == 1)
        return fail(c, 1002, "close frame with a 1-byte payload");
    if (s->ctl_len >= 2) {
        code = ((uint32_t)s->ctl[0] << 8) | s->ctl[1];
        if (!tws_close_code_valid(code))
            return fail(c, 1002, "invalid close code");
        if (!tws_utf8_valid(s->ctl + 2, s->ctl_len - 2u))
            return fail(c, 1002, "close reason is not UTF-8");
    }
    /* Peer first: echo its code. We first: this is the answer. */
    uint32_t report = c->close_sent ? c->close_code : code;
    tws_ws_queue_close(c, code, NULL);
    tws_conn_detach(c, report);
    tws_conn_linger(c);
    return 0;
}

/* ---- receiving ------------------------------------------------------ */

int tws_ws_input(tws *t, nb_conn *c, const uint8_t *p, size_t n) {
    tws_rx *rx = c->rx;
    if (!rx) {
        rx = calloc(1, sizeof *rx);
        if (!rx)
            return fail(c, 1011, "out of memory");
        rx->scan.max_message = t->cfg.max_message_bytes;
        rx->started_ms = tws_now_ms(t);
        c->rx = rx;
    }
    /* Pings and pongs: at most control_frames_per_second in each second
     * (a window that starts with the first one). Answering a ping costs a
     * pong, so a client that pings in a loop would otherwise get CPU for
     * free; it is closed with 1008 instead. */
    uint32_t ctl_max = t->cfg.control_frames_per_second;
    if (ctl_max) {
        int64_t now = tws_now_ms(t);
        if (now - c->ctl_window_ms >= 1000) {
            c->ctl_window_ms = now;
            c->ctl_count = 0;
        }
        rx->scan.ctl_limited = 1;
        rx->scan.ctl_left = ctl_max - c->ctl_count;
    }
    /* Once we have sent a close, frames are only skipped, looking for the
     * peer's close; wslay is no longer involved. */
    int pass = c->state == TWS_OPEN;
    tws_scan_result r;
    tws_scan_run(&rx->scan, p, n, pass, &r);
    if (ctl_max)
        c->ctl_count = ctl_max - rx->scan.ctl_left;
    if (r.prefix_len || r.pass_end) {
        if (!rx->ws && !(rx->ws = ws_take(t)))
            return fail(c, 1011, "out of memory");
        t->cur = c;
        t->feed[0] = r.prefix;
        t->feed_len[0] = r.prefix_len;
        t->feed[1] = p;
        t->feed_len[1] = r.pass_end;
        int rc = wslay_event_recv(rx->ws);
        if (rc == 0)
            rc = wslay_event_send(rx->ws); /* its pong or close, into our queue */
        t->cur = NULL;
        t->feed_len[0] = t->feed_len[1] = 0;
        if (rc != 0)
            return fail(c, 1011, "wslay failed");
        if (!c->close_sent && wslay_event_get_close_sent(rx->ws)) {
            /* wslay refused a frame (1002), bad UTF-8 (1007) or a message
             * over max_message_bytes (1009); its close frame is queued. */
            c->close_sent = 1;
            c->close_code = wslay_event_get_status_code_sent(rx->ws);
            return fail(c, c->close_code, "refused by wslay");
        }
        if (c->rx_fail)
            return fail(c, c->rx_fail,
                        c->rx_fail == 1007 ? "invalid UTF-8 in a text message" : "out of memory");
    }
    if (r.status == TWS_SCAN_ERROR)
        return fail(c, rx->scan.error_code, rx->scan.error);
    if (r.status == TWS_SCAN_CLOSE)
        return peer_close(c);
    if (c->state != TWS_OPEN) {
        /* Closing (the core asked, maybe during this very read): wslay and
         * the scanner saw the same bytes so far; from now on no message
         * is assembled. */
        if (rx->ws) {
            ws_give(t, rx->ws, tws_scan_idle(&rx->scan));
            rx->ws = NULL;
        }
        rx->scan.frag_open = 0;
        drop_message(c);
    }
    if (tws_scan_idle(&rx->scan)) {
        tws_ws_release(c);
        tws_report_memory(c);
    }
    return 0;
}

/* ---- the vtable's send and close ------------------------------------ */

int64_t tws_ws_send(struct nb_conn *c, nb_buf *frame) {
    if (c->state != TWS_OPEN || c->close_sent || !frame)
        return NB_ERR_CLOSED;
    c->t->host->buf_ref(frame);
    if (tws_queue(c, frame) != 0) {
        /* A lost frame would break the stream: end it instead. */
        tws_ws_close(c, 1011, "out of memory");
        return NB_ERR_CLOSED;
    }
    tws_flush_early(c);
    return c->queued;
}

void tws_ws_close(struct nb_conn *c, uint32_t code, const char *reason) {
    if (c->state != TWS_OPEN)
        return;
    if (!tws_close_code_valid(code))
        code = 1011; /* 1005, 1006 and 1015 never go on the wire */
    tws_ws_queue_close(c, code, reason);
    c->state = TWS_CLOSING;
    c->deadline_ms = tws_now_ms(c->t) + c->t->cfg.close_timeout_ms;
    drop_message(c);
}
