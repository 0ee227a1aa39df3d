/*
 * peers.h — limits per client address: how many connections one source
 * address may hold ([limits] connections_per_address) and how many
 * messages per second its connections may send together
 * ([limits] messages_per_second_per_address), with an allowlist of
 * addresses and networks the limits do not apply to
 * ([limits] address_allowlist, CIDR).
 *
 * One table for the process (any I/O thread), under one lock: it is
 * touched when a connection opens or closes and once per message of a
 * connection that is not allowlisted.
 */
#ifndef NEBULA_CORE_PEERS_H
#define NEBULA_CORE_PEERS_H

#include "config.h"

#include <stdint.h>

typedef struct nb_peers nb_peers;
typedef struct nb_peer nb_peer; /* one address's entry; opaque */

/* One allowlist entry: an address (IPv4 as IPv4-mapped IPv6) and the
 * number of leading bits that must match. */
typedef struct nb_cidr {
    uint8_t addr[16];
    uint32_t bits;
} nb_cidr;

#define NB_ALLOWLIST_MAX 64

/* Parse "A.B.C.D", "A.B.C.D/N", "V6" or "V6/N" into *out; 0, or -1 when
 * malformed. */
int peers_parse_cidr(const char *text, nb_cidr *out);

/* A table with these limits (0 = no limit); NULL when out of memory. */
nb_peers *peers_new(uint32_t connections_per_address, uint32_t messages_per_second, uint32_t burst,
                    const nb_cidr *allow, uint32_t n_allow);
void peers_free(nb_peers *p);

/* A connection from `peer` ("address:port" or "[v6]:port", as the
 * transport reports it) opens. Returns 0 and sets *out to its address's
 * entry (NULL when the address is allowlisted or unparsable: no limits),
 * or -1 when the address already holds connections_per_address
 * connections (*out = NULL). */
int peers_acquire(nb_peers *p, const char *peer, nb_peer **out);
/* The connection of an entry peers_acquire returned has closed. */
void peers_release(nb_peers *p, nb_peer *e);

/* 1 when the address may send one more message at now_ms (a token bucket
 * shared by its connections), and takes the token; 0 when over the rate. */
int peers_take_token(nb_peers *p, nb_peer *e, int64_t now_ms);

/* Distinct addresses with an open connection (for the metric). */
uint32_t peers_count(nb_peers *p);
#endif
