/*
 * endpoints.h — the core's plain HTTP endpoints (host->http_request).
 */
#ifndef NEBULA_CORE_ENDPOINTS_H
#define NEBULA_CORE_ENDPOINTS_H

#include "context.h"

/* NB_OK with resp filled for /healthz, /readyz, /cluster, /metrics; NB_ERR_AGAIN for
 * any other path (the transport may serve a file). */
int32_t endpoints_http_request(nb_server *srv, const nb_http_request *req, nb_http_response *resp);
#endif
