#include "core_metrics.h"

#include "clock.h"
#include "hub.h"

#include <dirent.h>
#include <math.h>
#include <nebula/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The stable codes of docs/PROTOCOL.md, "Errors". Keep in step with it. */
static const char *const error_codes[] = {
    "bad_message",       "bad_json",           "bad_encoding",   "bad_field",    "missing_field",
    "unknown_type",      "too_large",          "bad_room",       "bad_username", "username_taken",
    "not_joined",        "already_joined",     "too_many_rooms", "rate_limited", "idle_timeout",
    "store_unavailable", "broker_unavailable", "busy",           "internal",     "other",
};
#define N_ERROR_CODES (sizeof error_codes / sizeof error_codes[0])

/* Set once at start-up, before any thread but main runs. */
static nb_metric *errors_by_code[N_ERROR_CODES];

/* Upper bounds of nebula_broadcast_duration_seconds: 50 µs to 2.5 s. */
static const double broadcast_bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                          0.0025,  0.005,  0.01,    0.025,  0.05,
                                          0.1,     0.25,   0.5,     1,      2.5};

static double process_start_s;

/* Fields of /proc/self/stat after the command name (which may hold
 * spaces and parentheses, hence the last ')'): field 3 is at index 0. */
static int read_stat_fields(char fields[][24], int want) {
    char text[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *p = strrchr(text, ')');
    if (!p)
        return 0;
    int got = 0;
    char *save = NULL;
    for (char *tok = strtok_r(p + 1, " ", &save); tok && got < want;
         tok = strtok_r(NULL, " ", &save))
        snprintf(fields[got++], sizeof fields[0], "%s", tok);
    return got;
}

static double count_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1; /* at the open-files limit, opendir itself fails */
    double n = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

void core_metrics_process(nb_process_stats *out) {
    memset(out, 0, sizeof *out);
    char fields[22][24];
    /* num_threads is field 20, rss (pages) field 24: indexes 17 and 21. */
    if (read_stat_fields(fields, 22) == 22) {
        out->threads = strtod(fields[17], NULL);
        out->resident_bytes = strtod(fields[21], NULL) * (double)sysconf(_SC_PAGESIZE);
    }
    out->open_fds = count_open_fds();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        out->max_fds = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        out->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    out->start_time_seconds = process_start_s;
}

/* ---- collected values ---------------------------------------------------- */

static double get_value(void *arg) {
    return (double)metrics_value(arg);
}

static double get_rooms(void *arg) {
    const nb_server *srv = arg;
    return srv->hub ? hub_room_count(srv->hub) : 0;
}

static double get_one(void *arg) {
    (void)arg;
    return 1;
}

static double get_process(void *arg) {
    nb_process_stats st;
    core_metrics_process(&st);
    const char *which = arg;
    if (strcmp(which, "rss") == 0)
        return st.resident_bytes;
    if (strcmp(which, "threads") == 0)
        return st.threads;
    if (strcmp(which, "fds") == 0)
        return st.open_fds < 0 ? NAN : st.open_fds;
    if (strcmp(which, "max_fds") == 0)
        return st.max_fds;
    if (strcmp(which, "cpu") == 0)
        return st.cpu_seconds;
    return st.start_time_seconds;
}

/* Process start: /proc/self/stat's starttime (clock ticks after boot)
 * plus the boot time; the moment of this call when /proc says nothing. */
static double start_time(void) {
    char fields[20][24];
    double boot = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "btime ", 6) == 0)
                boot = strtod(line + 6, NULL);
        fclose(f);
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (boot > 0 && hz > 0 && read_stat_fields(fields, 20) == 20)
        return boot + strtod(fields[19], NULL) / (double)hz;
    return (double)clock_now_ms() / 1000.0;
}

