/*
 * main.c — the command line: read the config, check it, run the server.
 */
#include "config.h"
#include "log.h"
#include "server.h"
#include "settings.h"

#include <getopt.h>
#include <limits.h>
#include <nebula/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "Usage: nebula [-c FILE] [--listen HOST:PORT] [--check-config] [--log-level LEVEL]\n"
            "       nebula --version | --help\n"
            "\n"
            "A WebSocket chat server whose transport, codecs, stores and brokers are plugins.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE     read FILE (default: ./nebula.conf; built-in defaults if\n"
            "                        there is none, with history in ./data/nebula.db)\n"
            "  -l, --listen H:P      listen on H:P, overriding [server] listen\n"
            "  -t, --check-config    check the config and the plugins it names, print every\n"
            "                        mistake as FILE:LINE, and exit (0 = valid)\n"
            "      --log-level L     error, warn, info or debug (overrides [server] log_level)\n"
            "  -V, --version         print the version and the plugin ABI, and exit\n"
            "  -h, --help            print this help, and exit\n"
            "\n"
            "Signals: SIGTERM or SIGINT stops taking messages, flushes the store, closes every\n"
            "connection with 1001 (1012 with a broker) and exits 0; a second signal exits at\n"
            "once with 128 + its number (143 for SIGTERM). [server] shutdown_timeout_ms\n"
            "bounds the whole shutdown.\n"
            "Endpoints: / (browser client), /ws (WebSocket), /healthz, /readyz, /metrics.\n"
            "Docs: docs/CONFIG.md, docs/PROTOCOL.md, docs/PLUGIN_ABI.md.\n");
}

static void exe_dir(const char *argv0, char *out, size_t outlen) {
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0)
        path[n] = '\0';
    else
        snprintf(path, sizeof path, "%s", argv0);
    char *slash = strrchr(path, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(path, sizeof path, ".");
    snprintf(out, outlen, "%s", path);
}

/* The config without a file: every key at its default, except that
 * history is kept, as with the shipped nebula.conf, in data/nebula.db
 * under the working directory (store-sqlite logs the full path). */
static const char builtin_config[] = "[plugins]\n"
                                     "store = \"store-sqlite\"\n"
                                     "[store-sqlite]\n"
                                     "path = \"data/nebula.db\"\n";

static int report_config(const nb_config *cfg) {
    size_t n = config_error_count(cfg);
    for (size_t i = 0; i < n; i++)
        log_error("%s", config_error_at(cfg, i));
    return n ? -1 : 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"check-config", no_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    const char *listen = NULL;
    const char *level = NULL;
    int check_only = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:l:tVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 't':
            check_only = 1;
            break;
        case 'L':
            level = optarg;
            break;
        case 'V':
            printf("nebula %s (plugin ABI %d.%d)\n", NEBULA_VERSION, NB_ABI_MAJOR, NB_ABI_MINOR);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "nebula: option %s needs a value (see nebula --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "nebula: unknown option %s (see nebula --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    /* `nebula --check-config FILE` names the file without -c. */
    if (optind < argc && check_only && !config_path)
        config_path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "nebula: unexpected argument %s (see nebula --help)\n", argv[optind]);
        return 2;
    }
    if (level) {
        uint32_t l = log_level_from_name(level);
        if (!l) {
            fprintf(stderr, "nebula: --log-level %s: expected error, warn, info or debug\n", level);
            return 2;
        }
        log_set_level(l);
    }

    char err[512];
    nb_config *cfg;
    if (config_path) {
        cfg = config_load_file(config_path, err, sizeof err);
    } else if (access("nebula.conf", F_OK) == 0) {
        config_path = "nebula.conf";
        cfg = config_load_file(config_path, err, sizeof err);
    } else {
        config_path = "(built-in defaults)";
        cfg = config_load_string(config_path, builtin_config, err, sizeof err);
    }
    if (!cfg) {
        log_error("%s", err);
        return 1;
    }

    char dir[PATH_MAX];
    exe_dir(argv[0], dir, sizeof dir);
    nb_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        config_free(cfg);
        return 1;
    }
    nb_settings *st = &srv->settings;
    settings_read(cfg, st, listen, dir);
    /* --check-config prints problems only (warnings and errors), then OK:
     * the info lines of a start would bury them. */
    if (!level)
        log_set_level(check_only && st->log_level > 2 ? 2 : st->log_level);
    log_info("config %s", config_path);

    /* Plugins are loaded and created even when the core's keys have
     * mistakes, so that their keys are read too and one run reports every
     * mistake in the file. server_init clears *srv: pass the settings. */
    nb_settings keep = *st;
    int init_failed = server_init(srv, cfg, &keep);
    config_check_unread(cfg);
    int rc = 0;
    if (report_config(cfg) != 0 || init_failed)
        rc = 1;
    else if (check_only)
        printf("%s: OK\n", config_path);
    else
        rc = server_run(srv);
    server_free(srv);
    if (rc && check_only)
        fprintf(stderr, "%s: %zu problem(s) found\n", config_path,
                config_error_count(cfg) + server_plugin_failures(srv));
    free(srv);
    config_free(cfg);
    return rc;
}
