#include "event.h"

#include "buf.h"
#include "room.h"

#include <stdlib.h>

void event_release(nb_event *ev) {
    for (uint32_t c = 0; c < NB_MAX_CODECS; c++)
        buf_unref(ev->frames[c]);
    record_unref(ev->rec);
    history_free(ev->hist);
    free(ev->pend); /* holds no reference: a join's pending entry */
    ev->pend = NULL;
    room_unref(ev->room);
    ev->room = NULL;
    ev->rec = NULL;
    ev->hist = NULL;
}
