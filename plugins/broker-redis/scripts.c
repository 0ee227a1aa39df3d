/*
 * scripts.c — everything that must be atomic in Redis is one Lua script:
 * a room's next seq with the stream append and the publication; a
 * history read with its last seq and epoch; a presence claim with the
 * new user list; a heartbeat with the reaping of expired nodes.
 *
 * Scripts are called with EVALSHA (the SHA-1 of the text, computed here);
 * a Redis that does not know one (NOSCRIPT: it restarted, or the script
 * cache was flushed) gets the same call again as EVAL, which loads it.
 * Key names are built inside the scripts from the room or node name
 * (docs/BROKER_REDIS.md lists them); that is fine on a standalone Redis,
 * which is what hiredis 0.14 can drive (no Redis Cluster).
 *
 * A presence list is published as a nebula.v1.Envelope (type PRESENCE,
 * room, users sorted by byte value, seq = the room's presence version),
 * written by the Lua helper below; messages get their seq (field 9)
 * appended by the publish script to the envelope the node sent without it.
 * A join or leave is published before the list that follows from it
 * (type JOIN or LEAVE, room, sender, and the node it happened on in the
 * id field, so that this node does not announce its own users twice).
 */
#include "rb.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Protobuf helpers and the presence publication, shared by the scripts. */
#define PRELUDE                                                                                    \
    "local function varint(n)\n"                                                                   \
    "  local t = {}\n"                                                                             \
    "  while n >= 128 do\n"                                                                        \
    "    t[#t + 1] = string.char(n % 128 + 128)\n"                                                 \
    "    n = math.floor(n / 128)\n"                                                                \
    "  end\n"                                                                                      \
    "  t[#t + 1] = string.char(n)\n"                                                               \
    "  return table.concat(t)\n"                                                                   \
    "end\n"                                                                                        \
    "local function field(tag, s) return string.char(tag) .. varint(#s) .. s end\n"                \
    "local function presence(room)\n"                                                              \
    "  local pv = redis.call('INCR', 'nebula:pv:' .. room)\n"                                      \
    "  local users = redis.call('HKEYS', 'nebula:users:' .. room)\n"                               \
    "  table.sort(users)\n"                                                                        \
    "  local parts = {string.char(8, 4), field(18, room)}\n"                                       \
    "  for _, u in ipairs(users) do parts[#parts + 1] = field(42, u) end\n"                        \
    "  parts[#parts + 1] = string.char(72) .. varint(pv)\n"                                        \
    "  local p = table.concat(parts)\n"                                                            \
    "  redis.call('PUBLISH', 'nebula:room:' .. room, p)\n"                                         \
    "  return p\n"                                                                                 \
    "end\n"                                                                                        \
    "local function event(kind, room, user, node)\n"                                               \
    "  redis.call('PUBLISH', 'nebula:room:' .. room, string.char(8, kind) .. field(18, room)\n"    \
    "             .. field(26, user) .. field(50, node))\n"                                        \
    "end\n"                                                                                        \
    "local function reap(id)\n"                                                                    \
    "  local nk = 'nebula:nodeusers:' .. id\n"                                                     \
    "  for _, e in ipairs(redis.call('SMEMBERS', nk)) do\n"                                        \
    "    local at = string.find(e, '\\n', 1, true)\n"                                              \
    "    if at then\n"                                                                             \
    "      local room, user = string.sub(e, 1, at - 1), string.sub(e, at + 1)\n"                   \
    "      if redis.call('HGET', 'nebula:users:' .. room, user) == id then\n"                      \
    "        redis.call('HDEL', 'nebula:users:' .. room, user)\n"                                  \
    "        event(3, room, user, id)\n"                                                           \
    "        presence(room)\n"                                                                     \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  redis.call('DEL', nk)\n"                                                                    \
    "  redis.call('SREM', 'nebula:nodes', id)\n"                                                   \
    "end\n"

/* ARGV: stream length, epoch candidate, then for each message its room
 * and its envelope without seq and ts. A batch of messages published in
 * one loop turn (batch.c): each gets its room's next seq (one INCRBY per
 * room reserves them) and Redis's time (one clock for the whole cluster,
 * so history and live copies carry the same ts; read once per call), is
 * appended to its room's stream and published, in the order given. Only
 * varint is defined here: every call defines its helpers again, so the
 * text stays small (docs/PERFORMANCE.md measured what that costs). A
 * message whose XADD fails gets that error in its place and is not
 * published (its seq is spent), as a failed single call would; the others
 * go on. Returns the seqs (or errors) in order. */
