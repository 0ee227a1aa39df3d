/*
 * test_store_aof.c — store-aof driven as the core's writer thread drives
 * it (tools/store-bench/store_host.c: dlopen, create, start, append,
 * flush, load), on real files in a temp folder. argv[1]: the built plugin.
 */
#include "store_host.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *plugin_path;
static char dir[256];
static char path[1024];
static store_host sh;
static int n_case;

/* ---- helpers ---------------------------------------------------------------- */

/* A fresh file name per test; config keys as "k=v" strings, NULL-ended. */
static void new_path(void) {
    snprintf(path, sizeof path, "%s/case%d/nebula.aof", dir, ++n_case);
}

static int32_t open_store(const char *const *kv, uint32_t *flags) {
    char err[512];
    if (sh_open(&sh, plugin_path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return NB_ERR_IO;
    }
    sh.echo = getenv("STORE_TEST_ECHO") != NULL;
    sh_set(&sh, "path", path);
    for (; kv && *kv; kv++) {
        char k[64];
        const char *eq = strchr(*kv, '=');
        snprintf(k, sizeof k, "%.*s", (int)(eq - *kv), *kv);
        sh_set(&sh, k, eq + 1);
    }
    int32_t rc = sh_create(&sh);
    if (rc != NB_OK)
        return rc;
    uint32_t f = 0;
    rc = sh.vt->start(sh.inst, &f);
    if (flags)
        *flags = f;
    return rc;
}

static void close_store(void) {
    if (sh.inst)
        sh.vt->stop(sh.inst);
    sh_close(&sh);
}

static int32_t append(const char *room, uint64_t seq, int64_t ts, const char *content) {
    char id[32], sender[32];
    snprintf(id, sizeof id, "id-%llu", (unsigned long long)seq);
    snprintf(sender, sizeof sender, "user%llu", (unsigned long long)(seq % 3));
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = NB_MSG_MESSAGE;
    m.room = (nb_str){room, (uint32_t)strlen(room), 0};
    m.id = (nb_str){id, (uint32_t)strlen(id), 0};
    m.sender = (nb_str){sender, (uint32_t)strlen(sender), 0};
    m.content = (nb_str){content, (uint32_t)strlen(content), 0};
    m.ts = ts ? ts : sh.host.now_ms();
    m.seq = seq;
    return sh.vt->append(sh.inst, &m);
}

static int32_t flush(void) {
    uint32_t durable;
    return sh.vt->flush(sh.inst, &durable);
}

typedef struct got {
    uint32_t n;
    uint64_t seq[4096];
    int bad; /* a field was not what append() wrote */
    char room[64];
} got;

static int32_t collect(void *user, const nb_msg *m) {
    got *g = user;
    char id[32];
    snprintf(id, sizeof id, "id-%llu", (unsigned long long)m->seq);
    if (m->room.len != strlen(g->room) || memcmp(m->room.ptr, g->room, m->room.len) != 0 ||
        m->id.len != strlen(id) || memcmp(m->id.ptr, id, m->id.len) != 0 ||
        m->type != NB_MSG_MESSAGE || m->ts == 0 || m->sender.len < 5)
        g->bad = 1;
    if (g->n < 4096)
        g->seq[g->n++] = m->seq;
    return NB_OK;
}

static int32_t load(const char *room, uint32_t max, int has_since, uint64_t since, got *g,
                    nb_store_result *res) {
    memset(g, 0, sizeof *g);
    snprintf(g->room, sizeof g->room, "%s", room);
    nb_store_query q = {.struct_size = sizeof q,
                        .max = max,
                        .room = room,
                        .room_len = (uint32_t)strlen(room),
                        .has_since = (uint32_t)has_since,
                        .since = since};
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    return sh.vt->load(sh.inst, &q, res, collect, g);
}

/* The seqs loaded are exactly lo..hi. */
static int range_is(const got *g, uint64_t lo, uint64_t hi) {
    if (g->bad || g->n != (hi >= lo ? hi - lo + 1 : 0))
        return 0;
    for (uint32_t i = 0; i < g->n; i++)
        if (g->seq[i] != lo + i)
            return 0;
    return 1;
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static int copy_bytes(const char *to, const unsigned char *data, size_t len) {
    FILE *f = fopen(to, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(data, 1, len, f);
    fclose(f);
    return n == len ? 0 : -1;
}

static unsigned char *read_all(const char *p, size_t *len) {
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_round_trip_order_rooms(void) {
    new_path();
    CU_ASSERT_EQUAL_FATAL(open_store(NULL, NULL), NB_OK);
    for (uint64_t s = 1; s <= 20; s++) {
        CU_ASSERT_EQUAL(append("a", s, 0, "hello"), NB_OK);
        CU_ASSERT_EQUAL(append("b", s + 100, 0, "other room"), NB_OK);
    }
    CU_ASSERT_EQUAL(flush(), NB_OK);
    got g;
    nb_store_result res;
    CU_ASSERT_EQUAL(load("a", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 1, 20));
    CU_ASSERT_EQUAL(res.last_seq, 20);
    CU_ASSERT_EQUAL(res.first_seq, 1);
    CU_ASSERT_PTR_NOT_NULL(res.epoch);
    CU_ASSERT_EQUAL(strlen(res.epoch), 16);
    CU_ASSERT_EQUAL(load("b", 5, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 116, 120)); /* the newest 5, oldest first */
    CU_ASSERT_EQUAL(load("nobody", 5, 0, 0, &g, &res), NB_OK);
    CU_ASSERT_EQUAL(g.n, 0);
    CU_ASSERT_EQUAL(res.last_seq, 0);
    /* content survives as bytes, NUL included */
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.type = NB_MSG_MESSAGE;
    m.room = (nb_str){"bin", 3, 0};
    m.id = (nb_str){"id-1", 4, 0};
    m.sender = (nb_str){"zoe", 3, 0};
    m.content = (nb_str){"a\0b\xff", 4, 0};
    m.ts = 5;
    m.seq = 1;
    CU_ASSERT_EQUAL(sh.vt->append(sh.inst, &m), NB_OK);
    CU_ASSERT_EQUAL(append("a", 20, 0, "again"), NB_ERR_INVALID); /* seq must grow */
    CU_ASSERT(sh_logged(&sh, "out of order"));
    close_store();
}

static int32_t check_bytes(void *user, const nb_msg *m) {
    *(int *)user = m->content.len == 4 && memcmp(m->content.ptr, "a\0b\xff", 4) == 0 &&
                   m->ts == 5 && m->sender.len == 3;
    return NB_OK;
}

static void test_reopen_epoch_since(void) {
    new_path();
    CU_ASSERT_EQUAL_FATAL(open_store(NULL, NULL), NB_OK);
    for (uint64_t s = 1; s <= 10; s++)
        CU_ASSERT_EQUAL(append("r", s, 0, "x"), NB_OK);
    /* load sees what was appended, flushed or not */
    got g;
    nb_store_result res;
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 1, 10));
    CU_ASSERT_EQUAL(flush(), NB_OK);
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%s", res.epoch);
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.room = (nb_str){"bin", 3, 0};
    m.content = (nb_str){"a\0b\xff", 4, 0};
    m.sender = (nb_str){"zoe", 3, 0};
    m.ts = 5;
    m.seq = 7;
    CU_ASSERT_EQUAL(sh.vt->append(sh.inst, &m), NB_OK);
    close_store();

    CU_ASSERT_EQUAL_FATAL(open_store(NULL, NULL), NB_OK);
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 1, 10));
    CU_ASSERT_STRING_EQUAL(res.epoch, epoch);
    CU_ASSERT_EQUAL(load("r", 100, 1, 4, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 5, 10));
    CU_ASSERT_EQUAL(load("r", 3, 1, 4, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 8, 10));
    CU_ASSERT_EQUAL(load("r", 100, 1, 10, &g, &res), NB_OK);
    CU_ASSERT_EQUAL(g.n, 0);
    CU_ASSERT_EQUAL(res.last_seq, 10);
    CU_ASSERT_EQUAL(load("r", 100, 1, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 1, 10));
    CU_ASSERT_EQUAL(load("r", 100, 1, 99, &g, &res), NB_OK);
    CU_ASSERT_EQUAL(g.n, 0);
    int ok = 0;
    nb_store_query q = {.struct_size = sizeof q, .max = 10, .room = "bin", .room_len = 3};
    CU_ASSERT_EQUAL(sh.vt->load(sh.inst, &q, &res, check_bytes, &ok), NB_OK);
    CU_ASSERT(ok);
    close_store();

    /* the data recreated: a new epoch */
    unlink(path);
    CU_ASSERT_EQUAL_FATAL(open_store(NULL, NULL), NB_OK);
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT_EQUAL(g.n, 0);
    CU_ASSERT_STRING_NOT_EQUAL(res.epoch, epoch);
    close_store();
}

