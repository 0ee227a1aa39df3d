/*
 * endpoints.c — the core's answers to plain HTTP requests: /healthz,
 * /readyz (with the store's and the broker's state), /cluster (the live
 * nodes), /metrics.
 */
#include "endpoints.h"

#include "buf.h"
#include "cluster.h"

#include <stdio.h>
#include <string.h>

int32_t endpoints_http_request(nb_server *srv, const nb_http_request *req, nb_http_response *resp) {
    const char *text = NULL;
    nb_buf *body = NULL;
    if (strcmp(req->path, "/healthz") == 0) {
        resp->status = 200;
        text = "ok\n";
    } else if (strcmp(req->path, "/readyz") == 0) {
        /* 503 only while shutting down: a node whose store or broker is
         * down still serves its local members, and says so here. */
        int draining = atomic_load(&srv->draining);
        resp->status = draining ? 503 : 200;
        char line[160];
        snprintf(line, sizeof line, "%s\n%s%s%s", draining ? "shutting down" : "ready",
                 !srv->writer                  ? ""
                 : atomic_load(&srv->store_up) ? "store: up\n"
                                               : "store: down\n",
                 !srv->broker             ? ""
                 : context_broker_up(srv) ? "broker: up\n"
                                          : "broker: down\n",
                 "");
        body = buf_new(0, (uint32_t)strlen(line));
        if (!body)
            return NB_ERR_NOMEM;
        buf_append(&body, line, (uint32_t)strlen(line));
        resp->content_type = "text/plain; charset=utf-8";
        resp->body = body;
        return NB_OK;
    } else if (strcmp(req->path, "/cluster") == 0) {
        /* The live nodes with their connections and rooms (cluster.c);
         * without a broker, this node alone. */
        resp->status = 200;
        body = cluster_render(srv);
        if (!body)
            return NB_ERR_NOMEM;
        resp->content_type = "application/json";
        resp->body = body;
        return NB_OK;
    } else if (strcmp(req->path, "/metrics") == 0) {
        resp->status = 200;
        body = metrics_render();
        if (!body)
            return NB_ERR_NOMEM;
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
        resp->body = body;
        return NB_OK;
    } else {
        return NB_ERR_AGAIN;
    }
    body = buf_new(0, (uint32_t)strlen(text));
    if (!body)
        return NB_ERR_NOMEM;
    buf_append(&body, text, (uint32_t)strlen(text));
    resp->content_type = "text/plain; charset=utf-8";
    resp->body = body;
    return NB_OK;
}
