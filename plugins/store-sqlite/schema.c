/*
 * schema.c — the database's schema, its version, and the migrations that
 * bring an older database up to date when it is opened. All of it runs in
 * one write transaction: a database is either migrated or untouched.
 *
 * Version 1: schema_version, meta, messages.
 * Version 2: adds rooms(room, last_seq), which keeps a room's highest seq
 *            when retention has removed all its messages (the core goes on
 *            numbering from it; a room's seq never goes back).
 * Version 3: messages in arrival order with an index on (room, seq)
 *            (schema.h says why); the rows are copied over in ts order.
 * docs/STORES.md shows the schema; tools/nebula-store reads it too.
 */
#include "schema.h"
#include "sq.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static const char migrate_1_to_2[] =
    "CREATE TABLE rooms (room TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO rooms SELECT room, max(seq) FROM messages GROUP BY room;"
    "UPDATE schema_version SET version = 2;";

static const char migrate_2_to_3[] =
    "ALTER TABLE messages RENAME TO messages_v2;" SQ_SCHEMA_MESSAGES_TABLE
    "INSERT INTO messages (room, seq, id, ts, sender, content)"
    " SELECT room, seq, id, ts, sender, content FROM messages_v2 ORDER BY ts, room, seq;"
    "DROP TABLE messages_v2;" SQ_SCHEMA_MESSAGES_INDEX "UPDATE schema_version SET version = 3;";

/* One integer from a query; -1 when it returns no row, -2 on an error. */
static int64_t query_int(sq_store *s, const char *q) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, q, -1, &st, NULL);
    int64_t v = -2;
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        v = -1;
    else
        sq_fail(s, rc, q);
    sqlite3_finalize(st);
    return v;
}

static int32_t exec(sq_store *s, const char *q, const char *what) {
    int rc = sqlite3_exec(s->db, q, NULL, NULL, NULL);
    return rc == SQLITE_OK ? NB_OK : sq_fail(s, rc, what);
}

/* The epoch: made once, when the data is created; kept in meta. */
static int32_t load_epoch(sq_store *s) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'epoch'", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(s->epoch, sizeof s->epoch, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        return NB_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, rc, "reading the epoch");
    uint8_t r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        s->host->log(s->ctx, NB_LOG_ERROR, "getrandom failed: cannot make the history epoch");
        return NB_ERR_IO;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(s->epoch + 2 * i, 3, "%02x", r[i]);
    char q[96];
    snprintf(q, sizeof q, "INSERT INTO meta(key, value) VALUES ('epoch', '%s')", s->epoch);
    return exec(s, q, "storing the epoch");
}

static int32_t upgrade(sq_store *s) {
    int64_t tables = query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'");
    int64_t has_version = query_int(
        s, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'");
    if (tables < 0 || has_version < 0)
        return NB_ERR_IO;
    if (tables == 0)
        return exec(s, SQ_SCHEMA_SQL, "creating the schema");
    if (has_version == 0) {
        s->host->log(s->ctx, NB_LOG_ERROR,
                     "%s is not a Nebula history database (it has tables but no schema_version); "
                     "move it away or set [store-sqlite] path",
                     s->path);
        return NB_ERR_INVALID;
    }
    int64_t rows = query_int(s, "SELECT count(*) FROM schema_version");
    int64_t v = query_int(s, "SELECT version FROM schema_version");
    if (rows != 1 || v < 1) {
        s->host->log(s->ctx, NB_LOG_ERROR,
                     "%s: schema_version must hold one positive version (it has %lld row(s))",
                     s->path, (long long)rows);
        return NB_ERR_INVALID;
    }
    if (v > SQ_SCHEMA_VERSION) {
        s->host->log(s->ctx, NB_LOG_ERROR,
                     "%s has schema version %lld, newer than this store-sqlite knows (%d): "
                     "run the Nebula that wrote it",
                     s->path, (long long)v, SQ_SCHEMA_VERSION);
        return NB_ERR_INVALID;
    }
    static const char *const steps[] = {[1] = migrate_1_to_2, [2] = migrate_2_to_3};
    for (; v < SQ_SCHEMA_VERSION; v++) {
        if (v == 2)
            s->host->log(s->ctx, NB_LOG_INFO,
                         "%s: migrating the schema from version 2 to 3: the messages table is "
                         "rewritten once (about 6 s per million messages)",
                         s->path);
        char what[64];
        snprintf(what, sizeof what, "migrating the schema from version %lld to %lld", (long long)v,
                 (long long)v + 1);
        int32_t err = exec(s, steps[v], what);
        if (err != NB_OK)
            return err;
        s->host->log(s->ctx, NB_LOG_INFO, "%s: schema migrated from version %lld to %lld", s->path,
                     (long long)v, (long long)v + 1);
    }
    return NB_OK;
}

int32_t sq_schema_open(sq_store *s) {
    int32_t err = exec(s, "BEGIN IMMEDIATE", "locking the database to check its schema");
    if (err != NB_OK)
        return err;
    err = upgrade(s);
    if (err == NB_OK)
        err = load_epoch(s);
    if (err == NB_OK)
        err = exec(s, "COMMIT", "committing the schema");
    if (err != NB_OK)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}
