/*
 * aof_open.c — start(): make the folder, open or create the file, read the
 * header (the epoch), scan every record once to build the index, and
 * repair a damaged tail.
 *
 * Tail or middle. The scan stops at the first record that does not decode
 * (aof_format.c says why). If it is cut short by the end of the file (a
 * torn write: its length field is intact and points past the end), it is
 * the tail. Otherwise the bytes after it are searched, at every offset, for
 * a complete record whose two checksums hold: if there is none, nothing
 * valid follows and the damage is the tail too. A torn or damaged tail is
 * logged with its offset and cut off; damage with valid records after it
 * is the middle: start() refuses, naming the offset and
 * `nebula-store check --fix`, since cutting would lose good records.
 */
#include "store_aof.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* mkdir -p of the file's folder. */
static int make_parent(aof_store *s) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", s->path) >= (int)sizeof dir) {
        s->host->log(s->ctx, NB_LOG_ERROR, "path too long: %s", s->path);
        return -1;
    }
    char *d = dirname(dir);
    char *folder = strdup(d);
    if (!folder)
        return -1;
    int rc = 0;
    for (char *p = folder + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(folder, 0755) != 0 && errno != EEXIST) {
            s->host->log(s->ctx, NB_LOG_ERROR,
                         "cannot create the folder %s for path = %s (relative paths are "
                         "resolved against the config file's folder): %s",
                         folder, s->path, strerror(errno));
            rc = -1;
            break;
        }
        *p = c;
        if (c == '\0')
            break;
    }
    free(folder);
    return rc;
}

static void sync_parent(const aof_store *s) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", s->path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

static int new_epoch(char out[AOF_EPOCH_LEN + 1]) {
    uint8_t rnd[AOF_EPOCH_LEN / 2];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return -1;
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    return 0;
}

