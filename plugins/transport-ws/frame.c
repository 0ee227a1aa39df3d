/*
 * frame.c — server frame headers, UTF-8 and close-code rules, and the
 * frame scanner described in frame.h.
 */
#include "frame.h"

#include <string.h>

size_t tws_frame_header(uint8_t *out, uint32_t opcode, uint64_t payload_len) {
    out[0] = (uint8_t)(0x80u | (opcode & 0x0Fu));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xFFFFu) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

nb_buf *tws_frame_buf(const nb_host *host, uint32_t frame_kind, nb_buf *payload) {
    if (!payload)
        return NULL;
    uint32_t op = frame_kind == NB_FRAME_TEXT     ? TWS_OP_TEXT
                  : frame_kind == NB_FRAME_BINARY ? TWS_OP_BINARY
                                                  : 0;
    if (!op || payload->len > UINT32_MAX - TWS_FRAME_HEADER_MAX) {
        host->buf_unref(payload);
        return NULL;
    }
    uint8_t hdr[TWS_FRAME_HEADER_MAX];
    size_t hl = tws_frame_header(hdr, op, payload->len);
    if (payload->headroom >= hl) {
        payload->data -= hl;
        payload->len += (uint32_t)hl;
        payload->headroom -= (uint32_t)hl;
        memcpy(payload->data, hdr, hl);
        return payload;
    }
    /* No room in front: one copy, which the codecs avoid by allocating
     * NB_BUF_HEADROOM. */
    nb_buf *b = host->buf_new(0, payload->len + (uint32_t)hl);
    if (b) {
        memcpy(b->data, hdr, hl);
        if (payload->len)
            memcpy(b->data + hl, payload->data, payload->len);
        b->len = payload->len + (uint32_t)hl;
        b->tailroom -= b->len;
    }
    host->buf_unref(payload);
    return b;
}

int tws_utf8_valid(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* Chat text is mostly ASCII: test eight bytes at a time. */
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (!(w & UINT64_C(0x8080808080808080))) {
                i += 8;
                continue;
            }
        }
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        /* The second byte's range is what rules out overlongs (E0, F0),
         * surrogates (ED) and code points above U+10FFFF (F4). */
        size_t more;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c == 0xE0) {
            more = 2;
            lo = 0xA0;
        } else if (c == 0xED) {
            more = 2;
            hi = 0x9F;
        } else if (c >= 0xE1 && c <= 0xEF) {
            more = 2;
        } else if (c == 0xF0) {
            more = 3;
            lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            more = 3;
        } else if (c == 0xF4) {
            more = 3;
            hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < more || p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= more; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
        i += more + 1;
    }
    return 1;
}

int tws_close_code_valid(uint32_t code) {
    if (code < 1000 || code >= 5000)
        return 0;
    if (code >= 1004 && code <= 1006) /* reserved, or never on the wire */
        return 0;
    if (code >= 1015 && code <= 2999) /* 1015 is never sent; the rest unassigned */
        return 0;
    return 1;
}

size_t tws_close_payload(uint8_t *out, uint32_t code, const char *reason) {
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t len = reason ? strlen(reason) : 0;
    if (len > TWS_CLOSE_REASON_MAX) {
        len = TWS_CLOSE_REASON_MAX;
        /* Do not split a character: back up over continuation bytes. */
        while (len > 0 && ((uint8_t)reason[len] & 0xC0) == 0x80)
            len--;
    }
    const uint8_t *r = (const uint8_t *)reason;
    if (len && !tws_utf8_valid(r, len))
        len = 0;
    for (size_t i = 0; i < len; i++)
        out[2 + i] = r[i];
    return 2 + len;
}

/* ---- scanner -------------------------------------------------------- */

/* Header bytes needed, judged from what has been collected. */
static size_t header_need(const tws_scan *s) {
    if (s->hdr_len < 2)
        return 2;
    uint8_t len7 = s->hdr[1] & 0x7Fu;
    size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
    return need + ((s->hdr[1] & 0x80u) ? 4 : 0);
}

/* Control-frame rules need only the first two bytes: refuse at once
 * rather than wait for extended length bytes that may never come. */
static const char *early_error(const tws_scan *s) {
    if (s->hdr_len < 2 || !(s->hdr[0] & 0x8u))
        return NULL;
    if (!(s->hdr[0] & 0x80u))
        return "fragmented control frame";
    if ((s->hdr[1] & 0x7Fu) > TWS_CONTROL_MAX)
        return "control frame payload over 125 bytes";
    return NULL;
}

