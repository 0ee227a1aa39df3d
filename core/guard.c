/*
 * guard.c — setting up the process-wide limits' state (guard.h).
 */
#include "guard.h"

#include "context.h"
#include "hub.h"
#include "log.h"

int guard_init(nb_server *srv) {
    const nb_settings *st = &srv->settings;
    nb_guard *g = &srv->guard;
    budget_init(&g->budget, st->memory_budget_bytes);
    g->hist.bytes_per_room = st->history_bytes_per_room;
    g->hist.bytes_total = st->history_bytes_total;
    g->hist.budget = &g->budget;
    atomic_init(&g->hist.dropped, 0);
    g->peers = peers_new(st->connections_per_address, st->messages_per_second_per_address,
                         st->burst_per_address, st->allowlist, st->n_allowlist);
    if (!g->peers) {
        log_error("out of memory creating the per-address table");
        return -1;
    }
    hub_set_history_limits(srv->hub, &g->hist);
    g->budget_bytes = metrics_register(NB_METRIC_GAUGE, "nebula_memory_budget_bytes",
                                       "[limits] memory_budget_bytes");
    g->budget_used =
        metrics_register(NB_METRIC_GAUGE, "nebula_memory_budget_used_bytes",
                         "bytes counted against the memory budget: history, messages being "
                         "assembled, output queues");
    g->budget_closed =
        metrics_register(NB_METRIC_COUNTER, "nebula_memory_budget_closed_total",
                         "connections closed with 4003 because the memory budget was exceeded");
    g->budget_refused = metrics_register(
        NB_METRIC_COUNTER, "nebula_memory_budget_refused_total",
        "large messages, large joins and new connections refused near the memory budget");
    g->history_bytes = metrics_register(NB_METRIC_GAUGE, "nebula_history_bytes",
                                        "bytes of messages kept in rooms' history");
    g->history_dropped =
        metrics_register(NB_METRIC_COUNTER, "nebula_history_dropped_total",
                         "history messages let go before history_per_room for a byte limit");
    g->addresses = metrics_register(NB_METRIC_GAUGE, "nebula_addresses",
                                    "client addresses with connections (allowlist excluded)");
    g->address_refused =
        metrics_register(NB_METRIC_COUNTER, "nebula_address_connections_refused_total",
                         "connections refused (429) over [limits] connections_per_address");
    g->address_rate_limited =
        metrics_register(NB_METRIC_COUNTER, "nebula_address_rate_limited_total",
                         "messages refused over [limits] messages_per_second_per_address");
    g->bytes_limited =
        metrics_register(NB_METRIC_COUNTER, "nebula_bytes_rate_limited_total",
                         "messages and joins refused over [limits] bytes_per_second");
    g->trims = metrics_register(NB_METRIC_COUNTER, "nebula_memory_trims_total",
                                "malloc_trim() calls after the budget's use fell from a peak");
    metrics_set(g->budget_bytes, (int64_t)st->memory_budget_bytes);
    return 0;
}

void guard_free(nb_server *srv) {
    peers_free(srv->guard.peers);
    srv->guard.peers = NULL;
}
