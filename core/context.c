/*
 * context.c — the one thing context.h's data needs done from any thread.
 */
#include "context.h"

void context_worker_quiet(nb_server *srv) {
    atomic_fetch_add(&srv->quiet_workers, 1);
    ev_async_send(srv->main_loop, &srv->main_wake);
}

void context_store_drained(nb_server *srv) {
    atomic_store(&srv->store_drained, 1);
    ev_async_send(srv->main_loop, &srv->main_wake);
}

void context_worker_drained(nb_server *srv) {
    atomic_fetch_add(&srv->drained_workers, 1);
    ev_async_send(srv->main_loop, &srv->main_wake);
}
