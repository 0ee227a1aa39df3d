/*
 * peers.c — limits per client address (peers.h).
 *
 * Why per address as well as per connection: a client that opens twenty
 * connections gets twenty rate limits and twenty output queues. The
 * defaults (docs/CONFIG.md) are sized so that a NAT or a proxy holding a
 * few hundred honest users still passes; what must pass without any limit
 * (a local reverse proxy through which every client arrives) goes in the
 * allowlist, which holds loopback by default.
 */
#include "peers.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct nb_peer {
    uint8_t addr[16];
    uint32_t conns;
    int64_t tokens_milli; /* shared token bucket, thousandths of a message */
    int64_t tokens_at_ms;
    nb_peer *next;
};

#define PEERS_BUCKETS 4096u /* power of two; chains stay short for ~20k peers */

struct nb_peers {
    pthread_mutex_t lock;
    nb_peer *buckets[PEERS_BUCKETS];
    uint32_t n_peers;
    uint32_t max_conns;
    uint32_t rate;
    uint32_t burst;
    nb_cidr allow[NB_ALLOWLIST_MAX];
    uint32_t n_allow;
};

/* IPv4 becomes ::ffff:A.B.C.D, so one comparison serves both families. */
static int parse_addr(const char *text, size_t len, uint8_t out[16]) {
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    struct in_addr v4;
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

static int is_v4_mapped(const uint8_t a[16]) {
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, prefix, sizeof prefix) == 0;
}

int peers_parse_cidr(const char *text, nb_cidr *out) {
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    if (parse_addr(text, len, out->addr) != 0)
        return -1;
    uint32_t max = is_v4_mapped(out->addr) ? 32 : 128;
    out->bits = max;
    if (slash) {
        char *end = NULL;
        long bits = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end || bits < 0 || bits > (long)max)
            return -1;
        out->bits = (uint32_t)bits;
    }
    if (max == 32)
        out->bits += 96; /* the mapped prefix always matches */
    return 0;
}

static int cidr_match(const nb_cidr *c, const uint8_t a[16]) {
    uint32_t full = c->bits / 8;
    uint32_t rest = c->bits % 8;
    if (memcmp(c->addr, a, full) != 0)
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (a[full] & mask);
}

nb_peers *peers_new(uint32_t connections_per_address, uint32_t messages_per_second, uint32_t burst,
                    const nb_cidr *allow, uint32_t n_allow) {
    nb_peers *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    p->max_conns = connections_per_address;
    p->rate = messages_per_second;
    p->burst = burst;
    p->n_allow = n_allow < NB_ALLOWLIST_MAX ? n_allow : NB_ALLOWLIST_MAX;
    if (p->n_allow)
        memcpy(p->allow, allow, p->n_allow * sizeof *allow);
    return p;
}

void peers_free(nb_peers *p) {
    if (!p)
        return;
    for (uint32_t b = 0; b < PEERS_BUCKETS; b++) {
        nb_peer *e = p->buckets[b];
        while (e) {
            nb_peer *next = e->next;
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static uint32_t bucket_of(const uint8_t a[16]) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++) {
        h ^= a[i];
        h *= 16777619u;
    }
    return h & (PEERS_BUCKETS - 1);
}

/* "1.2.3.4:port" or "[v6]:port": the address part. */
static int peer_address(const char *peer, uint8_t out[16]) {
    if (!peer)
        return -1;
    if (peer[0] == '[') {
        const char *close = strchr(peer, ']');
        return close ? parse_addr(peer + 1, (size_t)(close - peer - 1), out) : -1;
    }
    const char *colon = strrchr(peer, ':');
    return parse_addr(peer, colon ? (size_t)(colon - peer) : strlen(peer), out);
}

int peers_acquire(nb_peers *p, const char *peer, nb_peer **out) {
    *out = NULL;
    uint8_t a[16];
    if (!p || (p->max_conns == 0 && p->rate == 0) || peer_address(peer, a) != 0)
        return 0;
    for (uint32_t i = 0; i < p->n_allow; i++)
        if (cidr_match(&p->allow[i], a))
            return 0;
    uint32_t b = bucket_of(a);
    pthread_mutex_lock(&p->lock);
    nb_peer *e = p->buckets[b];
    while (e && memcmp(e->addr, a, 16) != 0)
        e = e->next;
    if (e && p->max_conns && e->conns >= p->max_conns) {
        pthread_mutex_unlock(&p->lock);
        return -1;
    }
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) { /* out of memory: the connection goes on without address limits */
            pthread_mutex_unlock(&p->lock);
            return 0;
        }
        memcpy(e->addr, a, 16);
        e->tokens_milli = (int64_t)p->burst * 1000;
        e->tokens_at_ms = INT64_MIN; /* set at its first message */
        e->next = p->buckets[b];
        p->buckets[b] = e;
        p->n_peers++;
    }
    e->conns++;
    *out = e;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void peers_release(nb_peers *p, nb_peer *e) {
    if (!p || !e)
        return;
    pthread_mutex_lock(&p->lock);
    if (--e->conns == 0) {
        nb_peer **pp = &p->buckets[bucket_of(e->addr)];
        while (*pp != e)
            pp = &(*pp)->next;
        *pp = e->next;
        p->n_peers--;
        free(e);
    }
    pthread_mutex_unlock(&p->lock);
}

int peers_take_token(nb_peers *p, nb_peer *e, int64_t now) {
    if (!e || p->rate == 0)
        return 1;
    int ok = 0;
    pthread_mutex_lock(&p->lock);
    int64_t cap = (int64_t)p->burst * 1000;
    if (e->tokens_at_ms == INT64_MIN)
        e->tokens_at_ms = now;
    int64_t elapsed = now - e->tokens_at_ms;
    if (elapsed > 0) {
        e->tokens_milli += elapsed * p->rate;
        if (e->tokens_milli > cap)
            e->tokens_milli = cap;
        e->tokens_at_ms = now;
    }
    if (e->tokens_milli >= 1000) {
        e->tokens_milli -= 1000;
        ok = 1;
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

uint32_t peers_count(nb_peers *p) {
    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    uint32_t n = p->n_peers;
    pthread_mutex_unlock(&p->lock);
    return n;
}
