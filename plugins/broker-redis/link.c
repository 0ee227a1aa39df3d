/*
 * link.c — one Redis instance, two connections: one for commands (the
 * scripts, pipelined), one in SUBSCRIBE mode (hiredis allows nothing else
 * on it). Both are hiredis async contexts on the core's main loop
 * (redisLibevAttach).
 *
 * Policies, in one place:
 *  - A host name is resolved by a small thread (getaddrinfo blocks); it
 *    hands the address back under a mutex and wakes the loop with an
 *    ev_async. An IP address connects at once.
 *  - A link is up when both connections are connected and authenticated.
 *    When either fails — refused, closed, a connect that takes longer than
 *    connect_timeout_ms, a command unanswered for command_timeout_ms — both
 *    are dropped: every command in flight is answered (with no reply) and
 *    the link retries after an exponential backoff with jitter, from
 *    reconnect_min_ms up to reconnect_max_ms. The first failure of an
 *    outage is logged, the retries are not.
 *  - Nothing is queued while a link is down (commands are refused at
 *    once), and at most max_pending commands are in flight while it is up
 *    (a batch of publishes counts one per message, and the batch being
 *    collected counts too, batch.c): memory stays bounded whatever Redis
 *    does.
 */
#include "rb.h"

#include <arpa/inet.h>
#include <hiredis/adapters/libev.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void link_connect(rb_link *l);

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents) {
    (void)loop;
    (void)revents;
    link_connect(t->data);
}

/* The resolver thread: one lookup, handed back under the mutex. */
static void *resolve_main(void *arg) {
    rb_link *l = arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(l->url.host, NULL, &hints, &res);
    char addr[64] = "";
    char err[sizeof l->res_err] = "";
    if (rc != 0 || !res) {
        snprintf(err, sizeof err, "cannot resolve %s: %s", l->url.host,
                 rc ? gai_strerror(rc) : "no address");
    } else {
        /* the first IPv4 address if there is one (Redis binds 127.0.0.1 by
         * default, and "localhost" often answers ::1 first), else the first */
        const struct addrinfo *pick = res;
        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
            if (ai->ai_family == AF_INET) {
                pick = ai;
                break;
            }
        const void *a = pick->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr;
        if (!inet_ntop(pick->ai_family, a, addr, sizeof addr))
            snprintf(err, sizeof err, "cannot resolve %s: bad address", l->url.host);
        freeaddrinfo(res);
    }
    pthread_mutex_lock(&l->mu);
    memcpy(l->res_addr, addr, sizeof addr);
    memcpy(l->res_err, err, sizeof err);
    pthread_mutex_unlock(&l->mu);
    ev_async_send(l->b->loop, &l->resolved);
    return NULL;
}

static void schedule_retry(rb_link *l, const char *why) {
    rb_broker *b = l->b;
    if (b->stopping)
        return;
    if (!l->outage_logged) {
        b->host->log(b->ctx, NB_LOG_WARN, "redis %s: %s; retrying with backoff", l->shown, why);
        l->outage_logged = 1;
    }
    double delay = (double)b->reconnect_min_ms;
    for (uint32_t i = 0; i < l->attempt && delay < (double)b->reconnect_max_ms; i++)
        delay *= 2;
    if (delay > (double)b->reconnect_max_ms)
        delay = (double)b->reconnect_max_ms;
    /* jitter: a random point in the upper half, so nodes do not retry in step */
    delay *= 0.5 + (double)(rb_random(b) % 1000) / 2000.0;
    if (l->attempt < 32)
        l->attempt++;
    ev_timer_stop(b->loop, &l->retry);
    ev_timer_set(&l->retry, delay / 1000.0, 0);
    ev_timer_start(b->loop, &l->retry);
}

/* Drop both connections (answering what is in flight) and retry. */
static void link_fail(rb_link *l, const char *why) {
    rb_broker *b = l->b;
    int was_up = l->up;
    redisAsyncContext *cmd = l->cmd, *sub = l->sub;
    l->cmd = l->sub = NULL;
    l->cmd_ready = l->sub_ready = l->up = 0;
    l->connecting = 0;
    l->pending = 0;
    if (cmd)
        redisAsyncFree(cmd); /* pending callbacks get NULL */
    if (sub)
        redisAsyncFree(sub);
    if (was_up) {
        rb_rooms_link_down(b, l);
        rb_nodes_link_down(b, l);
        rb_update_status(b, why);
    }
    schedule_retry(l, why);
}

static void became_ready(rb_link *l) {
    rb_broker *b = l->b;
    if (!l->cmd_ready || !l->sub_ready || l->up)
        return;
    l->up = 1;
    l->connecting = 0;
    l->attempt = 0;
    l->last_reply = ev_now(b->loop);
    if (l->outage_logged)
        b->host->log(b->ctx, NB_LOG_INFO, "redis %s: connected again", l->shown);
    else
        b->host->log(b->ctx, NB_LOG_INFO, "redis %s: connected", l->shown);
    l->outage_logged = 0;
    b->host->metric_add(b->m_reconnects, 1);
    rb_rooms_link_up(b, l);
    rb_update_status(b, NULL);
    rb_nodes_beat(b);
}

