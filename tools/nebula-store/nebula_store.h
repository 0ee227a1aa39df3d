/*
 * nebula_store.h — what the parts of tools/nebula-store share: a store-aof
 * file mapped read-only, and the converters (convert.c).
 */
#ifndef NEBULA_STORE_TOOL_H
#define NEBULA_STORE_TOOL_H

#include "aof_format.h"

#include <stddef.h>
#include <stdint.h>

typedef struct aof_map {
    const char *path;
    int fd;
    const uint8_t *data;
    uint64_t size;
    char epoch[AOF_EPOCH_LEN + 1];
} aof_map;

/* Map an AOF file and check its header; 0, or -1 after printing why. */
int aof_map_open(aof_map *m, const char *path);
void aof_map_close(aof_map *m);

/* convert.c: 0 on success, 1 after printing why. */
int convert_aof_to_sqlite(const char *src, const char *dst);
int convert_sqlite_to_aof(const char *src, const char *dst);

#endif /* NEBULA_STORE_TOOL_H */
