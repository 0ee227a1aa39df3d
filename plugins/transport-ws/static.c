/*
 * static.c — static files. Two independent walls keep requests inside
 * web_root: the path is refused if any segment is "." or ".." (checked
 * after %-decoding, so encoded forms do not slip through), and the file's
 * resolved real path must start with the root's, so symbolic links cannot
 * point outside either.
 */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int hex(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

uint32_t tws_static_map(const char *path, size_t len, char *out, size_t outlen) {
    static const char index_name[] = "index.html";
    if (len == 0 || path[0] != '/')
        return 400;
    if (len >= outlen)
        return 404;
    /* Decode into out; it only shrinks. */
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)path[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex((unsigned char)path[i + 1]) : -1;
            int lo = hi >= 0 ? hex((unsigned char)path[i + 2]) : -1;
            if (lo < 0)
                return 400;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7F || c == '\\')
            return 400;
        out[n++] = (char)c;
    }
    /* Rewrite in place as segments joined by '/', without the leading
     * slash and without empty segments. */
    size_t r = 0, w = 0;
    int dir = 1; /* the path names a folder: serve its index.html */
    while (r < n) {
        while (r < n && out[r] == '/')
            r++;
        size_t s = r;
        while (r < n && out[r] != '/')
            r++;
        size_t seg = r - s;
        if (seg == 0)
            break;
        if ((seg == 1 && out[s] == '.') || (seg == 2 && out[s] == '.' && out[s + 1] == '.'))
            return 400;
        if (out[s] == '.')
            return 404;
        if (w)
            out[w++] = '/';
        memmove(out + w, out + s, seg);
        w += seg;
        dir = r == n ? 0 : 1;
    }
    if (dir) {
        if (w + (w ? 1 : 0) + sizeof index_name > outlen)
            return 404;
        if (w)
            out[w++] = '/';
        memcpy(out + w, index_name, sizeof index_name);
        return 0;
    }
    out[w] = '\0';
    return 0;
}

const char *tws_static_type(const char *name) {
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"ico", "image/x-icon"},
        {"json", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"woff2", "font/woff2"},
        {"map", "application/json"},
        {"webmanifest", "application/manifest+json"},
    };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    if (dot) {
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    }
    return "application/octet-stream";
}

int tws_static_open(const char *root, const char *rel, uint64_t *size) {
    char full[PATH_MAX];
    char real[PATH_MAX];
    int n = snprintf(full, sizeof full, "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof full)
        return -404;
    if (!realpath(full, real))
        return errno == EMFILE || errno == ENFILE ? -503 : -404;
    size_t rl = strlen(root);
    if (strncmp(real, root, rl) != 0 || real[rl] != '/')
        return -404;
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == EMFILE || errno == ENFILE ? -503 : -404;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -404;
    }
    if ((uint64_t)st.st_size > TWS_STATIC_MAX_FILE) {
        close(fd);
        return -500;
    }
    *size = (uint64_t)st.st_size;
    return fd;
}
