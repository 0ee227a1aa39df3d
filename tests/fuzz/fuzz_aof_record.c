/*
 * fuzz_aof_record.c — store-aof's decoder (plugins/store-aof/aof_format.c)
 * over arbitrary bytes, as the plugin's start-up and nebula-store read a
 * file: the header check, the scan of every record, and the search for a
 * valid record after a bad one.
 *
 * Invariants: no crash, no read outside the input; a record that decodes
 * lies inside the input, its fields inside its body, and encodes back to
 * exactly the same bytes; the scan stops inside the input; a record found
 * after a bad one decodes.
 */
#include "aof_format.h"
#include "fuzz.h"

typedef struct walk {
    const uint8_t *data;
    uint64_t size;
    uint8_t *enc;
} walk;

static int check_record(void *user, const aof_record *r, uint64_t off, uint64_t len) {
    walk *w = user;
    FUZZ_CHECK(off + len <= w->size);
    FUZZ_CHECK(len >= AOF_PREFIX_SIZE + AOF_BODY_FIXED);
    FUZZ_CHECK(r->kind == AOF_KIND_MESSAGE || r->kind == AOF_KIND_MARK);
    FUZZ_CHECK(r->room >= w->data + off && r->content + r->content_len <= w->data + off + len);
    FUZZ_CHECK(aof_record_size(r) == len);
    w->enc = realloc(w->enc, (size_t)len);
    FUZZ_CHECK(w->enc != NULL);
    aof_record_encode(r, w->enc);
    FUZZ_CHECK(memcmp(w->enc, w->data + off, (size_t)len) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char epoch[AOF_EPOCH_LEN + 1];
    (void)aof_header_check(data, size, epoch);
    walk w = {data, size, NULL};
    /* The records as if after a header, from offset 0 (the input is the body of a file). */
    uint64_t bad = 0;
    aof_decode_rc rc = aof_scan(data, size, 0, check_record, &w, &bad);
    FUZZ_CHECK(bad <= size);
    FUZZ_CHECK(rc == AOF_OK ? bad == size : bad < size);
    FUZZ_CHECK(aof_decode_reason(rc) != NULL);
    if (rc != AOF_OK) {
        uint64_t next = aof_find_valid_after(data, size, bad);
        FUZZ_CHECK(next == 0 || next > bad);
        if (next) {
            aof_record r;
            uint64_t len;
            FUZZ_CHECK(aof_record_decode(data + next, (size_t)(size - next), &r, &len) == AOF_OK);
        }
    }
    free(w.enc);
    return 0;
}
