/*
 * request.c — an HTTP request on a new connection: read its head, then
 * answer it from the core (/healthz, /metrics, ...), from web_root, or by
 * upgrading to WebSocket.
 *
 * Plain HTTP is one request per connection: every response says
 * "Connection: close", and the socket lingers until the client has read
 * it (tws_conn_linger). Browsers open a new connection for the next file;
 * the client is a handful of files, so keep-alive would buy little.
 */
#include "handshake.h"
#include "http.h"
#include "static.h"
#include "tws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int queue_head(nb_conn *c, uint32_t status, const char *type, uint64_t body_len,
                      const char *extra) {
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %u %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %" PRIu64 "\r\n"
                     "%s"
                     "Cache-Control: no-cache\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "Connection: close\r\n"
                     "\r\n",
                     status, tws_http_reason(status), type, body_len, extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    return tws_queue_copy(c, head, (size_t)n);
}

/* Answer with a short text body, then close. */
static void respond_text(nb_conn *c, uint32_t status, const char *text, const char *extra,
                         int head_only) {
    char body[256];
    int n = snprintf(body, sizeof body, "%s\n", text ? text : tws_http_reason(status));
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    if (queue_head(c, status, "text/plain; charset=utf-8", (uint64_t)n, extra) == 0 && !head_only)
        tws_queue_copy(c, body, (size_t)n);
    tws_conn_linger(c);
}

static void peer_name(int fd, char *out, size_t len) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN];
    snprintf(out, len, "unknown");
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip))
            snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip))
            snprintf(out, len, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    }
}

/* A NUL-terminated copy of s in the instance's scratch space. */
static const char *scratch_copy(tws *t, size_t *used, tws_str s) {
    if (*used + s.len + 1 > t->scratch_len)
        return NULL;
    char *p = t->scratch + *used;
    memcpy(p, s.p, s.len);
    p[s.len] = '\0';
    *used += s.len + 1;
    return p;
}

