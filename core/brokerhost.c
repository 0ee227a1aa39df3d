/*
 * brokerhost.c — the broker on the main loop.
 *
 * Requests reach the main loop through its mailbox (bounded, [server]
 * main_mailbox_events); a full mailbox refuses a publish, whose sender
 * then gets broker_unavailable. Completions come back on the main loop;
 * an error for a message goes to its sender through its worker's mailbox.
 * While the broker is down, rooms are served locally (sequence.c).
 */
#include "brokerhost.h"

#include "cluster.h"
#include "hub.h"
#include "log.h"
#include "mailbox.h"
#include "pipeline.h"
#include "room.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nb_brokerhost {
    nb_server *srv;
    nb_loaded_plugin plugin;
    struct nb_plugin_ctx ctx;
    const nb_broker_vtable *vt;
    int created;
    int started;
    nb_mailbox mailbox;
};

nb_brokerhost *brokerhost_new(nb_server *srv, const char *name, const nb_host *host) {
    nb_brokerhost *bh = calloc(1, sizeof *bh);
    if (!bh) {
        log_error("out of memory");
        return NULL;
    }
    bh->srv = srv;
    char err[1024];
    if (loader_open(srv->settings.plugin_dir, name, NB_KIND_BROKER, &bh->plugin, err, sizeof err) !=
        0) {
        log_error("%s", err);
        free(bh);
        return NULL;
    }
    log_info("loaded broker plugin %s %s from %s", bh->plugin.desc.name,
             bh->plugin.desc.version ? bh->plugin.desc.version : "", bh->plugin.path);
    bh->vt = &bh->plugin.vt.broker;
    bh->ctx = (struct nb_plugin_ctx){.server = srv, .plugin = &bh->plugin, .loop = srv->main_loop};
    int32_t rc = bh->plugin.desc.create(host, &bh->ctx, &bh->ctx.instance);
    if (rc != NB_OK || !bh->ctx.instance) {
        log_error("%s: refused: create() failed with code %d (the plugin logs its reason, or "
                  "reports it with the config's mistakes)",
                  bh->plugin.path, (int)rc);
        brokerhost_free(bh);
        return NULL;
    }
    bh->created = 1;
    return bh;
}

/* ---- completions ----------------------------------------------------- */

typedef struct publish_ctx {
    nb_server *srv;
    nb_room *room; /* NULL for a relay publish nobody waits on */
    nb_sref origin;
} publish_ctx;

static void publish_done(void *user, int32_t status, uint64_t seq) {
    (void)seq;
    publish_ctx *pc = user;
    nb_server *srv = pc->srv;
    if (status == NB_OK) {
        metrics_add(srv->m.broker_publishes, 1);
    } else {
        metrics_add(srv->m.broker_failures, 1);
        if (pc->origin.gen && pc->room) {
            nb_event ev = {.type = NB_EV_SESSION_ERROR,
                           .room = pc->room,
                           .who = pc->origin,
                           .code = "broker_unavailable",
                           .reason = "the cluster bus did not take the message; it was not sent"};
            room_ref(pc->room);
            if (mailbox_send(&srv->workers[pc->origin.worker].mailbox, &ev) < 0)
                event_release(&ev);
        }
    }
    room_unref(pc->room);
    free(pc);
}

static void subscribe_done(void *user, int32_t status, uint64_t seq) {
    (void)seq;
    nb_room *room = user;
    if (status != NB_OK)
        log_warn("broker: subscribing to room %s failed (code %d); retried when the broker is "
                 "up again",
                 room->name, (int)status);
    room_unref(room);
}

typedef struct claim_ctx {
    nb_server *srv;
    nb_room *room;
    nb_pending *join;
} claim_ctx;

static void claim_done(void *user, int32_t status, uint64_t seq) {
    (void)seq;
    claim_ctx *cc = user;
    pipeline_claimed(cc->srv, cc->room, cc->join, status);
    room_unref(cc->room);
    free(cc->join);
    free(cc);
}

typedef struct load_ctx {
    nb_server *srv;
    nb_room *room;
    int was_since;
    int catch_up; /* after an outage (pipeline_caught_up) */
    uint64_t since;
} load_ctx;

