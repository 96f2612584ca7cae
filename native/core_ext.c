/* SPDX-License-Identifier: MIT */
/*
 * core_ext.c -- the app-facing mOS API of a core (peek, ppeek, buffer
 * info, overlap policy, stop-monitoring, the event's packet, timers,
 * filters) and the hooks core_loop.c, tcp_state.c and event_ring.h call.
 */
#include "core_ext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_ring.h"
#include "filters.h"
#include "flow_table.h"
#include "packet.h"
#include "pkt_arena.h"
#include "source.h"
#include "stream_buf.h"
#include "tcp_state.h"
#include "timers.h"

/* defined in core_loop.c */
struct mosfw_core_ext *mosfw_core_ext_of(struct mosfw_core *core);

/* ---- life cycle ----------------------------------------------------------- */

int mosfw_core_ext_init(struct mosfw_core_ext *x, const struct mosfw_config *cfg,
                        struct mosfw_flow_table *ft, struct mosfw_source **src,
                        const double *now)
{
	memset(x, 0, sizeof(*x));
	x->rmem_size = cfg->rmem_size;
	x->rmem_memcap = cfg->rmem_memcap;
	x->no_ring_buffers = cfg->no_ring_buffers;
	x->burst_packets = cfg->burst_packets ? cfg->burst_packets : 4096;
	x->ft = ft;
	x->src = src;
	x->now = now;
	mosfw_core_ext_mask(x, cfg->event_mask);
	return 0;
}

void mosfw_core_ext_destroy(struct mosfw_core_ext *x)
{
	mosfw_streams_free(x->streams);
	mosfw_arena_free(x->arena);
	mosfw_timers_free(x->timers);
	mosfw_filters_free(x->filters);
	free(x->stopmon);
	memset(x, 0, sizeof(*x));
}

static void streams_on(struct mosfw_core_ext *x)
{
	if (x->streams || x->no_ring_buffers || x->rmem_size == 0)
		return;
	x->streams = mosfw_streams_new(x->ft->pool_cap, x->rmem_size, x->rmem_memcap);
}

void mosfw_core_ext_mask(struct mosfw_core_ext *x, uint32_t mask)
{
	x->event_mask = mask;
	if (mask & MOSFW_EV_CONN_NEW_DATA)
		streams_on(x);
}

void mosfw_core_ext_burst(struct mosfw_core_ext *x)
{
	x->cut = 0;
	if (x->streams)
		mosfw_streams_new_burst(x->streams);
	if (x->arena)
		mosfw_arena_reset(x->arena);
}

int mosfw_core_ext_room(const struct mosfw_core_ext *x)
{
	return !x->arena || mosfw_arena_room(x->arena);
}

void mosfw_core_ext_flow_ended(struct mosfw_core_ext *x, uint32_t slot)
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

int mosfw_core_ext_must_cut(struct mosfw_core_ext *x, uint32_t slot, unsigned dir,
                            const struct mosfw_pkt *p)
{
	const struct mosfw_flow *f = &x->ft->flows[slot];

	if (f->end_reason || !mosfw_streams_must_cut(x->streams, f, slot, dir, p))
		return 0;
	x->streams->bursts_cut++;
	return 1;
}

void mosfw_core_ext_records(struct mosfw_core_ext *x, uint32_t slot)
{
	if (x->streams)
		mosfw_streams_mark(x->streams, slot, x->ft->flows[slot].hash);
}

/* ---- stream hooks ----------------------------------------------------------- */

int mosfw_core_ext_data(struct mosfw_core_ext *x, struct mosfw_flow *f, uint32_t slot,
                        unsigned dir, const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	if (!x->streams)
		return 0;
	if (x->stopmon && (x->stopmon[slot] & (1u << dir)))
		return 1; /* not monitored: nothing to raise */
	mosfw_streams_data(x->streams, f, slot, dir, c, r);
	/* out of memory for a buffer: fall back to the unbuffered rule */
	return mosfw_streams_get(x->streams, slot, dir) != NULL;
}

void mosfw_core_ext_ack(struct mosfw_core_ext *x, struct mosfw_flow *f, uint32_t slot,
                        unsigned dir, const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	if (!x->streams || !(c->pkt->tcp_flags & MOSFW_TH_ACK) ||
	    (c->pkt->tcp_flags & (MOSFW_TH_RST | MOSFW_TH_SYN)))
		return;
	mosfw_streams_ack(x->streams, f, slot, dir, c, r);
}

