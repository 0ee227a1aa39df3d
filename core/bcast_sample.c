#include "bcast_sample.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct nb_bcast_sample {
    nb_metric *histogram;
    struct timespec start; /* CLOCK_MONOTONIC */
    atomic_uint holds;
    atomic_int armed;
    atomic_int dropped;
};

nb_bcast_sample *bcast_sample_begin(nb_worker *w) {
    if (w->sample_tick++ % NB_BCAST_SAMPLE_EVERY != 0 || !w->server->m.broadcast)
        return NULL;
    nb_bcast_sample *s = malloc(sizeof *s);
    if (!s)
        return NULL; /* no sample: nothing is lost but a measurement */
    s->histogram = w->server->m.broadcast;
    clock_gettime(CLOCK_MONOTONIC, &s->start);
    atomic_init(&s->holds, 1);
    atomic_init(&s->armed, 0);
    atomic_init(&s->dropped, 0);
    return s;
}

void bcast_sample_arm(nb_bcast_sample *s, uint32_t n) {
    if (!s || n == 0)
        return;
    atomic_fetch_add(&s->holds, n);
    atomic_store(&s->armed, 1);
}

void bcast_sample_release(nb_bcast_sample *s, int dropped) {
    if (!s)
        return;
    if (dropped)
        atomic_store(&s->dropped, 1);
    if (atomic_fetch_sub(&s->holds, 1) != 1)
        return;
    if (atomic_load(&s->armed) && !atomic_load(&s->dropped)) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double seconds =
            (double)(now.tv_sec - s->start.tv_sec) + (double)(now.tv_nsec - s->start.tv_nsec) / 1e9;
        metrics_observe(s->histogram, seconds);
    }
    free(s);
}

/* Lowest priority: runs after the transport's flush in this iteration. */
static void after_flush(struct ev_loop *loop, ev_prepare *p, int revents) {
    (void)revents;
    nb_worker *w = p->data;
    for (uint32_t i = 0; i < w->n_samples_done; i++)
        bcast_sample_release(w->samples_done[i], 0);
    w->n_samples_done = 0;
    ev_prepare_stop(loop, p);
}

void bcast_sample_delivered(nb_worker *w, nb_bcast_sample *s) {
    if (w->n_samples_done == w->cap_samples_done) {
        uint32_t cap = w->cap_samples_done ? w->cap_samples_done * 2 : 16;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        nb_bcast_sample **done = realloc(w->samples_done, cap * sizeof *done);
        if (!done) {
            bcast_sample_release(s, 1);
            return;
        }
        w->samples_done = done;
        w->cap_samples_done = cap;
    }
    w->samples_done[w->n_samples_done++] = s;
    if (!ev_is_active(&w->sample_flush))
        ev_prepare_start(w->loop, &w->sample_flush);
}

void bcast_worker_init(nb_worker *w) {
    ev_prepare_init(&w->sample_flush, after_flush);
    ev_set_priority(&w->sample_flush, EV_MINPRI);
    w->sample_flush.data = w;
}

void bcast_worker_free(nb_worker *w) {
    for (uint32_t i = 0; i < w->n_samples_done; i++)
        bcast_sample_release(w->samples_done[i], 1);
    free(w->samples_done);
    w->samples_done = NULL;
    w->n_samples_done = w->cap_samples_done = 0;
    if (w->loop)
        ev_prepare_stop(w->loop, &w->sample_flush);
}
