/*
 * Unit tests of the core's room machinery: shards, membership, presence
 * lists, history ring, names, query parsing, the token bucket, buffers.
 */
#include "abuse.h"
#include "buf.h"
#include "hub.h"
#include "names.h"
#include "room.h"
#include "session.h"

#include <CUnit/Basic.h>
#include <stdlib.h>
#include <string.h>

static void test_hub_find_get_remove(void) {
    nb_hub *h = hub_new(4, 0, 2);
    uint32_t hash = hub_hash("general", 7);
    hub_lock(h, hash);
    CU_ASSERT_PTR_NULL(hub_find_locked(h, "general", 7, hash));
    nb_room *g = hub_get_locked(h, "general", 7, hash);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_PTR_EQUAL(hub_get_locked(h, "general", 7, hash), g);
    CU_ASSERT_PTR_EQUAL(hub_find_locked(h, "general", 7, hash), g);
    uint32_t h2 = hub_hash("General", 7);
    hub_unlock(h, hash);
    hub_lock(h, h2);
    CU_ASSERT_PTR_NULL(hub_find_locked(h, "General", 7, h2)); /* case-sensitive */
    hub_unlock(h, h2);
    CU_ASSERT_EQUAL(hub_room_count(h), 1);
    CU_ASSERT_STRING_EQUAL(g->name, "general");
    /* A queued delivery keeps the room alive after it leaves the table. */
    room_ref(g);
    hub_lock(h, hash);
    hub_remove_locked(h, g);
    CU_ASSERT_PTR_NULL(hub_find_locked(h, "general", 7, hash));
    hub_unlock(h, hash);
    CU_ASSERT_EQUAL(hub_room_count(h), 0);
    CU_ASSERT_STRING_EQUAL(g->name, "general");
    room_unref(g);
    hub_free(h);
}

static nb_room *get(nb_hub *h, const char *name) {
    uint32_t len = (uint32_t)strlen(name);
    uint32_t hash = hub_hash(name, len);
    hub_lock(h, hash);
    nb_room *r = hub_get_locked(h, name, len, hash);
    hub_unlock(h, hash);
    return r;
}

static nb_room *find(nb_hub *h, const char *name) {
    uint32_t len = (uint32_t)strlen(name);
    uint32_t hash = hub_hash(name, len);
    hub_lock(h, hash);
    nb_room *r = hub_find_locked(h, name, len, hash);
    hub_unlock(h, hash);
    return r;
}

/* Many rooms: every one findable after the shard tables grew, and spread
 * over every shard. */
static void test_hub_many_rooms_spread(void) {
    nb_hub *h = hub_new(16, 0, 1);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "room-%d", i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(get(h, name));
    }
    CU_ASSERT_EQUAL(hub_room_count(h), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "room-%d", i);
        nb_room *r = find(h, name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(hub_shard_of(h, r->hash), hub_hash(name, (uint32_t)strlen(name)) % 16);
    }
    uint32_t total = 0;
    for (uint32_t s = 0; s < hub_shard_count(h); s++) {
        /* 5000 over 16 shards: each near 312; a bad hash would leave some
         * nearly empty. */
        CU_ASSERT(hub_shard_rooms(h, s) > 200 && hub_shard_rooms(h, s) < 450);
        total += hub_shard_rooms(h, s);
    }
    CU_ASSERT_EQUAL(total, 5000);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(name, sizeof name, "room-%d", i);
        nb_room *r = find(h, name);
        uint32_t hash = hub_hash(name, (uint32_t)strlen(name));
        hub_lock(h, hash);
        hub_remove_locked(h, r); /* frees it: the table held the only reference */
        hub_unlock(h, hash);
    }
    CU_ASSERT_EQUAL(hub_room_count(h), 2500);
    CU_ASSERT_PTR_NULL(find(h, "room-0"));
    CU_ASSERT_PTR_NOT_NULL(find(h, "room-1"));
    hub_free(h);
}

