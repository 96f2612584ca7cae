/* SPDX-License-Identifier: MIT */
/*
 * tunnels.h -- the layers a flow came through, stored once per flow when
 * it is created (only for flows that have any), and their expansion from
 * the parser's compact records (struct mosfw_tun_layer) into struct
 * mosfw_tunnel.
 */
#ifndef MOSFW_TUNNELS_H
#define MOSFW_TUNNELS_H

#include <stdint.h>

#include "mosfw_api.h"
#include "packet.h"

/* per flow slot: its layers (NULL when none). Sized to the layers the
 * slot's flows had (cap), not to MOSFW_MAX_TUNNELS: a 704-byte block per
 * flow cost a page fault every 6 flows (8,500 on the 50k-connection
 * VXLAN bench copy, bench/README.md) for the 44 bytes one layer needs. */
struct mosfw_flow_tun {
	struct mosfw_tunnel *t;
	uint32_t n, cap;
};

struct mosfw_tun_store {
	struct mosfw_flow_tun *by_slot; /* allocated at the first flow with layers */
	uint32_t cap;                   /* slots */
	uint32_t used;                  /* slots below it were ever written: freeing
	                                   walks only those, not the whole calloc'd
	                                   array (3,800 page faults at the end of
	                                   the 50k-connection VXLAN bench) */
};

/* A flow was created in slot from packet p: keep its layers (none: drop
 * what the slot held before). -1 when out of memory (the flow then shows
 * no layers). */
int mosfw_tun_flow_created(struct mosfw_tun_store *s, uint32_t pool_cap, uint32_t slot,
                           const struct mosfw_pkt *p);
int mosfw_tun_flow_get(const struct mosfw_tun_store *s, uint32_t slot, struct mosfw_tunnel *out,
                       int max);
void mosfw_tun_store_free(struct mosfw_tun_store *s);

/* p's layers (as mosfw_parse() left them, its frame still valid) */
int mosfw_tun_expand(const struct mosfw_pkt *p, struct mosfw_tunnel *out, int max);

#endif /* MOSFW_TUNNELS_H */
