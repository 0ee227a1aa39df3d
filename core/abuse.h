/*
 * abuse.h — the rules that keep one connection from costing the others:
 * the rate limit (a token bucket), the error budget, the idle limit, and
 * the error frames that feed them.
 */
#ifndef NEBULA_CORE_ABUSE_H
#define NEBULA_CORE_ABUSE_H

#include "session.h"

/* An error frame that counts against [limits] max_errors. */
void session_error(nb_session *s, const char *code, const char *reason, const nb_str *room);
/* An error frame that does not count (counted in the metrics only). */
void session_error_frame(nb_session *s, const char *code, const char *reason, const nb_str *room);

/* Token bucket: 1 if a message may pass at now_ms (clock_mono_ms), and
 * takes a token. rate is messages per second (0 = unlimited), burst the
 * bucket size. */
int session_take_token(nb_session *s, uint32_t rate, uint32_t burst, int64_t now_ms);

/* Byte bucket ([limits] bytes_per_second, bytes_burst), refilled like the
 * token bucket. session_take_bytes: 1 if `len` bytes may pass now, and
 * takes them. session_charge_bytes: takes `len` bytes even into debt (what
 * was already sent: a join's replay). session_bytes_owed: 1 while in
 * debt. */
int session_take_bytes(nb_session *s, uint32_t len, int64_t now_ms);
void session_charge_bytes(nb_session *s, uint64_t len, int64_t now_ms);
int session_bytes_owed(nb_session *s, int64_t now_ms);

/* Activity for the idle limit: move s to the head of its worker's list. */
void session_touch(nb_session *s, int64_t now_ms);
#endif
