/*
 * plugin_slot.h — load the plugin a [plugins] key names (transport,
 * codecs, store, broker) from the configured folders, and report what
 * goes wrong where the operator looks: a name found in no folder is a
 * config mistake on that key's line, with the plugins that do exist.
 */
#ifndef NEBULA_CORE_PLUGIN_SLOT_H
#define NEBULA_CORE_PLUGIN_SLOT_H

#include "context.h"

/*
 * Load plugin `name` of `kind` for the [plugins] `key`. 0 on success
 * (logged at info). On failure -1, and:
 *   - no folder has <name>.so: "FILE:LINE: [plugins] KEY: no plugin
 *     "NAME" in DIR[, DIR...] (available: a, b)" is recorded in the config;
 *   - the file was refused (loader.h): its one-line reason is logged and
 *     counted in srv->plugin_failures.
 * Either way the plugin's own [NAME] section is marked read, so its keys
 * are not reported as unknown on top of the real problem.
 */
int plugin_slot_load(nb_server *srv, const char *key, const char *name, uint32_t kind,
                     nb_loaded_plugin *out);
#endif
