#include "metrics.h"

#include "buf.h"

#include <inttypes.h>
#include <nebula/host.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define MAX_METRICS 128

struct nb_metric {
    atomic_llong value;
    uint32_t type;
    char name[96];
    char help[160];
};

static struct nb_metric registry[MAX_METRICS];
static atomic_uint registered;
static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;

static int name_ok(const char *name) {
    if (!name || !*name || strlen(name) >= sizeof registry[0].name)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              (*p >= 'A' && *p <= 'Z') || *p == ':'))
            return 0;
    return 1;
}

nb_metric *metrics_register(uint32_t type, const char *name, const char *help) {
    if (!name_ok(name) || (type != NB_METRIC_COUNTER && type != NB_METRIC_GAUGE))
        return NULL;
    pthread_mutex_lock(&register_lock);
    nb_metric *m = NULL;
    uint32_t n = atomic_load(&registered);
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(registry[i].name, name) == 0)
            m = &registry[i];
    if (!m && n < MAX_METRICS) {
        m = &registry[n];
        atomic_init(&m->value, 0);
        m->type = type;
        snprintf(m->name, sizeof m->name, "%s", name);
        snprintf(m->help, sizeof m->help, "%s", help ? help : "");
        atomic_store(&registered, n + 1);
    }
    pthread_mutex_unlock(&register_lock);
    return m;
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
    return m ? atomic_load_explicit(&m->value, memory_order_relaxed) : 0;
}

nb_buf *metrics_render(void) {
    nb_buf *b = buf_new(0, 4096);
    if (!b)
        return NULL;
    uint32_t n = atomic_load(&registered);
    for (uint32_t i = 0; i < n; i++) {
        const nb_metric *m = &registry[i];
        char line[512];
        int len =
            snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %" PRId64 "\n", m->name,
                     m->help, m->name, m->type == NB_METRIC_COUNTER ? "counter" : "gauge", m->name,
                     (int64_t)atomic_load(&m->value));
        if (len < 0 || buf_append(&b, line, (uint32_t)len) != NB_OK) {
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
