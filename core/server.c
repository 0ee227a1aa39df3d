/*
 * server.c — bring the process up (plugins, workers, signals), run it, and
 * take it down cleanly.
 *
 * Shutdown (SIGTERM or SIGINT, caught on the main loop): /readyz turns
 * 503, no new message is taken, the store flushes what was, then every
 * client is closed after the frames queued for it (the steps are told
 * above advance_shutdown). Then the workers' loops are stopped and their
 * threads joined before anything is freed.
 */
#include "server.h"

#include "brokerhost.h"
#include "buf.h"
#include "clock.h"
#include "cluster.h"
#include "core_metrics.h"
#include "host.h"
#include "hub.h"
#include "log.h"
#include "plugin_slot.h"
#include "session.h"
#include "worker.h"
#include "writer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int server_init(nb_server *srv, nb_config *cfg, const nb_settings *settings) {
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->settings = *settings;
    int failed = 0;
    core_metrics_init(srv);
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
        srv->writer = writer_new(srv, st->store, host_table());
        failed |= !srv->writer;
    }
    if (strcmp(st->broker, "none") != 0) {
        srv->broker = brokerhost_new(srv, st->broker, host_table());
        failed |= !srv->broker;
    }
    core_metrics_init_plugins(srv);

    for (uint32_t i = 0; i < st->n_codecs; i++) {
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(st->codecs[i], st->codecs[j]) == 0)
                config_error(cfg, "plugins", "codecs", "\"%s\" is listed twice", st->codecs[i]);
        nb_codec_slot *slot = &srv->codecs[srv->n_codecs];
        if (plugin_slot_load(srv, "codecs", st->codecs[i], NB_KIND_CODEC, &slot->plugin) != 0) {
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

    if (plugin_slot_load(srv, "transport", st->transport, NB_KIND_TRANSPORT, &srv->transport) ==
        0) {
        srv->tvt = &srv->transport.vt.transport;
        /* One instance per I/O thread; a failing create stops at the first.
         * Created even when another plugin failed, so that its section is
         * read and checked in the same run. */
        int tfailed = 0;
        for (uint32_t i = 0; i < srv->n_workers && !tfailed; i++) {
            nb_worker *w = &srv->workers[i];
            if (create_instance(srv, &w->transport_ctx, &srv->transport, w) == 0)
                w->transport_created = 1;
            else
                tfailed = 1;
        }
        failed |= tfailed;
    } else {
        failed = 1;
    }

    srv->hub = hub_new(st->shards, st->history_per_room, srv->n_workers);
    if (!srv->hub) {
        log_error("out of memory creating %u shards", st->shards);
        failed = 1;
    } else if (guard_init(srv) < 0) {
        failed = 1;
    }
    srv->id_epoch = (uint64_t)clock_now_ms();
    snprintf(srv->epoch, sizeof srv->epoch, "%" PRIx64, srv->id_epoch);
    return failed ? -1 : 0;
}

uint32_t server_plugin_failures(const nb_server *srv) {
    return srv->plugin_failures;
}

/*
 * The graceful shutdown, step by step on the main loop (each step's end is
 * reported through main_wake):
 *   QUIET   every worker stops accepting and taking messages (a message
 *           or join now gets shutting_down); what was taken goes on;
 *   FLUSH   the writer flushes everything it was given and posts the
 *           echoes that waited for the disk (skipped without a store);
 *   CLOSE   every worker delivers what it holds, then closes its sessions
 *           with 1001, or 1012 when a broker makes this node one of a
 *           cluster (clients reconnect, to another node if they can);
 *   then the loop ends; server_run stops the broker (leaving the
 *   cluster's presence), the workers and the store.
 * [server] shutdown_timeout_ms bounds it all; a second signal exits at
 * once with 128 + the signal's number.
 */
enum { NB_SHUTDOWN_NONE, NB_SHUTDOWN_QUIET, NB_SHUTDOWN_FLUSH, NB_SHUTDOWN_CLOSE };

static void stop_main_loop(nb_server *srv) {
    ev_timer_stop(srv->main_loop, &srv->shutdown_timer);
    ev_break(srv->main_loop, EVBREAK_ALL);
}

