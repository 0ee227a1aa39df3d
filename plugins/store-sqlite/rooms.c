/*
 * rooms.c — the rooms this instance has touched since start, by name:
 * what retention by count needs to know (a room's message count) without
 * counting rows on every batch. An open-addressing table that only grows
 * (rooms are never forgotten while the server runs; one small entry each).
 */
#include "sq.h"

#include <string.h>

static uint32_t hash_name(const char *p, uint32_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < len; i++) {
        h ^= (uint8_t)p[i];
        h *= 16777619u;
    }
    return h;
}

static int grow(sq_store *s) {
    sq_rooms *t = &s->rooms;
    uint32_t cap = t->cap ? t->cap * 2 : 64;
    sq_room **slots = s->host->alloc((uint64_t)cap * sizeof(sq_room *));
    if (!slots)
        return -1;
    memset(slots, 0, (size_t)cap * sizeof(sq_room *));
    for (uint32_t i = 0; i < t->cap; i++) {
        sq_room *r = t->slots[i];
        if (!r)
            continue;
        uint32_t j = r->hash & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = r;
    }
    s->host->free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

sq_room *sq_rooms_get(sq_store *s, const char *name, uint32_t len, int create) {
    sq_rooms *t = &s->rooms;
    uint32_t h = hash_name(name, len);
    if (t->cap) {
        for (uint32_t j = h & (t->cap - 1); t->slots[j]; j = (j + 1) & (t->cap - 1)) {
            sq_room *r = t->slots[j];
            if (r->hash == h && r->len == len && memcmp(r->name, name, len) == 0)
                return r;
        }
    }
    if (!create)
        return NULL;
    if ((t->n + 1) * 4 > t->cap * 3 && grow(s) != 0) /* keep the load under 3/4 */
        return NULL;
    sq_room *r = s->host->alloc(sizeof *r);
    char *copy = s->host->alloc((uint64_t)len + 1);
    if (!r || !copy) {
        s->host->free(r);
        s->host->free(copy);
        return NULL;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    *r = (sq_room){.name = copy, .len = len, .hash = h, .count = -1};
    uint32_t j = h & (t->cap - 1);
    while (t->slots[j])
        j = (j + 1) & (t->cap - 1);
    t->slots[j] = r;
    t->n++;
    return r;
}

void sq_rooms_free(sq_store *s) {
    sq_rooms *t = &s->rooms;
    for (uint32_t i = 0; i < t->cap; i++) {
        if (t->slots[i]) {
            s->host->free(t->slots[i]->name);
            s->host->free(t->slots[i]);
        }
    }
    s->host->free(t->slots);
    *t = (sq_rooms){0};
}
