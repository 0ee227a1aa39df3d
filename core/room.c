#include "room.h"

#include <stdlib.h>
#include <string.h>

nb_room *room_new(const char *name, uint32_t len, uint32_t hash, uint32_t history_cap,
                  uint32_t n_workers) {
    nb_room *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->worker_members = calloc(n_workers, sizeof *r->worker_members);
    r->local = calloc(n_workers, sizeof *r->local);
    if (!r->worker_members || !r->local) {
        free(r->worker_members);
        free(r->local);
        free(r);
        return NULL;
    }
    for (uint32_t w = 0; w < n_workers; w++)
        atomic_init(&r->local[w].lost, 0);
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    r->name_len = len;
    r->hash = hash;
    r->n_workers = n_workers;
    r->hist_cap = history_cap;
    atomic_init(&r->refs, 1);
    return r;
}

void room_ref(nb_room *room) {
    atomic_fetch_add_explicit(&room->refs, 1, memory_order_relaxed);
}

void room_unref(nb_room *room) {
    if (!room || atomic_fetch_sub_explicit(&room->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (room->hist) {
        for (uint32_t i = 0; i < room->hist_len; i++)
            record_unref(room->hist[(room->hist_start + i) % room->hist_cap]);
        free(room->hist);
    }
    for (uint32_t i = 0; i < room->n_backlog; i++)
        record_unref(room->backlog[i].rec);
    free(room->backlog);
    history_free(room->loaded);
    for (uint32_t w = 0; w < room->n_workers; w++)
        free(room->local[w].members);
    free(room->local);
    free(room->worker_members);
    free(room->users);
    free(room);
}

int room_add_user(nb_room *room, const char *user, uint32_t len, uint32_t worker, uint32_t codec) {
    if (room->n_users == room->cap_users) {
        uint32_t cap = room->cap_users ? room->cap_users * 2 : 8;
        nb_room_user *u = realloc(room->users, cap * sizeof *u);
        if (!u)
            return -1;
        room->users = u;
        room->cap_users = cap;
    }
    nb_room_user *u = &room->users[room->n_users++];
    memcpy(u->name, user, len);
    u->name[len] = '\0';
    u->len = len;
    u->claim = (nb_sref){0, 0, 0};
    room->codec_members[codec]++;
    room->worker_members[worker]++;
    return 0;
}

static int find_user(const nb_room *room, const char *user, uint32_t len) {
    for (uint32_t i = 0; i < room->n_users; i++)
        if (room->users[i].len == len && memcmp(room->users[i].name, user, len) == 0)
            return (int)i;
    return -1;
}

int room_has_user(const nb_room *room, const char *user, uint32_t len) {
    return find_user(room, user, len) >= 0;
}

nb_room_user *room_find_user(nb_room *room, const char *user, uint32_t len) {
    int i = find_user(room, user, len);
    return i < 0 ? NULL : &room->users[i];
}

int room_history_has_id(const nb_room *room, const char *id, uint32_t len) {
    for (uint32_t i = 0; i < room->hist_len; i++) {
        const nb_record *r = room->hist[(room->hist_start + i) % room->hist_cap];
        const char *rid = r->data + r->room_len + r->sender_len + r->content_len;
        if (r->id_len == len && memcmp(rid, id, len) == 0)
            return 1;
    }
    return 0;
}

void room_remove_user(nb_room *room, const char *user, uint32_t len, uint32_t worker,
                      uint32_t codec) {
    int i = find_user(room, user, len);
    if (i < 0)
        return;
    room->users[i] = room->users[--room->n_users];
    room->codec_members[codec]--;
    room->worker_members[worker]--;
}

void room_history_add(nb_room *room, nb_record *rec) {
    if (room->hist_cap == 0) {
        room->hist_floor = rec->seq;
        return;
    }
    if (!room->hist) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        room->hist = calloc(room->hist_cap, sizeof room->hist[0]);
        if (!room->hist) {
            room->hist_floor = rec->seq; /* best effort: the ring vouches for nothing */
            return;
        }
    }
    record_ref(rec);
    if (room->hist_len == room->hist_cap) {
        nb_record *old = room->hist[room->hist_start];
        room->hist_floor = old->seq;
        record_unref(old);
        room->hist[room->hist_start] = rec;
        room->hist_start = (room->hist_start + 1) % room->hist_cap;
    } else {
        room->hist[(room->hist_start + room->hist_len) % room->hist_cap] = rec;
        room->hist_len++;
    }
}

nb_history *room_history_snapshot(const nb_room *room, int has_since, uint64_t since) {
    nb_history *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    memcpy(h->epoch, room->epoch, sizeof h->epoch);
    uint32_t first = 0;
    if (has_since) {
        while (first < room->hist_len &&
               room->hist[(room->hist_start + first) % room->hist_cap]->seq <= since)
            first++;
        h->incomplete = since < room->hist_floor || since > room->last_seq;
        if (since > room->last_seq)
            first = 0; /* from another epoch: what we have, marked incomplete */
    }
    uint32_t n = room->hist_len - first;
    if (n) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        h->items = malloc(n * sizeof h->items[0]);
        if (!h->items) {
            free(h);
            return NULL;
        }
        for (uint32_t i = 0; i < n; i++) {
            h->items[i] = room->hist[(room->hist_start + first + i) % room->hist_cap];
            record_ref(h->items[i]);
        }
        h->n = n;
    }
    return h;
}

static int cmp_str(const void *a, const void *b) {
    const nb_str *x = a;
    const nb_str *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->ptr, y->ptr, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

nb_str *room_user_list(const nb_room *room, uint32_t *n) {
    *n = room->n_users;
    if (!room->n_users)
        return NULL;
    nb_str *users = malloc(room->n_users * sizeof *users);
    if (!users) {
        *n = 0;
        return NULL;
    }
    for (uint32_t i = 0; i < room->n_users; i++)
        users[i] = (nb_str){room->users[i].name, room->users[i].len, 0};
    qsort(users, room->n_users, sizeof *users, cmp_str);
    return users;
}

int room_backlog_push(nb_room *room, const nb_pending *p, uint32_t limit) {
    if (room->n_backlog >= limit)
        return -1;
    if (room->n_backlog == room->cap_backlog) {
        uint32_t cap = room->cap_backlog ? room->cap_backlog * 2 : 8;
        nb_pending *b = realloc(room->backlog, cap * sizeof *b);
        if (!b)
            return -1;
        room->backlog = b;
        room->cap_backlog = cap;
    }
    room->backlog[room->n_backlog++] = *p;
    return 0;
}

int room_local_add(nb_room *room, uint32_t worker, nb_session *s) {
    nb_room_local *l = &room->local[worker];
    if (l->n_members == l->cap_members) {
        uint32_t cap = l->cap_members ? l->cap_members * 2 : 8;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        nb_session **m = realloc(l->members, cap * sizeof *m);
        if (!m)
            return -1;
        l->members = m;
        l->cap_members = cap;
    }
    l->members[l->n_members++] = s;
    return 0;
}

void room_local_remove(nb_room *room, uint32_t worker, const nb_session *s) {
    nb_room_local *l = &room->local[worker];
    for (uint32_t i = 0; i < l->n_members; i++)
        if (l->members[i] == s) {
            l->members[i] = l->members[--l->n_members];
            return;
        }
}
