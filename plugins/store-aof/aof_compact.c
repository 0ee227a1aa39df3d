/*
 * aof_compact.c — rewrite the file keeping only what retention keeps,
 * without stopping the server.
 *
 * When the file has reached compact_min_bytes and is compact_ratio times
 * the records retention keeps, a rewrite starts into PATH.compact, on the
 * writer thread, in slices run by an ev_idle watcher: the writer's loop
 * runs a slice only when no batch is waiting, and a slice stops after
 * AOF_SLICE_BYTES or AOF_SLICE_MS, so a flush waits at most about one
 * slice. Appends go on to the old file meanwhile.
 *
 *   1. the old file up to its size at the start (snap_end) is read in
 *      order; a record is copied when the index still keeps it; the new
 *      offset of each copied record is remembered per room (room->moved);
 *      a room whose last seq is above its last copied record gets a mark
 *      record, so its numbering survives with none of its messages kept;
 *   2. what was appended since (snap_end .. end) is copied as it is, in
 *      slices, until less than one slice is left;
 *   3. in one step: the rest is copied, the new file is synced and renamed
 *      over the old one, the folder synced, and the index's offsets moved
 *      to the new file.
 * A failure (disk full...) abandons the rewrite and removes PATH.compact;
 * the old file is untouched. The next attempt waits until the file has
 * grown by compact_min_bytes again.
 */
#include "store_aof.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AOF_SLICE_BYTES ((size_t)256 * 1024)
#define AOF_SLICE_MS 2.0

typedef struct aof_compaction {
    int fd;
    char tmp[4200];
    int phase;          /* 1: kept records before snap_end; 2: the tail after it */
    uint64_t snap_end;  /* the old file's size when the rewrite started */
    uint64_t cursor;    /* next offset to read in the old file */
    uint64_t new_size;  /* bytes of the new file, written or in wbuf */
    uint64_t tail_base; /* where phase 2 starts in the new file */
    uint64_t copied, dropped;
    uint8_t *rbuf, *wbuf;
    size_t rcap, wcap, wlen;
    struct timespec t0;
    double longest_slice_ms;
    ev_idle idle;
} aof_compaction;

static double ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void free_moved(aof_store *s) {
    for (aof_room *r = s->idx.rooms; r; r = r->all) {
        free(r->moved);
        r->moved = NULL;
        r->n_moved = r->cap_moved = 0;
    }
}

static void finish_free(aof_store *s) {
    aof_compaction *c = s->compaction;
    if (s->loop)
        ev_idle_stop(s->loop, &c->idle);
    free_moved(s);
    free(c->rbuf);
    free(c->wbuf);
    free(c);
    s->compaction = NULL;
}

void aof_compact_abort(aof_store *s, const char *why) {
    aof_compaction *c = s->compaction;
    if (!c)
        return;
    close(c->fd);
    unlink(c->tmp);
    s->host->log(s->ctx, NB_LOG_WARN, "compaction of %s abandoned (%s removed): %s", s->path,
                 c->tmp, why);
    s->next_compact_at = s->file_size + (uint64_t)s->compact_min_bytes;
    finish_free(s);
}

static int fail(aof_store *s, const char *what) {
    char why[512];
    snprintf(why, sizeof why, "%s the rewrite: %s", what, strerror(errno));
    aof_compact_abort(s, why);
    return -1;
}

