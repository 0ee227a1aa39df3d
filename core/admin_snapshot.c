#include "admin_snapshot.h"

#include "cluster.h"

#include "buf.h"
#include "clock.h"
#include "core_metrics.h"
#include "hub.h"

#include <inttypes.h>
#include <math.h>
#include <nebula/plugin.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct out {
    nb_buf *b;
    int failed;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof text || buf_append(&o->b, text, (uint32_t)n) != NB_OK)
        o->failed = 1;
}

/* A JSON string: node ids and plugin names come from the config. */
static void put_str(out *o, const char *s) {
    char text[300];
    size_t n = 0;
    text[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && n < sizeof text - 8; p++) {
        if (*p == '"' || *p == '\\')
            text[n++] = '\\';
        if (*p < 0x20)
            n += (size_t)snprintf(text + n, 7, "\\u%04x", *p);
        else
            text[n++] = (char)*p;
    }
    text[n++] = '"';
    if (buf_append(&o->b, text, (uint32_t)n) != NB_OK)
        o->failed = 1;
}

static void put_num_or_null(out *o, double v) {
    if (isfinite(v))
        put(o, "%.6g", v);
    else
        put(o, "null");
}

/* The p-quantile of the observations between two cumulative bucket sets,
 * interpolated within its bucket (as PromQL's histogram_quantile). */
static double quantile(double q, const uint64_t *now, const uint64_t *then, const double *bounds,
                       uint32_t n, uint64_t *count) {
    *count = now[n - 1] - (then ? then[n - 1] : 0);
    if (*count == 0)
        return NAN;
    double rank = q * (double)*count;
    uint64_t below = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t c = now[i] - (then ? then[i] : 0);
        if ((double)c >= rank) {
            if (i == n - 1) /* +Inf: the highest finite bound is all we know */
                return n > 1 ? bounds[n - 2] : NAN;
            double lo = i ? bounds[i - 1] : 0;
            double in = (double)(c - below);
            return in > 0 ? lo + (bounds[i] - lo) * ((rank - (double)below) / in) : bounds[i];
        }
        below = c;
    }
    return NAN;
}

/* The cluster as this node knows it. Until the broker reports the other
 * nodes' figures (the source /cluster lists them from), this node alone,
 * with the broker's count of the others beside it. */
/* Another node, as the broker's heartbeats describe it (GET /cluster's
 * table): its rate is not known here. */
static void put_peer(void *user, const char *id, uint32_t connections, uint32_t rooms) {
    out *o = user;
    put(o, ",{\"id\":");
    put_str(o, id);
    put(o, ",\"self\":false,\"connections\":%u,\"rooms\":%u,\"message_rate\":null}", connections,
        rooms);
}

static void put_cluster(out *o, nb_server *srv, int64_t connections, int64_t rooms, double rate) {
    put(o, ",\"cluster\":{\"source\":\"%s\",\"nodes\":[{\"id\":", srv->broker ? "broker" : "local");
    put_str(o, srv->settings.node_id);
    put(o, ",\"self\":true,\"connections\":%" PRId64 ",\"rooms\":%" PRId64 ",\"message_rate\":",
        connections, rooms);
    put_num_or_null(o, rate);
    put(o, "}");
    if (srv->broker)
        cluster_each_peer(put_peer, o);
    put(o, "]}");
}

nb_buf *admin_snapshot(nb_server *srv, nb_admin_window *win) {
    out o = {buf_new(NB_BUF_HEADROOM, 2048), 0};
    if (!o.b)
        return NULL;
    nb_process_stats ps;
    core_metrics_process(&ps);
    int64_t now_ms = clock_now_ms();
    int64_t connections = metrics_value(srv->m.connections);
    int64_t rooms = srv->hub ? (int64_t)hub_room_count(srv->hub) : 0;
    int64_t messages = metrics_value(srv->m.messages);

    uint64_t cum[NB_METRICS_MAX_BUCKETS + 1] = {0};
    double bounds[NB_METRICS_MAX_BUCKETS + 1] = {0};
    uint32_t nb =
        metrics_histogram_read(srv->m.broadcast, cum, bounds, NB_METRICS_MAX_BUCKETS + 1, NULL);
    double rate = NAN, p99 = NAN;
    uint64_t samples = 0;
    if (win) {
        nb_admin_point *pt = &win->points[win->next];
        const nb_admin_point *oldest =
            win->n ? &win->points[(win->next + NB_ADMIN_WINDOW - win->n) % NB_ADMIN_WINDOW] : NULL;
        int64_t mono = clock_mono_ms();
        if (oldest && mono > oldest->mono_ms) {
            rate =
                (double)(messages - oldest->messages) * 1000.0 / (double)(mono - oldest->mono_ms);
            if (nb)
                p99 = quantile(0.99, cum, oldest->buckets, bounds, nb, &samples) * 1000.0;
        }
        pt->mono_ms = mono;
        pt->messages = messages;
        memcpy(pt->buckets, cum, sizeof cum);
        win->next = (win->next + 1) % NB_ADMIN_WINDOW;
        if (win->n < NB_ADMIN_WINDOW)
            win->n++;
    }

    put(&o, "{\"ts\":%" PRId64 ",\"node\":{\"id\":", now_ms);
    put_str(&o, srv->settings.node_id);
    put(&o, ",\"version\":\"%s\",\"abi\":\"%d.%d\",\"started\":%.0f,\"uptime_s\":%.0f}",
        NEBULA_VERSION, NB_ABI_MAJOR, NB_ABI_MINOR, ps.start_time_seconds * 1000.0,
        (double)now_ms / 1000.0 - ps.start_time_seconds);
    put(&o, ",\"connections\":%" PRId64 ",\"rooms\":%" PRId64 ",\"threads\":%.0f", connections,
        rooms, ps.threads);
    put(&o, ",\"messages_total\":%" PRId64 ",\"message_rate\":", messages);
    put_num_or_null(&o, rate);
    /* errors_total: every error frame, all codes (nebula_protocol_errors_total) */
    put(&o, ",\"errors_total\":%" PRId64 ",\"p99_broadcast_ms\":",
        metrics_value(srv->m.protocol_errors));
    put_num_or_null(&o, p99);
    put(&o, ",\"broadcast_samples\":%" PRIu64, samples);
    put(&o, ",\"rss_bytes\":%.0f,\"open_fds\":%.0f,\"max_fds\":%.0f", ps.resident_bytes,
        ps.open_fds, isfinite(ps.max_fds) ? ps.max_fds : -1);
    put(&o, ",\"store\":{\"plugin\":");
    put_str(&o, srv->settings.store);
    put(&o, ",\"up\":%s}", !srv->writer ? "null" : atomic_load(&srv->store_up) ? "true" : "false");
    put(&o, ",\"broker\":{\"plugin\":");
    put_str(&o, srv->settings.broker);
    put(&o, ",\"up\":%s,\"other_nodes\":%" PRId64 "}",
        !srv->broker             ? "null"
        : context_broker_up(srv) ? "true"
                                 : "false",
        metrics_value(srv->m.cluster_nodes));
    put_cluster(&o, srv, connections, rooms, rate);
    put(&o, "}");
    if (o.failed) {
        buf_unref(o.b);
        return NULL;
    }
    return o.b;
}
