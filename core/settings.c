#include "settings.h"

#include "log.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* [limits] idle_timeout_ms: 0, or from a second to a week. */
#define IDLE_TIMEOUT_MIN_MS 1000
#define IDLE_TIMEOUT_MAX_MS 604800000

int settings_parse_listen(const char *text, char *host, size_t hostlen, uint32_t *port) {
    const char *colon;
    const char *h = text;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -1;
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - text);
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535)
        return -1;
    if (hlen == 0) {
        h = "0.0.0.0";
        hlen = 7;
    }
    if (hlen >= hostlen)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint32_t)p;
    return 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void config_dir(nb_config *cfg, char *out, size_t outlen);

/* Relative paths in a config file are relative to the file's folder, so
 * the server behaves the same whatever directory it is started from. */
static void resolve_path(char *out, size_t outlen, const char *base_dir, const char *path) {
    int n;
    if (path[0] == '/' || !base_dir || !*base_dir)
        n = snprintf(out, outlen, "%s", path);
    else
        n = snprintf(out, outlen, "%s/%s", base_dir, path);
    if (n < 0 || (size_t)n >= outlen)
        out[0] = '\0'; /* too long: treated as absent, and reported as such */
}

void settings_resolve(nb_config *cfg, const char *path, char *out, size_t outlen) {
    char base[PATH_MAX];
    config_dir(cfg, base, sizeof base);
    resolve_path(out, outlen, base, path);
}

static void config_dir(nb_config *cfg, char *out, size_t outlen) {
    const char *file = config_file_name(cfg);
    const char *slash = strrchr(file, '/');
    if (!slash) {
        snprintf(out, outlen, ".");
        return;
    }
    size_t n = (size_t)(slash - file);
    snprintf(out, outlen, "%.*s", (int)(n ? n : 1), file);
}

/* " (a relative path: resolved against FOLDER, the config file's folder)"
 * when `raw` is relative, else "": where a missing path was looked for. */
static const char *resolved_note(char *out, size_t outlen, const char *raw, const char *base) {
    out[0] = '\0';
    if (raw[0] != '/') {
        char cwd[PATH_MAX] = "";
        int here = strcmp(base, ".") == 0 && getcwd(cwd, sizeof cwd);
        snprintf(out, outlen, " (a relative path: resolved against %s, %s)", here ? cwd : base,
                 here ? "the working directory" : "the config file's folder");
    }
    return out;
}

/*
 * [plugins] dir: one folder or a list, looked up in order (a plugin
 * author's folder before the built-in one). Without the key: plugins/
 * beside the binary, else the installed folder.
 */
static void read_plugin_dirs(nb_config *cfg, nb_settings *s, const char *base,
                             const char *exe_dir) {
    const char *const *dirs = NULL;
    size_t n = 0;
    int rc = config_get_string_array(cfg, "plugins", "dir", &dirs, &n);
    if (rc != 1) {
        resolve_path(s->plugin_dirs[0], sizeof s->plugin_dirs[0], exe_dir, "plugins");
        if (!is_dir(s->plugin_dirs[0]) && is_dir(NEBULA_PLUGIN_INSTALL_DIR))
            resolve_path(s->plugin_dirs[0], sizeof s->plugin_dirs[0], NULL,
                         NEBULA_PLUGIN_INSTALL_DIR);
        s->n_plugin_dirs = 1;
        return;
    }
    if (n == 0)
        config_error(cfg, "plugins", "dir", "needs at least one folder, e.g. \"build/plugins\"");
    if (n > NB_MAX_PLUGIN_DIRS) {
        config_error(cfg, "plugins", "dir", "at most %d folders", NB_MAX_PLUGIN_DIRS);
        n = NB_MAX_PLUGIN_DIRS;
    }
    for (size_t i = 0; i < n; i++) {
        char *dir = s->plugin_dirs[s->n_plugin_dirs];
        resolve_path(dir, sizeof s->plugin_dirs[0], base, dirs[i]);
        if (!is_dir(dir)) {
            char note[PATH_MAX + 96];
            config_error(cfg, "plugins", "dir", "\"%s\" is not a directory%s", dirs[i],
                         resolved_note(note, sizeof note, dirs[i], base));
        }
        s->n_plugin_dirs++; /* kept: "no plugin ... in" names it too */
    }
}

