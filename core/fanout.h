/*
 * fanout.h — encode once, frame once: a room event becomes one framed
 * buffer per codec in use, which every recipient's transport queue then
 * shares (server frames are unmasked). Knows nothing of sessions or rooms.
 */
#ifndef NEBULA_CORE_FANOUT_H
#define NEBULA_CORE_FANOUT_H

#include "context.h"

#include <nebula/msg.h>

/* Encode msg with codec slot c and frame it. NULL on failure (logged).
 * Any thread: codecs are thread-safe and framing is a pure function. */
nb_buf *fanout_frame(nb_server *srv, uint32_t c, const nb_msg *msg);
#endif
