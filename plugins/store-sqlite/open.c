/*
 * open.c — start() and stop(): the database's folder, a lock file that
 * keeps a second server off the same database, the connection and its
 * pragmas, the schema, and the statements every batch reuses.
 */
#include "sq.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int32_t sq_fail(sq_store *s, int rc, const char *what) {
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    const char *hint = "";
    switch (rc & 0xff) {
    case SQLITE_FULL:
        hint = " (the disk or the file size limit is full)";
        break;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
        hint = " (check the permissions of the file and its folder)";
        break;
    case SQLITE_BUSY:
        hint = " (another process holds a lock on the database)";
        break;
    default:
        break;
    }
    s->host->log(s->ctx, NB_LOG_ERROR, "%s: %s failed: %s (SQLite code %d)%s", s->path, what, msg,
                 rc, hint);
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return NB_ERR_NOMEM;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
        return NB_ERR_INVALID;
    default:
        return NB_ERR_IO;
    }
}

int sq_exec_stmt(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* The folder the database lives in, created with its parents. */
static int32_t make_folder(sq_store *s) {
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", s->path) >= (int)sizeof dir) {
        s->host->log(s->ctx, NB_LOG_ERROR, "path %s is too long", s->path);
        return NB_ERR_CONFIG;
    }
    char *slash = strrchr(dir, '/');
    if (!slash)
        return NB_OK; /* in the working directory */
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int bad = mkdir(dir, 0755) != 0 && errno != EEXIST;
        *p = '/';
        if (bad)
            break; /* the last mkdir names the failing part */
    }
    struct stat sb;
    if (dir[0] && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        char cwd[PATH_MAX] = "?";
        if (!getcwd(cwd, sizeof cwd))
            snprintf(cwd, sizeof cwd, "?");
        s->host->log(s->ctx, NB_LOG_ERROR,
                     "cannot create the database's folder %s%s%s%s: %s (set [store-sqlite] path)",
                     dir, dir[0] == '/' ? "" : " (relative to the working directory ",
                     dir[0] == '/' ? "" : cwd, dir[0] == '/' ? "" : ")", strerror(e));
        return NB_ERR_IO;
    }
    if (dir[0] && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
        s->host->log(s->ctx, NB_LOG_ERROR, "%s is not a folder (set [store-sqlite] path)", dir);
        return NB_ERR_IO;
    }
    return NB_OK;
}

/* One server per database: two would number the same rooms twice. SQLite's
 * own locks cannot say so (WAL lets several writers take turns), so a
 * lock file beside the database does; the kernel drops it when the
 * process ends, however it ends. */
static int32_t take_lock(sq_store *s) {
    char lock[PATH_MAX];
    if (snprintf(lock, sizeof lock, "%s.lock", s->path) >= (int)sizeof lock) {
        s->host->log(s->ctx, NB_LOG_ERROR, "path %s is too long", s->path);
        return NB_ERR_CONFIG;
    }
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        s->host->log(s->ctx, NB_LOG_ERROR, "cannot open the lock file %s: %s", lock,
                     strerror(errno));
        return NB_ERR_IO;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK)
            s->host->log(s->ctx, NB_LOG_ERROR,
                         "%s is in use by another process, which holds the lock file %s (is "
                         "another nebula running with this database?)",
                         s->path, lock);
        else
            s->host->log(s->ctx, NB_LOG_ERROR, "cannot lock %s: %s", lock, strerror(e));
        close(s->lock_fd);
        s->lock_fd = -1;
        return NB_ERR_IO;
    }
    return NB_OK;
}

const char *sq_sync_pragma(sq_fsync f) {
    static const char *const sync_sql[] = {
        [SQ_FSYNC_ALWAYS] = "PRAGMA synchronous = FULL",
        [SQ_FSYNC_EVERYSEC] = "PRAGMA synchronous = NORMAL",
        [SQ_FSYNC_NO] = "PRAGMA synchronous = OFF",
    };
    return sync_sql[f];
}

