/*
 * membership.h — a session's rooms: join and leave requests (on the
 * session's worker), and their effect when the room's order reaches them
 * (deliver.c).
 */
#ifndef NEBULA_CORE_MEMBERSHIP_H
#define NEBULA_CORE_MEMBERSHIP_H

#include "session.h"

/* A join request (from the client, or the connect URL when on_connect). */
void membership_join(nb_session *s, const char *room, uint32_t len, const nb_msg *req,
                     int on_connect);
/* A leave request for the room in slot. */
void membership_leave(nb_session *s, uint32_t slot);
/* The slot of a room the session is in (joining or a member), or -1. */
int membership_find(const nb_session *s, const char *room, uint32_t len);
/* The connection is gone: leave every room now. */
void membership_leave_all(nb_session *s);

/* The join's place in the room's order was reached on this worker. */
void membership_joined(nb_session *s, nb_room *room, const nb_record *join, nb_history *hist);
/* The leave's place was reached (s received the leave event). */
void membership_left(nb_session *s, nb_room *room);
/* The join of room failed further down the pipeline. */
void membership_failed(nb_session *s, nb_room *room);
#endif
