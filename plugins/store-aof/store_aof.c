/*
 * store_aof.c — store-aof: chat history in an append-only file of
 * checksummed records (aof_format.h), with an in-memory index per room
 * (aof_index.h). docs/STORES.md describes the format, the keys and the
 * guarantees.
 *
 * Group commit: append() encodes into one buffer; flush() writes it with
 * one pwrite at the end of the good data and, with fsync = "always", one
 * fdatasync. A write that fails is cut back (ftruncate) to the last good
 * length, so the file never keeps half a record that the next start would
 * have to repair.
 */
#include "store_aof.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int aof_grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : (size_t)64 * 1024;
    while (n < need)
        n *= 2;
    uint8_t *b = realloc(*buf, n);
    if (!b)
        return -1;
    *buf = b;
    *cap = n;
    return 0;
}

static void set_metrics(aof_store *s) {
    if (s->m_bytes)
        s->host->metric_set(s->m_bytes, (int64_t)s->file_size);
    if (s->m_kept)
        s->host->metric_set(s->m_kept, (int64_t)s->idx.kept);
}

void aof_trim_all(aof_store *s) {
    if (s->retention_seconds <= 0)
        return;
    int64_t cutoff = s->host->now_ms() - s->retention_seconds * 1000;
    for (aof_room *r = s->idx.rooms; r; r = r->all)
        index_trim_age(&s->idx, r, cutoff);
    s->last_age_trim = s->host->now_ms();
}

/* ---- config --------------------------------------------------------------- */

static int check_range(aof_store *s, const char *key, int64_t v, int64_t lo, int64_t hi,
                       const char *why) {
    if (v >= lo && v <= hi)
        return 0;
    s->host->config_error(s->ctx, key, why);
    return -1;
}

static int32_t aof_create(const nb_host *host, struct nb_plugin_ctx *ctx, void **instance) {
    aof_store *s = calloc(1, sizeof *s);
    if (!s)
        return NB_ERR_NOMEM;
    s->host = host;
    s->ctx = ctx;
    s->fd = -1;
    const char *fsync_s = NULL;
    /* Every key is read here, so --check-config reports mistakes; no file is touched. */
    if (host->config_path(ctx, "path", "data/nebula.aof", &s->path) != NB_OK ||
        host->config_string(ctx, "fsync", "everysec", &fsync_s) != NB_OK ||
        host->config_int(ctx, "retention_messages", 10000, &s->retention_messages) != NB_OK ||
        host->config_int(ctx, "retention_seconds", 0, &s->retention_seconds) != NB_OK ||
        host->config_int(ctx, "compact_min_bytes", (int64_t)64 * 1024 * 1024,
                         &s->compact_min_bytes) != NB_OK ||
        host->config_int(ctx, "compact_ratio", 2, &s->compact_ratio) != NB_OK) {
        free(s);
        return NB_ERR_CONFIG;
    }
    int bad = 0;
    if (strcmp(fsync_s, "always") == 0)
        s->fsync_mode = AOF_FSYNC_ALWAYS;
    else if (strcmp(fsync_s, "everysec") == 0)
        s->fsync_mode = AOF_FSYNC_EVERYSEC;
    else if (strcmp(fsync_s, "no") == 0)
        s->fsync_mode = AOF_FSYNC_NO;
    else {
        host->config_error(ctx, "fsync", "must be \"always\", \"everysec\" or \"no\"");
        bad = 1;
    }
    if (!s->path[0]) {
        host->config_error(ctx, "path", "must name a file");
        bad = 1;
    }
    bad |= check_range(s, "retention_messages", s->retention_messages, 0, 100000000,
                       "must be 0 (no count limit) .. 100000000") != 0;
    bad |= check_range(s, "retention_seconds", s->retention_seconds, 0, 100LL * 365 * 86400,
                       "must be 0 (no age limit) .. 100 years in seconds") != 0;
    bad |= check_range(s, "compact_min_bytes", s->compact_min_bytes, 4096, INT64_MAX / 1000,
                       "must be at least 4096") != 0;
    bad |= check_range(s, "compact_ratio", s->compact_ratio, 2, 100, "must be 2 .. 100") != 0;
    if (bad) {
        free(s);
        return NB_ERR_CONFIG;
    }
    index_init(&s->idx, (uint32_t)s->retention_messages);
    *instance = s;
    return NB_OK;
}

