/*
 * fuzz_ws_recv.c — the receive path of ws.c as a whole: the frame scanner
 * in front, wslay behind it, fed what the scanner passes, read by read as
 * in tws_ws_input, with the same wslay callbacks and the same rule for
 * giving a context back (ws_give).
 *
 * The invariant is the one the transport's memory design rests on: when
 * the scanner says the stream is between messages and ws_give's checks
 * pass, the wslay context is pooled and serves the next connection, so it
 * must hold nothing of this one. Each time that happens, a fresh client's
 * text frame is fed to the context and must come out as exactly that one
 * message. Also: while wslay still reads, it takes every byte it is
 * handed; and, as in ws.c, wslay runs without buffering and data is
 * assembled in one growing buffer, which never holds more than
 * max_message_bytes however the message is fragmented.
 *
 * Input layout as in fuzz_frame_scan.c: byte 0 picks max_message_bytes
 * (bits 0-1) and how many read lengths follow (bits 2-4); byte 1 sets the
 * scanner's control-frame budget (bit 0: counted at all, bits 1-7: how
 * many); then the lengths, then the stream.
 */
#include "frame.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

typedef struct feeder {
    const uint8_t *feed[2];
    size_t feed_len[2];
    uint32_t messages;    /* text and binary messages delivered */
    uint32_t last_opcode; /* of the last message */
    uint8_t last[16];     /* its first bytes */
    size_t last_len;
    int rx_fail; /* a text message was not UTF-8: read shut down, as ws.c does */
    uint64_t max_message;
    uint8_t *msg; /* the message being assembled (tws_rx.msg) */
    size_t msg_len, msg_cap;
    int in_data;
} feeder;

