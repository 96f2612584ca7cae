/* SPDX-License-Identifier: MIT */
/*
 * feature_set.c -- a core's on-demand features (feature_set.h): their life
 * cycle, what the core calls at its fixed points, and the function
 * pointers they hang on the observer table's stream points and on the
 * ring's push hook. The app-facing calls on them are in core_api.c.
 */
#include "feature_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_ring.h"
#include "filters.h"
#include "flow_table.h"
#include "observers.h"
#include "packet.h"
#include "pkt_arena.h"
#include "source.h"
#include "stream_buf.h"
#include "tcp_state.h"
#include "timers.h"

/* ---- life cycle ----------------------------------------------------------- */

int mosfw_feat_init(struct mosfw_features *x, const struct mosfw_config *cfg,
                    struct mosfw_flow_table *ft, struct mosfw_source **src, const double *now,
                    struct mosfw_ring *ring, struct mosfw_observers *obs)
{
	memset(x, 0, sizeof(*x));
	x->ring = ring;
	x->obs = obs;
	ring->stopmon = &x->stopmon;
	x->rmem_size = cfg->rmem_size;
	x->rmem_memcap = cfg->rmem_memcap;
	x->no_ring_buffers = cfg->no_ring_buffers;
	x->burst_packets = cfg->burst_packets ? cfg->burst_packets : 4096;
	x->ft = ft;
	x->src = src;
	x->now = now;
	mosfw_feat_mask(x, cfg->event_mask);
	return 0;
}

void mosfw_feat_destroy(struct mosfw_features *x)
{
	if (x->obs)
		memset(&x->obs->stream, 0, sizeof(x->obs->stream));
	if (x->ring) {
		x->ring->on_push = NULL;
		x->ring->stopmon = NULL;
	}
	mosfw_streams_free(x->streams);
	mosfw_arena_free(x->arena);
	mosfw_timers_free(x->timers);
	mosfw_filters_free(x->filters);
	free(x->stopmon);
	memset(x, 0, sizeof(*x));
}

static int stream_data(void *self, struct mosfw_flow *f, uint32_t slot, unsigned dir,
                       const struct mosfw_pkt_ctx *c, struct mosfw_ring *r);
static void stream_ack(void *self, struct mosfw_flow *f, uint32_t slot, unsigned dir,
                       const struct mosfw_pkt_ctx *c, struct mosfw_ring *r);

void mosfw_feat_streams_on(struct mosfw_features *x)
{
	if (x->streams || x->no_ring_buffers || x->rmem_size == 0)
		return;
	x->streams = mosfw_streams_new(x->ft->pool_cap, x->rmem_size, x->rmem_memcap);
	if (x->streams) { /* the TCP update reaches them through the table */
		x->obs->stream.self = x;
		x->obs->stream.ack = stream_ack;
		x->obs->stream.data = stream_data;
	}
}

void mosfw_feat_mask(struct mosfw_features *x, uint32_t mask)
{
	x->event_mask = mask;
	if (mask & MOSFW_EV_CONN_NEW_DATA)
		mosfw_feat_streams_on(x);
}

void mosfw_feat_burst(struct mosfw_features *x)
{
	x->cut = 0;
	if (x->streams)
		mosfw_streams_new_burst(x->streams);
	if (x->arena)
		mosfw_arena_reset(x->arena);
}

int mosfw_feat_room(const struct mosfw_features *x)
{
	return !x->arena || mosfw_arena_room(x->arena);
}

void mosfw_feat_flow_ended(struct mosfw_features *x, uint32_t slot)
{
	if (x->streams)
		mosfw_streams_flow_ended(x->streams, slot);
	if (x->stopmon && x->stopmon[slot]) {
		/* the flow is gone; its slot starts monitored next time. Records
		 * of this burst were already filtered when they were written. */
		x->stopmon[slot] = 0;
	}
}

/* ---- burst cuts ------------------------------------------------------------ */

int mosfw_feat_must_cut(struct mosfw_features *x, uint32_t slot, unsigned dir,
                        const struct mosfw_pkt *p)
{
	const struct mosfw_flow *f = &x->ft->flows[slot];

	if (f->end_reason || !mosfw_streams_must_cut(x->streams, f, slot, dir, p))
		return 0;
	x->streams->bursts_cut++;
	return 1;
}

void mosfw_feat_records(struct mosfw_features *x, uint32_t slot)
{
	if (x->streams)
		mosfw_streams_mark(x->streams, slot, x->ft->flows[slot].hash);
}

