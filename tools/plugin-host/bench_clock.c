/*
 * bench_clock.c — see bench_clock.h.
 */
#include "bench_clock.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

double bench_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

double bench_cpu_ms(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_sort(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
}

double bench_pct(const double *v, size_t n, double p) {
    return n ? v[(size_t)(p * (double)(n - 1) + 0.5)] : 0;
}