static ssize_t recv_cb(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags,
                       void *user) {
    feeder *f = user;
    size_t n = 0;
    for (int i = 0; i < 2 && n < len; i++) {
        size_t take = f->feed_len[i] < len - n ? f->feed_len[i] : len - n;
        if (take) {
            memcpy(buf + n, f->feed[i], take);
            f->feed[i] += take;
            f->feed_len[i] -= take;
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
    return (ssize_t)len; /* pongs and wslay's close frames: not looked at */
}

static void start_cb(wslay_event_context_ptr ws,
                     const struct wslay_event_on_frame_recv_start_arg *arg, void *user) {
    (void)ws;
    feeder *f = user;
    f->in_data = arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME ||
                 arg->opcode == WSLAY_CONTINUATION_FRAME;
}

static void chunk_cb(wslay_event_context_ptr ws,
                     const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user) {
    (void)ws;
    feeder *f = user;
    if (!f->in_data || !arg->data_length)
        return;
    size_t need = f->msg_len + arg->data_length;
    /* The scanner refused every message longer than the limit. */
    FUZZ_CHECK(need <= f->max_message);
    if (need > f->msg_cap) {
        size_t cap = f->msg_cap ? f->msg_cap : 256;
        while (cap < need)
            cap *= 2;
        if (cap > f->max_message)
            cap = f->max_message;
        uint8_t *m = realloc(f->msg, cap);
        FUZZ_CHECK(m != NULL);
        f->msg = m;
        f->msg_cap = cap;
    }
    memcpy(f->msg + f->msg_len, arg->data, arg->data_length);
    f->msg_len = need;
}

static void msg_cb(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user) {
    feeder *f = user;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return;
    const uint8_t *msg = f->msg ? f->msg : (const uint8_t *)"";
    size_t len = f->msg_len;
    f->msg_len = 0;
    if (f->rx_fail)
        return;
    if (arg->opcode == WSLAY_TEXT_FRAME && !tws_utf8_valid(msg, len)) {
        f->rx_fail = 1;
        wslay_event_shutdown_read(ws);
        return;
    }
    f->messages++;
    f->last_opcode = arg->opcode;
    f->last_len = len;
    memcpy(f->last, msg, len < sizeof f->last ? len : sizeof f->last);
}

static wslay_event_context_ptr take(feeder *f, uint64_t max_message) {
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_msg_recv_callback = msg_cb,
        .on_frame_recv_start_callback = start_cb,
        .on_frame_recv_chunk_callback = chunk_cb,
    };
    wslay_event_context_ptr ws = NULL;
    FUZZ_CHECK(wslay_event_context_server_init(&ws, &callbacks, f) == 0);
    wslay_event_config_set_max_recv_msg_length(ws, max_message);
    wslay_event_config_set_no_buffering(ws, 1);
    return ws;
}

/* ws_give's test: may this context serve another connection? */
static int poolable(wslay_event_context_ptr ws) {
    return wslay_event_get_read_enabled(ws) && wslay_event_get_write_enabled(ws) &&
           !wslay_event_want_write(ws) && !wslay_event_get_close_received(ws) &&
           !wslay_event_get_close_sent(ws) && wslay_event_get_queued_msg_count(ws) == 0;
}

/* A pooled context must read a new client's frame as exactly that. */
static void probe(feeder *f, wslay_event_context_ptr ws) {
    static const uint8_t frame[] = {0x81,    0x85,    1,       2,       3,      4,
                                    'p' ^ 1, 'r' ^ 2, 'o' ^ 3, 'b' ^ 4, 'e' ^ 1};
    uint32_t before = f->messages;
    f->feed[0] = frame;
    f->feed_len[0] = sizeof frame;
    f->feed_len[1] = 0;
    FUZZ_CHECK(wslay_event_recv(ws) == 0);
    FUZZ_CHECK(wslay_event_send(ws) == 0);
    FUZZ_CHECK(f->feed_len[0] == 0);
    FUZZ_CHECK(f->messages == before + 1);
    FUZZ_CHECK(f->last_opcode == WSLAY_TEXT_FRAME && f->last_len == 5);
    FUZZ_CHECK(memcmp(f->last, "probe", 5) == 0);
    FUZZ_CHECK(poolable(ws));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_reads rd;
    if (!fuzz_reads_init(&rd, data, size))
        return 0;
    static const uint64_t limits[4] = {125, 126, 1000, 65536};
    uint64_t max_message = limits[data[0] & 3u];

    feeder f;
    memset(&f, 0, sizeof f);
    f.max_message = max_message;
    tws_scan s;
    memset(&s, 0, sizeof s);
    s.max_message = max_message;
    s.ctl_limited = data[1] & 1u;
    s.ctl_left = data[1] >> 1;
    wslay_event_context_ptr ws = NULL;     /* the connection's */
    wslay_event_context_ptr pooled = NULL; /* given back, clean */
    uint8_t *chunk;
    size_t len;
    while ((chunk = fuzz_reads_next(&rd, &len))) {
        tws_scan_result r;
        tws_scan_run(&s, chunk, len, 1, &r);
        int stop = 0;
        if (r.prefix_len || r.pass_end) {
            if (!ws) {
                ws = pooled ? pooled : take(&f, max_message);
                pooled = NULL;
            }
            f.feed[0] = r.prefix;
            f.feed_len[0] = r.prefix_len;
            f.feed[1] = chunk;
            f.feed_len[1] = r.pass_end;
            int rc = wslay_event_recv(ws);
            if (rc == 0)
                rc = wslay_event_send(ws);
            FUZZ_CHECK(rc == 0);
            /* Read to the end, unless it stopped reading (a refused frame). */
            if (wslay_event_get_read_enabled(ws))
                FUZZ_CHECK(f.feed_len[0] == 0 && f.feed_len[1] == 0);
            stop = wslay_event_get_close_sent(ws) || f.rx_fail;
        }
        free(chunk);
        if (stop || r.status != TWS_SCAN_MORE)
            break;
        if (tws_scan_idle(&s) && ws) {
            /* tws_ws_release: ws_give(ws, between_messages = 1) */
            if (poolable(ws)) {
                probe(&f, ws);
                pooled = ws;
            } else {
                wslay_event_context_free(ws);
            }
            ws = NULL;
        }
    }
    if (ws)
        wslay_event_context_free(ws);
    if (pooled)
        wslay_event_context_free(pooled);
    free(f.msg);
    return 0;
}
