/*
 * test_http.c — unit tests of transport-ws's socket-free parts: the HTTP
 * request parser, the WebSocket handshake checks, static path mapping,
 * UTF-8 and close-code rules, frame headers and the receive scanner.
 */
#include "frame.h"
#include "handshake.h"
#include "http.h"
#include "static.h"

#include <CUnit/Basic.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- HTTP parser ---------------------------------------------------- */

static const char good_req[] = "GET /ws?room=a&username=b HTTP/1.1\r\n"
                               "Host: 127.0.0.1:8080\r\n"
                               "upgrade:   websocket  \r\n"
                               "Connection: keep-alive, Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "Sec-WebSocket-Protocol: nebula.json.v1, chat\r\n"
                               "\r\n";

static int32_t parse(const char *s, tws_http_req *req) {
    return tws_http_parse(s, strlen(s), 8192, req);
}

static void test_parse_good(void) {
    tws_http_req req;
    int32_t r = parse(good_req, &req);
    CU_ASSERT_EQUAL(r, (int32_t)strlen(good_req));
    CU_ASSERT_TRUE(tws_str_ieq(req.method, "GET"));
    CU_ASSERT_EQUAL(req.target.len, strlen("/ws?room=a&username=b"));
    CU_ASSERT_EQUAL(memcmp(req.target.p, "/ws?room=a&username=b", req.target.len), 0);
    CU_ASSERT_EQUAL(req.minor, 1);
    CU_ASSERT_EQUAL(req.n_headers, 6);
    uint32_t n = 0;
    const tws_str *up = tws_http_find(&req, "UPGRADE", &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(up);
    if (!up)
        return;
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_TRUE(tws_str_ieq(*up, "websocket")); /* whitespace trimmed */
    CU_ASSERT_PTR_NULL(tws_http_find(&req, "origin", &n));
    CU_ASSERT_EQUAL(n, 0);
}

static void test_parse_pipelined(void) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s\x81\x85garbage", good_req);
    tws_http_req req;
    CU_ASSERT_EQUAL(tws_http_parse(buf, strlen(buf), 8192, &req), (int32_t)strlen(good_req));
}

/* Every proper prefix asks for more; the whole request parses. */
static void test_parse_every_split(void) {
    size_t len = strlen(good_req);
    tws_http_req req;
    for (size_t i = 0; i < len; i++)
        CU_ASSERT_EQUAL(tws_http_parse(good_req, i, 8192, &req), 0);
    CU_ASSERT_EQUAL(tws_http_parse(good_req, len, 8192, &req), (int32_t)len);
}

static void test_parse_http10(void) {
    tws_http_req req;
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.0\r\n\r\n", &req), 18);
    CU_ASSERT_EQUAL(req.minor, 0);
    CU_ASSERT_EQUAL(req.n_headers, 0);
}

static void test_parse_bad(void) {
    static const char *const bad[] = {
        "GET / HTTP/1.1\nHost: x\r\n\r\n",              /* bare LF */
        "GET / HTTP/1.1\r\nHost: x\n\r\n",              /* bare LF in a header */
        "GET / HTTP/1.1\rHost: x\r\n\r\n",              /* bare CR */
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",           /* space before colon */
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", /* obs-fold */
        "GET / HTTP/1.1\r\n: x\r\n\r\n",                /* empty name */
        "GET / HTTP/1.1\r\nNo colon\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\x01zz\r\n\r\n", /* control character in a value */
        "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n",
        "GET /\r\n\r\n",           /* HTTP/0.9 */
        "GET  / HTTP/1.1\r\n\r\n", /* two spaces */
        "GET / HTTP/1.1 \r\n\r\n", /* trailing space */
        "GET / http/1.1\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET / HTTP/x.1\r\n\r\n",
        "G@T / HTTP/1.1\r\n\r\n", /* not a token */
        " GET / HTTP/1.1\r\n\r\n",
        "\r\nGET / HTTP/1.1\r\n\r\n", /* empty request line */
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET /\xc3\xa9 HTTP/1.1\r\n\r\n", /* raw non-ASCII target */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tws_http_req req;
        int32_t r = parse(bad[i], &req);
        if (r != -400)
            fprintf(stderr, "\ncase %zu: got %d\n", i, (int)r);
        CU_ASSERT_EQUAL(r, -400);
    }
    /* NUL inside a line, and junk (a TLS hello) refused before any CRLF. */
    tws_http_req req;
    CU_ASSERT_EQUAL(tws_http_parse("GET /\0 HTTP/1.1\r\n\r\n", 20, 8192, &req), -400);
    CU_ASSERT_EQUAL(tws_http_parse("\x16\x03\x01\x02\x00", 5, 8192, &req), -400);
}

static void test_parse_version(void) {
    tws_http_req req;
    CU_ASSERT_EQUAL(parse("GET / HTTP/2.0\r\n\r\n", &req), -505);
    CU_ASSERT_EQUAL(parse("GET / HTTP/1.2\r\n\r\n", &req), -505);
    CU_ASSERT_EQUAL(parse("GET / HTTP/0.9\r\n\r\n", &req), -505);
}

