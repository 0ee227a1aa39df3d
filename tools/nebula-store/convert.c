/*
 * convert.c — store-aof <-> store-sqlite, keeping every message, each
 * room's last seq and the epoch (so clients' `since` stays valid). The
 * result is written to DST.tmp, synced, then renamed to DST: an
 * interrupted conversion leaves no half file under the final name.
 *
 * The SQLite side is the schema of docs/STORES.md, in store-sqlite's own
 * text (schema.h): schema_version, meta ('epoch'), rooms (room, last_seq)
 * and messages (room, seq, id, ts, sender, content). Reading accepts every
 * version up to it; version 1 has no rooms table (a room's last seq is
 * then its highest message), and 2 and 3 differ only in the layout.
 */
#include "nebula_store.h"
#include "schema.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static const char schema_sql[] = SQ_SCHEMA_SQL;

static int db_fail(sqlite3 *db, const char *path, const char *what) {
    fprintf(stderr, "nebula-store: %s: %s: %s\n", path, what, db ? sqlite3_errmsg(db) : "");
    return 1;
}

static int sync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- AOF -> SQLite ------------------------------------------------------- */

typedef struct to_sql {
    sqlite3_stmt *msg, *room;
    uint64_t messages;
    int err;
} to_sql;

static int put_record(void *user, const aof_record *r, uint64_t off, uint64_t len) {
    to_sql *t = user;
    sqlite3_stmt *room = t->room;
    sqlite3_bind_text(room, 1, (const char *)r->room, (int)r->room_len, SQLITE_STATIC);
    sqlite3_bind_int64(room, 2, (sqlite3_int64)r->seq);
    if (sqlite3_step(room) != SQLITE_DONE) {
        t->err = 1;
        return 1;
    }
    sqlite3_reset(room);
    if (r->kind != AOF_KIND_MESSAGE)
        return 0;
    sqlite3_stmt *m = t->msg;
    sqlite3_bind_text(m, 1, (const char *)r->room, (int)r->room_len, SQLITE_STATIC);
    sqlite3_bind_int64(m, 2, (sqlite3_int64)r->seq);
    sqlite3_bind_text(m, 3, (const char *)r->id, (int)r->id_len, SQLITE_STATIC);
    sqlite3_bind_int64(m, 4, r->ts);
    sqlite3_bind_text(m, 5, (const char *)r->sender, (int)r->sender_len, SQLITE_STATIC);
    sqlite3_bind_text(m, 6, (const char *)r->content, (int)r->content_len, SQLITE_STATIC);
    if (sqlite3_step(m) != SQLITE_DONE) {
        t->err = 1;
        return 1;
    }
    sqlite3_reset(m);
    t->messages++;
    return 0;
}

int convert_aof_to_sqlite(const char *src, const char *dst) {
    aof_map m;
    if (aof_map_open(&m, src) != 0)
        return 1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    unlink(tmp);
    sqlite3 *db = NULL;
    to_sql t = {0};
    int rc = 1;
    if (sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        db_fail(db, tmp, "cannot create");
        goto out;
    }
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(db, tmp, "creating the schema");
        goto out;
    }
    sqlite3_stmt *meta = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO meta VALUES ('epoch', ?)", -1, &meta, NULL) !=
            SQLITE_OK ||
        sqlite3_bind_text(meta, 1, m.epoch, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(meta) != SQLITE_DONE) {
        sqlite3_finalize(meta);
        db_fail(db, tmp, "writing the epoch");
        goto out;
    }
    sqlite3_finalize(meta);
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?)", -1,
                           &t.msg, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO rooms VALUES (?, ?) ON CONFLICT (room) DO UPDATE SET "
                           "last_seq = max(last_seq, excluded.last_seq)",
                           -1, &t.room, NULL) != SQLITE_OK) {
        db_fail(db, tmp, "preparing the inserts");
        goto out;
    }
    uint64_t bad = 0;
    aof_decode_rc drc = aof_scan(m.data, m.size, AOF_HEADER_SIZE, put_record, &t, &bad);
    if (t.err) {
        db_fail(db, tmp, "inserting");
        goto out;
    }
    if (drc != AOF_OK) {
        fprintf(stderr,
                "nebula-store: %s: damaged at offset %llu (%s): nothing converted; see "
                "nebula-store check %s\n",
                src, (unsigned long long)bad, aof_decode_reason(drc), src);
        goto out;
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(db, tmp, "committing");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(t.msg);
    sqlite3_finalize(t.room);
    if (db && sqlite3_close(db) != SQLITE_OK && !rc)
        rc = db_fail(db, tmp, "closing");
    aof_map_close(&m);
    if (!rc && (sync_path(tmp) != 0 || rename(tmp, dst) != 0)) {
        fprintf(stderr, "nebula-store: %s: %s\n", dst, strerror(errno));
        rc = 1;
    }
    if (rc)
        unlink(tmp);
    else
        printf("%s -> %s: %llu messages, epoch %s\n", src, dst, (unsigned long long)t.messages,
               m.epoch);
    return rc;
}

/* ---- SQLite -> AOF ------------------------------------------------------- */

typedef struct aof_out {
    FILE *f;
    uint8_t *buf;
    size_t cap;
} aof_out;

static int write_record(aof_out *o, const aof_record *r) {
    uint64_t size = aof_record_size(r);
    if (!size)
        return -1;
    if (size > o->cap) {
        uint8_t *b = realloc(o->buf, (size_t)size);
        if (!b)
            return -1;
        o->buf = b;
        o->cap = (size_t)size;
    }
    aof_record_encode(r, o->buf);
    return fwrite(o->buf, 1, (size_t)size, o->f) == size ? 0 : -1;
}

