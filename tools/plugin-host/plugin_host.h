/*
 * plugin_host.h — what the tools' plugin hosts share (store_host.c for
 * store-bench and the store unit tests, broker_host.c for broker-bench):
 * a plugin of one kind loaded with dlopen, its config as key/value pairs
 * (the plugin's own section, raw values: strings without quotes), the
 * parsing of those values as the core's config getters do, and the host
 * functions that need no state (alloc, free, the wall clock).
 */
#ifndef NEBULA_PLUGIN_HOST_H
#define NEBULA_PLUGIN_HOST_H

#include <nebula/nebula.h>
#include <stddef.h>
#include <stdint.h>

#define PH_MAX_KEYS 32

typedef struct ph_config {
    uint32_t n;
    char keys[PH_MAX_KEYS][64];
    char vals[PH_MAX_KEYS][1024];
} ph_config;

/* Set (or replace) one key; 0, or -1 when PH_MAX_KEYS are taken. */
int ph_set(ph_config *c, const char *key, const char *value);
/* The value of a key, or NULL. */
const char *ph_get(const ph_config *c, const char *key);
/* A value as a decimal integer / as true or false: 0, or -1 (not one). */
int ph_parse_int(const char *v, int64_t *out);
int ph_parse_bool(const char *v, int32_t *out);

/* dlopen a plugin (a path with a slash) and check that it is of `kind`
 * with a vtable: its descriptor, or NULL with err filled (*dl is set when
 * the file loaded, for the caller's dlclose). */
const nb_plugin_desc *ph_load(const char *path, uint32_t kind, const char *kind_name, void **dl,
                              char *err, size_t errlen);

void *ph_alloc(uint64_t size);
void ph_free(void *p);
/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t ph_now_real_ms(void);

#endif /* NEBULA_PLUGIN_HOST_H */