static rb_link *link_of(const redisAsyncContext *ac) {
    return ac->data;
}

/* A setup reply (AUTH, SELECT, SCRIPT LOAD, PING): when the last one is
 * in, the connection is ready. privdata: 1 = commands, 2 = subscribe. */
static void on_setup(redisAsyncContext *ac, void *r, void *privdata) {
    rb_link *l = link_of(ac);
    redisReply *reply = r;
    int which = *(const int *)privdata;
    if (!l || (ac != l->cmd && ac != l->sub))
        return; /* dropped meanwhile */
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof why, "%s", reply ? reply->str : "no answer while setting up");
        link_fail(l, why);
        return;
    }
    if (--l->setup_left[which - 1])
        return;
    if (which == 1)
        l->cmd_ready = 1;
    else
        l->sub_ready = 1;
    became_ready(l);
}

static void on_connected(const redisAsyncContext *ac, int status) {
    rb_link *l = link_of(ac);
    if (!l || (ac != l->cmd && ac != l->sub))
        return;
    if (status != REDIS_OK) {
        char why[200];
        snprintf(why, sizeof why, "cannot connect: %s", ac->errstr);
        /* hiredis frees ac after this callback */
        if (ac == l->cmd)
            l->cmd = NULL;
        else
            l->sub = NULL;
        link_fail(l, why);
    }
}

static void on_disconnected(const redisAsyncContext *ac, int status) {
    rb_link *l = link_of(ac);
    if (!l || (ac != l->cmd && ac != l->sub))
        return;
    if (ac == l->cmd)
        l->cmd = NULL; /* hiredis frees it */
    else
        l->sub = NULL;
    link_fail(l, status == REDIS_OK ? "connection closed" : ac->errstr);
}

/* Open one connection and queue its AUTH / SELECT (hiredis sends them once
 * connected; replies come in order). */
/* on_setup's privdata: which connection a setup reply belongs to. */
static int setup_tags[2] = {1, 2};

static redisAsyncContext *open_one(rb_link *l, int which) {
    rb_broker *b = l->b;
    redisAsyncContext *ac = redisAsyncConnect(l->addr, l->url.port);
    if (!ac)
        return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = l;
    redisLibevAttach(b->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connected);
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    void *tag = &setup_tags[which - 1];
    uint32_t *left = &l->setup_left[which - 1];
    *left = 0;
    if (l->url.password[0]) {
        const char *argv[3] = {"AUTH", l->url.user, l->url.password};
        size_t lens[3] = {4, strlen(l->url.user), strlen(l->url.password)};
        int first = l->url.user[0] ? 0 : 1; /* AUTH password, or AUTH user password */
        if (first) {
            argv[1] = l->url.password;
            lens[1] = lens[2];
        }
        redisAsyncCommandArgv(ac, on_setup, tag, 3 - first, argv, lens);
        ++*left;
    }
    if (which == 1 && l->url.db) {
        char db[16];
        int n = snprintf(db, sizeof db, "%d", l->url.db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, (size_t)n};
        redisAsyncCommandArgv(ac, on_setup, tag, 2, argv, lens);
        ++*left;
    }
    if (which == 1) {
        /* Load the scripts before anything calls them, so that EVALSHA's
         * fall-back to EVAL (which would reorder calls) is left for a
         * script cache flushed while connected. */
        for (int i = 0; i < RB_SCRIPT_COUNT; i++) {
            const char *argv[3] = {"SCRIPT", "LOAD", rb_script_text(i)};
            size_t lens[3] = {6, 4, strlen(argv[2])};
            redisAsyncCommandArgv(ac, on_setup, tag, 3, argv, lens);
            ++*left;
        }
    } else {
        const char *argv[1] = {"PING"}; /* proves the connection */
        size_t lens[1] = {4};
        redisAsyncCommandArgv(ac, on_setup, tag, 1, argv, lens);
        ++*left;
    }
    return ac;
}

static void connect_addr(rb_link *l) {
    l->cmd = open_one(l, 1);
    l->sub = l->cmd ? open_one(l, 2) : NULL;
    if (!l->cmd || !l->sub)
        link_fail(l, "cannot create a connection (out of memory or descriptors)");
}

static void on_resolved(struct ev_loop *loop, ev_async *a, int revents) {
    (void)loop;
    (void)revents;
    rb_link *l = a->data;
    if (!l->resolving)
        return;
    pthread_join(l->resolver, NULL);
    l->resolving = 0;
    char err[sizeof l->res_err];
    pthread_mutex_lock(&l->mu);
    snprintf(l->addr, sizeof l->addr, "%s", l->res_addr);
    memcpy(err, l->res_err, sizeof err);
    pthread_mutex_unlock(&l->mu);
    if (l->b->stopping)
        return;
    if (err[0])
        link_fail(l, err);
    else
        connect_addr(l);
}

