/*
 * fuzz_frame_scan.c — the WebSocket receive scanner (tws_scan_run) on a
 * client byte stream cut into arbitrary reads, plus tws_utf8_valid against
 * a reference decoder, tws_close_payload and tws_close_code_valid.
 *
 * Input layout: byte 0 picks max_message (bits 0-1) and how many chunk
 * lengths follow (bits 2-4); byte 1 says, bit by bit, which reads are
 * scanned with `pass` set; then the chunk lengths (0 is an empty read);
 * the rest is the stream, cut by cycling through the lengths.
 *
 * The stream is scanned three times: whole, split with `pass` always set,
 * split with `pass` as byte 1 says. The scanner's state depends on the
 * bytes alone, never on how they were cut or on `pass`, so all three must
 * end the same way: same status, same error and close code, same close
 * payload, and (except after an error, which may be found after fewer
 * header bytes when the header is cut) the same number of bytes consumed.
 * With `pass` always set, what wslay would be handed (prefix + pass_end of
 * every read, put together) must be the same bytes as in the whole scan.
 */
#include "frame.h"
#include "fuzz.h"

#include <string.h>

/* What one scan of the whole stream ended with. */
typedef struct outcome {
    int status;
    size_t consumed;
    const char *error;
    uint32_t error_code;
    uint8_t ctl_len;
    uint8_t ctl[TWS_CONTROL_MAX];
    uint8_t *passed; /* prefix + pass_end bytes, in order (pass runs only) */
    size_t passed_len;
} outcome;

/* One call, and the invariants of a single call. */
static void scan_call(tws_scan *s, const uint8_t *in, size_t n, int pass, tws_scan_result *r) {
    size_t carried = s->hdr_len;
    memset(r, 0xA5, sizeof *r); /* nothing may be left unset */
    tws_scan_run(s, in, n, pass, r);
    FUZZ_CHECK(r->status == TWS_SCAN_MORE || r->status == TWS_SCAN_CLOSE ||
               r->status == TWS_SCAN_ERROR);
    FUZZ_CHECK(r->consumed <= n);
    FUZZ_CHECK(r->pass_end <= n);
    FUZZ_CHECK(r->pass_end <= r->consumed); /* never hands on what it did not examine */
    FUZZ_CHECK(r->prefix_len <= sizeof r->prefix);
    FUZZ_CHECK(r->prefix_len <= carried); /* the prefix is header bytes of earlier reads */
    if (r->prefix_len)
        FUZZ_CHECK(r->pass_end > 0); /* a header finished in this read goes with it */
    if (!pass)
        FUZZ_CHECK(r->prefix_len == 0 && r->pass_end == 0);
    if (r->status == TWS_SCAN_MORE)
        FUZZ_CHECK(r->consumed == n); /* "all input examined" */
    if (r->status == TWS_SCAN_ERROR) {
        FUZZ_CHECK(s->error != NULL);
        FUZZ_CHECK(s->error_code == 1002 || s->error_code == 1009);
    }
    FUZZ_CHECK(s->ctl_len <= TWS_CONTROL_MAX);
    FUZZ_CHECK(s->hdr_len <= sizeof s->hdr);
    if (s->capturing)
        FUZZ_CHECK(s->in_payload && s->remaining + s->ctl_len <= TWS_CONTROL_MAX);
    if (s->max_message && r->status != TWS_SCAN_ERROR)
        FUZZ_CHECK(s->msg_len <= s->max_message);
    (void)tws_scan_idle(s);
}

static void append(outcome *o, const uint8_t *p, size_t n) {
    if (n) {
        memcpy(o->passed + o->passed_len, p, n);
        o->passed_len += n;
    }
}

static void finish(outcome *o, const tws_scan *s, int status) {
    o->status = status;
    o->error = status == TWS_SCAN_ERROR ? s->error : NULL;
    o->error_code = status == TWS_SCAN_ERROR ? s->error_code : 0;
    o->ctl_len = status == TWS_SCAN_CLOSE ? s->ctl_len : 0;
    memcpy(o->ctl, s->ctl, o->ctl_len);
}

/* Feed the stream in rd's reads (rd is a copy: every call starts from the
 * beginning); stop at the first status other than MORE, as the transport
 * does. pass_bits: bit (i % 8) is `pass` for read i; -1 means always. */
static void scan_split(fuzz_reads rd, uint64_t max_message, int pass_bits, outcome *o) {
    tws_scan s;
    memset(&s, 0, sizeof s);
    s.max_message = max_message;
    int status = TWS_SCAN_MORE;
    uint8_t *chunk;
    size_t len;
    for (size_t i = 0; (chunk = fuzz_reads_next(&rd, &len)); i++) {
        int pass = pass_bits < 0 ? 1 : (pass_bits >> (i % 8)) & 1;
        tws_scan_result r;
        scan_call(&s, chunk, len, pass, &r);
        if (pass && o->passed) {
            append(o, r.prefix, r.prefix_len);
            append(o, chunk, r.pass_end);
        }
        free(chunk);
        o->consumed += r.consumed;
        status = r.status;
        if (status != TWS_SCAN_MORE)
            break;
    }
    finish(o, &s, status);
}

