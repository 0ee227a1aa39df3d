/*
 * loader.c — open a plugin file, check its descriptor against the ABI this
 * core speaks, and keep core-sized copies of the descriptor and vtable.
 *
 * Every refusal is written into the caller's buffer as one line,
 * "<path>: <reason>"; the loader itself never logs (the caller decides),
 * never crashes on a bad descriptor, and closes what it opened.
 *
 * Sizes: the smallest struct a plugin may hand us is the ABI 1.0 layout,
 * measured up to the end of the last field 1.0 requires (offsetof, so the
 * bound stays right when later minors append fields). Anything the plugin
 * does not know (it was built for an older minor) reads as zero.
 */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* End of a member: the size a struct must have to contain it. */
#define END_OF(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))

/* The version fields must be readable before anything else is trusted. */
#define DESC_MIN_VERSION_FIELDS END_OF(nb_plugin_desc, kind)
/* ABI 1.0 descriptor: everything up to and including the vtable pointer. */
#define DESC_MIN_1_0 END_OF(nb_plugin_desc, vtable)

const char *loader_kind_name(uint32_t kind) {
    switch (kind) {
    case NB_KIND_TRANSPORT:
        return "transport";
    case NB_KIND_CODEC:
        return "codec";
    case NB_KIND_STORE:
        return "store";
    case NB_KIND_BROKER:
        return "broker";
    default:
        return "unknown";
    }
}

/* The [plugins] key that loads a kind, for the wrong-kind message. */
static const char *slot_name(uint32_t kind) {
    return kind == NB_KIND_CODEC ? "codecs" : loader_kind_name(kind);
}

/* "<path>: <reason>" into err, kept to one line whatever the reason holds
 * (dlerror() text comes from outside and could carry a newline). */
