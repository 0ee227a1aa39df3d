/*
 * nebula/host.h — the host API: everything a plugin may ask of the core.
 *
 * The core hands a const nb_host table to create() together with the
 * instance's own nb_plugin_ctx handle. This table is the plugin's only way
 * into the core (plugins are linked with -Wl,-z,defs and see no symbol of
 * the nebula binary). Like SQLite's sqlite3_api_routines, the table only
 * grows: new functions are appended in a new minor version, so check
 * `host->abi_minor` (or struct_size) before using a function newer than
 * the core you may run in (each is marked with the minor that added it).
 *
 * Threads: every function may be called from the thread that runs the
 * instance's loop. log, alloc/free, the buf_* functions, now_ms,
 * metric_new and the metric updates may be called from any thread.
 */
#ifndef NEBULA_HOST_H
#define NEBULA_HOST_H

#include <nebula/buf.h>
#include <nebula/msg.h>
#include <nebula/plugin.h>
#include <nebula/transport.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nb_plugin_ctx; /* the host's handle for one plugin instance */
struct nb_session;    /* the core's handle for one client connection */
struct nb_metric;     /* a registered metric */

/* Log levels for host->log. */
#define NB_LOG_ERROR 1u
#define NB_LOG_WARN 2u
#define NB_LOG_INFO 3u
#define NB_LOG_DEBUG 4u

/* Metric types for host->metric_new. */
#define NB_METRIC_COUNTER 1u /* only goes up; name must end in _total */
#define NB_METRIC_GAUGE 2u

/* Where and how to serve; read-only, valid for the life of the instance. */
typedef struct nb_server_info {
    uint32_t struct_size;
    uint32_t worker_index; /* this instance's I/O thread, 0-based */
    uint32_t worker_count; /* I/O threads in the process */
    uint32_t listen_port;
    const char *listen_host; /* numeric address or host name */
    const char *web_root;    /* static files for GET /, or NULL to serve none */
    const char *node_id;     /* unique name of this process in a cluster */
    const char *ws_path;     /* the upgrade path the core accepts, "/ws" */
    /* ABI 1.1: [limits] max_message_bytes, the longest message the core
     * accepts; a transport need not assemble a longer one. 0 (or a
     * struct_size without it) from an older core: unknown. */
    uint32_t max_message_bytes;
} nb_server_info;

/* A WebSocket upgrade request that passed the transport's checks. */
typedef struct nb_open_request {
    uint32_t struct_size;
    uint32_t n_subprotocols;
    const char *path;                /* e.g. "/ws", without the query */
    const char *query;               /* raw query string after '?', still %-encoded; "" if none */
    const char *const *subprotocols; /* Sec-WebSocket-Protocol tokens, in order */
    const char *origin;              /* Origin header or NULL */
    const char *peer;                /* "address:port" of the client */
} nb_open_request;

/* The core's answer to an nb_open_request. Zeroed (struct_size set) on entry. */
typedef struct nb_open_reply {
    uint32_t struct_size;
    uint32_t http_status;       /* 0 = accept; otherwise reject with this status */
    const char *subprotocol;    /* accept: token to echo, or NULL for none */
    const char *reason;         /* reject: short plain-text body */
    struct nb_session *session; /* accept: the core's handle for this conn */
} nb_open_reply;

/* A plain HTTP request (no upgrade). */
typedef struct nb_http_request {
    uint32_t struct_size;
    uint32_t reserved;
    const char *method; /* "GET", "HEAD", ... */
    const char *path;   /* without the query */
    const char *query;  /* after '?', "" if none */
} nb_http_request;

/* The core's answer: status, content type and body (one reference that
 * the transport owns and drops when written). Zeroed on entry. */
typedef struct nb_http_response {
    uint32_t struct_size;
    uint32_t status;
    const char *content_type; /* static string */
    struct nb_buf *body;
} nb_http_response;

