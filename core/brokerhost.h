/*
 * brokerhost.h — the core's side of a broker plugin (broker.h): its
 * instance on the main loop, the main loop's mailbox of requests from the
 * other threads (publish, subscribe, unsubscribe, presence, load; posted by
 * pipeline.c, sequence.c), the broker's completions, and its up/down status (in
 * context.h for the pipeline to read).
 */
#ifndef NEBULA_CORE_BROKERHOST_H
#define NEBULA_CORE_BROKERHOST_H

#include "context.h"

/* Load the broker named in [plugins] broker and create it with the host
 * table (no connection is made: --check-config does this too). NULL after
 * logging why. */
nb_brokerhost *brokerhost_new(nb_server *srv, const char *name, const nb_host *host);
/* Start the main loop's mailbox (srv->main_mb) and the broker, whose
 * flags land in srv->broker_flags; 0 or -1. */
int brokerhost_start(nb_brokerhost *bh);
/* The broker's stop(), on the main loop, while it still runs. */
void brokerhost_stop(nb_brokerhost *bh);
void brokerhost_free(nb_brokerhost *bh);

/* Host entry points (host.h), on the main loop. */
void brokerhost_status(nb_brokerhost *bh, uint32_t up, const char *why);
void brokerhost_node(nb_brokerhost *bh, const char *node_id, uint32_t alive);
#endif
