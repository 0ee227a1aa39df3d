/*
 * loader.h — open a plugin file and check it against the ABI, refusing
 * loudly and once: every refusal is one error line naming the file and the
 * reason (and both versions for a version mismatch), never a crash.
 *
 * A plugin is opened with dlopen(RTLD_NOW | RTLD_LOCAL), its single entry
 * symbol (NB_PLUGIN_ENTRY_SYMBOL) is called, and the descriptor is checked:
 *   - struct_size large enough to hold the version fields,
 *   - abi_major == NB_ABI_MAJOR,
 *   - abi_minor <= NB_ABI_MINOR (a newer minor is refused),
 *   - kind equals the kind the slot expects,
 *   - name, create, destroy and vtable are present,
 *   - the vtable's own struct_size covers its mandatory functions.
 * The descriptor and the vtable are copied into zeroed structs of the
 * core's size (min of both sizes), so fields an older plugin does not know
 * read as zero.
 */
#ifndef NEBULA_CORE_LOADER_H
#define NEBULA_CORE_LOADER_H

#include <nebula/broker.h>
#include <nebula/codec.h>
#include <nebula/plugin.h>
#include <nebula/store.h>
#include <nebula/transport.h>
#include <stddef.h>

typedef struct nb_loaded_plugin {
    void *handle;        /* dlopen handle */
    char *path;          /* the file loaded (malloc'd) */
    nb_plugin_desc desc; /* copy, core-sized; desc.vtable points to `vt` below */
    union {
        nb_transport_vtable transport;
        nb_codec_vtable codec;
        nb_store_vtable store;
        nb_broker_vtable broker;
    } vt; /* copy of the plugin's vtable, core-sized, zero-filled */
} nb_loaded_plugin;

/* Human name of a kind: "transport", "codec", "store", "broker", "unknown". */
const char *loader_kind_name(uint32_t kind);

/*
 * Build "<dir>/<name>.so" and load it as `expected_kind`. On success
 * returns 0 and fills *out. On refusal returns -1 and writes one line into
 * err: "<path>: <reason>", e.g.
 *   "build/plugins/codec-x.so: cannot open: No such file or directory"
 *   "build/plugins/codec-x.so: not a Nebula plugin (no symbol nebula_plugin_entry)"
 *   "build/plugins/codec-x.so: built for plugin ABI 2.0, this nebula speaks 1.0 (major differs)"
 *   "build/plugins/codec-x.so: built for plugin ABI 1.3, newer than this nebula's 1.0: upgrade
 * nebula" "build/plugins/store-x.so: is a store plugin, but the [plugins] codecs slot needs a
 * codec"
 */
int loader_open(const char *dir, const char *name, uint32_t expected_kind, nb_loaded_plugin *out,
                char *err, size_t errlen);

/* loader_open_in's answer when no folder holds <name>.so. */
#define LOADER_NOT_FOUND (-2)

/*
 * Look `name` up in each folder of `dirs`, in order, and load the first
 * <name>.so found, as loader_open does (0, or -1 with its refusal).
 * LOADER_NOT_FOUND when none of the folders has the file (err then holds
 * the first folder's "cannot open" line; the caller words its own).
 */
int loader_open_in(const char *const *dirs, uint32_t n_dirs, const char *name,
                   uint32_t expected_kind, nb_loaded_plugin *out, char *err, size_t errlen);

/* The plugin names ("<name>.so" files) found in the folders, sorted, once
 * each, joined with ", " into out ("none" when there are none; cut short
 * when out is too small). */
void loader_available(const char *const *dirs, uint32_t n_dirs, char *out, size_t outlen);

/* Same, from an explicit path. */
int loader_open_path(const char *path, uint32_t expected_kind, nb_loaded_plugin *out, char *err,
                     size_t errlen);

/* dlclose (unless NEBULA_NO_DLCLOSE is set in the environment, which keeps
 * leak reports from sanitizers and valgrind readable) and free. */
void loader_close(nb_loaded_plugin *p);
#endif
