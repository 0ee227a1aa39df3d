/*
 * fanout.h — getting messages onto the wire: encode once per codec in use,
 * frame once, hand the same buffer to every recipient's transport queue.
 */
#ifndef NEBULA_CORE_FANOUT_H
#define NEBULA_CORE_FANOUT_H

#include "room.h"
#include "server.h"

#include <nebula/msg.h>

/* Encode and frame msg for codec slot c. NULL on failure (logged). */
nb_buf *fanout_frame(nb_server *srv, uint32_t c, const nb_msg *msg);

/* Queue a framed buffer for one session (takes its own reference) and
 * apply the slow-consumer rule. */
void fanout_deliver(nb_session *s, nb_buf *frame);

/* Send msg to one session in its codec. */
void fanout_send(nb_session *s, const nb_msg *msg);

/* Send msg to every member of room (the ones still open). */
void fanout_room(nb_server *srv, nb_room *room, const nb_msg *msg);
#endif