static void link_connect(rb_link *l) {
    rb_broker *b = l->b;
    if (b->stopping || l->connecting || l->up || l->resolving)
        return;
    l->connecting = 1;
    l->connect_started = ev_now(b->loop);
    if (l->literal) {
        connect_addr(l);
        return;
    }
    if (pthread_create(&l->resolver, NULL, resolve_main, l) != 0) {
        l->connecting = 0;
        schedule_retry(l, "cannot start the name resolver thread");
        return;
    }
    l->resolving = 1;
}

int rb_link_init(rb_link *l, rb_broker *b, uint32_t index, const char *url, const char **why) {
    memset(l, 0, sizeof *l);
    l->b = b;
    l->index = index;
    if (rb_url_parse(url, &l->url, why) < 0)
        return -1;
    snprintf(l->shown, sizeof l->shown, "%s:%d/%d", l->url.host, l->url.port, l->url.db);
    unsigned char tmp[16];
    l->literal =
        inet_pton(AF_INET, l->url.host, tmp) == 1 || inet_pton(AF_INET6, l->url.host, tmp) == 1;
    if (l->literal)
        snprintf(l->addr, sizeof l->addr, "%s", l->url.host);
    pthread_mutex_init(&l->mu, NULL);
    return 0;
}

void rb_link_start(rb_link *l) {
    rb_broker *b = l->b;
    ev_timer_init(&l->retry, on_retry, 0, 0);
    l->retry.data = l;
    ev_async_init(&l->resolved, on_resolved);
    l->resolved.data = l;
    ev_async_start(b->loop, &l->resolved);
    link_connect(l);
}

void rb_link_stop(rb_link *l) {
    rb_broker *b = l->b;
    ev_timer_stop(b->loop, &l->retry);
    if (l->resolving) {
        /* A lookup in flight: wait for it (bounded by the resolver's own
         * timeout); its answer is dropped. */
        pthread_join(l->resolver, NULL);
        l->resolving = 0;
    }
    ev_async_stop(b->loop, &l->resolved);
    redisAsyncContext *cmd = l->cmd, *sub = l->sub;
    l->cmd = l->sub = NULL;
    l->up = l->cmd_ready = l->sub_ready = 0;
    if (cmd)
        redisAsyncFree(cmd);
    if (sub)
        redisAsyncFree(sub);
}

void rb_link_free(rb_link *l) {
    rb_batch_free(&l->batch);
    pthread_mutex_destroy(&l->mu);
    free(l->seen);
    l->seen = NULL;
}

void rb_link_check(rb_link *l) {
    rb_broker *b = l->b;
    double now = ev_now(b->loop);
    if (l->connecting && !l->resolving && !l->up &&
        now - l->connect_started > (double)b->connect_timeout_ms / 1000.0) {
        link_fail(l, "connect timed out");
    } else if (l->up && l->pending &&
               now - l->last_reply > (double)b->command_timeout_ms / 1000.0) {
        link_fail(l, "a command got no answer in time");
    }
}

/* ---- commands ---------------------------------------------------------- */

typedef struct rb_cmd {
    rb_link *link;
    rb_reply_fn fn;
    void *user;
    uint32_t weight;
} rb_cmd;

static void on_reply(redisAsyncContext *ac, void *r, void *privdata) {
    rb_cmd *c = privdata;
    rb_link *l = c->link;
    if (l->cmd == ac && l->pending) {
        l->pending -= c->weight < l->pending ? c->weight : l->pending;
        l->last_reply = ev_now(l->b->loop);
    }
    c->fn(l, r, c->user);
    free(c);
}

int32_t rb_link_command(rb_link *l, uint32_t weight, rb_reply_fn fn, void *user, int argc,
                        const char **argv, const size_t *lens) {
    if (!l->up || !l->cmd)
        return NB_ERR_CLOSED;
    if (weight < 1)
        weight = 1;
    if ((uint64_t)l->pending + weight > (uint64_t)l->b->max_pending)
        return NB_ERR_AGAIN;
    rb_cmd *c = malloc(sizeof *c);
    if (!c)
        return NB_ERR_NOMEM;
    *c = (rb_cmd){l, fn, user, weight};
    if (!l->pending)
        l->last_reply = ev_now(l->b->loop); /* the timeout counts from here */
    if (redisAsyncCommandArgv(l->cmd, on_reply, c, argc, argv, lens) != REDIS_OK) {
        free(c);
        return NB_ERR_CLOSED;
    }
    l->pending += weight;
    return NB_OK;
}

int32_t rb_link_subscribe(rb_link *l, const char *channel, size_t len, int on) {
    if (!l->up || !l->sub)
        return NB_ERR_CLOSED;
    const char *argv[2] = {on ? "SUBSCRIBE" : "UNSUBSCRIBE", channel};
    size_t lens[2] = {on ? 9u : 11u, len};
    return redisAsyncCommandArgv(l->sub, rb_on_sub_reply, l, 2, argv, lens) == REDIS_OK
               ? NB_OK
               : NB_ERR_CLOSED;
}
