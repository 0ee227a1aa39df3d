/*
 * config.c — the config file parser and its typed getters (see config.h and
 * docs/CONFIG_SYNTAX.md).
 *
 * The text is parsed line by line into entries (section, key, typed value).
 * Entries and sections are found through small open-addressing hash indexes
 * so a large or hostile file stays linear. Getters mark what they read and
 * remember the names they ask for, so config_check_unread() can match an
 * unknown key or section against them ("did you mean ...?").
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FILE_BYTES (16u << 20) /* larger is not a config file */
#define SNIPPET_MAX 40             /* bytes of user text quoted in a message */
#define SUGGEST_MAX_LEN 64         /* longer names are not compared */
#define LIST_MAX_KEYS 12           /* known keys listed for an unknown key */
#define NONE ((size_t)-1)

enum vtype { V_STRING, V_INT, V_BOOL, V_ARRAY };

struct value {
    enum vtype type;
    int64_t num;  /* V_INT; V_BOOL as 0/1 */
    char **items; /* V_STRING: one item; V_ARRAY: n items (never NULL) */
    size_t n;
};

struct entry {
    char *key;
    size_t section; /* index into nb_config.sections */
    unsigned line;
    struct value v;
    bool read;
    bool reported; /* a getter or config_check_unread already reported it */
};

struct section {
    char *name;
    unsigned line;
    bool known;    /* touched by a getter, config_has_section or config_error */
    bool reported; /* config_check_unread already reported it */
};

struct wanted { /* a key some caller asked for, present or not */
    char *section;
    char *key;
};

struct slot {
    uint64_t hash;
    size_t item; /* index + 1; 0 = empty */
};

struct index {
    struct slot *slots;
    size_t cap, count;
};

struct nb_config {
    char *file;
    struct entry *entries;
    size_t nentries, capentries;
    struct section *sections;
    size_t nsections, capsections;
    struct index entry_ix, section_ix;
    struct wanted *wanted;
    size_t nwanted, capwanted;
    char **wanted_sections;
    size_t nwsections, capwsections;
    struct index wanted_ix, wsection_ix;
    char **errors;
    size_t nerrors, caperrors;
    bool oom;    /* an allocation failed: some error may be missing */
    char **kept; /* strings that live as long as the config (config_keep) */
    size_t nkept, capkept;
};

/* ------------------------------------------------------------ helpers */

/* The array `arr` of `*cap` elements holding `n`, with room for one more. */
static void *reserve(void *arr, size_t *cap, size_t n, size_t size) {
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(arr, ncap * size);
    if (p)
        *cap = ncap;
    return p;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *dup_str(const char *s) {
    return dup_n(s, strlen(s));
}

static char *vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

__attribute__((format(printf, 1, 2))) static char *format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    return s;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): clang-tidy 14 false positive */
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
static bool is_space(char c) {
    return c == ' ' || c == '\t';
}

static char lower(char c) {
    if (c >= 'A' && c <= 'Z')
        c = (char)(c - 'A' + 'a');
    return c;
}

/* s[0..len) equals the lower-case word w, ignoring case. */
static bool word_ieq(const char *s, size_t len, const char *w) {
    if (strlen(w) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (lower(s[i]) != w[i])
            return false;
    return true;
}

static bool is_name_char(char c, bool dot) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' ||
           c == '-' || (dot && c == '.');
}

static const char *skip_space(const char *p) {
    while (is_space(*p))
        p++;
    return p;
}

/* Length of the bare word at p: up to blank, '#' or end of line. */
static size_t word_len(const char *p) {
    size_t n = 0;
    while (p[n] && !is_space(p[n]) && p[n] != '#')
        n++;
    return n;
}

/* A short printable copy of user text for a message: control bytes become
 * '?', long text is cut (not inside a UTF-8 sequence) and ends in "...". */
static const char *snippet(char *out, size_t outlen, const char *s, size_t len) {
    size_t n = len;
    bool cut = false;
    if (n > SNIPPET_MAX) {
        n = SNIPPET_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        cut = true;
    }
    if (n + 4 > outlen)
        n = outlen > 4 ? outlen - 4 : 0;
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = s[i];
        if (c < 0x20 || c == 0x7f)
            out[i] = '?';
    }
    if (cut && outlen >= i + 4) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* ------------------------------------------------------------- errors */

static void record(nb_config *cfg, char *msg) {
    if (!msg) {
        cfg->oom = true;
        return;
    }
    char **e = reserve(cfg->errors, &cfg->caperrors, cfg->nerrors, sizeof *e);
    if (!e) {
        free(msg);
        cfg->oom = true;
        return;
    }
    cfg->errors = e;
    e[cfg->nerrors++] = msg;
}

