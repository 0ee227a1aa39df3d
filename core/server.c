/*
 * server.c — bring the process up (plugins, workers, signals), run it, and
 * take it down cleanly.
 *
 * Shutdown (SIGTERM or SIGINT, caught on the main loop): /readyz turns 503,
 * every worker stops accepting and closes its clients with 1001 "server
 * shutting down" after the frames already queued for them; the main loop
 * ends when every worker reports its last connection gone, or after
 * [server] shutdown_timeout_ms, whichever comes first. Then the workers'
 * loops are stopped and their threads joined before anything is freed.
 */
#include "server.h"

#include "brokerhost.h"
#include "buf.h"
#include "clock.h"
#include "cluster.h"
#include "host.h"
#include "hub.h"
#include "log.h"
#include "session.h"
#include "worker.h"
#include "writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int create_instance(nb_server *srv, struct nb_plugin_ctx *ctx, nb_loaded_plugin *p,
                           nb_worker *w) {
    ctx->server = srv;
    ctx->worker = w;
    ctx->plugin = p;
    ctx->instance = NULL;
    int32_t rc = p->desc.create(host_table(), ctx, &ctx->instance);
    if (rc != NB_OK || !ctx->instance) {
        srv->plugin_failures++;
        log_error("%s: refused: create() failed with code %d (the plugin logs its reason, "
                  "or reports it with the config's mistakes)",
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
        srv->plugin_failures++;
        return -1;
    }
    log_info("loaded %s plugin %s %s from %s", loader_kind_name(kind), out->desc.name,
             out->desc.version ? out->desc.version : "", out->path);
    return 0;
}

static void init_metrics(nb_server *srv) {
    nb_server_metrics *m = &srv->m;
    m->connections =
        metrics_register(NB_METRIC_GAUGE, "nebula_connections", "WebSocket connections open now");
    m->connections_total = metrics_register(NB_METRIC_COUNTER, "nebula_connections_total",
                                            "WebSocket connections accepted since start");
    m->rooms = metrics_register(NB_METRIC_GAUGE, "nebula_rooms", "rooms with members now");
    m->messages_received = metrics_register(NB_METRIC_COUNTER, "nebula_messages_received_total",
                                            "data messages received from clients");
    m->deliveries =
        metrics_register(NB_METRIC_COUNTER, "nebula_deliveries_total", "frames queued to clients");
    m->protocol_errors = metrics_register(NB_METRIC_COUNTER, "nebula_protocol_errors_total",
                                          "error frames sent to clients");
    m->rate_limited = metrics_register(NB_METRIC_COUNTER, "nebula_rate_limited_total",
                                       "messages refused by the rate limiter");
    m->slow_consumers = metrics_register(NB_METRIC_COUNTER, "nebula_slow_consumers_total",
                                         "connections closed for not reading fast enough");
    m->idle_timeouts = metrics_register(NB_METRIC_COUNTER, "nebula_idle_timeouts_total",
                                        "connections closed with 4408: no message within "
                                        "idle_timeout_ms");
    m->mailbox_refused =
        metrics_register(NB_METRIC_COUNTER, "nebula_mailbox_refused_total",
                         "events a full mailbox or room backlog refused (each answered: an "
                         "error to the sender, or its members closed with 4000)");
}

/* Store and broker metrics exist only with a store or a broker. */
static void init_plugin_metrics(nb_server *srv) {
    nb_server_metrics *m = &srv->m;
    if (srv->writer) {
        m->store_up = metrics_register(NB_METRIC_GAUGE, "nebula_store_up",
                                       "1 while the store's flushes succeed");
        m->store_appends = metrics_register(NB_METRIC_COUNTER, "nebula_store_appends_total",
                                            "messages handed to the store");
        m->store_flushes = metrics_register(NB_METRIC_COUNTER, "nebula_store_flushes_total",
                                            "batches flushed (group commits)");
        m->store_failures = metrics_register(NB_METRIC_COUNTER, "nebula_store_failures_total",
                                             "failed store appends, flushes and loads");
    }
    if (srv->broker) {
        m->broker_up = metrics_register(NB_METRIC_GAUGE, "nebula_broker_up",
                                        "1 while the broker reaches its bus");
        m->broker_publishes = metrics_register(NB_METRIC_COUNTER, "nebula_broker_publishes_total",
                                               "messages the broker published");
        m->broker_failures = metrics_register(NB_METRIC_COUNTER, "nebula_broker_failures_total",
                                              "publishes the broker could not make");
        m->cluster_nodes = metrics_register(NB_METRIC_GAUGE, "nebula_cluster_nodes",
                                            "other nodes the broker reports alive");
    }
}

int server_init(nb_server *srv, nb_config *cfg, const nb_settings *settings) {
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->settings = *settings;
    int failed = 0;
    init_metrics(srv);
    const nb_settings *st = &srv->settings;

    srv->main_loop = EV_DEFAULT;
    atomic_init(&srv->draining, 0);
    atomic_init(&srv->drained_workers, 0);
    atomic_init(&srv->next_id, 0);
    srv->n_workers = st->io_threads;
    srv->workers = calloc(srv->n_workers, sizeof *srv->workers);
    if (!srv->workers) {
        log_error("out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < srv->n_workers; i++) {
        nb_worker *w = &srv->workers[i];
        if (worker_init(w, srv, i) != 0) {
            log_error("cannot create the event loop of I/O thread %u", i);
            return -1;
        }
        w->info = (nb_server_info){
            .struct_size = sizeof(nb_server_info),
            .worker_index = i,
            .worker_count = srv->n_workers,
            .listen_port = st->listen_port,
            .listen_host = st->listen_host,
            .web_root = st->web_root[0] ? st->web_root : NULL,
            .node_id = st->node_id,
            .ws_path = "/ws",
            .max_message_bytes = st->max_message_bytes,
        };
    }

    if (strcmp(st->store, "none") != 0) {
        srv->plugin_failures += !(srv->writer = writer_new(srv, st->store, host_table()));
        failed |= !srv->writer;
    }
    if (strcmp(st->broker, "none") != 0) {
        srv->plugin_failures += !(srv->broker = brokerhost_new(srv, st->broker, host_table()));
        failed |= !srv->broker;
    }
    init_plugin_metrics(srv);

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
        /* One instance per I/O thread; a failing create stops at the first. */
        for (uint32_t i = 0; i < srv->n_workers && !failed; i++) {
            nb_worker *w = &srv->workers[i];
            if (create_instance(srv, &w->transport_ctx, &srv->transport, w) == 0)
                w->transport_created = 1;
            else
                failed = 1;
        }
    } else {
        failed = 1;
    }

    srv->hub = hub_new(st->shards, st->history_per_room, srv->n_workers);
    if (!srv->hub) {
        log_error("out of memory creating %u shards", st->shards);
        failed = 1;
    }
    srv->id_epoch = (uint64_t)clock_now_ms();
    snprintf(srv->epoch, sizeof srv->epoch, "%" PRIx64, srv->id_epoch);
    return failed ? -1 : 0;
}

uint32_t server_plugin_failures(const nb_server *srv) {
    return srv->plugin_failures;
}

static void stop_main_loop(nb_server *srv) {
    ev_timer_stop(srv->main_loop, &srv->shutdown_timer);
    ev_break(srv->main_loop, EVBREAK_ALL);
}

static void on_main_wake(struct ev_loop *loop, ev_async *a, int revents) {
    (void)loop;
    (void)revents;
    nb_server *srv = a->data;
    if (atomic_load(&srv->drained_workers) >= srv->n_workers)
        stop_main_loop(srv);
}

static void on_shutdown_timeout(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    nb_server *srv = t->data;
    log_warn("connections still open after %u ms; closing them now",
             srv->settings.shutdown_timeout_ms);
    stop_main_loop(srv);
}

void server_begin_shutdown(nb_server *srv) {
    if (atomic_exchange(&srv->draining, 1))
        return;
    log_info("shutting down: closing every connection with 1001");
    ev_timer_init(&srv->shutdown_timer, on_shutdown_timeout,
                  srv->settings.shutdown_timeout_ms / 1000.0, 0);
    srv->shutdown_timer.data = srv;
    ev_timer_start(srv->main_loop, &srv->shutdown_timer);
    for (uint32_t i = 0; i < srv->n_workers; i++)
        worker_request_shutdown(&srv->workers[i]);
}

static void on_signal(struct ev_loop *loop, ev_signal *sig, int revents) {
    (void)loop;
    (void)revents;
    nb_server *srv = sig->data;
    log_info("received %s", sig->signum == SIGTERM ? "SIGTERM" : "SIGINT");
    server_begin_shutdown(srv);
}

int server_run(nb_server *srv) {
    /* The store opens its data before anyone can send; its policy decides
     * whether deliveries wait for the disk. */
    if (srv->writer) {
        if (writer_start(srv->writer) != 0)
            return 1;
        srv->durable = (writer_flags(srv->writer) & NB_STORE_F_ACK_AFTER_FLUSH) != 0;
    }
    if (srv->broker && brokerhost_start(srv->broker) != 0) {
        writer_stop(srv->writer);
        return 1;
    }
    /* Listen before any thread runs, so a taken port fails the start. */
    for (uint32_t i = 0; i < srv->n_workers; i++) {
        nb_worker *w = &srv->workers[i];
        if (srv->tvt->start(w->transport_ctx.instance) != NB_OK) {
            log_error("the transport could not start; see the message above");
            brokerhost_stop(srv->broker);
            writer_stop(srv->writer);
            return 1;
        }
    }
    struct ev_loop *loop = srv->main_loop;
    ev_signal_init(&srv->sigterm, on_signal, SIGTERM);
    ev_signal_init(&srv->sigint, on_signal, SIGINT);
    srv->sigterm.data = srv;
    srv->sigint.data = srv;
    ev_signal_start(loop, &srv->sigterm);
    ev_signal_start(loop, &srv->sigint);
    ev_async_init(&srv->main_wake, on_main_wake);
    srv->main_wake.data = srv;
    ev_async_start(loop, &srv->main_wake);
    int rc = 0;
    for (uint32_t i = 0; i < srv->n_workers; i++)
        if (worker_start_thread(&srv->workers[i]) != 0) {
            log_error("cannot start I/O thread %u", i);
            rc = 1;
            break;
        }
    if (rc == 0) {
        log_info("nebula %s ready: node %s, %u I/O thread(s), %u shard(s)", NEBULA_VERSION,
                 srv->settings.node_id, srv->n_workers, srv->settings.shards);
        for (uint32_t i = 0; i < srv->n_codecs; i++)
            log_info("codec %s (%s)%s", srv->codecs[i].plugin.desc.name,
                     srv->codecs[i].vt->subprotocol, i == 0 ? ", the default" : "");
        ev_run(loop, 0);
    }
    /* The broker leaves the cluster while the main loop can still run its
     * last callbacks; then the workers stop; then the writer flushes what
     * they handed it and stops the store. */
    brokerhost_stop(srv->broker);
    for (uint32_t i = 0; i < srv->n_workers; i++)
        worker_stop_and_join(&srv->workers[i]);
    writer_stop(srv->writer);
    ev_async_stop(loop, &srv->main_wake);
    ev_signal_stop(loop, &srv->sigterm);
    ev_signal_stop(loop, &srv->sigint);
    ev_timer_stop(loop, &srv->shutdown_timer);
    log_info("stopped");
    return rc;
}

void server_free(nb_server *srv) {
    /* Threads are joined. Each transport frees its connections without
     * calling back; the sessions still open are freed here, then the
     * queued deliveries, then the rooms. */
    for (uint32_t i = 0; srv->workers && i < srv->n_workers; i++) {
        nb_worker *w = &srv->workers[i];
        if (w->transport_created)
            srv->transport.desc.destroy(w->transport_ctx.instance);
        while (w->sessions)
            session_free(w->sessions);
    }
    writer_free(srv->writer);
    brokerhost_free(srv->broker);
    for (uint32_t i = 0; srv->workers && i < srv->n_workers; i++)
        worker_free(&srv->workers[i]);
    free(srv->workers);
    hub_free(srv->hub);
    for (uint32_t i = 0; i < srv->n_codecs; i++) {
        if (srv->codecs[i].created)
            srv->codecs[i].plugin.desc.destroy(srv->codecs[i].ctx.instance);
        loader_close(&srv->codecs[i].plugin);
    }
    if (srv->tvt)
        loader_close(&srv->transport);
    metrics_reset();
    cluster_reset();
    buf_pool_drain();
}
