/*
 * rb.h — what the files of broker-redis share (docs/BROKER_REDIS.md).
 *
 *   plugin.c    the descriptor, config, the vtable (start, stop, subscribe,
 *               publish, presence, load)
 *   url.c       redis://[user:password@]host[:port][/db]
 *   link.c      one Redis instance: two connections (commands, SUBSCRIBE),
 *               name resolution off the loop, reconnect with backoff
 *   scripts.c   the Lua scripts, EVALSHA with EVAL on NOSCRIPT
 *   batch.c     publishes of one loop turn, per instance, as one script call
 *   rooms.c     rooms: instance (rendezvous hash), subscription, this
 *               node's users, publications coming in
 *   nodes.c     heartbeat, the other nodes, reaping expired ones
 *   envelope.c  nb_msg <-> nebula.v1.Envelope (codec-protobuf's encoder)
 *
 * Everything runs on the core's main loop, except each link's resolver
 * thread, which hands its answer back through a mutex and an ev_async.
 */
#ifndef NEBULA_BROKER_REDIS_H
#define NEBULA_BROKER_REDIS_H

#include <ev.h>
#include <hiredis/async.h>
#include <nebula/nebula.h>
#include <pthread.h>
#include <stdint.h>

#define RB_ROOM_MAX 64 /* the core's longest room name */
#define RB_USER_MAX 32 /* the core's longest username */
#define RB_NODE_MAX 128
#define RB_SCRIPT_COUNT 5
#define RB_BATCH_MAX 10000 /* the highest publish_batch */
/* arguments of one script call: the publish script's two, then two per message */
#define RB_SCRIPT_MAX_ARGS (2 + 2 * RB_BATCH_MAX)

typedef struct rb_broker rb_broker;
typedef struct rb_link rb_link;

/* ---- url.c ---- */
typedef struct rb_url {
    char host[256];
    int port;
    int db;
    char user[128];
    char password[256];
} rb_url;
/* 0, or -1 with why (static text) filled. */
int rb_url_parse(const char *url, rb_url *out, const char **why);

/* ---- link.c ---- */
typedef void (*rb_reply_fn)(rb_link *l, redisReply *reply, void *user);

/* One message waiting in a batch: its completion. */
typedef struct rb_pub {
    nb_broker_done_fn done;
    void *user;
} rb_pub;

/* The publishes collected for one instance since its last script call
 * (batch.c): their completions, and their arguments (room, envelope)
 * back to back in data with their lengths, two per message. */
typedef struct rb_batch {
    rb_pub *pubs;
    uint32_t n, cap;
    size_t *lens;
    char *data;
    size_t len, cap_data;
} rb_batch;

struct rb_link {
    rb_broker *b;
    uint32_t index;
    rb_url url;
    char shown[300]; /* host:port/db for logs, without the password */
    int literal;     /* host is an IP address: no lookup */
    char addr[256];  /* the address connected to */
    redisAsyncContext *cmd, *sub;
    int cmd_ready, sub_ready; /* connected, authenticated, db selected */
    uint32_t setup_left[2];   /* setup replies still due (commands, subscribe) */
    int up;                   /* both ready */
    int connecting;
    double connect_started;
    double last_reply; /* ev_now of the last reply on cmd */
    uint32_t pending;  /* commands in flight on cmd */
    uint32_t attempt;  /* failed attempts in a row (backoff) */
    int outage_logged; /* the first failure of an outage was logged */
    ev_timer retry;
    /* name resolution, off the loop */
    pthread_t resolver;
    int resolving;
    pthread_mutex_t mu;
    ev_async resolved;
    char res_addr[64]; /* under mu */
    char res_err[400]; /* under mu */
    /* the nodes this instance saw alive at the last heartbeat */
    char (*seen)[RB_NODE_MAX];
    uint32_t n_seen, cap_seen;
    rb_batch batch; /* publishes not sent yet (batch.c) */
};

