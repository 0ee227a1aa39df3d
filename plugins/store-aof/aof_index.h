/*
 * aof_index.h — store-aof's in-memory index: per room, its last seq and a
 * ring of the records retention keeps (seq, ts, offset and length in the
 * file; 32 bytes a message). load() reads records with pread at these
 * offsets, so the file is never scanned after start-up.
 */
#ifndef NEBULA_AOF_INDEX_H
#define NEBULA_AOF_INDEX_H

#include <stdint.h>

typedef struct aof_entry {
    uint64_t seq;
    int64_t ts;
    uint64_t off; /* of the record's prefix in the file */
    uint32_t len; /* prefix + body */
    uint32_t reserved;
} aof_entry;

/* Compaction's record of where a room's kept records went (aof_compact.c). */
typedef struct aof_moved {
    uint64_t seq;
    uint64_t off;
} aof_moved;

typedef struct aof_room {
    char *name; /* NUL-terminated copy */
    uint32_t name_len;
    uint32_t hash;
    aof_entry *ring; /* oldest at start */
    uint32_t start, n, cap;
    uint64_t last_seq; /* highest seq ever appended, kept or not */
    aof_moved *moved;  /* compaction only */
    uint32_t n_moved, cap_moved;
    struct aof_room *next; /* hash chain */
    struct aof_room *all;  /* every room, newest first */
} aof_room;

typedef struct aof_index {
    aof_room **buckets;
    uint32_t n_buckets, n_rooms;
    aof_room *rooms;       /* the `all` list */
    uint32_t max_per_room; /* retention_messages; 0 = no count limit */
    uint64_t kept;         /* entries in every ring */
    uint64_t kept_bytes;   /* their record bytes */
} aof_index;

void index_init(aof_index *idx, uint32_t max_per_room);
void index_free(aof_index *idx);
/* The room named (name, len); created when `create` (NULL on no memory). */
aof_room *index_room(aof_index *idx, const char *name, uint32_t len, int create);
/* Add the newest record of a room (seq above every kept one); drops the
 * oldest when retention_messages is reached. 0, or -1 on no memory. */
int index_push(aof_index *idx, aof_room *r, uint64_t seq, int64_t ts, uint64_t off, uint32_t len);
/* Drop a room's records older than cutoff_ms (age retention). */
void index_trim_age(aof_index *idx, aof_room *r, int64_t cutoff_ms);
/* The i-th kept record of a room, oldest first. */
aof_entry *index_at(const aof_room *r, uint32_t i);
/* The position of the first kept record with seq > since. */
uint32_t index_after(const aof_room *r, uint64_t since);

#endif /* NEBULA_AOF_INDEX_H */
