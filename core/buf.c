/*
 * buf.c — reference-counted buffers with headroom.
 *
 * One allocation holds a hidden header (the reference count), the public
 * nb_buf, and the bytes. The count is atomic because one framed broadcast
 * is shared by the outbound queues of connections on different I/O
 * threads.
 */
#include "buf.h"

#include <nebula/plugin.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf_block {
    atomic_uint refs;
    uint32_t size; /* bytes in storage[] */
    nb_buf pub;
    _Alignas(16) uint8_t storage[];
} buf_block;

static atomic_llong live_buffers;

static buf_block *block_of(const nb_buf *b) {
    return (buf_block *)(void *)((char *)(void *)b - offsetof(buf_block, pub));
}

nb_buf *buf_new(uint32_t headroom, uint32_t capacity) {
    uint64_t size = (uint64_t)headroom + capacity;
    if (size > UINT32_MAX - sizeof(buf_block))
        return NULL;
    buf_block *blk = malloc(sizeof(buf_block) + size);
    if (!blk)
        return NULL;
    atomic_init(&blk->refs, 1);
    blk->size = (uint32_t)size;
    blk->pub.struct_size = sizeof(nb_buf);
    blk->pub.len = 0;
    blk->pub.data = blk->storage + headroom;
    blk->pub.headroom = headroom;
    blk->pub.tailroom = capacity;
    atomic_fetch_add_explicit(&live_buffers, 1, memory_order_relaxed);
    return &blk->pub;
}

void buf_ref(nb_buf *buf) {
    atomic_fetch_add_explicit(&block_of(buf)->refs, 1, memory_order_relaxed);
}

void buf_unref(nb_buf *buf) {
    if (!buf)
        return;
    buf_block *blk = block_of(buf);
    if (atomic_fetch_sub_explicit(&blk->refs, 1, memory_order_acq_rel) == 1) {
        atomic_fetch_sub_explicit(&live_buffers, 1, memory_order_relaxed);
        free(blk);
    }
}

uint32_t buf_refcount(const nb_buf *buf) {
    return atomic_load_explicit(&block_of(buf)->refs, memory_order_relaxed);
}

int32_t buf_reserve(nb_buf **bufp, uint32_t tailroom) {
    nb_buf *b = *bufp;
    if (b->tailroom >= tailroom)
        return NB_OK;
    buf_block *blk = block_of(b);
    uint64_t want = (uint64_t)b->headroom + b->len + tailroom;
    uint64_t grow = (uint64_t)blk->size * 2;
    uint64_t size = want > grow ? want : grow;
    if (size > UINT32_MAX - sizeof(buf_block))
        return NB_ERR_NOMEM;
    size_t data_off = (size_t)(b->data - blk->storage);
    buf_block *nblk = realloc(blk, sizeof(buf_block) + size);
    if (!nblk)
        return NB_ERR_NOMEM;
    nblk->size = (uint32_t)size;
    nblk->pub.data = nblk->storage + data_off;
    nblk->pub.tailroom = (uint32_t)(size - data_off - nblk->pub.len);
    *bufp = &nblk->pub;
    return NB_OK;
}

int32_t buf_append(nb_buf **bufp, const void *data, uint32_t len) {
    int32_t rc = buf_reserve(bufp, len);
    if (rc != NB_OK)
        return rc;
    nb_buf *b = *bufp;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->tailroom -= len;
    return NB_OK;
}

int64_t buf_live_count(void) {
    return atomic_load_explicit(&live_buffers, memory_order_relaxed);
}
