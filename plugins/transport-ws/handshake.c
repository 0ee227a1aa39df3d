/*
 * handshake.c — upgrade validation and Sec-WebSocket-Accept (OpenSSL's
 * libcrypto for SHA-1 and base64).
 *
 * Order of the checks: a request that names another protocol version gets
 * 426 with the version we speak (so a client can retry), before its key is
 * looked at; everything else malformed is 400.
 */
#include "handshake.h"

#include <openssl/evp.h>
#include <string.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int tws_is_upgrade(const tws_http_req *req) {
    for (uint32_t i = 0; i < req->n_headers; i++)
        if (tws_str_ieq(req->headers[i].name, "upgrade") &&
            tws_http_list_has(req->headers[i].value, "websocket"))
            return 1;
    return 0;
}

static int b64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

int tws_key_valid(tws_str key) {
    /* 16 bytes encode to 22 characters of data and "==". */
    if (key.len != 24 || key.p[22] != '=' || key.p[23] != '=')
        return 0;
    for (uint32_t i = 0; i < 22; i++)
        if (!b64_char(key.p[i]))
            return 0;
    return 1;
}

void tws_accept_key(tws_str key, char out[TWS_ACCEPT_LEN + 1]) {
    unsigned char in[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t klen = key.len < sizeof in - (sizeof ws_guid - 1) ? key.len : 0;
    memcpy(in, key.p, klen);
    memcpy(in + klen, ws_guid, sizeof ws_guid - 1);
    out[0] = '\0';
    if (EVP_Digest(in, klen + sizeof ws_guid - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return;
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    out[TWS_ACCEPT_LEN] = '\0';
}

uint32_t tws_handshake_check(const tws_http_req *req, tws_str *key, const char **why) {
    uint32_t n;
    if (!tws_str_ieq(req->method, "GET")) {
        *why = "a WebSocket upgrade must be a GET";
        return 400;
    }
    if (req->minor != 1) {
        *why = "a WebSocket upgrade needs HTTP/1.1";
        return 400;
    }
    int has_upgrade = 0;
    for (uint32_t i = 0; i < req->n_headers; i++)
        if (tws_str_ieq(req->headers[i].name, "connection") &&
            tws_http_list_has(req->headers[i].value, "upgrade"))
            has_upgrade = 1;
    if (!has_upgrade) {
        *why = "Connection must include \"Upgrade\"";
        return 400;
    }
    const tws_str *version = tws_http_find(req, "sec-websocket-version", &n);
    if (!version || n != 1 || version->len != 2 || memcmp(version->p, "13", 2) != 0) {
        *why = "only WebSocket version 13 is supported";
        return 426;
    }
    const tws_str *k = tws_http_find(req, "sec-websocket-key", &n);
    if (!k || n != 1 || !tws_key_valid(*k)) {
        *why = "Sec-WebSocket-Key must be base64 of 16 bytes";
        return 400;
    }
    /* A body would be taken for WebSocket frames. */
    const tws_str *cl = tws_http_find(req, "content-length", NULL);
    if (tws_http_find(req, "transfer-encoding", NULL) || (cl && !tws_str_ieq(*cl, "0"))) {
        *why = "an upgrade request has no body";
        return 400;
    }
    *key = *k;
    return 0;
}

int tws_subprotocols(const tws_http_req *req, char *buf, size_t buflen, const char **out,
                     uint32_t max) {
    uint32_t count = 0;
    size_t used = 0;
    for (uint32_t h = 0; h < req->n_headers; h++) {
        if (!tws_str_ieq(req->headers[h].name, "sec-websocket-protocol"))
            continue;
        tws_str v = req->headers[h].value;
        uint32_t i = 0;
        while (i <= v.len) {
            uint32_t start = i;
            while (i < v.len && v.p[i] != ',')
                i++;
            uint32_t end = i;
            while (start < end && (v.p[start] == ' ' || v.p[start] == '\t'))
                start++;
            while (end > start && (v.p[end - 1] == ' ' || v.p[end - 1] == '\t'))
                end--;
            i++;
            if (start == end)
                continue; /* empty list elements are allowed and ignored */
            for (uint32_t k = start; k < end; k++)
                if (!tws_http_tchar((unsigned char)v.p[k]))
                    return -1;
            size_t len = end - start;
            if (count == max || used + len + 1 > buflen)
                return -1;
            memcpy(buf + used, v.p + start, len);
            buf[used + len] = '\0';
            out[count++] = buf + used;
            used += len + 1;
        }
    }
    return (int)count;
}
