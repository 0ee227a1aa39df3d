/*
 * http.h — a strict parser for an HTTP/1.1 request head (RFC 9112).
 *
 * Stateless: it is run again over everything received so far, which keeps
 * it simple and is cheap for heads of a few KiB. It never copies: the
 * parsed fields point into the caller's buffer.
 */
#ifndef TWS_HTTP_H
#define TWS_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* More header lines than this is answered like an oversized head (431). */
#define TWS_HTTP_MAX_HEADERS 64u

typedef struct tws_str {
    const char *p;
    uint32_t len;
} tws_str;

typedef struct tws_http_header {
    tws_str name;
    tws_str value; /* surrounding whitespace trimmed */
} tws_http_header;

typedef struct tws_http_req {
    tws_str method;
    tws_str target; /* the request-target as sent */
    uint32_t minor; /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
    uint32_t n_headers;
    uint32_t head_len; /* bytes up to and including the blank line */
    tws_http_header headers[TWS_HTTP_MAX_HEADERS];
} tws_http_req;

/*
 * Parse the head at buf[0..len). Returns the head's length (> 0) once the
 * blank line has arrived, 0 when more bytes are needed, or minus the HTTP
 * status to answer: -400 bad syntax, -431 head longer than max_head (or
 * more than TWS_HTTP_MAX_HEADERS lines), -505 a version other than 1.0 and
 * 1.1. Bytes after the head (a body, or pipelined WebSocket frames) are
 * not looked at.
 */
int32_t tws_http_parse(const char *buf, size_t len, size_t max_head, tws_http_req *req);

/* The first header named `name` (any case) or NULL; *count (if not NULL)
 * receives how many there are. */
const tws_str *tws_http_find(const tws_http_req *req, const char *name, uint32_t *count);

/* 1 if `s` equals `lit` ignoring ASCII case. */
int tws_str_ieq(tws_str s, const char *lit);

/* 1 if the comma-separated list `list` (e.g. "keep-alive, Upgrade") holds
 * `token`, ignoring case and the whitespace around elements. */
int tws_http_list_has(tws_str list, const char *token);

/* 1 if c may appear in a token (RFC 9110 tchar). */
int tws_http_tchar(int c);

/* The reason phrase of a status code ("Not Found"). */
const char *tws_http_reason(uint32_t status);

#endif