static void test_retention_count(void) {
    new_path();
    const char *kv[] = {"retention_messages=5", NULL};
    CU_ASSERT_EQUAL_FATAL(open_store(kv, NULL), NB_OK);
    for (uint64_t s = 1; s <= 12; s++)
        CU_ASSERT_EQUAL(append("r", s, 0, "x"), NB_OK);
    CU_ASSERT_EQUAL(flush(), NB_OK);
    got g;
    nb_store_result res;
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 8, 12));
    CU_ASSERT_EQUAL(res.first_seq, 8);
    CU_ASSERT_EQUAL(res.last_seq, 12);
    CU_ASSERT_EQUAL(load("r", 100, 1, 2, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 8, 12)); /* what is left after since: the core marks it incomplete */
    close_store();
    CU_ASSERT_EQUAL_FATAL(open_store(kv, NULL), NB_OK);
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 8, 12));
    close_store();
}

static void test_retention_age_last_seq(void) {
    new_path();
    const char *kv[] = {"retention_seconds=60", NULL};
    CU_ASSERT_EQUAL_FATAL(open_store(kv, NULL), NB_OK);
    int64_t now = sh.host.now_ms();
    for (uint64_t s = 1; s <= 5; s++)
        CU_ASSERT_EQUAL(append("r", s, now - 120000, "old"), NB_OK);
    for (uint64_t s = 6; s <= 8; s++)
        CU_ASSERT_EQUAL(append("r", s, now, "new"), NB_OK);
    for (uint64_t s = 1; s <= 4; s++)
        CU_ASSERT_EQUAL(append("gone", s, now - 120000, "old"), NB_OK);
    CU_ASSERT_EQUAL(flush(), NB_OK);
    got g;
    nb_store_result res;
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 6, 8));
    CU_ASSERT_EQUAL(res.first_seq, 6);
    CU_ASSERT_EQUAL(load("gone", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT_EQUAL(g.n, 0);
    CU_ASSERT_EQUAL(res.last_seq, 4); /* numbering survives retention */
    close_store();
    /* an hour later every message is too old; the last seqs stay */
    sh_clock_offset(3600 * 1000);
    CU_ASSERT_EQUAL_FATAL(open_store(kv, NULL), NB_OK);
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT_EQUAL(g.n, 0);
    CU_ASSERT_EQUAL(res.last_seq, 8);
    CU_ASSERT_EQUAL(res.first_seq, 0);
    close_store();
    sh_clock_offset(0);
}

static void test_fsync_policies(void) {
    uint32_t flags = 0, durable = 9;
    new_path();
    const char *always[] = {"fsync=always", NULL};
    CU_ASSERT_EQUAL_FATAL(open_store(always, &flags), NB_OK);
    CU_ASSERT_EQUAL(flags, NB_STORE_F_ACK_AFTER_FLUSH);
    CU_ASSERT_EQUAL(append("r", 1, 0, "x"), NB_OK);
    CU_ASSERT_EQUAL(sh.vt->flush(sh.inst, &durable), NB_OK);
    CU_ASSERT_EQUAL(durable, 1);
    close_store();

    const char *everysec[] = {"fsync=everysec", NULL};
    CU_ASSERT_EQUAL_FATAL(open_store(everysec, &flags), NB_OK);
    CU_ASSERT_EQUAL(flags, 0);
    CU_ASSERT_EQUAL(append("r", 2, 0, "x"), NB_OK);
    CU_ASSERT_EQUAL(sh.vt->flush(sh.inst, &durable), NB_OK);
    CU_ASSERT_EQUAL(durable, 0);
    usleep(1100 * 1000);
    ev_run(sh.loop, EVRUN_NOWAIT); /* the once-a-second sync */
    CU_ASSERT_EQUAL(sh.vt->flush(sh.inst, &durable), NB_OK);
    CU_ASSERT_EQUAL(durable, 1);
    close_store();

    const char *bad[] = {"fsync=sometimes", "compact_ratio=1", NULL};
    CU_ASSERT_EQUAL(open_store(bad, NULL), NB_ERR_CONFIG);
    CU_ASSERT(sh_logged(&sh, "fsync: must be"));
    CU_ASSERT(sh_logged(&sh, "compact_ratio: must be"));
    sh_close(&sh);
}

static void test_folder_made_or_named(void) {
    snprintf(path, sizeof path, "%s/deep/er/nebula.aof", dir);
    CU_ASSERT_EQUAL_FATAL(open_store(NULL, NULL), NB_OK);
    close_store();
    CU_ASSERT(file_size(path) == 40);
    char blocker[512];
    snprintf(blocker, sizeof blocker, "%s/plainfile", dir);
    CU_ASSERT_EQUAL(copy_bytes(blocker, (const unsigned char *)"x", 1), 0);
    snprintf(path, sizeof path, "%s/sub/nebula.aof", blocker);
    CU_ASSERT_EQUAL(open_store(NULL, NULL), NB_ERR_IO);
    CU_ASSERT(sh_logged(&sh, "cannot create the folder"));
    CU_ASSERT(sh_logged(&sh, blocker));
    close_store();
}

/* A file of 6 records in one room; returns the offset of the last one. */
static long six_records(void) {
    new_path();
    if (open_store(NULL, NULL) != NB_OK)
        return -1;
    for (uint64_t s = 1; s <= 5; s++)
        append("r", s, 0, "some text of a message");
    flush();
    long last = file_size(path);
    append("r", 6, 0, "the last message, torn at every byte");
    flush();
    close_store();
    return last;
}

static void test_torn_tail_every_offset(void) {
    long last = six_records();
    CU_ASSERT_FATAL(last > 40);
    size_t len;
    unsigned char *whole = read_all(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(whole);
    int all_ok = 1;
    for (size_t cut = (size_t)last; cut < len; cut++) {
        if (copy_bytes(path, whole, cut) != 0 || open_store(NULL, NULL) != NB_OK) {
            all_ok = 0;
            close_store();
            break;
        }
        got g;
        nb_store_result res;
        int ok = load("r", 100, 0, 0, &g, &res) == NB_OK && range_is(&g, 1, 5);
        ok = ok && (cut == (size_t)last || sh_logged(&sh, "torn or damaged tail"));
        /* the next append lands right after the good prefix */
        ok = ok && append("r", 6, 0, "again") == NB_OK && flush() == NB_OK;
        close_store();
        if (!ok) {
            fprintf(stderr, "cut at %zu: not the good prefix\n", cut);
            all_ok = 0;
            break;
        }
        CU_ASSERT_EQUAL(open_store(NULL, NULL), NB_OK);
        ok = load("r", 100, 0, 0, &g, &res) == NB_OK && range_is(&g, 1, 6);
        close_store();
        if (!ok) {
            fprintf(stderr, "cut at %zu: the append after repair is lost\n", cut);
            all_ok = 0;
            break;
        }
    }
    CU_ASSERT(all_ok);
    /* a flipped byte in the last record is a damaged tail too */
    whole[len - 3] ^= 0x40;
    CU_ASSERT_EQUAL(copy_bytes(path, whole, len), 0);
    CU_ASSERT_EQUAL(open_store(NULL, NULL), NB_OK);
    got g;
    nb_store_result res;
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 1, 5));
    char want[64];
    snprintf(want, sizeof want, "at offset %ld with nothing valid after it", last);
    CU_ASSERT(sh_logged(&sh, want));
    close_store();
    CU_ASSERT_EQUAL(file_size(path), last);
    free(whole);
}

