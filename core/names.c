#include "names.h"

#include <string.h>

int name_valid(const char *s, size_t len, size_t max) {
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        if (!ok)
            return 0;
    }
    return 1;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int query_param(const char *query, const char *key, char *out, size_t outlen) {
    size_t klen = strlen(key);
    const char *p = query;
    while (p && *p) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen >= klen && strncmp(p, key, klen) == 0 && (plen == klen || p[klen] == '=')) {
            const char *v = plen == klen ? p + plen : p + klen + 1;
            const char *vend = p + plen;
            size_t n = 0;
            while (v < vend) {
                int c = (unsigned char)*v;
                if (c == '%') {
                    if (vend - v < 3)
                        return -2;
                    int hi = hexval(v[1]);
                    int lo = hexval(v[2]);
                    if (hi < 0 || lo < 0)
                        return -2;
                    c = hi * 16 + lo;
                    v += 3;
                } else {
                    if (c == '+')
                        c = ' ';
                    v++;
                }
                if (c == 0 || n + 1 >= outlen)
                    return -2;
                out[n++] = (char)c;
            }
            out[n] = '\0';
            return (int)n;
        }
        p = end ? end + 1 : NULL;
    }
    return -1;
}