uint32_t settings_plugin_dirs(const nb_settings *s, const char *dirs[NB_MAX_PLUGIN_DIRS]) {
    for (uint32_t i = 0; i < s->n_plugin_dirs; i++)
        dirs[i] = s->plugin_dirs[i];
    return s->n_plugin_dirs;
}

static uint32_t get_u32(nb_config *cfg, const char *sec, const char *key, int64_t def, int64_t min,
                        int64_t max) {
    int64_t v = def;
    config_get_int(cfg, sec, key, def, min, max, &v);
    return (uint32_t)v;
}

/* The default memory budget: 1 GiB, or a quarter of the machine's memory
 * when that is less (a small box must not be promised more than it has). */
static int64_t default_budget(void) {
    int64_t budget = INT64_C(1) << 30;
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && (int64_t)pages * page / 4 < budget)
        budget = (int64_t)pages * page / 4;
    return budget;
}

/* The limits that bound what hostile clients can cost (docs/HARDENING.md). */
static void read_hardening(nb_config *cfg, nb_settings *s) {
    s->bytes_per_second = get_u32(cfg, "limits", "bytes_per_second", 262144, 0, UINT32_MAX);
    s->bytes_burst = get_u32(cfg, "limits", "bytes_burst", 1 << 20, 1, UINT32_MAX);
    if (s->bytes_per_second && s->bytes_burst < s->max_message_bytes) {
        config_error(cfg, "limits", "bytes_burst",
                     "%u is less than max_message_bytes (%u): the largest message could never "
                     "pass",
                     s->bytes_burst, s->max_message_bytes);
        s->bytes_burst = s->max_message_bytes;
    }
    int64_t budget = default_budget();
    config_get_int(cfg, "limits", "memory_budget_bytes", budget, INT64_C(1) << 20, INT64_C(1) << 50,
                   &budget);
    s->memory_budget_bytes = (uint64_t)budget;
    /* History takes at most half the budget; by default an eighth. */
    int64_t total = budget / 8;
    if (config_get_int(cfg, "server", "history_bytes_total", total, 0, INT64_C(1) << 50, &total) ==
            1 &&
        total > budget / 2) {
        config_error(cfg, "server", "history_bytes_total",
                     "%" PRId64 " is more than half of [limits] memory_budget_bytes (%" PRId64 ")",
                     total, budget);
        total = budget / 2;
    }
    s->history_bytes_total = (uint64_t)total;
    s->connections_per_address =
        get_u32(cfg, "limits", "connections_per_address", 1024, 0, 10000000);
    s->messages_per_second_per_address =
        get_u32(cfg, "limits", "messages_per_second_per_address", 2000, 0, 100000000);
    s->burst_per_address =
        get_u32(cfg, "limits", "burst_per_address",
                (int64_t)s->messages_per_second_per_address * 2 + 1, 1, 200000000);
    static const char *const loopback[] = {"127.0.0.0/8", "::1"};
    const char *const *allow = loopback;
    size_t n = 2;
    const char *const *given = NULL;
    size_t n_given = 0;
    if (config_get_string_array(cfg, "limits", "address_allowlist", &given, &n_given) == 1) {
        allow = given; /* an empty array: no address is exempt */
        n = n_given;
    }
    if (n > NB_ALLOWLIST_MAX) {
        config_error(cfg, "limits", "address_allowlist", "at most %d entries", NB_ALLOWLIST_MAX);
        n = NB_ALLOWLIST_MAX;
    }
    for (size_t i = 0; i < n; i++) {
        if (peers_parse_cidr(allow[i], &s->allowlist[s->n_allowlist]) == 0)
            s->n_allowlist++;
        else
            config_error(cfg, "limits", "address_allowlist",
                         "\"%s\": expected an address or a network, e.g. \"10.0.0.0/8\" or "
                         "\"::1\"",
                         allow[i]);
    }
}