/* "FILE:LINE: [section] key: why", leaving out what is 0 or NULL. */
static void verror_at(nb_config *cfg, unsigned line, const char *sec, const char *key,
                      const char *fmt, va_list ap) {
    char *why = vformat(fmt, ap);
    if (!why) {
        cfg->oom = true;
        return;
    }
    char where[24] = "";
    if (line)
        snprintf(where, sizeof where, ":%u", line);
    char *msg;
    if (sec && key)
        msg = format("%s%s: [%s] %s: %s", cfg->file, where, sec, key, why);
    else if (sec)
        msg = format("%s%s: [%s]: %s", cfg->file, where, sec, why);
    else
        msg = format("%s%s: %s", cfg->file, where, why);
    free(why);
    record(cfg, msg);
}

static void error_at(nb_config *cfg, unsigned line, const char *sec, const char *key,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void error_at(nb_config *cfg, unsigned line, const char *sec, const char *key,
                     const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror_at(cfg, line, sec, key, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ indexes */

#define FNV_BASIS 14695981039346656037u
#define FNV_PRIME 1099511628211u

static uint64_t hash_bytes(uint64_t h, const char *s) {
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t section_hash(const char *name) {
    return hash_bytes(FNV_BASIS, name);
}

static uint64_t entry_hash(size_t section, const char *key) {
    uint64_t h = FNV_BASIS ^ (uint64_t)section;
    h *= FNV_PRIME;
    return hash_bytes(h, key);
}

static uint64_t wanted_hash(const char *section, const char *key) {
    uint64_t h = section_hash(section) ^ 0xff; /* no name holds this byte */
    h *= FNV_PRIME;
    return hash_bytes(h, key);
}

static int index_put(struct index *ix, uint64_t h, size_t item);

static int index_grow(struct index *ix) {
    struct index bigger = {calloc(ix->cap ? ix->cap * 2 : 16, sizeof(struct slot)),
                           ix->cap ? ix->cap * 2 : 16, 0};
    if (!bigger.slots)
        return -1;
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slots[i].item)
            index_put(&bigger, ix->slots[i].hash, ix->slots[i].item - 1);
    free(ix->slots);
    *ix = bigger;
    return 0;
}

/* Adds an item known to be absent. */
static int index_put(struct index *ix, uint64_t h, size_t item) {
    if ((ix->count + 1) * 2 > ix->cap && index_grow(ix) != 0)
        return -1;
    size_t mask = ix->cap - 1;
    size_t i = (size_t)h & mask;
    while (ix->slots[i].item)
        i = (i + 1) & mask;
    ix->slots[i].hash = h;
    ix->slots[i].item = item + 1;
    ix->count++;
    return 0;
}

static struct section *find_section(const nb_config *cfg, const char *name) {
    const struct index *ix = &cfg->section_ix;
    if (!ix->cap || !cfg->sections)
        return NULL;
    uint64_t h = section_hash(name);
    size_t mask = ix->cap - 1;
    for (size_t i = (size_t)h & mask; ix->slots[i].item; i = (i + 1) & mask) {
        struct section *s = &cfg->sections[ix->slots[i].item - 1];
        if (ix->slots[i].hash == h && strcmp(s->name, name) == 0)
            return s;
    }
    return NULL;
}

static struct entry *find_entry(const nb_config *cfg, const struct section *sec, const char *key) {
    const struct index *ix = &cfg->entry_ix;
    if (!ix->cap || !cfg->entries || !sec)
        return NULL;
    size_t section = (size_t)(sec - cfg->sections);
    uint64_t h = entry_hash(section, key);
    size_t mask = ix->cap - 1;
    for (size_t i = (size_t)h & mask; ix->slots[i].item; i = (i + 1) & mask) {
        struct entry *e = &cfg->entries[ix->slots[i].item - 1];
        if (ix->slots[i].hash == h && e->section == section && strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

/* ------------------------------------------------------------- values */

static void value_free(struct value *v) {
    for (size_t i = 0; i < v->n; i++)
        free(v->items[i]);
    free(v->items);
    v->items = NULL;
    v->n = 0;
}

static int value_push(struct value *v, size_t *cap, char *s) {
    char **items = reserve(v->items, cap, v->n, sizeof *items);
    if (!items)
        return -1;
    v->items = items;
    items[v->n++] = s;
    return 0;
}

static const char *type_name(enum vtype t) {
    switch (t) {
    case V_STRING:
        return "a string";
    case V_INT:
        return "an integer";
    case V_BOOL:
        return "a boolean";
    case V_ARRAY:
        return "an array";
    }
    return "a value";
}

enum int_status { INT_OK, INT_JUNK, INT_LEADING_ZERO, INT_RANGE };

/* A 64-bit signed decimal integer spanning exactly s[0..len). */
static enum int_status parse_int(const char *s, size_t len, int64_t *out) {
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == len)
        return INT_JUNK;
    for (size_t j = i; j < len; j++)
        if (!is_digit(s[j]))
            return INT_JUNK;
    if (s[i] == '0' && len - i > 1)
        return INT_LEADING_ZERO;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return INT_RANGE;
        v = v * 10 + d;
    }
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return INT_OK;
}

/* ------------------------------------------------------------- parser */

enum section_state { IN_NONE, IN_SECTION, IN_BAD };

struct parser {
    nb_config *cfg;
    unsigned line;
    enum section_state state;
    size_t section;
    const char *sec; /* name of the current section, for messages */
    const char *key; /* key of the current line, for messages */
};

__attribute__((format(printf, 2, 3))) static void perr(struct parser *ps, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror_at(ps->cfg, ps->line, ps->sec, ps->key, fmt, ap);
    va_end(ap);
}

/* A "string" starting at *pp (on its opening quote). On success *out is
 * the unescaped text and *pp points past the closing quote. */
static int parse_string(struct parser *ps, const char **pp, char **out) {
    const char *p = *pp + 1;
    char *buf = malloc(strlen(p) + 1);
    if (!buf) {
        ps->cfg->oom = true;
        return -1;
    }
    size_t n = 0;
    for (;;) {
        char c = *p;
        if (c == '\0') {
            perr(ps, "unterminated string (the closing '\"' is missing)");
            free(buf);
            return -1;
        }
        if (c == '"')
            break;
        if (c == '\\') {
            char e = p[1];
            if (e == '"' || e == '\\')
                buf[n++] = e;
            else if (e == 'n')
                buf[n++] = '\n';
            else if (e == 't')
                buf[n++] = '\t';
            else if (e == '\0') {
                perr(ps, "unterminated string (the line ends in '\\')");
                free(buf);
                return -1;
            } else {
                char s[SNIPPET_MAX + 4];
                perr(ps, "unknown escape '\\%s' in a string (the escapes are \\\", \\\\, \\n, \\t)",
                     snippet(s, sizeof s, &p[1], 1));
                free(buf);
                return -1;
            }
            p += 2;
            continue;
        }
        buf[n++] = c;
        p++;
    }
    buf[n] = '\0';
    *out = buf;
    *pp = p + 1;
    return 0;
}

/* ["a", "b"] on one line; an empty array and a trailing comma are allowed. */
static int parse_array(struct parser *ps, const char **pp, struct value *v) {
    const char *p = *pp + 1;
    size_t cap = 1;
    v->type = V_ARRAY;
    /* never NULL, so a caller may index an empty array's pointer */
    v->items = malloc(sizeof *v->items);
    if (!v->items) {
        ps->cfg->oom = true;
        return -1;
    }
    char s[SNIPPET_MAX + 4];
    for (;;) {
        p = skip_space(p);
        if (*p == ']')
            break;
        if (*p == '\0' || *p == '#') {
            perr(ps, "unterminated array (the closing ']' is missing; an array fits on one line)");
            goto fail;
        }
        if (*p == ',') {
            perr(ps, "empty item in an array (a ',' with nothing before it)");
            goto fail;
        }
        if (*p != '"') {
            perr(ps, "arrays hold strings only, in double quotes: found '%s'",
                 snippet(s, sizeof s, p, strcspn(p, ",] \t#")));
            goto fail;
        }
        char *item;
        if (parse_string(ps, &p, &item) != 0)
            goto fail;
        if (value_push(v, &cap, item) != 0) {
            free(item);
            ps->cfg->oom = true;
            goto fail;
        }
        p = skip_space(p);
        if (*p == ',') {
            p++;
        } else if (*p != ']') {
            if (*p == '\0' || *p == '#')
                perr(ps, "unterminated array (the closing ']' is missing; an array fits on one "
                         "line)");
            else
                perr(ps, "expected ',' or ']' after an array item, found '%s'",
                     snippet(s, sizeof s, p, word_len(p)));
            goto fail;
        }
    }
    *pp = p + 1;
    return 0;
fail:
    value_free(v);
    return -1;
}

/* A bare word: true, false or an integer. */
static int parse_word(struct parser *ps, const char **pp, struct value *v) {
    const char *p = *pp;
    size_t len = word_len(p);
    char s[SNIPPET_MAX + 4];
    snippet(s, sizeof s, p, len);
    if ((len == 4 && memcmp(p, "true", 4) == 0) || (len == 5 && memcmp(p, "false", 5) == 0)) {
        v->type = V_BOOL;
        v->num = len == 4;
        *pp = p + len;
        return 0;
    }
    if (is_digit(*p) || *p == '-' || *p == '+') {
        switch (parse_int(p, len, &v->num)) {
        case INT_OK:
            v->type = V_INT;
            *pp = p + len;
            return 0;
        case INT_LEADING_ZERO:
            perr(ps, "'%s': leading zeros are not allowed (numbers are decimal)", s);
            return -1;
        case INT_RANGE:
            perr(ps, "'%s' does not fit in a 64-bit integer", s);
            return -1;
        case INT_JUNK:
            break;
        }
        perr(ps, "'%s' is not an integer (write \"%s\" if it is a string)", s, s);
        return -1;
    }
    if (*p == '\'') {
        perr(ps, "strings take double quotes, not single: %s", s);
        return -1;
    }
    if (word_ieq(p, len, "true") || word_ieq(p, len, "false")) {
        perr(ps, "'%s': booleans are written true or false, in lower case", s);
        return -1;
    }
    perr(ps, "'%s' is not a value (strings take double quotes: \"%s\"; booleans are true or false)",
         s, s);
    return -1;
}

/* The value after '=' and the end of the line. */
static int parse_value(struct parser *ps, const char *p, struct value *v) {
    memset(v, 0, sizeof *v);
    p = skip_space(p);
    int rc;
    if (*p == '\0' || *p == '#') {
        perr(ps, "missing value after '='");
        return -1;
    }
    if (*p == '"') {
        char *str;
        rc = parse_string(ps, &p, &str);
        if (rc == 0) {
            v->type = V_STRING;
            v->items = malloc(sizeof *v->items);
            if (!v->items) {
                free(str);
                ps->cfg->oom = true;
                return -1;
            }
            v->items[0] = str;
            v->n = 1;
        }
    } else if (*p == '[') {
        rc = parse_array(ps, &p, v);
    } else {
        rc = parse_word(ps, &p, v);
    }
    if (rc != 0)
        return -1;
    p = skip_space(p);
    if (*p != '\0' && *p != '#') {
        char s[SNIPPET_MAX + 4];
        perr(ps, "unexpected text after the value: '%s' (a comment starts with '#')",
             snippet(s, sizeof s, p, strlen(p)));
        value_free(v);
        return -1;
    }
    return 0;
}

static void parse_section(struct parser *ps, const char *p) {
    nb_config *cfg = ps->cfg;
    char s[SNIPPET_MAX + 4];
    ps->state = IN_BAD;
    ps->sec = NULL;
    const char *close = strchr(p, ']');
    if (!close) {
        perr(ps, "section line '%s' lacks its closing ']'", snippet(s, sizeof s, p, strlen(p)));
        return;
    }
    const char *name = skip_space(p + 1);
    const char *end = close;
    while (end > name && is_space(end[-1]))
        end--;
    size_t len = (size_t)(end - name);
    if (len == 0) {
        perr(ps, "empty section name '[]'");
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(name[i], true)) {
            perr(ps, "bad section name '%s' (use letters, digits, '_', '-' and '.')",
                 snippet(s, sizeof s, name, len));
            return;
        }
    }
    char *copy = dup_n(name, len);
    if (!copy) {
        cfg->oom = true;
        return;
    }
    const struct section *first = find_section(cfg, copy);
    size_t idx;
    if (first) {
        /* its keys join the first [name] so they are still checked */
        error_at(cfg, ps->line, copy, NULL, "duplicate section (first at line %u)", first->line);
        idx = (size_t)(first - cfg->sections);
        free(copy);
    } else {
        struct section *secs =
            reserve(cfg->sections, &cfg->capsections, cfg->nsections, sizeof *secs);
        if (!secs) {
            free(copy);
            cfg->oom = true;
            return;
        }
        cfg->sections = secs;
        idx = cfg->nsections;
        if (index_put(&cfg->section_ix, section_hash(copy), idx) != 0) {
            free(copy);
            cfg->oom = true;
            return;
        }
        secs[idx] = (struct section){.name = copy, .line = ps->line};
        cfg->nsections++;
    }
    ps->state = IN_SECTION;
    ps->section = idx;
    ps->sec = cfg->sections[idx].name;
    const char *rest = skip_space(close + 1);
    if (*rest && *rest != '#')
        perr(ps, "unexpected text after the section name: '%s'",
             snippet(s, sizeof s, rest, strlen(rest)));
}

/* Takes ownership of k and of v's contents. */
static void store_entry(struct parser *ps, char *k, struct value *v) {
    nb_config *cfg = ps->cfg;
    const struct entry *dup = find_entry(cfg, &cfg->sections[ps->section], k);
    if (dup) {
        error_at(cfg, ps->line, ps->sec, k, "duplicate key (first set at line %u)", dup->line);
        free(k);
        value_free(v);
        return;
    }
    struct entry *es = reserve(cfg->entries, &cfg->capentries, cfg->nentries, sizeof *es);
    if (!es || index_put(&cfg->entry_ix, entry_hash(ps->section, k), cfg->nentries) != 0) {
        if (es)
            cfg->entries = es;
        free(k);
        value_free(v);
        cfg->oom = true;
        return;
    }
    cfg->entries = es;
    es[cfg->nentries++] =
        (struct entry){.key = k, .section = ps->section, .line = ps->line, .v = *v};
}

static void parse_line(struct parser *ps, char *line) {
    char s[SNIPPET_MAX + 4];
    size_t len = strlen(line);
    while (len > 0 && (is_space(line[len - 1]) || line[len - 1] == '\r'))
        line[--len] = '\0';
    const char *p = skip_space(line);
    ps->key = NULL;
    if (*p == '\0' || *p == '#')
        return;
    if (*p == '[') {
        parse_section(ps, p);
        return;
    }
    /* until the key is known to be good, errors name the line only */
    nb_config *cfg = ps->cfg;
    if (!strchr(p, '=')) {
        error_at(cfg, ps->line, NULL, NULL,
                 "expected 'key = value', a [section] line or a # comment, found '%s'",
                 snippet(s, sizeof s, p, strlen(p)));
        return;
    }
    if (*p == '=') {
        error_at(cfg, ps->line, NULL, NULL, "missing key name before '='");
        return;
    }
    size_t keylen = strcspn(p, " \t=#");
    for (size_t i = 0; i < keylen; i++) {
        if (!is_name_char(p[i], false)) {
            error_at(cfg, ps->line, NULL, NULL,
                     "bad key name '%s' (use letters, digits, '_' and '-')",
                     snippet(s, sizeof s, p, keylen));
            return;
        }
    }
    const char *eq = skip_space(p + keylen);
    if (*eq != '=') {
        char rest[SNIPPET_MAX + 4];
        error_at(cfg, ps->line, NULL, NULL, "expected '=' after the key '%s', found '%s'",
                 snippet(s, sizeof s, p, keylen), snippet(rest, sizeof rest, eq, strlen(eq)));
        return;
    }
    if (ps->state == IN_NONE) {
        error_at(cfg, ps->line, NULL, NULL,
                 "key '%s' comes before any [section] line (every key belongs to a section)",
                 snippet(s, sizeof s, p, keylen));
        return;
    }
    if (ps->state == IN_BAD)
        return; /* the section line was reported; its keys wait until it is fixed */
    char *key = dup_n(p, keylen);
    if (!key) {
        cfg->oom = true;
        return;
    }
    ps->key = key;
    struct value v;
    if (parse_value(ps, eq + 1, &v) == 0)
        store_entry(ps, key, &v);
    else
        free(key);
    ps->key = NULL;
}

static nb_config *parse(const char *name, const char *text, size_t len, char *err, size_t errlen) {
    nb_config *cfg = calloc(1, sizeof *cfg);
    char *copy = cfg ? dup_n(text, len) : NULL;
    if (cfg)
        cfg->file = dup_str(name ? name : "(config)");
    if (!cfg || !copy || !cfg->file) {
        free(copy);
        config_free(cfg);
        set_err(err, errlen, "%s: out of memory", name ? name : "(config)");
        return NULL;
    }
    struct parser ps = {.cfg = cfg, .state = IN_NONE, .section = NONE};
    char *p = copy, *end = copy + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    while (p < end && !cfg->oom) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        *stop = '\0';
        ps.line++;
        if (strlen(p) != (size_t)(stop - p)) {
            error_at(cfg, ps.line, NULL, NULL, "the line holds a NUL byte (is this a text file?)");
        } else {
            parse_line(&ps, p);
        }
        p = stop + 1;
    }
    free(copy);
    if (cfg->oom) {
        set_err(err, errlen, "%s: out of memory", cfg->file);
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* ---------------------------------------------------------- load/free */

/* The whole file, at most MAX_FILE_BYTES + 1 bytes of it; NULL with
 * *error set (an errno value) when it cannot be read. */
static char *read_all(FILE *f, size_t *len, int *error) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        *error = ENOMEM;
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (n > MAX_FILE_BYTES)
                break;
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                *error = ENOMEM;
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
        errno = 0;
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                *error = errno ? errno : EIO;
                return NULL;
            }
            break;
        }
    }
    *len = n;
    return buf;
}

