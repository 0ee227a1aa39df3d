/*
 * pipeline_impl.h — what the pipeline's own files (pipeline.c, sequence.c,
 * backlog.c) share. Not for other modules: they use pipeline.h.
 */
#ifndef NEBULA_CORE_PIPELINE_IMPL_H
#define NEBULA_CORE_PIPELINE_IMPL_H

#include "pipeline.h"

nb_str pipe_str(const char *p, uint32_t len);
nb_msg pipe_msg(uint32_t type, const nb_room *room);
/* ts never goes backwards within a room (shard lock held). */
int64_t pipe_ts(nb_room *room);
void pipe_mark_lost(nb_server *srv, nb_room *room, uint32_t w);
/* Count (nebula_mailbox_refused_total) and log, at most once a second. */
void pipe_refused(nb_server *srv, const char *what, const char *key);
int pipe_post_writer(nb_poster *p, nb_event *ev);
int pipe_post_main(nb_poster *p, nb_event *ev);
void pipe_post_room(nb_poster *p, nb_room *room, uint32_t type);
nb_sref pipe_no_session(void);
int pipe_emit_locked(nb_poster *p, nb_room *room, const nb_msg *m, uint32_t op, nb_sref who,
                     uint32_t who_codec, nb_history *hist, nb_record *persist);
int pipe_has_history(nb_server *srv);
int pipe_post_load(nb_poster *p, nb_room *room, int has_since, uint64_t since);
void pipe_presence_hook(nb_poster *p, nb_room *room, const char *user, uint32_t len, uint32_t op);
void pipe_tell_session(nb_poster *p, nb_room *room, nb_sref who, uint32_t op, const char *code,
                       const char *reason);
int pipe_commit_join_locked(nb_poster *p, nb_room *room, const nb_pending *j);
void pipe_commit_leave_locked(nb_poster *p, nb_room *room, const nb_pending *l);
const char *pipe_commit_message_locked(nb_poster *p, nb_room *room, const nb_record *in,
                                       uint64_t seq, nb_sref origin);
/* The seq of a message a sequencing broker gave back, in the room's order;
 * UINT64_MAX for one already delivered; 0 for a relaying broker. */
uint64_t pipe_remote_seq_locked(nb_server *srv, nb_room *room, uint64_t b);
#endif
