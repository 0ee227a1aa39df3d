/*
 * codec_fixture.h — the codec unit tests' shared fixture (codec_fixture.c):
 * set plugin_path (argv[1]) before the suite runs; suite_init loads the
 * codec and creates an instance (desc, vt, inst); suite_clean destroys it.
 * last_log holds the last line the codec logged through the host.
 */
#ifndef NEBULA_TESTS_CODEC_FIXTURE_H
#define NEBULA_TESTS_CODEC_FIXTURE_H

#include <nebula/codec.h>
#include <nebula/host.h>
#include <nebula/plugin.h>

extern char last_log[512];
extern const char *plugin_path;
extern const nb_plugin_desc *desc;
extern const nb_codec_vtable *vt;
extern void *inst;

int suite_init(void);
int suite_clean(void);
#endif