nb_config *config_load_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        char cwd[PATH_MAX];
        if (path[0] != '/' && getcwd(cwd, sizeof cwd))
            set_err(err, errlen, "%s: cannot open: %s (a relative path: resolved against %s)", path,
                    strerror(e), cwd);
        else
            set_err(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return NULL;
    }
    size_t len = 0;
    int error = 0;
    char *buf = read_all(f, &len, &error);
    fclose(f);
    if (!buf) {
        set_err(err, errlen, "%s: cannot read: %s", path, strerror(error));
        return NULL;
    }
    if (len > MAX_FILE_BYTES) {
        free(buf);
        set_err(err, errlen, "%s: larger than %u MiB, not a config file", path,
                MAX_FILE_BYTES >> 20);
        return NULL;
    }
    nb_config *cfg = parse(path, buf, len, err, errlen);
    free(buf);
    return cfg;
}

nb_config *config_load_string(const char *name, const char *text, char *err, size_t errlen) {
    if (!text)
        text = "";
    return parse(name, text, strlen(text), err, errlen);
}

const char *config_keep(nb_config *cfg, const char *text) {
    char **k = reserve(cfg->kept, &cfg->capkept, cfg->nkept, sizeof *k);
    if (!k)
        return NULL;
    cfg->kept = k;
    size_t n = strlen(text) + 1;
    char *copy = malloc(n);
    if (!copy)
        return NULL;
    memcpy(copy, text, n);
    cfg->kept[cfg->nkept++] = copy;
    return copy;
}

