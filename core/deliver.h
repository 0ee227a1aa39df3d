/*
 * deliver.h — the last stage, on a worker's thread: a room event from the
 * mailbox reaches this worker's members of the room, and a join or leave
 * takes effect exactly at its place in the room's order.
 */
#ifndef NEBULA_CORE_DELIVER_H
#define NEBULA_CORE_DELIVER_H

#include "context.h"

/* An NB_EV_DELIVER: the frames to every local member; then, for NB_OP_JOIN,
 * the joiner gets its history and its own join event and becomes a member;
 * for NB_OP_LEAVE, the leaver (who got this event) stops being one. */
void deliver_event(nb_worker *w, nb_event *ev);

/* An NB_EV_SESSION_ERROR: an error frame for one session; with NB_OP_JOIN
 * its pending join of ev->room is undone. */
void deliver_session_error(nb_worker *w, nb_event *ev);
#endif