/* A complete header in s->hdr: check what wslay would get wrong and set
 * up the payload. Returns NULL or why the frame is refused. */
static const char *header_done(tws_scan *s, uint32_t *opcode) {
    uint8_t b0 = s->hdr[0], b1 = s->hdr[1];
    uint32_t fin = b0 >> 7, rsv = (b0 >> 4) & 7u, op = b0 & 0x0Fu;
    uint32_t masked = b1 >> 7, len7 = b1 & 0x7Fu;
    uint64_t len = len7;
    size_t at = 2;
    if (len7 == 126) {
        len = ((uint64_t)s->hdr[2] << 8) | s->hdr[3];
        at = 4;
        if (len < 126)
            return "payload length not minimally encoded";
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | s->hdr[2 + i];
        at = 10;
        if (len >> 63)
            return "payload length has its top bit set";
        if (len <= 0xFFFFu)
            return "payload length not minimally encoded";
    }
    if (op == TWS_OP_CLOSE) {
        /* Not for wslay: check here what wslay checks on other frames. */
        if (!masked)
            return "unmasked client frame";
        if (rsv)
            return "reserved bits set without an extension";
        memcpy(s->mask, s->hdr + at, 4);
    } else if (op == TWS_OP_TEXT || op == TWS_OP_BINARY || (op == TWS_OP_CONT && s->frag_open)) {
        /* An orphan continuation is not counted: wslay refuses it (1002). */
        s->msg_len = op == TWS_OP_CONT ? s->msg_len + len : len;
        if (s->max_message && s->msg_len > s->max_message) {
            s->error_code = 1009;
            return "message over max_message_bytes";
        }
        s->frag_open = (uint8_t)!fin;
    } else if ((op == TWS_OP_PING || op == TWS_OP_PONG) && s->ctl_limited) {
        if (s->ctl_left == 0) {
            s->error_code = 1008;
            return "too many control frames";
        }
        s->ctl_left--;
    }
    s->remaining = len;
    s->in_payload = len > 0;
    *opcode = op;
    return NULL;
}

void tws_scan_run(tws_scan *s, const uint8_t *in, size_t n, int pass, tws_scan_result *r) {
    size_t off = 0;
    size_t carried = s->hdr_len; /* header bytes from an earlier call */
    r->status = TWS_SCAN_MORE;
    r->prefix_len = 0;
    r->pass_end = 0;
    while (off < n) {
        if (s->in_payload) {
            uint64_t left = n - off;
            size_t take = (size_t)(s->remaining < left ? s->remaining : left);
            if (s->capturing) {
                for (size_t i = 0; i < take; i++, s->ctl_len++)
                    s->ctl[s->ctl_len] = in[off + i] ^ s->mask[s->ctl_len & 3u];
            }
            off += take;
            s->remaining -= take;
            if (pass && !s->capturing)
                r->pass_end = off;
            if (s->remaining == 0) {
                s->in_payload = 0;
                if (s->capturing) {
                    s->capturing = 0;
                    r->status = TWS_SCAN_CLOSE;
                    break;
                }
            }
            continue;
        }
        size_t need = header_need(s);
        while (s->hdr_len < need && off < n) {
            s->hdr[s->hdr_len++] = in[off++];
            need = header_need(s);
        }
        const char *why = early_error(s);
        if (!why && s->hdr_len < need)
            break; /* the rest of the header comes later */
        uint32_t op = 0;
        if (!why)
            why = header_done(s, &op);
        size_t from_before = carried;
        carried = 0;
        s->hdr_len = 0;
        if (why) {
            s->error = why;
            if (!s->error_code)
                s->error_code = 1002;
            r->status = TWS_SCAN_ERROR;
            break;
        }
        if (op == TWS_OP_CLOSE) {
            s->ctl_len = 0;
            if (!s->in_payload) {
                r->status = TWS_SCAN_CLOSE;
                break;
            }
            s->capturing = 1;
            continue;
        }
        if (pass) {
            if (from_before) {
                memcpy(r->prefix, s->hdr, from_before);
                r->prefix_len = from_before;
            }
            r->pass_end = off;
        }
    }
    r->consumed = off;
}

int tws_scan_idle(const tws_scan *s) {
    return s->hdr_len == 0 && !s->in_payload && !s->capturing && !s->frag_open;
}
