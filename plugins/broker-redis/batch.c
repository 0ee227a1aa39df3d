/*
 * batch.c — publishes go to Redis in batches: the messages published on
 * one instance during one turn of the loop are sequenced by ONE call of
 * the publish script (scripts.c), which runs each message as a single
 * call would (its room's next seq, the stream, the channel) in the order
 * given, and returns the seqs in that order. Redis's cost per message is
 * then a few commands inside a script instead of a whole EVALSHA.
 *
 * When a batch is sent:
 *  - before the loop waits (an ev_prepare watcher): what one turn
 *    produced goes out together, and nothing waits longer than that turn;
 *  - at once when it holds publish_batch messages or publish_batch_bytes
 *    of arguments (publish_batch = 1: one call per message, sent when
 *    made);
 *  - before any other script call on the same instance (a presence, a
 *    history load, a heartbeat), so that Redis runs them in the order the
 *    node made them, as when every call was sent when made.
 *
 * Completions: each message's, in order, with its own seq; a call that
 * fails as a whole (the instance gone, an error reply) fails every message
 * it carried, as one message's call failing fails that message. A message
 * is refused at once (NB_ERR_CLOSED, NB_ERR_AGAIN) when its instance is
 * down or max_pending messages are in flight or collected.
 */
#include "rb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A batch in flight: the completions of its messages, in order. */
typedef struct batch_call {
    rb_broker *b;
    uint32_t n;
    rb_pub pubs[];
} batch_call;

static void fail_all(const rb_pub *pubs, uint32_t n, int32_t status) {
    for (uint32_t i = 0; i < n; i++)
        pubs[i].done(pubs[i].user, status, 0);
}

static void on_batch_reply(rb_link *l, redisReply *reply, void *user) {
    batch_call *bc = user;
    rb_broker *b = bc->b;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != bc->n) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            b->host->log(b->ctx, NB_LOG_WARN, "redis %s: publish script failed: %s", l->shown,
                         reply->str);
        else if (reply)
            b->host->log(b->ctx, NB_LOG_WARN, "redis %s: publish script answered %zu for %u",
                         l->shown, reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0, bc->n);
        fail_all(bc->pubs, bc->n, NB_ERR_CLOSED);
        free(bc);
        return;
    }
    int64_t ok = 0;
    int logged = 0;
    for (uint32_t i = 0; i < bc->n; i++) {
        const redisReply *e = reply->element[i];
        if (e->type == REDIS_REPLY_INTEGER && e->integer > 0) {
            ok++;
            bc->pubs[i].done(bc->pubs[i].user, NB_OK, (uint64_t)e->integer);
            continue;
        }
        if (!logged && e->type == REDIS_REPLY_ERROR) { /* once a batch: they fail alike */
            b->host->log(b->ctx, NB_LOG_WARN, "redis %s: publish script failed: %s", l->shown,
                         e->str);
            logged = 1;
        }
        bc->pubs[i].done(bc->pubs[i].user, NB_ERR_CLOSED, 0);
    }
    b->host->metric_add(b->m_publishes, ok);
    free(bc);
}

void rb_batch_flush(rb_link *l) {
    rb_batch *bt = &l->batch;
    if (!bt->n)
        return;
    rb_broker *b = l->b;
    uint32_t n = bt->n;
    batch_call *bc = malloc(sizeof *bc + n * sizeof bc->pubs[0]);
    const char **strs = malloc((2 + 2 * (size_t)n) * sizeof *strs);
    size_t *lens = malloc((2 + 2 * (size_t)n) * sizeof *lens);
    int32_t rc = NB_ERR_NOMEM;
    if (bc && strs && lens) {
        bc->b = b;
        bc->n = n;
        memcpy(bc->pubs, bt->pubs, n * sizeof bc->pubs[0]);
        char maxlen[24], epoch[64];
        int nm = snprintf(maxlen, sizeof maxlen, "%lld", (long long)b->stream_max_len);
        rb_new_epoch(b, epoch, sizeof epoch);
        strs[0] = maxlen;
        lens[0] = (size_t)nm;
        strs[1] = epoch;
        lens[1] = strlen(epoch);
        const char *p = bt->data;
        for (size_t i = 0; i < 2 * (size_t)n; i++) {
            strs[2 + i] = p;
            lens[2 + i] = bt->lens[i];
            p += bt->lens[i];
        }
        rc =
            rb_script_call(l, RB_SCRIPT_PUBLISH, 0, 2 + 2 * (int)n, strs, lens, on_batch_reply, bc);
    }
    free(strs);
    free(lens);
    /* Emptied before any completion runs: a completion may publish again. */
    bt->n = 0;
    bt->len = 0;
    if (rc != NB_OK) {
        if (bc) {
            fail_all(bc->pubs, n, rc);
        } else { /* no memory even to keep the completions: answer from the batch's own copy */
            rb_pub *pubs = bt->pubs;
            bt->pubs = NULL;
            bt->cap = 0;
            fail_all(pubs, n, rc);
            free(pubs);
        }
        free(bc);
    }
}

