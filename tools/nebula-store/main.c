/*
 * nebula-store — look after a store's data files by hand:
 *
 *   nebula-store check FILE [--fix]   verify a store-aof file; the first bad
 *                                     offset; --fix cuts the file there
 *   nebula-store dump FILE            every record as a JSON line
 *   nebula-store convert SRC DST      store-aof <-> store-sqlite
 *
 * Exit status: 0 done, 1 failure (a damaged file, an I/O error), 2 usage.
 * docs/STORES.md has the details.
 */
#include "nebula_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: nebula-store check FILE [--fix]\n"
    "       nebula-store dump FILE\n"
    "       nebula-store convert SRC DST [--from aof|sqlite] [--to aof|sqlite]\n"
    "\n"
    "Look after the data of Nebula's stores (docs/STORES.md). Stop the server\n"
    "that uses a file before changing it.\n"
    "\n"
    "  check FILE         verify a store-aof file: its header and every record's\n"
    "                     checksums. Prints the number of records, or the offset of\n"
    "                     the first bad record and whether valid records follow it\n"
    "                     (damage in the middle, which the server refuses) or not\n"
    "                     (a torn tail, which the server cuts by itself).\n"
    "  check FILE --fix   the same, then cut the file at the first bad record,\n"
    "                     after saying how many valid records after it are lost.\n"
    "  dump FILE          every record of a store-aof file as one JSON line:\n"
    "                     {\"room\",\"seq\",\"ts\",\"id\",\"sender\",\"content\"}; a room mark\n"
    "                     (a room's last seq when none of its messages is kept) as\n"
    "                     {\"room\",\"seq\",\"mark\":true}.\n"
    "  convert SRC DST    copy the history of one store to a new file of the other:\n"
    "                     store-aof (.aof) to store-sqlite (.db, .sqlite, .sqlite3) or\n"
    "                     back, keeping the epoch, so clients' `since` stays valid.\n"
    "                     Other names need --from / --to. DST must not exist.\n"
    "\n"
    "Exit status: 0 done, 1 failure (damaged file, I/O error), 2 usage.\n";

static int usage(const char *why) {
    if (why)
        fprintf(stderr, "nebula-store: %s\n\n", why);
    fputs(usage_text, stderr);
    return 2;
}

int aof_map_open(aof_map *m, const char *path) {
    memset(m, 0, sizeof *m);
    m->path = path;
    m->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (m->fd < 0 || fstat(m->fd, &st) != 0) {
        fprintf(stderr, "nebula-store: %s: %s\n", path, strerror(errno));
        if (m->fd >= 0)
            close(m->fd);
        return -1;
    }
    m->size = (uint64_t)st.st_size;
    if (m->size) {
        void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_SHARED, m->fd, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "nebula-store: %s: cannot map it: %s\n", path, strerror(errno));
            close(m->fd);
            return -1;
        }
        m->data = p;
        madvise(p, (size_t)m->size, MADV_SEQUENTIAL);
    }
    const char *why =
        m->size ? aof_header_check(m->data, (size_t)m->size, m->epoch) : "the file is empty";
    if (why) {
        fprintf(stderr, "nebula-store: %s: %s\n", path, why);
        aof_map_close(m);
        return -1;
    }
    return 0;
}

void aof_map_close(aof_map *m) {
    if (m->data)
        munmap((void *)m->data, (size_t)m->size);
    if (m->fd >= 0)
        close(m->fd);
    m->data = NULL;
    m->fd = -1;
}

typedef struct counts {
    uint64_t records, marks;
} counts;

static int count(void *user, const aof_record *r, uint64_t off, uint64_t len) {
    counts *c = user;
    if (r->kind == AOF_KIND_MARK)
        c->marks++;
    else
        c->records++;
    return 0;
}

/* Valid records from `off` on, skipping over damage. */
static uint64_t count_valid_from(const aof_map *m, uint64_t off) {
    counts c = {0};
    while (off && off < m->size) {
        uint64_t bad = 0;
        if (aof_scan(m->data, m->size, off, count, &c, &bad) == AOF_OK)
            break;
        off = aof_find_valid_after(m->data, m->size, bad);
    }
    return c.records + c.marks;
}

