/*
 * server.h — the process: settings, loaded plugins, the I/O worker(s) with
 * their loops, the hub of rooms, and shutdown orchestration.
 *
 * Threads (docs/ARCHITECTURE.md): [server] io_threads workers, each a
 * thread with its own libev loop, transport instance and sessions (worker.h);
 * the main thread's loop handles signals and shutdown. Codec instances are
 * shared (thread-safe by contract); rooms live in locked shards (hub.h).
 */
#ifndef NEBULA_CORE_SERVER_H
#define NEBULA_CORE_SERVER_H

#include "config.h"
#include "loader.h"
#include "metrics.h"
#include "settings.h"

#include <ev.h>
#include <nebula/host.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct nb_server nb_server;
typedef struct nb_worker nb_worker;
typedef struct nb_hub nb_hub;
typedef struct nb_session nb_session;
typedef struct nb_writer nb_writer;
typedef struct nb_brokerhost nb_brokerhost;

/* The host's handle for one plugin instance (opaque to plugins). */
struct nb_plugin_ctx {
    nb_server *server;
    nb_worker *worker; /* the I/O worker of a transport instance, else NULL */
    const nb_loaded_plugin *plugin;
    void *instance;
    struct ev_loop *loop; /* the instance's loop when not a worker's (the writer's) */
};

typedef struct nb_codec_slot {
    nb_loaded_plugin plugin;
    struct nb_plugin_ctx ctx;
    const nb_codec_vtable *vt;
    int created;
} nb_codec_slot;

typedef struct nb_server_metrics {
    nb_metric *connections;
    nb_metric *rooms;
    nb_metric *messages_received;
    nb_metric *deliveries;
    nb_metric *protocol_errors;
    nb_metric *rate_limited;
    nb_metric *slow_consumers;
    nb_metric *connections_total;
    nb_metric *idle_timeouts;
    nb_metric *mailbox_refused;
    nb_metric *store_up;
    nb_metric *store_appends;
    nb_metric *store_flushes;
    nb_metric *store_failures;
    nb_metric *broker_up;
    nb_metric *broker_publishes;
    nb_metric *broker_failures;
    nb_metric *cluster_nodes;
} nb_server_metrics;

struct nb_server {
    nb_config *cfg;
    nb_settings settings;
    nb_loaded_plugin transport;
    const nb_transport_vtable *tvt;
    nb_codec_slot codecs[NB_MAX_CODECS];
    uint32_t n_codecs;
    nb_worker *workers; /* [n_workers] I/O workers */
    uint32_t n_workers;
    nb_hub *hub;
    nb_writer *writer;     /* the store's thread, or NULL without a store */
    nb_brokerhost *broker; /* the broker on the main loop, or NULL */
    int durable;           /* the store's echo waits for the disk */
    atomic_int store_up;
    char epoch[64];            /* rooms' history epoch without a store: this process */
    struct ev_loop *main_loop; /* signals, shutdown timer, broker */
    atomic_int draining;
    atomic_uint drained_workers; /* workers whose sessions are all closed */
    uint64_t id_epoch;
    atomic_uint_fast64_t next_id;
    ev_signal sigterm;
    ev_signal sigint;
    ev_timer shutdown_timer;
    ev_async main_wake;
    nb_server_metrics m;
    uint32_t plugin_failures;
};

/*
 * Load and create every plugin named in `settings` (copied into srv) (no socket is opened
 * yet). Returns 0, or -1 after logging each refusal. Config mistakes that
 * plugins find are recorded in cfg.
 */
int server_init(nb_server *srv, nb_config *cfg, const nb_settings *settings);

/* Plugins refused or whose create() failed during server_init (each was
 * logged as one line). */
uint32_t server_plugin_failures(const nb_server *srv);

/* Start listening and run until a signal has drained every connection.
 * Returns the process exit code. */
int server_run(nb_server *srv);

/* Destroy plugin instances, free sessions and rooms, unload plugins. */
void server_free(nb_server *srv);

/* Begin a graceful shutdown (as on SIGTERM). */
void server_begin_shutdown(nb_server *srv);

/* A worker that was closing has no session left (any thread). */
void server_worker_drained(nb_server *srv);

/* The core's answer to plain HTTP requests (/healthz, /readyz, /metrics). */
int32_t server_http_request(nb_server *srv, const nb_http_request *req, nb_http_response *resp);
#endif
