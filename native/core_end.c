/* SPDX-License-Identifier: MIT */
/*
 * core_end.c -- how a core ends flows: CONN_END and the flow's retirement
 * (FIN/RST-ended flows stay as zombies for tcp_tw_interval), idle
 * timeouts and app timers as input time moves, eviction when the table is
 * full, and the end of input.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

static void count_end(struct mosfw_core *c, unsigned reason)
{
	switch (reason) {
	case MOSFW_END_FIN: c->st.flows_ended_fin++; break;
	case MOSFW_END_RST: c->st.flows_ended_rst++; break;
	case MOSFW_END_TIMEOUT: c->st.flows_ended_timeout++; break;
	case MOSFW_END_EVICTED: c->st.flows_evicted++; break;
	case MOSFW_END_EOF: c->st.flows_ended_eof++; break;
	case MOSFW_END_REUSED: c->st.flows_reused++; break;
	default: break;
	}
}

/* Raise CONN_END and retire the flow. FIN/RST-ended flows stay indexed as
 * zombies for tcp_tw_interval so late packets are orphans, not new flows. */
void mosfw_core_end_flow(struct mosfw_core *c, uint32_t slot, unsigned reason, double ts,
                         const struct mosfw_pkt *pkt)
{
	struct mosfw_flow *f = &c->ft.flows[slot];
	struct mosfw_pkt_ctx ctx = { pkt, ts, c->pkt_index };
	struct mosfw_event *e =
		mosfw_ring_push(&c->ring, MOSFW_EV_CONN_END, &ctx, f, slot, MOSFW_SIDE_CLIENT);

	if (e)
		e->reason = (uint8_t)reason;
	f->end_reason = (uint8_t)reason;
	if (!mosfw_core_foreign(c, slot)) {
		count_end(c, reason);
		mosfw_obs_flow_ended(&c->obs, f, slot);
	}
	if (c->recent_cap && reason != MOSFW_END_EOF) {
		struct mosfw_ended *r = &c->recent[c->recent_next];
		r->ts = ts;
		r->flow = *f;
		c->recent_next = (c->recent_next + 1) % c->recent_cap;
		if (c->recent_n < c->recent_cap)
			c->recent_n++;
	}
	mosfw_feat_flow_ended(&c->x, slot);
	if ((reason == MOSFW_END_FIN || reason == MOSFW_END_RST) && c->cfg.tcp_tw_interval > 0) {
		if (ts > f->last_ts)
			f->last_ts = ts;
		mosfw_ft_touch(&c->ft, slot, MOSFW_LRU_ZOMBIE);
	} else {
		mosfw_core_forget(c, slot);
	}
}

/* End flows idle past their deadline, oldest first, while there is room. */
void mosfw_core_expire(struct mosfw_core *c)
{
	static const unsigned order[] = { MOSFW_LRU_ZOMBIE, MOSFW_LRU_HALF_OPEN, MOSFW_LRU_ESTAB,
		                          MOSFW_LRU_UDP,    MOSFW_LRU_ICMP,      MOSFW_LRU_OTHER };
	const double limits[] = { c->cfg.tcp_tw_interval, c->cfg.tcp_timeout,  c->cfg.tcp_timeout,
		                  c->cfg.udp_timeout,     c->cfg.icmp_timeout, c->cfg.udp_timeout };
	unsigned i;
	double next = HUGE_VAL; /* the earliest deadline left */

	c->expiry_unfinished = 0;
	c->expire_at = -HUGE_VAL; /* until this pass completes */
	/* app timers due by now fire first (TIMEOUT, ts = their deadline) */
	while (mosfw_feat_timer_due(&c->x, c->now)) {
		if (!mosfw_core_room(c)) {
			c->expiry_unfinished = 1;
			return;
		}
		mosfw_feat_fire_timer(&c->x, &c->ring);
	}
	for (i = 0; i < MOSFW_LRU_COUNT; i++) {
		unsigned l = order[i];
		double limit = limits[i];
		if (l != MOSFW_LRU_ZOMBIE && limit <= 0)
			continue;
		while (c->ft.head[l] != MOSFW_NO_SLOT) {
			uint32_t slot = c->ft.head[l];
			double deadline = c->ft.flows[slot].last_ts + limit;
			if (c->now < deadline)
				break;
			if (!mosfw_core_room(c)) {
				c->expiry_unfinished = 1;
				return;
			}
			if (l == MOSFW_LRU_ZOMBIE)
				mosfw_core_forget(c, slot);
			else
				mosfw_core_end_flow(c, slot, MOSFW_END_TIMEOUT, deadline, NULL);
		}
		if (c->ft.head[l] != MOSFW_NO_SLOT) {
			double deadline = c->ft.flows[c->ft.head[l]].last_ts + limit;
			if (deadline < next)
				next = deadline;
		}
	}
	c->expire_at = next;
	c->expire_links = c->ft.head_links;
}