/* ---- writing --------------------------------------------------------------- */

static void drop_pending(aof_store *s) {
    s->buf_len = 0;
    s->n_pending = 0;
}

/* Cut the file back to its last good length after a failed write. */
static int cut_back(aof_store *s) {
    if (ftruncate(s->fd, (off_t)s->file_size) == 0) {
        s->need_truncate = 0;
        return 0;
    }
    s->host->log(s->ctx, NB_LOG_ERROR,
                 "cannot cut %s back to %llu bytes after a failed write: %s (retried before the "
                 "next write; a restart repairs it as a torn tail)",
                 s->path, (unsigned long long)s->file_size, strerror(errno));
    s->need_truncate = 1;
    return -1;
}

/* Write the batch at the end of the good data; on success index it. */
static int32_t write_pending(aof_store *s) {
    if (s->need_truncate && cut_back(s) != 0) {
        drop_pending(s);
        return NB_ERR_IO;
    }
    if (!s->buf_len)
        return NB_OK;
    size_t done = 0;
    int err = 0;
    while (done < s->buf_len) {
        ssize_t w = pwrite(s->fd, s->buf + done, s->buf_len - done, (off_t)(s->file_size + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        done += (size_t)w;
    }
    if (err) {
        s->host->log(s->ctx, NB_LOG_ERROR,
                     "writing %u records (%zu bytes) to %s at offset %llu failed: %s; they are "
                     "not stored",
                     s->n_pending, s->buf_len, s->path, (unsigned long long)s->file_size,
                     strerror(err));
        if (done)
            cut_back(s);
        drop_pending(s);
        if (s->m_failures)
            s->host->metric_add(s->m_failures, 1);
        return NB_ERR_IO;
    }
    int32_t rc = NB_OK;
    for (uint32_t i = 0; i < s->n_pending; i++) {
        const aof_pending *p = &s->pending[i];
        if (index_push(&s->idx, p->room, p->seq, p->ts, s->file_size + p->buf_off, p->len) != 0)
            rc = NB_ERR_NOMEM;
    }
    if (rc != NB_OK)
        s->host->log(s->ctx, NB_LOG_ERROR, "out of memory indexing written records of %s", s->path);
    s->file_size += s->buf_len;
    s->unsynced = 1;
    drop_pending(s);
    set_metrics(s);
    return rc;
}

static int32_t sync_file(aof_store *s) {
    if (fdatasync(s->fd) == 0) {
        s->unsynced = 0;
        return NB_OK;
    }
    int64_t now = s->host->now_ms();
    if (now - s->last_sync_err >= 1000) { /* at most a line a second */
        s->host->log(s->ctx, NB_LOG_ERROR, "fdatasync of %s failed: %s", s->path, strerror(errno));
        s->last_sync_err = now;
    }
    if (s->m_failures)
        s->host->metric_add(s->m_failures, 1);
    return NB_ERR_IO;
}

static int32_t aof_append(void *instance, const nb_msg *msg) {
    aof_store *s = instance;
    if (!msg->room.ptr || !msg->room.len || !msg->seq)
        return NB_ERR_INVALID;
    aof_room *room = index_room(&s->idx, msg->room.ptr, msg->room.len, 1);
    if (!room)
        return NB_ERR_NOMEM;
    if (msg->seq <= room->last_seq) {
        s->host->log(s->ctx, NB_LOG_ERROR, "room %s: seq %llu after %llu: out of order, not stored",
                     room->name, (unsigned long long)msg->seq, (unsigned long long)room->last_seq);
        return NB_ERR_INVALID;
    }
    aof_record r = {
        .kind = AOF_KIND_MESSAGE,
        .seq = msg->seq,
        .ts = msg->ts,
        .room = (const uint8_t *)msg->room.ptr,
        .room_len = msg->room.len,
        .id = (const uint8_t *)msg->id.ptr,
        .id_len = msg->id.ptr ? msg->id.len : 0,
        .sender = (const uint8_t *)msg->sender.ptr,
        .sender_len = msg->sender.ptr ? msg->sender.len : 0,
        .content = (const uint8_t *)msg->content.ptr,
        .content_len = msg->content.ptr ? msg->content.len : 0,
    };
    uint64_t size = aof_record_size(&r);
    if (!size)
        return NB_ERR_INVALID;
    if (aof_grow(&s->buf, &s->buf_cap, s->buf_len + size) != 0)
        return NB_ERR_NOMEM;
    if (s->n_pending == s->cap_pending) {
        uint32_t cap = s->cap_pending ? s->cap_pending * 2 : 256;
        aof_pending *p = realloc(s->pending, cap * sizeof *p);
        if (!p)
            return NB_ERR_NOMEM;
        s->pending = p;
        s->cap_pending = cap;
    }
    aof_record_encode(&r, s->buf + s->buf_len);
    s->pending[s->n_pending++] = (aof_pending){
        .room = room, .seq = msg->seq, .ts = msg->ts, .buf_off = s->buf_len, .len = (uint32_t)size};
    s->buf_len += size;
    room->last_seq = msg->seq; /* a seq never goes back, even if this write fails */
    return NB_OK;
}

static int32_t aof_flush(void *instance, uint32_t *durable) {
    aof_store *s = instance;
    *durable = 0;
    int32_t rc = write_pending(s);
    if (s->write_failed) { /* a write made by load() in this batch failed */
        s->write_failed = 0;
        rc = NB_ERR_IO;
    }
    if (rc != NB_OK)
        return rc;
    if (s->fsync_mode == AOF_FSYNC_ALWAYS && s->unsynced && (rc = sync_file(s)) != NB_OK)
        return rc;
    *durable = !s->unsynced;
    aof_compact_maybe(s);
    return NB_OK;
}

/* ---- reading --------------------------------------------------------------- */

/* Largest span read with one pread when a room's records lie close together. */
#define AOF_SPAN_MAX ((uint64_t)1024 * 1024)

static int read_at(aof_store *s, uint64_t off, size_t len) {
    if (aof_grow(&s->rbuf, &s->rbuf_cap, len) != 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(s->fd, s->rbuf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s->host->log(s->ctx, NB_LOG_ERROR, "reading %zu bytes of %s at offset %llu failed: %s",
                         len, s->path, (unsigned long long)off,
                         n < 0 ? strerror(errno) : "end of file");
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

static int32_t visit_entry(aof_store *s, const aof_room *room, const aof_entry *e,
                           const uint8_t *data, nb_store_visit_fn visit, void *user, int *stop) {
    aof_record r;
    uint64_t len = 0;
    aof_decode_rc rc = aof_record_decode(data, e->len, &r, &len);
    if (rc != AOF_OK || r.seq != e->seq || len != e->len) {
        s->host->log(s->ctx, NB_LOG_ERROR, "%s: the record at offset %llu (room %s, seq %llu): %s",
                     s->path, (unsigned long long)e->off, room->name, (unsigned long long)e->seq,
                     rc != AOF_OK ? aof_decode_reason(rc) : "not the record the index expects");
        return NB_ERR_IO;
    }
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = NB_MSG_MESSAGE;
    m.room = (nb_str){room->name, room->name_len, 0};
    m.id = (nb_str){(const char *)r.id, r.id_len, 0};
    m.sender = (nb_str){(const char *)r.sender, r.sender_len, 0};
    m.content = (nb_str){(const char *)r.content, r.content_len, 0};
    m.ts = r.ts;
    m.seq = r.seq;
    *stop = visit(user, &m) != NB_OK;
    return NB_OK;
}

static int32_t aof_load(void *instance, const nb_store_query *q, nb_store_result *res,
                        nb_store_visit_fn visit, void *user) {
    aof_store *s = instance;
    /* load() must see what was appended before it in this batch. */
    if (s->buf_len && write_pending(s) != NB_OK)
        s->write_failed = 1;
    res->epoch = s->epoch;
    aof_room *room = index_room(&s->idx, q->room, q->room_len, 0);
    if (!room)
        return NB_OK;
    if (s->retention_seconds > 0)
        index_trim_age(&s->idx, room, s->host->now_ms() - s->retention_seconds * 1000);
    res->last_seq = room->last_seq;
    res->first_seq = room->n ? index_at(room, 0)->seq : 0;
    uint32_t first = q->has_since ? index_after(room, q->since) : 0;
    if (room->n - first > q->max)
        first = room->n - q->max;
    if (first >= room->n)
        return NB_OK;
    const aof_entry *lo = index_at(room, first), *hi = index_at(room, room->n - 1);
    uint64_t span = hi->off + hi->len - lo->off;
    int whole = span <= AOF_SPAN_MAX;
    if (whole && read_at(s, lo->off, (size_t)span) != 0)
        return NB_ERR_IO;
    int stop = 0;
    for (uint32_t i = first; i < room->n && !stop; i++) {
        const aof_entry *e = index_at(room, i);
        if (!whole && read_at(s, e->off, e->len) != 0)
            return NB_ERR_IO;
        const uint8_t *data = whole ? s->rbuf + (e->off - lo->off) : s->rbuf;
        int32_t rc = visit_entry(s, room, e, data, visit, user, &stop);
        if (rc != NB_OK)
            return rc;
    }
    return NB_OK;
}

/* ---- start, the tick, stop ------------------------------------------------- */

/* Once a second: everysec's sync, age retention, the compaction check. */
static void on_tick(struct ev_loop *loop, ev_timer *t, int revents) {
    aof_store *s = t->data;
    if (s->fsync_mode == AOF_FSYNC_EVERYSEC && s->unsynced)
        sync_file(s);
    if (s->retention_seconds > 0 && s->host->now_ms() - s->last_age_trim >= 10000)
        aof_trim_all(s);
    set_metrics(s);
    aof_compact_maybe(s);
}

static int32_t aof_start(void *instance, uint32_t *flags) {
    aof_store *s = instance;
    s->m_bytes = s->host->metric_new(s->ctx, NB_METRIC_GAUGE, "nebula_store_aof_bytes",
                                     "size of the append-only file");
    s->m_kept = s->host->metric_new(s->ctx, NB_METRIC_GAUGE, "nebula_store_aof_kept_records",
                                    "messages retention keeps (what load() can return)");
    s->m_compactions =
        s->host->metric_new(s->ctx, NB_METRIC_COUNTER, "nebula_store_aof_compactions_total",
                            "rewrites of the append-only file that completed");
    s->m_failures =
        s->host->metric_new(s->ctx, NB_METRIC_COUNTER, "nebula_store_aof_io_errors_total",
                            "failed writes and syncs of the append-only file");
    int32_t rc = aof_open(s);
    if (rc != NB_OK)
        return rc;
    set_metrics(s);
    s->loop = s->host->loop(s->ctx);
    if (s->loop) {
        ev_timer_init(&s->tick, on_tick, 1.0, 1.0);
        s->tick.data = s;
        ev_timer_start(s->loop, &s->tick);
    }
    *flags = s->fsync_mode == AOF_FSYNC_ALWAYS ? NB_STORE_F_ACK_AFTER_FLUSH : 0;
    aof_compact_maybe(s);
    return NB_OK;
}

static void aof_stop(void *instance) {
    aof_store *s = instance;
    if (s->fd < 0)
        return;
    uint32_t durable;
    s->stopping = 1;
    aof_flush(s, &durable);
    aof_compact_abort(s, "the store is stopping");
    if (s->loop)
        ev_timer_stop(s->loop, &s->tick);
    if (s->fsync_mode != AOF_FSYNC_NO && s->unsynced)
        sync_file(s);
    close(s->fd);
    s->fd = -1;
    s->host->log(s->ctx, NB_LOG_INFO, "closed %s (%llu bytes)", s->path,
                 (unsigned long long)s->file_size);
}

static void aof_destroy(void *instance) {
    aof_store *s = instance;
    aof_compact_abort(s, "the store is destroyed");
    if (s->fd >= 0)
        close(s->fd);
    index_free(&s->idx);
    free(s->buf);
    free(s->pending);
    free(s->rbuf);
    free(s);
}

static const nb_store_vtable vt = {
    .struct_size = sizeof(nb_store_vtable),
    .start = aof_start,
    .stop = aof_stop,
    .append = aof_append,
    .flush = aof_flush,
    .load = aof_load,
};

static const nb_plugin_desc desc = {
    NB_PLUGIN_HEADER(NB_KIND_STORE),
    .name = "store-aof",
    .version = "1.0.0",
    .summary = "message history in an append-only file of checksummed records",
    .create = aof_create,
    .destroy = aof_destroy,
    .vtable = &vt,
};

NB_PLUGIN_DECLARE(desc)
