/*
 * client.c — one WebSocket client connection: non-blocking TCP connect from
 * the worker's source address, the HTTP upgrade (Sec-WebSocket-Accept
 * checked with libcrypto's SHA-1), masked client frames out, unmasked
 * server frames in.
 *
 * The receive side is a small hand parser instead of wslay's event API:
 * wslay allocates a buffer for every received message, and this path runs up
 * to a million times a second. Every connection reads into the worker's one
 * large buffer; only a frame split across two reads is copied aside.
 */
#include "worker.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_FRAME (16u << 20)     /* a larger server frame is a protocol error */
#define MAX_HEAD 8192u            /* the 101 response head */
#define READ_ROOM (256u << 10)    /* free space offered to each recv() */
#define TX_BACKLOG_MAX (1u << 20) /* unsent bytes before sends are skipped */

uint64_t bench_rand(uint64_t *state) {
    /* xorshift64*: masking keys and phases need spread, not secrecy */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents);

static void want(worker *w, conn *c, int events) {
    if ((c->io.events & (EV_READ | EV_WRITE)) == events)
        return;
    ev_io_stop(w->loop, &c->io);
    ev_io_set(&c->io, c->io.fd, events);
    ev_io_start(w->loop, &c->io);
}

static void release(worker *w, conn *c, bool abortive) {
    if (c->io.fd >= 0) {
        ev_io_stop(w->loop, &c->io);
        if (abortive) {
            /* RST instead of FIN: no TIME_WAIT left holding our port */
            struct linger l = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c->io.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(c->io.fd);
        c->io.fd = -1;
    }
    free(c->rx);
    free(c->tx);
    free(c->frag);
    c->rx = c->tx = c->frag = NULL;
    c->rx_len = c->rx_cap = c->tx_len = c->tx_off = c->tx_cap = 0;
    c->frag_len = c->frag_cap = 0;
    c->frag_op = 0;
}

/* The connection is gone: a failed attempt before the upgrade completed,
 * otherwise a close. */
static void lost(worker *w, conn *c, const char *why) {
    uint8_t st = c->state;
    bool before_open = st == C_CONNECTING || st == C_HANDSHAKE;
    release(w, c, before_open);
    if (before_open) {
        worker_conn_failed(w, c, why);
    } else {
        c->state = C_DONE;
        worker_conn_closed(w, c, why);
    }
}

static bool grow(uint8_t **buf, uint32_t *cap, size_t need) {
    if (need <= *cap)
        return true;
    if (need > MAX_FRAME + MAX_HEAD)
        return false;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need)
        ncap *= 2;
    uint8_t *nb = realloc(*buf, ncap);
    if (!nb)
        return false;
    *buf = nb;
    *cap = (uint32_t)ncap;
    return true;
}

/* Queue bytes, writing straight away when nothing is pending (the usual
 * case: one send() per frame). -1 when the socket is broken. */
static int conn_write(worker *w, conn *c, const uint8_t *buf, size_t len) {
    if (c->tx_off == c->tx_len) {
        c->tx_off = c->tx_len = 0;
        ssize_t n = send(c->io.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return -1;
            n = 0;
        }
        w->sr.bytes_out += (uint64_t)n;
        if ((size_t)n == len)
            return 0;
        buf += n;
        len -= (size_t)n;
    }
    if (!grow(&c->tx, &c->tx_cap, c->tx_len + len)) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(c->tx + c->tx_len, buf, len);
    c->tx_len += (uint32_t)len;
    want(w, c, EV_READ | EV_WRITE);
    return 0;
}

