/*
 * admin.h — the admin dashboard's feed (docs/OPERATIONS.md, "The admin
 * page"). Off unless [admin] token is set.
 *
 * The page (web/admin/, served by the transport like the chat page) opens
 * a WebSocket to /admin/feed?token=TOKEN. The core accepts it as a session
 * of its own kind: it is not a chat client (not counted in
 * nebula_connected_clients, joins no room, what it sends is ignored), but
 * it lives in its worker's session list like any other, so shutdown closes
 * it with 1001 and the idle limit sees it as active. Once a second each
 * worker with such sessions builds one JSON snapshot (admin_snapshot.h),
 * frames it once and queues it to each of them. GET /admin/snapshot?token=
 * answers the same snapshot once (for scripts, and for the page to tell a
 * wrong token from a network error). A missing token is 401, a wrong one
 * 403; with the dashboard off every /admin path is 404.
 */
#ifndef NEBULA_CORE_ADMIN_H
#define NEBULA_CORE_ADMIN_H

#include "context.h"

/* The feed's WebSocket path. */
#define NB_ADMIN_FEED_PATH "/admin/feed"
/* How often the feed pushes a snapshot. */
#define NB_ADMIN_INTERVAL_MS 1000

/* The HTTP status for this query's token: 0 when it is right, 401 when
 * absent, 403 when wrong, 404 when the dashboard is off. */
uint32_t admin_check_token(const nb_server *srv, const char *query);

/* host->conn_open for NB_ADMIN_FEED_PATH (connection.c). */
int32_t admin_open(nb_worker *w, struct nb_conn *conn, const nb_open_request *req,
                   nb_open_reply *reply);
void admin_established(nb_session *s);
void admin_closed(nb_session *s);

/* Stop the worker's feed timer and free its state (worker_free). */
void admin_worker_free(nb_worker *w);
#endif
