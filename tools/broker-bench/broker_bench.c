/*
 * broker-bench — messages per second through one Redis, broker to broker:
 * two instances of a broker plugin ("node A" and "node B", distinct node
 * ids) in one process, on one loop, against one Redis. Both subscribe to
 * ROOMS fresh rooms; A publishes MESSAGES messages of BYTES bytes round
 * robin over them, keeping at most WINDOW published and not yet delivered
 * on B; B counts its deliveries (A→Redis→B), A its own echoes.
 *
 *   broker-bench PLUGIN.so REDIS_URL [-m MESSAGES] [-b BYTES] [-r ROOMS]
 *                [-w WINDOW] [-c key=value]...
 *
 * -c sets a key of the plugin's section for both nodes (e.g. -c
 * publish_batch=1). Prints messages/s, publish→delivery latency on B (p50,
 * p99, max), the Redis commands the run cost (INFO commandstats: EVALSHA
 * calls, messages per call, Redis's time per message) and Redis's CPU.
 * Checks every room's order on B and on A (consecutive seqs, messages in
 * the order sent, the seq A's completion gave is the one B saw) and exits
 * 1 when a message was lost, failed or out of order. The rooms' keys are
 * deleted at the end.
 */
#include "bench_clock.h"
#include "broker_host.h"
#include "rb.h" /* rb_url_parse, to reach the same Redis for its stats */

#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long arg_num(const char *s, const char *what, long min) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < min) {
        fprintf(stderr, "broker-bench: %s must be a number >= %ld, not \"%s\"\n", what, min, s);
        exit(2);
    }
    return v;
}

/* ---- the run's state ---------------------------------------------------- */

/* One node's view of the order: per room, the last seq and message index. */
typedef struct order {
    uint64_t *seq;
    long *idx;
    long errors;
} order;

static struct {
    broker_host bh;
    bh_node a, b;
    long messages, bytes, rooms, window;
    char (*names)[48];
    char *content;
    double *sent;       /* when message i was published */
    double *lat;        /* publish -> delivery on B, in delivery order */
    uint64_t *seq_done; /* the seq A's completion gave message i */
    uint64_t *seq_seen; /* the seq B delivered message i with */
    long published, delivered, echoed, completed, failed, subscribed, mismatched;
    order on_a, on_b, done_order;
    double first, last;
    int all_subscribed, finished;
} run;

static void check_order(order *o, long room, uint64_t seq, long idx) {
    if (o->seq[room] && (seq != o->seq[room] + 1 || idx <= o->idx[room]))
        o->errors++;
    o->seq[room] = seq;
    o->idx[room] = idx;
}

static void check_finished(void) {
    if (run.delivered + run.failed >= run.messages && run.echoed + run.failed >= run.messages &&
        run.completed >= run.messages)
        run.finished = 1;
}

static void on_published(void *user, int32_t status, uint64_t seq);

/* Publish from A until WINDOW messages are on their way to B. */
static void fill(void) {
    while (run.published < run.messages &&
           run.published - run.delivered - run.failed < run.window) {
        long i = run.published++;
        long r = i % run.rooms;
        char id[24];
        snprintf(id, sizeof id, "%ld", i);
        nb_msg m = {.struct_size = sizeof m, .type = NB_MSG_MESSAGE};
        m.room = (nb_str){run.names[r], (uint32_t)strlen(run.names[r]), 0};
        m.sender = (nb_str){"bench", 5, 0};
        m.content = (nb_str){run.content, (uint32_t)run.bytes, 0};
        m.id = (nb_str){id, (uint32_t)strlen(id), 0};
        run.sent[i] = bench_now_ms();
        if (i == 0)
            run.first = run.sent[i];
        /* the completion's user: the message's slot in sent[] */
        if (run.bh.vt->publish(run.a.inst, &m, on_published, &run.sent[i]) != NB_OK)
            on_published(&run.sent[i], NB_ERR, 0);
    }
}

static void on_published(void *user, int32_t status, uint64_t seq) {
    long i = (long)((const double *)user - run.sent);
    run.completed++;
    if (status != NB_OK) {
        if (!run.failed)
            fprintf(stderr, "broker-bench: a publish failed (code %d)\n", (int)status);
        run.failed++;
    } else {
        run.seq_done[i] = seq;
        check_order(&run.done_order, i % run.rooms, seq, i);
    }
    check_finished();
}