static int flush(worker *w, conn *c) {
    while (c->tx_off < c->tx_len) {
        ssize_t n =
            send(c->io.fd, c->tx + c->tx_off, c->tx_len - c->tx_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        w->sr.bytes_out += (uint64_t)n;
        c->tx_off += (uint32_t)n;
    }
    c->tx_off = c->tx_len = 0;
    want(w, c, EV_READ);
    return 0;
}

static void mask_bytes(uint8_t *p, size_t n, const uint8_t key[4]) {
    uint8_t k8b[8];
    memcpy(k8b, key, 4);
    memcpy(k8b + 4, key, 4);
    uint64_t k8;
    memcpy(&k8, k8b, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= k8;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] ^= key[i & 3];
}

/* Frame the payload that sits at pay (with at least 14 free bytes before
 * it) as a masked client frame, mask it in place, return the frame start. */
static uint8_t *frame_in_place(worker *w, uint8_t op, uint8_t *pay, size_t plen, size_t *flen) {
    size_t hl = plen < 126 ? 2 : plen < 65536 ? 4 : 10;
    uint8_t *f = pay - hl - 4;
    f[0] = (uint8_t)(0x80 | op);
    if (hl == 2) {
        f[1] = (uint8_t)(0x80 | plen);
    } else if (hl == 4) {
        f[1] = 0x80 | 126;
        f[2] = (uint8_t)(plen >> 8);
        f[3] = (uint8_t)plen;
    } else {
        f[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (uint8_t)((uint64_t)plen >> (56 - 8 * i));
    }
    uint32_t k = (uint32_t)bench_rand(&w->rng);
    uint8_t *key = f + hl;
    memcpy(key, &k, 4);
    mask_bytes(pay, plen, key);
    *flen = hl + 4 + plen;
    return f;
}

static int send_control(worker *w, conn *c, uint8_t op, const uint8_t *p, size_t len) {
    uint8_t buf[14 + 125];
    if (len > 125)
        len = 125;
    memcpy(buf + 14, p, len);
    size_t flen;
    uint8_t *f = frame_in_place(w, op, buf + 14, len, &flen);
    return conn_write(w, c, f, flen);
}

/* ---- connect and upgrade ------------------------------------------------ */

int client_start(worker *w, conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* arrival stamps for at_socket_ms (see arrival()); best effort */
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    if (w->p->src_bind) {
        /* Pick the port at connect() time, per destination, rather than at
         * bind() time from the source address's whole range. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (const struct sockaddr *)&w->src, sizeof w->src) != 0) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    c->t0 = now_ns();
    c->state = C_CONNECTING;
    c->close_sent = c->we_closed = false;
    ev_io_init(&c->io, io_cb, fd, EV_WRITE);
    const struct sockaddr_in *dst = &w->dst[c->target];
    if (connect(fd, (const struct sockaddr *)dst, sizeof *dst) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        c->io.fd = -1;
        c->state = C_IDLE;
        return -e;
    }
    ev_io_start(w->loop, &c->io);
    return 0;
}

/* The subprotocol connection c names in its upgrade, or NULL: none when
 * --codec was not given, so that servers without subprotocols work. */
static const char *subprotocol(const bench_params *p, const conn *c) {
    if (bench_conn_proto(p, c->id))
        return "nebula.proto.v1";
    return p->codec_given ? "nebula.json.v1" : NULL;
}

static void send_upgrade(worker *w, conn *c) {
    uint8_t raw[16];
    uint64_t r1 = bench_rand(&w->rng), r2 = bench_rand(&w->rng);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    char key[25];
    EVP_EncodeBlock((unsigned char *)key, raw, 16);

    char cat[24 + sizeof WS_GUID];
    memcpy(cat, key, 24);
    memcpy(cat + 24, WS_GUID, sizeof WS_GUID - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(cat, 24 + sizeof WS_GUID - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
        lost(w, c, "SHA-1 unavailable");
        return;
    }
    EVP_EncodeBlock((unsigned char *)c->accept, md, 20);

    char req[512];
    const char *sub = subprotocol(w->p, c);
    int n = snprintf(req, sizeof req,
                     "GET /ws?room=%s-%u&username=u%u HTTP/1.1\r\n"
                     "Host: %s:%u\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "%s%s%s"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     w->p->room_prefix, c->room, c->id, w->p->targets[c->target].host,
                     (unsigned)w->p->targets[c->target].port, key,
                     sub ? "Sec-WebSocket-Protocol: " : "", sub ? sub : "", sub ? "\r\n" : "");
    c->state = C_HANDSHAKE;
    want(w, c, EV_READ);
    if (n < 0 || (size_t)n >= sizeof req || conn_write(w, c, (const uint8_t *)req, (size_t)n) < 0)
        lost(w, c, "cannot send the upgrade request");
}

static const char *trim(const char *s, const char *e, const char **end) {
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    *end = e;
    return s;
}

static bool ieq(const char *s, const char *e, const char *lit) {
    size_t n = strlen(lit);
    return (size_t)(e - s) == n && strncasecmp(s, lit, n) == 0;
}

/* Length of the 101 response head, 0 while incomplete, -1 when refused
 * (why says how). A subprotocol we asked for must come back. */
static long parse_response(const bench_params *p, conn *c, const uint8_t *d, size_t len, char *why,
                           size_t whylen) {
    const uint8_t *end = memmem(d, len, "\r\n\r\n", 4);
    if (!end) {
        if (len > MAX_HEAD) {
            snprintf(why, whylen, "upgrade response head too long");
            return -1;
        }
        return 0;
    }
    const char *s = (const char *)d, *e = (const char *)end;
    const char *eol = memchr(s, '\n', (size_t)(e - s));
    if (!eol)
        eol = e;
    if (eol - s < 12 || memcmp(s, "HTTP/1.1 101", 12) != 0) {
        int l = (int)(eol - s);
        if (l > 0 && s[l - 1] == '\r')
            l--;
        snprintf(why, whylen, "upgrade refused: %.*s", l > 80 ? 80 : l, s);
        return -1;
    }
    bool upgrade = false, accept = false;
    const char *sub = subprotocol(p, c);
    bool sub_ok = sub == NULL;
    for (const char *line = eol + 1; line < e;) {
        const char *nl = memchr(line, '\n', (size_t)(e - line));
        if (!nl)
            nl = e;
        const char *colon = memchr(line, ':', (size_t)(nl - line));
        if (colon) {
            const char *ne, *ve;
            const char *name = trim(line, colon, &ne);
            const char *val = trim(colon + 1, nl, &ve);
            if (ieq(name, ne, "upgrade") && ieq(val, ve, "websocket"))
                upgrade = true;
            else if (ieq(name, ne, "sec-websocket-accept") && ve - val == 28 &&
                     memcmp(val, c->accept, 28) == 0)
                accept = true;
            else if (sub && ieq(name, ne, "sec-websocket-protocol") && ieq(val, ve, sub))
                sub_ok = true;
        }
        line = nl + 1;
    }
    if (upgrade && accept && !sub_ok) {
        snprintf(why, whylen, "the server did not accept subprotocol %s", sub);
        return -1;
    }
    if (!upgrade || !accept) {
        snprintf(why, whylen, "bad upgrade response (%s)",
                 upgrade ? "Sec-WebSocket-Accept mismatch" : "no Upgrade: websocket");
        return -1;
    }
    return (long)(end - d) + 4;
}

/* ---- receiving ----------------------------------------------------------- */

static const uint8_t *after_key(const uint8_t *p, const uint8_t *end, const char *key,
                                size_t klen) {
    /* A quoted "key" followed by ':' and a string: return the first byte of
     * that string. Quotes inside JSON strings are escaped, so a match with
     * a ':' after it is a key. */
    while (p < end) {
        const uint8_t *q = memmem(p, (size_t)(end - p), key, klen);
        if (!q)
            return NULL;
        const uint8_t *v = q + klen;
        while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
            v++;
        if (v < end && *v == ':') {
            v++;
            while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
                v++;
            return v < end && *v == '"' ? v + 1 : NULL;
        }
        p = q + klen;
    }
    return NULL;
}

static const uint8_t *read_u64(const uint8_t *p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    const uint8_t *s = p;
    while (p < end && *p >= '0' && *p <= '9' && p - s < 19)
        v = v * 10 + (uint64_t)(*p++ - '0');
    *out = v;
    return p > s ? p : NULL;
}

/* When the bytes of one recv() reached us. */
typedef struct rx_time {
    uint64_t now;     /* this process read them (CLOCK_MONOTONIC) */
    uint64_t arrived; /* the kernel queued them on the socket, same clock; 0: unknown */
} rx_time;

/* A varint at *p; NULL when cut short or longer than 10 bytes. */
static const uint8_t *pb_varint(const uint8_t *p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < 10 && p < end; i++) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return p;
        }
    }
    return NULL;
}

/*
 * The content of a nebula.v1.Envelope of type message (proto/nebula.proto:
 * type = 1, content = 4), or NULL; *is_message says whether the type was
 * message. Unknown fields are skipped; anything malformed is NULL.
 */
static const uint8_t *pb_message_content(const uint8_t *p, const uint8_t *end, bool *is_message,
                                         const uint8_t **content_end) {
    const uint8_t *content = NULL;
    *is_message = false;
    while (p < end) {
        uint64_t tag, v;
        if (!(p = pb_varint(p, end, &tag)))
            return NULL;
        switch (tag & 7) {
        case 0:
            if (!(p = pb_varint(p, end, &v)))
                return NULL;
            if (tag >> 3 == 1)
                *is_message = v == 1;
            break;
        case 1:
        case 5: {
            size_t n = (tag & 7) == 1 ? 8 : 4;
            if ((size_t)(end - p) < n)
                return NULL;
            p += n;
            break;
        }
        case 2:
            if (!(p = pb_varint(p, end, &v)) || v > (uint64_t)(end - p))
                return NULL;
            if (tag >> 3 == 4) {
                content = p;
                *content_end = p + v;
            }
            p += v;
            break;
        default:
            return NULL;
        }
    }
    return content;
}

static void on_message(worker *w, const conn *c, const uint8_t *p, size_t len, const rx_time *rt) {
    static const char fast[] = "{\"type\":\"message\"";
    const uint8_t *end = p + len;
    const uint8_t *v;
    if (bench_conn_proto(w->p, c->id)) {
        bool is_message;
        v = pb_message_content(p, end, &is_message, &end);
        if (!is_message) {
            w->sr.other++;
            return;
        }
    } else {
        if (len < sizeof fast - 1 || memcmp(p, fast, sizeof fast - 1) != 0) {
            /* not in the usual key order: look the top-level type up */
            const uint8_t *t = after_key(p, end, "\"type\"", 6);
            if (!t || end - t < 8 || memcmp(t, "message\"", 8) != 0) {
                w->sr.other++;
                return;
            }
        }
        v = after_key(p, end, "\"content\"", 9);
    }
    uint64_t t = 0, s = 0;
    if (!v || end - v < 2 || v[0] != 't' || v[1] != '=' || !(v = read_u64(v + 2, end, &t)) ||
        end - v < 3 || v[0] != ' ' || v[1] != 's' || v[2] != '=' || !read_u64(v + 3, end, &s)) {
        w->sr.foreign++;
        return;
    }
    w->delivered_total++;
    uint64_t now = rt->now;
    if (w->in_step && t >= w->step.m_start && t < w->step.m_end && now <= w->step.t_drain) {
        w->sr.delivered++;
        hist_add(&w->sr.latency, now > t ? now - t : 0);
        if (rt->arrived)
            hist_add(&w->sr.at_socket, rt->arrived > t ? rt->arrived - t : 0);
    } else {
        w->sr.stale++;
    }
}

/* Total length of the frame starting at d, or 0 if the header is not all
 * there yet. */
static uint64_t frame_size(const uint8_t *d, size_t len) {
    if (len < 2)
        return 0;
    uint64_t pl = d[1] & 0x7f;
    size_t hl = 2;
    if (pl == 126) {
        if (len < 4)
            return 0;
        pl = (uint64_t)d[2] << 8 | d[3];
        hl = 4;
    } else if (pl == 127) {
        if (len < 10)
            return 0;
        pl = 0;
        for (int i = 0; i < 8; i++)
            pl = pl << 8 | d[2 + i];
        hl = 10;
    }
    return hl + pl;
}

/* Consume whole frames from d; returns the bytes used, or -1 on a protocol
 * error (why says which). */
static long parse_frames(worker *w, conn *c, const uint8_t *d, size_t len, const rx_time *rt,
                         const char **why) {
    size_t off = 0;
    while (len - off >= 2 && c->io.fd >= 0) {
        const uint8_t *f = d + off;
        if (f[1] & 0x80) {
            *why = "masked frame from the server";
            return -1;
        }
        if (f[0] & 0x70) {
            *why = "reserved bits set";
            return -1;
        }
        uint64_t fl = frame_size(f, len - off);
        if (fl == 0)
            break;
        if (fl > MAX_FRAME) {
            *why = "frame larger than 16 MiB";
            return -1;
        }
        if (fl > len - off)
            break;
        size_t hl = (f[1] & 0x7f) == 126 ? 4 : (f[1] & 0x7f) == 127 ? 10 : 2;
        const uint8_t *pay = f + hl;
        size_t pl = (size_t)fl - hl;
        bool fin = f[0] & 0x80;
        uint8_t op = f[0] & 0x0f;
        off += (size_t)fl;
        if (c->state == C_CLOSING && op != 8)
            continue; /* after a close frame, data is not expected: drop it */
        switch (op) {
        case 1:
        case 2:
            if (c->frag_op) {
                *why = "new message inside a fragmented one";
                return -1;
            }
            if (fin) {
                on_message(w, c, pay, pl, rt);
            } else {
                c->frag_op = op;
                c->frag_len = 0;
                if (!grow(&c->frag, &c->frag_cap, pl)) {
                    *why = "fragmented message too large";
                    return -1;
                }
                memcpy(c->frag, pay, pl);
                c->frag_len = (uint32_t)pl;
            }
            break;
        case 0:
            if (!c->frag_op) {
                *why = "continuation without a message";
                return -1;
            }
            if (!grow(&c->frag, &c->frag_cap, (size_t)c->frag_len + pl)) {
                *why = "fragmented message too large";
                return -1;
            }
            memcpy(c->frag + c->frag_len, pay, pl);
            c->frag_len += (uint32_t)pl;
            if (fin) {
                on_message(w, c, c->frag, c->frag_len, rt);
                c->frag_op = 0;
                c->frag_len = 0;
            }
            break;
        case 8:
        case 9:
        case 10:
            if (!fin || pl > 125) {
                *why = "bad control frame";
                return -1;
            }
            if (op == 9) {
                if (send_control(w, c, 10, pay, pl) < 0) {
                    *why = "write failed";
                    return -1;
                }
            } else if (op == 8) {
                unsigned code = pl >= 2 ? (unsigned)pay[0] << 8 | pay[1] : 1005;
                if (!c->close_sent) {
                    /* echo the code, then wait for the server to hang up */
                    c->close_sent = true;
                    if (send_control(w, c, 8, pay, pl >= 2 ? 2 : 0) < 0) {
                        *why = "write failed";
                        return -1;
                    }
                }
                if (c->state == C_OPEN)
                    worker_log(w, "u%u: server sent close %u %.*s", c->id, code,
                               pl > 2 ? (int)(pl - 2) : 0, pl > 2 ? (const char *)pay + 2 : "");
                c->state = C_CLOSING;
            }
            break;
        default:
            *why = "reserved opcode";
            return -1;
        }
    }
    return (long)off;
}

/*
 * The kernel's arrival stamp of the newest bytes a recvmsg() returned
 * (SO_TIMESTAMPNS, set in client_start), moved from CLOCK_REALTIME to the
 * CLOCK_MONOTONIC of every other instant here; 0 if there is none. For a
 * read that took several segments it is the last one's arrival: an earlier
 * message is charged a little more than it took, never less.
 */
static uint64_t arrival(struct msghdr *mh, uint64_t mono_now) {
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS)
            continue;
        struct timespec at, rt_now;
        memcpy(&at, CMSG_DATA(cm), sizeof at);
        clock_gettime(CLOCK_REALTIME, &rt_now);
        int64_t ago = ((int64_t)rt_now.tv_sec - (int64_t)at.tv_sec) * 1000000000 +
                      ((int64_t)rt_now.tv_nsec - (int64_t)at.tv_nsec);
        if (ago < 0)
            ago = 0;
        return (uint64_t)ago < mono_now ? mono_now - (uint64_t)ago : 0;
    }
    return 0;
}

