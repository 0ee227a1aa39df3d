/*
 * retention.c — how many messages a room keeps, and for how long.
 *
 * By count (retention_messages): at the end of each batch, inside its
 * transaction, for the rooms the batch touched — so a room never holds
 * more than the limit once its batch is committed, and the work is the
 * batch's own size (the count is kept in memory; rows are counted once per
 * room per start, when retention first needs it).
 *
 * By age (retention_seconds): the writer loop's one-second timer deletes
 * expired messages of a few hundred rooms per tick, in one short
 * transaction, going round the rooms table; load() also filters by age,
 * so nothing older is ever returned while the round goes on.
 *
 * Neither touches the rooms table: a room's last_seq stays, however many
 * messages retention removed.
 */
#include "sq.h"

#include <string.h>

/* Expired messages one tick removes per room at most (the rest next round). */
#define AGE_PAGE 1000

int64_t sq_age_cutoff(const sq_store *s) {
    if (s->retention_seconds <= 0)
        return INT64_MIN;
    return s->host->now_ms() - s->retention_seconds * 1000;
}

static int32_t count_rows(sq_store *s, sq_room *r) {
    sqlite3_stmt *st = s->st[ST_COUNT];
    sq_bind_text(st, 1, r->name, r->len);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        r->count = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW ? NB_OK : sq_fail(s, rc, "counting a room's messages");
}

static int32_t drop_below(sq_store *s, sq_room *r, const char *name, uint32_t len, int64_t seq) {
    sqlite3_stmt *st = s->st[ST_DROP_BELOW];
    sq_bind_text(st, 1, name, len);
    sqlite3_bind_int64(st, 2, seq);
    int rc = sq_exec_stmt(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, rc, "removing messages past retention");
    int n = sqlite3_changes(s->db);
    if (r && r->count >= 0)
        r->count = r->count >= n ? r->count - n : -1;
    if (s->m_pruned && n > 0)
        s->host->metric_add(s->m_pruned, n);
    return NB_OK;
}

int32_t sq_retain_count(sq_store *s, sq_room *r) {
    if (s->retention_messages <= 0)
        return NB_OK;
    if (r->count < 0) {
        int32_t err = count_rows(s, r);
        if (err != NB_OK)
            return err;
    }
    if (r->count <= s->retention_messages)
        return NB_OK;
    /* The seq of the oldest message to keep; everything before it goes. */
    sqlite3_stmt *st = s->st[ST_NTH_OLDEST];
    sq_bind_text(st, 1, r->name, r->len);
    sqlite3_bind_int64(st, 2, r->count - s->retention_messages);
    int rc = sqlite3_step(st);
    int64_t keep_from = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(s, rc, "finding the oldest message to keep");
    if (rc == SQLITE_DONE) { /* the count was stale: count again next time */
        r->count = -1;
        return NB_OK;
    }
    return drop_below(s, r, r->name, r->len, keep_from);
}

/* Expired messages of one room: the seq of the first one still kept
 * (everything below goes), or 0 when none has expired. */
static int64_t first_unexpired(sq_store *s, const char *name, uint32_t len, int64_t cutoff,
                               int *failed) {
    sqlite3_stmt *st = s->st[ST_OLDEST_PAGE];
    sq_bind_text(st, 1, name, len);
    sqlite3_bind_int64(st, 2, AGE_PAGE);
    int64_t last_expired = 0, keep_from = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 1) >= cutoff)
            break;
        last_expired = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        sq_fail(s, rc, "reading a room's oldest messages");
        *failed = 1;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (last_expired)
        keep_from = last_expired + 1;
    return keep_from;
}

void sq_retain_age_tick(sq_store *s) {
    int64_t cutoff = sq_age_cutoff(s);
    char names[64][256];
    uint32_t lens[64];
    int64_t budget = s->age_rooms_per_tick;
    int began = 0, failed = 0;
    while (budget > 0 && !failed) {
        /* A page of room names after the cursor (copied: the deletes below
         * run while no statement on rooms is open). */
        sqlite3_stmt *st = s->st[ST_ROOMS_AFTER];
        sq_bind_text(st, 1, s->age_cursor, (uint32_t)s->age_cursor_len);
        uint32_t want = budget < 64 ? (uint32_t)budget : 64, n = 0;
        sqlite3_bind_int64(st, 2, want);
        int rc = SQLITE_DONE;
        while (n < want && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            int len = sqlite3_column_bytes(st, 0);
            const void *p = sqlite3_column_text(st, 0);
            if (len >= (int)sizeof names[0])
                continue; /* longer than any room name the core accepts */
            memcpy(names[n], p, (size_t)len);
            lens[n++] = (uint32_t)len;
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            sq_fail(s, rc, "listing the rooms for the age limit");
            failed = 1;
            break;
        }
        if (n == 0) { /* the end of the round: start again next tick */
            s->age_cursor_len = 0;
            break;
        }
        for (uint32_t i = 0; i < n && !failed; i++) {
            int64_t keep_from = first_unexpired(s, names[i], lens[i], cutoff, &failed);
            if (!keep_from || failed)
                continue;
            if (!began) {
                if (sq_exec_stmt(s->st[ST_BEGIN]) != SQLITE_DONE) {
                    failed = 1;
                    break;
                }
                began = 1;
            }
            failed = drop_below(s, sq_rooms_get(s, names[i], lens[i], 0), names[i], lens[i],
                                keep_from) != NB_OK;
        }
        memcpy(s->age_cursor, names[n - 1], lens[n - 1]);
        s->age_cursor_len = (int)lens[n - 1];
        budget -= n;
        if (n < want) { /* the last rooms: the next tick starts a new round */
            s->age_cursor_len = 0;
            break;
        }
    }
    if (began) {
        int rc = failed ? SQLITE_ERROR : sq_exec_stmt(s->st[ST_COMMIT]);
        if (rc != SQLITE_DONE) {
            if (!failed)
                sq_fail(s, rc, "committing the age limit's deletes");
            if (!sqlite3_get_autocommit(s->db))
                sq_exec_stmt(s->st[ST_ROLLBACK]);
            /* Counts the rollback restored are no longer known. */
            for (uint32_t i = 0; i < s->rooms.cap; i++)
                if (s->rooms.slots[i])
                    s->rooms.slots[i]->count = -1;
        } else if (s->fsync != SQ_FSYNC_ALWAYS) {
            s->unsynced = 1;
        }
    }
}