/* ---- records ------------------------------------------------------------------ */

int mosfw_core_ext_pushed(struct mosfw_core_ext *x, struct mosfw_event *e,
                          const struct mosfw_pkt_ctx *c)
{
	if (x->filters && (x->filter_types & e->type))
		e->filter_bits = mosfw_filters_bits(x->filters, e->type, c->pkt_index, x->frame,
		                                    x->caplen, x->wirelen, c->ts);
	if ((x->filter_only & e->type) && !e->filter_bits)
		return 0;
	if (x->arena)
		mosfw_arena_note(x->arena, c->pkt_index, c->ts, x->frame, x->caplen, x->wirelen, c->pkt,
		                 x->frame_stable);
	return 1;
}

/* ---- timers ---------------------------------------------------------------------- */

void mosfw_core_ext_start(struct mosfw_core_ext *x, double ts)
{
	uint32_t i;

	if (x->started)
		return;
	x->started = 1;
	if (*x->src && mosfw_source_is_live(*x->src))
		return; /* live: timers were set on wall time already */
	if (x->timers) /* adding a constant keeps the heap a heap */
		for (i = 0; i < x->timers->n; i++)
			x->timers->heap[i].deadline += ts;
}

int mosfw_core_ext_timer_due(const struct mosfw_core_ext *x, double now)
{
	return mosfw_timers_due(x->timers, now);
}

void mosfw_core_ext_fire_timer(struct mosfw_core_ext *x, struct mosfw_ring *r)
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

int mosfw_core_ext_syn_ok(struct mosfw_core_ext *x, double ts)
{
	if (!x->filters || !x->filters->syn.set)
		return 1;
	if (mosfw_bpf_match(&x->filters->syn, x->frame, x->caplen, x->wirelen, ts))
		return 1;
	x->syn_filtered++;
	return 0;
}

int mosfw_core_ext_orphan_ok(struct mosfw_core_ext *x, double ts)
{
	if (!x->filters || !x->filters->orphan.set)
		return 1;
	if (mosfw_bpf_match(&x->filters->orphan, x->frame, x->caplen, x->wirelen, ts))
		return 1;
	x->orphan_filtered++;
	return 0;
}

/* ---- the public API ---------------------------------------------------------------- */

static struct mosfw_flow *flow_of(struct mosfw_core_ext *x, uint32_t slot, uint64_t flow_id)
{
	struct mosfw_flow *f;

	if (slot >= x->ft->pool_cap || flow_id == 0)
		return NULL;
	f = &x->ft->flows[slot];
	return f->id == flow_id ? f : NULL;
}

static struct mosfw_sb *buffer_of(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                                  unsigned side, int *err)
{
	struct mosfw_core_ext *x = mosfw_core_ext_of(core);
	struct mosfw_sb *b;

	if (!flow_of(x, slot, flow_id) || side > 1) {
		*err = -1;
		return NULL;
	}
	b = x->streams ? mosfw_streams_get(x->streams, slot, side) : NULL;
	*err = b ? 0 : -2;
	return b;
}

int mosfw_core_set_bytestream(struct mosfw_core *core, int on)
{
	struct mosfw_core_ext *x = mosfw_core_ext_of(core);

	if (on) {
		x->bytestream_wanted = 1;
		streams_on(x);
	}
	return x->streams != NULL;
}

void mosfw_core_set_packets(struct mosfw_core *core, int on)
{
	struct mosfw_core_ext *x = mosfw_core_ext_of(core);

	if (on && !x->arena)
		x->arena = mosfw_arena_new(x->burst_packets);
}

int64_t mosfw_core_peek(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                        unsigned side, uint8_t *buf, uint32_t len, uint64_t *lost)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	if (lost)
		*lost = 0;
	if (!b)
		return err;
	return mosfw_sb_peek(b, buf, len, lost);
}

int64_t mosfw_core_ppeek(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                         unsigned side, uint64_t offset, uint8_t *buf, uint32_t len)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	return b ? mosfw_sb_ppeek(b, offset, buf, len) : err;
}

int mosfw_core_stream_info(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                           unsigned side, struct mosfw_stream_info *out)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	if (!b)
		return err;
	mosfw_sb_info(b, out);
	return 0;
}

int64_t mosfw_core_stream_frags(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                                unsigned side, struct mosfw_stream_frag *out, uint32_t max)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	return b ? (int64_t)mosfw_sb_frags(b, out, max) : err;
}