void settings_read(nb_config *cfg, nb_settings *s, const char *listen_override,
                   const char *exe_dir) {
    memset(s, 0, sizeof *s);
    char base[PATH_MAX];
    config_dir(cfg, base, sizeof base);

    /* [server] */
    const char *listen = "0.0.0.0:8080";
    config_get_string(cfg, "server", "listen", listen, &listen);
    if (listen_override)
        listen = listen_override;
    if (settings_parse_listen(listen, s->listen_host, sizeof s->listen_host, &s->listen_port) < 0) {
        if (listen_override)
            config_error(cfg, "server", "listen",
                         "--listen %s: expected HOST:PORT, e.g. 127.0.0.1:8080", listen_override);
        else
            config_error(cfg, "server", "listen",
                         "\"%s\": expected \"HOST:PORT\", e.g. \"0.0.0.0:8080\"", listen);
    }
    s->shards = get_u32(cfg, "server", "shards", 64, 1, 65536);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    if (cores > NB_MAX_WORKERS)
        cores = NB_MAX_WORKERS;
    s->io_threads = get_u32(cfg, "server", "io_threads", cores, 1, NB_MAX_WORKERS);
    const char *web_root = NULL;
    if (config_get_string(cfg, "server", "web_root", NULL, &web_root) == 1) {
        if (web_root[0])
            resolve_path(s->web_root, sizeof s->web_root, base, web_root);
        char note[PATH_MAX + 96];
        if (web_root[0] && !is_dir(s->web_root))
            config_error(cfg, "server", "web_root", "\"%s\" is not a directory%s", web_root,
                         resolved_note(note, sizeof note, web_root, base));
    } else {
        /* No key: the web/ folder beside the config, or the one in the
         * source tree the binary was built from (build/nebula). */
        char cand[PATH_MAX];
        resolve_path(cand, sizeof cand, base, "web");
        if (!is_dir(cand))
            resolve_path(cand, sizeof cand, exe_dir, "../web");
        if (is_dir(cand))
            resolve_path(s->web_root, sizeof s->web_root, NULL, cand);
    }
    char host[64] = "node";
    gethostname(host, sizeof host - 1);
    char default_id[128];
    snprintf(default_id, sizeof default_id, "%s-%ld", host, (long)getpid());
    const char *node_id = default_id;
    config_get_string(cfg, "server", "node_id", default_id, &node_id);
    snprintf(s->node_id, sizeof s->node_id, "%s", node_id);
    const char *level = "info";
    config_get_string(cfg, "server", "log_level", "info", &level);
    s->log_level = log_level_from_name(level);
    if (!s->log_level) {
        config_error(cfg, "server", "log_level",
                     "\"%s\": expected \"error\", \"warn\", \"info\" or \"debug\"", level);
        s->log_level = 3;
    }
    const char *format = "text";
    config_get_string(cfg, "server", "log_format", "text", &format);
    int f = log_format_from_name(format);
    if (f < 0)
        config_error(cfg, "server", "log_format", "\"%s\": expected \"text\" or \"json\"", format);
    s->log_format = f < 0 ? NB_LOG_FORMAT_TEXT : (uint32_t)f;
    s->log_queue_bytes = get_u32(cfg, "server", "log_queue_bytes", 1 << 20, 64 << 10, 256u << 20);
    s->log_repeat_window_ms = get_u32(cfg, "server", "log_repeat_window_ms", 10000, 0, 3600000);
    if (s->log_repeat_window_ms && s->log_repeat_window_ms < 100) {
        config_error(cfg, "server", "log_repeat_window_ms",
                     "%u is out of range (0 = off, or 100..3600000)", s->log_repeat_window_ms);
        s->log_repeat_window_ms = 10000;
    }
    s->history_per_room = get_u32(cfg, "server", "history_per_room", 50, 0, 100000);
    int64_t hb = 1 << 20;
    config_get_int(cfg, "server", "history_bytes_per_room", hb, 0, INT64_C(1) << 40, &hb);
    s->history_bytes_per_room = (uint64_t)hb;
    s->presence_batch_above = get_u32(cfg, "server", "presence_batch_above", 100, 1, 10000000);
    s->presence_interval_ms = get_u32(cfg, "server", "presence_interval_ms", 200, 1, 60000);
    s->shutdown_timeout_ms = get_u32(cfg, "server", "shutdown_timeout_ms", 5000, 0, 600000);
    /* The pipeline's queues (docs/CONFIG.md, "Queues"): each has a cap. */
    s->worker_mailbox_events =
        get_u32(cfg, "server", "worker_mailbox_events", 65536, 64, 16u << 20);
    s->writer_mailbox_events =
        get_u32(cfg, "server", "writer_mailbox_events", 65536, 64, 16u << 20);
    s->main_mailbox_events = get_u32(cfg, "server", "main_mailbox_events", 65536, 64, 16u << 20);
    s->store_linger_ms = get_u32(cfg, "server", "store_linger_ms", 10, 0, 1000);
    s->room_backlog_events = get_u32(cfg, "server", "room_backlog_events", 1024, 1, 1u << 20);

    /* [plugins] */
    read_plugin_dirs(cfg, s, base, exe_dir);
    s->transport = "transport-ws";
    config_get_string(cfg, "plugins", "transport", s->transport, &s->transport);
    const char *const *codecs = NULL;
    size_t n = 0;
    if (config_get_string_array(cfg, "plugins", "codecs", &codecs, &n) == 1) {
        if (n == 0)
            config_error(cfg, "plugins", "codecs",
                         "needs at least one codec, e.g. [\"codec-json\"]");
        if (n > NB_MAX_CODECS) {
            config_error(cfg, "plugins", "codecs", "at most %d codecs", NB_MAX_CODECS);
            n = NB_MAX_CODECS;
        }
        for (size_t i = 0; i < n; i++)
            s->codecs[i] = codecs[i];
        s->n_codecs = (uint32_t)n;
    } else {
        s->codecs[0] = "codec-json";
        s->n_codecs = 1;
    }
    s->store = "none";
    config_get_string(cfg, "plugins", "store", "none", &s->store);
    s->broker = "none";
    config_get_string(cfg, "plugins", "broker", "none", &s->broker);

    /* [limits] */
    s->max_message_bytes = get_u32(cfg, "limits", "max_message_bytes", 65536, 64, 64 << 20);
    s->messages_per_second = get_u32(cfg, "limits", "messages_per_second", 20, 0, 1000000);
    s->burst = get_u32(cfg, "limits", "burst", 40, 1, 1000000);
    s->rooms_per_connection = get_u32(cfg, "limits", "rooms_per_connection", 32, 1, 4096);
    s->max_errors = get_u32(cfg, "limits", "max_errors", 20, 1, 1000000);
    s->replay_messages = get_u32(cfg, "limits", "replay_messages", 1000, 1, 1000000);
    int64_t q = 4 << 20;
    config_get_int(cfg, "limits", "max_queued_bytes", q, 4096, INT64_C(1) << 40, &q);
    s->max_queued_bytes = (uint64_t)q;
    /* 0 turns it off. 1..999 is refused, not taken literally: it is most
     * likely seconds written where milliseconds are meant. */
    int64_t idle = 0;
    if (config_get_int(cfg, "limits", "idle_timeout_ms", 0, INT64_MIN, INT64_MAX, &idle) == 1 &&
        idle != 0 && (idle < IDLE_TIMEOUT_MIN_MS || idle > IDLE_TIMEOUT_MAX_MS)) {
        config_error(cfg, "limits", "idle_timeout_ms",
                     "%" PRId64 " is out of range (0 = off, or %d..%d)", idle, IDLE_TIMEOUT_MIN_MS,
                     IDLE_TIMEOUT_MAX_MS);
        idle = 0;
    }
    s->idle_timeout_ms = (uint32_t)idle;
    read_hardening(cfg, s);

    /* [admin]: the token guards operational data; a short one is refused. */
    const char *token = "";
    config_get_string(cfg, "admin", "token", "", &token);
    size_t tlen = strlen(token);
    int token_ok = tlen == 0 || (tlen >= NB_ADMIN_TOKEN_MIN && tlen <= NB_ADMIN_TOKEN_MAX);
    for (const char *p = token; *p && token_ok; p++)
        token_ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || strchr("-._~", *p);
    if (token_ok)
        snprintf(s->admin_token, sizeof s->admin_token, "%s", token);
    else
        config_error(cfg, "admin", "token",
                     "expected %d to %d characters of A-Z a-z 0-9 - . _ ~ (e.g. the output of "
                     "`openssl rand -hex 16`), or \"\" for no dashboard",
                     NB_ADMIN_TOKEN_MIN, NB_ADMIN_TOKEN_MAX);
}
