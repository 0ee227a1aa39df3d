/*
 * bench.h — what the parent (main.c, report.c) and the worker processes
 * (worker.c, client.c) share: the run parameters, the control messages on
 * the parent<->worker socket, and the counters a worker reports.
 *
 * Process model: the parent forks one worker per --processes; each worker
 * owns every P-th connection (global id i with i % P == w), runs its own
 * libev loop and binds its sockets to source address src_base + w. The
 * parent never touches a WebSocket: it paces the phases, merges reports and
 * prints the one JSON summary.
 */
#ifndef NEBULA_BENCH_H
#define NEBULA_BENCH_H

#include "stats.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One worker holds its sockets plus a handful of fds (epoll, control
 * socket, stdio) under the 20,000 open-file limit of this machine. */
#define BENCH_MAX_CONNS_PER_WORKER 19900
#define BENCH_MAX_STEPS 64
/* --targets: servers a run spreads its connections over (a cluster's
 * nodes); --server-pid takes as many PIDs. */
#define BENCH_MAX_TARGETS 64

enum scenario { SC_S1 = 1, SC_S2, SC_S3, SC_S4 };

/* --codec: what the connections speak. Mixed: even ids JSON, odd ids
 * Protobuf, so every room of two or more has members of both. */
enum codec_mode { CODEC_JSON = 0, CODEC_PROTO, CODEC_MIXED };

/* One server to connect to: the address connect() uses and the text the
 * upgrade's Host header names. */
typedef struct bench_target {
    char host[64];
    struct in_addr addr;
    uint16_t port;
} bench_target;

/* --spread: how connections are assigned to --targets. */
enum spread_mode { SPREAD_ROOM = 0, SPREAD_CONNECTION };

typedef struct bench_params {
    enum scenario scen;
    const char *scen_name;
    long connections;
    long room_size;
    long rooms; /* derived: ceil(connections / room_size) */
    long senders;
    double rate;                   /* S2: msg/s per sending connection */
    double rates[BENCH_MAX_STEPS]; /* S3: total msg/s; S4: per connection */
    int n_rates;
    bool auto_rates; /* S3 without --rates: raise until it stops */
    double duration, warmup, drain, settle;
    double connect_rate;    /* new connections per second, all workers */
    double connect_timeout; /* seconds for TCP connect + upgrade */
    int inflight;           /* handshakes in progress per worker */
    int retries;            /* extra attempts per connection */
    long content_bytes;
    int processes;
    bench_target targets[BENCH_MAX_TARGETS]; /* --host/--port: one */
    int n_targets;
    enum spread_mode spread;
    bool src_bind;
    struct in_addr src_base;
    long server_pids[BENCH_MAX_TARGETS]; /* RSS is their sum */
    int n_server_pids;                   /* 0: no RSS sampling */
    bool fail_on_loss;
    int max_steps;       /* auto S3 */
    double p99_limit_ms; /* auto S3 stop rule */
    char room_prefix[24];
    uint64_t seed;
    enum codec_mode codec;
    bool codec_given; /* --codec given: JSON connections name nebula.json.v1 too */
} bench_params;

/* Which target connection `id` in room `room` connects to: by room, every
 * member of a room shares a node (what a load balancer's room affinity
 * does; needed when the nodes share no broker); by connection, a room's
 * members are spread over all nodes (every delivery crosses the broker). */
static inline uint32_t bench_conn_target(const bench_params *p, uint32_t id, uint32_t room) {
    return (p->spread == SPREAD_ROOM ? room : id) % (uint32_t)p->n_targets;
}

/* Whether connection `id` speaks Protobuf under p->codec. */
static inline bool bench_conn_proto(const bench_params *p, uint32_t id) {
    return p->codec == CODEC_PROTO || (p->codec == CODEC_MIXED && (id & 1u));
}

/* ---- control messages: {type, len} then len bytes ----------------------- */

enum msg_type {
    /* parent -> worker */
    CMD_STEP = 1,
    CMD_QUIT,
    /* worker -> parent */
    MSG_PROGRESS,
    MSG_CONNECTED,
    MSG_STEP,
    MSG_BYE,
};

typedef struct msg_hdr {
    uint32_t type;
    uint32_t len;
} msg_hdr;

/* Every instant is CLOCK_MONOTONIC nanoseconds: one machine, one clock, so
 * a worker can time a message another worker sent. */
typedef struct cmd_step {
    uint32_t index;
    uint32_t pad;
    double rate_per_sender;
    uint64_t t_start; /* first sends */
    uint64_t m_start; /* sends from here on are measured... */
    uint64_t m_end;   /* ...until here, when sending stops */
    uint64_t t_drain; /* deliveries are counted until here */
} cmd_step;

typedef struct progress_report {
    uint64_t ok, failed, attempt_failures, dropped;
    uint64_t sent, delivered;
} progress_report;

typedef struct connect_report {
    uint64_t ok, failed, attempt_failures;
    uint64_t t_first, t_last; /* first connect() and last completed upgrade */
    hist connect;             /* connect() to 101, per successful connection */
} connect_report;

/* Followed on the wire by uint32_t members[rooms] (this worker's open
 * connections per room when the step began) and uint64_t sends[rooms]
 * (measured sends per room). */
typedef struct step_report {
    uint64_t senders;     /* sending connections open when the step began */
    uint64_t sent;        /* measured sends */
    uint64_t sent_warmup; /* sends before the window */
    uint64_t delivered;   /* measured messages received before t_drain */
    uint64_t stale;       /* bench messages outside this step's window */
    uint64_t foreign;     /* message frames without our t=/s= content */
    uint64_t other;       /* non-message frames (welcome, presence, ...) */
    uint64_t dropped;     /* connections the server closed during the step */
    uint64_t skipped;     /* sends not made: connection closed or backlogged */
    uint64_t bytes_in, bytes_out;
    hist latency; /* receive time - send timestamp */
    /* arrival time on our socket (the kernel's SO_TIMESTAMPNS) - send
     * timestamp: the server's part, without this tool's own wake-up */
    hist at_socket;
    hist lag; /* actual send time - scheduled send time (tool health) */
} step_report;

/* ---- shared helpers ---------------------------------------------------- */

uint64_t now_ns(void);
/* Whole-message I/O on the control socket; -1 on EOF or error. */
int ipc_send(int fd, uint32_t type, const void *a, size_t alen, const void *b, size_t blen,
             const void *c, size_t clen);
int ipc_read_all(int fd, void *buf, size_t len);

/* worker.c: runs worker w of p.processes; returns the process exit code. */
int worker_main(const bench_params *p, int w, int ctl_fd);

#endif
