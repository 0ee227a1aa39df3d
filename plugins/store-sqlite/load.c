/*
 * load.c — history: the newest `max` messages of a room (after `since`),
 * oldest first, and the room's last and first kept seq. Every query walks
 * the primary key (room, seq) (tests/unit/store_sqlite checks the plans):
 *   floor  the seq of the max-th newest message after since (DESC, OFFSET)
 *   range  the messages from that seq up (ASC, LIMIT max)
 * load() runs between appends of an open batch too, on the same
 * connection, so it sees what the batch wrote before it is committed.
 */
#include "sq.h"

#include <string.h>

static int64_t one_int(sq_store *s, sqlite3_stmt *st, int64_t none, int32_t *err) {
    int rc = sqlite3_step(st);
    int64_t v = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
                    ? sqlite3_column_int64(st, 0)
                    : none;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        *err = sq_fail(s, rc, "reading a room's history");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return v;
}

static nb_str column_str(sqlite3_stmt *st, int i) {
    const char *p = (const char *)sqlite3_column_text(st, i);
    return (nb_str){p ? p : "", (uint32_t)sqlite3_column_bytes(st, i), 0};
}

int32_t sq_load(void *instance, const nb_store_query *q, nb_store_result *res,
                nb_store_visit_fn visit, void *user) {
    sq_store *s = instance;
    const char *room = q->room ? q->room : "";
    res->epoch = s->epoch;
    int32_t err = NB_OK;
    /* A room loaded before its batch's retention ran (or kept from a
     * larger limit than today's) is trimmed first, so the result is exact. */
    if (s->retention_messages > 0) {
        sq_room *r = sq_rooms_get(s, room, q->room_len, 1);
        if (!r)
            return NB_ERR_NOMEM;
        if ((err = sq_retain_count(s, r)) != NB_OK)
            return err;
    }
    int64_t cutoff = sq_age_cutoff(s);

    sqlite3_stmt *st = s->st[ST_LAST_SEQ];
    sq_bind_text(st, 1, room, q->room_len);
    int64_t last = one_int(s, st, 0, &err);
    if (err != NB_OK || last <= 0)
        return err;
    res->last_seq = (uint64_t)last;

    st = s->st[ST_FIRST_KEPT];
    sq_bind_text(st, 1, room, q->room_len);
    sqlite3_bind_int64(st, 2, cutoff);
    int64_t first = one_int(s, st, 0, &err);
    if (err != NB_OK)
        return err;
    res->first_seq = (uint64_t)first;
    if (!first || q->max == 0)
        return NB_OK;

    int64_t since = 0;
    if (q->has_since)
        since = q->since > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)q->since;
    st = s->st[ST_NEWEST_FLOOR];
    sq_bind_text(st, 1, room, q->room_len);
    sqlite3_bind_int64(st, 2, since);
    sqlite3_bind_int64(st, 3, cutoff);
    sqlite3_bind_int64(st, 4, (int64_t)q->max - 1);
    int64_t from = one_int(s, st, since == INT64_MAX ? INT64_MAX : since + 1, &err);
    if (err != NB_OK)
        return err;

    st = s->st[ST_RANGE];
    sq_bind_text(st, 1, room, q->room_len);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, cutoff);
    sqlite3_bind_int64(st, 4, q->max);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        nb_msg m;
        memset(&m, 0, sizeof m);
        m.struct_size = sizeof m;
        m.type = NB_MSG_MESSAGE;
        m.room = (nb_str){room, q->room_len, 0};
        m.seq = (uint64_t)sqlite3_column_int64(st, 0);
        m.ts = sqlite3_column_int64(st, 1);
        m.id = column_str(st, 2);
        m.sender = column_str(st, 3);
        m.content = column_str(st, 4);
        if (visit(user, &m) != NB_OK) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        err = sq_fail(s, rc, "reading a room's history");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}
