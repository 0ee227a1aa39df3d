#include "hub.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct nb_shard {
    pthread_mutex_t lock;
    nb_room **buckets;
    uint32_t n_buckets; /* power of two */
    uint32_t n_rooms;
} nb_shard;

struct nb_hub {
    nb_shard *shards;
    uint32_t n_shards;
    uint32_t history_per_room;
    uint32_t n_workers;
    atomic_uint n_rooms;
    nb_hist_limits *hist_limits;
};

nb_hub *hub_new(uint32_t n_shards, uint32_t history_per_room, uint32_t n_workers) {
    nb_hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->shards = calloc(n_shards, sizeof *h->shards);
    if (!h->shards) {
        free(h);
        return NULL;
    }
    for (uint32_t i = 0; i < n_shards; i++)
        pthread_mutex_init(&h->shards[i].lock, NULL);
    h->n_shards = n_shards;
    h->history_per_room = history_per_room;
    h->n_workers = n_workers;
    atomic_init(&h->n_rooms, 0);
    return h;
}

void hub_set_history_limits(nb_hub *hub, nb_hist_limits *limits) {
    hub->hist_limits = limits;
}

void hub_free(nb_hub *hub) {
    if (!hub)
        return;
    for (uint32_t s = 0; s < hub->n_shards; s++) {
        nb_shard *sh = &hub->shards[s];
        for (uint32_t b = 0; b < sh->n_buckets; b++) {
            nb_room *r = sh->buckets[b];
            while (r) {
                nb_room *next = r->next;
                room_unref(r);
                r = next;
            }
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->lock);
    }
    free(hub->shards);
    free(hub);
}

/* FNV-1a: short names, good spread, no table. */
uint32_t hub_hash(const char *name, uint32_t len) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 16777619u;
    }
    return h;
}

uint32_t hub_shard_of(const nb_hub *hub, uint32_t hash) {
    return hash % hub->n_shards;
}

void hub_lock(nb_hub *hub, uint32_t hash) {
    pthread_mutex_lock(&hub->shards[hub_shard_of(hub, hash)].lock);
}

void hub_unlock(nb_hub *hub, uint32_t hash) {
    pthread_mutex_unlock(&hub->shards[hub_shard_of(hub, hash)].lock);
}

/* Bucket from a remix of the hash, independent of the shard choice (which
 * uses the same hash through the modulo). */
static uint32_t bucket_of(const nb_shard *sh, uint32_t hash) {
    return ((hash >> 16) ^ (hash * 2654435761u)) & (sh->n_buckets - 1);
}

nb_room *hub_find_locked(nb_hub *hub, const char *name, uint32_t len, uint32_t hash) {
    nb_shard *sh = &hub->shards[hub_shard_of(hub, hash)];
    if (!sh->n_buckets)
        return NULL;
    for (nb_room *r = sh->buckets[bucket_of(sh, hash)]; r; r = r->next)
        if (r->hash == hash && r->name_len == len && memcmp(r->name, name, len) == 0)
            return r;
    return NULL;
}

static int shard_grow(nb_shard *sh) {
    uint32_t nb = sh->n_buckets ? sh->n_buckets * 2 : 8;
    /* An array of pointers, which the check takes for a mistake. */
    /* NOLINTNEXTLINE(bugprone-sizeof-expression) */
    nb_room **buckets = calloc(nb, sizeof buckets[0]);
    if (!buckets)
        return -1;
    nb_room **old = sh->buckets;
    uint32_t old_n = sh->n_buckets;
    sh->buckets = buckets;
    sh->n_buckets = nb;
    for (uint32_t b = 0; b < old_n; b++) {
        nb_room *r = old[b];
        while (r) {
            nb_room *next = r->next;
            uint32_t i = bucket_of(sh, r->hash);
            r->next = buckets[i];
            buckets[i] = r;
            r = next;
        }
    }
    free(old);
    return 0;
}

nb_room *hub_get_locked(nb_hub *hub, const char *name, uint32_t len, uint32_t hash) {
    nb_room *r = hub_find_locked(hub, name, len, hash);
    if (r)
        return r;
    nb_shard *sh = &hub->shards[hub_shard_of(hub, hash)];
    if (sh->n_rooms >= sh->n_buckets && shard_grow(sh) < 0)
        return NULL;
    r = room_new(name, len, hash, hub->history_per_room, hub->n_workers);
    if (!r)
        return NULL;
    r->hist_limits = hub->hist_limits;
    uint32_t i = bucket_of(sh, hash);
    r->next = sh->buckets[i];
    sh->buckets[i] = r;
    sh->n_rooms++;
    atomic_fetch_add(&hub->n_rooms, 1);
    return r;
}

void hub_remove_locked(nb_hub *hub, nb_room *room) {
    nb_shard *sh = &hub->shards[hub_shard_of(hub, room->hash)];
    if (!sh->n_buckets)
        return;
    nb_room **pp = &sh->buckets[bucket_of(sh, room->hash)];
    while (*pp && *pp != room)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = room->next;
    room->next = NULL;
    sh->n_rooms--;
    atomic_fetch_sub(&hub->n_rooms, 1);
    room_unref(room);
}

void hub_foreach_room(nb_hub *hub, void (*fn)(nb_room *room, void *user), void *user) {
    for (uint32_t s = 0; s < hub->n_shards; s++) {
        nb_shard *sh = &hub->shards[s];
        pthread_mutex_lock(&sh->lock);
        for (uint32_t b = 0; b < sh->n_buckets; b++)
            for (nb_room *r = sh->buckets[b]; r; r = r->next)
                fn(r, user);
        pthread_mutex_unlock(&sh->lock);
    }
}

uint32_t hub_room_count(const nb_hub *hub) {
    return atomic_load(&hub->n_rooms);
}

uint32_t hub_shard_count(const nb_hub *hub) {
    return hub->n_shards;
}

uint32_t hub_shard_rooms(nb_hub *hub, uint32_t shard) {
    if (shard >= hub->n_shards)
        return 0;
    pthread_mutex_lock(&hub->shards[shard].lock);
    uint32_t n = hub->shards[shard].n_rooms;
    pthread_mutex_unlock(&hub->shards[shard].lock);
    return n;
}
