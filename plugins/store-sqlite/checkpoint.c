/*
 * checkpoint.c — copying the WAL back into the database on a thread of
 * its own, so that the writer's batches never wait for it.
 *
 * In WAL mode a commit appends pages to the WAL; a checkpoint copies the
 * newest version of each page into the database file (and, with fsync =
 * "always" or "everysec", syncs it), after which SQLite starts the WAL
 * over. SQLite's own automatic checkpoint runs inside the commit that
 * crosses 1,000 pages, on the committing thread: with many rooms a batch
 * dirties a page per room, so that was every few batches, and the writer
 * spent about a third of its time reading the WAL back and writing the
 * database (docs/PERFORMANCE.md, "Stores").
 *
 * Here the writer's connection has no automatic checkpoint. Its WAL hook
 * (called after each commit with the WAL's size in pages) wakes this
 * thread once the WAL holds checkpoint_pages; the thread runs a PASSIVE
 * checkpoint on a connection of its own, which copies the pages without
 * blocking the writer. The writer kept appending meanwhile, and SQLite
 * starts the WAL over only when a write begins with every page copied, so
 * the writer then copies that short tail itself between two batches (a
 * PASSIVE checkpoint of the pages of a few batches) and the next batch
 * starts the WAL over. A reader that keeps an old snapshot open (a sqlite3
 * shell inside a transaction) stops any checkpoint from going past it:
 * the WAL then grows, and a warning says so each time it doubles past
 * four times checkpoint_pages (nebula_store_sqlite_wal_pages shows it).
 */
#include "sq.h"

#include <pthread.h>
#include <string.h>

struct sq_ckpt {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    enum { CK_IDLE, CK_RUNNING, CK_COPIED } state; /* CK_COPIED: the writer copies the tail */
    int quit;
    sqlite3 *db; /* this thread's own connection */
    sq_store *s; /* host, ctx and path: read-only while the thread runs */
};

static void *run(void *arg) {
    struct sq_ckpt *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->state != CK_RUNNING && !c->quit)
            pthread_cond_wait(&c->wake, &c->mu);
        if (c->quit)
            break;
        pthread_mutex_unlock(&c->mu);
        int log_pages = 0, copied = 0;
        int rc = sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log_pages,
                                           &copied);
        if (rc != SQLITE_OK)
            c->s->host->log(c->s->ctx, NB_LOG_WARN, "%s: checkpoint failed: %s (SQLite code %d)",
                            c->s->path, sqlite3_errmsg(c->db), rc);
        pthread_mutex_lock(&c->mu);
        c->state = CK_COPIED;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* After each commit on the writer's connection (the writer thread). */
static int on_commit(void *arg, sqlite3 *db, const char *name, int pages) {
    (void)db;
    (void)name;
    sq_store *s = arg;
    s->wal_pages = pages;
    if (s->m_wal_pages)
        s->host->metric_set(s->m_wal_pages, pages);
    if (pages >= s->checkpoint_pages) {
        pthread_mutex_lock(&s->ckpt->mu);
        if (s->ckpt->state == CK_IDLE) {
            s->ckpt->state = CK_RUNNING;
            pthread_cond_signal(&s->ckpt->wake);
        }
        pthread_mutex_unlock(&s->ckpt->mu);
    }
    return SQLITE_OK;
}

void sq_checkpoint_between_batches(sq_store *s) {
    struct sq_ckpt *c = s->ckpt;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    int copied = c->state == CK_COPIED;
    if (copied)
        c->state = CK_IDLE;
    pthread_mutex_unlock(&c->mu);
    if (copied) {
        /* The tail the thread did not see. BUSY (a reader in the way) or
         * an error: the WAL is not started over this time; the next
         * round tries again, and the thread's own call logs errors. */
        int log_pages = 0, tail = 0;
        sqlite3_wal_checkpoint_v2(s->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log_pages, &tail);
    }
    if (s->wal_pages >= s->wal_warn_pages) {
        s->host->log(s->ctx, NB_LOG_WARN,
                     "%s: the WAL holds %lld pages (checkpoint_pages %lld) and cannot be "
                     "copied back: a long read transaction (e.g. an open sqlite3 shell) keeps "
                     "an old snapshot; end it",
                     s->path, (long long)s->wal_pages, (long long)s->checkpoint_pages);
        s->wal_warn_pages *= 2;
    } else if (s->wal_pages < s->checkpoint_pages) {
        s->wal_warn_pages = 4 * s->checkpoint_pages;
    }
}

int32_t sq_checkpoint_start(sq_store *s) {
    struct sq_ckpt *c = s->host->alloc(sizeof *c);
    if (!c)
        return NB_ERR_NOMEM;
    memset(c, 0, sizeof *c);
    c->s = s;
    int rc = sqlite3_open_v2(
        s->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, NULL);
    /* The checkpoint syncs as the writer's setting says (FULL, NORMAL or OFF). */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(c->db, sq_sync_pragma(s->fsync), NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        s->host->log(s->ctx, NB_LOG_ERROR, "%s: opening the checkpoint connection failed: %s",
                     s->path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sqlite3_close(c->db);
        s->host->free(c);
        return NB_ERR_IO;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        s->host->log(s->ctx, NB_LOG_ERROR, "%s: cannot start the checkpoint thread", s->path);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->mu);
        sqlite3_close(c->db);
        s->host->free(c);
        return NB_ERR_IO;
    }
    s->ckpt = c;
    s->wal_warn_pages = 4 * s->checkpoint_pages;
    s->m_wal_pages =
        s->host->metric_new(s->ctx, NB_METRIC_GAUGE, "nebula_store_sqlite_wal_pages",
                            "pages in store-sqlite's WAL after the last commit (a checkpoint "
                            "copies them into the database once there are checkpoint_pages)");
    sqlite3_wal_hook(s->db, on_commit, s);
    return NB_OK;
}

void sq_checkpoint_stop(sq_store *s) {
    struct sq_ckpt *c = s->ckpt;
    if (!c)
        return;
    sqlite3_wal_hook(s->db, NULL, NULL);
    pthread_mutex_lock(&c->mu);
    c->quit = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->mu);
    /* Not the last connection: the writer's close checkpoints the rest. */
    sqlite3_close(c->db);
    s->host->free(c);
    s->ckpt = NULL;
}