/* Room for one more message of `bytes` argument bytes. */
static int reserve(rb_batch *bt, size_t bytes) {
    if (bt->n == bt->cap) {
        uint32_t cap = bt->cap ? bt->cap * 2 : 16;
        rb_pub *pubs = realloc(bt->pubs, cap * sizeof *pubs);
        if (!pubs)
            return -1;
        bt->pubs = pubs;
        size_t *lens = realloc(bt->lens, 2 * (size_t)cap * sizeof *lens);
        if (!lens)
            return -1;
        bt->lens = lens;
        bt->cap = cap;
    }
    if (bt->len + bytes > bt->cap_data) {
        size_t cap = bt->cap_data ? bt->cap_data * 2 : 4096;
        while (cap < bt->len + bytes)
            cap *= 2;
        char *data = realloc(bt->data, cap);
        if (!data)
            return -1;
        bt->data = data;
        bt->cap_data = cap;
    }
    return 0;
}

void rb_batch_add(rb_link *l, const char *room, uint32_t room_len, const uint8_t *env,
                  uint32_t env_len, nb_broker_done_fn done, void *user) {
    rb_broker *b = l->b;
    rb_batch *bt = &l->batch;
    if (!l->up || !l->cmd) {
        done(user, NB_ERR_CLOSED, 0);
        return;
    }
    if ((uint64_t)l->pending + bt->n >= (uint64_t)b->max_pending) {
        done(user, NB_ERR_AGAIN, 0);
        return;
    }
    size_t bytes = (size_t)room_len + env_len;
    if (bt->n && bt->len + bytes > (size_t)b->publish_batch_bytes)
        rb_batch_flush(l); /* a large message starts the next batch */
    if (reserve(bt, bytes) < 0) {
        done(user, NB_ERR_NOMEM, 0);
        return;
    }
    memcpy(bt->data + bt->len, room, room_len);
    memcpy(bt->data + bt->len + room_len, env, env_len);
    bt->len += bytes;
    bt->lens[2 * (size_t)bt->n] = room_len;
    bt->lens[2 * (size_t)bt->n + 1] = env_len;
    bt->pubs[bt->n++] = (rb_pub){done, user};
    if (bt->n >= (uint64_t)b->publish_batch || bt->len >= (size_t)b->publish_batch_bytes)
        rb_batch_flush(l);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents) {
    (void)loop;
    (void)revents;
    rb_broker *b = w->data;
    for (uint32_t i = 0; i < b->n_links; i++)
        rb_batch_flush(&b->links[i]);
}

void rb_batch_start(rb_broker *b) {
    ev_prepare_init(&b->flush, on_prepare);
    b->flush.data = b;
    ev_prepare_start(b->loop, &b->flush);
}

void rb_batch_stop(rb_broker *b) {
    ev_prepare_stop(b->loop, &b->flush);
    for (uint32_t i = 0; i < b->n_links; i++) {
        rb_batch *bt = &b->links[i].batch;
        while (bt->n) { /* a completion may publish again: take them first */
            uint32_t n = bt->n;
            rb_pub *pubs = bt->pubs;
            bt->pubs = NULL;
            bt->n = bt->cap = 0;
            bt->len = 0;
            fail_all(pubs, n, NB_ERR_CLOSED);
            free(pubs);
        }
    }
}

void rb_batch_free(rb_batch *bt) {
    free(bt->pubs);
    free(bt->lens);
    free(bt->data);
    memset(bt, 0, sizeof *bt);
}
