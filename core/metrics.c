#include "metrics.h"

#include "buf.h"

#include <inttypes.h>
#include <math.h>
#include <nebula/host.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define MAX_METRICS 192

struct nb_metric {
    atomic_llong value;
    /* collected metrics */
    double (*collect)(void *arg);
    void *arg;
    /* histograms: counts per bucket (not cumulative; [n_bounds] is +Inf),
     * and the sum as the bits of a double */
    _Atomic uint64_t sum_bits;
    double bounds[NB_METRICS_MAX_BUCKETS];
    _Atomic uint64_t buckets[NB_METRICS_MAX_BUCKETS + 1];
    uint32_t n_bounds;
    uint32_t type;
    char name[96];
    char labels[96];
    char help[160];
};

static struct nb_metric registry[MAX_METRICS];
static atomic_uint registered;
static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;

static int name_ok(const char *name) {
    if (!name || !*name || strlen(name) >= sizeof registry[0].name ||
        (*name >= '0' && *name <= '9'))
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              (*p >= 'A' && *p <= 'Z') || *p == ':'))
            return 0;
    return 1;
}

/* Labels are written by the core (or escaped by it): refuse only what
 * would break the line. */
static int labels_ok(const char *labels) {
    return strlen(labels) < sizeof registry[0].labels && !strchr(labels, '\n') &&
           !strchr(labels, '}');
}

/* Lock held. The metric of that name and labels, or a new zeroed slot
 * (not yet counted), or NULL when full or the name has another type. */
static nb_metric *find_or_slot(uint32_t type, const char *name, const char *labels, int *fresh) {
    uint32_t n = atomic_load(&registered);
    *fresh = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(registry[i].name, name) != 0)
            continue;
        if (registry[i].type != type)
            return NULL; /* one family, one type */
        if (strcmp(registry[i].labels, labels) == 0)
            return &registry[i];
    }
    if (n >= MAX_METRICS)
        return NULL;
    nb_metric *m = &registry[n];
    atomic_init(&m->value, 0);
    for (uint32_t b = 0; b <= NB_METRICS_MAX_BUCKETS; b++)
        atomic_init(&m->buckets[b], 0);
    atomic_init(&m->sum_bits, 0);
    m->type = type;
    m->collect = NULL;
    m->arg = NULL;
    m->n_bounds = 0;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->labels, sizeof m->labels, "%s", labels);
    *fresh = 1;
    return m;
}

static nb_metric *add(uint32_t type, const char *name, const char *labels, const char *help,
                      double (*collect)(void *), void *arg, const double *bounds, uint32_t n) {
    if (!name_ok(name) || !labels_ok(labels))
        return NULL;
    pthread_mutex_lock(&register_lock);
    int fresh;
    nb_metric *m = find_or_slot(type, name, labels, &fresh);
    if (m && fresh) {
        snprintf(m->help, sizeof m->help, "%s", help ? help : "");
        /* HELP is one line; a backslash would start an escape. */
        for (char *p = m->help; *p; p++)
            if (*p == '\n' || *p == '\\')
                *p = ' ';
        m->collect = collect;
        m->arg = arg;
        m->n_bounds = n;
        for (uint32_t i = 0; i < n; i++)
            m->bounds[i] = bounds[i];
        atomic_store(&registered, atomic_load(&registered) + 1);
    }
    pthread_mutex_unlock(&register_lock);
    return m;
}

nb_metric *metrics_register(uint32_t type, const char *name, const char *help) {
    return metrics_register_labeled(type, name, "", help);
}

nb_metric *metrics_register_labeled(uint32_t type, const char *name, const char *labels,
                                    const char *help) {
    if (type != NB_METRIC_COUNTER && type != NB_METRIC_GAUGE)
        return NULL;
    return add(type, name, labels ? labels : "", help, NULL, NULL, NULL, 0);
}

nb_metric *metrics_register_histogram(const char *name, const char *help, const double *bounds,
                                      uint32_t n) {
    if (!bounds || n == 0 || n > NB_METRICS_MAX_BUCKETS)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return NULL;
    return add(NB_METRIC_HISTOGRAM, name, "", help, NULL, NULL, bounds, n);
}

nb_metric *metrics_register_collected(uint32_t type, const char *name, const char *labels,
                                      const char *help, double (*fn)(void *arg), void *arg) {
    if ((type != NB_METRIC_COUNTER && type != NB_METRIC_GAUGE) || !fn)
        return NULL;
    return add(type, name, labels ? labels : "", help, fn, arg, NULL, 0);
}

void metrics_add(nb_metric *m, int64_t delta) {
    if (m)
        atomic_fetch_add_explicit(&m->value, delta, memory_order_relaxed);
}

