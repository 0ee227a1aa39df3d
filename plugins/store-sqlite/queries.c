/*
 * queries.c — every statement a batch or a load runs, prepared once in
 * start(). In one table so that the unit tests can check each query plan
 * (the index on (room, seq) serves all of them, no table scan).
 */
#include "sq.h"

const char *const sq_sql[ST_COUNT_ALL] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INSERT] = "INSERT INTO messages(room, seq, id, ts, sender, content) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_ROOM_SEQ] = "INSERT INTO rooms(room, last_seq) VALUES (?1, ?2) ON CONFLICT(room) "
                    "DO UPDATE SET last_seq = excluded.last_seq "
                    "WHERE excluded.last_seq > rooms.last_seq",
    [ST_LAST_SEQ] = "SELECT max(coalesce((SELECT last_seq FROM rooms WHERE room = ?1), 0), "
                    "coalesce((SELECT max(seq) FROM messages WHERE room = ?1), 0))",
    [ST_COUNT] = "SELECT count(*) FROM messages WHERE room = ?1",
    [ST_NTH_OLDEST] = "SELECT seq FROM messages WHERE room = ?1 ORDER BY seq LIMIT 1 OFFSET ?2",
    [ST_DROP_BELOW] = "DELETE FROM messages WHERE room = ?1 AND seq < ?2",
    [ST_OLDEST_PAGE] = "SELECT seq, ts FROM messages WHERE room = ?1 ORDER BY seq LIMIT ?2",
    [ST_ROOMS_AFTER] = "SELECT room FROM rooms WHERE room > ?1 ORDER BY room LIMIT ?2",
    [ST_FIRST_KEPT] = "SELECT seq FROM messages WHERE room = ?1 AND ts >= ?2 ORDER BY seq LIMIT 1",
    [ST_NEWEST_FLOOR] = "SELECT seq FROM messages WHERE room = ?1 AND seq > ?2 AND ts >= ?3 "
                        "ORDER BY seq DESC LIMIT 1 OFFSET ?4",
    [ST_RANGE] = "SELECT seq, ts, id, sender, content FROM messages "
                 "WHERE room = ?1 AND seq >= ?2 AND ts >= ?3 ORDER BY seq LIMIT ?4",
};