void config_free(nb_config *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nkept; i++)
        free(cfg->kept[i]);
    free(cfg->kept);
    for (size_t i = 0; i < cfg->nentries; i++) {
        free(cfg->entries[i].key);
        value_free(&cfg->entries[i].v);
    }
    for (size_t i = 0; i < cfg->nsections; i++)
        free(cfg->sections[i].name);
    for (size_t i = 0; i < cfg->nwanted; i++) {
        free(cfg->wanted[i].section);
        free(cfg->wanted[i].key);
    }
    for (size_t i = 0; i < cfg->nwsections; i++)
        free(cfg->wanted_sections[i]);
    for (size_t i = 0; i < cfg->nerrors; i++)
        free(cfg->errors[i]);
    free(cfg->entries);
    free(cfg->sections);
    free(cfg->entry_ix.slots);
    free(cfg->section_ix.slots);
    free(cfg->wanted);
    free(cfg->wanted_sections);
    free(cfg->wanted_ix.slots);
    free(cfg->wsection_ix.slots);
    free(cfg->errors);
    free(cfg->file);
    free(cfg);
}

const char *config_file_name(const nb_config *cfg) {
    return cfg->file;
}

/* ------------------------------------------------------------ getters */

/* Remembers a section name the program knows, for suggestions. */
static void want_section(nb_config *cfg, const char *section) {
    const struct index *ix = &cfg->wsection_ix;
    uint64_t h = section_hash(section);
    if (ix->cap) {
        size_t mask = ix->cap - 1;
        for (size_t i = (size_t)h & mask; ix->slots[i].item; i = (i + 1) & mask)
            if (ix->slots[i].hash == h &&
                strcmp(cfg->wanted_sections[ix->slots[i].item - 1], section) == 0)
                return;
    }
    char **ws = reserve(cfg->wanted_sections, &cfg->capwsections, cfg->nwsections, sizeof *ws);
    if (!ws) {
        cfg->oom = true;
        return;
    }
    cfg->wanted_sections = ws;
    char *copy = dup_str(section);
    if (!copy || index_put(&cfg->wsection_ix, h, cfg->nwsections) != 0) {
        free(copy);
        cfg->oom = true;
        return;
    }
    ws[cfg->nwsections++] = copy;
}

