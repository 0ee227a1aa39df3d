/*
 * config.h — the TOML-like config file: parse once, read typed values,
 * report every mistake with file:line.
 *
 * Syntax (docs/CONFIG.md):
 *   # comment                     (anywhere outside a string)
 *   [section]                     names: letters, digits, '_', '-', '.'
 *   key = "string"                escapes: \" \\ \n \t
 *   key = 42                      64-bit signed decimal integer
 *   key = true | false
 *   key = ["a", "b"]              array of strings, on one line
 * Every key belongs to a section. A duplicate section or key is an error.
 *
 * Errors are collected, not fatal: the parser goes on after a bad line and
 * the getters record type mismatches, so `nebula --check-config` can list
 * every mistake at once. Each message reads "FILE:LINE: [section] key: why".
 *
 * Getters mark the key as read. After everything (core and plugins) has
 * read its keys, config_check_unread() reports every key nobody read as
 * unknown: a typo never passes silently.
 *
 * Not thread-safe; used at start-up only. Strings returned stay valid until
 * config_free().
 */
#ifndef NEBULA_CORE_CONFIG_H
#define NEBULA_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct nb_config nb_config;

/* Parse a file. Returns NULL only when the file cannot be read or memory
 * runs out (err says why); syntax errors are recorded in the result. */
nb_config *config_load_file(const char *path, char *err, size_t errlen);

/* Parse text held in memory; `name` stands for the file name in messages. */
nb_config *config_load_string(const char *name, const char *text, char *err, size_t errlen);

void config_free(nb_config *cfg);

/* The file name given at load time. */
const char *config_file_name(const nb_config *cfg);

/* Typed getters. Return 1 when the key is present and well-typed (*out
 * set), 0 when absent (*out = def), -1 when present with the wrong type or
 * out of range (an error is recorded, *out = def). */
int config_get_string(nb_config *cfg, const char *section, const char *key, const char *def,
                      const char **out);
int config_get_int(nb_config *cfg, const char *section, const char *key, int64_t def, int64_t min,
                   int64_t max, int64_t *out);
int config_get_bool(nb_config *cfg, const char *section, const char *key, int def, int *out);
/* Arrays: *out points to `*n` strings owned by cfg. A single string is
 * accepted as an array of one. */
int config_get_string_array(nb_config *cfg, const char *section, const char *key,
                            const char *const **out, size_t *n);

/* A copy of text that lives as long as cfg; NULL when out of memory. */
const char *config_keep(nb_config *cfg, const char *text);

/* 1 if the file has this [section]; marks the section as known. */
int config_has_section(nb_config *cfg, const char *section);

/* Mark a [section] and every key in it as read, unchecked: the section of
 * a plugin that could not be loaded, so that its keys are not reported as
 * unknown on top of the real problem (the missing plugin). */
void config_skip_section(nb_config *cfg, const char *section);

/* Record an error about a key's value found by the caller (e.g. a plugin
 * name that does not exist): "FILE:LINE: [section] key: why". If the key is
 * absent, the message names the file without a line. */
void config_error(nb_config *cfg, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Record "unknown key" for every key never read and "unknown section" for
 * every section never read or declared known with config_has_section(). */
void config_check_unread(nb_config *cfg);

/* Recorded errors, in the order found (parse errors first). */
size_t config_error_count(const nb_config *cfg);
const char *config_error_at(const nb_config *cfg, size_t i);
#endif
