/*
 * record.h — one chat message as the core keeps it: immutable once made,
 * reference-counted (atomically), so the same record can sit in a room's
 * history ring, in the writer's queue and in a joiner's history snapshot
 * on different threads at once.
 */
#ifndef NEBULA_CORE_RECORD_H
#define NEBULA_CORE_RECORD_H

#include <nebula/msg.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct nb_record {
    atomic_uint refs;
    uint32_t room_len;
    uint32_t sender_len;
    uint32_t content_len;
    uint32_t id_len;
    uint32_t reserved;
    int64_t ts;
    uint64_t seq;
    char data[]; /* room, sender, content, id, back to back */
} nb_record;

/* A record of msg's room, sender, content, id, ts and seq (one reference),
 * or NULL when out of memory. */
nb_record *record_new(const nb_msg *msg);
void record_ref(nb_record *r);
/* The memory a record takes (what history byte limits count). */
static inline uint64_t record_bytes(const nb_record *r) {
    return sizeof *r + (uint64_t)r->room_len + r->sender_len + r->content_len + r->id_len;
}
void record_unref(nb_record *r);

/* What a joiner gets before its own join event: the room's messages it
 * has not seen, oldest first, and how complete they are. */
typedef struct nb_history {
    nb_record **items; /* one reference each */
    uint32_t n;
    uint32_t incomplete; /* messages after `since` were no longer all there */
    char epoch[64];
    /* With a store whose echo waits for the disk, the writer takes the
     * snapshot from the ring when it delivers the join (fill = 1), so it
     * holds exactly what was delivered before it. */
    uint32_t fill;
    uint32_t has_since;
    uint64_t since;
} nb_history;

void history_free(nb_history *h);

/* The record as a message of `type` (NB_MSG_MESSAGE or NB_MSG_HISTORY)
 * whose strings point into it. */
void record_msg(const nb_record *r, uint32_t type, nb_msg *out);
#endif
