/*
 * Unit tests of the limits that bound what clients cost the process as a
 * whole: per-address limits and the allowlist (peers.c), history byte
 * caps (room.c) and the memory budget's accounting (budget.c).
 */
#include "budget.h"
#include "peers.h"
#include "record.h"
#include "room.h"

#include <CUnit/Basic.h>
#include <stdlib.h>
#include <string.h>

static void test_cidr_parse(void) {
    nb_cidr c;
    CU_ASSERT_EQUAL(peers_parse_cidr("127.0.0.0/8", &c), 0);
    CU_ASSERT_EQUAL(c.bits, 96 + 8);
    CU_ASSERT_EQUAL(peers_parse_cidr("10.1.2.3", &c), 0);
    CU_ASSERT_EQUAL(c.bits, 128);
    CU_ASSERT_EQUAL(peers_parse_cidr("::1", &c), 0);
    CU_ASSERT_EQUAL(c.bits, 128);
    CU_ASSERT_EQUAL(peers_parse_cidr("fe80::/10", &c), 0);
    CU_ASSERT_EQUAL(c.bits, 10);
    CU_ASSERT_EQUAL(peers_parse_cidr("0.0.0.0/0", &c), 0);
    static const char *const bad[] = {"",        "10.0.0.0/33", "10.0.0.0/",   "10.0.0.0/x",  "x",
                                      "::1/129", "1.2.3",       "10.0.0.0/-1", "10.0.0.0/8/8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(peers_parse_cidr(bad[i], &c), -1);
}

static void test_allowlist_and_connections(void) {
    nb_cidr allow[2];
    CU_ASSERT_EQUAL_FATAL(peers_parse_cidr("127.0.0.0/8", &allow[0]), 0);
    CU_ASSERT_EQUAL_FATAL(peers_parse_cidr("2001:db8::/32", &allow[1]), 0);
    nb_peers *p = peers_new(2, 0, 1, allow, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    nb_peer *e[4];
    /* Allowlisted, or not an address: no entry, no limit. */
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(peers_acquire(p, "127.9.9.9:1", &e[0]), 0);
        CU_ASSERT_PTR_NULL(e[0]);
    }
    CU_ASSERT_EQUAL(peers_acquire(p, "[2001:db8::7]:443", &e[0]), 0);
    CU_ASSERT_PTR_NULL(e[0]);
    CU_ASSERT_EQUAL(peers_acquire(p, "unknown", &e[0]), 0);
    CU_ASSERT_PTR_NULL(e[0]);
    /* Two connections per address; IPv4-mapped IPv6 is the same address. */
    CU_ASSERT_EQUAL(peers_acquire(p, "192.0.2.1:1000", &e[0]), 0);
    CU_ASSERT_EQUAL(peers_acquire(p, "[::ffff:192.0.2.1]:1001", &e[1]), 0);
    CU_ASSERT_PTR_EQUAL(e[0], e[1]);
    CU_ASSERT_EQUAL(peers_acquire(p, "192.0.2.1:1002", &e[2]), -1);
    CU_ASSERT_PTR_NULL(e[2]);
    CU_ASSERT_EQUAL(peers_acquire(p, "192.0.2.2:1000", &e[3]), 0);
    CU_ASSERT_EQUAL(peers_count(p), 2);
    peers_release(p, e[0]);
    CU_ASSERT_EQUAL(peers_acquire(p, "192.0.2.1:1003", &e[2]), 0);
    peers_release(p, e[1]);
    peers_release(p, e[2]);
    peers_release(p, e[3]);
    CU_ASSERT_EQUAL(peers_count(p), 0);
    peers_free(p);
}

static void test_shared_bucket(void) {
    nb_peers *p = peers_new(0, 10, 5, NULL, 0);
    nb_peer *a, *b;
    CU_ASSERT_EQUAL_FATAL(peers_acquire(p, "198.51.100.1:1", &a), 0);
    CU_ASSERT_EQUAL_FATAL(peers_acquire(p, "198.51.100.1:2", &b), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    int passed = 0;
    for (int i = 0; i < 10; i++)
        passed += peers_take_token(p, i % 2 ? a : b, 1000);
    CU_ASSERT_EQUAL(passed, 5); /* the burst, shared by both connections */
    CU_ASSERT_EQUAL(peers_take_token(p, a, 1099), 0);
    CU_ASSERT_EQUAL(peers_take_token(p, b, 1100), 1);    /* 10/s: one per 100 ms */
    CU_ASSERT_EQUAL(peers_take_token(p, NULL, 1100), 1); /* allowlisted: no entry */
    peers_release(p, a);
    peers_release(p, b);
    peers_free(p);
}

static nb_record *rec(uint64_t seq, uint32_t content_len) {
    char *content = malloc(content_len);
    if (!content)
        return NULL;
    memset(content, 'c', content_len);
    nb_msg m;
    memset(&m, 0, sizeof m);
    m.room = (nb_str){"r", 1, 0};
    m.sender = (nb_str){"s", 1, 0};
    m.content = (nb_str){content, content_len, 0};
    m.seq = seq;
    nb_record *r = record_new(&m);
    free(content);
    return r;
}

static void test_history_bytes(void) {
    nb_budget budget;
    budget_init(&budget, 1 << 20);
    nb_hist_limits lim = {.bytes_per_room = 3000, .bytes_total = 5000, .budget = &budget};
    atomic_init(&lim.dropped, 0);
    nb_room *a = room_new("a", 1, 1, 100, 1);
    nb_room *b = room_new("b", 1, 2, 100, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    a->hist_limits = b->hist_limits = &lim;
    uint64_t seq = 0;
    /* ~1000 bytes each: a room keeps 2 (3000 / 1000, with the headers) */
    for (int i = 0; i < 5; i++) {
        nb_record *r = rec(++seq, 1000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        room_history_add(a, r);
        record_unref(r);
    }
    CU_ASSERT_EQUAL(a->hist_len, 2);
    CU_ASSERT(a->hist_bytes <= 3000);
    CU_ASSERT_EQUAL(a->hist_floor, 3);
    CU_ASSERT_EQUAL(atomic_load(&budget.history), (int64_t)a->hist_bytes);
    CU_ASSERT_EQUAL(atomic_load(&lim.dropped), 3);
    /* The total: b gets what a left, then gives up its own oldest. */
    for (int i = 0; i < 4; i++) {
        nb_record *r = rec(++seq, 1000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        room_history_add(b, r);
        record_unref(r);
    }
    CU_ASSERT(a->hist_bytes + b->hist_bytes <= 5000);
    CU_ASSERT_EQUAL(b->hist_len, 2);
    /* A message larger than a room may hold is not kept. */
    nb_record *huge = rec(++seq, 4000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
    room_history_add(b, huge);
    record_unref(huge);
    CU_ASSERT_EQUAL(b->hist_floor, seq);
    CU_ASSERT_EQUAL(b->hist_len, 2);
    /* A snapshot holds what the ring holds, oldest first. */
    nb_history *h = room_history_snapshot(a, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(h->n, 2);
    CU_ASSERT_EQUAL(h->items[0]->seq, 4);
    history_free(h);
    /* Freeing the rooms gives their bytes back to the budget. */
    room_unref(a);
    room_unref(b);
    CU_ASSERT_EQUAL(atomic_load(&budget.history), 0);
}

static void test_budget(void) {
    nb_budget b;
    budget_init(&b, 8000);
    CU_ASSERT_FALSE(budget_near(&b));
    atomic_store(&b.held[0], 4000);
    budget_history_add(&b, 2999);
    CU_ASSERT_FALSE(budget_near(&b)); /* 6999 < 7/8 of 8000 */
    budget_history_add(&b, 1);
    CU_ASSERT(budget_near(&b));
    CU_ASSERT_FALSE(budget_over(&b));
    atomic_store(&b.held[3], 1001);
    CU_ASSERT_EQUAL(budget_used(&b), 8001);
    CU_ASSERT(budget_over(&b));
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite("limits", NULL, NULL);
    if (!s || !CU_add_test(s, "CIDR parsing", test_cidr_parse) ||
        !CU_add_test(s, "allowlist and connections per address", test_allowlist_and_connections) ||
        !CU_add_test(s, "one token bucket per address", test_shared_bucket) ||
        !CU_add_test(s, "history bytes per room and in total", test_history_bytes) ||
        !CU_add_test(s, "budget near and over", test_budget))
        return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