/* Remembers a key the program asks for, for suggestions and lists. */
static void want_key(nb_config *cfg, const char *section, const char *key) {
    want_section(cfg, section);
    const struct index *ix = &cfg->wanted_ix;
    uint64_t h = wanted_hash(section, key);
    if (ix->cap) {
        size_t mask = ix->cap - 1;
        for (size_t i = (size_t)h & mask; ix->slots[i].item; i = (i + 1) & mask) {
            const struct wanted *w = &cfg->wanted[ix->slots[i].item - 1];
            if (ix->slots[i].hash == h && strcmp(w->key, key) == 0 &&
                strcmp(w->section, section) == 0)
                return;
        }
    }
    struct wanted *w = reserve(cfg->wanted, &cfg->capwanted, cfg->nwanted, sizeof *w);
    if (!w) {
        cfg->oom = true;
        return;
    }
    cfg->wanted = w;
    char *s = dup_str(section), *k = dup_str(key);
    if (!s || !k || index_put(&cfg->wanted_ix, h, cfg->nwanted) != 0) {
        free(s);
        free(k);
        cfg->oom = true;
        return;
    }
    w[cfg->nwanted++] = (struct wanted){s, k};
}

/* The entry a getter asks for, marked read; NULL when absent. */
static struct entry *lookup(nb_config *cfg, const char *section, const char *key) {
    want_key(cfg, section, key);
    struct section *s = find_section(cfg, section);
    if (!s)
        return NULL;
    s->known = true;
    struct entry *e = find_entry(cfg, s, key);
    if (e)
        e->read = true;
    return e;
}

