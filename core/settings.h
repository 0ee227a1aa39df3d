/*
 * settings.h — the core's own config keys ([server], [plugins], [limits]),
 * read once at start-up with their defaults. docs/CONFIG.md is the
 * reference; nebula.conf at the repository root lists every key.
 */
#ifndef NEBULA_CORE_SETTINGS_H
#define NEBULA_CORE_SETTINGS_H

#include "config.h"
#include "peers.h"

#include <stdint.h>

#define NB_MAX_CODECS 8
#define NB_MAX_WORKERS 64
#define NB_MAX_PLUGIN_DIRS 8
#define NB_ADMIN_TOKEN_MIN 16
#define NB_ADMIN_TOKEN_MAX 128

typedef struct nb_settings {
    /* [server] */
    char listen_host[256];
    uint32_t listen_port;
    uint32_t shards;
    uint32_t io_threads;
    char web_root[4096]; /* "" = serve no files */
    char node_id[128];
    uint32_t log_level;
    uint32_t log_format;           /* NB_LOG_FORMAT_* (log.h) */
    uint32_t log_queue_bytes;      /* the log thread's queue */
    uint32_t log_repeat_window_ms; /* 0 = repeats are not limited */
    uint32_t history_per_room;
    uint64_t history_bytes_per_room; /* a room's ring, in bytes of messages */
    uint64_t history_bytes_total;    /* every room's ring together */
    uint32_t presence_batch_above;   /* rooms larger than this batch presence */
    uint32_t presence_interval_ms;
    uint32_t shutdown_timeout_ms;
    uint32_t worker_mailbox_events; /* cap of each I/O worker's mailbox */
    uint32_t writer_mailbox_events; /* cap of the store writer's mailbox */
    uint32_t store_linger_ms;       /* appends nobody waits for: flushed within this */
    uint32_t main_mailbox_events;   /* cap of the main loop's (broker) mailbox */
    uint32_t room_backlog_events;   /* cap of a room's backlog while its history loads */
    /* [plugins] */
    char plugin_dirs[NB_MAX_PLUGIN_DIRS][4096]; /* looked up in this order */
    uint32_t n_plugin_dirs;
    const char *transport;
    const char *codecs[NB_MAX_CODECS];
    uint32_t n_codecs;
    const char *store;  /* "none" or a plugin name */
    const char *broker; /* "none" or a plugin name */
    /* [limits] */
    uint32_t max_message_bytes;
    uint32_t messages_per_second; /* 0 = unlimited */
    uint32_t burst;
    uint32_t rooms_per_connection;
    uint32_t max_errors;
    uint32_t replay_messages; /* most messages a join with `since` replays */
    uint64_t max_queued_bytes;
    uint32_t idle_timeout_ms;                 /* 0 = off */
    uint32_t bytes_per_second;                /* per connection, in and replayed; 0 = unlimited */
    uint32_t bytes_burst;                     /* the byte bucket's size */
    uint64_t memory_budget_bytes;             /* budget.h */
    uint32_t connections_per_address;         /* 0 = unlimited (peers.h) */
    uint32_t messages_per_second_per_address; /* 0 = unlimited */
    uint32_t burst_per_address;
    nb_cidr allowlist[NB_ALLOWLIST_MAX]; /* addresses without per-address limits */
    uint32_t n_allowlist;
    /* [admin] */
    char admin_token[NB_ADMIN_TOKEN_MAX + 1]; /* "" = the dashboard is off */
} nb_settings;

/*
 * Read every core key from cfg into *s (defaults for absent keys).
 * `listen_override` ("HOST:PORT" from --listen) wins over [server] listen.
 * `exe_dir` is the folder of the running binary (for default paths).
 * Problems are recorded in cfg (config_error_count tells).
 */
void settings_read(nb_config *cfg, nb_settings *s, const char *listen_override,
                   const char *exe_dir);

/* A path from the config, resolved against the config file's folder when
 * relative (built-in defaults: the working directory). */
void settings_resolve(nb_config *cfg, const char *path, char *out, size_t outlen);

/* Point dirs[i] at each plugin folder of s; returns how many there are. */
uint32_t settings_plugin_dirs(const nb_settings *s, const char *dirs[NB_MAX_PLUGIN_DIRS]);

/* Split "HOST:PORT", "[v6]:PORT" or ":PORT". 0 on success, -1 if malformed. */
int settings_parse_listen(const char *text, char *host, size_t hostlen, uint32_t *port);
#endif
