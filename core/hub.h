/*
 * hub.h — rooms hashed to shards: shard = FNV-1a(name) % n_shards. Each
 * shard is a chained hash table that grows, behind its own mutex, so two
 * I/O threads only contend when they touch rooms of the same shard; there
 * is no global lock on the message path.
 *
 * Functions named *_locked need the shard's lock (hub_lock with the room's
 * hash).
 */
#ifndef NEBULA_CORE_HUB_H
#define NEBULA_CORE_HUB_H

#include "room.h"

#include <stdint.h>

typedef struct nb_hub nb_hub;

nb_hub *hub_new(uint32_t n_shards, uint32_t history_per_room, uint32_t n_workers);
/* Rooms created from now on bound their history with `limits` (which
 * outlives the hub); set before any room exists. */
void hub_set_history_limits(nb_hub *hub, nb_hist_limits *limits);
/* Drop every room (the caller made sure no worker runs). */
void hub_free(nb_hub *hub);

uint32_t hub_hash(const char *name, uint32_t len);
uint32_t hub_shard_of(const nb_hub *hub, uint32_t hash);

void hub_lock(nb_hub *hub, uint32_t hash);
void hub_unlock(nb_hub *hub, uint32_t hash);

nb_room *hub_find_locked(nb_hub *hub, const char *name, uint32_t len, uint32_t hash);
/* Find or create; NULL when out of memory. */
nb_room *hub_get_locked(nb_hub *hub, const char *name, uint32_t len, uint32_t hash);
/* Take a room with no users out of its shard (drops the table's
 * reference; queued deliveries may still hold theirs). */
void hub_remove_locked(nb_hub *hub, nb_room *room);

/* Call fn for every room, each under its shard's lock. */
void hub_foreach_room(nb_hub *hub, void (*fn)(nb_room *room, void *user), void *user);

uint32_t hub_room_count(const nb_hub *hub);
uint32_t hub_shard_count(const nb_hub *hub);
/* Rooms in one shard (takes the lock). */
uint32_t hub_shard_rooms(nb_hub *hub, uint32_t shard);
#endif
