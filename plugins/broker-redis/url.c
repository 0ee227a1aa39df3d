/*
 * url.c — redis://[[user]:password@]host[:port][/db], the form operators
 * know from every Redis client. The host may be a name, an IPv4 address
 * or an IPv6 address in brackets. Strict: anything else is refused with a
 * reason, never guessed at.
 */
#include "rb.h"

#include <stdlib.h>
#include <string.h>

static int parse_number(const char *s, size_t n, long max, long *out) {
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int copy(char *dst, size_t cap, const char *s, size_t n) {
    if (n >= cap)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int rb_url_parse(const char *url, rb_url *out, const char **why) {
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        *why = "expected redis://[:password@]host[:port][/db]";
        return -1;
    }
    const char *p = url + sizeof scheme - 1;
    const char *end = p + strlen(p);
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = memrchr(p, '@', (size_t)((slash ? slash : end) - p));
    if (auth_end) {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        if (!colon) {
            *why = "credentials must be :password@ or user:password@";
            return -1;
        }
        if (copy(out->user, sizeof out->user, p, (size_t)(colon - p)) < 0 ||
            copy(out->password, sizeof out->password, colon + 1, (size_t)(auth_end - colon - 1)) <
                0) {
            *why = "user name or password too long";
            return -1;
        }
        p = auth_end + 1;
    }
    const char *host_end = slash ? slash : end;
    const char *port_at = NULL;
    if (*p == '[') { /* [IPv6]:port */
        const char *close = memchr(p, ']', (size_t)(host_end - p));
        if (!close || close == p + 1) {
            *why = "an IPv6 address needs [brackets]";
            return -1;
        }
        if (copy(out->host, sizeof out->host, p + 1, (size_t)(close - p - 1)) < 0) {
            *why = "host too long";
            return -1;
        }
        if (close + 1 < host_end) {
            if (close[1] != ':') {
                *why = "unexpected text after the IPv6 address";
                return -1;
            }
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(host_end - p));
        const char *name_end = colon ? colon : host_end;
        if (name_end == p) {
            *why = "no host";
            return -1;
        }
        if (copy(out->host, sizeof out->host, p, (size_t)(name_end - p)) < 0) {
            *why = "host too long";
            return -1;
        }
        for (const char *c = out->host; *c; c++)
            if (!(*c == '.' || *c == '-' || *c == '_' || (*c >= '0' && *c <= '9') ||
                  (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))) {
                *why = "the host has a character a host name cannot have";
                return -1;
            }
        if (colon)
            port_at = colon + 1;
    }
    long v;
    if (port_at) {
        if (parse_number(port_at, (size_t)(host_end - port_at), 65535, &v) < 0 || v == 0) {
            *why = "the port must be a number from 1 to 65535";
            return -1;
        }
        out->port = (int)v;
    }
    if (slash && slash + 1 < end) {
        if (parse_number(slash + 1, (size_t)(end - slash - 1), 100000, &v) < 0) {
            *why = "the database (after /) must be a number";
            return -1;
        }
        out->db = (int)v;
    }
    return 0;
}