/* ---- stream points of the observer table (set while buffers are on) -------- */

static int stream_data(void *self, struct mosfw_flow *f, uint32_t slot, unsigned dir,
                       const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	struct mosfw_features *x = self;

	if (!x->streams)
		return 0;
	if (x->stopmon && (x->stopmon[slot] & (1u << dir)))
		return 1; /* not monitored: nothing to raise */
	mosfw_streams_data(x->streams, f, slot, dir, c, r);
	/* out of memory for a buffer: fall back to the unbuffered rule */
	return mosfw_streams_get(x->streams, slot, dir) != NULL;
}

static void stream_ack(void *self, struct mosfw_flow *f, uint32_t slot, unsigned dir,
                       const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	struct mosfw_features *x = self;

	if (!x->streams || !(c->pkt->tcp_flags & MOSFW_TH_ACK) ||
	    (c->pkt->tcp_flags & (MOSFW_TH_RST | MOSFW_TH_SYN)))
		return;
	mosfw_streams_ack(x->streams, f, slot, dir, c, r);
}

/* ---- records: the ring's push hook --------------------------------------------- */

/* A record about the packet being processed was written: evaluate event
 * filters, copy the packet into the arena. 0: drop the record (its type is
 * wanted only where a filter matched, and none did). */
static int pushed(void *self, struct mosfw_event *e, const struct mosfw_pkt_ctx *c)
{
	struct mosfw_features *x = self;

	if (x->filters && (x->filter_types & e->type))
		e->filter_bits = mosfw_filters_bits(x->filters, e->type, c->pkt_index, x->frame,
		                                    x->caplen, x->wirelen, c->ts);
	if ((x->filter_only & e->type) && !e->filter_bits)
		return 0;
	if (x->arena)
		mosfw_arena_note(x->arena, c->pkt_index, c->ts, x->frame, x->caplen, x->wirelen,
		                 c->pkt, x->frame_stable);
	return 1;
}

void mosfw_feat_push_hook(struct mosfw_features *x)
{
	x->ring->push_self = x;
	x->ring->on_push = (x->arena || x->filter_types) ? pushed : NULL;
}

/* ---- timers ---------------------------------------------------------------------- */

void mosfw_feat_start(struct mosfw_features *x, double ts)
{
	uint32_t i;

	if (x->started)
		return;
	x->started = 1;
	if (*x->src && mosfw_source_is_live(*x->src))
		return; /* live: timers were set on wall time already */
	if (x->timers)  /* adding a constant keeps the heap a heap */
		for (i = 0; i < x->timers->n; i++)
			x->timers->heap[i].deadline += ts;
}

int mosfw_feat_timer_due(const struct mosfw_features *x, double now)
{
	return mosfw_timers_due(x->timers, now);
}

void mosfw_feat_fire_timer(struct mosfw_features *x, struct mosfw_ring *r)
{
	struct mosfw_timer t = mosfw_timers_pop(x->timers);
	struct mosfw_pkt_ctx ctx = { NULL, t.deadline, 0 };
	const struct mosfw_flow *f = NULL;
	struct mosfw_event *e;

	if (t.slot != MOSFW_NO_SLOT) {
		f = t.slot < x->ft->pool_cap ? &x->ft->flows[t.slot] : NULL;
		if (!f || f->id != t.flow_id || f->end_reason ||
		    (x->stopmon && x->stopmon[t.slot] == 3)) {
			x->timers_dropped++;
			return;
		}
	}
	e = mosfw_ring_push(r, MOSFW_EV_TIMEOUT, &ctx, f, t.slot, MOSFW_SIDE_CLIENT);
	if (e) {
		e->seq = t.handle;
		x->timers_fired++;
	}
}

/* ---- monitor filters ------------------------------------------------------------ */

int mosfw_feat_syn_ok(struct mosfw_features *x, double ts)
{
	if (!x->filters || !x->filters->syn.set)
		return 1;
	if (mosfw_bpf_match(&x->filters->syn, x->frame, x->caplen, x->wirelen, ts))
		return 1;
	x->syn_filtered++;
	return 0;
}

int mosfw_feat_orphan_ok(struct mosfw_features *x, double ts)
{
	if (!x->filters || !x->filters->orphan.set)
		return 1;
	if (mosfw_bpf_match(&x->filters->orphan, x->frame, x->caplen, x->wirelen, ts))
		return 1;
	x->orphan_filtered++;
	return 0;
}