static void check_scanner(const uint8_t *data, size_t size) {
    fuzz_reads rd;
    if (!fuzz_reads_init(&rd, data, size))
        return;
    static const uint64_t limits[4] = {0, 1, 126, 65536};
    uint64_t max_message = limits[data[0] & 3u];
    int pass_bits = data[1];
    const uint8_t *stream = rd.stream;
    size_t n = rd.n;

    /* Whole: one read, pass set. */
    outcome whole = {0};
    whole.passed = malloc(n ? n : 1);
    FUZZ_CHECK(whole.passed != NULL);
    {
        tws_scan s;
        memset(&s, 0, sizeof s);
        s.max_message = max_message;
        tws_scan_result r;
        scan_call(&s, stream, n, 1, &r);
        FUZZ_CHECK(r.prefix_len == 0); /* nothing came before */
        append(&whole, stream, r.pass_end);
        whole.consumed = r.consumed;
        finish(&whole, &s, r.status);
    }

    outcome split = {0};
    split.passed = malloc(n + 1);
    FUZZ_CHECK(split.passed != NULL);
    scan_split(rd, max_message, -1, &split);

    outcome mixed = {0};
    scan_split(rd, max_message, pass_bits, &mixed);

    const outcome *runs[2] = {&split, &mixed};
    for (int i = 0; i < 2; i++) {
        const outcome *o = runs[i];
        FUZZ_CHECK(o->status == whole.status);
        FUZZ_CHECK(o->error == whole.error);
        FUZZ_CHECK(o->error_code == whole.error_code);
        FUZZ_CHECK(o->ctl_len == whole.ctl_len);
        FUZZ_CHECK(memcmp(o->ctl, whole.ctl, whole.ctl_len) == 0);
        if (whole.status == TWS_SCAN_ERROR)
            FUZZ_CHECK(o->consumed <= whole.consumed);
        else
            FUZZ_CHECK(o->consumed == whole.consumed);
    }
    FUZZ_CHECK(split.passed_len == whole.passed_len);
    FUZZ_CHECK(memcmp(split.passed, whole.passed, whole.passed_len) == 0);
    free(whole.passed);
    free(split.passed);
}

/* tws_utf8_valid must agree with the reference decoder, at every start
 * offset up to 8 (its fast path reads eight bytes at a time). */
static void check_utf8(const uint8_t *data, size_t size) {
    for (size_t at = 0; at <= size && at < 9; at++)
        FUZZ_CHECK(tws_utf8_valid(data + at, size - at) == fuzz_utf8_valid(data + at, size - at));
}

/* The close payload: at most 125 bytes, code first, then a prefix of the
 * reason that is valid UTF-8; a valid reason is cut only when too long,
 * and only at a character boundary. */
static void check_close_payload(const uint8_t *data, size_t size) {
    if (size < 2)
        return;
    uint32_t code = (uint32_t)data[0] << 8 | data[1];
    size_t rlen = size - 2;
    const uint8_t *nul = memchr(data + 2, 0, rlen);
    if (nul)
        rlen = (size_t)(nul - (data + 2));
    char *reason = malloc(rlen + 1);
    uint8_t *out = malloc(TWS_CONTROL_MAX); /* exactly what the contract promises to fill */
    FUZZ_CHECK(reason != NULL && out != NULL);
    memcpy(reason, data + 2, rlen);
    reason[rlen] = '\0';
    /* No reason at all (NULL) when there is none and the code is odd. */
    int null_reason = rlen == 0 && (code & 1u);
    size_t len = tws_close_payload(out, code, null_reason ? NULL : reason);
    FUZZ_CHECK(len >= 2 && len <= TWS_CONTROL_MAX);
    FUZZ_CHECK(out[0] == (uint8_t)(code >> 8) && out[1] == (uint8_t)code);
    /* The codes a peer may send: 1000-1003, 1007-1014, 3000-4999. */
    int allowed = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                  (code >= 3000 && code <= 4999);
    FUZZ_CHECK(tws_close_code_valid(code) == allowed);
    size_t cut = len - 2;
    if (null_reason) {
        FUZZ_CHECK(cut == 0);
    } else {
        FUZZ_CHECK(cut <= rlen && memcmp(out + 2, reason, cut) == 0);
        FUZZ_CHECK(fuzz_utf8_valid(out + 2, cut));
        if (fuzz_utf8_valid((const uint8_t *)reason, rlen)) {
            if (rlen <= TWS_CLOSE_REASON_MAX) {
                FUZZ_CHECK(cut == rlen);
            } else {
                FUZZ_CHECK(cut + 3 >= TWS_CLOSE_REASON_MAX);       /* at most one character lost */
                FUZZ_CHECK(((uint8_t)reason[cut] & 0xC0) != 0x80); /* at a boundary */
            }
        }
    }
    free(reason);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_scanner(data, size);
    check_utf8(data, size);
    check_close_payload(data, size);
    return 0;
}
