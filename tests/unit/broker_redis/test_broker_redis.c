/*
 * Unit tests of broker-redis's pure parts: redis:// URLs (what operators
 * write, and every way of getting it wrong) and the spread of rooms over
 * several instances (rendezvous hashing: even, independent of the order
 * of urls, and adding an instance moves only the rooms it takes).
 */
#include "rb.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

/* The plugin calls these from plugin.c, which the test does not link. */
void rb_update_status(rb_broker *b, const char *why) {
    (void)b;
    (void)why;
}
void rb_new_epoch(rb_broker *b, char *out, size_t cap) {
    (void)b;
    snprintf(out, cap, "test");
}
uint64_t rb_random(rb_broker *b) {
    (void)b;
    return 4;
}

static void test_url_good(void) {
    rb_url u;
    const char *why = NULL;
    CU_ASSERT_EQUAL(rb_url_parse("redis://127.0.0.1", &u, &why), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "127.0.0.1");
    CU_ASSERT_EQUAL(u.port, 6379);
    CU_ASSERT_EQUAL(u.db, 0);
    CU_ASSERT_STRING_EQUAL(u.password, "");
    CU_ASSERT_EQUAL(rb_url_parse("redis://:s3cr@t@cache-1.example:6380/2", &u, &why), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "cache-1.example");
    CU_ASSERT_STRING_EQUAL(u.password, "s3cr@t"); /* the last @ ends the credentials */
    CU_ASSERT_STRING_EQUAL(u.user, "");
    CU_ASSERT_EQUAL(u.port, 6380);
    CU_ASSERT_EQUAL(u.db, 2);
    CU_ASSERT_EQUAL(rb_url_parse("redis://app:pw@[::1]:7000/15", &u, &why), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "::1");
    CU_ASSERT_STRING_EQUAL(u.user, "app");
    CU_ASSERT_STRING_EQUAL(u.password, "pw");
    CU_ASSERT_EQUAL(u.port, 7000);
    CU_ASSERT_EQUAL(u.db, 15);
    CU_ASSERT_EQUAL(rb_url_parse("redis://localhost/", &u, &why), 0);
    CU_ASSERT_EQUAL(u.db, 0);
}

static void test_url_bad(void) {
    static const char *const bad[] = {
        NULL,
        "",
        "http://127.0.0.1",
        "redis:/127.0.0.1",
        "redis://",
        "redis://:6379",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:12ab",
        "redis://host:",
        "redis://host/db",
        "redis://host/-1",
        "redis://ho st",
        "redis://host;rm",
        "redis://nopassword@host",
        "redis://[::1",
        "redis://[]:6379",
        "redis://[::1]x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rb_url u;
        const char *why = NULL;
        CU_ASSERT_EQUAL(rb_url_parse(bad[i], &u, &why), -1);
        CU_ASSERT_PTR_NOT_NULL(why);
        if (rb_url_parse(bad[i], &u, &why) != -1)
            fprintf(stderr, "accepted: %s\n", bad[i] ? bad[i] : "(null)");
    }
    char longhost[400] = "redis://";
    memset(longhost + 8, 'a', 300);
    rb_url u;
    const char *why = NULL;
    CU_ASSERT_EQUAL(rb_url_parse(longhost, &u, &why), -1);
}

#define ROOMS 3000

static void set_links(rb_broker *b, rb_link *links, const char *const *names, uint32_t n) {
    memset(b, 0, sizeof *b);
    memset(links, 0, n * sizeof *links);
    for (uint32_t i = 0; i < n; i++)
        snprintf(links[i].shown, sizeof links[i].shown, "%s", names[i]);
    b->links = links;
    b->n_links = n;
}

static void test_rooms_spread(void) {
    static const char *const three[] = {"10.0.0.1:6379/0", "10.0.0.2:6379/0", "10.0.0.3:6379/0"};
    static const char *const reordered[] = {"10.0.0.3:6379/0", "10.0.0.1:6379/0",
                                            "10.0.0.2:6379/0"};
    static const char *const four[] = {"10.0.0.1:6379/0", "10.0.0.2:6379/0", "10.0.0.3:6379/0",
                                       "10.0.0.4:6379/0"};
    rb_broker b3, br, b4;
    rb_link l3[3], lr[3], l4[4];
    set_links(&b3, l3, three, 3);
    set_links(&br, lr, reordered, 3);
    set_links(&b4, l4, four, 4);
    uint32_t per[3] = {0, 0, 0};
    uint32_t moved = 0, moved_elsewhere = 0;
    for (int i = 0; i < ROOMS; i++) {
        char room[32];
        int n = snprintf(room, sizeof room, "room-%d", i);
        uint32_t a = rb_room_link(&b3, room, (uint32_t)n);
        per[a]++;
        /* the order of urls does not matter: the same instance by name */
        CU_ASSERT_STRING_EQUAL(lr[rb_room_link(&br, room, (uint32_t)n)].shown, l3[a].shown);
        uint32_t c = rb_room_link(&b4, room, (uint32_t)n);
        if (strcmp(l4[c].shown, l3[a].shown) != 0) {
            moved++;
            if (c != 3)
                moved_elsewhere++;
        }
    }
    for (int k = 0; k < 3; k++) /* even: each within 15% of a third */
        CU_ASSERT(per[k] > ROOMS / 3 * 85 / 100 && per[k] < ROOMS / 3 * 115 / 100);
    CU_ASSERT_EQUAL(moved_elsewhere, 0); /* only to the new instance */
    CU_ASSERT(moved > ROOMS / 4 * 80 / 100 && moved < ROOMS / 4 * 120 / 100); /* about 1/4 */
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("broker-redis", NULL, NULL);
    CU_add_test(s, "redis:// URLs that work", test_url_good);
    CU_add_test(s, "redis:// URLs refused, each with a reason", test_url_bad);
    CU_add_test(s, "rooms spread over instances; adding one moves only its share",
                test_rooms_spread);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
