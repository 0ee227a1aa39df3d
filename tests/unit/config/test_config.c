/*
 * Unit tests of the config parser (core/config.c): every value type, every
 * kind of mistake with its exact message, getters, unknown keys and
 * sections with suggestions, files on disk. argv[1] is the folder of the
 * .conf inputs (default: beside this source file).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkstemp */
#endif
#include "config.h"

#include <CUnit/Basic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char conf_dir[4096];

/* CU_ASSERT_STRING_EQUAL crashes on NULL; here NULL fails the assertion. */
#define ASSERT_STR(actual, expected)                                                               \
    do {                                                                                           \
        const char *actual_ = (actual);                                                            \
        CU_ASSERT_STRING_EQUAL(actual_ ? actual_ : "(null)", expected);                            \
    } while (0)

static nb_config *load(const char *text) {
    char err[256] = "";
    nb_config *c = config_load_string("t.conf", text, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

/* Prints the recorded errors when they are not what a test expects. */
static void show(const nb_config *c) {
    for (size_t i = 0; i < config_error_count(c); i++)
        fprintf(stderr, "    [%zu] %s\n", i, config_error_at(c, i));
}

/* The recorded errors are exactly `want` (NULL-terminated), in order. */
static void expect_errors(const nb_config *c, const char *const *want) {
    size_t n = 0;
    while (want[n])
        n++;
    int ok = config_error_count(c) == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = strcmp(config_error_at(c, i), want[i]) == 0;
    if (!ok) {
        fprintf(stderr, "\n  expected:\n");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "    [%zu] %s\n", i, want[i]);
        fprintf(stderr, "  got:\n");
        show(c);
    }
    CU_ASSERT_TRUE(ok);
}

/* One line of text parses to exactly one error, `want`. */
static void expect_one(const char *text, const char *want) {
    nb_config *c = load(text);
    const char *const list[] = {want, NULL};
    expect_errors(c, list);
    config_free(c);
}

static void test_good_values(void) {
    nb_config *c = load("# top comment\n"
                        "[server]\n"
                        "listen = \"0.0.0.0:8080\"\n"
                        "shards = 64\n"
                        "neg = -17\n"
                        "plus = +5\n"
                        "zero = 0\n"
                        "on = true\n"
                        "off = false\n"
                        "empty = \"\"\n"
                        "utf8 = \"caf\xc3\xa9 \xe2\x9c\x93\"\n"
                        "[plugins]\n"
                        "codecs = [\"codec-json\", \"codec-protobuf\"]\n");
    expect_errors(c, (const char *const[]){NULL});
    const char *s = NULL;
    int64_t i = 0;
    int b = -1;
    CU_ASSERT_EQUAL(config_get_string(c, "server", "listen", "def", &s), 1);
    ASSERT_STR(s, "0.0.0.0:8080");
    CU_ASSERT_EQUAL(config_get_int(c, "server", "shards", 1, 1, 65536, &i), 1);
    CU_ASSERT_EQUAL(i, 64);
    CU_ASSERT_EQUAL(config_get_int(c, "server", "neg", 0, INT64_MIN, INT64_MAX, &i), 1);
    CU_ASSERT_EQUAL(i, -17);
    CU_ASSERT_EQUAL(config_get_int(c, "server", "plus", 0, INT64_MIN, INT64_MAX, &i), 1);
    CU_ASSERT_EQUAL(i, 5);
    CU_ASSERT_EQUAL(config_get_int(c, "server", "zero", 9, 0, 0, &i), 1);
    CU_ASSERT_EQUAL(i, 0);
    CU_ASSERT_EQUAL(config_get_bool(c, "server", "on", 0, &b), 1);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(config_get_bool(c, "server", "off", 1, &b), 1);
    CU_ASSERT_EQUAL(b, 0);
    CU_ASSERT_EQUAL(config_get_string(c, "server", "empty", "def", &s), 1);
    ASSERT_STR(s, "");
    CU_ASSERT_EQUAL(config_get_string(c, "server", "utf8", NULL, &s), 1);
    ASSERT_STR(s, "caf\xc3\xa9 \xe2\x9c\x93");
    const char *const *arr = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(config_get_string_array(c, "plugins", "codecs", &arr, &n), 1);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    ASSERT_STR(arr[0], "codec-json");
    ASSERT_STR(arr[1], "codec-protobuf");
    config_check_unread(c);
    expect_errors(c, (const char *const[]){NULL});
    ASSERT_STR(config_file_name(c), "t.conf");
    config_free(c);
}

static void test_absent_and_defaults(void) {
    nb_config *c = load("[server]\nshards = 2\n");
    const char *s = "x";
    int64_t i = 0;
    int b = -1;
    const char *const *arr = (const char *const *)&s;
    size_t n = 9;
    CU_ASSERT_EQUAL(config_get_string(c, "server", "listen", "dflt", &s), 0);
    ASSERT_STR(s, "dflt");
    CU_ASSERT_EQUAL(config_get_string(c, "nosuch", "listen", NULL, &s), 0);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_EQUAL(config_get_int(c, "server", "burst", 40, 0, 100, &i), 0);
    CU_ASSERT_EQUAL(i, 40);
    CU_ASSERT_EQUAL(config_get_bool(c, "server", "tls", 1, &b), 0);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(config_get_string_array(c, "server", "codecs", &arr, &n), 0);
    CU_ASSERT_PTR_NULL(arr);
    CU_ASSERT_EQUAL(n, 0);
    /* absent keys are not errors; the unread one is */
    CU_ASSERT_EQUAL(config_error_count(c), 0);
    config_check_unread(c);
    expect_errors(c, (const char *const[]){
                         "t.conf:2: [server] shards: unknown key (the keys of [server] are: "
                         "burst, codecs, listen, tls; check the spelling)",
                         NULL});
    config_free(c);
}

static void test_empty_input(void) {
    nb_config *c = load("");
    config_check_unread(c);
    CU_ASSERT_EQUAL(config_error_count(c), 0);
    config_free(c);
    c = load("\n\n   \n# only comments\n\t# indented\n");
    config_check_unread(c);
    CU_ASSERT_EQUAL(config_error_count(c), 0);
    config_free(c);
    char err[64] = "";
    c = config_load_string("null.conf", NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(config_error_count(c), 0);
    config_free(c);
    config_free(NULL);
}

static void test_strings_and_escapes(void) {
    nb_config *c = load("[s]\n"
                        "a = \"say \\\"hi\\\"\"\n"
                        "b = \"back\\\\slash\"\n"
                        "c = \"line\\nnext\\tcol\"\n"
                        "d = \"# not a comment\" # a comment\n"
                        "e = \"x=y [z] , \\\\\"\n"
                        "f = \"\\\\n\"\n");
    expect_errors(c, (const char *const[]){NULL});
    const char *s = NULL;
    config_get_string(c, "s", "a", NULL, &s);
    ASSERT_STR(s, "say \"hi\"");
    config_get_string(c, "s", "b", NULL, &s);
    ASSERT_STR(s, "back\\slash");
    config_get_string(c, "s", "c", NULL, &s);
    ASSERT_STR(s, "line\nnext\tcol");
    config_get_string(c, "s", "d", NULL, &s);
    ASSERT_STR(s, "# not a comment");
    config_get_string(c, "s", "e", NULL, &s);
    ASSERT_STR(s, "x=y [z] , \\");
    config_get_string(c, "s", "f", NULL, &s);
    ASSERT_STR(s, "\\n");
    config_free(c);

    expect_one("[s]\nk = \"a\\qb\"\n",
               "t.conf:2: [s] k: unknown escape '\\q' in a string (the escapes are \\\", \\\\, "
               "\\n, \\t)");
    expect_one("[s]\nk = \"abc\n",
               "t.conf:2: [s] k: unterminated string (the closing '\"' is missing)");
    expect_one("[s]\nk = \"abc\\\"\n",
               "t.conf:2: [s] k: unterminated string (the closing '\"' is missing)");
    expect_one("[s]\nk = \"abc\\\n",
               "t.conf:2: [s] k: unterminated string (the line ends in '\\')");
    expect_one("[s]\nk = \"a\" \"b\"\n",
               "t.conf:2: [s] k: unexpected text after the value: '\"b\"' (a comment starts with "
               "'#')");
    expect_one("[s]\nk = 'single'\n",
               "t.conf:2: [s] k: strings take double quotes, not single: 'single'");
    expect_one("[s]\nk = hello\n", "t.conf:2: [s] k: 'hello' is not a value (strings take double "
                                   "quotes: \"hello\"; booleans are true or false)");
    expect_one("[s]\nk =\n", "t.conf:2: [s] k: missing value after '='");
    expect_one("[s]\nk = # nothing\n", "t.conf:2: [s] k: missing value after '='");
}

static void test_integers(void) {
    nb_config *c = load("[n]\n"
                        "max = 9223372036854775807\n"
                        "min = -9223372036854775808\n"
                        "negzero = -0\n");
    expect_errors(c, (const char *const[]){NULL});
    int64_t i = 0;
    CU_ASSERT_EQUAL(config_get_int(c, "n", "max", 0, INT64_MIN, INT64_MAX, &i), 1);
    CU_ASSERT_EQUAL(i, INT64_MAX);
    CU_ASSERT_EQUAL(config_get_int(c, "n", "min", 0, INT64_MIN, INT64_MAX, &i), 1);
    CU_ASSERT_EQUAL(i, INT64_MIN);
    CU_ASSERT_EQUAL(config_get_int(c, "n", "negzero", 5, INT64_MIN, INT64_MAX, &i), 1);
    CU_ASSERT_EQUAL(i, 0);
    config_free(c);

    expect_one("[n]\nk = 9223372036854775808\n",
               "t.conf:2: [n] k: '9223372036854775808' does not fit in a 64-bit integer");
    expect_one("[n]\nk = -9223372036854775809\n",
               "t.conf:2: [n] k: '-9223372036854775809' does not fit in a 64-bit integer");
    expect_one("[n]\nk = 99999999999999999999999\n",
               "t.conf:2: [n] k: '99999999999999999999999' does not fit in a 64-bit integer");
    expect_one("[n]\nk = 12abc\n",
               "t.conf:2: [n] k: '12abc' is not an integer (write \"12abc\" if it is a string)");
    expect_one("[n]\nk = 1.5\n",
               "t.conf:2: [n] k: '1.5' is not an integer (write \"1.5\" if it is a string)");
    expect_one("[n]\nk = 0x10\n",
               "t.conf:2: [n] k: '0x10' is not an integer (write \"0x10\" if it is a string)");
    expect_one("[n]\nk = -\n",
               "t.conf:2: [n] k: '-' is not an integer (write \"-\" if it is a string)");
    expect_one("[n]\nk = 0755\n",
               "t.conf:2: [n] k: '0755': leading zeros are not allowed (numbers are decimal)");
    expect_one("[n]\nk = 12 34\n",
               "t.conf:2: [n] k: unexpected text after the value: '34' (a comment starts with "
               "'#')");
    expect_one("[n]\nk = 127.0.0.1:80\n", "t.conf:2: [n] k: '127.0.0.1:80' is not an integer "
                                          "(write \"127.0.0.1:80\" if it is a string)");
}

static void test_booleans(void) {
    expect_one("[b]\nk = True\n",
               "t.conf:2: [b] k: 'True': booleans are written true or false, in lower case");
    expect_one("[b]\nk = FALSE\n",
               "t.conf:2: [b] k: 'FALSE': booleans are written true or false, in lower case");
    expect_one("[b]\nk = truex\n", "t.conf:2: [b] k: 'truex' is not a value (strings take double "
                                   "quotes: \"truex\"; booleans are true or false)");
    expect_one("[b]\nk = true false\n", "t.conf:2: [b] k: unexpected text after the value: "
                                        "'false' (a comment starts with '#')");
    nb_config *c = load("[b]\nk = true#comment right after\n");
    int b = 0;
    CU_ASSERT_EQUAL(config_get_bool(c, "b", "k", 0, &b), 1);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(config_error_count(c), 0);
    config_free(c);
}

static void test_arrays(void) {
    nb_config *c = load("[a]\n"
                        "empty = []\n"
                        "spaced = [   ]\n"
                        "one = [\"x\"]\n"
                        "trailing = [\"x\", \"y\",]\n"
                        "tight = [\"p\",\"q\"]\n"
                        "tricky = [\"a,b\", \"c]\", \"#d\", \"e\\\"\"] # comment\n"
                        "single = \"solo\"\n"
                        "num = 3\n");
    expect_errors(c, (const char *const[]){NULL});
    const char *const *arr = NULL;
    size_t n = 99;
    CU_ASSERT_EQUAL(config_get_string_array(c, "a", "empty", &arr, &n), 1);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_PTR_NOT_NULL(arr);
    CU_ASSERT_EQUAL(config_get_string_array(c, "a", "spaced", &arr, &n), 1);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(config_get_string_array(c, "a", "one", &arr, &n), 1);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    ASSERT_STR(arr[0], "x");
    CU_ASSERT_EQUAL(config_get_string_array(c, "a", "trailing", &arr, &n), 1);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    ASSERT_STR(arr[1], "y");
    CU_ASSERT_EQUAL(config_get_string_array(c, "a", "tight", &arr, &n), 1);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    ASSERT_STR(arr[0], "p");
    ASSERT_STR(arr[1], "q");
    CU_ASSERT_EQUAL(config_get_string_array(c, "a", "tricky", &arr, &n), 1);
    CU_ASSERT_EQUAL_FATAL(n, 4);
    ASSERT_STR(arr[0], "a,b");
    ASSERT_STR(arr[1], "c]");
    ASSERT_STR(arr[2], "#d");
    ASSERT_STR(arr[3], "e\"");
    /* a single string is an array of one */
    CU_ASSERT_EQUAL(config_get_string_array(c, "a", "single", &arr, &n), 1);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    ASSERT_STR(arr[0], "solo");
    CU_ASSERT_EQUAL(config_get_string_array(c, "a", "num", &arr, &n), -1);
    CU_ASSERT_PTR_NULL(arr);
    CU_ASSERT_EQUAL(n, 0);
    expect_errors(c, (const char *const[]){
                         "t.conf:9: [a] num: expected an array of strings, got an integer", NULL});
    /* an array is not a string */
    const char *s = "def";
    CU_ASSERT_EQUAL(config_get_string(c, "a", "one", "def", &s), -1);
    ASSERT_STR(s, "def");
    config_free(c);

    const char *unterminated = "unterminated array (the closing ']' is missing; an array fits on "
                               "one line)";
    char want[256];
    const char *cases[][2] = {
        {"k = [\"a\", \"b\"", unterminated},
        {"k = [\"a\",", unterminated},
        {"k = [", unterminated},
        {"k = [\"a\" # ]", unterminated},
        {"k = [,]", "empty item in an array (a ',' with nothing before it)"},
        {"k = [\"a\",,\"b\"]", "empty item in an array (a ',' with nothing before it)"},
        {"k = [\"a\" \"b\"]", "expected ',' or ']' after an array item, found '\"b\"]'"},
        {"k = [1, 2]", "arrays hold strings only, in double quotes: found '1'"},
        {"k = [\"a\", true]", "arrays hold strings only, in double quotes: found 'true'"},
        {"k = [[\"a\"]]", "arrays hold strings only, in double quotes: found '[\"a\"'"},
        {"k = [\"a\\x\"]", "unknown escape '\\x' in a string (the escapes are \\\", \\\\, \\n, "
                           "\\t)"},
        {"k = [\"a\"] junk", "unexpected text after the value: 'junk' (a comment starts with "
                             "'#')"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[a]\n%s\n", cases[i][0]);
        snprintf(want, sizeof want, "t.conf:2: [a] k: %s", cases[i][1]);
        expect_one(text, want);
    }
}

static void test_sections_and_keys(void) {
    nb_config *c = load("[ spaced ]\n"
                        "[dotted.name-1_x] # comment\n"
                        "  indented_key\t=  7  \n"
                        "UPPER-case_9 = 1\n");
    expect_errors(c, (const char *const[]){NULL});
    int64_t i = 0;
    CU_ASSERT_EQUAL(config_has_section(c, "spaced"), 1);
    CU_ASSERT_EQUAL(config_get_int(c, "dotted.name-1_x", "indented_key", 0, 0, 10, &i), 1);
    CU_ASSERT_EQUAL(i, 7);
    CU_ASSERT_EQUAL(config_get_int(c, "dotted.name-1_x", "UPPER-case_9", 0, 0, 10, &i), 1);
    /* names are case-sensitive */
    CU_ASSERT_EQUAL(config_get_int(c, "dotted.name-1_x", "upper-case_9", 0, 0, 10, &i), 0);
    CU_ASSERT_EQUAL(config_has_section(c, "Spaced"), 0);
    config_free(c);

    expect_one("k = 1\n", "t.conf:1: key 'k' comes before any [section] line (every key belongs "
                          "to a section)");
    expect_one("[s]\n= 1\n", "t.conf:2: missing key name before '='");
    expect_one("[s]\n  = \"x\"\n", "t.conf:2: missing key name before '='");
    expect_one("[s]\n\"k\" = 1\n",
               "t.conf:2: bad key name '\"k\"' (use letters, digits, '_' and '-')");
    expect_one("[s]\na.b = 1\n", "t.conf:2: bad key name 'a.b' (use letters, digits, '_' and '-')");
    expect_one("[s]\nmy key = 1\n", "t.conf:2: expected '=' after the key 'my', found 'key = 1'");
    expect_one("[s]\njust words\n",
               "t.conf:2: expected 'key = value', a [section] line or a # comment, found 'just "
               "words'");
    expect_one("[]\n", "t.conf:1: empty section name '[]'");
    expect_one("[  ]\n", "t.conf:1: empty section name '[]'");
    expect_one("[bad name]\n",
               "t.conf:1: bad section name 'bad name' (use letters, digits, '_', '-' and '.')");
    expect_one("[[table]]\n",
               "t.conf:1: bad section name '[table' (use letters, digits, '_', '-' and '.')");
    expect_one("[server\n", "t.conf:1: section line '[server' lacks its closing ']'");
    expect_one("[s] k = 1\n", "t.conf:1: [s]: unexpected text after the section name: 'k = 1'");
    expect_one("[s]\nk = 1\n[s]\n", "t.conf:3: [s]: duplicate section (first at line 1)");
    expect_one("[s]\nk = 1\nk = 2\n", "t.conf:3: [s] k: duplicate key (first set at line 2)");
    expect_one("[s]\nk = \"\x01\"\x7f\n",
               "t.conf:2: [s] k: unexpected text after the value: '?' (a comment starts with '#')");
}

static void test_duplicates_keep_first(void) {
    /* keys after a repeated [s] still belong to [s]: they are checked */
    nb_config *c = load("[s]\na = 1\n[t]\n[s]\na = 2\nb = 3\n");
    int64_t i = 0;
    CU_ASSERT_EQUAL(config_get_int(c, "s", "a", 0, 0, 10, &i), 1);
    CU_ASSERT_EQUAL(i, 1);
    CU_ASSERT_EQUAL(config_get_int(c, "s", "b", 0, 0, 10, &i), 1);
    CU_ASSERT_EQUAL(i, 3);
    config_has_section(c, "t");
    config_check_unread(c);
    expect_errors(c, (const char *const[]){"t.conf:4: [s]: duplicate section (first at line 1)",
                                           "t.conf:5: [s] a: duplicate key (first set at line 2)",
                                           NULL});
    config_free(c);
}

static void test_bad_section_skips_its_keys(void) {
    nb_config *c = load("[bad!]\nk = oops\n[ok]\nk = 1\n");
    int64_t i = 0;
    CU_ASSERT_EQUAL(config_get_int(c, "ok", "k", 0, 0, 10, &i), 1);
    config_check_unread(c);
    expect_errors(
        c, (const char *const[]){
               "t.conf:1: bad section name 'bad!' (use letters, digits, '_', '-' and '.')", NULL});
    config_free(c);
}

static void test_many_errors_in_one_file(void) {
    nb_config *c = load("top = 1\n"                  /* 1 */
                        "[limits]\n"                 /* 2 */
                        "burst = 12abc\n"            /* 3 */
                        "rate = \"x\\y\"\n"          /* 4 */
                        "size = 10\n"                /* 5 */
                        "size = 11\n"                /* 6 */
                        "garbage\n"                  /* 7 */
                        "[limits]\n"                 /* 8 */
                        "list = [\"a\", 2]\n"        /* 9 */
                        "[bad name]\n"               /* 10 */
                        "[server]\n"                 /* 11 */
                        "flag = yes\n"               /* 12 */
                        "ok = \"fine\" # trailing\n" /* 13 */
                        "name = \"open\n");          /* 14 */
    expect_errors(
        c,
        (const char *const[]){
            "t.conf:1: key 'top' comes before any [section] line (every key belongs to a section)",
            "t.conf:3: [limits] burst: '12abc' is not an integer (write \"12abc\" if it is a "
            "string)",
            "t.conf:4: [limits] rate: unknown escape '\\y' in a string (the escapes are \\\", "
            "\\\\, \\n, \\t)",
            "t.conf:6: [limits] size: duplicate key (first set at line 5)",
            "t.conf:7: expected 'key = value', a [section] line or a # comment, found 'garbage'",
            "t.conf:8: [limits]: duplicate section (first at line 2)",
            "t.conf:9: [limits] list: arrays hold strings only, in double quotes: found '2'",
            "t.conf:10: bad section name 'bad name' (use letters, digits, '_', '-' and '.')",
            "t.conf:12: [server] flag: 'yes' is not a value (strings take double quotes: \"yes\"; "
            "booleans are true or false)",
            "t.conf:14: [server] name: unterminated string (the closing '\"' is missing)", NULL});
    const char *s = NULL;
    CU_ASSERT_EQUAL(config_get_string(c, "server", "ok", NULL, &s), 1);
    ASSERT_STR(s, "fine");
    config_free(c);
}

static void test_type_mismatch(void) {
    nb_config *c = load("[limits]\n"
                        "burst = \"40\"\n"
                        "name = 5\n"
                        "flag = \"true\"\n"
                        "count = true\n"
                        "on = 1\n"
                        "list = [\"a\"]\n"
                        "word = \"many\"\n"
                        "yes = false\n");
    int64_t i = 7;
    int b = 7;
    const char *s = "def";
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "burst", 20, 1, 100, &i), -1);
    CU_ASSERT_EQUAL(i, 20);
    CU_ASSERT_EQUAL(config_get_string(c, "limits", "name", "def", &s), -1);
    ASSERT_STR(s, "def");
    CU_ASSERT_EQUAL(config_get_bool(c, "limits", "flag", 0, &b), -1);
    CU_ASSERT_EQUAL(b, 0);
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "count", 3, 0, 9, &i), -1);
    CU_ASSERT_EQUAL(i, 3);
    CU_ASSERT_EQUAL(config_get_bool(c, "limits", "on", 1, &b), -1);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(config_get_string(c, "limits", "list", NULL, &s), -1);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "word", 1, 0, 9, &i), -1);
    CU_ASSERT_EQUAL(config_get_string(c, "limits", "yes", NULL, &s), -1);
    /* read again: the same mistake is reported once */
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "burst", 20, 1, 100, &i), -1);
    expect_errors(
        c, (const char *const[]){
               "t.conf:2: [limits] burst: expected an integer, got a string (write 40 without "
               "quotes)",
               "t.conf:3: [limits] name: expected a string, got an integer (write it in double "
               "quotes: \"5\")",
               "t.conf:4: [limits] flag: expected true or false, got a string (write true without "
               "quotes)",
               "t.conf:5: [limits] count: expected an integer, got a boolean",
               "t.conf:6: [limits] on: expected true or false, got an integer",
               "t.conf:7: [limits] list: expected a string, got an array",
               "t.conf:8: [limits] word: expected an integer, got a string",
               "t.conf:9: [limits] yes: expected a string, got a boolean (write it in double "
               "quotes: \"false\")",
               NULL});
    /* a mistaken key was read: it is not also unknown */
    config_check_unread(c);
    CU_ASSERT_EQUAL(config_error_count(c), 8);
    config_free(c);
}

