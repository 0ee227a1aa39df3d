/*
 * store_host.h — a small host for driving a store plugin outside the
 * server, the way the core's writer thread does (dlopen, create, start,
 * append/flush/load, stop, destroy), with the config given as key/value
 * pairs or read from one section of a config file, its own libev loop,
 * and every logged line kept for inspection. Used by tools/store-bench
 * and by the store unit tests.
 */
#ifndef NEBULA_STORE_HOST_H
#define NEBULA_STORE_HOST_H

#include "plugin_host.h"

#include <ev.h>
#include <nebula/nebula.h>
#include <stddef.h>

typedef struct store_host {
    nb_host host;
    void *dl;
    const nb_plugin_desc *desc;
    const nb_store_vtable *vt;
    void *inst;
    struct ev_loop *loop;
    ph_config cfg; /* the plugin's section */
    char *log;     /* every line logged, '\n'-separated */
    size_t log_len, log_cap;
    int echo; /* also print log lines to stderr */
} store_host;

/* Load the plugin (a path with a slash); 0, or -1 with err filled. */
int sh_open(store_host *sh, const char *plugin_path, char *err, size_t errlen);
/* Set one config key (the raw value: strings without quotes). */
int sh_set(store_host *sh, const char *key, const char *value);
/* Read the keys of [section] from a config file; 0, or -1 with err. */
int sh_read_conf(store_host *sh, const char *file, const char *section, char *err, size_t errlen);
/* create(); NB_OK or the plugin's code. */
int32_t sh_create(store_host *sh);
/* Another instance of the plugin on this host (its config, loop and log;
 * sh->inst untouched), as a test that opens a store twice needs: the
 * instance, or NULL when create() refused. */
void *sh_new_instance(store_host *sh);
void sh_destroy_instance(store_host *sh, void *inst);
/* destroy() (if created), dlclose, free the loop and the log. */
void sh_close(store_host *sh);
/* Did a logged line contain `needle`? */
int sh_logged(const store_host *sh, const char *needle);
void sh_log_clear(store_host *sh);
/* Move the host's clock (now_ms) by this many ms, for every instance. */
void sh_clock_offset(int64_t ms);

#endif /* NEBULA_STORE_HOST_H */