static int32_t pragmas(sq_store *s) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int wal = mode && strcmp((const char *)mode, "wal") == 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return sq_fail(s, rc, "switching to WAL mode");
    if (!wal) {
        s->host->log(s->ctx, NB_LOG_ERROR, "%s: SQLite refused WAL mode (journal mode %s)", s->path,
                     mode ? (const char *)mode : "?");
        return NB_ERR_IO;
    }
    rc = sqlite3_exec(s->db, sq_sync_pragma(s->fsync), NULL, NULL, NULL);
    /* The page cache: each room a batch touches needs its newest leaf page;
     * too small a cache reads them back from the file on every batch. */
    char cache[64];
    snprintf(cache, sizeof cache, "PRAGMA cache_size = %lld", -(long long)s->cache_mib * 1024);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, cache, NULL, NULL, NULL);
    return rc == SQLITE_OK ? NB_OK : sq_fail(s, rc, "setting the pragmas");
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    sq_store *s = t->data;
    if (s->in_tx)
        return; /* never: batches run within one callback of this loop */
    if (s->fsync == SQ_FSYNC_EVERYSEC && s->unsynced && sq_sync(s) == NB_OK)
        s->unsynced = 0;
    if (s->retention_seconds > 0)
        sq_retain_age_tick(s);
}

static const char *fsync_name(sq_fsync f) {
    return f == SQ_FSYNC_ALWAYS ? "always" : f == SQ_FSYNC_EVERYSEC ? "everysec" : "no";
}

int32_t sq_start(void *instance, uint32_t *flags) {
    sq_store *s = instance;
    int32_t err = make_folder(s);
    if (err == NB_OK)
        err = take_lock(s);
    if (err != NB_OK)
        return err;
    int existed = access(s->path, F_OK) == 0;
    int rc = sqlite3_open_v2(s->path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 SQLITE_OPEN_EXRESCODE,
                             NULL);
    if (rc != SQLITE_OK) {
        err = sq_fail(s, rc, "opening the database");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, (int)s->busy_timeout_ms);
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        s->host->log(s->ctx, NB_LOG_ERROR,
                     "%s: the database can only be opened read-only (check the permissions of "
                     "the file and its folder)",
                     s->path);
        err = NB_ERR_IO;
        goto fail;
    }
    if ((err = pragmas(s)) != NB_OK || (err = sq_schema_open(s)) != NB_OK)
        goto fail;
    for (int i = 0; i < ST_COUNT_ALL; i++) {
        rc = sqlite3_prepare_v3(s->db, sq_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK) {
            err = sq_fail(s, rc, sq_sql[i]);
            goto fail;
        }
    }
    if ((err = sq_checkpoint_start(s)) != NB_OK)
        goto fail;
    s->m_pruned = s->host->metric_new(s->ctx, NB_METRIC_COUNTER, "nebula_store_sqlite_pruned_total",
                                      "messages store-sqlite removed for retention");
    if (s->fsync == SQ_FSYNC_EVERYSEC || s->retention_seconds > 0) {
        ev_timer_init(&s->tick, on_tick, 1.0, 1.0);
        s->tick.data = s;
        ev_timer_start(s->host->loop(s->ctx), &s->tick);
        s->tick_started = 1;
    }
    char where[PATH_MAX] = "";
    char *abs = realpath(s->path, NULL);
    snprintf(where, sizeof where, "%s", abs ? abs : s->path);
    free(abs);
    s->host->log(s->ctx, NB_LOG_INFO,
                 "history in %s (%s), epoch %s, fsync %s, retention %lld messages / %lld s per "
                 "room (0 = none), checkpoint every %lld WAL pages",
                 where, existed ? "opened" : "created", s->epoch, fsync_name(s->fsync),
                 (long long)s->retention_messages, (long long)s->retention_seconds,
                 (long long)s->checkpoint_pages);
    *flags = s->fsync == SQ_FSYNC_ALWAYS ? NB_STORE_F_ACK_AFTER_FLUSH : 0;
    return NB_OK;
fail:
    sq_stop(s);
    return err;
}

void sq_stop(void *instance) {
    sq_store *s = instance;
    if (s->tick_started) {
        ev_timer_stop(s->host->loop(s->ctx), &s->tick);
        s->tick_started = 0;
    }
    if (s->db) {
        if (s->in_tx)
            sq_rollback(s);
        sq_checkpoint_stop(s);
        for (int i = 0; i < ST_COUNT_ALL; i++) {
            sqlite3_finalize(s->st[i]);
            s->st[i] = NULL;
        }
        /* The last connection checkpoints the WAL into the database and
         * removes it: a stopped server leaves one file. */
        int rc = sqlite3_close(s->db);
        if (rc != SQLITE_OK)
            s->host->log(s->ctx, NB_LOG_ERROR, "%s: closing: %s", s->path, sqlite3_errstr(rc));
        else
            s->host->log(s->ctx, NB_LOG_INFO, "closed %s", s->path);
        s->db = NULL;
    }
    if (s->lock_fd >= 0) {
        close(s->lock_fd);
        s->lock_fd = -1;
    }
    sq_rooms_free(s);
    s->host->free(s->touched);
    s->touched = NULL;
    s->n_touched = s->cap_touched = 0;
}
