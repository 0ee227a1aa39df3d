/*
 * bcast_sample.h — nebula_broadcast_duration_seconds: how long a chat
 * message takes from being accepted (session_input.c) to its last frame
 * handed to the kernel, on whichever I/O thread finishes last.
 *
 * Cheap by sampling: one message in NB_BCAST_SAMPLE_EVERY per I/O thread
 * carries a small shared sample (its start and how many threads still
 * deliver it). Each thread that delivers it marks it done in a prepare
 * watcher of the lowest priority, which libev runs after the transport's
 * own flush of that loop iteration (transport-ws writes its queues in a
 * prepare watcher of default priority); the last one records the time.
 * A delivery that is dropped (a full mailbox) drops the sample. Messages a
 * sequencing broker orders, or that wait in a loading room's backlog, are
 * not sampled.
 */
#ifndef NEBULA_CORE_BCAST_SAMPLE_H
#define NEBULA_CORE_BCAST_SAMPLE_H

#include "context.h"

#define NB_BCAST_SAMPLE_EVERY 16u

typedef struct nb_bcast_sample nb_bcast_sample;

/* On w's thread, as a message is accepted: a new sample (with one hold,
 * the caller's), or NULL when this message is not sampled. */
nb_bcast_sample *bcast_sample_begin(nb_worker *w);
/* The sample goes out in n more events (each released once). */
void bcast_sample_arm(nb_bcast_sample *s, uint32_t n);
/* One hold ends: dropped (the event was not delivered), or passed on. The
 * last release of an armed sample that was never dropped records it. */
void bcast_sample_release(nb_bcast_sample *s, int dropped);
/* On w's thread: an event carrying s was delivered; its release follows
 * this loop iteration's flush. */
void bcast_sample_delivered(nb_worker *w, nb_bcast_sample *s);

void bcast_worker_init(nb_worker *w);
void bcast_worker_free(nb_worker *w);
#endif
