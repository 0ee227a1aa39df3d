/*
 * host.h — the nb_host table handed to every plugin instance.
 */
#ifndef NEBULA_CORE_HOST_H
#define NEBULA_CORE_HOST_H

#include <nebula/host.h>

const nb_host *host_table(void);
#endif
