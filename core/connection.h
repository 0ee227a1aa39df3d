/*
 * connection.h — the host entry points for a connection's life
 * (host->conn_open, conn_established, conn_closed; transport.h gives the
 * order). conn_message is session_input.h's.
 */
#ifndef NEBULA_CORE_CONNECTION_H
#define NEBULA_CORE_CONNECTION_H

#include "context.h"

int32_t session_open(struct nb_plugin_ctx *ctx, struct nb_conn *conn, const nb_open_request *req,
                     nb_open_reply *reply);
void session_established(struct nb_session *s);
void session_closed(struct nb_session *s, uint32_t code);
#endif
