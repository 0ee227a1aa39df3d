/*
 * store-bench — how many records a store plugin sustains alone, driven
 * through its vtable the way the core's writer thread drives it: batches
 * of appends, one flush each, the writer loop turned between batches
 * (so timers and background work such as compaction run as in the server).
 *
 *   store-bench PLUGIN.so CONFIG RECORD_BYTES BATCH COUNT [ROOMS]
 *
 * CONFIG holds the plugin's section ([store-aof], [store-sqlite], ...);
 * records are spread over ROOMS rooms (default 100). Prints the time of
 * start(), records/s, the flush latency (p50, p99, max) and the time of a
 * whole batch cycle (appends + flush + a loop turn). COUNT 0 only times
 * start() and stop(), e.g. on a large existing file.
 */
#include "bench_clock.h"
#include "store_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long arg_num(const char *s, const char *what, long min) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < min) {
        fprintf(stderr, "store-bench: %s must be a number >= %ld, not \"%s\"\n", what, min, s);
        exit(2);
    }
    return v;
}

static int32_t ignore(void *user, const nb_msg *m) {
    return NB_OK;
}

int main(int argc, char **argv) {
    if (argc < 6 || argc > 7 || !strcmp(argv[1], "--help")) {
        fprintf(stderr,
                "usage: store-bench PLUGIN.so CONFIG RECORD_BYTES BATCH COUNT [ROOMS]\n"
                "  drives a store plugin alone: COUNT records of about RECORD_BYTES bytes of\n"
                "  content, BATCH appends per flush, over ROOMS rooms (default 100); the\n"
                "  plugin reads its keys from the section of CONFIG named after it\n");
        return 2;
    }
    long rec = arg_num(argv[3], "RECORD_BYTES", 1), batch = arg_num(argv[4], "BATCH", 1);
    long count = arg_num(argv[5], "COUNT", 0),
         rooms = argc > 6 ? arg_num(argv[6], "ROOMS", 1) : 100;
    static store_host sh;
    char err[512];
    if (sh_open(&sh, argv[1], err, sizeof err) != 0 ||
        sh_read_conf(&sh, argv[2], sh.desc->name, err, sizeof err) != 0) {
        fprintf(stderr, "store-bench: %s\n", err);
        return 1;
    }
    sh.echo = 1;
    if (sh_create(&sh) != NB_OK) {
        fprintf(stderr, "store-bench: create() failed (see above)\n");
        return 1;
    }
    uint32_t flags = 0;
    double t0 = bench_now_ms(), c0 = bench_cpu_ms();
    if (sh.vt->start(sh.inst, &flags) != NB_OK) {
        fprintf(stderr, "store-bench: start() failed (see above)\n");
        sh_close(&sh);
        return 1;
    }
    double start_ms = bench_now_ms() - t0, start_cpu = bench_cpu_ms() - c0;
    /* continue each room's numbering after what the store holds */
    uint64_t *seq = calloc((size_t)rooms, sizeof *seq);
    char(*names)[32] = calloc((size_t)rooms, sizeof *names);
    char *content = malloc((size_t)rec);
    size_t n_batches = (size_t)((count + batch - 1) / batch);
    double *flush_ms = calloc(n_batches + 1, sizeof *flush_ms);
    double *cycle_ms = calloc(n_batches + 1, sizeof *cycle_ms);
    if (!seq || !names || !content || !flush_ms || !cycle_ms) {
        fprintf(stderr, "store-bench: out of memory\n");
        exit(1);
    }
    memset(content, 'x', (size_t)rec);
    for (long r = 0; r < rooms; r++) {
        snprintf(names[r], sizeof names[r], "bench-%ld", r);
        nb_store_query q = {.struct_size = sizeof q,
                            .max = 0,
                            .room = names[r],
                            .room_len = (uint32_t)strlen(names[r])};
        nb_store_result res = {.struct_size = sizeof res};
        if (sh.vt->load(sh.inst, &q, &res, ignore, NULL) == NB_OK)
            seq[r] = res.last_seq;
    }
    double begin = bench_now_ms(), begin_cpu = bench_cpu_ms();
    long done = 0, failures = 0;
    size_t b = 0;
    while (done < count) {
        double b0 = bench_now_ms();
        for (long i = 0; i < batch && done < count; i++, done++) {
            long r = done % rooms;
            char id[32];
            snprintf(id, sizeof id, "b%ld", done);
            nb_msg m = {.struct_size = sizeof m, .type = NB_MSG_MESSAGE};
            m.room = (nb_str){names[r], (uint32_t)strlen(names[r]), 0};
            m.id = (nb_str){id, (uint32_t)strlen(id), 0};
            m.sender = (nb_str){"bench", 5, 0};
            m.content = (nb_str){content, (uint32_t)rec, 0};
            m.ts = sh.host.now_ms();
            m.seq = ++seq[r];
            if (sh.vt->append(sh.inst, &m) != NB_OK)
                failures++;
        }
        uint32_t durable = 0;
        double f0 = bench_now_ms();
        if (sh.vt->flush(sh.inst, &durable) != NB_OK)
            failures++;
        flush_ms[b] = bench_now_ms() - f0;
        ev_run(sh.loop, EVRUN_NOWAIT);
        cycle_ms[b++] = bench_now_ms() - b0;
    }
    double total = bench_now_ms() - begin, total_cpu = bench_cpu_ms() - begin_cpu;
    double s0 = bench_now_ms();
    sh.vt->stop(sh.inst);
    double stop_ms = bench_now_ms() - s0;
    bench_sort(flush_ms, b);
    bench_sort(cycle_ms, b);
    printf("%s: start %.1f ms (cpu %.1f ms), stop %.1f ms\n", sh.desc->name, start_ms, start_cpu,
           stop_ms);
    if (count)
        printf("%s: %ld records of %ld B in batches of %ld over %ld rooms: %.3f s, %.0f "
               "records/s (cpu %.3f s), %ld failures\n"
               "  flush ms: p50 %.3f p99 %.3f max %.3f; batch cycle ms: p50 %.3f p99 %.3f max "
               "%.3f\n",
               sh.desc->name, count, rec, batch, rooms, total / 1e3, (double)count / (total / 1e3),
               total_cpu / 1e3, failures, bench_pct(flush_ms, b, 0.5), bench_pct(flush_ms, b, 0.99),
               b ? flush_ms[b - 1] : 0, bench_pct(cycle_ms, b, 0.5), bench_pct(cycle_ms, b, 0.99),
               b ? cycle_ms[b - 1] : 0);
    sh_close(&sh);
    free(seq);
    free(names);
    free(content);
    free(flush_ms);
    free(cycle_ms);
    return failures ? 1 : 0;
}