static void init_seeds(nb_server *srv) {
    nb_server_metrics *m = &srv->m;
    metrics_register_collected(NB_METRIC_GAUGE, "nebula_connected_clients", NULL,
                               "chat clients connected now (WebSocket sessions)", get_value,
                               m->connections);
    metrics_register_collected(NB_METRIC_GAUGE, "nebula_active_rooms", NULL,
                               "rooms with at least one member now", get_rooms, srv);
    metrics_register_collected(NB_METRIC_GAUGE, "nebula_threads", NULL,
                               "threads of the process (I/O, main, store writer, log)", get_process,
                               "threads");
    m->messages = metrics_register(NB_METRIC_COUNTER, "nebula_messages_total",
                                   "chat messages accepted from this node's clients");
    for (size_t i = 0; i < N_ERROR_CODES; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "code=\"%s\"", error_codes[i]);
        errors_by_code[i] =
            metrics_register_labeled(NB_METRIC_COUNTER, "nebula_errors_total", labels,
                                     "error frames sent to clients, by protocol error code");
    }
    m->broadcast = metrics_register_histogram(
        "nebula_broadcast_duration_seconds",
        "from accepting a message to its last frame handed to the kernel (sampled)",
        broadcast_bounds, sizeof broadcast_bounds / sizeof broadcast_bounds[0]);
    char labels[96];
    snprintf(labels, sizeof labels, "version=\"%s\",abi=\"%d.%d\"", NEBULA_VERSION, NB_ABI_MAJOR,
             NB_ABI_MINOR);
    metrics_register_collected(NB_METRIC_GAUGE, "nebula_build_info", labels,
                               "always 1; the labels name the build", get_one, NULL);
    process_start_s = start_time();
    metrics_register_collected(NB_METRIC_GAUGE, "process_start_time_seconds", NULL,
                               "start time of the process since the Unix epoch in seconds",
                               get_process, "start");
    metrics_register_collected(NB_METRIC_GAUGE, "process_resident_memory_bytes", NULL,
                               "resident memory size in bytes", get_process, "rss");
    metrics_register_collected(NB_METRIC_GAUGE, "process_open_fds", NULL, "open file descriptors",
                               get_process, "fds");
    metrics_register_collected(NB_METRIC_GAUGE, "process_max_fds", NULL, "the open-files limit",
                               get_process, "max_fds");
    metrics_register_collected(NB_METRIC_COUNTER, "process_cpu_seconds_total", NULL,
                               "user and system CPU time spent in seconds", get_process, "cpu");
}

void core_metrics_init(nb_server *srv) {
    nb_server_metrics *m = &srv->m;
    m->connections =
        metrics_register(NB_METRIC_GAUGE, "nebula_connections", "WebSocket connections open now");
    m->connections_total = metrics_register(NB_METRIC_COUNTER, "nebula_connections_total",
                                            "WebSocket connections accepted since start");
    m->rooms = metrics_register(NB_METRIC_GAUGE, "nebula_rooms", "rooms with members now");
    m->messages_received = metrics_register(NB_METRIC_COUNTER, "nebula_messages_received_total",
                                            "data messages received from clients");
    m->deliveries =
        metrics_register(NB_METRIC_COUNTER, "nebula_deliveries_total", "frames queued to clients");
    m->protocol_errors = metrics_register(NB_METRIC_COUNTER, "nebula_protocol_errors_total",
                                          "error frames sent to clients");
    m->rate_limited = metrics_register(NB_METRIC_COUNTER, "nebula_rate_limited_total",
                                       "messages refused by the rate limiter");
    m->slow_consumers = metrics_register(NB_METRIC_COUNTER, "nebula_slow_consumers_total",
                                         "connections closed for not reading fast enough");
    m->idle_timeouts = metrics_register(NB_METRIC_COUNTER, "nebula_idle_timeouts_total",
                                        "connections closed with 4408: no message within "
                                        "idle_timeout_ms");
    m->mailbox_refused =
        metrics_register(NB_METRIC_COUNTER, "nebula_mailbox_refused_total",
                         "events a full mailbox or room backlog refused (each answered: an "
                         "error to the sender, or its members closed with 4000)");
    init_seeds(srv);
}

/* Store and broker metrics exist only with a store or a broker. */
void core_metrics_init_plugins(nb_server *srv) {
    nb_server_metrics *m = &srv->m;
    if (srv->writer) {
        m->store_up = metrics_register(NB_METRIC_GAUGE, "nebula_store_up",
                                       "1 while the store's flushes succeed");
        m->store_appends = metrics_register(NB_METRIC_COUNTER, "nebula_store_appends_total",
                                            "messages handed to the store");
        m->store_flushes = metrics_register(NB_METRIC_COUNTER, "nebula_store_flushes_total",
                                            "batches flushed (group commits)");
        m->store_failures = metrics_register(NB_METRIC_COUNTER, "nebula_store_failures_total",
                                             "failed store appends, flushes and loads");
    }
    if (srv->broker) {
        m->broker_up = metrics_register(NB_METRIC_GAUGE, "nebula_broker_up",
                                        "1 while the broker reaches its bus");
        m->broker_publishes = metrics_register(NB_METRIC_COUNTER, "nebula_broker_publishes_total",
                                               "messages the broker published");
        m->broker_failures = metrics_register(NB_METRIC_COUNTER, "nebula_broker_failures_total",
                                              "publishes the broker could not make");
        m->cluster_nodes = metrics_register(NB_METRIC_GAUGE, "nebula_cluster_nodes",
                                            "other nodes the broker reports alive");
    }
}

void core_metrics_error(nb_server *srv, const char *code) {
    metrics_add(srv->m.protocol_errors, 1);
    size_t i = 0;
    while (i < N_ERROR_CODES - 1 && strcmp(error_codes[i], code) != 0)
        i++;
    metrics_add(errors_by_code[i], 1);
}