int rb_link_init(rb_link *l, rb_broker *b, uint32_t index, const char *url, const char **why);
void rb_link_start(rb_link *l);
void rb_link_stop(rb_link *l);
void rb_link_free(rb_link *l);
/* Periodic: connect and command timeouts. */
void rb_link_check(rb_link *l);
/* A command on the command connection; fn gets NULL when the link fails
 * first. weight: what it counts against max_pending (1; a batch of
 * publishes, its messages). NB_OK, or NB_ERR_CLOSED (link down: fn is not
 * called) or NB_ERR_AGAIN (too many commands in flight). */
int32_t rb_link_command(rb_link *l, uint32_t weight, rb_reply_fn fn, void *user, int argc,
                        const char **argv, const size_t *lens);
/* SUBSCRIBE / UNSUBSCRIBE one channel on the subscribe connection. */
int32_t rb_link_subscribe(rb_link *l, const char *channel, size_t len, int on);

/* ---- scripts.c ---- */
#define RB_SCRIPT_PUBLISH 0
#define RB_SCRIPT_LOAD 1
#define RB_SCRIPT_PRESENCE 2
#define RB_SCRIPT_BEAT 3
#define RB_SCRIPT_LEAVE 4
void rb_scripts_init(void);
const char *rb_script_text(int script);
/* EVALSHA script with keys and args (at most RB_SCRIPT_MAX_ARGS strings),
 * falling back to EVAL when Redis does not know it (NOSCRIPT, after a
 * restart). Any script but the publish one first sends the publishes the
 * instance has collected, so that Redis runs calls in the order made. */
int32_t rb_script_call(rb_link *l, int script, int nkeys, int nargs, const char **strs,
                       const size_t *lens, rb_reply_fn fn, void *user);

/* ---- batch.c ---- */
/* Start and stop the loop hook that sends each instance's batch before the
 * loop waits; stop answers what is still collected with NB_ERR_CLOSED. */
void rb_batch_start(rb_broker *b);
void rb_batch_stop(rb_broker *b);
/* Queue one encoded message for its room's instance (env: the envelope
 * without seq). done is called exactly once, maybe before this returns. */
void rb_batch_add(rb_link *l, const char *room, uint32_t room_len, const uint8_t *env,
                  uint32_t env_len, nb_broker_done_fn done, void *user);
/* Send what the instance has collected now, as one script call. */
void rb_batch_flush(rb_link *l);
void rb_batch_free(rb_batch *bt);

/* ---- envelope.c ---- */
/* The message as Envelope bytes (seq left out: the script adds it). */
int32_t rb_encode(rb_broker *b, const nb_msg *msg, struct nb_buf **out);
/* A decoded envelope: msg points into it until rb_decoded_free. */
typedef struct rb_decoded {
    nb_msg msg;
    void *env;
    nb_str *users;
} rb_decoded;
int32_t rb_decode(rb_broker *b, const uint8_t *data, uint32_t len, rb_decoded *out);
void rb_decoded_free(rb_broker *b, rb_decoded *d);

/* ---- rooms.c ---- */
typedef struct rb_waiter {
    nb_broker_done_fn done;
    void *user;
    struct rb_waiter *next;
} rb_waiter;

typedef struct rb_load {
    rb_broker *b;
    nb_store_query q;
    char room[RB_ROOM_MAX + 1];
    nb_broker_loaded_fn done;
    void *user;
    void *claim; /* not a load: a presence claim waiting for the subscription */
    struct rb_load *next;
} rb_load;

typedef struct rb_names {
    char (*v)[RB_USER_MAX + 1];
    uint32_t n, cap;
} rb_names;

#define RB_SUB_NONE 0
#define RB_SUB_PENDING 1 /* SUBSCRIBE sent */
#define RB_SUB_ACTIVE 2
#define RB_SUB_LEAVING 3 /* UNSUBSCRIBE sent */