static const char publish_lua[] =
    "local function varint(n)\n"
    "  local t = {}\n"
    "  while n >= 128 do\n"
    "    t[#t + 1] = string.char(n % 128 + 128)\n"
    "    n = math.floor(n / 128)\n"
    "  end\n"
    "  t[#t + 1] = string.char(n)\n"
    "  return table.concat(t)\n"
    "end\n"
    "local t = redis.call('TIME')\n"
    "local ts = string.char(56) .. varint(tonumber(t[1]) * 1000\n"
    "                                     + math.floor(tonumber(t[2]) / 1000))\n"
    "local count, last, out = {}, {}, {}\n"
    "for i = 3, #ARGV - 1, 2 do count[ARGV[i]] = (count[ARGV[i]] or 0) + 1 end\n"
    "for room, n in pairs(count) do\n"
    "  redis.call('SET', 'nebula:epoch:' .. room, ARGV[2], 'NX')\n"
    "  last[room] = redis.call('INCRBY', 'nebula:seq:' .. room, n) - n\n"
    "end\n"
    "for i = 3, #ARGV - 1, 2 do\n"
    "  local room = ARGV[i]\n"
    "  local seq = last[room] + 1\n"
    "  last[room] = seq\n"
    "  local p = ARGV[i + 1] .. ts .. string.char(72) .. varint(seq)\n"
    "  local added = redis.pcall('XADD', 'nebula:log:' .. room, 'MAXLEN', '~', ARGV[1],\n"
    "                            string.format('%d-0', seq), 'd', p)\n"
    "  if type(added) == 'table' and added.err then\n"
    "    out[#out + 1] = added\n"
    "  else\n"
    "    redis.call('PUBLISH', 'nebula:room:' .. room, p)\n"
    "    out[#out + 1] = seq\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: room, count, since ("" = the newest), epoch candidate.
 * Returns {last seq, epoch, first seq kept, envelopes newest first...}. */
static const char load_lua[] =
    "local room = ARGV[1]\n"
    "redis.call('SET', 'nebula:epoch:' .. room, ARGV[4], 'NX')\n"
    "local epoch = redis.call('GET', 'nebula:epoch:' .. room)\n"
    "local last = tonumber(redis.call('GET', 'nebula:seq:' .. room) or '0')\n"
    "local key = 'nebula:log:' .. room\n"
    "local low = '-'\n"
    "if ARGV[3] ~= '' then low = string.format('%d-0', tonumber(ARGV[3]) + 1) end\n"
    "local out = {last, epoch, 0}\n"
    "local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)\n"
    "if first[1] then out[3] = tonumber(string.match(first[1][1], '^(%d+)')) end\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  for _, e in ipairs(redis.call('XREVRANGE', key, '+', low, 'COUNT', ARGV[2])) do\n"
    "    out[#out + 1] = e[2][2]\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: claim | force | release, room, user, node. Returns the new
 * presence envelope, or 0 (claim: the name is another live node's;
 * release: it was not this node's). */
static const char presence_lua[] =
    PRELUDE "local mode, room, user, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
            "local uk = 'nebula:users:' .. room\n"
            "local nk = 'nebula:nodeusers:' .. node\n"
            "local entry = room .. '\\n' .. user\n"
            "local holder = redis.call('HGET', uk, user)\n"
            "if mode == 'release' then\n"
            "  redis.call('SREM', nk, entry)\n"
            "  if holder ~= node then return 0 end\n"
            "  redis.call('HDEL', uk, user)\n"
            "  event(3, room, user, node)\n"
            "  return presence(room)\n"
            "end\n"
            "if mode == 'claim' and holder and holder ~= node\n"
            "   and redis.call('EXISTS', 'nebula:node:' .. holder) == 1 then\n"
            "  return 0\n"
            "end\n"
            "redis.call('HSET', uk, user, node)\n"
            "redis.call('SADD', nk, entry)\n"
            "if mode == 'claim' then event(2, room, user, node) end\n"
            "return presence(room)\n";

/* ARGV: node, "connections rooms", ttl ms. Refreshes this node, reaps
 * the nodes whose key expired (their users leave, corrected lists are
 * published) and returns {node, counts, ...} of the live ones. */
static const char beat_lua[] =
    PRELUDE "local me = ARGV[1]\n"
            "redis.call('SET', 'nebula:node:' .. me, ARGV[2], 'PX', ARGV[3])\n"
            "redis.call('SADD', 'nebula:nodes', me)\n"
            "local out = {}\n"
            "for _, id in ipairs(redis.call('SMEMBERS', 'nebula:nodes')) do\n"
            "  local v = redis.call('GET', 'nebula:node:' .. id)\n"
            "  if v then out[#out + 1] = id; out[#out + 1] = v else reap(id) end\n"
            "end\n"
            "return out\n";

/* ARGV: node. This node leaves: its key goes and its users with it. */
static const char leave_lua[] = PRELUDE "redis.call('DEL', 'nebula:node:' .. ARGV[1])\n"
                                        "reap(ARGV[1])\n"
                                        "return 1\n";

static const char *const texts[RB_SCRIPT_COUNT] = {publish_lua, load_lua, presence_lua, beat_lua,
                                                   leave_lua};
static char shas[RB_SCRIPT_COUNT][41];

void rb_scripts_init(void) {
    for (int i = 0; i < RB_SCRIPT_COUNT; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_Digest(texts[i], strlen(texts[i]), md, &n, EVP_sha1(), NULL) != 1 || n != 20) {
            shas[i][0] = '\0'; /* EVALSHA then always falls back to EVAL */
            continue;
        }
        for (unsigned int k = 0; k < 20; k++)
            snprintf(shas[i] + (size_t)2 * k, 3, "%02x", md[k]);
    }
}