/* Users: counts per codec and per worker follow adds and removes; the
 * presence list is sorted. */
static void test_room_users_and_presence(void) {
    nb_room *r = room_new("r", 1, hub_hash("r", 1), 0, 2);
    const char *names[5] = {"dave", "alice", "erin", "bob", "carol"};
    for (uint32_t i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(room_add_user(r, names[i], (uint32_t)strlen(names[i]), i % 2, i % 3 == 0),
                        0);
    CU_ASSERT_EQUAL(r->n_users, 5);
    CU_ASSERT_EQUAL(r->worker_members[0], 3);
    CU_ASSERT_EQUAL(r->worker_members[1], 2);
    CU_ASSERT_EQUAL(r->codec_members[1], 2); /* dave, bob */
    CU_ASSERT_EQUAL(r->codec_members[0], 3);
    CU_ASSERT_TRUE(room_has_user(r, "alice", 5));
    room_remove_user(r, "alice", 5, 1, 0);
    CU_ASSERT_FALSE(room_has_user(r, "alice", 5));
    CU_ASSERT_FALSE(room_has_user(r, "caro", 4));
    CU_ASSERT_TRUE(room_has_user(r, "carol", 5));
    CU_ASSERT_EQUAL(r->worker_members[1], 1);
    CU_ASSERT_EQUAL(r->codec_members[0], 2);
    room_remove_user(r, "nobody", 6, 0, 0); /* absent: no change */
    CU_ASSERT_EQUAL(r->n_users, 4);

    uint32_t n = 0;
    nb_str *users = room_user_list(r, &n);
    CU_ASSERT_EQUAL_FATAL(n, 4);
    const char *want[4] = {"bob", "carol", "dave", "erin"};
    for (uint32_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(users[i].len, strlen(want[i]));
        CU_ASSERT_EQUAL(memcmp(users[i].ptr, want[i], users[i].len), 0);
    }
    free(users);
    room_unref(r);
}

/* Presence order is byte order: upper case before lower, a prefix first. */
static void test_presence_sort_bytes(void) {
    nb_room *r = room_new("r", 1, 0, 0, 1);
    const char *names[4] = {"bob", "Bob", "bo", "_x"};
    for (int i = 0; i < 4; i++)
        room_add_user(r, names[i], (uint32_t)strlen(names[i]), 0, 0);
    uint32_t n;
    nb_str *users = room_user_list(r, &n);
    const char *want[4] = {"Bob", "_x", "bo", "bob"};
    for (uint32_t i = 0; i < 4; i++)
        CU_ASSERT_TRUE(users[i].len == strlen(want[i]) &&
                       strncmp(users[i].ptr, want[i], users[i].len) == 0);
    free(users);
    room_unref(r);
    uint32_t zero = 99;
    nb_room *empty = room_new("e", 1, 0, 0, 1);
    CU_ASSERT_PTR_NULL(room_user_list(empty, &zero));
    CU_ASSERT_EQUAL(zero, 0);
    room_unref(empty);
}

/* Local members: added at the end, removed by swapping the last in. */
static void test_room_local_members(void) {
    nb_room *r = room_new("r", 1, 0, 0, 2);
    nb_session s[5];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL_FATAL(room_local_add(r, 1, &s[i]), 0);
    room_local_remove(r, 1, &s[1]); /* the last moves into 1 */
    CU_ASSERT_EQUAL(r->local[1].n_members, 4);
    CU_ASSERT_EQUAL(r->local[0].n_members, 0);
    CU_ASSERT_PTR_EQUAL(r->local[1].members[1], &s[4]);
    room_local_remove(r, 1, &s[1]); /* not a member (any more): nothing happens */
    CU_ASSERT_EQUAL(r->local[1].n_members, 4);
    for (int i = 0; i < 5; i++)
        room_local_remove(r, 1, &s[i]);
    CU_ASSERT_EQUAL(r->local[1].n_members, 0);
    room_unref(r);
}

static nb_record *chat(const char *sender, const char *content, const char *id, int64_t ts,
                       uint64_t seq) {
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.type = NB_MSG_MESSAGE;
    m.room = (nb_str){"general", 7, 0};
    m.sender = (nb_str){sender, (uint32_t)strlen(sender), 0};
    m.content = (nb_str){content, (uint32_t)strlen(content), 0};
    m.id = (nb_str){id, (uint32_t)strlen(id), 0};
    m.ts = ts;
    m.seq = seq;
    return record_new(&m);
}

static void add(nb_room *r, nb_record *rec) {
    room_history_add(r, rec);
    r->last_seq = rec->seq;
    record_unref(rec);
}

/* History keeps the newest `cap` messages, oldest first, and knows from
 * which seq on it has everything (hist_floor). */
static void test_history_ring(void) {
    nb_room *r = room_new("general", 7, 0, 3, 1);
    char content[16], id[16];
    for (int i = 1; i <= 5; i++) {
        snprintf(content, sizeof content, "msg %d", i);
        snprintf(id, sizeof id, "id%d", i);
        add(r, chat("alice", content, id, 1000 + i, (uint64_t)i));
    }
    CU_ASSERT_EQUAL_FATAL(r->hist_len, 3);
    CU_ASSERT_EQUAL(r->hist_floor, 2); /* 1 and 2 were evicted */
    nb_history *h = room_history_snapshot(r, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL_FATAL(h->n, 3);
    CU_ASSERT_FALSE(h->incomplete);
    for (uint32_t i = 0; i < 3; i++) {
        nb_msg m;
        record_msg(h->items[i], NB_MSG_HISTORY, &m);
        snprintf(content, sizeof content, "msg %u", i + 3);
        CU_ASSERT_EQUAL(m.type, NB_MSG_HISTORY);
        CU_ASSERT_EQUAL(m.content.len, strlen(content));
        CU_ASSERT_EQUAL(memcmp(m.content.ptr, content, m.content.len), 0);
        CU_ASSERT_EQUAL(m.ts, 1003 + (int64_t)i);
        CU_ASSERT_EQUAL(m.seq, 3 + i);
        CU_ASSERT_EQUAL(memcmp(m.sender.ptr, "alice", 5), 0);
        CU_ASSERT_EQUAL(memcmp(m.room.ptr, "general", 7), 0);
    }
    history_free(h);
    /* since inside the ring: exactly what follows, complete */
    h = room_history_snapshot(r, 1, 3);
    CU_ASSERT_EQUAL(h->n, 2);
    CU_ASSERT_EQUAL(h->items[0]->seq, 4);
    CU_ASSERT_FALSE(h->incomplete);
    history_free(h);
    h = room_history_snapshot(r, 1, 5); /* up to date: nothing, complete */
    CU_ASSERT_EQUAL(h->n, 0);
    CU_ASSERT_FALSE(h->incomplete);
    history_free(h);
    /* since before the floor: what the ring has, marked incomplete */
    h = room_history_snapshot(r, 1, 1);
    CU_ASSERT_EQUAL(h->n, 3);
    CU_ASSERT_TRUE(h->incomplete);
    history_free(h);
    /* since from the future (another epoch): everything, incomplete */
    h = room_history_snapshot(r, 1, 99);
    CU_ASSERT_EQUAL(h->n, 3);
    CU_ASSERT_TRUE(h->incomplete);
    history_free(h);
    /* Empty content is kept as empty, not lost. */
    add(r, chat("bob", "", "id6", 2000, 6));
    nb_msg m;
    record_msg(r->hist[(r->hist_start + 2) % r->hist_cap], NB_MSG_HISTORY, &m);
    CU_ASSERT_EQUAL(m.content.len, 0);
    CU_ASSERT_PTR_NOT_NULL(m.content.ptr);
    CU_ASSERT_EQUAL(memcmp(m.sender.ptr, "bob", 3), 0);
    room_unref(r);

    nb_room *none = room_new("x", 1, 0, 0, 1); /* history_per_room = 0 */
    add(none, chat("a", "b", "c", 1, 1));
    CU_ASSERT_EQUAL(none->hist_len, 0);
    CU_ASSERT_EQUAL(none->hist_floor, 1);
    room_unref(none);
}

static void test_names(void) {
    CU_ASSERT_TRUE(name_valid("alice", 5, NB_USERNAME_MAX));
    CU_ASSERT_TRUE(name_valid("A-b_c.9", 7, NB_USERNAME_MAX));
    CU_ASSERT_FALSE(name_valid("", 0, NB_USERNAME_MAX));
    CU_ASSERT_FALSE(name_valid("a b", 3, NB_USERNAME_MAX));
    CU_ASSERT_FALSE(name_valid("\xc3\xa9", 2, NB_USERNAME_MAX));
    CU_ASSERT_FALSE(name_valid("a/b", 3, NB_USERNAME_MAX));
    char longname[40];
    memset(longname, 'a', sizeof longname);
    CU_ASSERT_TRUE(name_valid(longname, 32, NB_USERNAME_MAX));
    CU_ASSERT_FALSE(name_valid(longname, 33, NB_USERNAME_MAX));
    CU_ASSERT_TRUE(name_valid(longname, 33, NB_ROOM_MAX));
}

static void test_query_param(void) {
    char out[33];
    CU_ASSERT_EQUAL(query_param("room=general&username=alice", "username", out, sizeof out), 5);
    CU_ASSERT_STRING_EQUAL(out, "alice");
    CU_ASSERT_EQUAL(query_param("room=general&username=al%69ce", "username", out, sizeof out), 5);
    CU_ASSERT_STRING_EQUAL(out, "alice");
    CU_ASSERT_EQUAL(query_param("username=a+b", "username", out, sizeof out), 3);
    CU_ASSERT_STRING_EQUAL(out, "a b");
    CU_ASSERT_EQUAL(query_param("room=x", "username", out, sizeof out), -1);
    CU_ASSERT_EQUAL(query_param("", "username", out, sizeof out), -1);
    CU_ASSERT_EQUAL(query_param("usernamex=1", "username", out, sizeof out), -1);
    CU_ASSERT_EQUAL(query_param("username=", "username", out, sizeof out), 0);
    CU_ASSERT_EQUAL(query_param("username", "username", out, sizeof out), 0);
    CU_ASSERT_EQUAL(query_param("username=%", "username", out, sizeof out), -2);
    CU_ASSERT_EQUAL(query_param("username=%4", "username", out, sizeof out), -2);
    CU_ASSERT_EQUAL(query_param("username=%zz", "username", out, sizeof out), -2);
    CU_ASSERT_EQUAL(query_param("username=a%00b", "username", out, sizeof out), -2);
    CU_ASSERT_EQUAL(
        query_param("username=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "username", out, sizeof out), -2);
    CU_ASSERT_EQUAL(query_param("a=1&username=bob&username=eve", "username", out, sizeof out), 3);
    CU_ASSERT_STRING_EQUAL(out, "bob");
}

/* Token bucket: a burst passes, then one message per 1/rate seconds;
 * refill is computed from the elapsed time and capped at the burst. */
static void test_token_bucket(void) {
    nb_session s;
    memset(&s, 0, sizeof s);
    s.tokens_milli = 3 * 1000;
    s.tokens_at_ms = 10000;
    int64_t t = 10000;
    CU_ASSERT_TRUE(session_take_token(&s, 2, 3, t));
    CU_ASSERT_TRUE(session_take_token(&s, 2, 3, t));
    CU_ASSERT_TRUE(session_take_token(&s, 2, 3, t));
    CU_ASSERT_FALSE(session_take_token(&s, 2, 3, t));
    CU_ASSERT_FALSE(session_take_token(&s, 2, 3, t + 499)); /* 0.998 tokens */
    CU_ASSERT_TRUE(session_take_token(&s, 2, 3, t + 500));
    CU_ASSERT_FALSE(session_take_token(&s, 2, 3, t + 500));
    /* A long pause refills to the burst, not beyond. */
    t += 100000;
    int passed = 0;
    for (int i = 0; i < 10; i++)
        passed += session_take_token(&s, 2, 3, t);
    CU_ASSERT_EQUAL(passed, 3);
    /* rate 0: unlimited. */
    for (int i = 0; i < 1000; i++)
        CU_ASSERT_TRUE(session_take_token(&s, 0, 1, t));
    /* Clock going backwards never adds tokens. */
    CU_ASSERT_FALSE(session_take_token(&s, 2, 3, t - 5000));
}

static void test_buffers(void) {
    int64_t live = buf_live_count();
    nb_buf *b = buf_new(NB_BUF_HEADROOM, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->headroom, NB_BUF_HEADROOM);
    CU_ASSERT(b->tailroom >= 4); /* at least what was asked */
    CU_ASSERT_EQUAL(buf_append(&b, "hello world", 11), NB_OK);
    CU_ASSERT_EQUAL(b->len, 11);
    CU_ASSERT_EQUAL(b->headroom, NB_BUF_HEADROOM); /* growth keeps headroom */
    CU_ASSERT_EQUAL(memcmp(b->data, "hello world", 11), 0);
    CU_ASSERT_EQUAL(buf_live_count(), live + 1);
    buf_ref(b);
    CU_ASSERT_EQUAL(buf_refcount(b), 2);
    buf_unref(b);
    CU_ASSERT_EQUAL(buf_live_count(), live + 1);
    buf_unref(b);
    CU_ASSERT_EQUAL(buf_live_count(), live);
    buf_unref(NULL);
}

/* A released small buffer serves the next request of its size class on
 * the same thread; a large one is not kept. */
static void test_buffer_pool(void) {
    buf_pool_drain();
    nb_buf *a = buf_new(NB_BUF_HEADROOM, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    a->len = 3;
    buf_unref(a);
    nb_buf *b = buf_new(NB_BUF_HEADROOM, 200); /* same class (256) */
    CU_ASSERT_PTR_EQUAL(b, a);
    CU_ASSERT_EQUAL(b->len, 0); /* handed out clean */
    CU_ASSERT_EQUAL(b->headroom, NB_BUF_HEADROOM);
    CU_ASSERT(b->tailroom >= 200);
    CU_ASSERT_EQUAL(buf_refcount(b), 1);
    nb_buf *c = buf_new(0, 2000); /* another class */
    CU_ASSERT_PTR_NOT_EQUAL(c, a);
    buf_unref(b);
    buf_unref(c);
    nb_buf *big = buf_new(0, 100000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    CU_ASSERT_EQUAL(buf_append(&big, "x", 1), NB_OK);
    buf_unref(big);
    /* Growing a pooled buffer past its class takes it out of the pool. */
    nb_buf *g = buf_new(0, 10);
    char fill[5000];
    memset(fill, 'y', sizeof fill);
    CU_ASSERT_EQUAL(buf_append(&g, fill, sizeof fill), NB_OK);
    CU_ASSERT_EQUAL(g->len, sizeof fill);
    buf_unref(g);
    buf_pool_drain();
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("hub", NULL, NULL);
    CU_add_test(s, "hub find/get/remove", test_hub_find_get_remove);
    CU_add_test(s, "hub many rooms spread over shards", test_hub_many_rooms_spread);
    CU_add_test(s, "room users and presence", test_room_users_and_presence);
    CU_add_test(s, "room local member indices", test_room_local_members);
    CU_add_test(s, "presence sorted by bytes", test_presence_sort_bytes);
    CU_add_test(s, "history ring", test_history_ring);
    CU_add_test(s, "names", test_names);
    CU_add_test(s, "query_param", test_query_param);
    CU_add_test(s, "token bucket", test_token_bucket);
    CU_add_test(s, "buffers", test_buffers);
    CU_add_test(s, "buffer pool", test_buffer_pool);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int failed = (int)CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