static void load_done(void *user, int32_t status, const nb_store_result *res, const nb_msg *msgs,
                      uint32_t n) {
    load_ctx *lc = user;
    if (lc->catch_up) {
        pipeline_caught_up(lc->srv, lc->room, status == NB_OK, res, msgs, n);
        room_unref(lc->room);
        free(lc);
        return;
    }
    nb_history *h = status == NB_OK ? calloc(1, sizeof *h) : NULL;
    if (h && n) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        h->items = calloc(n, sizeof h->items[0]);
        for (uint32_t i = 0; h->items && i < n; i++)
            if ((h->items[h->n] = record_new(&msgs[i])))
                h->n++;
    }
    if (h && res) {
        snprintf(h->epoch, sizeof h->epoch, "%s", res->epoch ? res->epoch : "");
        if (lc->was_since) {
            uint64_t first = h->n ? h->items[0]->seq : res->last_seq + 1;
            h->incomplete = first > lc->since + 1;
        }
    }
    nb_store_result empty;
    memset(&empty, 0, sizeof empty);
    pipeline_loaded(lc->srv, lc->room, h != NULL, res ? res : &empty, h, lc->was_since);
    room_unref(lc->room);
    free(lc);
}

/* ---- the main loop's mailbox ----------------------------------------- */

static void handle(nb_brokerhost *bh, nb_event *ev) {
    nb_server *srv = bh->srv;
    nb_msg m;
    switch (ev->type) {
    case NB_EV_PUBLISH: {
        publish_ctx *pc = calloc(1, sizeof *pc);
        record_msg(ev->rec, NB_MSG_MESSAGE, &m);
        if (pc) {
            pc->srv = srv;
            pc->origin = ev->who;
            uint32_t hash = hub_hash(m.room.ptr, m.room.len);
            hub_lock(srv->hub, hash);
            pc->room = hub_find_locked(srv->hub, m.room.ptr, m.room.len, hash);
            if (pc->room)
                room_ref(pc->room);
            hub_unlock(srv->hub, hash);
        }
        if (!pc || bh->vt->publish(bh->ctx.instance, &m, publish_done, pc) != NB_OK) {
            /* publish_done was not called: answer here */
            if (pc)
                publish_done(pc, NB_ERR, 0);
        }
        break;
    }
    case NB_EV_SUBSCRIBE:
        room_ref(ev->room);
        if (bh->vt->subscribe(bh->ctx.instance, ev->room->name, ev->room->name_len, subscribe_done,
                              ev->room) != NB_OK)
            subscribe_done(ev->room, NB_ERR, 0);
        break;
    case NB_EV_UNSUBSCRIBE:
        bh->vt->unsubscribe(bh->ctx.instance, ev->room->name, ev->room->name_len);
        break;
    case NB_EV_PRESENCE: {
        record_msg(ev->rec, NB_MSG_PRESENCE, &m);
        claim_ctx *cc = ev->pend ? calloc(1, sizeof *cc) : NULL;
        if (cc) { /* a join that waits for its claim */
            cc->srv = srv;
            cc->room = ev->room;
            cc->join = ev->pend;
            room_ref(ev->room);
            ev->pend = NULL;
        } else if (ev->pend) {
            pipeline_claimed(srv, ev->room, ev->pend, NB_ERR_NOMEM);
            break;
        }
        if (bh->vt->presence(bh->ctx.instance, m.room.ptr, m.room.len, m.sender.ptr, m.sender.len,
                             ev->op == NB_OP_JOIN, cc ? claim_done : NULL, cc) != NB_OK &&
            cc)
            claim_done(cc, NB_ERR, 0);
        break;
    }
    case NB_EV_LOAD: {
        load_ctx *lc = calloc(1, sizeof *lc);
        nb_store_query q = {.struct_size = sizeof q,
                            .max = (ev->flags & 1u) ? srv->settings.replay_messages
                                                    : srv->settings.history_per_room,
                            .room = ev->room->name,
                            .room_len = ev->room->name_len,
                            .has_since = ev->flags & 1u,
                            .since = ev->seq};
        if (lc) {
            lc->srv = srv;
            lc->room = ev->room;
            lc->was_since = (int)(ev->flags & 1u);
            lc->since = ev->seq;
            room_ref(ev->room);
        }
        if (!lc || bh->vt->load(bh->ctx.instance, &q, load_done, lc) != NB_OK) {
            if (lc)
                load_done(lc, NB_ERR, NULL, NULL, 0);
            else
                pipeline_loaded(srv, ev->room, 0, NULL, NULL, (int)(ev->flags & 1u));
        }
        break;
    }
    default:
        break;
    }
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents) {
    (void)loop;
    (void)revents;
    nb_brokerhost *bh = a->data;
    nb_event batch[64];
    uint32_t n;
    while ((n = mailbox_take(&bh->mailbox, batch, 64)) > 0)
        for (uint32_t i = 0; i < n; i++) {
            handle(bh, &batch[i]);
            event_release(&batch[i]);
        }
}