static int is_epoch(const unsigned char *e) {
    if (!e || strlen((const char *)e) != AOF_EPOCH_LEN)
        return 0;
    for (const unsigned char *p = e; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

/* The epoch of the database, or a new one (said on stderr). */
static int read_epoch(sqlite3 *db, const char *src, char out[AOF_EPOCH_LEN + 1]) {
    sqlite3_stmt *st = NULL;
    int have = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'epoch'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && is_epoch(sqlite3_column_text(st, 0))) {
        memcpy(out, sqlite3_column_text(st, 0), AOF_EPOCH_LEN);
        out[AOF_EPOCH_LEN] = '\0';
        have = 1;
    }
    sqlite3_finalize(st);
    if (have)
        return 0;
    uint8_t rnd[AOF_EPOCH_LEN / 2];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return -1;
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    fprintf(stderr,
            "nebula-store: %s has no 16-hex-digit epoch in meta: the AOF gets a new one (%s); "
            "clients' `since` from before is reported incomplete\n",
            src, out);
    return 0;
}

static int schema_version(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int copy_messages(sqlite3 *db, aof_out *o, uint64_t *n) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT room, seq, id, ts, sender, content FROM messages "
                           "ORDER BY room, seq",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        aof_record r = {.kind = AOF_KIND_MESSAGE};
        r.room = sqlite3_column_blob(st, 0);
        r.room_len = (uint32_t)sqlite3_column_bytes(st, 0);
        r.seq = (uint64_t)sqlite3_column_int64(st, 1);
        r.id = sqlite3_column_blob(st, 2);
        r.id_len = (uint32_t)sqlite3_column_bytes(st, 2);
        r.ts = sqlite3_column_int64(st, 3);
        r.sender = sqlite3_column_blob(st, 4);
        r.sender_len = (uint32_t)sqlite3_column_bytes(st, 4);
        r.content = sqlite3_column_blob(st, 5);
        r.content_len = (uint32_t)sqlite3_column_bytes(st, 5);
        if (!r.room_len || !r.seq || write_record(o, &r) != 0) {
            sqlite3_finalize(st);
            return -1;
        }
        (*n)++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* A mark for each room whose last seq is above its last message. */
static int copy_marks(sqlite3 *db, int version, aof_out *o) {
    const char *sql = version >= 2
                          ? "SELECT r.room, r.last_seq FROM rooms r WHERE r.last_seq > "
                            "coalesce((SELECT max(seq) FROM messages m WHERE m.room = r.room), 0)"
                          : "SELECT room, 0 FROM messages WHERE 0";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        aof_record r = {.kind = AOF_KIND_MARK};
        r.room = sqlite3_column_blob(st, 0);
        r.room_len = (uint32_t)sqlite3_column_bytes(st, 0);
        r.seq = (uint64_t)sqlite3_column_int64(st, 1);
        if (r.room_len && r.seq && write_record(o, &r) != 0) {
            sqlite3_finalize(st);
            return -1;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int convert_sqlite_to_aof(const char *src, const char *dst) {
    sqlite3 *db = NULL;
    if (access(src, R_OK) != 0) {
        fprintf(stderr, "nebula-store: %s: %s\n", src, strerror(errno));
        return 1;
    }
    if (sqlite3_open_v2(src, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        db_fail(db, src, "cannot open");
        sqlite3_close(db);
        return 1;
    }
    int version = schema_version(db);
    if (version < 1 || version > SQ_SCHEMA_VERSION) {
        fprintf(stderr,
                "nebula-store: %s: not a store-sqlite database of a known schema version "
                "(schema_version: %d)\n",
                src, version);
        sqlite3_close(db);
        return 1;
    }
    char epoch[AOF_EPOCH_LEN + 1];
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    aof_out o = {0};
    uint64_t n = 0;
    int rc = 1;
    if (read_epoch(db, src, epoch) != 0)
        goto out;
    o.f = fopen(tmp, "wb");
    if (!o.f) {
        fprintf(stderr, "nebula-store: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    uint8_t hdr[AOF_HEADER_SIZE];
    aof_header_encode(hdr, epoch);
    if (fwrite(hdr, 1, sizeof hdr, o.f) != sizeof hdr || copy_messages(db, &o, &n) != 0 ||
        copy_marks(db, version, &o) != 0) {
        fprintf(stderr, "nebula-store: %s -> %s: %s\n", src, tmp,
                sqlite3_errcode(db) != SQLITE_OK && sqlite3_errcode(db) != SQLITE_DONE
                    ? sqlite3_errmsg(db)
                    : strerror(errno));
        goto out;
    }
    if (fflush(o.f) != 0 || fsync(fileno(o.f)) != 0) {
        fprintf(stderr, "nebula-store: %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (o.f && fclose(o.f) != 0 && !rc) {
        fprintf(stderr, "nebula-store: %s: %s\n", tmp, strerror(errno));
        rc = 1;
    }
    free(o.buf);
    sqlite3_close(db);
    if (!rc && rename(tmp, dst) != 0) {
        fprintf(stderr, "nebula-store: %s: %s\n", dst, strerror(errno));
        rc = 1;
    }
    if (rc)
        unlink(tmp);
    else
        printf("%s -> %s: %llu messages, epoch %s\n", src, dst, (unsigned long long)n, epoch);
    return rc;
}
