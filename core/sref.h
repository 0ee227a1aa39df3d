/*
 * sref.h — a session named from another thread: its worker, and a slot and
 * generation in that worker's session table (session.c), so the session
 * may have gone by the time an event about it arrives: the lookup then
 * finds nothing instead of freed memory.
 */
#ifndef NEBULA_CORE_SREF_H
#define NEBULA_CORE_SREF_H

#include <stdint.h>

typedef struct nb_sref {
    uint32_t worker;
    uint32_t slot;
    uint32_t gen; /* 0 = no session */
} nb_sref;
#endif
