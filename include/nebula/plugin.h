/*
 * nebula/plugin.h — the plugin descriptor: the one thing a plugin exports.
 *
 * A Nebula plugin is a shared object that exports exactly one symbol,
 * `nebula_plugin_entry`, a function returning a pointer to a constant
 * nb_plugin_desc. The core dlopen()s the file with RTLD_NOW | RTLD_LOCAL,
 * calls the entry, checks the descriptor and only then calls create().
 *
 * Versioning rules (see docs/PLUGIN_ABI.md for the full contract):
 *   - NB_ABI_MAJOR changes break compatibility: a plugin built for another
 *     major is refused.
 *   - NB_ABI_MINOR changes only append fields at the end of structs. A core
 *     loads a plugin built for the same or an older minor (it copies
 *     min(struct_size, known size) into a zeroed struct, so fields the
 *     plugin does not know read as zero/NULL = "old behaviour"). A plugin
 *     built for a newer minor than the core is refused.
 *   - Every ABI struct starts with `uint32_t struct_size`.
 *   - Only fixed-width integers, pointers and opaque handles cross the
 *     boundary: no bool, enum, long, size_t or bitfields.
 *   - Memory is freed by the side that allocated it; the host table offers
 *     alloc/free and reference-counted buffers.
 *
 * Plugins are linked with -Wl,-z,defs: they cannot reference any symbol of
 * the nebula binary. Everything they need from the core comes through the
 * nb_host table handed to create().
 */
#ifndef NEBULA_PLUGIN_H
#define NEBULA_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define NB_ABI_MAJOR 1
#define NB_ABI_MINOR 1

/* Plugin kinds (nb_plugin_desc.kind). */
#define NB_KIND_TRANSPORT 1u /* vtable: nb_transport_vtable (transport.h) */
#define NB_KIND_CODEC 2u     /* vtable: nb_codec_vtable (codec.h) */
#define NB_KIND_STORE 3u     /* vtable: nb_store_vtable (store.h) */
#define NB_KIND_BROKER 4u    /* vtable: nb_broker_vtable (broker.h) */

/* Return codes shared by every ABI function that returns int32_t. */
#define NB_OK 0
#define NB_ERR -1         /* generic failure; details were logged */
#define NB_ERR_NOMEM -2   /* allocation failed */
#define NB_ERR_CONFIG -3  /* a config value is missing or invalid */
#define NB_ERR_IO -4      /* an OS-level error (errno was logged) */
#define NB_ERR_INVALID -5 /* bad argument or malformed input */
#define NB_ERR_AGAIN -6   /* temporarily impossible; retry later */
#define NB_ERR_CLOSED -7  /* the connection or resource is gone */
#define NB_ERR_TAKEN -8   /* held by someone else (a broker's presence claim) */

/* The name of the one symbol a plugin exports. */
#define NB_PLUGIN_ENTRY_SYMBOL "nebula_plugin_entry"

struct nb_host;
struct nb_plugin_ctx;

/*
 * The descriptor. Static, constant, valid as long as the file is loaded.
 *
 * create() makes one instance. `ctx` is the host's handle for that
 * instance: pass it to every host function. An instance is always used from
 * one thread (the thread of the loop returned by host->loop(ctx)), except
 * where a kind's header says otherwise. Transports get one instance per I/O
 * thread; codecs, stores and brokers get one instance per process, and their
 * headers say which functions must be thread-safe.
 *
 * create() returns NB_OK and sets *instance, or an NB_ERR_* code after
 * logging why (through host->log). destroy() releases everything create()
 * and later calls allocated.
 */
typedef struct nb_plugin_desc {
    uint32_t struct_size; /* sizeof(nb_plugin_desc) as the plugin saw it */
    uint32_t abi_major;   /* NB_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;   /* NB_ABI_MINOR the plugin was built with */
    uint32_t kind;        /* NB_KIND_* */
    const char *name;     /* e.g. "codec-json"; matches the config name */
    const char *version;  /* the plugin's own version, e.g. "1.0.0" */
    const char *summary;  /* one line for logs and --version */
    int32_t (*create)(const struct nb_host *host, struct nb_plugin_ctx *ctx, void **instance);
    void (*destroy)(void *instance);
    const void *vtable; /* kind-specific table; starts with uint32_t struct_size */
} nb_plugin_desc;

typedef const nb_plugin_desc *(*nb_plugin_entry_fn)(void);

#if defined(__GNUC__)
#define NB_EXPORT __attribute__((visibility("default")))
#else
#define NB_EXPORT
#endif

/*
 * Declare the entry point of a plugin:
 *
 *     static const nb_plugin_desc desc = { ... };
 *     NB_PLUGIN_DECLARE(desc)
 */
#define NB_PLUGIN_DECLARE(desc_var)                                                                \
    NB_EXPORT const nb_plugin_desc *nebula_plugin_entry(void);                                     \
    NB_EXPORT const nb_plugin_desc *nebula_plugin_entry(void) {                                    \
        return &(desc_var);                                                                        \
    }

/* Fill the four leading fields of a descriptor for the ABI in this header. */
#define NB_PLUGIN_HEADER(kind_)                                                                    \
    .struct_size = (uint32_t)sizeof(nb_plugin_desc), .abi_major = NB_ABI_MAJOR,                    \
    .abi_minor = NB_ABI_MINOR, .kind = (kind_)

#ifdef __cplusplus
}
#endif
#endif /* NEBULA_PLUGIN_H */
