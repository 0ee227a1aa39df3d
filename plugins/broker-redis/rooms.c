/*
 * rooms.c — the rooms this node has to do with: which Redis instance each
 * lives on, its subscription, this node's users in it (to register them
 * again after an outage), and what comes in on its channel.
 *
 * Subscription, per room: NONE -> PENDING (SUBSCRIBE sent) -> ACTIVE ->
 * LEAVING (UNSUBSCRIBE sent) -> NONE. hiredis 0.14 forgets a channel's
 * callback when its unsubscribe reply arrives, so a SUBSCRIBE sent while
 * an UNSUBSCRIBE of the same channel is in flight would lose the channel:
 * a room wanted again while LEAVING subscribes only once the unsubscribe
 * is confirmed. A history load of a subscribed room waits until the
 * subscription is ACTIVE, so that nothing published between the load and
 * the subscription is missed (the core drops what it already has).
 */
#include "rb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANNEL_PREFIX "nebula:room:"

static uint64_t mix(uint64_t x) { /* a 64-bit finaliser (splitmix64) */
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/*
 * Rendezvous (highest random weight) hashing: a room lives on the
 * instance whose hash of (instance, room) is highest. The instance is
 * named by its host:port/db, not its place in the list, so reordering
 * urls moves nothing; adding an instance moves only the rooms that now
 * score highest on it (about 1/n of them), removing one moves only its
 * own rooms. docs/BROKER_REDIS.md says what happens to their history.
 */
uint32_t rb_room_link(const rb_broker *b, const char *name, uint32_t len) {
    uint32_t best = 0;
    uint64_t best_score = 0;
    for (uint32_t i = 0; i < b->n_links; i++) {
        const char *id = b->links[i].shown;
        uint64_t h = fnv(UINT64_C(0xcbf29ce484222325), id, strlen(id) + 1);
        uint64_t score = mix(fnv(h, name, len));
        if (i == 0 || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}

size_t rb_key(char *out, size_t cap, const char *kind, const char *name, uint32_t len) {
    int n = snprintf(out, cap, "nebula:%s:%.*s", kind, (int)len, name);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static uint32_t bucket_of(const rb_broker *b, const char *name, uint32_t len) {
    return (uint32_t)(mix(fnv(UINT64_C(0xcbf29ce484222325), name, len)) % b->n_buckets);
}

rb_room *rb_room_get(rb_broker *b, const char *name, uint32_t len, int create) {
    if (len > RB_ROOM_MAX)
        return NULL;
    uint32_t k = bucket_of(b, name, len);
    for (rb_room *r = b->buckets[k]; r; r = r->next)
        if (r->len == len && memcmp(r->name, name, len) == 0)
            return r;
    if (!create)
        return NULL;
    rb_room *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    memcpy(r->name, name, len);
    r->len = len;
    r->link = rb_room_link(b, name, len);
    r->next = b->buckets[k];
    b->buckets[k] = r;
    return r;
}

void rb_room_maybe_free(rb_broker *b, rb_room *r) {
    if (r->wanted || r->sub != RB_SUB_NONE || r->waiters || r->loads || r->users.n || r->gone.n ||
        r->claims)
        return;
    rb_room **pp = &b->buckets[bucket_of(b, r->name, r->len)];
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp)
        *pp = r->next;
    free(r->users.v);
    free(r->gone.v);
    free(r->presence);
    free(r);
}

/* A set of user names (small: one room's users on this node). */
static int names_add(rb_names *s, const char *user, uint32_t len) {
    if (len > RB_USER_MAX)
        return -1;
    for (uint32_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && memcmp(s->v[i], user, len) == 0)
            return 0;
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 4;
        char(*v)[RB_USER_MAX + 1] = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    memcpy(s->v[s->n], user, len);
    s->v[s->n][len] = '\0';
    s->n++;
    return 0;
}

static void names_remove(rb_names *s, const char *user, uint32_t len) {
    for (uint32_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && memcmp(s->v[i], user, len) == 0) {
            memcpy(s->v[i], s->v[--s->n], sizeof s->v[i]);
            return;
        }
}

int rb_room_add_user(rb_room *r, const char *user, uint32_t len) {
    names_remove(&r->gone, user, len);
    return names_add(&r->users, user, len);
}

void rb_room_remove_user(rb_room *r, const char *user, uint32_t len) {
    names_remove(&r->users, user, len);
}

/* ---- subscription ------------------------------------------------------- */

static void send_sub(rb_broker *b, rb_room *r, int on) {
    char ch[sizeof CHANNEL_PREFIX + RB_ROOM_MAX];
    int n = snprintf(ch, sizeof ch, CHANNEL_PREFIX "%.*s", (int)r->len, r->name);
    if (rb_link_subscribe(&b->links[r->link], ch, (size_t)n, on) == NB_OK)
        r->sub = on ? RB_SUB_PENDING : RB_SUB_LEAVING;
    else
        r->sub = RB_SUB_NONE; /* link down: subscribed again when it is up */
}

static void finish_waiters(rb_room *r, int32_t status) {
    rb_waiter *w = r->waiters;
    r->waiters = NULL;
    while (w) {
        rb_waiter *next = w->next;
        w->done(w->user, status, 0);
        free(w);
        w = next;
    }
}

static void run_claim(rb_broker *b, rb_load *ld, int32_t fail);

static void fail_load(rb_broker *b, rb_load *ld, int32_t status) {
    if (ld->claim) {
        run_claim(b, ld, status);
        return;
    }
    nb_store_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    ld->done(ld->user, status, &res, NULL, 0);
    free(ld);
}

static void run_loads(rb_broker *b, rb_room *r, int32_t fail) {
    rb_load *ld = r->loads;
    r->loads = NULL;
    while (ld) {
        rb_load *next = ld->next;
        ld->next = NULL;
        if (fail)
            fail_load(b, ld, fail);
        else if (ld->claim)
            run_claim(b, ld, 0);
        else
            rb_run_load(b, ld);
        ld = next;
    }
}

/* Keep the newest presence list of a room (its bytes), to give it again
 * to a joiner whose claim completes after the list went by. */
static void keep_presence(rb_room *r, const uint8_t *data, uint32_t len) {
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, data, len);
    free(r->presence);
    r->presence = copy;
    r->presence_len = len;
}

/*
 * Presence lists go to the core newest first (by presence version), but
 * wait while a claim of this node is out for the room: the core announces
 * a claimed join when the claim's answer arrives on the command
 * connection, and the list that follows from it may arrive earlier on the
 * subscribe connection. A claim's answer carries its own list, delivered
 * right after the join; newer lists wait until no claim is out. Members
 * see join, then list.
 */
static void show_presence(rb_broker *b, rb_room *r, const uint8_t *data, uint32_t len,
                          uint64_t pv) {
    rb_decoded d;
    if (pv <= r->shown_pv || rb_decode(b, data, len, &d) != NB_OK)
        return;
    r->shown_pv = pv;
    b->host->broker_deliver(b->ctx, &d.msg);
    rb_decoded_free(b, &d);
}

static void flush_presence(rb_broker *b, rb_room *r) {
    if (!r->claims && r->presence)
        show_presence(b, r, (const uint8_t *)r->presence, r->presence_len, r->pv);
}

/* A publication of the room's channel (or a script's reply): a message,
 * another node's join or leave, or a presence list. claim_answer: the list
 * a claim of this node returned. */
static void deliver_message(rb_broker *b, rb_room *r, const uint8_t *data, uint32_t len,
                            int claim_answer) {
    rb_decoded d;
    if (rb_decode(b, data, len, &d) != NB_OK) {
        b->host->log(b->ctx, NB_LOG_WARN, "room %s: an undecodable publication was ignored",
                     r->name);
        return;
    }
    if (d.msg.type == NB_MSG_MESSAGE && d.msg.room.len == r->len &&
        memcmp(d.msg.room.ptr, r->name, r->len) == 0) {
        b->host->broker_deliver(b->ctx, &d.msg);
    } else if ((d.msg.type == NB_MSG_JOIN || d.msg.type == NB_MSG_LEAVE) && d.msg.sender.ptr &&
               d.msg.id.ptr &&
               !(d.msg.id.len == strlen(b->node_id) &&
                 memcmp(d.msg.id.ptr, b->node_id, d.msg.id.len) == 0)) {
        d.msg.id = (nb_str){NULL, 0, 0}; /* another node's user; the core announced ours */
        b->host->broker_deliver(b->ctx, &d.msg);
    } else if (d.msg.type == NB_MSG_PRESENCE) {
        uint64_t pv = d.msg.seq;
        if (pv > r->pv) {
            r->pv = pv;
            keep_presence(r, data, len);
        }
        if (claim_answer)
            show_presence(b, r, data, len, pv);
    }
    rb_decoded_free(b, &d);
    flush_presence(b, r);
}

void rb_deliver_presence(rb_broker *b, rb_room *r, const uint8_t *data, uint32_t len) {
    deliver_message(b, r, data, len, 0);
}

void rb_on_sub_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    rb_link *l = privdata;
    rb_broker *b = l->b;
    const redisReply *reply = reply_;
    if (!reply || ac != l->sub || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *ch = reply->element[1];
    size_t plen = sizeof CHANNEL_PREFIX - 1;
    if (ch->len <= plen || memcmp(ch->str, CHANNEL_PREFIX, plen) != 0)
        return;
    rb_room *r = rb_room_get(b, ch->str + plen, (uint32_t)(ch->len - plen), 0);
    if (!r)
        return;
    if (strcmp(kind, "message") == 0) {
        const redisReply *p = reply->element[2];
        if (r->sub == RB_SUB_ACTIVE && p->type == REDIS_REPLY_STRING)
            deliver_message(b, r, (const uint8_t *)p->str, (uint32_t)p->len, 0);
    } else if (strcmp(kind, "subscribe") == 0 && r->sub == RB_SUB_PENDING) {
        r->sub = RB_SUB_ACTIVE;
        finish_waiters(r, NB_OK);
        run_loads(b, r, 0);
        if (!r->wanted)
            send_sub(b, r, 0); /* unsubscribed meanwhile */
    } else if (strcmp(kind, "unsubscribe") == 0 && r->sub == RB_SUB_LEAVING) {
        r->sub = RB_SUB_NONE;
        if (r->wanted)
            send_sub(b, r, 1); /* wanted again meanwhile */
        rb_room_maybe_free(b, r);
    }
}

/* ---- the vtable's room calls (plugin.c) --------------------------------- */

int32_t rb_subscribe(rb_broker *b, const char *room, uint32_t len, nb_broker_done_fn done,
                     void *user) {
    rb_room *r = rb_room_get(b, room, len, 1);
    if (!r) {
        done(user, NB_ERR_NOMEM, 0);
        return NB_OK;
    }
    r->wanted = 1;
    if (r->sub == RB_SUB_ACTIVE) {
        done(user, NB_OK, 0);
        return NB_OK;
    }
    if (r->sub == RB_SUB_NONE)
        send_sub(b, r, 1);
    rb_waiter *w = r->sub != RB_SUB_NONE ? malloc(sizeof *w) : NULL;
    if (!w) { /* link down (subscribed when it is back) or out of memory */
        done(user, r->sub == RB_SUB_NONE ? NB_ERR_CLOSED : NB_ERR_NOMEM, 0);
        return NB_OK;
    }
    *w = (rb_waiter){done, user, r->waiters};
    r->waiters = w;
    return NB_OK;
}

int32_t rb_unsubscribe(rb_broker *b, const char *room, uint32_t len) {
    rb_room *r = rb_room_get(b, room, len, 0);
    if (!r)
        return NB_OK;
    r->wanted = 0;
    if (r->sub == RB_SUB_ACTIVE)
        send_sub(b, r, 0);
    rb_room_maybe_free(b, r);
    return NB_OK;
}

/* ---- presence ----------------------------------------------------------- */

typedef struct presence_call {
    rb_broker *b;
    int release;
    char room[RB_ROOM_MAX + 1];
    char user[RB_USER_MAX + 1];
    uint32_t room_len, user_len;
    nb_broker_done_fn done;
    void *done_user;
} presence_call;

static void on_presence(rb_link *l, redisReply *reply, void *user) {
    (void)l;
    presence_call *pc = user;
    rb_broker *b = pc->b;
    rb_room *r = rb_room_get(b, pc->room, pc->room_len, 0);
    if (r && pc->done && r->claims)
        r->claims--;
    if (r && pc->release && (!reply || reply->type == REDIS_REPLY_ERROR))
        names_add(&r->gone, pc->user, pc->user_len); /* given back when the link is */
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (reply)
            b->host->log(b->ctx, NB_LOG_WARN, "room %s: presence script failed: %s", pc->room,
                         reply->str);
        if (pc->done)
            pc->done(pc->done_user, NB_ERR_CLOSED, 0);
    } else if (reply->type == REDIS_REPLY_INTEGER) { /* refused / not ours */
        if (pc->done) {
            if (r)
                rb_room_remove_user(r, pc->user, pc->user_len);
            pc->done(pc->done_user, NB_ERR_TAKEN, 0);
        }
    } else if (pc->done) {
        pc->done(pc->done_user, NB_OK, 0); /* the core announces the join now */
    }
    r = rb_room_get(b, pc->room, pc->room_len, 0); /* done may have changed rooms */
    if (r && reply && reply->type == REDIS_REPLY_STRING)
        deliver_message(b, r, (const uint8_t *)reply->str, (uint32_t)reply->len, pc->done != NULL);
    else if (r)
        flush_presence(b, r);
    if (r)
        rb_room_maybe_free(b, r);
    free(pc);
}

/* mode: "claim", "force" (register without refusal) or "release". */
static int32_t send_presence(rb_broker *b, rb_room *r, const char *mode, const char *user,
                             uint32_t user_len, nb_broker_done_fn done, void *done_user) {
    presence_call *pc = calloc(1, sizeof *pc);
    if (!pc)
        return NB_ERR_NOMEM;
    pc->b = b;
    memcpy(pc->room, r->name, r->len);
    pc->room_len = r->len;
    memcpy(pc->user, user, user_len);
    pc->user_len = user_len;
    pc->done = done;
    pc->done_user = done_user;
    pc->release = strcmp(mode, "release") == 0;
    const char *args[4] = {mode, r->name, user, b->node_id};
    size_t lens[4] = {strlen(mode), r->len, user_len, strlen(b->node_id)};
    int32_t rc =
        rb_script_call(&b->links[r->link], RB_SCRIPT_PRESENCE, 0, 4, args, lens, on_presence, pc);
    if (rc != NB_OK)
        free(pc);
    else if (done)
        r->claims++; /* lists wait until the claimed join is announced */
    return rc;
}

/* A user leaves before its claim, still waiting for the subscription, was
 * sent: the claim is dropped (answered as failed; the core has forgotten
 * the join), so a release sent now cannot run before it in Redis. */
static void cancel_claim(rb_broker *b, rb_room *r, const char *user, uint32_t user_len) {
    for (rb_load **pp = &r->loads; *pp;) {
        rb_load *ld = *pp;
        const presence_call *pc = ld->claim;
        if (pc && pc->user_len == user_len && memcmp(pc->user, user, user_len) == 0) {
            *pp = ld->next;
            run_claim(b, ld, NB_ERR_CLOSED);
        } else {
            pp = &ld->next;
        }
    }
}

int32_t rb_presence(rb_broker *b, const char *room, uint32_t len, const char *user,
                    uint32_t user_len, uint32_t joined, nb_broker_done_fn done, void *done_user) {
    rb_room *r = rb_room_get(b, room, len, 1);
    if (!r || user_len > RB_USER_MAX) {
        if (done)
            done(done_user, NB_ERR_NOMEM, 0);
        return NB_OK;
    }
    if (joined && rb_room_add_user(r, user, user_len) < 0) {
        if (done)
            done(done_user, NB_ERR_NOMEM, 0);
        return NB_OK;
    }
    if (!joined) {
        rb_room_remove_user(r, user, user_len);
        cancel_claim(b, r, user, user_len);
    }
    const char *mode = !joined ? "release" : done ? "claim" : "force";
    if (done && r->wanted && r->sub != RB_SUB_ACTIVE && b->links[r->link].up) {
        /* A claim waits behind the room's subscription and first history
         * load, so the core has the room ready when the join goes on. */
        rb_load *ld = calloc(1, sizeof *ld);
        presence_call *pc = ld ? calloc(1, sizeof *pc) : NULL;
        if (pc) {
            pc->b = b;
            memcpy(pc->user, user, user_len);
            pc->user_len = user_len;
            pc->done = done;
            pc->done_user = done_user;
            ld->b = b;
            memcpy(ld->room, room, len);
            ld->claim = pc;
            rb_load **tail = &r->loads;
            while (*tail)
                tail = &(*tail)->next;
            *tail = ld;
            return NB_OK;
        }
        free(ld);
    }
    int32_t rc = send_presence(b, r, mode, user, user_len, done, done_user);
    if (rc != NB_OK && !joined) /* the instance is down: the name is given back when it is up */
        names_add(&r->gone, user, user_len);
    if (rc != NB_OK && done) /* the instance is down: recorded, registered when back */
        done(done_user, rc, 0);
    rb_room_maybe_free(b, r);
    return NB_OK;
}

/* A claim that waited for the subscription: sent now, or failed. */
static void run_claim(rb_broker *b, rb_load *ld, int32_t fail) {
    presence_call *pc = ld->claim;
    rb_room *r = rb_room_get(b, ld->room, (uint32_t)strlen(ld->room), 0);
    int32_t rc = fail ? fail : NB_ERR_CLOSED;
    if (!fail && r)
        rc = send_presence(b, r, "claim", pc->user, pc->user_len, pc->done, pc->done_user);
    if (rc != NB_OK)
        pc->done(pc->done_user, rc, 0);
    free(pc);
    free(ld);
}

/* ---- history ------------------------------------------------------------- */

static uint64_t as_u64(const redisReply *r) {
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

/* {last seq, epoch, first seq, envelopes newest first...} */
static void on_loaded(rb_link *l, redisReply *reply, void *user) {
    (void)l;
    rb_load *ld = user;
    rb_broker *b = ld->b;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            b->host->log(b->ctx, NB_LOG_WARN, "room %s: history script failed: %s", ld->room,
                         reply->str);
        fail_load(b, ld, NB_ERR_CLOSED);
        return;
    }
    nb_store_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    res.last_seq = as_u64(reply->element[0]);
    res.epoch = reply->element[1]->str;
    res.first_seq = as_u64(reply->element[2]);
    size_t n = reply->elements - 3;
    rb_decoded *d = n ? calloc(n, sizeof *d) : NULL;
    nb_msg *msgs = n ? calloc(n, sizeof *msgs) : NULL;
    if (n && (!d || !msgs)) {
        free(d);
        free(msgs);
        fail_load(b, ld, NB_ERR_NOMEM);
        return;
    }
    uint32_t k = 0;
    for (size_t i = n; i-- > 0;) { /* oldest first */
        const redisReply *e = reply->element[3 + i];
        if (e->type == REDIS_REPLY_STRING &&
            rb_decode(b, (const uint8_t *)e->str, (uint32_t)e->len, &d[k]) == NB_OK &&
            d[k].msg.type == NB_MSG_MESSAGE) {
            msgs[k] = d[k].msg;
            k++;
        } else {
            rb_decoded_free(b, &d[k]);
        }
    }
    ld->done(ld->user, NB_OK, &res, msgs, k);
    for (uint32_t i = 0; i < k; i++)
        rb_decoded_free(b, &d[i]);
    free(d);
    free(msgs);
    free(ld);
}

void rb_run_load(rb_broker *b, rb_load *ld) {
    uint32_t len = (uint32_t)strlen(ld->room);
    rb_link *l = &b->links[rb_room_link(b, ld->room, len)];
    char count[24], since[24], epoch[64];
    int nc = snprintf(count, sizeof count, "%u", ld->q.max);
    int ns = ld->q.has_since
                 ? snprintf(since, sizeof since, "%llu", (unsigned long long)ld->q.since)
                 : 0;
    if (!ld->q.has_since)
        since[0] = '\0';
    rb_new_epoch(b, epoch, sizeof epoch);
    const char *args[4] = {ld->room, count, since, epoch};
    size_t lens[4] = {len, (size_t)nc, (size_t)ns, strlen(epoch)};
    int32_t rc = rb_script_call(l, RB_SCRIPT_LOAD, 0, 4, args, lens, on_loaded, ld);
    if (rc != NB_OK)
        fail_load(b, ld, rc);
}

int32_t rb_load_history(rb_broker *b, const nb_store_query *q, nb_broker_loaded_fn done,
                        void *user) {
    rb_load *ld = calloc(1, sizeof *ld);
    rb_room *r = ld && q->room_len <= RB_ROOM_MAX ? rb_room_get(b, q->room, q->room_len, 1) : NULL;
    if (!r) {
        nb_store_result res;
        memset(&res, 0, sizeof res);
        res.struct_size = sizeof res;
        free(ld);
        done(user, NB_ERR_NOMEM, &res, NULL, 0);
        return NB_OK;
    }
    ld->b = b;
    ld->q = *q;
    memcpy(ld->room, q->room, q->room_len);
    ld->q.room = ld->room;
    ld->done = done;
    ld->user = user;
    if (!b->links[r->link].up) {
        fail_load(b, ld, NB_ERR_CLOSED);
    } else if (r->wanted && r->sub != RB_SUB_ACTIVE) {
        rb_load **tail = &r->loads; /* after the subscription, first-in first-out */
        while (*tail)
            tail = &(*tail)->next;
        *tail = ld;
    } else {
        rb_run_load(b, ld);
    }
    rb_room_maybe_free(b, r);
    return NB_OK;
}

/* ---- a link comes and goes ---------------------------------------------- */

void rb_rooms_link_up(rb_broker *b, rb_link *l) {
    for (uint32_t k = 0; k < b->n_buckets; k++)
        for (rb_room *r = b->buckets[k]; r; r = r->next) {
            if (r->link != l->index)
                continue;
            r->pv = r->shown_pv = 0; /* the bus may have lost its data: versions start again */
            if (r->wanted && r->sub == RB_SUB_NONE)
                send_sub(b, r, 1);
            /* names given back while it was down, then this node's users,
             * registered again (a name taken meanwhile elsewhere is shared
             * until one of them leaves) */
            rb_names gone = r->gone;
            r->gone = (rb_names){NULL, 0, 0};
            for (uint32_t i = 0; i < gone.n; i++)
                if (send_presence(b, r, "release", gone.v[i], (uint32_t)strlen(gone.v[i]), NULL,
                                  NULL) != NB_OK)
                    names_add(&r->gone, gone.v[i], (uint32_t)strlen(gone.v[i]));
            free(gone.v);
            for (uint32_t i = 0; i < r->users.n; i++)
                send_presence(b, r, "force", r->users.v[i], (uint32_t)strlen(r->users.v[i]), NULL,
                              NULL);
        }
}

void rb_rooms_link_down(rb_broker *b, rb_link *l) {
    for (uint32_t k = 0; k < b->n_buckets; k++) {
        rb_room *r = b->buckets[k];
        while (r) {
            rb_room *next = r->next;
            if (r->link == l->index) {
                r->sub = RB_SUB_NONE;
                finish_waiters(r, NB_ERR_CLOSED);
                run_loads(b, r, NB_ERR_CLOSED);
                rb_room_maybe_free(b, r);
            }
            r = next;
        }
    }
}

void rb_rooms_free(rb_broker *b) {
    for (uint32_t k = 0; k < b->n_buckets; k++) {
        rb_room *r = b->buckets[k];
        while (r) {
            rb_room *next = r->next;
            finish_waiters(r, NB_ERR_CLOSED);
            run_loads(b, r, NB_ERR_CLOSED);
            free(r->users.v);
            free(r->gone.v);
            free(r->presence);
            free(r);
            r = next;
        }
        b->buckets[k] = NULL;
    }
}