static void test_middle_damage_refused(void) {
    long last = six_records();
    CU_ASSERT_FATAL(last > 40);
    size_t len;
    unsigned char *whole = read_all(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(whole);
    long rec = (last - 40) / 5; /* five records of the same size */
    long second = 40 + rec;
    whole[second + 20] ^= 0x01; /* inside the second record's body */
    CU_ASSERT_EQUAL(copy_bytes(path, whole, len), 0);
    CU_ASSERT_EQUAL(open_store(NULL, NULL), NB_ERR_IO);
    char want[128];
    snprintf(want, sizeof want, "at offset %ld, and valid records follow", second);
    CU_ASSERT(sh_logged(&sh, want));
    CU_ASSERT(sh_logged(&sh, "nebula-store check --fix"));
    close_store();
    CU_ASSERT_EQUAL(file_size(path), (long)len); /* nothing cut */
    /* a damaged length field is found the same way */
    whole[second + 20] ^= 0x01;
    whole[second + 1] ^= 0x10;
    CU_ASSERT_EQUAL(copy_bytes(path, whole, len), 0);
    CU_ASSERT_EQUAL(open_store(NULL, NULL), NB_ERR_IO);
    CU_ASSERT(sh_logged(&sh, "damaged length field"));
    CU_ASSERT(sh_logged(&sh, want));
    close_store();
    /* not our file at all */
    CU_ASSERT_EQUAL(
        copy_bytes(path, (const unsigned char *)"SQLite format 3\0xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                   44),
        0);
    CU_ASSERT_EQUAL(open_store(NULL, NULL), NB_ERR_IO);
    CU_ASSERT(sh_logged(&sh, "not a store-aof file"));
    close_store();
    free(whole);
}

/* EFBIG for real: RLIMIT_FSIZE lowered (the soft limit, restored after),
 * SIGXFSZ ignored so write() returns the error instead of killing us. */
static void test_file_too_large(void) {
    new_path();
    CU_ASSERT_EQUAL_FATAL(open_store(NULL, NULL), NB_OK);
    for (uint64_t s = 1; s <= 3; s++)
        append("r", s, 0, "fits");
    CU_ASSERT_EQUAL(flush(), NB_OK);
    long good = file_size(path);
    struct rlimit old, low;
    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    low = old;
    low.rlim_cur = (rlim_t)good + 100; /* room for part of the batch only */
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &low), 0);
    for (uint64_t s = 4; s <= 10; s++)
        append("r", s, 0, "does not fit in what is left of the file size limit");
    CU_ASSERT_EQUAL(flush(), NB_ERR_IO);
    CU_ASSERT(sh_logged(&sh, "File too large"));
    CU_ASSERT(sh_logged(&sh, path));
    CU_ASSERT_EQUAL(file_size(path), good); /* no half record left behind */
    got g;
    nb_store_result res;
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 1, 3));
    CU_ASSERT_EQUAL(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    CU_ASSERT_EQUAL(append("r", 11, 0, "after"), NB_OK); /* seq goes on */
    CU_ASSERT_EQUAL(flush(), NB_OK);
    close_store();
    CU_ASSERT_EQUAL_FATAL(open_store(NULL, NULL), NB_OK);
    CU_ASSERT_EQUAL(load("r", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(g.n == 4 && g.seq[3] == 11 && range_is(&g, 1, 3) == 0 && g.seq[2] == 3);
    CU_ASSERT_EQUAL(res.last_seq, 11);
    CU_ASSERT(!sh_logged(&sh, "torn"));
    close_store();
}

/* Compaction runs in slices between batches; every load in between, and
 * after a reopen, returns exactly what retention keeps. */
static void test_compaction_while_appending(void) {
    new_path();
    const char *kv[] = {"retention_messages=10", "compact_min_bytes=8388608", NULL};
    CU_ASSERT_EQUAL_FATAL(open_store(kv, NULL), NB_OK);
    char content[1001];
    memset(content, 'c', 1000);
    content[1000] = '\0';
    const char *rooms[] = {"r0", "r1", "r2", "r3"};
    uint64_t seq[4] = {0};
    int consistent = 1, rounds_during = 0, compactions = 0;
    for (int round = 0; round < 1200; round++) {
        /* appends, a flush and loads while a rewrite is half done */
        if (sh_logged(&sh, "started") && !sh_logged(&sh, "done"))
            rounds_during++;
        if (sh_logged(&sh, "done")) {
            compactions++;
            sh_log_clear(&sh);
        }
        for (int i = 0; i < 20; i++) {
            int r = (round + i) % 4;
            append(rooms[r], ++seq[r], 0, content);
        }
        CU_ASSERT_EQUAL(flush(), NB_OK);
        ev_run(sh.loop, EVRUN_NOWAIT); /* one compaction slice, if one runs */
        for (int r = 0; r < 4 && consistent; r++) {
            got g;
            nb_store_result res;
            if (load(rooms[r], 100, 0, 0, &g, &res) != NB_OK ||
                !range_is(&g, seq[r] > 9 ? seq[r] - 9 : 1, seq[r]) || res.last_seq != seq[r]) {
                fprintf(stderr, "round %d room %s: not the last 10\n", round, rooms[r]);
                consistent = 0;
            }
        }
    }
    for (int i = 0; i < 50; i++)
        ev_run(sh.loop, EVRUN_NOWAIT);
    if (getenv("STORE_TEST_ECHO"))
        fprintf(stderr, "%d compactions, %d rounds during one\n", compactions, rounds_during);
    CU_ASSERT(consistent);
    CU_ASSERT(compactions >= 2);
    CU_ASSERT(rounds_during >= 2); /* a rewrite spanned batches */
    CU_ASSERT(!sh_logged(&sh, "abandoned"));
    close_store();
    CU_ASSERT(file_size(path) < 8388608);
    CU_ASSERT_EQUAL_FATAL(open_store(kv, NULL), NB_OK);
    for (int r = 0; r < 4; r++) {
        got g;
        nb_store_result res;
        CU_ASSERT_EQUAL(load(rooms[r], 100, 0, 0, &g, &res), NB_OK);
        CU_ASSERT(range_is(&g, seq[r] - 9, seq[r]));
        CU_ASSERT_EQUAL(res.last_seq, seq[r]);
    }
    close_store();
}

static void test_compaction_keeps_marks(void) {
    new_path();
    const char *kv[] = {"retention_seconds=60", "compact_min_bytes=4096", NULL};
    CU_ASSERT_EQUAL_FATAL(open_store(kv, NULL), NB_OK);
    int64_t old = sh.host.now_ms() - 3600 * 1000;
    char content[201];
    memset(content, 'o', 200);
    content[200] = '\0';
    for (uint64_t s = 1; s <= 100; s++)
        append("old", s, old, content);
    append("live", 1, 0, "kept");
    CU_ASSERT_EQUAL(flush(), NB_OK);
    for (int i = 0; i < 20; i++)
        ev_run(sh.loop, EVRUN_NOWAIT);
    CU_ASSERT(sh_logged(&sh, "done"));
    close_store();
    CU_ASSERT(file_size(path) < 400);
    CU_ASSERT_EQUAL_FATAL(open_store(kv, NULL), NB_OK);
    got g;
    nb_store_result res;
    CU_ASSERT_EQUAL(load("old", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT_EQUAL(g.n, 0);
    CU_ASSERT_EQUAL(res.last_seq, 100);
    CU_ASSERT_EQUAL(load("live", 100, 0, 0, &g, &res), NB_OK);
    CU_ASSERT(range_is(&g, 1, 1));
    close_store();
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s STORE_AOF_PLUGIN\n", argv[0]);
        return 2;
    }
    plugin_path = argv[1];
    snprintf(dir, sizeof dir, "%s/nebula-aof-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("store-aof", NULL, NULL);
    CU_add_test(s, "round trip, order, rooms", test_round_trip_order_rooms);
    CU_add_test(s, "reopen, epoch, since", test_reopen_epoch_since);
    CU_add_test(s, "retention by count", test_retention_count);
    CU_add_test(s, "retention by age, last seq kept", test_retention_age_last_seq);
    CU_add_test(s, "fsync policies and config errors", test_fsync_policies);
    CU_add_test(s, "folder made, or named when it cannot be", test_folder_made_or_named);
    CU_add_test(s, "torn tail at every offset", test_torn_tail_every_offset);
    CU_add_test(s, "damage in the middle refused", test_middle_damage_refused);
    CU_add_test(s, "file too large (RLIMIT_FSIZE)", test_file_too_large);
    CU_add_test(s, "compaction while appending", test_compaction_while_appending);
    CU_add_test(s, "compaction keeps a room's last seq", test_compaction_keeps_marks);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed() + CU_get_number_of_failures();
    CU_cleanup_registry();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!failed && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return failed ? 1 : 0;
}
