/*
 * fuzz_http_request.c — the HTTP request-head parser (tws_http_parse) and
 * what the transport does with a parsed head: the upgrade checks of
 * handshake.c, Sec-WebSocket-Accept, the subprotocol list and the static
 * path mapping of static.c.
 *
 * Invariants: no crash and no read outside the input (libFuzzer's input is
 * a heap block of exactly its size, and every copy made here is too);
 * every parsed field lies inside the head; the fields obey the grammar the
 * parser promises; the answer never changes as more bytes arrive (the
 * transport reruns the parser on every read and acts on the first answer
 * that is not "need more"); max_head is a hard limit; a mapped path never
 * leaves the web root.
 */
#include "fuzz.h"
#include "handshake.h"
#include "http.h"
#include "static.h"

#include <limits.h>
#include <string.h>

#define MAX_HEAD 8192u /* transport-ws's default max_header_bytes */

/* s lies inside [lo, hi). */
static void check_inside(tws_str s, const char *lo, const char *hi) {
    FUZZ_CHECK(s.p != NULL);
    FUZZ_CHECK(s.p >= lo && s.p <= hi && s.len <= (size_t)(hi - s.p));
}

static int is_ctl(unsigned char c) {
    return (c < 0x20 && c != '\t') || c == 0x7F;
}

