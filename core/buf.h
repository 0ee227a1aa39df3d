/*
 * buf.h — the host side of nb_buf (include/nebula/buf.h): allocation with
 * headroom, atomic reference counts, growth. Exposed to plugins through
 * the host table; the core uses the same functions directly.
 */
#ifndef NEBULA_CORE_BUF_H
#define NEBULA_CORE_BUF_H

#include <nebula/buf.h>
#include <stdint.h>

nb_buf *buf_new(uint32_t headroom, uint32_t capacity);
void buf_ref(nb_buf *buf);
void buf_unref(nb_buf *buf);
int32_t buf_reserve(nb_buf **buf, uint32_t tailroom);
/* Append bytes, growing as needed. NB_OK or NB_ERR_NOMEM. */
int32_t buf_append(nb_buf **buf, const void *data, uint32_t len);
/* Current reference count (tests and assertions only). */
uint32_t buf_refcount(const nb_buf *buf);
/* Buffers alive now (for leak checks in tests and the metrics page). */
int64_t buf_live_count(void);
/* Free the calling thread's pool of unused buffers (other threads' pools
 * are freed when they end). */
void buf_pool_drain(void);
#endif
