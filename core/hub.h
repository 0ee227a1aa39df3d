/*
 * hub.h — rooms hashed to shards. A room lives in shard
 * hash(name) % n_shards; each shard is a chained hash table that grows.
 * With one I/O worker the shards only spread the tables; with several,
 * each shard is the unit of ownership (docs/ARCHITECTURE.md).
 */
#ifndef NEBULA_CORE_HUB_H
#define NEBULA_CORE_HUB_H

#include "room.h"

#include <stdint.h>

typedef struct nb_hub nb_hub;

nb_hub *hub_new(uint32_t n_shards, uint32_t history_per_room);
void hub_free(nb_hub *hub);

uint32_t hub_hash(const char *name, uint32_t len);
uint32_t hub_shard_of(const nb_hub *hub, uint32_t hash);

nb_room *hub_find(nb_hub *hub, const char *name, uint32_t len);
/* Find or create; NULL when out of memory. */
nb_room *hub_get(nb_hub *hub, const char *name, uint32_t len);
/* Forget a room that has no members left. */
void hub_remove(nb_hub *hub, nb_room *room);

uint32_t hub_room_count(const nb_hub *hub);
uint32_t hub_shard_count(const nb_hub *hub);
uint32_t hub_shard_rooms(const nb_hub *hub, uint32_t shard);
#endif