static void on_readable(worker *w, conn *c) {
    for (int round = 0; round < 4; round++) {
        size_t have = c->rx_len;
        if (w->rbuf_cap < have + READ_ROOM) {
            uint8_t *nb = realloc(w->rbuf, have + READ_ROOM);
            if (!nb) {
                lost(w, c, "out of memory");
                return;
            }
            w->rbuf = nb;
            w->rbuf_cap = have + READ_ROOM;
        }
        if (have)
            memcpy(w->rbuf, c->rx, have);
        struct iovec iov = {w->rbuf + have, w->rbuf_cap - have};
        union {
            char buf[CMSG_SPACE(sizeof(struct timespec))];
            struct cmsghdr align;
        } ctl;
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.buf,
                            .msg_controllen = sizeof ctl.buf};
        ssize_t n = recvmsg(c->io.fd, &mh, 0);
        if (n == 0) {
            lost(w, c, c->state == C_CLOSING ? "closed" : "server hung up");
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                lost(w, c, strerror(errno));
            return;
        }
        /* one receive time for the whole batch */
        rx_time rt;
        rt.now = now_ns();
        rt.arrived = arrival(&mh, rt.now);
        w->sr.bytes_in += (uint64_t)n;
        size_t len = have + (size_t)n, used = 0;
        c->rx_len = 0;
        if (c->state == C_HANDSHAKE) {
            char why[160];
            long h = parse_response(w->p, c, w->rbuf, len, why, sizeof why);
            if (h < 0) {
                lost(w, c, why);
                return;
            }
            if (h > 0) {
                used = (size_t)h;
                c->state = C_OPEN;
                worker_conn_open(w, c);
            }
        }
        if (c->state == C_OPEN || c->state == C_CLOSING) {
            const char *why = NULL;
            long u = parse_frames(w, c, w->rbuf + used, len - used, &rt, &why);
            if (u < 0) {
                lost(w, c, why);
                return;
            }
            used += (size_t)u;
        }
        if (c->io.fd < 0)
            return;
        if (used < len) {
            if (!grow(&c->rx, &c->rx_cap, len - used)) {
                lost(w, c, "frame too large");
                return;
            }
            memcpy(c->rx, w->rbuf + used, len - used);
            c->rx_len = (uint32_t)(len - used);
        } else if (c->rx_cap > 4096) {
            /* a big frame passed: give its buffer back */
            free(c->rx);
            c->rx = NULL;
            c->rx_cap = 0;
        }
        if ((size_t)n < w->rbuf_cap - have)
            return; /* the socket is drained */
    }
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents) {
    worker *w = ev_userdata(loop);
    conn *c = (conn *)io; /* io is the first member */
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
            err = errno;
        if (err) {
            lost(w, c, strerror(err));
            return;
        }
        send_upgrade(w, c);
        return;
    }
    if ((revents & EV_WRITE) && flush(w, c) < 0) {
        lost(w, c, strerror(errno));
        return;
    }
    if (revents & EV_READ)
        on_readable(w, c);
}

