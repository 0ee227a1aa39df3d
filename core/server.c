/*
 * server.c — bring the process up (plugins, worker, signals), run it, and
 * take it down cleanly.
 *
 * Shutdown (SIGTERM or SIGINT): /readyz turns 503, the transport stops
 * accepting, every client gets close 1001 "server shutting down" after the
 * frames already queued for it, and the loop ends when the last connection
 * is gone or after [server] shutdown_timeout_ms, whichever comes first.
 */
#include "server.h"

#include "buf.h"
#include "host.h"
#include "hub.h"
#include "log.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int create_instance(nb_server *srv, struct nb_plugin_ctx *ctx, nb_loaded_plugin *p,
                           nb_worker *w) {
    ctx->server = srv;
    ctx->worker = w;
    ctx->plugin = p;
    ctx->instance = NULL;
    int32_t rc = p->desc.create(host_table(), ctx, &ctx->instance);
    if (rc != NB_OK || !ctx->instance) {
        log_error("%s: refused: create() failed with code %d (the plugin's own message, if "
                  "any, is above)",
                  p->path, (int)rc);
        return -1;
    }
    return 0;
}

static int load(nb_server *srv, const char *section_key, const char *name, uint32_t kind,
                nb_loaded_plugin *out) {
    char err[1024];
    if (loader_open(srv->settings.plugin_dir, name, kind, out, err, sizeof err) != 0) {
        (void)section_key;
        log_error("%s", err);
        return -1;
    }
    log_info("loaded %s plugin %s %s from %s", loader_kind_name(kind), out->desc.name,
             out->desc.version ? out->desc.version : "", out->path);
    return 0;
}

static void init_metrics(nb_server *srv) {
    nb_server_metrics *m = &srv->m;
    m->connections = metrics_register(NB_METRIC_GAUGE, "nebula_connections",
                                      "WebSocket connections open now");
    m->connections_total = metrics_register(NB_METRIC_COUNTER, "nebula_connections_total",
                                            "WebSocket connections accepted since start");
    m->rooms = metrics_register(NB_METRIC_GAUGE, "nebula_rooms", "rooms with members now");
    m->messages_received = metrics_register(NB_METRIC_COUNTER, "nebula_messages_received_total",
                                            "data messages received from clients");
    m->deliveries = metrics_register(NB_METRIC_COUNTER, "nebula_deliveries_total",
                                     "frames queued to clients");
    m->protocol_errors = metrics_register(NB_METRIC_COUNTER, "nebula_protocol_errors_total",
                                          "error frames sent to clients");
    m->rate_limited = metrics_register(NB_METRIC_COUNTER, "nebula_rate_limited_total",
                                       "messages refused by the rate limiter");
    m->slow_consumers = metrics_register(NB_METRIC_COUNTER, "nebula_slow_consumers_total",
                                         "connections closed for not reading fast enough");
}

int server_init(nb_server *srv, nb_config *cfg, const nb_settings *settings) {
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->settings = *settings;
    int failed = 0;
    init_metrics(srv);
    const nb_settings *st = &srv->settings;

    nb_worker *w = &srv->worker;
    w->server = srv;
    w->index = 0;
    w->loop = EV_DEFAULT;
    w->info = (nb_server_info){
        .struct_size = sizeof(nb_server_info),
        .worker_index = 0,
        .worker_count = 1,
        .listen_port = st->listen_port,
        .listen_host = st->listen_host,
        .web_root = st->web_root[0] ? st->web_root : NULL,
        .node_id = st->node_id,
        .ws_path = "/ws",
    };

    if (strcmp(st->store, "none") != 0)
        config_error(cfg, "plugins", "store",
                     "\"%s\": this version of nebula runs no store plugin yet; set \"none\"",
                     st->store);
    if (strcmp(st->broker, "none") != 0)
        config_error(cfg, "plugins", "broker",
                     "\"%s\": this version of nebula runs no broker plugin yet; set \"none\"",
                     st->broker);

    for (uint32_t i = 0; i < st->n_codecs; i++) {
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(st->codecs[i], st->codecs[j]) == 0)
                config_error(cfg, "plugins", "codecs", "\"%s\" is listed twice", st->codecs[i]);
        nb_codec_slot *slot = &srv->codecs[srv->n_codecs];
        if (load(srv, "codecs", st->codecs[i], NB_KIND_CODEC, &slot->plugin) != 0) {
            failed = 1;
            continue;
        }
        slot->vt = &slot->plugin.vt.codec;
        srv->n_codecs++;
        if (create_instance(srv, &slot->ctx, &slot->plugin, NULL) != 0)
            failed = 1;
        else
            slot->created = 1;
    }
    for (uint32_t i = 0; i < srv->n_codecs; i++)
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(srv->codecs[i].vt->subprotocol, srv->codecs[j].vt->subprotocol) == 0)
                config_error(cfg, "plugins", "codecs", "%s and %s both claim subprotocol %s",
                             srv->codecs[j].plugin.desc.name, srv->codecs[i].plugin.desc.name,
                             srv->codecs[i].vt->subprotocol);

    if (load(srv, "transport", st->transport, NB_KIND_TRANSPORT, &srv->transport) == 0) {
        srv->tvt = &srv->transport.vt.transport;
        if (create_instance(srv, &w->transport_ctx, &srv->transport, w) == 0)
            w->transport_created = 1;
        else
            failed = 1;
    } else {
        failed = 1;
    }

    srv->hub = hub_new(st->shards, st->history_per_room);
    if (!srv->hub) {
        log_error("out of memory creating %u shards", st->shards);
        failed = 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srv->id_epoch = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    return failed ? -1 : 0;
}

