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
void record_unref(nb_record *r);

/* The record as a message of `type` (NB_MSG_MESSAGE or NB_MSG_HISTORY)
 * whose strings point into it. */
void record_msg(const nb_record *r, uint32_t type, nb_msg *out);
#endif
