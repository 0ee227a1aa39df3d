/*
 * log.h — one line per event on stderr: time, level, origin, message, as
 * text or as one JSON object a line ([server] log_format, --log-format).
 *
 * Until log_start() (and after log_stop()) each line is written at once
 * with a single write(). While the server runs, lines go through a bounded
 * in-memory queue that a log thread writes out, so an I/O thread never
 * waits for a slow stderr (a pipe nobody reads, a stalled terminal): when
 * the queue is full a line is dropped and counted, and the count is
 * written as soon as there is room ("N log lines dropped").
 *
 * Repeats are limited too while the server runs: lines of one format (one
 * place in the code, e.g. "closing %s: more than %u errors") beyond
 * NB_LOG_REPEAT_LINES within [server] log_repeat_window_ms are suppressed
 * and counted; once the window is over, one line says how many: "<the last
 * such line> (37 more like this in the last 10 s)". A flood of refused
 * connections, rate limits or protocol errors thus yields a bounded
 * number of lines. Every function is thread-safe.
 */
#ifndef NEBULA_CORE_LOG_H
#define NEBULA_CORE_LOG_H

#include <stdarg.h>
#include <stdint.h>

/* Lines of one format shown per window before they are counted instead. */
#define NB_LOG_REPEAT_LINES 5u

#define NB_LOG_FORMAT_TEXT 0u
#define NB_LOG_FORMAT_JSON 1u

/* Levels as in host.h: 1 error, 2 warn, 3 info, 4 debug. */
void log_set_level(uint32_t level);
uint32_t log_get_level(void);
/* Parse "error", "warn", "info", "debug"; 0 if unknown. */
uint32_t log_level_from_name(const char *name);

void log_set_format(uint32_t format);
/* Parse "text" or "json": NB_LOG_FORMAT_*, or -1 if unknown. */
int log_format_from_name(const char *name);

/* Start the log thread with a queue of queue_bytes; repeat_window_ms 0
 * turns the repeat limit off. 0, or -1 if the thread could not start (the
 * lines are then written directly, as before). */
int log_start(uint32_t queue_bytes, uint32_t repeat_window_ms);
/* Write out what is queued (and the pending repeat counts), stop the
 * thread; later lines are written directly. */
void log_stop(void);
/* Before _exit(): write what the queue holds, from the calling thread, so
 * the last lines (why the process exits) are not lost with it. */
void log_flush_before_exit(void);

void log_msgv(uint32_t level, const char *origin, const char *fmt, va_list ap);
void log_msg(uint32_t level, const char *origin, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(1, "core", __VA_ARGS__)
#define log_warn(...) log_msg(2, "core", __VA_ARGS__)
#define log_info(...) log_msg(3, "core", __VA_ARGS__)
#define log_debug(...) log_msg(4, "core", __VA_ARGS__)
#endif