/* Reports a value of the wrong type once per key, however often it is read. */
static int mismatch(nb_config *cfg, struct entry *e, const char *expected, const char *hint) {
    if (!e->reported) {
        e->reported = true;
        error_at(cfg, e->line, cfg->sections[e->section].name, e->key, "expected %s, got %s%s",
                 expected, type_name(e->v.type), hint);
    }
    return -1;
}

int config_get_string(nb_config *cfg, const char *section, const char *key, const char *def,
                      const char **out) {
    *out = def;
    struct entry *e = lookup(cfg, section, key);
    if (!e)
        return 0;
    if (e->v.type != V_STRING) {
        char hint[64] = "";
        if (e->v.type == V_INT)
            snprintf(hint, sizeof hint, " (write it in double quotes: \"%" PRId64 "\")", e->v.num);
        else if (e->v.type == V_BOOL)
            snprintf(hint, sizeof hint, " (write it in double quotes: \"%s\")",
                     e->v.num ? "true" : "false");
        return mismatch(cfg, e, "a string", hint);
    }
    *out = e->v.items[0];
    return 1;
}

int config_get_int(nb_config *cfg, const char *section, const char *key, int64_t def, int64_t min,
                   int64_t max, int64_t *out) {
    *out = def;
    struct entry *e = lookup(cfg, section, key);
    if (!e)
        return 0;
    if (e->v.type != V_INT) {
        char hint[SNIPPET_MAX + 40] = "";
        int64_t n;
        const char *str = e->v.type == V_STRING ? e->v.items[0] : NULL;
        if (str && parse_int(str, strlen(str), &n) == INT_OK)
            snprintf(hint, sizeof hint, " (write %" PRId64 " without quotes)", n);
        return mismatch(cfg, e, "an integer", hint);
    }
    if (e->v.num < min || e->v.num > max) {
        if (!e->reported) {
            e->reported = true;
            const char *sec = cfg->sections[e->section].name;
            if (min == INT64_MIN)
                error_at(cfg, e->line, sec, key,
                         "%" PRId64 " is out of range (at most %" PRId64 ")", e->v.num, max);
            else if (max == INT64_MAX)
                error_at(cfg, e->line, sec, key,
                         "%" PRId64 " is out of range (at least %" PRId64 ")", e->v.num, min);
            else
                error_at(cfg, e->line, sec, key,
                         "%" PRId64 " is out of range (%" PRId64 "..%" PRId64 ")", e->v.num, min,
                         max);
        }
        return -1;
    }
    *out = e->v.num;
    return 1;
}

