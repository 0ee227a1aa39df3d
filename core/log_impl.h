/*
 * log_impl.h — the parts of logging (log.h) and how they meet:
 *   log.c         levels, the text and JSON line formats, log_msgv
 *   log_queue.c   the bounded queue and the thread that writes stderr
 *   log_repeat.c  the limit on repeats of one format per window
 */
#ifndef NEBULA_CORE_LOG_IMPL_H
#define NEBULA_CORE_LOG_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* The longest line written (longer messages are cut). */
#define LOG_LINE_MAX 2048

/* Format one complete line (with its newline) into out; returns its
 * length. suppressed > 0 adds "(N more like this in the last W s)". */
size_t log_format_line(char *out, size_t cap, uint32_t level, const char *origin, const char *msg,
                       uint32_t suppressed, uint32_t window_ms);

/* Hand a complete line to stderr: queued while the log thread runs,
 * written at once otherwise. */
void log_emit(const char *line, size_t len);

/* The repeat limit (log_repeat.c). log_repeat_admit: may a line of `fmt`
 * be written now? When it may, log_repeat_note keeps its text and origin
 * for the summary. log_repeat_sweep: write the summaries of windows that
 * are over (the log thread, about once a second; all at log_stop). */
void log_repeat_configure(uint32_t window_ms);
int log_repeat_admit(const char *fmt, uint32_t level);
void log_repeat_note(const char *fmt, const char *origin, const char *msg);
void log_repeat_sweep(int all);
#endif
