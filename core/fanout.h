/*
 * fanout.h — getting messages onto the wire: encode once per codec in use
 * in a room, frame once, hand the same buffer to every recipient's
 * transport queue, on whichever worker the recipient lives.
 */
#ifndef NEBULA_CORE_FANOUT_H
#define NEBULA_CORE_FANOUT_H

#include "room.h"
#include "server.h"

#include <nebula/msg.h>

/* Encode and frame msg for codec slot c. NULL on failure (logged). */
nb_buf *fanout_frame(nb_worker *w, uint32_t c, const nb_msg *msg);

/* Queue a framed buffer for one session (takes its own reference) and
 * apply the slow-consumer rule. */
void fanout_deliver(nb_session *s, nb_buf *frame);

/* Send msg to one session in its codec. */
void fanout_send(nb_session *s, const nb_msg *msg);

/* With the room's shard lock held: encode msg once per codec in use in the
 * room and post it to every worker that has members there (self included).
 * Call worker_flush(self) after unlocking. */
void fanout_post_locked(nb_worker *self, nb_room *room, const nb_msg *msg);

/* With the room's shard lock held: post the room's sorted user list. */
void fanout_presence_locked(nb_worker *self, nb_room *room);

/* Deliver framed buffers to worker w's own members of room. */
void fanout_local(nb_worker *w, nb_room *room, nb_buf *const *frames);
#endif