void metrics_set(nb_metric *m, int64_t value) {
    if (m)
        atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

int64_t metrics_value(const nb_metric *m) {
    if (!m)
        return 0;
    if (m->collect)
        return (int64_t)m->collect(m->arg);
    return atomic_load_explicit(&m->value, memory_order_relaxed);
}

static double bits_to_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

void metrics_observe(nb_metric *m, double value) {
    if (!m || m->type != NB_METRIC_HISTOGRAM || isnan(value))
        return;
    uint32_t b = 0;
    while (b < m->n_bounds && value > m->bounds[b])
        b++;
    atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
    /* Observations are sampled (a few thousand a second at most), so a
     * compare-and-swap loop on the sum costs nothing measurable. */
    uint64_t old = atomic_load_explicit(&m->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->sum_bits, &old,
                                                  double_to_bits(bits_to_double(old) + value),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

uint32_t metrics_histogram_read(const nb_metric *m, uint64_t *cumulative, double *bounds,
                                uint32_t cap, double *sum) {
    if (!m || m->type != NB_METRIC_HISTOGRAM || cap < m->n_bounds + 1)
        return 0;
    uint64_t total = 0;
    for (uint32_t b = 0; b <= m->n_bounds; b++) {
        total += atomic_load_explicit(&m->buckets[b], memory_order_relaxed);
        cumulative[b] = total;
        if (bounds)
            bounds[b] = b < m->n_bounds ? m->bounds[b] : INFINITY;
    }
    if (sum)
        *sum = bits_to_double(atomic_load_explicit(&m->sum_bits, memory_order_relaxed));
    return m->n_bounds + 1;
}

static const char *type_name(uint32_t type) {
    return type == NB_METRIC_COUNTER ? "counter" : type == NB_METRIC_GAUGE ? "gauge" : "histogram";
}

/* A sample value: integers as integers, the rest with enough digits. */
static void format_value(char *out, size_t len, double v) {
    if (isinf(v))
        snprintf(out, len, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        snprintf(out, len, "NaN");
    else if (v == floor(v) && fabs(v) < 9e15)
        snprintf(out, len, "%.0f", v);
    else
        snprintf(out, len, "%.15g", v);
}

static int put(nb_buf **b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put(nb_buf **b, const char *fmt, ...) {
    char line[640];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof line)
        return -1;
    return buf_append(b, line, (uint32_t)len) == NB_OK ? 0 : -1;
}

static int render_histogram(nb_buf **b, const nb_metric *m) {
    uint64_t cum[NB_METRICS_MAX_BUCKETS + 1] = {0};
    double bounds[NB_METRICS_MAX_BUCKETS + 1] = {0};
    double sum = 0;
    uint32_t n = metrics_histogram_read(m, cum, bounds, NB_METRICS_MAX_BUCKETS + 1, &sum);
    for (uint32_t i = 0; i < n; i++) {
        char le[32];
        format_value(le, sizeof le, bounds[i]);
        if (put(b, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", m->name, le, cum[i]) < 0)
            return -1;
    }
    char s[40];
    format_value(s, sizeof s, sum);
    return put(b, "%s_sum %s\n%s_count %" PRIu64 "\n", m->name, s, m->name, n ? cum[n - 1] : 0);
}

static int render_one(nb_buf **b, const nb_metric *m) {
    if (m->type == NB_METRIC_HISTOGRAM)
        return render_histogram(b, m);
    char v[40];
    if (m->collect)
        format_value(v, sizeof v, m->collect(m->arg));
    else
        snprintf(v, sizeof v, "%" PRId64, (int64_t)atomic_load(&m->value));
    if (m->labels[0])
        return put(b, "%s{%s} %s\n", m->name, m->labels, v);
    return put(b, "%s %s\n", m->name, v);
}

nb_buf *metrics_render(void) {
    nb_buf *b = buf_new(0, 16384);
    if (!b)
        return NULL;
    uint32_t n = atomic_load(&registered);
    for (uint32_t i = 0; i < n; i++) {
        const nb_metric *m = &registry[i];
        int seen = 0; /* its family was written with an earlier member */
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = strcmp(registry[j].name, m->name) == 0;
        if (seen)
            continue;
        int bad = put(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                      type_name(m->type)) < 0;
        for (uint32_t j = i; j < n && !bad; j++)
            if (strcmp(registry[j].name, m->name) == 0)
                bad = render_one(&b, &registry[j]) < 0;
        if (bad) {
            buf_unref(b);
            return NULL;
        }
    }
    return b;
}

void metrics_reset(void) {
    pthread_mutex_lock(&register_lock);
    atomic_store(&registered, 0);
    pthread_mutex_unlock(&register_lock);
}
