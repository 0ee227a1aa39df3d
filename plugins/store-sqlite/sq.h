/*
 * sq.h — store-sqlite's shared state (internal to the plugin).
 *
 * One instance, one SQLite connection, all on the core's writer thread
 * (store.h): nothing here locks. The files:
 *   plugin.c     descriptor, config keys (create), destroy
 *   open.c       start/stop: folder, lock file, pragmas, prepared statements
 *   schema.c     the schema, its version table and the migrations, the epoch
 *   write.c      append/flush: one transaction per batch, rollback, the
 *                once-a-second sync of fsync = "everysec"
 *   checkpoint.c the thread that copies the WAL into the database
 *   retention.c  retention by count (per batch) and by age (on the timer)
 *   load.c       history queries
 *   rooms.c      the in-memory table of rooms the batch touched
 *   queries.c    the SQL of every prepared statement
 * docs/STORES.md ("store-sqlite") is the operator's view.
 */
#ifndef NEBULA_STORE_SQLITE_SQ_H
#define NEBULA_STORE_SQLITE_SQ_H

#include <ev.h>
#include <nebula/nebula.h>
#include <sqlite3.h>
#include <stdint.h>

typedef enum { SQ_FSYNC_ALWAYS, SQ_FSYNC_EVERYSEC, SQ_FSYNC_NO } sq_fsync;

/* A room the store has touched since start: its kept-message count (for
 * retention by count without counting rows on every batch) and what the
 * open batch did to it. */
typedef struct sq_room {
    char *name;
    uint32_t len;
    uint32_t hash;
    int64_t count;          /* messages stored; -1 = unknown (count them when needed) */
    uint64_t batch_max_seq; /* highest seq appended in the open batch; 0 = none */
    uint32_t in_batch;      /* on the batch's touched list */
} sq_room;

typedef struct sq_rooms {
    sq_room **slots; /* open addressing, power-of-two size */
    uint32_t cap, n;
} sq_rooms;

/* The prepared statements, made once in start(). */
enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_INSERT,       /* a message */
    ST_ROOM_SEQ,     /* rooms.last_seq := max(last_seq, ?) */
    ST_LAST_SEQ,     /* a room's highest seq: rooms and messages */
    ST_COUNT,        /* a room's message count */
    ST_NTH_OLDEST,   /* the seq after the oldest N of a room */
    ST_DROP_BELOW,   /* delete a room's messages below a seq */
    ST_OLDEST_PAGE,  /* a room's oldest messages (seq, ts), for the age limit */
    ST_ROOMS_AFTER,  /* rooms after a name, for the age limit's round */
    ST_FIRST_KEPT,   /* a room's oldest seq within the age limit */
    ST_NEWEST_FLOOR, /* the seq of the N-th newest message after since */
    ST_RANGE,        /* a room's messages from a seq, oldest first */
    ST_COUNT_ALL
};

/* The SQL of each statement (queries.c). */
extern const char *const sq_sql[ST_COUNT_ALL];

typedef struct sq_store {
    const nb_host *host;
    struct nb_plugin_ctx *ctx;
    /* config */
    const char *path;
    sq_fsync fsync;
    int64_t retention_messages; /* 0 = no count limit */
    int64_t retention_seconds;  /* 0 = no age limit */
    int64_t busy_timeout_ms;
    int64_t cache_mib;          /* SQLite's page cache */
    int64_t age_rooms_per_tick; /* rooms the age limit visits each second */
    int64_t checkpoint_pages;   /* WAL size that wakes the checkpoint thread */
    /* open data */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT_ALL];
    int lock_fd;
    char epoch[24];
    /* the open batch */
    int in_tx;        /* BEGIN done, COMMIT or ROLLBACK pending */
    int batch_failed; /* an append failed: the rest of the batch is refused */
    sq_room **touched;
    uint32_t n_touched, cap_touched;
    sq_rooms rooms;
    /* durability (fsync = "everysec") */
    int unsynced; /* committed since the last sync */
    ev_timer tick;
    int tick_started;
    char age_cursor[256]; /* the age limit's place in its round over the rooms */
    int age_cursor_len;
    struct nb_metric *m_pruned;
    /* the WAL (checkpoint.c) */
    struct sq_ckpt *ckpt;
    int64_t wal_pages;      /* after the last commit */
    int64_t wal_warn_pages; /* a WAL this long is logged (it doubles each time) */
    struct nb_metric *m_wal_pages;
} sq_store;

/* open.c */
int32_t sq_start(void *instance, uint32_t *flags);
void sq_stop(void *instance);
/* Log a failed SQLite call with the database path and SQLite's message;
 * returns the NB_ERR_* it maps to. */
int32_t sq_fail(sq_store *s, int rc, const char *what);

/* The PRAGMA synchronous statement for an fsync setting. */
const char *sq_sync_pragma(sq_fsync f);

/* checkpoint.c: the checkpoint thread and its connection, started after
 * the schema is in place and stopped before the writer's connection
 * closes; sq_checkpoint_between_batches runs on the writer before each batch. */
int32_t sq_checkpoint_start(sq_store *s);
void sq_checkpoint_stop(sq_store *s);
void sq_checkpoint_between_batches(sq_store *s);

/* schema.c: create or migrate, inside one write transaction; fills s->epoch. */
int32_t sq_schema_open(sq_store *s);

/* write.c */
int32_t sq_append(void *instance, const nb_msg *msg);
int32_t sq_flush(void *instance, uint32_t *durable);
/* Sync the WAL now (fsync = "everysec"'s timer). */
int32_t sq_sync(sq_store *s);
void sq_rollback(sq_store *s);

/* retention.c */
/* Keep a room within retention_messages (inside the caller's transaction). */
int32_t sq_retain_count(sq_store *s, sq_room *r);
/* One step of the age limit's round over the rooms (the timer). */
void sq_retain_age_tick(sq_store *s);
/* Oldest ts still kept, or INT64_MIN with no age limit. */
int64_t sq_age_cutoff(const sq_store *s);

/* load.c */
int32_t sq_load(void *instance, const nb_store_query *q, nb_store_result *res,
                nb_store_visit_fn visit, void *user);

/* rooms.c */
sq_room *sq_rooms_get(sq_store *s, const char *name, uint32_t len, int create);
void sq_rooms_free(sq_store *s);

/* Bind helpers: text with its length, copied by SQLite only when needed. */
static inline int sq_bind_text(sqlite3_stmt *st, int i, const char *p, uint32_t len) {
    return sqlite3_bind_text(st, i, p ? p : "", (int)len, SQLITE_STATIC);
}
/* Step a statement that returns no row (or whose row is ignored), then reset it. */
int sq_exec_stmt(sqlite3_stmt *st);

#endif
