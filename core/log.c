#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_uint current_level = 3;

static const char *const level_names[] = {"", "error", "warn", "info", "debug"};

void log_set_level(uint32_t level) {
    atomic_store(&current_level, level);
}

uint32_t log_get_level(void) {
    return atomic_load(&current_level);
}

uint32_t log_level_from_name(const char *name) {
    for (uint32_t i = 1; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return 0;
}

void log_msgv(uint32_t level, const char *origin, const char *fmt, va_list ap) {
    if (level > atomic_load(&current_level) || level == 0)
        return;
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_names[level > 4 ? 4 : level], origin);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* One write per line keeps lines whole when threads log at once. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void log_msg(uint32_t level, const char *origin, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_msgv(level, origin, fmt, ap);
    va_end(ap);
}