int brokerhost_start(nb_brokerhost *bh) {
    nb_server *srv = bh->srv;
    mailbox_init(&bh->mailbox, srv->main_loop, srv->settings.main_mailbox_events, on_wake, bh);
    mailbox_start(&bh->mailbox);
    srv->main_mb = &bh->mailbox;
    uint32_t flags = 0;
    if (bh->vt->start(bh->ctx.instance, &flags) != NB_OK) {
        log_error("%s: start() failed; see the message above", bh->plugin.path);
        return -1;
    }
    srv->broker_flags = flags;
    srv->broker_presence = bh->vt->presence != NULL;
    srv->broker_load = bh->vt->load != NULL;
    bh->started = 1;
    metrics_set(srv->m.broker_up, 0);
    log_info("broker %s started%s", bh->plugin.desc.name,
             (flags & NB_BROKER_F_SEQUENCES) ? ": it orders each room across the cluster" : "");
    return 0;
}

void brokerhost_stop(nb_brokerhost *bh) {
    if (!bh || !bh->started)
        return;
    on_wake(bh->srv->main_loop, &bh->mailbox.wake, 0); /* what is still queued */
    bh->vt->stop(bh->ctx.instance);
    bh->started = 0;
    atomic_store(&bh->srv->broker_up, 0);
}

void brokerhost_free(nb_brokerhost *bh) {
    if (!bh)
        return;
    if (bh->created)
        bh->plugin.desc.destroy(bh->ctx.instance);
    if (bh->mailbox.loop)
        mailbox_free(&bh->mailbox);
    loader_close(&bh->plugin);
    free(bh);
}

/* Rooms with local members, collected under their shard locks and
 * subscribed outside them: a broker may deliver from within subscribe(). */
typedef struct room_list {
    nb_room **rooms;
    uint32_t n, cap;
} room_list;

static void collect_room(nb_room *room, void *user) {
    room_list *l = user;
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 64;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        nb_room **r = realloc(l->rooms, cap * sizeof *r);
        if (!r)
            return; /* that room is subscribed at its next first join */
        l->rooms = r;
        l->cap = cap;
    }
    room_ref(room);
    l->rooms[l->n++] = room;
}

/* A room that lived on while the broker was down loads the bus's newest
 * history and delivers what it missed (pipeline_caught_up). */
static void catch_up(nb_brokerhost *bh, nb_room *room) {
    nb_server *srv = bh->srv;
    if (!context_broker_load(srv) || pipeline_catch_up_begin(srv, room) < 0)
        return;
    load_ctx *lc = calloc(1, sizeof *lc);
    nb_store_query q = {.struct_size = sizeof q,
                        .max = srv->settings.history_per_room,
                        .room = room->name,
                        .room_len = room->name_len};
    if (lc) {
        lc->srv = srv;
        lc->room = room;
        lc->catch_up = 1;
        room_ref(room);
    }
    if (!lc || bh->vt->load(bh->ctx.instance, &q, load_done, lc) != NB_OK) {
        if (lc)
            load_done(lc, NB_ERR, NULL, NULL, 0);
        else
            pipeline_caught_up(srv, room, 0, NULL, NULL, 0);
    }
}

static void resubscribe_all(nb_brokerhost *bh) {
    room_list l = {NULL, 0, 0};
    hub_foreach_room(bh->srv->hub, collect_room, &l);
    for (uint32_t i = 0; i < l.n; i++) {
        nb_room *room = l.rooms[i];
        room_ref(room); /* subscribe_done drops one */
        if (bh->vt->subscribe(bh->ctx.instance, room->name, room->name_len, subscribe_done, room) !=
            NB_OK)
            subscribe_done(room, NB_ERR, 0);
        catch_up(bh, room);
        room_unref(room);
    }
    free(l.rooms);
}

void brokerhost_status(nb_brokerhost *bh, uint32_t up, const char *why) {
    int now = up != 0;
    if (atomic_exchange(&bh->srv->broker_up, now) == now)
        return;
    metrics_set(bh->srv->m.broker_up, now);
    if (now) {
        log_info("broker: up%s%s", why ? ": " : "", why ? why : "");
        resubscribe_all(bh);
    } else {
        log_warn("broker: down%s%s; rooms are served to local members only until it is back",
                 why ? ": " : "", why ? why : "");
    }
}

void brokerhost_node(nb_brokerhost *bh, const char *node_id, uint32_t alive) {
    metrics_add(bh->srv->m.cluster_nodes, alive ? 1 : -1);
    log_info("cluster: node %s %s", node_id ? node_id : "?", alive ? "joined" : "left");
    if (!alive && node_id)
        cluster_forget(bh->srv, node_id);
}