int config_get_bool(nb_config *cfg, const char *section, const char *key, int def, int *out) {
    *out = def;
    struct entry *e = lookup(cfg, section, key);
    if (!e)
        return 0;
    if (e->v.type != V_BOOL) {
        char hint[40] = "";
        const char *str = e->v.type == V_STRING ? e->v.items[0] : NULL;
        if (str && (strcmp(str, "true") == 0 || strcmp(str, "false") == 0))
            snprintf(hint, sizeof hint, " (write %s without quotes)", str);
        return mismatch(cfg, e, "true or false", hint);
    }
    *out = (int)e->v.num;
    return 1;
}

int config_get_string_array(nb_config *cfg, const char *section, const char *key,
                            const char *const **out, size_t *n) {
    *out = NULL;
    *n = 0;
    struct entry *e = lookup(cfg, section, key);
    if (!e)
        return 0;
    if (e->v.type != V_ARRAY && e->v.type != V_STRING)
        return mismatch(cfg, e, "an array of strings", "");
    *out = (const char *const *)e->v.items;
    *n = e->v.n;
    return 1;
}

int config_has_section(nb_config *cfg, const char *section) {
    want_section(cfg, section);
    struct section *s = find_section(cfg, section);
    if (!s)
        return 0;
    s->known = true;
    return 1;
}

void config_skip_section(nb_config *cfg, const char *section) {
    want_section(cfg, section);
    struct section *s = find_section(cfg, section);
    if (!s)
        return;
    s->known = true;
    for (size_t i = 0; i < cfg->nentries; i++)
        if (&cfg->sections[cfg->entries[i].section] == s)
            cfg->entries[i].read = true;
}

