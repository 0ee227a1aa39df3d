/*
 * test_store_sqlite.c — store-sqlite through its vtable, as the core's
 * writer drives it: real database files in a temp folder, the built
 * module loaded with dlopen, a real libev loop for its timers. A second
 * SQLite connection (and the sqlite3 shell) looks at the file from outside.
 * Usage: test-store-sqlite PLUGIN.so
 */
#include "store_host.h" /* tools/store-bench: the store host the store-aof tests use too */

#include <CUnit/Basic.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The plugin's own SQL (queries.c, compiled in), for the query-plan test. */
#include "sq.h"

/* ---- helpers ---------------------------------------------------------------- */

static store_host H; /* the plugin, its config, loop and log */
#define vt (H.vt)

static void *sh_create_one(void) {
    return sh_new_instance(&H);
}

static void sh_destroy_one(void *inst) {
    sh_destroy_instance(&H, inst);
}

static char dir[256];    /* this test's temp folder */
static char dbpath[300]; /* dir/data/nebula.db */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(p);
}

static void fresh_dir(void) {
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    snprintf(dir, sizeof dir, "/tmp/nb-store-sqlite-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    chmod(dir, 0777); /* the tests that drop root's rights still use it */
    snprintf(dbpath, sizeof dbpath, "%s/data/nebula.db", dir);
}

static void config_default(void) {
    char q[320];
    H.cfg.n = 0;
    snprintf(q, sizeof q, "%s", dbpath);
    sh_set(&H, "path", q);
}

/* create() + start() with the current config; NULL (and *rc) on failure. */
static void *open_store(uint32_t *flags, int32_t *rc) {
    uint32_t f = 0;
    int32_t r = NB_ERR;
    void *inst = sh_create_one();
    if (inst && (r = vt->start(inst, &f)) != NB_OK) {
        sh_destroy_one(inst);
        inst = NULL;
    }
    if (flags)
        *flags = f;
    if (rc)
        *rc = r;
    return inst;
}

static void close_store(void *inst) {
    if (!inst)
        return;
    vt->stop(inst);
    sh_destroy_one(inst);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int32_t append_at(void *inst, const char *room, uint64_t seq, const char *content,
                         uint32_t content_len, int64_t ts) {
    char id[32], sender[32];
    snprintf(id, sizeof id, "id-%llu", (unsigned long long)seq);
    snprintf(sender, sizeof sender, "user%llu", (unsigned long long)(seq % 3));
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = NB_MSG_MESSAGE;
    m.room = (nb_str){room, (uint32_t)strlen(room), 0};
    m.sender = (nb_str){sender, (uint32_t)strlen(sender), 0};
    m.content = (nb_str){content, content_len, 0};
    m.id = (nb_str){id, (uint32_t)strlen(id), 0};
    m.ts = ts;
    m.seq = seq;
    return vt->append(inst, &m);
}

static int32_t append(void *inst, const char *room, uint64_t seq) {
    char text[64];
    snprintf(text, sizeof text, "%s message %llu", room, (unsigned long long)seq);
    return append_at(inst, room, seq, text, (uint32_t)strlen(text), now_ms());
}

static int32_t flush(void *inst) {
    uint32_t durable = 0;
    return vt->flush(inst, &durable);
}

/* What a load returned. */
typedef struct loaded {
    uint32_t n;
    uint64_t seq[256];
    int64_t ts[256];
    char content[256][64];
    uint32_t content_len[256];
    char sender[256][16];
    char id[256][16];
    char room[256][16];
    nb_store_result res;
    char epoch[32];
} loaded;

static int32_t keep(void *user, const nb_msg *m) {
    loaded *l = user;
    if (l->n == 256)
        return NB_ERR;
    l->seq[l->n] = m->seq;
    l->ts[l->n] = m->ts;
    l->content_len[l->n] = m->content.len;
    memcpy(l->content[l->n], m->content.ptr, m->content.len < 64 ? m->content.len : 64);
    snprintf(l->sender[l->n], 16, "%.*s", (int)m->sender.len, m->sender.ptr);
    snprintf(l->id[l->n], 16, "%.*s", (int)m->id.len, m->id.ptr);
    snprintf(l->room[l->n], 16, "%.*s", (int)m->room.len, m->room.ptr);
    l->n++;
    return NB_OK;
}

static loaded L; /* the last load */

static int32_t load_q(void *inst, const char *room, uint32_t max, int has_since, uint64_t since) {
    memset(&L, 0, sizeof L);
    nb_store_query q = {.struct_size = sizeof q,
                        .max = max,
                        .room = room,
                        .room_len = (uint32_t)strlen(room),
                        .has_since = (uint32_t)has_since,
                        .since = since};
    L.res.struct_size = sizeof L.res;
    int32_t rc = vt->load(inst, &q, &L.res, keep, &L);
    snprintf(L.epoch, sizeof L.epoch, "%s", L.res.epoch ? L.res.epoch : "");
    return rc;
}

/* L holds exactly the seqs lo..hi, in order. */
static int loaded_range(uint64_t lo, uint64_t hi) {
    if (L.n != (hi >= lo ? hi - lo + 1 : 0))
        return 0;
    for (uint32_t i = 0; i < L.n; i++)
        if (L.seq[i] != lo + i)
            return 0;
    return 1;
}

/* One integer from the database, read by a connection of our own. */
static int64_t db_int(const char *path, const char *q) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "db_int(%s): %s\n", q, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int db_exec(const char *path, const char *q) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, q, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "db_exec: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc;
}

static int log_has(const char *text) {
    return sh_logged(&H, text);
}

/* Run `child` in a forked process (optionally as nobody when we are root,
 * so that file permissions apply); its exit status 0 means it passed. */
static int in_child(int (*child)(void), int drop_root) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (drop_root && geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        int rc = child();
        if (rc)
            fprintf(stderr, "child failed at step %d; plugin log:\n%s", rc, H.log ? H.log : "");
        _exit(rc);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static void setup(void) {
    fresh_dir();
    config_default();
    sh_log_clear(&H);
    sh_clock_offset(0);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_round_trip(void) {
    setup();
    uint32_t flags = 1;
    void *s = open_store(&flags, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(flags, 0); /* everysec: echoes do not wait */
    CU_ASSERT_TRUE(log_has(dbpath));
    /* Bytes survive as they are: UTF-8, a NUL, quotes. */
    static const char odd[] = "h\xc3\xa9llo \"x\"\0tail";
    CU_ASSERT_EQUAL(append_at(s, "a", 1, odd, sizeof odd - 1, 1700000000123), NB_OK);
    for (uint64_t seq = 2; seq <= 20; seq++) {
        CU_ASSERT_EQUAL(append(s, "a", seq), NB_OK);
        CU_ASSERT_EQUAL(append(s, "b", seq * 10), NB_OK); /* rooms interleave */
    }
    CU_ASSERT_EQUAL(flush(s), NB_OK);
    CU_ASSERT_EQUAL(load_q(s, "a", 100, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(1, 20));
    CU_ASSERT_EQUAL(L.res.last_seq, 20);
    CU_ASSERT_EQUAL(L.res.first_seq, 1);
    CU_ASSERT_EQUAL(L.content_len[0], sizeof odd - 1);
    CU_ASSERT_EQUAL(memcmp(L.content[0], odd, sizeof odd - 1), 0);
    CU_ASSERT_EQUAL(L.ts[0], 1700000000123);
    CU_ASSERT_STRING_EQUAL(L.id[0], "id-1");
    CU_ASSERT_STRING_EQUAL(L.sender[0], "user1");
    CU_ASSERT_STRING_EQUAL(L.room[0], "a");
    CU_ASSERT_EQUAL(strlen(L.epoch), 16);
    CU_ASSERT_EQUAL(load_q(s, "b", 100, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 19);
    CU_ASSERT_EQUAL(L.seq[0], 20);
    CU_ASSERT_EQUAL(L.res.last_seq, 200);
    for (uint32_t i = 0; i < L.n; i++)
        CU_ASSERT_STRING_EQUAL(L.room[i], "b");
    /* A room the store never saw. */
    CU_ASSERT_EQUAL(load_q(s, "nobody", 100, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    CU_ASSERT_EQUAL(L.res.last_seq, 0);
    CU_ASSERT_EQUAL(L.res.first_seq, 0);
    close_store(s);
}

static void test_unflushed_is_visible(void) {
    setup();
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(append(s, "r", 1), NB_OK);
    CU_ASSERT_EQUAL(append(s, "r", 2), NB_OK);
    CU_ASSERT_EQUAL(load_q(s, "r", 10, 0, 0), NB_OK); /* mid-batch */
    CU_ASSERT_TRUE(loaded_range(1, 2));
    CU_ASSERT_EQUAL(L.res.last_seq, 2);
    CU_ASSERT_EQUAL(append(s, "r", 3), NB_OK);
    CU_ASSERT_EQUAL(flush(s), NB_OK);
    CU_ASSERT_EQUAL(load_q(s, "r", 10, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(1, 3));
    close_store(s);
}

static void test_reopen_keeps_data_and_epoch(void) {
    setup();
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (uint64_t seq = 1; seq <= 5; seq++)
        append(s, "r", seq);
    CU_ASSERT_EQUAL(flush(s), NB_OK);
    CU_ASSERT_EQUAL(load_q(s, "r", 10, 0, 0), NB_OK);
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%s", L.epoch);
    close_store(s);
    /* A stopped store leaves one file (the WAL was checkpointed). */
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", dbpath);
    CU_ASSERT_NOT_EQUAL(access(wal, F_OK), 0);

    s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(load_q(s, "r", 10, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(1, 5));
    CU_ASSERT_STRING_EQUAL(L.epoch, epoch);
    CU_ASSERT_EQUAL(append(s, "r", 6), NB_OK);
    CU_ASSERT_EQUAL(flush(s), NB_OK);
    close_store(s);
    s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(load_q(s, "r", 10, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(1, 6));
    CU_ASSERT_STRING_EQUAL(L.epoch, epoch);
    close_store(s);
    /* Recreated data: a new epoch. */
    remove(dbpath);
    s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(load_q(s, "r", 10, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    CU_ASSERT_STRING_NOT_EQUAL(L.epoch, epoch);
    close_store(s);
}

static void test_since_ranges(void) {
    setup();
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (uint64_t seq = 1; seq <= 10; seq++)
        append(s, "r", seq);
    flush(s);
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 1, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(1, 10));
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 1, 4), NB_OK);
    CU_ASSERT_TRUE(loaded_range(5, 10));
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 1, 10), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    CU_ASSERT_EQUAL(L.res.last_seq, 10);
    CU_ASSERT_EQUAL(L.res.first_seq, 1);
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 1, 99), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 1, UINT64_MAX), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    /* max takes the NEWEST matching, oldest first. */
    CU_ASSERT_EQUAL(load_q(s, "r", 3, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(8, 10));
    CU_ASSERT_EQUAL(load_q(s, "r", 3, 1, 4), NB_OK);
    CU_ASSERT_TRUE(loaded_range(8, 10));
    CU_ASSERT_EQUAL(load_q(s, "r", 1, 1, 9), NB_OK);
    CU_ASSERT_TRUE(loaded_range(10, 10));
    CU_ASSERT_EQUAL(load_q(s, "r", 0, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    CU_ASSERT_EQUAL(L.res.last_seq, 10);
    /* Gaps (a failed batch leaves one) are fine. */
    append(s, "r", 15);
    flush(s);
    CU_ASSERT_EQUAL(load_q(s, "r", 2, 1, 9), NB_OK);
    CU_ASSERT_EQUAL(L.n, 2);
    CU_ASSERT_EQUAL(L.seq[0], 10);
    CU_ASSERT_EQUAL(L.seq[1], 15);
    close_store(s);
}

static void test_retention_by_count(void) {
    setup();
    sh_set(&H, "retention_messages", "5");
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (uint64_t seq = 1; seq <= 12; seq++) {
        append(s, "r", seq);
        if (seq % 3 == 0)
            CU_ASSERT_EQUAL(flush(s), NB_OK);
    }
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(8, 12));
    CU_ASSERT_EQUAL(L.res.first_seq, 8);
    CU_ASSERT_EQUAL(L.res.last_seq, 12);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT count(*) FROM messages"), 5);
    /* Mid-batch, before the batch's retention ran: still exactly 5. */
    append(s, "r", 13);
    append(s, "r", 14);
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(10, 14));
    CU_ASSERT_EQUAL(L.res.first_seq, 10);
    /* since older than what is kept: what is kept, and first_seq says so. */
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 1, 2), NB_OK);
    CU_ASSERT_TRUE(loaded_range(10, 14));
    flush(s);
    close_store(s);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT count(*) FROM messages"), 5);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT last_seq FROM rooms WHERE room = 'r'"), 14);
    /* A smaller limit after a restart applies to rooms not yet written to. */
    sh_set(&H, "retention_messages", "2");
    s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(13, 14));
    CU_ASSERT_EQUAL(L.res.last_seq, 14);
    close_store(s);
    /* 0 = no count limit. */
    sh_set(&H, "retention_messages", "0");
    s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (uint64_t seq = 15; seq <= 30; seq++)
        append(s, "r", seq);
    flush(s);
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(13, 30));
    close_store(s);
}

static void test_retention_by_age(void) {
    setup();
    sh_set(&H, "retention_seconds", "60");
    sh_set(&H, "fsync", "no"); /* only the age limit's timer */
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int64_t old = now_ms() - 120000;
    for (uint64_t seq = 1; seq <= 3; seq++)
        append_at(s, "r", seq, "old", 3, old);
    append_at(s, "r", 4, "new", 3, now_ms());
    append_at(s, "r", 5, "new", 3, now_ms());
    for (uint64_t seq = 1; seq <= 4; seq++)
        append_at(s, "gone", seq, "old", 3, old);
    CU_ASSERT_EQUAL(flush(s), NB_OK);
    /* load filters by age before the timer has deleted anything. */
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(4, 5));
    CU_ASSERT_EQUAL(L.res.first_seq, 4);
    CU_ASSERT_EQUAL(L.res.last_seq, 5);
    CU_ASSERT_EQUAL(load_q(s, "gone", 100, 1, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    CU_ASSERT_EQUAL(L.res.first_seq, 0);
    CU_ASSERT_EQUAL(L.res.last_seq, 4);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT count(*) FROM messages"), 9);
    ev_run(H.loop, EVRUN_ONCE); /* the one-second tick */
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT count(*) FROM messages"), 2);
    /* The rooms' numbering survives its messages. */
    CU_ASSERT_EQUAL(load_q(s, "gone", 100, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    CU_ASSERT_EQUAL(L.res.last_seq, 4);
    close_store(s);
    s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(load_q(s, "gone", 100, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.res.last_seq, 4);
    /* Time passes: everything expires. */
    sh_clock_offset(3600 * 1000);
    CU_ASSERT_EQUAL(load_q(s, "r", 100, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    CU_ASSERT_EQUAL(L.res.last_seq, 5);
    close_store(s);
}

/* A database as an older store-sqlite left it: version 1 (no rooms
 * table) or 2 (rooms; both cluster messages by (room, seq)). */
static void write_old(const char *path, int version) {
    mkdir(dir, 0777);
    char data[300];
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(data, 0777);
    CU_ASSERT_EQUAL(
        db_exec(path,
                "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
                "CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT "
                "NULL, ts INTEGER NOT NULL, sender TEXT NOT NULL, content TEXT NOT NULL,"
                " PRIMARY KEY (room, seq)) WITHOUT ROWID;"
                "INSERT INTO schema_version VALUES (1);"
                "INSERT INTO meta VALUES ('epoch', '00000000feedf00d');"
                "INSERT INTO messages VALUES ('a', 1, 'i1', 1, 'ann', 'one'),"
                " ('a', 2, 'i2', 2, 'ann', 'two'), ('a', 7, 'i7', 7, 'bob', 'seven'),"
                " ('b', 3, 'i3', 3, 'bob', 'three');"),
        SQLITE_OK);
    if (version == 2)
        CU_ASSERT_EQUAL(db_exec(path, "CREATE TABLE rooms (room TEXT PRIMARY KEY, last_seq "
                                      "INTEGER NOT NULL) WITHOUT ROWID;"
                                      "INSERT INTO rooms VALUES ('a', 7), ('b', 5), ('c', 9);"
                                      "UPDATE schema_version SET version = 2;"),
                        SQLITE_OK);
}

/* Opened by this store-sqlite: migrated to the current version, every
 * message and last seq kept, and new messages go on from there. */
static void check_migrated(int from, int64_t last_b) {
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char line[64];
    for (int v = from; v < 3; v++) {
        snprintf(line, sizeof line, "migrated from version %d to %d", v, v + 1);
        CU_ASSERT_TRUE(log_has(line));
    }
    CU_ASSERT_EQUAL(load_q(s, "a", 10, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 3);
    CU_ASSERT_EQUAL(L.seq[0], 1);
    CU_ASSERT_EQUAL(L.seq[2], 7);
    CU_ASSERT_EQUAL(L.res.last_seq, 7);
    CU_ASSERT_STRING_EQUAL(L.epoch, "00000000feedf00d");
    CU_ASSERT_EQUAL(load_q(s, "b", 10, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 1);
    CU_ASSERT_EQUAL(L.res.last_seq, (uint64_t)last_b);
    CU_ASSERT_EQUAL(append(s, "a", 8), NB_OK);
    CU_ASSERT_EQUAL(flush(s), NB_OK);
    close_store(s);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT version FROM schema_version"), 3);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT count(*) FROM messages"), 5);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT count(*) FROM sqlite_schema WHERE name = "
                                   "'messages_room_seq' AND type = 'index'"),
                    1);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT count(*) FROM sqlite_schema WHERE name = "
                                   "'messages_v2'"),
                    0);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT last_seq FROM rooms WHERE room = 'b'"), last_b);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT last_seq FROM rooms WHERE room = 'a'"), 8);
}

static void test_migration_from_version_1(void) {
    setup();
    write_old(dbpath, 1);
    check_migrated(1, 3);
}

static void test_migration_from_version_2(void) {
    setup();
    write_old(dbpath, 2);
    check_migrated(2, 5);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT last_seq FROM rooms WHERE room = 'c'"), 9);
}

static void test_refuses_foreign_and_newer(void) {
    setup();
    write_old(dbpath, 1);
    db_exec(dbpath, "UPDATE schema_version SET version = 4");
    int32_t rc = NB_OK;
    CU_ASSERT_PTR_NULL(open_store(NULL, &rc));
    CU_ASSERT_NOT_EQUAL(rc, NB_OK);
    CU_ASSERT_TRUE(log_has("schema version 4, newer"));
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT version FROM schema_version"), 4); /* untouched */

    setup();
    char data[300];
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(data, 0777);
    db_exec(dbpath, "CREATE TABLE customers (name TEXT)");
    CU_ASSERT_PTR_NULL(open_store(NULL, NULL));
    CU_ASSERT_TRUE(log_has("is not a Nebula history database"));

    setup();
    snprintf(data, sizeof data, "%s/data", dir);
    FILE *f = fopen(dbpath, "w");
    CU_ASSERT_PTR_NULL(f); /* data/ does not exist yet: start() makes it */
    mkdir(data, 0777);
    f = fopen(dbpath, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("this is not a database, but it is long enough to have a header........", f);
    fclose(f);
    CU_ASSERT_PTR_NULL(open_store(NULL, NULL));
    CU_ASSERT_TRUE(log_has(dbpath));
}

static void test_query_plans_use_the_index(void) {
    setup();
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    close_store(s);
    sqlite3 *db = NULL;
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(dbpath, &db), SQLITE_OK);
    int checked = 0;
    for (int i = 0; i < ST_COUNT_ALL; i++) {
        const char *q = sq_sql[i];
        if (!strstr(q, "messages") && !strstr(q, "rooms"))
            continue; /* BEGIN, COMMIT, ROLLBACK */
        char explain[1024];
        snprintf(explain, sizeof explain, "EXPLAIN QUERY PLAN %s", q);
        sqlite3_stmt *st = NULL;
        CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, explain, -1, &st, NULL), SQLITE_OK);
        char plan[1024] = "";
        size_t len = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            int n = snprintf(plan + len, sizeof plan - len, "%s; ", sqlite3_column_text(st, 3));
            if (n > 0 && (size_t)n < sizeof plan - len)
                len += (size_t)n;
        }
        sqlite3_finalize(st);
        /* An INSERT has no plan; every read walks the (room, seq) index
         * (or the rooms table's primary key). */
        int ok = (strncmp(q, "INSERT", 6) == 0 && !strstr(q, "SELECT")) ||
                 ((strstr(plan, "USING PRIMARY KEY") || strstr(plan, "USING COVERING INDEX") ||
                   strstr(plan, "USING INDEX messages_room_seq")) &&
                  !strstr(plan, "SCAN messages") && !strstr(plan, "SCAN rooms") &&
                  !strstr(plan, "TEMP B-TREE"));
        if (!ok)
            fprintf(stderr, "plan of %s: %s\n", q, plan);
        CU_ASSERT_TRUE(ok);
        if (strstr(q, "seq >= ?2") || strstr(q, "seq > ?2"))
            CU_ASSERT_PTR_NOT_NULL(strstr(plan, "(room=? AND seq>"));
        checked++;
    }
    CU_ASSERT_TRUE(checked >= 10);
    sqlite3_close(db);
}