static int write_out(aof_store *s) {
    aof_compaction *c = s->compaction;
    uint64_t at = c->new_size - c->wlen;
    size_t done = 0;
    while (done < c->wlen) {
        ssize_t w = pwrite(c->fd, c->wbuf + done, c->wlen - done, (off_t)(at + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return fail(s, "writing");
        }
        done += (size_t)w;
    }
    /* Start the write-back now, so the final fdatasync has little left. */
    sync_file_range(c->fd, (off_t)at, (off_t)c->wlen, SYNC_FILE_RANGE_WRITE);
    c->wlen = 0;
    return 0;
}

static int emit(aof_store *s, const uint8_t *bytes, size_t len) {
    aof_compaction *c = s->compaction;
    if (aof_grow(&c->wbuf, &c->wcap, c->wlen + len) != 0) {
        errno = ENOMEM;
        return fail(s, "buffering");
    }
    memcpy(c->wbuf + c->wlen, bytes, len);
    c->wlen += len;
    c->new_size += len;
    return c->wlen >= AOF_SLICE_BYTES ? write_out(s) : 0;
}

static int read_old(aof_store *s, uint64_t off, size_t len) {
    aof_compaction *c = s->compaction;
    if (aof_grow(&c->rbuf, &c->rcap, len) != 0) {
        errno = ENOMEM;
        return fail(s, "reading");
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(s->fd, c->rbuf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return fail(s, "reading the old file for");
        }
        done += (size_t)n;
    }
    return 0;
}

/* Does the index still keep this record? Then remember where it goes. */
static int keep(aof_store *s, const aof_record *r, uint64_t len) {
    if (r->kind != AOF_KIND_MESSAGE)
        return 0; /* marks are written anew from the index */
    aof_room *room = index_room(&s->idx, (const char *)r->room, r->room_len, 0);
    if (!room || !room->n || r->seq < index_at(room, 0)->seq)
        return 0;
    if (room->n_moved && r->seq <= room->moved[room->n_moved - 1].seq)
        return 0;
    if (room->n_moved == room->cap_moved) {
        uint32_t cap = room->cap_moved ? room->cap_moved * 2 : 16;
        aof_moved *m = realloc(room->moved, cap * sizeof *m);
        if (!m)
            return -1;
        room->moved = m;
        room->cap_moved = cap;
    }
    room->moved[room->n_moved++] = (aof_moved){r->seq, s->compaction->new_size};
    (void)len;
    return 1;
}

/* Phase 1, one slice: records before snap_end that the index keeps. */
static int copy_kept(aof_store *s, const struct timespec *t0) {
    aof_compaction *c = s->compaction;
    size_t budget = AOF_SLICE_BYTES;
    while (c->cursor < c->snap_end && ms_since(t0) < AOF_SLICE_MS) {
        uint64_t left = c->snap_end - c->cursor;
        size_t chunk = left < budget ? (size_t)left : budget;
        if (read_old(s, c->cursor, chunk) != 0)
            return -1;
        size_t pos = 0;
        while (pos < chunk) {
            aof_record r;
            uint64_t len = 0;
            aof_decode_rc rc = aof_record_decode(c->rbuf + pos, chunk - pos, &r, &len);
            if (rc == AOF_SHORT && pos == 0) { /* one record larger than the chunk */
                uint32_t body = (uint32_t)c->rbuf[0] | (uint32_t)c->rbuf[1] << 8 |
                                (uint32_t)c->rbuf[2] << 16 | (uint32_t)c->rbuf[3] << 24;
                budget = AOF_PREFIX_SIZE + (size_t)body;
                break;
            }
            if (rc == AOF_SHORT)
                break; /* read again from this record */
            if (rc != AOF_OK) {
                errno = EIO;
                return fail(s, "the old file changed under");
            }
            int k = keep(s, &r, len);
            if (k < 0) {
                errno = ENOMEM;
                return fail(s, "indexing");
            }
            if (k == 1) {
                c->copied++;
                if (emit(s, c->rbuf + pos, (size_t)len) != 0)
                    return -1;
            } else if (r.kind == AOF_KIND_MESSAGE) {
                c->dropped++;
            }
            pos += (size_t)len;
        }
        c->cursor += pos;
    }
    return 0;
}

/* End of phase 1: a mark for each room whose last seq is not the last record copied. */
static int write_marks(aof_store *s) {
    uint8_t rec[AOF_PREFIX_SIZE + AOF_BODY_FIXED + 1024];
    for (aof_room *room = s->idx.rooms; room; room = room->all) {
        uint64_t last_copied = room->n_moved ? room->moved[room->n_moved - 1].seq : 0;
        if (!room->last_seq || room->last_seq <= last_copied)
            continue;
        aof_record m = {.kind = AOF_KIND_MARK,
                        .seq = room->last_seq,
                        .room = (const uint8_t *)room->name,
                        .room_len = room->name_len};
        uint64_t size = aof_record_size(&m);
        uint8_t *p = size <= sizeof rec ? rec : malloc(size);
        if (!p) {
            errno = ENOMEM;
            return fail(s, "writing marks for");
        }
        aof_record_encode(&m, p);
        int rc = emit(s, p, (size_t)size);
        if (p != rec)
            free(p);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Before the rename: every kept record has its new place. */
static int index_maps(const aof_store *s) {
    const aof_compaction *c = s->compaction;
    for (const aof_room *room = s->idx.rooms; room; room = room->all) {
        uint32_t j = 0;
        for (uint32_t i = 0; i < room->n; i++) {
            const aof_entry *e = index_at(room, i);
            if (e->off >= c->snap_end)
                break;
            while (j < room->n_moved && room->moved[j].seq < e->seq)
                j++;
            if (j == room->n_moved || room->moved[j].seq != e->seq)
                return -1;
        }
    }
    return 0;
}

static void move_index(aof_store *s) {
    const aof_compaction *c = s->compaction;
    for (aof_room *room = s->idx.rooms; room; room = room->all) {
        uint32_t j = 0;
        for (uint32_t i = 0; i < room->n; i++) {
            aof_entry *e = index_at(room, i);
            if (e->off >= c->snap_end) {
                e->off = e->off - c->snap_end + c->tail_base;
                continue;
            }
            while (room->moved[j].seq < e->seq)
                j++;
            e->off = room->moved[j].off;
        }
    }
}

static void note_slice(aof_compaction *c, const struct timespec *t0) {
    double ms = ms_since(t0);
    if (ms > c->longest_slice_ms)
        c->longest_slice_ms = ms;
}

/* The last slice: the rest of the tail, sync, rename, move the index. */
static void finish(aof_store *s, const struct timespec *t0) {
    aof_compaction *c = s->compaction;
    if (c->cursor < s->file_size && read_old(s, c->cursor, (size_t)(s->file_size - c->cursor)))
        return;
    if (c->cursor < s->file_size && emit(s, c->rbuf, (size_t)(s->file_size - c->cursor)) != 0)
        return;
    if (c->wlen && write_out(s) != 0)
        return;
    if (fdatasync(c->fd) != 0) {
        fail(s, "syncing");
        return;
    }
    if (index_maps(s) != 0) {
        errno = EINVAL;
        fail(s, "the index does not match the records of");
        return;
    }
    if (rename(c->tmp, s->path) != 0) {
        fail(s, "renaming the file of");
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", s->path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    uint64_t old_size = s->file_size;
    move_index(s);
    note_slice(c, t0);
    close(s->fd);
    s->fd = c->fd;
    s->file_size = c->new_size;
    s->unsynced = 0;
    s->next_compact_at = 0;
    if (s->m_compactions)
        s->host->metric_add(s->m_compactions, 1);
    s->host->log(s->ctx, NB_LOG_INFO,
                 "compaction of %s done: %llu -> %llu bytes, %llu records kept, %llu dropped, in "
                 "%.0f ms (longest slice %.2f ms)",
                 s->path, (unsigned long long)old_size, (unsigned long long)s->file_size,
                 (unsigned long long)c->copied, (unsigned long long)c->dropped, ms_since(&c->t0),
                 c->longest_slice_ms);
    finish_free(s);
}

/* One slice; returns 1 while there is more to do. */
static int slice(aof_store *s) {
    aof_compaction *c = s->compaction;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (c->phase == 1) {
        if (copy_kept(s, &t0) != 0)
            return 0;
        if (c->cursor < c->snap_end)
            goto more;
        if (write_marks(s) != 0)
            return 0;
        c->phase = 2;
        c->tail_base = c->new_size;
    }
    while (s->file_size - c->cursor > AOF_SLICE_BYTES && ms_since(&t0) < AOF_SLICE_MS) {
        if (read_old(s, c->cursor, AOF_SLICE_BYTES) != 0 || emit(s, c->rbuf, AOF_SLICE_BYTES) != 0)
            return 0;
        c->cursor += AOF_SLICE_BYTES;
    }
    if (s->file_size - c->cursor > AOF_SLICE_BYTES)
        goto more;
    finish(s, &t0);
    return 0;
more:
    note_slice(c, &t0);
    return 1;
}

static void on_idle(struct ev_loop *loop, ev_idle *w, int revents) {
    slice(w->data);
}

void aof_compact_maybe(aof_store *s) {
    if (s->compaction || s->stopping || s->fd < 0 ||
        s->file_size < (uint64_t)s->compact_min_bytes || s->file_size < s->next_compact_at)
        return;
    /* Age retention brought up to date (at most once a second: it visits
     * every room), so that the bytes kept are what a rewrite would keep. */
    if (s->retention_seconds > 0 && s->host->now_ms() - s->last_age_trim >= 1000)
        aof_trim_all(s);
    /* live: what a rewrite would keep (records, and a mark per room at most) */
    uint64_t live = AOF_HEADER_SIZE + s->idx.kept_bytes + (uint64_t)s->idx.n_rooms * 64;
    if (s->file_size / (uint64_t)s->compact_ratio < live)
        return;
    aof_compaction *c = calloc(1, sizeof *c);
    if (!c)
        return;
    snprintf(c->tmp, sizeof c->tmp, "%s.compact", s->path);
    c->fd = open(c->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (c->fd < 0) {
        s->host->log(s->ctx, NB_LOG_WARN, "cannot start compaction: %s: %s", c->tmp,
                     strerror(errno));
        s->next_compact_at = s->file_size + (uint64_t)s->compact_min_bytes;
        free(c);
        return;
    }
    s->compaction = c;
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    c->phase = 1;
    c->snap_end = s->file_size;
    c->cursor = AOF_HEADER_SIZE;
    uint8_t hdr[AOF_HEADER_SIZE];
    aof_header_encode(hdr, s->epoch);
    if (emit(s, hdr, sizeof hdr) != 0)
        return;
    s->host->log(s->ctx, NB_LOG_INFO,
                 "compaction of %s started: %llu bytes, %llu in the %llu records retention keeps",
                 s->path, (unsigned long long)s->file_size, (unsigned long long)s->idx.kept_bytes,
                 (unsigned long long)s->idx.kept);
    if (s->loop) {
        ev_idle_init(&c->idle, on_idle);
        c->idle.data = s;
        ev_idle_start(s->loop, &c->idle);
    } else {
        while (slice(s))
            ;
    }
}
