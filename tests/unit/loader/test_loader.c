/*
 * Unit tests of core/loader.c against real shared objects: the fixture
 * plugins of tests/fixtures/ (each broken in exactly one way) and the real
 * codec-json and transport-ws. Every refusal is checked for its return
 * code, the absence of side effects (output zeroed, file closed) and its
 * message: one line, "<path>: <reason>", with both versions on a version
 * mismatch.
 *
 * argv[1]: the fixtures build folder; argv[2]: codec-json.so;
 * argv[3]: transport-ws.so.
 */
#include "buf.h"
#include "loader.h"

#include <CUnit/Basic.h>
#include <dlfcn.h>
#include <limits.h>
#include <nebula/host.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *fixture_dir;
static const char *codec_json_path;
static const char *transport_ws_path;

/* ---- a host table for the plugins whose create() we call --------------- */

static char last_log[512];
static uint32_t last_log_level;

static void t_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void t_log(struct nb_plugin_ctx *ctx, uint32_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
    vsnprintf(last_log, sizeof last_log, fmt, ap);
    va_end(ap);
    last_log_level = level;
}

static void *t_alloc(uint64_t size) {
    return size > SIZE_MAX ? NULL : malloc((size_t)size);
}

static void t_free(void *p) {
    free(p);
}

static const nb_host host = {
    .struct_size = sizeof(nb_host),
    .abi_major = NB_ABI_MAJOR,
    .abi_minor = NB_ABI_MINOR,
    .log = t_log,
    .alloc = t_alloc,
    .free = t_free,
    .buf_new = buf_new,
    .buf_ref = buf_ref,
    .buf_unref = buf_unref,
    .buf_reserve = buf_reserve,
};

/* ---- helpers -------------------------------------------------------------- */

static void fixture_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s.so", fixture_dir, name);
}

static int all_zero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* Whether the file is still mapped in this process. */
static int is_loaded(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        return 0;
    dlclose(h); /* drop the reference RTLD_NOLOAD just took */
    return 1;
}

/*
 * Load fixture `name` as `kind` and expect a refusal whose message is one
 * line starting with "<path>: " and containing `part` and `part2` (either
 * may be NULL).
 */
static void expect_refusal(const char *name, uint32_t kind, const char *part, const char *part2) {
    char path[PATH_MAX], err[1024], prefix[PATH_MAX + 2];
    fixture_path(path, sizeof path, name);
    nb_loaded_plugin p;
    memset(&p, 0xa5, sizeof p);
    int rc = loader_open(fixture_dir, name, kind, &p, err, sizeof err);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(all_zero(&p, sizeof p));
    CU_ASSERT_PTR_NULL(strchr(err, '\n'));
    snprintf(prefix, sizeof prefix, "%s: ", path);
    CU_ASSERT_EQUAL(strncmp(err, prefix, strlen(prefix)), 0);
    const char *parts[] = {part, part2};
    for (size_t i = 0; i < 2; i++)
        if (parts[i] && !strstr(err, parts[i])) {
            fprintf(stderr, "\n  %s: message lacks \"%s\":\n  %s\n", name, parts[i], err);
            CU_FAIL("refusal message lacks an expected part");
        }
    /* A refused plugin does not stay mapped. */
    CU_ASSERT_FALSE(is_loaded(path));
}

/* ---- refusals ------------------------------------------------------------ */

static void test_missing_file(void) {
    char path[PATH_MAX], want[PATH_MAX + 64], err[1024];
    fixture_path(path, sizeof path, "fixture-missing");
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    nb_loaded_plugin p;
    CU_ASSERT_EQUAL(loader_open(fixture_dir, "fixture-missing", NB_KIND_CODEC, &p, err, sizeof err),
                    -1);
    CU_ASSERT_STRING_EQUAL(err, want);
}