static void test_range(void) {
    nb_config *c = load("[limits]\n"
                        "zero = 0\n"
                        "big = 2000\n"
                        "neg = -5\n"
                        "high = 11\n"
                        "edge_lo = 1\n"
                        "edge_hi = 1024\n");
    int64_t i = 0;
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "zero", 8, 1, 1024, &i), -1);
    CU_ASSERT_EQUAL(i, 8);
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "big", 8, 1, 1024, &i), -1);
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "neg", 8, 0, INT64_MAX, &i), -1);
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "high", 8, INT64_MIN, 10, &i), -1);
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "edge_lo", 8, 1, 1024, &i), 1);
    CU_ASSERT_EQUAL(i, 1);
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "edge_hi", 8, 1, 1024, &i), 1);
    CU_ASSERT_EQUAL(i, 1024);
    expect_errors(
        c, (const char *const[]){"t.conf:2: [limits] zero: 0 is out of range (1..1024)",
                                 "t.conf:3: [limits] big: 2000 is out of range (1..1024)",
                                 "t.conf:4: [limits] neg: -5 is out of range (at least 0)",
                                 "t.conf:5: [limits] high: 11 is out of range (at most 10)", NULL});
    config_free(c);
}

static void test_unknown_keys(void) {
    nb_config *c = load("[limits]\n"
                        "burts = 5\n"
                        "BURST = 5\n"
                        "max-message-bytes = 1\n"
                        "messages_per_secnod = 3\n"
                        "colour = \"red\"\n"
                        "burst = 1\n"
                        "[server]\n"
                        "lissen = \"x\"\n"
                        "[quiet]\n"
                        "k = 1\n");
    int64_t i;
    const char *s;
    config_get_int(c, "limits", "burst", 40, 0, 100, &i);
    config_get_int(c, "limits", "max_message_bytes", 1, 0, 100, &i);
    config_get_int(c, "limits", "messages_per_second", 1, 0, 100, &i);
    config_get_string(c, "server", "listen", "", &s);
    CU_ASSERT_EQUAL(config_has_section(c, "quiet"), 1);
    CU_ASSERT_EQUAL(config_error_count(c), 0);
    config_check_unread(c);
    expect_errors(
        c, (const char *const[]){
               "t.conf:2: [limits] burts: unknown key (did you mean 'burst'?)",
               "t.conf:3: [limits] BURST: unknown key (did you mean 'burst'?)",
               "t.conf:4: [limits] max-message-bytes: unknown key (did you mean "
               "'max_message_bytes'?)",
               "t.conf:5: [limits] messages_per_secnod: unknown key (did you mean "
               "'messages_per_second'?)",
               "t.conf:6: [limits] colour: unknown key (the keys of [limits] are: burst, "
               "max_message_bytes, messages_per_second; check the spelling)",
               "t.conf:9: [server] lissen: unknown key (did you mean 'listen'?)",
               "t.conf:11: [quiet] k: unknown key (nothing reads a key of [quiet]; check the "
               "spelling)",
               NULL});
    /* a second call adds nothing */
    config_check_unread(c);
    CU_ASSERT_EQUAL(config_error_count(c), 7);
    config_free(c);
}

