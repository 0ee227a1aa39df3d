/*
 * nebula/msg.h — the protocol envelope, independent of any wire encoding.
 *
 * Codecs translate between bytes and nb_msg; the core only ever sees
 * nb_msg. JSON and Protobuf carry the same fields with the same meaning
 * (docs/PROTOCOL.md).
 *
 * Strings are (pointer, length) pairs, not NUL-terminated; a field that is
 * absent has ptr == NULL. A field that is present but empty has ptr != NULL
 * and len == 0 (codecs keep that distinction so the core can tell "missing"
 * from "empty").
 *
 * ABI 1.1 appended seq, since, epoch and flags (after codec_data). A codec
 * built for 1.0 neither reads nor writes them; the core gives it a zeroed
 * struct, so they read as absent.
 */
#ifndef NEBULA_MSG_H
#define NEBULA_MSG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Envelope types (nb_msg.type). Wire names in comments. */
#define NB_MSG_NONE 0u     /* not a valid type */
#define NB_MSG_MESSAGE 1u  /* "message": a chat line */
#define NB_MSG_JOIN 2u     /* "join": a user joined a room / request to join */
#define NB_MSG_LEAVE 3u    /* "leave": a user left a room / request to leave */
#define NB_MSG_PRESENCE 4u /* "presence": the room's full sorted user list */
#define NB_MSG_HISTORY 5u  /* "history": one past message, replayed on join */
#define NB_MSG_ERROR 6u    /* "error": code + human-readable content */
#define NB_MSG_WELCOME 7u  /* "welcome": sent first; sender = your name */
#define NB_MSG_TYPE_COUNT 8u

typedef struct nb_str {
    const char *ptr; /* NULL when absent */
    uint32_t len;
    uint32_t reserved;
} nb_str;

typedef struct nb_msg {
    uint32_t struct_size; /* sizeof(nb_msg) */
    uint32_t type;        /* NB_MSG_* */
    nb_str room;
    nb_str sender;       /* set by the server; ignored when a client sends it */
    nb_str content;      /* message text, or the human reason of an error */
    nb_str id;           /* server-assigned message id */
    nb_str code;         /* stable error code, for NB_MSG_ERROR */
    int64_t ts;          /* server time, milliseconds since the Unix epoch; 0 = absent */
    const nb_str *users; /* presence: sorted user names */
    uint32_t n_users;
    uint32_t reserved;
    void *codec_data; /* owned by the codec that decoded this message */

    /* ---- ABI 1.1 ---- */
    /* The room's order (docs/PROTOCOL.md, "Order and seq"). On message and
     * history: the message's position in its room, 1, 2, 3, ... strictly
     * increasing. On join, leave and presence: the room's position at that
     * event, i.e. the seq of the last message before it. 0 = absent. */
    uint64_t seq;
    /* On a client's join: the last seq it saw in that room; it gets the
     * messages after it. Meaningful only with NB_MSG_F_SINCE in flags
     * (since = 0 asks for everything the server still has). */
    uint64_t since;
    /* The room's history epoch: seq values compare only within one epoch
     * (a store or broker that lost its data starts a new one). Sent on the
     * joiner's own join event; a client may send it back with since. */
    nb_str epoch;
    uint32_t flags; /* NB_MSG_F_* */
    uint32_t reserved2;
} nb_msg;

/* nb_msg.flags (ABI 1.1). Wire names in comments. */
#define NB_MSG_F_SINCE 0x1u /* `since` is present */
#define NB_MSG_F_INCOMPLETE                                                                        \
    0x2u /* "incomplete": true — on the joiner's own join event:                                 \
            messages after `since` were no longer all available */

/* The wire names, indexed by NB_MSG_*; NULL for NB_MSG_NONE. */
#define NB_MSG_TYPE_NAMES                                                                          \
    { NULL, "message", "join", "leave", "presence", "history", "error", "welcome" }

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_MSG_H */
