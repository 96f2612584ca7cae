/* SPDX-License-Identifier: MIT */
/*
 * event_ring.h -- the caller-allocated batch of event records one burst
 * fills. Producers check the subscription mask first, so an event nobody
 * subscribed to costs one AND and a branch.
 */
#ifndef MOSFW_EVENT_RING_H
#define MOSFW_EVENT_RING_H

#include <string.h>

#include "core_ext.h"
#include "mosfw_api.h"
#include "packet.h"

struct mosfw_ring {
	struct mosfw_event *evs; /* written by the core, read by the caller */
	uint32_t n;              /* records written in this burst */
	uint32_t cap;            /* capacity of evs */
	uint32_t mask;           /* subscribed MOSFW_EV_* bits */
	uint64_t total;          /* records written since the start */
	struct mosfw_core_ext *x; /* the core's app-API state (core_ext.h); may be NULL */
	int conn_log;            /* conn.log records are written in C (core_loop.c) */
	struct mosfw_conn *conns; /* conn.log views by slot (flow_table.h) */
};

/* What every record about the current packet shares. */
struct mosfw_pkt_ctx {
	const struct mosfw_pkt *pkt; /* NULL for timer-driven events */
	double ts;
	uint32_t pkt_index;
};

static inline int mosfw_ring_wants(const struct mosfw_ring *r, uint32_t type)
{
	return (r->mask & type) != 0;
}

static inline uint32_t mosfw_ring_room(const struct mosfw_ring *r)
{
	return r->cap - r->n;
}

/* Append a record for `type` about flow f (may be NULL). Returns NULL when
 * the event is not subscribed (or, defensively, when the ring is full:
 * the core loop keeps enough room for one packet's worst case). */
static inline struct mosfw_event *
mosfw_ring_push(struct mosfw_ring *r, uint32_t type, const struct mosfw_pkt_ctx *c,
                const struct mosfw_flow *f, uint32_t slot, unsigned side)
{
	struct mosfw_event *e;

	if (!(r->mask & type) || r->n >= r->cap)
		return NULL;
	if (f && r->x && r->x->stopmon && mosfw_core_ext_suppressed(r->x, slot, side, type))
		return NULL; /* that side is not monitored any more (MOS_STOP_MON) */
	e = &r->evs[r->n++];
	r->total++;
	memset(e, 0, sizeof(*e));
	e->ts = c->ts;
	e->type = type;
	e->side = (uint8_t)side;
	e->pkt_index = c->pkt_index;
	e->slot = slot;
	if (c->pkt) {
		e->from_pkt = 1;
		e->seq = c->pkt->seq;
		e->ack = c->pkt->ack;
		e->len = c->pkt->payload_len;
		e->window = c->pkt->window;
		e->tcp_flags = c->pkt->tcp_flags;
	}
	/* event filters, packet arena; a record only BPF filters wanted and
	 * none matched is taken back */
	if (c->pkt && r->x && (r->x->arena || r->x->filter_types) && !mosfw_core_ext_pushed(r->x, e, c)) {
		r->n--;
		r->total--;
		return NULL;
	}
	if (f) {
		e->flow_id = f->id;
		e->cli_state = f->side[0].state;
		e->srv_state = f->side[1].state;
	}
	return e;
}

#endif /* MOSFW_EVENT_RING_H */
