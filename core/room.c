#include "room.h"

#include "session.h"

#include <stdlib.h>
#include <string.h>

struct nb_hist_entry {
    int64_t ts;
    uint32_t sender_len;
    uint32_t content_len;
    uint32_t id_len;
    char data[]; /* sender, content, id, back to back */
};

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
            free(room->hist[(room->hist_start + i) % room->hist_cap]);
        free(room->hist);
    }
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

void room_remove_user(nb_room *room, const char *user, uint32_t len, uint32_t worker,
                      uint32_t codec) {
    int i = find_user(room, user, len);
    if (i < 0)
        return;
    room->users[i] = room->users[--room->n_users];
    room->codec_members[codec]--;
    room->worker_members[worker]--;
}

void room_history_add(nb_room *room, const nb_msg *msg) {
    if (room->hist_cap == 0)
        return;
    if (!room->hist) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        room->hist = calloc(room->hist_cap, sizeof room->hist[0]);
        if (!room->hist)
            return;
    }
    uint32_t total = msg->sender.len + msg->content.len + msg->id.len;
    nb_hist_entry *e = malloc(sizeof *e + total);
    if (!e)
        return; /* history is best effort; the live broadcast still happens */
    e->ts = msg->ts;
    e->sender_len = msg->sender.len;
    e->content_len = msg->content.len;
    e->id_len = msg->id.len;
    char *p = e->data;
    if (msg->sender.len)
        memcpy(p, msg->sender.ptr, msg->sender.len);
    p += msg->sender.len;
    if (msg->content.len)
        memcpy(p, msg->content.ptr, msg->content.len);
    p += msg->content.len;
    if (msg->id.len)
        memcpy(p, msg->id.ptr, msg->id.len);
    if (room->hist_len == room->hist_cap) {
        free(room->hist[room->hist_start]);
        room->hist[room->hist_start] = e;
        room->hist_start = (room->hist_start + 1) % room->hist_cap;
    } else {
        room->hist[(room->hist_start + room->hist_len) % room->hist_cap] = e;
        room->hist_len++;
    }
}

void room_history_get(const nb_room *room, uint32_t i, nb_msg *out) {
    const nb_hist_entry *e = room->hist[(room->hist_start + i) % room->hist_cap];
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->type = NB_MSG_HISTORY;
    out->room = (nb_str){room->name, room->name_len, 0};
    out->sender = (nb_str){e->data, e->sender_len, 0};
    out->content = (nb_str){e->data + e->sender_len, e->content_len, 0};
    out->id = (nb_str){e->data + e->sender_len + e->content_len, e->id_len, 0};
    out->ts = e->ts;
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

int room_local_add(nb_room *room, uint32_t worker, nb_session *s, uint32_t slot) {
    nb_room_local *l = &room->local[worker];
    if (l->n_members == l->cap_members) {
        uint32_t cap = l->cap_members ? l->cap_members * 2 : 8;
        nb_member *m = realloc(l->members, cap * sizeof *m);
        if (!m)
            return -1;
        l->members = m;
        l->cap_members = cap;
    }
    l->members[l->n_members] = (nb_member){.session = s, .slot = slot};
    return (int)l->n_members++;
}

void room_local_remove(nb_room *room, uint32_t worker, uint32_t idx) {
    nb_room_local *l = &room->local[worker];
    uint32_t last = l->n_members - 1;
    if (idx != last) {
        l->members[idx] = l->members[last];
        session_member_moved(l->members[idx].session, l->members[idx].slot, idx);
    }
    l->n_members = last;
}
