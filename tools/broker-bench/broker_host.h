/*
 * broker_host.h — a small host for driving a broker plugin outside the
 * server, the way the core's main loop does: dlopen, create, start,
 * subscribe / publish, stop, destroy. Several instances ("nodes") of the
 * plugin share one libev loop in one process, each with its own node id,
 * status and delivery callback, and the same config (key/value pairs, the
 * plugin's own section). Used by tools/broker-bench.
 */
#ifndef NEBULA_BROKER_HOST_H
#define NEBULA_BROKER_HOST_H

#include "plugin_host.h"

#include <ev.h>
#include <nebula/nebula.h>
#include <stddef.h>

typedef struct broker_host broker_host;
typedef struct bh_node bh_node;

/* What a node receives from the bus (host->broker_deliver). */
typedef void (*bh_deliver_fn)(bh_node *n, const nb_msg *msg);

struct bh_node {
    broker_host *bh;
    char id[64];
    nb_server_info info;
    void *inst;
    int started;
    int up; /* the plugin's last broker_status */
    bh_deliver_fn deliver;
    void *user;
};

struct broker_host {
    nb_host host;
    void *dl;
    const nb_plugin_desc *desc;
    const nb_broker_vtable *vt;
    struct ev_loop *loop;
    ph_config cfg; /* the plugin's section, the same for every node */
    int echo;      /* print log lines to stderr (otherwise warnings and errors only) */
};

/* Load the plugin (a path with a slash); 0, or -1 with err filled. */
int bh_open(broker_host *bh, const char *plugin_path, char *err, size_t errlen);
/* Set one config key (the raw value: strings without quotes). 0, or -1
 * when there are too many keys. */
int bh_set(broker_host *bh, const char *key, const char *value);
/* create() and start() one node named id; NB_OK or the plugin's code. */
int32_t bh_node_start(broker_host *bh, bh_node *n, const char *id, bh_deliver_fn deliver,
                      void *user);
/* stop() and destroy() a node that was started (or created). */
void bh_node_stop(bh_node *n);
/* dlclose and free the loop. */
void bh_close(broker_host *bh);
/* Run the loop until *flag is nonzero or timeout_s passes; 0 or -1. */
int bh_run_until(broker_host *bh, const int *flag, double timeout_s);

#endif /* NEBULA_BROKER_HOST_H */
