/*
 * aof_index.c — rooms in a chained hash table (FNV-1a), each with a ring
 * of its kept records that grows by doubling up to retention_messages.
 */
#include "aof_index.h"

#include <stdlib.h>
#include <string.h>

static uint32_t fnv1a(const char *s, uint32_t len) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

void index_init(aof_index *idx, uint32_t max_per_room) {
    memset(idx, 0, sizeof *idx);
    idx->max_per_room = max_per_room;
}

void index_free(aof_index *idx) {
    aof_room *r = idx->rooms;
    while (r) {
        aof_room *next = r->all;
        free(r->ring);
        free(r->moved);
        free(r->name);
        free(r);
        r = next;
    }
    free(idx->buckets);
    memset(idx, 0, sizeof *idx);
}

static int grow_buckets(aof_index *idx) {
    uint32_t n = idx->n_buckets ? idx->n_buckets * 2 : 64;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    aof_room **b = calloc(n, sizeof *b);
    if (!b)
        return -1;
    for (aof_room *r = idx->rooms; r; r = r->all) {
        r->next = b[r->hash & (n - 1)];
        b[r->hash & (n - 1)] = r;
    }
    free(idx->buckets);
    idx->buckets = b;
    idx->n_buckets = n;
    return 0;
}

aof_room *index_room(aof_index *idx, const char *name, uint32_t len, int create) {
    uint32_t h = fnv1a(name, len);
    if (idx->n_buckets) {
        for (aof_room *r = idx->buckets[h & (idx->n_buckets - 1)]; r; r = r->next)
            if (r->hash == h && r->name_len == len && memcmp(r->name, name, len) == 0)
                return r;
    }
    if (!create)
        return NULL;
    if (idx->n_rooms >= idx->n_buckets && grow_buckets(idx) != 0)
        return NULL;
    aof_room *r = calloc(1, sizeof *r);
    if (!r || !(r->name = malloc((size_t)len + 1))) {
        free(r);
        return NULL;
    }
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    r->name_len = len;
    r->hash = h;
    r->next = idx->buckets[h & (idx->n_buckets - 1)];
    idx->buckets[h & (idx->n_buckets - 1)] = r;
    r->all = idx->rooms;
    idx->rooms = r;
    idx->n_rooms++;
    return r;
}

aof_entry *index_at(const aof_room *r, uint32_t i) {
    return &r->ring[(r->start + i) % r->cap];
}

static void drop_oldest(aof_index *idx, aof_room *r) {
    idx->kept--;
    idx->kept_bytes -= r->ring[r->start].len;
    r->start = (r->start + 1) % r->cap;
    r->n--;
}

int index_push(aof_index *idx, aof_room *r, uint64_t seq, int64_t ts, uint64_t off, uint32_t len) {
    if (idx->max_per_room && r->n >= idx->max_per_room)
        drop_oldest(idx, r);
    if (r->n == r->cap) {
        uint64_t cap = r->cap ? (uint64_t)r->cap * 2 : 8;
        if (idx->max_per_room && cap > idx->max_per_room)
            cap = idx->max_per_room;
        if (cap > UINT32_MAX)
            return -1;
        aof_entry *ring = malloc(cap * sizeof *ring);
        if (!ring)
            return -1;
        for (uint32_t i = 0; i < r->n; i++)
            ring[i] = *index_at(r, i);
        free(r->ring);
        r->ring = ring;
        r->cap = (uint32_t)cap;
        r->start = 0;
    }
    aof_entry *e = &r->ring[(r->start + r->n) % r->cap];
    *e = (aof_entry){.seq = seq, .ts = ts, .off = off, .len = len};
    r->n++;
    idx->kept++;
    idx->kept_bytes += len;
    if (seq > r->last_seq)
        r->last_seq = seq;
    return 0;
}

void index_trim_age(aof_index *idx, aof_room *r, int64_t cutoff_ms) {
    while (r->n && r->ring[r->start].ts < cutoff_ms)
        drop_oldest(idx, r);
}

uint32_t index_after(const aof_room *r, uint64_t since) {
    uint32_t lo = 0, hi = r->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (index_at(r, mid)->seq <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
