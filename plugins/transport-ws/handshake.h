/*
 * handshake.h — the server side of the RFC 6455 opening handshake: is this
 * request an upgrade, is it a valid one, and what to answer.
 */
#ifndef TWS_HANDSHAKE_H
#define TWS_HANDSHAKE_H

#include "http.h"

#include <stddef.h>
#include <stdint.h>

/* Sec-WebSocket-Accept is 28 base64 characters. */
#define TWS_ACCEPT_LEN 28u
/* Most subprotocol tokens taken from one request. */
#define TWS_MAX_SUBPROTOCOLS 16u

/* 1 if the request asks for WebSocket (an Upgrade header listing the
 * token "websocket"); such a request gets a WebSocket answer or an error,
 * never a file. */
int tws_is_upgrade(const tws_http_req *req);

/* 1 if `key` is base64 for exactly 16 bytes (24 characters, "==" pad). */
int tws_key_valid(tws_str key);

/* out[0..28] = base64(SHA-1(key + RFC 6455 GUID)), NUL-terminated. */
void tws_accept_key(tws_str key, char out[TWS_ACCEPT_LEN + 1]);

/*
 * Check an upgrade request's method, version and headers. Returns 0 and
 * sets *key, or the HTTP status to answer (400, or 426 for a version other
 * than 13) with *why saying what was wrong.
 */
uint32_t tws_handshake_check(const tws_http_req *req, tws_str *key, const char **why);

/*
 * Collect the Sec-WebSocket-Protocol tokens of every such header, in
 * order, as NUL-terminated copies in buf[0..buflen). Returns how many, or
 * -1 when an element is not a token, or there are too many for max or buf.
 */
int tws_subprotocols(const tws_http_req *req, char *buf, size_t buflen, const char **out,
                     uint32_t max);

#endif