typedef struct rb_room {
    char name[RB_ROOM_MAX + 1];
    uint32_t len;
    uint32_t link;
    int wanted; /* the core wants its events */
    int sub;    /* RB_SUB_* */
    rb_waiter *waiters;
    rb_load *loads; /* wait for the subscription (nothing missed between) */
    uint64_t pv;    /* the newest presence version seen */
    char *presence; /* the newest list's envelope */
    uint32_t presence_len;
    uint64_t shown_pv; /* the last one the core got */
    uint32_t claims;   /* claims of this node in flight */
    rb_names users;    /* this node's users in the room */
    rb_names gone;     /* left while the instance was down: released when it is up */
    struct rb_room *next;
} rb_room;

rb_room *rb_room_get(rb_broker *b, const char *name, uint32_t len, int create);
/* The instance a room lives on: rendezvous hashing over the urls. */
uint32_t rb_room_link(const rb_broker *b, const char *name, uint32_t len);
void rb_room_maybe_free(rb_broker *b, rb_room *r);
int rb_room_add_user(rb_room *r, const char *user, uint32_t len);
void rb_room_remove_user(rb_room *r, const char *user, uint32_t len);
/* Key names: "nebula:<kind>:<room>". */
size_t rb_key(char *out, size_t cap, const char *kind, const char *name, uint32_t len);
/* The subscribe connection's callback (privdata: the link). */
void rb_on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata);
/* A link is up again: subscribe its wanted rooms, register this node's
 * users again. Or down: fail what waits on it. */
void rb_rooms_link_up(rb_broker *b, rb_link *l);
void rb_rooms_link_down(rb_broker *b, rb_link *l);
/* Run a load (now, or once the room's subscription is active). */
void rb_run_load(rb_broker *b, rb_load *ld);
/* A presence envelope from a script's reply or the channel. */
void rb_deliver_presence(rb_broker *b, rb_room *r, const uint8_t *data, uint32_t len);
void rb_rooms_free(rb_broker *b);
/* The vtable's room calls. */
int32_t rb_subscribe(rb_broker *b, const char *room, uint32_t len, nb_broker_done_fn done,
                     void *user);
int32_t rb_unsubscribe(rb_broker *b, const char *room, uint32_t len);
int32_t rb_presence(rb_broker *b, const char *room, uint32_t len, const char *user,
                    uint32_t user_len, uint32_t joined, nb_broker_done_fn done, void *done_user);
int32_t rb_load_history(rb_broker *b, const nb_store_query *q, nb_broker_loaded_fn done,
                        void *user);

/* ---- nodes.c ---- */
void rb_nodes_beat(rb_broker *b);
void rb_nodes_link_down(rb_broker *b, rb_link *l);
/* Withdraw this node from every instance that is up (at stop). */
void rb_nodes_leave(rb_broker *b);
void rb_nodes_free(rb_broker *b);

/* ---- the instance (plugin.c) ---- */
struct rb_broker {
    const nb_host *host;
    struct nb_plugin_ctx *ctx;
    struct ev_loop *loop;
    const char *node_id;
    rb_link *links;
    uint32_t n_links;
    int64_t connect_timeout_ms, command_timeout_ms, heartbeat_ms, node_ttl_ms;
    int64_t reconnect_min_ms, reconnect_max_ms, stream_max_len, max_pending, stop_timeout_ms;
    int64_t publish_batch, publish_batch_bytes; /* a batch's caps (batch.c) */
    ev_prepare flush;                           /* sends the batches before the loop waits */
    int started, stopping;
    int up; /* told the core: at least one instance is up */
    ev_timer tick;
    double next_beat;
    uint64_t rng;
    rb_room **buckets;
    uint32_t n_buckets;
    /* every node seen alive on any instance, as told to the core */
    char (*alive)[RB_NODE_MAX];
    uint32_t n_alive, cap_alive;
    struct nb_metric *m_publishes, *m_reconnects, *m_reaped;
};

/* Status: recompute "any instance up" and tell the core on change. */
void rb_update_status(rb_broker *b, const char *why);
/* A fresh epoch candidate (set NX by the scripts). */
void rb_new_epoch(rb_broker *b, char *out, size_t cap);
uint64_t rb_random(rb_broker *b);
#endif