typedef struct nb_host {
    uint32_t struct_size; /* sizeof(nb_host) of the running core */
    uint32_t abi_major;   /* NB_ABI_MAJOR of the running core */
    uint32_t abi_minor;   /* NB_ABI_MINOR of the running core */
    uint32_t reserved;

    /* ---- logging: one line, printf-style, prefixed with the plugin name */
    void (*log)(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* ---- memory */
    void *(*alloc)(uint64_t size); /* NULL when out of memory */
    void (*free)(void *ptr);

    /* ---- config: the instance's own section, [<plugin name>].
     * Each getter returns NB_OK and sets *out (to `def` when the key is
     * absent), or NB_ERR_CONFIG after logging "file:line: key: why" when
     * the value has the wrong type. Keys a plugin never reads are reported
     * as unknown, so read every key you support. Strings stay valid for the
     * life of the instance. */
    int32_t (*config_string)(struct nb_plugin_ctx *ctx, const char *key, const char *def,
                             const char **out);
    int32_t (*config_int)(struct nb_plugin_ctx *ctx, const char *key, int64_t def, int64_t *out);
    int32_t (*config_bool)(struct nb_plugin_ctx *ctx, const char *key, int32_t def, int32_t *out);
    /* Report a bad value found by the plugin, with the key's file:line. */
    void (*config_error)(struct nb_plugin_ctx *ctx, const char *key, const char *why);

    /* ---- where the instance runs */
    void *(*loop)(struct nb_plugin_ctx *ctx); /* struct ev_loop * */
    const nb_server_info *(*server_info)(struct nb_plugin_ctx *ctx);
    int64_t (*now_ms)(void); /* wall clock, ms since the Unix epoch */

    /* ---- buffers (buf.h) */
    struct nb_buf *(*buf_new)(uint32_t headroom, uint32_t capacity);
    void (*buf_ref)(struct nb_buf *buf);
    void (*buf_unref)(struct nb_buf *buf);
    /* Make room for `tailroom` more bytes after data + len; may move the
     * buffer (updates *buf). Only with the sole reference. */
    int32_t (*buf_reserve)(struct nb_buf **buf, uint32_t tailroom);

    /* ---- metrics, exported at /metrics in Prometheus text format */
    struct nb_metric *(*metric_new)(struct nb_plugin_ctx *ctx, uint32_t type, const char *name,
                                    const char *help);
    void (*metric_add)(struct nb_metric *metric, int64_t delta);

    /* ---- transport events (transport.h describes the order) */
    int32_t (*conn_open)(struct nb_plugin_ctx *ctx, struct nb_conn *conn,
                         const nb_open_request *req, nb_open_reply *reply);
    void (*conn_established)(struct nb_session *session);
    void (*conn_message)(struct nb_session *session, uint32_t frame_kind, const uint8_t *data,
                         uint32_t len);
    void (*conn_closed)(struct nb_session *session, uint32_t code);
    /* NB_OK: the core answered (resp filled). NB_ERR_AGAIN: not the core's
     * path; the transport may serve a file or answer 404. */
    int32_t (*http_request)(struct nb_plugin_ctx *ctx, const nb_http_request *req,
                            nb_http_response *resp);

    /* ---- broker events (broker.h), on the main loop */
    /* An event from the bus for msg->room: a message (with its seq when
     * the broker sequences), a cluster-wide NB_MSG_PRESENCE, or another
     * node's user joining or leaving (NB_MSG_JOIN / NB_MSG_LEAVE). The core
     * copies what it keeps. Events of this node's own rooms only; one the
     * core has already delivered (same or lower seq) is ignored. */
    void (*broker_deliver)(struct nb_plugin_ctx *ctx, const nb_msg *msg);

    /* ======== ABI 1.1 ======== */

    /* ---- config */
    /* A string array, e.g. urls = ["a", "b"]; absent: *out = NULL, *n = 0.
     * The array and strings live as long as the instance. */
    int32_t (*config_strings)(struct nb_plugin_ctx *ctx, const char *key, const char *const **out,
                              uint32_t *n);
    /* A path, resolved against the folder of the config file when it is
     * relative (built-in defaults: the working directory). *out lives as
     * long as the instance. */
    int32_t (*config_path)(struct nb_plugin_ctx *ctx, const char *key, const char *def,
                           const char **out);

    /* ---- metrics: set a gauge */
    void (*metric_set)(struct nb_metric *metric, int64_t value);

    /* ---- broker status, on the main loop */
    /* The bus is reachable (up = 1) or not (0); `why` (may be NULL) is
     * logged once per change. Drives /readyz and nebula_broker_up. */
    void (*broker_status)(struct nb_plugin_ctx *ctx, uint32_t up, const char *why);
    /* Another node appeared (alive = 1) or expired (0): logged and counted
     * in nebula_cluster_nodes. */
    void (*broker_node)(struct nb_plugin_ctx *ctx, const char *node_id, uint32_t alive);
    /* This node's live connections and rooms, for the broker to publish
     * with its heartbeat. */
    void (*local_counts)(struct nb_plugin_ctx *ctx, uint32_t *connections, uint32_t *rooms);
    /* A live node's latest heartbeat (the broker's view): its counts, shown
     * at /cluster until broker_node(.., 0) says it expired. */
    void (*broker_node_counts)(struct nb_plugin_ctx *ctx, const char *node_id, uint32_t connections,
                               uint32_t rooms);
} nb_host;

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_HOST_H */