/* A new, empty store: the header alone, synced, the folder too. */
static int32_t create_file(aof_store *s) {
    uint8_t hdr[AOF_HEADER_SIZE];
    if (new_epoch(s->epoch) != 0) {
        s->host->log(s->ctx, NB_LOG_ERROR, "getrandom for a new epoch: %s", strerror(errno));
        return NB_ERR_IO;
    }
    aof_header_encode(hdr, s->epoch);
    if (ftruncate(s->fd, 0) != 0 || pwrite(s->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
        fdatasync(s->fd) != 0) {
        s->host->log(s->ctx, NB_LOG_ERROR, "cannot write the header of %s: %s", s->path,
                     strerror(errno));
        return NB_ERR_IO;
    }
    sync_parent(s);
    s->file_size = AOF_HEADER_SIZE;
    s->host->log(s->ctx, NB_LOG_INFO, "created %s, epoch %s", s->path, s->epoch);
    return NB_OK;
}

typedef struct scan_state {
    aof_store *s;
    uint64_t records, marks, out_of_order;
    int nomem;
} scan_state;

static int on_record(void *user, const aof_record *r, uint64_t off, uint64_t len) {
    scan_state *st = user;
    aof_index *idx = &st->s->idx;
    aof_room *room = index_room(idx, (const char *)r->room, r->room_len, 1);
    if (!room) {
        st->nomem = 1;
        return 1;
    }
    if (r->kind == AOF_KIND_MARK) {
        st->marks++;
        if (r->seq > room->last_seq)
            room->last_seq = r->seq;
        return 0;
    }
    st->records++;
    if (room->n && r->seq <= index_at(room, room->n - 1)->seq) {
        st->out_of_order++; /* never written by store-aof; kept out of the index */
        return 0;
    }
    if (index_push(idx, room, r->seq, r->ts, off, (uint32_t)len) != 0) {
        st->nomem = 1;
        return 1;
    }
    return 0;
}

static double ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Scan the records after the header; repair a damaged tail. */
static int32_t scan_file(aof_store *s, uint64_t size) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const uint8_t *data = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, s->fd, 0);
    if (data == MAP_FAILED) {
        s->host->log(s->ctx, NB_LOG_ERROR, "cannot map %s to read it: %s", s->path,
                     strerror(errno));
        return NB_ERR_IO;
    }
    madvise((void *)data, (size_t)size, MADV_SEQUENTIAL);
    const char *why = aof_header_check(data, (size_t)size, s->epoch);
    if (why) {
        s->host->log(s->ctx, NB_LOG_ERROR, "%s: %s; refusing to start (nebula-store check %s)",
                     s->path, why, s->path);
        munmap((void *)data, (size_t)size);
        return NB_ERR_IO;
    }
    scan_state st = {.s = s};
    uint64_t bad = 0;
    aof_decode_rc rc = aof_scan(data, size, AOF_HEADER_SIZE, on_record, &st, &bad);
    if (st.nomem) {
        munmap((void *)data, (size_t)size);
        s->host->log(s->ctx, NB_LOG_ERROR, "out of memory indexing %s", s->path);
        return NB_ERR_NOMEM;
    }
    uint64_t next_good =
        rc == AOF_OK || rc == AOF_SHORT ? 0 : aof_find_valid_after(data, size, bad);
    munmap((void *)data, (size_t)size);
    if (next_good) {
        s->host->log(s->ctx, NB_LOG_ERROR,
                     "%s: %s at offset %llu, and valid records follow (the next at offset %llu): "
                     "the file is damaged in the middle; refusing to start. To keep what comes "
                     "before the damage and lose the rest: nebula-store check --fix %s",
                     s->path, aof_decode_reason(rc), (unsigned long long)bad,
                     (unsigned long long)next_good, s->path);
        return NB_ERR_IO;
    }
    if (rc != AOF_OK) {
        s->host->log(s->ctx, NB_LOG_WARN,
                     "%s: %s at offset %llu with nothing valid after it: a torn or damaged tail "
                     "of %llu bytes; cut back to the last good record",
                     s->path, aof_decode_reason(rc), (unsigned long long)bad,
                     (unsigned long long)(size - bad));
        if (ftruncate(s->fd, (off_t)bad) != 0 || fdatasync(s->fd) != 0) {
            s->host->log(s->ctx, NB_LOG_ERROR, "cannot cut %s to %llu bytes: %s", s->path,
                         (unsigned long long)bad, strerror(errno));
            return NB_ERR_IO;
        }
        size = bad;
    }
    if (st.out_of_order)
        s->host->log(s->ctx, NB_LOG_WARN,
                     "%s: %llu records with a seq not above their room's "
                     "previous one were left out of the index",
                     s->path, (unsigned long long)st.out_of_order);
    s->file_size = size;
    aof_trim_all(s);
    s->host->log(s->ctx, NB_LOG_INFO,
                 "opened %s: epoch %s, %llu bytes, %llu records in %u rooms (%llu kept by "
                 "retention), scanned in %.0f ms",
                 s->path, s->epoch, (unsigned long long)size, (unsigned long long)st.records,
                 s->idx.n_rooms, (unsigned long long)s->idx.kept, ms_since(&t0));
    return NB_OK;
}

int32_t aof_open(aof_store *s) {
    if (make_parent(s) != 0)
        return NB_ERR_IO;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.compact", s->path);
    if (unlink(tmp) == 0)
        s->host->log(s->ctx, NB_LOG_WARN, "removed %s, left by a compaction that did not finish",
                     tmp);
    s->fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        s->host->log(s->ctx, NB_LOG_ERROR, "cannot open %s: %s", s->path, strerror(errno));
        return NB_ERR_IO;
    }
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        s->host->log(s->ctx, NB_LOG_ERROR, "cannot stat %s: %s", s->path, strerror(errno));
        return NB_ERR_IO;
    }
    if (st.st_size == 0)
        return create_file(s);
    if ((uint64_t)st.st_size < AOF_HEADER_SIZE) {
        /* A header cut short is a file that crashed while being created:
         * it never held a record. Anything else is not ours. */
        uint8_t head[AOF_HEADER_SIZE];
        ssize_t n = pread(s->fd, head, sizeof head, 0);
        if (n > 0 && memcmp(head, AOF_MAGIC, (size_t)n < 8 ? (size_t)n : 8) == 0) {
            s->host->log(s->ctx, NB_LOG_WARN, "%s: header cut short (%lld bytes): made anew",
                         s->path, (long long)st.st_size);
            return create_file(s);
        }
    }
    return scan_file(s, (uint64_t)st.st_size);
}