/* ---- sending --------------------------------------------------------- */

static uint8_t *put_varint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* The same chat message as an Envelope: type 1, room, content "t=.. s=.. "
 * padded with 'x' to --content-bytes. */
static uint64_t send_chat_proto(worker *w, conn *c, uint8_t *pay, size_t cap) {
    const bench_params *p = w->p;
    char room[64], fields[48];
    int rl = snprintf(room, sizeof room, "%s-%u", p->room_prefix, c->room);
    uint64_t t = now_ns();
    uint64_t s = ++w->seq * (uint64_t)p->processes + (uint64_t)w->index;
    int fl = snprintf(fields, sizeof fields, "t=%llu s=%llu ", (unsigned long long)t,
                      (unsigned long long)s);
    size_t clen = (long)fl < p->content_bytes ? (size_t)p->content_bytes : (size_t)fl;
    if (rl < 0 || (size_t)rl >= sizeof room || fl < 0 || (size_t)fl >= sizeof fields ||
        cap < 16 + (size_t)rl + clen)
        return 0;
    uint8_t *q = pay;
    *q++ = 0x08; /* type */
    *q++ = 1;    /* TYPE_MESSAGE */
    *q++ = 0x12; /* room */
    q = put_varint(q, (uint64_t)rl);
    memcpy(q, room, (size_t)rl);
    q += rl;
    *q++ = 0x22; /* content */
    q = put_varint(q, clen);
    memcpy(q, fields, (size_t)fl);
    memset(q + fl, 'x', clen - (size_t)fl);
    q += clen;
    size_t flen;
    uint8_t *f = frame_in_place(w, 2, pay, (size_t)(q - pay), &flen);
    if (conn_write(w, c, f, flen) < 0) {
        lost(w, c, strerror(errno));
        return 0;
    }
    return t;
}

