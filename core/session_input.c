/*
 * session_input.c — one frame from a client: the checks that cost nothing
 * first (rate limit, size, frame kind), then decoding, then what it means
 * (docs/PROTOCOL.md).
 */
#include "session_input.h"

#include "abuse.h"
#include "clock.h"
#include "membership.h"
#include "pipeline.h"
#include "session.h"

#include <string.h>

static int need_room(nb_session *s, const nb_msg *m) {
    if (!m->room.ptr) {
        session_error(s, "missing_field", "this message needs a \"room\"", NULL);
        return 0;
    }
    if (!name_valid(m->room.ptr, m->room.len, NB_ROOM_MAX)) {
        session_error(s, "bad_room", "a room name is 1-64 characters of A-Z a-z 0-9 _ - .", NULL);
        return 0;
    }
    return 1;
}

static const char *pipeline_reason(const char *code) {
    if (strcmp(code, "store_unavailable") == 0)
        return "the message could not be stored and was not sent";
    if (strcmp(code, "broker_unavailable") == 0)
        return "the cluster bus did not take the message; it was not sent";
    if (strcmp(code, "busy") == 0)
        return "the server is busy; the message was not sent";
    return "the message could not be processed";
}

static void on_chat(nb_session *s, const nb_msg *in) {
    if (!need_room(s, in))
        return;
    if (!in->content.ptr) {
        session_error(s, "missing_field", "a message needs \"content\"", &in->room);
        return;
    }
    int slot = membership_find(s, in->room.ptr, in->room.len);
    if (slot < 0) {
        session_error(s, "not_joined", "join the room before sending to it", &in->room);
        return;
    }
    const char *err = pipeline_message(s->worker, s->rooms[slot].room, s->user, s->user_len,
                                       &in->content, s->ref);
    if (err) /* the server's failure, not the client's: not counted against max_errors */
        session_error_frame(s, err, pipeline_reason(err), &in->room);
}

static void on_leave(nb_session *s, const nb_msg *in) {
    if (!need_room(s, in))
        return;
    int slot = membership_find(s, in->room.ptr, in->room.len);
    if (slot < 0)
        session_error(s, "not_joined", "you are not in this room", &in->room);
    else
        membership_leave(s, (uint32_t)slot);
}

void session_message(struct nb_session *s, uint32_t frame_kind, const uint8_t *data, uint32_t len) {
    nb_server *srv = s->worker->server;
    if (s->state != NB_SESSION_OPEN)
        return;
    metrics_add(srv->m.messages_received, 1);
    const nb_settings *st = &srv->settings;
    int64_t now = clock_mono_ms(); /* for the rate limit and the idle limit */
    if (!session_take_token(s, st->messages_per_second, st->burst, now)) {
        metrics_add(srv->m.rate_limited, 1);
        session_error(s, "rate_limited", "slow down: too many messages per second", NULL);
        return;
    }
    if (len > st->max_message_bytes) {
        session_error(s, "too_large", "the message is larger than max_message_bytes", NULL);
        return;
    }
    if (!peers_take_token(srv->guard.peers, s->peer, now)) {
        metrics_add(srv->m.rate_limited, 1);
        metrics_add(srv->guard.address_rate_limited, 1);
        session_error(s, "rate_limited",
                      "slow down: too many messages per second from your address", NULL);
        return;
    }
    if (!session_take_bytes(s, len, now)) {
        metrics_add(srv->m.rate_limited, 1);
        metrics_add(srv->guard.bytes_limited, 1);
        session_error(s, "rate_limited", "slow down: too many bytes per second", NULL);
        return;
    }
    if (len > NB_BUDGET_LARGE_BYTES && budget_near(&srv->guard.budget)) {
        /* the server's condition, not the client's fault: not counted */
        metrics_add(srv->guard.budget_refused, 1);
        session_error_frame(s, "busy", "the server is short of memory: large messages wait", NULL);
        return;
    }
    nb_codec_slot *codec = &srv->codecs[s->codec];
    if (frame_kind != codec->vt->frame_kind) {
        session_error(s, "bad_encoding",
                      frame_kind == NB_FRAME_BINARY ? "binary frame sent to a text codec"
                                                    : "text frame sent to a binary codec",
                      NULL);
        return;
    }
    nb_msg in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    nb_decode_error err;
    memset(&err, 0, sizeof err);
    err.struct_size = sizeof err;
    if (codec->vt->decode(codec->ctx.instance, data, len, &in, &err) != NB_OK) {
        err.code[sizeof err.code - 1] = '\0';
        err.reason[sizeof err.reason - 1] = '\0';
        /* bad_message: the codec-neutral code, for a codec that gave none */
        session_error(s, err.code[0] ? err.code : "bad_message",
                      err.reason[0] ? err.reason : "the message could not be decoded", NULL);
        return;
    }
    /* Activity for the idle limit: a client type, even one refused below. */
    if (st->idle_timeout_ms &&
        (in.type == NB_MSG_MESSAGE || in.type == NB_MSG_JOIN || in.type == NB_MSG_LEAVE))
        session_touch(s, now);
    if (s->worker->quiet && (in.type == NB_MSG_MESSAGE || in.type == NB_MSG_JOIN)) {
        /* Shutting down: nothing new is taken, so everything taken can be
         * flushed and echoed before the close. Not the client's fault. */
        session_error_frame(s, "shutting_down",
                            "the server is shutting down; the message was not sent (send it "
                            "again after reconnecting)",
                            in.room.ptr ? &in.room : NULL);
        codec->vt->release(codec->ctx.instance, &in);
        return;
    }
    switch (in.type) {
    case NB_MSG_MESSAGE:
        on_chat(s, &in);
        break;
    case NB_MSG_JOIN:
        if (need_room(s, &in))
            membership_join(s, in.room.ptr, in.room.len, &in, 0);
        break;
    case NB_MSG_LEAVE:
        on_leave(s, &in);
        break;
    default:
        session_error(s, "unknown_type", "clients may send only message, join and leave", NULL);
        break;
    }
    codec->vt->release(codec->ctx.instance, &in);
}
