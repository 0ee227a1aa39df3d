/*
 * room.h — one chat room.
 *
 * A room has two halves:
 *   - the shared half (users, codec and worker counts, the room's order —
 *     last_seq, last_ts —, the history ring, the loading state and its
 *     backlog), read and written only under its shard's lock (hub.h);
 *   - one local member list per I/O worker, touched only by that worker's
 *     thread: the sessions of that worker that receive the room's events,
 *     which is what a delivery walks. A session becomes a local member at
 *     its own join event and stops at its own leave event, in the room's
 *     order (deliver.c), never earlier or later.
 * A room is reference-counted: the shard table holds one reference while
 * the room has users, and every queued event holds one, so no thread sees
 * a room freed under it. A room does not call into sessions.
 */
#ifndef NEBULA_CORE_ROOM_H
#define NEBULA_CORE_ROOM_H

#include "names.h"
#include "record.h"
#include "settings.h"
#include "sref.h"

#include <nebula/msg.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct nb_session nb_session;

typedef struct nb_room_local {
    nb_session **members;
    uint32_t n_members;
    uint32_t cap_members;
    atomic_uint lost; /* an event for this worker was refused (mailbox full) */
} nb_room_local;

typedef struct nb_room_user {
    char name[NB_USERNAME_MAX + 1];
    uint32_t len;
    /* gen != 0: this session's join waits for the broker's claim of the
     * name (sequence.c); the user holds the name here but has not joined. */
    nb_sref claim;
} nb_room_user;

/* A room event that waits while the room's history loads. */
#define NB_PEND_MESSAGE 1u /* a client's message (rec, origin who) */
#define NB_PEND_JOIN 2u    /* who joins (user, since) */
#define NB_PEND_LEAVE 3u   /* user leaves (who, when it asked) */
#define NB_PEND_REMOTE 4u  /* a message from the broker (rec, with its seq) */

typedef struct nb_pending {
    uint32_t kind;
    uint32_t has_since;
    nb_record *rec;
    nb_sref who;
    uint64_t since;
    char user[NB_USERNAME_MAX + 1];
    uint32_t user_len;
    uint32_t codec;
    char epoch[64];      /* the joiner's epoch, "" = none given */
    uint32_t claimed;    /* JOIN: the broker claimed the name (no presence notice) */
    uint32_t on_connect; /* JOIN: the connect URL's room (a refusal closes) */
} nb_pending;

#define NB_ROOM_READY 0u
#define NB_ROOM_LOADING 1u /* history is being loaded; events wait in the backlog */

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
    uint32_t *worker_members; /* [n_workers] users per worker */
    uint64_t last_seq;        /* the room's order: seq of its last message */
    uint64_t broker_seq;      /* the last seq a sequencing broker gave (sequence.c) */
    uint64_t seq_offset;      /* added to the broker's seq after local sequencing */
    int64_t last_ts;          /* ts never goes backwards within a room */
    nb_record **hist;         /* ring of hist_cap records, oldest at hist_start */
    uint32_t hist_cap;
    uint32_t hist_start;
    uint32_t hist_len;
    uint64_t hist_floor; /* messages with seq <= floor may exist outside the ring */
    char epoch[64];
    char broker_epoch[64]; /* the epoch of broker_seq's numbers ("" = unknown) */
    uint32_t state;        /* NB_ROOM_* */
    nb_pending *backlog;
    uint32_t n_backlog;
    uint32_t cap_backlog;
    nb_history *loaded;   /* a since-load's result, for the first join of the backlog */
    int presence_pending; /* a batched presence is due (pipeline.c) */
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
/* The user's entry, or NULL. */
nb_room_user *room_find_user(nb_room *room, const char *user, uint32_t len);
/* Is a message with this id in the history ring? */
int room_history_has_id(const nb_room *room, const char *id, uint32_t len);
/* Keep a message in the history ring (takes a reference). */
void room_history_add(nb_room *room, nb_record *rec);
/* The ring's messages with seq > since (all when !has_since), oldest
 * first, as a history for a joiner; NULL when out of memory. incomplete
 * is set when the ring cannot vouch for everything after since. */
nb_history *room_history_snapshot(const nb_room *room, int has_since, uint64_t since);
/* Sorted user list (byte order) for a presence message: a malloc'd array
 * of n strings pointing into the room; NULL when empty or out of memory. */
nb_str *room_user_list(const nb_room *room, uint32_t *n);
/* Append to the backlog (copies *p, takes over its rec reference); 0, or
 * -1 when it holds `limit` events already or memory is out. */
int room_backlog_push(nb_room *room, const nb_pending *p, uint32_t limit);

/* ---- local half (worker thread) ---- */

/* Add s to worker's members; 0 or -1 when out of memory. */
int room_local_add(nb_room *room, uint32_t worker, nb_session *s);
/* Remove s from worker's members (if it is one). */
void room_local_remove(nb_room *room, uint32_t worker, const nb_session *s);
#endif