uint64_t client_send_chat(worker *w, conn *c) {
    if (c->state != C_OPEN || c->tx_len - c->tx_off > TX_BACKLOG_MAX)
        return 0;
    const bench_params *p = w->p;
    uint8_t *pay = w->sbuf + 14;
    size_t cap = w->sbuf_cap - 14;
    if (bench_conn_proto(p, c->id))
        return send_chat_proto(w, c, pay, cap);
    int head = snprintf((char *)pay, cap, "{\"type\":\"message\",\"room\":\"%s-%u\",\"content\":\"",
                        p->room_prefix, c->room);
    uint64_t t = now_ns();
    uint64_t s = ++w->seq * (uint64_t)p->processes + (uint64_t)w->index;
    int fields = snprintf((char *)pay + head, cap - (size_t)head, "t=%llu s=%llu ",
                          (unsigned long long)t, (unsigned long long)s);
    size_t len = (size_t)head + (size_t)fields;
    if ((long)fields < p->content_bytes) {
        size_t pad = (size_t)(p->content_bytes - fields);
        memset(pay + len, 'x', pad);
        len += pad;
    }
    pay[len++] = '"';
    pay[len++] = '}';
    size_t flen;
    uint8_t *f = frame_in_place(w, 1, pay, len, &flen);
    if (conn_write(w, c, f, flen) < 0) {
        lost(w, c, strerror(errno));
        return 0;
    }
    return t;
}

void client_close_gracefully(worker *w, conn *c) {
    if (c->state != C_OPEN)
        return;
    static const uint8_t normal[2] = {0x03, 0xe8}; /* 1000 */
    c->we_closed = true;
    c->close_sent = true;
    c->state = C_CLOSING;
    if (send_control(w, c, 8, normal, 2) < 0)
        lost(w, c, strerror(errno));
}

void client_abort(worker *w, conn *c) {
    release(w, c, true);
    c->state = C_DONE;
}
