/*
 * log.h — one line per event on stderr: time, level, origin, message.
 * Thread-safe (each line is written with a single write()).
 */
#ifndef NEBULA_CORE_LOG_H
#define NEBULA_CORE_LOG_H

#include <stdarg.h>
#include <stdint.h>

/* Levels as in host.h: 1 error, 2 warn, 3 info, 4 debug. */
void log_set_level(uint32_t level);
uint32_t log_get_level(void);
/* Parse "error", "warn", "info", "debug"; 0 if unknown. */
uint32_t log_level_from_name(const char *name);

void log_msgv(uint32_t level, const char *origin, const char *fmt, va_list ap);
void log_msg(uint32_t level, const char *origin, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(1, "core", __VA_ARGS__)
#define log_warn(...) log_msg(2, "core", __VA_ARGS__)
#define log_info(...) log_msg(3, "core", __VA_ARGS__)
#define log_debug(...) log_msg(4, "core", __VA_ARGS__)
#endif
