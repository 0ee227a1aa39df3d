/*
 * store_host.h — the store-sqlite unit tests' host: a host table whose
 * config answers come from a small key table the test sets, whose loop is
 * a real libev loop (the fsync and retention timers run on it), and whose
 * log lines are kept for assertions. sh_open() loads the plugin the way
 * the core does (dlopen of the built module, its one entry, create()).
 */
#ifndef NEBULA_TESTS_STORE_HOST_H
#define NEBULA_TESTS_STORE_HOST_H

#include <ev.h>
#include <nebula/nebula.h>

extern const char *plugin_path;   /* argv[1] */
extern const nb_store_vtable *vt; /* after sh_load() */
extern struct ev_loop *sh_loop;
extern int64_t sh_now_offset_ms; /* added to the host's clock */

/* Load the module once; 0 on success. */
int sh_load(void);
void sh_unload(void);

/* Config of the next instance: "key=value" pairs, value as written in a
 * config file ("\"always\"", "5"). sh_config_reset forgets them all. */
void sh_config_reset(void);
void sh_config(const char *key, const char *value);

/* create() with the current config: the instance, or NULL. */
void *sh_create(void);
void sh_destroy(void *inst);

/* Every log line since the last sh_log_clear, one per line. */
const char *sh_log(void);
void sh_log_clear(void);

#endif