static int cmd_check(const char *path, int fix) {
    aof_map m;
    if (aof_map_open(&m, path) != 0)
        return 1;
    counts c = {0};
    uint64_t bad = 0;
    aof_decode_rc rc = aof_scan(m.data, m.size, AOF_HEADER_SIZE, count, &c, &bad);
    if (rc == AOF_OK) {
        printf("%s: ok: %llu messages, %llu room marks, %llu bytes, epoch %s\n", path,
               (unsigned long long)c.records, (unsigned long long)c.marks,
               (unsigned long long)m.size, m.epoch);
        aof_map_close(&m);
        return 0;
    }
    uint64_t next = rc == AOF_SHORT ? 0 : aof_find_valid_after(m.data, m.size, bad);
    uint64_t lost = next ? count_valid_from(&m, next) : 0;
    uint64_t good = c.records + c.marks;
    printf("%s: %llu good records, then at offset %llu: %s\n", path, (unsigned long long)good,
           (unsigned long long)bad, aof_decode_reason(rc));
    if (next)
        printf("%s: valid records follow (the next at offset %llu; %llu in all): damage in the "
               "middle, which the server refuses to start with\n",
               path, (unsigned long long)next, (unsigned long long)lost);
    else
        printf("%s: nothing valid after it: a torn tail of %llu bytes, which the server cuts "
               "at start\n",
               path, (unsigned long long)(m.size - bad));
    aof_map_close(&m);
    if (!fix) {
        printf("%s: `nebula-store check --fix %s` cuts the file at offset %llu%s\n", path, path,
               (unsigned long long)bad, lost ? ", losing the valid records after it" : "");
        return 1;
    }
    printf("%s: cutting at offset %llu: %llu bytes and %llu valid records after it are lost\n",
           path, (unsigned long long)bad, (unsigned long long)(m.size - bad),
           (unsigned long long)lost);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)bad) != 0 || fsync(fd) != 0) {
        fprintf(stderr, "nebula-store: cannot cut %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    close(fd);
    printf("%s: fixed: %llu bytes\n", path, (unsigned long long)bad);
    return 0;
}

/* JSON string of arbitrary bytes: UTF-8 passes through, control bytes,
 * quote and backslash are escaped (content is stored as bytes). */
static void json_str(const uint8_t *p, uint32_t len) {
    putchar('"');
    for (uint32_t i = 0; i < len; i++) {
        uint8_t ch = p[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static int dump_one(void *user, const aof_record *r, uint64_t off, uint64_t len) {
    fputs("{\"room\":", stdout);
    json_str(r->room, r->room_len);
    printf(",\"seq\":%llu", (unsigned long long)r->seq);
    if (r->kind == AOF_KIND_MARK) {
        fputs(",\"mark\":true}\n", stdout);
        return 0;
    }
    printf(",\"ts\":%lld,\"id\":", (long long)r->ts);
    json_str(r->id, r->id_len);
    fputs(",\"sender\":", stdout);
    json_str(r->sender, r->sender_len);
    fputs(",\"content\":", stdout);
    json_str(r->content, r->content_len);
    fputs("}\n", stdout);
    return 0;
}

static int cmd_dump(const char *path) {
    aof_map m;
    if (aof_map_open(&m, path) != 0)
        return 1;
    uint64_t bad = 0;
    aof_decode_rc rc = aof_scan(m.data, m.size, AOF_HEADER_SIZE, dump_one, NULL, &bad);
    aof_map_close(&m);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "nebula-store: writing the dump: %s\n", strerror(errno));
        return 1;
    }
    if (rc != AOF_OK) {
        fprintf(stderr, "nebula-store: %s: stopped at offset %llu: %s (nebula-store check %s)\n",
                path, (unsigned long long)bad, aof_decode_reason(rc), path);
        return 1;
    }
    return 0;
}

/* "aof" or "sqlite" from --from/--to or the file name's extension. */
static const char *kind_of(const char *path, const char *given) {
    if (given)
        return !strcmp(given, "aof") || !strcmp(given, "sqlite") ? given : NULL;
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/'))
        return NULL;
    if (!strcmp(dot, ".aof"))
        return "aof";
    if (!strcmp(dot, ".db") || !strcmp(dot, ".sqlite") || !strcmp(dot, ".sqlite3"))
        return "sqlite";
    return NULL;
}

static int cmd_convert(int argc, char **argv) {
    const char *src = NULL, *dst = NULL, *from = NULL, *to = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--from") || !strcmp(argv[i], "--to")) {
            if (i + 1 == argc)
                return usage("--from and --to need a value: aof or sqlite");
            *(argv[i][2] == 'f' ? &from : &to) = argv[i + 1];
            i++;
        } else if (!src) {
            src = argv[i];
        } else if (!dst) {
            dst = argv[i];
        } else {
            return usage("convert takes two files");
        }
    }
    if (!src || !dst)
        return usage("convert needs SRC and DST");
    const char *fk = kind_of(src, from), *tk = kind_of(dst, to);
    if (!fk || !tk)
        return usage("cannot tell the store of a file from its name: use --from / --to "
                     "aof|sqlite (.aof is store-aof; .db, .sqlite, .sqlite3 are store-sqlite)");
    if (!strcmp(fk, tk))
        return usage("SRC and DST are the same kind of store: nothing to convert");
    if (access(dst, F_OK) == 0) {
        fprintf(stderr, "nebula-store: %s exists; convert writes a new file only\n", dst);
        return 1;
    }
    return !strcmp(fk, "aof") ? convert_aof_to_sqlite(src, dst) : convert_sqlite_to_aof(src, dst);
}

int main(int argc, char **argv) {
    if (argc < 2)
        return usage(NULL);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "check")) {
        int fix = 0;
        const char *file = NULL;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--fix"))
                fix = 1;
            else if (!file)
                file = argv[i];
            else
                return usage("check takes one FILE");
        }
        return file ? cmd_check(file, fix) : usage("check needs a FILE");
    }
    if (!strcmp(cmd, "dump"))
        return argc == 3 ? cmd_dump(argv[2]) : usage("dump takes one FILE");
    if (!strcmp(cmd, "convert"))
        return cmd_convert(argc, argv);
    char why[128];
    snprintf(why, sizeof why, "unknown command \"%.40s\"", cmd);
    return usage(why);
}