static void test_fsync_modes(void) {
    setup();
    sh_set(&H, "fsync", "always");
    uint32_t flags = 0, durable = 0;
    void *s = open_store(&flags, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(flags, NB_STORE_F_ACK_AFTER_FLUSH);
    append(s, "r", 1);
    CU_ASSERT_EQUAL(vt->flush(s, &durable), NB_OK);
    CU_ASSERT_EQUAL(durable, 1);
    close_store(s);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);

    sh_set(&H, "fsync", "everysec");
    s = open_store(&flags, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(flags, 0);
    append(s, "r", 2);
    CU_ASSERT_EQUAL(vt->flush(s, &durable), NB_OK);
    CU_ASSERT_EQUAL(durable, 0); /* written, not yet synced */
    ev_run(H.loop, EVRUN_ONCE);  /* the one-second sync */
    CU_ASSERT_EQUAL(vt->flush(s, &durable), NB_OK);
    CU_ASSERT_EQUAL(durable, 1);
    close_store(s);

    sh_set(&H, "fsync", "no");
    s = open_store(&flags, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(flags, 0);
    append(s, "r", 3);
    CU_ASSERT_EQUAL(vt->flush(s, &durable), NB_OK);
    CU_ASSERT_EQUAL(durable, 0);
    close_store(s);
    s = open_store(&flags, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(load_q(s, "r", 10, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(1, 3));
    close_store(s);
}

static void test_config_mistakes(void) {
    setup();
    sh_set(&H, "fsync", "sometimes");
    CU_ASSERT_PTR_NULL(sh_create_one());
    CU_ASSERT_TRUE(log_has("fsync: expected \"always\", \"everysec\" or \"no\""));
    config_default();
    sh_set(&H, "retention_messages", "-1");
    CU_ASSERT_PTR_NULL(sh_create_one());
    CU_ASSERT_TRUE(log_has("retention_messages"));
    config_default();
    sh_set(&H, "retention_seconds", "-5");
    CU_ASSERT_PTR_NULL(sh_create_one());
    config_default();
    sh_set(&H, "path", "");
    CU_ASSERT_PTR_NULL(sh_create_one());
    CU_ASSERT_TRUE(log_has("path: must name the database file"));
    /* create() touches no file (it also runs for --check-config). */
    config_default();
    void *s = sh_create_one();
    CU_ASSERT_PTR_NOT_NULL(s);
    sh_destroy_one(s);
    char data[300];
    snprintf(data, sizeof data, "%s/data", dir);
    CU_ASSERT_NOT_EQUAL(access(data, F_OK), 0);
}

static off_t wal_bytes(void) {
    char wal[400];
    snprintf(wal, sizeof wal, "%s-wal", dbpath);
    struct stat sb;
    return stat(wal, &sb) == 0 ? sb.st_size : -1;
}

/* `batches` batches of 100 messages of 1 KB over 20 rooms; *n counts the
 * messages written so far (message n is room n % 20's seq n / 20 + 1). */
static void write_batches(void *s, int batches, uint64_t *n) {
    char text[1024];
    memset(text, 'x', sizeof text);
    for (int b = 0; b < batches; b++) {
        for (int i = 0; i < 100; i++, (*n)++) {
            char room[16];
            snprintf(room, sizeof room, "r%d", (int)(*n % 20));
            CU_ASSERT_EQUAL(append_at(s, room, *n / 20 + 1, text, sizeof text, now_ms()), NB_OK);
        }
        CU_ASSERT_EQUAL(flush(s), NB_OK);
    }
}

/* The checkpoint thread keeps the WAL near checkpoint_pages; a reader that
 * holds an old snapshot makes it grow, and the log says so. */
static void test_checkpoints_bound_the_wal(void) {
    setup();
    sh_set(&H, "checkpoint_pages", "100");
    sh_set(&H, "retention_messages", "0");
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    uint64_t n = 0;
    /* 8,000 messages of 1 KB, more than 8 MB of pages: without
     * checkpoints the WAL would hold them all; with them it starts over
     * every few hundred pages (as soon as the thread gets its turn). */
    for (int round = 0; round < 40; round++) {
        write_batches(s, 2, &n);
        usleep(5000);
    }
    off_t bounded = wal_bytes();
    CU_ASSERT_TRUE(bounded > 0 && bounded < 4 * 1024 * 1024);
    if (!(bounded > 0 && bounded < 4 * 1024 * 1024))
        fprintf(stderr, "WAL after 8 MB of messages with checkpoint_pages 100: %lld bytes\n",
                (long long)bounded);
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT count(*) FROM messages"), 8000);

    /* A reader inside a transaction pins its snapshot. */
    sqlite3 *reader = NULL;
    CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(dbpath, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM messages;", NULL, NULL, NULL),
                    SQLITE_OK);
    for (int round = 0; round < 20; round++) {
        write_batches(s, 2, &n);
        usleep(5000);
    }
    CU_ASSERT_TRUE(wal_bytes() > 4 * 100 * 4096);
    CU_ASSERT_TRUE(log_has("cannot be copied back: a long read transaction"));
    sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(reader);
    close_store(s);
    CU_ASSERT_EQUAL(wal_bytes(), -1); /* folded back in at the close */
    CU_ASSERT_EQUAL(db_int(dbpath, "SELECT count(*) FROM messages"), 12000);

    config_default();
    sh_set(&H, "checkpoint_pages", "10");
    CU_ASSERT_PTR_NULL(sh_create_one());
    CU_ASSERT_TRUE(log_has("checkpoint_pages: must be 100 .. 10000000"));
}

static void test_one_server_per_database(void) {
    setup();
    void *a = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    sh_log_clear(&H);
    CU_ASSERT_PTR_NULL(open_store(NULL, NULL));
    CU_ASSERT_TRUE(log_has("is in use by another process"));
    close_store(a);
    /* Another program holding SQLite's write lock: a clear error once
     * busy_timeout_ms has passed. */
    sqlite3 *db = NULL;
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(dbpath, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    sh_set(&H, "busy_timeout_ms", "100");
    sh_log_clear(&H);
    CU_ASSERT_PTR_NULL(open_store(NULL, NULL));
    CU_ASSERT_TRUE(log_has("another process holds a lock on the database"));
    CU_ASSERT_TRUE(log_has(dbpath));
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    a = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL(a);
    close_store(a);
}

/* The sqlite3 shell reads the database while the store has it open. */
static void test_shell_reads_while_open(void) {
    setup();
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (uint64_t seq = 1; seq <= 7; seq++)
        append(s, "r", seq);
    flush(s);
    append(s, "r", 8); /* an open batch: the shell does not see it, nor wait for it */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "sqlite3 -readonly '%s' 'SELECT count(*), max(seq) FROM messages' 2>&1", dbpath);
    FILE *p = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char out[256] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    if (status != 0 || strcmp(out, "7|7\n") != 0)
        fprintf(stderr, "sqlite3 shell (is the sqlite3 package installed?): status %d: %s\n",
                status, out);
    CU_ASSERT_EQUAL(status, 0);
    CU_ASSERT_STRING_EQUAL(out, "7|7\n");
    CU_ASSERT_EQUAL(flush(s), NB_OK);
    close_store(s);
}

/* A failed append rolls the whole batch back and the next batch works. */
static void test_failed_batch_is_rolled_back(void) {
    setup();
    void *s = open_store(NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    append(s, "r", 1);
    append(s, "r", 2);
    CU_ASSERT_EQUAL(flush(s), NB_OK);
    CU_ASSERT_EQUAL(append(s, "r", 3), NB_OK);
    CU_ASSERT_EQUAL(append(s, "q", 1), NB_OK);
    CU_ASSERT_NOT_EQUAL(append(s, "r", 2), NB_OK); /* a seq stored before */
    CU_ASSERT_TRUE(log_has("UNIQUE constraint failed"));
    CU_ASSERT_NOT_EQUAL(append(s, "r", 4), NB_OK); /* the rest of the batch is refused */
    CU_ASSERT_NOT_EQUAL(flush(s), NB_OK);
    CU_ASSERT_EQUAL(load_q(s, "r", 10, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(1, 2));
    CU_ASSERT_EQUAL(L.res.last_seq, 2);
    CU_ASSERT_EQUAL(load_q(s, "q", 10, 0, 0), NB_OK);
    CU_ASSERT_EQUAL(L.n, 0);
    CU_ASSERT_EQUAL(append(s, "r", 3), NB_OK);
    CU_ASSERT_EQUAL(flush(s), NB_OK);
    CU_ASSERT_EQUAL(load_q(s, "r", 10, 0, 0), NB_OK);
    CU_ASSERT_TRUE(loaded_range(1, 3));
    close_store(s);
}

/* A full disk for real: the file size limit (RLIMIT_FSIZE, SIGXFSZ
 * ignored) makes the kernel refuse SQLite's writes. */
static int full_disk_child(void) {
    signal(SIGXFSZ, SIG_IGN);
    void *s = open_store(NULL, NULL);
    if (!s)
        return 1;
    static char big[8192];
    memset(big, 'x', sizeof big);
    uint64_t seq = 0, committed = 0;
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    struct rlimit small = {256 * 1024, rl.rlim_max};
    if (setrlimit(RLIMIT_FSIZE, &small) != 0)
        return 2;
    int32_t rc = NB_OK;
    for (int batch = 0; batch < 200 && rc == NB_OK; batch++) {
        for (int i = 0; i < 4 && rc == NB_OK; i++)
            rc = append_at(s, "r", ++seq, big, sizeof big, now_ms());
        if (rc == NB_OK)
            rc = flush(s);
        else
            flush(s); /* ends the failed batch */
        if (rc == NB_OK)
            committed = seq;
    }
    if (rc != NB_ERR_IO)
        return 3;
    if (!log_has(dbpath) || !(log_has("SQLite code 13") || log_has("SQLite code 778") ||
                              log_has("disk is full") || log_has("disk I/O error")))
        return 4;
    if (committed == 0)
        return 5;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 6;
    /* Only whole batches are there; the store works again. */
    if (load_q(s, "r", 256, 0, 0) != NB_OK || !loaded_range(1, committed))
        return 7;
    if (append_at(s, "r", seq + 1, "after", 5, now_ms()) != NB_OK || flush(s) != NB_OK)
        return 8;
    if (load_q(s, "r", 1, 0, 0) != NB_OK || L.n != 1 || L.seq[0] != seq + 1)
        return 9;
    close_store(s);
    return 0;
}

static void test_full_disk(void) {
    setup();
    void *s = open_store(NULL, NULL); /* create the database at its normal size */
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    close_store(s);
    CU_ASSERT_EQUAL(in_child(full_disk_child, 0), 0);
}

static int unwritable_child(void) {
    char ro[300], path[400];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    snprintf(path, sizeof path, "%s/sub/nebula.db", ro);
    sh_set(&H, "path", path);
    int32_t rc = NB_OK;
    if (open_store(NULL, &rc) || rc == NB_OK)
        return 1;
    if (!log_has("cannot create the database's folder") || !log_has("/ro/sub") ||
        !log_has("Permission denied"))
        return 2;
    sh_log_clear(&H);
    snprintf(path, sizeof path, "%s/nebula.db", ro);
    sh_set(&H, "path", path);
    if (open_store(NULL, &rc) || rc == NB_OK)
        return 3;
    if (!log_has("/ro/nebula.db") || !log_has("Permission denied"))
        return 4;
    /* A database file the server may not write. */
    sh_log_clear(&H);
    snprintf(path, sizeof path, "%s/data/nebula.db", dir);
    sh_set(&H, "path", path);
    if (open_store(NULL, &rc) || rc == NB_OK)
        return 5;
    if (!log_has("read-only"))
        return 6;
    return 0;
}

static void test_unwritable_paths(void) {
    setup();
    void *s = open_store(NULL, NULL); /* data/nebula.db, owned by us, mode 0644 */
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    close_store(s);
    char ro[300], data[300], lock[320];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(lock, sizeof lock, "%s.lock", dbpath);
    mkdir(ro, 0555);
    chmod(ro, 0555);
    chmod(data, 0777);   /* the folder is writable (the lock file may be made) */
    chmod(lock, 0666);   /* ... */
    chmod(dbpath, 0444); /* the database is not */
    if (geteuid() != 0)
        chmod(dbpath, 0444);
    CU_ASSERT_EQUAL(in_child(unwritable_child, 1), 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s store-sqlite.so\n", argv[0]);
        return 2;
    }
    char err[512];
    if (sh_open(&H, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    H.echo = getenv("STORE_TEST_VERBOSE") != NULL;
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite suite = CU_add_suite("store-sqlite", NULL, NULL);
    CU_add_test(suite, "round trip, order, rooms apart", test_round_trip);
    CU_add_test(suite, "load sees an open batch", test_unflushed_is_visible);
    CU_add_test(suite, "reopen keeps data and epoch", test_reopen_keeps_data_and_epoch);
    CU_add_test(suite, "since ranges and max", test_since_ranges);
    CU_add_test(suite, "retention by count, last_seq kept", test_retention_by_count);
    CU_add_test(suite, "retention by age, last_seq kept", test_retention_by_age);
    CU_add_test(suite, "migration from schema version 1", test_migration_from_version_1);
    CU_add_test(suite, "migration from schema version 2", test_migration_from_version_2);
    CU_add_test(suite, "checkpoints bound the WAL", test_checkpoints_bound_the_wal);
    CU_add_test(suite, "foreign or newer databases refused", test_refuses_foreign_and_newer);
    CU_add_test(suite, "query plans use the index", test_query_plans_use_the_index);
    CU_add_test(suite, "fsync always, everysec, no", test_fsync_modes);
    CU_add_test(suite, "config mistakes", test_config_mistakes);
    CU_add_test(suite, "one server per database; locks", test_one_server_per_database);
    CU_add_test(suite, "the sqlite3 shell reads while open", test_shell_reads_while_open);
    CU_add_test(suite, "a failed batch is rolled back", test_failed_batch_is_rolled_back);
    CU_add_test(suite, "a full disk (RLIMIT_FSIZE)", test_full_disk);
    CU_add_test(suite, "unwritable folder and file", test_unwritable_paths);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed() + CU_get_number_of_failures();
    CU_cleanup_registry();
    sh_close(&H);
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed ? 1 : 0;
}