static void test_transposed_letters(void) {
    /* one swap of neighbours counts as one edit: 'idr' is 'dir' */
    nb_config *c = load("[plugins]\nidr = \"x\"\nrid = \"y\"\n");
    const char *s;
    config_get_string(c, "plugins", "dir", NULL, &s);
    config_check_unread(c);
    expect_errors(c, (const char *const[]){
                         "t.conf:2: [plugins] idr: unknown key (did you mean 'dir'?)",
                         "t.conf:3: [plugins] rid: unknown key (the keys of [plugins] are: dir; "
                         "check the spelling)",
                         NULL});
    config_free(c);
}

static void test_unknown_sections(void) {
    nb_config *c = load("[limitz]\n"
                        "burst = 5\n"
                        "other = 1\n"
                        "[limits]\n"
                        "burst = 1\n"
                        "[empty]\n"
                        "# nothing here yet\n"
                        "[store-sqlite]\n"
                        "path = \"x\"\n"
                        "[declared]\n");
    int64_t i;
    config_get_int(c, "limits", "burst", 40, 0, 100, &i);
    config_has_section(c, "declared");
    config_has_section(c, "store-sqlit3"); /* absent: still a known name */
    config_check_unread(c);
    expect_errors(
        c, (const char *const[]){
               "t.conf:1: [limitz]: unknown section (did you mean [limits]?)",
               "t.conf:6: [empty]: unknown section (neither the server nor a loaded plugin reads "
               "it; check the spelling)",
               "t.conf:8: [store-sqlite]: unknown section (did you mean [store-sqlit3]?)", NULL});
    config_free(c);
}