static void test_parse_limits(void) {
    tws_http_req req;
    char big[4096];
    static const char start[] = "GET / HTTP/1.1\r\nX: ";
    memset(big, 'a', sizeof big);
    memcpy(big, start, sizeof start - 1);
    /* No end within the limit. */
    CU_ASSERT_EQUAL(tws_http_parse(big, sizeof big, 1024, &req), -431);
    CU_ASSERT_EQUAL(tws_http_parse(big, 1000, 1024, &req), 0);
    /* The end arrives, but beyond the limit. */
    static const char end[] = "\r\n\r\n";
    memcpy(big + 2000, end, sizeof end - 1);
    CU_ASSERT_EQUAL(tws_http_parse(big, 2004, 1024, &req), -431);
    CU_ASSERT_EQUAL(tws_http_parse(big, 2004, 4096, &req), 2004);
    /* Exactly at the limit is fine. */
    CU_ASSERT_EQUAL(tws_http_parse(big, 2004, 2004, &req), 2004);
    CU_ASSERT_EQUAL(tws_http_parse(big, 2004, 2003, &req), -431);
    /* Too many header lines. */
    char many[8192];
    size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (unsigned i = 0; i <= TWS_HTTP_MAX_HEADERS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X-%u: y\r\n", i);
    n += (size_t)snprintf(many + n, sizeof many - n, "\r\n");
    CU_ASSERT_EQUAL(tws_http_parse(many, n, 8192, &req), -431);
}

static void test_list_has(void) {
    tws_str s;
#define S(lit) (s = (tws_str){lit, (uint32_t)strlen(lit)})
    CU_ASSERT_TRUE(tws_http_list_has(S("keep-alive, Upgrade"), "upgrade"));
    CU_ASSERT_TRUE(tws_http_list_has(S("keep-alive,upgrade"), "upgrade"));
    CU_ASSERT_TRUE(tws_http_list_has(S("UPGRADE"), "upgrade"));
    CU_ASSERT_TRUE(tws_http_list_has(S(" , upgrade ,"), "upgrade"));
    CU_ASSERT_TRUE(tws_http_list_has(S("h2c,\tWebSocket"), "websocket"));
    CU_ASSERT_FALSE(tws_http_list_has(S("upgraded"), "upgrade"));
    CU_ASSERT_FALSE(tws_http_list_has(S("keep-alive"), "upgrade"));
    CU_ASSERT_FALSE(tws_http_list_has(S(""), "upgrade"));
#undef S
}

/* ---- handshake ------------------------------------------------------ */

static void test_accept_key(void) {
    char out[TWS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    tws_accept_key((tws_str){key, 24}, out);
    CU_ASSERT_STRING_EQUAL(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_key_valid(void) {
    const char *good[] = {
        "dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAA==", "+/+/+/+/+/+/+/+/+/+/+w=="};
    const char *bad[] = {"",
                         "dGhlIHNhbXBsZSBub25jZQ",     /* no padding */
                         "dGhlIHNhbXBsZSBub25jZQ=",    /* short */
                         "dGhlIHNhbXBsZSBub25jZQ===",  /* long */
                         "dGhlIHNhbXBsZSBub25j*Q==",   /* not base64 */
                         "dGhlIHNhbXBsZSBub25jZQAA",   /* 18 bytes */
                         "dGhlIHNhbXBsZSBub25jZ===",   /* 15 bytes */
                         "dGhlIHNhbXBsZSBub25 jZQ=="}; /* space */
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CU_ASSERT_TRUE(tws_key_valid((tws_str){good[i], (uint32_t)strlen(good[i])}));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_FALSE(tws_key_valid((tws_str){bad[i], (uint32_t)strlen(bad[i])}));
}

/* Build an upgrade request from the good one with one line replaced. */
static uint32_t check_variant(const char *method, const char *version, const char *drop,
                              const char *add) {
    char buf[2048];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s /ws %s\r\n", method, version);
    const char *lines[] = {
        "Host: x", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!drop || strncmp(lines[i], drop, strlen(drop)) != 0)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\r\n", lines[i]);
    if (add)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\r\n", add);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n");
    tws_http_req req;
    if (tws_http_parse(buf, n, 8192, &req) <= 0)
        return 1;
    tws_str key;
    const char *why = NULL;
    uint32_t st = tws_handshake_check(&req, &key, &why);
    if (st == 0) {
        CU_ASSERT_EQUAL(key.len, 24);
    } else {
        CU_ASSERT_PTR_NOT_NULL(why);
    }
    return st;
}

static void test_handshake_check(void) {
    CU_ASSERT_EQUAL(check_variant("GET", "HTTP/1.1", NULL, NULL), 0);
    CU_ASSERT_EQUAL(check_variant("POST", "HTTP/1.1", NULL, NULL), 400);
    CU_ASSERT_EQUAL(check_variant("GET", "HTTP/1.0", NULL, NULL), 400);
    CU_ASSERT_EQUAL(check_variant("GET", "HTTP/1.1", "Connection", NULL), 400);
    CU_ASSERT_EQUAL(check_variant("GET", "HTTP/1.1", "Connection", "Connection: keep-alive"), 400);
    CU_ASSERT_EQUAL(
        check_variant("GET", "HTTP/1.1", "Connection", "Connection: keep-alive, UPGRADE"), 0);
    /* Connection may be split over two lines. */
    CU_ASSERT_EQUAL(check_variant("GET", "HTTP/1.1", NULL, "Connection: keep-alive"), 0);
    CU_ASSERT_EQUAL(check_variant("GET", "HTTP/1.1", "Sec-WebSocket-Key", NULL), 400);
    CU_ASSERT_EQUAL(
        check_variant("GET", "HTTP/1.1", "Sec-WebSocket-Key", "Sec-WebSocket-Key: short"), 400);
    CU_ASSERT_EQUAL(
        check_variant("GET", "HTTP/1.1", NULL, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="),
        400); /* two keys */
    CU_ASSERT_EQUAL(check_variant("GET", "HTTP/1.1", "Sec-WebSocket-Version", NULL), 426);
    CU_ASSERT_EQUAL(
        check_variant("GET", "HTTP/1.1", "Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"), 426);
    CU_ASSERT_EQUAL(check_variant("GET", "HTTP/1.1", NULL, "Content-Length: 5"), 400);
    CU_ASSERT_EQUAL(check_variant("GET", "HTTP/1.1", NULL, "Transfer-Encoding: chunked"), 400);
}

static void test_is_upgrade(void) {
    tws_http_req req;
    parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n\r\n", &req);
    CU_ASSERT_TRUE(tws_is_upgrade(&req));
    parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n", &req);
    CU_ASSERT_FALSE(tws_is_upgrade(&req));
    parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &req);
    CU_ASSERT_FALSE(tws_is_upgrade(&req));
}

static void test_subprotocols(void) {
    tws_http_req req;
    char buf[256];
    const char *out[TWS_MAX_SUBPROTOCOLS];
    parse(good_req, &req);
    CU_ASSERT_EQUAL_FATAL(tws_subprotocols(&req, buf, sizeof buf, out, TWS_MAX_SUBPROTOCOLS), 2);
    CU_ASSERT_STRING_EQUAL(out[0], "nebula.json.v1");
    CU_ASSERT_STRING_EQUAL(out[1], "chat");
    parse("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: a ,, b\r\n"
          "Sec-WebSocket-Protocol: c\r\n\r\n",
          &req);
    CU_ASSERT_EQUAL_FATAL(tws_subprotocols(&req, buf, sizeof buf, out, TWS_MAX_SUBPROTOCOLS), 3);
    CU_ASSERT_STRING_EQUAL(out[0], "a");
    CU_ASSERT_STRING_EQUAL(out[1], "b");
    CU_ASSERT_STRING_EQUAL(out[2], "c");
    parse("GET / HTTP/1.1\r\n\r\n", &req);
    CU_ASSERT_EQUAL(tws_subprotocols(&req, buf, sizeof buf, out, TWS_MAX_SUBPROTOCOLS), 0);
    parse("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: a b\r\n\r\n", &req);
    CU_ASSERT_EQUAL(tws_subprotocols(&req, buf, sizeof buf, out, TWS_MAX_SUBPROTOCOLS), -1);
    parse("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: a, b, c\r\n\r\n", &req);
    CU_ASSERT_EQUAL(tws_subprotocols(&req, buf, sizeof buf, out, 2), -1);
    CU_ASSERT_EQUAL(tws_subprotocols(&req, buf, 4, out, TWS_MAX_SUBPROTOCOLS), -1);
}

/* ---- static files --------------------------------------------------- */

static uint32_t map(const char *path, char *out, size_t outlen) {
    return tws_static_map(path, strlen(path), out, outlen);
}

static void test_static_map(void) {
    char out[PATH_MAX];
    static const struct {
        const char *in, *out;
    } good[] = {
        {"/", "index.html"},
        {"/app.js", "app.js"},
        {"/css/", "css/index.html"},
        {"/css/site.css", "css/site.css"},
        {"//etc/passwd", "etc/passwd"}, /* still relative to the root */
        {"/a//b", "a/b"},
        {"/%61pp.js", "app.js"},
        {"/a%20b.txt", "a b.txt"},
        {"/a..b", "a..b"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CU_ASSERT_EQUAL(map(good[i].in, out, sizeof out), 0);
        CU_ASSERT_STRING_EQUAL(out, good[i].out);
    }
    static const char *const bad400[] = {
        "/../etc/passwd",
        "/..",
        "/a/../b",
        "/./a",
        "/%2e%2e/etc/passwd",
        "/%2E%2E/",
        "/..%2fetc",
        "/.%2e/x",
        "/a%00b",
        "/a\\b",
        "/a%5cb",
        "/%zz",
        "/%2",
        "/%",
        "relative",
        "",
        "/a%0ab",
    };
    for (size_t i = 0; i < sizeof bad400 / sizeof bad400[0]; i++) {
        uint32_t st = map(bad400[i], out, sizeof out);
        if (st != 400)
            fprintf(stderr, "\n%s: %u\n", bad400[i], st);
        CU_ASSERT_EQUAL(st, 400);
    }
    CU_ASSERT_EQUAL(map("/.git/config", out, sizeof out), 404);
    CU_ASSERT_EQUAL(map("/a/.hidden", out, sizeof out), 404);
    CU_ASSERT_EQUAL(map("/%2egit", out, sizeof out), 404);
    CU_ASSERT_EQUAL(map("/abcdef", out, 4), 404); /* too long */
    CU_ASSERT_EQUAL(map("/ab/", out, 8), 404);    /* no room for index.html */
}

static void test_static_type(void) {
    CU_ASSERT_STRING_EQUAL(tws_static_type("index.html"), "text/html; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(tws_static_type("a/app.js"), "text/javascript; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(tws_static_type("style.CSS"), "text/css; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(tws_static_type("favicon.svg"), "image/svg+xml");
    CU_ASSERT_STRING_EQUAL(tws_static_type("x.png"), "image/png");
    CU_ASSERT_STRING_EQUAL(tws_static_type("favicon.ico"), "image/x-icon");
    CU_ASSERT_STRING_EQUAL(tws_static_type("d.json"), "application/json");
    CU_ASSERT_STRING_EQUAL(tws_static_type("r.txt"), "text/plain; charset=utf-8");
    CU_ASSERT_STRING_EQUAL(tws_static_type("f.woff2"), "font/woff2");
    CU_ASSERT_STRING_EQUAL(tws_static_type("noext"), "application/octet-stream");
    CU_ASSERT_STRING_EQUAL(tws_static_type("dir.html/file"), "application/octet-stream");
    CU_ASSERT_STRING_EQUAL(tws_static_type("a.exe"), "application/octet-stream");
}

static void test_static_open(void) {
    char tmpl[] = "/tmp/tws-static-XXXXXX";
    char *dir = mkdtemp(tmpl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char root[PATH_MAX], path[PATH_MAX + 32], outside[PATH_MAX + 32];
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(dir, root));
    snprintf(path, sizeof path, "%s/web", root);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/web/index.html", root);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("<p>hi</p>", f);
    fclose(f);
    snprintf(outside, sizeof outside, "%s/secret", root);
    f = fopen(outside, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("secret", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/web/link", root);
    CU_ASSERT_EQUAL(symlink(outside, path), 0);
    snprintf(path, sizeof path, "%s/web/sub", root);
    mkdir(path, 0700);

    char web[PATH_MAX + 8];
    snprintf(web, sizeof web, "%s/web", root);
    uint64_t size = 0;
    int fd = tws_static_open(web, "index.html", &size);
    CU_ASSERT_TRUE(fd >= 0);
    CU_ASSERT_EQUAL(size, 9);
    if (fd >= 0)
        close(fd);
    CU_ASSERT_EQUAL(tws_static_open(web, "link", &size), -404); /* leads outside */
    CU_ASSERT_EQUAL(tws_static_open(web, "sub", &size), -404);  /* a folder */
    CU_ASSERT_EQUAL(tws_static_open(web, "missing.js", &size), -404);
    CU_ASSERT_EQUAL(tws_static_open(web, "sub/index.html", &size), -404);

    snprintf(path, sizeof path, "%s/web/link", root);
    unlink(path);
    snprintf(path, sizeof path, "%s/web/index.html", root);
    unlink(path);
    snprintf(path, sizeof path, "%s/web/sub", root);
    rmdir(path);
    rmdir(web);
    unlink(outside);
    rmdir(root);
}

/* ---- UTF-8 and close codes ----------------------------------------- */

static int utf8(const char *s) {
    return tws_utf8_valid((const uint8_t *)s, strlen(s));
}

static void test_utf8(void) {
    CU_ASSERT_TRUE(tws_utf8_valid((const uint8_t *)"", 0));
    CU_ASSERT_TRUE(utf8("plain ASCII text, long enough for the fast path"));
    CU_ASSERT_TRUE(utf8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")); /* κόσμε */
    CU_ASSERT_TRUE(utf8("\xc2\x80"));                                     /* U+0080 */
    CU_ASSERT_TRUE(utf8("\xdf\xbf"));                                     /* U+07FF */
    CU_ASSERT_TRUE(utf8("\xe0\xa0\x80"));                                 /* U+0800 */
    CU_ASSERT_TRUE(utf8("\xed\x9f\xbf"));                                 /* U+D7FF */
    CU_ASSERT_TRUE(utf8("\xee\x80\x80"));                                 /* U+E000 */
    CU_ASSERT_TRUE(utf8("\xef\xbf\xbf"));                                 /* U+FFFF */
    CU_ASSERT_TRUE(utf8("\xf0\x90\x80\x80"));                             /* U+10000 */
    CU_ASSERT_TRUE(utf8("\xf4\x8f\xbf\xbf"));                             /* U+10FFFF */
    CU_ASSERT_TRUE(utf8("abcdefgh\xf0\x9f\x98\x80ijklmnop"));             /* emoji amid ASCII */
    static const char *const bad[] = {
        "\xc0\x80",
        "\xc1\xbf",
        "\xe0\x80\x80",
        "\xe0\x9f\xbf", /* overlong */
        "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf", /* overlong */
        "\xed\xa0\x80",
        "\xed\xbf\xbf", /* surrogates */
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xf7\xbf\xbf\xbf", /* > U+10FFFF */
        "\x80",
        "\xbf",
        "\xfe",
        "\xff",
        "\xe2\x82",                     /* truncated */
        "\xe2\x28\xa1",                 /* bad continuation */
        "\xf0\x9f\x98",                 /* truncated 4-byte */
        "abcdefghijklmnop\x80qrstuvwx", /* amid the fast path */
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (utf8(bad[i]))
            fprintf(stderr, "\nUTF-8 case %zu accepted\n", i);
        CU_ASSERT_FALSE(utf8(bad[i]));
    }
    /* A NUL is a valid character. */
    CU_ASSERT_TRUE(tws_utf8_valid((const uint8_t *)"a\0b", 3));
}

static void test_close_codes(void) {
    const uint32_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                             1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    const uint32_t bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CU_ASSERT_TRUE(tws_close_code_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_FALSE(tws_close_code_valid(bad[i]));
}

static void test_close_payload(void) {
    uint8_t out[TWS_CONTROL_MAX];
    CU_ASSERT_EQUAL(tws_close_payload(out, 1001, "server shutting down"), 22);
    CU_ASSERT_EQUAL(out[0], 0x03);
    CU_ASSERT_EQUAL(out[1], 0xE9);
    CU_ASSERT_EQUAL(memcmp(out + 2, "server shutting down", 20), 0);
    CU_ASSERT_EQUAL(tws_close_payload(out, 4001, NULL), 2);
    /* 122 ASCII bytes then a 2-byte character: cut before it, not inside. */
    char reason[200];
    memset(reason, 'x', 122);
    strcpy(reason + 122, "\xc3\xa9 and more");
    CU_ASSERT_EQUAL(tws_close_payload(out, 1000, reason), 2 + 122);
    memset(reason, 'y', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    CU_ASSERT_EQUAL(tws_close_payload(out, 1000, reason), 2 + TWS_CLOSE_REASON_MAX);
    CU_ASSERT_EQUAL(tws_close_payload(out, 1000, "\xff"), 2); /* not UTF-8: dropped */
}

/* ---- frames --------------------------------------------------------- */

static void test_frame_header(void) {
    uint8_t h[TWS_FRAME_HEADER_MAX];
    CU_ASSERT_EQUAL(tws_frame_header(h, TWS_OP_TEXT, 0), 2);
    CU_ASSERT_EQUAL(h[0], 0x81);
    CU_ASSERT_EQUAL(h[1], 0);
    CU_ASSERT_EQUAL(tws_frame_header(h, TWS_OP_BINARY, 125), 2);
    CU_ASSERT_EQUAL(h[0], 0x82);
    CU_ASSERT_EQUAL(h[1], 125);
    CU_ASSERT_EQUAL(tws_frame_header(h, TWS_OP_TEXT, 126), 4);
    CU_ASSERT_EQUAL(h[1], 126);
    CU_ASSERT_EQUAL(h[2], 0);
    CU_ASSERT_EQUAL(h[3], 126);
    CU_ASSERT_EQUAL(tws_frame_header(h, TWS_OP_TEXT, 65535), 4);
    CU_ASSERT_EQUAL(h[2], 0xFF);
    CU_ASSERT_EQUAL(h[3], 0xFF);
    CU_ASSERT_EQUAL(tws_frame_header(h, TWS_OP_TEXT, 65536), 10);
    const uint8_t want[] = {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    CU_ASSERT_EQUAL(memcmp(h, want, 10), 0);
    CU_ASSERT_EQUAL(tws_frame_header(h, TWS_OP_PING, 0), 2);
    CU_ASSERT_EQUAL(h[0], 0x89);
}

/* A host with just the buffer functions tws_frame_buf needs. */
static int live_bufs;

static nb_buf *mock_buf_new(uint32_t headroom, uint32_t capacity) {
    nb_buf *b = malloc(sizeof *b + headroom + capacity);
    if (!b)
        return NULL;
    b->struct_size = sizeof *b;
    b->len = 0;
    b->data = (uint8_t *)(b + 1) + headroom;
    b->headroom = headroom;
    b->tailroom = capacity;
    live_bufs++;
    return b;
}

static void mock_buf_unref(nb_buf *b) {
    if (b) {
        live_bufs--;
        free(b);
    }
}

static void test_frame_buf(void) {
    nb_host host;
    memset(&host, 0, sizeof host);
    host.buf_new = mock_buf_new;
    host.buf_unref = mock_buf_unref;
    /* In place: the header goes into the headroom. */
    nb_buf *p = mock_buf_new(NB_BUF_HEADROOM, 300);
    memset(p->data, 'a', 300);
    p->len = 300;
    uint8_t *payload = p->data;
    nb_buf *f = tws_frame_buf(&host, NB_FRAME_TEXT, p);
    CU_ASSERT_PTR_EQUAL(f, p);
    CU_ASSERT_EQUAL(f->len, 304);
    CU_ASSERT_PTR_EQUAL(f->data, payload - 4);
    CU_ASSERT_EQUAL(f->headroom, NB_BUF_HEADROOM - 4);
    CU_ASSERT_EQUAL(f->data[0], 0x81);
    CU_ASSERT_EQUAL(f->data[1], 126);
    CU_ASSERT_EQUAL(f->data[4], 'a');
    mock_buf_unref(f);
    /* No headroom: a copy. */
    p = mock_buf_new(0, 5);
    memcpy(p->data, "hello", 5);
    p->len = 5;
    p->tailroom = 0;
    f = tws_frame_buf(&host, NB_FRAME_BINARY, p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (!f)
        return;
    CU_ASSERT_EQUAL(f->len, 7);
    CU_ASSERT_EQUAL(f->data[0], 0x82);
    CU_ASSERT_EQUAL(f->data[1], 5);
    CU_ASSERT_EQUAL(memcmp(f->data + 2, "hello", 5), 0);
    mock_buf_unref(f);
    CU_ASSERT_EQUAL(live_bufs, 0);
    /* An unknown kind consumes the payload and fails. */
    p = mock_buf_new(NB_BUF_HEADROOM, 1);
    CU_ASSERT_PTR_NULL(tws_frame_buf(&host, 7, p));
    CU_ASSERT_EQUAL(live_bufs, 0);
}

/* A masked client frame into out; returns its length. */
static size_t client_frame(uint8_t *out, uint8_t b0, const uint8_t *payload, size_t len) {
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    out[n++] = b0;
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(out + n, mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        out[n + i] = payload[i] ^ mask[i & 3];
    return n + len;
}

static void test_scan_whole(void) {
    uint8_t buf[512];
    size_t n = client_frame(buf, 0x81, (const uint8_t *)"Hello", 5);
    n += client_frame(buf + n, 0x89, (const uint8_t *)"p", 1);
    size_t data_end = n;
    n += client_frame(buf + n, 0x88,
                      (const uint8_t *)"\x03\xe8"
                                       "bye",
                      5);
    n += client_frame(buf + n, 0x81, (const uint8_t *)"after", 5);
    tws_scan s;
    memset(&s, 0, sizeof s);
    tws_scan_result r;
    tws_scan_run(&s, buf, n, 1, &r);
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_CLOSE);
    CU_ASSERT_EQUAL(r.pass_end, data_end); /* text and ping for wslay, not the close */
    CU_ASSERT_EQUAL(r.prefix_len, 0);
    CU_ASSERT_EQUAL(s.ctl_len, 5);
    CU_ASSERT_EQUAL(memcmp(s.ctl,
                           "\x03\xe8"
                           "bye",
                           5),
                    0);
    CU_ASSERT_EQUAL(r.consumed, data_end + 11);
    CU_ASSERT_TRUE(tws_scan_idle(&s));
}

/* One byte per call: what wslay is handed, put together, is exactly the
 * stream minus the close frame, and the close is found at the end. */
static void test_scan_bytewise(void) {
    static uint8_t payload[70000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)('a' + i % 26);
    static uint8_t buf[140000];
    size_t n = 0;
    size_t lens[] = {0, 125, 126, 65535, 65536};
    for (size_t i = 0; i < 5; i++)
        n += client_frame(buf + n, 0x82, payload, lens[i]);
    n += client_frame(buf + n, 0x01, (const uint8_t *)"frag", 4); /* text, FIN=0 */
    n += client_frame(buf + n, 0x89, NULL, 0);                    /* ping in between */
    n += client_frame(buf + n, 0x80, (const uint8_t *)"ment", 4); /* final continuation */
    size_t data_end = n;
    n += client_frame(buf + n, 0x88, (const uint8_t *)"\x03\xe8", 2);
    static uint8_t passed[140000];
    size_t got = 0;
    tws_scan s;
    memset(&s, 0, sizeof s);
    tws_scan_result r = {0};
    size_t i;
    int saw_fragment_open = 0;
    for (i = 0; i < n; i++) {
        tws_scan_run(&s, buf + i, 1, 1, &r);
        memcpy(passed + got, r.prefix, r.prefix_len);
        got += r.prefix_len;
        memcpy(passed + got, buf + i, r.pass_end);
        got += r.pass_end;
        saw_fragment_open |= s.frag_open;
        if (r.status != TWS_SCAN_MORE)
            break;
    }
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_CLOSE);
    CU_ASSERT_EQUAL(i, n - 1);
    CU_ASSERT_EQUAL(got, data_end);
    CU_ASSERT_EQUAL(memcmp(passed, buf, data_end), 0);
    CU_ASSERT_TRUE(saw_fragment_open);
    CU_ASSERT_TRUE(tws_scan_idle(&s));
    CU_ASSERT_EQUAL(s.ctl_len, 2);
}

static int scan_one(const uint8_t *frame, size_t n, tws_scan *s) {
    memset(s, 0, sizeof *s);
    tws_scan_result r;
    tws_scan_run(s, frame, n, 1, &r);
    return r.status;
}

static void test_scan_errors(void) {
    uint8_t buf[256], big[200];
    memset(big, 'x', sizeof big);
    tws_scan s;
    size_t n = client_frame(buf, 0x89, big, 126); /* ping over 125 */
    CU_ASSERT_EQUAL(scan_one(buf, n, &s), TWS_SCAN_ERROR);
    CU_ASSERT_EQUAL(s.error_code, 1002);
    CU_ASSERT_EQUAL(scan_one(buf, 2, &s), TWS_SCAN_ERROR); /* refused on two bytes */
    n = client_frame(buf, 0x09, big, 5);                   /* fragmented ping */
    CU_ASSERT_EQUAL(scan_one(buf, n, &s), TWS_SCAN_ERROR);
    n = client_frame(buf, 0x08, big, 2); /* fragmented close */
    CU_ASSERT_EQUAL(scan_one(buf, n, &s), TWS_SCAN_ERROR);
    const uint8_t nonminimal16[] = {0x81, 0x80 | 126, 0, 5, 1, 2, 3, 4};
    CU_ASSERT_EQUAL(scan_one(nonminimal16, sizeof nonminimal16, &s), TWS_SCAN_ERROR);
    const uint8_t nonminimal64[] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4};
    CU_ASSERT_EQUAL(scan_one(nonminimal64, sizeof nonminimal64, &s), TWS_SCAN_ERROR);
    const uint8_t topbit[] = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    CU_ASSERT_EQUAL(scan_one(topbit, sizeof topbit, &s), TWS_SCAN_ERROR);
    const uint8_t unmasked_close[] = {0x88, 0x02, 0x03, 0xe8};
    CU_ASSERT_EQUAL(scan_one(unmasked_close, sizeof unmasked_close, &s), TWS_SCAN_ERROR);
    n = client_frame(buf, 0x88 | 0x40, (const uint8_t *)"\x03\xe8", 2); /* RSV1 on close */
    CU_ASSERT_EQUAL(scan_one(buf, n, &s), TWS_SCAN_ERROR);
    /* What wslay judges is passed on: an unmasked text frame, RSV bits. */
    const uint8_t unmasked_text[] = {0x81, 0x02, 'h', 'i'};
    CU_ASSERT_EQUAL(scan_one(unmasked_text, sizeof unmasked_text, &s), TWS_SCAN_MORE);
    n = client_frame(buf, 0x81 | 0x70, (const uint8_t *)"hi", 2);
    CU_ASSERT_EQUAL(scan_one(buf, n, &s), TWS_SCAN_MORE);
}

static void test_scan_control_budget(void) {
    uint8_t buf[512];
    tws_scan s;
    memset(&s, 0, sizeof s);
    s.ctl_limited = 1;
    s.ctl_left = 2;
    tws_scan_result r;
    /* ping, pong, then a text frame: within the budget of two. */
    size_t n = client_frame(buf, 0x89, (const uint8_t *)"a", 1);
    n += client_frame(buf + n, 0x8A, (const uint8_t *)"b", 1);
    n += client_frame(buf + n, 0x81, (const uint8_t *)"hi", 2);
    tws_scan_run(&s, buf, n, 1, &r);
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_MORE);
    CU_ASSERT_EQUAL(s.ctl_left, 0);
    /* A third is refused with 1008 before it is passed on. */
    size_t m = client_frame(buf, 0x81, (const uint8_t *)"ok", 2);
    size_t ping = client_frame(buf + m, 0x89, (const uint8_t *)"c", 1);
    tws_scan_run(&s, buf, m + ping, 1, &r);
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_ERROR);
    CU_ASSERT_EQUAL(s.error_code, 1008);
    CU_ASSERT_EQUAL(r.pass_end, m);
    /* Close frames are not counted; without ctl_limited nothing is. */
    memset(&s, 0, sizeof s);
    n = 0;
    for (int i = 0; i < 20; i++)
        n += client_frame(buf + n, 0x89, (const uint8_t *)"p", 1);
    tws_scan_run(&s, buf, n, 1, &r);
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_MORE);
}

static void test_scan_limit(void) {
    uint8_t buf[512], data[200];
    memset(data, 'z', sizeof data);
    tws_scan s;
    memset(&s, 0, sizeof s);
    s.max_message = 150;
    tws_scan_result r;
    /* A header announcing too much is refused before any payload. */
    client_frame(buf, 0x82, data, 151);
    tws_scan_run(&s, buf, 8, 1, &r);
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_ERROR);
    CU_ASSERT_EQUAL(s.error_code, 1009);
    /* Fragments add up; exactly the limit passes. */
    memset(&s, 0, sizeof s);
    s.max_message = 150;
    size_t n = client_frame(buf, 0x01, data, 100);
    n += client_frame(buf + n, 0x80, data, 50);
    tws_scan_run(&s, buf, n, 1, &r);
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_MORE);
    CU_ASSERT_EQUAL(r.pass_end, n);
    n = client_frame(buf, 0x01, data, 100);
    n += client_frame(buf + n, 0x00, data, 50);
    n += client_frame(buf + n, 0x80, data, 1);
    tws_scan_run(&s, buf, n, 1, &r);
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_ERROR);
    CU_ASSERT_EQUAL(s.error_code, 1009);
    /* Control frames do not count. */
    memset(&s, 0, sizeof s);
    s.max_message = 150;
    n = client_frame(buf, 0x01, data, 150);
    tws_scan_run(&s, buf, n, 1, &r);
    n = client_frame(buf, 0x89, data, 100);
    tws_scan_run(&s, buf, n, 1, &r);
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_MORE);
}

static void test_scan_skip(void) {
    /* Not passing (we sent a close): data is skipped, the close found. */
    uint8_t buf[256];
    size_t n = client_frame(buf, 0x81, (const uint8_t *)"ignored", 7);
    n += client_frame(buf + n, 0x88, NULL, 0);
    tws_scan s;
    memset(&s, 0, sizeof s);
    tws_scan_result r;
    tws_scan_run(&s, buf, n, 0, &r);
    CU_ASSERT_EQUAL(r.status, TWS_SCAN_CLOSE);
    CU_ASSERT_EQUAL(r.pass_end, 0);
    CU_ASSERT_EQUAL(s.ctl_len, 0);
    /* A half frame is not idle. */
    memset(&s, 0, sizeof s);
    tws_scan_run(&s, buf, 5, 1, &r);
    CU_ASSERT_FALSE(tws_scan_idle(&s));
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite http = CU_add_suite("http", NULL, NULL);
    CU_add_test(http, "parse a good request", test_parse_good);
    CU_add_test(http, "bytes after the head are left alone", test_parse_pipelined);
    CU_add_test(http, "split at every byte", test_parse_every_split);
    CU_add_test(http, "HTTP/1.0", test_parse_http10);
    CU_add_test(http, "bad syntax is 400", test_parse_bad);
    CU_add_test(http, "other versions are 505", test_parse_version);
    CU_add_test(http, "limits are 431", test_parse_limits);
    CU_add_test(http, "token lists", test_list_has);
    CU_pSuite hs = CU_add_suite("handshake", NULL, NULL);
    CU_add_test(hs, "Sec-WebSocket-Accept (RFC 6455 example)", test_accept_key);
    CU_add_test(hs, "Sec-WebSocket-Key syntax", test_key_valid);
    CU_add_test(hs, "upgrade checks", test_handshake_check);
    CU_add_test(hs, "upgrade detection", test_is_upgrade);
    CU_add_test(hs, "subprotocol tokens", test_subprotocols);
    CU_pSuite st = CU_add_suite("static", NULL, NULL);
    CU_add_test(st, "path mapping and traversal", test_static_map);
    CU_add_test(st, "content types", test_static_type);
    CU_add_test(st, "open inside the root only", test_static_open);
    CU_pSuite ws = CU_add_suite("websocket", NULL, NULL);
    CU_add_test(ws, "UTF-8 validation", test_utf8);
    CU_add_test(ws, "close codes", test_close_codes);
    CU_add_test(ws, "close payload", test_close_payload);
    CU_add_test(ws, "frame header lengths", test_frame_header);
    CU_add_test(ws, "framing a buffer", test_frame_buf);
    CU_add_test(ws, "scanner: whole input", test_scan_whole);
    CU_add_test(ws, "scanner: one byte at a time", test_scan_bytewise);
    CU_add_test(ws, "scanner: header errors", test_scan_errors);
    CU_add_test(ws, "scanner: message size limit", test_scan_limit);
    CU_add_test(ws, "scanner: control-frame budget", test_scan_control_budget);
    CU_add_test(ws, "scanner: skipping while closing", test_scan_skip);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
