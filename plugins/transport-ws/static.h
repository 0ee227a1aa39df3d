/*
 * static.h — serving files from web_root: from request path to an open
 * file, with no way out of the root.
 */
#ifndef TWS_STATIC_H
#define TWS_STATIC_H

#include <stddef.h>
#include <stdint.h>

/* Files larger than this are not served (500): the browser client is a
 * handful of small files, and a response is built in memory. */
#define TWS_STATIC_MAX_FILE ((uint64_t)16 * 1024 * 1024)

/*
 * Map a request path (as sent: %-encoded, without the query) to a path
 * relative to the web root in out[0..outlen): "/" and any path ending in
 * '/' name index.html. Returns 0, or the HTTP status to answer:
 *   400 — bad %-escape, NUL, backslash, control character, or a "." or
 *         ".." segment (before or after decoding: "/%2e%2e/", "/..%2f");
 *   404 — a segment starting with '.' (hidden files), or too long.
 */
uint32_t tws_static_map(const char *path, size_t len, char *out, size_t outlen);

/* The Content-Type for a file name, by extension. */
const char *tws_static_type(const char *name);

/*
 * Open `rel` (from tws_static_map) under `root`, a directory already
 * resolved with realpath(). The file's own real path must lie inside root,
 * so a symbolic link cannot lead out. Returns an fd and sets *size, or
 * minus the status: -404 (missing, not a regular file, outside the root),
 * -500 (too large, I/O error), -503 (out of file descriptors).
 */
int tws_static_open(const char *root, const char *rel, uint64_t *size);

#endif