static void test_config_error(void) {
    nb_config *c = load("[plugins]\n"
                        "codecs = [\"a\", \"a\"]\n"
                        "store = \"x\"\n");
    config_error(c, "plugins", "codecs", "\"%s\" is listed twice", "a");
    config_error(c, "plugins", "broker", "needs a value");
    config_error(c, "nowhere", "key", "absent section, count %d", 3);
    config_error(c, "plugins", NULL, "section-wide problem");
    config_error(c, "nowhere", NULL, "no such section");
    /* config_error marks the key read: store stays unread, codecs does not */
    config_check_unread(c);
    expect_errors(c, (const char *const[]){
                         "t.conf:2: [plugins] codecs: \"a\" is listed twice",
                         "t.conf: [plugins] broker: needs a value",
                         "t.conf: [nowhere] key: absent section, count 3",
                         "t.conf:1: [plugins]: section-wide problem",
                         "t.conf: [nowhere]: no such section",
                         ("t.conf:3: [plugins] store: unknown key (the keys of [plugins] are: "
                          "broker, codecs; check the spelling)"),
                         NULL});
    config_free(c);
}

static void test_error_order(void) {
    /* parse errors first, then the getters' in call order, then unknowns */
    nb_config *c = load("[s]\nb = \"x\"\na = \"y\"\nbad = 1x\nzz = 1\n");
    int64_t i;
    config_get_int(c, "s", "a", 0, 0, 9, &i);
    config_get_int(c, "s", "b", 0, 0, 9, &i);
    config_check_unread(c);
    expect_errors(c, (const char *const[]){
                         "t.conf:4: [s] bad: '1x' is not an integer (write \"1x\" if it is a "
                         "string)",
                         "t.conf:3: [s] a: expected an integer, got a string",
                         "t.conf:2: [s] b: expected an integer, got a string",
                         "t.conf:5: [s] zz: unknown key (the keys of [s] are: a, b; check the "
                         "spelling)",
                         NULL});
    config_free(c);
}