int mosfw_core_stream_offset(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                             unsigned side, uint32_t seq, int64_t *out)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	if (!b)
		return err;
	*out = mosfw_sb_offset(b, seq);
	return 0;
}

int mosfw_core_set_overlap(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                           unsigned side, int policy)
{
	struct mosfw_core_ext *x = mosfw_core_ext_of(core);
	struct mosfw_flow *f = flow_of(x, slot, flow_id);
	struct mosfw_sb *b;

	if (!f || side > 1 || (policy != MOSFW_OVERLAP_FIRST && policy != MOSFW_OVERLAP_LAST))
		return -1;
	if (!x->streams)
		return -2;
	b = mosfw_streams_ensure(x->streams, f, slot, side);
	if (!b)
		return -2;
	b->policy = (uint8_t)policy;
	return 0;
}

int mosfw_core_stop_monitor(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                            unsigned sides)
{
	struct mosfw_core_ext *x = mosfw_core_ext_of(core);
	struct mosfw_flow *f = flow_of(x, slot, flow_id);
	unsigned i;

	if (!f || sides == 0 || sides > 3)
		return -1;
	if (f->end_reason)
		return 0; /* already ended: nothing more will come */
	if (!x->stopmon) {
		x->stopmon = calloc(x->ft->pool_cap, 1);
		if (!x->stopmon)
			return -1;
	}
	x->stopmon[slot] |= (uint8_t)sides;
	if (x->streams) {
		for (i = 0; i < 2; i++) {
			struct mosfw_sb **pb = &x->streams->sb[(size_t)slot * 2 + i];
			if ((sides & (1u << i)) && *pb) {
				free(*pb);
				*pb = NULL;
				x->streams->live--;
			}
		}
	}
	return 0;
}

const struct mosfw_packet *mosfw_core_packet(struct mosfw_core *core, uint32_t pkt_index)
{
	struct mosfw_core_ext *x = mosfw_core_ext_of(core);

	return x->arena ? mosfw_arena_find(x->arena, pkt_index) : NULL;
}

int mosfw_core_timer_add(struct mosfw_core *core, double deadline, uint32_t slot,
                         uint64_t flow_id, uint32_t handle)
{
	struct mosfw_core_ext *x = mosfw_core_ext_of(core);

	if (slot != MOSFW_NO_SLOT && !flow_of(x, slot, flow_id))
		return -1;
	if (slot == MOSFW_NO_SLOT)
		flow_id = 0;
	if (!x->timers && !(x->timers = mosfw_timers_new()))
		return -1;
	return mosfw_timers_add(x->timers, deadline, slot, flow_id, handle);
}

double mosfw_core_now(const struct mosfw_core *core)
{
	return *mosfw_core_ext_of((struct mosfw_core *)core)->now;
}

int mosfw_core_set_filter(struct mosfw_core *core, unsigned which, uint32_t event_types,
                          const char *bpf, char *errbuf)
{
	struct mosfw_core_ext *x = mosfw_core_ext_of(core);

	if (!*x->src) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "open an input before setting BPF filters");
		return -1;
	}
	if (!x->filters && !(x->filters = mosfw_filters_new())) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		return -1;
	}
	if (mosfw_filters_set(x->filters, which, event_types, bpf,
	                      mosfw_source_linktype(*x->src), 262144, errbuf) < 0)
		return -1;
	x->filter_types = x->filters->types;
	return 0;
}

void mosfw_core_set_filter_only(struct mosfw_core *core, uint32_t types)
{
	mosfw_core_ext_of(core)->filter_only = types & ~(uint32_t)MOSFW_EV_CONN_END;
}

void mosfw_core_ext_stats(struct mosfw_core *core, struct mosfw_ext_stats *out)
{
	struct mosfw_core_ext *x = mosfw_core_ext_of(core);
	const struct mosfw_streams *s = x->streams;

	memset(out, 0, sizeof(*out));
	if (s) {
		out->buffers_allocated = s->allocated;
		out->buffers_failed = s->alloc_failed;
		out->buffers_live = s->live;
		out->buffers_peak = s->peak;
		out->stream_bytes = s->bytes_in;
		out->lost_gap_bytes = s->lost_gap;
		out->lost_overrun_bytes = s->lost_overrun;
		out->bursts_cut = s->bursts_cut;
	}
	out->syn_filtered = x->syn_filtered;
	out->orphan_filtered = x->orphan_filtered;
	out->timers_fired = x->timers_fired;
	out->timers_dropped = x->timers_dropped;
}
