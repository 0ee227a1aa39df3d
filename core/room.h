/*
 * room.h — one chat room: its members, the codecs they use, and its recent
 * history. A room belongs to one shard of the hub (hub.h).
 */
#ifndef NEBULA_CORE_ROOM_H
#define NEBULA_CORE_ROOM_H

#include "names.h"
#include "settings.h"

#include <nebula/msg.h>
#include <stdint.h>

typedef struct nb_session nb_session;

typedef struct nb_member {
    nb_session *session;
    uint32_t slot; /* index of this room in session->rooms */
} nb_member;

typedef struct nb_hist_entry nb_hist_entry;

typedef struct nb_room {
    char name[NB_ROOM_MAX + 1];
    uint32_t name_len;
    uint32_t hash;
    nb_member *members;
    uint32_t n_members;
    uint32_t cap_members;
    uint32_t codec_members[NB_MAX_CODECS]; /* members per codec slot */
    nb_hist_entry **hist;                  /* ring of history_cap entries */
    uint32_t hist_cap;
    uint32_t hist_start;
    uint32_t hist_len;
    struct nb_room *next; /* hash chain in the shard */
} nb_room;

nb_room *room_new(const char *name, uint32_t len, uint32_t hash, uint32_t history_cap);
void room_free(nb_room *room);

/* Add a member; returns its index in room->members, or -1 (out of memory). */
int room_add_member(nb_room *room, nb_session *s, uint32_t slot, uint32_t codec);
/* Remove the member at idx (swap with the last; the moved member's session
 * is told its new index through session_member_moved). */
void room_remove_member(nb_room *room, uint32_t idx, uint32_t codec);
/* The member with this username, or -1. */
int room_find_user(const nb_room *room, const char *user, uint32_t len);

/* Remember a chat message (room, sender, content, id, ts are copied). */
void room_history_add(nb_room *room, const nb_msg *msg);
/* Fill *out with history entry i (0 = oldest) as a NB_MSG_HISTORY message
 * whose strings point into the entry. */
void room_history_get(const nb_room *room, uint32_t i, nb_msg *out);

/* Sorted user list (byte order) for a presence message; the array is
 * malloc'd, strings point into sessions. NULL if empty or out of memory. */
nb_str *room_user_list(const nb_room *room, uint32_t *n);
#endif