static void test_crlf_and_bom(void) {
    nb_config *c = load("\xEF\xBB\xBF[server]\r\n"
                        "listen = \"a\"\r\n"
                        "n = 5   \r\n"
                        "flag = true # c\r\n"
                        "list = [\"x\", \"y\"]\r\n"
                        "\r\n"
                        "bad = 1z\r\n"
                        "last = \"no newline at the end\"");
    expect_errors(c, (const char *const[]){
                         "t.conf:7: [server] bad: '1z' is not an integer (write \"1z\" if it is a "
                         "string)",
                         NULL});
    const char *s = NULL;
    int64_t i = 0;
    int b = 0;
    const char *const *arr;
    size_t n = 0;
    CU_ASSERT_EQUAL(config_get_string(c, "server", "listen", NULL, &s), 1);
    ASSERT_STR(s, "a");
    CU_ASSERT_EQUAL(config_get_int(c, "server", "n", 0, 0, 9, &i), 1);
    CU_ASSERT_EQUAL(i, 5);
    CU_ASSERT_EQUAL(config_get_bool(c, "server", "flag", 0, &b), 1);
    CU_ASSERT_EQUAL(b, 1);
    CU_ASSERT_EQUAL(config_get_string_array(c, "server", "list", &arr, &n), 1);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    ASSERT_STR(arr[1], "y");
    CU_ASSERT_EQUAL(config_get_string(c, "server", "last", NULL, &s), 1);
    ASSERT_STR(s, "no newline at the end");
    config_free(c);

    /* a BOM anywhere but the start is not skipped */
    expect_one("[s]\n\xEF\xBB\xBFk = 1\n", "t.conf:2: bad key name '\xEF\xBB\xBFk' (use letters, "
                                           "digits, '_' and '-')");
}