static void stop_loop(nb_server *srv) {
    ev_timer_stop(srv->worker.loop, &srv->shutdown_timer);
    ev_break(srv->worker.loop, EVBREAK_ALL);
}

void server_session_gone(nb_server *srv) {
    if (srv->draining && srv->worker.n_sessions == 0)
        stop_loop(srv);
}

static void on_shutdown_timeout(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    nb_server *srv = t->data;
    log_warn("%u connection(s) still open after %u ms; closing them now",
             srv->worker.n_sessions, srv->settings.shutdown_timeout_ms);
    stop_loop(srv);
}

void server_begin_shutdown(nb_server *srv) {
    if (srv->draining)
        return;
    srv->draining = 1;
    nb_worker *w = &srv->worker;
    log_info("shutting down: closing %u connection(s)", w->n_sessions);
    srv->tvt->stop_accepting(w->transport_ctx.instance);
    for (nb_session *s = w->sessions; s; s = s->next)
        session_close(s, 1001, "server shutting down");
    if (w->n_sessions == 0) {
        stop_loop(srv);
        return;
    }
    ev_timer_init(&srv->shutdown_timer, on_shutdown_timeout,
                  srv->settings.shutdown_timeout_ms / 1000.0, 0);
    srv->shutdown_timer.data = srv;
    ev_timer_start(w->loop, &srv->shutdown_timer);
}

static void on_signal(struct ev_loop *loop, ev_signal *sig, int revents) {
    (void)loop;
    (void)revents;
    nb_server *srv = sig->data;
    log_info("received %s", sig->signum == SIGTERM ? "SIGTERM" : "SIGINT");
    server_begin_shutdown(srv);
}

int server_run(nb_server *srv) {
    nb_worker *w = &srv->worker;
    if (srv->tvt->start(w->transport_ctx.instance) != NB_OK) {
        log_error("the transport could not start; see the message above");
        return 1;
    }
    ev_signal_init(&srv->sigterm, on_signal, SIGTERM);
    ev_signal_init(&srv->sigint, on_signal, SIGINT);
    srv->sigterm.data = srv;
    srv->sigint.data = srv;
    ev_signal_start(w->loop, &srv->sigterm);
    ev_signal_start(w->loop, &srv->sigint);
    log_info("nebula %s ready: node %s, %u shard(s), codecs:", NEBULA_VERSION,
             srv->settings.node_id, srv->settings.shards);
    for (uint32_t i = 0; i < srv->n_codecs; i++)
        log_info("  codec %s (%s)%s", srv->codecs[i].plugin.desc.name,
                 srv->codecs[i].vt->subprotocol, i == 0 ? " default" : "");
    ev_run(w->loop, 0);
    ev_signal_stop(w->loop, &srv->sigterm);
    ev_signal_stop(w->loop, &srv->sigint);
    log_info("stopped");
    return 0;
}

void server_free(nb_server *srv) {
    nb_worker *w = &srv->worker;
    /* The transport frees its connections without calling back; the
     * sessions that were still open are freed here. */
    if (w->transport_created)
        srv->transport.desc.destroy(w->transport_ctx.instance);
    while (w->sessions) {
        nb_session *s = w->sessions;
        while (s->n_rooms) {
            nb_session_room *r = &s->rooms[--s->n_rooms];
            room_remove_member(r->room, r->member_idx, s->codec);
        }
        session_free(s);
    }
    hub_free(srv->hub);
    for (uint32_t i = 0; i < srv->n_codecs; i++) {
        if (srv->codecs[i].created)
            srv->codecs[i].plugin.desc.destroy(srv->codecs[i].ctx.instance);
        loader_close(&srv->codecs[i].plugin);
    }
    if (srv->tvt)
        loader_close(&srv->transport);
    metrics_reset();
}

int32_t server_http_request(nb_server *srv, const nb_http_request *req, nb_http_response *resp) {
    const char *text = NULL;
    nb_buf *body = NULL;
    if (strcmp(req->path, "/healthz") == 0) {
        resp->status = 200;
        text = "ok\n";
    } else if (strcmp(req->path, "/readyz") == 0) {
        resp->status = srv->draining ? 503 : 200;
        text = srv->draining ? "shutting down\n" : "ready\n";
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
