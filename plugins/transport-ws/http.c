/*
 * http.c — strict request-head parsing. What is refused, and why:
 *   - lines must end in CRLF: a bare CR or LF is 400 (request smuggling
 *     hides in lenient line endings);
 *   - the request line is exactly METHOD SP TARGET SP HTTP/x.y; the target
 *     is visible ASCII; only 1.0 and 1.1 are spoken (505 otherwise);
 *   - header names are tokens directly followed by ':'; folded lines
 *     (leading whitespace) and control characters in values are 400;
 *   - control characters anywhere in the head are refused as soon as they
 *     arrive, so a TLS hello or binary junk is answered at once instead of
 *     after the head limit or a timeout.
 */
#include "http.h"

#include <string.h>

int tws_http_tchar(int c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int lower(int c) {
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

int tws_str_ieq(tws_str s, const char *lit) {
    size_t n = strlen(lit);
    if (s.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.p[i]) != lower((unsigned char)lit[i]))
            return 0;
    return 1;
}

/* A byte that may never appear in a head (CTL other than HTAB, CR, LF). */
static int bad_byte(unsigned char c) {
    return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7F;
}

/* Find the CRLF ending the line that starts at `pos`. Returns its offset,
 * -1 when it has not arrived, -2 for a bare CR or LF. */
static long line_end(const char *buf, size_t pos, size_t limit) {
    for (size_t i = pos; i < limit; i++) {
        if (buf[i] == '\n')
            return -2;
        if (buf[i] == '\r') {
            if (i + 1 >= limit)
                return -1;
            return buf[i + 1] == '\n' ? (long)i : -2;
        }
    }
    return -1;
}

static int32_t parse_request_line(const char *p, size_t n, tws_http_req *req) {
    size_t i = 0;
    while (i < n && tws_http_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i > 32 || i >= n || p[i] != ' ')
        return -400;
    req->method = (tws_str){p, (uint32_t)i};
    size_t t = ++i;
    while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7F)
        i++;
    if (i == t || i >= n || p[i] != ' ')
        return -400;
    req->target = (tws_str){p + t, (uint32_t)(i - t)};
    const char *v = p + i + 1;
    if (n - i - 1 != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return -400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return -505;
    req->minor = (uint32_t)(v[7] - '0');
    return 0;
}

static int32_t parse_header_line(const char *p, size_t n, tws_http_req *req) {
    size_t i = 0;
    while (i < n && tws_http_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ':')
        return -400; /* also catches obs-fold and "Name :" */
    tws_str name = {p, (uint32_t)i};
    i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t v = i, end = n;
    while (end > v && (p[end - 1] == ' ' || p[end - 1] == '\t'))
        end--;
    for (size_t k = v; k < end; k++)
        if (bad_byte((unsigned char)p[k]))
            return -400;
    if (req->n_headers == TWS_HTTP_MAX_HEADERS)
        return -431;
    req->headers[req->n_headers++] = (tws_http_header){name, {p + v, (uint32_t)(end - v)}};
    return 0;
}

int32_t tws_http_parse(const char *buf, size_t len, size_t max_head, tws_http_req *req) {
    memset(req, 0, offsetof(tws_http_req, headers));
    size_t limit = len < max_head ? len : max_head;
    size_t pos = 0;
    for (int first = 1;; first = 0) {
        long e = line_end(buf, pos, limit);
        if (e == -2)
            return -400;
        if (e == -1) {
            for (size_t i = pos; i < limit; i++)
                if (bad_byte((unsigned char)buf[i]))
                    return -400;
            return len >= max_head ? -431 : 0;
        }
        const char *line = buf + pos;
        size_t n = (size_t)e - pos;
        pos = (size_t)e + 2;
        if (first) {
            int32_t rc = parse_request_line(line, n, req);
            if (rc)
                return rc;
            continue;
        }
        if (n == 0) {
            req->head_len = (uint32_t)pos;
            return (int32_t)pos;
        }
        int32_t rc = parse_header_line(line, n, req);
        if (rc)
            return rc;
    }
}

const tws_str *tws_http_find(const tws_http_req *req, const char *name, uint32_t *count) {
    const tws_str *first = NULL;
    uint32_t n = 0;
    for (uint32_t i = 0; i < req->n_headers; i++)
        if (tws_str_ieq(req->headers[i].name, name)) {
            if (!first)
                first = &req->headers[i].value;
            n++;
        }
    if (count)
        *count = n;
    return first;
}

int tws_http_list_has(tws_str list, const char *token) {
    size_t i = 0;
    while (i < list.len) {
        size_t start = i;
        while (i < list.len && list.p[i] != ',')
            i++;
        size_t end = i;
        while (start < end && (list.p[start] == ' ' || list.p[start] == '\t'))
            start++;
        while (end > start && (list.p[end - 1] == ' ' || list.p[end - 1] == '\t'))
            end--;
        if (tws_str_ieq((tws_str){list.p + start, (uint32_t)(end - start)}, token))
            return 1;
        i++; /* past the comma */
    }
    return 0;
}

const char *tws_http_reason(uint32_t status) {
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}