static void serve_file(tws *t, nb_conn *c, tws_str method, tws_str path) {
    /* Methods are case-sensitive (RFC 9110 9.1). */
    int head_only = method.len == 4 && memcmp(method.p, "HEAD", 4) == 0;
    int get = method.len == 3 && memcmp(method.p, "GET", 3) == 0;
    if (!get && !head_only) {
        respond_text(c, 405, NULL, "Allow: GET, HEAD\r\n", 0);
        return;
    }
    if (!t->web_root) {
        respond_text(c, 404, NULL, NULL, head_only);
        return;
    }
    char rel[PATH_MAX];
    uint32_t status = tws_static_map(path.p, path.len, rel, sizeof rel);
    if (status) {
        respond_text(c, status, NULL, NULL, head_only);
        return;
    }
    uint64_t size = 0;
    tws_fd_lock(); /* see listener.c: the descriptor reserve */
    int fd = tws_static_open(t->web_root, rel, &size);
    tws_fd_unlock();
    if (fd < 0) {
        respond_text(c, (uint32_t)-fd, NULL, NULL, head_only);
        return;
    }
    nb_buf *body = NULL;
    if (!head_only) {
        body = t->host->buf_new(0, (uint32_t)size);
        uint64_t got = 0;
        while (body && got < size) {
            ssize_t r = pread(fd, body->data + got, (size_t)(size - got), (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break; /* I/O error, or the file shrank */
            got += (uint64_t)r;
        }
        if (!body || got != size) {
            close(fd);
            if (body)
                t->host->buf_unref(body);
            respond_text(c, 500, NULL, NULL, 0);
            return;
        }
        body->len = (uint32_t)size;
        body->tailroom -= (uint32_t)size;
    }
    close(fd);
    if (queue_head(c, 200, tws_static_type(rel), size, NULL) == 0 && body)
        tws_queue(c, body);
    else if (body)
        t->host->buf_unref(body);
    tws_conn_linger(c);
}

/* Accept the upgrade: 101, then the core may send. */
static int established(tws *t, nb_conn *c, tws_str key, const nb_open_reply *rep) {
    char accept[TWS_ACCEPT_LEN + 1];
    tws_accept_key(key, accept);
    char head[512];
    int n;
    if (rep->subprotocol)
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n\r\n",
                     accept, rep->subprotocol);
    else
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    c->session = rep->session;
    if (n < 0 || (size_t)n >= sizeof head || tws_queue_copy(c, head, (size_t)n) != 0) {
        tws_conn_detach(c, 1011);
        return -1;
    }
    int64_t now = tws_now_ms(t);
    c->state = TWS_OPEN;
    c->last_rx_ms = now;
    c->last_ping_ms = now;
    t->host->metric_add(t->m.upgrades, 1);
    t->host->conn_established(rep->session);
    return 0;
}

static int upgrade(tws *t, nb_conn *c, const tws_http_req *req, tws_str path, tws_str query,
                   const uint8_t *rest, size_t rest_len) {
    tws_str key;
    const char *why = NULL;
    uint32_t status = tws_handshake_check(req, &key, &why);
    if (status) {
        t->host->log(t->ctx, NB_LOG_DEBUG, "upgrade refused with %u: %s", status, why);
        respond_text(c, status, why, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL, 0);
        return 0;
    }
    size_t used = 0;
    const char *protocols[TWS_MAX_SUBPROTOCOLS];
    uint32_t n_origin = 0;
    const tws_str *origin = tws_http_find(req, "origin", &n_origin);
    const char *cpath = scratch_copy(t, &used, path);
    const char *cquery = scratch_copy(t, &used, query);
    const char *corigin = origin ? scratch_copy(t, &used, *origin) : NULL;
    char peer[INET6_ADDRSTRLEN + 16];
    peer_name(c->io.fd, peer, sizeof peer);
    int np = cpath && cquery && (!origin || corigin)
                 ? tws_subprotocols(req, t->scratch + used, t->scratch_len - used, protocols,
                                    TWS_MAX_SUBPROTOCOLS)
                 : -1;
    if (np < 0 || n_origin > 1) {
        respond_text(c, 400, "bad Sec-WebSocket-Protocol or Origin header", NULL, 0);
        return 0;
    }
    nb_open_request oreq = {
        .struct_size = sizeof oreq,
        .n_subprotocols = (uint32_t)np,
        .path = cpath,
        .query = cquery,
        .subprotocols = protocols,
        .origin = corigin,
        .peer = peer,
    };
    nb_open_reply rep;
    memset(&rep, 0, sizeof rep);
    rep.struct_size = sizeof rep;
    int32_t rc = t->host->conn_open(t->ctx, c, &oreq, &rep);
    if (rc == NB_OK && rep.http_status) {
        respond_text(c, rep.http_status, rep.reason, NULL, 0);
        return 0;
    }
    int proto_ok = 1;
    for (const char *p = rep.subprotocol; p && *p; p++)
        proto_ok &= tws_http_tchar((unsigned char)*p);
    if (rc != NB_OK || !rep.session || !proto_ok) {
        if (rc == NB_OK && rep.session) {
            t->host->log(t->ctx, NB_LOG_ERROR, "the core named an invalid subprotocol");
            t->host->conn_closed(rep.session, 1011);
        }
        respond_text(c, 500, NULL, NULL, 0);
        return 0;
    }
    if (established(t, c, key, &rep) != 0)
        return -1;
    /* Frames the client sent right behind its request. */
    if (rest_len && c->state != TWS_LINGER)
        return tws_ws_input(t, c, rest, rest_len);
    return 0;
}

static int handle(tws *t, nb_conn *c, const tws_http_req *req, const uint8_t *rest,
                  size_t rest_len) {
    tws_str target = req->target;
    if (target.p[0] != '/') {
        respond_text(c, 400, "only origin-form request targets (\"/path\") are served", NULL, 0);
        return 0;
    }
    uint32_t q = 0;
    while (q < target.len && target.p[q] != '?')
        q++;
    tws_str path = {target.p, q};
    tws_str query = {target.p + q, 0};
    if (q < target.len)
        query = (tws_str){target.p + q + 1, target.len - q - 1};
    uint32_t n_host = 0;
    tws_http_find(req, "host", &n_host);
    /* A fragment never travels in a request; HTTP/1.1 needs one Host. */
    if (memchr(target.p, '#', target.len) || n_host > 1 || (req->minor == 1 && n_host == 0)) {
        respond_text(c, 400, NULL, NULL, 0);
        return 0;
    }
    /* On a reserve descriptor (listener.c) only the core's endpoints are
     * served: they answer without another descriptor, and a health check
     * must get through at the open-files limit. */
    static const char busy[] = "out of file descriptors: try again later";
    if (tws_is_upgrade(req)) {
        if (c->reserved) {
            respond_text(c, 503, busy, NULL, 0);
            return 0;
        }
        return upgrade(t, c, req, path, query, rest, rest_len);
    }

    int get_or_head = (req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0) ||
                      (req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0);
    int head_only = get_or_head && req->method.len == 4;
    if (req->minor == 0 && !get_or_head) {
        respond_text(c, 505, "HTTP/1.0 is served for GET and HEAD only", NULL, 0);
        return 0;
    }
    t->host->metric_add(t->m.http_requests, 1);
    size_t used = 0;
    nb_http_request hreq = {
        .struct_size = sizeof hreq,
        .method = scratch_copy(t, &used, req->method),
        .path = scratch_copy(t, &used, path),
        .query = scratch_copy(t, &used, query),
    };
    nb_http_response resp;
    memset(&resp, 0, sizeof resp);
    resp.struct_size = sizeof resp;
    int32_t rc = hreq.method && hreq.path && hreq.query
                     ? t->host->http_request(t->ctx, &hreq, &resp)
                     : NB_ERR_NOMEM;
    if (rc == NB_OK) {
        uint32_t status = resp.status ? resp.status : 200;
        uint32_t len = resp.body ? resp.body->len : 0;
        const char *type = resp.content_type ? resp.content_type : "text/plain; charset=utf-8";
        if (queue_head(c, status, type, len, NULL) == 0 && resp.body && !head_only)
            tws_queue(c, resp.body);
        else if (resp.body)
            t->host->buf_unref(resp.body);
        tws_conn_linger(c);
        return 0;
    }
    if (resp.body)
        t->host->buf_unref(resp.body);
    if (rc != NB_ERR_AGAIN) {
        respond_text(c, 500, NULL, NULL, head_only);
        return 0;
    }
    if (c->reserved) {
        respond_text(c, 503, busy, NULL, head_only);
        return 0;
    }
    serve_file(t, c, req->method, path);
    return 0;
}

/*
 * Reading a head: the first read goes into the instance's buffer and is
 * parsed from there; only a head that arrives in pieces is copied into a
 * per-connection buffer of max_header_bytes, freed once it is complete.
 */
int tws_http_readable(tws *t, nb_conn *c) {
    size_t max = t->cfg.max_header_bytes;
    uint8_t *buf = c->hbuf ? c->hbuf : t->rbuf;
    size_t have = c->hbuf ? c->hlen : 0;
    size_t cap = c->hbuf ? max : TWS_RBUF_SIZE;
    ssize_t n = read(c->io.fd, buf + have, cap - have);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    if (n == 0)
        return -1; /* gone before asking anything */
    t->host->metric_add(t->m.bytes_in, n);
    have += (size_t)n;
    tws_http_req req;
    int32_t r = tws_http_parse((const char *)buf, have, max, &req);
    if (r == 0) {
        if (!c->hbuf) {
            c->hbuf = malloc(max);
            if (!c->hbuf)
                return -1;
            memcpy(c->hbuf, buf, have);
        }
        c->hlen = (uint32_t)have;
        return 0;
    }
    int rc = 0;
    if (r < 0) {
        t->host->log(t->ctx, NB_LOG_DEBUG, "bad request head: answering %d", (int)-r);
        respond_text(c, (uint32_t)-r, NULL, NULL, 0);
    } else {
        rc = handle(t, c, &req, buf + r, have - (size_t)r);
    }
    free(c->hbuf);
    c->hbuf = NULL;
    c->hlen = 0;
    return rc;
}
