/*
 * session_input.h — host->conn_message: one frame from a client.
 */
#ifndef NEBULA_CORE_SESSION_INPUT_H
#define NEBULA_CORE_SESSION_INPUT_H

#include "context.h"

void session_message(struct nb_session *s, uint32_t frame_kind, const uint8_t *data, uint32_t len);
#endif