/* The message's index from its id, or -1 (not one of this run's). */
static long index_of(const nb_msg *m) {
    if (m->type != NB_MSG_MESSAGE || !m->id.ptr || m->id.len == 0 || m->id.len > 20)
        return -1;
    char id[24];
    memcpy(id, m->id.ptr, m->id.len);
    id[m->id.len] = '\0';
    char *end;
    long i = strtol(id, &end, 10);
    return *end || i < 0 || i >= run.messages ? -1 : i;
}

static void on_b(bh_node *n, const nb_msg *m) {
    (void)n;
    long i = index_of(m);
    if (i < 0)
        return;
    double t = bench_now_ms();
    run.lat[run.delivered++] = t - run.sent[i];
    run.last = t;
    run.seq_seen[i] = m->seq;
    check_order(&run.on_b, i % run.rooms, m->seq, i);
    check_finished();
    fill();
}

static void on_a(bh_node *n, const nb_msg *m) {
    (void)n;
    long i = index_of(m);
    if (i < 0)
        return;
    run.echoed++;
    check_order(&run.on_a, i % run.rooms, m->seq, i);
    check_finished();
}

static void on_subscribed(void *user, int32_t status, uint64_t seq) {
    (void)user;
    (void)seq;
    if (status != NB_OK)
        fprintf(stderr, "broker-bench: a subscription failed (code %d)\n", (int)status);
    if (++run.subscribed == 2 * run.rooms)
        run.all_subscribed = 1;
}

/* ---- Redis's own figures ------------------------------------------------ */

typedef struct redis_stats {
    long long evalsha, eval, publish;
    long long evalsha_usec, eval_usec;
    double cpu_s;
} redis_stats;

static long long stat_field(const char *info, const char *cmd, const char *field) {
    char key[64];
    snprintf(key, sizeof key, "\ncmdstat_%s:", cmd);
    const char *p = strstr(info, key);
    if (!p)
        return 0;
    const char *eol = strchr(p + 1, '\n');
    const char *f = strstr(p, field);
    return f && (!eol || f < eol) ? atoll(f + strlen(field)) : 0;
}

static double info_double(const char *info, const char *key) {
    const char *p = strstr(info, key);
    return p ? atof(p + strlen(key)) : 0;
}

static int read_stats(redisContext *c, redis_stats *s) {
    memset(s, 0, sizeof *s);
    redisReply *r = redisCommand(c, "INFO commandstats");
    redisReply *cpu = r ? redisCommand(c, "INFO cpu") : NULL;
    int ok = r && r->type == REDIS_REPLY_STRING && cpu && cpu->type == REDIS_REPLY_STRING;
    if (ok) {
        s->evalsha = stat_field(r->str, "evalsha", "calls=");
        s->evalsha_usec = stat_field(r->str, "evalsha", "usec=");
        s->eval = stat_field(r->str, "eval", "calls=");
        s->eval_usec = stat_field(r->str, "eval", "usec=");
        s->publish = stat_field(r->str, "publish", "calls=");
        s->cpu_s = info_double(cpu->str, "used_cpu_sys:") + info_double(cpu->str, "used_cpu_user:");
    }
    freeReplyObject(r);
    freeReplyObject(cpu);
    return ok ? 0 : -1;
}

