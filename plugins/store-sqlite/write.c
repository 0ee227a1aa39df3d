/*
 * write.c — the batch: BEGIN at its first append, COMMIT in flush(), so a
 * batch of the core's writer costs one transaction (and, with fsync =
 * "always", one sync of the WAL). A failed append or commit rolls the
 * whole batch back: nothing of it stays half-written, the core answers its
 * senders with store_unavailable, and the next batch starts afresh.
 *
 * Durability by `fsync` (WAL mode):
 *   always    synchronous = FULL: COMMIT syncs the WAL; flush() reports
 *             durable = 1, and the core's echo waits for it.
 *   everysec  synchronous = NORMAL: COMMIT writes the WAL without syncing
 *             it. A killed process loses nothing (the OS has the pages);
 *             an OS crash or power cut loses what was not synced. SQLite
 *             itself syncs the WAL only at a checkpoint, and a checkpoint
 *             is no bound: one blocked by a reader (a sqlite3 shell in a
 *             read transaction) copies nothing and syncs nothing. So the
 *             writer loop's one-second timer syncs the WAL file itself
 *             (through SQLite's own handle, SQLITE_FCNTL_JOURNAL_POINTER)
 *             when something was committed since the last sync: the loss is
 *             bounded by about one second however checkpoints go.
 *   no        synchronous = OFF: never synced by us.
 */
#include "sq.h"

static int32_t touch(sq_store *s, sq_room *r, uint64_t seq) {
    if (!r->in_batch) {
        if (s->n_touched == s->cap_touched) {
            uint32_t cap = s->cap_touched ? s->cap_touched * 2 : 64;
            sq_room **t = s->host->alloc((uint64_t)cap * sizeof(sq_room *));
            if (!t)
                return NB_ERR_NOMEM;
            for (uint32_t i = 0; i < s->n_touched; i++)
                t[i] = s->touched[i];
            s->host->free(s->touched);
            s->touched = t;
            s->cap_touched = cap;
        }
        s->touched[s->n_touched++] = r;
        r->in_batch = 1;
    }
    if (seq > r->batch_max_seq)
        r->batch_max_seq = seq;
    if (r->count >= 0)
        r->count++;
    return NB_OK;
}

/* The batch is over: forget what it touched. */
static void end_batch(sq_store *s, int rolled_back) {
    for (uint32_t i = 0; i < s->n_touched; i++) {
        sq_room *r = s->touched[i];
        r->in_batch = 0;
        r->batch_max_seq = 0;
        if (rolled_back)
            r->count = -1; /* counted again when retention needs it */
    }
    s->n_touched = 0;
    s->in_tx = 0;
}

void sq_rollback(sq_store *s) {
    /* SQLite may have rolled back already (it does on some I/O errors and
     * on SQLITE_FULL); ROLLBACK only when a transaction is still open. */
    if (s->db && !sqlite3_get_autocommit(s->db)) {
        int rc = sq_exec_stmt(s->st[ST_ROLLBACK]);
        if (rc != SQLITE_DONE)
            sq_fail(s, rc, "rolling back the batch");
    }
    end_batch(s, 1);
}

/* Log why, roll the batch back. */
static int32_t abort_batch(sq_store *s, int rc, const char *what) {
    int32_t err = sq_fail(s, rc, what);
    sq_rollback(s);
    return err;
}

/* In append(): the rest of the batch is refused until its flush(). */
static int32_t fail_batch(sq_store *s, int rc, const char *what) {
    s->batch_failed = 1;
    return abort_batch(s, rc, what);
}

int32_t sq_append(void *instance, const nb_msg *msg) {
    sq_store *s = instance;
    if (s->batch_failed)
        return NB_ERR_IO; /* the batch was rolled back; flush() ends it */
    if (msg->seq == 0 || msg->seq > (uint64_t)INT64_MAX) {
        s->host->log(s->ctx, NB_LOG_ERROR, "room %.*s: seq %llu out of range", (int)msg->room.len,
                     msg->room.ptr ? msg->room.ptr : "", (unsigned long long)msg->seq);
        return NB_ERR_INVALID;
    }
    sq_room *r = sq_rooms_get(s, msg->room.ptr ? msg->room.ptr : "", msg->room.len, 1);
    if (!r)
        return NB_ERR_NOMEM;
    if (!s->in_tx) {
        sq_checkpoint_between_batches(s);
        int rc = sq_exec_stmt(s->st[ST_BEGIN]);
        if (rc != SQLITE_DONE)
            return fail_batch(s, rc, "beginning a batch");
        s->in_tx = 1;
    }
    sqlite3_stmt *st = s->st[ST_INSERT];
    sq_bind_text(st, 1, msg->room.ptr, msg->room.len);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)msg->seq);
    sq_bind_text(st, 3, msg->id.ptr, msg->id.len);
    sqlite3_bind_int64(st, 4, msg->ts);
    sq_bind_text(st, 5, msg->sender.ptr, msg->sender.len);
    sq_bind_text(st, 6, msg->content.ptr, msg->content.len);
    int rc = sq_exec_stmt(st);
    if (rc != SQLITE_DONE)
        return fail_batch(s, rc, "storing a message");
    int32_t err = touch(s, r, msg->seq);
    if (err != NB_OK) {
        sq_rollback(s);
        s->batch_failed = 1;
    }
    return err;
}

int32_t sq_flush(void *instance, uint32_t *durable) {
    sq_store *s = instance;
    *durable = 0;
    if (s->batch_failed) {
        s->batch_failed = 0;
        return NB_ERR_IO;
    }
    if (s->in_tx) {
        for (uint32_t i = 0; i < s->n_touched; i++) {
            sq_room *r = s->touched[i];
            sqlite3_stmt *st = s->st[ST_ROOM_SEQ];
            sq_bind_text(st, 1, r->name, r->len);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)r->batch_max_seq);
            int rc = sq_exec_stmt(st);
            if (rc != SQLITE_DONE)
                return abort_batch(s, rc, "recording a room's last seq");
            int32_t err = sq_retain_count(s, r);
            if (err != NB_OK) {
                sq_rollback(s);
                return err;
            }
        }
        int rc = sq_exec_stmt(s->st[ST_COMMIT]);
        if (rc != SQLITE_DONE)
            return abort_batch(s, rc, "committing a batch");
        end_batch(s, 0);
        if (s->fsync != SQ_FSYNC_ALWAYS)
            s->unsynced = 1;
    }
    *durable = !s->unsynced;
    return NB_OK;
}

int32_t sq_sync(sq_store *s) {
    sqlite3_file *wal = NULL;
    int rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
    if (rc != SQLITE_OK || !wal || !wal->pMethods)
        return rc == SQLITE_OK ? NB_OK : sq_fail(s, rc, "finding the WAL to sync");
    rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
    return rc == SQLITE_OK ? NB_OK : sq_fail(s, rc, "syncing the WAL");
}
