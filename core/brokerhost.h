/*
 * brokerhost.h — the core's side of a broker plugin (broker.h): its
 * instance on the main loop, the main loop's mailbox of requests from the
 * other threads (publish, subscribe, unsubscribe, presence, load), the
 * broker's completions, and its up/down status.
 */
#ifndef NEBULA_CORE_BROKERHOST_H
#define NEBULA_CORE_BROKERHOST_H

#include "event.h"
#include "server.h"

typedef struct nb_brokerhost nb_brokerhost;
struct nb_poster;

/* Load and create the broker named in [plugins] broker (no connection is
 * made: --check-config does this too). NULL after logging why. */
nb_brokerhost *brokerhost_new(nb_server *srv, const char *name);
/* Start the mailbox on the main loop and the broker; 0 or -1. */
int brokerhost_start(nb_brokerhost *bh);
/* The broker's stop(), on the main loop, while it still runs. */
void brokerhost_stop(nb_brokerhost *bh);
void brokerhost_free(nb_brokerhost *bh);

/* Post to the main loop's mailbox (any thread); 0 or -1 when full. */
int brokerhost_post(nb_brokerhost *bh, nb_event *ev);
void brokerhost_wake(nb_brokerhost *bh);

/* NULL-safe queries (a server without a broker passes NULL). */
int brokerhost_up(const nb_brokerhost *bh);
int brokerhost_sequences(const nb_brokerhost *bh);
int brokerhost_owns_presence(const nb_brokerhost *bh);
int brokerhost_can_load(const nb_brokerhost *bh);

/* Shard lock held: a room got its first local member / lost its last. */
void brokerhost_subscribe_locked(struct nb_poster *p, nb_room *room);
void brokerhost_unsubscribe_locked(struct nb_poster *p, nb_room *room);

/* Host entry points (host.h), on the main loop. */
void brokerhost_status(nb_brokerhost *bh, uint32_t up, const char *why);
void brokerhost_node(nb_brokerhost *bh, const char *node_id, uint32_t alive);
#endif
