/*
 * budget.h — the global memory budget ([limits] memory_budget_bytes):
 * what clients can make the server hold, added up over every connection
 * and room, so that many connections each within their own limits cannot
 * together take the machine's memory.
 *
 * Counted: what the transport holds for each connection (messages being
 * assembled, output waiting to be written; reported through
 * host->conn_memory) and the rooms' history rings. Near the budget (7/8 of
 * it) the server refuses new large work: messages over
 * NB_BUDGET_LARGE_BYTES, joins that would replay more than that, new
 * connections. Over it, each I/O worker closes its largest holders with
 * 4003 until the total is back under (budget.c, budget_shed).
 */
#ifndef NEBULA_CORE_BUDGET_H
#define NEBULA_CORE_BUDGET_H

#include "settings.h"

#include <stdatomic.h>
#include <stdint.h>

/* A message or a join's replay larger than this is "large work". */
#define NB_BUDGET_LARGE_BYTES 4096u

typedef struct nb_budget {
    uint64_t limit;
    atomic_int_fast64_t history;              /* bytes of records in history rings */
    atomic_int_fast64_t held[NB_MAX_WORKERS]; /* transport bytes, per I/O worker */
} nb_budget;

void budget_init(nb_budget *b, uint64_t limit);

/* Everything counted, now (any thread). */
int64_t budget_used(nb_budget *b);
/* 1 when used is at 7/8 of the limit or more: refuse large work. */
int budget_near(nb_budget *b);
/* 1 when used is over the limit: shed. */
int budget_over(nb_budget *b);

/* History ring bytes of one record (its share of a ring). */
void budget_history_add(nb_budget *b, int64_t delta);
#endif