static void test_directory(void) {
    char err[1024];
    nb_loaded_plugin p;
    CU_ASSERT_EQUAL(loader_open_path(fixture_dir, NB_KIND_CODEC, &p, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open: Is a directory"));
}

static void test_not_elf(void) {
    expect_refusal("fixture-not-elf", NB_KIND_CODEC, "not a Nebula plugin (not a shared object",
                   NULL);
}

static void test_no_entry(void) {
    char path[PATH_MAX], want[PATH_MAX + 64], err[1024];
    expect_refusal("fixture-no-entry", NB_KIND_CODEC, NULL, NULL);
    fixture_path(path, sizeof path, "fixture-no-entry");
    snprintf(want, sizeof want, "%s: not a Nebula plugin (no symbol nebula_plugin_entry)", path);
    nb_loaded_plugin p;
    CU_ASSERT_EQUAL(loader_open_path(path, NB_KIND_CODEC, &p, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, want);
}

static void test_undefined_symbol(void) {
    expect_refusal("fixture-undefined", NB_KIND_BROKER,
                   "cannot load: undefined symbol: core_internal_room_count", "-Wl,-z,defs");
}

static void test_major_mismatch(void) {
    char want[128];
    snprintf(want, sizeof want,
             "built for plugin ABI 2.0, this nebula speaks %d.%d (major differs): rebuild",
             NB_ABI_MAJOR, NB_ABI_MINOR);
    expect_refusal("fixture-major2", NB_KIND_CODEC, want, "pkg-config nebula-plugin");
}

static void test_newer_minor(void) {
    char want[128];
    snprintf(want, sizeof want,
             "built for plugin ABI %d.99, newer than this nebula's %d.%d: upgrade nebula",
             NB_ABI_MAJOR, NB_ABI_MAJOR, NB_ABI_MINOR);
    expect_refusal("fixture-minor99", NB_KIND_CODEC, want, NULL);
}

static void test_null_descriptor(void) {
    expect_refusal("fixture-null-desc", NB_KIND_CODEC,
                   "nebula_plugin_entry() returned NULL instead of a plugin descriptor", NULL);
}

static void test_descriptor_too_small(void) {
    expect_refusal("fixture-tiny-desc", NB_KIND_CODEC, "plugin descriptor is 8 bytes",
                   "too small to hold its ABI version");
    char want[96];
    snprintf(want, sizeof want, "plugin descriptor is %zu bytes, smaller than ABI 1.0 defines",
             offsetof(nb_plugin_desc, vtable));
    expect_refusal("fixture-short-desc", NB_KIND_CODEC, want, NULL);
}

static void test_wrong_kind(void) {
    expect_refusal("fixture-store", NB_KIND_CODEC,
                   "is a store plugin, but the [plugins] codecs slot needs a codec", NULL);
    expect_refusal("fixture-transport", NB_KIND_BROKER,
                   "is a transport plugin, but the [plugins] broker slot needs a broker", NULL);
    expect_refusal("fixture-kind9", NB_KIND_CODEC, "unknown plugin kind 9",
                   "the [plugins] codecs slot needs a codec");

    /* The real codec in the transport slot, exact text. */
    char want[PATH_MAX + 96], err[1024];
    snprintf(want, sizeof want,
             "%s: is a codec plugin, but the [plugins] transport slot needs a transport",
             codec_json_path);
    nb_loaded_plugin p;
    CU_ASSERT_EQUAL(loader_open_path(codec_json_path, NB_KIND_TRANSPORT, &p, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, want);
}

static void test_incomplete_descriptor(void) {
    expect_refusal("fixture-no-name", NB_KIND_CODEC, "plugin descriptor has no name", NULL);
    expect_refusal("fixture-no-create", NB_KIND_CODEC, "plugin descriptor has no create", NULL);
    expect_refusal("fixture-no-destroy", NB_KIND_CODEC, "plugin descriptor has no destroy", NULL);
    expect_refusal("fixture-no-vtable", NB_KIND_CODEC, "plugin descriptor has no vtable", NULL);
}

static void test_vtable_too_small(void) {
    char want[96];
    snprintf(want, sizeof want, "codec vtable is %zu bytes, too small",
             offsetof(nb_codec_vtable, encode));
    expect_refusal("fixture-short-vtable", NB_KIND_CODEC, want, NULL);
    snprintf(want, sizeof want, "store vtable is %zu bytes, too small",
             offsetof(nb_store_vtable, load));
    expect_refusal("fixture-short-store", NB_KIND_STORE, want, NULL);
}

static void test_vtable_function_missing(void) {
    expect_refusal("fixture-no-decode", NB_KIND_CODEC, "codec vtable has no decode", NULL);
    expect_refusal("fixture-broker-no-start", NB_KIND_BROKER, "broker vtable has no start", NULL);
}

static void test_bad_names(void) {
    char err[256];
    nb_loaded_plugin p;
    CU_ASSERT_EQUAL(
        loader_open(fixture_dir, "../plugins/codec-json", NB_KIND_CODEC, &p, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"../plugins/codec-json\" is not a plugin name"));
    CU_ASSERT_EQUAL(loader_open(fixture_dir, "", NB_KIND_CODEC, &p, err, sizeof err), -1);
    CU_ASSERT_EQUAL(
        loader_open(fixture_dir, "fixture-store.so", NB_KIND_STORE, &p, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"fixture-store.so\" is not a plugin name"));
    CU_ASSERT_EQUAL(loader_open(fixture_dir, NULL, NB_KIND_STORE, &p, err, sizeof err), -1);
    CU_ASSERT_EQUAL(loader_open_path("", NB_KIND_CODEC, &p, err, sizeof err), -1);
    CU_ASSERT_EQUAL(loader_open_path(codec_json_path, 0, &p, err, sizeof err), -1);
    CU_ASSERT_EQUAL(loader_open_path(codec_json_path, 5, &p, err, sizeof err), -1);
}

static void test_small_error_buffer(void) {
    char err[16];
    memset(err, 'x', sizeof err);
    nb_loaded_plugin p;
    CU_ASSERT_EQUAL(loader_open(fixture_dir, "fixture-major2", NB_KIND_CODEC, &p, err, sizeof err),
                    -1);
    CU_ASSERT_TRUE(memchr(err, '\0', sizeof err) != NULL);
    /* No buffer at all is allowed too. */
    CU_ASSERT_EQUAL(loader_open(fixture_dir, "fixture-major2", NB_KIND_CODEC, &p, NULL, 0), -1);
}

/* ---- successes ----------------------------------------------------------- */

static void test_codec_json(void) {
    char err[1024] = "";
    nb_loaded_plugin p;
    int rc = loader_open_path(codec_json_path, NB_KIND_CODEC, &p, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT_PTR_NOT_NULL(p.handle);
    CU_ASSERT_STRING_EQUAL(p.path, codec_json_path);
    CU_ASSERT_EQUAL(p.desc.abi_major, NB_ABI_MAJOR);
    CU_ASSERT_EQUAL(p.desc.kind, NB_KIND_CODEC);
    CU_ASSERT_STRING_EQUAL(p.desc.name, "codec-json");
    CU_ASSERT_PTR_NOT_NULL(p.desc.version);
    CU_ASSERT_PTR_NOT_NULL(p.desc.create);
    CU_ASSERT_PTR_NOT_NULL(p.desc.destroy);
    CU_ASSERT_PTR_EQUAL(p.desc.vtable, &p.vt);
    CU_ASSERT_STRING_EQUAL(p.vt.codec.subprotocol, "nebula.json.v1");
    CU_ASSERT_EQUAL(p.vt.codec.frame_kind, NB_FRAME_TEXT);

    /* The copies hold the plugin's own pointers. */
    nb_plugin_entry_fn entry;
    *(void **)&entry = dlsym(p.handle, NB_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        CU_FAIL("codec-json has no entry symbol");
        loader_close(&p);
        return;
    }
    const nb_plugin_desc *orig = entry();
    const nb_codec_vtable *ovt = orig->vtable;
    CU_ASSERT_PTR_NOT_EQUAL(&p.desc, orig);
    CU_ASSERT_PTR_EQUAL(p.desc.create, orig->create);
    CU_ASSERT_PTR_EQUAL(p.vt.codec.decode, ovt->decode);
    CU_ASSERT_PTR_EQUAL(p.vt.codec.release, ovt->release);
    CU_ASSERT_PTR_EQUAL(p.vt.codec.encode, ovt->encode);
    CU_ASSERT_EQUAL(p.vt.codec.struct_size, ovt->struct_size);

    loader_close(&p);
    CU_ASSERT_TRUE(all_zero(&p, sizeof p));
    loader_close(&p); /* closing twice is harmless */
}

static void test_every_kind_loads(void) {
    struct {
        const char *name;
        uint32_t kind;
    } cases[] = {{"fixture-transport", NB_KIND_TRANSPORT},
                 {"fixture-store", NB_KIND_STORE},
                 {"fixture-broker", NB_KIND_BROKER},
                 {"fixture-create-fails", NB_KIND_CODEC}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[1024] = "";
        nb_loaded_plugin p;
        int rc = loader_open(fixture_dir, cases[i].name, cases[i].kind, &p, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "\n  %s\n", err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc == 0) {
            CU_ASSERT_STRING_EQUAL(p.desc.name, cases[i].name);
            CU_ASSERT_EQUAL(p.desc.kind, cases[i].kind);
            CU_ASSERT_PTR_EQUAL(p.desc.vtable, &p.vt);
            loader_close(&p);
        }
    }
    char err[1024] = "";
    nb_loaded_plugin p;
    CU_ASSERT_EQUAL_FATAL(
        loader_open_path(transport_ws_path, NB_KIND_TRANSPORT, &p, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(p.vt.transport.start);
    CU_ASSERT_PTR_NOT_NULL(p.vt.transport.frame);
    loader_close(&p);
}

static void test_create_fails(void) {
    char err[1024];
    nb_loaded_plugin p;
    CU_ASSERT_EQUAL_FATAL(
        loader_open(fixture_dir, "fixture-create-fails", NB_KIND_CODEC, &p, err, sizeof err), 0);
    void *inst = &p;
    last_log[0] = '\0';
    CU_ASSERT_EQUAL(p.desc.create(&host, NULL, &inst), NB_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(inst);
    CU_ASSERT_EQUAL(last_log_level, NB_LOG_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(last_log, "always fails its create()"));
    loader_close(&p);
}

/* A plugin built from the frozen 1.0 headers loads and works. */
static void test_old_minor(void) {
    char err[1024] = "";
    nb_loaded_plugin p;
    int rc = loader_open(fixture_dir, "fixture-old-minor", NB_KIND_CODEC, &p, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(p.desc.abi_major, 1);
    CU_ASSERT_EQUAL(p.desc.abi_minor, 0);
    CU_ASSERT_TRUE(p.desc.struct_size <= sizeof(nb_plugin_desc));
    CU_ASSERT_TRUE(p.vt.codec.struct_size <= sizeof(nb_codec_vtable));
    /* Whatever the core added after the plugin's vtable reads as zero. */
    CU_ASSERT_TRUE(all_zero((const char *)&p.vt + p.vt.codec.struct_size,
                            sizeof p.vt - p.vt.codec.struct_size));
    CU_ASSERT_STRING_EQUAL(p.vt.codec.subprotocol, "fixture.old.v1");

    void *inst = NULL;
    CU_ASSERT_EQUAL_FATAL(p.desc.create(&host, NULL, &inst), NB_OK);
    static const char in[] = "message:general:hello";
    nb_msg m = {.struct_size = sizeof m};
    nb_decode_error de = {.struct_size = sizeof de};
    CU_ASSERT_EQUAL_FATAL(
        p.vt.codec.decode(inst, (const uint8_t *)in, (uint32_t)strlen(in), &m, &de), NB_OK);
    CU_ASSERT_EQUAL(m.type, NB_MSG_MESSAGE);
    CU_ASSERT_EQUAL(m.room.len, 7);
    CU_ASSERT_EQUAL(memcmp(m.room.ptr, "general", 7), 0);
    CU_ASSERT_EQUAL(m.content.len, 5);
    m.sender = (nb_str){"Alice", 5, 0};
    nb_buf *out = NULL;
    CU_ASSERT_EQUAL(p.vt.codec.encode(inst, &m, &out), NB_OK);
    if (!out) {
        CU_FAIL("encode gave no buffer");
        return;
    }
    static const char want[] = "message:general:Alice:hello";
    CU_ASSERT_EQUAL(out->len, strlen(want));
    CU_ASSERT_EQUAL(memcmp(out->data, want, strlen(want)), 0);
    CU_ASSERT_TRUE(out->headroom >= NB_BUF_HEADROOM);
    buf_unref(out);
    p.vt.codec.release(inst, &m);

    nb_msg bad = {.struct_size = sizeof bad};
    CU_ASSERT_EQUAL(p.vt.codec.decode(inst, (const uint8_t *)"shout:x", 7, &bad, &de),
                    NB_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(de.code, "unknown_type");
    p.desc.destroy(inst);
    CU_ASSERT_EQUAL(buf_live_count(), 0);
    loader_close(&p);
}

/* A path without a slash means the current folder, not the library path. */
static void test_path_without_slash(void) {
    char cwd[PATH_MAX], err[1024] = "";
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof cwd));
    CU_ASSERT_EQUAL_FATAL(chdir(fixture_dir), 0);
    nb_loaded_plugin p;
    int rc = loader_open_path("fixture-store.so", NB_KIND_STORE, &p, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == 0) {
        CU_ASSERT_STRING_EQUAL(p.path, "fixture-store.so");
        loader_close(&p);
    }
    CU_ASSERT_EQUAL(loader_open(NULL, "fixture-broker", NB_KIND_BROKER, &p, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(p.path, "./fixture-broker.so");
    loader_close(&p);
    CU_ASSERT_EQUAL(loader_open("./", "fixture-broker", NB_KIND_BROKER, &p, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(p.path, "./fixture-broker.so");
    loader_close(&p);
    CU_ASSERT_EQUAL(chdir(cwd), 0);
}

/* NEBULA_NO_DLCLOSE keeps the file mapped after loader_close. (main()
 * cleared it for the run; the sanitizer runs set it for every test.) */
static void test_no_dlclose(void) {
    char path[PATH_MAX], err[1024];
    fixture_path(path, sizeof path, "fixture-store");
    nb_loaded_plugin p;

    CU_ASSERT_EQUAL_FATAL(loader_open_path(path, NB_KIND_STORE, &p, err, sizeof err), 0);
    CU_ASSERT_TRUE(is_loaded(path));
    loader_close(&p);
    CU_ASSERT_FALSE(is_loaded(path));

    setenv("NEBULA_NO_DLCLOSE", "1", 1);
    CU_ASSERT_EQUAL_FATAL(loader_open_path(path, NB_KIND_STORE, &p, err, sizeof err), 0);
    loader_close(&p);
    CU_ASSERT_TRUE(is_loaded(path));
    unsetenv("NEBULA_NO_DLCLOSE");
}

static void test_kind_names(void) {
    CU_ASSERT_STRING_EQUAL(loader_kind_name(NB_KIND_TRANSPORT), "transport");
    CU_ASSERT_STRING_EQUAL(loader_kind_name(NB_KIND_CODEC), "codec");
    CU_ASSERT_STRING_EQUAL(loader_kind_name(NB_KIND_STORE), "store");
    CU_ASSERT_STRING_EQUAL(loader_kind_name(NB_KIND_BROKER), "broker");
    CU_ASSERT_STRING_EQUAL(loader_kind_name(0), "unknown");
    CU_ASSERT_STRING_EQUAL(loader_kind_name(77), "unknown");
}

/* A list of folders: the first one holding the file wins; a name in none
 * of them is LOADER_NOT_FOUND; "available" lists every folder's plugins. */
static void test_folder_list(void) {
    char empty[] = "/tmp/nebula-loader-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(empty));
    const char *dirs[] = {empty, fixture_dir};
    nb_loaded_plugin p;
    char err[1024];
    CU_ASSERT_EQUAL(loader_open_in(dirs, 2, "fixture-store", NB_KIND_STORE, &p, err, sizeof err),
                    0);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/fixture-store.so", fixture_dir);
    CU_ASSERT_STRING_EQUAL(p.path, want);
    loader_close(&p);
    CU_ASSERT_EQUAL(loader_open_in(dirs, 2, "fixture-nope", NB_KIND_STORE, &p, err, sizeof err),
                    LOADER_NOT_FOUND);
    CU_ASSERT_PTR_NULL(p.handle);
    /* a refusal in the folder that has the file is a refusal, not "not found" */
    CU_ASSERT_EQUAL(loader_open_in(dirs, 2, "fixture-major2", NB_KIND_CODEC, &p, err, sizeof err),
                    -1);
    char list[4096];
    loader_available(dirs, 2, list, sizeof list);
    CU_ASSERT_PTR_NOT_NULL(strstr(list, "codec-json"));
    CU_ASSERT_PTR_NOT_NULL(strstr(list, "fixture-store, "));
    CU_ASSERT_PTR_NULL(strstr(list, ".so"));
    loader_available(dirs, 1, list, sizeof list);
    CU_ASSERT_STRING_EQUAL(list, "none");
    loader_available(dirs, 2, list, 12); /* cut short, still a string */
    CU_ASSERT_TRUE(strlen(list) < 12);
    rmdir(empty);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s FIXTURE_DIR PATH/codec-json.so PATH/transport-ws.so\n", argv[0]);
        return 2;
    }
    fixture_dir = argv[1];
    codec_json_path = argv[2];
    transport_ws_path = argv[3];
    /* These tests check when files are unmapped: start from the default,
     * whatever the caller's environment says. */
    unsetenv("NEBULA_NO_DLCLOSE");
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("loader", NULL, NULL);
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"kind names", test_kind_names},
        {"missing file", test_missing_file},
        {"a directory", test_directory},
        {"not an ELF file", test_not_elf},
        {"no entry symbol", test_no_entry},
        {"undefined symbol", test_undefined_symbol},
        {"ABI major mismatch", test_major_mismatch},
        {"newer ABI minor", test_newer_minor},
        {"NULL descriptor", test_null_descriptor},
        {"descriptor too small", test_descriptor_too_small},
        {"wrong kind for the slot", test_wrong_kind},
        {"incomplete descriptor", test_incomplete_descriptor},
        {"vtable too small", test_vtable_too_small},
        {"mandatory function missing", test_vtable_function_missing},
        {"bad names and kinds", test_bad_names},
        {"small error buffer", test_small_error_buffer},
        {"codec-json loads", test_codec_json},
        {"every kind loads", test_every_kind_loads},
        {"create() failure", test_create_fails},
        {"older minor (frozen 1.0 headers)", test_old_minor},
        {"path without a slash", test_path_without_slash},
        {"NEBULA_NO_DLCLOSE", test_no_dlclose},
        {"a list of folders", test_folder_list},
    };
    for (size_t i = 0; s && i < sizeof tests / sizeof tests[0]; i++)
        if (!CU_add_test(s, tests[i].name, tests[i].fn))
            s = NULL;
    if (!s) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
