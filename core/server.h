/*
 * server.h — the process: settings, loaded plugins, the I/O worker(s) with
 * their loops, the hub of rooms, and shutdown orchestration.
 *
 * Threads: this version runs one I/O worker on the main loop. The
 * structures are laid out for several (docs/ARCHITECTURE.md): a transport
 * instance per worker, sessions owned by the worker whose loop runs their
 * connection, codec instances shared (thread-safe by contract).
 */
#ifndef NEBULA_CORE_SERVER_H
#define NEBULA_CORE_SERVER_H

#include "config.h"
#include "loader.h"
#include "metrics.h"
#include "settings.h"

#include <ev.h>
#include <nebula/host.h>
#include <stdint.h>

typedef struct nb_server nb_server;
typedef struct nb_worker nb_worker;
typedef struct nb_hub nb_hub;
typedef struct nb_session nb_session;

/* The host's handle for one plugin instance (opaque to plugins). */
struct nb_plugin_ctx {
    nb_server *server;
    nb_worker *worker; /* the I/O worker of a transport instance, else NULL */
    const nb_loaded_plugin *plugin;
    void *instance;
};

typedef struct nb_codec_slot {
    nb_loaded_plugin plugin;
    struct nb_plugin_ctx ctx;
    const nb_codec_vtable *vt;
    int created;
} nb_codec_slot;

struct nb_worker {
    nb_server *server;
    uint32_t index;
    struct ev_loop *loop;
    struct nb_plugin_ctx transport_ctx;
    int transport_created;
    nb_server_info info;
    nb_session *sessions; /* every live session of this worker */
    uint32_t n_sessions;
};

typedef struct nb_server_metrics {
    nb_metric *connections;
    nb_metric *rooms;
    nb_metric *messages_received;
    nb_metric *deliveries;
    nb_metric *protocol_errors;
    nb_metric *rate_limited;
    nb_metric *slow_consumers;
    nb_metric *connections_total;
} nb_server_metrics;

struct nb_server {
    nb_config *cfg;
    nb_settings settings;
    nb_loaded_plugin transport;
    const nb_transport_vtable *tvt;
    nb_codec_slot codecs[NB_MAX_CODECS];
    uint32_t n_codecs;
    nb_worker worker; /* one I/O worker in this version */
    nb_hub *hub;
    int draining;
    uint64_t id_epoch;
    uint64_t next_id;
    ev_signal sigterm;
    ev_signal sigint;
    ev_timer shutdown_timer;
    nb_server_metrics m;
};

/*
 * Load and create every plugin named in `settings` (copied into srv) (no socket is opened
 * yet). Returns 0, or -1 after logging each refusal. Config mistakes that
 * plugins find are recorded in cfg.
 */
int server_init(nb_server *srv, nb_config *cfg, const nb_settings *settings);

/* Start listening and run until a signal has drained every connection.
 * Returns the process exit code. */
int server_run(nb_server *srv);

/* Destroy plugin instances, free sessions and rooms, unload plugins. */
void server_free(nb_server *srv);

/* Begin a graceful shutdown (as on SIGTERM). */
void server_begin_shutdown(nb_server *srv);

/* Called by session code when a worker's last session is gone. */
void server_session_gone(nb_server *srv);

/* The core's answer to plain HTTP requests (/healthz, /readyz, /metrics). */
int32_t server_http_request(nb_server *srv, const nb_http_request *req, nb_http_response *resp);
#endif