static void refuse(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void refuse(char *err, size_t errlen, const char *path, const char *fmt, ...) {
    if (!err || errlen == 0)
        return;
    int n = snprintf(err, errlen, "%s: ", path);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

/* dlerror() usually starts with the path we passed; drop it so the path
 * is not named twice. */
static const char *dl_reason(const char *path) {
    const char *e = dlerror();
    if (!e)
        return "unknown dynamic loader error";
    size_t n = strlen(path);
    if (strncmp(e, path, n) == 0 && e[n] == ':' && e[n + 1] == ' ')
        return e + n + 2;
    return e;
}

/* Whether a file could be a shared object: tells "this is no plugin at
 * all" from "a shared object that failed to load" (say, an undefined
 * symbol), which need different fixes. An unreadable file is given the
 * benefit of the doubt: dlopen's own reason says more then. */
static int maybe_elf(const char *path) {
    static const unsigned char elf_magic[4] = {0x7f, 'E', 'L', 'F'};
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 1;
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == sizeof magic && memcmp(magic, elf_magic, sizeof magic) == 0;
}

/* The first mandatory entry of a kind's vtable that is NULL, or NULL when
 * every one is there. Optional entries (the broker's presence and load)
 * may be NULL. Store and broker vtables are as ABI 1.1 shaped them: no
 * plugin of those kinds could be loaded before 1.1. */
static const char *missing_vtable_entry(uint32_t kind, const void *vt) {
    switch (kind) {
    case NB_KIND_TRANSPORT: {
        const nb_transport_vtable *t = vt;
        return !t->start            ? "start"
               : !t->stop_accepting ? "stop_accepting"
               : !t->frame          ? "frame"
               : !t->send           ? "send"
               : !t->close          ? "close"
                                    : NULL;
    }
    case NB_KIND_CODEC: {
        const nb_codec_vtable *c = vt;
        return !c->subprotocol || !c->subprotocol[0] ? "subprotocol"
               : !c->decode                          ? "decode"
               : !c->release                         ? "release"
               : !c->encode                          ? "encode"
                                                     : NULL;
    }
    case NB_KIND_STORE: {
        const nb_store_vtable *s = vt;
        return !s->start    ? "start"
               : !s->stop   ? "stop"
               : !s->append ? "append"
               : !s->flush  ? "flush"
               : !s->load   ? "load"
                            : NULL;
    }
    default: {
        const nb_broker_vtable *b = vt;
        return !b->start         ? "start"
               : !b->stop        ? "stop"
               : !b->subscribe   ? "subscribe"
               : !b->unsubscribe ? "unsubscribe"
               : !b->publish     ? "publish"
                                 : NULL;
    }
    }
}

/* Bytes of the ABI 1.0 vtable of a kind (up to its last mandatory field),
 * and the core's own size of it. */
static void vtable_sizes(uint32_t kind, size_t *min, size_t *core) {
    switch (kind) {
    case NB_KIND_TRANSPORT:
        *min = END_OF(nb_transport_vtable, close);
        *core = sizeof(nb_transport_vtable);
        break;
    case NB_KIND_CODEC:
        *min = END_OF(nb_codec_vtable, encode);
        *core = sizeof(nb_codec_vtable);
        break;
    case NB_KIND_STORE:
        *min = END_OF(nb_store_vtable, load);
        *core = sizeof(nb_store_vtable);
        break;
    default:
        *min = END_OF(nb_broker_vtable, publish);
        *core = sizeof(nb_broker_vtable);
        break;
    }
}

static size_t min_size(size_t a, size_t b) {
    return a < b ? a : b;
}

/*
 * Check the descriptor; on success fill out->desc and out->vt. Returns 0
 * or -1 after writing the refusal. Nothing of the plugin is called here
 * but the entry function (already done) — create() is the caller's.
 */
static int check_desc(const char *path, const nb_plugin_desc *d, uint32_t expected_kind,
                      nb_loaded_plugin *out, char *err, size_t errlen) {
    if (!d) {
        refuse(err, errlen, path, "%s() returned NULL instead of a plugin descriptor",
               NB_PLUGIN_ENTRY_SYMBOL);
        return -1;
    }
    if (d->struct_size < DESC_MIN_VERSION_FIELDS) {
        refuse(err, errlen, path,
               "plugin descriptor is %u bytes, too small to hold its ABI version "
               "(at least %zu): not a Nebula plugin, or a corrupt one",
               (unsigned)d->struct_size, (size_t)DESC_MIN_VERSION_FIELDS);
        return -1;
    }
    if (d->abi_major != NB_ABI_MAJOR) {
        char newer[64] = "";
        if (d->abi_major > NB_ABI_MAJOR)
            snprintf(newer, sizeof newer, ", or run a nebula that speaks ABI %u.x",
                     (unsigned)d->abi_major);
        refuse(err, errlen, path,
               "built for plugin ABI %u.%u, this nebula speaks %u.%u (major differs): "
               "rebuild the plugin against this nebula's headers (pkg-config nebula-plugin)%s",
               (unsigned)d->abi_major, (unsigned)d->abi_minor, NB_ABI_MAJOR, NB_ABI_MINOR, newer);
        return -1;
    }
    if (d->abi_minor > NB_ABI_MINOR) {
        refuse(err, errlen, path,
               "built for plugin ABI %u.%u, newer than this nebula's %u.%u: upgrade nebula, "
               "or rebuild the plugin against this nebula's headers",
               (unsigned)d->abi_major, (unsigned)d->abi_minor, NB_ABI_MAJOR, NB_ABI_MINOR);
        return -1;
    }
    if (d->struct_size < DESC_MIN_1_0) {
        refuse(err, errlen, path,
               "plugin descriptor is %u bytes, smaller than ABI %u.0 defines (%zu): "
               "rebuild the plugin against this nebula's headers",
               (unsigned)d->struct_size, NB_ABI_MAJOR, (size_t)DESC_MIN_1_0);
        return -1;
    }
    if (d->kind != expected_kind) {
        if (d->kind < NB_KIND_TRANSPORT || d->kind > NB_KIND_BROKER)
            refuse(err, errlen, path,
                   "unknown plugin kind %u (this nebula knows 1-4), but the [plugins] %s "
                   "slot needs a %s",
                   (unsigned)d->kind, slot_name(expected_kind), loader_kind_name(expected_kind));
        else
            refuse(err, errlen, path, "is a %s plugin, but the [plugins] %s slot needs a %s",
                   loader_kind_name(d->kind), slot_name(expected_kind),
                   loader_kind_name(expected_kind));
        return -1;
    }
    /* The one change that was not an append: 1.2 gave the broker's
     * presence() a completion (docs/PLUGIN_ABI.md, "What 1.2 changed"), so
     * a broker built for an older minor would be called with the wrong
     * signature. */
    if (expected_kind == NB_KIND_BROKER && d->abi_minor < 2) {
        refuse(err, errlen, path,
               "broker built for plugin ABI %u.%u: brokers need %u.2 or later (presence() "
               "changed in 1.2); rebuild the plugin against this nebula's headers",
               (unsigned)d->abi_major, (unsigned)d->abi_minor, NB_ABI_MAJOR);
        return -1;
    }
    const char *missing = !d->name || !d->name[0] ? "name"
                          : !d->create            ? "create"
                          : !d->destroy           ? "destroy"
                          : !d->vtable            ? "vtable"
                                                  : NULL;
    if (missing) {
        refuse(err, errlen, path, "plugin descriptor has no %s: the plugin is incomplete", missing);
        return -1;
    }

    /* The vtable, like every ABI struct, starts with its size. */
    uint32_t vt_size = *(const uint32_t *)d->vtable;
    size_t vt_min, vt_core;
    vtable_sizes(expected_kind, &vt_min, &vt_core);
    if (vt_size < vt_min) {
        refuse(err, errlen, path,
               "%s vtable is %u bytes, too small for the functions ABI %u.0 requires (%zu)",
               loader_kind_name(expected_kind), (unsigned)vt_size, NB_ABI_MAJOR, vt_min);
        return -1;
    }

    memset(&out->desc, 0, sizeof out->desc);
    memcpy(&out->desc, d, min_size(d->struct_size, sizeof out->desc));
    memset(&out->vt, 0, sizeof out->vt);
    memcpy(&out->vt, d->vtable, min_size(vt_size, vt_core));
    /* struct_size fields keep the plugin's values: they tell what it was
     * built with; whatever lies beyond them in the copies is zero. */
    out->desc.vtable = &out->vt;

    missing = missing_vtable_entry(expected_kind, &out->vt);
    if (missing) {
        refuse(err, errlen, path, "%s vtable has no %s, which ABI %u.%u requires",
               loader_kind_name(expected_kind), missing, NB_ABI_MAJOR,
               expected_kind == NB_KIND_STORE || expected_kind == NB_KIND_BROKER ? 1u : 0u);
        return -1;
    }
    if (expected_kind == NB_KIND_CODEC && out->vt.codec.frame_kind != NB_FRAME_TEXT &&
        out->vt.codec.frame_kind != NB_FRAME_BINARY) {
        refuse(err, errlen, path, "codec frame_kind is %u, expected %u (text) or %u (binary)",
               (unsigned)out->vt.codec.frame_kind, NB_FRAME_TEXT, NB_FRAME_BINARY);
        return -1;
    }
    return 0;
}

int loader_open_path(const char *path, uint32_t expected_kind, nb_loaded_plugin *out, char *err,
                     size_t errlen) {
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    if (!path || !path[0]) {
        refuse(err, errlen, "(empty path)", "no plugin file named");
        return -1;
    }
    if (expected_kind < NB_KIND_TRANSPORT || expected_kind > NB_KIND_BROKER) {
        refuse(err, errlen, path, "internal error: no plugin slot of kind %u",
               (unsigned)expected_kind);
        return -1;
    }

    /* dlopen() of a name without a slash searches the library path, not
     * the folder we mean: make such a path explicitly relative. */
    size_t plen = strlen(path);
    int relative = strchr(path, '/') == NULL;
    char *open_path = malloc(plen + 3);
    if (!open_path) {
        refuse(err, errlen, path, "out of memory");
        return -1;
    }
    snprintf(open_path, plen + 3, "%s%s", relative ? "./" : "", path);

    /* dlopen's "cannot open shared object file" hides whether the file is
     * missing or unreadable; stat first to say which. */
    struct stat st;
    if (stat(open_path, &st) != 0) {
        refuse(err, errlen, path, "cannot open: %s", strerror(errno));
        free(open_path);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        refuse(err, errlen, path, "cannot open: %s", strerror(EISDIR));
        free(open_path);
        return -1;
    }

    dlerror();
    void *handle = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dl_reason(open_path);
        if (!maybe_elf(open_path))
            refuse(err, errlen, path, "not a Nebula plugin (not a shared object: %s)", why);
        else if (strstr(why, "undefined symbol"))
            /* Usually a call into the nebula binary: plugins get the core
             * only through the host table, and -z defs catches it early. */
            refuse(err, errlen, path,
                   "cannot load: %s (a plugin may use only libraries it links and the host "
                   "table; link it with -Wl,-z,defs)",
                   why);
        else
            refuse(err, errlen, path, "cannot load: %s", why);
        free(open_path);
        return -1;
    }
    free(open_path);

    nb_plugin_entry_fn entry = NULL;
    dlerror();
    /* Through a void ** so ISO C's object/function pointer split stays quiet. */
    *(void **)&entry = dlsym(handle, NB_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        refuse(err, errlen, path, "not a Nebula plugin (no symbol %s)", NB_PLUGIN_ENTRY_SYMBOL);
        dlclose(handle);
        return -1;
    }

    if (check_desc(path, entry(), expected_kind, out, err, errlen) != 0) {
        memset(out, 0, sizeof *out);
        dlclose(handle);
        return -1;
    }
    out->path = malloc(plen + 1);
    if (!out->path) {
        refuse(err, errlen, path, "out of memory");
        memset(out, 0, sizeof *out);
        dlclose(handle);
        return -1;
    }
    memcpy(out->path, path, plen + 1);
    out->handle = handle;
    return 0;
}

int loader_open(const char *dir, const char *name, uint32_t expected_kind, nb_loaded_plugin *out,
                char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!dir || !dir[0])
        dir = ".";
    size_t nlen = name ? strlen(name) : 0;
    if (!nlen || strchr(name, '/') || (nlen >= 3 && strcmp(name + nlen - 3, ".so") == 0)) {
        /* A name is looked up in `dir` only (a slash would escape it), and
         * the loader adds ".so" itself. */
        if (err && errlen)
            snprintf(err, errlen,
                     "%s: \"%s\" is not a plugin name (expected a file name in this folder, "
                     "without '/' or .so)",
                     dir, name ? name : "");
        return -1;
    }
    size_t dlen = strlen(dir);
    int slash = dir[dlen - 1] == '/';
    size_t need = dlen + 1 + nlen + sizeof ".so";
    char *path = malloc(need);
    if (!path) {
        if (err && errlen)
            snprintf(err, errlen, "%s/%s.so: out of memory", dir, name);
        return -1;
    }
    snprintf(path, need, "%s%s%s.so", dir, slash ? "" : "/", name);
    int rc = loader_open_path(path, expected_kind, out, err, errlen);
    free(path);
    return rc;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Append the plugin names (files "<name>.so") of a folder to *names. */
static void list_folder(const char *dir, char ***names, size_t *n, size_t *cap) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 3 || strcmp(e->d_name + len - 3, ".so") != 0 || e->d_name[0] == '.')
            continue;
        if (*n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 16;
            char **grown = realloc(*names, ncap * sizeof *grown);
            if (!grown)
                break;
            *names = grown;
            *cap = ncap;
        }
        char *name = malloc(len - 2);
        if (!name)
            break;
        memcpy(name, e->d_name, len - 3);
        name[len - 3] = '\0';
        (*names)[(*n)++] = name;
    }
    closedir(d);
}

