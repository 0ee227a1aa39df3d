/*
 * schema.h — store-sqlite's current schema, the one text both the plugin
 * (schema.c, for a new database) and tools/nebula-store (convert, which
 * writes a database the plugin opens as its own) create. docs/STORES.md
 * explains each table.
 *
 * Version 3 keeps messages in arrival order (a rowid table) with a unique
 * index on (room, seq): a batch appends its rows at the end of the table,
 * so it writes a few pages of rows plus one index page per room it
 * touches. Version 2 clustered the rows by (room, seq) (WITHOUT ROWID),
 * which split and rewrote several pages per room in every batch: about
 * three times the WAL and half the durable throughput (docs/PERFORMANCE.md).
 */
#ifndef NEBULA_STORE_SQLITE_SCHEMA_H
#define NEBULA_STORE_SQLITE_SCHEMA_H

#define SQ_SCHEMA_VERSION 3

/* The messages table and its index, apart: the migration from version 2
 * fills the table before it builds the index (one sorted pass). */
#define SQ_SCHEMA_MESSAGES_TABLE                                                                   \
    "CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,"           \
    " ts INTEGER NOT NULL, sender TEXT NOT NULL, content TEXT NOT NULL);"
#define SQ_SCHEMA_MESSAGES_INDEX "CREATE UNIQUE INDEX messages_room_seq ON messages (room, seq);"

#define SQ_SCHEMA_SQL                                                                              \
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"                                      \
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"                 \
    "CREATE TABLE rooms (room TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT "               \
    "ROWID;" SQ_SCHEMA_MESSAGES_TABLE SQ_SCHEMA_MESSAGES_INDEX                                     \
    "INSERT INTO schema_version VALUES (3);"

#endif
