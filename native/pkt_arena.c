/* SPDX-License-Identifier: MIT */
/* pkt_arena.c -- per-burst copies of the packets that made records. */
#include "pkt_arena.h"

#include <stdlib.h>
#include <string.h>

#include "packet.h"

struct mosfw_arena *mosfw_arena_new(uint32_t burst_packets)
{
	struct mosfw_arena *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	/* a burst reads at most burst_packets, plus one held from the last */
	a->cap = burst_packets + 2;
	a->pkts = calloc(a->cap, sizeof(*a->pkts));
	a->buf = malloc(MOSFW_ARENA_BYTES);
	if (!a->pkts || !a->buf) {
		mosfw_arena_free(a);
		return NULL;
	}
	return a;
}

void mosfw_arena_free(struct mosfw_arena *a)
{
	if (!a)
		return;
	free(a->pkts);
	free(a->buf);
	free(a);
}

void mosfw_arena_reset(struct mosfw_arena *a)
{
	a->n = 0;
	a->used = 0;
	a->last_index = 0;
}

void mosfw_arena_note(struct mosfw_arena *a, uint32_t pkt_index, double ts, const uint8_t *frame,
                      uint32_t caplen, uint32_t wirelen, const struct mosfw_pkt *p, int stable)
{
	struct mosfw_packet *e;

	if (pkt_index == a->last_index && a->n)
		return;
	if (caplen > MOSFW_ARENA_MAX_FRAME)
		caplen = MOSFW_ARENA_MAX_FRAME;
	if (a->n >= a->cap || a->used + caplen > MOSFW_ARENA_BYTES || !frame)
		return; /* cannot happen: the core keeps room for one packet */
	a->last_index = pkt_index;
	e = &a->pkts[a->n++];
	memset(e, 0, sizeof(*e));
	if (stable) {
		e->frame = frame;
	} else {
		memcpy(a->buf + a->used, frame, caplen);
		e->frame = a->buf + a->used;
		a->used += (caplen + 7u) & ~7u;
	}
	e->ts = ts;
	e->pkt_index = pkt_index;
	e->caplen = caplen;
	e->wirelen = wirelen;
	e->l3_off = (uint32_t)(p->l3 - frame);
	e->l4_off = (uint32_t)(p->l4 - frame);
	e->payload_off = (uint32_t)(p->payload - frame); /* <= caplen, options may be cut */
	e->ip_len = p->ip_len;
	e->payload_len = p->payload_len;
	e->payload_caplen = p->payload_caplen;
	e->seq = p->seq;
	e->ack = p->ack;
	e->window = p->window;
	e->tcp_flags = p->tcp_flags;
	e->family = p->family;
}

const struct mosfw_packet *mosfw_arena_find(const struct mosfw_arena *a, uint32_t pkt_index)
{
	uint32_t lo = 0, hi = a->n;

	while (lo < hi) { /* entries are in pkt_index order */
		uint32_t mid = lo + (hi - lo) / 2;
		if (a->pkts[mid].pkt_index < pkt_index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < a->n && a->pkts[lo].pkt_index == pkt_index ? &a->pkts[lo] : NULL;
}