/* Make room for one new flow: forget the oldest zombie, else evict the
 * oldest half-open TCP flow, else the longest idle of the oldest UDP, ICMP
 * and other-protocol flows. A newcomer never displaces a confirmed established TCP flow
 * (it is refused instead). Returns 0 when there is room. */
int mosfw_core_make_room(struct mosfw_core *c, const struct mosfw_pkt_ctx *ctx)
{
	uint32_t slot, best = MOSFW_NO_SLOT;
	unsigned l;
	struct mosfw_event *e;

	if (c->ft.live < c->ft.max_live)
		return 0;
	if (c->ft.head[MOSFW_LRU_ZOMBIE] != MOSFW_NO_SLOT) {
		mosfw_core_forget(c, c->ft.head[MOSFW_LRU_ZOMBIE]);
		return 0;
	}
	slot = c->ft.head[MOSFW_LRU_HALF_OPEN];
	for (l = MOSFW_LRU_UDP; slot == MOSFW_NO_SLOT && l < MOSFW_LRU_COUNT; l++) {
		/* the longest idle of the datagram flows' oldest */
		uint32_t h = c->ft.head[l];
		if (h != MOSFW_NO_SLOT &&
		    (best == MOSFW_NO_SLOT || c->ft.flows[h].last_ts < c->ft.flows[best].last_ts))
			best = h;
	}
	if (slot == MOSFW_NO_SLOT)
		slot = best;
	if (slot == MOSFW_NO_SLOT)
		return -1;
	e = mosfw_ring_push(&c->ring, MOSFW_EV_ERROR, ctx, &c->ft.flows[slot], slot,
	                    MOSFW_SIDE_CLIENT);
	if (e)
		e->reason = MOSFW_ERR_TABLE_FULL;
	mosfw_core_end_flow(c, slot, MOSFW_END_EVICTED, ctx->ts, NULL);
	return 0;
}

/* End of input: end every remaining flow with reason eof, oldest first. */
int mosfw_core_drain(struct mosfw_core *c)
{
	static const unsigned order[] = { MOSFW_LRU_ZOMBIE, MOSFW_LRU_HALF_OPEN, MOSFW_LRU_ESTAB,
		                          MOSFW_LRU_UDP,    MOSFW_LRU_ICMP,      MOSFW_LRU_OTHER };
	unsigned i;

	for (i = 0; i < MOSFW_LRU_COUNT; i++) {
		unsigned l = order[i];
		while (c->ft.head[l] != MOSFW_NO_SLOT) {
			uint32_t slot = c->ft.head[l];
			if (!mosfw_core_room(c))
				return 0;
			if (l == MOSFW_LRU_ZOMBIE)
				mosfw_core_forget(c, slot);
			else
				mosfw_core_end_flow(c, slot, MOSFW_END_EOF, c->now, NULL);
		}
	}
	return 1;
}
