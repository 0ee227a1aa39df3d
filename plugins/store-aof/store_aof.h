/*
 * store_aof.h — one store-aof instance, shared by its files:
 *   store_aof.c    the vtable: config, append, flush, load, the 1 s tick
 *   aof_open.c     start-up: the folder, the header, the scan, tail repair
 *   aof_compact.c  the rewrite that drops what retention no longer keeps
 *   aof_index.c    the per-room index; aof_format.c the bytes on disk
 * Everything but create/destroy runs on the core's writer thread.
 */
#ifndef NEBULA_STORE_AOF_H
#define NEBULA_STORE_AOF_H

#include "aof_format.h"
#include "aof_index.h"

#include <ev.h>
#include <nebula/nebula.h>
#include <stddef.h>

#define AOF_FSYNC_NO 0
#define AOF_FSYNC_EVERYSEC 1
#define AOF_FSYNC_ALWAYS 2

/* A record appended but not yet written: indexed once the write succeeds. */
typedef struct aof_pending {
    aof_room *room;
    uint64_t seq;
    int64_t ts;
    uint64_t buf_off;
    uint32_t len;
    uint32_t reserved;
} aof_pending;

struct aof_compaction;

typedef struct aof_store {
    const nb_host *host;
    struct nb_plugin_ctx *ctx;
    /* config */
    const char *path;
    int fsync_mode;
    int64_t retention_messages, retention_seconds;
    int64_t compact_min_bytes, compact_ratio;
    /* the file */
    int fd;
    uint64_t file_size; /* everything up to here is good records */
    char epoch[AOF_EPOCH_LEN + 1];
    int unsynced;          /* written since the last fdatasync */
    int need_truncate;     /* a failed write's bytes may lie past file_size */
    int write_failed;      /* a write inside load() failed: the next flush reports it */
    int64_t last_sync_err; /* ms of the last logged sync failure */
    /* the batch */
    uint8_t *buf;
    size_t buf_len, buf_cap;
    aof_pending *pending;
    uint32_t n_pending, cap_pending;
    /* reads */
    uint8_t *rbuf;
    size_t rbuf_cap;
    aof_index idx;
    struct ev_loop *loop;
    ev_timer tick;
    int64_t last_age_trim;
    struct aof_compaction *compaction;
    uint64_t next_compact_at; /* after a failed compaction: wait for this size */
    int stopping;             /* stop() runs: no new compaction */
    struct nb_metric *m_bytes, *m_kept, *m_compactions, *m_failures;
} aof_store;

/* aof_open.c */
int32_t aof_open(aof_store *s);
/* aof_compact.c */
void aof_compact_maybe(aof_store *s);
void aof_compact_abort(aof_store *s, const char *why);
/* store_aof.c */
int aof_grow(uint8_t **buf, size_t *cap, size_t need);
void aof_trim_all(aof_store *s);

#endif /* NEBULA_STORE_AOF_H */