void config_error(nb_config *cfg, const char *section, const char *key, const char *fmt, ...) {
    unsigned line = 0;
    if (key)
        want_key(cfg, section, key);
    else
        want_section(cfg, section);
    struct section *s = find_section(cfg, section);
    if (s) {
        s->known = true;
        line = s->line;
        struct entry *e = key ? find_entry(cfg, s, key) : NULL;
        if (key)
            line = e ? e->line : 0;
        if (e)
            e->read = true;
    }
    va_list ap;
    va_start(ap, fmt);
    verror_at(cfg, line, section, key, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------ unread checks */

static char fold(char c) {
    if (c == '-')
        return '_';
    return lower(c);
}

/* Edit distance with adjacent transpositions (optimal string alignment),
 * ignoring case and '-' versus '_'; SIZE_MAX for names too long to compare. */
static size_t distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > SUGGEST_MAX_LEN || lb > SUGGEST_MAX_LEN)
        return SIZE_MAX;
    size_t rows[3][SUGGEST_MAX_LEN + 1];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = fold(a[i - 1]) == fold(b[j - 1]) ? 0 : 1;
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) &&
                fold(a[i - 2]) == fold(b[j - 1]) && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/* The candidate closest to `name`, if close enough to be a likely typo. */
static const char *closest(const char *name, const char *const *cands, size_t n) {
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(cands[i]);
        size_t limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
        size_t d = distance(name, cands[i]);
        if (d <= limit && d < best_d) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void report_unknown_key(nb_config *cfg, struct entry *e) {
    const char *sec = cfg->sections[e->section].name;
    const char **keys = malloc((cfg->nwanted + 1) * sizeof *keys);
    if (!keys) {
        cfg->oom = true;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < cfg->nwanted; i++)
        if (strcmp(cfg->wanted[i].section, sec) == 0)
            keys[n++] = cfg->wanted[i].key;
    const char *best = closest(e->key, keys, n);
    if (best) {
        error_at(cfg, e->line, sec, e->key, "unknown key (did you mean '%s'?)", best);
    } else if (n == 0) {
        error_at(cfg, e->line, sec, e->key,
                 "unknown key (nothing reads a key of [%s]; check the spelling)", sec);
    } else {
        qsort(keys, n, sizeof *keys, cmp_str);
        size_t shown = n > LIST_MAX_KEYS ? LIST_MAX_KEYS : n;
        size_t len = 0;
        for (size_t i = 0; i < shown; i++)
            len += strlen(keys[i]) + 2;
        char *list = malloc(len + 8);
        if (!list) {
            free(keys);
            cfg->oom = true;
            return;
        }
        size_t at = 0;
        for (size_t i = 0; i < shown; i++) {
            size_t kl = strlen(keys[i]);
            if (i) {
                memcpy(list + at, ", ", 2);
                at += 2;
            }
            memcpy(list + at, keys[i], kl);
            at += kl;
        }
        if (shown < n) {
            memcpy(list + at, ", ...", 5);
            at += 5;
        }
        list[at] = '\0';
        error_at(cfg, e->line, sec, e->key,
                 "unknown key (the keys of [%s] are: %s; check the spelling)", sec, list);
        free(list);
    }
    free(keys);
}

static void report_unknown_section(nb_config *cfg, struct section *s) {
    const char *best = closest(s->name, (const char *const *)cfg->wanted_sections, cfg->nwsections);
    if (best)
        error_at(cfg, s->line, s->name, NULL, "unknown section (did you mean [%s]?)", best);
    else
        error_at(cfg, s->line, s->name, NULL,
                 "unknown section (neither the server nor a loaded plugin reads it; check the "
                 "spelling)");
}

void config_check_unread(nb_config *cfg) {
    /* in file order: sections and keys interleaved by line */
    size_t si = 0;
    for (size_t i = 0; i <= cfg->nentries; i++) {
        struct entry *e = i < cfg->nentries ? &cfg->entries[i] : NULL;
        for (; si < cfg->nsections && (!e || cfg->sections[si].line < e->line); si++) {
            struct section *s = &cfg->sections[si];
            if (!s->known && !s->reported) {
                s->reported = true;
                report_unknown_section(cfg, s);
            }
        }
        /* the keys of an unknown section are covered by its own report */
        if (e && !e->read && !e->reported && cfg->sections[e->section].known) {
            e->reported = true;
            report_unknown_key(cfg, e);
        }
    }
}

size_t config_error_count(const nb_config *cfg) {
    return cfg->nerrors + (cfg->oom ? 1 : 0);
}

const char *config_error_at(const nb_config *cfg, size_t i) {
    if (i < cfg->nerrors)
        return cfg->errors[i];
    if (cfg->oom && i == cfg->nerrors)
        return "out of memory: some configuration errors may be missing";
    return NULL;
}
