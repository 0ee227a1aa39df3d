/*
 * context.h — the process's shared state, as data: the server (settings,
 * plugins, I/O workers, hub, store and broker hand-offs, metrics) and each
 * I/O worker (its loop, mailbox, sessions, timers). Every module of the
 * core reads it; the functions that bring it up and down are server.h's,
 * those of one worker thread worker.h's. Keeping the data here, apart from
 * the code that drives it, is what keeps the core's modules free of
 * include cycles (docs/ARCHITECTURE.md, "One concern a file").
 *
 * Threads (docs/ARCHITECTURE.md): [server] io_threads workers, each a
 * thread with its own libev loop, transport instance, sessions and
 * mailbox; the main thread's loop handles signals, shutdown and the
 * broker; the store runs on its own writer thread. Codec instances are
 * shared (thread-safe by contract); rooms live in locked shards (hub.h).
 */
#ifndef NEBULA_CORE_CONTEXT_H
#define NEBULA_CORE_CONTEXT_H

#include "config.h"
#include "loader.h"
#include "mailbox.h"
#include "metrics.h"
#include "settings.h"

#include <ev.h>
#include <nebula/broker.h>
#include <nebula/host.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct nb_server nb_server;
typedef struct nb_worker nb_worker;
typedef struct nb_hub nb_hub;
typedef struct nb_session nb_session;
typedef struct nb_room nb_room;
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
    nb_mailbox *writer_mb; /* the writer's mailbox, or NULL */
    nb_mailbox *main_mb;   /* the main loop's (broker) mailbox, or NULL */
    int durable;           /* the store's echo waits for the disk */
    atomic_int store_up;
    uint32_t broker_flags; /* NB_BROKER_F_* the broker's start() returned */
    int broker_presence;   /* it has presence() */
    int broker_load;       /* it has load() */
    atomic_int broker_up;
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

typedef struct nb_session_entry {
    nb_session *session; /* NULL when free */
    uint32_t gen;
    uint32_t next_free;
} nb_session_entry;

struct nb_worker {
    nb_server *server;
    uint32_t index;
    struct ev_loop *loop;
    pthread_t thread;
    int thread_started;
    atomic_int shutdown_requested;
    atomic_int stop_requested;
    atomic_uint lost_events; /* rooms marked lost for this worker (pipeline.c) */
    uint32_t lost_seen;
    int closing; /* this worker has begun closing its sessions */
    struct nb_plugin_ctx transport_ctx;
    int transport_created;
    nb_server_info info;
    nb_session *sessions;      /* every live session, most recently active first */
    nb_session *sessions_tail; /* the one active longest ago */
    uint32_t n_sessions;
    nb_mailbox mailbox;
    void (*drain)(nb_worker *w); /* deliver the mailbox now (worker.c) */
    nb_session_entry *table;     /* sessions by nb_sref slot */
    uint32_t table_cap;
    uint32_t free_head; /* first free slot + 1; 0 = none */
    uint32_t next_gen;
    nb_room **presence_due; /* rooms whose batched presence this worker sends */
    uint32_t n_presence_due;
    uint32_t cap_presence_due;
    ev_timer presence_timer;
    ev_timer idle_timer; /* [limits] idle_timeout_ms; never started when 0 */
};

/* A worker that was closing has no session left (any thread): tells the
 * main loop. */
void context_worker_drained(nb_server *srv);

/* The broker, as the pipeline sees it (0 without a broker). */
static inline int context_broker_up(nb_server *srv) {
    return srv->broker && atomic_load(&srv->broker_up);
}
static inline int context_broker_sequences(const nb_server *srv) {
    return srv->broker && (srv->broker_flags & NB_BROKER_F_SEQUENCES);
}
static inline int context_broker_presence(nb_server *srv) {
    return srv->broker_presence && (srv->broker_flags & NB_BROKER_F_PRESENCE) &&
           context_broker_up(srv);
}
/* The broker keeps presence (claims and notifications go to it), up or not. */
static inline int context_broker_claims(const nb_server *srv) {
    return srv->broker_presence && (srv->broker_flags & NB_BROKER_F_PRESENCE);
}
static inline int context_broker_load(nb_server *srv) {
    return srv->broker_load && (srv->broker_flags & NB_BROKER_F_HISTORY) && context_broker_up(srv);
}
#endif