static redisContext *stats_connect(const char *url) {
    rb_url u;
    const char *why = NULL;
    if (rb_url_parse(url, &u, &why) < 0) {
        fprintf(stderr, "broker-bench: %s: %s\n", url, why);
        return NULL;
    }
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(u.host, u.port, tv);
    if (!c || c->err) {
        fprintf(stderr, "broker-bench: cannot reach %s:%d: %s\n", u.host, u.port,
                c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisReply *r = NULL;
    if (u.password[0])
        r = u.user[0] ? redisCommand(c, "AUTH %s %s", u.user, u.password)
                      : redisCommand(c, "AUTH %s", u.password);
    freeReplyObject(r);
    r = u.db ? redisCommand(c, "SELECT %d", u.db) : NULL;
    freeReplyObject(r);
    return c;
}

/* ---- main --------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: broker-bench PLUGIN.so REDIS_URL [-m MESSAGES] [-b BYTES] [-r ROOMS]\n"
            "                    [-w WINDOW] [-c key=value]...\n"
            "  two broker instances (node A, node B) on one Redis: A publishes MESSAGES\n"
            "  (default 100000) of BYTES bytes (100) over ROOMS rooms (10), at most WINDOW\n"
            "  (1000) not yet delivered on B; -c sets a key of the plugin's section\n");
}

static int set_key(const char *kv) {
    char key[64];
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key) {
        fprintf(stderr, "broker-bench: -c wants key=value, not \"%s\"\n", kv);
        return -1;
    }
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    return bh_set(&run.bh, key, eq + 1);
}

static int parse_args(int argc, char **argv) {
    run.messages = 100000;
    run.bytes = 100;
    run.rooms = 10;
    run.window = 1000;
    /* beats would add script calls to the counts: one a minute is enough */
    bh_set(&run.bh, "heartbeat_ms", "60000");
    bh_set(&run.bh, "node_ttl_ms", "120000");
    bh_set(&run.bh, "url", argv[2]);
    for (int i = 3; i < argc; i++) {
        const char *o = argv[i];
        if (i + 1 >= argc || o[0] != '-' || !o[1] || o[2]) {
            usage();
            return -1;
        }
        const char *v = argv[++i];
        switch (o[1]) {
        case 'm':
            run.messages = arg_num(v, "MESSAGES", 1);
            break;
        case 'b':
            run.bytes = arg_num(v, "BYTES", 1);
            break;
        case 'r':
            run.rooms = arg_num(v, "ROOMS", 1);
            break;
        case 'w':
            run.window = arg_num(v, "WINDOW", 1);
            break;
        case 'c':
            if (set_key(v) != 0)
                return -1;
            break;
        default:
            usage();
            return -1;
        }
    }
    return 0;
}

static int alloc_run(void) {
    size_t m = (size_t)run.messages, r = (size_t)run.rooms;
    run.names = calloc(r, sizeof *run.names);
    run.content = malloc((size_t)run.bytes);
    run.sent = calloc(m, sizeof *run.sent);
    run.lat = calloc(m, sizeof *run.lat);
    run.seq_done = calloc(m, sizeof *run.seq_done);
    run.seq_seen = calloc(m, sizeof *run.seq_seen);
    order *os[3] = {&run.on_a, &run.on_b, &run.done_order};
    int ok = run.names && run.content && run.sent && run.lat && run.seq_done && run.seq_seen;
    for (int k = 0; k < 3; k++) {
        os[k]->seq = calloc(r, sizeof *os[k]->seq);
        os[k]->idx = calloc(r, sizeof *os[k]->idx);
        ok = ok && os[k]->seq && os[k]->idx;
    }
    if (!ok)
        return -1;
    memset(run.content, 'x', (size_t)run.bytes);
    for (long i = 0; i < run.rooms; i++)
        snprintf(run.names[i], sizeof run.names[i], "bench-%lld-%d-%ld",
                 (long long)time(NULL) % 1000000, (int)getpid(), i);
    return 0;
}

static void free_run(void) {
    order *os[3] = {&run.on_a, &run.on_b, &run.done_order};
    for (int k = 0; k < 3; k++) {
        free(os[k]->seq);
        free(os[k]->idx);
    }
    free(run.names);
    free(run.content);
    free(run.sent);
    free(run.lat);
    free(run.seq_done);
    free(run.seq_seen);
}

static void delete_rooms(redisContext *c) {
    static const char *const kinds[] = {"seq", "log", "epoch", "pv", "users"};
    for (long i = 0; i < run.rooms; i++)
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            freeReplyObject(redisCommand(c, "DEL nebula:%s:%s", kinds[k], run.names[i]));
}

static void report(const redis_stats *s0, const redis_stats *s1, double cpu) {
    double secs = (run.last - run.first) / 1e3;
    long n = run.delivered;
    bench_sort(run.lat, (size_t)n);
    long long calls = (s1->evalsha - s0->evalsha) + (s1->eval - s0->eval);
    long long usec = (s1->evalsha_usec - s0->evalsha_usec) + (s1->eval_usec - s0->eval_usec);
    printf("%s: %ld messages of %ld B over %ld rooms, window %ld: %.3f s, %.0f messages/s "
           "A->Redis->B\n",
           run.bh.desc->name, run.messages, run.bytes, run.rooms, run.window, secs,
           secs > 0 ? (double)n / secs : 0);
    printf("  delivered on B %ld, echoed on A %ld, failed %ld, out of order %ld, seq mismatches "
           "%ld\n",
           run.delivered, run.echoed, run.failed,
           run.on_a.errors + run.on_b.errors + run.done_order.errors, run.mismatched);
    printf("  publish->delivery ms on B: p50 %.3f p99 %.3f max %.3f\n",
           bench_pct(run.lat, (size_t)n, 0.5), bench_pct(run.lat, (size_t)n, 0.99),
           n ? run.lat[n - 1] : 0);
    printf("  redis: %lld script calls (%.1f messages per call), %.2f us per message in scripts, "
           "%lld PUBLISH; redis cpu %.3f s (%.2f us per message)\n",
           calls, calls ? (double)run.messages / (double)calls : 0,
           run.messages ? (double)usec / (double)run.messages : 0, s1->publish - s0->publish,
           s1->cpu_s - s0->cpu_s,
           run.messages ? (s1->cpu_s - s0->cpu_s) * 1e6 / (double)run.messages : 0);
    printf("  bench process cpu %.3f s (both nodes)\n", cpu / 1e3);
}

int main(int argc, char **argv) {
    if (argc < 3 || !strcmp(argv[1], "--help")) {
        usage();
        return 2;
    }
    char err[512];
    if (bh_open(&run.bh, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "broker-bench: %s\n", err);
        bh_close(&run.bh);
        return 1;
    }
    if (parse_args(argc, argv) != 0 || alloc_run() != 0) {
        bh_close(&run.bh);
        free_run();
        return 2;
    }
    redisContext *stats = stats_connect(argv[2]);
    char id_a[48], id_b[48];
    snprintf(id_a, sizeof id_a, "bench-a-%d", (int)getpid());
    snprintf(id_b, sizeof id_b, "bench-b-%d", (int)getpid());
    int rc = 1;
    if (!stats)
        goto out;
    if (bh_node_start(&run.bh, &run.a, id_a, on_a, NULL) != NB_OK ||
        bh_node_start(&run.bh, &run.b, id_b, on_b, NULL) != NB_OK) {
        fprintf(stderr, "broker-bench: the plugin refused to start (see above)\n");
        goto out;
    }
    int both_up = 0, never = 0;
    for (int k = 0; k < 200 && !both_up; k++) {
        bh_run_until(&run.bh, &never, 0.05); /* turn the loop for 50 ms */
        both_up = run.a.up && run.b.up;
    }
    if (!both_up) {
        fprintf(stderr, "broker-bench: the nodes did not reach Redis within 10 s\n");
        goto out;
    }
    for (long i = 0; i < run.rooms; i++) {
        uint32_t len = (uint32_t)strlen(run.names[i]);
        run.bh.vt->subscribe(run.a.inst, run.names[i], len, on_subscribed, NULL);
        run.bh.vt->subscribe(run.b.inst, run.names[i], len, on_subscribed, NULL);
    }
    if (bh_run_until(&run.bh, &run.all_subscribed, 10) != 0) {
        fprintf(stderr, "broker-bench: subscriptions not confirmed within 10 s\n");
        goto out;
    }
    redis_stats s0, s1;
    if (read_stats(stats, &s0) != 0) {
        fprintf(stderr, "broker-bench: INFO failed on the stats connection\n");
        goto out;
    }
    double c0 = bench_cpu_ms();
    fill();
    /* generous: a sanitizer build on a busy machine is slow */
    double limit = 30 + (double)run.messages / 2000.0;
    if (bh_run_until(&run.bh, &run.finished, limit) != 0)
        fprintf(stderr, "broker-bench: not finished after %.0f s\n", limit);
    double cpu = bench_cpu_ms() - c0;
    read_stats(stats, &s1);
    for (long i = 0; i < run.messages; i++)
        if (run.seq_done[i] && run.seq_seen[i] && run.seq_done[i] != run.seq_seen[i])
            run.mismatched++;
    report(&s0, &s1, cpu);
    rc = run.finished && !run.failed && run.delivered == run.messages &&
                 run.echoed == run.messages && !run.mismatched && !run.on_a.errors &&
                 !run.on_b.errors && !run.done_order.errors
             ? 0
             : 1;
out:
    bh_node_stop(&run.a);
    bh_node_stop(&run.b);
    if (stats) {
        delete_rooms(stats);
        redisFree(stats);
    }
    bh_close(&run.bh);
    free_run();
    return rc;
}
