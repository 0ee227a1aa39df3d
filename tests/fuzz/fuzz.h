/*
 * fuzz.h — what the libFuzzer targets of tests/fuzz/ share: the entry
 * point's prototype, a check that stops the run with a message (libFuzzer
 * saves the input as a crash), and a plain UTF-8 decoder to compare the
 * product's validators against.
 */
#ifndef NEBULA_FUZZ_H
#define NEBULA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant that must hold whatever the input: on failure, say which
 * and abort, which libFuzzer reports as a crash and saves. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/*
 * A client's byte stream cut into reads, as it reaches the transport. The
 * input of the WebSocket targets is: byte 0 (bits 0-1 are the target's;
 * bits 2-4 give k, how many read lengths follow), byte 1 (the target's),
 * k lengths, then the stream. Read i is lens[i % k] bytes long, or the
 * whole rest when the lengths are all 0; each read is copied into a heap
 * block of exactly its size, so that ASan sees any overread.
 */
typedef struct fuzz_reads {
    const uint8_t *lens;
    const uint8_t *stream;
    size_t k, n, cycle, off, i;
} fuzz_reads;

/* 0 when the input is too short to hold its own header. */
static inline int fuzz_reads_init(fuzz_reads *r, const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    memset(r, 0, sizeof *r);
    r->k = (data[0] >> 2) & 7u;
    if (size < 2 + r->k)
        return 0;
    r->lens = data + 2;
    r->stream = data + 2 + r->k;
    r->n = size - 2 - r->k;
    for (size_t i = 0; i < r->k; i++)
        r->cycle += r->lens[i];
    return 1;
}

/* The next read (the caller frees it) and its length in *len; NULL after
 * the last. An empty stream still gives one empty read. */
static inline uint8_t *fuzz_reads_next(fuzz_reads *r, size_t *len) {
    if (r->off == r->n && r->i > 0)
        return NULL;
    size_t l = r->cycle ? r->lens[r->i % r->k] : r->n - r->off;
    if (l > r->n - r->off)
        l = r->n - r->off;
    uint8_t *chunk = malloc(l ? l : 1);
    FUZZ_CHECK(chunk != NULL);
    memcpy(chunk, r->stream + r->off, l);
    r->off += l;
    r->i++;
    *len = l;
    return chunk;
}

/*
 * Decode one UTF-8 sequence at p[0..n) (n > 0) the textbook way: the lead
 * byte gives the length, every further byte must be 10xxxxxx, then the
 * code point must use the shortest form, not be a surrogate and not pass
 * U+10FFFF. Returns the sequence's length, or 0 when it is not valid.
 * Written independently of the product's table-driven validators.
 */
static inline size_t fuzz_utf8_seq(const uint8_t *p, size_t n) {
    uint32_t c = p[0];
    size_t len;
    uint32_t min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        min = 0x80;
        c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        min = 0x800;
        c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return len;
}

/* 1 if p[0..n) is valid UTF-8 by the decoder above. */
static inline int fuzz_utf8_valid(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = fuzz_utf8_seq(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

#endif
