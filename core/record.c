#include "record.h"

#include <stdlib.h>
#include <string.h>

static char *put(char *p, const nb_str *s) {
    if (s->len)
        memcpy(p, s->ptr, s->len);
    return p + s->len;
}

nb_record *record_new(const nb_msg *msg) {
    size_t total = (size_t)msg->room.len + msg->sender.len + msg->content.len + msg->id.len;
    nb_record *r = malloc(sizeof *r + total);
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    r->room_len = msg->room.len;
    r->sender_len = msg->sender.len;
    r->content_len = msg->content.len;
    r->id_len = msg->id.len;
    r->reserved = 0;
    r->ts = msg->ts;
    r->seq = msg->seq;
    char *p = put(r->data, &msg->room);
    p = put(p, &msg->sender);
    p = put(p, &msg->content);
    put(p, &msg->id);
    return r;
}

void record_ref(nb_record *r) {
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void record_unref(nb_record *r) {
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        free(r);
}

void record_msg(const nb_record *r, uint32_t type, nb_msg *out) {
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->type = type;
    const char *p = r->data;
    out->room = (nb_str){p, r->room_len, 0};
    p += r->room_len;
    out->sender = (nb_str){p, r->sender_len, 0};
    p += r->sender_len;
    out->content = (nb_str){p, r->content_len, 0};
    p += r->content_len;
    out->id = (nb_str){p, r->id_len, 0};
    out->ts = r->ts;
    out->seq = r->seq;
}

void history_free(nb_history *h) {
    if (!h)
        return;
    for (uint32_t i = 0; i < h->n; i++)
        record_unref(h->items[i]);
    free(h->items);
    free(h);
}
