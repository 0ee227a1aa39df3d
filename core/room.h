/*
 * room.h — one chat room.
 *
 * A room has two halves:
 *   - the shared half (users, codec and worker counts, history), read and
 *     written only under its shard's lock (hub.h);
 *   - one local member list per I/O worker, touched only by that worker's
 *     thread: the sessions of that worker that are in the room, which is
 *     what a fan-out walks.
 * A room is reference-counted: the shard table holds one reference while
 * the room has users, and every queued delivery holds one, so a worker
 * never sees a room freed under it.
 */
#ifndef NEBULA_CORE_ROOM_H
#define NEBULA_CORE_ROOM_H

#include "names.h"
#include "settings.h"

#include <nebula/msg.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct nb_session nb_session;

typedef struct nb_member {
    nb_session *session;
    uint32_t slot; /* index of this room in session->rooms */
} nb_member;

typedef struct nb_room_local {
    nb_member *members;
    uint32_t n_members;
    uint32_t cap_members;
} nb_room_local;

typedef struct nb_room_user {
    char name[NB_USERNAME_MAX + 1];
    uint32_t len;
} nb_room_user;

typedef struct nb_hist_entry nb_hist_entry;

typedef struct nb_room {
    /* immutable after creation */
    char name[NB_ROOM_MAX + 1];
    uint32_t name_len;
    uint32_t hash;
    uint32_t n_workers;
    atomic_uint refs;
    /* shared half: under the shard lock */
    nb_room_user *users;
    uint32_t n_users;
    uint32_t cap_users;
    uint32_t codec_members[NB_MAX_CODECS];
    uint32_t *worker_members; /* [n_workers] */
    nb_hist_entry **hist;     /* ring of hist_cap entries */
    uint32_t hist_cap;
    uint32_t hist_start;
    uint32_t hist_len;
    int presence_pending; /* a batched presence is due (worker.h) */
    struct nb_room *next; /* hash chain in the shard */
    /* local halves: local[w] belongs to worker w's thread */
    nb_room_local *local;
} nb_room;

nb_room *room_new(const char *name, uint32_t len, uint32_t hash, uint32_t history_cap,
                  uint32_t n_workers);
void room_ref(nb_room *room);
void room_unref(nb_room *room);

/* ---- shared half (shard lock held) ---- */

/* Add a user on `worker` speaking `codec`; 0, or -1 when out of memory. */
int room_add_user(nb_room *room, const char *user, uint32_t len, uint32_t worker, uint32_t codec);
void room_remove_user(nb_room *room, const char *user, uint32_t len, uint32_t worker,
                      uint32_t codec);
int room_has_user(const nb_room *room, const char *user, uint32_t len);
/* Remember a chat message (sender, content, id, ts are copied). */
void room_history_add(nb_room *room, const nb_msg *msg);
/* History entry i (0 = oldest) as an NB_MSG_HISTORY message pointing into
 * the entry. */
void room_history_get(const nb_room *room, uint32_t i, nb_msg *out);
/* Sorted user list (byte order) for a presence message: a malloc'd array
 * of n strings pointing into the room; NULL when empty or out of memory. */
nb_str *room_user_list(const nb_room *room, uint32_t *n);

/* ---- local half (worker thread) ---- */

/* Add a local member; its index in local[worker].members, or -1. */
int room_local_add(nb_room *room, uint32_t worker, nb_session *s, uint32_t slot);
/* Remove local member idx (the last one moves into its place and its
 * session is told through session_member_moved). */
void room_local_remove(nb_room *room, uint32_t worker, uint32_t idx);
#endif
