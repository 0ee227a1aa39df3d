/*
 * fuzz_config.c — the config parser (core/config.c) on arbitrary file text,
 * through both entry points: config_load_file (the input written to a
 * memfd, read back through /proc/self/fd/N, so NUL bytes and the file
 * reader are covered) and, when the text holds no NUL, config_load_string.
 * Then the getters are called the way settings.c calls them, and unread
 * keys are reported, as `nebula --check-config` does.
 *
 * Invariants: no crash, no leak; a file that was read always yields a
 * config; every error names the file and a line that exists
 * ("NAME:LINE: ..."); messages hold no control bytes (user text in them is
 * quoted through a sanitising snippet); both entry points report the same
 * errors for the same text.
 */
#include "config.h"
#include "fuzz.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NAME "fuzz.conf"

static int memfd = -1;
static char memfd_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    memfd = memfd_create("fuzz-config", MFD_CLOEXEC);
    if (memfd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    return 0;
}

/* A getter's promise: 1 with a value of the right kind, else the default. */
static void get_int(nb_config *cfg, const char *sec, const char *key, int64_t def, int64_t min,
                    int64_t max) {
    int64_t v = def - 1;
    int rc = config_get_int(cfg, sec, key, def, min, max, &v);
    FUZZ_CHECK(rc == 1 || rc == 0 || rc == -1);
    FUZZ_CHECK(rc == 1 ? v >= min && v <= max : v == def);
}

static void get_string(nb_config *cfg, const char *sec, const char *key, const char *def) {
    const char *v = "unset";
    int rc = config_get_string(cfg, sec, key, def, &v);
    FUZZ_CHECK(rc == 1 || rc == 0 || rc == -1);
    FUZZ_CHECK(rc == 1 ? v != NULL : v == def);
}

/* Every key the core reads (core/settings.c), and a plugin's. */
static void read_like_the_core(nb_config *cfg) {
    get_string(cfg, "server", "listen", "0.0.0.0:8080");
    get_int(cfg, "server", "shards", 64, 1, 65536);
    get_int(cfg, "server", "io_threads", 2, 1, 64);
    get_string(cfg, "server", "web_root", NULL);
    get_string(cfg, "server", "node_id", "node");
    get_string(cfg, "server", "log_level", "info");
    get_int(cfg, "server", "history_per_room", 50, 0, 100000);
    get_int(cfg, "server", "presence_batch_above", 100, 1, 10000000);
    get_int(cfg, "server", "presence_interval_ms", 200, 1, 60000);
    get_int(cfg, "server", "shutdown_timeout_ms", 5000, 0, 600000);
    get_string(cfg, "plugins", "dir", NULL);
    get_string(cfg, "plugins", "transport", "transport-ws");
    const char *const *arr = NULL;
    size_t n = 0;
    int rc = config_get_string_array(cfg, "plugins", "codecs", &arr, &n);
    if (rc == 1) {
        FUZZ_CHECK(arr != NULL); /* never NULL, even for [] */
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(arr[i] != NULL);
    } else {
        FUZZ_CHECK(arr == NULL && n == 0);
    }
    get_string(cfg, "plugins", "store", "none");
    get_string(cfg, "plugins", "broker", "none");
    get_int(cfg, "limits", "max_message_bytes", 65536, 64, 64 << 20);
    get_int(cfg, "limits", "messages_per_second", 20, 0, 1000000);
    get_int(cfg, "limits", "burst", 40, 1, 1000000);
    get_int(cfg, "limits", "rooms_per_connection", 32, 1, 4096);
    get_int(cfg, "limits", "max_errors", 20, 1, 1000000);
    get_int(cfg, "limits", "max_queued_bytes", 4 << 20, 4096, INT64_C(1) << 40);
    get_int(cfg, "limits", "idle_timeout_ms", 0, INT64_MIN, INT64_MAX);
    int b = -1;
    rc = config_get_bool(cfg, "transport-ws", "enabled", 1, &b);
    FUZZ_CHECK(rc == 1 ? b == 0 || b == 1 : b == 1);
    get_int(cfg, "transport-ws", "max_header_bytes", 8192, 1024, 65536);
    get_int(cfg, "transport-ws", "ping_interval_ms", 30000, 0, INT64_MAX);
    get_int(cfg, "transport-ws", "pong_timeout_ms", -1, INT64_MIN, 86400000);
    config_has_section(cfg, "codec-json");
    config_check_unread(cfg);
}

/* "NAME:LINE: ..." with 1 <= LINE <= lines, and printable. */
static void check_errors(const nb_config *cfg, const char *name, size_t lines) {
    size_t nlen = strlen(name);
    for (size_t i = 0; i < config_error_count(cfg); i++) {
        const char *e = config_error_at(cfg, i);
        FUZZ_CHECK(e != NULL);
        for (const char *p = e; *p; p++)
            FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7F);
        FUZZ_CHECK(strncmp(e, name, nlen) == 0 && e[nlen] == ':');
        const char *p = e + nlen + 1;
        size_t line = 0;
        FUZZ_CHECK(*p >= '1' && *p <= '9');
        while (*p >= '0' && *p <= '9' && line <= lines)
            line = line * 10 + (size_t)(*p++ - '0');
        FUZZ_CHECK(line >= 1 && line <= lines);
        FUZZ_CHECK(p[0] == ':' && p[1] == ' ');
    }
    FUZZ_CHECK(config_error_at(cfg, config_error_count(cfg)) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';

    /* From a file. */
    FUZZ_CHECK(ftruncate(memfd, 0) == 0);
    FUZZ_CHECK(pwrite(memfd, data, size, 0) == (ssize_t)size);
    char err[256] = "";
    nb_config *from_file = config_load_file(memfd_path, err, sizeof err);
    FUZZ_CHECK(from_file != NULL);
    FUZZ_CHECK(strcmp(config_file_name(from_file), memfd_path) == 0);

    /* From memory, when it can hold the text. */
    if (!memchr(data, '\0', size)) {
        char *text = malloc(size + 1);
        FUZZ_CHECK(text != NULL);
        memcpy(text, data, size);
        text[size] = '\0';
        nb_config *from_string = config_load_string(NAME, text, err, sizeof err);
        free(text);
        FUZZ_CHECK(from_string != NULL);
        /* The same parse: the same errors, bar the file name. */
        size_t plen = strlen(memfd_path);
        FUZZ_CHECK(config_error_count(from_string) == config_error_count(from_file));
        for (size_t i = 0; i < config_error_count(from_file); i++) {
            const char *a = config_error_at(from_file, i), *b = config_error_at(from_string, i);
            FUZZ_CHECK(strcmp(a + plen, b + strlen(NAME)) == 0);
        }
        read_like_the_core(from_string);
        check_errors(from_string, NAME, lines);
        config_free(from_string);
    }

    read_like_the_core(from_file);
    check_errors(from_file, memfd_path, lines);
    config_free(from_file);
    return 0;
}
