#include "hub.h"

#include <stdlib.h>
#include <string.h>

typedef struct nb_shard {
    nb_room **buckets;
    uint32_t n_buckets; /* power of two */
    uint32_t n_rooms;
} nb_shard;

struct nb_hub {
    nb_shard *shards;
    uint32_t n_shards;
    uint32_t n_rooms;
    uint32_t history_per_room;
};

nb_hub *hub_new(uint32_t n_shards, uint32_t history_per_room) {
    nb_hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->shards = calloc(n_shards, sizeof *h->shards);
    if (!h->shards) {
        free(h);
        return NULL;
    }
    h->n_shards = n_shards;
    h->history_per_room = history_per_room;
    return h;
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
                room_free(r);
                r = next;
            }
        }
        free(sh->buckets);
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

uint32_t hub_shard_of(const nb_hub *hub, uint32_t hash) { return hash % hub->n_shards; }

/* Bucket index from the high bits, so it is independent of the shard
 * choice (which uses the low bits through the modulo). */
static uint32_t bucket_of(const nb_shard *sh, uint32_t hash) {
    return (hash >> 16 ^ hash * 2654435761u) & (sh->n_buckets - 1);
}

nb_room *hub_find(nb_hub *hub, const char *name, uint32_t len) {
    uint32_t hash = hub_hash(name, len);
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
    nb_room **buckets = calloc(nb, sizeof *buckets);
    if (!buckets)
        return -1;
    nb_shard grown = {.buckets = buckets, .n_buckets = nb, .n_rooms = sh->n_rooms};
    for (uint32_t b = 0; b < sh->n_buckets; b++) {
        nb_room *r = sh->buckets[b];
        while (r) {
            nb_room *next = r->next;
            uint32_t i = bucket_of(&grown, r->hash);
            r->next = buckets[i];
            buckets[i] = r;
            r = next;
        }
    }
    free(sh->buckets);
    *sh = grown;
    return 0;
}

nb_room *hub_get(nb_hub *hub, const char *name, uint32_t len) {
    nb_room *r = hub_find(hub, name, len);
    if (r)
        return r;
    uint32_t hash = hub_hash(name, len);
    nb_shard *sh = &hub->shards[hub_shard_of(hub, hash)];
    if (sh->n_rooms >= sh->n_buckets && shard_grow(sh) < 0)
        return NULL;
    r = room_new(name, len, hash, hub->history_per_room);
    if (!r)
        return NULL;
    uint32_t i = bucket_of(sh, hash);
    r->next = sh->buckets[i];
    sh->buckets[i] = r;
    sh->n_rooms++;
    hub->n_rooms++;
    return r;
}

void hub_remove(nb_hub *hub, nb_room *room) {
    nb_shard *sh = &hub->shards[hub_shard_of(hub, room->hash)];
    nb_room **pp = &sh->buckets[bucket_of(sh, room->hash)];
    while (*pp && *pp != room)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = room->next;
    sh->n_rooms--;
    hub->n_rooms--;
    room_free(room);
}

uint32_t hub_room_count(const nb_hub *hub) { return hub->n_rooms; }

uint32_t hub_shard_count(const nb_hub *hub) { return hub->n_shards; }

uint32_t hub_shard_rooms(const nb_hub *hub, uint32_t shard) {
    return shard < hub->n_shards ? hub->shards[shard].n_rooms : 0;
}
