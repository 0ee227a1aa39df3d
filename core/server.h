/*
 * server.h — bringing the process up and down: loading and creating the
 * plugins, starting the store, the broker and the I/O workers, signals,
 * and the graceful shutdown. The state it sets up is context.h's.
 */
#ifndef NEBULA_CORE_SERVER_H
#define NEBULA_CORE_SERVER_H

#include "context.h"

/*
 * Load and create every plugin named in `settings` (copied into srv) (no socket is opened
 * yet). Returns 0, or -1 after logging each refusal. Config mistakes that
 * plugins find are recorded in cfg.
 */
int server_init(nb_server *srv, nb_config *cfg, const nb_settings *settings);

/* Plugins refused or whose create() failed during server_init (each was
 * logged as one line). */
uint32_t server_plugin_failures(const nb_server *srv);

/* Start listening and run until a signal has drained every connection.
 * Returns the process exit code. */
int server_run(nb_server *srv);

/* Destroy plugin instances, free sessions and rooms, unload plugins. */
void server_free(nb_server *srv);

/* Begin a graceful shutdown (as on SIGTERM). */
void server_begin_shutdown(nb_server *srv);

#endif
