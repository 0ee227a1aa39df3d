#include "plugin_slot.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

int plugin_slot_load(nb_server *srv, const char *key, const char *name, uint32_t kind,
                     nb_loaded_plugin *out) {
    const char *dirs[NB_MAX_PLUGIN_DIRS];
    uint32_t n = settings_plugin_dirs(&srv->settings, dirs);
    char err[1024];
    int rc = loader_open_in(dirs, n, name, kind, out, err, sizeof err);
    if (rc == 0) {
        log_info("loaded %s plugin %s %s from %s", loader_kind_name(kind), out->desc.name,
                 out->desc.version ? out->desc.version : "", out->path);
        return 0;
    }
    if (rc == LOADER_NOT_FOUND) {
        char where[2048] = "";
        size_t at = 0;
        for (uint32_t i = 0; i < n && at < sizeof where; i++) {
            int w = snprintf(where + at, sizeof where - at, "%s%s", i ? ", " : "", dirs[i]);
            if (w < 0)
                break;
            at += (size_t)w;
        }
        char available[2048];
        loader_available(dirs, n, available, sizeof available);
        config_error(srv->cfg, "plugins", key, "no plugin \"%s\" in %s (available: %s)", name,
                     where, available);
    } else {
        log_error("%s", err);
        srv->plugin_failures++;
    }
    if (name && name[0])
        config_skip_section(srv->cfg, name);
    return -1;
}
