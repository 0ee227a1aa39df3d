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

nb_room *room_new(const char *name, uint32_t len, uint32_t hash, uint32_t history_cap) {
    nb_room *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    r->name_len = len;
    r->hash = hash;
    r->hist_cap = history_cap;
    return r;
}

void room_free(nb_room *room) {
    if (!room)
        return;
    if (room->hist) {
        for (uint32_t i = 0; i < room->hist_len; i++)
            free(room->hist[(room->hist_start + i) % room->hist_cap]);
        free(room->hist);
    }
    free(room->members);
    free(room);
}

int room_add_member(nb_room *room, nb_session *s, uint32_t slot, uint32_t codec) {
    if (room->n_members == room->cap_members) {
        uint32_t cap = room->cap_members ? room->cap_members * 2 : 8;
        nb_member *m = realloc(room->members, cap * sizeof *m);
        if (!m)
            return -1;
        room->members = m;
        room->cap_members = cap;
    }
    room->members[room->n_members] = (nb_member){.session = s, .slot = slot};
    room->codec_members[codec]++;
    return (int)room->n_members++;
}

void room_remove_member(nb_room *room, uint32_t idx, uint32_t codec) {
    uint32_t last = room->n_members - 1;
    room->codec_members[codec]--;
    if (idx != last) {
        room->members[idx] = room->members[last];
        session_member_moved(room->members[idx].session, room->members[idx].slot, idx);
    }
    room->n_members = last;
}

int room_find_user(const nb_room *room, const char *user, uint32_t len) {
    for (uint32_t i = 0; i < room->n_members; i++) {
        const nb_session *s = room->members[i].session;
        if (s->user_len == len && memcmp(s->user, user, len) == 0)
            return (int)i;
    }
    return -1;
}

void room_history_add(nb_room *room, const nb_msg *msg) {
    if (room->hist_cap == 0)
        return;
    if (!room->hist) {
        room->hist = calloc(room->hist_cap, sizeof *room->hist);
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
    *n = room->n_members;
    if (!room->n_members)
        return NULL;
    nb_str *users = malloc(room->n_members * sizeof *users);
    if (!users)
        return NULL;
    for (uint32_t i = 0; i < room->n_members; i++) {
        const nb_session *s = room->members[i].session;
        users[i] = (nb_str){s->user, s->user_len, 0};
    }
    qsort(users, room->n_members, sizeof *users, cmp_str);
    return users;
}
