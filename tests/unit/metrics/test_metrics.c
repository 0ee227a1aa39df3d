/*
 * Unit tests of the metrics registry (families, histograms, collected
 * values, what it refuses) and of the log line formats.
 */
#include "buf.h"
#include "log.h"
#include "log_impl.h"
#include "metrics.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <nebula/host.h>
#include <stdlib.h>
#include <string.h>

static char *render(void) {
    nb_buf *b = metrics_render();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char *s = malloc(b->len + 1);
    memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    buf_unref(b);
    return s;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_families(void) {
    metrics_reset();
    nb_metric *a = metrics_register_labeled(NB_METRIC_COUNTER, "t_errors_total", "code=\"a\"", "e");
    nb_metric *g = metrics_register(NB_METRIC_GAUGE, "t_gauge", "g");
    nb_metric *b = metrics_register_labeled(NB_METRIC_COUNTER, "t_errors_total", "code=\"b\"", "e");
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(b);
    CU_ASSERT_PTR_NOT_EQUAL(a, b);
    /* the same name and labels: the same metric */
    CU_ASSERT_PTR_EQUAL(
        metrics_register_labeled(NB_METRIC_COUNTER, "t_errors_total", "code=\"a\"", "e"), a);
    /* one family, one type */
    CU_ASSERT_PTR_NULL(
        metrics_register_labeled(NB_METRIC_GAUGE, "t_errors_total", "code=\"c\"", ""));
    metrics_add(b, 3);
    metrics_set(g, -2);
    char *s = render();
    CU_ASSERT_EQUAL(count(s, "# TYPE t_errors_total counter\n"), 1);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "t_errors_total{code=\"a\"} 0\nt_errors_total{code=\"b\"} 3\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "t_gauge -2\n"));
    free(s);
}

static void test_refused(void) {
    metrics_reset();
    CU_ASSERT_PTR_NULL(metrics_register(NB_METRIC_GAUGE, "9lives", ""));
    CU_ASSERT_PTR_NULL(metrics_register(NB_METRIC_GAUGE, "a-b", ""));
    CU_ASSERT_PTR_NULL(metrics_register(NB_METRIC_GAUGE, "", ""));
    CU_ASSERT_PTR_NULL(metrics_register(7, "t_x", ""));
    CU_ASSERT_PTR_NULL(metrics_register_labeled(NB_METRIC_GAUGE, "t_x", "a=\"}\"", ""));
    double up[] = {1, 2, 2};
    CU_ASSERT_PTR_NULL(metrics_register_histogram("t_h", "", up, 3));
    double inf[] = {1, INFINITY};
    CU_ASSERT_PTR_NULL(metrics_register_histogram("t_h", "", inf, 2));
    CU_ASSERT_PTR_NULL(metrics_register_histogram("t_h", "", up, 0));
    /* a HELP text stays on one line */
    CU_ASSERT_PTR_NOT_NULL(metrics_register(NB_METRIC_GAUGE, "t_help", "two\nlines\\"));
    char *s = render();
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# HELP t_help two lines \n"));
    free(s);
}

static void test_histogram(void) {
    metrics_reset();
    double bounds[] = {0.001, 0.01, 0.1};
    nb_metric *h = metrics_register_histogram("t_seconds", "h", bounds, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    metrics_observe(h, 0.0005);
    metrics_observe(h, 0.001); /* on a bound: counted in it (le) */
    metrics_observe(h, 0.05);
    metrics_observe(h, 7);
    metrics_observe(h, NAN); /* ignored */
    uint64_t cum[4];
    double sum = 0;
    CU_ASSERT_EQUAL(metrics_histogram_read(h, cum, NULL, 4, &sum), 4);
    CU_ASSERT_EQUAL(cum[0], 2);
    CU_ASSERT_EQUAL(cum[1], 2);
    CU_ASSERT_EQUAL(cum[2], 3);
    CU_ASSERT_EQUAL(cum[3], 4);
    CU_ASSERT_DOUBLE_EQUAL(sum, 7.0515, 1e-9);
    char *s = render();
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "# TYPE t_seconds histogram\n"
                                     "t_seconds_bucket{le=\"0.001\"} 2\n"
                                     "t_seconds_bucket{le=\"0.01\"} 2\n"
                                     "t_seconds_bucket{le=\"0.1\"} 3\n"
                                     "t_seconds_bucket{le=\"+Inf\"} 4\n"
                                     "t_seconds_sum 7.0515\n"
                                     "t_seconds_count 4\n"));
    free(s);
}

static double forty_two(void *arg) {
    (void)arg;
    return 42.5;
}

static void test_collected(void) {
    metrics_reset();
    nb_metric *m =
        metrics_register_collected(NB_METRIC_GAUGE, "t_collected", "v=\"1\"", "c", forty_two, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(metrics_value(m), 42);
    char *s = render();
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "t_collected{v=\"1\"} 42.5\n"));
    free(s);
    metrics_reset();
}

static void test_log_lines(void) {
    char line[LOG_LINE_MAX + 256];
    log_set_format(NB_LOG_FORMAT_TEXT);
    size_t n = log_format_line(line, sizeof line, 2, "core", "full", 0, 0);
    line[n] = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " warn  [core] full\n"));
    n = log_format_line(line, sizeof line, 3, "core", "again", 37, 10000);
    line[n] = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "again (37 more like this in the last 10 s)\n"));

    log_set_format(NB_LOG_FORMAT_JSON);
    n = log_format_line(line, sizeof line, 1, "x\"y", "a\tb\\c\x01", 2, 1500);
    line[n] = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"level\":\"error\",\"origin\":\"x\\\"y\","
                                        "\"msg\":\"a\\u0009b\\\\c\\u0001 (2 more like this in "
                                        "the last 1.5 s)\",\"suppressed\":2}\n"));
    /* A message longer than a line is cut, and the object still closes. */
    char *big = malloc(3 * LOG_LINE_MAX);
    memset(big, '"', 3 * LOG_LINE_MAX - 1);
    big[3 * LOG_LINE_MAX - 1] = '\0';
    n = log_format_line(line, sizeof line, 3, "core", big, 0, 0);
    CU_ASSERT(n <= sizeof line);
    CU_ASSERT_EQUAL(line[n - 1], '\n');
    CU_ASSERT_EQUAL(line[n - 2], '}');
    CU_ASSERT_EQUAL(line[n - 3], '"');
    free(big);
    log_set_format(NB_LOG_FORMAT_TEXT);
    CU_ASSERT_EQUAL(log_format_from_name("json"), NB_LOG_FORMAT_JSON);
    CU_ASSERT_EQUAL(log_format_from_name("JSON"), -1);
}

int main(void) {
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
    CU_add_test(s, "labeled families", test_families);
    CU_add_test(s, "what the registry refuses", test_refused);
    CU_add_test(s, "histograms", test_histogram);
    CU_add_test(s, "collected values", test_collected);
    CU_add_test(s, "log line formats", test_log_lines);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int failed = (int)CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
