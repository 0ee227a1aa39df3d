/*
 * closecodes.h — every WebSocket close code the core sends, by name. The
 * table in docs/PROTOCOL.md ("Close codes") is the same list: 4000-4399
 * mean "reconnect" (with backoff), 4400-4999 "do not reconnect" without
 * changing something first.
 */
#ifndef NEBULA_CORE_CLOSECODES_H
#define NEBULA_CORE_CLOSECODES_H

#define NB_CLOSE_GOING_AWAY 1001    /* server shutting down: reconnect */
#define NB_CLOSE_RESTART 1012       /* a node of a cluster restarting: reconnect (to another) */
#define NB_CLOSE_SLOW_CONSUMER 4000 /* not reading fast enough, or events were lost: reconnect */
#define NB_CLOSE_MEMORY 4003        /* the server's memory budget is exceeded: reconnect later */
#define NB_CLOSE_BAD_NAME 4400      /* bad username or room in the connect URL */
#define NB_CLOSE_IDLE 4408          /* no message within [limits] idle_timeout_ms */
#define NB_CLOSE_NAME_TAKEN 4409    /* username already in the room */
#define NB_CLOSE_ABUSE 4429         /* too many errors */
#endif
