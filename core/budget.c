/*
 * budget.c — the global memory budget (budget.h): the accounting.
 * What a worker does when the budget is exceeded is shed.c's.
 */
#include "budget.h"

void budget_init(nb_budget *b, uint64_t limit) {
    b->limit = limit;
    atomic_init(&b->history, 0);
    for (int i = 0; i < NB_MAX_WORKERS; i++)
        atomic_init(&b->held[i], 0);
}

int64_t budget_used(nb_budget *b) {
    int64_t used = atomic_load_explicit(&b->history, memory_order_relaxed);
    for (int i = 0; i < NB_MAX_WORKERS; i++)
        used += atomic_load_explicit(&b->held[i], memory_order_relaxed);
    return used;
}

int budget_near(nb_budget *b) {
    return (uint64_t)budget_used(b) >= b->limit / 8 * 7;
}

int budget_over(nb_budget *b) {
    return (uint64_t)budget_used(b) > b->limit;
}

void budget_history_add(nb_budget *b, int64_t delta) {
    atomic_fetch_add_explicit(&b->history, delta, memory_order_relaxed);
}
