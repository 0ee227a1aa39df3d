/*
 * names.h — what a username or room name may be, and reading them from the
 * connect URL's query string.
 */
#ifndef NEBULA_CORE_NAMES_H
#define NEBULA_CORE_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define NB_USERNAME_MAX 32
#define NB_ROOM_MAX 64

/* 1 if `s` (len bytes) is 1..max bytes of [A-Za-z0-9_.-]. */
int name_valid(const char *s, size_t len, size_t max);

/*
 * Find `key` in a raw query string ("a=1&b=2") and %-decode its value
 * ('+' is a space) into out (NUL-terminated). Returns the decoded length,
 * -1 if the key is absent, -2 if the value does not fit in outlen - 1 bytes
 * or has a broken %-escape or a NUL byte.
 */
int query_param(const char *query, const char *key, char *out, size_t outlen);
#endif
