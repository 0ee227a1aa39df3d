#include "deliver.h"

#include "abuse.h"
#include "closecodes.h"
#include "membership.h"
#include "room.h"
#include "session.h"

void deliver_event(nb_worker *w, nb_event *ev) {
    nb_room *room = ev->room;
    nb_room_local *l = &room->local[w->index];
    /* Index loop: a delivery may close a session, but closing never
     * removes a member synchronously (conn_closed comes later). */
    for (uint32_t i = 0; i < l->n_members; i++) {
        nb_session *s = l->members[i];
        if (s->state == NB_SESSION_OPEN && ev->frames[s->codec])
            session_send(s, ev->frames[s->codec]);
    }
    if (ev->op == NB_OP_NONE)
        return;
    nb_session *s = session_find(w, ev->who);
    if (!s)
        return; /* gone meanwhile; its close took care of the room */
    if (ev->op == NB_OP_JOIN)
        membership_joined(s, room, ev->rec, ev->hist);
    else
        membership_left(s, room);
}

void deliver_session_error(nb_worker *w, nb_event *ev) {
    nb_session *s = session_find(w, ev->who);
    if (!s)
        return;
    nb_str room = {ev->room->name, ev->room->name_len, 0};
    if (ev->op == NB_OP_JOIN)
        membership_failed(s, ev->room);
    else if (ev->op == NB_OP_LEAVE)
        membership_left(s, ev->room);
    if (ev->code) /* a store or broker failure: not counted against max_errors */
        session_error_frame(s, ev->code, ev->reason, &room);
    if (ev->flags & NB_EVF_CLOSE_TAKEN)
        session_close(s, NB_CLOSE_NAME_TAKEN, "username taken");
}