static void test_long_and_odd_text(void) {
    /* long user text is cut in messages, control bytes are masked */
    char text[512];
    snprintf(text, sizeof text, "[s]\nk = %s\n",
             "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij");
    expect_one(text, "t.conf:2: [s] k: 'abcdefghijabcdefghijabcdefghijabcdefghij...' is not a "
                     "value (strings take double quotes: "
                     "\"abcdefghijabcdefghijabcdefghijabcdefghij...\"; booleans are true or "
                     "false)");
    expect_one("[s]\nk = \"a\\\x01\"\n",
               "t.conf:2: [s] k: unknown escape '\\?' in a string (the escapes are \\\", \\\\, "
               "\\n, \\t)");
    /* key names are never cut */
    expect_one("[s]\nkey_with_a_very_long_name_of_more_than_forty_chars = x\n",
               "t.conf:2: [s] key_with_a_very_long_name_of_more_than_forty_chars: 'x' is not a "
               "value (strings take double quotes: \"x\"; booleans are true or false)");
    /* a very long string value is kept whole */
    size_t len = 100000;
    char *big = malloc(len + 16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    snprintf(big, len + 16, "[s]\nk = \"");
    memset(big + 9, 'x', len);
    memcpy(big + 9 + len, "\"\n", 3);
    nb_config *c = load(big);
    const char *s = NULL;
    CU_ASSERT_EQUAL(config_get_string(c, "s", "k", NULL, &s), 1);
    CU_ASSERT_EQUAL(s ? strlen(s) : 0, len);
    config_free(c);
    free(big);
}

static void test_many_keys(void) {
    /* many keys and sections: every one found, duplicates still caught */
    size_t nsec = 200, nkey = 100;
    size_t cap = nsec * nkey * 32 + 64;
    char *text = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    size_t at = 0;
    for (size_t s = 0; s < nsec; s++) {
        at += (size_t)snprintf(text + at, cap - at, "[sec%zu]\n", s);
        for (size_t k = 0; k < nkey; k++)
            at += (size_t)snprintf(text + at, cap - at, "key%zu = %zu\n", k, s * 1000 + k);
    }
    snprintf(text + at, cap - at, "[sec7]\nkey42 = 0\n");
    nb_config *c = load(text);
    free(text);
    CU_ASSERT_EQUAL(config_error_count(c), 2);
    int ok = 1;
    for (size_t s = 0; s < nsec; s++) {
        char sec[32], key[32];
        snprintf(sec, sizeof sec, "sec%zu", s);
        for (size_t k = 0; k < nkey; k++) {
            snprintf(key, sizeof key, "key%zu", k);
            int64_t v = -1;
            if (config_get_int(c, sec, key, -1, INT64_MIN, INT64_MAX, &v) != 1 ||
                v != (int64_t)(s * 1000 + k))
                ok = 0;
        }
    }
    CU_ASSERT_TRUE(ok);
    config_check_unread(c);
    CU_ASSERT_EQUAL(config_error_count(c), 2);
    if (config_error_count(c) != 2)
        show(c);
    config_free(c);
}

/* Random text made of the syntax's own characters: no crash, no leak, and
 * every message names the file. Run under ASan to be meaningful. */
static void test_garbage(void) {
    static const char *const bits[] = {
        "[",
        "]",
        "\"",
        "\\",
        "=",
        " ",
        "\t",
        "#",
        ",",
        "k",
        "s",
        "1",
        "-",
        "0",
        "\n",
        "\r",
        "true",
        "\xc3",
        "\xa9",
        "\x01",
        "[s]",
        "n",
        "t",
        "\"\\",
        "x=",
        "9223372036854775808",
        "\xEF\xBB\xBF",
        "[]",
        ".",
        "'",
        "k = [\"",
    };
    uint32_t seed = 12345;
    int ok = 1;
    for (int round = 0; round < 3000; round++) {
        char text[256];
        size_t at = 0;
        seed = seed * 1103515245u + 12345u;
        size_t parts = (seed >> 16) % 40;
        for (size_t p = 0; p < parts; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *b = bits[(seed >> 16) % (sizeof bits / sizeof bits[0])];
            size_t bl = strlen(b);
            if (at + bl >= sizeof text)
                break;
            memcpy(text + at, b, bl);
            at += bl;
        }
        text[at] = '\0';
        char err[64];
        nb_config *c = config_load_string("fz.conf", text, err, sizeof err);
        if (!c) {
            ok = 0;
            continue;
        }
        const char *s;
        int64_t i;
        int b;
        const char *const *arr;
        size_t n;
        config_get_string(c, "s", "k", NULL, &s);
        config_get_int(c, "s", "x", 0, 0, 10, &i);
        config_get_bool(c, "s", "t", 0, &b);
        config_get_string_array(c, "s", "n", &arr, &n);
        config_check_unread(c);
        for (size_t e = 0; e < config_error_count(c); e++)
            if (strncmp(config_error_at(c, e), "fz.conf", 7) != 0)
                ok = 0;
        CU_ASSERT_PTR_NULL(config_error_at(c, config_error_count(c)));
        config_free(c);
    }
    CU_ASSERT_TRUE(ok);
}

static void conf_path(char *out, size_t outlen, const char *name) {
    snprintf(out, outlen, "%s/%s", conf_dir, name);
}

static void test_files_on_disk(void) {
    char path[4200], err[512] = "", want[4400];
    conf_path(path, sizeof path, "good.conf");
    nb_config *c = config_load_file(path, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    ASSERT_STR(config_file_name(c), path);
    const char *s = NULL;
    int64_t i = 0;
    int b = 1;
    const char *const *arr;
    size_t n = 0;
    CU_ASSERT_EQUAL(config_get_string(c, "server", "listen", NULL, &s), 1);
    ASSERT_STR(s, "127.0.0.1:8080");
    CU_ASSERT_EQUAL(config_get_int(c, "server", "shards", 0, 1, 65536, &i), 1);
    CU_ASSERT_EQUAL(i, 64);
    CU_ASSERT_EQUAL(config_get_string(c, "server", "node_id", NULL, &s), 1);
    ASSERT_STR(s, "node # 1");
    CU_ASSERT_EQUAL(config_get_string_array(c, "plugins", "codecs", &arr, &n), 1);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(config_get_int(c, "limits", "burst", 0, 0, 100, &i), 1);
    CU_ASSERT_EQUAL(i, 40);
    CU_ASSERT_EQUAL(config_get_bool(c, "limits", "verbose", 1, &b), 1);
    CU_ASSERT_EQUAL(b, 0);
    config_check_unread(c);
    CU_ASSERT_EQUAL(config_error_count(c), 0);
    show(c);
    config_free(c);

    conf_path(path, sizeof path, "bad.conf");
    c = config_load_file(path, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    config_get_int(c, "limits", "burst", 0, 0, 2, &i);
    config_has_section(c, "server");
    config_check_unread(c);
    const char *whys[] = {
        "2: key 'orphan' comes before any [section] line (every key belongs to a section)",
        "4: [limits] rate: '12abc' is not an integer (write \"12abc\" if it is a string)",
        "6: [limits] burst: duplicate key (first set at line 5)",
        "7: [limits] name: unterminated string (the closing '\"' is missing)",
        "8: [limits]: duplicate section (first at line 3)",
        "9: bad section name 'bad name' (use letters, digits, '_', '-' and '.')",
        ("12: expected 'key = value', a [section] line or a # comment, found 'this line has no "
         "equals sign'"),
        "5: [limits] burst: 3 is out of range (0..2)",
    };
    size_t nwhy = sizeof whys / sizeof whys[0];
    CU_ASSERT_EQUAL(config_error_count(c), nwhy);
    for (size_t k = 0; k < nwhy && k < config_error_count(c); k++) {
        snprintf(want, sizeof want, "%s:%s", path, whys[k]);
        ASSERT_STR(config_error_at(c, k), want);
    }
    if (config_error_count(c) != nwhy)
        show(c);
    config_free(c);
}

static void test_file_failures(void) {
    char err[512] = "";
    nb_config *c = config_load_file("/nonexistent/dir/x.conf", err, sizeof err);
    CU_ASSERT_PTR_NULL(c);
    ASSERT_STR(err, "/nonexistent/dir/x.conf: cannot open: No such file or directory");
    c = config_load_file(conf_dir, err, sizeof err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot read"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, conf_dir));
    /* err may be NULL */
    CU_ASSERT_PTR_NULL(config_load_file("/nonexistent/x.conf", NULL, 0));
}

static void test_file_with_nul_and_crlf(void) {
    char path[] = "/tmp/nebula-test-config-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    static const char body[] = "\xEF\xBB\xBF[s]\r\na = 1\r\nb = \"x\0y\"\r\nc = 2\r\n";
    CU_ASSERT_EQUAL(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    char err[256] = "", want[512];
    nb_config *c = config_load_file(path, err, sizeof err);
    unlink(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(config_error_count(c), 1);
    snprintf(want, sizeof want, "%s:3: the line holds a NUL byte (is this a text file?)", path);
    if (config_error_count(c) == 1)
        ASSERT_STR(config_error_at(c, 0), want);
    int64_t i = 0;
    CU_ASSERT_EQUAL(config_get_int(c, "s", "a", 0, 0, 9, &i), 1);
    CU_ASSERT_EQUAL(config_get_int(c, "s", "c", 0, 0, 9, &i), 1);
    CU_ASSERT_EQUAL(i, 2);
    config_free(c);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        snprintf(conf_dir, sizeof conf_dir, "%s", argv[1]);
    } else {
        snprintf(conf_dir, sizeof conf_dir, "%s", __FILE__);
        char *slash = strrchr(conf_dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(conf_dir, sizeof conf_dir, ".");
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("config", NULL, NULL);
    CU_add_test(s, "good values of every type", test_good_values);
    CU_add_test(s, "absent keys give defaults", test_absent_and_defaults);
    CU_add_test(s, "empty input", test_empty_input);
    CU_add_test(s, "strings and escapes", test_strings_and_escapes);
    CU_add_test(s, "integers", test_integers);
    CU_add_test(s, "booleans", test_booleans);
    CU_add_test(s, "arrays", test_arrays);
    CU_add_test(s, "sections and keys", test_sections_and_keys);
    CU_add_test(s, "duplicates keep the first", test_duplicates_keep_first);
    CU_add_test(s, "a bad section line skips its keys", test_bad_section_skips_its_keys);
    CU_add_test(s, "many errors in one file", test_many_errors_in_one_file);
    CU_add_test(s, "type mismatch", test_type_mismatch);
    CU_add_test(s, "range", test_range);
    CU_add_test(s, "unknown keys and suggestions", test_unknown_keys);
    CU_add_test(s, "transposed letters", test_transposed_letters);
    CU_add_test(s, "unknown sections", test_unknown_sections);
    CU_add_test(s, "config_error", test_config_error);
    CU_add_test(s, "error order", test_error_order);
    CU_add_test(s, "CRLF and BOM", test_crlf_and_bom);
    CU_add_test(s, "long and odd text", test_long_and_odd_text);
    CU_add_test(s, "many keys and sections", test_many_keys);
    CU_add_test(s, "random garbage", test_garbage);
    CU_add_test(s, "files on disk", test_files_on_disk);
    CU_add_test(s, "files that cannot be read", test_file_failures);
    CU_add_test(s, "file with a NUL byte, BOM and CRLF", test_file_with_nul_and_crlf);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int failed = (int)CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