static void request_close(nb_server *srv) {
    srv->shutdown_phase = NB_SHUTDOWN_CLOSE;
    log_info("shutting down: closing every connection with %s",
             srv->broker ? "1012 (restart: reconnect)" : "1001");
    for (uint32_t i = 0; i < srv->n_workers; i++)
        worker_request_shutdown(&srv->workers[i]);
}

/* Move the shutdown on as far as what the threads reported allows. */
static void advance_shutdown(nb_server *srv) {
    if (srv->shutdown_phase == NB_SHUTDOWN_QUIET &&
        atomic_load(&srv->quiet_workers) >= srv->n_workers) {
        if (srv->writer) {
            srv->shutdown_phase = NB_SHUTDOWN_FLUSH;
            log_info("shutting down: flushing the store");
            writer_request_drain(srv->writer);
        } else {
            request_close(srv);
        }
    }
    if (srv->shutdown_phase == NB_SHUTDOWN_FLUSH && atomic_load(&srv->store_drained))
        request_close(srv);
    if (srv->shutdown_phase == NB_SHUTDOWN_CLOSE &&
        atomic_load(&srv->drained_workers) >= srv->n_workers)
        stop_main_loop(srv);
}

static void on_main_wake(struct ev_loop *loop, ev_async *a, int revents) {
    (void)loop;
    (void)revents;
    advance_shutdown(a->data);
}

static void on_shutdown_timeout(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    nb_server *srv = t->data;
    log_warn("shutdown_timeout_ms (%u ms) passed while %s; stopping now",
             srv->settings.shutdown_timeout_ms,
             srv->shutdown_phase == NB_SHUTDOWN_FLUSH   ? "the store was still flushing"
             : srv->shutdown_phase == NB_SHUTDOWN_QUIET ? "I/O threads were still handling messages"
                                                        : "connections were still open");
    stop_main_loop(srv);
}

void server_begin_shutdown(nb_server *srv) {
    if (atomic_exchange(&srv->draining, 1))
        return;
    srv->shutdown_started_ms = clock_mono_ms();
    srv->shutdown_phase = NB_SHUTDOWN_QUIET;
    log_info("shutting down: taking no more connections or messages");
    ev_timer_init(&srv->shutdown_timer, on_shutdown_timeout,
                  srv->settings.shutdown_timeout_ms / 1000.0, 0);
    srv->shutdown_timer.data = srv;
    ev_timer_start(srv->main_loop, &srv->shutdown_timer);
    for (uint32_t i = 0; i < srv->n_workers; i++)
        worker_request_quiet(&srv->workers[i]);
}

static void on_signal(struct ev_loop *loop, ev_signal *sig, int revents) {
    (void)loop;
    (void)revents;
    nb_server *srv = sig->data;
    const char *name = sig->signum == SIGTERM ? "SIGTERM" : "SIGINT";
    if (atomic_load(&srv->draining)) {
        /* The operator does not want to wait: nothing more is flushed. */
        log_warn("received %s again: exiting now (status %d) without finishing the shutdown", name,
                 128 + sig->signum);
        log_flush_before_exit();
        _exit(128 + sig->signum);
    }
    log_info("received %s", name);
    server_begin_shutdown(srv);
}

/* What is left of shutdown_timeout_ms for the store's last flush (at
 * least 100 ms, so a healthy store always gets to close its files). */
static uint32_t time_left_ms(const nb_server *srv) {
    if (!atomic_load(&srv->draining))
        return UINT32_MAX; /* the start failed: no deadline */
    int64_t left = srv->shutdown_started_ms + srv->settings.shutdown_timeout_ms - clock_mono_ms();
    return left < 100 ? 100 : (uint32_t)left;
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
    if (writer_stop_within(srv->writer, time_left_ms(srv)) != 0) {
        /* A store stuck in a flush: its thread cannot be freed under it. */
        log_error("the store did not stop within shutdown_timeout_ms; exiting without it");
        log_flush_before_exit();
        _exit(1);
    }
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
    guard_free(srv);
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