static void check_fields(const char *buf, const tws_http_req *req, int32_t r) {
    const char *end = buf + r;
    FUZZ_CHECK(req->head_len == (uint32_t)r);
    FUZZ_CHECK(r >= 4 && memcmp(end - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(req->minor == 0 || req->minor == 1);
    FUZZ_CHECK(req->n_headers <= TWS_HTTP_MAX_HEADERS);
    check_inside(req->method, buf, end);
    FUZZ_CHECK(req->method.p == buf && req->method.len >= 1 && req->method.len <= 32);
    for (uint32_t i = 0; i < req->method.len; i++)
        FUZZ_CHECK(tws_http_tchar((unsigned char)req->method.p[i]));
    check_inside(req->target, buf, end);
    FUZZ_CHECK(req->target.len >= 1);
    for (uint32_t i = 0; i < req->target.len; i++)
        FUZZ_CHECK((unsigned char)req->target.p[i] > 0x20 &&
                   (unsigned char)req->target.p[i] < 0x7F);
    for (uint32_t h = 0; h < req->n_headers; h++) {
        tws_str name = req->headers[h].name, value = req->headers[h].value;
        check_inside(name, buf, end);
        check_inside(value, buf, end);
        FUZZ_CHECK(name.len >= 1 && name.p[name.len] == ':');
        for (uint32_t i = 0; i < name.len; i++)
            FUZZ_CHECK(tws_http_tchar((unsigned char)name.p[i]));
        for (uint32_t i = 0; i < value.len; i++)
            FUZZ_CHECK(!is_ctl((unsigned char)value.p[i]));
        if (value.len) {
            FUZZ_CHECK(value.p[0] != ' ' && value.p[0] != '\t');
            FUZZ_CHECK(value.p[value.len - 1] != ' ' && value.p[value.len - 1] != '\t');
        }
    }
}

/* The answer for buf[0..len), from a copy of exactly len bytes. */
static int32_t parse_copy(const uint8_t *data, size_t len, size_t max_head, tws_http_req *req) {
    char *copy = malloc(len ? len : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, len);
    int32_t r = tws_http_parse(copy, len, max_head, req);
    free(copy);
    return r;
}

/* What the transport does after a complete head: handshake.c. */
static void check_handshake(const char *buf, const tws_http_req *req) {
    const char *end = buf + req->head_len;
    (void)tws_is_upgrade(req);
    tws_str key = {NULL, 0};
    const char *why = NULL;
    uint32_t status = tws_handshake_check(req, &key, &why);
    FUZZ_CHECK(status == 0 || status == 400 || status == 426);
    if (status == 0) {
        check_inside(key, buf, end);
        FUZZ_CHECK(tws_key_valid(key));
        char accept[TWS_ACCEPT_LEN + 1];
        tws_accept_key(key, accept);
        FUZZ_CHECK(strlen(accept) == TWS_ACCEPT_LEN);
    } else {
        FUZZ_CHECK(why != NULL);
    }
    /* Any value as a key: tws_accept_key must stay inside its buffer. */
    for (uint32_t h = 0; h < req->n_headers; h++) {
        char accept[TWS_ACCEPT_LEN + 1];
        tws_accept_key(req->headers[h].value, accept);
        (void)tws_key_valid(req->headers[h].value);
        (void)tws_http_list_has(req->headers[h].value, "upgrade");
    }
    uint32_t count = 0;
    const tws_str *host = tws_http_find(req, "host", &count);
    FUZZ_CHECK((host == NULL) == (count == 0));

    /* The subprotocol list into a small scratch buffer of its own size. */
    size_t buflen = 64;
    char *scratch = malloc(buflen);
    FUZZ_CHECK(scratch != NULL);
    const char *protos[TWS_MAX_SUBPROTOCOLS];
    int np = tws_subprotocols(req, scratch, buflen, protos, TWS_MAX_SUBPROTOCOLS);
    FUZZ_CHECK(np >= -1 && np <= (int)TWS_MAX_SUBPROTOCOLS);
    for (int i = 0; i < np; i++) {
        FUZZ_CHECK(protos[i] >= scratch && protos[i] < scratch + buflen);
        size_t len = strnlen(protos[i], (size_t)(scratch + buflen - protos[i]));
        FUZZ_CHECK(len >= 1 && protos[i] + len < scratch + buflen);
        for (size_t k = 0; k < len; k++)
            FUZZ_CHECK(tws_http_tchar((unsigned char)protos[i][k]));
    }
    free(scratch);
}

/* What the transport does for a file: the path of an origin-form target
 * mapped under the web root, into a buffer of PATH_MAX bytes (as the
 * transport does) and into one just around the path's length (to reach
 * the length limits). A mapped path is relative, NUL-terminated inside
 * out, and has no empty, ".", ".." or hidden segment, no backslash and no
 * control byte. */
static void check_map(const char *path, size_t len, size_t outlen) {
    char *out = malloc(outlen);
    FUZZ_CHECK(out != NULL);
    uint32_t status = tws_static_map(path, len, out, outlen);
    FUZZ_CHECK(status == 0 || status == 400 || status == 404);
    if (status == 0) {
        size_t n = strnlen(out, outlen);
        FUZZ_CHECK(n >= 1 && n < outlen);
        FUZZ_CHECK(out[0] != '/' && out[n - 1] != '/');
        for (size_t s = 0; s < n;) {
            size_t e = s;
            while (e < n && out[e] != '/')
                e++;
            FUZZ_CHECK(e > s && out[s] != '.');
            s = e + 1;
        }
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(out[i] != '\\' && out[i] != '\t' && !is_ctl((unsigned char)out[i]));
        if (path[len - 1] == '/')
            FUZZ_CHECK(n >= 10 && strcmp(out + n - 10, "index.html") == 0);
        (void)tws_static_type(out);
    }
    free(out);
}

static void check_static(const tws_http_req *req, size_t size) {
    tws_str target = req->target;
    if (target.p[0] != '/')
        return;
    uint32_t q = 0;
    while (q < target.len && target.p[q] != '?')
        q++;
    check_map(target.p, q, PATH_MAX);
    check_map(target.p, q, 1 + size % (q + 16));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tws_http_req req;
    int32_t r = tws_http_parse((const char *)data, size, MAX_HEAD, &req);
    FUZZ_CHECK(r >= 0 || r == -400 || r == -431 || r == -505);
    FUZZ_CHECK(r <= (int32_t)size && r <= (int32_t)MAX_HEAD);
    if (r == 0)
        FUZZ_CHECK(size < MAX_HEAD);
    if (r < 0)
        FUZZ_CHECK(tws_http_reason((uint32_t)-r) != NULL);

    /* Read by read: every prefix answers "need more" or the final answer
     * (checked at up to ~64 cut points, and every one of short inputs). */
    size_t step = size > 256 ? size / 64 : 1;
    for (size_t len = 0; len < size; len += step) {
        tws_http_req part;
        int32_t p = parse_copy(data, len, MAX_HEAD, &part);
        FUZZ_CHECK(p == 0 || p == r);
        if (r > 0)
            FUZZ_CHECK(p == (len < (size_t)r ? 0 : r));
    }

    if (r > 0) {
        check_fields((const char *)data, &req, r);
        /* One byte less room than the head needs is 431. */
        tws_http_req small;
        FUZZ_CHECK(parse_copy(data, size, (size_t)r - 1, &small) == -431);
        check_handshake((const char *)data, &req);
        check_static(&req, size);
    }
    return 0;
}
