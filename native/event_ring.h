/* SPDX-License-Identifier: MIT */
/*
 * event_ring.h -- the caller-allocated batch of event records one burst
 * fills. Producers check the subscription mask first, so an event nobody
 * subscribed to costs one AND and a branch.
 */
#ifndef MOSFW_EVENT_RING_H
#define MOSFW_EVENT_RING_H

#include <string.h>

#include "mosfw_api.h"
#include "packet.h"

struct mosfw_pkt_ctx;
struct mosfw_observers;

struct mosfw_ring {
	struct mosfw_event *evs; /* written by the core, read by the caller */
	uint32_t n;              /* records written in this burst */
	uint32_t cap;            /* capacity of evs */
	uint32_t mask;           /* subscribed MOSFW_EV_* bits */
	uint64_t total;          /* records written since the start */
	/* of which, by type: by_type[i] counts records of type 1u << i
	 * (mosfw_core_event_counts) */
	uint64_t by_type[MOSFW_EV_TYPES];
	/* what features hang on a push (set by feature_set.c; the ring never
	 * calls a feature by name) */
	uint8_t *const *stopmon; /* *stopmon: per slot, 1 << side not monitored; NULL = none */
	/* a record about a packet was written: 0 takes it back; NULL = none */
	int (*on_push)(void *self, struct mosfw_event *e, const struct mosfw_pkt_ctx *c);
	void *push_self;
	const struct mosfw_observers *obs; /* the core's table (observers.h); never NULL */
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

static inline uint32_t mosfw_ring_room(const struct mosfw_ring *r) { return r->cap - r->n; }

/* Is a record of `type` about `side` of the flow in slot suppressed by
 * stop-monitoring (MOS_STOP_MON)? CONN_END always goes through unless
 * both sides are stopped. */
static inline int mosfw_ring_suppressed(const uint8_t *stopmon, uint32_t slot, unsigned side,
                                        uint32_t type)
{
	uint8_t m = stopmon[slot];

	if (!m)
		return 0;
	if (m == 3)
		return 1;
	return type != MOSFW_EV_CONN_END && (m & (1u << (side & 1)));
}

/* Append a record for `type` about flow f (may be NULL). Returns NULL when
 * the event is not subscribed (or, defensively, when the ring is full:
 * the core loop keeps enough room for one packet's worst case). */
static inline struct mosfw_event *mosfw_ring_push(struct mosfw_ring *r, uint32_t type,
                                                  const struct mosfw_pkt_ctx *c,
                                                  const struct mosfw_flow *f, uint32_t slot,
                                                  unsigned side)
{
	struct mosfw_event *e;

	if (!(r->mask & type) || r->n >= r->cap)
		return NULL;
	if (f && r->stopmon && *r->stopmon && mosfw_ring_suppressed(*r->stopmon, slot, side, type))
		return NULL; /* that side is not monitored any more (MOS_STOP_MON) */
	e = &r->evs[r->n++];
	r->total++;
	r->by_type[__builtin_ctz(type)]++;
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
	if (c->pkt && r->on_push && !r->on_push(r->push_self, e, c)) {
		r->n--;
		r->total--;
		r->by_type[__builtin_ctz(type)]--;
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
