/*
 * worker.h — one worker process: its connections (client.c) and the loop
 * that paces them (worker.c). Single-threaded: nothing here is locked.
 */
#ifndef NEBULA_BENCH_WORKER_H
#define NEBULA_BENCH_WORKER_H

#include "bench.h"

#include <ev.h>

enum conn_state {
    C_IDLE,       /* not attempted yet, or waiting for a retry */
    C_CONNECTING, /* TCP connect in progress */
    C_HANDSHAKE,  /* upgrade request sent, waiting for 101 */
    C_OPEN,
    C_CLOSING, /* our close frame is out; waiting for the server to hang up */
    C_DONE,    /* failed or closed for good */
};

typedef struct conn {
    ev_io io;
    uint32_t id;   /* global connection id: username u<id> */
    uint32_t room; /* global room index */
    uint32_t inflight_idx;
    uint8_t state;
    uint8_t attempts;
    uint8_t frag_op; /* opcode of a fragmented message in progress, or 0 */
    uint8_t target;  /* index in p->targets and worker.dst */
    bool sender;
    bool close_sent; /* a close frame went out (ours or the echo) */
    bool we_closed;  /* we started the closing handshake */
    uint64_t t0;     /* current attempt started (connect time, timeouts) */
    /* bytes of a frame split across reads; rare, so allocated on demand */
    uint8_t *rx;
    uint32_t rx_len, rx_cap;
    /* output the kernel did not take yet */
    uint8_t *tx;
    uint32_t tx_len, tx_off, tx_cap;
    /* a fragmented message being reassembled (servers here never do it) */
    uint8_t *frag;
    uint32_t frag_len, frag_cap;
    char accept[29]; /* the Sec-WebSocket-Accept we expect */
} conn;

typedef struct worker {
    const bench_params *p;
    int index;
    int ctl_fd;
    struct ev_loop *loop;
    struct sockaddr_in dst[BENCH_MAX_TARGETS], src;
    conn *conns;
    uint32_t n;

    /* ramp-up */
    uint32_t next_start;
    uint32_t *retry, n_retry;
    uint32_t *inflight, n_inflight;
    uint64_t ramp_t0, started;
    bool ramp_done;
    connect_report cr;
    uint64_t dropped_total;
    uint32_t open_count;
    unsigned errors_printed;

    /* the current step */
    bool in_step;
    cmd_step step;
    step_report sr;
    uint32_t *members; /* [rooms] */
    uint64_t *sends;   /* [rooms] */
    uint32_t *sched;   /* local conn index of each sender, by phase */
    uint64_t *phase;   /* ns after t_start of its first send */
    uint32_t n_sched, cursor;
    uint64_t cycle, period_ns;
    uint64_t seq;
    uint64_t sent_total, delivered_total; /* for progress lines */

    uint8_t *rbuf; /* one read buffer for every connection */
    size_t rbuf_cap;
    uint8_t *sbuf; /* where outgoing frames are built */
    size_t sbuf_cap;
    uint64_t rng;
    bool quitting;
    bool quit_armed;       /* closing_left is counted */
    uint32_t closing_left; /* connections still closing after CMD_QUIT */

    ev_io ctl_io;
    ev_timer ramp_timer, progress_timer, sched_timer, drain_timer, quit_timer;
} worker;

/* client.c */
int client_start(worker *w, conn *c);
/* Sends one chat message; returns the send timestamp carried in it, or 0
 * when the connection cannot take it (closed, or too much backlog). */
uint64_t client_send_chat(worker *w, conn *c);
void client_close_gracefully(worker *w, conn *c);
void client_abort(worker *w, conn *c);
uint64_t bench_rand(uint64_t *state);

/* worker.c, called by client.c */
void worker_conn_open(worker *w, conn *c);
void worker_conn_failed(worker *w, conn *c, const char *why);
void worker_conn_closed(worker *w, conn *c, const char *why);
void worker_log(worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
