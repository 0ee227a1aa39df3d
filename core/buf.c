/*
 * buf.c — reference-counted buffers with headroom, pooled.
 *
 * One allocation holds a hidden header (the reference count), the public
 * nb_buf, and the bytes. The count is atomic because one framed broadcast
 * is shared by the outbound queues of connections on different I/O
 * threads.
 *
 * Pool: small buffers (the common message and frame sizes) come in three
 * size classes and, when their last reference goes, wait in a free list
 * of the thread that dropped it, to serve that thread's next buf_new
 * without malloc. Each thread keeps at most POOL_MAX per class; a
 * thread's list is freed when the thread ends (and by buf_pool_drain for
 * the main thread), so leak checkers see nothing.
 */
#include "buf.h"

#include <nebula/plugin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define N_CLASSES 3
#define NO_CLASS N_CLASSES /* larger or resized: plain malloc/free */
#define POOL_MAX 256
static const uint32_t class_size[N_CLASSES] = {256, 1024, 4096};

typedef struct buf_block {
    atomic_uint refs;
    uint32_t size;          /* bytes in storage[] */
    uint32_t cls;           /* size class, or NO_CLASS */
    struct buf_block *next; /* in a free list */
    nb_buf pub;
    _Alignas(16) uint8_t storage[];
} buf_block;

typedef struct buf_pool {
    buf_block *head[N_CLASSES];
    uint32_t count[N_CLASSES];
    int registered; /* the thread-exit destructor knows this pool */
} buf_pool;

static atomic_llong live_buffers;
static _Thread_local buf_pool pool;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_free(buf_pool *p) {
    for (uint32_t c = 0; c < N_CLASSES; c++) {
        while (p->head[c]) {
            buf_block *b = p->head[c];
            p->head[c] = b->next;
            free(b);
        }
        p->count[c] = 0;
    }
}

/* Thread exit: the key's value is the thread's own pool. */
static void pool_destructor(void *p) {
    pool_free(p);
}

static void pool_key_init(void) {
    pthread_key_create(&pool_key, pool_destructor);
}

void buf_pool_drain(void) {
    pool_free(&pool);
}

static buf_block *block_of(const nb_buf *b) {
    return (buf_block *)(void *)((char *)(void *)b - offsetof(buf_block, pub));
}

nb_buf *buf_new(uint32_t headroom, uint32_t capacity) {
    uint64_t size = (uint64_t)headroom + capacity;
    if (size > UINT32_MAX - sizeof(buf_block))
        return NULL;
    uint32_t cls = 0;
    while (cls < N_CLASSES && size > class_size[cls])
        cls++;
    buf_block *blk = NULL;
    if (cls < N_CLASSES && pool.head[cls]) {
        blk = pool.head[cls];
        pool.head[cls] = blk->next;
        pool.count[cls]--;
    } else {
        uint64_t alloc = cls < N_CLASSES ? class_size[cls] : size;
        blk = malloc(sizeof(buf_block) + alloc);
        if (!blk)
            return NULL;
        blk->size = (uint32_t)alloc;
        blk->cls = cls;
    }
    atomic_init(&blk->refs, 1);
    capacity = blk->size - headroom; /* a pooled block may hold more */
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
    if (atomic_fetch_sub_explicit(&blk->refs, 1, memory_order_acq_rel) != 1)
        return;
    atomic_fetch_sub_explicit(&live_buffers, 1, memory_order_relaxed);
    uint32_t cls = blk->cls;
    if (cls == NO_CLASS || pool.count[cls] >= POOL_MAX) {
        free(blk);
        return;
    }
    if (!pool.registered) {
        /* First block this thread keeps: have it freed at thread exit. */
        pthread_once(&pool_once, pool_key_init);
        pthread_setspecific(pool_key, &pool);
        pool.registered = 1;
    }
    blk->next = pool.head[cls];
    pool.head[cls] = blk;
    pool.count[cls]++;
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
    nblk->cls = NO_CLASS; /* no longer a class size */
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
