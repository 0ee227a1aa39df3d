#include "log.h"

#include "log_impl.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static atomic_uint current_level = 3;
static atomic_uint current_format = NB_LOG_FORMAT_TEXT;

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

void log_set_format(uint32_t format) {
    atomic_store(&current_format, format);
}

int log_format_from_name(const char *name) {
    if (strcmp(name, "text") == 0)
        return NB_LOG_FORMAT_TEXT;
    if (strcmp(name, "json") == 0)
        return NB_LOG_FORMAT_JSON;
    return -1;
}

/* Append s to out[*n..cap) as the inside of a JSON string. */
static void json_escape(char *out, size_t cap, size_t *n, const char *s) {
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p && *n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)*p;
        } else if (*p < 0x20) {
            out[(*n)++] = '\\';
            out[(*n)++] = 'u';
            out[(*n)++] = '0';
            out[(*n)++] = '0';
            out[(*n)++] = hex[*p >> 4];
            out[(*n)++] = hex[*p & 15];
        } else {
            out[(*n)++] = (char)*p; /* UTF-8 passes through */
        }
    }
}

static size_t put(char *out, size_t cap, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t put(char *out, size_t cap, size_t n, const char *fmt, ...) {
    if (n >= cap)
        return n;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out + n, cap - n, fmt, ap);
    va_end(ap);
    if (w < 0)
        return n;
    return n + (size_t)w < cap ? n + (size_t)w : cap - 1;
}

size_t log_format_line(char *out, size_t cap, uint32_t level, const char *origin, const char *msg,
                       uint32_t suppressed, uint32_t window_ms) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[80];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    const char *lname = level_names[level > 4 ? 4 : level];
    char more[96] = "";
    if (suppressed)
        snprintf(more, sizeof more, " (%u more like this in the last %g s)", suppressed,
                 window_ms / 1000.0);
    size_t n = 0;
    cap -= 1; /* room for the newline */
    if (atomic_load(&current_format) == NB_LOG_FORMAT_JSON) {
        /* Strings are cut short of the end so that the object always closes. */
        size_t text_cap = cap - 40;
        n = put(out, cap, n, "{\"ts\":\"%s\",\"level\":\"%s\",\"origin\":\"", ts, lname);
        json_escape(out, text_cap, &n, origin);
        n = put(out, cap, n, "\",\"msg\":\"");
        json_escape(out, text_cap - sizeof more, &n, msg);
        json_escape(out, text_cap, &n, more);
        n = put(out, cap, n, "\"");
        if (suppressed)
            n = put(out, cap, n, ",\"suppressed\":%u", suppressed);
        n = put(out, cap, n, "}");
    } else {
        n = put(out, cap, n, "%s %-5s [%s] %s%s", ts, lname, origin, msg, more);
    }
    out[n++] = '\n';
    return n;
}

void log_msgv(uint32_t level, const char *origin, const char *fmt, va_list ap) {
    if (level > atomic_load(&current_level) || level == 0)
        return;
    if (!log_repeat_admit(fmt, level))
        return;
    char msg[LOG_LINE_MAX];
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
        return;
    log_repeat_note(fmt, origin, msg);
    char line[LOG_LINE_MAX + 256];
    size_t len = log_format_line(line, sizeof line, level, origin, msg, 0, 0);
    log_emit(line, len);
}

void log_msg(uint32_t level, const char *origin, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_msgv(level, origin, fmt, ap);
    va_end(ap);
}