const char *rb_script_text(int script) {
    return texts[script];
}

/* A call kept until answered, to send again as EVAL on NOSCRIPT: its
 * argv with three slots in front (EVAL or EVALSHA, the script, "0"). */
typedef struct rb_call {
    int script;
    int nargs;
    int retried;
    rb_reply_fn fn;
    void *user;
    const char **argv; /* 3 + nargs */
    size_t *lens;
    /* then: the lens, the argv, the arguments back to back */
} rb_call;

static int32_t send_call(rb_link *l, rb_call *c, int eval);

static void on_script_reply(rb_link *l, redisReply *reply, void *user) {
    rb_call *c = user;
    if (reply && reply->type == REDIS_REPLY_ERROR && !c->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        c->retried = 1;
        if (send_call(l, c, 1) == NB_OK)
            return;
        reply = NULL; /* could not send again: answered as a failure */
    }
    c->fn(l, reply, c->user);
    free(c);
}

static int32_t send_call(rb_link *l, rb_call *c, int eval) {
    c->argv[0] = eval ? "EVAL" : "EVALSHA";
    c->lens[0] = strlen(c->argv[0]);
    c->argv[1] = eval ? texts[c->script] : shas[c->script];
    c->lens[1] = strlen(c->argv[1]);
    c->argv[2] = "0";
    c->lens[2] = 1;
    /* a batch of publishes counts one per message against max_pending */
    uint32_t weight = c->script == RB_SCRIPT_PUBLISH ? (uint32_t)(c->nargs - 2) / 2 : 1;
    return rb_link_command(l, weight, on_script_reply, c, 3 + c->nargs, c->argv, c->lens);
}

int32_t rb_script_call(rb_link *l, int script, int nkeys, int nargs, const char **strs,
                       const size_t *lens, rb_reply_fn fn, void *user) {
    (void)nkeys; /* every key is built by the script (see above) */
    if (nargs < 0 || nargs > RB_SCRIPT_MAX_ARGS)
        return NB_ERR_INVALID;
    /* Anything else sent on this instance goes after the publishes
     * collected before it, as if each had been sent when made. */
    if (script != RB_SCRIPT_PUBLISH)
        rb_batch_flush(l);
    size_t slots = 3 + (size_t)nargs, total = 0;
    for (int i = 0; i < nargs; i++)
        total += lens[i];
    rb_call *c = malloc(sizeof *c + slots * (sizeof(size_t) + sizeof(char *)) + total + 1);
    if (!c)
        return NB_ERR_NOMEM;
    c->script = script;
    c->nargs = nargs;
    c->retried = 0;
    c->fn = fn;
    c->user = user;
    c->lens = (size_t *)(void *)(c + 1);
    c->argv = (const char **)(void *)(c->lens + slots);
    char *w = (char *)(void *)(c->argv + slots);
    for (int i = 0; i < nargs; i++) {
        if (lens[i])
            memcpy(w, strs[i], lens[i]);
        c->argv[3 + i] = w;
        c->lens[3 + i] = lens[i];
        w += lens[i];
    }
    int32_t rc = send_call(l, c, shas[script][0] == '\0');
    if (rc != NB_OK)
        free(c);
    return rc;
}