void loader_available(const char *const *dirs, uint32_t n_dirs, char *out, size_t outlen) {
    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t i = 0; i < n_dirs; i++)
        list_folder(dirs[i], &names, &n, &cap);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue; /* the same name in two folders: the first one wins */
        int w = snprintf(out + at, outlen - at, "%s%s", at ? ", " : "", names[i]);
        if (w < 0 || (size_t)w >= outlen - at) {
            out[at] = '\0';
            break;
        }
        at += (size_t)w;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (!at)
        snprintf(out, outlen, "none");
}

/* Whether <dir>/<name>.so exists (whatever it holds). */
static int plugin_file_exists(const char *dir, const char *name) {
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s.so", dir, name);
    struct stat st;
    return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0;
}

int loader_open_in(const char *const *dirs, uint32_t n_dirs, const char *name,
                   uint32_t expected_kind, nb_loaded_plugin *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (n_dirs == 0)
        return loader_open(".", name, expected_kind, out, err, errlen);
    size_t nlen = name ? strlen(name) : 0;
    if (!nlen || strchr(name, '/'))
        return loader_open(dirs[0], name, expected_kind, out, err, errlen); /* its refusal */
    for (uint32_t i = 0; i < n_dirs; i++)
        if (plugin_file_exists(dirs[i], name))
            return loader_open(dirs[i], name, expected_kind, out, err, errlen);
    if (err && errlen) {
        loader_open(dirs[0], name, expected_kind, out, err, errlen);
        memset(out, 0, sizeof *out);
    }
    return LOADER_NOT_FOUND;
}

void loader_close(nb_loaded_plugin *p) {
    if (!p)
        return;
    if (p->handle && !getenv("NEBULA_NO_DLCLOSE"))
        dlclose(p->handle);
    free(p->path);
    memset(p, 0, sizeof *p);
}
